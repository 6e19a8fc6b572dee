"""Mini-batches over arrays: a shuffled, checkpointable stream and an in-order pass.

``BatchIterator`` reshuffles at the start of every epoch with the Generator it is given
and always yields full batches, so every step sees the same batch size. Its
``state_dict`` (the current epoch's order and the position in it) together with the
Generator's state lets a resumed run draw exactly the batches an uninterrupted run would.
"""
import numpy as np

from ..random import resolve
from .errors import DataError


def _check_arrays(arrays):
    if not arrays:
        raise DataError("pass at least one array to batch")
    lengths = [len(array) for array in arrays]
    if len(set(lengths)) != 1:
        raise DataError(f"arrays to batch must have the same length (first axis), got lengths {lengths}")
    return lengths[0]


class BatchIterator:
    """An endless stream of shuffled mini-batches of a fixed size.

    Each epoch is one permutation of the rows drawn from ``generator``, and a batch takes
    the next ``batch_size`` rows of it. The rows left over at the end of an epoch (fewer
    than a batch) are skipped, so all batches have the same size.

    Args:
        *arrays (ndarray): arrays with the same first-axis length n, indexed together.
        batch_size (int): rows per batch, 1 <= batch_size <= n.
        generator (Generator | None): the shuffling stream (default: the global one).
        shuffle (bool): if False, every epoch goes through the rows in order.

    Yields:
        tuple of ndarrays (one per input array), each with first axis ``batch_size``;
        a single array when one array was given.

    Example:
        >>> batches = BatchIterator(images, batch_size=128, generator=Generator(0))
        >>> first = next(batches)
    """

    def __init__(self, *arrays, batch_size, generator=None, shuffle=True):
        self.n = _check_arrays(arrays)
        if not 1 <= batch_size <= self.n:
            raise DataError(f"batch_size must be between 1 and the number of rows {self.n}, got {batch_size}")
        self.arrays = arrays
        self.batch_size = batch_size
        self.generator = resolve(generator)
        self.shuffle = shuffle
        self.epoch = 0
        self._order = None
        self._position = 0

    @property
    def batches_per_epoch(self):
        return self.n // self.batch_size

    def __iter__(self):
        return self

    def __next__(self):
        if self._order is None or self._position + self.batch_size > self.n:
            self._start_epoch()
        rows = self._order[self._position:self._position + self.batch_size]
        self._position += self.batch_size
        batch = tuple(array[rows] for array in self.arrays)
        return batch[0] if len(batch) == 1 else batch

    def _start_epoch(self):
        if self._order is not None:
            self.epoch += 1
        self._order = self.generator.permutation(self.n) if self.shuffle else np.arange(self.n)
        self._position = 0

    def state_dict(self):
        """Return the position in the stream (the Generator's own state is saved separately)."""
        order = np.zeros(0, dtype=np.int64) if self._order is None else self._order.astype(np.int64)
        return {"epoch": self.epoch, "position": self._position, "order": order, "started": self._order is not None}

    def load_state_dict(self, state):
        """Restore a position saved by ``state_dict`` (for the same arrays and batch size)."""
        order = np.asarray(state["order"], dtype=np.int64)
        if state["started"] and (order.shape != (self.n,) or state["position"] > self.n):
            raise DataError(
                f"batch iterator state is for {order.size} rows at position {state['position']}, but this "
                f"iterator has {self.n} rows; resume with the same data set"
            )
        self.epoch = int(state["epoch"])
        self._position = int(state["position"])
        self._order = order if state["started"] else None


def iterate_in_order(*arrays, batch_size):
    """Yield consecutive batches that cover every row once, the last one possibly smaller.

    Use it for evaluation, where every row must count exactly once and no randomness is wanted.
    """
    n = _check_arrays(arrays)
    if batch_size < 1:
        raise DataError(f"batch_size must be at least 1, got {batch_size}")
    for start in range(0, n, batch_size):
        batch = tuple(array[start:start + batch_size] for array in arrays)
        yield batch[0] if len(batch) == 1 else batch
