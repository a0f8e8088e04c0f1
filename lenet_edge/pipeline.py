"""run, train and export: train (or load) a model, write its bundle and list it, then verify and bench it as the
command asks, and close with the next commands and the time each step took (also kept in timings.json).

Arguments are checked before the long work starts: the output folder, the calibration count, TensorFlow, the
--keep-float layers, then the data; only then training or export."""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .bundle_writer import check_keep_float, check_output_folder, write_bundle
from .console import log
from .data import Mnist, calibration_images
from .files import write_json
from .formats import Format
from .int8_remedies import Int8Remedies
from .manifest import LABELS, MANIFEST, README, TIMINGS, TRAINING_CURVES, TRAINING_RECORD, Manifest
from .model import build_model, model_facts
from .model_origin import BROUGHT
from .steps import BenchOptions, DataSource, VerifyOptions, bench_step, load_data, verify_step
from .tensorflow_loader import import_tensorflow
from .train import TrainConfig, TrainResult, train
from .user_model import AUTO, for_export, load_user_model
from .verify import DEFAULT_GATES, EarlyVerify


@dataclass(frozen=True)
class ExportOptions:
    out: str
    formats: list[Format]
    calibration: int = 500  # training images that calibrate the int8 models
    keep_float: tuple[str, ...] = ()  # Keras layers the int8 models leave in float


@dataclass(frozen=True)
class Checks:
    """What runs after export: verify and bench the new bundle (None: skipped)."""

    verify: VerifyOptions | None = None
    bench: BenchOptions | None = None


@dataclass
class PipelineResult:
    status: int  # 0 all done and passed, 1 a format failed to export or an artifact did not pass
    bundle: str
    manifest: dict
    verify: list[dict] | None = None
    bench: list[dict] | None = None
    steps: dict[str, float] = field(default_factory=dict)  # seconds each step took

    def to_dict(self) -> dict:
        """What --json writes: the bundle, its manifest, the verify and bench rows."""
        return {"bundle": self.bundle, "manifest": self.manifest, "verify": self.verify, "bench": self.bench}


def train_and_export(config: TrainConfig, data: DataSource, export: ExportOptions, checks: Checks) -> PipelineResult:
    """run (and train, with no format): train on MNIST, then write, verify and bench the bundle."""
    check_output_folder(export.out)
    started = time.perf_counter()
    mnist = load_data(data)
    steps = {"data": time.perf_counter() - started}
    calibration_images(mnist, export.calibration, config.seed)  # a count that cannot fit fails now, not after training
    import_tensorflow()  # a runtime-only install says so here
    check_keep_float(build_model(config.arch, config.activation), export.keep_float)  # the layers are named alike
    normalized = ", batch normalization folded into the weights after" if config.batch_norm else ""
    log(f"training {config.arch} ({config.activation}) for {config.epochs} epochs, seed {config.seed}{normalized}")
    trained = train(mnist, config)
    log(
        f"trained in {trained.seconds:.0f} s: kept epoch {trained.best_epoch} (validation {trained.val_accuracy:.2%}), "
        f"Keras test accuracy {trained.test_accuracy:.2%}"
    )
    record = trained.describe()
    record["model"] = model_facts(trained.model, config.arch, config.activation)
    steps["training"] = trained.seconds
    return write_and_check_bundle(trained.model, record, mnist, export, checks, trained, steps)


@dataclass(frozen=True)
class BroughtModel:
    """What export is given: the saved model (a file or a SavedModel folder), the preprocessing named or AUTO,
    and the other file of an architecture JSON + weights pair where the stems differ."""

    path: Path
    input_scale: str = AUTO
    architecture: str | None = None
    weights: str | None = None


def export_model(
    brought: BroughtModel, seed: int | None, data: DataSource, export: ExportOptions, checks: Checks
) -> PipelineResult:
    """export: any saved Keras digit classifier, whatever form it was saved in (a training.json of ours beside
    a bundle's model is kept), into a bundle, verified and benched, its preprocessing found and folded in
    (user_model); ``seed`` overrides the training seed for the calibration pick. A brought model's int8 files
    that miss their gate get the remedies of int8_remedies; a bundle's own model is exported as it asks."""
    user = load_user_model(brought.path, brought.architecture, brought.weights)  # one-line refusals (exit 2)
    check_output_folder(export.out)
    check_keep_float(user.model, export.keep_float)
    mnist = load_data(data)
    model, record = for_export(user, mnist, brought.input_scale, seed)
    gates = checks.verify.gates if checks.verify else DEFAULT_GATES
    remedy = Int8Remedies(gates) if user.origin == BROUGHT else None
    return write_and_check_bundle(model, record, mnist, export, checks, remedy=remedy)


def write_and_check_bundle(
    model,
    record: dict,
    mnist: Mnist,
    export: ExportOptions,
    checks: Checks,
    trained: TrainResult | None = None,
    steps: dict[str, float] | None = None,
    remedy: Int8Remedies | None = None,
) -> PipelineResult:
    """Write the bundle and list it, verify and bench it as asked, close with the next commands and the time each
    step took. A failed export leaves the previous bundle and says where this attempt is."""
    steps = {} if steps is None else steps
    started = time.perf_counter()
    seconds = None if trained is None else trained.seconds
    with contextlib.ExitStack() as stack:
        early = _early_verify(mnist, export, checks)
        if early:
            stack.callback(early.close)
        manifest, where = write_bundle(
            export.out, model, record, mnist, export.formats, export.calibration, export.keep_float, seconds, remedy,
            early,
        )  # fmt: skip
        steps["export"] = time.perf_counter() - started
        return _list_and_check(model, manifest, where, mnist, export, checks, trained, steps, early)


