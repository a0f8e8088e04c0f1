"""TFLite model metadata: the ``TFLITE_METADATA`` entry that MediaPipe Tasks, Android Studio's model binding and
the TFLite Support library read (name, version, author, licence, what each tensor means, the input's
normalisation, the labels as an associated file), and the labels file packed into the model as they expect it.

Written here with ``flatbuffers`` alone, from the field slots of the metadata schema (``metadata_schema.fbs``,
file identifier ``M001``): the official writer ships only in a mediapipe release (0.10.21) that pins numpy<2 and
protobuf<5, which cannot share an environment with TensorFlow 2.21. The tests read every field back with
MediaPipe's own generated reader, and MediaPipe's ImageClassifier reads the labels from the file."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

import flatbuffers
import numpy as np

METADATA_NAME = "TFLITE_METADATA"  # the model's metadata entry the readers look for
METADATA_IDENTIFIER = b"M001"
MIN_PARSER_VERSION = "1.0.0"  # every field written here is in the schema's first version
BUFFER_ALIGNMENT = 16  # TFLite Micro and the C array expect every weight buffer on a 16-byte boundary
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip holds: the packed labels carry no clock time

# enums of the schema
_FEATURE_PROPERTIES, _IMAGE_PROPERTIES = 1, 2  # ContentProperties
_RGB, _GRAYSCALE = 1, 2  # ColorSpaceType
_NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions
_TENSOR_AXIS_LABELS = 2  # AssociatedFileType


@dataclass(frozen=True)
class ClassifierMetadata:
    """What an image classifier's metadata says: the model, its image input and its probabilities output."""

    name: str
    description: str
    version: str
    author: str
    license: str
    input_name: str
    input_description: str
    color: str  # "rgb" or "gray"
    output_name: str
    output_description: str
    labels_file: str


def _floats(builder: flatbuffers.Builder, values: list[float]) -> int:
    builder.StartVector(4, len(values), 4)
    for value in reversed(values):
        builder.PrependFloat32(value)
    return builder.EndVector()


def _offsets(builder: flatbuffers.Builder, offsets: list[int]) -> int:
    builder.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()


def _table(builder: flatbuffers.Builder, fields: int, offsets: dict[int, int], bytes_: dict[int, int] = {}) -> int:  # noqa: B006 (read only)
    """A table of ``fields`` slots: ``offsets`` (slot -> an object already built), ``bytes_`` (slot -> a byte enum)."""
    builder.StartObject(fields)
    for slot, offset in offsets.items():
        builder.PrependUOffsetTRelativeSlot(slot, offset, 0)
    for slot, value in bytes_.items():
        builder.PrependUint8Slot(slot, value, 0)
    return builder.EndObject()


def metadata_flatbuffer(about: ClassifierMetadata) -> bytes:
    """The ModelMetadata flatbuffer: one subgraph, one image input with normalisation mean 0 and std 1 (raw
    pixels go in unchanged: the scaling is inside the graph) and stats 0-255, one output whose class axis is
    labelled by ``labels_file``."""
    b = flatbuffers.Builder(1024)
    text = {key: b.CreateString(value) for key, value in vars(about).items() if isinstance(value, str)}
    # the input: ImageProperties(color_space), NormalizationOptions(mean, std), Stats(max, min)
    image_properties = _table(b, 2, {}, {0: _RGB if about.color == "rgb" else _GRAYSCALE})
    input_content = _table(b, 3, {1: image_properties}, {0: _IMAGE_PROPERTIES})
    normalization = _table(b, 2, {0: _floats(b, [0.0]), 1: _floats(b, [1.0])})
    process_unit = _table(b, 2, {1: normalization}, {0: _NORMALIZATION_OPTIONS})
    input_stats = _table(b, 2, {0: _floats(b, [255.0]), 1: _floats(b, [0.0])})
    image = _table(
        b,
        7,
        {
            0: text["input_name"],
            1: text["input_description"],
            3: input_content,
            4: _offsets(b, [process_unit]),
            5: input_stats,
        },
    )
    # the output: FeatureProperties, the labels file on its class axis, Stats 0-1
    labels_description = b.CreateString("the digit each output position stands for, one per line")
    labels = _table(b, 5, {0: text["labels_file"], 1: labels_description}, {2: _TENSOR_AXIS_LABELS})
    output_content = _table(b, 3, {1: _table(b, 0, {})}, {0: _FEATURE_PROPERTIES})
    output_stats = _table(b, 2, {0: _floats(b, [1.0]), 1: _floats(b, [0.0])})
    probabilities = _table(
        b,
        7,
        {
            0: text["output_name"],
            1: text["output_description"],
            3: output_content,
            5: output_stats,
            6: _offsets(b, [labels]),
        },
    )
    subgraph = _table(b, 10, {2: _offsets(b, [image]), 3: _offsets(b, [probabilities])})
    parser_version = b.CreateString(MIN_PARSER_VERSION)
    model = _table(
        b,
        8,
        {
            0: text["name"],
            1: text["description"],
            2: text["version"],
            3: _offsets(b, [subgraph]),
            4: text["author"],
            5: text["license"],
            7: parser_version,
        },
    )
    b.Finish(model, file_identifier=METADATA_IDENTIFIER)
    return bytes(b.Output())


