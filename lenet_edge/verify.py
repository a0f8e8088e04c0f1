"""verify: every artifact of a bundle judged on the 10,000 MNIST test images by its own runtime, against Keras.

Integrity first (sha256 and size against the manifest), then accuracy, agreement and probability error
against the Keras reference, a gate per precision, and the app contract (raw pixels in, no project code in
the path). Runs without TensorFlow: the reference is then the Keras answers stored in the bundle."""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .console import STATUS_ICON, held, log
from .data import Mnist
from .errors import BundleError, one_line
from .files import is_regular_file, sha256_file
from .forks import Forks, Lanes, serve
from .formats import GPU_FP16, PRECISIONS, RUNTIMES, Gate
from .host import usable_cores
from .manifest import REFERENCE, Artifact, FileRef, Manifest, parse_artifact, read_manifest
from .records import VerifyRow
from .runtimes import RUNNERS, Runner, RuntimeNotInstalled, open_runner, runtime_missing

DEFAULT_GATES = {name: precision.verify for name, precision in PRECISIONS.items()}
MICRO_RUNTIME = "tflm"  # where verify runs the formats a microcontroller runs, beside their own runtime
C_RUNTIME = "c"  # the bundle's C model of a micro format, compiled here: judged against Keras and byte for byte
# against TFLite Micro on the same file
GPU_RUNTIME = "litert-gpu"  # where verify runs every .tflite beside LiteRT on the CPU, in both its arithmetics
GPU_DIGITS = 1000  # test digits the GPU rows judge by default: a seeded sample (a CPU Vulkan driver is slow)
GPU_SEED = 0


def row_name(row: VerifyRow | dict) -> str:
    """How the verdict names a row: its format, and where the same file runs elsewhere, 'in tflm' or
    'in litert-gpu (fp16)'."""
    fmt, runtime, delegate = (
        (row["format"], row["runtime"], row.get("delegate", "")) if isinstance(row, dict)
        else (row.format, row.runtime, row.delegate)
    )  # fmt: skip
    if runtime == GPU_RUNTIME:
        return f"{fmt} in {runtime} ({delegate})"
    return fmt + (f" in {runtime}" if runtime in (MICRO_RUNTIME, C_RUNTIME) else "")


def gpu_gate(gates: dict[str, Gate], precision: str, delegate: str) -> Gate:
    """A GPU row's gate: the file's own; in fp16 arithmetic, each bound of the file's gate loosened to the fp16
    arithmetic's where that is looser (a float file is held to fp16's, a quantized file to its own)."""
    own = gates[precision]
    if delegate != "fp16":
        return own
    arithmetic = gates[GPU_FP16]

    def looser(a: float | None, b: float | None, lowest: bool) -> float | None:  # a: the file's bound, b: fp16's
        if a is None or b is None:
            return a
        return min(a, b) if lowest else max(a, b)

    return Gate(
        min_agreement=looser(own.min_agreement, arithmetic.min_agreement, lowest=True),
        max_abs_dp=looser(own.max_abs_dp, arithmetic.max_abs_dp, lowest=False),
        max_drop_pt=looser(own.max_drop_pt, arithmetic.max_drop_pt, lowest=False),
    )


def gpu_sample(count: int, digits: int | None) -> np.ndarray:
    """The test digits the GPU rows judge: ``digits`` of ``count`` drawn with GPU_SEED, in order (None: GPU_DIGITS;
    a negative number or one ≥ count: all of them)."""
    digits = GPU_DIGITS if digits is None else digits
    if digits < 0 or digits >= count:
        return np.arange(count)
    return np.sort(np.random.default_rng(GPU_SEED).choice(count, digits, replace=False))


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


