"""The Gaussian VAE recipe of examples/vae_digits.py in PyTorch: the quality reference.

The data are minireparam.data's digits in [0, 1] (first 1437 train, last 360 test),
batched in the same order by minireparam's BatchIterator on the same Generator stream.
The model is the same: encoder 64-256-256 to μ and log σ² of size 16, decoder
16-256-256-64 to Bernoulli logits, ReLU. So is the loss (summed binary cross-entropy with
logits + analytic KL, averaged over the batch), with Adam 1e-3, batch 128 and 3000 steps.
The latent noise and the initial weights come from torch.manual_seed (--same-init copies
minireparam's initial weights in instead).

Prints and writes (--metrics) the test negative ELBO (10 latent draws per image) and
the importance-weighted bound with K = 100, both in nats per image.
Needs PyTorch (`pip install torch==2.13.0`, the CPU build).
"""
import argparse
import json
import math
import os
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

import minireparam as mr
from minireparam.data import BatchIterator, load_digits


class TorchGaussianVAE(nn.Module):
    def __init__(self, data_dim=64, hidden_size=256, latent_dim=16):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Linear(data_dim, hidden_size), nn.ReLU(), nn.Linear(hidden_size, hidden_size), nn.ReLU(),
        )
        self.to_mean = nn.Linear(hidden_size, latent_dim)
        self.to_logvar = nn.Linear(hidden_size, latent_dim)
        self.decoder = nn.Sequential(
            nn.Sequential(
                nn.Linear(latent_dim, hidden_size), nn.ReLU(), nn.Linear(hidden_size, hidden_size), nn.ReLU(),
            ),
            nn.Linear(hidden_size, data_dim),
        )

    def encode(self, x):
        features = self.encoder(x)
        return self.to_mean(features), self.to_logvar(features)

    def negative_elbo(self, x):
        mean, logvar = self.encode(x)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        reconstruction = F.binary_cross_entropy_with_logits(self.decoder(z), x, reduction="sum")
        kl = -0.5 * torch.sum(1.0 + logvar - mean.pow(2) - logvar.exp())
        return (reconstruction + kl) / x.shape[0]

    def test_negative_elbo(self, x, samples):
        mean, logvar = self.encode(x)
        std = torch.exp(0.5 * logvar)
        z = mean + std * torch.randn((samples,) + mean.shape)
        logits = self.decoder(z)
        reconstruction = F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)
        kl = -0.5 * torch.sum(1.0 + logvar - mean.pow(2) - logvar.exp(), dim=-1)
        return (reconstruction.mean(0) + kl).mean().item()

    def negative_iw_bound(self, x, samples):
        mean, logvar = self.encode(x)
        std = torch.exp(0.5 * logvar)
        z = mean + std * torch.randn((samples,) + mean.shape)
        logits = self.decoder(z)
        log_likelihood = -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)
        log_prior = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
        log_posterior = torch.distributions.Normal(mean, std).log_prob(z).sum(-1)
        log_weights = (log_likelihood + log_prior - log_posterior).double()
        return -(torch.logsumexp(log_weights, dim=0) - math.log(samples))


def copy_minireparam_init(model, seed_generator, args):
    """Load the initial weights minireparam's GaussianVAE draws for this seed (parameter names match)."""
    from minireparam.models import GaussianVAE

    reference = GaussianVAE(64, args.hidden_size, args.latent_dim, generator=seed_generator)
    model.load_state_dict({name: torch.from_numpy(np.array(array)) for name, array in reference.state_dict().items()})


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3000, help="optimizer steps (default: 3000)")
    parser.add_argument("--hidden-size", type=int, default=256, help="units per hidden layer (default: 256)")
    parser.add_argument("--latent-dim", type=int, default=16, help="size of z (default: 16)")
    parser.add_argument("--batch-size", type=int, default=128, help="images per step (default: 128)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: 1e-3)")
    parser.add_argument("--elbo-samples", type=int, default=10,
                        help="draws per test image for the ELBO (default: 10)")
    parser.add_argument("--iw-samples", type=int, default=100,
                        help="K for the importance-weighted bound (default: 100)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the batch order and torch (default: 0)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    parser.add_argument("--same-init", action="store_true", help="start from minireparam's initial weights")
    parser.add_argument("--metrics", default="runs/torch_vae_digits/metrics.json", metavar="PATH",
                        help="metrics JSON file (default: runs/torch_vae_digits/metrics.json)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    digits = load_digits()
    # The same streams as examples/vae_digits.py: initialization, then training (batch order).
    init_generator, train_generator, _eval_seed_generator = mr.Generator(args.seed).spawn(3)
    batches = BatchIterator(digits.train_images, batch_size=args.batch_size, generator=train_generator)

    torch.manual_seed(args.seed)
    model = TorchGaussianVAE(64, args.hidden_size, args.latent_dim)
    if args.same_init:
        copy_minireparam_init(model, init_generator, args)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    started = time.perf_counter()
    for step in range(1, args.steps + 1):
        optimizer.zero_grad()
        loss = model.negative_elbo(torch.from_numpy(next(batches)))
        loss.backward()
        optimizer.step()
        if step % 500 == 0 or step == 1:
            print(f"step {step:5d}  loss {loss.item():.3f}  {time.perf_counter() - started:.1f} s", flush=True)
    seconds = time.perf_counter() - started

    test_images = torch.from_numpy(digits.test_images)
    with torch.no_grad():
        test_elbo = model.test_negative_elbo(test_images, args.elbo_samples)
        iw_bound = model.negative_iw_bound(test_images, args.iw_samples).mean().item()
    metrics = {
        "framework": f"torch {torch.__version__}",
        "threads": torch.get_num_threads(),
        "seed": args.seed,
        "steps": args.steps,
        "same_init": args.same_init,
        "seconds": round(seconds, 3),
        "test_negative_elbo": test_elbo,
        "test_negative_iw_bound": iw_bound,
        "iw_samples": args.iw_samples,
        "elbo_samples": args.elbo_samples,
    }
    print(json.dumps(metrics, indent=2))
    os.makedirs(os.path.dirname(os.path.abspath(args.metrics)), exist_ok=True)
    with open(args.metrics, "w", encoding="utf-8") as stream:
        json.dump(metrics, stream, indent=2)


if __name__ == "__main__":
    main()
