"""Benchmark the C kernels against numpy/OpenBLAS (and PyTorch when installed).

Usage (from the repository root, after ``pip install -e ".[bench]"``):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_kernels.py [--quick]

Some machines set OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE to work around old OpenBLAS
bugs. That slows a current numpy, so unset them for this command only (never in tests).

What it measures, each case checked against a float64 reference before any timing:

- GEMM: every rung and numpy.matmul on the same inputs, float32 and float64, at 1 and
  2 threads (OpenBLAS pinned to the same count with threadpoolctl). Square n in
  {64, ..., 2048} (naive and loop_order only up to 512), the LSTM products
  (32x256)(256x1024) and (2048x256)(256x1024), the weight gradient X^T G with
  X (2048x256) and G (2048x1024), and batched attention (64,128,32)(64,32,128) and
  (64,128,128)(64,128,32). The single-threaded rungs are timed in the 1-thread pass only.
- softmax, log_softmax (forward and backward) and cross-entropy on (4096, 1024) and
  (256, 32768) float32: ms and GB/s next to numpy's straightforward multi-pass version,
  PyTorch's kernel and a plain copy of the same array (the bandwidth ceiling).

Timing: candidates of one case run interleaved (A B C A B C ...), each sample long
enough to reach --min-sample seconds, and the median of --repeats samples is reported,
so a load spike on this shared machine hits every candidate alike. At 2 threads the
script sleeps 0.15 s after each numpy or PyTorch sample, because OpenBLAS workers keep
spinning for about 0.1 s after a call and would otherwise slow the next candidate.
Ratios are speedups over numpy (higher is better). The FMA peak comes from a measured loop of
register-resident FMAs (mr_measure_fma_peak), not from a nominal clock.

Writes <out>/bench_kernels.json and <out>/bench_kernels.png (GFLOP/s against n per rung).
"""
import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

import minireparam.backend as backend
import minireparam.kernels as kernels

try:
    from threadpoolctl import threadpool_info, threadpool_limits
except ImportError:  # pragma: no cover - the benchmark needs it
    sys.exit("bench_kernels: threadpoolctl is missing; install it with `pip install threadpoolctl`")

SQUARE_SIZES = [64, 128, 256, 512, 1024, 2048]
SLOW_RUNGS = ("naive", "loop_order")
SLOW_RUNG_MAX_N = 512
SINGLE_THREAD_RUNGS = ("naive", "loop_order", "blocked", "small", "packed")


# ---- timing -----------------------------------------------------------------------------------


# The clock of every sample: wall time by default; --clock thread switches to the calling
# thread's CPU time, which on a loaded machine counts only the time the thread ran. It is
# valid for one-thread runs only (other threads' work is not counted).
CLOCK = {"wall": time.perf_counter, "thread": time.thread_time}
clock = time.perf_counter


def calibrate(function, min_sample):
    """Return how many calls make one sample last at least ``min_sample`` seconds."""
    function()  # warm caches, page in outputs, allocate packing buffers
    calls = 1
    while True:
        start = clock()
        for _ in range(calls):
            function()
        elapsed = clock() - start
        if elapsed >= min_sample or calls >= 1 << 20:
            return calls
        calls = max(calls * 2, int(calls * min_sample / max(elapsed, 1e-9)) + 1)


def time_interleaved(candidates, repeats, min_sample, settle=None):
    """Time {name: function} interleaved; return {name: median seconds per call}.

    ``settle`` maps a candidate name to seconds to sleep after each of its samples, so
    that its idle worker threads stop spinning before the next candidate runs.
    """
    settle = settle or {}
    calls = {name: calibrate(function, min_sample) for name, function in candidates.items()}
    samples = {name: [] for name in candidates}
    names = list(candidates)
    for repeat in range(repeats):
        # Rotate the order so no candidate always runs right after the same neighbour.
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            function, count = candidates[name], calls[name]
            start = clock()
            for _ in range(count):
                function()
            samples[name].append((clock() - start) / count)
            if settle.get(name):
                time.sleep(settle[name])
    return {name: float(np.median(values)) for name, values in samples.items()}