@dataclass(frozen=True)
class Judging:
    """What every row is judged with: the test digits and labels, the Keras reference, the gates, the runtimes'
    threads, the GPU rows' sample and the microcontroller rows' first digits (None: all)."""

    images: np.ndarray
    labels: np.ndarray
    reference: np.ndarray
    gates: dict[str, Gate]
    threads: int | None
    sample: np.ndarray
    first: np.ndarray | None

    @classmethod
    def of(cls, mnist: Mnist, reference: np.ndarray, gates: dict[str, Gate] | None, threads: int | None,
           gpu_digits: int | None, micro_digits: int | None) -> Judging:  # fmt: skip
        """The judging verify_bundle's arguments ask for (DEFAULT_GATES under ``gates``)."""
        labels = mnist.y_test
        first = None if micro_digits is None else np.arange(min(micro_digits, len(labels)))
        gates = {**DEFAULT_GATES, **(gates or {})}
        return cls(mnist.x_test, labels, reference, gates, threads, gpu_sample(len(labels), gpu_digits), first)

    def save(self, folder: Path) -> None:
        """Into ``folder``, for a helper process (``load``)."""
        for name in ("images", "labels", "reference", "sample"):
            np.save(folder / f"{name}.npy", getattr(self, name))
        gates = {name: dataclasses.asdict(gate) for name, gate in self.gates.items()}
        first = None if self.first is None else len(self.first)
        (folder / "judging.json").write_text(json.dumps({"gates": gates, "threads": self.threads, "first": first}))

    @classmethod
    def load(cls, folder: Path) -> Judging:
        arrays = {name: np.load(folder / f"{name}.npy") for name in ("images", "labels", "reference", "sample")}
        facts = json.loads((folder / "judging.json").read_text())
        gates = {name: Gate(**gate) for name, gate in facts["gates"].items()}
        first = None if facts["first"] is None else np.arange(facts["first"])
        return cls(**arrays, gates=gates, threads=facts["threads"], first=first)


def verify_bundle(
    bundle: str | Path,
    mnist: Mnist,
    gates: dict[str, Gate] | None = None,
    threads: int | None = None,
    use_keras: bool | None = None,
    gpu_digits: int | None = None,
    micro_digits: int | None = None,
    alongside: Callable[[], Any] | None = None,
    early: EarlyVerify | None = None,
) -> dict:
    """Judge every artifact; return {'rows': [VerifyRow…], 'reference': …, 'images': …, 'seconds': …}.

    ``use_keras`` (default: whether TensorFlow is installed) runs the Keras model too. Every .tflite is also
    judged on LiteRT's GPU accelerator, in fp16 and in fp32 arithmetic, on ``gpu_digits`` test digits (see
    ``gpu_sample``; 0: no GPU rows). ``micro_digits`` judges the microcontroller rows (TFLite Micro, the C model)
    on the first N test digits only (None: all; run and export's verify, where the same files were judged in
    LiteRT on all of them a moment before). With two cores or more, a helper process judges files while this
    one does: ``alongside``, work of the caller's, runs here meanwhile (its log lines held until the rows are
    printed; what it returns is under 'alongside'). ``early``: the rows judged while export wrote the bundle,
    taken for the files that are byte for byte the ones judged (EarlyVerify, with the same arguments)."""
    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    start = time.perf_counter()
    have_tf = importlib.util.find_spec("tensorflow") is not None if use_keras is None else use_keras
    reference, reference_source = _reference(bundle, manifest, mnist, have_tf)
    labels = mnist.y_test
    log(f"verifying {bundle} on {len(labels)} test images against {reference_source}")
    have_micro = runtime_missing(MICRO_RUNTIME) is None
    gpu_digits = GPU_DIGITS if gpu_digits is None else gpu_digits
    judging = Judging.of(mnist, reference, gates, threads, gpu_digits, micro_digits)
    entries = [entry for entry in manifest.artifacts if entry.on_device or have_tf]
    keras_note = _keras_note(manifest, use_keras)
    jobs = _jobs(entries, have_micro, gpu_digits != 0)
    with tempfile.TemporaryDirectory(prefix="lenet-edge-verify-") as folder, held() as kept:
        results, along = _judge_jobs(bundle, manifest, jobs, judging, Path(folder), alongside, early)
    rows, absent = _rows_in_order(jobs, results)
    for row in rows:
        _log_row(row)
    for line in kept:
        log(line)
    skipped = sum(bool(entry.spec.micro) and not have_micro for entry in entries)
    not_run = _not_run(skipped, absent)
    if gpu_digits == 0 and any(entry.runtime == "litert" for entry in manifest.artifacts):
        log(f"  (LiteRT's GPU accelerator: not judged by this verify; `lenet-edge verify {bundle}` judges every "
            ".tflite there)")  # fmt: skip
    return {
        "rows": rows,
        "not_run": not_run,
        "reference": reference_source,
        "images": len(labels),
        "gpu_sample": {"digits": len(judging.sample), "seed": GPU_SEED},
        "seconds": round(time.perf_counter() - start, 2),
        "gates": {name: gate.describe() for name, gate in judging.gates.items()},
        "keras": keras_note,
        "alongside": along,
    }


