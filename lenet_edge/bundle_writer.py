"""Writes a bundle: the Keras model, every export (each proven to load and answer right after it is written),
labels, training record and ``manifest.json``.

A bundle is built in a staging folder beside its destination and swapped in only once complete, so an
interrupted run leaves the previous bundle as it was."""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from . import __version__
from .console import interrupt_note, log
from .data import Mnist, calibration_images
from .errors import BundleError, UnsupportedModelError, UsageError, one_line
from .exporters import export_format
from .exporters.c_model import generate as generate_c_model
from .exporters.c_source import c_source
from .files import UMASK, atomic_output, is_regular_file, sha256_file, write_json
from .formats import KERAS, Format
from .host import tool_versions
from .manifest import (
    GENERATOR,
    LABELS,
    README,
    REFERENCE,
    TIMINGS,
    TRAINING_CURVES,
    TRAINING_RECORD,
    Artifact,
    CModelFiles,
    FileRef,
    Manifest,
    Micro,
    is_bundle,
    is_bundle_file,
    is_npu_folder,
    read_manifest,
    write_manifest,
)
from .model import REWRITE_COST, deployment
from .model_origin import TRAINED_HERE
from .plots import plot_training_curves
from .runtimes import Runner, open_runner
from .runtimes.litert import graph_ops
from .runtimes.tflm import TFLMRunner


@dataclass
class Int8Trial:
    """A quantized format of the bundle being written, and how to export it again with other settings: what a
    remedy for an int8 file that misses its gate works with (``write_bundle``'s ``remedy``)."""

    fmt: Format
    model: Any  # the model the bundle holds (its layers are what keep_float names)
    deployed: Any  # the graph the exports are converted from
    folder: Path  # where the format's file is written (the bundle's staging folder)
    seed: int  # of the calibration pick
    reference: np.ndarray  # the Keras model's probabilities on the test digits
    mnist: Mnist
    calibration: int  # training digits the first export was calibrated on
    keep_float: tuple[str, ...]  # layers the first export left in float
    export: Callable[[int, tuple[str, ...]], Artifact]  # the format exported again: (calibration digits, layers)


Int8Remedy = Callable[[Int8Trial, Artifact], Artifact]

CHECK_DIGITS = 100  # real test digits every export must answer right after it is written
_KEPT_ELSEWHERE = ("history", "model", "deterministic", "determinism")  # training.json keys the manifest
# states once, at its top level (the history stays in training.json)


def foreign_files(out: Path) -> list[str]:
    """The entries of ``out`` that this tool did not write: all of them unless ``out`` is a bundle of ours,
    then those that are neither its manifest's files nor the reports' (a README.md identical to the one a
    bundle gets counts as ours: the checkout's export/ folder holds just that)."""
    readme = resources.files("lenet_edge").joinpath("bundle_README.md").read_bytes()
    try:
        manifest = read_manifest(out)
    except BundleError:
        manifest = None
    foreign = []
    for path in sorted(out.iterdir()):
        if path.name == README and path.is_file() and path.read_bytes() == readme:
            continue
        if manifest is not None and is_regular_file(path) and is_bundle_file(path.name, manifest):
            continue
        if manifest is not None and is_npu_folder(path, manifest):
            continue
        foreign.append(path.name)
    return foreign


def check_output_folder(out: str | Path) -> Path:
    """Fail before any work if ``out`` cannot become a bundle: it holds anything this tool did not write, it
    cannot be replaced, or its parent is not writable."""
    out = Path(out).absolute()
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise BundleError(f"{out}: exists and is not a folder; choose another --out")
    if out.exists():
        foreign = foreign_files(out)
        if foreign:
            what = "is not a lenet-edge bundle" if not is_bundle(out) else "holds files lenet-edge did not write"
            raise BundleError(
                f"{out}: {what} ({', '.join(foreign[:3])}{' …' if len(foreign) > 3 else ''}); nothing was touched: "
                "move them out or choose another --out"
            )
        if not os.access(out, os.W_OK):
            raise BundleError(f"{out}: not writable; choose another --out")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BundleError(f"{out}: cannot create its folder ({exc.strerror})") from None
    if not os.access(out.parent, os.W_OK):
        raise BundleError(f"{out.parent}: not writable; choose another --out")
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_leftovers(out: Path) -> list[str]:
    """Remove what a killed run left beside ``out`` (its staging folder, or the previous bundle it was
    swapping out, which goes back to ``out`` if ``out`` is missing); return what it did."""
    done = []
    for path in sorted(out.parent.glob(f".{out.name}.*-*")):
        kind, _, rest = path.name.removeprefix(f".{out.name}.").partition("-")
        pid = rest.split("-", 1)[0]
        if kind not in ("staging", "old") or not pid.isdigit() or _alive(int(pid)) or not path.is_dir():
            continue
        previous = path / out.name
        if kind == "old" and previous.is_dir() and not out.exists():
            os.replace(previous, out)
            done.append(f"restored the previous bundle {out} from an interrupted swap")
        shutil.rmtree(path, ignore_errors=True)
        done.append(f"removed {path.name}, left by an interrupted run")
    return done


