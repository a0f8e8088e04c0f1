"""The deployable bundle: the Keras model, every export, labels, training record and ``manifest.json``.

A bundle is built in a staging folder beside its destination and swapped in only once complete, so an
interrupted run leaves the previous bundle as it was."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
from importlib import metadata, resources
from pathlib import Path

import numpy as np

from . import __version__
from .data import Mnist
from .errors import BundleError, one_line
from .formats import KERAS, Format
from .model import deployment_graph
from .runtimes import Runner, open_runner

MANIFEST = "manifest.json"
GENERATOR = "lenet-edge"
LABELS = "labels.txt"
TRAINING_RECORD = "training.json"
TRAINING_CURVES = "training_curves.png"
README = "README.md"
REFERENCE = "keras_test_probabilities.npy"  # Keras's answers on the 10,000 test images: verify's reference
CHECK_DIGITS = 100  # real test digits every export must answer right after it is written
_KEPT_ELSEWHERE = ("history", "model", "deterministic", "determinism")  # training.json keys the manifest
# states once, at its top level (the history stays in training.json)
TOOLS = ("tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "ai-edge-litert", "numpy")


def log(message: str) -> None:
    print(message, flush=True)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tool_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "lenet-edge": __version__}
    for dist in TOOLS:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    return versions


def write_json(path: Path, data) -> None:
    """Write JSON through a temp file and a rename: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def read_manifest(bundle: str | Path) -> dict:
    path = Path(bundle) / MANIFEST
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise BundleError(f"{bundle}: not a lenet-edge bundle (no {MANIFEST})") from None
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path}: unreadable manifest ({exc})") from None


def _is_bundle(folder: Path) -> bool:
    with contextlib.suppress(BundleError, AttributeError):
        return read_manifest(folder).get("generator") == GENERATOR
    return False


def _check_replaceable(out: Path) -> None:
    """Only an empty folder, one holding just a README, or a lenet-edge bundle may be replaced."""
    if not out.exists():
        return
    if not out.is_dir():
        raise BundleError(f"{out}: exists and is not a folder; choose another --out")
    foreign = [p.name for p in out.iterdir() if p.name not in (README, ".gitignore")]
    if foreign and not _is_bundle(out):
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


def tensor_entry(runner: Runner) -> dict:
    return {"input": runner.input.to_dict(), "output": runner.output.to_dict()}


def check_answers(runner: Runner, digits: np.ndarray, labels: np.ndarray) -> float:
    """Feed real test digits raw; demand 10 finite probabilities summing to 1 each. Returns their accuracy."""
    probs = runner.predict(digits)
    if probs.shape != (len(digits), 10) or not np.isfinite(probs).all():
        raise ValueError(f"answered {probs.shape} with non-finite values, not {len(digits)}x10 probabilities")
    worst = float(np.abs(probs.sum(1) - 1).max())
    if worst > 0.05:
        raise ValueError(f"probabilities do not sum to 1 (off by up to {worst:.3f})")
    return float(np.mean(probs.argmax(1) == labels))


def artifact_entry(fmt: Format, path: Path, runner: Runner, seconds: float | None) -> dict:
    entry = {
        "format": fmt.name,
        "file": path.name,
        "bytes": path.stat().st_size,
        "sha256": sha256_file(path),
        "runtime": fmt.runtime,
        "precision": fmt.precision,
        "description": fmt.description,
        **tensor_entry(runner),
    }
    if seconds is not None:
        entry["export_seconds"] = round(seconds, 2)
    return entry


