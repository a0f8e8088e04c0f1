"""The ``lenet-edge`` command: one small parser builder and one handler per subcommand.

``--json PATH`` means the same everywhere: write this command's result as JSON to PATH (``-``: stdout, and the
log goes to stderr)."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .bench import PROFILES, bench_bundle, profile_bundle
from .bundle_writer import check_keep_float, check_output_folder, write_bundle
from .console import interrupt_note, interrupted_message, log, log_to_stderr
from .consumers import consumers_table
from .data import Mnist, calibration_images, load_mnist
from .errors import DataError, LenetEdgeError, UsageError, one_line
from .files import write_json
from .formats import FORMAT_NAMES, FORMATS, GATE_FLAGS, PRECISIONS, Gate, get_formats
from .manifest import (
    BENCH_JSON,
    CONFUSION_PNG,
    LABELS,
    MANIFEST,
    README,
    REPORT_MD,
    TARGETS_PNG,
    TIMINGS,
    TRAINING_CURVES,
    TRAINING_RECORD,
    Manifest,
    read_manifest,
)
from .model import ACTIVATIONS, ARCHITECTURES, build_model, count_macs, count_params
from .npu.chart import NPU_PNG, plot_npu_cycles
from .npu.command import npu_options, run_npu
from .on_target import bench_on_target, count_on_target, verify_on_target
from .plots import plot_bench, plot_confusion_matrices, plot_instruction_counts, plot_layer_errors
from .preprocess import mnist_digit, require_pillow, save_digit
from .quantization_error import layer_report
from .report import costs_by_core, read_report, update_report
from .runtimes import KerasRunner, RuntimeNotInstalled, open_runner
from .serve import serve
from .targets import TARGET_HELP, Target, parse_target
from .targets.arm64_emu import setup as setup_arm64_emu
from .tensorflow_loader import import_tensorflow
from .train import TrainConfig, TrainResult, train
from .verify import MICRO_RUNTIME, verify_bundle

DEFAULT_OUT = "export"
DEFAULTS = TrainConfig()
MODEL_SUFFIXES = {Path(f.file).suffix: f.runtime for f in FORMATS}  # what predict opens a model file with


# --- argument types ---------------------------------------------------------------------------------------


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"{value} is not a seed from 0 to 2**32 - 1")
    return value


def _number_in(low: float, high: float):
    """A finite number from ``low`` to ``high``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is not a number from {low:g} to {high:g}")
        return value

    return parse


def _format_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    try:
        return [f.name for f in get_formats(names or [text])]
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# --- option groups shared by several commands ---------------------------------------------------------------


def _add_json(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--json", metavar="PATH", help=f"write {what} as JSON to PATH ('-': stdout)")


def _add_bundle_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", metavar="BUNDLE", help="bundle folder (with manifest.json)")


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    group.add_argument(
        "--data",
        metavar="PATH",
        help="folder of the 4 MNIST IDX files (.gz or raw) or a Keras mnist.npz; default: $LENET_EDGE_DATA, "
        "then (verify, bench, cost, serve) the data the bundle was made from, then the Keras cache, then the "
        "Keras download",
    )
    group.add_argument("--offline", action="store_true", help="never try the Keras download")


def _add_out_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=DEFAULT_OUT, help="bundle folder (default %(default)s)")


def _add_train_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training")
    group.add_argument("--arch", choices=list(ARCHITECTURES), default=DEFAULTS.arch, help="default %(default)s")
    group.add_argument("--activation", choices=ACTIVATIONS, default=DEFAULTS.activation, help="default %(default)s")
    group.add_argument("--epochs", type=_positive, default=DEFAULTS.epochs, help="default %(default)s")
    group.add_argument("--batch-size", type=_positive, default=DEFAULTS.batch_size, help="default %(default)s")
    group.add_argument(
        "--lr",
        type=_number_in(1e-9, 10),
        default=DEFAULTS.learning_rate,
        help="Adam peak learning rate, cosine-decayed (default %(default)s)",
    )
    group.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=DEFAULTS.augment,
        help="random shifts (±2 px), rotations (±10°) and zooms (±10%%) of the training images (default: on)",
    )
    group.add_argument(
        "--validation",
        type=_positive,
        default=DEFAULTS.validation,
        help="validation images carved from the training set (default %(default)s)",
    )
    group.add_argument("--limit", type=_positive, help="use only the first N training images (quick runs)")
    group.add_argument(
        "--seed", type=_seed, default=DEFAULTS.seed, help="makes the run repeatable (default %(default)s)"
    )


