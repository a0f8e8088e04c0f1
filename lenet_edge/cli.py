"""The ``lenet-edge`` command: it parses and dispatches. One small parser builder and one handler per
subcommand; each handler reads its arguments, calls one function of the layer below and turns the result into an
exit code. The work lives in pipeline (run, train, export), steps (verify, bench), targets (what runs where),
predict and serve; the printing of results in the helpers at the end.

``--json PATH`` means the same everywhere: write this command's result as JSON to PATH (``-``: stdout, and the
log goes to stderr)."""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import sys
import threading
import time
from dataclasses import fields, replace
from pathlib import Path

from . import __version__
from .arguments import (
    add_bench_options,
    add_bundle_argument,
    add_checks_after_export,
    add_data_options,
    add_export_options,
    add_gate_options,
    add_json,
    add_out_option,
    add_target_option,
    add_train_options,
    add_verify_extras,
    positive,
    seed,
)
from .console import interrupt_note, interrupted_message, log, log_to_stderr
from .devices import DEVICES, find_device
from .errors import DataError, LenetEdgeError, UsageError
from .files import write_json
from .formats import GATE_FLAGS, PRECISIONS, Gate, get_formats
from .manifest import read_manifest
from .mcu.build import Optimisation
from .mcu.command import DEFAULT_DIGITS, mcu_options
from .model_origin import PREPROCESSINGS
from .npu.command import npu_options
from .pipeline import BroughtModel, Checks, ExportOptions, export_model, train_and_export
from .predict import PictureAnswer, predict_pictures
from .runtimes import open_runner
from .serve import serve
from .steps import (
    GPU_RUN_DIGITS,
    MICRO_RUN_DIGITS,
    NPU_VERIFY_DIGITS,
    BenchOptions,
    DataSource,
    VerifyOptions,
    bench_step,
    load_data,
    mcu_step,
    npu_step,
    verify_step,
)
from .targets import TARGET_HELP, parse_target
from .targets.arm64_emu import setup as setup_arm64_emu
from .targets.jobs import bench_there, cost_there, device_there, verify_there
from .train import TrainConfig
from .user_model import AUTO, INPUT_SCALES

# --- one builder per subcommand ------------------------------------------------------------------------------


def _run_command(commands) -> None:
    run = commands.add_parser(
        "run",
        help="train, then export every format into a bundle, verify and bench it",
        description="Train LeNet-5 on MNIST and export every format into one bundle; verify and bench it.",
    )
    add_out_option(run)
    add_data_options(run)
    add_train_options(run)
    add_export_options(run)
    add_checks_after_export(run)
    run.set_defaults(handler=cmd_run)


def _train_command(commands) -> None:
    train_parser = commands.add_parser(
        "train",
        help="train only: a bundle holding the Keras model and its record",
        description="Train and save lenet5.keras with its training record and curves.",
    )
    add_out_option(train_parser)
    add_data_options(train_parser)
    add_train_options(train_parser)
    add_json(train_parser, "the manifest")
    train_parser.set_defaults(handler=cmd_train)


def _export_command(commands) -> None:
    export = commands.add_parser(
        "export",
        help="export a trained .keras model into a bundle",
        description="Export a trained Keras model to every format into one bundle; verify and bench it.",
    )
    export.add_argument(
        "model",
        metavar="MODEL",
        help="a trained Keras model: .keras, .h5 (Keras 3 or Keras 2), an architecture .json beside its weights .h5, "
        "or a SavedModel folder (our training.json beside a bundle's model is kept)",
    )
    export.add_argument(
        "--architecture",
        metavar="FILE.json",
        help="the architecture JSON (model.to_json()) of a weights-only .h5 MODEL (default: MODEL's stem + .json)",
    )
    export.add_argument(
        "--weights",
        metavar="FILE.h5",
        help="the weights-only HDF5 of an architecture .json MODEL (default: MODEL's stem + .h5, .hdf5 or .weights.h5)",
    )
    export.add_argument("--seed", type=seed, help="seed of the calibration pick (default: the training seed)")
    export.add_argument(
        "--input-scale",
        choices=INPUT_SCALES,
        default=AUTO,
        help="the preprocessing the model was trained on, folded into every export: "
        + "; ".join(f"{name}: {p.label}" for name, p in PREPROCESSINGS.items())
        + " (default auto: found by scoring the test digits under each)",
    )
    add_out_option(export)
    add_data_options(export)
    add_export_options(export)
    add_checks_after_export(export)
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
    add_bundle_argument(verify)
    add_data_options(verify)
    add_target_option(verify)
    verify.add_argument(
        "--limit",
        type=positive,
        metavar="N",
        help="with --target: parity on the first N test images only (default all 10,000)",
    )
    add_verify_extras(verify)
    add_gate_options(verify)
    add_json(verify, "the verify rows")
    verify.set_defaults(handler=cmd_verify)


