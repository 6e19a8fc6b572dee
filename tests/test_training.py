"""Tests of the shared training harness: exact resume, the NaN guard, metrics and options."""
import argparse
import json
import os

import numpy as np
import pytest

import minireparam as mr
from minireparam import nn, optim
from minireparam.data import BatchIterator
from minireparam.models.training import (
    CHECKPOINT_NAME, NonFiniteLossError, ResumeError, Trainer, add_training_arguments, fill_defaults, finish_run,
    non_negative_float, positive_int, run_or_exit, write_metrics,
)


class Interrupted(Exception):
    """Stands in for a process killed in the middle of a run."""


class Run:
    """A small regression run with dropout and shuffled batches, built the same way each time."""

    def __init__(self, out_dir, steps, seed=0, lr=1e-2, fail_at=None, poison_at=None, lr_schedule=False):
        data_generator = np.random.default_rng(123)
        inputs = data_generator.normal(size=(40, 4)).astype(np.float32)
        targets = (inputs @ np.array([1.0, -2.0, 0.5, 3.0], dtype=np.float32))[:, None]

        init_generator, self.train_generator = mr.Generator(seed).spawn(2)
        self.model = nn.Sequential(
            nn.Linear(4, 16, generator=init_generator), nn.ReLU(),
            nn.Dropout(0.3, generator=self.train_generator), nn.Linear(16, 1, generator=init_generator),
        )
        self.optimizer = optim.Adam(self.model.parameters(), lr=lr)
        scheduler = optim.lr_scheduler.StepLR(self.optimizer, step_size=4, gamma=0.5) if lr_schedule else None
        self.batches = BatchIterator(inputs, targets, batch_size=8, generator=self.train_generator)
        self.fail_at = fail_at
        self.poison_at = poison_at
        self.trainer = Trainer(
            self.model, self.optimizer, self.compute_loss, generator=self.train_generator, steps=steps,
            out_dir=str(out_dir), checkpoint_every=5, scheduler=scheduler, extra_state={"batches": self.batches},
            config={"lr": lr, "seed": seed}, progress=False, log=None,
        )

    def compute_loss(self, step):
        if step == self.fail_at:
            raise Interrupted(f"simulated interruption at step {step}")
        x, y = next(self.batches)
        loss = nn.functional.mse_loss(self.model(mr.tensor(x)), mr.tensor(y))
        if step == self.poison_at:
            loss = loss * float("nan")
        return loss

    def parameters(self):
        return {name: p.data.copy() for name, p in self.model.named_parameters()}


def assert_same_parameters(expected, got):
    assert expected.keys() == got.keys()
    for name in expected:
        np.testing.assert_array_equal(expected[name], got[name], err_msg=f"parameter {name} differs bitwise")


def interrupted_then_resumed(out_dir, steps, fail_at, **kwargs):
    first = Run(out_dir, steps, fail_at=fail_at, **kwargs)
    with pytest.raises(Interrupted):
        first.trainer.run()
    # A new process would build everything again, from the same seed.
    second = Run(out_dir, steps, **kwargs)
    result = second.trainer.run(resume=True)
    return second, result


# -- exact resume -----------------------------------------------------------------------------


def test_resume_matches_uninterrupted_bitwise(tmp_path):
    reference = Run(tmp_path / "uninterrupted", steps=13)
    reference_result = reference.trainer.run()

    resumed, result = interrupted_then_resumed(tmp_path / "resumed", steps=13, fail_at=8)
    assert result.start_step == 5, "the run must resume from the step-5 checkpoint"
    assert_same_parameters(reference.parameters(), resumed.parameters())
    assert result.losses == reference_result.losses, "loss histories differ"


def test_resume_restores_optimizer_and_scheduler(tmp_path):
    reference = Run(tmp_path / "uninterrupted", steps=12, lr_schedule=True)
    reference.trainer.run()
    resumed, _ = interrupted_then_resumed(tmp_path / "resumed", steps=12, fail_at=7, lr_schedule=True)
    assert_same_parameters(reference.parameters(), resumed.parameters())
    assert resumed.optimizer.param_groups[0]["lr"] == reference.optimizer.param_groups[0]["lr"]


def test_resume_to_more_steps_matches_longer_run(tmp_path):
    reference = Run(tmp_path / "long", steps=14)
    reference.trainer.run()

    Run(tmp_path / "extended", steps=9).trainer.run()
    extended = Run(tmp_path / "extended", steps=14)
    result = extended.trainer.run(resume=True)
    assert result.start_step == 9
    assert result.steps == 14
    assert_same_parameters(reference.parameters(), extended.parameters())


