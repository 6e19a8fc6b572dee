"""Train a generative adversarial network (GAN) on 8x8 digits and measure its samples.

The generator maps 32-dimensional Gaussian noise through an MLP (32-256-256-64, ReLU,
sigmoid output) to an image; the discriminator is an MLP (64-256-256-1, leaky ReLU).
Default recipe: the non-saturating loss with the R1 regularizer (γ = 1) on the
discriminator, batch 64, Adam with learning rate 2e-4 and betas (0.5, 0.999) for both
networks, one discriminator step per generator step, 4000 generator steps. R1 is a
penalty on the discriminator's input gradient, so it too differentiates a gradient.
--r1 0 turns it off, and then this GAN drops digits: with seed 0 its samples covered
only 3 of the 10 classes. --loss wgan-gp trains a critic with the gradient
penalty instead (λ = 10, 5 critic steps per generator step, Adam 1e-4 with betas
(0.5, 0.9)), so every critic step runs a second derivative.

Quality: a small MLP classifier (64-256-256-10, dropout 0.3) is first trained on the
1437 training digits, each shifted at random by up to one pixel, with batch 64 and Adam
1e-3 for 3000 steps. Its test accuracy is printed. Over 1000 generated samples the
script reports the classifier's mean confidence (the mean of the largest class
probability, 0.1 to 1) and the mode coverage: how many of the 10 digit classes the
samples are classified as.

Saves samples.png (100 samples), samples_by_class.png (samples grouped by the class the
classifier gives them), the checkpoints (the classifier's in DIR/classifier) and
metrics.json into --out.
"""
import argparse
import math
import os
import sys

import numpy as np

import minireparam as mr
from minireparam import optim
from minireparam.data import BatchIterator, load_digits
from minireparam.models.classifier import DigitClassifier, random_shift, sample_quality
from minireparam.models.gan import LOSSES, DigitGAN, discriminator_step
from minireparam.models.history import MetricHistory
from minireparam.models.pictures import save_digit_grid
from minireparam.models.training import (
    NonFiniteLossError, Trainer, add_training_arguments, fill_defaults, finish_run, positive_int, run_or_exit,
)

DEFAULTS = {
    "steps": 4000, "noise_dim": 32, "hidden_size": 256, "batch_size": 64, "lr": None, "critic_steps": None,
    "penalty_weight": 10.0, "r1": 1.0, "classifier_steps": 3000, "samples": 1000, "eval_every": 1000,
}
QUICK = {"steps": 80, "hidden_size": 64, "classifier_steps": 150, "eval_every": 40}
# Per-loss settings from the two papers' recipes (DCGAN for the non-saturating loss, WGAN-GP).
LOSS_DEFAULTS = {
    "non-saturating": {"lr": 2e-4, "betas": (0.5, 0.999), "critic_steps": 1},
    "wgan-gp": {"lr": 1e-4, "betas": (0.5, 0.9), "critic_steps": 5},
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loss", choices=LOSSES, default="non-saturating",
                        help="the GAN objective (default: non-saturating)")
    parser.add_argument("--noise-dim", type=positive_int, metavar="N", help="size of the noise z (default: 32)")
    parser.add_argument("--hidden-size", type=positive_int, metavar="N",
                        help="units per hidden layer in both networks (default: 256)")
    parser.add_argument("--batch-size", type=positive_int, metavar="N",
                        help="real and generated images per step (default: 64)")
    parser.add_argument("--lr", type=float, metavar="X",
                        help="Adam learning rate of both networks (default: 2e-4, or 1e-4 for wgan-gp)")
    parser.add_argument("--critic-steps", type=positive_int, metavar="N",
                        help="discriminator steps per generator step (default: 1, or 5 for wgan-gp)")
    parser.add_argument("--penalty-weight", type=float, metavar="X",
                        help="λ, the weight of the WGAN-GP gradient penalty (default: 10)")
    parser.add_argument("--r1", type=float, metavar="X",
                        help="γ, the weight of the R1 penalty of the non-saturating loss; 0 turns it off (default: 1)")
    parser.add_argument("--classifier-steps", type=positive_int, metavar="N",
                        help="training steps of the quality classifier (default: 3000)")
    parser.add_argument("--samples", type=positive_int, metavar="N",
                        help="generated images scored by the classifier (default: 1000)")
    parser.add_argument("--eval-every", type=positive_int, metavar="N",
                        help="generator steps between quality reports (default: 1000)")
    add_training_arguments(parser, out="runs/gan_digits", checkpoint_every=1000, steps=4000, quick_steps=80)
    parser.epilog = ("Defaults above are for the full run; --quick uses 64 hidden units, 80 generator steps "
                     "and 150 classifier steps. --steps counts generator steps.")
    args = fill_defaults(parser.parse_args(argv), DEFAULTS, QUICK)
    for name, value in LOSS_DEFAULTS[args.loss].items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    return args