def _bench_command(commands) -> None:
    bench = commands.add_parser(
        "bench",
        help="measure latency, throughput, load time and memory of every export in every runtime",
        description="Time every artifact in every runtime that can run it, each combination in a fresh process: "
        "batch-1 latency (p50/p90/p99), throughput at batch 1, 32 and 256, load and first-inference time, peak RSS. "
        "Writes bench.json, bench_<profile>.png and a table in report.md. With --target ssh://…, on that device.",
    )
    add_bundle_argument(bench)
    add_data_options(bench)
    add_target_option(bench, help="local (default) or ssh://user@host[:port][?python=PATH&key=FILE&known_hosts=FILE]")
    add_bench_options(bench)
    add_json(bench, "the bench rows")
    bench.set_defaults(handler=cmd_bench)


def _cost_command(commands) -> None:
    cost = commands.add_parser(
        "cost",
        help="instructions per image of every export on an emulated ARM64 core (deterministic)",
        description="Count the guest instructions retired per batch-1 inference of every export on an emulated "
        "ARM64 core (QEMU user-mode and a TCG plugin): the same files and core give the same count on every run. "
        "Emulated wall-clock time is not latency and is never shown.",
    )
    add_bundle_argument(cost)
    add_data_options(cost)
    core_help = (
        "arm64-emu[:CORE] (default arm64-emu: cortex-a76); CORE: cortex-a53, cortex-a72, cortex-a76, neoverse-n1"
    )
    add_target_option(cost, "arm64-emu", core_help)
    cost.add_argument(
        "--device",
        metavar="NAME",
        help="estimated µs per image on every core type of a named device, and what to deploy (with --target "
        f"ssh://…, that device's bench beside): {', '.join(DEVICES)}",
    )
    cost.add_argument("--calls", type=positive, default=20, help="batch-1 inferences counted per export (default 20)")
    add_json(cost, "the instruction-count rows (with --device: the device's estimate)")
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
    add_json(predict, "the answers")
    predict.set_defaults(handler=cmd_predict)


def _serve_command(commands) -> None:
    serve_parser = commands.add_parser(
        "serve",
        help="a page where you draw a digit and the bundle's models answer in the browser",
        description="Serve a page (127.0.0.1 by default) where you draw a digit and the bundle's .onnx and .tflite "
        "files answer in the browser (onnxruntime-web and LiteRT.js, WebAssembly): the 28×28 digit the model sees, "
        "its 10 probabilities, the in-browser latency, and a test run on MNIST digits against the native runtime.",
    )
    add_bundle_argument(serve_parser)
    serve_parser.add_argument("--port", type=int, default=8000, help="port (default %(default)s; 0 picks a free one)")
    serve_parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    add_data_options(serve_parser)
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
    add_json(info, "the target's identity")
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
    add_bundle_argument(npu)
    npu.add_argument("--soc", action="append", metavar="SOC", help="a Snapdragon SoC, e.g. SM8550 (repeatable)")
    npu.add_argument("--all", action="store_true", help="every SoC the compiler plugin knows")
    npu.add_argument("--limit", type=positive, metavar="N", help="judge on the first N test digits (default all)")
    npu.add_argument(
        "--workers", type=positive, help="simulator processes (default: one per 500 digits, up to one per core)"
    )
    npu.add_argument(
        "--verify", action="store_true", help="re-judge the compiled files the manifest lists, recompile none"
    )
    add_data_options(npu)
    add_json(npu, "the npu section of the report")
    npu.set_defaults(handler=cmd_npu)


