"""Writes a bundle: the Keras model, every export (each proven to load and answer right after it is written),
labels, training record and ``manifest.json``.

A bundle is built in a staging folder beside its destination and swapped in only once complete, so an
interrupted run leaves the previous bundle as it was."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import tempfile
import time
from importlib import resources
from pathlib import Path

import numpy as np

from . import __version__
from .console import log
from .data import Mnist, calibration_images
from .errors import BundleError, one_line
from .exporters import export_format
from .files import sha256_file, write_json
from .formats import KERAS, Format
from .host import tool_versions
from .manifest import (
    GENERATOR,
    LABELS,
    README,
    REFERENCE,
    TRAINING_CURVES,
    TRAINING_RECORD,
    Artifact,
    FileRef,
    Manifest,
    is_bundle,
    write_manifest,
)
from .model import deployment_graph
from .plots import plot_training_curves
from .runtimes import Runner, open_runner

CHECK_DIGITS = 100  # real test digits every export must answer right after it is written
_KEPT_ELSEWHERE = ("history", "model", "deterministic", "determinism")  # training.json keys the manifest
# states once, at its top level (the history stays in training.json)


def _check_replaceable(out: Path) -> None:
    """Only an empty folder, one holding just a README, or a lenet-edge bundle may be replaced."""
    if not out.exists():
        return
    if not out.is_dir():
        raise BundleError(f"{out}: exists and is not a folder; choose another --out")
    foreign = [p.name for p in out.iterdir() if p.name not in (README, ".gitignore")]
    if foreign and not is_bundle(out):
        raise BundleError(f"{out}: exists and is not a lenet-edge bundle ({foreign[0]} …); choose another --out")


def check_output_folder(out: str | Path) -> Path:
    """Fail before any work if ``out`` cannot become a bundle: not replaceable, or its parent not writable."""
    out = Path(out).absolute()
    _check_replaceable(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BundleError(f"{out}: cannot create its folder ({exc.strerror})") from None
    if not os.access(out.parent, os.W_OK):
        raise BundleError(f"{out.parent}: not writable; choose another --out")
    return out


@contextlib.contextmanager
def staged_folder(out: Path):
    """Yield an empty staging folder; when the block completes, it replaces ``out`` in one swap."""
    out = check_output_folder(out)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    try:
        yield staging
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / out.name)
            os.replace(staging, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def check_answers(runner: Runner, digits: np.ndarray, labels: np.ndarray) -> float:
    """Feed real test digits raw; demand 10 finite probabilities summing to 1 each. Returns their accuracy."""
    probs = runner.predict(digits)
    if probs.shape != (len(digits), 10) or not np.isfinite(probs).all():
        raise ValueError(f"answered {probs.shape} with non-finite values, not {len(digits)}x10 probabilities")
    worst = float(np.abs(probs.sum(1) - 1).max())
    if worst > 0.05:
        raise ValueError(f"probabilities do not sum to 1 (off by up to {worst:.3f})")
    return float(np.mean(probs.argmax(1) == labels))


def artifact_entry(fmt: Format, path: Path, runner: Runner, seconds: float | None) -> Artifact:
    return Artifact(
        format=fmt.name,
        file=path.name,
        bytes=path.stat().st_size,
        sha256=sha256_file(path),
        runtime=fmt.runtime,
        precision=fmt.precision,
        description=fmt.description,
        input=runner.input,
        output=runner.output,
        export_seconds=None if seconds is None else round(seconds, 2),
    )


def export_artifact(
    fmt: Format, model, folder: Path, calibration: np.ndarray, mnist: Mnist, keep_float: tuple[str, ...] = ()
) -> Artifact:
    """Export one format, prove it loads in its own runtime and answers real digits; return its manifest entry.
    Raises on any failure (the caller records it and goes on with the other formats)."""
    path = folder / fmt.file
    keep_float = keep_float if fmt.gates.quantized else ()
    start = time.perf_counter()
    export_format(fmt, model, path, calibration, keep_float)
    seconds = time.perf_counter() - start
    runner = open_runner(fmt.runtime, path)
    accuracy = check_answers(runner, mnist.x_test[:CHECK_DIGITS], mnist.y_test[:CHECK_DIGITS])
    entry = artifact_entry(fmt, path, runner, seconds)
    if keep_float:  # what keeping layers in float did: the fully quantized twin, measured the same way
        entry.keep_float = list(keep_float)
        full = folder / f".full-{fmt.file}"
        export_format(fmt, model, full, calibration)
        full_probs = open_runner(fmt.runtime, full).predict(mnist.x_test)
        entry.without_keep_float = {
            "bytes": full.stat().st_size,
            "test_accuracy": float(np.mean(full_probs.argmax(1) == mnist.y_test)),
        }
        full.unlink()
    log(
        f"  {fmt.name:<15} {fmt.file:<22} {entry.bytes / 1024:8.1f} KB  {seconds:5.1f} s  "
        f"ok: loads in {fmt.runtime}, {CHECK_DIGITS} test digits {accuracy:.0%}"
    )
    return entry


def write_bundle(
    out: str | Path,
    model,
    training: dict,
    mnist: Mnist,
    formats: list[Format],
    calibration_count: int = 500,
    keep_float: tuple[str, ...] = (),
) -> Manifest:
    """Export ``model`` to every format into a fresh bundle at ``out``; return the manifest.

    ``training`` is the training record (TrainResult.describe() plus architecture facts)."""
    seed = training["config"]["seed"]
    calibration = calibration_images(mnist, calibration_count, seed)
    unknown = sorted(set(keep_float) - {layer.name for layer in model.layers if layer.weights})
    if unknown:
        layers = ", ".join(layer.name for layer in model.layers if layer.weights)
        raise BundleError(f"--keep-float {', '.join(unknown)}: not a layer with weights; the model has {layers}")

    with staged_folder(Path(out)) as staging:
        model.save(staging / KERAS.file)
        keras_runner = open_runner(KERAS.runtime, staging / KERAS.file)
        artifacts = [artifact_entry(KERAS, staging / KERAS.file, keras_runner, None)]
        reference = keras_runner.predict(mnist.x_test)
        np.save(staging / REFERENCE, reference)
        keras_accuracy = float(np.mean(reference.argmax(1) == mnist.y_test))
        (staging / LABELS).write_text("".join(f"{digit}\n" for digit in range(10)))
        (staging / README).write_bytes(resources.files("lenet_edge").joinpath("bundle_README.md").read_bytes())
        write_json(staging / TRAINING_RECORD, training)
        if training.get("history"):
            augmented = training["config"].get("augment", False)
            plot_training_curves(training["history"], staging / TRAINING_CURVES, training.get("best_epoch"), augmented)

        if formats:
            log(f"exporting {len(formats)} formats into {out} (int8 calibration: {calibration_count} training images)")
        failed = []
        deployed = deployment_graph(model) if formats else None
        for fmt in formats:
            try:
                artifacts.append(export_artifact(fmt, deployed, staging, calibration, mnist, keep_float))
            except Exception as exc:  # one format failing must not cost the others
                reason = one_line(exc)
                failed.append({"format": fmt.name, "file": fmt.file, "reason": reason[:500]})
                (staging / fmt.file).unlink(missing_ok=True)
                log(f"  {fmt.name:<15} FAILED: {reason[:200]}")

        manifest = Manifest(
            generator=GENERATOR,
            version=__version__,
            created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            app_contract="every model takes raw pixels 0-255 [batch, 28, 28, 1] (float32; uint8 for "
            "tflite-int8, scale 1, zero point 0) and outputs 10 probabilities; preprocessing is inside the graph",
            model=training["model"],
            labels=LABELS,
            seed=seed,
            deterministic=training.get("deterministic", False),
            determinism=training.get("determinism", ""),
            keras_test_accuracy=keras_accuracy,
            reference=FileRef(
                file=REFERENCE,
                bytes=(staging / REFERENCE).stat().st_size,
                sha256=sha256_file(staging / REFERENCE),
                what="float32 [10000, 10]: the Keras model's probabilities on the MNIST test images, in file "
                "order; verify's reference where TensorFlow is not installed",
            ),
            training={k: v for k, v in training.items() if k not in _KEPT_ELSEWHERE},
            dataset=mnist.describe(),
            calibration={"images": calibration_count, "from": "training images", "seed": seed},
            tools=tool_versions(),
            artifacts=artifacts,
            failed=failed,
        )
        write_manifest(staging, manifest)
    return manifest