def _folder_beside(out: Path, kind: str) -> Path:
    """A new folder beside ``out``, named for this process (so a later run can tell it was left behind),
    with the usual permissions."""
    folder = Path(tempfile.mkdtemp(prefix=f".{out.name}.{kind}-{os.getpid()}-", dir=out.parent))
    os.chmod(folder, 0o777 & ~UMASK)
    return folder


@contextlib.contextmanager
def staged_folder(out: Path):
    """Yield an empty staging folder beside ``out``; ``publish`` moves it into place. Whatever stops the block
    (an error, Ctrl-C, SIGTERM) removes the staging folder and leaves ``out`` as it was."""
    out = check_output_folder(out)
    for line in clean_leftovers(out):
        log(line)
    staging = _folder_beside(out, "staging")
    existed = out.exists()
    interrupt_note(f"{out} was left as it was" if existed else f"nothing was written to {out}")
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish(staging: Path, out: Path, failed: bool) -> Path:
    """Put a finished staging folder in place: it replaces ``out`` in one swap, unless formats failed and a
    previous bundle is there, which then stays as it was, the attempt going to ``out``.failed beside it.
    Returns where the attempt went."""
    out = out.absolute()
    if failed and out.exists():
        attempt = out.with_name(f"{out.name}.failed")
        if attempt.exists() and (attempt.is_symlink() or not attempt.is_dir() or foreign_files(attempt)):
            attempt = _folder_beside(out, "failed")  # never replace what we did not write
        elif attempt.exists():
            shutil.rmtree(attempt)
        os.replace(staging, attempt)
        return attempt
    if out.exists():
        old = _folder_beside(out, "old")
        os.replace(out, old / out.name)
        os.replace(staging, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, out)
    interrupt_note(f"{out} is complete; what came after writing it did not finish")
    return out


APP_CONTRACT = (
    "every model takes raw pixels 0-255 [batch, 28, 28, 1] (float32; uint8 for tflite-int8, scale 1, zero point 0; "
    "tflite-rgb-int8 takes a uint8 RGB image [1, 28, 28, 3]) and outputs 10 probabilities; preprocessing is inside "
    "the graph"
)


def describe_file(fmt: Format, seed: int, source_sha256: str, model: dict) -> dict[str, str]:
    """What an exported file records about itself in its own metadata: enough for an app or a reviewer that
    holds the file alone."""
    return {
        "producer": f"{GENERATOR} {__version__}",
        "format": fmt.name,
        "precision": fmt.precision,
        "description": fmt.description,
        "architecture": str(model.get("architecture", "")),
        "labels": ",".join(str(digit) for digit in range(10)),
        "input": (
            "raw pixels 0-255, an RGB image [1, 28, 28, 3] (made gray inside the graph)"
            if fmt.options.get("color") == "rgb"
            else "raw pixels 0-255, [batch, 28, 28, 1]"
        )
        + ", no normalisation: it is inside the graph",
        "output": "10 probabilities, in the order of the labels",
        "app_contract": APP_CONTRACT,
        "seed": str(seed),
        "source_model_sha256": source_sha256,
        "license": "Apache-2.0",
    }


def check_answers(runner: Runner, digits: np.ndarray, labels: np.ndarray) -> float:
    """Feed real test digits raw; demand 10 finite probabilities summing to 1 each. Returns their accuracy."""
    probs = runner.predict(digits)
    if probs.shape != (len(digits), 10) or not np.isfinite(probs).all():
        raise ValueError(f"answered {probs.shape} with non-finite values, not {len(digits)}x10 probabilities")
    worst = float(np.abs(probs.sum(1) - 1).max())
    if worst > 0.05:
        raise ValueError(f"probabilities do not sum to 1 (off by up to {worst:.3f})")
    return float(np.mean(probs.argmax(1) == labels))


