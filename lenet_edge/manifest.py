"""The bundle contract: ``manifest.json`` as typed records (Manifest, Artifact, Tensor), one loader that
validates every field it reads (a BundleError names the bad one) and one atomic writer. Every reader of a
manifest goes through ``read_manifest``. NumPy and the standard library only: it runs on devices too."""

from __future__ import annotations

import fnmatch
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import BundleError
from .files import TEMP_MARK, is_regular_file, write_json
from .formats import BY_NAME, KERAS, RUNTIMES, Format

MANIFEST = "manifest.json"
GENERATOR = "lenet-edge"
# the other files of a bundle
LABELS = "labels.txt"
TRAINING_RECORD = "training.json"
TRAINING_CURVES = "training_curves.png"
README = "README.md"
REFERENCE = "keras_test_probabilities.npy"  # Keras's answers on the 10,000 test images: verify's reference
TIMINGS = "timings.json"  # the run's wall-clock facts: the one file two runs of the same seed write differently
REPORT_JSON, REPORT_MD = "report.json", "report.md"
CONFUSION_PNG, TARGETS_PNG, BENCH_JSON = "verify_confusion.png", "targets_cost.png", "bench.json"
# what verify, bench, cost and npu add to a bundle: the bundle's own files, which a later run replaces with it
WRITTEN_LATER = (REPORT_JSON, REPORT_MD, CONFUSION_PNG, TARGETS_PNG, BENCH_JSON, "bench_*.png", "layers_*.csv",
                 "layers_*.png", "npu_*.png", "mcu_*.png", "device_*.png", f".*.{TEMP_MARK}*.tmp")  # fmt: skip
MAX_MANIFEST_BYTES = 16 << 20  # a manifest is a few KB; anything near this is not ours
TENSOR_DTYPES = ("float32", "float16", "uint8", "int8")  # what a model's input or output may be


@dataclass(frozen=True)
class Tensor:
    """One model input or output as its runtime reports it. ``-1`` marks a dynamic dimension;
    ``scale``/``zero_point`` are None for float tensors (real = (q - zero_point) * scale otherwise)."""

    name: str
    dtype: str
    shape: list[int]
    scale: float | None = None
    zero_point: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def quantized(self) -> bool:
        return self.scale is not None

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Real values (raw 0-255 pixels) to this tensor's dtype, quantizing with its own parameters."""
        if self.scale is None or self.zero_point is None:
            return values.astype(self.dtype)
        if (self.scale, self.zero_point) == (1.0, 0) and np.can_cast(values.dtype, self.dtype):
            return values.astype(self.dtype)  # raw pixels into a raw-pixel input: quantizing changes nothing
        info = np.iinfo(self.dtype)
        q = np.round(values.astype(np.float32) / self.scale + self.zero_point)
        return np.clip(q, info.min, info.max).astype(self.dtype)

    def decode(self, values: np.ndarray) -> np.ndarray:
        """This tensor's values as float32, dequantized with its own parameters."""
        if self.scale is None or self.zero_point is None:
            return values.astype(np.float32)
        return ((values.astype(np.float32) - self.zero_point) * self.scale).astype(np.float32)


@dataclass
class FileRef:
    """A file of the bundle that is not a model (the Keras reference answers)."""

    file: str
    bytes: int
    sha256: str
    what: str = ""


@dataclass
class CModelFiles:
    """The file as a dependency-free C model (``<stem>.c`` and ``<stem>.h``: no TFLite Micro, bit for bit its
    answers), generated at export; or, when the generator does not implement one of its ops, why not."""

    files: list[FileRef] = field(default_factory=list)  # the header and the source; none when refused
    scratch_bytes: int = 0  # RAM: the one static buffer every activation lives in
    weight_bytes: int = 0  # flash: the const arrays (weights, biases, requantization multipliers and shifts)
    ops: list[str] = field(default_factory=list)
    refused: str = ""  # why the bundle holds only the C array (an op or option the generator does not implement)


@dataclass
class Micro:
    """The file on a microcontroller (TFLite Micro), measured when it was exported."""

    runtime: str  # the TFLite Micro build that measured it
    arena_bytes: int  # tensor arena the interpreter used after an inference (reference kernels, this host)
    flash_bytes: int  # the model in flash: the file itself, byte for byte, as the C array holds it
    c_files: list[FileRef] = field(default_factory=list)  # the C source and header holding the file
    c_model: CModelFiles | None = None  # the same model as plain C (formats with c_array)