def _add_export_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("export")
    group.add_argument(
        "--formats", type=_format_list, help=f"comma-separated subset of {','.join(FORMAT_NAMES)} (default: all)"
    )
    group.add_argument(
        "--keep-float",
        nargs="+",
        default=(),
        metavar="LAYER",
        help="Keras layers (e.g. C1 F6) the int8 models leave in float: selective quantization",
    )
    group.add_argument(
        "--calibration",
        type=_positive,
        default=500,
        help="training images that calibrate the int8 models (default %(default)s)",
    )


def _add_gate_options(parser: argparse.ArgumentParser) -> None:
    """verify's gates, one flag per row of formats.GATE_FLAGS; defaults are the precisions table's."""
    group = parser.add_argument_group("verify gates (agreement in %, |Δp| absolute, drop in points)")
    group.add_argument("--threads", type=_positive, help="runtime threads (default: the runtime's own choice)")
    for flag, precisions, field, unit, metavar in GATE_FLAGS:
        which = "dynamic-range and int8" if len(precisions) > 1 else precisions[0]
        default = getattr(PRECISIONS[precisions[0]].verify, field) * unit
        limit = 1.0 if field == "max_abs_dp" else 100.0
        group.add_argument(flag, type=_number_in(0, limit), metavar=metavar, help=f"{which} (default {default:g})")


def _add_bench_options(parser: argparse.ArgumentParser, quick: bool = False) -> None:
    """bench's options; ``quick`` (the bench after run and export): 0.1 s per measurement and no browser rows by
    default, so that the whole run costs about what its training does; `lenet-edge bench` measures at leisure."""
    group = parser.add_argument_group("bench")
    group.add_argument(
        "--profile", choices=list(PROFILES), default="host", help="; ".join(f"{k}: {v}" for k, v in PROFILES.items())
    )
    group.add_argument(
        "--seconds",
        type=_number_in(0.001, 3600),
        default=0.1 if quick else 0.5,
        help="timed seconds per measurement, after warm-up (default %(default)s)",
    )
    group.add_argument(
        "--browser",
        action=argparse.BooleanOptionalAction,
        default=not quick,
        help="the in-browser rows (onnxruntime-web, LiteRT.js in headless Chromium, when it is here; default: "
        + ("off here, `lenet-edge bench` measures them)" if quick else "on)"),
    )


def _add_target_option(parser: argparse.ArgumentParser, default: str = "local", help: str = TARGET_HELP) -> None:
    parser.add_argument("--target", default=default, metavar="TARGET", help=help)


def _add_checks_after_export(parser: argparse.ArgumentParser) -> None:
    """run and export verify and bench what they wrote, unless told not to."""
    _add_gate_options(parser)
    parser.add_argument("--no-verify", dest="verify", action="store_false", help="skip verify after export")
    parser.add_argument("--no-bench", dest="bench", action="store_false", help="skip bench after verify")
    _add_bench_options(parser, quick=True)
    _add_json(parser, "the manifest with the verify and bench rows")


# --- one builder per subcommand ------------------------------------------------------------------------------


def _run_command(commands) -> None:
    run = commands.add_parser(
        "run",
        help="train, then export every format into a bundle, verify and bench it",
        description="Train LeNet-5 on MNIST and export every format into one bundle; verify and bench it.",
    )
    _add_out_option(run)
    _add_data_options(run)
    _add_train_options(run)
    _add_export_options(run)
    _add_checks_after_export(run)
    run.set_defaults(handler=cmd_run, train_only=False)


def _train_command(commands) -> None:
    train_parser = commands.add_parser(
        "train",
        help="train only: a bundle holding the Keras model and its record",
        description="Train and save lenet5.keras with its training record and curves.",
    )
    _add_out_option(train_parser)
    _add_data_options(train_parser)
    _add_train_options(train_parser)
    _add_json(train_parser, "the manifest")
    train_parser.set_defaults(
        handler=cmd_run, train_only=True, formats=None, calibration=500, verify=False, bench=False, keep_float=()
    )


def _export_command(commands) -> None:
    export = commands.add_parser(
        "export",
        help="export a trained .keras model into a bundle",
        description="Export a trained Keras model to every format into one bundle; verify and bench it.",
    )
    export.add_argument("model", metavar="MODEL.keras", help="trained model (its training.json beside it is kept)")
    export.add_argument("--seed", type=_seed, help="seed of the calibration pick (default: the training seed)")
    _add_out_option(export)
    _add_data_options(export)
    _add_export_options(export)
    _add_checks_after_export(export)
    export.set_defaults(handler=cmd_export)


