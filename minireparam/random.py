"""Random number generators: seedable, splittable streams shared by every sampler.

``Generator`` wraps numpy's PCG64. ``spawn(n)`` derives child generators through numpy's
SeedSequence, whose streams do not overlap, so parallel workers can draw independently.
Library code never reseeds the global generator: samplers take ``generator=`` and fall
back to the one ``manual_seed`` sets.
"""
import numpy as np


class Generator:
    """A random stream with a seed, child streams and a state that checkpoints can store."""

    def __init__(self, seed=None):
        self.manual_seed(seed)

    def manual_seed(self, seed):
        """Restart the stream from ``seed`` (an int, or None for fresh OS entropy)."""
        self._seed_sequence = np.random.SeedSequence(seed)
        self.numpy = np.random.Generator(np.random.PCG64(self._seed_sequence))
        return self

    @property
    def initial_seed(self):
        return self._seed_sequence.entropy

    def spawn(self, n):
        """Return ``n`` child generators whose streams never overlap this one or each other."""
        children = []
        for child_sequence in self._seed_sequence.spawn(n):
            child = Generator.__new__(Generator)
            child._seed_sequence = child_sequence
            child.numpy = np.random.Generator(np.random.PCG64(child_sequence))
            children.append(child)
        return children

    def state_dict(self):
        """The full state: PCG64's 128-bit state and the seed sequence that spawns children."""
        sequence = self._seed_sequence
        return {
            "bit_generator": self.numpy.bit_generator.state,
            "entropy": sequence.entropy,
            "spawn_key": list(sequence.spawn_key),
            "n_children_spawned": sequence.n_children_spawned,
        }

    def load_state_dict(self, state):
        sequence = np.random.SeedSequence(
            state["entropy"], spawn_key=tuple(state["spawn_key"]),
            n_children_spawned=state["n_children_spawned"],
        )
        self._seed_sequence = sequence
        bit_generator = np.random.PCG64(sequence)
        bit_generator.state = state["bit_generator"]
        self.numpy = np.random.Generator(bit_generator)

    # Thin samplers, returning ndarrays of the requested float dtype.

    def normal(self, size=(), dtype=np.float32):
        return self.numpy.standard_normal(size).astype(dtype, copy=False)

    def uniform(self, low=0.0, high=1.0, size=(), dtype=np.float32):
        return self.numpy.uniform(low, high, size).astype(dtype, copy=False)

    def integers(self, low, high=None, size=None):
        return self.numpy.integers(low, high, size=size)

    def permutation(self, n):
        return self.numpy.permutation(n)

    def __repr__(self):
        return f"Generator(initial_seed={self.initial_seed})"


_default_generator = Generator(0)


def manual_seed(seed):
    """Reseed the default generator (used wherever no ``generator=`` is passed)."""
    _default_generator.manual_seed(seed)
    return _default_generator


def default_generator():
    return _default_generator


def resolve(generator):
    """Return ``generator``, or the default generator when it is None."""
    if generator is None:
        return _default_generator
    if not isinstance(generator, Generator):
        raise TypeError(f"generator must be a minireparam.Generator or None, got {type(generator).__name__}")
    return generator
