"""Smoke test of benchmarks/bench_training.py: its equality checks on tiny shapes.

Performance is measured by the script and never asserted here. These tests run only the
checks that both frameworks compute the same losses and gradients. They also cover the
RESULTS.md rewriting, which must leave other sections alone.
"""
import importlib.util
import os

import pytest

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "bench_training.py")


def load_script():
    spec = importlib.util.spec_from_file_location("bench_training", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return load_script()


@pytest.fixture(scope="module")
def smoke_report(bench):
    pytest.importorskip("torch")
    return bench.run(bench.parse_args(["--smoke", "--threads", "1"]))


@pytest.mark.torch
@pytest.mark.parametrize("workload", ["W-LSTM", "W-ATTN", "W-VAE", "W-OPS", "W-GRADCHECK"])
def test_smoke_checks_pass(smoke_report, workload):
    entry = smoke_report["workloads"][workload]
    if not entry["checks"] and any(note.startswith("skipped") for note in entry["notes"]):
        pytest.skip(f"{workload}: {entry['notes'][0]}")
    assert entry["checks"], f"{workload} ran no equality check (notes: {entry['notes']})"
    failed = [check for check in entry["checks"] if not check["passed"]]
    assert not failed, f"{workload}: checks failed: {failed}"


@pytest.mark.torch
def test_smoke_checks_every_parameter(smoke_report):
    """The LSTM workload compares every parameter's gradient on both torch sides."""
    quantities = {check["quantity"] for check in smoke_report["workloads"]["W-LSTM"]["checks"]}
    for side in ("torch cell loop", "torch.nn.LSTM"):
        assert f"{side}: loss" in quantities
        for name in ("embedding.weight", "lstm.weight_ih_l0", "lstm.weight_hh_l0", "lstm.bias_ih_l0",
                     "lstm.bias_hh_l0", "head.weight", "head.bias"):
            assert f"{side}: grad {name}" in quantities, f"{side}: no gradient check of {name}"


@pytest.mark.torch
def test_smoke_skips_timing(smoke_report):
    timings = [entry["timings"] for entry in smoke_report["workloads"].values()]
    assert all(timing == {} for timing in timings)


def test_check_detects_difference(bench):
    """A gradient off by more than the tolerance fails its check, so the checks can fail."""
    check = bench.compare_values("grad", [1.0, 2.0], [1.0, 2.0 + 1e-2], bench.GRAD_RTOL)
    assert not check["passed"]
    assert check["max_abs_diff"] == pytest.approx(1e-2)


def _fake_run(ratio):
    side = {"median_ms": 10.0, "min_ms": 9.0, "max_ms": 11.0, "runs": 3}
    timing = {"sides": {"minireparam": side, "torch": side},
              "ratios": [{"label": "vs torch", "numerator": "minireparam", "denominator": "torch", "ratio": ratio,
                          "ratio_of_minimums": ratio, "target": 1.0, "per": 1, "met": ratio <= 1.0}],
              "load_average": [0.5, 0.7]}
    return {"command": "bench", "mode": "full", "started": "now", "threads": [1], "repeats": 3,
            "machine": {"cpu": "cpu", "logical_cores": 2, "vector_extensions": ["avx2"], "platform": "linux"},
            "versions": {"python": "3", "numpy": "2", "torch": "2", "minireparam": "0.1",
                         "minireparam_backend": "c", "minireparam_simd": "avx2"},
            "workloads": {"W-VAE": {"timings": {"1": timing}}}}


def test_update_results_keeps_other_sections(bench, tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("# Benchmark results\n\n## Kernels\n\nkernel table\n")
    bench.update_results([_fake_run(0.8)], path=str(path))
    with open(path, "a", encoding="utf-8") as stream:
        stream.write("\n### Where the time goes\n\nprofile notes\n")
    bench.update_results([_fake_run(1.2), _fake_run(0.9)], path=str(path))
    text = path.read_text()

    assert text.startswith("# Benchmark results\n\n## Kernels\n\nkernel table\n")
    assert text.count(bench.SECTION_TITLE) == 1
    assert text.count(bench.BEGIN_MARK) == 1
    assert "| W-VAE | vs torch | ≤ 1.0 | 1.20 (1.20) | 0.90 (0.90) | met in some runs |" in text
    assert "| W-VAE | vs torch | ≤ 1.0 | 0.80 (0.80) |" not in text, "the first run's table was not replaced"
    assert text.endswith("### Where the time goes\n\nprofile notes\n"), "the hand-written notes were lost"
