"""Every .tflite says what it is in standard TFLite model metadata, read back here with MediaPipe's own generated
reader (the writer in lenet_edge is independent of it): name, version, author, licence, the image input with
the raw-pixel normalisation, the probabilities output with the labels packed in the file; signature keys as the
manifest names them; weights 16-byte aligned; and not one output value changed by any of it."""

from __future__ import annotations

import importlib.util
import zipfile

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter
from conftest import manifest_json, require

from lenet_edge.exporters.tflite import make_converter
from lenet_edge.exporters.tflite_metadata import METADATA_NAME
from lenet_edge.formats import FORMATS
from lenet_edge.runtimes import open_runner

TFLITE = [f for f in FORMATS if f.family == "tflite"]


@pytest.fixture(scope="module")
def reader():
    found = importlib.util.find_spec("mediapipe") is not None
    require(found, "mediapipe is not installed: pip install '.[consumers]'")
    from mediapipe.tasks.metadata import metadata_schema_py_generated

    return metadata_schema_py_generated


def _metadata(path, reader):
    blob = path.read_bytes()
    model = schema.Model.GetRootAs(blob, 0)
    entries = {model.Metadata(i).Name().decode(): model.Metadata(i).Buffer() for i in range(model.MetadataLength())}
    data = model.Buffers(entries[METADATA_NAME]).DataAsNumpy().tobytes()
    assert reader.ModelMetadata.ModelMetadataBufferHasIdentifier(data, 0)
    return reader.ModelMetadata.GetRootAs(data, 0), entries, model, blob


@pytest.mark.parametrize("fmt", TFLITE, ids=lambda f: f.name)
def test_every_tflite_carries_classifier_metadata(tiny_bundle, reader, fmt):
    path = tiny_bundle / fmt.file
    metadata, entries, model, blob = _metadata(path, reader)
    assert {"lenet_edge", METADATA_NAME} <= set(entries)
    assert metadata.Name() == b"LeNet-5 MNIST digit classifier" and metadata.MinParserVersion() == b"1.0.0"
    assert metadata.Author() == b"lenet-edge" and metadata.License() == b"Apache-2.0"
    assert metadata.Version() == manifest_json(tiny_bundle)["version"].encode()
    assert fmt.description.encode() in metadata.Description()
    (subgraph,) = [metadata.SubgraphMetadata(i) for i in range(metadata.SubgraphMetadataLength())]
    image, probabilities = subgraph.InputTensorMetadata(0), subgraph.OutputTensorMetadata(0)
    assert subgraph.InputTensorMetadataLength() == subgraph.OutputTensorMetadataLength() == 1

    assert image.Name() == b"image" and b"raw pixel values 0-255" in image.Description()
    assert image.Content().ContentPropertiesType() == reader.ContentProperties.ImageProperties
    properties = reader.ImageProperties()
    properties.Init(image.Content().ContentProperties().Bytes, image.Content().ContentProperties().Pos)
    rgb = fmt.options.get("color") == "rgb"
    assert properties.ColorSpace() == (reader.ColorSpaceType.RGB if rgb else reader.ColorSpaceType.GRAYSCALE)
    unit = image.ProcessUnits(0)
    assert unit.OptionsType() == reader.ProcessUnitOptions.NormalizationOptions
    normalization = reader.NormalizationOptions()
    normalization.Init(unit.Options().Bytes, unit.Options().Pos)
    # (pixel - mean) / std must be the pixel itself: the scaling is inside the graph
    assert normalization.MeanAsNumpy().tolist() == [0.0] and normalization.StdAsNumpy().tolist() == [1.0]
    assert image.Stats().MinAsNumpy().tolist() == [0.0] and image.Stats().MaxAsNumpy().tolist() == [255.0]

    assert probabilities.Name() == b"probabilities"
    assert probabilities.Content().ContentPropertiesType() == reader.ContentProperties.FeatureProperties
    labels = probabilities.AssociatedFiles(0)
    assert labels.Name() == b"labels.txt" and labels.Type() == reader.AssociatedFileType.TENSOR_AXIS_LABELS
    with zipfile.ZipFile(path) as packed:  # where the metadata readers find associated files
        assert packed.namelist() == ["labels.txt"]
        assert packed.read("labels.txt") == (tiny_bundle / "labels.txt").read_bytes()

    interpreter = Interpreter(model_path=str(path))
    signature = interpreter.get_signature_list()
    assert signature == {"serving_default": {"inputs": ["image"], "outputs": ["probabilities"]}}
    # one name everywhere: the tensors, the signature, the metadata, the ONNX files and the manifest
    names = (interpreter.get_input_details()[0]["name"], interpreter.get_output_details()[0]["name"])
    entry = next(a for a in manifest_json(tiny_bundle)["artifacts"] if a["format"] == fmt.name)
    assert names == ("image", "probabilities") == (entry["input"]["name"], entry["output"]["name"])
    start = np.frombuffer(blob, np.uint8).ctypes.data
    for index in range(model.BuffersLength()):  # TFLite Micro's kernels and the C array expect this
        if model.Buffers(index).DataLength():
            assert (model.Buffers(index).DataAsNumpy().ctypes.data - start) % 16 == 0, (fmt.name, index)


@pytest.mark.filterwarnings("ignore:Statistics for quantized inputs:UserWarning")  # the converter, not ours
@pytest.mark.parametrize("fmt", [f for f in TFLITE if f.precision in ("fp32", "int8")], ids=lambda f: f.name)
def test_metadata_changes_no_output_value(tiny_bundle, mnist, fmt, tmp_path):
    """The converter's own file, before any metadata was added, answers exactly as the bundle's file."""
    import keras

    from lenet_edge.data import calibration_images
    from lenet_edge.model import deployment_graph

    manifest = manifest_json(tiny_bundle)
    model = deployment_graph(keras.saving.load_model(tiny_bundle / "lenet5.keras"))
    calibration = calibration_images(mnist, manifest["calibration"]["images"], manifest["seed"])
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(
        make_converter(model, fmt.options["quantization"], calibration, fmt.options.get("color", "gray")).convert()
    )
    digits = mnist.x_test[:1000]
    np.testing.assert_array_equal(
        open_runner("litert", bare).predict(digits, raw=True),
        open_runner("litert", tiny_bundle / fmt.file).predict(digits, raw=True),
    )
    assert len(Interpreter(model_path=str(bare)).get_signature_list()) == 1
