"""The steps commands are made of, each recorded in the bundle's report: judge a bundle (verify, and at will its
consumers and its int8 layers) or measure it (bench), print the verdict and write the report's sections with
their charts. The recommendation is computed here, where the data it derives from is measured.

Not runtime-only: the layer report converts with TensorFlow, so this module sits above verify and bench."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from .bench import bench_bundle, profile_bundle
from .console import log
from .consumers import consumers_table
from .data import Mnist, load_mnist
from .files import write_json
from .formats import Gate
from .manifest import BENCH_JSON, CONFUSION_PNG, REPORT_MD, read_manifest
from .mcu.command import McuOptions, run_mcu
from .npu.chart import NPU_PNG, plot_npu_cycles
from .npu.command import NpuOptions, npu_options, run_npu
from .npu.env import NpuNotInstalled
from .plots import plot_bench, plot_confusion_matrices, plot_layer_errors, plot_mcu
from .quantization_error import layer_report
from .records import StepResult
from .report import draw_chart, read_report, recommendations, update_report
from .report.mcu import MCU_PNG
from .verify import EarlyVerify, row_name, verify_bundle

NPU_VERIFY_DIGITS = 1000  # test digits on which verify judges the NPU files again (the simulator's ~10 ms each)
MICRO_RUN_DIGITS = 1000  # run and export's verify: the TFLite Micro rows (reference kernels, one digit a call, ~0.5 ms
# each: 10 of verify's 15 s on 10,000) on the first 1,000 digits; their files were judged in LiteRT on all of them
GPU_RUN_DIGITS = 0  # run and export's verify leaves the GPU rows to `lenet-edge verify` (a CPU Vulkan driver, ~2 ms a
# digit, ten rows: a sample small enough for a quick check is too small for a 99.5% agreement gate)


class VerifyExit(IntEnum):
    """verify's exit codes; 2 is bad input, as for every command."""

    PASSED = 0
    FAILED = 1  # an artifact (or a consumer) did not pass
    PASSED_REPORT_UNWRITTEN = 3  # the verdict was printed, but the report could not be written
    FAILED_REPORT_UNWRITTEN = 4


@dataclass(frozen=True)
class VerifyOptions:
    gates: dict[str, Gate]
    threads: int | None = None
    consumers: bool = False  # also run every export in the consumers installed here
    layers: bool = False  # also measure the int8 models' quantization error layer by layer
    gpu_digits: int | None = None  # test digits the GPU rows judge (None: verify.GPU_DIGITS; -1: all; 0: none)
    npu_digits: int | None = NPU_VERIFY_DIGITS  # the files compiled for NPUs judged on the first N (None: all)
    micro_digits: int | None = None  # the microcontroller rows judged on the first N (None: all; run: MICRO_RUN_DIGITS)
    keras_row: bool = True  # run the Keras model live too (run and export: no, its answers are the stored reference)
    started: float | None = None  # time.perf_counter() when the command started: verify prints the whole time


@dataclass(frozen=True)
class BenchOptions:
    profile: str = "host"
    seconds: float = 0.5
    browser: bool = True
    quick: bool = False  # run and export's bench: each deployable file once (bench.QUICK_NOTE)


@dataclass(frozen=True)
class DataSource:
    """Where a command finds MNIST: ``path`` (a folder of IDX files or a Keras mnist.npz), else the usual places
    (``data.load_mnist``); ``offline`` never tries the Keras download."""

    path: str | None = None
    offline: bool = False


def load_data(source: DataSource, bundle: str | Path | None = None) -> Mnist:
    """MNIST from ``source``, falling back on the data ``bundle`` was made from."""
    recorded = read_manifest(bundle).dataset if bundle else None
    mnist = load_mnist(source.path, download=not source.offline, recorded=recorded)
    log(f"MNIST: {mnist.source} ({len(mnist.x_train)} train, {len(mnist.x_test)} test images, checksums ok)")
    return mnist


def verify_step(
    bundle: str | Path, mnist: Mnist, options: VerifyOptions, early: EarlyVerify | None = None
) -> StepResult:
    """Verify a bundle, print the verdict and write its report (verify section, consumers, layers, charts, the
    files compiled for NPUs); the time printed is the command's whole time, from ``options.started``."""
    started = time.perf_counter() if options.started is None else options.started
    layers = functools.partial(_measure_layers, bundle, mnist) if options.layers else None
    result = verify_bundle(bundle, mnist, options.gates, options.threads, gpu_digits=options.gpu_digits,
                           micro_digits=options.micro_digits, use_keras=None if options.keras_row else False,
                           alongside=layers, early=early)  # fmt: skip
    found_layers = result.pop("alongside")
    rows = [row.to_dict() for row in result.pop("rows")]
    failed = [row_name(row) for row in rows if row["status"] != "pass"]
    verdict = f"{len(failed)} of {len(rows)} did not pass: {', '.join(failed)}" if failed else "all passed"
    sections: dict = {"verify": rows, "verify_info": result}
    if options.consumers:
        log("in other consumers:")
        sections["consumers"] = consumers_table(Path(bundle), read_manifest(bundle), mnist)
        answered_otherwise = [f"{r['format']} in {r['consumer']}" for r in sections["consumers"]["rows"]
                              if r["status"] in ("fail", "refused")]  # fmt: skip
        if answered_otherwise:
            verdict += f"; refused or answered otherwise in another consumer: {', '.join(answered_otherwise)}"
            failed += answered_otherwise
    try:
        _record(bundle, sections, draw_chart(plot_confusion_matrices, rows, bundle, CONFUSION_PNG))
        if options.layers:
            _record_layers(bundle, found_layers)
        if read_manifest(bundle).npu and not _npu_step_passed(bundle, mnist, options.npu_digits):
            failed.append("a file compiled for an NPU")
            verdict += "; a file compiled for an NPU did not pass (see report.md)"
    except OSError as exc:
        log(f"verify: {verdict} ({time.perf_counter() - started:.1f} s)")
        log(f"verify: the report was NOT written ({exc.filename or bundle}: {exc.strerror or exc})")
        return StepResult(VerifyExit.FAILED_REPORT_UNWRITTEN if failed else VerifyExit.PASSED_REPORT_UNWRITTEN, rows)
    log(f"verify: {verdict} ({time.perf_counter() - started:.1f} s); see {Path(bundle) / REPORT_MD}")
    return StepResult(VerifyExit.FAILED if failed else VerifyExit.PASSED, rows)


