"""report.md's NPU chart: simulated HTP cycles per image for each SoC and form, stacked by layer. matplotlib is
imported when the chart is drawn (an ImportError then means it is not installed)."""

from __future__ import annotations

import re
from pathlib import Path

from ..plots import _pyplot, _save

NPU_PNG = "npu_cycles.png"
_LAYER = re.compile(r"(?:^|/)(C\d|S\d|F\d|probabilities)(?:_rows)?_\d+/")


def layer_of(op: dict) -> str:
    """The LeNet layer a profiled op belongs to, from its QNN name (model/C1_rows_1/depthwise2/... -> C1) or else
    the .tflite tensor it writes (a C1 fused with its padding is named after the pad); 'other' when neither says
    (an op named by its converter alone: the int8 ONNX's C1 is tf2onnx's Conv__4)."""
    for name in (op["op"], op.get("tensor") or ""):
        found = _LAYER.search(name)
        if found:
            return "output" if found.group(1) == "probabilities" else found.group(1)
    return "other"


def plot_npu_cycles(section: dict, path: Path):
    """One horizontal bar per SoC and form (the LiteRT file, the int8 ONNX), its median cycles per image split by
    layer (each op's median)."""
    plt = _pyplot()
    bars: list[tuple[str, dict[str, int]]] = []
    for row in section.get("socs", []):
        soc, onnx = row["soc"]["model"], row.get("onnx") or {}
        for label, counted in ((f"{soc} .tflite", row.get("cycles")), (f"{soc} int8 .onnx", onnx.get("cycles"))):
            if counted and counted.get("ops"):
                layers: dict[str, int] = {}
                for op in counted["ops"]:
                    layers[layer_of(op)] = layers.get(layer_of(op), 0) + op["median_cycles"]
                bars.append((label, layers))
    names = list(dict.fromkeys(name for _, layers in bars for name in layers))
    fig, ax = plt.subplots(figsize=(8, 2.2 + 0.45 * max(len(bars), 1)), dpi=110)
    left = [0.0] * len(bars)
    for name in names:
        values = [layers.get(name, 0) / 1e6 for _, layers in bars]
        ax.barh(range(len(bars)), values, left=left, label=name)
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.set_yticks(range(len(bars)), [label for label, _ in bars])
    ax.invert_yaxis()
    ax.set_xlabel("million simulated HTP cycles per image (median per op, summed by layer)")
    ax.set_title("Snapdragon NPU (HTP) in Qualcomm's simulator: cycles per image by layer")
    if names:
        fig.legend(ncol=min(len(names), 8), loc="lower center", frameon=False)
    else:
        ax.text(0.5, 0.5, "no SoC was judged (see report.md)", ha="center", va="center", transform=ax.transAxes)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return _save(fig, path)
