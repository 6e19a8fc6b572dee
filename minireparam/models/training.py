"""The training loop every example shares: progress, checkpoints, exact resume, NaN guard.

A run trains ``model`` with ``optimizer`` for a fixed number of steps. Every
``checkpoint_every`` steps and at the end it saves one checkpoint file in the output
folder with ``minireparam.save``. The file contains the model, the optimizer, the
training Generator (data order and dropout), the default Generator, any extra stateful
objects (such as a batch iterator), the loss history, the step and the seconds spent. ``resume=True`` loads that
file and continues, and because every random draw comes from the saved Generator states,
a resumed run reaches bit for bit the parameters of a run that was never interrupted.

The loop checks each loss and gradient norm. When one is NaN or infinite it stops before
the optimizer step, leaves the last checkpoint as it is (it was written from finite
values) and raises ``NonFiniteLossError`` naming the step.

This module drives a console program, so unlike the rest of the library it reports
progress: a tqdm bar and the lines passed to ``log`` (``tqdm.write`` by default).
"""
import argparse
import json
import math
import os
import tempfile
import time

import numpy as np

from .. import allocator
from ..autograd.grad_mode import no_grad
from ..errors import ParameterValueError
from ..random import default_generator

CHECKPOINT_NAME = "checkpoint.mrp"
CHECKPOINT_KIND = "minireparam.models.training checkpoint"
CHECKPOINT_VERSION = 1


class NonFiniteLossError(RuntimeError):
    """Training stopped because the loss or the gradient norm became NaN or infinite.

    Attributes:
        step (int): the step whose loss or gradient was not finite.
        checkpoint_path (str | None): the last good checkpoint, or None if none was written.
    """

    def __init__(self, message, step, checkpoint_path):
        super().__init__(message)
        self.step = step
        self.checkpoint_path = checkpoint_path


class ResumeError(RuntimeError):
    """A checkpoint that cannot be resumed: missing, of another kind, or from other settings."""


# -- command-line plumbing ------------------------------------------------------------------


