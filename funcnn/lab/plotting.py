"""Plots for training scripts (matplotlib from the `examples` extra, headless Agg backend)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = [
    "plot_history",
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
