"""The rows verify and bench measure, as typed records: what they write into report.json and bench.json, and what
the report reads back. The standard library only."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

Record = TypeVar("Record", bound="_Row")


class _Row:
    """to_dict for JSON; from_dict that takes the record's own keys and ignores any other (a report.json written
    by another version)."""

    def to_dict(self) -> dict:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[Record], data: dict[str, Any]) -> Record:
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass
class VerifyRow(_Row):
    """One artifact in one runtime, judged on the test digits against the Keras reference."""

    format: str
    runtime: str = ""
    status: str = "error"  # pass | fail | error
    accuracy: float | None = None
    delta_vs_keras_pt: float | None = None
    agreement: float | None = None
    max_abs_dp: float | None = None
    mean_abs_dp: float | None = None
    reason: str = ""
    precision: str = ""
    size_bytes: int | None = None
    gate: str = ""
    per_class_accuracy: list[float] = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)  # [true][predicted]
    seconds: float | None = None
    partitions: int | None = None  # LiteRT: XNNPACK delegate partitions (1: the whole graph in one)
    left_to_cpu: list[str] = field(default_factory=list)  # LiteRT: ops XNNPACK left to the reference kernels
    float_nodes: list[str] = field(default_factory=list)  # ONNX: nodes left in float inside a quantized model
    identical_share: float | None = None  # the C model: share of digits whose output bytes are TFLite Micro's
    max_steps: int | None = None  # the C model: largest output difference from TFLite Micro, in quantization steps
    delegate: str = ""  # where a runtime runs a file more than one way (LiteRT GPU: fp16 or fp32 arithmetic)
    whole_graph: bool | None = None  # LiteRT GPU: every op of the file on the GPU (left_to_cpu: the ops that are not)
    images: int | None = None  # test digits judged when not all (the GPU rows: a seeded sample; the microcontroller
    # rows in run and export: the first N)


@dataclass
class BenchRow(_Row):
    """One combination (artifact × runtime × delegate × threads) at one batch size, measured in a fresh process.
    Memory is None where the process could not read its own (a browser row, a system without /proc)."""

    format: str
    runtime: str = ""
    delegate: str = ""
    profile: str = ""
    threads: int = 1
    batch: int = 1
    p50_us: float = 0.0
    p90_us: float | None = None
    p99_us: float | None = None
    mean_us: float | None = None
    std_us: float | None = None
    throughput_ips: float = 0.0
    load_ms: float | None = None
    first_ms: float | None = None
    model_mb: float | None = None
    footprint_mb: float | None = None
    footprint_peak_mb: float | None = None
    process_peak_mb: float | None = None
    size_bytes: int = 0

    @property
    def combination(self) -> tuple[str, str, int]:
        """(format, delegate, threads): what a row is, apart from its batch size."""
        return self.format, self.delegate, self.threads


@dataclass(frozen=True)
class StepResult:
    """What a step of a command leaves its caller: the exit status it asks for and the rows it measured (as
    written to report.json, for --json)."""

    status: int
    rows: list[dict]