def train_classifier(args, digits, seed):
    """Train the quality classifier with the shared harness, in its own checkpoint folder."""
    init_generator, train_generator = mr.Generator(seed).spawn(2)
    classifier = DigitClassifier(generator=init_generator, dropout_generator=train_generator)
    optimizer = optim.Adam(classifier.parameters(), lr=1e-3)
    batches = BatchIterator(digits.train_images, digits.train_labels, batch_size=64, generator=train_generator)

    def compute_loss(step):
        images, labels = next(batches)
        return classifier.loss(random_shift(images, train_generator), labels)

    folder = os.path.join(args.out, "classifier")
    trainer = Trainer(
        classifier, optimizer, compute_loss, generator=train_generator, steps=args.classifier_steps,
        out_dir=folder, checkpoint_every=args.classifier_steps, extra_state={"batches": batches},
        progress=not args.no_progress, description="classifier",
        config={"lr": 1e-3, "batch_size": 64, "seed": args.seed},
    )
    resume = args.resume and os.path.isfile(trainer.checkpoint_path)
    result = run_or_exit(trainer, resume)
    return classifier, result


def group_by_class(images, probabilities, per_class=10):
    """Up to ``per_class`` images of each predicted class, one row per class, blank where none are left."""
    predicted = probabilities.argmax(axis=-1)
    grid = np.zeros((10, per_class, images.shape[1]), dtype=np.float64)
    for label in range(10):
        chosen = images[predicted == label][:per_class]
        grid[label, :len(chosen)] = chosen
    return grid.reshape(10 * per_class, -1)