@dataclass
class Artifact:
    """One model file of the bundle, as exported: what it is, its checksum and its tensors."""

    format: str
    file: str
    bytes: int
    sha256: str
    runtime: str
    precision: str
    description: str
    input: Tensor
    output: Tensor
    keep_float: list[str] = field(default_factory=list)  # Keras layers an int8 model leaves in float
    without_keep_float: dict | None = None  # the fully quantized twin's size and accuracy
    micro: Micro | None = None  # formats a microcontroller runs: its arena and flash, measured at export
    remedy: dict | None = None  # a brought model's int8 that missed its gate: the remedies tried, the one shipped

    @property
    def spec(self) -> Format:
        """The formats-table row this artifact claims to be."""
        return BY_NAME[self.format]

    @property
    def on_device(self) -> bool:
        """Runs with the runtime-only install (every export; the Keras model needs TensorFlow)."""
        return RUNTIMES[self.runtime].on_device

    def to_dict(self) -> dict:
        data = {
            k: v for k, v in asdict(self).items() if k not in ("keep_float", "without_keep_float", "micro", "remedy")
        }
        if self.micro is not None:
            data["micro"] = asdict(self.micro)
        if self.keep_float:
            data["keep_float"] = list(self.keep_float)
            data["without_keep_float"] = self.without_keep_float
        if self.remedy is not None:
            data["remedy"] = self.remedy
        return data


@dataclass
class Manifest:
    generator: str
    version: str
    created: str | None  # $SOURCE_DATE_EPOCH when set; no clock time otherwise (timings.json has it)
    app_contract: str
    model: dict
    labels: str
    seed: int
    deterministic: bool
    determinism: str
    keras_test_accuracy: float | None
    reference: FileRef | None
    training: dict
    dataset: dict
    calibration: dict
    tools: dict
    artifacts: list[Artifact]
    failed: list[dict] = field(default_factory=list)
    npu: list[dict] = field(default_factory=list)  # files compiled for phone NPUs (lenet-edge npu); optional key

    def artifact(self, fmt: str) -> Artifact | None:
        return next((a for a in self.artifacts if a.format == fmt), None)

    @property
    def exports(self) -> list[Artifact]:
        """The artifacts a runtime-only install runs (all but the Keras model)."""
        return [a for a in self.artifacts if a.on_device]

    def to_dict(self) -> dict:
        data = asdict(self)
        if self.created is None:
            del data["created"]
        data["reference"] = None if self.reference is None else asdict(self.reference)
        data["artifacts"] = [a.to_dict() for a in self.artifacts]
        if not self.npu:
            del data["npu"]
        return data


def write_manifest(folder: Path, manifest: Manifest) -> None:
    write_json(Path(folder) / MANIFEST, manifest.to_dict())


def read_manifest(bundle: str | Path) -> Manifest:
    """The bundle's manifest, validated; BundleError (exit 2) naming the first bad field."""
    path = Path(bundle) / MANIFEST
    if not path.is_file():
        raise BundleError(f"{bundle}: not a lenet-edge bundle (no {MANIFEST})")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise BundleError(f"{path}: {path.stat().st_size:,} bytes, too large for a manifest")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise BundleError(f"{path}: unreadable manifest (not UTF-8)") from None
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path}: unreadable manifest ({exc})") from None
    except OSError as exc:
        raise BundleError(f"{path}: cannot read ({exc.strerror})") from None
    return parse_manifest(data, str(path))


def is_bundle_file(name: str, manifest: Manifest) -> bool:
    """Whether a bundle holds ``name`` because this tool wrote it there: a file of the manifest, the bundle's
    own files, or what verify, bench and cost add."""
    own = {a.file for a in manifest.artifacts} | {MANIFEST, LABELS, TRAINING_RECORD, TRAINING_CURVES, README, TIMINGS}
    own |= {ref.file for a in manifest.artifacts if a.micro for ref in a.micro.c_files}
    own |= {ref.file for a in manifest.artifacts if a.micro and a.micro.c_model for ref in a.micro.c_model.files}
    if manifest.reference is not None:
        own.add(manifest.reference.file)
    return name in own or written_later(name)


