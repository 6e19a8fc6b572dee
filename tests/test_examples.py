"""Run each bundled example in --quick mode as a user would, in a subprocess.

Each run must exit 0, lower its loss, and write its metrics JSON, its checkpoint and its
pictures into the temporary --out folder. Two runs check that an example resumed from a
checkpoint ends with exactly the weights of an uninterrupted run.
"""
import json
import math
import os

import numpy as np
import pytest

import minireparam as mr
from minireparam.models.training import CHECKPOINT_NAME

from example_runs import read_metrics, run_example


def assert_trained(out, steps):
    metrics = read_metrics(out)
    assert metrics["steps"] == steps
    assert len(metrics["loss_history"]) == steps
    assert metrics["final_loss"] < metrics["initial_loss"], (
        f"loss did not fall: first steps {metrics['initial_loss']:.4f}, last steps {metrics['final_loss']:.4f}"
    )
    assert metrics["seconds"] > 0.0
    assert os.path.isfile(os.path.join(out, CHECKPOINT_NAME))
    return metrics


def assert_same_checkpoint_weights(first_out, second_out):
    first = mr.load(os.path.join(first_out, CHECKPOINT_NAME))
    second = mr.load(os.path.join(second_out, CHECKPOINT_NAME))
    assert first["step"] == second["step"]
    assert first["model"].keys() == second["model"].keys()
    for name in first["model"]:
        np.testing.assert_array_equal(first["model"][name], second["model"][name], err_msg=f"{name} differs")


# -- char_lstm.py ----------------------------------------------------------------------------


def test_char_lstm_quick(tmp_path):
    out = str(tmp_path)
    completed = run_example("char_lstm.py", "--quick", "--out", out, "--prompt", "def ")
    metrics = assert_trained(out, steps=40)
    assert 0.0 < metrics["validation_bits_per_char"] < 6.7
    assert 0.0 < metrics["train_bits_per_char"] < 6.7
    assert metrics["sample"].startswith("def ")
    assert "validation" in completed.stdout
    assert "time taken" in completed.stdout


def test_char_lstm_text_file_and_metrics_path(tmp_path):
    text = tmp_path / "tiny.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 40, encoding="utf-8")
    metrics_path = tmp_path / "elsewhere" / "m.json"
    run_example("char_lstm.py", "--quick", "--steps", "5", "--out", str(tmp_path / "out"), "--text", str(text),
                "--metrics", str(metrics_path))
    metrics = json.loads(metrics_path.read_text())
    assert metrics["text"] == str(text)
    assert metrics["vocabulary_size"] == len(set("the quick brown fox jumps over the lazy dog. "))


@pytest.mark.parametrize("content, message", [
    (None, "text file not found"),
    (b"", "is empty"),
    (b"\xff\xfe bad bytes", "not valid UTF-8"),
])
def test_char_lstm_bad_text_file(tmp_path, content, message):
    path = tmp_path / "input.txt"
    if content is not None:
        path.write_bytes(content)
    completed = run_example("char_lstm.py", "--quick", "--out", str(tmp_path / "out"), "--text", str(path),
                            expect_failure=True)
    assert message in completed.stderr
    assert "Traceback" not in completed.stderr


def test_char_lstm_resume_equals_uninterrupted(tmp_path):
    whole, parts = str(tmp_path / "whole"), str(tmp_path / "parts")
    run_example("char_lstm.py", "--quick", "--steps", "12", "--checkpoint-every", "4", "--out", whole)
    run_example("char_lstm.py", "--quick", "--steps", "6", "--checkpoint-every", "4", "--out", parts)
    run_example("char_lstm.py", "--quick", "--steps", "12", "--checkpoint-every", "4", "--out", parts, "--resume")
    assert_same_checkpoint_weights(whole, parts)
    assert read_metrics(parts)["resumed_from_step"] == 6


def test_char_lstm_resume_with_other_settings_fails(tmp_path):
    out = str(tmp_path)
    run_example("char_lstm.py", "--quick", "--steps", "3", "--out", out)
    completed = run_example("char_lstm.py", "--quick", "--steps", "6", "--out", out, "--resume", "--lr", "0.5",
                            expect_failure=True)
    assert "trained with other settings (lr: checkpoint 0.01, now 0.5)" in completed.stderr


# -- tiny_gpt.py -----------------------------------------------------------------------------


def test_tiny_gpt_quick(tmp_path):
    out = str(tmp_path / "gpt")
    lstm_metrics = tmp_path / "lstm.json"
    lstm_metrics.write_text(json.dumps({"validation_bits_per_char": 2.5}))
    completed = run_example("tiny_gpt.py", "--quick", "--out", out, "--compare", str(lstm_metrics))
    metrics = assert_trained(out, steps=30)
    assert 0.0 < metrics["validation_bits_per_char"] < 6.7
    assert metrics["char_lstm_validation_bits_per_char"] == 2.5
    assert "char-LSTM: validation 2.5000 bits/char" in completed.stdout


