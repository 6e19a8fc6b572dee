"""A small MLP classifier for 8x8 digits, used to judge generated images.

Trained on the 1437 training digits with random one-pixel shifts, it reaches about 95%
accuracy on the 360 test digits, and near 92% without the shifts. ``examples/gan_digits.py``
trains it and prints the number. The
GAN example runs generated images through it: a sample the classifier assigns to one
class with high probability looks like a digit, and the set of predicted classes over
many samples shows which digits the generator can draw (its mode coverage).
"""
import numpy as np

from .. import nn, ops
from ..autograd.grad_mode import no_grad
from ..data.batching import iterate_in_order
from ..nn import functional as F
from ..ops._util import to_tensor
from ..random import resolve

NUM_CLASSES = 10


def random_shift(images, generator=None, max_shift=1):
    """Move every 8x8 image by a random whole number of pixels in [-max_shift, max_shift] on each axis.

    Pixels shifted in from outside the image are 0 (background). A cheap augmentation:
    the classifier learns that a digit's position within the frame does not matter.

    Args:
        images (ndarray): (n, 64) images.
        generator (Generator | None): the stream of the shifts.

    Returns:
        ndarray (n, 64) of the images' dtype.
    """
    images = np.asarray(images)
    count = len(images)
    size = 2 * max_shift + 1
    padded = np.pad(images.reshape(count, 8, 8), ((0, 0), (max_shift, max_shift), (max_shift, max_shift)))
    generator = resolve(generator)
    rows = generator.integers(0, size, size=count)[:, None] + np.arange(8)[None, :]
    columns = generator.integers(0, size, size=count)[:, None] + np.arange(8)[None, :]
    shifted = padded[np.arange(count)[:, None, None], rows[:, :, None], columns[:, None, :]]
    return shifted.reshape(count, 64)


class DigitClassifier(nn.Module):
    """MLP 64-hidden-hidden-10 with ReLU and dropout, giving logits over the ten digits.

    Args:
        hidden_size (int): units in each of the two hidden layers (default 256).
        dropout (float): dropout after each hidden layer during training (default 0.3).
        generator (Generator | None): the initialization stream.
        dropout_generator (Generator | None): the dropout stream (the training one).

    Shapes:
        images: (batch, 64) floats in [0, 1] -> logits (batch, 10).
    """

    def __init__(self, hidden_size=256, dropout=0.3, generator=None, dropout_generator=None):
        super().__init__()
        self.network = nn.Sequential(
            nn.Linear(64, hidden_size, generator=generator), nn.ReLU(),
            nn.Dropout(dropout, generator=dropout_generator),
            nn.Linear(hidden_size, hidden_size, generator=generator), nn.ReLU(),
            nn.Dropout(dropout, generator=dropout_generator),
            nn.Linear(hidden_size, NUM_CLASSES, generator=generator),
        )

    def forward(self, images):
        return self.network(to_tensor(images))

    def loss(self, images, labels):
        """Mean cross-entropy in nats per image."""
        return F.cross_entropy(self(images), np.asarray(labels, dtype=np.int64))

    def probabilities(self, images, batch_size=500):
        """Class probabilities (n, 10) as a float64 ndarray, computed in eval mode without a graph."""
        was_training = self.training
        self.eval()
        rows = []
        with no_grad():
            for batch in iterate_in_order(np.asarray(images), batch_size=batch_size):
                rows.append(ops.softmax(self(batch), axis=-1).data.astype(np.float64))
        self.train(was_training)
        return np.concatenate(rows)

    def accuracy(self, images, labels):
        """Return the share of images whose most probable class is their label."""
        return float(np.mean(self.probabilities(images).argmax(axis=-1) == np.asarray(labels)))


def sample_quality(probabilities, min_share=0.01):
    """Score generated images by a classifier's probabilities: confidence and mode coverage.

    Args:
        probabilities (ndarray): (n, 10) class probabilities of n generated images.
        min_share (float): the share of samples a class needs for the stricter coverage count.

    Returns:
        dict: ``mean_confidence`` (the mean of each image's largest class probability),
        ``classes_covered`` (how many classes are the predicted class of at least one
        image), ``classes_covered_min_share`` (classes predicted for at least
        ``min_share`` of the images), ``class_counts`` (predictions per class) and
        ``samples`` (n).
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[1] != NUM_CLASSES or len(probabilities) == 0:
        raise ValueError(f"sample_quality: probabilities must have shape (n >= 1, 10), got {probabilities.shape}")
    predicted = probabilities.argmax(axis=-1)
    counts = np.bincount(predicted, minlength=NUM_CLASSES)
    return {
        "samples": int(len(probabilities)),
        "mean_confidence": float(probabilities.max(axis=-1).mean()),
        "classes_covered": int(np.count_nonzero(counts)),
        "classes_covered_min_share": int(np.count_nonzero(counts >= min_share * len(probabilities))),
        "min_share": float(min_share),
        "class_counts": [int(count) for count in counts],
    }