def _verify_command(commands) -> None:
    verify = commands.add_parser(
        "verify",
        help="judge every export of a bundle on the 10,000 test images against Keras, or on a target",
        description="Check every artifact's integrity, then run it in its own runtime on the 10,000 MNIST test "
        "images and compare it with Keras: accuracy, agreement, |Δp|, per-class accuracy, a gate per precision. "
        "Writes report.md, report.json and verify_confusion.png into the bundle. Exit 1 if any artifact fails. "
        "With --target, compares each export's outputs there with the same file run here (the parity gates).",
    )
    _add_bundle_argument(verify)
    _add_data_options(verify)
    _add_target_option(verify)
    verify.add_argument(
        "--limit",
        type=_positive,
        metavar="N",
        help="with --target: parity on the first N test images only (default all 10,000)",
    )
    verify.add_argument(
        "--consumers",
        action="store_true",
        help="also run every export in the consumers that are installed (LiteRT, TFLite Micro, MediaPipe, LiteRT.js, "
        "ONNX Runtime, OpenVINO, tract, onnx.reference, onnxruntime-web)",
    )
    verify.add_argument(
        "--layers",
        action="store_true",
        help="also measure the int8 models' quantization error layer by layer (always on in run and export)",
    )
    _add_gate_options(verify)
    _add_json(verify, "the verify rows")
    verify.set_defaults(handler=cmd_verify)


def _bench_command(commands) -> None:
    bench = commands.add_parser(
        "bench",
        help="measure latency, throughput, load time and memory of every export in every runtime",
        description="Time every artifact in every runtime that can run it, each combination in a fresh process: "
        "batch-1 latency (p50/p90/p99), throughput at batch 1, 32 and 256, load and first-inference time, peak RSS. "
        "Writes bench.json, bench_<profile>.png and a table in report.md. With --target ssh://…, on that device.",
    )
    _add_bundle_argument(bench)
    _add_data_options(bench)
    _add_target_option(bench, help="local (default) or ssh://user@host[:port][?python=PATH&key=FILE&known_hosts=FILE]")
    _add_bench_options(bench)
    _add_json(bench, "the bench rows")
    bench.set_defaults(handler=cmd_bench)


def _cost_command(commands) -> None:
    cost = commands.add_parser(
        "cost",
        help="instructions per image of every export on an emulated ARM64 core (deterministic)",
        description="Count the guest instructions retired per batch-1 inference of every export on an emulated "
        "ARM64 core (QEMU user-mode and a TCG plugin): the same files and core give the same count on every run. "
        "Emulated wall-clock time is not latency and is never shown.",
    )
    _add_bundle_argument(cost)
    _add_data_options(cost)
    core_help = (
        "arm64-emu[:CORE] (default arm64-emu: cortex-a76); CORE: cortex-a53, cortex-a72, cortex-a76, neoverse-n1"
    )
    _add_target_option(cost, "arm64-emu", core_help)
    cost.add_argument("--calls", type=_positive, default=20, help="batch-1 inferences counted per export (default 20)")
    _add_json(cost, "the instruction-count rows")
    cost.set_defaults(handler=cmd_cost)


def _predict_command(commands) -> None:
    predict = commands.add_parser(
        "predict",
        help="read digits from pictures (PNG, JPEG) with an exported model",
        description="Turn each picture into a 28×28 MNIST digit the way MNIST was made (crop to the ink, fit "
        "20×20 keeping the aspect ratio, centre by mass in 28×28; dark-on-light pictures are inverted, thin "
        "strokes thickened) and print the model's answer and its 10 probabilities.",
    )
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="PNG or JPEG files, any size or colour")
    predict.add_argument("--model", required=True, metavar="FILE", help="a .tflite or .onnx file of a bundle")
    predict.add_argument("--save-digits", metavar="DIR", help="also write each 28×28 digit the model saw as PNG")
    _add_json(predict, "the answers")
    predict.set_defaults(handler=cmd_predict)


def _serve_command(commands) -> None:
    serve_parser = commands.add_parser(
        "serve",
        help="a page where you draw a digit and the bundle's models answer in the browser",
        description="Serve a page (127.0.0.1 by default) where you draw a digit and the bundle's .onnx and .tflite "
        "files answer in the browser (onnxruntime-web and LiteRT.js, WebAssembly): the 28×28 digit the model sees, "
        "its 10 probabilities, the in-browser latency, and a test run on MNIST digits against the native runtime.",
    )
    _add_bundle_argument(serve_parser)
    serve_parser.add_argument("--port", type=int, default=8000, help="port (default %(default)s; 0 picks a free one)")
    serve_parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    _add_data_options(serve_parser)
    serve_parser.set_defaults(handler=cmd_serve)


