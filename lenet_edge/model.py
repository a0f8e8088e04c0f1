"""LeNet-5 and its two seed variants as Keras functional models (tf2onnx cannot convert Sequential ones).

Every model takes raw pixels [batch, 28, 28, 1] in 0-255 and rescales inside the graph (the app contract).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError

ACTIVATIONS = ("tanh", "relu")
INPUT_SHAPE = (28, 28, 1)
INPUT_NAME, OUTPUT_NAME = "image", "probabilities"  # every export keeps them: tensors, signatures, metadata


@dataclass(frozen=True)
class Architecture:
    name: str
    summary: str
    params: int  # trainable parameters, as model.summary() shows them
    build: Callable  # (keras, activation) -> list of layers after the rescaling


def _classic(keras, act):
    layers = keras.layers
    return [
        layers.ZeroPadding2D(2, name="pad_to_32"),
        layers.Conv2D(6, 5, activation=act, name="C1"),
        layers.AveragePooling2D(2, name="S2"),
        layers.Conv2D(16, 5, activation=act, name="C3"),
        layers.AveragePooling2D(2, name="S4"),
        layers.Conv2D(120, 5, activation=act, name="C5"),
        layers.Flatten(name="flatten"),
        layers.Dense(84, activation=act, name="F6"),
    ]


def _valid_convs(kernel: int, dense: tuple[int, ...]):
    """The seed tutorials' shape: two 'valid' convs (6, 16) on 28x28 with avg-pools, then dense layers."""

    def build(keras, act):
        layers = keras.layers
        return [
            layers.Conv2D(6, kernel, activation=act, name="conv1"),
            layers.AveragePooling2D(2, name="pool1"),
            layers.Conv2D(16, kernel, activation=act, name="conv2"),
            layers.AveragePooling2D(2, name="pool2"),
            layers.Flatten(name="flatten"),
            *(layers.Dense(units, activation=act, name=f"fc{i}") for i, units in enumerate(dense, 1)),
        ]

    return build


ARCHITECTURES = {
    a.name: a
    for a in (
        Architecture(
            "classic",
            "LeNet-5 (LeCun 1998): pad 28->32, C1 6@5x5, S2 avg-pool, C3 16@5x5, S4 avg-pool, C5 120@5x5, F6 84, 10",
            61_706,
            _classic,
        ),
        Architecture("seed-3x3", "3x3 valid convs 6/16 with avg-pools, dense 128, 10", 53_558, _valid_convs(3, (128,))),
        Architecture(
            "seed-valid",
            "5x5 valid convs 6/16 on 28x28 with avg-pools, dense 120/84, 10",
            44_426,
            _valid_convs(5, (120, 84)),
        ),
    )
}


def build_model(arch: str = "classic", activation: str = "tanh"):
    """Build an untrained functional model: raw pixels in, 10 softmax probabilities out."""
    if arch not in ARCHITECTURES:
        raise UsageError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    if activation not in ACTIVATIONS:
        raise UsageError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
    import keras  # heavy import, kept lazy

    image = keras.Input(INPUT_SHAPE, name=INPUT_NAME)
    x = keras.layers.Rescaling(1.0 / 255.0, name="rescale_0_1")(image)
    for layer in ARCHITECTURES[arch].build(keras, activation):
        x = layer(x)
    probabilities = keras.layers.Dense(10, activation="softmax", name=OUTPUT_NAME)(x)
    return keras.Model(image, probabilities, name=f"lenet5_{arch.replace('-', '_')}")


def deployment_graph(model):
    """The graph every export is converted from: the trained model's arithmetic, rebuilt so that the mobile
    accelerators take it whole (XNNPACK in one partition, int8 included; no dynamic-shape op) and that
    does no work it need not do:
    - the input rescaling (x / 255) is folded into the first convolution's weights (padding zeros stay
      zeros), so raw pixels still go in but no multiply runs over the image (15% of ONNX Runtime's time);
    - each average pool becomes a fixed depthwise convolution of the same window and stride with weights
      1/(window area), not trainable: XNNPACK has no int8 AVERAGE_POOL_2D, but takes depthwise convolutions;
    - Flatten becomes a reshape to (-1, features): a constant shape, where Flatten's batch-preserving
      reshape costs SHAPE, STRIDED_SLICE and PACK ops that no delegate takes.
    Layer and model names are kept (reports label tensors by them); weights are copied, and the trainable
    parameters are the same. The Keras model itself is left as trained."""
    import keras
    import numpy as np

    image = keras.Input(model.inputs[0].shape[1:], name=model.inputs[0].name.split(":")[0])
    x, pending_scale = image, None
    for layer in model.layers[1:]:  # every architecture here is a chain
        if isinstance(layer, keras.layers.Rescaling) and not np.any(layer.offset) and pending_scale is None:
            pending_scale = float(layer.scale)  # folded into the next conv or dense layer's weights
            continue
        if isinstance(layer, keras.layers.AveragePooling2D) and layer.padding == "valid":
            window = tuple(layer.pool_size)
            pool = keras.layers.DepthwiseConv2D(window, strides=layer.strides, use_bias=False, name=layer.name)
            pool.build(x.shape)
            pool.set_weights([np.full((*window, x.shape[-1], 1), 1.0 / np.prod(window), np.float32)])
            pool.trainable = False
            layer = pool
        elif isinstance(layer, keras.layers.Flatten):
            x = keras.ops.reshape(x, (-1, int(np.prod(x.shape[1:]))))
            continue
        else:
            weights = layer.get_weights()
            if pending_scale is not None and isinstance(layer, keras.layers.Conv2D | keras.layers.Dense):
                weights[0] = weights[0] * np.float32(pending_scale)  # conv(x * s, W) = conv(x, W * s)
                pending_scale = None
            clone = type(layer).from_config(layer.get_config())
            clone.build(x.shape)
            clone.set_weights(weights)
            layer = clone
        if pending_scale is not None and not isinstance(layer, keras.layers.ZeroPadding2D):
            x = keras.layers.Rescaling(pending_scale, name="rescale")(x)  # nothing to fold it into
            pending_scale = None
        x = layer(x)
    return keras.Model(image, x, name=model.name)


