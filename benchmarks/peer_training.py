"""The peer recipe: the fastest training of the LeNet tutorials lenet-edge grew from, as such a tutorial writes it.

LeNet on 28×28 with 'valid' 5×5 convolutions (6, 16), average pools, dense 120 and 84, tanh, softmax; pixels
divided by 255 in NumPy; Adam (learning rate 1e-3), batch 128, 10 epochs, no augmentation, no validation split.
Only ``model.fit`` is timed, as lenet-edge's training time is. benchmarks/run.py runs it beside lenet-edge's own
training on the same machine and writes the ratio into RESULTS.md.

    python benchmarks/peer_training.py --data ../shared/data/mnist [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from lenet_edge.data import load_mnist  # the repository's loader: the same IDX files, checked


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.environ.get("LENET_EDGE_DATA"), help="MNIST folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the result here")
    args = parser.parse_args()

    import keras

    mnist = load_mnist(args.data)
    keras.utils.set_random_seed(args.seed)
    x_train, x_test = mnist.x_train[..., None] / 255.0, mnist.x_test[..., None] / 255.0
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(6, 5, activation="tanh"),
            keras.layers.AveragePooling2D(2),
            keras.layers.Conv2D(16, 5, activation="tanh"),
            keras.layers.AveragePooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(120, activation="tanh"),
            keras.layers.Dense(84, activation="tanh"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x_train, mnist.y_train, batch_size=128, epochs=10, verbose=2)
    seconds = time.perf_counter() - start
    accuracy = float(model.evaluate(x_test, mnist.y_test, verbose=0)[1])
    result = {"recipe": "peer", "train_seconds": round(seconds, 1), "test_accuracy": accuracy, "epochs": 10}
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
