"""The ``lenet-edge`` command: run (train + export), train, export."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from . import __version__
from .bundle import TRAINING_RECORD, check_output_folder, log
from .errors import LenetEdgeError, UsageError
from .formats import FORMAT_NAMES, get_formats
from .model import ACTIVATIONS, ARCHITECTURES
from .targets import TARGET_HELP
from .tf_quiet import import_tensorflow
from .train import TrainConfig

DEFAULT_OUT = "export"
DEFAULTS = TrainConfig()


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _format_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    try:
        return [f.name for f in get_formats(names or [text])]
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_io_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=DEFAULT_OUT, help="bundle folder (default %(default)s)")
    _add_data_options(parser)


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    group.add_argument(
        "--data",
        metavar="PATH",
        help="folder of the 4 MNIST IDX files (.gz or raw) or a Keras "
        "mnist.npz; default: $LENET_EDGE_DATA, then the Keras cache, then the Keras download",
    )
    group.add_argument("--offline", action="store_true", help="never try the Keras download")


def _add_train_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training")
    group.add_argument(
        "--arch", choices=list(ARCHITECTURES), default=DEFAULTS.arch, help="architecture (default %(default)s)"
    )
    group.add_argument("--activation", choices=ACTIVATIONS, default=DEFAULTS.activation, help="default %(default)s")
    group.add_argument("--epochs", type=_positive, default=DEFAULTS.epochs, help="default %(default)s")
    group.add_argument("--batch-size", type=_positive, default=DEFAULTS.batch_size, help="default %(default)s")
    group.add_argument(
        "--lr",
        type=float,
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
    group.add_argument("--seed", type=int, default=DEFAULTS.seed, help="makes the run repeatable (default %(default)s)")


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


# verify's gate flags: (flag, precision, Gate field, flag units per Gate unit, metavar); int8 also gates dynamic
GATE_FLAGS = (
    ("--fp32-min-agreement", "fp32", "min_agreement", 100, "PCT"),
    ("--fp32-max-dp", "fp32", "max_abs_dp", 1, "P"),
    ("--fp16-min-agreement", "fp16", "min_agreement", 100, "PCT"),
    ("--fp16-max-dp", "fp16", "max_abs_dp", 1, "P"),
    ("--quant-min-agreement", "int8", "min_agreement", 100, "PCT"),
    ("--quant-max-drop", "int8", "max_drop_pt", 1, "PT"),
)


def _add_verify_options(parser: argparse.ArgumentParser, in_run: bool = False) -> None:
    """Gate flags; ``in_run`` adds --no-verify for the commands that verify after exporting."""
    from .verify import DEFAULT_GATES as G

    group = parser.add_argument_group("verify gates (agreement in %, |Δp| absolute, drop in points)")
    if in_run:
        group.add_argument("--no-verify", dest="verify", action="store_false", help="skip verify after export")
    group.add_argument("--threads", type=_positive, help="runtime threads (default: the runtime's own choice)")
    group.add_argument("--json", metavar="FILE", help="also write the verify rows to FILE")
    for flag, precision, field, unit, metavar in GATE_FLAGS:
        which = "dynamic-range and int8" if precision == "int8" else precision
        default = getattr(G[precision], field) * unit
        group.add_argument(flag, type=float, default=default, metavar=metavar, help=f"{which} (default %(default)s)")


def _gates(args) -> dict:
    from .verify import Gate

    fields: dict[str, dict[str, float]] = {}
    for flag, precision, field, unit, _ in GATE_FLAGS:
        fields.setdefault(precision, {})[field] = getattr(args, flag[2:].replace("-", "_")) / unit
    quantized = Gate(**fields["int8"])
    return {"fp32": Gate(**fields["fp32"]), "fp16": Gate(**fields["fp16"]), "dynamic": quantized, "int8": quantized}


def _verify(args, bundle: str, mnist) -> int:
    """Verify a bundle, write its report (and --json), print the table; 1 if any artifact did not pass."""
    from .bundle import write_json
    from .report import CONFUSION_PNG, REPORT_MD, update_report
    from .verify import verify_bundle

    result = verify_bundle(bundle, mnist, _gates(args), args.threads)
    rows = [row.to_dict() for row in result.pop("rows")]
    update_report(bundle, {"verify": rows, "verify_info": result})
    try:
        from .plots import plot_confusion_matrices

        plot_confusion_matrices(rows, Path(bundle) / CONFUSION_PNG)
    except ImportError:
        log("(no matplotlib here: confusion matrices not drawn)")
    if getattr(args, "layers", True):
        from .bundle import read_manifest
        from .layers import layer_report

        update_report(bundle, {"layers": layer_report(Path(bundle), read_manifest(bundle), mnist)})
    if args.json:
        write_json(Path(args.json), rows)
    failed = [row["format"] for row in rows if row["status"] != "pass"]
    verdict = f"{len(failed)} of {len(rows)} did not pass: {', '.join(failed)}" if failed else "all passed"
    log(f"verify: {verdict} ({result['seconds']:.1f} s); see {Path(bundle) / REPORT_MD}")
    return 1 if failed else 0


def _add_bench_options(parser: argparse.ArgumentParser, in_run: bool = False) -> None:
    from .bench import PROFILES

    group = parser.add_argument_group("bench")
    if in_run:
        group.add_argument("--no-bench", dest="bench", action="store_false", help="skip bench after verify")
    else:
        group.add_argument("--json", dest="bench_json", metavar="FILE", help="also write the bench rows to FILE")
    group.add_argument(
        "--profile", choices=list(PROFILES), default="host", help="; ".join(f"{k}: {v}" for k, v in PROFILES.items())
    )
    group.add_argument(
        "--seconds", type=float, default=0.5, help="timed seconds per measurement, after warm-up (default %(default)s)"
    )
    group.add_argument(
        "--no-browser",
        dest="browser",
        action="store_false",
        help="leave out the in-browser rows (onnxruntime-web, LiteRT.js in headless Chromium; on when it is here)",
    )


def _bench(args, bundle: str, mnist) -> int:
    """Bench a bundle, write bench.json, its chart and report section (and --json)."""
    from .bench import bench_bundle
    from .bundle import write_json
    from .report import REPORT_MD, read_report, update_report

    if args.seconds <= 0:
        raise UsageError("--seconds must be positive")
    result = bench_bundle(bundle, mnist, args.profile, args.seconds, browser=args.browser)
    write_json(Path(bundle) / "bench.json", result["rows"])
    if getattr(args, "bench_json", None):  # bench's own --json; in run, --json is verify's
        write_json(Path(args.bench_json), result["rows"])
    from .bundle import read_manifest
    from .profile import profile_bundle

    sections = read_report(bundle).get("bench", {})
    sections[args.profile] = result
    update_report(bundle, {"bench": sections, "profile": profile_bundle(Path(bundle), read_manifest(bundle))})
    try:
        from .plots import plot_bench

        plot_bench(result["rows"], args.profile, Path(bundle) / f"bench_{args.profile}.png")
    except ImportError:
        log("(no matplotlib here: bench chart not drawn)")
    for error in result["info"]["errors"]:
        log(f"bench: {error['combination']} failed: {error['reason']}")
    log(f"bench: {len(result['rows'])} rows in {result['info']['took_s']:.0f} s; see {Path(bundle) / REPORT_MD}")
    return 1 if result["info"]["errors"] else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lenet-edge", description="Train LeNet-5 on MNIST, export it for phones.")
    parser.add_argument("--version", action="version", version=f"lenet-edge {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="train, then export every format into a bundle",
        description="Train LeNet-5 on MNIST and export every format into one bundle.",
    )
    _add_io_options(run)
    _add_train_options(run)
    _add_export_options(run)
    _add_verify_options(run, in_run=True)
    _add_bench_options(run, in_run=True)
    run.set_defaults(handler=cmd_run, train_only=False)

    train = commands.add_parser(
        "train",
        help="train only: a bundle holding the Keras model and its record",
        description="Train and save lenet5.keras with its training record and curves.",
    )
    _add_io_options(train)
    _add_train_options(train)
    train.set_defaults(handler=cmd_run, train_only=True, formats=None, calibration=500, verify=False, keep_float=())

    export = commands.add_parser(
        "export",
        help="export a trained .keras model into a bundle",
        description="Export a trained Keras model to every format into one bundle.",
    )
    export.add_argument("model", metavar="MODEL.keras", help="trained model (its training.json beside it is kept)")
    export.add_argument("--seed", type=int, help="seed of the calibration pick (default: the training seed)")
    _add_io_options(export)
    _add_export_options(export)
    _add_verify_options(export, in_run=True)
    export.set_defaults(handler=cmd_export)

    verify = commands.add_parser(
        "verify",
        help="judge every export of a bundle on the 10,000 test images against Keras",
        description="Check every artifact's integrity, then run it in its own runtime on the 10,000 MNIST test "
        "images and compare it with Keras: accuracy, agreement, |Δp|, per-class accuracy, a gate per precision. "
        "Writes report.md, report.json and verify_confusion.png into the bundle. Exit 1 if any artifact fails.",
    )
    _add_bundle_argument(verify)
    _add_target_option(verify)
    verify.add_argument(
        "--limit",
        type=_positive,
        metavar="N",
        help="with --target: parity on the first N test images only (quick checks; default all 10,000)",
    )
    verify.add_argument(
        "--layers",
        action="store_true",
        help="also measure the int8 models' quantization error layer by layer (always on in run and export)",
    )
    _add_data_options(verify)
    _add_verify_options(verify)
    verify.set_defaults(handler=cmd_verify)

    bench = commands.add_parser(
        "bench",
        help="measure latency, throughput, load time and memory of every export in every runtime",
        description="Time every artifact in every runtime that can run it, each combination in a fresh process: "
        "batch-1 latency (p50/p90/p99), throughput at batch 1, 32 and 256, load and first-inference time, peak RSS. "
        "Writes bench.json, bench_<profile>.png and a table in report.md.",
    )
    _add_bundle_argument(bench)
    _add_target_option(bench)
    bench.add_argument(
        "--calls",
        type=_positive,
        default=20,
        help="emulated targets: batch-1 inferences counted per artifact (default %(default)s)",
    )
    _add_data_options(bench)
    _add_bench_options(bench)
    bench.set_defaults(handler=cmd_bench)

    predict = commands.add_parser(
        "predict",
        help="read digits from pictures (PNG, JPEG) with an exported model",
        description="Turn each picture into a 28×28 MNIST digit the way MNIST was made (crop to the ink, fit "
        "20×20 keeping the aspect ratio, centre by mass in 28×28; dark-on-light pictures are inverted, thin "
        "strokes thickened) and print the model's answer and its 10 probabilities.",
    )
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="PNG or JPEG files, any size or colour")
    predict.add_argument("--model", required=True, metavar="FILE", help="a .tflite or .onnx file of a bundle")
    predict.add_argument("--json", action="store_true", help="print JSON instead of text")
    predict.add_argument("--save-digits", metavar="DIR", help="also write each 28×28 digit the model saw as PNG")
    predict.set_defaults(handler=cmd_predict)

    serve = commands.add_parser(
        "serve",
        help="a page where you draw a digit and the bundle's models answer in the browser",
        description="Serve a page (127.0.0.1 by default) where you draw a digit and the bundle's .onnx and .tflite "
        "files answer in the browser (onnxruntime-web and LiteRT.js, WebAssembly): the 28×28 digit the model sees, "
        "its 10 probabilities, the in-browser latency, and a test run on MNIST digits against the native runtime.",
    )
    _add_bundle_argument(serve)
    serve.add_argument("--port", type=int, default=8000, help="port (default %(default)s; 0 picks a free one)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    _add_data_options(serve)
    serve.set_defaults(handler=cmd_serve)

    target = commands.add_parser(
        "target",
        help="set up or inspect a target (arm64-emu, ssh://…)",
        description="Prepare the emulated ARM64 target, or show what a target is (CPU, libraries).",
    )
    actions = target.add_subparsers(dest="action", required=True, metavar="ACTION")
    setup = actions.add_parser(
        "setup",
        help="prepare arm64-emu: Debian arm64 userland, aarch64 wheels, instruction counter (about 2.5 min)",
    )
    setup.add_argument("name", choices=["arm64-emu"], help="the target to prepare")
    setup.add_argument("--force", action="store_true", help="rebuild even if the cached userland is current")
    setup.set_defaults(handler=cmd_target_setup)
    info = actions.add_parser("info", help="what a target runs on: uname -m, CPU, library versions")
    info.add_argument("name", metavar="TARGET", help=TARGET_HELP)
    info.set_defaults(handler=cmd_target_info)
    return parser


def _add_bundle_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", metavar="BUNDLE", help="bundle folder (with manifest.json)")


def _add_target_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", default="local", metavar="TARGET", help=TARGET_HELP)


def _load_data(args):
    from .data import load_mnist

    mnist = load_mnist(args.data, download=not args.offline)
    log(f"MNIST: {mnist.source} ({len(mnist.x_train)} train, {len(mnist.x_test)} test images, checksums ok)")
    return mnist


def _train(args, mnist):
    from .train import train

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
    return result.model, record


def _model_facts(model, arch: str, activation: str | None) -> dict:
    from .model import count_macs, count_params

    known = ARCHITECTURES.get(arch)
    return {
        "architecture": arch,
        "activation": activation,
        "summary": known.summary if known else model.name,
        "params": count_params(model),
        "macs": count_macs(model),
    }


def _written(manifest: dict, out: str) -> int:
    """List what the bundle holds; 1 if any format failed."""
    log(f"\nwrote {out}/:")
    for entry in manifest["artifacts"]:
        log(f"  {entry['file']:<24} {entry['bytes'] / 1024:8.1f} KB  {entry['format']} ({entry['runtime']})")
    for name in ("labels.txt", TRAINING_RECORD, "training_curves.png", "README.md", "manifest.json"):
        if (Path(out) / name).exists():
            log(f"  {name}")
    log(f"Keras test accuracy: {manifest['keras_test_accuracy']:.2%}")
    for failure in manifest["failed"]:
        log(f"FAILED {failure['format']}: {failure['reason']}")
    return 1 if manifest["failed"] else 0


def _next_steps(out: str, status: int) -> int:
    """Close a run with the commands a user runs next; pass the exit status through."""
    log("\nnext:")
    log(f"  read {out}/README.md for how an app feeds each model, and {out}/report.md for what each one is worth")
    log(f"  lenet-edge verify {out} --layers   # judge every export again, layer errors included")
    log(f"  lenet-edge bench {out} --profile mobile   # latency under one phone core's constraints")
    log(f"  lenet-edge export {out}/lenet5.keras --keep-float C1   # int8 with the named layers left in float")
    log(f"  python examples/app_client.py {out}   # every export's accuracy from a TensorFlow-free client")
    return status


def _bundle_and_check(args, model, record: dict, mnist, formats: list) -> int:
    """Write the bundle and list it, verify and bench it as the command asks, close with the next commands."""
    from .bundle import write_bundle

    bundle = write_bundle(args.out, model, record, mnist, formats, args.calibration, tuple(args.keep_float))
    status = _written(bundle, args.out)
    if formats and getattr(args, "verify", False):
        status = max(status, _verify(args, args.out, mnist))
    if formats and getattr(args, "bench", False):
        status = max(status, _bench(args, args.out, mnist))
    return _next_steps(args.out, status)


def cmd_run(args) -> int:
    """run: train, then export, verify and bench; train: the same with no format exported."""
    formats = [] if args.train_only else get_formats(args.formats)
    import_tensorflow()  # fail fast on a runtime-only install
    check_output_folder(args.out)
    mnist = _load_data(args)
    model, record = _train(args, mnist)
    return _bundle_and_check(args, model, record, mnist, formats)


def cmd_verify(args) -> int:
    from .targets import parse_target

    target = parse_target(args.target)
    if target.kind == "local":
        if args.limit:
            raise UsageError("--limit is for --target runs; a local verify judges all 10,000 test images")
        return _verify(args, args.bundle, _load_data(args))
    from .on_target import verify_on_target

    _require_bundle(args.bundle)
    result = verify_on_target(args.bundle, _load_data(args), target, args.limit)
    _record_target(args.bundle, target.name, "verify", result)
    if args.json:
        from .bundle import write_json

        write_json(Path(args.json), result["rows"])
    failed = [row["format"] for row in result["rows"] if row["status"] != "pass"]
    verdict = (
        f"{len(failed)} of {len(result['rows'])} differ beyond the gate: {', '.join(failed)}"
        if failed
        else ("all answer like this machine")
    )
    log(f"verify on {target.name}: {verdict} ({result['seconds']:.0f} s); see {Path(args.bundle) / 'report.md'}")
    return 1 if failed else 0


def cmd_bench(args) -> int:
    from .targets import parse_target

    target = parse_target(args.target)
    if target.kind == "local":
        return _bench(args, args.bundle, _load_data(args))
    from .on_target import bench_on_target, count_on_target

    _require_bundle(args.bundle)
    if args.seconds <= 0:
        raise UsageError("--seconds must be positive")
    mnist = _load_data(args)
    if target.kind == "emulated":
        result = count_on_target(args.bundle, mnist, target, args.calls)
        _record_target(args.bundle, target.name, "cost", result)
    else:
        result = bench_on_target(args.bundle, mnist, target, args.profile, args.seconds)
        _record_target(args.bundle, target.name, "bench", result)
    if args.bench_json:
        from .bundle import write_json

        write_json(Path(args.bench_json), result["rows"])
    log(f"bench on {target.name}: {len(result['rows'])} rows; see {Path(args.bundle) / 'report.md'}")
    return 0


def _require_bundle(bundle: str) -> None:
    from .bundle import read_manifest

    read_manifest(bundle)  # a clear error before any target work


def _record_target(bundle: str, name: str, key: str, result: dict) -> None:
    """Merge a target's result into report.json's ``targets`` (by target, then verify/cost/bench)."""
    from .report import read_report, update_report

    targets = read_report(bundle).get("targets", {})
    entry = targets.setdefault(name, {})
    entry["identity"] = result["identity"]
    if key == "bench":
        entry.setdefault("bench", {})[result["info"]["profile"]] = result
    else:
        entry[key] = result
    update_report(bundle, {"targets": targets})
    if key == "cost":
        try:
            from .plots import plot_instruction_counts
            from .report import TARGETS_PNG, costs_by_core

            plot_instruction_counts(costs_by_core(targets), Path(bundle) / TARGETS_PNG)
        except ImportError:
            log("(no matplotlib here: instruction-count chart not drawn)")


def cmd_predict(args) -> int:
    import json

    import numpy as np

    from .preprocess import mnist_digit
    from .runtimes import open_runner

    model = Path(args.model)
    runtime = {".tflite": "litert", ".onnx": "onnxruntime"}.get(model.suffix)
    if runtime is None or not model.is_file():
        raise UsageError(f"{model}: not a .tflite or .onnx file")
    digits = np.stack([mnist_digit(image) for image in args.images])
    try:
        runner = open_runner(runtime, model)
    except Exception as exc:
        raise UsageError(f"{model}: cannot be loaded by {runtime} ({type(exc).__name__})") from None
    probabilities = runner.predict(digits)
    if args.save_digits:
        from PIL import Image

        folder = Path(args.save_digits)
        folder.mkdir(parents=True, exist_ok=True)
        for image, digit in zip(args.images, digits, strict=True):
            Image.fromarray(digit).save(folder / f"{Path(image).stem}_28x28.png")
    results = [
        {"image": image, "label": int(p.argmax()), "confidence": float(p.max()), "probabilities": p.round(6).tolist()}
        for image, p in zip(args.images, probabilities, strict=True)
    ]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for row in results:
        bars = "  ".join(f"{d}:{p:.2f}" for d, p in enumerate(row["probabilities"]))
        log(f"{row['image']}: {row['label']} ({row['confidence']:.1%})   {bars}")
    return 0


def cmd_serve(args) -> int:
    from .errors import DataError
    from .serve import serve

    _require_bundle(args.bundle)
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: not a port number")
    try:
        mnist, data_error = _load_data(args), None
    except DataError as exc:  # the page still draws; only its test-digit run needs MNIST
        mnist, data_error = None, str(exc)
        log(f"(no test digits for the page: {exc})")
    serve(args.bundle, args.host, args.port, mnist, data_error)
    return 0


def cmd_target_setup(args) -> int:
    from .targets.arm64_emu import setup

    setup(force=args.force)
    return 0


def cmd_target_info(args) -> int:
    from .targets import parse_target

    target = parse_target(args.name)
    identity = target.identity()
    versions = ", ".join(f"{k} {v}" for k, v in identity.pop("versions").items())
    for key, value in identity.items():
        if value is not None:
            log(f"{key:>17}: {value}")
    log(f"{'versions':>17}: {versions}")
    return 0


def cmd_export(args) -> int:
    import json

    from .runtimes import open_runner

    path = Path(args.model)
    if not path.is_file() or path.suffix != ".keras":
        raise UsageError(f"{path}: not a .keras model file")
    import_tensorflow()
    check_output_folder(args.out)
    try:
        runner = open_runner("keras", path)
    except Exception as exc:
        raise UsageError(f"{path}: cannot load as a Keras model ({type(exc).__name__})") from None
    model = runner.model
    if tuple(model.inputs[0].shape[1:]) != (28, 28, 1) or tuple(model.outputs[0].shape[1:]) != (10,):
        raise UsageError(
            f"{path}: takes {model.inputs[0].shape} and gives {model.outputs[0].shape}, "
            "not [batch, 28, 28, 1] raw pixels to 10 probabilities"
        )
    record_path = path.with_name(TRAINING_RECORD)
    record = json.loads(record_path.read_text()) if record_path.is_file() else {"config": {"seed": 0}}
    if args.seed is not None:
        record["config"]["seed"] = args.seed
    config = record["config"]
    record["model"] = _model_facts(model, config.get("arch", model.name), config.get("activation"))
    mnist = _load_data(args)
    return _bundle_and_check(args, model, record, mnist, get_formats(args.formats))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except LenetEdgeError as exc:
        print(f"lenet-edge: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # permissions, a full disk: the user's to fix, so one line, no traceback
        print(f"lenet-edge: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lenet-edge: interrupted; the previous bundle was left as it was", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
