"""Stochastic gradient descent with momentum, Nesterov momentum and weight decay."""
import numpy as np

from .optimizer import Optimizer, required


class SGD(Optimizer):
    """SGD, with PyTorch's update rule.

    With g the gradient (negated when ``maximize``):
        g ← g + weight_decay·p
        b ← g on the first step, then momentum·b + (1 − dampening)·g
        g ← g + momentum·b (nesterov) or b (momentum > 0)
        p ← p − lr·g

    Args:
        params: parameters or parameter groups.
        lr: the learning rate.
        momentum, dampening, weight_decay, nesterov, maximize: as above.
    """

    state_names = ("momentum_buffer",)

    def __init__(self, params, lr=required, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
                 maximize=False):
        if lr is not required and lr < 0.0:
            raise ValueError(f"SGD: invalid learning rate {lr}; it must be >= 0")
        if momentum < 0.0 or weight_decay < 0.0:
            raise ValueError(f"SGD: momentum ({momentum}) and weight_decay ({weight_decay}) must be >= 0")
        if nesterov and (momentum <= 0.0 or dampening != 0.0):
            raise ValueError("SGD: Nesterov momentum needs momentum > 0 and dampening = 0")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def _update(self, group, chunk):
        grad = -chunk.grad if group["maximize"] else chunk.grad
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * chunk.value()
        momentum = group["momentum"]
        if momentum:
            buffer = chunk.buffer("momentum_buffer")
            initialized = chunk.initialized("momentum_buffer")
            blended = momentum * buffer + (1.0 - group["dampening"]) * grad
            if initialized.all():
                buffer[...] = blended
            else:
                buffer[...] = np.where(chunk.per_element(initialized), blended, grad)
            chunk.mark("momentum_buffer")
            grad = grad + momentum * buffer if group["nesterov"] else buffer
        chunk.add_to_params(-group["lr"] * grad)