def written_later(name: str) -> bool:
    """Whether ``name`` is a file that verify, bench, cost or npu add to a bundle (``WRITTEN_LATER``)."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in WRITTEN_LATER)


NPU_FOLDER = "npu"  # what `lenet-edge npu` compiles for phone NPUs, listed under the manifest's npu


def is_npu_folder(path: Path, manifest: Manifest) -> bool:
    """Whether ``path`` is the bundle's npu folder holding only the compiled files its manifest lists (and temp
    files of a compile that was stopped)."""
    if path.name != NPU_FOLDER or path.is_symlink() or not path.is_dir():
        return False
    listed = {entry["file"] for entry in manifest.npu}
    return all(
        is_regular_file(item)
        and (f"{NPU_FOLDER}/{item.name}" in listed or fnmatch.fnmatchcase(item.name, f".*.{TEMP_MARK}*.tmp"))
        for item in path.iterdir()
    )


def is_bundle(folder: Path) -> bool:
    """True for a folder whose manifest this tool wrote and can read."""
    try:
        read_manifest(folder)
    except BundleError:
        return False
    return True


class _FieldReader:
    """Typed field access on one JSON object; errors name the field's path in the manifest."""

    def __init__(self, data: Any, where: str, source: str):
        if not isinstance(data, dict):
            raise BundleError(f"{source}: {where.rstrip('.') or 'the manifest'} is {_kind(data)}, not an object")
        self.data, self.where, self.source = data, where, source

    def _fail(self, key: str, expected: str, value: Any) -> BundleError:
        return BundleError(f"{self.source}: {self.where}{key} is {_kind(value)}, expected {expected}")

    def get(self, key: str, kind: type | tuple[type, ...], expected: str, default: Any = ..., none: bool = False):
        if key not in self.data:
            if default is ...:
                raise BundleError(f"{self.source}: {self.where}{key} is missing")
            return default
        value = self.data[key]
        if value is None and none:
            return None
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise self._fail(key, expected, value)
        if not isinstance(value, kind):
            raise self._fail(key, expected, value)
        return value

    def text(self, key: str, default: Any = ...) -> str:
        return self.get(key, str, "text", default)

    def number(self, key: str, default: Any = ..., none: bool = False) -> float | None:
        value = self.get(key, (int, float), "a number", default, none)
        return None if value is None else float(value)

    def integer(self, key: str, default: Any = ...) -> int:
        return self.get(key, int, "a whole number", default)

    def nested(self, key: str, default: Any = ...) -> dict:
        return self.get(key, dict, "an object", default)

    def array(self, key: str, default: Any = ...) -> list:
        return self.get(key, list, "a list", default)

    def file_name(self, key: str) -> str:
        name = self.text(key)
        if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
            raise BundleError(f"{self.source}: {self.where}{key} {name!r} is not a plain file name in the bundle")
        return name


_KINDS = {str: "text", bool: "true/false", int: "a number", float: "a number", list: "a list", dict: "an object"}


def _kind(value: Any) -> str:
    return "null" if value is None else _KINDS.get(type(value), type(value).__name__)


def _tensor(data: Any, where: str, source: str, rank: int) -> Tensor:
    r = _FieldReader(data, where, source)
    shape = r.array("shape")
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= -1 for d in shape) or len(shape) != rank:
        raise BundleError(f"{source}: {where}shape {shape} is not {rank} whole numbers (-1 for a dynamic dimension)")
    dtype = r.text("dtype")
    if dtype not in TENSOR_DTYPES:
        raise BundleError(f"{source}: {where}dtype {dtype!r} is none of {', '.join(TENSOR_DTYPES)}")
    scale = r.number("scale", None, none=True)
    zero_point = r.get("zero_point", int, "a whole number", None, none=True)
    if (scale is None) != (zero_point is None) or (scale is not None and not 0 < scale < float("inf")):
        raise BundleError(f"{source}: {where}scale {scale} and zero_point {zero_point} are not a quantization")
    return Tensor(r.text("name"), dtype, list(shape), scale, zero_point)


def _size(r: _FieldReader) -> int:
    size = r.integer("bytes")
    if size < 0:
        raise BundleError(f"{r.source}: {r.where}bytes is {size}, not a file size")
    return size


def _digest(r: _FieldReader) -> str:
    digest = r.text("sha256")
    if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
        raise BundleError(f"{r.source}: {r.where}sha256 {digest[:80]!r} is not 64 lowercase hex digits")
    return digest


def _file_ref(data: Any, where: str, source: str) -> FileRef:
    r = _FieldReader(data, where, source)
    return FileRef(r.file_name("file"), _size(r), _digest(r), r.text("what", ""))


def _micro(data: Any, where: str, source: str) -> Micro:
    r = _FieldReader(data, where, source)
    sizes = {key: r.integer(key) for key in ("arena_bytes", "flash_bytes")}
    if any(size <= 0 for size in sizes.values()):
        raise BundleError(f"{source}: {where}arena_bytes and flash_bytes must be positive, not {sizes}")
    c_files = [_file_ref(item, f"{where}c_files[{i}].", source) for i, item in enumerate(r.array("c_files", []))]
    c_model = _c_model(r.nested("c_model"), f"{where}c_model.", source) if r.data.get("c_model") is not None else None
    return Micro(r.text("runtime", ""), sizes["arena_bytes"], sizes["flash_bytes"], c_files, c_model)


