"""PNG charts (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_training_curves(
    history: dict[str, list[float]], path: Path, best_epoch: int | None = None, augmented: bool = False
) -> None:
    """Loss and accuracy per epoch, train against validation, with the kept epoch marked."""
    plt = _pyplot()
    epochs = range(1, len(history["loss"]) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    for ax, metric, title in ((axes[0], "loss", "loss (cross-entropy)"), (axes[1], "accuracy", "accuracy")):
        ax.plot(epochs, history[metric], "o-", label="train (augmented)" if augmented else "train", markersize=3)
        if f"val_{metric}" in history:
            ax.plot(epochs, history[f"val_{metric}"], "s-", label="validation", markersize=3)
        if best_epoch:
            ax.axvline(best_epoch, color="grey", linestyle=":", label=f"kept: epoch {best_epoch}")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    if "accuracy" in history:
        axes[1].set_ylim(max(0.9, min(history["accuracy"] + history.get("val_accuracy", [])) - 0.005), 1.0)
    fig.suptitle("LeNet-5 on MNIST: training curves")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
