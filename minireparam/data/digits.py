"""scikit-learn's 8x8 handwritten digits (1797 images), scaled to [0, 1].

The images ship inside scikit-learn, so loading them needs no network. The split is by
position: the first 1437 images train and the last 360 test, the same split on every
machine.
"""
from collections import namedtuple

import numpy as np

N_TRAIN = 1437
N_TEST = 360

DigitsSplit = namedtuple("DigitsSplit", ["train_images", "train_labels", "test_images", "test_labels"])
DigitsSplit.__doc__ = """The digits split: images are float32 (n, 64) in [0, 1], labels int64 (n,)."""


def load_digits(dtype=np.float32):
    """Load the digits as flat 64-pixel rows, each pixel divided by 16 (its maximum).

    Args:
        dtype: the floating dtype of the images (default float32).

    Returns:
        DigitsSplit: 1437 training and 360 test images with their labels 0-9.

    Raises:
        ImportError: scikit-learn is not installed (the message gives the install command).
    """
    try:
        from sklearn.datasets import load_digits as sklearn_load_digits
    except ImportError as error:
        raise ImportError(
            "the digits data set needs scikit-learn, which is not installed; install the "
            "examples extra with `pip install -e \".[examples]\"` from the minireparam checkout"
        ) from error

    digits = sklearn_load_digits()
    images = (digits.data / 16.0).astype(dtype)
    labels = digits.target.astype(np.int64)
    return DigitsSplit(images[:N_TRAIN], labels[:N_TRAIN], images[N_TRAIN:], labels[N_TRAIN:])
