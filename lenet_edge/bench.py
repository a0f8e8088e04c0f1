"""bench: latency, throughput, load time and memory of every artifact in every runtime that can run it.

Each combination (artifact × runtime × delegate × threads) is measured in a fresh process of its own, so load
time, first inference and peak RSS are its own: a child forked from one server process that imported NumPy and
the runtimes once (``forks``). The timed region is the runtime's inference call alone
(LiteRT ``invoke()``, ONNX Runtime ``session.run()``, Keras ``tf.function`` or ``predict_on_batch``) on real
MNIST test digits already in the model's input format, the way TFLite's benchmark_model times ``invoke()``.
NumPy and the runtimes only: TensorFlow is needed just for the Keras rows."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from .console import log, progress
from .errors import one_line
from .files import is_regular_file
from .forks import Forks, serve
from .formats import BY_NAME, RUNTIMES
from .host import machine_info, usable_cores
from .manifest import Manifest, read_manifest
from .measure import process_memory_mb, reset_peak_memory, time_calls
from .records import BenchRow
from .runtimes import RUNNERS, open_runner, runtime_missing
from .runtimes.litert import LiteRTRunner
from .runtimes.onnxruntime import OnnxRuntimeRunner
from .runtimes.wasm import browser_missing

ROW_KEYS = tuple(f.name for f in fields(BenchRow))  # bench.json's columns, in order
PROFILES = {
    "host": "this machine as it is: 1 thread and all cores, batches 1, 32 and 256, LiteRT with and without XNNPACK",
    "mobile": "one phone core's constraints: 1 thread, the process pinned to one core, batch 1, XNNPACK on. "
    "It is this CPU held to one core, not a phone",
}
BROWSER_NOTE = (
    "Browser rows (onnxruntime-web, LiteRT.js; WebAssembly, 1 thread) run in headless Chromium on the "
    "`lenet-edge serve` page and are timed inside it after a warm-up of 2 s at least (V8 optimizes hot "
    "WebAssembly late), in blocks of calls of at least 1 ms because "
    "performance.now() moves in 5 µs steps there; their percentiles are of block means, and their memory is "
    "the browser's, not measured here. LiteRT.js runs batch 1 only. The mobile profile does not pin the browser "
    "to one core: there its own processes shared the page's core (p99 0.5-3 ms, against 0.2 ms unpinned)."
)
MEMORY_NOTE = (
    "Memory is what the process gains by loading the model and running the batch once, against the same process "
    "with the runtime imported and no model, read from Linux's /proc/self/status after that first inference. "
    "Model MB is the private memory gained (RssAnon): the weights as the runtime keeps them (packed for XNNPACK, "
    "dequantized from float16), the activations at that batch, the runtime's per-model state and the input batch; "
    "what each further model of an app costs, and the figure that differs between formats. Footprint MB adds the "
    "file pages the first model touches (RssFile: the runtime's own code, faulted in on first use, and a mapped "
    "model file), as TFLite's benchmark_model counts it; footprint peak is the resident peak until then (VmHWM). "
    "Neither counts the runtime's import, Python or NumPy; the process's own peak is its own column. Browser rows: "
    "the browser's memory, not measured."
)
QUICK_NOTE = (
    "The quick bench after run and export: each file an app deploys measured once, in its runtime's default "
    "setting (the delegate an app gets), on 1 thread at batch 1; `lenet-edge bench` measures every delegate, "
    "thread count and batch size, and the Keras reference"
)
INPUTS_NOTE = (
    "Inputs are real MNIST test digits, prepared as the app contract says (raw pixels, uint8 for the int8 "
    "TFLite, float32 otherwise) outside the timed region; the timed region is the runtime's inference call."
)


@dataclass(frozen=True)
class Combination:
    format: str
    runtime: str
    delegate: str
    threads: int
    file: str
    size_bytes: int

    @property
    def label(self) -> str:
        return f"{self.format} {self.runtime}/{self.delegate} {self.threads} thread{'s' * (self.threads > 1)}"


def plan(
    manifest: Manifest, profile: str, have_tf: bool, browser: bool = False, quick: bool = False
) -> list[Combination]:
    """Every combination the profile measures, from the manifest's artifacts and the runtimes table's delegates;
    with ``browser``, each artifact's in-browser runtime too (1 thread, WebAssembly). ``quick`` (the bench after
    run and export): each file an app deploys once, in its runtime's default setting on 1 thread (QUICK_NOTE)."""
    in_browser = []  # measured last: a closed Chromium's processes linger a second or two and would load the CPU
    threads = (1,) if profile == "mobile" or quick else tuple(sorted({1, usable_cores()}))
    combos = []
    for entry in manifest.artifacts:
        if not entry.on_device and (quick or not have_tf):
            continue
        runtime = RUNTIMES[entry.runtime]
        delegates = runtime.mobile_delegates if profile == "mobile" else tuple(runtime.delegates)
        if quick:
            delegates = (runtime.default_delegate,)
        for delegate in delegates:
            for count in threads:
                combos.append(Combination(entry.format, entry.runtime, delegate, count, entry.file, entry.bytes))
        browser_runtime = BY_NAME[entry.format].browser
        if browser and browser_runtime:
            delegate = RUNTIMES[browser_runtime].default_delegate
            in_browser.append(Combination(entry.format, browser_runtime, delegate, 1, entry.file, entry.bytes))
    return combos + in_browser


