"""Per-step figures beside the harness's loss history, saved in the same checkpoint.

The training harness records one loss per step. Some examples also want other numbers
per step, such as a GAN's discriminator loss or a VAE's KL term. ``MetricHistory`` keeps
them as named lists with ``state_dict``/``load_state_dict``, so when it is passed to the
``Trainer`` in ``extra_state``, a resumed run continues the lists.
"""
import numpy as np


class MetricHistory:
    """Named lists of floats, one value per step."""

    def __init__(self):
        self.values = {}

    def append(self, figures):
        """Append each value of the dict ``figures`` to the list of its name."""
        for name, value in figures.items():
            self.values.setdefault(name, []).append(float(value))

    def mean(self, name, which, window=20):
        """Average the first or last ``window`` values of ``name`` (``which``: "first" or "last"); NaN if none."""
        values = self.values.get(name, [])
        if not values:
            return float("nan")
        return float(np.mean(values[:window] if which == "first" else values[-window:]))

    def get(self, name):
        """Return a copy of the list of ``name`` (empty if nothing was recorded)."""
        return list(self.values.get(name, []))

    def state_dict(self):
        return {name: np.asarray(values, dtype=np.float64) for name, values in self.values.items()}

    def load_state_dict(self, state):
        self.values = {name: [float(v) for v in np.asarray(values).reshape(-1)] for name, values in state.items()}
