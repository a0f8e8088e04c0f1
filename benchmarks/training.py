"""Training time side by side, in one run on one host: the seed tutorials' fastest recipe (peer_training.py),
lenet-edge's previous recipe (12 epochs with augmentation, no normalization) and lenet-edge's recipe now
(`lenet-edge train` with its defaults). Each run is a fresh process; the rounds alternate the three, each round
in a rotated order, so that drift hits them alike. Only ``model.fit`` (and, now, the fold of the normalization into
the weights) is timed. Prints the table and writes benchmarks/TRAINING.md and training.json.

    python benchmarks/training.py [--rounds 3] [--data MNIST_FOLDER]

A timing is only as good as the host is quiet: the table gives the load average before each run. The figures
that go into the README come from an otherwise idle host."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lenet_edge.files import write_json
from lenet_edge.host import machine_info

HERE = Path(__file__).resolve().parent
BEFORE = ["--epochs", "12", "--batch-size", "256", "--lr", "0.004", "--warmup", "0", "--no-batch-norm", "--augment"]
RECIPES = {
    "seed recipe": "28×28 'valid' 5×5 convs, dense 120/84, tanh; Adam 1e-3, batch 128, 10 epochs, no augmentation, "
    "no validation split (benchmarks/peer_training.py)",
    "lenet-edge before": "classic LeNet-5, tanh; Adam 4e-3 cosine-decayed, batch 256, 12 epochs, every image warped, "
    "best of 12 epochs on 5,000 validation images (`lenet-edge train " + " ".join(BEFORE) + "`)",
    "lenet-edge now": "classic LeNet-5, tanh, trained with batch normalization folded into its weights after; Adam "
    "3e-3 with a 10% warm-up, then cosine-decayed, batch 256, 4 epochs, every image warped, best epoch on 5,000 "
    "validation images (`lenet-edge train`)",
}

FINDINGS = """\
## Where the time goes (measured once, AMD EPYC 2 cores, 2026-12-07, a shared host: load 4-12)

CPU seconds, which a busy host inflates less than wall time; each figure measured once or twice.

- An epoch of the previous recipe (55,000 images, batch 256): the training step itself 5.6-5.8 CPU s (a bare
  `tf.function` loop over the batches, no input pipeline); the per-image warp 0.85 (the pipeline alone 1.39 with
  it, 0.54 without); Keras's `fit` around the step about 0.6. Op determinism: the same weights with it and
  without, no measurable cost. `steps_per_execution` over a whole epoch: no gain. Batch 1024: 20% less per
  epoch, and fewer, slower-converging steps. oneDNN off: 3× slower. Mixed bfloat16 (this CPU has AVX512-BF16):
  25% less per step, not taken (other numbers, and emulated where the CPU lacks it). XLA: slower (8-17 s an
  epoch, measured before).
- The step, layer by layer (batch 512, forward and backward): C1 about a third (one input channel: 7.5 G
  multiply-adds a second, against 30 for C3), C3 40%, C5 17%, the rest under 10%.
- So the time is arithmetic that TensorFlow's CPU kernels run slowly, not overhead: the gain had to come from
  fewer epochs. The plain tanh LeNet-5 reaches only 98.1-98.7% in 4 epochs (seed 0) whatever was tried: Adam 2e-3
  to 6e-3, batch 64 to 512, a 10% warm-up, ReLU, LSUV initialisation, label smoothing 0.1 (97.9%), augmentation
  (98.7%). Batch normalization, folded into the weights after training, reaches 99.14-99.26% in 4 epochs (99.25%
  with augmentation; 99.11-99.18% in 3, 99.21% in 5 without it) but costs 60% more per step (49 against 30 ms of
  CPU a batch of 256; a fused kernel did not change it). Without C1's normalization it is cheaper and 98.98%.
- The floor here: 4 normalized epochs, 0.56-0.72× the seed recipe's wall time on this host (two runs of two
  rounds, load 0.8-4.3) and 0.77-0.79× its CPU time; not 0.5×.