def latency_stats(times_ns: np.ndarray, batch: int) -> dict:
    us = times_ns / 1e3
    return {
        "p50_us": float(np.percentile(us, 50)),
        "p90_us": float(np.percentile(us, 90)),
        "p99_us": float(np.percentile(us, 99)),
        "mean_us": float(us.mean()),
        "std_us": float(us.std()),
        "throughput_ips": float(batch / (us.mean() / 1e6)),
    }


def measure(spec: dict) -> list[dict]:
    """The worker's job: load one artifact in one runtime setting and time it at each batch size."""
    if spec.get("pin_core") is not None:
        os.sched_setaffinity(0, {spec["pin_core"]})
    digits = np.load(spec["digits"], allow_pickle=False)
    library = RUNNERS[spec["runtime"]].library
    if library:  # the baseline: this process with the runtime imported, no model
        importlib.import_module(library)
    baseline = process_memory_mb()
    in_process = library is not None and bool(baseline) and reset_peak_memory()
    runner = open_runner(spec["runtime"], spec["path"], threads=spec["threads"], delegate=spec["delegate"])
    first_ms, rows = None, []
    try:
        for batch in spec["batches"]:
            fixed = runner.input.shape[0]
            if fixed > 0 and fixed != batch:
                continue  # a fixed-batch model runs only its own batch size
            images = np.resize(digits, (batch, *digits.shape[1:]))
            first = runner.first_call_ms(images)  # this batch's tensors allocated, before the timing's own lists
            first_ms = first if first_ms is None else first_ms
            memory = _memory_gained(baseline, process_memory_mb()) if in_process else {}
            rows.append({"batch": batch, **latency_stats(runner.time_calls(images, spec["seconds"]), batch), **memory})
    finally:
        runner.close()
    extra = {"load_ms": runner.load_ms, "first_ms": first_ms, "process_peak_mb": runner.peak_rss_mb()}
    unmeasured = {"model_mb": None, "footprint_mb": None, "footprint_peak_mb": None}
    return [unmeasured | row | extra for row in rows]


def _memory_gained(baseline: dict[str, float], now: dict[str, float]) -> dict[str, float]:
    return {
        "model_mb": now["private"] - baseline["private"],
        "footprint_mb": now["resident"] - baseline["resident"],
        "footprint_peak_mb": now["peak"] - baseline["resident"],
    }


def bench_bundle(
    bundle: str | Path, mnist, profile: str = "host", seconds: float = 0.5, browser: bool = True, quick: bool = False
) -> dict:
    """Measure every combination of the profile (with the in-browser runtimes when ``browser`` and Chromium is
    here), or with ``quick`` each deployable file once (QUICK_NOTE); return {'rows': [...], 'info': {...}}."""
    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    have_tf = importlib.util.find_spec("tensorflow") is not None
    no_browser = (
        "not asked for (--no-browser; the default of the bench after run and export)"
        if not browser
        else browser_missing()
    )
    combos = plan(manifest, profile, have_tf, browser=no_browser is None, quick=quick)
    absent = {combo.runtime: why for combo in combos if (why := runtime_missing(combo.runtime))}
    not_run = [
        f"{sum(c.runtime == runtime for c in combos)} {RUNTIMES[runtime].label} combinations: {why}"
        for runtime, why in absent.items()
    ]  # a one-runtime device: the other runtime's rows are said, not failed
    combos = [combo for combo in combos if combo.runtime not in absent]
    batches = (1,) if profile == "mobile" or quick else (1, 32, 256)
    pin_core = min(os.sched_getaffinity(0)) if profile == "mobile" else None
    means = "each deployable file once, default setting, 1 thread, batch 1" if quick else PROFILES[profile]
    log(f"benchmarking {len(combos)} combinations of {bundle} ({profile} profile{' quick' * quick}: {means})")
    started = time.perf_counter()
    settings = {"batches": batches, "seconds": seconds, "pin_core": pin_core, "profile": profile}
    rows, errors = measure_combinations(bundle, combos, mnist.x_test[:256].reshape(-1, 28, 28, 1), settings)
    for note in not_run:
        log(f"  (not measured: {note})")
    info = {
        "profile": profile,
        "profile_means": QUICK_NOTE if quick else PROFILES[profile],
        "quick": quick,
        "inputs": INPUTS_NOTE,
        "memory": MEMORY_NOTE,
        "seconds_per_measurement": seconds,
        "keras": _keras_rows(quick, have_tf),
        "browser": BROWSER_NOTE if no_browser is None else f"Browser rows not measured: {no_browser}.",
        "errors": errors,
        "not_run": not_run,
        "machine": machine_info(),
        "took_s": round(time.perf_counter() - started, 1),
    }
    return {"rows": rows, "info": info}