def add_training_arguments(parser, out, checkpoint_every, steps, quick_steps):
    """Add the options every example shares: --steps, --seed, --out, --metrics, --quick, ...

    ``--steps`` defaults to None here, so an example can tell a user's value apart from
    its default (``steps``) and its ``--quick`` setting (see ``fill_defaults``).
    """
    parser.add_argument(
        "--steps", type=positive_int, default=None, metavar="N",
        help=f"optimizer steps (default: {steps}, or {quick_steps} with --quick)",
    )
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="seed of every random stream (default: 0)")
    parser.add_argument(
        "--out", default=out, metavar="DIR",
        help=f"folder for the checkpoint, metrics and pictures (default: {out})",
    )
    parser.add_argument(
        "--metrics", default=None, metavar="PATH",
        help="metrics JSON file (default: DIR/metrics.json inside --out)",
    )
    parser.add_argument(
        "--checkpoint-every", type=int, default=checkpoint_every, metavar="N",
        help=f"save a checkpoint every N steps and at the end (default: {checkpoint_every})",
    )
    parser.add_argument(
        "--resume", action="store_true",
        help="continue from the checkpoint in --out instead of starting over",
    )
    parser.add_argument(
        "--quick", action="store_true",
        help="a small model and few steps, to check the script end to end in seconds",
    )
    parser.add_argument(
        "--stop-after", type=positive_int, default=None, metavar="N",
        help="train at most N steps in this run, then save the checkpoint and finish; "
             "--resume continues on the same schedule (default: no limit)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def fill_defaults(args, defaults, quick_defaults):
    """Set every option the user left at None from ``quick_defaults`` (with --quick) or ``defaults``."""
    chosen = quick_defaults if args.quick else defaults
    merged = dict(defaults)
    merged.update(chosen)
    for name, value in merged.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    if args.metrics is None:
        args.metrics = os.path.join(args.out, "metrics.json")
    return args


def positive_int(text):
    """Parse an integer >= 1 (an argparse type whose error names the bad value)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def non_negative_float(text):
    """Parse a finite float >= 0, such as a sampling temperature (an argparse type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {value}")
    return value


def write_metrics(path, metrics):
    """Write ``metrics`` (JSON-serializable) to ``path`` atomically, creating its folder."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".metrics-", suffix=".json", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(metrics, stream, indent=2, sort_keys=True)
            stream.write("\n")
        os.chmod(temporary, 0o666 & ~_current_umask())  # mkstemp makes it owner-only
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def _current_umask():
    """Return the process's file-creation mask (reading it requires setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def format_seconds(seconds):
    """Format a duration as ``1 min 23.4 s`` or ``12.3 s``."""
    minutes, rest = divmod(seconds, 60.0)
    return f"{int(minutes)} min {rest:.1f} s" if minutes else f"{rest:.1f} s"


# -- the loop ---------------------------------------------------------------------------------


class TrainingResult:
    """The outcome of a run: the per-step losses (resumed steps included) and the time.

    Attributes:
        losses (list of float): the loss of every step from step 1 on.
        steps (int): the number of steps done in total.
        start_step (int): the step the run started after (0, or the resumed checkpoint's).
        seconds (float): training seconds over all runs that led here (resumes add up).
        seconds_this_run (float): training seconds of this run only.
        checkpoint_path (str): the final checkpoint.
    """

    def __init__(self, losses, start_step, seconds, seconds_this_run, checkpoint_path):
        self.losses = losses
        self.steps = len(losses)
        self.start_step = start_step
        self.seconds = seconds
        self.seconds_this_run = seconds_this_run
        self.checkpoint_path = checkpoint_path

    def smoothed_loss(self, which, window=20):
        """Mean loss of the first or last ``window`` steps (``which`` is "first" or "last")."""
        if not self.losses:
            return float("nan")
        values = self.losses[:window] if which == "first" else self.losses[-window:]
        return float(np.mean(values))

    def loss_summary(self):
        """Return the loss figures each example puts in its metrics file."""
        return {
            "initial_loss": self.smoothed_loss("first"),
            "final_loss": self.smoothed_loss("last"),
            "loss_history": [float(value) for value in self.losses],
        }


class Trainer:
    """Run ``steps`` optimizer steps of ``compute_loss``, with checkpoints and exact resume.

    Args:
        model (nn.Module): the model; its ``state_dict`` goes into the checkpoint.
        optimizer: an ``minireparam.optim`` optimizer over the model's parameters.
        compute_loss (callable): ``compute_loss(step) -> Tensor`` for steps 1, 2, ...;
            it draws its batch and noise from ``generator`` and returns a scalar loss.
        generator (Generator): the training stream (data order, dropout, noise).
        steps (int): the total number of steps (a resumed run counts the earlier ones).
        out_dir (str): the folder of the checkpoint file.
        checkpoint_every (int): steps between checkpoints (one is also written at the end).
        clip_grad_norm (float | None): clip the global gradient norm to this value.
        scheduler: an ``optim.lr_scheduler`` scheduler stepped after every optimizer step
            (saved in the checkpoint), or None.
        extra_state (dict | None): name -> object with ``state_dict``/``load_state_dict``
            (a BatchIterator, a scheduler) saved and restored with the rest.
        config (dict | None): the settings that define the run (sizes, learning rate,
            seed). They are stored, and resuming with a different value raises
            ``ResumeError`` (``steps`` may change, to train longer).
        evaluate (callable | None): ``evaluate() -> dict`` of figures, called every
            ``eval_every`` steps and logged. It must not draw from ``generator`` (give it
            its own, freshly seeded each call), so evaluating never changes training.
        eval_every (int | None): steps between evaluations (None: never during training).
        progress (bool): show a tqdm progress bar with the current loss.
        log (callable | None): receives one line per evaluation and event (default:
            ``tqdm.write``); None silences them.
        description (str): the progress bar's label.
        reuse_freed_memory (bool): call ``minireparam.allocator.reuse_freed_memory()``
            when training starts, so steps reuse the memory earlier steps freed (a fifth
            of a transformer step otherwise goes to mapping fresh pages). Process-wide.
    """

    def __init__(self, model, optimizer, compute_loss, *, generator, steps, out_dir, checkpoint_every,
                 clip_grad_norm=None, scheduler=None, extra_state=None, config=None, evaluate=None, eval_every=None,
                 progress=True, log="default", description="train", reuse_freed_memory=True):
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        if checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
        self.model = model
        self.optimizer = optimizer
        self.compute_loss = compute_loss
        self.generator = generator
        self.steps = steps
        self.out_dir = out_dir
        self.checkpoint_every = checkpoint_every
        self.clip_grad_norm = clip_grad_norm
        self.scheduler = scheduler
        self.extra_state = dict(extra_state or {})
        if scheduler is not None:
            self.extra_state["scheduler"] = scheduler
        self.config = _plain_config(config or {})
        self.evaluate = evaluate
        self.eval_every = eval_every
        self.progress = progress
        self.log = _default_log if log == "default" else log
        self.description = description
        self.reuse_freed_memory = reuse_freed_memory
        self.parameters = [p for p in model.parameters() if p.requires_grad]
        self.losses = []
        self.step = 0
        self.seconds_before = 0.0
        self.last_checkpoint_step = None

    @property
    def checkpoint_path(self):
        return os.path.join(self.out_dir, CHECKPOINT_NAME)

    # -- checkpoints ------------------------------------------------------------------------

    def checkpoint_state(self, seconds):
        """Everything an exact resume needs, as a tree that ``minireparam.save`` writes."""
        return {
            "kind": CHECKPOINT_KIND,
            "version": CHECKPOINT_VERSION,
            "step": self.step,
            "seconds": float(seconds),
            "config": self.config,
            "losses": np.asarray(self.losses, dtype=np.float64),
            "model": dict(self.model.state_dict()),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.state_dict(),
            "default_generator": default_generator().state_dict(),
            "extra": {name: item.state_dict() for name, item in self.extra_state.items()},
        }

    def save_checkpoint(self, seconds):
        from ..serialization import save

        os.makedirs(self.out_dir, exist_ok=True)
        save(self.checkpoint_state(seconds), self.checkpoint_path)
        self.last_checkpoint_step = self.step

    def load_checkpoint(self):
        """Restore the run from the checkpoint in ``out_dir`` (raises ResumeError if unusable)."""
        from ..serialization import CheckpointError, load

        path = self.checkpoint_path
        if not os.path.isfile(path):
            raise ResumeError(f"cannot resume: no checkpoint at {path}; run without --resume to start a new run")
        try:
            state = load(path)
        except CheckpointError as error:
            raise ResumeError(f"cannot resume: {error}") from None
        if not isinstance(state, dict) or state.get("kind") != CHECKPOINT_KIND:
            raise ResumeError(f"cannot resume: {path} is not a training checkpoint written by this harness")
        if state["version"] > CHECKPOINT_VERSION:
            raise ResumeError(
                f"cannot resume: {path} has checkpoint version {state['version']}, newer than this "
                f"minireparam's {CHECKPOINT_VERSION}; upgrade minireparam"
            )
        self._check_config(state["config"], path)
        if int(state["step"]) > self.steps:
            raise ResumeError(
                f"cannot resume: {path} is at step {state['step']}, beyond the requested {self.steps} steps; "
                f"ask for at least {state['step']} steps"
            )

        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.load_state_dict(state["generator"])
        default_generator().load_state_dict(state["default_generator"])
        for name, item in self.extra_state.items():
            if name not in state["extra"]:
                raise ResumeError(f"cannot resume: {path} lacks the state of {name!r}")
            item.load_state_dict(state["extra"][name])

        self.step = int(state["step"])
        self.losses = [float(value) for value in np.asarray(state["losses"]).reshape(-1)]
        self.seconds_before = float(state["seconds"])
        self.last_checkpoint_step = self.step

    def _check_config(self, saved, path):
        differences = []
        for key in sorted(set(saved) | set(self.config)):
            if key == "steps":
                continue
            if saved.get(key) != self.config.get(key):
                differences.append(f"{key}: checkpoint {saved.get(key)!r}, now {self.config.get(key)!r}")
        if differences:
            raise ResumeError(
                f"cannot resume from {path}: it was trained with other settings ("
                + "; ".join(differences) + "); rerun with the checkpoint's settings or use another --out"
            )

    # -- one step ---------------------------------------------------------------------------

    def _train_step(self, step):
        """Run one step; return the loss, or raise NonFiniteLossError before any update."""
        self.optimizer.zero_grad()
        try:
            loss = self.compute_loss(step)
        except ParameterValueError as error:
            if not error.non_finite:
                raise
            # The model's outputs overflowed before a loss existed, as when a VAE's
            # scale = exp(...) reaches inf. That is the same divergence as a NaN loss.
            self._stop(step, f"a distribution parameter became NaN or infinite ({error})")
        value = float(loss.item())
        if not math.isfinite(value):
            self._stop(step, f"the loss is {value}")
        loss.backward()

        norm = self._gradient_norm()
        if not math.isfinite(norm):
            self._stop(step, f"the gradient norm is {norm} (the loss was {value:.6g})")
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        return value

    def _gradient_norm(self):
        """Return the global L2 norm of the gradients, clipping them to ``clip_grad_norm`` if set."""
        if self.clip_grad_norm is not None:
            from ..nn.utils import clip_grad_norm_

            return float(clip_grad_norm_(self.parameters, self.clip_grad_norm))
        total = 0.0
        for p in self.parameters:
            if p.grad is not None:
                total += float(np.dot(p.grad.reshape(-1), p.grad.reshape(-1)))
        return math.sqrt(total)

    def _stop(self, step, what):
        if self.last_checkpoint_step is None:
            kept = "no checkpoint had been written yet"
            path = None
        else:
            kept = f"the last good checkpoint {self.checkpoint_path} (step {self.last_checkpoint_step}) is kept"
            path = self.checkpoint_path
        raise NonFiniteLossError(
            f"training stopped at step {step}: {what}; {kept}. Lower the learning rate or clip "
            "the gradient norm, and start a new run (resuming with other settings is rejected)",
            step, path,
        )

    # -- the run ----------------------------------------------------------------------------

    def run(self, resume=False, stop_after=None):
        """Train up to ``steps`` steps, from scratch or from the checkpoint; return a TrainingResult.

        Args:
            resume (bool): continue from the checkpoint in ``out_dir``.
            stop_after (int | None): train at most this many steps in this call, then
                save a checkpoint and return, as an interrupted run would (the run goes
                on later with ``resume=True``, on the schedule of all ``steps``).
        """
        if stop_after is not None and stop_after < 1:
            raise ValueError(f"stop_after must be >= 1 or None, got {stop_after}")
        if self.reuse_freed_memory:
            allocator.reuse_freed_memory()
        if resume:
            self.load_checkpoint()
            self._log(f"resumed from {self.checkpoint_path} at step {self.step}")
        start_step = self.step
        last_step = self.steps if stop_after is None else min(self.steps, start_step + stop_after)
        self.model.train()
        bar = self._progress_bar(start_step)
        started = time.perf_counter()
        try:
            for step in range(start_step + 1, last_step + 1):
                self.losses.append(self._train_step(step))
                self.step = step
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{self.losses[-1]:.4f}", refresh=False)
                if self.eval_every and step % self.eval_every == 0 and step < last_step:
                    self._evaluate_and_log(step)
                if step % self.checkpoint_every == 0 and step < last_step:
                    self.save_checkpoint(self.seconds_before + time.perf_counter() - started)
        finally:
            if bar is not None:
                bar.close()
        seconds_this_run = time.perf_counter() - started
        seconds = self.seconds_before + seconds_this_run
        if self.step > start_step or not os.path.isfile(self.checkpoint_path):
            self.save_checkpoint(seconds)
        self.model.eval()
        return TrainingResult(list(self.losses), start_step, seconds, seconds_this_run, self.checkpoint_path)

    def _evaluate_and_log(self, step):
        self.model.eval()
        with no_grad():
            figures = self.evaluate()
        self.model.train()
        text = "  ".join(f"{name} {value:.4f}" for name, value in figures.items())
        self._log(f"step {step:6d}  loss {self.losses[-1]:.4f}  {text}")

    def _progress_bar(self, start_step):
        if not self.progress:
            return None
        from tqdm import tqdm

        return tqdm(total=self.steps, initial=start_step, desc=self.description, unit="step",
                    mininterval=0.5, dynamic_ncols=True)

    def _log(self, line):
        if self.log is not None:
            self.log(line)


def _default_log(line):
    from tqdm import tqdm

    tqdm.write(line)


def _plain_config(config):
    """Keep the JSON-like values of ``config`` (so they survive save/load and compare equal)."""
    plain = {}
    for key, value in config.items():
        if isinstance(value, (bool, int, float, str)) or value is None:
            plain[str(key)] = value
        else:
            raise TypeError(f"config[{key!r}] must be a bool, int, float, str or None, got {type(value).__name__}")
    return plain


# -- what every example does around the loop ----------------------------------------------------


def run_or_exit(trainer, resume, stop_after=None):
    """Run ``trainer``; turn a non-finite loss or an unusable checkpoint into exit status 1.

    The message (naming the step, or what is wrong with the checkpoint) goes to stderr.
    """
    try:
        return trainer.run(resume=resume, stop_after=stop_after)
    except (NonFiniteLossError, ResumeError) as error:
        raise SystemExit(f"error: {error}") from None


def kernel_info():
    """Return the kernel backend and thread count of this process, for the metrics file."""
    from .. import backend

    info = {"backend": getattr(backend.current(), "name", "unknown")}
    try:
        from .. import kernels

        details = kernels.info()
    except (ImportError, AttributeError):
        return info
    for key in ("threads", "num_threads", "openmp", "variant"):
        if key in details:
            info[key] = details[key]
    return info


def finish_run(args, result, figures, name, log=print):
    """Write the metrics JSON and print where it went and the time taken.

    Args:
        args (argparse.Namespace): the parsed options (seed, metrics path, out folder).
        result (TrainingResult): the finished run.
        figures (dict): the example's own numbers (bits per character, test bounds...).
        name (str): the example's name, stored in the file.
        log (callable): where the two lines go.

    Returns:
        dict: the metrics as written.
    """
    metrics = {
        "example": name,
        "seed": args.seed,
        "steps": result.steps,
        "resumed_from_step": result.start_step,
        "seconds": round(result.seconds, 3),
        "seconds_this_run": round(result.seconds_this_run, 3),
        "quick": bool(args.quick),
        "checkpoint": result.checkpoint_path,
        "kernels": kernel_info(),
    }
    metrics.update(figures)
    metrics.update(result.loss_summary())
    write_metrics(args.metrics, metrics)
    log(f"metrics written to {args.metrics}")
    log(f"time taken: {format_seconds(result.seconds_this_run)} this run, {format_seconds(result.seconds)} in total")
    return metrics
