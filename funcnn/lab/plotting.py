"""Plots for training scripts (matplotlib from the `examples` extra, headless Agg backend)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "plot_history",
    "plot_kernels",
]


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError(
            "Plotting needs matplotlib; install the extra: pip install 'funcnn[examples]'."
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_history(
    history: Mapping[str, Sequence[float]], path: str | Path, *, title: str = ""
) -> Path:
    """Loss curves (left, log scale) and accuracy curves (right, when present) per epoch."""
    plt = _pyplot()
    epochs = history["epoch"]
    loss_keys = [k for k in history if k.endswith("loss")]
    acc_keys = [k for k in history if k.endswith("accuracy")]
    panels = 2 if acc_keys else 1
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.6), squeeze=False)
    for key in loss_keys:
        axes[0, 0].plot(epochs, history[key], label=key)
    axes[0, 0].set(xlabel="epoch", ylabel="loss", yscale="log", title=title or "loss")
    axes[0, 0].legend()
    if acc_keys:
        for key in acc_keys:
            axes[0, 1].plot(epochs, history[key], label=key)
        axes[0, 1].set(xlabel="epoch", ylabel="accuracy", title="accuracy")
        axes[0, 1].legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_kernels(w: Any, path: str | Path, *, title: str = "") -> Path:
    """A first conv layer's kernels, one grey tile each: w (kH, kW, 1, F) as F tiles of
    kH×kW, each scaled to its own ±max|w| (grey = 0, white > 0, black < 0)."""
    import numpy as np

    plt = _pyplot()
    kernels = np.asarray(w, np.float64)
    if kernels.ndim != 4 or kernels.shape[2] != 1:
        raise ValueError(f"plot_kernels: expects w of shape (kH, kW, 1, F), got {kernels.shape}.")
    count = kernels.shape[3]
    cols = min(count, 8)
    rows = -(-count // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.2 * cols, 1.2 * rows + 0.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < count:
            tile = kernels[:, :, 0, i]
            bound = max(float(np.abs(tile).max()), 1e-12)
            ax.imshow(tile, cmap="gray", vmin=-bound, vmax=bound, interpolation="nearest")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
