"""Where a bundle's model came from and what input it was trained on: the preprocessing candidates a brought
Keras model is scored under, and how report.md states the model's name, origin and
preprocessing (from manifest.json's ``model``).

NumPy and the standard library only: report.md is rendered on devices too. The TensorFlow side (loading,
scoring, wrapping a brought model) is lenet_edge.user_model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

TRAINED_HERE, BROUGHT = "trained here", "brought"
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # of MNIST's training pixels / 255 (what the tutorials normalize with)


@dataclass(frozen=True)
class Preprocessing:
    """One way tutorials feed MNIST to a model: input = pixels * scale + offset."""

    name: str
    label: str
    scale: float
    offset: float

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        return pixels.astype(np.float32) * np.float32(self.scale) + np.float32(self.offset)


PREPROCESSINGS = {
    p.name: p
    for p in (
        Preprocessing("raw", "raw pixels 0-255", 1.0, 0.0),
        Preprocessing("unit", "pixels / 255 (0 to 1)", 1.0 / 255.0, 0.0),
        Preprocessing(
            "mean-std",
            f"MNIST mean/std: (pixels / 255 - {MNIST_MEAN}) / {MNIST_STD}",
            1.0 / (255.0 * MNIST_STD),
            -MNIST_MEAN / MNIST_STD,
        ),
        Preprocessing("signed", "pixels / 127.5 - 1 (-1 to 1)", 1.0 / 127.5, -1.0),
    )
}


def _model_of(report_or_manifest: Any) -> dict:
    """manifest.json's ``model`` from a Manifest, a manifest dict or a report dict holding a manifest."""
    if isinstance(report_or_manifest, dict):
        found = report_or_manifest.get("model", report_or_manifest.get("manifest", {}).get("model", {}))
    else:
        found = getattr(report_or_manifest, "model", {})
    return found if isinstance(found, dict) else {}


def _pct(value: Any) -> str:
    return f"{value:.2%}" if isinstance(value, int | float) else "—"


def origin_lines(model: dict) -> list[str]:
    """What the model is, where it came from and what goes into it, as Markdown paragraphs (no heading)."""
    origin = model.get("origin", TRAINED_HERE)
    name = model.get("name") or model.get("architecture", "the model")
    source = model.get("source", {})
    if origin == BROUGHT:
        file, kind = source.get("file", "a Keras model"), source.get("class", "Keras model")
        if source.get("form_label"):
            kind += f"; {source['form_label']} written by Keras {source.get('keras_version', 'unknown')}"
        made = f"brought: `{file}` ({kind}), exported with `lenet-edge export`"
    else:
        made = "trained here by lenet-edge"
    lines = [f"Model `{name}`, {made}.", ""]
    found = model.get("preprocessing")
    if isinstance(found, dict) and found.get("chosen") in PREPROCESSINGS:
        chosen = PREPROCESSINGS[found["chosen"]]
        lines += [f"Trained on: **{chosen.label}** ({found.get('how', '')}).", ""]
        scores = found.get("test_accuracy", {})
        losses = found.get("test_loss", {})
        if scores:
            lines += ["| Preprocessing | Keras test accuracy | Cross-entropy |", "|---|---:|---:|"]
            for key, accuracy in scores.items():
                label = PREPROCESSINGS[key].label if key in PREPROCESSINGS else key
                mark = f"**{label}** (chosen)" if key == chosen.name else label
                loss = losses.get(key)
                lines.append(f"| {mark} | {_pct(accuracy)} | {'—' if loss is None else f'{loss:.3f}'} |")
            lines.append("")
    inside = model.get("inside_graph")
    if inside:
        lines += [f"Inside every export: {'; '.join(inside)}. The app feeds raw pixels 0-255, [batch, 28, 28, 1].", ""]
    rewrite = model.get("deployment_rewrite")
    if rewrite and rewrite != "applied":
        lines += [f"Deployment rewrite skipped: {rewrite.removeprefix('skipped: ')}.", ""]
    for note in source.get("read_as", []) if isinstance(source, dict) else []:
        lines += [f"Read differently from the file: {note}.", ""]
    return lines


def remedy_lines(artifacts: Any) -> list[str]:
    """What each int8 file that missed its gate at export took (the manifest's ``remedy`` of each artifact)."""
    lines = []
    for artifact in artifacts if isinstance(artifacts, list) else []:
        found = artifact.get("remedy") if isinstance(artifact, dict) else getattr(artifact, "remedy", None)
        name = artifact.get("format") if isinstance(artifact, dict) else getattr(artifact, "format", "?")
        if not isinstance(found, dict) or not found.get("tried"):
            continue
        tried = "; ".join(f"{step.get('what')}: {step.get('verdict')}" for step in found["tried"])
        outcome = f"shipped: **{found.get('shipped')}**" if found.get("passes") else "no remedy passed"
        lines += [
            f"`{name}` missed its gate ({found.get('gate', '')}) as first exported; {outcome} (tried: {tried}).",
            "",
        ]
    return lines


def model_origin_section(report_or_manifest: Any) -> list[str]:
    """report.md's section on the model's name, origin and preprocessing, and the int8 remedies export took."""
    if isinstance(report_or_manifest, dict):
        artifacts = report_or_manifest.get("artifacts", report_or_manifest.get("manifest", {}).get("artifacts"))
    else:
        artifacts = getattr(report_or_manifest, "artifacts", None)
    return ["## The model", "", *origin_lines(_model_of(report_or_manifest)), *remedy_lines(artifacts)]
