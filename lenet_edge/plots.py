"""PNG charts (matplotlib, headless): each draws the data it is given. matplotlib is imported when a chart is
drawn (an ImportError then means it is not installed)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .files import atomic_output
from .formats import runtime_label

if TYPE_CHECKING:
    from matplotlib.figure import Figure

EXACT_SNR_DB = 100.0  # a tensor int8 carries unchanged (the raw pixels: ~400 dB) drawn cut at the axis' end


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.close("all")
    return plt


def _save(fig: Figure, path: Path) -> Figure:
    """Write the PNG through a temp file and a rename: no half-written picture. Returns the (closed) figure."""
    import matplotlib.pyplot as plt

    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return fig


def _epoch_ticks(count: int) -> list[int]:
    """Every epoch up to 15 of them; beyond, epoch 1 and round numbers up to ``count``."""
    if count <= 15:
        return list(range(1, count + 1))
    from matplotlib.ticker import MaxNLocator

    ticks = MaxNLocator(nbins=10, integer=True, steps=[1, 2, 5, 10]).tick_values(1, count)
    return sorted({1, *(int(tick) for tick in ticks if 1 <= tick <= count)})


def _plain_log_ticks(axis, formatter=None) -> None:
    """Ticks of a log axis at 1, 2 and 5 times powers of ten, written as plain numbers (20, 50, 100, not 10²)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(formatter or (lambda value, _: f"{value:g}")))
    axis.set_minor_formatter(NullFormatter())


def _thousands(value: float, _=None) -> str:
    """500, 2k, 100k: images per second as a person says them."""
    return f"{value / 1000:g}k" if value >= 1000 else f"{value:g}"


def plot_training_curves(
    history: dict[str, list[float]], path: Path, best_epoch: int | None = None, augmented: bool = False
) -> Figure:
    """Loss and accuracy per epoch, train against validation, with the kept epoch marked: every epoch on the
    axes (numbered from 1), every point inside them."""
    plt = _pyplot()
    from matplotlib.ticker import PercentFormatter

    count = len(history["loss"])
    epochs = range(1, count + 1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    for ax, metric, title in ((axes[0], "loss", "loss (cross-entropy)"), (axes[1], "accuracy", "accuracy")):
        if metric not in history:
            ax.axis("off")
            continue
        ax.plot(epochs, history[metric], "o-", label="train (augmented)" if augmented else "train", markersize=3)
        if f"val_{metric}" in history:
            ax.plot(epochs, history[f"val_{metric}"], "s-", label="validation", markersize=3)
        if best_epoch:
            ax.axvline(best_epoch, color="grey", linestyle=":", label=f"kept: epoch {best_epoch}")
        ax.set_xlim(0.5, count + 0.5)
        ax.set_xticks(_epoch_ticks(count))
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    if "accuracy" in history:
        values = history["accuracy"] + history.get("val_accuracy", [])
        pad = max(0.002, 0.05 * (max(values) - min(values)))
        axes[1].set_ylim(min(values) - pad, max(values) + pad)  # every epoch's point, the first one too
        axes[1].yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0 if max(values) - min(values) > 0.05 else 1))
    fig.suptitle("LeNet-5 on MNIST: training curves")
    fig.tight_layout()
    return _save(fig, path)


def plot_confusion_matrices(rows: list[dict], path: Path) -> Figure | None:
    """One panel per artifact: counts of true digit (rows) against predicted digit (columns)."""
    rows = [row for row in rows if row.get("confusion")]
    if not rows:
        return None  # nothing ran: nothing to draw
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
    top = 1 - 1.0 / fig.get_figheight()  # fixed margins: tight_layout would draw the 700 labels once more
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.9 / fig.get_figheight(), top=top, wspace=0.3, hspace=0.55)
    return _save(fig, path)


def layer_labels(rows: list[dict]) -> list[str]:
    """'C1 (Conv)': each row's layer and, where the row has one, its op; a label met twice gets '#2', '#3'…"""
    labels = [f"{row['layer']} ({row['op']})" if row.get("op") else row["layer"] for row in rows]
    counts, seen = Counter(labels), Counter[str]()
    for i, label in enumerate(labels):
        if counts[label] > 1:
            seen[label] += 1
            labels[i] = f"{label} #{seen[label]}"
    return labels


