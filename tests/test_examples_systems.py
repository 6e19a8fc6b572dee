"""Run the GAN, seq2seq, sentence VAE and semantic-search examples in --quick mode, as a user would.

Each run must exit 0, lower its loss, and write its metrics, checkpoint and pictures into
the temporary --out folder. The seq2seq and WGAN-GP runs also check that a run resumed
from a checkpoint ends with exactly the weights of an uninterrupted run.
"""
import os

import numpy as np

import minireparam as mr
from minireparam.models.training import CHECKPOINT_NAME

from example_runs import read_metrics, run_example


def assert_loss_fell(metrics, first="initial_loss", last="final_loss"):
    assert metrics[last] < metrics[first], (
        f"loss did not fall: first steps {metrics[first]:.4f}, last steps {metrics[last]:.4f}"
    )


def assert_files(out, *names):
    for name in (CHECKPOINT_NAME, "metrics.json") + names:
        assert os.path.isfile(os.path.join(out, name)), f"{name} missing from {out}"


def assert_same_weights(first_out, second_out, steps):
    first = mr.load(os.path.join(first_out, CHECKPOINT_NAME))
    second = mr.load(os.path.join(second_out, CHECKPOINT_NAME))
    assert first["step"] == steps
    assert second["step"] == steps
    assert first["model"].keys() == second["model"].keys()
    for name in first["model"]:
        np.testing.assert_array_equal(first["model"][name], second["model"][name], err_msg=f"{name} differs")


def test_gan_quick(tmp_path):
    out = str(tmp_path)
    completed = run_example("gan_digits.py", "--quick", "--out", out)
    metrics = read_metrics(out)
    assert metrics["steps"] == 80
    # The generator's loss rises while D learns, so the falling loss checked here is D's
    # (from 2·ln 2 at chance) and the classifier's.
    assert_loss_fell(metrics, "discriminator_initial_loss", "discriminator_final_loss")
    assert metrics["discriminator_initial_loss"] < 1.5
    assert 1 <= metrics["classes_covered"] <= 10
    assert sum(metrics["class_counts"]) == metrics["samples"] == 1000
    assert 0.1 <= metrics["mean_confidence"] <= 1.0
    assert metrics["classifier_test_accuracy"] > 0.5, "150 classifier steps already beat chance by far"
    assert_files(out, "samples.png", "samples_by_class.png", os.path.join("classifier", CHECKPOINT_NAME))
    assert "classes covered" in completed.stdout


def test_gan_wgan_gp_resume_equals_uninterrupted(tmp_path):
    whole, parts = str(tmp_path / "whole"), str(tmp_path / "parts")
    common = ["--quick", "--loss", "wgan-gp", "--classifier-steps", "5", "--checkpoint-every", "3"]
    run_example("gan_digits.py", *common, "--steps", "8", "--out", whole)
    run_example("gan_digits.py", *common, "--steps", "4", "--out", parts)
    run_example("gan_digits.py", *common, "--steps", "8", "--out", parts, "--resume")
    assert_same_weights(whole, parts, steps=8)
    metrics = read_metrics(parts)
    assert metrics["loss"] == "wgan-gp"
    assert metrics["resumed_from_step"] == 4
    # The discriminator's optimizer state and loss history come back from the checkpoint too.
    assert metrics["discriminator_loss_history"] == read_metrics(whole)["discriminator_loss_history"]
    assert len(metrics["discriminator_loss_history"]) == 8
    assert all(np.isfinite(metrics["discriminator_loss_history"]))


def test_seq2seq_quick(tmp_path):
    out = str(tmp_path)
    completed = run_example("seq2seq_attention.py", "--quick", "--out", out, "--translate", "forty-two")
    metrics = read_metrics(out)
    assert metrics["steps"] == 60
    assert_loss_fell(metrics)
    assert 0.0 <= metrics["heldout_accuracy"] <= 1.0
    assert metrics["heldout_accuracy"] > 0.05, "60 quick steps already get some held-out numbers right"
    assert metrics["eval_count"] == 120
    assert set(metrics["heldout_accuracy_by_digits"]) <= {"1", "2", "3", "4", "5", "6"}
    assert "forty-two" in metrics["translations"]
    assert_files(out, "attention.png")
    assert "held-out exact match" in completed.stdout


def test_seq2seq_resume_equals_uninterrupted(tmp_path):
    whole, parts = str(tmp_path / "whole"), str(tmp_path / "parts")
    common = ["--quick", "--checkpoint-every", "3", "--eval-count", "10", "--beam-count", "2"]
    run_example("seq2seq_attention.py", *common, "--steps", "8", "--out", whole)
    run_example("seq2seq_attention.py", *common, "--steps", "4", "--out", parts)
    run_example("seq2seq_attention.py", *common, "--steps", "8", "--out", parts, "--resume")
    assert_same_weights(whole, parts, steps=8)
    assert read_metrics(parts)["resumed_from_step"] == 4


def test_sentence_vae_quick(tmp_path):
    out = str(tmp_path / "annealed")
    run_example("sentence_vae.py", "--quick", "--out", out)
    metrics = read_metrics(out)
    assert metrics["steps"] == 40
    assert_loss_fell(metrics)
    assert metrics["heldout_kl"] >= 0.0
    assert 0 <= metrics["active_units"] <= metrics["latent_dim"]
    assert len(metrics["prior_samples"]) == 3
    assert len(metrics["latent_walk"]) == 4
    assert len(metrics["kl_history"]) == 40
    assert metrics["beta_history"][0] == 1 / 20
    assert metrics["beta_history"][-1] == 1.0
    assert_files(out, "kl.png")

    plain = str(tmp_path / "plain")
    completed = run_example("sentence_vae.py", "--quick", "--steps", "5", "--plain", "--out", plain,
                            "--compare", os.path.join(out, "metrics.json"))
    plain_metrics = read_metrics(plain)
    assert plain_metrics["plain"] is True
    assert plain_metrics["word_dropout"] == 0.0
    assert plain_metrics["beta_history"] == [1.0] * 5
    assert "other run (annealing + word dropout)" in completed.stdout

    # The plain run's checkpoint serves as the encoder of a semantic-search run.
    search = str(tmp_path / "search")
    run_example("semantic_search.py", "--out", search, "--checkpoint", os.path.join(plain, CHECKPOINT_NAME),
                "--max-queries", "40")
    search_metrics = read_metrics(search)
    assert search_metrics["queries"] == 40
    assert search_metrics["encoder"].startswith("sentence VAE (word level, latent 8, step 5)")
    assert search_metrics["steps"] == 0


def test_semantic_search_quick(tmp_path):
    out = str(tmp_path)
    completed = run_example("semantic_search.py", "--quick", "--out", out, "--query", "what does yield do")
    metrics = read_metrics(out)
    assert_loss_fell(metrics)
    assert metrics["queries"] > 100
    for name in ("encoder_recall", "bag_of_characters_recall", "random_recall"):
        assert 0.0 <= metrics[name] <= 1.0, name
    assert metrics["bag_of_characters_recall"] > metrics["random_recall"]
    assert_files(out)
    assert "'what does yield do'" in completed.stdout


def test_semantic_search_without_checkpoint_fails(tmp_path):
    completed = run_example("semantic_search.py", "--out", str(tmp_path), "--checkpoint",
                            str(tmp_path / "missing.mrp"), expect_failure=True)
    assert "checkpoint not found" in completed.stderr
    assert "Traceback" not in completed.stderr
