"""The in-browser runtimes against the native ones: python benchmarks/browser.py [BUNDLE] [LAUNCHES] (default
export/, 5). Every file of the bundle answers all 10,000 MNIST test digits in headless Chromium (onnxruntime-web,
LiteRT.js) and natively (LiteRT, ONNX Runtime), one digit per call; then its batch-1 latency is timed in
LAUNCHES fresh browsers (the spread between launches is large; the launches take turns between files) and
natively before and after, in the same run. Writes
benchmarks/BROWSER.md and browser.json, with the machine it ran on."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lenet_edge.data import load_mnist
from lenet_edge.files import write_json
from lenet_edge.formats import FORMATS
from lenet_edge.host import machine_info
from lenet_edge.runtimes import open_runner
from lenet_edge.runtimes.wasm import BrowserPage, find_chromium
from lenet_edge.serve import runtime_versions

HERE = Path(__file__).resolve().parent
SECONDS = 0.5


def parity(bundle: Path, mnist) -> list[dict]:
    rows = []
    with BrowserPage(bundle, mnist) as page:
        for fmt in FORMATS:
            browser = open_runner(fmt.browser, bundle / fmt.file, page=page).predict(mnist.x_test, raw=True)
            native_runner = open_runner(fmt.runtime, bundle / fmt.file, threads=1)
            native = native_runner.predict(mnist.x_test, batch_size=1, raw=True)
            diff = np.abs(browser.astype(np.float64) - native.astype(np.float64))
            rows.append({
                "format": fmt.name, "browser": fmt.browser, "native": fmt.runtime,
                "agreement": float((browser.argmax(1) == native.argmax(1)).mean()),
                "accuracy": float((browser.argmax(1) == mnist.y_test).mean()),
                "max_diff": float(diff.max()), "diff_unit": "steps" if native_runner.output.quantized else "p",
                "outputs_differing": int((diff > 0).sum()), "outputs": int(diff.size),
            })  # fmt: skip
            print(f"parity {fmt.name}: {rows[-1]['agreement']:.2%} agree, max |Δ| {diff.max():.2g}", flush=True)
    return rows


def native_latency(bundle: Path, digit: np.ndarray) -> dict[str, float]:
    """Each file's native batch-1 p50 (µs), each in a fresh process of its own as bench measures it (in this
    process, after the browser work, the same calls ran up to 1.7× slower), with no browser running."""
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "digit.npy", digit.reshape(-1, 28, 28, 1))
        for fmt in FORMATS:
            spec = {"path": str(bundle / fmt.file), "runtime": fmt.runtime, "threads": 1, "batches": [1],
                    "delegate": "xnnpack" if fmt.runtime == "litert" else "cpu", "seconds": SECONDS,
                    "digits": str(Path(tmp) / "digit.npy"), "pin_core": None}  # fmt: skip
            done = subprocess.run([sys.executable, "-m", "lenet_edge.bench", json.dumps(spec)], check=True,
                                  capture_output=True, text=True)  # fmt: skip
            result[fmt.name] = json.loads(done.stdout.strip().splitlines()[-1])[0]["p50_us"]
    return result


def latency(bundle: Path, mnist, launches: int) -> list[dict]:
    """Native before and after (their mean is the reference), the browser in ``launches`` fresh launches."""
    digit = mnist.x_test[:1]
    before = native_latency(bundle, digit)
    in_browser = {fmt.name: [] for fmt in FORMATS}
    for _ in range(launches):
        for fmt in FORMATS:  # a fresh browser each time, as bench does
            runner = open_runner(fmt.browser, bundle / fmt.file)
            in_browser[fmt.name].append(float(np.median(runner.time_calls(digit, SECONDS))) / 1e3)
            runner.close()
    time.sleep(5)  # a closed Chromium's processes linger a second or two
    after = native_latency(bundle, digit)
    rows = []
    for fmt in FORMATS:
        native_us = (before[fmt.name] + after[fmt.name]) / 2
        median = float(np.median(in_browser[fmt.name]))
        rows.append({"format": fmt.name, "browser": fmt.browser, "native": fmt.runtime,
                     "native_p50_us": native_us, "native_before_after_us": [before[fmt.name], after[fmt.name]],
                     "browser_p50_us": in_browser[fmt.name], "browser_median_us": median,
                     "ratio": median / native_us})  # fmt: skip
        print(f"latency {fmt.name}: {median:.0f} µs in the browser, {native_us:.1f} µs native", flush=True)
    return rows


def main() -> int:
    bundle = Path(sys.argv[1] if len(sys.argv) > 1 else HERE.parent / "export")
    launches = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    mnist = load_mnist()
    result = {
        "machine": machine_info(), "chromium": find_chromium(), "runtimes": runtime_versions(),
        "date": dt.date.today().isoformat(), "parity": parity(bundle, mnist),
        "latency": latency(bundle, mnist, launches),
    }  # fmt: skip
    write_json(HERE / "browser.json", result)
    lines = [
        "# In the browser against native",
        "",
        f"`python benchmarks/browser.py` on {result['date']}: {result['machine']['cpu']}, "
        f"{result['machine']['cores']} cores; headless Chromium ({result['chromium']}), onnxruntime-web "
        f"{result['runtimes'].get('onnxruntime-web')}, LiteRT.js {result['runtimes'].get('litert.js')}, "
        "WebAssembly, 1 thread; native LiteRT (XNNPACK) and ONNX Runtime, 1 thread. Bundle: `export/` "
        "(default `make run`).",
        "",
        "## Parity: all 10,000 test digits, one per call",
        "",
        "| Format | In the browser | Native | Same digit | Accuracy | max \\|Δ\\| | Outputs differing |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for row in result["parity"]:
        diff = f"{row['max_diff']:.0f} step" if row["diff_unit"] == "steps" else f"{row['max_diff']:.1e}"
        lines.append(
            f"| {row['format']} | {row['browser']} | {row['native']} | {row['agreement']:.2%} | {row['accuracy']:.2%} "
            f"| {'bit-identical' if row['max_diff'] == 0 else diff} | {row['outputs_differing']:,} of "
            f"{row['outputs']:,} |"
        )
    lines += [
        "",
        f"## Batch-1 latency: median of {launches} browser launches",
        "",
        "Timed inside the page after a 2 s warm-up, in blocks of calls of at least 1 ms (performance.now() moves "
        "in 5 µs steps there). The same file's latency moves a lot from one browser launch to the next; the "
        "range shows it.",
        "",
        "| Format | In the browser | µs (median) | launches range | Native µs (before, after) | browser / native |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in result["latency"]:
        low, high = min(row["browser_p50_us"]), max(row["browser_p50_us"])
        lines.append(
            f"| {row['format']} | {row['browser']} | {row['browser_median_us']:.0f} | {low:.0f}–{high:.0f} | "
            f"{row['native_p50_us']:.1f} ({', '.join(f'{v:.1f}' for v in row['native_before_after_us'])}) | "
            f"{row['ratio']:.1f}× |"
        )
    (HERE / "BROWSER.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {HERE / 'BROWSER.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
