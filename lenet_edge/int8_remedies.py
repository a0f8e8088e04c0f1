"""An int8 file of a brought model that misses its verify gate, remedied at export: the remedies lenet-edge
already knows tried cheapest first (more calibration digits, then the layer the quantization-error report names
left in float, then the next one it names), each judged on the 10,000 test digits against the Keras reference
with verify's gate; the first that passes is shipped, and the manifest's ``remedy`` says what was tried and
what it took. When none passes, the file as first exported is shipped (verify then fails it, exit 1).

May import: bundle_writer (its ``Int8Trial``), verify, quantization_error, exporters, runtimes, data, formats,
manifest, console, errors.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from .bundle_writer import Int8Trial
from .console import log
from .data import calibration_images
from .errors import one_line
from .exporters import export_format
from .formats import PRECISIONS, Gate, float_twin
from .manifest import Artifact
from .quantization_error import DEBUG_IMAGES, onnx_layer_errors, tflite_layer_errors
from .runtimes import open_runner
from .verify import judge

MORE_CALIBRATION = 2000  # the first remedy: at least this many calibration digits (4x what was asked, if more)
MAX_KEPT = 3  # layers left in float, one more per remedy, before giving up


@dataclass(frozen=True)
class Int8Remedies:
    """Remedies for brought models' int8 files, judged with ``gates`` (verify's, as the command set them)."""

    gates: dict[str, Gate]

    def __call__(self, trial: Int8Trial, first: Artifact) -> Artifact:
        return remedy(trial, first, self.gates)


def _verdict(trial: Int8Trial, entry: Artifact, gate: Gate, folder: Path) -> str:
    """'' when the file passes its gate on the 10,000 test digits, else the gate's failures."""
    runner = open_runner(entry.runtime, folder / entry.file)
    found = runner.precision()
    if found is not None and found != entry.precision:  # every layer left in float: no int8 file any more
        return f"the file is {found}, not {entry.precision}"
    probs = runner.predict(trial.mnist.x_test)
    row = judge(entry.format, entry.runtime, entry.precision, probs, trial.reference, trial.mnist.y_test, gate)
    return row.reason or "" if row.status != "pass" else ""


def _weighted_layers(model) -> list[str]:
    return [layer.name for layer in model.layers if layer.weights]


def worst_layer(trial: Int8Trial, count: int, keep: tuple[str, ...], folder: Path, file: str) -> str | None:
    """The layer with weights, not yet kept in float, that the quantization-error report finds worst in the file
    exported with (``count``, ``keep``): the highest RMSE/scale (TFLite) or the lowest SNR of its own Q/DQ
    step (ONNX). None when it names none."""
    images = trial.mnist.x_test[:DEBUG_IMAGES]
    weighted = _weighted_layers(trial.model)
    if len(keep) + 1 >= len(weighted):  # one layer at least stays int8, or the file is no int8 file
        return None
    allowed = set(weighted) - set(keep)
    if trial.fmt.family == "tflite":
        rows, _ = tflite_layer_errors(trial.model, calibration_images(trial.mnist, count, trial.seed), images, keep)
        ranked = sorted(rows, key=lambda row: -row["rmse_over_scale"])
    else:
        twin = float_twin(trial.fmt)
        if twin is None:
            return None
        with tempfile.TemporaryDirectory(prefix="lenet-edge-remedy-") as tmp:
            fp32 = Path(tmp) / twin.file
            export_format(twin, trial.deployed, fp32, calibration_images(trial.mnist, 1, trial.seed))
            rows = onnx_layer_errors(fp32, folder / file, images)
        ranked = sorted(rows, key=lambda row: row["snr_qdq_db"])
    return next((row["layer"] for row in ranked if row["layer"] in allowed), None)


def _ladder_step(trial: Int8Trial, count: int, keep: tuple[str, ...], folder: Path, file: str):
    """The next (count, keep, label) after the attempt (count, keep), or None when nothing is left to try."""
    more = max(MORE_CALIBRATION, 4 * trial.calibration)
    more = min(more, len(trial.mnist.x_train))
    if count < more:
        return more, keep, f"{more:,} calibration digits (not {count:,})"
    if len(keep) - len(trial.keep_float) >= MAX_KEPT:
        return None
    layer = worst_layer(trial, count, keep, folder, file)
    if layer is None:
        return None
    return count, (*keep, layer), f"{layer} left in float (the worst in the quantization-error report)"


def remedy(trial: Int8Trial, first: Artifact, gates: dict[str, Gate]) -> Artifact:
    """The int8 file to ship for ``trial``: ``first`` when it passes its gate, else the first remedy that
    passes, else ``first`` again; its ``remedy`` record says what was tried."""
    gate = gates.get(trial.fmt.precision, PRECISIONS[trial.fmt.precision].verify)
    folder = trial.folder
    missed = _verdict(trial, first, gate, folder)
    if not missed:
        return first
    log(f"  {trial.fmt.name:<15} misses its gate ({missed}); trying the remedies, cheapest first")
    tried = [{"what": f"as asked: {trial.calibration:,} calibration digits", "verdict": missed}]
    count, keep = trial.calibration, trial.keep_float
    while (step := _ladder_step(trial, count, keep, folder, first.file)) is not None:
        count, keep, label = step
        try:
            entry = trial.export(count, keep)
            verdict = _verdict(trial, entry, gate, folder)
        except Exception as exc:  # a remedy that cannot be exported is one more that did not work
            entry, verdict = None, f"could not be exported: {one_line(exc)[:200]}"
        tried.append({"what": label, "verdict": verdict or "pass"})
        log(f"  {'':<15} remedy: {label}: {verdict or 'passes'}")
        if entry is not None and not verdict:
            entry.remedy = _record(gate, tried, count, keep, shipped=True)
            return entry
        if entry is None:
            break
    log(f"  {'':<15} no remedy passes: the file as first exported is shipped")
    shipped = trial.export(trial.calibration, trial.keep_float)
    shipped.remedy = _record(gate, tried, trial.calibration, trial.keep_float, shipped=False)
    return shipped


def _record(gate: Gate, tried: list[dict], count: int, keep: tuple[str, ...], shipped: bool) -> dict:
    return {
        "gate": gate.describe(),
        "tried": tried,
        "shipped": tried[-1]["what"] if shipped else "none passed: the file as first exported",
        "passes": shipped,
        "calibration_images": count,
        "keep_float": list(keep),
    }
