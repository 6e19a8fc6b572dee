"""Measure the bias and variance of gradient estimators against an exact gradient.

Two VAE-like objectives E_q[f(z)] for one image, with a linear decoder and a Gaussian
likelihood, so the exact gradient is known in closed form:

* a Gaussian latent (q = Normal(μ, σ), 16 dimensions): reparameterization, and the
  score function (REINFORCE) with no baseline, a moving-average baseline, and the
  leave-one-out baseline;
* a categorical latent (q = OneHotCategorical over 10 classes): the same three score-
  function variants, Gumbel-softmax (relaxed, temperature 0.5) and straight-through.

For every estimator and number of samples n (1, 2, 4, ..., 128 by default) it draws
--repeats independent estimates and reports the total variance of one estimate (the
sum over all parameter elements) and the bias ‖mean − exact‖. Unbiased estimators show
a variance falling as 1/n and a bias within noise; the relaxed ones keep a bias that
no n removes. Prints both tables, and writes estimator_variance.png and metrics.json
into --out. Runs in about ten seconds on two CPU cores.
"""
import argparse
import os
import sys
import time

import numpy as np
from tqdm import tqdm

import minireparam as mr
from minireparam.estimators import (
    MovingAverageBaseline, measure_estimator, relaxed_gradient, reparameterization_gradient,
    score_function_gradient,
)
from minireparam.models.latent_objectives import CategoricalLatentObjective, GaussianLatentObjective
from minireparam.models.pictures import save_line_panels
from minireparam.models.training import format_seconds, positive_int, write_metrics

# Moving-average baselines see this many batches before measuring, so they start warm.
BASELINE_WARMUP = 20
QUICK_BASELINE_WARMUP = 5


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=positive_int, nargs="+", metavar="N",
                        help="numbers of samples per estimate (default: 1 2 4 8 16 32 64 128)")
    parser.add_argument("--repeats", type=positive_int, metavar="N",
                        help="independent estimates per estimator and n, at least 2 (default: 200)")
    parser.add_argument("--temperature", type=float, default=0.5, metavar="X",
                        help="temperature of the relaxed estimators (default: 0.5)")
    parser.add_argument("--seed", type=int, default=0, metavar="N",
                        help="seed of the objectives and every draw (default: 0)")
    parser.add_argument("--out", default="runs/estimator_variance", metavar="DIR",
                        help="folder for the plot and metrics (default: runs/estimator_variance)")
    parser.add_argument("--metrics", metavar="PATH", help="metrics JSON file (default: DIR/metrics.json)")
    parser.add_argument("--quick", action="store_true", help="n in 1 and 8 with 20 repeats, to check the script")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    if args.samples is None:
        args.samples = [1, 8] if args.quick else [1, 2, 4, 8, 16, 32, 64, 128]
    if args.repeats is None:
        args.repeats = 20 if args.quick else 200
    args.warmup = QUICK_BASELINE_WARMUP if args.quick else BASELINE_WARMUP
    if args.repeats < 2:
        parser.error(f"--repeats must be at least 2 to estimate a variance, got {args.repeats}")
    if args.metrics is None:
        args.metrics = os.path.join(args.out, "metrics.json")
    return args


def score_function(objective, baseline):
    """Return estimate(n, generator, moving_average) for the score function with the named baseline."""
    def estimate(n, generator, moving_average):
        chosen = {"none": None, "leave-one-out": "leave_one_out", "moving average": moving_average}[baseline]
        return score_function_gradient(objective.distribution, objective.parameters, objective.function,
                                       num_samples=n, baseline=chosen, generator=generator)
    return estimate


def estimators_for(objective, temperature):
    """Return the estimators that apply to ``objective``, by display name."""
    estimators = {}
    if isinstance(objective, GaussianLatentObjective):
        estimators["reparameterization"] = lambda n, generator, moving_average: reparameterization_gradient(
            objective.distribution, objective.parameters, objective.function, num_samples=n, generator=generator)
    for baseline in ("none", "moving average", "leave-one-out"):
        estimators[f"score function, {baseline}"] = score_function(objective, baseline)
    if isinstance(objective, CategoricalLatentObjective):
        for straight_through, label in ((False, "Gumbel-softmax"), (True, "straight-through")):
            estimators[f"{label} τ={temperature}"] = (
                lambda n, generator, moving_average, hard=straight_through: relaxed_gradient(
                    objective.distribution, objective.parameters, objective.function, temperature,
                    num_samples=n, straight_through=hard, generator=generator)
            )
    return estimators