def artifact_entry(fmt: Format, path: Path, runner: Runner) -> Artifact:
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
    )


def export_artifact(
    fmt: Format,
    model,
    folder: Path,
    calibration: np.ndarray,
    mnist: Mnist,
    keep_float: tuple[str, ...] = (),
    about: dict[str, str] | None = None,
) -> tuple[Artifact, float]:
    """Export one format, prove it loads in its own runtime and answers real digits; return its manifest entry
    and the seconds the export took. Raises on any failure (the caller records it and goes on)."""
    path = folder / fmt.file
    keep_float = keep_float if fmt.gates.quantized else ()
    start = time.perf_counter()
    export_format(fmt, model, path, calibration, keep_float, about)
    seconds = time.perf_counter() - start
    runner = open_runner(fmt.runtime, path)
    accuracy = check_answers(runner, mnist.x_test[:CHECK_DIGITS], mnist.y_test[:CHECK_DIGITS])
    entry = artifact_entry(fmt, path, runner)
    entry.micro = measure_micro(fmt, path, mnist)
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
    return entry, seconds


def measure_micro(fmt: Format, path: Path, mnist: Mnist) -> Micro | None:
    """For a format a microcontroller runs: the arena TFLite Micro uses for it (after an inference on a real
    digit) and its flash, and, where the table asks, the C source/header pair an MCU build compiles in. None,
    said in the log, where tflite-micro is not installed."""
    if not fmt.micro:
        return None
    if importlib.util.find_spec("tflite_micro") is None:
        log(f"  {fmt.name:<15} no TFLite Micro here (pip install 'lenet-edge[consumers]'): arena not measured")
        return None
    runner = TFLMRunner(path)
    answer = runner.predict(mnist.x_test[:1]).argmax(1)
    arena = runner.arena_bytes()
    micro = Micro(f"tflite-micro {importlib.metadata.version('tflite-micro')}", arena, path.stat().st_size)
    if fmt.c_array:
        stem = path.stem
        header, source = c_source(path.read_bytes(), stem, micro_contract(runner, path, arena))
        for name, text, what in (
            (f"{stem}_model_data.h", header, f"C header: the tensor contract and g_{stem}_model_data"),
            (f"{stem}_model_data.c", source, f"C source: {path.name} byte for byte, a 16-byte aligned array"),
        ):
            (path.parent / name).write_text(text)
            micro.c_files.append(FileRef(name, len(text.encode()), sha256_file(path.parent / name), what))
        micro.c_model = write_c_model(path)
    log(f"  {'':<15} TFLite Micro: arena {arena:,} bytes, flash {micro.flash_bytes:,} bytes, digit {answer[0]}")
    return micro


def write_c_model(path: Path) -> CModelFiles:
    """The dependency-free C model of the .tflite at ``path`` (``<stem>.c``/``<stem>.h`` beside it), or, when the
    generator does not implement one of its ops, why not (said in the log; the bundle keeps the C array only)."""
    try:
        model = generate_c_model(path.read_bytes(), path.stem)
    except UnsupportedModelError as exc:
        log(f"  {'':<15} no C model: {exc} (the C array alone is written)")
        return CModelFiles(refused=str(exc))
    files = []
    for name, text in model.files.items():
        (path.parent / name).write_text(text)
        what = (
            f"C source: {path.name} as plain C99, bit for bit as TFLite Micro, no library needed"
            if name.endswith(".c")
            else f"C header: {path.stem}_predict() and the tensor contract"
        )
        files.append(FileRef(name, len(text.encode()), sha256_file(path.parent / name), what))
    log(
        f"  {'':<15} C model: {model.weight_bytes:,} bytes of weights (flash), {model.scratch_bytes:,} bytes of "
        f"scratch (RAM), {len(model.ops)} ops"
    )
    return CModelFiles(files, model.scratch_bytes, model.weight_bytes, list(model.ops))


