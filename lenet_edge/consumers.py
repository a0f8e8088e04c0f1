"""The exports in the consumers apps deploy with: does each file load and answer in runtimes and frameworks
nobody here wrote, not only in our own runner?

One row per file and consumer of its family: its own runtime (LiteRT, ONNX Runtime), the microcontroller runtime
(TFLite Micro), an app framework (MediaPipe Tasks' ImageClassifier, fed RGB images as a camera gives them), the
browser runtimes of the served page, OpenVINO under its default and its bf16 precision, tract and the
onnx.reference evaluator. Each cell is the accuracy on the test digits and the top-1 agreement with the file run
by its own runtime, or the consumer's one-line refusal; a refusal the file's kind explains (TFLite Micro has no
float16 kernels) says so. Consumers that are not installed are said to be so (``pip install
'lenet-edge[consumers]'``); nothing here is needed by the runtime-only install."""

from __future__ import annotations

import functools
import importlib.util
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

from .console import log, silenced
from .data import Mnist
from .errors import one_line
from .files import is_regular_file
from .formats import Format
from .manifest import Manifest
from .model import INPUT_NAME
from .runtimes import open_runner
from .runtimes.wasm import browser_missing

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
        return np.concatenate([next(iter(request.infer({INPUT_NAME: batch}).values())) for batch in _batches(images)])

    return run


def _tract(path: Path, images: np.ndarray) -> np.ndarray:
    import tract

    model = tract.onnx().load(str(path))
    model.set_input_fact(0, f"{BATCH},28,28,1,f32")
    runnable = model.into_model().into_runnable()
    return np.concatenate([runnable.run([batch])[0].to_numpy() for batch in _batches(images)])


def _runner(runtime: str) -> Callable[[Path, np.ndarray], np.ndarray]:
    def run(path: Path, images: np.ndarray) -> np.ndarray:
        runner = open_runner(runtime, path)
        try:
            return runner.predict(images)
        finally:
            runner.close()

    return run


def _mediapipe(path: Path, images: np.ndarray) -> np.ndarray:
    """MediaPipe Tasks' ImageClassifier, as an app calls it: one RGB image per call, the scores read by their
    category names (so the labels must come from the file's own metadata)."""
    import mediapipe
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions

    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(path)), max_results=10)
    scores = np.zeros((len(images), 10), np.float32)
    with silenced():  # its LiteRT says hello on stderr
        classifier = vision.ImageClassifier.create_from_options(options)
    with classifier:
        for row, digit in enumerate(images.reshape(-1, 28, 28, 1)):
            rgb = mediapipe.Image(image_format=mediapipe.ImageFormat.SRGB, data=np.repeat(digit, 3, axis=2))
            for category in classifier.classify(rgb).classifications[0].categories:
                if not category.category_name.isdigit():
                    raise ValueError(f"category {category.index} has no digit label ({category.category_name!r})")
                scores[row, int(category.category_name)] = category.score
    return scores


def _reference(path: Path, images: np.ndarray) -> np.ndarray:
    from onnx.reference import ReferenceEvaluator

    evaluator = ReferenceEvaluator(str(path))
    return np.concatenate(
        [np.asarray(cast(list, evaluator.run(None, {INPUT_NAME: batch}))[0]) for batch in _batches(images)]
    )


def _importable(module: str) -> Callable[[], str | None]:
    return lambda: None if importlib.util.find_spec(module) else f"{module} is not installed here"


def _not_micro(fmt: Format) -> str | None:
    kinds = {"fp16": "float16", "dynamic": "dynamic-range (hybrid)"}
    if fmt.precision in kinds:
        return f"TFLite Micro has no {kinds[fmt.precision]} kernels: microcontrollers run int8 or float32 files"
    return None


def _not_rgb(fmt: Format) -> str | None:
    if fmt.options.get("color") != "rgb":
        return "the ImageClassifier takes RGB images only: lenet5_rgb_int8.tflite is the file for it"
    return None


@dataclass(frozen=True)
class Consumer:
    name: str
    family: str  # the exporter family whose files it reads
    run: Callable[[Path, np.ndarray], np.ndarray]  # raw pixels in, probabilities out
    about: str
    missing: Callable[[], str | None]  # why it cannot run here, or None
    browser: str | None = None  # an in-browser runtime: it reads the files the page runs with it
    runtime: str | None = None  # the lenet-edge runtime it is, when it is one (a file's own: its answers reused)
    inherent: Callable[[Format], str | None] = lambda fmt: None  # why a file is outside what it takes