def _early_verify(mnist: Mnist, export: ExportOptions, checks: Checks) -> EarlyVerify | None:
    """verify begun while export writes the files (two cores or more; a verify to do)."""
    options = checks.verify
    if not export.formats or options is None:
        return None
    return EarlyVerify.begin(mnist, options.gates, options.threads, options.gpu_digits, options.micro_digits)


def _list_and_check(
    model,
    manifest: Manifest,
    where: Path,
    mnist: Mnist,
    export: ExportOptions,
    checks: Checks,
    trained: TrainResult | None,
    steps: dict[str, float],
    early: EarlyVerify | None,
) -> PipelineResult:
    """After export: list the bundle, verify it (taking what ``early`` judged) and bench it as asked, close with
    the next commands and the step times; or say where a failed export's attempt is."""
    if where.resolve() != Path(export.out).resolve():
        for failure in manifest.failed:
            log(f"FAILED {failure['format']}: {failure['reason']}")
        log(f"export failed: the previous bundle in {export.out} is unchanged; this attempt is in {where} (its "
            "manifest.json lists what failed and why)")  # fmt: skip
        return PipelineResult(1, str(where), manifest.to_dict(), steps=steps)
    print_bundle_contents(manifest, export.out)
    result = PipelineResult(1 if manifest.failed else 0, export.out, manifest.to_dict(), steps=steps)
    if export.formats and checks.verify:
        started = time.perf_counter()
        verified = verify_step(export.out, mnist, checks.verify, early)
        result.status, result.verify = max(result.status, verified.status), verified.rows
        steps["verify"] = time.perf_counter() - started
    if export.formats and checks.bench:
        started = time.perf_counter()
        benched = bench_step(export.out, mnist, checks.bench)
        result.status, result.bench = max(result.status, benched.status), benched.rows
        steps["bench"] = time.perf_counter() - started
    print_next_steps(export.out, next((layer.name for layer in model.layers if layer.weights), "C1"))
    record_step_times(Path(export.out), steps, None if trained is None else trained.epoch_seconds)
    return result


def print_bundle_contents(manifest: Manifest, out: str) -> None:
    """List what the bundle holds, the Keras accuracy and every format that failed."""
    log(f"\nwrote {out}/:")
    for entry in manifest.artifacts:
        log(f"  {entry.file:<24} {entry.bytes / 1024:8.1f} KB  {entry.format} ({entry.runtime})")
    for name in (LABELS, TRAINING_RECORD, TRAINING_CURVES, README, MANIFEST):
        if (Path(out) / name).exists():
            log(f"  {name}")
    log(f"Keras test accuracy: {manifest.keras_test_accuracy:.2%}")
    for failure in manifest.failed:
        log(f"FAILED {failure['format']}: {failure['reason']}")


def command_name() -> str:
    """How to call this lenet-edge from here: its bare name when the shell finds this installation by it (an
    activated venv), else its path (``.venv/bin/lenet-edge`` beside a checkout)."""
    script = Path(sys.executable).parent / "lenet-edge"
    found = shutil.which("lenet-edge")
    if found and Path(found).resolve() == script.resolve():
        return "lenet-edge"
    if script.is_file():
        with contextlib.suppress(ValueError):
            return str(script.relative_to(Path.cwd()))
        return str(script)
    return f"{sys.executable} -m lenet_edge.cli"


def print_next_steps(out: str, first_layer: str = "C1") -> None:
    """Close a run with the commands a user runs next, as they can be typed here (``first_layer``: the model's
    first layer with weights, which the --keep-float example names)."""
    me = command_name()
    log("\nnext:")
    log(f"  read {out}/README.md for how an app feeds each model, and {out}/report.md for what each one is worth")
    log(f"  {me} verify {out}   # judge every export again (it finds the MNIST this bundle was made from)")
    log(f"  {me} bench {out} --profile mobile   # latency under one phone core's constraints")
    log(f"  {me} predict one.png two.jpg --model {out}/lenet5_int8.tflite   # read digits from your pictures")
    log(f"  {me} serve {out}   # draw a digit in your browser and let every runtime answer")
    log(f"  {me} export {out}/lenet5.keras --keep-float {first_layer}   # int8 with the named layers left in float")


def record_step_times(bundle: Path, steps: dict[str, float], epochs: list[float] | None) -> None:
    """Say how long each step of the run took, and keep it in timings.json (the bundle's one file of wall-clock
    facts: the manifest stays byte-reproducible)."""
    spent = {name: round(seconds, 1) for name, seconds in steps.items()}
    line = " · ".join(f"{name} {seconds:.1f} s" for name, seconds in spent.items())
    if epochs:
        line += f" (training: {len(epochs)} epochs, median {sorted(epochs)[len(epochs) // 2]:.1f} s each)"
    log(f"time per step: {line}; total {sum(spent.values()):.0f} s")
    timings_path = bundle / TIMINGS
    with contextlib.suppress(OSError, ValueError):
        timings = json.loads(timings_path.read_text())
        write_json(timings_path, timings | {"step_seconds": spent, "epoch_seconds": epochs})
