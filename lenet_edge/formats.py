"""THE tables: formats, the runtimes that run them, and the precisions with their gates. Export, verify, bench,
the reports, the targets, the page and the CLI's gate flags all read these rows; adding a format is one row
here (and, for a new runtime, one Runner in ``lenet_edge.runtimes``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import UsageError

_EPS = 1e-9  # a threshold typed as 99.95 (%) must admit exactly 9,995 of 10,000


@dataclass(frozen=True)
class Gate:
    """What an artifact must reach against Keras to pass verify; None means not gated."""

    min_agreement: float | None = None  # top-1 agreement with Keras, 0-1
    max_abs_dp: float | None = None  # max |Δp| against Keras's probabilities
    max_drop_pt: float | None = None  # accuracy drop from Keras, in points

    def failures(self, agreement: float, max_abs_dp: float, delta_pt: float) -> list[str]:
        found = []
        if self.min_agreement is not None and agreement < self.min_agreement - _EPS:
            found.append(f"agreement {agreement:.2%} < {self.min_agreement:.2%}")
        if self.max_abs_dp is not None and max_abs_dp > self.max_abs_dp:
            found.append(f"max|Δp| {max_abs_dp:.2e} > {self.max_abs_dp:.0e}")
        if self.max_drop_pt is not None and -delta_pt > self.max_drop_pt + _EPS:
            found.append(f"accuracy drop {-delta_pt:.2f} pt > {self.max_drop_pt} pt")
        return found

    def describe(self) -> str:
        parts = []
        if self.min_agreement is not None:
            parts.append(f"agreement ≥ {self.min_agreement:.2%}")
        if self.max_abs_dp is not None:
            parts.append(f"max|Δp| ≤ {self.max_abs_dp:.0e}")
        if self.max_drop_pt is not None:
            parts.append(f"drop ≤ {self.max_drop_pt} pt")
        return ", ".join(parts) or "none"


@dataclass(frozen=True)
class ParityGate:
    """How far the same file may answer on another runtime or CPU (an ARM64 target, the browser) from here."""

    min_agreement: float  # top-1 agreement, 0-1
    max_abs_dp: float  # float outputs: max |Δp|
    max_steps: int  # quantized outputs: max |Δ| in the output's quantization steps

    def limit(self, quantized_output: bool) -> float:
        return self.max_steps if quantized_output else self.max_abs_dp

    def failures(self, agreement: float, max_delta: float, quantized_output: bool) -> list[str]:
        found = []
        if agreement < self.min_agreement - _EPS:
            found.append(f"agreement {agreement:.2%} < {self.min_agreement:.1%}")
        limit = self.limit(quantized_output)
        if max_delta > limit:
            found.append(f"max|Δ| {max_delta:.3g} {'steps' if quantized_output else '|Δp|'} > {limit:g}")
        return found

    def describe(self, quantized_output: bool) -> str:
        limit = f"{self.max_steps} steps" if quantized_output else f"|Δp| {self.max_abs_dp:.0e}"
        return f"agreement ≥ {self.min_agreement:.1%}, max {limit}"


@dataclass(frozen=True)
class Precision:
    name: str
    verify: Gate  # against Keras, on this machine
    parity: ParityGate  # the same file elsewhere, against this machine
    quantized: bool  # int8 arithmetic: the layer-by-layer quantization error applies


# Float kernels differ only in summation order (ARM FMA, NEON tiling, WebAssembly); quantized kernels may round
# one step apart (the ARM64 probe saw at most 1 step on 7 of 10,000 int8 outputs), and dynamic-range quantizes
# activations at run time with each CPU's own kernels.
GPU_FP16 = "gpu-fp16"  # the arithmetic of LiteRT's GPU accelerator by default (a precision row below)
PRECISIONS: dict[str, Precision] = {
    p.name: p
    for p in (
        Precision("fp32", Gate(min_agreement=1.0, max_abs_dp=1e-5), ParityGate(1.0, 1e-5, 0), False),
        # float16 weights round to 2^-11: relu models reach 1.6e-3
        Precision("fp16", Gate(min_agreement=0.9995, max_abs_dp=5e-3), ParityGate(1.0, 1e-5, 0), False),
        Precision("dynamic", Gate(min_agreement=0.995, max_drop_pt=0.3), ParityGate(0.999, 1e-2, 2), False),
        Precision("int8", Gate(min_agreement=0.995, max_drop_pt=0.3), ParityGate(0.999, 1e-2, 2), True),
        # not a file's precision but an arithmetic: LiteRT's GPU accelerator computes in fp16 unless fp32 is enforced
        # (its "fp16" delegate). Rows in it are judged with this gate, or a quantized file's own where that is looser:
        # a float model whose answers flip under fp16 fails. fp16's 11-bit mantissa reaches ~5e-3 on LeNet-5.
        Precision(GPU_FP16, Gate(min_agreement=0.9995, max_abs_dp=2e-2), ParityGate(0.9995, 2e-2, 8), False),
    )
}

# verify's gate flags: (flag, the precisions it sets, Gate field, flag units per Gate unit, metavar)
GATE_FLAGS = (
    ("--fp32-min-agreement", ("fp32",), "min_agreement", 100, "PCT"),
    ("--fp32-max-dp", ("fp32",), "max_abs_dp", 1, "P"),
    ("--fp16-min-agreement", ("fp16",), "min_agreement", 100, "PCT"),
    ("--fp16-max-dp", ("fp16",), "max_abs_dp", 1, "P"),
    ("--quant-min-agreement", ("dynamic", "int8"), "min_agreement", 100, "PCT"),
    ("--quant-max-drop", ("dynamic", "int8"), "max_drop_pt", 1, "PT"),
    ("--gpu-fp16-min-agreement", (GPU_FP16,), "min_agreement", 100, "PCT"),
    ("--gpu-fp16-max-dp", (GPU_FP16,), "max_abs_dp", 1, "P"),
)


@dataclass(frozen=True)
class Runtime:
    """A runtime that runs exported files; its Runner is ``lenet_edge.runtimes.RUNNERS[name]``."""

    name: str
    label: str
    delegates: dict[str, str]  # delegate -> label in tables and charts; the first is what an app gets
    mobile_delegates: tuple[str, ...]  # what the mobile profile measures
    on_device: bool = True  # runs with the runtime-only install (no TensorFlow)
    in_browser: bool = False  # WebAssembly in the served page: 1 thread, timed inside the page

    @property
    def default_delegate(self) -> str:
        return next(iter(self.delegates))


RUNTIMES: dict[str, Runtime] = {
    r.name: r
    for r in (
        Runtime("keras", "Keras", {"tf.function": "Keras tf.function", "predict_on_batch": "Keras predict_on_batch"},
                ("tf.function", "predict_on_batch"), on_device=False),
        Runtime("litert", "LiteRT", {"xnnpack": "LiteRT + XNNPACK", "none": "LiteRT, no delegate"}, ("xnnpack",)),
        # a phone's GPU path (CompiledModel, Accelerator.GPU): verify judges every .tflite on it; never benched,
        # as this machine's Vulkan device is a CPU driver (lavapipe): its times are not a phone GPU's
        Runtime("litert-gpu", "LiteRT GPU", {"fp16": "LiteRT GPU (fp16 arithmetic, the default)",
                                             "fp32": "LiteRT GPU (fp32 enforced)"}, ()),
        Runtime("onnxruntime", "ONNX Runtime", {"cpu": "ONNX Runtime"}, ("cpu",)),
        Runtime("onnxruntime-web", "onnxruntime-web", {"wasm": "onnxruntime-web (WASM, Chromium)"}, ("wasm",),
                in_browser=True),
        Runtime("litert.js", "LiteRT.js", {"wasm": "LiteRT.js (WASM, Chromium)"}, ("wasm",), in_browser=True),
        # the microcontroller runtime, run here on the host: the same C++ reference kernels an MCU build runs
        Runtime("tflm", "TFLite Micro", {"reference": "TFLite Micro (reference kernels)"}, ("reference",)),
        # the int8 file as the bundle's dependency-free C model (<stem>.c), built with this host's cc
        Runtime("c", "C model", {"cc": "C model (plain C99, host cc -O2)"}, ("cc",)),
    )
}  # fmt: skip


def runtime_label(runtime: str, delegate: str) -> str:
    """How tables and charts name a runtime run with a delegate."""
    row = RUNTIMES.get(runtime)
    return row.delegates.get(delegate, row.label) if row else runtime


@dataclass(frozen=True)
class Format:
    name: str
    file: str
    runtime: str  # a key of RUNTIMES
    family: str  # exporter module: lenet_edge.exporters.<family>
    precision: str  # a key of PRECISIONS
    description: str
    options: dict = field(default_factory=dict)  # passed to the family's export()
    browser: str | None = None  # the in-browser runtime that runs it: a key of RUNTIMES
    variant_of: str | None = None  # the same model as that format, with another input for app frameworks
    micro: bool = False  # a microcontroller runs it: verify runs it in TFLite Micro too, the manifest has its arena
    c_array: bool = False  # the bundle holds it as a C source/header pair for an MCU project's build

    @property
    def gates(self) -> Precision:
        return PRECISIONS[self.precision]


KERAS = Format("keras", "lenet5.keras", "keras", "keras", "fp32", "the trained Keras model: the reference")

FORMATS: tuple[Format, ...] = (
    Format("tflite-fp32", "lenet5_fp32.tflite", "litert", "tflite", "fp32",
           "float32 weights and activations", {"quantization": "none"}, "litert.js", micro=True),
    Format("tflite-fp16", "lenet5_fp16.tflite", "litert", "tflite", "fp16",
           "float16 weights, dequantized to float32 at load; float32 activations", {"quantization": "fp16"},
           "litert.js"),
    Format("tflite-dynamic", "lenet5_dynamic.tflite", "litert", "tflite", "dynamic",
           "dynamic-range: int8 weights, float activations and float32 input/output (not full-integer)",
           {"quantization": "dynamic"}, "litert.js"),
    Format("tflite-int8", "lenet5_int8.tflite", "litert", "tflite", "int8",
           "full-integer int8: uint8 raw-pixel input (scale 1, zero point 0), uint8 quantized probabilities",
           {"quantization": "int8"}, "litert.js", micro=True, c_array=True),
    Format("tflite-rgb-int8", "lenet5_rgb_int8.tflite", "litert", "tflite", "int8",
           "MediaPipe-ready image classifier: uint8 RGB image [1, 28, 28, 3] (gray = the channels' mean, inside the "
           "graph), full-integer int8, classification metadata with the labels",
           {"quantization": "int8", "color": "rgb"}, variant_of="tflite-int8"),
    Format("onnx-fp32", "lenet5_fp32.onnx", "onnxruntime", "onnx", "fp32",
           "float32, converted by tf2onnx", {"quantization": "none"}, "onnxruntime-web"),
    Format("onnx-int8", "lenet5_int8.onnx", "onnxruntime", "onnx", "int8",
           "int8 QDQ at opset 19 (ONNX Runtime quantize_static: uint8 activations, int8 per-channel weights, "
           "float Softmax), float32 input/output",
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


def float_twin(fmt: Format) -> Format | None:
    """The fp32 format of the same exporter family (what a quantized model is measured against)."""
    return next((f for f in FORMATS if f.family == fmt.family and f.precision == "fp32"), None)