def test_stop_after_then_resume_matches_scheduled_run(tmp_path):
    reference = Run(tmp_path / "uninterrupted", steps=12, lr_schedule=True)
    reference.trainer.run()

    first = Run(tmp_path / "chunks", steps=12, lr_schedule=True)
    partial = first.trainer.run(stop_after=7)
    assert partial.steps == 7
    resumed = Run(tmp_path / "chunks", steps=12, lr_schedule=True)
    result = resumed.trainer.run(resume=True)
    assert result.start_step == 7
    assert_same_parameters(reference.parameters(), resumed.parameters())


def test_resume_finished_run_changes_nothing(tmp_path):
    finished = Run(tmp_path, steps=6)
    finished.trainer.run()
    again = Run(tmp_path, steps=6)
    result = again.trainer.run(resume=True)
    assert result.start_step == 6
    assert_same_parameters(finished.parameters(), again.parameters())


def test_resume_beyond_requested_steps_raises(tmp_path):
    Run(tmp_path, steps=6).trainer.run()
    with pytest.raises(ResumeError, match="at step 6, beyond the requested 4 steps"):
        Run(tmp_path, steps=4).trainer.run(resume=True)


def test_resume_without_checkpoint_raises(tmp_path):
    with pytest.raises(ResumeError, match="no checkpoint at"):
        Run(tmp_path, steps=3).trainer.run(resume=True)


def test_resume_with_other_settings_raises(tmp_path):
    Run(tmp_path, steps=5).trainer.run()
    with pytest.raises(ResumeError, match=r"lr: checkpoint 0.01, now 0.02"):
        Run(tmp_path, steps=5, lr=2e-2).trainer.run(resume=True)


def test_resume_rejects_foreign_file(tmp_path):
    mr.save({"weights": np.zeros(3)}, str(tmp_path / CHECKPOINT_NAME))
    with pytest.raises(ResumeError, match="not a training checkpoint"):
        Run(tmp_path, steps=3).trainer.run(resume=True)


# -- NaN guard --------------------------------------------------------------------------------


def test_nan_loss_stops_and_keeps_checkpoint(tmp_path):
    clean = Run(tmp_path / "clean", steps=5)
    clean.trainer.run()

    poisoned = Run(tmp_path / "poisoned", steps=12, poison_at=8)
    checkpoint = tmp_path / "poisoned" / CHECKPOINT_NAME
    with pytest.raises(NonFiniteLossError, match="step 8: the loss is nan") as caught:
        poisoned.trainer.run()
    assert caught.value.step == 8
    assert caught.value.checkpoint_path == str(checkpoint)
    assert "(step 5) is kept" in str(caught.value)

    state = mr.load(str(checkpoint))
    assert state["step"] == 5, "the checkpoint must still be the last good one"
    for name, array in state["model"].items():
        np.testing.assert_array_equal(array, clean.parameters()[name], err_msg=f"{name} in the kept checkpoint")


def test_nan_before_first_checkpoint_says_none(tmp_path):
    poisoned = Run(tmp_path, steps=12, poison_at=2)
    with pytest.raises(NonFiniteLossError, match="no checkpoint had been written yet") as caught:
        poisoned.trainer.run()
    assert caught.value.checkpoint_path is None
    assert not (tmp_path / CHECKPOINT_NAME).exists()


def test_infinite_distribution_parameter_stops_like_a_nan_loss(tmp_path):
    # A diverging VAE fails inside Normal(...), because its scale overflowed to inf before
    # any loss existed. The guard reports this as a divergence at that step.
    run = Run(tmp_path, steps=12)

    def overflowing_loss(step):
        scale = mr.tensor(np.float32(np.inf) if step == 7 else np.float32(1.0))
        return run.compute_loss(step) + mr.distributions.Normal(0.0, scale).entropy()

    run.trainer.compute_loss = overflowing_loss
    with pytest.raises(NonFiniteLossError, match="step 7: a distribution parameter became NaN or infinite") as caught:
        run.trainer.run()
    assert "(step 5) is kept" in str(caught.value)
    assert "lower the learning rate" in str(caught.value)