def plot_layer_errors(fmt: str, data: dict, path: Path) -> Figure:
    """A bar per quantized tensor, in graph order (input at the top), labelled by its layer and op, suspects in
    red, the suspect threshold dashed. An SNR too high to share the axis (an exact tensor) is cut and written."""
    plt = _pyplot()
    rows = data["rows"]
    metric = data["metric"]
    values = [row[metric] for row in rows]
    colours = ["#d62728" if row["suspect"] else "#1f77b4" for row in rows]
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(rows) + 2.0), dpi=110)
    limit = None
    if metric == "snr_qdq_db" and any(value > EXACT_SNR_DB for value in values):
        limit = 1.3 * max([data["threshold"], *(value for value in values if value <= EXACT_SNR_DB)])
    ax.barh(range(len(rows)), [min(value, limit or value) for value in values], color=colours)
    for y, value in enumerate(values):
        if limit and value > limit:
            ax.text(0.98 * limit, y, f"{value:.0f} dB: exact ›", ha="right", va="center", color="white", fontsize=8)
        elif metric == "rmse_over_scale" and value == 0:  # no bar to see: say why
            ax.text(0.01, y, "0: exact", va="center", color="grey", fontsize=8, transform=ax.get_yaxis_transform())
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(layer_labels(rows), fontsize=8)
    ax.set_ylim(len(rows) - 0.3, -0.7)  # graph order, from the input at the top to the output at the bottom
    ax.set_ylabel("input → output", fontsize=8)
    if metric == "rmse_over_scale":
        ax.axvline(data["threshold"], color="grey", linestyle="--", label=f"suspect above ({data['threshold']:g})")
        ax.axvline(1 / np.sqrt(12), color="green", linestyle=":", label="rounding noise alone (0.29)")
        ax.set_xlabel("RMSE / scale (quantization steps, lower is better)")
    else:
        ax.axvline(data["threshold"], color="grey", linestyle="--", label=f"suspect below ({data['threshold']:g} dB)")
        ax.set_xlabel("SNR of the tensor's own Q/DQ step (dB, higher is better)")
    if limit:
        ax.set_xlim(0, limit)
    ax.grid(axis="x", alpha=0.3)
    kept = data.get("keep_float")
    ax.set_title(
        f"{fmt}: quantization error by layer ({data['tool']})" + (f"\nkept float: {', '.join(kept)}" if kept else ""),
        fontsize=10,
    )
    fig.legend(*ax.get_legend_handles_labels(), fontsize=8, loc="lower center", ncol=2, frameon=False)
    fig.tight_layout(rect=(0, 0.3 / fig.get_figheight(), 1, 1))  # the legend below the axis, clear of the bars
    return _save(fig, path)


def _label(row: dict) -> str:
    return runtime_label(row["runtime"], row["delegate"])


def plot_bench(rows: list[dict], profile: str, path: Path) -> Figure | None:
    """Batch-1 p50 by format and runtime (per thread count); throughput against batch size (host profile), one
    colour per runtime and one marker per format, its legend beside the axes from the fastest line down."""
    if not any(r["batch"] == 1 for r in rows):
        return None  # nothing was measured: nothing to draw
    plt = _pyplot()
    from matplotlib.ticker import NullLocator

    single = [r for r in rows if r["batch"] == 1]
    labels = sorted({(r["format"], _label(r)) for r in single}, key=lambda k: (k[1], k[0]))
    threads = sorted({r["threads"] for r in single})
    batches = sorted({r["batch"] for r in rows})
    panels = 2 if len(batches) > 1 else 1
    fig, axes = plt.subplots(
        1,
        panels,
        figsize=(7 if panels == 1 else 17, 0.38 * len(labels) + 2),
        dpi=110,
        squeeze=False,
        gridspec_kw={"width_ratios": [1, 0.8]} if panels == 2 else None,
    )
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
    _plain_log_ticks(ax.xaxis)
    one = "" if len(threads) > 1 else f", {threads[0]} thread{'s' * (threads[0] > 1)}"
    ax.set_xlabel(f"batch-1 latency, p50 (µs, log scale{one})")
    ax.set_title("latency of one image (shorter is faster)", fontsize=10)
    ax.grid(axis="x", alpha=0.3, which="both")
    if len(threads) > 1:
        ax.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0, 1.04), ncol=len(threads), frameon=False)
    if panels == 2:
        ax = axes[0][1]
        most = max(threads)
        lines = {}
        for fmt, runtime in labels:
            points = sorted(
                (r["batch"], r["throughput_ips"])
                for r in rows
                if r["threads"] == most and (r["format"], _label(r)) == (fmt, runtime)
            )
            if points:
                lines[(fmt, runtime)] = points
        runtimes = list(dict.fromkeys(runtime for _, runtime in lines))
        formats = sorted({fmt for fmt, _ in lines})
        colours, markers = plt.cm.tab10.colors, "osD^vP*Xhp"
        # legend order: the lines reaching the largest batch first, fastest on top, as they end on the right
        for (fmt, runtime), points in sorted(lines.items(), key=lambda item: (-item[1][-1][0], -item[1][-1][1])):
            ax.plot(
                *zip(*points, strict=True),
                "-",
                marker=markers[formats.index(fmt) % len(markers)],
                color=colours[runtimes.index(runtime) % len(colours)],
                markersize=5,
                label=f"{fmt} · {runtime}",
            )
        measured = sorted({batch for points in lines.values() for batch, _ in points})
        low, high = measured[0], measured[-1]
        ticks = sorted({*(1 << k for k in range(high.bit_length()) if low <= 1 << k <= high), *measured})
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks, [str(tick) for tick in ticks])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlim(low / 1.4, high * 1.4)
        ax.set_yscale("log")
        _plain_log_ticks(ax.yaxis, _thousands)
        ax.set_xlabel("batch size (images per call)")
        ax.set_ylabel("images/s (log scale)")
        ax.set_title(f"throughput against batch size, {most} thread{'s' * (most > 1)} (higher is faster)", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(
            fontsize=8,
            loc="upper left",
            bbox_to_anchor=(1.02, 1.0),
            borderaxespad=0,
            frameon=False,
            title=f"format · runtime\n(fastest at batch {high} first)",
            title_fontsize=8,
        )
    fig.suptitle(f"lenet-edge bench: {profile} profile")
    fig.tight_layout()
    return _save(fig, path)


def plot_device_times(estimate: dict, path: Path) -> Figure:
    """Estimated µs per image on a named device: one group of bars per artifact, one bar per core type (a core
    with no known clock is left out)."""
    plt = _pyplot()
    cores = [core for core in estimate["cores"] if core["clock_ghz"] and core["artifacts"]]
    formats = list(dict.fromkeys(a["format"] for core in cores for a in core["artifacts"]))
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(formats)), 4.6), dpi=110)
    width = 0.8 / max(len(cores), 1)
    for i, core in enumerate(cores):
        by_format = {a["format"]: a["us_per_image"] for a in core["artifacts"]}
        xs = [j + (i - (len(cores) - 1) / 2) * width for j in range(len(formats))]
        ax.bar(xs, [by_format.get(f, 0) for f in formats], width, label=core["label"])
    ax.set_xticks(range(len(formats)), formats, rotation=20, ha="right")
    ax.set_ylabel("estimated µs per image (batch 1, 1 thread)")
    ax.set_title(f"{estimate['device']}: estimated time per image on each core type (less is faster)")
    ax.legend(title="core type", ncol=min(len(cores), 2), loc="upper center", bbox_to_anchor=(0.5, -0.22),
              frameon=False)  # fmt: skip
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_instruction_counts(costs: dict[str, list[dict]], path: Path) -> Figure:
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
    return _save(fig, path)


