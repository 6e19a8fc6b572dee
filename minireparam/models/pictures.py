"""PNG figures for the examples, drawn with matplotlib's Agg backend (no display needed)."""
import os

import numpy as np


def _pyplot():
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError(
            "saving pictures needs matplotlib, which is not installed; install the examples extra "
            "with `pip install -e \".[examples]\"` from the minireparam checkout"
        ) from error
    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


def save_digit_grid(path, images, columns, title, row_labels=None):
    """Save 8x8 images (rows of 64 intensities in [0, 1]) as a grid PNG.

    Args:
        path (str): the PNG file to write (its folder is created).
        images (ndarray): shape (n, 64); n must be a multiple of ``columns``.
        columns (int): images per row.
        title (str): the figure title.
        row_labels (list of str | None): one label per row, shown on the left.
    """
    images = np.asarray(images, dtype=np.float64).reshape(-1, 8, 8)
    rows = len(images) // columns
    if rows * columns != len(images):
        raise ValueError(f"save_digit_grid: {len(images)} images do not fill rows of {columns}")
    pyplot = _pyplot()
    figure, axes = pyplot.subplots(rows, columns, figsize=(columns * 0.8, rows * 0.8 + 0.5), squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.imshow(images[index], cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
        axis.set_xticks([])
        axis.set_yticks([])
    if row_labels is not None:
        for row, label in enumerate(row_labels):
            axes[row, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    figure.suptitle(title, fontsize=10)
    _save(figure, path, pyplot)


def save_line_panels(path, panels, xlabel, ylabel, title, log_x=True, log_y=True):
    """Save side-by-side line plots sharing axis labels as one PNG.

    Args:
        path (str): the PNG file to write (its folder is created).
        panels (list of (str, list)): one (panel title, lines) pair per panel, where each
            line is a dict with keys ``x``, ``y``, ``label`` and optionally ``style``
            (a matplotlib line style such as "--"). NaN values leave gaps.
        xlabel, ylabel (str): the axis labels.
        title (str): the figure title.
        log_x, log_y (bool): logarithmic axes (the default for both).
    """
    pyplot = _pyplot()
    figure, axes = pyplot.subplots(1, len(panels), figsize=(6.0 * len(panels), 4.6), squeeze=False)
    for axis, (panel_title, lines) in zip(axes[0], panels):
        for line in lines:
            axis.plot(line["x"], line["y"], line.get("style", "-"), marker="o", markersize=3, label=line["label"])
        if log_x:
            axis.set_xscale("log", base=2)
        if log_y:
            axis.set_yscale("log")
        axis.set_xlabel(xlabel)
        axis.set_ylabel(ylabel)
        axis.set_title(panel_title, fontsize=10)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7)
    figure.suptitle(title, fontsize=11)
    _save(figure, path, pyplot)


def _save(figure, path, pyplot):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