def _target_command(commands) -> None:
    target = commands.add_parser(
        "target",
        help="set up or inspect a target (arm64-emu, ssh://…)",
        description="Prepare the emulated ARM64 target, or show what a target is (CPU, libraries).",
    )
    actions = target.add_subparsers(dest="action", required=True, metavar="ACTION")
    setup = actions.add_parser(
        "setup", help="prepare arm64-emu: Debian arm64 userland, aarch64 wheels, instruction counter (about 2.5 min)"
    )
    setup.add_argument("name", choices=["arm64-emu"], help="the target to prepare")
    setup.add_argument("--force", action="store_true", help="rebuild even if the cached userland is current")
    setup.set_defaults(handler=cmd_target_setup)
    info = actions.add_parser("info", help="what a target runs on: uname -m, CPU, library versions")
    info.add_argument("name", metavar="TARGET", help=TARGET_HELP)
    _add_json(info, "the target's identity")
    info.set_defaults(handler=cmd_target_info)


def _npu_command(commands) -> None:
    npu = commands.add_parser(
        "npu",
        help="compile the int8 model for Snapdragon NPUs (Hexagon HTP); judge and count cycles in Qualcomm's simulator",
        description="Compile the bundle's int8 .tflite for each SoC with LiteRT's Qualcomm compiler plugin "
        "(npu/lenet5_int8_SOC.tflite, and ONNX Runtime's QNN context model npu/lenet5_int8_SOC_ctx.onnx), prove "
        "the NPU takes the whole graph, judge the answers in Qualcomm's HTP simulator against Keras and LiteRT on "
        "the CPU, and count simulated cycles per image and per op. Exit 1 if a SoC fails; the others are done.",
    )
    _add_bundle_argument(npu)
    npu.add_argument("--soc", action="append", metavar="SOC", help="a Snapdragon SoC, e.g. SM8550 (repeatable)")
    npu.add_argument("--all", action="store_true", help="every SoC the compiler plugin knows")
    npu.add_argument("--limit", type=_positive, metavar="N", help="judge on the first N test digits (default all)")
    npu.add_argument(
        "--workers", type=_positive, help="simulator processes (default: one per 500 digits, up to one per core)"
    )
    npu.add_argument(
        "--verify", action="store_true", help="re-judge the compiled files the manifest lists, compile nothing"
    )
    _add_data_options(npu)
    _add_json(npu, "the npu section of the report")
    npu.set_defaults(handler=cmd_npu)