"""


def _peer(data: str, tmp: Path, index: int) -> dict:
    out = tmp / f"peer{index}.json"
    subprocess.run([sys.executable, str(HERE / "peer_training.py"), "--data", data, "--json", str(out)],
                   check=True, capture_output=True)  # fmt: skip
    found = json.loads(out.read_text())
    return {"seconds": found["train_seconds"], "epochs": found["epochs"], "test_accuracy": found["test_accuracy"]}


def _ours(data: str, tmp: Path, index: int, extra: list[str]) -> dict:
    out = tmp / f"ours{index}"
    command = [sys.executable, "-m", "lenet_edge.cli", "train", "--data", data, "--out", str(out), *extra]
    subprocess.run(command, check=True, capture_output=True)
    timings = json.loads((out / "timings.json").read_text())
    record = json.loads((out / "training.json").read_text())
    return {
        "seconds": timings["training_seconds"],
        "epochs": record["config"]["epochs"],
        "test_accuracy": record["test_accuracy"],
        "best_epoch": record["best_epoch"],
        "epoch_seconds": timings.get("epoch_seconds"),
    }


def _children_cpu() -> float:
    """CPU seconds (user and system) of the finished child processes so far: what a run cost, whatever else
    the host was doing (the whole process: imports and writing included, not the training alone)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def side_by_side(data: str, rounds: int, recipes: list[str]) -> dict:
    """Every recipe once a round, in fresh processes, the order rotated each round; each run with the load average
    of the minute before it."""
    runners = {
        "seed recipe": lambda tmp, i: _peer(data, tmp, i),
        "lenet-edge before": lambda tmp, i: _ours(data, tmp, i, BEFORE),
        "lenet-edge now": lambda tmp, i: _ours(data, tmp, i, []),
    }
    runs: dict[str, list[dict]] = {name: [] for name in recipes}
    with tempfile.TemporaryDirectory(prefix="lenet-edge-training-") as tmp:
        for round_ in range(rounds):
            order = recipes[round_ % len(recipes) :] + recipes[: round_ % len(recipes)]
            for name in order:
                load, cpu = os.getloadavg()[0], _children_cpu()
                started = time.perf_counter()
                found = runners[name](Path(tmp), len(runs[name]) + round_ * 10)
                found |= {"round": round_ + 1, "load_1min": round(load, 2),
                          "process_seconds": round(time.perf_counter() - started, 1),
                          "process_cpu_seconds": round(_children_cpu() - cpu, 1)}  # fmt: skip
                runs[name].append(found)
                print(f"round {round_ + 1} {name}: {found['seconds']:.1f} s, {found['epochs']} epochs, "
                      f"{found['test_accuracy']:.2%} (load {load:.2f}; the whole process "
                      f"{found['process_seconds']:.1f} s, {found['process_cpu_seconds']:.1f} CPU s)",
                      flush=True)  # fmt: skip
    medians = {name: float(np.median([r["seconds"] for r in found])) for name, found in runs.items()}
    return {"runs": runs, "median_seconds": medians}


def table(result: dict) -> list[str]:
    """The Markdown table: one row a recipe, medians of the rounds, and the ratio to the seed recipe."""
    medians, runs = result["median_seconds"], result["runs"]
    peer = medians.get("seed recipe")
    lines = [
        "| recipe | training s (median) | each round s | epochs | test accuracy (each round) | × seed recipe "
        "| process CPU s (median) |",
        "|---|---:|---|---:|---|---:|---:|",
    ]
    for name, found in runs.items():
        accuracies = ", ".join(f"{r['test_accuracy']:.2%}" for r in found)
        each = ", ".join(f"{r['seconds']:.1f}" for r in found)
        ratio = f"{medians[name] / peer:.2f}×" if peer else "—"
        cpu = float(np.median([r["process_cpu_seconds"] for r in found]))
        lines.append(
            f"| {name} | {medians[name]:.1f} | {each} | {found[0]['epochs']} | {accuracies} | {ratio} | {cpu:.1f} |"
        )
    return lines


def write(result: dict, machine: dict, started: str) -> Path:
    loads = [r["load_1min"] for found in result["runs"].values() for r in found]
    lines = [
        "# Training time: the seed recipe, lenet-edge before and now",
        "",
        f"Run {started} by `python benchmarks/training.py --rounds {result['rounds']}`. Machine: {machine['cpu']}, "
        f"{machine['cores']} cores, {machine['system']}; "
        + ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
        + ".",
        "",
        f"Load average (1 min) before the runs: {min(loads):.2f} to {max(loads):.2f}. On a busy host every figure "
        "grows and the ratios move; the figures to quote come from an otherwise idle host.",
        "",
        *table(result),
        "",
        "Recipes (each in a fresh process, the rounds alternating them; training seconds are `model.fit` alone, "
        "and for lenet-edge now the fold of the normalization too; process CPU seconds are the whole process's, "
        "imports and writing included, which a busy host inflates less than wall time):",
        "",
        *(f"- **{name}**: {RECIPES[name]}" for name in result["runs"]),
        "",
        FINDINGS,
    ]
    (HERE / "TRAINING.md").write_text("\n".join(lines))
    write_json(HERE / "training.json", result | {"machine": machine, "date": started})
    return HERE / "TRAINING.md"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.environ.get("LENET_EDGE_DATA"), help="MNIST folder")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every recipe (default %(default)s)")
    parser.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated, of: " + ", ".join(RECIPES))
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args()
    recipes = [name.strip() for name in args.recipes.split(",")]
    unknown = [name for name in recipes if name not in RECIPES]
    if unknown or args.rounds < 1 or not args.data:
        parser.error(f"unknown recipes {unknown}" if unknown else "--rounds ≥ 1 and --data (or LENET_EDGE_DATA)")
    started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    result = side_by_side(args.data, args.rounds, recipes) | {"rounds": args.rounds}
    print("\n".join(table(result)))
    if not args.no_write:
        print(f"wrote {write(result, machine_info(), started)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