def _aligned_buffer_class(schema):
    class AlignedBuffer(schema.BufferT):
        """A model buffer whose bytes start on a 16-byte boundary (the schema's force_align, which the
        Python flatbuffers packer ignores)."""

        def Pack(self, builder):  # the generated code's name
            data = None
            if self.data is not None and len(self.data):
                raw = bytes(np.asarray(self.data, np.uint8))
                builder.StartVector(1, len(raw), BUFFER_ALIGNMENT)
                builder.head -= len(raw)
                builder.Bytes[builder.head : builder.head + len(raw)] = raw
                data = builder.EndVector()
            schema.BufferStart(builder)
            if data is not None:
                schema.BufferAddData(builder, data)
            schema.BufferAddOffset(builder, self.offset)
            schema.BufferAddSize(builder, self.size)
            return schema.BufferEnd(builder)

    return AlignedBuffer


def with_metadata(
    flatbuffer: bytes,
    entries: dict[str, bytes],
    files: dict[str, bytes] | None = None,
    io_names: tuple[str, str] | None = None,
) -> bytes:
    """The model with metadata ``entries`` (name -> bytes, each in a buffer of its own; an entry of the same name
    is replaced), every buffer 16-byte aligned, ``files`` packed after the flatbuffer as an uncompressed zip
    (where the metadata readers find associated files) and, with ``io_names``, its input and output tensors
    named so (the converter's are 'serving_default_image:0' and 'StatefulPartitionedCall_1:0'). The graph, its
    weights and its signature (which points at tensors by index) stay as they are."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(flatbuffer), 0)
    if io_names is not None:
        graph = model.subgraphs[0]
        (graph.tensors[graph.inputs[0]].name, graph.tensors[graph.outputs[0]].name) = io_names
    aligned = _aligned_buffer_class(schema)
    buffers = []
    for buffer in model.buffers:
        copy = aligned()
        copy.data, copy.offset, copy.size = buffer.data, buffer.offset, buffer.size
        buffers.append(copy)
    model.buffers = buffers
    kept = [entry for entry in (model.metadata or []) if entry.name.decode() not in entries]
    for name, payload in entries.items():
        buffer = aligned()
        buffer.data = np.frombuffer(payload, np.uint8)
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name, entry.buffer = name, len(model.buffers) - 1
        kept.append(entry)
    model.metadata = kept
    builder = flatbuffers.Builder(len(flatbuffer) + sum(map(len, entries.values())) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    packed = io.BytesIO(bytes(builder.Output()))
    if files:
        with zipfile.ZipFile(packed, "a", zipfile.ZIP_STORED) as archive:
            for name, data in files.items():
                member = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
                member.external_attr = 0o644 << 16
                archive.writestr(member, data)
    return packed.getvalue()