def _c_model(data: Any, where: str, source: str) -> CModelFiles:
    r = _FieldReader(data, where, source)
    files = [_file_ref(item, f"{where}files[{i}].", source) for i, item in enumerate(r.array("files", []))]
    sizes = {key: r.integer(key) for key in ("scratch_bytes", "weight_bytes")}
    if any(size < 0 for size in sizes.values()):
        raise BundleError(f"{source}: {where}scratch_bytes and weight_bytes must not be negative, not {sizes}")
    refused = r.text("refused", "")
    if bool(files) == bool(refused):
        raise BundleError(f"{source}: {where} must hold either its files or why it was refused")
    ops = [str(op) for op in r.array("ops", [])]
    return CModelFiles(files, sizes["scratch_bytes"], sizes["weight_bytes"], ops, refused)


def parse_artifact(data: Any, source: str) -> Artifact:
    """One artifact entry (``Artifact.to_dict``'s form) read back and checked as the manifest's loader does."""
    return _artifact(data, 0, source)


def _artifact(data: Any, index: int, source: str) -> Artifact:
    where = f"artifacts[{index}]."
    r = _FieldReader(data, where, source)
    fmt = r.text("format")
    spec = BY_NAME.get(fmt)
    if spec is None:
        known = ", ".join(BY_NAME)
        raise BundleError(f"{source}: {where}format {fmt!r} is not a format this lenet-edge knows ({known})")
    artifact = Artifact(
        format=fmt,
        file=r.file_name("file"),
        bytes=_size(r),
        sha256=_digest(r),
        runtime=r.text("runtime"),
        precision=r.text("precision"),
        description=r.text("description", ""),
        input=_tensor(r.nested("input"), f"{where}input.", source, rank=4),
        output=_tensor(r.nested("output"), f"{where}output.", source, rank=2),
        keep_float=[str(layer) for layer in r.array("keep_float", [])],
        without_keep_float=r.nested("without_keep_float", None)
        if r.data.get("without_keep_float") is not None
        else None,
        micro=_micro(r.nested("micro"), f"{where}micro.", source) if r.data.get("micro") is not None else None,
        remedy=r.nested("remedy", None) if r.data.get("remedy") is not None else None,
    )
    claims = (("precision", artifact.precision, spec.precision), ("runtime", artifact.runtime, spec.runtime))
    for key, claimed, table in claims:
        if claimed != table:
            raise BundleError(f"{source}: {where}{key} {claimed!r} is not {fmt}'s ({table!r})")
    return artifact


def parse_manifest(data: Any, source: str = MANIFEST) -> Manifest:
    """A Manifest from parsed JSON, every field checked."""
    r = _FieldReader(data, "", source)
    generator = r.text("generator")
    if generator != GENERATOR:
        raise BundleError(f"{source}: written by {generator!r}, not by {GENERATOR}")
    reference = None
    if r.data.get("reference") is not None:
        reference = _file_ref(r.nested("reference"), "reference.", source)
    artifacts = [_artifact(item, i, source) for i, item in enumerate(r.array("artifacts"))]
    formats = [a.format for a in artifacts]
    if len(set(formats)) != len(formats):
        raise BundleError(f"{source}: artifacts lists a format twice")
    if not all(isinstance(item, dict) for item in r.array("failed", [])):
        raise BundleError(f"{source}: failed holds something other than objects")
    npu = r.array("npu", [])
    if not all(isinstance(item, dict) and isinstance(item.get("file"), str) for item in npu):
        raise BundleError(f"{source}: npu holds something other than compiled files")
    return Manifest(
        generator=generator,
        version=r.text("version", ""),
        created=r.get("created", str, "text", None, none=True),
        app_contract=r.text("app_contract", ""),
        model=r.nested("model", {}),
        labels=r.text("labels", "labels.txt"),
        seed=r.integer("seed", 0),
        deterministic=r.get("deterministic", bool, "true or false", False),
        determinism=r.text("determinism", ""),
        keras_test_accuracy=r.number("keras_test_accuracy", None, none=True),
        reference=reference,
        training=r.nested("training", {}),
        dataset=r.nested("dataset", {}),
        calibration=r.nested("calibration", {}),
        tools=r.nested("tools", {}),
        artifacts=artifacts,
        failed=r.array("failed", []),
        npu=npu,
    )


__all__ = [
    "GENERATOR",
    "KERAS",
    "LABELS",
    "MANIFEST",
    "README",
    "REFERENCE",
    "TIMINGS",
    "TRAINING_CURVES",
    "TRAINING_RECORD",
    "Artifact",
    "FileRef",
    "Manifest",
    "Micro",
    "Tensor",
    "is_bundle",
    "parse_manifest",
    "read_manifest",
    "write_manifest",
]
