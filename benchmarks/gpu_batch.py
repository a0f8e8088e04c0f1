"""What verify's GPU rows cost: digits per second through LiteRT's GPU accelerator at several batch sizes,

    python benchmarks/gpu_batch.py [BUNDLE] [--digits N] [--batch 1 --batch 8 …]

BUNDLE (default export/, from `make run`) holds the .tflite files. Each file is compiled in each arithmetic (fp16,
fp32 enforced) in the worker verify uses, and N test digits (default 1,000) are answered through it at each
batch size, timed whole as verify pays for them (the pipe included). The device is whatever Vulkan device the
machine has (here a CPU driver, Mesa's lavapipe): these are verify's costs, not a phone GPU's speed. Writes
benchmarks/GPU.md and gpu_batch.json with the machine and its load."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from pathlib import Path

from lenet_edge.data import load_mnist
from lenet_edge.files import write_json
from lenet_edge.host import machine_info
from lenet_edge.manifest import read_manifest
from lenet_edge.runtimes import open_runner

HERE = Path(__file__).resolve().parent


def measure(bundle: Path, digits: int, batches: list[int]) -> list[dict]:
    images = load_mnist(os.environ.get("LENET_EDGE_DATA")).x_test[:digits]
    rows = []
    for entry in read_manifest(bundle).artifacts:
        if entry.runtime != "litert":
            continue
        for setting in ("fp16", "fp32"):
            start = time.perf_counter()
            runner = open_runner("litert-gpu", bundle / entry.file, delegate=setting)
            compile_s = time.perf_counter() - start
            for batch in batches:
                runner.predict(images[:batch], batch_size=batch)  # the worker's buffers at this batch
                start = time.perf_counter()
                runner.predict(images, batch_size=batch)
                seconds = time.perf_counter() - start
                per_digit = round(seconds / digits * 1e3, 3)
                rows.append({"file": entry.file, "arithmetic": setting, "batch": batch,
                             "compile_s": round(compile_s, 2), "ms_per_digit": per_digit})  # fmt: skip
                print(rows[-1], flush=True)
            runner.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", nargs="?", default="export")
    parser.add_argument("--digits", type=int, default=1000)
    parser.add_argument("--batch", type=int, action="append")
    args = parser.parse_args()
    batches = args.batch or [1, 8, 32, 128]
    load = os.getloadavg()[0]
    rows = measure(Path(args.bundle), args.digits, batches)
    machine = machine_info()
    when = dt.date.today().isoformat()
    write_json(HERE / "gpu_batch.json", {"date": when, "machine": machine, "load": load, "rows": rows})
    files = list(dict.fromkeys(row["file"] for row in rows))
    lines = [
        "# What verify's GPU rows cost: LiteRT's GPU accelerator on a CPU Vulkan driver",
        "",
        f"Made by `python benchmarks/gpu_batch.py` on {when}: {machine.get('cpu')}, {machine.get('cores')} cores, "
        f"load average {load:.1f} when it started (other work shared the cores: the numbers are noisy). "
        f"{args.digits:,} test digits per cell, timed whole through verify's worker process (the pipe included), "
        "after a first call at that batch. The device is Mesa's lavapipe (Vulkan on the CPU): this is what "
        "verify pays, **not a phone GPU's speed**.",
        "",
        "| File | arithmetic | compile s | " + " | ".join(f"ms/digit @ batch {b}" for b in batches) + " |",
        "|---|---|---:|" + "---:|" * len(batches),
    ]
    for file in files:
        for setting in ("fp16", "fp32"):
            cells = {row["batch"]: row for row in rows if row["file"] == file and row["arithmetic"] == setting}
            first = next(iter(cells.values()))
            lines.append(f"| {file} | {setting} | {first['compile_s']:.2f} | "
                         + " | ".join(f"{cells[b]['ms_per_digit']:.2f}" for b in batches) + " |")  # fmt: skip
    (HERE / "GPU.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