def _keras_note(manifest: Manifest, use_keras: bool | None) -> str:
    """What report.md says (and the log) when the Keras model is here but told not to run: '' otherwise."""
    if use_keras is not False or not manifest.artifact("keras") or importlib.util.find_spec("tensorflow") is None:
        return ""
    note = ("The Keras model is not run again: its answers, stored at export from the saved file, are the "
            "reference; `lenet-edge verify` runs it live.")  # fmt: skip
    log(f"  ({note[0].lower()}{note[1:-1]})")
    return note


HERE_ONLY = ("keras", GPU_RUNTIME)  # judged in this process: TensorFlow is here, and the GPU accelerator's worker


def _jobs(entries: list[Artifact], have_micro: bool, gpu: bool) -> list[dict]:
    """The rows to judge, as jobs: each file's runs that must stay in this process (HERE_ONLY), and the others
    (a microcontroller file's TFLite Micro and C model rows together: the C row is compared with TFLite Micro's
    answers). Each run keeps its place (``order``) so that rows print in the manifest's order."""
    jobs, order = [], 0
    for entry in entries:
        runs = _runs(entry, have_micro, gpu)
        for here in (True, False):
            mine = [[order + i, runtime, delegate] for i, (runtime, delegate) in enumerate(runs)
                    if (runtime in HERE_ONLY) == here]  # fmt: skip
            if mine:
                jobs.append({"format": entry.format, "runs": mine, "here": here, "missing": _missing(mine)})
        order += len(runs)
    return jobs


def _missing(runs: list) -> dict[str, str]:
    """The runtimes of ``runs`` this install lacks, and why: found here, where the command runs (a helper's
    children are told, not left to find out)."""
    return {runtime: why for _, runtime, _ in runs if (why := runtime_missing(runtime))}


HELPER_PRELOAD = sorted({r.library for name, r in RUNNERS.items() if r.library and name not in HERE_ONLY})