COMMANDS = (_run_command, _train_command, _export_command, _verify_command, _bench_command, _cost_command,
            _predict_command, _serve_command, _target_command, _npu_command)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lenet-edge", description="Train LeNet-5 on MNIST, export it for phones.")
    parser.add_argument("--version", action="version", version=f"lenet-edge {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(commands)
    return parser


# --- shared steps ------------------------------------------------------------------------------------------


def _check_json_path(target: str | None) -> None:
    """--json PATH must name a file that can be written, checked before any work."""
    if target in (None, "-"):
        return
    path = Path(target)
    if path.is_dir() or path.is_symlink():
        raise UsageError(f"--json {target}: is a folder or a link; name a file")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise UsageError(f"--json {target}: its folder does not exist or is not writable")


def _emit(args, result) -> None:
    """Write the command's result where --json says (nothing without it)."""
    target = getattr(args, "json", None)
    if target == "-":
        print(json.dumps(result, indent=2), flush=True)
    elif target:
        write_json(Path(target), result)


def _load_data(args, bundle: str | None = None) -> Mnist:
    """MNIST as the command's options say, falling back on the data ``bundle`` was made from."""
    recorded = read_manifest(bundle).dataset if bundle else None
    mnist = load_mnist(args.data, download=not args.offline, recorded=recorded)
    log(f"MNIST: {mnist.source} ({len(mnist.x_train)} train, {len(mnist.x_test)} test images, checksums ok)")
    return mnist


def _gates(args) -> dict[str, Gate]:
    """The verify gates: the precisions table's, with any gate flag given on the command line."""
    values = {name: dict(vars(precision.verify)) for name, precision in PRECISIONS.items()}
    for flag, precisions, field, unit, _ in GATE_FLAGS:
        given = getattr(args, flag[2:].replace("-", "_"))
        if given is not None:
            for name in precisions:
                values[name][field] = given / unit
    return {name: Gate(**fields_) for name, fields_ in values.items()}


def _local_only_options(args) -> list[str]:
    """Options of a local verify given to a --target one."""
    given = [flag for flag, *_ in GATE_FLAGS if getattr(args, flag[2:].replace("-", "_")) is not None]
    local = (("--threads", args.threads), ("--layers", args.layers), ("--consumers", args.consumers))
    return given + [flag for flag, value in local if value]


# verify's exit codes beyond 0 (all passed) and 1 (an artifact did not pass); 2 is bad input, as everywhere
VERIFY_NO_REPORT = {False: 3, True: 4}  # the verdict was printed, but the report could not be written


def _verify(args, bundle: str, mnist: Mnist, layers: bool) -> tuple[int, list[dict]]:
    """Verify a bundle, print the verdict, write its report; (0 all passed, 1 an artifact did not pass, 3 or 4
    the same but the report could not be written; the rows)."""
    result = verify_bundle(bundle, mnist, _gates(args), args.threads)
    rows = [row.to_dict() for row in result.pop("rows")]
    failed = [
        row["format"] + (f" in {row['runtime']}" if row["runtime"] == MICRO_RUNTIME else "")
        for row in rows
        if row["status"] != "pass"
    ]
    verdict = f"{len(failed)} of {len(rows)} did not pass: {', '.join(failed)}" if failed else "all passed"
    sections: dict = {"verify": rows, "verify_info": result}
    if getattr(args, "consumers", False):
        log("in other consumers:")
        sections["consumers"] = consumers_table(Path(bundle), read_manifest(bundle), mnist)
        answered_otherwise = [f"{r['format']} in {r['consumer']}" for r in sections["consumers"]["rows"]
                              if r["status"] in ("fail", "refused")]  # fmt: skip
        if answered_otherwise:
            verdict += f"; refused or answered otherwise in another consumer: {', '.join(answered_otherwise)}"
            failed += answered_otherwise
    try:
        drawn = _draw(plot_confusion_matrices, rows, bundle, CONFUSION_PNG)
        update_report(bundle, sections | {"charts": read_report(bundle).get("charts", {}) | drawn})
        if layers:
            found = layer_report(Path(bundle), read_manifest(bundle), mnist)
            drawn = {f"layers_{fmt}.png": False for fmt in found}  # not measured: no chart
            for fmt, data in found.items():
                if "rows" in data:
                    drawn |= _draw(functools.partial(plot_layer_errors, fmt), data, bundle, f"layers_{fmt}.png")
            update_report(bundle, {"layers": found, "charts": read_report(bundle).get("charts", {}) | drawn})
    except OSError as exc:
        log(f"verify: {verdict} ({result['seconds']:.1f} s)")
        log(f"verify: the report was NOT written ({exc.filename or bundle}: {exc.strerror or exc})")
        return VERIFY_NO_REPORT[bool(failed)], rows
    log(f"verify: {verdict} ({result['seconds']:.1f} s); see {Path(bundle) / REPORT_MD}")
    return (1 if failed else 0), rows


def _draw(plot: Callable[[Any, Path], object], data: Any, bundle: str | Path, name: str) -> dict[str, bool]:
    """Draw one chart into the bundle: {name: drawn}, for report.json's ``charts`` (report.md links a chart
    only when the last run of its section drew it)."""
    try:
        plot(data, Path(bundle) / name)
    except ImportError:
        log(f"(no matplotlib here: {name} not redrawn, and report.md no longer shows it)")
        return {name: False}
    return {name: True}


def _bench(args, bundle: str, mnist: Mnist) -> tuple[int, list[dict]]:
    """Bench a bundle, write bench.json, its chart and report section; (1 if a combination failed, the rows)."""
    result = bench_bundle(bundle, mnist, args.profile, args.seconds, browser=args.browser)
    machine = result["info"]["machine"]  # the host every figure depends on, beside the rows
    write_json(Path(bundle) / BENCH_JSON, {"profile": args.profile, "machine": machine, "rows": result["rows"]})
    report = read_report(bundle)
    sections = report.get("bench", {}) | {args.profile: result}
    drawn = _draw(
        lambda rows, path: plot_bench(rows, args.profile, path), result["rows"], bundle, f"bench_{args.profile}.png"
    )
    update_report(
        bundle,
        {
            "bench": sections,
            "profile": profile_bundle(Path(bundle), read_manifest(bundle)),
            "charts": report.get("charts", {}) | drawn,
        },
    )
    for error in result["info"]["errors"]:
        log(f"bench: {error['combination']} failed: {error['reason']}")
    log(f"bench: {len(result['rows'])} rows in {result['info']['took_s']:.0f} s; see {Path(bundle) / REPORT_MD}")
    return (1 if result["info"]["errors"] else 0), result["rows"]


def _train(args, mnist: Mnist):
    names = {f.name for f in fields(TrainConfig)}
    values = vars(args) | {"learning_rate": args.lr}
    config = TrainConfig(**{k: v for k, v in values.items() if k in names})
    log(f"training {config.arch} ({config.activation}) for {config.epochs} epochs, seed {config.seed}")
    result = train(mnist, config)
    log(
        f"trained in {result.seconds:.0f} s: kept epoch {result.best_epoch} (validation {result.val_accuracy:.2%}), "
        f"Keras test accuracy {result.test_accuracy:.2%}"
    )
    record = result.describe()
    record["model"] = _model_facts(result.model, config.arch, config.activation)
    return result.model, record, result


def _model_facts(model, arch: str, activation: str | None) -> dict:
    known = ARCHITECTURES.get(arch)
    return {
        "architecture": arch,
        "activation": activation,
        "summary": known.summary if known else model.name,
        "params": count_params(model),
        "macs": count_macs(model),
    }


def _written(manifest: Manifest, out: str) -> int:
    """List what the bundle holds; 1 if any format failed."""
    log(f"\nwrote {out}/:")
    for entry in manifest.artifacts:
        log(f"  {entry.file:<24} {entry.bytes / 1024:8.1f} KB  {entry.format} ({entry.runtime})")
    for name in (LABELS, TRAINING_RECORD, TRAINING_CURVES, README, MANIFEST):
        if (Path(out) / name).exists():
            log(f"  {name}")
    log(f"Keras test accuracy: {manifest.keras_test_accuracy:.2%}")
    for failure in manifest.failed:
        log(f"FAILED {failure['format']}: {failure['reason']}")
    return 1 if manifest.failed else 0


def _command() -> str:
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


def _next_steps(out: str) -> None:
    """Close a run with the commands a user runs next, as they can be typed here."""
    me = _command()
    log("\nnext:")
    log(f"  read {out}/README.md for how an app feeds each model, and {out}/report.md for what each one is worth")
    log(f"  {me} verify {out}   # judge every export again (it finds the MNIST this bundle was made from)")
    log(f"  {me} bench {out} --profile mobile   # latency under one phone core's constraints")
    log(f"  {me} predict one.png two.jpg --model {out}/lenet5_int8.tflite   # read digits from your pictures")
    log(f"  {me} serve {out}   # draw a digit in your browser and let every runtime answer")
    log(f"  {me} export {out}/lenet5.keras --keep-float C1   # int8 with the named layers left in float")


def _bundle_and_check(
    args,
    model,
    record: dict,
    mnist: Mnist,
    formats: list,
    trained: TrainResult | None = None,
    steps: dict[str, float] | None = None,
) -> int:
    """Write the bundle and list it, verify and bench it as the command asks, close with the next commands and
    the time each step took (also kept in timings.json)."""
    keep_float = tuple(args.keep_float)
    steps = {} if steps is None else steps
    started = time.perf_counter()
    seconds = None if trained is None else trained.seconds
    manifest, where = write_bundle(args.out, model, record, mnist, formats, args.calibration, keep_float, seconds)
    steps["export"] = time.perf_counter() - started
    if where.resolve() != Path(args.out).resolve():
        for failure in manifest.failed:
            log(f"FAILED {failure['format']}: {failure['reason']}")
        log(f"export failed: the previous bundle in {args.out} is unchanged; this attempt is in {where} (its "
            "manifest.json lists what failed and why)")  # fmt: skip
        _emit(args, {"bundle": str(where), "manifest": manifest.to_dict(), "verify": None, "bench": None})
        return 1
    status = _written(manifest, args.out)
    result: dict = {"bundle": args.out, "manifest": manifest.to_dict(), "verify": None, "bench": None}
    if formats and args.verify:
        started = time.perf_counter()
        code, result["verify"] = _verify(args, args.out, mnist, layers=True)
        status, steps["verify"] = max(status, code), time.perf_counter() - started
    if formats and args.bench:
        started = time.perf_counter()
        code, result["bench"] = _bench(args, args.out, mnist)
        status, steps["bench"] = max(status, code), time.perf_counter() - started
    _emit(args, result)
    _next_steps(args.out)
    _time_per_step(Path(args.out), steps, None if trained is None else trained.epoch_seconds)
    return status


def _time_per_step(bundle: Path, steps: dict[str, float], epochs: list[float] | None) -> None:
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


# --- handlers ------------------------------------------------------------------------------------------------


def cmd_run(args) -> int:
    """run: train, then export, verify and bench; train: the same with no format exported."""
    formats = [] if args.train_only else get_formats(args.formats)
    check_output_folder(args.out)
    started = time.perf_counter()
    mnist = _load_data(args)
    steps = {"data": time.perf_counter() - started}
    calibration_images(mnist, args.calibration, args.seed)  # a count that cannot fit fails now, not after training
    import_tensorflow()  # a runtime-only install says so here
    check_keep_float(build_model(args.arch, args.activation), tuple(args.keep_float))  # the layers are named alike
    model, record, trained = _train(args, mnist)
    steps["training"] = trained.seconds
    return _bundle_and_check(args, model, record, mnist, formats, trained, steps)


def cmd_export(args) -> int:
    path = Path(args.model)
    if not path.is_file() or path.suffix != ".keras":
        raise UsageError(f"{path}: not a .keras model file")
    import_tensorflow()
    check_output_folder(args.out)
    try:
        model = KerasRunner(path).model
    except Exception as exc:
        raise UsageError(f"{path}: cannot load as a Keras model ({type(exc).__name__})") from None
    if tuple(model.inputs[0].shape[1:]) != (28, 28, 1) or tuple(model.outputs[0].shape[1:]) != (10,):
        raise UsageError(
            f"{path}: takes {model.inputs[0].shape} and gives {model.outputs[0].shape}, "
            "not [batch, 28, 28, 1] raw pixels to 10 probabilities"
        )
    check_keep_float(model, tuple(args.keep_float))
    record_path = path.with_name(TRAINING_RECORD)
    record: dict[str, Any] = json.loads(record_path.read_text()) if record_path.is_file() else {"config": {"seed": 0}}
    if args.seed is not None:
        record["config"]["seed"] = args.seed
    config = record["config"]
    record["model"] = _model_facts(model, config.get("arch", model.name), config.get("activation"))
    mnist = _load_data(args)
    return _bundle_and_check(args, model, record, mnist, get_formats(args.formats))


def cmd_verify(args) -> int:
    target = parse_target(args.target)
    read_manifest(args.bundle)  # a clear error before the data is loaded or any target work
    if target.kind == "local":
        if args.limit:
            raise UsageError("--limit is for --target runs; a local verify judges all 10,000 test images")
        status, rows = _verify(args, args.bundle, _load_data(args, args.bundle), layers=args.layers)
        _emit(args, rows)
        return status
    if local := _local_only_options(args):
        raise UsageError(f"{', '.join(local)}: for a local verify; on a target the parity gates judge")
    result = verify_on_target(args.bundle, _load_data(args, args.bundle), target, args.limit)
    _record_target(args.bundle, target, "verify", result)
    _emit(args, result["rows"])
    failed = [row["format"] for row in result["rows"] if row["status"] != "pass"]
    verdict = (
        f"{len(failed)} of {len(result['rows'])} differ beyond the gate: {', '.join(failed)}"
        if failed
        else "all answer like this machine"
    )
    log(f"verify on {target.name}: {verdict} ({result['seconds']:.0f} s); see {Path(args.bundle) / REPORT_MD}")
    return 1 if failed else 0


def cmd_bench(args) -> int:
    target = parse_target(args.target)
    if target.kind == "emulated":
        raise UsageError(
            f"{target.name}: wall-clock time under emulation is not latency; "
            f"count instructions instead: lenet-edge cost {args.bundle} --target {target.name}"
        )
    read_manifest(args.bundle)  # a clear error before the data is loaded
    if target.kind == "local":
        status, rows = _bench(args, args.bundle, _load_data(args, args.bundle))
        _emit(args, rows)
        return status
    result = bench_on_target(args.bundle, _load_data(args, args.bundle), target, args.profile, args.seconds)
    _record_target(args.bundle, target, "bench", result)
    _emit(args, result["rows"])
    log(f"bench on {target.name}: {len(result['rows'])} rows; see {Path(args.bundle) / REPORT_MD}")
    return 0


def cmd_cost(args) -> int:
    target = parse_target(args.target)
    if target.kind != "emulated":
        raise UsageError(f"{target.name}: instruction counts need an emulated target (arm64-emu[:CORE])")
    read_manifest(args.bundle)
    result = count_on_target(args.bundle, _load_data(args, args.bundle), target, args.calls)
    _record_target(args.bundle, target, "cost", result)
    _emit(args, result["rows"])
    log(f"cost on {target.name}: {len(result['rows'])} rows; see {Path(args.bundle) / REPORT_MD}")
    return 0


def _record_target(bundle: str, target: Target, key: str, result: dict) -> None:
    """Merge a target's result into report.json's ``targets`` (by target, then verify/cost/bench)."""
    targets = read_report(bundle).get("targets", {})
    entry = targets.setdefault(target.name, {})
    entry["identity"] = result["identity"]
    if key == "bench":
        entry.setdefault("bench", {})[result["info"]["profile"]] = result
    else:
        entry[key] = result
    charts = read_report(bundle).get("charts", {})
    if key == "cost":
        charts |= _draw(plot_instruction_counts, costs_by_core(targets), bundle, TARGETS_PNG)
    update_report(bundle, {"targets": targets, "charts": charts})


def cmd_predict(args) -> int:
    """Read every picture given; answer the readable ones, name each unreadable one with its reason (exit 2)."""
    model = Path(args.model)
    runtime = MODEL_SUFFIXES.get(model.suffix)
    if runtime is None or not model.is_file():
        raise UsageError(f"{model}: not a .tflite or .onnx file")
    require_pillow()  # one line naming the extra, not one per picture
    digits: dict[str, np.ndarray] = {}
    unreadable: dict[str, str] = {}
    for image in dict.fromkeys(args.images):  # a picture named twice is read once
        try:
            digits[image] = mnist_digit(image)
        except LenetEdgeError as exc:  # named after the picture, whatever the reason says
            unreadable[image] = str(exc) if str(exc).startswith(f"{image}: ") else f"{image}: {exc}"
    results: list[dict] = []
    answers: dict[str, np.ndarray] = {}
    if digits:
        try:
            runner = open_runner(runtime, model)
        except RuntimeNotInstalled as exc:  # a one-runtime device given the other runtime's file
            raise UsageError(f"{model}: {exc}") from None
        except Exception as exc:
            raise UsageError(f"{model}: cannot be loaded by {runtime} ({type(exc).__name__})") from None
        try:
            probabilities = runner.predict(np.stack(list(digits.values())))
        except Exception as exc:  # a foreign model: another input shape or type
            raise UsageError(
                f"{model}: does not answer 28×28 raw-pixel digits with 10 probabilities ({one_line(exc)[:160]})"
            ) from None
        if probabilities.shape != (len(digits), 10):
            raise UsageError(f"{model}: answers {probabilities.shape[1:]}, not 10 probabilities")
        if args.save_digits:
            folder = Path(args.save_digits)
            folder.mkdir(parents=True, exist_ok=True)
            for image, digit in digits.items():
                save_digit(digit, folder / f"{Path(image).stem}_28x28.png")
        answers = dict(zip(digits, probabilities, strict=True))
    for image in dict.fromkeys(args.images):
        if image in unreadable:
            print(f"lenet-edge: error: {unreadable[image]}", file=sys.stderr)
            results.append({"image": image, "error": unreadable[image]})
            continue
        p = answers[image]
        row = {
            "image": image,
            "label": int(p.argmax()),
            "confidence": float(p.max()),
            "probabilities": p.round(6).tolist(),
        }
        bars = "  ".join(f"{d}:{q:.2f}" for d, q in enumerate(row["probabilities"]))
        log(f"{image}: {row['label']} ({row['confidence']:.1%})   {bars}")
        results.append(row)
    _emit(args, results)
    return 2 if unreadable else 0


def cmd_serve(args) -> int:
    read_manifest(args.bundle)  # a clear error before the port is taken
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: not a port number")
    try:
        mnist, data_error = _load_data(args, args.bundle), None
    except DataError as exc:  # the page still draws; only its test-digit run needs MNIST
        mnist, data_error = None, str(exc)
        log(f"(no test digits for the page: {exc})")
    interrupt_note("the server stopped")
    serve(args.bundle, args.host, args.port, mnist, data_error, native=open_runner)
    return 0


def cmd_npu(args) -> int:
    options = npu_options(args.bundle, args.soc, args.all, args.verify, args.limit, args.workers)
    status, section = run_npu(options, _load_data(args, args.bundle))
    charts = read_report(args.bundle).get("charts", {}) | _draw(plot_npu_cycles, section, args.bundle, NPU_PNG)
    update_report(args.bundle, {"npu": section, "charts": charts})
    _emit(args, section)
    return status


def cmd_target_setup(args) -> int:
    setup_arm64_emu(force=args.force)
    return 0


def cmd_target_info(args) -> int:
    identity = parse_target(args.name).identity()
    shown = dict(identity)
    versions = ", ".join(f"{k} {v}" for k, v in shown.pop("versions").items())
    for key, value in shown.items():
        if value is not None:
            log(f"{key:>17}: {value}")
    log(f"{'versions':>17}: {versions}")
    _emit(args, identity)
    return 0


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an interruption so that the same clean-up runs as for Ctrl-C."""


def _terminate(signum, frame) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    log_to_stderr(getattr(args, "json", None) == "-")
    interrupt_note("")
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        _check_json_path(getattr(args, "json", None))
        return args.handler(args)
    except LenetEdgeError as exc:
        print(f"lenet-edge: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # permissions, a full disk: the user's to fix, so one line, no traceback
        print(f"lenet-edge: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print(f"lenet-edge: {interrupted_message()}", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    finally:
        log_to_stderr(False)
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