def plot_mcu(section: dict, path: Path) -> Figure:
    """Left: the estimated µs per image on each real board (log scale), the emulated board's verdict beside it.
    Right: the C model's flash and RAM on each core against TFLite Micro's C array and arena (KiB)."""
    plt = _pyplot()
    boards = [row for row in section.get("boards", []) if "firmware" in row]
    reals = [(real, row) for row in boards for real in row["real_boards"] if real.get("microseconds")]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 1.8 + 0.42 * max(len(reals), len(boards) + 1, 3)),
                                      dpi=110, gridspec_kw={"width_ratios": [3, 2]})  # fmt: skip
    labels = [
        f"{real['label']} ({real['core'].removeprefix('cortex-')}, {real['clock_mhz']:g} MHz)" for real, _ in reals
    ]
    values = [real["microseconds"] / 1000 for real, _ in reals]
    colors = ["tab:green" if real["fits"] else "tab:red" for real, _ in reals]
    left.barh(range(len(reals)), values, color=colors)
    for i, (value, (_, row)) in enumerate(zip(values, reals, strict=True)):
        mark = "bit-exact" if row.get("bit_exact") else "NOT bit-exact" if row.get("bit_exact") is False else ""
        left.text(value * 1.05, i, f"{value:,.1f} ms  {mark}", va="center", fontsize=8)
    left.set_yticks(range(len(reals)), labels, fontsize=8)
    left.invert_yaxis()
    if values:
        left.set_xscale("log")
        left.set_xlim(min(values) / 2, max(values) * 12)
    else:
        left.text(0.5, 0.5, "no board was run or timed (see report.md)", ha="center", va="center",
                  transform=left.transAxes)  # fmt: skip
    left.set_xlabel("estimated ms per image (log scale; each core's method in report.md)")
    left.set_title("Time per image at each board's clock (green: fits its flash and RAM)", fontsize=10)
    left.grid(axis="x", alpha=0.3)
    tflm = section.get("tflm", {})
    names = [row["core"].removeprefix("cortex-") for row in boards] + ["TFLite Micro"]
    flash = [row["model"]["flash"] / 1024 for row in boards] + [(tflm.get("c_array_bytes") or 0) / 1024]
    ram = [row["model"]["ram"] / 1024 for row in boards] + [(tflm.get("arena_bytes") or 0) / 1024]
    ys = range(len(names))
    right.barh([y - 0.2 for y in ys], flash, 0.4, label="flash")
    right.barh([y + 0.2 for y in ys], ram, 0.4, label="RAM")
    right.set_yticks(list(ys), names, fontsize=8)
    right.invert_yaxis()
    right.set_xlim(0, max([*flash, *ram, 1]) * 1.35)
    right.set_xlabel("KiB (TFLite Micro: its C array and arena;\nits library and interpreter not counted)", fontsize=8)
    right.set_title("The C model's memory by core, and TFLite Micro's", fontsize=10)
    right.legend(fontsize=8, loc="upper right")
    right.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)