def _mcu_command(commands) -> None:
    mcu = commands.add_parser(
        "mcu",
        help="run the int8 model as plain C on emulated Cortex-M boards; flash, RAM, time per core; Ethos-U by Vela",
        description="Cross-compile the bundle's C model (lenet5_int8.c, generated from the int8 .tflite when the "
        "bundle has none) with a bare-metal harness for each board, run it under qemu-system-arm on test digits "
        "and compare every answer with TFLite Micro on this host, byte for byte; flash and RAM from the linked "
        "ELF and the painted stack, against TFLite Micro's; whether it fits each real board; time per image "
        "estimated per core (the method beside every figure); the int8 .tflite compiled for Ethos-U NPUs by "
        "Vela. Exit 1 if a board does not answer bit for bit; the others are done.",
    )
    add_bundle_argument(mcu)
    mcu.add_argument(
        "--board", action="append", metavar="NAME",
        help="an emulated board (microbit, mps2-an386, …) or a real board it stands for (nano-33-ble-sense, …); "
        "repeatable; a wrong name lists them all",
    )  # fmt: skip
    mcu.add_argument("--all", action="store_true", help="every emulated board")
    mcu.add_argument(
        "--digits", type=positive, default=DEFAULT_DIGITS, metavar="N",
        help=f"test digits each board runs and is judged on (default {DEFAULT_DIGITS})",
    )  # fmt: skip
    mcu.add_argument(
        "--opt", choices=[o.value for o in Optimisation], default=Optimisation.O2.value,
        help="GCC's optimisation level for the model and the harness (default O2)",
    )  # fmt: skip
    mcu.add_argument("--no-vela", action="store_true", help="leave out the Ethos-U rows (Vela)")
    add_data_options(mcu)
    add_json(mcu, "the mcu section of the report")
    mcu.set_defaults(handler=cmd_mcu)


