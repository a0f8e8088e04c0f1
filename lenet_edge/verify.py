"""verify: every artifact of a bundle judged on the 10,000 MNIST test images by its own runtime, against Keras.

Integrity first (sha256 and size against the manifest), then accuracy, agreement and probability error
against the Keras reference, a gate per precision, and the app contract (raw pixels in, no project code in
the path). Runs without TensorFlow: the reference is then the Keras answers stored in the bundle."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np

from .console import STATUS_ICON, log
from .data import Mnist
from .errors import BundleError, one_line
from .files import is_regular_file, sha256_file
from .formats import PRECISIONS, RUNTIMES, Gate
from .manifest import REFERENCE, Artifact, FileRef, Manifest, read_manifest
from .records import VerifyRow
from .runtimes import Runner, open_runner, runtime_missing

DEFAULT_GATES = {name: precision.verify for name, precision in PRECISIONS.items()}
MICRO_RUNTIME = "tflm"  # where verify runs the formats a microcontroller runs, beside their own runtime


def _integrity(bundle: Path, entry: Artifact | FileRef) -> str:
    """'' when the file is the one the manifest describes; otherwise what differs."""
    path = bundle / entry.file
    if not path.exists() and not path.is_symlink():
        return "missing file"
    if not is_regular_file(path):
        return "not a regular file"
    if path.stat().st_size != entry.bytes:
        return f"integrity: {path.stat().st_size} bytes, manifest says {entry.bytes}"
    if sha256_file(path) != entry.sha256:
        return "integrity: sha256 differs from the manifest (file changed after export)"
    return ""


def _claim(runner: Runner, entry: Artifact) -> str:
    """'' when the file computes in the precision its row claims (read from the file itself)."""
    found = runner.precision()
    if found is None or found == entry.precision:
        return ""
    return f"the file is {found}, not the {entry.precision} its row ({entry.format}) claims"


def _contract(runner: Runner, entry: Artifact, images: np.ndarray, predicted: np.ndarray) -> str:
    """The app's path: the manifest's stated input, raw pixels cast to its dtype and nothing else, and the
    output's argmax read as it comes. '' when it answers exactly as the runner does: where the cast pixels are
    the tensor the runner fed (quantized with the input's own scale and zero point), they are; the digits whose
    tensors differ are run the app's way (dequantizing the output keeps its argmax)."""
    stated, actual = entry.input.to_dict(), runner.input.to_dict()
    for key in ("dtype", "scale", "zero_point"):
        if stated[key] != actual[key]:
            return f"app contract: manifest says input {key} {stated[key]}, the model has {actual[key]}"
    if stated["scale"] not in (None, 1.0) or stated["zero_point"] not in (None, 0):
        return f"app contract: input scale {stated['scale']} zero point {stated['zero_point']} is not raw pixels"
    pixels = runner.pixels(images)
    apart = (pixels.astype(runner.input.dtype) != runner.input.encode(pixels)).reshape(len(pixels), -1).any(1)
    if not apart.any():  # the app's input is the very tensor the runner fed: the same answers
        return ""
    raw_top1 = runner.predict(images[apart], raw=True).argmax(1)
    differ = int(np.sum(raw_top1 != predicted[apart]))
    return f"app contract: raw pixels fed as the README says change {differ} answers" if differ else ""


def judge(
    fmt: str, runtime: str, precision: str, probs: np.ndarray, reference: np.ndarray, labels: np.ndarray, gate: Gate
) -> VerifyRow:
    """Metrics of one artifact's probabilities against the reference and the labels, and its gate verdict.
    Any NaN or Inf in the outputs fails the row: no |Δp| is computed from them (a comparison with NaN is
    always false, so no gate could catch it)."""
    predicted, expected = probs.argmax(1), reference.argmax(1)
    accuracy = float(np.mean(predicted == labels))
    finite = np.isfinite(probs)
    diff = np.abs(np.where(finite, probs, 0).astype(np.float64) - reference.astype(np.float64))
    confusion = np.zeros((10, 10), np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    delta_pt = round((accuracy - float(np.mean(expected == labels))) * 100, 4)
    agreement, max_abs_dp = float(np.mean(predicted == expected)), float(diff.max())
    row = VerifyRow(
        format=fmt,
        runtime=runtime,
        status="pass",
        accuracy=accuracy,
        delta_vs_keras_pt=delta_pt,
        agreement=agreement,
        max_abs_dp=max_abs_dp,
        mean_abs_dp=float(diff.mean()),
        precision=precision,
        gate=gate.describe(),
        per_class_accuracy=[round(float(confusion[d, d] / max(confusion[d].sum(), 1)), 6) for d in range(10)],
        confusion=confusion.tolist(),
    )
    failures = gate.failures(agreement, max_abs_dp, delta_pt)
    if not finite.all():
        images = int(np.sum(~finite.all(1)))
        failures.insert(0, f"non-finite outputs (NaN or Inf) on {images:,} of {len(probs):,} images")
        row.max_abs_dp = row.mean_abs_dp = None
    if failures:
        row.status, row.reason = "fail", "; ".join(failures)
    return row


def _reference(bundle: Path, manifest: Manifest, mnist: Mnist, have_tf: bool) -> tuple[np.ndarray, str]:
    """Keras's probabilities on the test set: those stored at export (the live Keras model is then judged
    against them like any artifact), or, for a bundle without them, the live Keras model's."""
    stored = manifest.reference
    if stored and not _integrity(bundle, stored):
        try:
            reference = np.load(bundle / stored.file, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:  # a pickled or broken file is never unpickled
            raise BundleError(f"{bundle / stored.file}: not a plain array file ({one_line(exc)[:120]})") from None
        if reference.shape != (len(mnist.x_test), 10):
            raise BundleError(f"{bundle}: {REFERENCE} holds {reference.shape}, not {len(mnist.x_test)} test images")
        if reference.dtype.kind != "f" or not np.isfinite(reference).all():
            raise BundleError(f"{bundle}: {REFERENCE} holds {reference.dtype} values that are not finite probabilities")
        return reference, f"the Keras answers stored at export ({REFERENCE})"
    keras_entry = manifest.artifact("keras")
    if have_tf and keras_entry and not _integrity(bundle, keras_entry):
        return open_runner("keras", bundle / keras_entry.file).predict(mnist.x_test), "the Keras model, run live"
    raise BundleError(f"{bundle}: no trustworthy Keras reference ({REFERENCE} missing or altered)")


def verify_bundle(
    bundle: str | Path,
    mnist: Mnist,
    gates: dict[str, Gate] | None = None,
    threads: int | None = None,
    use_keras: bool | None = None,
    micro_digits: int | None = None,
) -> dict:
    """Judge every artifact; return {'rows': [VerifyRow…], 'reference': …, 'images': …, 'seconds': …}.

    ``use_keras`` (default: whether TensorFlow is installed) runs the Keras model too; ``micro_digits`` judges
    the TFLite Micro rows on the first N test digits only (None: all; run and export's verify, where the same
    files were judged in LiteRT on all of them a moment before)."""
    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    gates = {**DEFAULT_GATES, **(gates or {})}
    start = time.perf_counter()
    have_tf = importlib.util.find_spec("tensorflow") is not None if use_keras is None else use_keras
    reference, reference_source = _reference(bundle, manifest, mnist, have_tf)
    labels = mnist.y_test
    log(f"verifying {bundle} on {len(labels)} test images against {reference_source}")

    rows: list[VerifyRow] = []
    skipped = 0  # microcontroller rows not run: no TFLite Micro here
    absent: dict[str, int] = {}  # rows not run: this install lacks their runtime (a one-runtime device)
    have_micro = runtime_missing(MICRO_RUNTIME) is None
    for entry in manifest.artifacts:
        if not entry.on_device and not have_tf:
            continue
        runtimes = [entry.runtime]
        if entry.spec.micro:  # the same file on a microcontroller's runtime, judged like any other row
            runtimes += [MICRO_RUNTIME] if have_micro else []
            skipped += not have_micro
        for runtime in runtimes:
            if runtime_missing(runtime):
                absent[runtime] = absent.get(runtime, 0) + 1
                continue
            digits = micro_digits if runtime == MICRO_RUNTIME else None
            row = _verify_artifact(bundle, entry, mnist, reference, gates, threads, runtime, digits)
            rows.append(row)
            mark = STATUS_ICON[row.status]
            figures = f"accuracy {row.accuracy:.2%}, agreement {row.agreement:.2%}" if row.accuracy is not None else ""
            figures += f" (first {row.images:,} digits)" if row.images else ""
            log(f"  {mark} {row.format:<15} {row.runtime:<12} {figures}  {row.reason}".rstrip())
    if skipped:
        log(f"  (TFLite Micro is not installed here: {skipped} microcontroller rows not run)")
    not_run = [f"{skipped} TFLite Micro rows: tflite-micro is not installed here"] if skipped else []
    for runtime, count in absent.items():
        not_run.append(f"{count} {RUNTIMES[runtime].label} rows: {runtime_missing(runtime)}")
        log(f"  ({RUNTIMES[runtime].label} is not installed here: {count} rows not run)")
    return {
        "rows": rows,
        "not_run": not_run,
        "reference": reference_source,
        "images": len(labels),
        "seconds": round(time.perf_counter() - start, 2),
        "gates": {name: gate.describe() for name, gate in gates.items()},
    }


def _c_files(bundle: Path, entry: Artifact) -> str:
    """'' when the C files of a microcontroller row are those the manifest lists and their array is the model
    file byte for byte; otherwise what differs."""
    refs = entry.micro.c_files if entry.micro else []
    for ref in refs:
        if problem := _integrity(bundle, ref):
            return f"{ref.file}: {problem}"
    model = (bundle / entry.file).read_bytes()
    for ref in refs:
        if ref.file.endswith(".c") and c_array_bytes((bundle / ref.file).read_text()) != model:
            return f"{ref.file}: its array is not {entry.file} byte for byte"
    return ""


def c_array_bytes(source: str) -> bytes:
    """The bytes of the one array initializer in a C source of ours ({ 0x.., 0x.., … })."""
    body = source[source.index("= {") + 3 : source.index("};")]
    return bytes(int(value, 16) for value in body.replace("\n", " ").split(",") if value.strip())


def _verify_artifact(
    bundle: Path,
    entry: Artifact,
    mnist: Mnist,
    reference: np.ndarray,
    gates: dict[str, Gate],
    threads: int | None,
    runtime: str,
    digits: int | None = None,
) -> VerifyRow:
    """One file in one runtime judged on the test digits (the first ``digits`` only, when given)."""
    sample = slice(None) if digits is None or digits >= len(mnist.x_test) else slice(digits)
    images, labels, reference = mnist.x_test[sample], mnist.y_test[sample], reference[sample]
    precision = entry.precision
    gate = gates[precision]
    integrity = _integrity(bundle, entry)
    if integrity in ("missing file", "not a regular file"):
        return VerifyRow(entry.format, runtime, "error", reason=integrity, precision=precision)
    start = time.perf_counter()
    try:
        options = {"threads": threads} if entry.on_device and runtime == entry.runtime else {}
        runner = open_runner(runtime, bundle / entry.file, **options)
        probs = runner.predict(images)
    except Exception as exc:  # a file that will not load or run is reported, not raised
        reason = one_line(exc)
        if integrity:
            reason = f"{integrity}; {reason}"
        return VerifyRow(entry.format, runtime, "error", reason=reason[:300], precision=precision)
    row = judge(entry.format, runtime, precision, probs, reference, labels, gate)
    row.images = None if sample.stop is None else len(labels)
    if runtime != entry.runtime or entry.spec.variant_of:  # the same model again: its agreement says how alike,
        row.per_class_accuracy, row.confusion = [], []  # one confusion matrix is enough
    row.size_bytes = (bundle / entry.file).stat().st_size
    checks = [integrity, _claim(runner, entry), _contract(runner, entry, images, probs.argmax(1))]
    if runtime == MICRO_RUNTIME:
        checks.append(_c_files(bundle, entry))
    problems = [p for p in checks if p]
    if problems:
        row.status = "fail"
        row.reason = "; ".join(problems + ([row.reason] if row.reason else []))
    row.seconds = round(time.perf_counter() - start, 2)
    _acceleration(row, runner)
    return row


def _acceleration(row: VerifyRow, runner: Runner) -> None:
    """What the runtime accelerates, from its per-op profile: XNNPACK partitions and the ops left out, or the
    float nodes of a quantized ONNX model."""
    found = runner.op_profile(runs=5) or {}
    if "partitions" in found:
        row.partitions = found["partitions"]
        row.left_to_cpu = [f"{op['op']} ({op['layer']})" for op in found["left_to_cpu"]]
    if found.get("quantized"):
        row.float_nodes = found["float_nodes"]
