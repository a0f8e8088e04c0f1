"""A client as an app developer would write it: nothing but numpy, ai-edge-litert, onnxruntime and the bundle's
manifest.json. It feeds every exported model raw MNIST test pixels and reports each one's accuracy.

    python examples/app_client.py export --data ../shared/data/mnist

It does not import lenet_edge (or TensorFlow) on purpose: it is the bundle contract, tried from outside.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
from pathlib import Path

import numpy as np


def read_idx(folder: Path, stem: str) -> np.ndarray:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            raw = (folder / name).read_bytes()
            raw = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
            ndim = raw[3]
            shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
            return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)
    sys.exit(f"app_client: {folder} has no {stem}[.gz]")


def tflite_predict(path: Path, spec: dict, pixels: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    batch, channels = spec["input"]["shape"][0], spec["input"]["shape"][-1]
    # the contract: raw pixels, as bytes for a uint8 model (scale 1, zero point 0) and as floats otherwise;
    # an RGB model takes a gray picture as R = G = B
    pixels = np.repeat(pixels, channels, axis=-1).astype(spec["input"]["dtype"])
    if batch == -1:  # the whole set in one call
        interpreter.resize_tensor_input(inp["index"], [len(pixels), 28, 28, channels])
    interpreter.allocate_tensors()
    outputs = []
    for chunk in [pixels] if batch == -1 else np.split(pixels, len(pixels) // batch):
        interpreter.set_tensor(inp["index"], chunk)
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(out["index"]))
    scores = np.concatenate(outputs).astype(np.float32)
    if spec["output"]["scale"] is not None:
        scores = (scores - spec["output"]["zero_point"]) * spec["output"]["scale"]
    return scores


def onnx_predict(path: Path, spec: dict, pixels: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {spec["input"]["name"]: pixels.astype(spec["input"]["dtype"])}
    return session.run([spec["output"]["name"]], feed)[0]


PREDICT = {"litert": tflite_predict, "onnxruntime": onnx_predict}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument(
        "--data",
        type=Path,
        default=os.environ.get("LENET_EDGE_DATA"),
        help="folder of the MNIST IDX files (default $LENET_EDGE_DATA)",
    )
    parser.add_argument("--limit", type=int, default=10_000, help="test images to use (default all 10,000)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    if args.data is None:
        sys.exit("app_client: pass --data (a folder of the MNIST IDX files) or set LENET_EDGE_DATA")

    manifest = json.loads((args.bundle / "manifest.json").read_text())
    pixels = read_idx(args.data, "t10k-images-idx3-ubyte")[: args.limit].reshape(-1, 28, 28, 1)
    labels = read_idx(args.data, "t10k-labels-idx1-ubyte")[: args.limit]

    results = []
    for spec in manifest["artifacts"]:
        if spec["runtime"] not in PREDICT:
            continue
        scores = PREDICT[spec["runtime"]](args.bundle / spec["file"], spec, pixels)
        accuracy = float(np.mean(scores.argmax(1) == labels))
        results.append({"format": spec["format"], "file": spec["file"], "images": len(labels), "accuracy": accuracy})
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"{'format':<16}{'file':<24}accuracy on {len(labels)} test images")
        for row in results:
            print(f"{row['format']:<16}{row['file']:<24}{row['accuracy']:.2%}")
        print(f"(Keras reference in the manifest: {manifest['keras_test_accuracy']:.2%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