def _judge_jobs(
    bundle: Path,
    manifest: Manifest,
    jobs: list[dict],
    judging: Judging,
    folder: Path,
    alongside: Callable[[], Any] | None,
    early: EarlyVerify | None,
) -> tuple[list[tuple[Any, str]], Any]:
    """Every job judged: those bound to this process here, the others by whichever of this process and the helper
    (two cores or more) is free first, the longest first; or taken from ``early``, where it judged the same bytes."""
    entries = {entry.format: entry for entry in manifest.artifacts}
    absent: dict[str, str] = {}  # runtimes found missing on loading here (no GPU device): not tried again

    def here(job: dict) -> dict:
        absent.update(job["missing"])
        return judge_job(bundle, entries[job["format"]], job["runs"], judging, absent)

    judged_with = early.folder if early else folder  # where the helper finds the judging
    movable = [job | {"bundle": str(bundle), "judging": str(judged_with)} for job in jobs if not job["here"]]
    lanes = early.lanes if early else None
    if lanes is None:
        helper = len(movable) > 1 and usable_cores() > 1
        if helper:
            judging.save(folder)
        lanes = Lanes(functools.partial(Forks, __name__, HELPER_PRELOAD, folder) if helper else None)
    index, from_early = {}, set()
    for job in sorted(movable, key=lambda job: -len(job["runs"])):  # TFLite Micro and the C model first: a short tail
        taken = early.taken(bundle, job) if early else None
        index[id(job)] = lanes.add(job) if taken is None else taken
        if taken is not None:
            from_early.add(id(job))

    def first() -> tuple[list[dict], Any]:
        return [here(job) for job in jobs if job["here"]], alongside() if alongside else None

    results, (done_here, along) = lanes.finish(here, first)
    bound, moved = iter(done_here), iter(movable)
    out = []
    for job in jobs:
        if job["here"]:
            out.append((next(bound), ""))
            continue
        mine = next(moved)
        result, failure = results[index[id(mine)]]
        if early is not None and result and id(mine) in from_early:
            result = early.renumbered(result, mine)
        out.append((result, failure))
    return out, along


class EarlyVerify:
    """run and export's verify begun while export writes the bundle (two cores or more: ``begin`` returns None
    otherwise). Each file, once written and checked, is copied aside with its C files and judged by the helper
    process while export goes on with the next; verify then takes those rows for the files of the bundle that are
    byte for byte the ones judged, and judges the rest as usual."""

    def __init__(self, mnist: Mnist, gates: dict[str, Gate] | None, threads: int | None, gpu_digits: int | None,
                 micro_digits: int | None):  # fmt: skip
        self.mnist, self.settings = mnist, (gates, threads, gpu_digits, micro_digits)
        self.folder = Path(tempfile.mkdtemp(prefix="lenet-edge-verify-"))
        self.lanes = Lanes(functools.partial(Forks, __name__, HELPER_PRELOAD, self.folder))
        self.have_micro = runtime_missing(MICRO_RUNTIME) is None
        self.judged: dict[str, tuple[int, list, dict[str, str]]] = {}  # format -> job index, runs, files' sha256

    @classmethod
    def begin(cls, mnist: Mnist, gates: dict[str, Gate] | None, threads: int | None, gpu_digits: int | None,
              micro_digits: int | None) -> EarlyVerify | None:  # fmt: skip
        return cls(mnist, gates, threads, gpu_digits, micro_digits) if usable_cores() > 1 else None

    def reference(self, reference: np.ndarray) -> None:
        """The Keras answers export has just stored: what every row is judged against."""
        Judging.of(self.mnist, reference, *self.settings).save(self.folder)
        (self.folder / "bundle").mkdir()

    def written(self, staging: Path, entry: Artifact) -> None:
        """A file export has written and checked: copied aside with its C files, its rows queued for the helper."""
        runs = [[order, runtime, delegate] for order, (runtime, delegate) in enumerate(_runs(entry, self.have_micro,
                False)) if runtime not in HERE_ONLY]  # fmt: skip
        copies = self.folder / "bundle"
        files = {}
        for name in _files_of(entry):
            shutil.copyfile(staging / name, copies / name)
            files[name] = sha256_file(copies / name)
        job = {"format": entry.format, "runs": runs, "here": False, "missing": _missing(runs),
               "entry": entry.to_dict(), "bundle": str(copies), "judging": str(self.folder)}  # fmt: skip
        self.judged[entry.format] = (self.lanes.add(job), runs, files)

    def taken(self, bundle: Path, job: dict) -> int | None:
        """The index of the early job that judges ``job``: its runs, on the same bytes; None if there is none."""
        found = self.judged.get(job["format"])
        if found is None or [run[1:] for run in found[1]] != [run[1:] for run in job["runs"]]:
            return None
        for name, digest in found[2].items():
            if not is_regular_file(bundle / name) or sha256_file(bundle / name) != digest:
                return None
        return found[0]

    def renumbered(self, result: dict, job: dict) -> dict:
        """An early result's rows put in ``job``'s places (the early job numbered its runs on its own)."""
        found = self.judged[job["format"]]
        place = {tuple(run[1:]): run[0] for run in job["runs"]}
        runs = {run[0]: tuple(run[1:]) for run in found[1]}
        return result | {"rows": [[place[runs[order]], row] for order, row in result["rows"]]}

    def close(self) -> None:
        self.lanes.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def _files_of(entry: Artifact) -> list[str]:
    """The file of an artifact and the C files that hold it."""
    micro = entry.micro
    c_files = [ref.file for ref in micro.c_files] if micro else []
    c_model = [ref.file for ref in micro.c_model.files] if micro and micro.c_model else []
    return [entry.file, *c_files, *c_model]