def row_shifted_first_conv(model, keep: tuple[str, ...] = ()):
    """``model`` (a deployment graph) with its first convolution, a k×k one over a single channel, split in
    two for XNNPACK's int8 kernels: a fixed depthwise k×1 convolution with one-hot weights copies the k row
    shifts of the image into k channels, then a 1×k convolution over them does the arithmetic of the original.

    XNNPACK's x86 int8 convolution kernels take the input channels of every kernel tap in blocks of 8 (``c8``):
    a single gray channel fills 1 of 8, so the original C1 does 8x the multiply-adds it needs; over k channels
    it does 8/k. The products and int32 sums are the same, and the copies come out with the image's own
    scale and zero point, so the int8 file answers bit for bit as without the split (a test holds it to
    that). On ONNX Runtime and in float the split only adds work, so only the int8 .tflite files get it.
    Returns ``model`` itself when its first convolution is not of that kind, or is among the layers ``keep``
    (a convolution left in float gains nothing from the split)."""
    import keras
    import numpy as np

    layers = model.operations[1:]  # a chain; operations include the reshape that replaced Flatten
    first = next((i for i, layer in enumerate(layers) if isinstance(layer, keras.layers.Conv2D)), None)
    if first is None:
        return model
    conv, before = layers[first], layers[first - 1] if first else None
    config = conv.get_config()
    kh, kw, channels, filters = conv.kernel.shape
    folds_pad = (
        isinstance(before, keras.layers.ZeroPadding2D)
        and kh == kw
        and before.padding == ((kh // 2, kh // 2), (kw // 2, kw // 2))
        and kh % 2 == 1
    )
    plain = (
        type(conv) is keras.layers.Conv2D
        and channels == 1
        and tuple(config["strides"]) == (1, 1)
        and tuple(config["dilation_rate"]) == (1, 1)
        and config["groups"] == 1
        and config["padding"] == "valid"
        and kh > 1
    )
    if not plain or conv.name in keep:
        return model
    padding = "same" if folds_pad else "valid"  # a k//2 zero border is 'same' padding of both halves
    image = keras.Input(model.inputs[0].shape[1:], batch_size=model.inputs[0].shape[0], name=INPUT_NAME)
    x = image
    for i, layer in enumerate(layers):
        if i == first - 1 and folds_pad:
            continue
        if i != first:
            x = layer(x)
            continue
        rows = keras.layers.DepthwiseConv2D(
            (kh, 1), depth_multiplier=kh, padding=padding, use_bias=False, trainable=False, name=f"{conv.name}_rows"
        )
        rows.build(x.shape)
        one_hot = np.zeros((kh, 1, 1, kh), np.float32)
        one_hot[np.arange(kh), 0, 0, np.arange(kh)] = 1.0  # output channel i is the input shifted by row i
        rows.set_weights([one_hot])
        x = rows(x)
        split = keras.layers.Conv2D(
            filters,
            (1, kw),
            padding=padding,
            activation=config["activation"],
            use_bias=config["use_bias"],
            name=conv.name,
        )
        split.build(x.shape)
        kernel, *bias = conv.get_weights()
        split.set_weights([np.transpose(kernel, (2, 1, 0, 3)), *bias])  # [row, col, 1, f] -> [1, col, row, f]
        x = split(x)
    return keras.Model(image, x, name=model.name)


def count_macs(model) -> int:
    """Multiply-accumulates of one image through the conv and dense layers."""
    import keras

    macs = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            _, oh, ow, _ = layer.output.shape
            macs += oh * ow * cout * kh * kw * cin
        elif isinstance(layer, keras.layers.Dense):
            macs += layer.kernel.shape[0] * layer.kernel.shape[1]
    return int(macs)


def count_params(model) -> int:
    """Trainable parameters (what model.summary() calls 'Trainable params')."""
    return int(sum(int(w.numpy().size) for w in model.trainable_weights))


def model_facts(model, arch: str, activation: str | None) -> dict:
    """The manifest's ``model``: architecture, activation, summary, parameters and MACs per image."""
    known = ARCHITECTURES.get(arch)
    return {
        "architecture": arch,
        "activation": activation,
        "summary": known.summary if known else model.name,
        "params": count_params(model),
        "macs": count_macs(model),
    }


def check_digit_model(model, path: Path) -> None:
    """A model lenet-edge can export takes [batch, 28, 28, 1] raw pixels and gives 10 probabilities."""
    if tuple(model.inputs[0].shape[1:]) != (28, 28, 1) or tuple(model.outputs[0].shape[1:]) != (10,):
        raise UsageError(
            f"{path}: takes {model.inputs[0].shape} and gives {model.outputs[0].shape}, "
            "not [batch, 28, 28, 1] raw pixels to 10 probabilities"
        )