def measure(objective, estimate, n, repeats, warmup, generator):
    """Return (total variance, ‖bias‖, max bias z-score) of ``estimate`` with n samples."""
    baseline = MovingAverageBaseline(decay=0.9)
    warmup_stream, measure_stream = generator.spawn(2)
    for stream in warmup_stream.spawn(warmup):
        estimate(n, stream, baseline)
    report = measure_estimator(lambda stream: estimate(n, stream, baseline), objective.exact_gradient(),
                               repeats=repeats, generator=measure_stream)
    bias_norm = float(np.sqrt(sum(np.sum(b ** 2) for b in report.bias)))
    z_score = float(max(np.max(z) for z in report.bias_z_scores()))
    return {"variance": report.total_variance(), "bias": bias_norm, "bias_z": z_score}


def print_table(title, figures, samples, key):
    print(f"\n{title}")
    print(f"{'estimator':34s}" + "".join(f"{'n=' + str(n):>11s}" for n in samples))
    for name, by_n in figures.items():
        cells = [f"{by_n[str(n)][key]:11.3g}" if by_n[str(n)] else f"{'—':>11s}" for n in samples]
        print(f"{name:34s}" + "".join(cells))


def plot(path, results, samples, temperature):
    panels = []
    for objective_name, figures in results.items():
        lines = []
        for name, by_n in figures.items():
            xs = [n for n in samples if by_n[str(n)]]
            lines.append({"x": xs, "y": [by_n[str(n)]["variance"] for n in xs], "label": f"{name}: variance"})
            if "τ=" in name:
                lines.append({"x": xs, "y": [by_n[str(n)]["bias"] ** 2 for n in xs], "style": "--",
                              "label": f"{name}: bias²"})
        panels.append((objective_name, lines))
    save_line_panels(path, panels, xlabel="samples per estimate n",
                     ylabel="total variance of one estimate (solid), bias² (dashed)",
                     title=f"gradient estimators against the exact gradient (relaxed at τ={temperature})")


def main(argv=None):
    args = parse_args(argv)
    started = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    objectives = [GaussianLatentObjective(rng=rng), CategoricalLatentObjective(rng=rng)]
    root = mr.Generator(args.seed)

    jobs = []
    for objective, objective_stream in zip(objectives, root.spawn(len(objectives))):
        estimators = estimators_for(objective, args.temperature)
        for (name, estimate), stream in zip(estimators.items(), objective_stream.spawn(len(estimators))):
            for n, n_stream in zip(args.samples, stream.spawn(len(args.samples))):
                jobs.append((objective, name, estimate, n, n_stream))

    results = {objective.name: {} for objective in objectives}
    for objective, name, estimate, n, stream in tqdm(jobs, desc="estimators", unit="config",
                                                     disable=args.no_progress):
        skip = name.endswith("leave-one-out") and n < 2
        figures = None if skip else measure(objective, estimate, n, args.repeats, args.warmup, stream)
        results[objective.name].setdefault(name, {})[str(n)] = figures

    for objective in objectives:
        print_table(f"{objective.name}: total variance of one estimate ({args.repeats} repeats; "
                    "the leave-one-out baseline needs n >= 2)", results[objective.name], args.samples, "variance")
        print_table(f"{objective.name}: bias ‖mean − exact‖ (noise level about √(variance / repeats))",
                    results[objective.name], args.samples, "bias")

    picture = os.path.join(args.out, "estimator_variance.png")
    plot(picture, results, args.samples, args.temperature)
    seconds = time.perf_counter() - started
    write_metrics(args.metrics, {
        "example": "estimator_variance", "seed": args.seed, "repeats": args.repeats, "samples": args.samples,
        "temperature": args.temperature, "seconds": round(seconds, 3), "quick": args.quick,
        "results": results, "pictures": {"estimator_variance": picture},
        "exact_gradient_norms": {o.name: float(np.sqrt(sum(np.sum(g ** 2) for g in o.exact_gradient())))
                                 for o in objectives},
    })
    print(f"\npicture: {picture}\nmetrics written to {args.metrics}\ntime taken: {format_seconds(seconds)}")


if __name__ == "__main__":
    sys.exit(main())