def _rows_in_order(jobs: list[dict], results: list[tuple[Any, str]]) -> tuple[list[VerifyRow], dict]:
    """The rows of every job in the manifest's order, a job whose helper failed as error rows; and the runtimes
    not run here with their counts and why."""
    placed: list[tuple[int, VerifyRow]] = []
    absent: dict[str, tuple[int, str]] = {}
    for job, (result, failure) in zip(jobs, results, strict=True):
        if failure:
            placed += [(order, VerifyRow(job["format"], runtime, "error", reason=failure, delegate=delegate or ""))
                       for order, runtime, delegate in job["runs"]]  # fmt: skip
            continue
        placed += [(order, VerifyRow.from_dict(row)) for order, row in result["rows"]]
        for runtime, why in result["absent"]:
            absent[runtime] = (absent.get(runtime, (0, ""))[0] + 1, why)
    return [row for _, row in sorted(placed, key=lambda pair: pair[0])], absent


def judge_job(bundle: Path, entry: Artifact, runs: list, judging: Judging, absent: dict[str, str]) -> dict:
    """One file's runs judged in order: {'rows': [[order, row dict]…], 'absent': [[runtime, why]…]} (a runtime
    this install or machine lacks is said, not failed; ``absent`` remembers those found on loading)."""
    rows, missing = [], []
    micro_answers = None  # TFLite Micro's probabilities, for the C model row after it
    for order, runtime, delegate in runs:
        if why := runtime_missing(runtime) or absent.get(runtime, ""):
            if runtime == C_RUNTIME and os.environ.get("CI") == "true":  # CI must prove the C model
                rows.append([order, VerifyRow(entry.format, runtime, "error", reason=why).to_dict()])
            else:
                missing.append([runtime, why])
            continue
        picked = judging.first if runtime in (MICRO_RUNTIME, C_RUNTIME) else None
        picked = judging.sample if runtime == GPU_RUNTIME else picked
        try:
            row, probs = _verify_artifact(bundle, entry, judging, runtime, delegate, picked)
        except RuntimeNotInstalled as exc:  # found on loading: this machine cannot run it (no GPU device)
            absent[runtime] = str(exc)
            missing.append([runtime, str(exc)])
            continue
        if runtime == MICRO_RUNTIME:
            micro_answers = probs
        if runtime == C_RUNTIME:
            _against_micro(row, probs, micro_answers, entry)
        rows.append([order, row.to_dict()])
    return {"rows": rows, "absent": missing}


def _judge_in_helper(job: dict) -> dict:
    """A helper process's job (``python -m lenet_edge.verify``): the file's runs, with what the parent saved."""
    bundle = Path(job["bundle"])
    entry = parse_artifact(job["entry"], "early") if "entry" in job else read_manifest(bundle).artifact(job["format"])
    assert entry is not None
    return judge_job(bundle, entry, job["runs"], Judging.load(Path(job["judging"])), dict(job["missing"]))


