"""Train a VAE with discrete latents (Gumbel-softmax) on 8x8 digits.

The latent is 8 categorical variables of 10 classes each. Training samples them from
RelaxedOneHotCategorical at a temperature that decays from 1.0 to a floor of 0.5
(τ = max(0.5, exp(−3e-4 · step))); --hard uses the straight-through variant (one-hot
forward, relaxed backward). Encoder 64-256-256-80, decoder 80-256-256-64, ReLU, batch
128, Adam with learning rate 1e-3, 3000 steps (one to two minutes on two CPU cores).

Prints the test negative ELBO of the discrete model (one-hot samples, nats per image,
binary cross-entropy against the [0, 1] intensities). Saves samples.png and
reconstructions.png, the checkpoint and metrics.json into --out.
"""
import argparse
import os
import sys

import numpy as np

import minireparam as mr
from minireparam import optim
from minireparam.data import BatchIterator, load_digits
from minireparam.models import GumbelVAE, Trainer, temperature_schedule
from minireparam.models.pictures import save_digit_grid
from minireparam.models.training import add_training_arguments, fill_defaults, finish_run, positive_int, run_or_exit

DEFAULTS = {
    "steps": 3000, "hidden_size": 256, "variables": 8, "categories": 10, "batch_size": 128, "lr": 1e-3,
    "initial_temperature": 1.0, "min_temperature": 0.5, "anneal_rate": 3e-4, "eval_every": 500,
    "elbo_samples": 10,
}
QUICK = {"steps": 60, "hidden_size": 64, "eval_every": 30, "anneal_rate": 1e-2}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden-size", type=positive_int, metavar="N",
                        help="units in each hidden layer (default: 256)")
    parser.add_argument("--variables", type=positive_int, metavar="N",
                        help="number of categorical latent variables (default: 8)")
    parser.add_argument("--categories", type=positive_int, metavar="N",
                        help="classes per latent variable (default: 10)")
    parser.add_argument("--batch-size", type=positive_int, metavar="N", help="images per step (default: 128)")
    parser.add_argument("--lr", type=float, metavar="X", help="Adam learning rate (default: 1e-3)")
    parser.add_argument("--initial-temperature", type=float, metavar="X",
                        help="Gumbel-softmax temperature at step 0 (default: 1.0)")
    parser.add_argument("--min-temperature", type=float, metavar="X", help="the temperature's floor (default: 0.5)")
    parser.add_argument("--anneal-rate", type=float, metavar="X",
                        help="decay rate r in τ = max(floor, τ0·exp(−r·step)), per step (default: 3e-4)")
    parser.add_argument("--hard", action="store_true",
                        help="straight-through: one-hot samples forward, relaxed gradients backward")
    parser.add_argument("--eval-every", type=positive_int, metavar="N",
                        help="steps between test-ELBO reports (default: 500)")
    parser.add_argument("--elbo-samples", type=positive_int, metavar="N",
                        help="one-hot latent draws per test image for the reported ELBO (default: 10)")
    add_training_arguments(parser, out="runs/gumbel_vae_digits", checkpoint_every=1000, steps=3000, quick_steps=60)
    parser.epilog = "Defaults above are for the full run; --quick uses 64 hidden units and 60 steps."
    return fill_defaults(parser.parse_args(argv), DEFAULTS, QUICK)


def main(argv=None):
    args = parse_args(argv)
    if not 0 < args.min_temperature <= args.initial_temperature:
        raise SystemExit(f"error: need 0 < --min-temperature <= --initial-temperature, got "
                         f"{args.min_temperature} and {args.initial_temperature}")
    try:
        digits = load_digits()
    except ImportError as error:
        raise SystemExit(f"error: {error}") from None

    init_generator, train_generator, eval_seed_generator = mr.Generator(args.seed).spawn(3)
    eval_seed = int(eval_seed_generator.integers(0, 2**31))
    model = GumbelVAE(64, args.hidden_size, args.variables, args.categories, generator=init_generator)
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    batches = BatchIterator(digits.train_images, batch_size=args.batch_size, generator=train_generator)

    def temperature(step):
        return temperature_schedule(step, args.initial_temperature, args.min_temperature, args.anneal_rate)

    def compute_loss(step):
        return model.negative_elbo(next(batches), temperature(step), hard=args.hard, generator=train_generator)

    def evaluate():
        generator = mr.Generator(eval_seed)
        return {"test_negative_elbo": model.test_negative_elbo(digits.test_images, args.elbo_samples, generator)}

    trainer = Trainer(
        model, optimizer, compute_loss, generator=train_generator, steps=args.steps, out_dir=args.out,
        checkpoint_every=args.checkpoint_every, extra_state={"batches": batches}, evaluate=evaluate,
        eval_every=args.eval_every, progress=not args.no_progress, description="Gumbel VAE",
        config={
            "hidden_size": args.hidden_size, "variables": args.variables, "categories": args.categories,
            "batch_size": args.batch_size, "lr": args.lr, "initial_temperature": args.initial_temperature,
            "min_temperature": args.min_temperature, "anneal_rate": args.anneal_rate, "hard": args.hard,
            "seed": args.seed,
        },
    )
    result = run_or_exit(trainer, args.resume, args.stop_after)

    test_elbo = evaluate()["test_negative_elbo"]
    final_temperature = temperature(result.steps)
    print(f"test negative ELBO {test_elbo:.3f} nats/image with one-hot latents "
          f"({'straight-through' if args.hard else 'relaxed'} training, final temperature {final_temperature:.3f})")

    pictures = {name: os.path.join(args.out, f"{name}.png") for name in ("samples", "reconstructions")}
    save_digit_grid(pictures["samples"], model.sample_images(50, mr.Generator(eval_seed + 1)), columns=10,
                    title=f"decoded samples from the uniform prior over {args.variables}x{args.categories} classes")
    originals = digits.test_images[:10]
    save_digit_grid(pictures["reconstructions"], np.concatenate([originals, model.reconstruct(originals)]),
                    columns=10, title="test digits (top), decoded from their most likely classes (bottom)")
    print("pictures: " + ", ".join(pictures.values()))

    finish_run(args, result, {
        "test_negative_elbo": test_elbo,
        "elbo_samples": args.elbo_samples,
        "final_temperature": final_temperature,
        "straight_through": args.hard,
        "pictures": pictures,
    }, name="gumbel_vae_digits")


if __name__ == "__main__":
    sys.exit(main())
