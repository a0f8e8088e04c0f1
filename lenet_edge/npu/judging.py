"""What the HTP simulator answered, judged: accuracy and agreement against Keras and LiteRT on the CPU with the
int8 gates, and simulated cycles per image and per layer. NumPy and the tables only."""

from __future__ import annotations

import numpy as np

from ..formats import PRECISIONS
from ..manifest import Tensor
from . import graph
from .chart import layer_of


def judge(raw: np.ndarray, cpu_raw: np.ndarray, output: Tensor, reference: np.ndarray, labels: np.ndarray) -> dict:
    """The simulator's answers against Keras (the int8 gate) and against the same source file on the CPU: how
    many quantization steps apart (a quantized output) or how far in probability (a float one)."""
    probs = output.decode(raw)
    predicted, expected = probs.argmax(1), reference.argmax(1)
    accuracy, keras_accuracy = float(np.mean(predicted == labels)), float(np.mean(expected == labels))
    delta_pt = round((accuracy - keras_accuracy) * 100, 4)
    agreement = float(np.mean(predicted == expected))
    max_abs_dp = float(np.abs(probs.astype(np.float64) - reference).max())
    gate = PRECISIONS["int8"].verify
    failures = gate.failures(agreement, max_abs_dp, delta_pt)
    if output.quantized:
        steps = np.abs(raw.astype(np.int32) - cpu_raw.astype(np.int32))
        against_cpu = {"max_step_diff_cpu": int(steps.max()), "identical_cpu": float(np.mean(steps.max(1) == 0))}
    else:
        apart = np.abs(raw.astype(np.float64) - cpu_raw.astype(np.float64))
        against_cpu = {"max_abs_dp_cpu": float(apart.max()), "identical_cpu": float(np.mean(apart.max(1) == 0))}
    return {
        "status": "fail" if failures else "pass",
        "reason": "; ".join(failures),
        "images": len(labels),
        "accuracy": accuracy,
        "keras_accuracy": keras_accuracy,
        "delta_vs_keras_pt": delta_pt,
        "agreement_keras": agreement,
        "max_abs_dp": max_abs_dp,
        "gate": gate.describe(),
        "agreement_cpu": float(np.mean(raw.argmax(1) == cpu_raw.argmax(1))),
    } | against_cpu


def cycles(profile: list[dict], source_nodes: list[graph.Node]) -> dict:
    """Median simulated HTP cycles per image and per op over the profiled digits (the first, cold, left out)."""
    runs = profile[1:] if len(profile) > 1 else profile
    if not runs:
        return {}
    per_op: dict[str, list[int]] = {}
    where: dict[str, int | None] = {}
    for run in runs:
        for op in run["ops"]:
            per_op.setdefault(op["op"], []).append(op["cycles"])
            where[op["op"]] = op["source_op"]
    ops = []
    for name, values in per_op.items():
        index = where[name]
        node = source_nodes[index] if index is not None and index < len(source_nodes) else None
        ops.append({
            "op": name,
            "source_op": index,
            "tflite_op": node.op if node else None,
            "tensor": node.outputs[0] if node and node.outputs else None,
            "median_cycles": int(np.median(values)),
        })  # fmt: skip
    totals = [run["cycles"] for run in runs]
    return {
        "images": len(runs),
        "median_per_image": int(np.median(totals)),
        "quartiles_per_image": [int(q) for q in np.percentile(totals, [25, 75])],
        "min_per_image": int(min(totals)),
        "max_per_image": int(max(totals)),
        "ops": ops,
    }


def _by_layer(counted: dict) -> dict[str, int]:
    layers: dict[str, int] = {}
    for op in counted.get("ops", []):
        layers[layer_of(op)] = layers.get(layer_of(op), 0) + op["median_cycles"]
    return layers


def against_same_layers(after: dict, before: dict) -> float | None:
    """Cycles per image (the ops' medians summed) of the file compiled over those of the file as it is, each first
    divided by the cycles of the layers both compute alike (every named layer but C1, the one the rewrite
    changes): the simulator's drift from one profile to the next moves every op together, and cancels. None when
    no such layer was profiled."""
    a, b = _by_layer(after), _by_layer(before)
    same = (set(a) & set(b)) - {"C1", "other"}
    yard_a, yard_b = sum(a[k] for k in same), sum(b[k] for k in same)
    if not yard_a or not yard_b or not sum(b.values()):
        return None
    return round((sum(a.values()) / yard_a) / (sum(b.values()) / yard_b), 3)