def measure_combinations(
    bundle: Path, combos: list[Combination], digits: np.ndarray, settings: dict
) -> tuple[list[dict], list[dict]]:
    """Each combination in a fresh process (``measure``): a child forked from a server that imported its runtime
    alone (TensorFlow never: a Keras row imports it in its child), one server per runtime; return the rows and
    the combinations that failed, each with its reason."""
    rows, errors = [], []
    with tempfile.TemporaryDirectory(prefix="lenet-edge-bench-") as tmp, contextlib.ExitStack() as stack:
        np.save(Path(tmp) / "digits.npy", digits)
        libraries = {combo.runtime: RUNNERS[combo.runtime].library if combo.runtime != "keras" else None
                     for combo in combos}  # fmt: skip
        servers = {
            library: stack.enter_context(Forks(__name__, [library] if library else [], Path(tmp)))
            for library in dict.fromkeys(libraries.values())
        }  # started together: they import meanwhile
        for index, combo in enumerate(combos):
            progress(index, len(combos), combo.label)
            if not is_regular_file(bundle / combo.file):
                errors.append({"combination": combo.label, "reason": f"{combo.file}: missing or not a regular file"})
                continue
            spec = {
                "path": str(bundle / combo.file), "runtime": combo.runtime, "delegate": combo.delegate,
                "threads": combo.threads, "batches": settings["batches"], "seconds": settings["seconds"],
                "digits": str(Path(tmp) / "digits.npy"),
                "pin_core": None if combo.delegate == "wasm" else settings["pin_core"],
            }  # fmt: skip
            measurements, reason = servers[libraries[combo.runtime]].run(spec)
            if reason:
                errors.append({"combination": combo.label, "reason": reason})
                continue
            for measured in measurements:
                row = {
                    "format": combo.format, "runtime": combo.runtime, "delegate": combo.delegate,
                    "profile": settings["profile"], "threads": combo.threads, "size_bytes": combo.size_bytes,
                    **measured,
                }  # fmt: skip
                rows.append(BenchRow.from_dict(row).to_dict())
        progress(len(combos), len(combos), "done")
    return rows, errors


def _keras_rows(quick: bool, have_tf: bool) -> str:
    if quick:
        return "not in the quick bench (a reference, not a file an app deploys)"
    return "measured" if have_tf else "skipped: TensorFlow is not installed (runtime-only install)"


def harness_overhead(path: Path, runtime: str, digit: np.ndarray, rounds: int = 5, seconds: float = 0.3) -> dict:
    """The harness's batch-1 p50 against a bare loop of the runtime's own call on the same model in the same
    process (``interpreter.invoke()`` or ``session.run()``, timed in blocks of 100 with no per-call clock).
    Rounds alternate harness and bare loop so drift hits both alike; medians of the rounds are compared."""
    runner = open_runner(runtime, path, threads=1)
    if not isinstance(runner, LiteRTRunner | OnnxRuntimeRunner):
        raise ValueError(f"the harness check compares LiteRT or ONNX Runtime loops, not {runtime}")
    harness_call = runner.prepared_call(digit)
    if isinstance(runner, LiteRTRunner):
        bare = runner.interpreter.invoke  # the input is already set by prepared_call
    else:
        feed = {runner.input.name: runner.input.encode(digit.reshape(1, 28, 28, 1))}
        session, outputs = runner.session, [runner.output.name]

        def bare():
            session.run(outputs, feed)

    harness, plain = [], []
    for _ in range(rounds):
        harness.append(float(np.median(time_calls(harness_call, seconds))) / 1e3)
        blocks: list[float] = []
        clock = time.perf_counter_ns
        stop = clock() + int(seconds * 1e9)
        while clock() < stop or len(blocks) < 20:
            start = clock()
            for _ in range(100):
                bare()
            blocks.append((clock() - start) / 100)
        plain.append(float(np.median(blocks)) / 1e3)
    harness_us, bare_us = float(np.median(harness)), float(np.median(plain))
    return {"file": Path(path).name, "runtime": runtime, "harness_p50_us": harness_us, "bare_us": bare_us,
            "ratio": harness_us / bare_us}  # fmt: skip


def profile_bundle(bundle: Path, manifest: Manifest) -> dict:
    """Per-op evidence of where the time goes, for every artifact whose runtime can tell."""
    result = {}
    for entry in manifest.exports:
        if not is_regular_file(bundle / entry.file) or runtime_missing(entry.runtime):
            continue  # bench's own rows say it is missing, or that its runtime is not installed here
        try:
            found = open_runner(entry.runtime, bundle / entry.file).op_profile()
        except Exception as exc:  # a missing or broken file: bench's own rows say it failed
            log(f"per-op profile: {entry.format} not profiled ({one_line(exc)[:200]})")
            continue
        if found is not None:
            result[entry.format] = found
    return result


if __name__ == "__main__":  # with a combination: its rows as one JSON line; without: bench's fork server
    if len(sys.argv) == 2 and sys.argv[1].startswith("{"):
        print(json.dumps(measure(json.loads(sys.argv[1]))))
    else:
        serve(measure, sys.argv[1:])
