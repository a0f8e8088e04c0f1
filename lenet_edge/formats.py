"""THE table of formats: export, verify and bench all iterate over it. Each row is declarative: which
exporter family writes it (``lenet_edge.exporters.<family>``), with which options, for which runtime."""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import UsageError


@dataclass(frozen=True)
class Format:
    name: str
    file: str
    runtime: str  # key of lenet_edge.runtimes.RUNNERS
    family: str  # exporter module: lenet_edge.exporters.<family>
    precision: str  # fp32 | fp16 | dynamic | int8: what verify's gates and the reports group by
    description: str
    options: dict = field(default_factory=dict)  # passed to the family's export()
    browser: str | None = None  # the in-browser (WebAssembly) runtime that runs it: a key of runtimes.RUNNERS


KERAS = Format("keras", "lenet5.keras", "keras", "keras", "fp32", "the trained Keras model: the reference")

FORMATS: tuple[Format, ...] = (
    Format("tflite-fp32", "lenet5_fp32.tflite", "litert", "tflite", "fp32",
           "float32 weights and activations", {"quantization": "none"}, "litert.js"),
    Format("tflite-fp16", "lenet5_fp16.tflite", "litert", "tflite", "fp16",
           "float16 weights, dequantized to float32 at load; float32 activations", {"quantization": "fp16"},
           "litert.js"),
    Format("tflite-dynamic", "lenet5_dynamic.tflite", "litert", "tflite", "dynamic",
           "dynamic-range: int8 weights, float activations and float32 input/output (not full-integer)",
           {"quantization": "dynamic"}, "litert.js"),
    Format("tflite-int8", "lenet5_int8.tflite", "litert", "tflite", "int8",
           "full-integer int8: uint8 raw-pixel input (scale 1, zero point 0), uint8 quantized probabilities",
           {"quantization": "int8"}, "litert.js"),
    Format("onnx-fp32", "lenet5_fp32.onnx", "onnxruntime", "onnx", "fp32",
           "float32, converted by tf2onnx", {"quantization": "none"}, "onnxruntime-web"),
    Format("onnx-int8", "lenet5_int8.onnx", "onnxruntime", "onnx", "int8",
           "int8 QDQ (ONNX Runtime quantize_static, int8 weights and activations), float32 input/output",
           {"quantization": "int8"}, "onnxruntime-web"),
)  # fmt: skip

FORMAT_NAMES = tuple(f.name for f in FORMATS)
BY_NAME = {f.name: f for f in (KERAS, *FORMATS)}


def get_formats(names: list[str] | None = None) -> list[Format]:
    """The registry rows for ``names`` (all when None), in registry order."""
    if not names:
        return list(FORMATS)
    unknown = sorted(set(names) - set(FORMAT_NAMES))
    if unknown:
        raise UsageError(f"unknown format(s) {', '.join(unknown)}; choose from {', '.join(FORMAT_NAMES)}")
    return [f for f in FORMATS if f.name in names]
