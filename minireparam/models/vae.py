"""A variational autoencoder with a Gaussian latent for 8x8 digit images.

The encoder maps an image x (64 pixels in [0, 1]) to the mean and log-variance of
q(z|x) = Normal(μ, σ) over 16 latent dimensions. A latent is drawn with the
reparameterization z = μ + σ·ε, ε ~ Normal(0, 1), so gradients reach μ and σ through
the sample. The decoder maps z to one Bernoulli logit per pixel.

Training minimizes the negative evidence lower bound (ELBO) per image,

    −ELBO(x) = −log p(x|z) + KL(q(z|x) ‖ p(z)),    p(z) = Normal(0, 1),

where −log p(x|z) is the binary cross-entropy of the logits against the pixel
intensities summed over pixels and the KL is analytic. Both are in nats per image.
"""

import numpy as np

from .. import nn
from .. import ops
from ..autograd.grad_mode import no_grad
from ..distributions import Normal, kl_divergence
from ..nn import functional as F
from ..ops._util import to_tensor


def _mlp(sizes, generator):
    """Linear layers of the given sizes with a ReLU after each one."""
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(n_in, n_out, generator=generator), nn.ReLU()]
    return nn.Sequential(*layers)


class GaussianVAE(nn.Module):
    """Encoder 64-256-256 (ReLU) to μ and log σ², decoder 16-256-256-64 to Bernoulli logits.

    Args:
        data_dim (int): pixels per image (default 64).
        hidden_size (int): width of the two hidden layers on each side (default 256).
        latent_dim (int): size of z (default 16).
        generator (Generator | None): the initialization stream.

    Shapes:
        x: (batch, data_dim) floats in [0, 1]; z: (..., latent_dim).
    """

    def __init__(self, data_dim=64, hidden_size=256, latent_dim=16, generator=None):
        super().__init__()
        self.data_dim = data_dim
        self.latent_dim = latent_dim
        self.encoder = _mlp([data_dim, hidden_size, hidden_size], generator)
        self.to_mean = nn.Linear(hidden_size, latent_dim, generator=generator)
        self.to_logvar = nn.Linear(hidden_size, latent_dim, generator=generator)
        self.decoder = nn.Sequential(
            _mlp([latent_dim, hidden_size, hidden_size], generator),
            nn.Linear(hidden_size, data_dim, generator=generator),
        )

    def encode(self, x):
        """Return q(z|x) as a Normal with batch shape (batch, latent_dim)."""
        features = self.encoder(to_tensor(x))
        mean = self.to_mean(features)
        logvar = self.to_logvar(features)
        return Normal(mean, ops.exp(0.5 * logvar))

    def decode(self, z):
        """Return the Bernoulli logits of every pixel, shape (..., data_dim)."""
        return self.decoder(z)

    def prior(self):
        """p(z) = Normal(0, 1) in every latent dimension."""
        zeros = np.zeros(self.latent_dim, dtype=self.to_mean.weight.dtype)
        return Normal(to_tensor(zeros), to_tensor(zeros + 1.0))

    def negative_elbo(self, x, generator=None):
        """Compute the training loss: −ELBO in nats per image, averaged over the batch (one z per image)."""
        x = to_tensor(np.asarray(x))
        q = self.encode(x)
        z = q.rsample(generator=generator)
        reconstruction = F.binary_cross_entropy_with_logits(self.decode(z), x, reduction="sum")
        kl = ops.sum(kl_divergence(q, self.prior()))
        return (reconstruction + kl) / x.shape[0]

    def importance_weighted_bound(self, x, samples=100, generator=None, batch_size=128):
        """Estimate −log p(x) per image with the importance-weighted bound over ``samples`` draws.

        log p(x) >= log (1/K) Σₖ p(x|zₖ) p(zₖ) / q(zₖ|x) with zₖ ~ q(z|x). The bound
        tightens as K grows and equals the ELBO at K = 1.

        Returns:
            ndarray of float64, shape (batch,): the negative bound in nats per image.
        """
        x = np.asarray(x)
        results = []
        with no_grad():
            for start in range(0, len(x), batch_size):
                results.append(self._negative_iw_bound(x[start:start + batch_size], samples, generator))
        return np.concatenate(results)

    def _negative_iw_bound(self, x, samples, generator):
        x_tensor = to_tensor(x)
        q = self.encode(x_tensor)
        z = q.sample((samples,), generator=generator)                      # (K, batch, latent)
        logits = self.decode(z)                                             # (K, batch, data)
        log_likelihood = -ops.sum(
            F.binary_cross_entropy_with_logits(logits, ops.broadcast_to(x_tensor, logits.shape), reduction="none"),
            axis=-1,
        )
        log_prior = ops.sum(self.prior().log_prob(z), axis=-1)
        log_posterior = ops.sum(q.log_prob(z), axis=-1)
        log_weights = (log_likelihood + log_prior - log_posterior).data.astype(np.float64)
        # log-mean-exp over the K samples, shifted by the maximum so exp never overflows.
        shift = log_weights.max(axis=0)
        log_mean = shift + np.log(np.mean(np.exp(log_weights - shift), axis=0))
        return -log_mean

    def test_negative_elbo(self, x, samples=10, generator=None):
        """−ELBO in nats per image over all of ``x``, averaging ``samples`` draws of z per image."""
        x_tensor = to_tensor(np.asarray(x))
        with no_grad():
            q = self.encode(x_tensor)
            z = q.sample((samples,), generator=generator)
            logits = self.decode(z)
            reconstruction = ops.sum(
                F.binary_cross_entropy_with_logits(logits, ops.broadcast_to(x_tensor, logits.shape), reduction="none"),
                axis=-1,
            )
            kl = ops.sum(kl_divergence(q, self.prior()), axis=-1)
        return float(np.mean(reconstruction.data.astype(np.float64).mean(axis=0) + kl.data))

    def reconstruct(self, x):
        """Return the decoder's pixel probabilities at z = μ (the posterior mean)."""
        with no_grad():
            return ops.sigmoid(self.decode(self.encode(to_tensor(np.asarray(x))).mean)).data

    def sample_images(self, count, generator=None):
        """Decode ``count`` draws from the prior; return pixel probabilities (count, data_dim)."""
        with no_grad():
            z = self.prior().sample((count,), generator=generator)
            return ops.sigmoid(self.decode(z)).data

    def interpolate(self, x_start, x_end, steps=10):
        """Decode evenly spaced points on the line between two images' posterior means.

        Returns:
            ndarray (steps, data_dim): pixel probabilities from ``x_start`` to ``x_end``.
        """
        with no_grad():
            means = self.encode(to_tensor(np.stack([x_start, x_end]))).mean.data
            weights = np.linspace(0.0, 1.0, steps, dtype=means.dtype)[:, None]
            path = (1.0 - weights) * means[0] + weights * means[1]
            return ops.sigmoid(self.decode(to_tensor(path))).data
