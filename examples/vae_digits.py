"""Train a variational autoencoder with a 16-dimensional Gaussian latent on 8x8 digits.

Default recipe: encoder 64-256-256 (ReLU) to the mean and log-variance of q(z|x),
decoder 16-256-256-64 (ReLU) to Bernoulli logits, loss = summed binary cross-entropy
with logits + analytic KL to Normal(0, 1), averaged over the batch; batch 128, Adam with
learning rate 1e-3, 3000 steps (one to two minutes on two CPU cores). Images are
scikit-learn's digits scaled to [0, 1]; the first 1437 train and the last 360 test.

Prints the test negative ELBO and the importance-weighted bound with 100 samples, both
in nats per image (binary cross-entropy against the [0, 1] intensities, so they are not
log-likelihoods of binarized images). Saves reconstructions.png, samples.png and
interpolation.png, the checkpoint and metrics.json into --out.
"""
import argparse
import os
import sys

import numpy as np

import minireparam as mr
from minireparam import optim
from minireparam.data import BatchIterator, load_digits
from minireparam.models import GaussianVAE, Trainer
from minireparam.models.pictures import save_digit_grid
from minireparam.models.training import add_training_arguments, fill_defaults, finish_run, positive_int, run_or_exit

DEFAULTS = {
    "steps": 3000, "hidden_size": 256, "latent_dim": 16, "batch_size": 128, "lr": 1e-3,
    "eval_every": 500, "elbo_samples": 10, "iw_samples": 100,
}
QUICK = {"steps": 60, "hidden_size": 64, "eval_every": 30, "iw_samples": 10}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden-size", type=positive_int, metavar="N",
                        help="units in each hidden layer (default: 256)")
    parser.add_argument("--latent-dim", type=positive_int, metavar="N", help="size of the latent z (default: 16)")
    parser.add_argument("--batch-size", type=positive_int, metavar="N", help="images per step (default: 128)")
    parser.add_argument("--lr", type=float, metavar="X", help="Adam learning rate (default: 1e-3)")
    parser.add_argument("--eval-every", type=positive_int, metavar="N",
                        help="steps between test-ELBO reports (default: 500)")
    parser.add_argument("--elbo-samples", type=positive_int, metavar="N",
                        help="latent draws per test image for the reported ELBO (default: 10)")
    parser.add_argument("--iw-samples", type=positive_int, metavar="N",
                        help="K, latent draws per test image for the importance-weighted bound (default: 100)")
    add_training_arguments(parser, out="runs/vae_digits", checkpoint_every=1000, steps=3000, quick_steps=60)
    parser.epilog = "Defaults above are for the full run; --quick uses 64 hidden units and 60 steps."
    return fill_defaults(parser.parse_args(argv), DEFAULTS, QUICK)


def first_of_each_label(labels, chosen):
    """Return the index of the first image of each label in ``chosen``."""
    return [int(np.flatnonzero(labels == label)[0]) for label in chosen]


def save_pictures(model, digits, out, sample_generator):
    """Write the three PNGs and return their paths."""
    paths = {name: os.path.join(out, f"{name}.png") for name in ("reconstructions", "samples", "interpolation")}

    originals = digits.test_images[:10]
    save_digit_grid(paths["reconstructions"], np.concatenate([originals, model.reconstruct(originals)]),
                    columns=10, title="test digits (top) and their reconstructions at z = mean (bottom)")

    save_digit_grid(paths["samples"], model.sample_images(50, sample_generator), columns=10,
                    title="decoded samples from the prior Normal(0, 1)")

    start, end = first_of_each_label(digits.test_labels, [3, 8])
    path_3_to_8 = model.interpolate(digits.test_images[start], digits.test_images[end], steps=10)
    start, end = first_of_each_label(digits.test_labels, [1, 7])
    path_1_to_7 = model.interpolate(digits.test_images[start], digits.test_images[end], steps=10)
    save_digit_grid(paths["interpolation"], np.concatenate([path_3_to_8, path_1_to_7]), columns=10,
                    title="straight lines between posterior means: 3 to 8, 1 to 7", row_labels=["3→8", "1→7"])
    return paths


def main(argv=None):
    args = parse_args(argv)
    try:
        digits = load_digits()
    except ImportError as error:
        raise SystemExit(f"error: {error}") from None

    init_generator, train_generator, eval_seed_generator = mr.Generator(args.seed).spawn(3)
    eval_seed = int(eval_seed_generator.integers(0, 2**31))
    model = GaussianVAE(64, args.hidden_size, args.latent_dim, generator=init_generator)
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    batches = BatchIterator(digits.train_images, batch_size=args.batch_size, generator=train_generator)

    def compute_loss(step):
        return model.negative_elbo(next(batches), generator=train_generator)

    def evaluate():
        # A fresh evaluation stream every time, so evaluating never moves the training one.
        generator = mr.Generator(eval_seed)
        return {"test_negative_elbo": model.test_negative_elbo(digits.test_images, args.elbo_samples, generator)}

    trainer = Trainer(
        model, optimizer, compute_loss, generator=train_generator, steps=args.steps, out_dir=args.out,
        checkpoint_every=args.checkpoint_every, extra_state={"batches": batches}, evaluate=evaluate,
        eval_every=args.eval_every, progress=not args.no_progress, description="VAE",
        config={"hidden_size": args.hidden_size, "latent_dim": args.latent_dim, "batch_size": args.batch_size,
                "lr": args.lr, "seed": args.seed},
    )
    result = run_or_exit(trainer, args.resume, args.stop_after)

    test_elbo = evaluate()["test_negative_elbo"]
    iw_bound = float(model.importance_weighted_bound(digits.test_images, args.iw_samples,
                                                     mr.Generator(eval_seed + 1)).mean())
    print(f"test negative ELBO {test_elbo:.3f} nats/image ({args.elbo_samples} samples per image)")
    print(f"test importance-weighted bound, K={args.iw_samples}: {iw_bound:.3f} nats/image")

    pictures = save_pictures(model, digits, args.out, mr.Generator(eval_seed + 2))
    print("pictures: " + ", ".join(pictures.values()))
    finish_run(args, result, {
        "test_negative_elbo": test_elbo,
        "test_negative_iw_bound": iw_bound,
        "iw_samples": args.iw_samples,
        "elbo_samples": args.elbo_samples,
        "pictures": pictures,
    }, name="vae_digits")


if __name__ == "__main__":
    sys.exit(main())
