"""A generative adversarial network for 8x8 digits, with two losses.

The generator G maps Gaussian noise z ~ Normal(0, I) through an MLP to 64 pixel
intensities in (0, 1). The noise is the reparameterized input: a sample is a
deterministic, differentiable function of z, so the generator's gradient flows from the
discriminator's score back through the sample into G's weights. The discriminator (or
critic) D maps an image to one real-valued score.

Two objectives are available:

* ``"non-saturating"`` (the default): D minimizes the binary cross-entropy of its logits,
  with real images labelled 1 and generated ones 0. G minimizes −log σ(D(G(z))), which
  gives strong gradients exactly when D rejects G's samples, where the original minimax
  form log(1 − σ(D(G(z)))) saturates. D's loss also carries the R1 regularizer
  (γ/2)·E[‖∇ₓ D(x)‖²] on real images, γ = 1 by default. Without it this small GAN
  drops digits (mode collapse): most of its samples fall into a few classes.
* ``"wgan-gp"``: D is a critic that minimizes E[D(fake)] − E[D(real)] plus the gradient
  penalty λ·E[(‖∇ₓ̂ D(x̂)‖₂ − 1)²] on random points x̂ between real and generated
  images; G minimizes −E[D(G(z))]. The penalty contains a gradient, so training the
  critic differentiates through ``minireparam.grad(..., create_graph=True)``: a second
  derivative.

Both penalties are gradients of D with respect to its input, recorded with
``create_graph=True`` so the optimizer can differentiate them again. Every op on that
path (linear layers, leaky ReLU as ``where``, sums, square roots) has a VJP built from
differentiable ops.
"""
import numpy as np

from .. import nn, ops
from ..autograd.engine import grad
from ..autograd.grad_mode import enable_grad, no_grad
from ..nn import functional as F
from ..ops._util import to_tensor
from ..random import resolve

LOSSES = ("non-saturating", "wgan-gp")


def leaky_relu(x, negative_slope=0.2):
    """Return x where x > 0 and slope·x elsewhere, built on ``where`` so it can be differentiated twice."""
    return ops.where(x.data > 0, x, x * negative_slope)


