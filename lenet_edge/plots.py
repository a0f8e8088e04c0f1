"""PNG charts (matplotlib, headless): each draws the data it is given. matplotlib is imported when a chart is
drawn (an ImportError then means it is not installed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .files import atomic_output
from .formats import runtime_label


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.close("all")
    return plt


def _save(fig, path: Path) -> None:
    """Write the PNG through a temp file and a rename: no half-written picture."""
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png")
    fig.clf()


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
    _save(fig, path)


def plot_confusion_matrices(rows: list[dict], path: Path) -> None:
    """One panel per artifact: counts of true digit (rows) against predicted digit (columns)."""
    rows = [row for row in rows if row.get("confusion")]
    if not rows:
        return  # nothing ran: nothing to draw
    plt = _pyplot()
    columns = min(4, len(rows))
    lines = -(-len(rows) // columns)
    fig, axes = plt.subplots(lines, columns, figsize=(3.6 * columns, 3.7 * lines), dpi=100, squeeze=False)
    for ax in axes.flat[len(rows) :]:
        ax.axis("off")
    for ax, row in zip(axes.flat, rows, strict=False):
        counts = np.asarray(row["confusion"])
        ax.imshow(np.log1p(counts), cmap="Blues")
        for (true, pred), count in np.ndenumerate(counts):
            if count:
                colour = "white" if true == pred else "black"
                ax.text(pred, true, str(count), ha="center", va="center", fontsize=5.5, color=colour)
        ax.set_title(f"{row['format']} ({row['runtime']})\naccuracy {row['accuracy']:.2%}", fontsize=9)
        ax.set_xticks(range(10))
        ax.set_yticks(range(10))
        ax.tick_params(labelsize=7)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("true", fontsize=8)
    fig.suptitle("Confusion matrices on the MNIST test set")
    fig.tight_layout()
    _save(fig, path)


def plot_layer_errors(fmt: str, data: dict, path: Path) -> None:
    """A bar per quantized tensor, in graph order, suspects in red, the suspect threshold dashed."""
    plt = _pyplot()
    rows = data["rows"]
    metric = data["metric"]
    labels = [f"{row['layer']} ({row['op']})" if "op" in row else row["layer"] for row in rows]
    values = [row[metric] for row in rows]
    colours = ["#d62728" if row["suspect"] else "#1f77b4" for row in rows]
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(rows) + 1.6), dpi=110)
    ax.barh(range(len(rows)), values, color=colours)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    if metric == "rmse_over_scale":
        ax.axvline(data["threshold"], color="grey", linestyle="--", label="suspect above")
        ax.axvline(1 / np.sqrt(12), color="green", linestyle=":", label="rounding noise alone (0.29)")
        ax.set_xlabel("RMSE / scale (quantization steps)")
    else:
        ax.axvline(data["threshold"], color="grey", linestyle="--", label="suspect below")
        ax.set_xlabel("SNR of the tensor's own Q/DQ step (dB, higher is better)")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    kept = data.get("keep_float")
    ax.set_title(
        f"{fmt}: quantization error by layer ({data['tool']})" + (f"\nkept float: {', '.join(kept)}" if kept else ""),
        fontsize=10,
    )
    fig.tight_layout()
    _save(fig, path)


def _label(row: dict) -> str:
    return runtime_label(row["runtime"], row["delegate"])


def plot_bench(rows: list[dict], profile: str, path: Path) -> None:
    """Batch-1 p50 by format and runtime (per thread count); throughput against batch size (host profile)."""
    if not any(r["batch"] == 1 for r in rows):
        return  # nothing was measured: nothing to draw
    plt = _pyplot()
    from matplotlib.ticker import FuncFormatter, NullFormatter

    single = [r for r in rows if r["batch"] == 1]
    labels = sorted({(r["format"], _label(r)) for r in single}, key=lambda k: (k[1], k[0]))
    threads = sorted({r["threads"] for r in single})
    batches = sorted({r["batch"] for r in rows})
    panels = 2 if len(batches) > 1 else 1
    fig, axes = plt.subplots(1, panels, figsize=(7 * panels, 0.38 * len(labels) + 2), dpi=110, squeeze=False)
    ax = axes[0][0]
    height = 0.8 / len(threads)
    for i, count in enumerate(threads):
        p50 = {(r["format"], _label(r)): r["p50_us"] for r in single if r["threads"] == count}
        ax.barh(
            [y + i * height for y in range(len(labels))],
            [p50.get(label, 0) for label in labels],
            height=height,
            label=f"{count} thread{'s' * (count > 1)}",
        )
    ax.set_yticks([y + height * (len(threads) - 1) / 2 for y in range(len(labels))])
    ax.set_yticklabels([f"{fmt} · {runtime}" for fmt, runtime in labels], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())  # 2×10¹, 3×10¹… ran into each other
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.set_xlabel("batch-1 latency, p50 (µs, log scale)")
    ax.grid(axis="x", alpha=0.3, which="both")
    ax.legend(fontsize=8)
    if panels == 2:
        ax = axes[0][1]
        ax.set_prop_cycle(color=plt.cm.tab20.colors)  # more lines than the default ten colours
        most = max(threads)
        for fmt, runtime in labels:
            points = sorted(
                (r["batch"], r["throughput_ips"])
                for r in rows
                if r["threads"] == most and (r["format"], _label(r)) == (fmt, runtime)
            )
            if points:
                ax.plot(*zip(*points, strict=True), "o-", markersize=3, label=f"{fmt} · {runtime}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel(f"images/s ({most} threads)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6)
    fig.suptitle(f"lenet-edge bench: {profile} profile")
    fig.tight_layout()
    _save(fig, path)


def plot_instruction_counts(costs: dict[str, list[dict]], path: Path) -> None:
    """Million guest instructions per image, one group of bars per artifact, one bar per emulated core."""
    plt = _pyplot()
    cores = list(costs)
    formats = list(dict.fromkeys(row["format"] for rows in costs.values() for row in rows))
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(formats)), 4.6), dpi=110)
    width = 0.8 / max(len(cores), 1)
    for i, core in enumerate(cores):
        by_format = {row["format"]: row["instructions_per_image"] / 1e6 for row in costs[core]}
        xs = [j + (i - (len(cores) - 1) / 2) * width for j in range(len(formats))]
        ax.bar(xs, [by_format.get(f, 0) for f in formats], width, label=core)
    ax.set_xticks(range(len(formats)), formats, rotation=20, ha="right")
    ax.set_ylabel("million instructions per image")
    ax.set_title("Cost per batch-1 inference on emulated ARM64 cores (fewer is cheaper)")
    ax.legend(title="core", ncol=len(cores), loc="upper center", bbox_to_anchor=(0.5, -0.22), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    _save(fig, path)