def test_tiny_gpt_resume_with_dropout(tmp_path):
    whole, parts = str(tmp_path / "whole"), str(tmp_path / "parts")
    common = ["--quick", "--dropout", "0.2", "--checkpoint-every", "4", "--steps", "10"]
    run_example("tiny_gpt.py", *common, "--out", whole)
    run_example("tiny_gpt.py", *common, "--out", parts, "--stop-after", "5")
    run_example("tiny_gpt.py", *common, "--out", parts, "--resume")
    assert_same_checkpoint_weights(whole, parts)


def test_tiny_gpt_resume_with_other_total_fails(tmp_path):
    out = str(tmp_path)
    run_example("tiny_gpt.py", "--quick", "--steps", "4", "--out", out)
    completed = run_example("tiny_gpt.py", "--quick", "--steps", "8", "--out", out, "--resume", expect_failure=True)
    assert "schedule_steps: checkpoint 4, now 8" in completed.stderr


# -- vae_digits.py and gumbel_vae_digits.py --------------------------------------------------


def assert_pictures(out, names):
    for name in names:
        path = os.path.join(out, f"{name}.png")
        assert os.path.isfile(path), f"{name}.png missing"
        with open(path, "rb") as stream:
            assert stream.read(8) == b"\x89PNG\r\n\x1a\n", f"{name}.png is not a PNG"


def test_vae_digits_quick(tmp_path):
    pytest.importorskip("sklearn")
    out = str(tmp_path)
    completed = run_example("vae_digits.py", "--quick", "--out", out)
    metrics = assert_trained(out, steps=60)
    assert_pictures(out, ["reconstructions", "samples", "interpolation"])
    assert metrics["test_negative_iw_bound"] <= metrics["test_negative_elbo"] + 0.5
    assert 0.0 < metrics["test_negative_elbo"] < 64 * math.log(2.0) * 2
    assert "importance-weighted bound, K=10" in completed.stdout


def test_vae_digits_resume_equals_uninterrupted(tmp_path):
    pytest.importorskip("sklearn")
    whole, parts = str(tmp_path / "whole"), str(tmp_path / "parts")
    common = ["--quick", "--checkpoint-every", "5", "--iw-samples", "2"]
    run_example("vae_digits.py", *common, "--steps", "16", "--out", whole)
    run_example("vae_digits.py", *common, "--steps", "7", "--out", parts)
    run_example("vae_digits.py", *common, "--steps", "16", "--out", parts, "--resume")
    assert_same_checkpoint_weights(whole, parts)


@pytest.mark.parametrize("hard", [False, True])
def test_gumbel_vae_digits_quick(tmp_path, hard):
    pytest.importorskip("sklearn")
    out = str(tmp_path)
    completed = run_example("gumbel_vae_digits.py", "--quick", "--out", out, *(["--hard"] if hard else []))
    metrics = assert_trained(out, steps=60)
    assert_pictures(out, ["samples", "reconstructions"])
    assert metrics["straight_through"] is hard
    assert metrics["final_temperature"] == pytest.approx(math.exp(-0.6))
    assert ("straight-through" in completed.stdout) is hard


def test_gumbel_vae_rejects_bad_temperatures(tmp_path):
    completed = run_example("gumbel_vae_digits.py", "--quick", "--out", str(tmp_path), "--min-temperature", "2",
                            expect_failure=True)
    assert "need 0 < --min-temperature <= --initial-temperature" in completed.stderr


# -- estimator_variance.py -------------------------------------------------------------------


def test_estimator_variance_quick(tmp_path):
    out = str(tmp_path)
    completed = run_example("estimator_variance.py", "--quick", "--out", out)
    assert_pictures(out, ["estimator_variance"])
    metrics = read_metrics(out)
    gaussian = metrics["results"]["Gaussian latent"]
    categorical = metrics["results"]["categorical latent"]

    # These gaps are orders of magnitude wide at 20 repeats, so the checks hold for any seed.
    for n in ("1", "8"):
        assert gaussian["reparameterization"][n]["variance"] < gaussian["score function, none"][n]["variance"]
    assert gaussian["reparameterization"]["8"]["variance"] < gaussian["reparameterization"]["1"]["variance"]
    assert categorical["score function, none"]["8"]["variance"] < categorical["score function, none"]["1"]["variance"]
    assert gaussian["score function, leave-one-out"]["1"] is None, "leave-one-out needs n >= 2"
    assert "Gumbel-softmax τ=0.5" in categorical
    assert "bias ‖mean − exact‖" in completed.stdout


def test_char_lstm_divergence_stops_with_step(tmp_path):
    out = str(tmp_path)
    # Adam moves every weight by about lr per step, so 3e38 overflows float32 at step 2.
    completed = run_example("char_lstm.py", "--quick", "--lr", "3e38", "--checkpoint-every", "1", "--out", out,
                            expect_failure=True)
    assert "training stopped at step 2: the loss is nan" in completed.stderr
    assert mr.load(os.path.join(out, CHECKPOINT_NAME))["step"] == 1, "the step-1 checkpoint must be kept"
    assert not os.path.exists(os.path.join(out, "metrics.json"))