COMMANDS = (_run_command, _train_command, _export_command, _verify_command, _bench_command, _cost_command,
            _predict_command, _serve_command, _target_command, _npu_command, _mcu_command)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lenet-edge", description="Train LeNet-5 on MNIST, export it for phones.")
    parser.add_argument("--version", action="version", version=f"lenet-edge {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(commands)
    return parser


# --- from arguments to options -------------------------------------------------------------------------------


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


def _data(args) -> DataSource:
    return DataSource(args.data, args.offline)


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
    local = (("--threads", args.threads), ("--layers", args.layers), ("--consumers", args.consumers),
             ("--gpu-digits", args.gpu_digits is not None))  # fmt: skip
    return given + [flag for flag, value in local if value]


def _verify_options(args, layers: bool) -> VerifyOptions:
    return VerifyOptions(
        _gates(args),
        args.threads,
        getattr(args, "consumers", False),
        layers,
        gpu_digits=args.gpu_digits,
        npu_digits=getattr(args, "npu_digits", NPU_VERIFY_DIGITS),
        started=args.started if args.command == "verify" else None,
    )


def _bench_options(args) -> BenchOptions:
    return BenchOptions(args.profile, args.seconds, args.browser)


def _export_options(args) -> ExportOptions:
    return ExportOptions(args.out, get_formats(args.formats), args.calibration, tuple(args.keep_float))


def _checks(args) -> Checks:
    """run and export: verify (with the layer report; TFLite Micro on MICRO_RUN_DIGITS; not the Keras model, whose
    answers export stored from the saved file a moment before) and bench the new bundle, unless told not to; the
    bench quick (each deployable file once: `lenet-edge bench` measures the rest)."""
    return Checks(
        replace(
            _verify_options(args, layers=True),
            keras_row=False,
            micro_digits=MICRO_RUN_DIGITS,
            gpu_digits=GPU_RUN_DIGITS if args.gpu_digits is None else args.gpu_digits,
        )
        if args.verify
        else None,
        replace(_bench_options(args), quick=True) if args.bench else None,
    )


def _train_config(args) -> TrainConfig:
    names = {f.name for f in fields(TrainConfig)}
    values = vars(args) | {"learning_rate": args.lr}
    return TrainConfig(**{k: v for k, v in values.items() if k in names})


# --- handlers ------------------------------------------------------------------------------------------------


def cmd_run(args) -> int:
    """run: train, then export, verify and bench."""
    result = train_and_export(_train_config(args), _data(args), _export_options(args), _checks(args))
    _emit(args, result.to_dict())
    return result.status


def cmd_train(args) -> int:
    """train: the same as run, with no format exported."""
    result = train_and_export(_train_config(args), _data(args), ExportOptions(args.out, formats=[]), Checks())
    _emit(args, result.to_dict())
    return result.status


def cmd_export(args) -> int:
    brought = BroughtModel(Path(args.model), args.input_scale, args.architecture, args.weights)
    result = export_model(brought, args.seed, _data(args), _export_options(args), _checks(args))
    _emit(args, result.to_dict())
    return result.status


def cmd_verify(args) -> int:
    target = parse_target(args.target)
    bundle = args.bundle
    read_manifest(bundle)  # a clear error before the data is loaded or any target work
    if target.kind == "local":
        if args.limit:
            raise UsageError("--limit is for --target runs; a local verify judges all 10,000 test images")
        result = verify_step(bundle, load_data(_data(args), bundle), _verify_options(args, args.layers))
    elif local := _local_only_options(args):
        raise UsageError(f"{', '.join(local)}: for a local verify; on a target the parity gates judge")
    else:
        result = verify_there(bundle, load_data(_data(args), bundle), target, args.limit)
    _emit(args, result.rows)
    return result.status


def cmd_bench(args) -> int:
    target = parse_target(args.target)
    if target.kind == "emulated":
        raise UsageError(
            f"{target.name}: wall-clock time under emulation is not latency; "
            f"count instructions instead: lenet-edge cost {args.bundle} --target {target.name}"
        )
    mnist = load_data(_data(args), args.bundle)  # the bundle's manifest is read first: a clear error before any work
    if target.kind == "local":
        result = bench_step(args.bundle, mnist, _bench_options(args))
    else:
        result = bench_there(args.bundle, mnist, target, args.profile, args.seconds)
    _emit(args, result.rows)
    return result.status


def cmd_cost(args) -> int:
    device = find_device(args.device) if args.device else None
    target = parse_target(args.target)
    if device is not None:  # the emulated cores the device needs; a real device's own bench stands beside
        read_manifest(args.bundle)  # a clear error before any work
        load = functools.partial(load_data, _data(args), args.bundle)  # only when a count has to run
        estimate = device_there(args.bundle, load, device, args.calls, target)
        _emit(args, estimate.rows[0])  # the device's table: µs per image per artifact and core type, the advice
        return estimate.status
    if target.kind != "emulated":
        raise UsageError(f"{target.name}: instruction counts need an emulated target (arm64-emu[:CORE])")
    result = cost_there(args.bundle, load_data(_data(args), args.bundle), target, args.calls)
    _emit(args, result.rows)
    return result.status


def cmd_predict(args) -> int:
    """Read every picture given; answer the readable ones, name each unreadable one with its reason (exit 2)."""
    save = Path(args.save_digits) if args.save_digits else None
    answers = predict_pictures(Path(args.model), args.images, save)
    _print_answers(answers)
    _emit(args, [answer.to_dict() for answer in answers])
    return 2 if any(answer.error for answer in answers) else 0


def cmd_serve(args) -> int:
    read_manifest(args.bundle)  # a clear error before the port is taken
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: not a port number")
    try:
        mnist, data_error = load_data(_data(args), args.bundle), None
    except DataError as exc:  # the page still draws; only its test-digit run needs MNIST
        mnist, data_error = None, str(exc)
        log(f"(no test digits for the page: {exc})")
    interrupt_note("the server stopped")
    serve(args.bundle, args.host, args.port, mnist, data_error, native=open_runner)
    return 0


def cmd_npu(args) -> int:
    options = npu_options(args.bundle, args.soc, args.all, args.verify, args.limit, args.workers)
    result = npu_step(args.bundle, load_data(_data(args), args.bundle), options)
    _emit(args, result.rows[0])
    return result.status


def cmd_mcu(args) -> int:
    options = mcu_options(args.bundle, args.board, args.all, args.digits, args.opt, not args.no_vela)
    result = mcu_step(args.bundle, load_data(_data(args), args.bundle), options)
    _emit(args, result.rows[0])
    return result.status


def cmd_target_setup(args) -> int:
    setup_arm64_emu(force=args.force)
    return 0


def cmd_target_info(args) -> int:
    identity = parse_target(args.name).identity()
    _print_identity(identity)
    _emit(args, identity)
    return 0


# --- printing ------------------------------------------------------------------------------------------------


def _print_answers(answers: list[PictureAnswer]) -> None:
    """One line per picture: the digit, its confidence and the 10 probabilities; errors to stderr."""
    for answer in answers:
        if answer.error:
            print(f"lenet-edge: error: {answer.error}", file=sys.stderr)
            continue
        bars = "  ".join(f"{d}:{q:.2f}" for d, q in enumerate(answer.probabilities))
        log(f"{answer.image}: {answer.label} ({answer.confidence:.1%})   {bars}")


def _print_identity(identity: dict) -> None:
    shown = dict(identity)
    versions = ", ".join(f"{k} {v}" for k, v in shown.pop("versions").items())
    for key, value in shown.items():
        if value is not None:
            log(f"{key:>17}: {value}")
    log(f"{'versions':>17}: {versions}")


# --- main ----------------------------------------------------------------------------------------------------


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an interruption so that the same clean-up runs as for Ctrl-C."""


def _terminate(signum, frame) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    args = build_parser().parse_args(argv)
    args.started = started  # what a command prints as its whole time counts from here
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