def _npu_step_passed(bundle: str | Path, mnist: Mnist, digits: int | None) -> bool:
    """The files compiled for phone NPUs, judged again in the HTP simulator on the first ``digits`` test digits
    (None: all); without the NPU tools here they are not run (said, not failed), like any runtime this install
    lacks."""
    shown = "all" if digits is None or digits >= len(mnist.x_test) else f"the first {digits:,}"
    log(f"on the NPUs the bundle was compiled for (Qualcomm's HTP simulator, {shown} test digits):")
    try:
        return npu_step(bundle, mnist, npu_options(str(bundle), None, False, True, digits, None)).status == 0
    except NpuNotInstalled as exc:
        log(f"  (the NPU files were not judged here: {exc})")
        return True


def _measure_layers(bundle: str | Path, mnist: Mnist) -> tuple[dict, dict[str, bool]] | OSError:
    """The int8 models' quantization error layer by layer, while verify judges the files: the CSVs and a chart
    each written; what was found and drawn, or the OSError that stopped the writing (raised where the report is
    written)."""
    try:
        found = layer_report(Path(bundle), read_manifest(bundle), mnist)
        drawn = {f"layers_{fmt}.png": False for fmt in found}  # not measured: no chart
        for fmt, data in found.items():
            if "rows" in data:
                drawn |= draw_chart(functools.partial(plot_layer_errors, fmt), data, bundle, f"layers_{fmt}.png")
    except OSError as exc:
        return exc
    return found, drawn


def _record_layers(bundle: str | Path, measured: tuple[dict, dict[str, bool]] | OSError) -> None:
    """The report's layers section and charts, as _measure_layers found them."""
    if isinstance(measured, OSError):
        raise measured
    found, drawn = measured
    update_report(bundle, {"layers": found}, drawn)


def bench_step(bundle: str | Path, mnist: Mnist, options: BenchOptions) -> StepResult:
    """Bench a bundle, write bench.json, its chart and report section (with the recommendation); status 1 if a
    combination failed."""
    result = bench_bundle(bundle, mnist, options.profile, options.seconds, options.browser, options.quick)
    machine = result["info"]["machine"]  # the host every figure depends on, beside the rows
    write_json(Path(bundle) / BENCH_JSON, {"profile": options.profile, "machine": machine, "rows": result["rows"]})
    drawn = draw_chart(
        functools.partial(_plot_bench, options.profile), result["rows"], bundle, f"bench_{options.profile}.png"
    )
    sections = {
        "bench": read_report(bundle).get("bench", {}) | {options.profile: result},
        "profile": profile_bundle(Path(bundle), read_manifest(bundle)),
    }
    _record(bundle, sections, drawn)
    for error in result["info"]["errors"]:
        log(f"bench: {error['combination']} failed: {error['reason']}")
    log(f"bench: {len(result['rows'])} rows in {result['info']['took_s']:.0f} s; see {Path(bundle) / REPORT_MD}")
    return StepResult(1 if result["info"]["errors"] else 0, result["rows"])


def _plot_bench(profile: str, rows: list[dict], path: Path) -> None:
    plot_bench(rows, profile, path)


def _record(bundle: str | Path, sections: dict, charts: dict[str, bool]) -> None:
    """Write a verify or bench step's sections, with the recommendation they change (what to deploy derives from
    the bench rows and the files verify passed)."""
    found = recommendations(read_report(bundle) | sections)
    update_report(bundle, sections | ({"recommendation": found} if found is not None else {}), charts)


def npu_step(bundle: str | Path, mnist: Mnist, options: NpuOptions) -> StepResult:
    """Compile for Snapdragon NPUs (or, with ``options.verify``, re-judge what the manifest lists), judge in the HTP
    simulator, count cycles; the report's npu section and its chart. Status 1 when a SoC did not pass."""
    status, section = run_npu(options, mnist)
    update_report(bundle, {"npu": section}, draw_chart(plot_npu_cycles, section, bundle, NPU_PNG))
    return StepResult(status, [section])


def mcu_step(bundle: str | Path, mnist: Mnist, options: McuOptions) -> StepResult:
    """Run the C model on emulated Cortex-M boards against TFLite Micro, size and time it, compile for Ethos-U with
    Vela; the report's mcu section and its chart. Status 1 when a board did not answer bit for bit."""
    status, section = run_mcu(options, mnist)
    update_report(bundle, {"mcu": section}, draw_chart(plot_mcu, section, bundle, MCU_PNG))
    return StepResult(status, [section])