def test_finite_invalid_distribution_parameter_is_not_called_divergence(tmp_path):
    # A finite value outside the support is a wrong argument: the error passes through.
    run = Run(tmp_path, steps=3)
    run.trainer.compute_loss = lambda step: mr.distributions.Normal(0.0, mr.tensor(np.float32(-1.0))).entropy()
    with pytest.raises(ValueError, match="must be > 0, got -1.0. Pass valid values"):
        run.trainer.run()


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_infinite_gradient_stops_before_update(tmp_path):
    run = Run(tmp_path, steps=3)
    weight = run.model[0].weight
    # sqrt at 0 has an infinite derivative, so the loss is finite and the gradient is not.
    run.compute_loss = lambda step: mr.sum(mr.sqrt(weight * 0.0))
    run.trainer.compute_loss = run.compute_loss
    before = run.parameters()
    with pytest.raises(NonFiniteLossError, match="step 1: the gradient norm is nan"):
        run.trainer.run()
    assert_same_parameters(before, run.parameters())


def test_run_or_exit_turns_stop_into_exit(tmp_path):
    poisoned = Run(tmp_path, steps=4, poison_at=1)
    with pytest.raises(SystemExit, match="error: training stopped at step 1"):
        run_or_exit(poisoned.trainer, resume=False)


# -- metrics and options ----------------------------------------------------------------------


def test_metrics_json_written(tmp_path):
    run = Run(tmp_path / "out", steps=6)
    result = run.trainer.run()
    args = argparse.Namespace(seed=0, quick=True, metrics=str(tmp_path / "deep" / "folder" / "metrics.json"))
    finish_run(args, result, {"figure": 1.5}, name="unit", log=lambda line: None)

    with open(args.metrics, encoding="utf-8") as stream:
        metrics = json.load(stream)
    assert metrics["example"] == "unit"
    assert metrics["figure"] == 1.5
    assert metrics["steps"] == 6
    assert metrics["seed"] == 0
    assert metrics["seconds"] >= 0.0
    assert len(metrics["loss_history"]) == 6
    assert metrics["kernels"]["backend"] in ("c", "numpy")


def test_write_metrics_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "metrics.json"
    write_metrics(str(path), {"a": 1})
    write_metrics(str(path), {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert os.listdir(tmp_path) == ["metrics.json"]


def test_write_metrics_file_mode_follows_umask(tmp_path):
    # mkstemp creates owner-only files; the metrics file gets the mode any new file would.
    previous = os.umask(0o022)
    try:
        write_metrics(str(tmp_path / "metrics.json"), {"a": 1})
    finally:
        os.umask(previous)
    assert (tmp_path / "metrics.json").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("parse, text, message", [
    (positive_int, "abc", "must be a positive integer, got 'abc'"),
    (positive_int, "0", "must be a positive integer, got 0"),
    (non_negative_float, "-1", "must be a finite number >= 0, got -1.0"),
    (non_negative_float, "inf", "must be a finite number >= 0, got inf"),
    (non_negative_float, "x", "must be a number >= 0, got 'x'"),
])
def test_argument_types_reject_bad_values_before_training(parse, text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        parse(text)


def test_fill_defaults_quick_and_explicit():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hidden-size", type=int)
    add_training_arguments(parser, out="runs/unit", checkpoint_every=100, steps=1000, quick_steps=10)
    defaults = {"steps": 1000, "hidden_size": 256}
    quick = {"steps": 10, "hidden_size": 8}

    full = fill_defaults(parser.parse_args([]), defaults, quick)
    assert (full.steps, full.hidden_size) == (1000, 256)
    assert full.metrics == os.path.join("runs/unit", "metrics.json")

    fast = fill_defaults(parser.parse_args(["--quick", "--steps", "3"]), defaults, quick)
    assert (fast.steps, fast.hidden_size) == (3, 8), "an explicit --steps must win over --quick"


def test_trainer_argument_errors(tmp_path):
    run = Run(tmp_path, steps=2)
    with pytest.raises(ValueError, match="checkpoint_every must be >= 1"):
        Trainer(run.model, run.optimizer, run.compute_loss, generator=run.train_generator, steps=2,
                out_dir=str(tmp_path), checkpoint_every=0)
    with pytest.raises(TypeError, match=r"config\['shape'\]"):
        Trainer(run.model, run.optimizer, run.compute_loss, generator=run.train_generator, steps=2,
                out_dir=str(tmp_path), checkpoint_every=1, config={"shape": (1, 2)})