def micro_contract(runner: TFLMRunner, path: Path, arena: int) -> list[str]:
    """What an MCU project must know of the model, for the C header's comment."""

    def tensor(kind: str, spec, meaning: str) -> str:
        quantization = f", scale {spec.scale:g}, zero point {spec.zero_point}" if spec.quantized else ""
        return f"{kind} 0: {spec.dtype} {spec.shape}{quantization}: {meaning}"

    ops = graph_ops(path)
    decode = (
        f"probability of digit k = (output[k] - {runner.output.zero_point}) * {runner.output.scale:g}"
        if runner.output.quantized
        else "output[k] is the probability of digit k"
    )
    return [
        tensor("input ", runner.input, "raw MNIST pixels 0-255, white digit on black, 28 rows of 28, row-major;"),
        "         copy them unchanged into the input tensor: no normalisation, it is inside the graph.",
        tensor("output", runner.output, f"{decode}; the answer is the argmax."),
        f"Ops to register ({len(ops)}, e.g. MicroMutableOpResolver<{len(ops)}>): {', '.join(ops)}.",
        f"Tensor arena: {arena:,} bytes used by TFLite Micro's reference kernels on a 64-bit host (a 32-bit MCU",
        "needs about as much); give it a little more, 16-byte aligned, and check arena_used_bytes() on the device.",
        f"Flash: {path.stat().st_size:,} bytes, the .tflite byte for byte (its metadata and labels included).",
    ]


ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip can hold: every member of the .keras gets it