def main(argv=None):
    args = parse_args(argv)
    try:
        digits = load_digits()
    except ImportError as error:
        raise SystemExit(f"error: {error}") from None

    # Streams: the GAN's initialization, its training draws (batches and noise), the
    # evaluation noise, and the classifier (which has its own init and training streams).
    init_generator, train_generator, eval_seed_generator, classifier_seed_generator = mr.Generator(args.seed).spawn(4)
    eval_seed = int(eval_seed_generator.integers(0, 2**31))
    classifier, classifier_result = train_classifier(args, digits, int(classifier_seed_generator.integers(0, 2**31)))
    classifier_accuracy = classifier.accuracy(digits.test_images, digits.test_labels)
    real_quality = sample_quality(classifier.probabilities(digits.test_images))
    print(f"classifier: test accuracy {classifier_accuracy:.4f}, mean confidence on the real test digits "
          f"{real_quality['mean_confidence']:.4f}")

    gan = DigitGAN(args.noise_dim, args.hidden_size, loss=args.loss, penalty_weight=args.penalty_weight,
                   r1_weight=args.r1, generator=init_generator)
    betas = LOSS_DEFAULTS[args.loss]["betas"]
    generator_optimizer = optim.Adam(gan.generator.parameters(), lr=args.lr, betas=betas)
    discriminator_optimizer = optim.Adam(gan.discriminator.parameters(), lr=args.lr, betas=betas)
    batches = BatchIterator(digits.train_images, batch_size=args.batch_size, generator=train_generator)
    history = MetricHistory()

    def compute_loss(step):
        # The critic steps come first; the harness then backpropagates and applies G's loss.
        for _ in range(args.critic_steps):
            loss, norm, figures = discriminator_step(gan, discriminator_optimizer, next(batches), train_generator)
            if not (math.isfinite(loss) and math.isfinite(norm)):
                kept = trainer.checkpoint_path if trainer.last_checkpoint_step is not None else None
                raise NonFiniteLossError(
                    f"training stopped at step {step}: the discriminator loss is {loss} and its gradient norm "
                    f"{norm}; {'the last good checkpoint ' + kept + ' is kept' if kept else 'no checkpoint yet'}. "
                    "Try a lower learning rate, or resume from the checkpoint with --resume", step, kept,
                )
        history.append(dict(figures, discriminator_loss=loss))
        return gan.generator_loss(args.batch_size, train_generator)

    def evaluate():
        # A fresh stream each time, so evaluating never moves the training one.
        quality = sample_quality(classifier.probabilities(gan.generate(args.samples, mr.Generator(eval_seed))))
        return {"mean_confidence": quality["mean_confidence"], "classes_covered": quality["classes_covered"]}

    trainer = Trainer(
        gan, generator_optimizer, compute_loss, generator=train_generator, steps=args.steps, out_dir=args.out,
        checkpoint_every=args.checkpoint_every,
        extra_state={"batches": batches, "discriminator_optimizer": discriminator_optimizer, "history": history},
        evaluate=evaluate, eval_every=args.eval_every, progress=not args.no_progress, description="GAN",
        config={"loss": args.loss, "noise_dim": args.noise_dim, "hidden_size": args.hidden_size,
                "batch_size": args.batch_size, "lr": args.lr, "critic_steps": args.critic_steps,
                "penalty_weight": args.penalty_weight, "r1": args.r1, "seed": args.seed},
    )
    result = run_or_exit(trainer, args.resume, args.stop_after)

    samples = gan.generate(args.samples, mr.Generator(eval_seed))
    probabilities = classifier.probabilities(samples)
    quality = sample_quality(probabilities)
    print(f"over {args.samples} samples: mean classifier confidence {quality['mean_confidence']:.4f}, "
          f"{quality['classes_covered']} of 10 classes covered "
          f"({quality['classes_covered_min_share']} with at least 1% of the samples)")
    print("samples per class: " + "  ".join(f"{label}:{count}" for label, count in enumerate(quality["class_counts"])))

    pictures = {"samples": os.path.join(args.out, "samples.png"),
                "samples_by_class": os.path.join(args.out, "samples_by_class.png")}
    save_digit_grid(pictures["samples"], samples[:100], columns=10, title=f"GAN samples ({args.loss} loss)")
    save_digit_grid(pictures["samples_by_class"], group_by_class(samples, probabilities), columns=10,
                    title="samples grouped by the classifier's prediction (blank: none left)",
                    row_labels=[str(label) for label in range(10)])
    print("pictures: " + ", ".join(pictures.values()))

    finish_run(args, result, {
        "loss": args.loss,
        "r1": args.r1 if args.loss == "non-saturating" else None,
        "mean_confidence": quality["mean_confidence"],
        "classes_covered": quality["classes_covered"],
        "classes_covered_min_share": quality["classes_covered_min_share"],
        "class_counts": quality["class_counts"],
        "samples": args.samples,
        "classifier_test_accuracy": classifier_accuracy,
        "classifier_steps": classifier_result.steps,
        "real_test_mean_confidence": real_quality["mean_confidence"],
        "discriminator_initial_loss": history.mean("discriminator_loss", "first"),
        "discriminator_final_loss": history.mean("discriminator_loss", "last"),
        "discriminator_loss_history": history.get("discriminator_loss"),
        "pictures": pictures,
    }, name="gan_digits")


if __name__ == "__main__":
    sys.exit(main())
