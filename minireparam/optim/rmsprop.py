"""RMSprop, with PyTorch's update rule."""
import numpy as np

from .optimizer import Optimizer


class RMSprop(Optimizer):
    """RMSprop: divide the gradient by a running root mean square of recent gradients.

    With g the gradient (negated when ``maximize``):
        g ← g + weight_decay·p
        s ← α·s + (1 − α)·g²
        centered: a ← α·a + (1 − α)·g and d = √(s − a²) + eps; otherwise d = √s + eps
        momentum > 0: b ← momentum·b + g/d and p ← p − lr·b; otherwise p ← p − lr·g/d

    State per parameter: "step", "square_avg", and "grad_avg" (centered) and
    "momentum_buffer" (momentum > 0), PyTorch's names.
    """

    state_names = ("square_avg", "grad_avg", "momentum_buffer")

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                 maximize=False):
        if lr < 0.0 or eps < 0.0 or momentum < 0.0 or weight_decay < 0.0 or alpha < 0.0:
            raise ValueError(
                f"RMSprop: lr ({lr}), eps ({eps}), momentum ({momentum}), weight_decay ({weight_decay}) and "
                f"alpha ({alpha}) must all be >= 0"
            )
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered, maximize=maximize)
        super().__init__(params, defaults)

    def _update(self, group, chunk):
        alpha, eps, momentum = group["alpha"], group["eps"], group["momentum"]
        grad = -chunk.grad if group["maximize"] else chunk.grad
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * chunk.value()
        chunk.increment_step()

        square_avg = chunk.buffer("square_avg")
        square_avg *= alpha
        square_avg += (1.0 - alpha) * grad * grad
        chunk.mark("square_avg")
        if group["centered"]:
            grad_avg = chunk.buffer("grad_avg")
            grad_avg *= alpha
            grad_avg += (1.0 - alpha) * grad
            chunk.mark("grad_avg")
            denominator = np.sqrt(square_avg - grad_avg * grad_avg) + eps
        else:
            denominator = np.sqrt(square_avg) + eps

        if momentum > 0.0:
            buffer = chunk.buffer("momentum_buffer")
            buffer *= momentum
            buffer += grad / denominator
            chunk.mark("momentum_buffer")
            chunk.add_to_params(-group["lr"] * buffer)
        else:
            chunk.add_to_params(-group["lr"] * (grad / denominator))
