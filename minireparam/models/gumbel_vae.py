"""A variational autoencoder with discrete latents, trained through Gumbel-softmax samples.

The latent is ``latent_variables`` categorical variables of ``categories`` classes each
(default 8 x 10). The encoder gives their logits. During training a latent is a sample
of RelaxedOneHotCategorical (Gumbel-softmax): softmax((logits + Gumbel noise) / τ),
a point inside the simplex that is differentiable in the logits. As the temperature τ
falls the samples approach one-hot vectors, and the gradient grows noisier. With
``hard=True`` the forward pass uses the one-hot argmax and the backward pass the relaxed
sample (the straight-through estimator).

The loss per image is the binary cross-entropy of the decoded logits (summed over
pixels) plus the analytic KL between the encoder's categorical distributions and the
uniform prior, KL = Σ q log q + log K per variable. The test bound decodes true one-hot
samples, so it is the ELBO of the discrete model itself.
"""
import math

import numpy as np

from .. import nn
from .. import ops
from ..autograd.grad_mode import no_grad
from ..distributions import OneHotCategorical, RelaxedOneHotCategorical
from ..nn import functional as F
from ..ops._util import to_tensor
from ..random import resolve


def temperature_schedule(step, initial=1.0, minimum=0.5, rate=3e-4):
    """Return the Gumbel-softmax temperature at ``step``: max(minimum, initial · exp(−rate · step)).

    The exponential decay with a floor is the schedule of Jang, Gu and Poole (2017),
    "Categorical Reparameterization with Gumbel-Softmax".
    """
    return max(minimum, initial * math.exp(-rate * step))


def _mlp(sizes, generator):
    """Linear layers of the given sizes with a ReLU after each one."""
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(n_in, n_out, generator=generator), nn.ReLU()]
    return nn.Sequential(*layers)


class GumbelVAE(nn.Module):
    """Encoder 64-256-256 (ReLU) to N·K logits, decoder N·K-256-256-64 to Bernoulli logits.

    Args:
        data_dim (int): pixels per image (default 64).
        hidden_size (int): width of the hidden layers (default 256).
        latent_variables (int): number N of categorical variables (default 8).
        categories (int): classes K per variable (default 10).
        generator (Generator | None): the initialization stream.

    Shapes:
        x: (batch, data_dim) in [0, 1]; logits and z: (batch, N, K).
    """

    def __init__(self, data_dim=64, hidden_size=256, latent_variables=8, categories=10, generator=None):
        super().__init__()
        self.data_dim = data_dim
        self.latent_variables = latent_variables
        self.categories = categories
        latent_size = latent_variables * categories
        self.encoder = nn.Sequential(
            _mlp([data_dim, hidden_size, hidden_size], generator),
            nn.Linear(hidden_size, latent_size, generator=generator),
        )
        self.decoder = nn.Sequential(
            _mlp([latent_size, hidden_size, hidden_size], generator),
            nn.Linear(hidden_size, data_dim, generator=generator),
        )

    def encode(self, x):
        """Return the normalized logits log q(z|x) of every variable, shape (batch, N, K)."""
        logits = self.encoder(to_tensor(x)).reshape(-1, self.latent_variables, self.categories)
        return ops.log_softmax(logits, axis=-1)

    def decode(self, z):
        """Return the pixel logits for one-hot or relaxed latents z of shape (..., N, K)."""
        flat = z.reshape(*z.shape[:-2], self.latent_variables * self.categories)
        return self.decoder(flat)

    def kl_to_uniform(self, log_q):
        """KL(q ‖ uniform) summed over the variables: Σ q (log q + log K), shape (batch,)."""
        q = ops.exp(log_q)
        return ops.sum(q * (log_q + math.log(self.categories)), axis=(-2, -1))

    def negative_elbo(self, x, temperature, hard=False, generator=None):
        """Compute the training loss in nats per image (batch mean) with relaxed latents at ``temperature``."""
        x = to_tensor(np.asarray(x))
        log_q = self.encode(x)
        posterior = RelaxedOneHotCategorical(temperature, logits=log_q, hard=hard)
        z = posterior.rsample(generator=generator)
        reconstruction = F.binary_cross_entropy_with_logits(self.decode(z), x, reduction="sum")
        kl = ops.sum(self.kl_to_uniform(log_q))
        return (reconstruction + kl) / x.shape[0]

    def test_negative_elbo(self, x, samples=10, generator=None):
        """−ELBO of the discrete model in nats per image: one-hot samples, ``samples`` per image."""
        x_tensor = to_tensor(np.asarray(x))
        with no_grad():
            log_q = self.encode(x_tensor)
            z = OneHotCategorical(logits=log_q).sample((samples,), generator=generator)
            logits = self.decode(z)
            reconstruction = ops.sum(
                F.binary_cross_entropy_with_logits(logits, ops.broadcast_to(x_tensor, logits.shape), reduction="none"),
                axis=-1,
            )
            kl = self.kl_to_uniform(log_q)
        return float(np.mean(reconstruction.data.astype(np.float64).mean(axis=0) + kl.data))

    def reconstruct(self, x):
        """Decode each image's most likely latent (argmax per variable); return pixel probabilities."""
        with no_grad():
            log_q = self.encode(to_tensor(np.asarray(x))).data
            one_hot = np.eye(self.categories, dtype=log_q.dtype)[log_q.argmax(axis=-1)]
            return ops.sigmoid(self.decode(to_tensor(one_hot))).data

    def sample_images(self, count, generator=None):
        """Decode ``count`` latents drawn from the uniform prior; return pixel probabilities."""
        classes = resolve(generator).integers(0, self.categories, size=(count, self.latent_variables))
        one_hot = np.eye(self.categories, dtype=self.decoder[1].weight.dtype)[classes]
        with no_grad():
            return ops.sigmoid(self.decode(to_tensor(one_hot))).data