CONSUMERS: tuple[Consumer, ...] = (
    Consumer("LiteRT", "tflite", _runner("litert"), "the file's own runtime (XNNPACK), as lenet-edge runs it",
             _importable("ai_edge_litert"), runtime="litert"),
    Consumer("TFLite Micro", "tflite", _runner("tflm"), "TensorFlow Lite for Microcontrollers' reference kernels, "
             "run on this host", _importable("tflite_micro"), inherent=_not_micro),
    Consumer("MediaPipe", "tflite", _mediapipe, "MediaPipe Tasks' ImageClassifier, fed each digit as an RGB image",
             _importable("mediapipe"), inherent=_not_rgb),
    Consumer("LiteRT.js", "tflite", _runner("litert.js"), "LiteRT.js (WebAssembly) in the served page, in Chromium",
             browser_missing, browser="litert.js"),
    Consumer("ONNX Runtime", "onnx", _runner("onnxruntime"), "the file's own runtime, as lenet-edge runs it",
             _importable("onnxruntime"), runtime="onnxruntime"),
    Consumer("OpenVINO", "onnx", _openvino({}), "OpenVINO's CPU plugin with its default settings",
             _importable("openvino")),
    Consumer("OpenVINO bf16", "onnx", _openvino({"INFERENCE_PRECISION_HINT": "bf16"}),
             "OpenVINO asked for bf16 inference, its default on CPUs with AMX", _importable("openvino")),
    Consumer("tract", "onnx", _tract, "Sonos' tract, a pure-Rust runtime for embedded Linux", _importable("tract")),
    Consumer("onnx.reference", "onnx", _reference, "the ONNX reference evaluator: the standard's own semantics, in "
             "NumPy", _importable("onnx")),
    Consumer("onnxruntime-web", "onnx", _runner("onnxruntime-web"), "onnxruntime-web (WebAssembly) in the served "
             "page, in Chromium", browser_missing, browser="onnxruntime-web"),
)  # fmt: skip


def _reads(consumer: Consumer, fmt: Format) -> bool:
    """Whether the consumer is one for files of this format (a browser runtime: those the page runs with it)."""
    return consumer.family == fmt.family and (consumer.browser is None or consumer.browser == fmt.browser)


def _judge(
    consumer: Consumer, fmt: Format, answer: Callable[[], np.ndarray], labels: np.ndarray, own: np.ndarray
) -> dict:
    """One cell: pass or fail against the file's own runtime's answers; refused (the consumer's reason), or
    inherent when the file is outside what the consumer takes (its reason and why); absent (not installed).
    ``answer`` runs the consumer on the digits."""
    if reason := consumer.missing():
        return {"status": "absent", "reason": reason}
    start = time.perf_counter()
    try:
        answered = np.asarray(answer()).argmax(1)
    except Exception as exc:  # the consumer's own refusal, in one line
        refusal = one_line(exc)[:300]
        if why := consumer.inherent(fmt):
            return {"status": "inherent", "reason": f"{why} (it says: {refusal})"}
        return {"status": "refused", "reason": refusal}
    agreement = float(np.mean(answered == own))
    passed = agreement >= MIN_AGREEMENT
    return {
        "status": "pass" if passed else "fail",
        "reason": "" if passed else f"agreement {agreement:.2%} < {MIN_AGREEMENT:.1%}",
        "accuracy": float(np.mean(answered == labels)),
        "agreement": agreement,
        "seconds": round(time.perf_counter() - start, 2),
    }


def consumers_table(
    bundle: Path,
    manifest: Manifest,
    mnist: Mnist,
    images: int | None = None,
    consumers: Sequence[Consumer] = CONSUMERS,
) -> dict:
    """Every export in every one of ``consumers`` of its family, on the first ``images`` test digits (all by
    default): accuracy and agreement with its own runtime, or why not."""
    digits, labels = mnist.x_test[:images], mnist.y_test[:images]
    rows = []
    for entry in manifest.exports:
        readers = [consumer for consumer in consumers if _reads(consumer, entry.spec)]
        if not readers or not is_regular_file(bundle / entry.file):
            continue
        path = bundle / entry.file
        own = open_runner(entry.runtime, path).predict(digits)
        for consumer in readers:
            if consumer.runtime == entry.runtime:  # the file's own runtime: its answers are in hand
                answer = functools.partial(np.asarray, own)
            else:
                answer = functools.partial(consumer.run, path, digits)
            cell = _judge(consumer, entry.spec, answer, labels, own.argmax(1))
            log(f"  {entry.format:<15} {consumer.name:<15} {cell['status']}  {cell['reason']}".rstrip())
            rows.append({"format": entry.format, "family": entry.spec.family, "consumer": consumer.name} | cell)
    return {
        "images": len(digits),
        "consumers": {consumer.name: consumer.about for consumer in consumers},
        "min_agreement": MIN_AGREEMENT,
        "rows": rows,
    }
