"""Adam and AdamW (decoupled weight decay), with PyTorch's update rules."""
import numpy as np

from .optimizer import Optimizer


def _check_adam_arguments(name, lr, betas, eps, weight_decay):
    if lr < 0.0:
        raise ValueError(f"{name}: invalid learning rate {lr}; it must be >= 0")
    if eps < 0.0:
        raise ValueError(f"{name}: invalid eps {eps}; it must be >= 0")
    if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
        raise ValueError(f"{name}: invalid betas {betas}; each must be in [0, 1)")
    if weight_decay < 0.0:
        raise ValueError(f"{name}: invalid weight_decay {weight_decay}; it must be >= 0")


class Adam(Optimizer):
    """Adam: moment estimates m and v of the gradient, with bias correction.

    With g the gradient (negated when ``maximize``) and t the parameter's step count:
        g ← g + weight_decay·p                      (L2 penalty; AdamW decouples it)
        m ← β1·m + (1 − β1)·g
        v ← β2·v + (1 − β2)·g²
        v̂ ← max(v̂, v) with ``amsgrad``, else v̂ = v
        p ← p − lr/(1 − β1^t) · m / (√v̂ / √(1 − β2^t) + eps)

    State per parameter: "step", "exp_avg" (m), "exp_avg_sq" (v) and, with amsgrad,
    "max_exp_avg_sq" (PyTorch's names).
    """

    state_names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    decoupled_weight_decay = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                 maximize=False):
        _check_adam_arguments(type(self).__name__, lr, betas, eps, weight_decay)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize)
        super().__init__(params, defaults)

    def _update(self, group, chunk):
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        grad = -chunk.grad if group["maximize"] else chunk.grad
        if group["weight_decay"]:
            if self.decoupled_weight_decay:
                chunk.scale_params(1.0 - lr * group["weight_decay"])
            else:
                grad = grad + group["weight_decay"] * chunk.value()

        # Every step below writes into the moments or one scratch buffer: no array-sized
        # temporaries, so a step makes one pass per line over the flat state.
        steps = chunk.increment_step()
        exp_avg, exp_avg_sq = chunk.buffer("exp_avg"), chunk.buffer("exp_avg_sq")
        scratch = chunk.scratch()
        np.multiply(grad, 1.0 - beta1, out=scratch)
        exp_avg *= beta1
        exp_avg += scratch
        np.multiply(grad, 1.0 - beta2, out=scratch)
        scratch *= grad
        exp_avg_sq *= beta2
        exp_avg_sq += scratch
        chunk.mark("exp_avg", "exp_avg_sq")
        second_moment = exp_avg_sq
        if group["amsgrad"]:
            second_moment = chunk.buffer("max_exp_avg_sq")
            np.maximum(second_moment, exp_avg_sq, out=second_moment)
            chunk.mark("max_exp_avg_sq")

        # p ← p − step_size · m / (√v̂ / √(1 − β2^t) + eps)
        step_size = chunk.per_element(lr / (1.0 - beta1 ** steps))
        bias_correction2_sqrt = chunk.per_element(np.sqrt(1.0 - beta2 ** steps))
        denominator = np.sqrt(second_moment, out=scratch)
        denominator /= bias_correction2_sqrt
        denominator += eps
        update = np.divide(exp_avg, denominator, out=scratch)
        update *= -step_size
        chunk.add_to_params(update)


class AdamW(Adam):
    """Adam with decoupled weight decay: p ← p·(1 − lr·weight_decay) before the Adam step.

    The default weight_decay is 0.01, as in PyTorch.
    """

    decoupled_weight_decay = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
                 maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize)