def settle_times(threads, names):
    """Sleeps between samples at more than one thread: OpenBLAS workers spin for about
    0.1 s after a call (measured), ours for well under a millisecond (GOMP_SPINCOUNT)."""
    if threads <= 1:
        return {}
    return {name: (0.15 if name in ("numpy", "torch") else 0.002) for name in names}


# ---- machine facts -------------------------------------------------------------------------------


def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fma_peaks(threads):
    """Measured FMA peak in GFLOP/s per dtype at ``threads`` threads (None without the C core)."""
    if not backend.c_available():
        return {"float32": None, "float64": None}
    lib = backend.c_backend.lib
    return {"float32": lib.mr_measure_fma_peak(0, threads, 0.3) or None,
            "float64": lib.mr_measure_fma_peak(1, threads, 0.3) or None}


# ---- GEMM cases -------------------------------------------------------------------------------------


def gemm_cases(quick):
    """Return [(label, group, a_shape, b_shape, trans_a, n_for_plot)]."""
    sizes = [64, 256] if quick else SQUARE_SIZES
    cases = [(f"square n={n}", "square", (n, n), (n, n), False, n) for n in sizes]
    cases += [
        ("LSTM (32x256)(256x1024)", "lstm", (32, 256), (256, 1024), False, None),
        ("LSTM (2048x256)(256x1024)", "lstm", (2048, 256), (256, 1024), False, None),
        ("weight grad X^T G, X 2048x256, G 2048x1024", "lstm", (2048, 256), (2048, 1024), True, None),
        ("attention (64,128,32)(64,32,128)", "attention", (64, 128, 32), (64, 32, 128), False, None),
        ("attention (64,128,128)(64,128,32)", "attention", (64, 128, 128), (64, 128, 32), False, None),
    ]
    if quick:
        cases = cases[:2] + cases[2:3] + cases[5:6]
    return cases


def check_gemm(result, a, b, trans_a, label):
    """Raise unless ``result`` matches the float64 product within the rounding bound."""
    op_a = np.swapaxes(a, -1, -2) if trans_a else a
    reference = op_a.astype(np.float64) @ b.astype(np.float64)
    magnitude = np.abs(op_a.astype(np.float64)) @ np.abs(b.astype(np.float64))
    K = op_a.shape[-1]
    tol = 2 * (K + 2) * np.finfo(a.dtype).eps * magnitude
    error = np.abs(result - reference)
    if not np.all(error <= tol):
        raise SystemExit(f"bench_kernels: {label} gives a wrong result (max error {error.max():.3g}); not timing it")


def bench_gemm(threads, dtype, cases, args, rng):
    rows = []
    for label, group, a_shape, b_shape, trans_a, n in cases:
        a_store = rng.standard_normal(a_shape).astype(dtype)
        b = rng.standard_normal(b_shape).astype(dtype)
        # X^T G: X is stored (2048, 256) and passed as a transposed view, as the matmul
        # backward does; numpy gets the same view.
        a = np.swapaxes(a_store, -1, -2) if trans_a else a_store
        out = np.empty(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1]), dtype)
        flops = 2.0 * np.prod(out.shape) * a.shape[-1]

        with backend.use("c"):
            rungs = ["auto", "threaded"] if threads > 1 else ["auto"] + list(SINGLE_THREAD_RUNGS) + ["threaded"]
            if n is not None and n > SLOW_RUNG_MAX_N:
                rungs = [r for r in rungs if r not in SLOW_RUNGS]
            if n is None and threads == 1:
                rungs = [r for r in rungs if r not in SLOW_RUNGS]
            candidates = {}
            for rung in rungs:
                check_gemm(kernels.matmul(a, b, variant=rung), a_store, b, trans_a, f"{label} {rung}")
                candidates[rung] = (lambda rung=rung: kernels.matmul(a, b, variant=rung, out=out))
        check_gemm(np.matmul(a, b), a_store, b, trans_a, f"{label} numpy")
        candidates["numpy"] = lambda: np.matmul(a, b, out=out)

        with backend.use("c"):
            seconds = time_interleaved(candidates, args.repeats, args.min_sample, settle_times(threads, candidates))
        row = {"case": label, "group": group, "n": n, "dtype": np.dtype(dtype).name, "threads": threads,
               "flops": flops, "seconds": seconds,
               "gflops": {name: flops / s * 1e-9 for name, s in seconds.items()},
               "speedup_vs_numpy": {name: seconds["numpy"] / s for name, s in seconds.items()}}
        rows.append(row)
        print_gemm_row(row, args.peaks[threads][row["dtype"]])
    return rows