def source_date() -> dt.datetime | None:
    """$SOURCE_DATE_EPOCH as a UTC time: the one timestamp a reproducible bundle may carry (None when unset)."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "")
    if not value.isdigit():
        return None
    return dt.datetime.fromtimestamp(int(value), dt.timezone.utc)


def save_keras(model, path: Path) -> None:
    """``model.save`` made reproducible: Keras stamps the save time into metadata.json, numbers shared objects
    by their memory addresses in config.json and dates its zip members. Here the members keep their order
    and bytes but for those: no save time (or $SOURCE_DATE_EPOCH's), shared objects numbered in order of
    appearance, every member dated 1980-01-01. Loads exactly as Keras wrote it."""
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        members = [(info.filename, archive.read(info)) for info in archive.infolist()]
    renumbered: dict[int, int] = {}

    def renumber(node):
        if isinstance(node, dict):
            if isinstance(node.get("shared_object_id"), int):
                node["shared_object_id"] = renumbered.setdefault(node["shared_object_id"], len(renumbered) + 1)
            for value in node.values():
                renumber(value)
        elif isinstance(node, list):
            for value in node:
                renumber(value)

    stamped = source_date()
    with atomic_output(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members:
            if name == "metadata.json":
                metadata = json.loads(data)
                metadata.pop("date_saved", None)
                if stamped is not None:
                    metadata["date_saved"] = stamped.strftime("%Y-%m-%d@%H:%M:%S")
                data = json.dumps(metadata).encode()
            elif name == "config.json":
                config = json.loads(data)
                renumber(config)
                data = json.dumps(config).encode()
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)


def check_keep_float(model, keep_float: tuple[str, ...]) -> None:
    """Every layer named for --keep-float must be a layer of ``model`` with weights."""
    unknown = sorted(set(keep_float) - {layer.name for layer in model.layers if layer.weights})
    if unknown:
        layers = ", ".join(layer.name for layer in model.layers if layer.weights)
        raise UsageError(f"--keep-float {', '.join(unknown)}: not a layer with weights; the model has {layers}")


class Watcher(Protocol):
    """What follows a bundle as it is written (verify's early start): the Keras reference, then each file."""

    def reference(self, reference: np.ndarray) -> None: ...

    def written(self, staging: Path, entry: Artifact) -> None: ...


def write_bundle(
    out: str | Path,
    model,
    training: dict,
    mnist: Mnist,
    formats: list[Format],
    calibration_count: int = 500,
    keep_float: tuple[str, ...] = (),
    training_seconds: float | None = None,
    remedy: Int8Remedy | None = None,
    watcher: Watcher | None = None,
) -> tuple[Manifest, Path]:
    """Export ``model`` to every format into a fresh bundle at ``out``; return the manifest and where the bundle
    went: ``out``, or, when a format failed and a previous bundle is at ``out``, ``out``.failed (the previous
    bundle stays as it was).

    ``training`` is the training record (TrainResult.describe() plus architecture facts); ``remedy``, where
    given, sees each int8 file as written and returns the one to ship (a brought model's); ``watcher``, where
    given, is told the Keras reference and each file once written and checked (verify begins meanwhile)."""
    seed = training["config"]["seed"]
    calibration = calibration_images(mnist, calibration_count, seed)
    check_keep_float(model, keep_float)
    stamped = source_date()

    with staged_folder(Path(out)) as staging:
        save_keras(model, staging / KERAS.file)
        keras_runner = open_runner(KERAS.runtime, staging / KERAS.file)
        artifacts = [artifact_entry(KERAS, staging / KERAS.file, keras_runner)]
        export_seconds: dict[str, float] = {}
        reference = keras_runner.predict(mnist.x_test)
        np.save(staging / REFERENCE, reference)
        if watcher:
            watcher.reference(reference)
        keras_accuracy = float(np.mean(reference.argmax(1) == mnist.y_test))
        deployed, skipped = deployment(model) if formats else (None, None)
        facts = {"name": model.name, "origin": TRAINED_HERE} | training["model"]
        if formats:
            facts["deployment_rewrite"] = "applied" if skipped is None else f"skipped: {skipped}; costs: {REWRITE_COST}"
            if skipped:
                log(f"  (deployment rewrite skipped: {skipped}; the graph is exported as it is)")
        (staging / LABELS).write_text("".join(f"{digit}\n" for digit in range(10)))
        (staging / README).write_bytes(resources.files("lenet_edge").joinpath("bundle_README.md").read_bytes())
        write_json(staging / TRAINING_RECORD, training | {"model": facts})
        if training.get("history"):
            augmented = training["config"].get("augment", False)
            plot_training_curves(training["history"], staging / TRAINING_CURVES, training.get("best_epoch"), augmented)

        failed = []
        export_args = (calibration_count, keep_float)
        if formats:
            log(f"exporting {len(formats)} formats into {out} (int8 calibration: {calibration_count} training images)")
        for fmt in formats:
            try:
                about = describe_file(fmt, seed, artifacts[0].sha256, training["model"])
                entry, export_seconds[fmt.name] = export_artifact(
                    fmt, deployed, staging, calibration, mnist, keep_float, about
                )
                if remedy is not None and fmt.gates.quantized:
                    entry = remedy(
                        _trial(fmt, model, deployed, staging, reference, mnist, seed, about, export_args), entry
                    )
                artifacts.append(entry)
                if watcher:
                    watcher.written(staging, entry)
            except Exception as exc:  # one format failing must not cost the others
                reason = one_line(exc)
                failed.append({"format": fmt.name, "file": fmt.file, "reason": reason[:500]})
                (staging / fmt.file).unlink(missing_ok=True)
                log(f"  {fmt.name:<15} FAILED: {reason[:200]}")

        manifest = Manifest(
            generator=GENERATOR,
            version=__version__,
            created=None if stamped is None else stamped.isoformat(timespec="seconds"),
            app_contract=APP_CONTRACT,
            model=facts,
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
        _write_timings(staging, training_seconds, export_seconds)
        where = publish(staging, Path(out), failed=bool(failed))
    return manifest, where


def _write_timings(staging: Path, training_seconds: float | None, export_seconds: dict[str, float]) -> None:
    """timings.json: the wall-clock facts of this run, the one file two runs of the same seed write differently."""
    timings = {
        "written": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "training_seconds": None if training_seconds is None else round(training_seconds, 1),
        "export_seconds": {name: round(seconds, 2) for name, seconds in export_seconds.items()},
        "what": "wall-clock facts of the run that wrote this bundle: the one file of it that differs between "
        "two runs of the same seed",
    }
    write_json(staging / TIMINGS, timings)


def _trial(
    fmt: Format,
    model,
    deployed,
    folder: Path,
    reference: np.ndarray,
    mnist: Mnist,
    seed: int,
    about: dict[str, str],
    first: tuple[int, tuple[str, ...]],
) -> Int8Trial:
    """An int8 format just written, with the export a remedy calls to write it again otherwise."""

    def again(count: int, keep: tuple[str, ...]) -> Artifact:
        images = calibration_images(mnist, count, seed)
        return export_artifact(fmt, deployed, folder, images, mnist, keep, about)[0]

    return Int8Trial(fmt, model, deployed, folder, seed, reference, mnist, first[0], first[1], again)
