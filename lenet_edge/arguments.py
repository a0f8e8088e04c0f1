"""The command line's vocabulary: argument types that refuse bad values in one line, and the option groups several
subcommands share (data, training, export, verify gates, bench, targets, --json). argparse and the tables only."""

from __future__ import annotations

import argparse
import math

from .bench import PROFILES
from .errors import UsageError
from .formats import FORMAT_NAMES, GATE_FLAGS, PRECISIONS, get_formats
from .model import ACTIVATIONS, ARCHITECTURES
from .steps import NPU_VERIFY_DIGITS
from .targets import TARGET_HELP
from .train import TrainConfig

DEFAULT_OUT = "export"
DEFAULTS = TrainConfig()


# --- argument types ---------------------------------------------------------------------------------------


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def digit_count(text: str) -> int:
    """A count of test digits: a whole number ≥ 0, or 'all' (-1)."""
    if text.strip().lower() == "all":
        return -1
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a whole number nor 'all'") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be at least 0")
    return value


def seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"{value} is not a seed from 0 to 2**32 - 1")
    return value


def number_in(low: float, high: float):
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


def format_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    try:
        return [f.name for f in get_formats(names or [text])]
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# --- option groups shared by several commands ---------------------------------------------------------------


def add_json(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--json", metavar="PATH", help=f"write {what} as JSON to PATH ('-': stdout)")


def add_bundle_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", metavar="BUNDLE", help="bundle folder (with manifest.json)")


def add_data_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    group.add_argument(
        "--data",
        metavar="PATH",
        help="folder of the 4 MNIST IDX files (.gz or raw) or a Keras mnist.npz; default: $LENET_EDGE_DATA, "
        "then (verify, bench, cost, serve) the data the bundle was made from, then the Keras cache, then the "
        "Keras download",
    )
    group.add_argument("--offline", action="store_true", help="never try the Keras download")


def add_out_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=DEFAULT_OUT, help="bundle folder (default %(default)s)")


def add_train_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training")
    group.add_argument("--arch", choices=list(ARCHITECTURES), default=DEFAULTS.arch, help="default %(default)s")
    group.add_argument("--activation", choices=ACTIVATIONS, default=DEFAULTS.activation, help="default %(default)s")
    group.add_argument("--epochs", type=positive, default=DEFAULTS.epochs, help="default %(default)s")
    group.add_argument("--batch-size", type=positive, default=DEFAULTS.batch_size, help="default %(default)s")
    group.add_argument(
        "--lr",
        type=number_in(1e-9, 10),
        default=DEFAULTS.learning_rate,
        help="Adam peak learning rate, warmed up to, then cosine-decayed (default %(default)s)",
    )
    group.add_argument(
        "--warmup",
        type=number_in(0, 0.99),
        default=DEFAULTS.warmup,
        metavar="SHARE",
        help="share of the steps that warms the learning rate up to its peak (default %(default)s; 0: none)",
    )
    group.add_argument(
        "--batch-norm",
        action=argparse.BooleanOptionalAction,
        default=DEFAULTS.batch_norm,
        help="train with batch normalization after each hidden layer, folded into its weights after: the saved "
        "model is the plain architecture (default: on)",
    )
    group.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=DEFAULTS.augment,
        help="random shifts (±2 px), rotations (±10°) and zooms (±10%%) of the training images (default: "
        + ("on)" if DEFAULTS.augment else "off)"),
    )
    add_data_size_options(group)


def add_data_size_options(group) -> None:
    group.add_argument(
        "--validation",
        type=positive,
        default=DEFAULTS.validation,
        help="validation images carved from the training set (default %(default)s)",
    )
    group.add_argument("--limit", type=positive, help="use only the first N training images (quick runs)")
    group.add_argument(
        "--seed", type=seed, default=DEFAULTS.seed, help="makes the run repeatable (default %(default)s)"
    )


def add_export_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("export")
    group.add_argument(
        "--formats", type=format_list, help=f"comma-separated subset of {','.join(FORMAT_NAMES)} (default: all)"
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
        type=positive,
        default=500,
        help="training images that calibrate the int8 models (default %(default)s)",
    )


def add_gate_options(parser: argparse.ArgumentParser) -> None:
    """verify's gates, one flag per row of formats.GATE_FLAGS; defaults are the precisions table's."""
    group = parser.add_argument_group("verify gates (agreement in %, |Δp| absolute, drop in points)")
    group.add_argument("--threads", type=positive, help="runtime threads (default: the runtime's own choice)")
    group.add_argument(
        "--gpu-digits",
        type=digit_count,
        metavar="N|all",
        help="test digits every .tflite is judged on in LiteRT's GPU accelerator, a seeded sample (default 1000; "
        "'all': the 10,000; 0: no GPU rows)",
    )
    for flag, precisions, field, unit, metavar in GATE_FLAGS:
        which = "dynamic-range and int8" if len(precisions) > 1 else precisions[0]
        default = getattr(PRECISIONS[precisions[0]].verify, field) * unit
        limit = 1.0 if field == "max_abs_dp" else 100.0
        group.add_argument(flag, type=number_in(0, limit), metavar=metavar, help=f"{which} (default {default:g})")


def add_bench_options(parser: argparse.ArgumentParser, quick: bool = False) -> None:
    """bench's options; ``quick`` (the bench after run and export): 0.1 s per measurement and no browser rows by
    default, so that the whole run costs about what its training does; `lenet-edge bench` measures at leisure."""
    group = parser.add_argument_group("bench")
    group.add_argument(
        "--profile", choices=list(PROFILES), default="host", help="; ".join(f"{k}: {v}" for k, v in PROFILES.items())
    )
    group.add_argument(
        "--seconds",
        type=number_in(0.001, 3600),
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


def add_target_option(parser: argparse.ArgumentParser, default: str = "local", help: str = TARGET_HELP) -> None:
    parser.add_argument("--target", default=default, metavar="TARGET", help=help)


def add_verify_extras(parser: argparse.ArgumentParser) -> None:
    """What a local verify can judge beyond the exports in their own runtimes."""
    parser.add_argument(
        "--consumers",
        action="store_true",
        help="also run every export in the consumers that are installed (LiteRT, TFLite Micro, MediaPipe, LiteRT.js, "
        "ONNX Runtime, OpenVINO, tract, onnx.reference, onnxruntime-web)",
    )
    parser.add_argument(
        "--layers",
        action="store_true",
        help="also measure the int8 models' quantization error layer by layer (always on in run and export)",
    )
    parser.add_argument(
        "--npu-digits",
        type=positive,
        default=NPU_VERIFY_DIGITS,
        metavar="N",
        help="the files compiled for phone NPUs are judged again in the HTP simulator on the first N test digits "
        f"(default {NPU_VERIFY_DIGITS:,}, about half a minute per SoC; 10000 for all, as npu --verify does)",
    )


def add_checks_after_export(parser: argparse.ArgumentParser) -> None:
    """run and export verify and bench what they wrote, unless told not to."""
    add_gate_options(parser)
    parser.add_argument("--no-verify", dest="verify", action="store_false", help="skip verify after export")
    parser.add_argument("--no-bench", dest="bench", action="store_false", help="skip bench after verify")
    add_bench_options(parser, quick=True)
    add_json(parser, "the manifest with the verify and bench rows")