def _not_run(skipped: int, absent: dict[str, tuple[int, str]]) -> list[str]:
    """The rows this machine could not run, and why, as the report lists them (each also said in the log)."""
    if skipped:
        log(f"  (TFLite Micro is not installed here: {skipped} microcontroller rows not run)")
    not_run = [f"{skipped} TFLite Micro rows: tflite-micro is not installed here"] if skipped else []
    for runtime, (count, why) in absent.items():
        not_run.append(f"{count} {RUNTIMES[runtime].label} rows: {why}")
        log(f"  ({RUNTIMES[runtime].label}: {count} rows not run here: {why})")
    return not_run


def _runs(entry: Artifact, have_micro: bool, gpu: bool) -> list[tuple[str, str | None]]:
    """Where verify runs a file, (runtime, delegate) each: its own runtime; a microcontroller's file in TFLite
    Micro too, and as the bundle's C model where it has one; every .tflite on LiteRT's GPU accelerator in both
    its arithmetics (unless ``gpu`` is off)."""
    runs: list[tuple[str, str | None]] = [(entry.runtime, None)]
    if entry.spec.micro and have_micro:  # the same file on a microcontroller's runtime, judged like any other row
        runs.append((MICRO_RUNTIME, None))
    if entry.micro and entry.micro.c_model and entry.micro.c_model.files:
        runs.append((C_RUNTIME, None))
    if entry.runtime == "litert" and gpu:  # every .tflite on a phone's GPU, in both arithmetics
        runs += [(GPU_RUNTIME, delegate) for delegate in RUNTIMES[GPU_RUNTIME].delegates]
    return runs


def _log_row(row: VerifyRow) -> None:
    figures = f"accuracy {row.accuracy:.2%}, agreement {row.agreement:.2%}" if row.accuracy is not None else ""
    if row.identical_share is not None:
        figures += f", {row.identical_share:.2%} identical to TFLite Micro"
    figures += f" ({row.images:,} digits)" if row.images else ""
    where = f"{row.runtime} {row.delegate}".strip()
    log(f"  {STATUS_ICON[row.status]} {row.format:<15} {where:<15} {figures}  {row.reason}".rstrip())


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


def _against_micro(row: VerifyRow, probs: np.ndarray | None, micro: np.ndarray | None, entry: Artifact) -> None:
    """The C model row against TFLite Micro's answers on the same file: the share of digits whose output bytes are
    the same (the gate: all of them) and the largest difference in output steps. The outputs are compared as
    the runners decoded them (scale * (q - zero point), one to one with the bytes)."""
    if probs is None or row.status == "error":
        return
    if micro is None:
        note = "not compared with TFLite Micro (tflite-micro is not installed here)"
        row.reason = "; ".join(filter(None, [row.reason, note]))
        return
    scale = entry.output.scale or 1.0
    steps = np.rint(np.abs(probs.astype(np.float64) - micro.astype(np.float64)) / scale)
    same = (steps == 0).all(1)
    row.identical_share, row.max_steps = float(same.mean()), int(steps.max())
    if not same.all():
        row.status = "fail"
        differ = f"not TFLite Micro's answers on {int((~same).sum()):,} digits (up to {row.max_steps} steps)"
        row.reason = "; ".join(filter(None, [differ, row.reason]))


def _c_model_files(bundle: Path, entry: Artifact) -> str:
    """'' when the C model's files are those the manifest lists; otherwise what differs."""
    for ref in entry.micro.c_model.files if entry.micro and entry.micro.c_model else []:
        if problem := _integrity(bundle, ref):
            return f"{ref.file}: {problem}"
    return ""


def c_array_bytes(source: str) -> bytes:
    """The bytes of the one array initializer in a C source of ours ({ 0x.., 0x.., … })."""
    body = source[source.index("= {") + 3 : source.index("};")]
    return bytes(int(value, 16) for value in body.replace("\n", " ").split(",") if value.strip())