def print_gemm_row(row, peak):
    parts = []
    for name, gflops in row["gflops"].items():
        share = f" {gflops / peak:4.0%}" if peak else ""
        ratio = "" if name == "numpy" else f" x{row['speedup_vs_numpy'][name]:.2f}"
        parts.append(f"{name} {gflops:6.1f}{share}{ratio}")
    print(f"  {row['dtype']} t={row['threads']} {row['case']:<44} GFLOP/s: " + " | ".join(parts), flush=True)


# ---- softmax family ----------------------------------------------------------------------------------------


def numpy_softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def numpy_log_softmax(x):
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def numpy_softmax_backward(y, dy):
    return y * (dy - (dy * y).sum(axis=-1, keepdims=True))


def numpy_log_softmax_backward(y, dy):
    return dy - np.exp(y) * dy.sum(axis=-1, keepdims=True)


def numpy_cross_entropy(x, target):
    log_y = numpy_log_softmax(x)
    return -log_y[np.arange(len(target)), target].mean(), log_y


def numpy_cross_entropy_backward(log_y, target):
    dx = np.exp(log_y)
    dx[np.arange(len(target)), target] -= 1
    return dx / len(target)


def bench_rows(threads, shape, args, rng, torch):
    """Time the softmax family on one float32 shape; return result rows."""
    x = rng.standard_normal(shape).astype(np.float32) * 4
    dy = rng.standard_normal(shape).astype(np.float32)
    target = rng.integers(0, shape[1], size=shape[0])
    nbytes = x.nbytes
    y, dx, log_y = np.empty_like(x), np.empty_like(x), np.empty_like(x)
    copy_out = np.empty_like(x)

    with backend.use("c"):
        y_ref = kernels.softmax(x)
        log_ref = kernels.log_softmax(x)
        loss, lse = kernels.cross_entropy(x, target)
        # Correctness before timing: the C kernels against the numpy versions.
        np.testing.assert_allclose(y_ref, numpy_softmax(x), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(log_ref, numpy_log_softmax(x), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(loss, numpy_cross_entropy(x, target)[0], rtol=1e-4)
        np.testing.assert_allclose(kernels.cross_entropy_backward(x, target, lse, np.float32(1.0)),
                                   numpy_cross_entropy_backward(numpy_log_softmax(x), target), rtol=1e-3, atol=1e-8)

        def ce_forward_backward():
            _, saved = kernels.cross_entropy(x, target)
            kernels.cross_entropy_backward(x, target, saved, np.float32(1.0), out=dx)

        def log_softmax_forward_backward():
            kernels.log_softmax(x, out=log_y)
            kernels.log_softmax_backward(log_y, dy, out=dx)

        groups = {
            "softmax forward": ({
                "c": lambda: kernels.softmax(x, out=y),
                "numpy": lambda: numpy_softmax(x),
            }, 2 * nbytes),
            "softmax backward": ({
                "c": lambda: kernels.softmax_backward(y_ref, dy, out=dx),
                "numpy": lambda: numpy_softmax_backward(y_ref, dy),
            }, 3 * nbytes),
            "log_softmax forward": ({
                "c": lambda: kernels.log_softmax(x, out=log_y),
                "numpy": lambda: numpy_log_softmax(x),
            }, 2 * nbytes),
            "log_softmax backward": ({
                "c": lambda: kernels.log_softmax_backward(log_ref, dy, out=dx),
                "numpy": lambda: numpy_log_softmax_backward(log_ref, dy),
            }, 3 * nbytes),
            "cross_entropy forward+backward": ({
                "c": ce_forward_backward,
                "c log_softmax fwd+bwd": log_softmax_forward_backward,
                "numpy": lambda: numpy_cross_entropy_backward(numpy_cross_entropy(x, target)[1], target),
            }, 3 * nbytes),
        }
        if torch is not None:
            tx, tdy = torch.from_numpy(x), torch.from_numpy(dy)
            ty, tlog = torch.from_numpy(y_ref), torch.from_numpy(log_ref)
            ttarget = torch.from_numpy(target)
            groups["softmax forward"][0]["torch"] = lambda: torch.softmax(tx, dim=-1)
            groups["softmax backward"][0]["torch"] = lambda: torch._softmax_backward_data(tdy, ty, -1, torch.float32)
            groups["log_softmax forward"][0]["torch"] = lambda: torch.log_softmax(tx, dim=-1)
            groups["log_softmax backward"][0]["torch"] = (
                lambda: torch._log_softmax_backward_data(tdy, tlog, -1, torch.float32))
            groups["cross_entropy forward+backward"][0]["torch"] = lambda: torch_cross_entropy(torch, tx, ttarget)

        rows = []
        for name, (candidates, moved_bytes) in groups.items():
            candidates = dict(candidates)
            candidates["copy"] = lambda: np.copyto(copy_out, x)
            seconds = time_interleaved(candidates, args.repeats, args.min_sample, settle_times(threads, candidates))
            copy_rate = 2 * nbytes / seconds["copy"]
            row = {"kernel": name, "shape": list(shape), "threads": threads, "seconds": seconds,
                   "gb_per_s": {k: (2 * nbytes if k == "copy" else moved_bytes) / s * 1e-9 for k, s in seconds.items()},
                   "speedup_vs_numpy": {k: seconds["numpy"] / s for k, s in seconds.items()},
                   "fraction_of_copy_bandwidth": moved_bytes / seconds["c"] / copy_rate}
            if "torch" in seconds:
                row["speedup_vs_torch"] = seconds["torch"] / seconds["c"]
            rows.append(row)
            parts = " | ".join(f"{k} {s * 1e3:7.3f} ms {row['gb_per_s'][k]:5.1f} GB/s" for k, s in seconds.items())
            extra = f" x{row['speedup_vs_numpy']['c']:.1f} vs numpy"
            if "speedup_vs_torch" in row:
                extra += f", x{row['speedup_vs_torch']:.2f} vs torch"
            extra += f", {row['fraction_of_copy_bandwidth']:.0%} of copy bandwidth"
            print(f"  t={threads} {str(shape):<12} {name:<31} {parts}{extra}", flush=True)
    return rows


def torch_cross_entropy(torch, tx, ttarget):
    logits = tx.detach().requires_grad_(True)
    torch.nn.functional.cross_entropy(logits, ttarget).backward()


# ---- output -------------------------------------------------------------------------------------------------


# One color per candidate, the same in every panel.
RUNG_COLORS = {"naive": "tab:red", "loop_order": "tab:orange", "blocked": "tab:olive", "small": "tab:pink",
               "packed": "tab:brown", "threaded": "tab:green", "auto": "tab:blue", "numpy": "black"}


def plot(gemm_rows, peaks, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(dtype, threads) for dtype in ("float32", "float64") for threads in (1, 2)]
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for axis, (dtype, threads) in zip(axes[0], panels):
        rows = [r for r in gemm_rows if r["group"] == "square" and r["dtype"] == dtype and r["threads"] == threads]
        names = sorted({name for r in rows for name in r["gflops"]})
        for name in names:
            points = [(r["n"], r["gflops"][name]) for r in rows if name in r["gflops"]]
            axis.plot(*zip(*points), marker="o", label=name, color=RUNG_COLORS.get(name),
                      linestyle="--" if name == "numpy" else "-")
        peak = peaks[threads][dtype]
        if peak:
            axis.axhline(peak, color="grey", linewidth=0.8, label="measured FMA peak")
        axis.set_xscale("log", base=2)
        axis.set_title(f"square GEMM {dtype}, {threads} thread{'s' * (threads > 1)}")
        axis.set_xlabel("n")
        axis.set_ylabel("GFLOP/s")
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few cases only, for a smoke run of the script")
    parser.add_argument("--repeats", type=int, default=9, help="interleaved samples per candidate (median taken)")
    parser.add_argument("--min-sample", type=float, default=0.05, help="minimum seconds per timed sample")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to run")
    parser.add_argument("--only", choices=["gemm", "softmax"], help="run only one part")
    parser.add_argument("--out", default="runs/bench_kernels", help="directory for the JSON and PNG outputs")
    parser.add_argument("--clock", choices=["wall", "thread"], default="wall",
                        help="wall time, or the calling thread's CPU time (one-thread runs only)")
    args = parser.parse_args()
    global clock
    clock = CLOCK[args.clock]
    if args.clock == "thread" and args.threads != [1]:
        parser.error("--clock thread measures one thread only; use it with --threads 1")
    if args.quick:
        args.repeats, args.min_sample = 3, 0.01

    if not backend.c_available():
        sys.exit(f"bench_kernels: the C backend is not built ({backend.c_unavailable_reason()})")
    for variable in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if variable in os.environ:
            print(f"note: {variable}={os.environ[variable]} is set; OpenBLAS may run a slower kernel. "
                  f"Run with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE` to benchmark current numpy.")
    try:
        import torch
        torch_version = torch.__version__
    except ImportError:
        torch, torch_version = None, None

    blas = [{k: v for k, v in pool.items() if k != "filepath"} for pool in threadpool_info()]
    machine = {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
               "numpy": np.__version__, "blas": blas, "torch": torch_version, "kernels": kernels.info(),
               "load_average_at_start": os.getloadavg()}
    print(f"machine: {machine['cpu']}, {machine['cores']} cores, numpy {np.__version__}, "
          f"BLAS {[(p.get('internal_api'), p.get('version'), p.get('architecture')) for p in blas]}, torch {torch_version}")
    print(f"kernels: {machine['kernels']}")
    print(f"load average at start: {machine['load_average_at_start']}")

    args.peaks = {}
    gemm_rows, softmax_rows = [], []
    rng = np.random.default_rng(0)
    for threads in args.threads:
        kernels.set_num_threads(threads)
        with threadpool_limits(threads):
            if torch is not None:
                torch.set_num_threads(threads)
            args.peaks[threads] = fma_peaks(threads)
            print(f"\n== {threads} thread(s); measured FMA peak GFLOP/s: {args.peaks[threads]}")
            if args.only in (None, "gemm"):
                for dtype in (np.float32, np.float64):
                    gemm_rows += bench_gemm(threads, dtype, gemm_cases(args.quick), args, rng)
            if args.only in (None, "softmax"):
                shapes = [(4096, 1024)] if args.quick else [(4096, 1024), (256, 32768)]
                for shape in shapes:
                    softmax_rows += bench_rows(threads, shape, args, rng, torch)

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    machine["load_average_at_end"] = os.getloadavg()
    result = {"machine": machine, "command": " ".join(sys.argv), "clock": args.clock, "repeats": args.repeats,
              "min_sample_seconds": args.min_sample, "fma_peak_gflops": args.peaks,
              "gemm": gemm_rows, "softmax": softmax_rows}
    with open(out_dir / "bench_kernels.json", "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=1)
    if gemm_rows:
        plot(gemm_rows, args.peaks, out_dir / "bench_kernels.png")
    print(f"\nwrote {out_dir / 'bench_kernels.json'}" + (f" and {out_dir / 'bench_kernels.png'}" if gemm_rows else ""))


if __name__ == "__main__":
    main()