def export_artifact(
    fmt: Format, model, folder: Path, calibration: np.ndarray, mnist: Mnist, keep_float: tuple[str, ...] = ()
) -> dict:
    """Export one format, prove it loads in its own runtime and answers real digits; return its manifest entry.
    Raises on any failure (the caller records it and goes on with the other formats)."""
    from .exporters import export_format

    path = folder / fmt.file
    keep_float = keep_float if fmt.precision == "int8" else ()
    start = time.perf_counter()
    export_format(fmt, model, path, calibration, keep_float)
    seconds = time.perf_counter() - start
    runner = open_runner(fmt.runtime, path)
    accuracy = check_answers(runner, mnist.x_test[:CHECK_DIGITS], mnist.y_test[:CHECK_DIGITS])
    entry = artifact_entry(fmt, path, runner, seconds)
    if keep_float:  # what keeping layers in float did: the fully quantized twin, measured the same way
        entry["keep_float"] = list(keep_float)
        full = folder / f".full-{fmt.file}"
        export_format(fmt, model, full, calibration)
        full_probs = open_runner(fmt.runtime, full).predict(mnist.x_test)
        entry["without_keep_float"] = {
            "bytes": full.stat().st_size,
            "test_accuracy": float(np.mean(full_probs.argmax(1) == mnist.y_test)),
        }
        full.unlink()
    log(
        f"  {fmt.name:<15} {fmt.file:<22} {entry['bytes'] / 1024:8.1f} KB  {seconds:5.1f} s  "
        f"ok: loads in {fmt.runtime}, {CHECK_DIGITS} test digits {accuracy:.0%}"
    )
    return entry


def calibration_images(mnist: Mnist, count: int, seed: int) -> np.ndarray:
    """The seeded pick of training images that calibrates the int8 models (the manifest records count and seed)."""
    if not 1 <= count <= len(mnist.x_train):
        raise BundleError(f"calibration needs 1 to {len(mnist.x_train)} images, not {count}")
    pick = np.random.default_rng(seed).choice(len(mnist.x_train), count, replace=False)
    return mnist.x_train[np.sort(pick)]


def write_bundle(
    out: str | Path,
    model,
    training: dict,
    mnist: Mnist,
    formats: list[Format],
    calibration_count: int = 500,
    keep_float: tuple[str, ...] = (),
) -> dict:
    """Export ``model`` to every format into a fresh bundle at ``out``; return the manifest.

    ``training`` is the training record (TrainResult.describe() plus architecture facts)."""
    from .plots import plot_training_curves

    seed = training["config"]["seed"]
    calibration = calibration_images(mnist, calibration_count, seed)
    unknown = sorted(set(keep_float) - {layer.name for layer in model.layers if layer.weights})
    if unknown:
        layers = ", ".join(layer.name for layer in model.layers if layer.weights)
        raise BundleError(f"--keep-float {', '.join(unknown)}: not a layer with weights; the model has {layers}")

    with staged_folder(Path(out)) as staging:
        model.save(staging / KERAS.file)
        keras_runner = open_runner("keras", staging / KERAS.file)
        artifacts = [artifact_entry(KERAS, staging / KERAS.file, keras_runner, None)]
        reference = keras_runner.predict(mnist.x_test)
        np.save(staging / REFERENCE, reference)
        keras_accuracy = float(np.mean(reference.argmax(1) == mnist.y_test))
        (staging / LABELS).write_text("".join(f"{digit}\n" for digit in range(10)))
        shutil.copyfile(resources.files("lenet_edge").joinpath("bundle_README.md"), staging / README)
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

        manifest = {
            "generator": GENERATOR,
            "version": __version__,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "app_contract": "every model takes raw pixels 0-255 [batch, 28, 28, 1] (float32; uint8 for "
            "tflite-int8, scale 1, zero point 0) and outputs 10 probabilities; preprocessing is inside the graph",
            "model": training["model"],
            "labels": LABELS,
            "seed": seed,
            "deterministic": training.get("deterministic", False),
            "determinism": training.get("determinism", ""),
            "keras_test_accuracy": keras_accuracy,
            "reference": {
                "file": REFERENCE,
                "bytes": (staging / REFERENCE).stat().st_size,
                "sha256": sha256_file(staging / REFERENCE),
                "what": "float32 [10000, 10]: the Keras model's probabilities on the MNIST test images, in file "
                "order; verify's reference where TensorFlow is not installed",
            },
            "training": {k: v for k, v in training.items() if k not in _KEPT_ELSEWHERE},
            "dataset": mnist.describe(),
            "calibration": {"images": calibration_count, "from": "training images", "seed": seed},
            "tools": tool_versions(),
            "artifacts": artifacts,
            "failed": failed,
        }
        write_json(staging / MANIFEST, manifest)
    return manifest