class LeakyReLU(nn.Module):
    def __init__(self, negative_slope=0.2):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, input):
        return leaky_relu(input, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class GeneratorMLP(nn.Module):
    """G: noise (batch, noise_dim) -> images (batch, 64) in (0, 1); two ReLU hidden layers, sigmoid output."""

    def __init__(self, noise_dim=32, hidden_size=256, data_dim=64, generator=None):
        super().__init__()
        self.network = nn.Sequential(
            nn.Linear(noise_dim, hidden_size, generator=generator), nn.ReLU(),
            nn.Linear(hidden_size, hidden_size, generator=generator), nn.ReLU(),
            nn.Linear(hidden_size, data_dim, generator=generator), nn.Sigmoid(),
        )

    def forward(self, noise):
        return self.network(noise)


class DiscriminatorMLP(nn.Module):
    """D: images (batch, 64) -> scores (batch,); two leaky-ReLU hidden layers, a linear output."""

    def __init__(self, hidden_size=256, data_dim=64, generator=None):
        super().__init__()
        self.network = nn.Sequential(
            nn.Linear(data_dim, hidden_size, generator=generator), LeakyReLU(0.2),
            nn.Linear(hidden_size, hidden_size, generator=generator), LeakyReLU(0.2),
            nn.Linear(hidden_size, 1, generator=generator),
        )

    def forward(self, images):
        return ops.squeeze(self.network(to_tensor(images)), -1)


def input_gradient_norms(critic, points):
    """‖∇ₓ critic(x)‖₂ at every row x of ``points``, recorded so it can be differentiated again.

    Args:
        critic (callable): maps (batch, d) images to (batch,) scores.
        points: (batch, d) images; they are detached, so no gradient flows into them.

    Returns:
        Tensor: (batch,) the norms, a function of the critic's parameters.
    """
    points = to_tensor(points).detach().requires_grad_()
    # The norms need a backward pass even inside no_grad, so recording is switched on
    # here. Under no_grad the caller still gets only the values.
    with enable_grad():
        (gradients,) = grad(ops.sum(critic(points)), [points], create_graph=True)
    # The tiny constant keeps the square root differentiable when a gradient is exactly zero.
    return ops.sqrt(ops.sum(gradients * gradients, axis=-1) + 1e-12)


def r1_penalty(critic, real):
    """R1 regularizer E[‖∇ₓ critic(x)‖²] on real images, differentiable in the critic's parameters.

    Penalizing the discriminator's gradient on the data keeps it from growing steep
    around the real images, which in this setup stops the non-saturating GAN from
    collapsing onto a few digits (see ``examples/gan_digits.py``).
    """
    norms = input_gradient_norms(critic, real)
    return ops.mean(norms * norms)


def gradient_penalty(critic, real, fake, generator=None):
    """WGAN-GP's penalty E[(‖∇ₓ̂ critic(x̂)‖₂ − 1)²] at x̂ = ε·real + (1 − ε)·fake, ε ~ U(0, 1) per image.

    The gradient is taken with ``create_graph=True``, so the returned penalty can be
    differentiated again with respect to the critic's parameters.

    Args:
        critic (callable): maps (batch, d) images to (batch,) scores.
        real, fake: (batch, d) images; ``fake`` should be detached from the generator.
        generator (Generator | None): the stream of ε.

    Returns:
        Tensor: the scalar penalty (multiply it by λ in the loss).
    """
    real, fake = to_tensor(real), to_tensor(fake)
    if real.shape != fake.shape:
        raise ValueError(f"gradient_penalty: real {real.shape} and fake {fake.shape} images must have the same shape")
    epsilon = resolve(generator).uniform(0.0, 1.0, size=(real.shape[0], 1), dtype=real.dtype)
    mixed = epsilon * real.data + (1.0 - epsilon) * fake.data
    return ops.mean((input_gradient_norms(critic, mixed) - 1.0) ** 2)


class DigitGAN(nn.Module):
    """The generator and discriminator of a digit GAN, with both losses.

    Args:
        noise_dim (int): size of z (default 32).
        hidden_size (int): units per hidden layer in G and D (default 256).
        loss (str): ``"non-saturating"`` or ``"wgan-gp"``.
        penalty_weight (float): λ of the gradient penalty (WGAN-GP only, default 10).
        r1_weight (float): γ of the R1 regularizer (non-saturating loss only, default 1; 0 turns it off).
        data_dim (int): pixels per image (default 64, the 8x8 digits).
        generator (Generator | None): the initialization stream.

    Parameters are named ``generator.*`` and ``discriminator.*``, so one optimizer per
    network can take ``gan.generator.parameters()`` and ``gan.discriminator.parameters()``.
    """

    def __init__(self, noise_dim=32, hidden_size=256, loss="non-saturating", penalty_weight=10.0, r1_weight=1.0,
                 data_dim=64, generator=None):
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"DigitGAN: loss must be one of {LOSSES}, got {loss!r}")
        if penalty_weight < 0 or r1_weight < 0:
            raise ValueError(f"DigitGAN: penalty weights must be >= 0, got penalty_weight {penalty_weight} and "
                             f"r1_weight {r1_weight}")
        self.noise_dim = noise_dim
        self.loss_kind = loss
        self.penalty_weight = penalty_weight
        self.r1_weight = r1_weight
        self.generator = GeneratorMLP(noise_dim, hidden_size, data_dim, generator=generator)
        self.discriminator = DiscriminatorMLP(hidden_size, data_dim, generator=generator)

    def sample_noise(self, count, generator=None):
        """z ~ Normal(0, I), shape (count, noise_dim)."""
        dtype = self.generator.network[0].weight.dtype
        return to_tensor(resolve(generator).normal(size=(count, self.noise_dim), dtype=dtype))

    def generate(self, count, generator=None):
        """Images G(z) for ``count`` fresh noise draws, as a (count, data_dim) ndarray without a graph."""
        with no_grad():
            return self.generator(self.sample_noise(count, generator)).data

    def discriminator_loss(self, real, generator=None):
        """D's loss on a batch of real images and as many generated ones (G gets no gradient).

        Returns:
            (loss, figures): the scalar loss Tensor and a dict of floats for logging
            (``real_score`` and ``fake_score`` are D's mean outputs, plus ``penalty`` for
            WGAN-GP or ``r1`` for the regularized non-saturating loss).
        """
        real = to_tensor(np.asarray(real))
        with no_grad():
            fake = self.generator(self.sample_noise(real.shape[0], generator))
        real_scores = self.discriminator(real)
        fake_scores = self.discriminator(fake)
        figures = {"real_score": float(real_scores.data.mean()), "fake_score": float(fake_scores.data.mean())}
        if self.loss_kind == "non-saturating":
            ones = np.ones(real_scores.shape, dtype=real_scores.dtype)
            loss = (F.binary_cross_entropy_with_logits(real_scores, ones)
                    + F.binary_cross_entropy_with_logits(fake_scores, np.zeros_like(ones)))
            if self.r1_weight > 0:
                penalty = r1_penalty(self.discriminator, real)
                figures["r1"] = float(penalty.item())
                loss = loss + 0.5 * self.r1_weight * penalty
            return loss, figures
        penalty = gradient_penalty(self.discriminator, real, fake, generator)
        figures["penalty"] = float(penalty.item())
        loss = ops.mean(fake_scores) - ops.mean(real_scores) + self.penalty_weight * penalty
        return loss, figures

    def generator_loss(self, batch_size, generator=None):
        """G's loss on ``batch_size`` fresh samples: −log σ(D(G(z))) or −D(G(z)), averaged."""
        scores = self.discriminator(self.generator(self.sample_noise(batch_size, generator)))
        if self.loss_kind == "non-saturating":
            return F.binary_cross_entropy_with_logits(scores, np.ones(scores.shape, dtype=scores.dtype))
        return -ops.mean(scores)


def discriminator_step(gan, optimizer, real, generator=None):
    """Take one optimizer step on D's loss for a batch of real images.

    The step is skipped when the loss or the gradient norm is NaN or infinite, so D's
    weights stay finite. The caller sees this in the returned values and can stop.

    Args:
        gan (DigitGAN): the networks.
        optimizer: an optimizer over ``gan.discriminator.parameters()``.
        real (ndarray): (batch, 64) real images.
        generator (Generator | None): the stream of the noise (and of ε for WGAN-GP).

    Returns:
        (loss, gradient_norm, figures): floats, and the dict from ``discriminator_loss``.
    """
    optimizer.zero_grad()
    loss, figures = gan.discriminator_loss(real, generator)
    value = float(loss.item())
    if not np.isfinite(value):
        return value, float("nan"), figures
    loss.backward()
    squares = [float(np.sum(np.square(p.grad, dtype=np.float64)))
               for p in gan.discriminator.parameters() if p.grad is not None]
    norm = float(np.sqrt(sum(squares)))
    if np.isfinite(norm):
        optimizer.step()
    return value, norm, figures