def _verify_artifact(
    bundle: Path,
    entry: Artifact,
    judging: Judging,
    runtime: str,
    delegate: str | None = None,
    picked: np.ndarray | None = None,
) -> tuple[VerifyRow, np.ndarray | None]:
    """One file in one runtime (with ``delegate``), judged on the test digits (those ``picked`` only, when
    given); and its probabilities (None when it did not run). RuntimeNotInstalled is raised, not reported: the row
    cannot run on this machine at all."""
    precision = entry.precision
    gpu = runtime == GPU_RUNTIME
    gate = gpu_gate(judging.gates, precision, delegate or "") if gpu else judging.gates[precision]
    picked = np.arange(len(judging.labels)) if picked is None else picked
    judged = len(picked) if len(picked) < len(judging.labels) else None

    def failed(status: str, reason: str) -> VerifyRow:
        return VerifyRow(entry.format, runtime, status, reason=reason, precision=precision, delegate=delegate or "",
                         images=judged)  # fmt: skip

    integrity = _integrity(bundle, entry)
    if integrity in ("missing file", "not a regular file"):
        return failed("error", integrity), None
    start = time.perf_counter()
    images = judging.images[picked]
    try:
        options = {"threads": judging.threads} if entry.on_device and runtime == entry.runtime else {}
        runner = open_runner(runtime, bundle / entry.file, delegate=delegate, **options)
        probs = runner.predict(images)
    except RuntimeNotInstalled:
        raise
    except Exception as exc:  # a file that will not load or run is reported, not raised
        reason = one_line(exc)
        if integrity:
            reason = f"{integrity}; {reason}"
        return failed("error", reason[:300]), None
    row = judge(entry.format, runtime, precision, probs, judging.reference[picked], judging.labels[picked], gate)
    row.delegate, row.images = delegate or "", judged
    if runtime != entry.runtime or entry.spec.variant_of:  # the same model again: its agreement says how alike,
        row.per_class_accuracy, row.confusion = [], []  # one confusion matrix is enough
    row.size_bytes = (bundle / entry.file).stat().st_size
    checks = [integrity, _claim(runner, entry), _contract(runner, entry, images, probs.argmax(1))]
    if runtime == MICRO_RUNTIME:
        checks.append(_c_files(bundle, entry))
    if runtime == C_RUNTIME:
        checks.append(_c_model_files(bundle, entry))
    problems = [p for p in checks if p]
    if problems:
        row.status = "fail"
        row.reason = "; ".join(problems + ([row.reason] if row.reason else []))
    row.seconds = round(time.perf_counter() - start, 2)
    _acceleration(row, runner)
    return row, probs


def _acceleration(row: VerifyRow, runner: Runner) -> None:
    """What the runtime accelerates, from its per-op profile: XNNPACK partitions and the ops left out, whether
    the whole graph runs on the GPU and the ops that fall back, or the float nodes of a quantized ONNX model."""
    found = runner.op_profile(runs=5) or {}
    if "whole_graph" in found:  # LiteRT's GPU accelerator: what it said when it compiled the file
        row.whole_graph = found["whole_graph"]
        row.left_to_cpu = found["fallback"]
        if not row.whole_graph and row.status == "pass":
            row.reason = f"not whole on the GPU: {'; '.join(found['fallback']) or 'LiteRT left ops to the CPU'}"
    if "partitions" in found:
        row.partitions = found["partitions"]
        row.left_to_cpu = [f"{op['op']} ({op['layer']})" for op in found["left_to_cpu"]]
    if found.get("quantized"):
        row.float_nodes = found["float_nodes"]


if __name__ == "__main__":  # the helper: a fork server judging the jobs verify_bundle sends it
    serve(_judge_in_helper, sys.argv[1:])
