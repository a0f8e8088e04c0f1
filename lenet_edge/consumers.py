"""The exports in consumers nobody here wrote: does each file load and answer in the runtimes apps deploy with?

One row per consumer beside the file's own runtime (OpenVINO under its default and its bf16 precision, tract, the
onnx.reference evaluator); each cell is the accuracy on the test digits and the top-1 agreement with the file
run by its own runtime, or the consumer's one-line refusal. Consumers that are not installed are said to be
so (``pip install 'lenet-edge[consumers]'``); nothing here is needed by the runtime-only install."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

from .console import log
from .data import Mnist
from .errors import one_line
from .files import is_regular_file
from .manifest import Manifest
from .runtimes import open_runner

BATCH = 500  # tract runs a fixed batch; the others take it as it comes
MIN_AGREEMENT = 0.998  # a consumer answers like the file's own runtime when it agrees this often, top-1


def _batches(images: np.ndarray) -> list[np.ndarray]:
    floats = images.reshape(-1, 28, 28, 1).astype(np.float32)  # raw pixels, as the app contract says
    return [floats[start : start + BATCH] for start in range(0, len(floats), BATCH)]


def _openvino(config: dict) -> Callable[[Path, np.ndarray], np.ndarray]:
    def run(path: Path, images: np.ndarray) -> np.ndarray:
        import openvino

        core = openvino.Core()
        request = core.compile_model(core.read_model(str(path)), "CPU", config).create_infer_request()
        return np.concatenate([next(iter(request.infer({"image": batch}).values())) for batch in _batches(images)])

    return run


def _tract(path: Path, images: np.ndarray) -> np.ndarray:
    import tract

    model = tract.onnx().load(str(path))
    model.set_input_fact(0, f"{BATCH},28,28,1,f32")
    runnable = model.into_model().into_runnable()
    return np.concatenate([runnable.run([batch])[0].to_numpy() for batch in _batches(images)])


def _reference(path: Path, images: np.ndarray) -> np.ndarray:
    from onnx.reference import ReferenceEvaluator

    evaluator = ReferenceEvaluator(str(path))
    return np.concatenate(
        [np.asarray(cast(list, evaluator.run(None, {"image": batch}))[0]) for batch in _batches(images)]
    )


@dataclass(frozen=True)
class Consumer:
    name: str
    family: str  # the exporter family whose files it reads
    module: str  # what must be importable
    run: Callable[[Path, np.ndarray], np.ndarray]  # raw pixels in, the output tensor's values out
    about: str


CONSUMERS: tuple[Consumer, ...] = (
    Consumer("OpenVINO", "onnx", "openvino", _openvino({}), "OpenVINO's CPU plugin with its default settings"),
    Consumer("OpenVINO bf16", "onnx", "openvino", _openvino({"INFERENCE_PRECISION_HINT": "bf16"}),
             "OpenVINO asked for bf16 inference, its default on CPUs with AMX"),
    Consumer("tract", "onnx", "tract", _tract, "Sonos' tract, a pure-Rust runtime for embedded Linux"),
    Consumer("onnx.reference", "onnx", "onnx", _reference, "the ONNX reference evaluator: the standard's own "
             "semantics, in NumPy"),
)  # fmt: skip


def _judge(consumer: Consumer, path: Path, digits: np.ndarray, labels: np.ndarray, own: np.ndarray) -> dict:
    """One cell: pass or fail against the file's own runtime's answers, refused (the consumer's reason) or
    absent (not installed)."""
    if importlib.util.find_spec(consumer.module) is None:
        return {"status": "absent", "reason": f"{consumer.module} is not installed here"}
    start = time.perf_counter()
    try:
        answered = np.asarray(consumer.run(path, digits)).argmax(1)
    except Exception as exc:  # the consumer's own refusal, in one line
        return {"status": "refused", "reason": one_line(exc)[:300]}
    agreement = float(np.mean(answered == own))
    passed = agreement >= MIN_AGREEMENT
    return {
        "status": "pass" if passed else "fail",
        "reason": "" if passed else f"agreement {agreement:.2%} < {MIN_AGREEMENT:.1%}",
        "accuracy": float(np.mean(answered == labels)),
        "agreement": agreement,
        "seconds": round(time.perf_counter() - start, 2),
    }


def consumers_table(bundle: Path, manifest: Manifest, mnist: Mnist, images: int | None = None) -> dict:
    """Every export in every consumer of its family, on the first ``images`` test digits (all by default):
    accuracy and agreement with its own runtime, or why not."""
    digits, labels = mnist.x_test[:images], mnist.y_test[:images]
    rows = []
    for entry in manifest.exports:
        family = entry.spec.family
        readers = [consumer for consumer in CONSUMERS if consumer.family == family]
        if not readers or not is_regular_file(bundle / entry.file):
            continue
        own = open_runner(entry.runtime, bundle / entry.file).predict(digits).argmax(1)
        for consumer in readers:
            cell = _judge(consumer, bundle / entry.file, digits, labels, own)
            log(f"  {entry.format:<15} {consumer.name:<15} {cell['status']}  {cell['reason']}".rstrip())
            rows.append({"format": entry.format, "consumer": consumer.name} | cell)
    return {
        "images": len(digits),
        "consumers": {consumer.name: consumer.about for consumer in CONSUMERS},
        "min_agreement": MIN_AGREEMENT,
        "rows": rows,
    }
