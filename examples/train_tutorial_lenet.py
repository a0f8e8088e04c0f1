"""Train a LeNet-5 the way tutorials write it, then hand the saved model to lenet-edge as it is.

    python examples/train_tutorial_lenet.py --data ../shared/data/mnist --out tutorial_export

The model is a keras.Sequential LeNet-5 ('same'-padded C1, average pools, C5 a convolution), trained on pixels
divided by 255 outside the model, as nearly every tutorial does, and saved as my_lenet.keras. Then
`lenet-edge export` finds that preprocessing by scoring the test digits, folds it into every exported graph
(the app feeds raw 0-255 pixels) and verifies each export against the model's own answers:

    lenet-edge export my_lenet.keras --out tutorial_export

Only the data loading comes from lenet_edge (it finds MNIST in --data, $LENET_EDGE_DATA or the Keras cache);
the rest is the tutorial's own code.
"""

from __future__ import annotations

import argparse
import sys


def tutorial_lenet(keras):
    """LeNet-5 as the tutorials write it: Sequential, 28x28x1 input, tanh, average pooling, softmax."""
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(6, 5, padding="same", activation="tanh"),
            layers.AveragePooling2D(2),
            layers.Conv2D(16, 5, activation="tanh"),
            layers.AveragePooling2D(2),
            layers.Conv2D(120, 5, activation="tanh"),
            layers.Flatten(),
            layers.Dense(84, activation="tanh"),
            layers.Dense(10, activation="softmax"),
        ],
        name="my_lenet",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description="Train a tutorial-style LeNet-5, then export it with lenet-edge.")
    parser.add_argument("--data", help="MNIST folder (default: $LENET_EDGE_DATA, then the Keras cache)")
    parser.add_argument("--out", default="tutorial_export", help="bundle folder (default %(default)s)")
    parser.add_argument("--model", default="my_lenet.keras", help="where to save the model (default %(default)s)")
    parser.add_argument("--epochs", type=int, default=3, help="default %(default)s")
    parser.add_argument("--no-bench", dest="bench", action="store_false", help="skip the bench after verify")
    args = parser.parse_args()

    from lenet_edge.cli import main as lenet_edge
    from lenet_edge.data import load_mnist

    mnist = load_mnist(args.data)
    import keras

    # --- the tutorial ---------------------------------------------------------------------------------------
    x_train = mnist.x_train.reshape(-1, 28, 28, 1).astype("float32") / 255.0  # preprocessing outside the model
    x_test = mnist.x_test.reshape(-1, 28, 28, 1).astype("float32") / 255.0
    keras.utils.set_random_seed(0)
    model = tutorial_lenet(keras)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, mnist.y_train, batch_size=128, epochs=args.epochs, validation_split=0.1, verbose=2)
    _, accuracy = model.evaluate(x_test, mnist.y_test, verbose=0)
    print(f"test accuracy, with the tutorial's own preprocessing: {accuracy:.2%}")
    model.save(args.model)

    # --- the model as it is, into a bundle ------------------------------------------------------------------
    command = ["export", args.model, "--out", args.out] + (["--data", args.data] if args.data else [])
    command += [] if args.bench else ["--no-bench"]
    print(f"\nlenet-edge {' '.join(command)}")
    return lenet_edge(command)


if __name__ == "__main__":
    sys.exit(main())
