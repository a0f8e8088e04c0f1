"""Seeded, deterministic training of a LeNet-5 variant on MNIST, keeping the best weights on validation."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .data import Mnist, split_validation
from .errors import UsageError
from .model import build_model
from .normalization import fold, normalized
from .runtimes.keras import KerasRunner
from .tensorflow_loader import import_tensorflow


@dataclass
class TrainConfig:
    arch: str = "classic"
    activation: str = "tanh"
    epochs: int = 3
    batch_size: int = 256
    learning_rate: float = 1.5e-2  # Adam's peak: a linear warm-up to it, then cosine-decayed to zero over the run
    warmup: float = 0.1  # the share of the steps that warms the learning rate up from a tenth of its peak
    batch_norm: bool = True  # trained with batch normalization, folded into the weights after (normalization.py)
    validation: int = 5000  # images carved out of the 60,000 training images; the test set never selects
    augment: bool = True  # small random shifts (±2 px), rotations (±10°) and zooms (±10%), one warp per image
    seed: int = 0
    limit: int | None = None  # train on this many training images only (quick runs)

    def check(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise UsageError("epochs, batch size and learning rate must be positive")
        if not 0 <= self.warmup < 1:
            raise UsageError(f"the warm-up is a share of the steps, from 0 to below 1, not {self.warmup}")
        if self.validation < 1:
            raise UsageError("the validation split needs at least one image")
        if self.limit is not None and self.limit <= self.validation:
            raise UsageError(
                f"--limit {self.limit} leaves nothing to train on after {self.validation} validation images"
            )


@dataclass
class TrainResult:
    model: object  # keras.Model
    config: TrainConfig
    history: dict[str, list[float]]
    best_epoch: int  # 1-based
    val_accuracy: float
    test_accuracy: float
    seconds: float
    epoch_seconds: list[float] = field(default_factory=list)  # wall clock, kept out of the deterministic record

    def describe(self) -> dict:
        """The training record kept beside the model (training.json) and in the manifest."""
        return {
            "config": asdict(self.config),
            "deterministic": True,
            "determinism": "the same seed, data and library versions on the same machine give the same weights and "
            "a bit-identical bundle (every file but timings.json): TF op determinism is on; the .keras and ONNX "
            "files are written without time stamps or generated names; initialisation, shuffling, augmentation, "
            "the validation split and the "
            "calibration pick are seeded; the batch normalization of training is folded into the weights the same "
            "way every time",
            "best_epoch": self.best_epoch,
            "val_accuracy": round(self.val_accuracy, 6),
            "test_accuracy": round(self.test_accuracy, 6),
            "history": self.history,
        }


def _best_weights_callback(keras):
    class KeepBestWeights(keras.callbacks.Callback):
        """Restore, at the end, the weights of the epoch with the best validation accuracy (ties: lower loss)."""

        def on_train_begin(self, logs=None):
            self.best, self.best_epoch, self.weights = (-1.0, float("inf")), 0, None

        def on_epoch_end(self, epoch, logs=None):
            score = (logs["val_accuracy"], -logs["val_loss"])
            if score > self.best:
                self.best, self.best_epoch, self.weights = score, epoch + 1, self.model.get_weights()

        def on_train_end(self, logs=None):
            if self.weights is not None:
                self.model.set_weights(self.weights)

    return KeepBestWeights()


AUGMENT = {"degrees": 10.0, "zoom": 0.1, "shift_px": 2.0}  # the largest rotation, relative zoom and shift


def _warp(tf, images, key):
    """Each image of a batch rotated, zoomed and shifted at random (uniform within AUGMENT) about its centre, in
    one bilinear warp: the three transforms composed into one matrix per image, not three passes over the batch
    (three Keras augmentation layers cost 3 s an epoch on 2 cores, as much as the training step). ``key`` seeds
    the batch's draw: the same seed gives the same warps."""
    count = tf.shape(images)[0]
    draw = tf.random.stateless_uniform([count, 4], seed=key, minval=-1.0, maxval=1.0)
    angle = draw[:, 0] * (AUGMENT["degrees"] * math.pi / 180)
    zoom = 1 + AUGMENT["zoom"] * draw[:, 1]
    shift_x, shift_y = AUGMENT["shift_px"] * draw[:, 2], AUGMENT["shift_px"] * draw[:, 3]
    centre = (images.shape[2] - 1) / 2
    # output pixel (x, y) reads input (a0 x + a1 y + a2, a3 x + a4 y + a5): the inverse of rotate-zoom-shift
    a0, a1 = tf.cos(angle) / zoom, tf.sin(angle) / zoom
    a3, a4 = -a1, a0
    a2 = centre - (a0 + a1) * centre - shift_x
    a5 = centre - (a3 + a4) * centre - shift_y
    zero = tf.zeros_like(a0)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=tf.stack([a0, a1, a2, a3, a4, a5, zero, zero], axis=1),
        output_shape=tf.shape(images)[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )


def _dataset(tf, x: np.ndarray, y: np.ndarray, config: TrainConfig, training: bool):
    """A tf.data pipeline of raw-pixel float32 batches; shuffled and optionally augmented for training."""
    ds = tf.data.Dataset.from_tensor_slices((x[..., None], y))
    if training:
        ds = ds.shuffle(len(x), seed=config.seed, reshuffle_each_iteration=True)
    ds = ds.batch(config.batch_size).map(lambda img, label: (tf.cast(img, tf.float32), label))
    if training and config.augment:  # a fresh, seeded key per batch and per epoch
        keys = tf.data.Dataset.random(seed=config.seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, keys)).map(lambda batch, key: (_warp(tf, batch[0], key), batch[1]))
    return ds.prefetch(tf.data.AUTOTUNE)


def _epoch_clock(keras):
    class EpochClock(keras.callbacks.Callback):
        """Wall-clock seconds of each epoch, validation included."""

        def on_train_begin(self, logs=None):
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(round(time.perf_counter() - self.started, 2))

    return EpochClock()


def _schedule(keras, config: TrainConfig, steps: int):
    """Warm up linearly from a tenth of the peak for ``config.warmup`` of the steps, then cosine decay to zero."""
    warm = int(config.warmup * steps)
    if not warm:
        return keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=steps)
    return keras.optimizers.schedules.CosineDecay(
        config.learning_rate / 10, decay_steps=steps - warm, warmup_target=config.learning_rate, warmup_steps=warm
    )


def train(mnist: Mnist, config: TrainConfig, verbose: int | None = None) -> TrainResult:
    """Train one model; return it with its history and its accuracy on the untouched test set."""
    config.check()
    tf = import_tensorflow()
    import keras

    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()

    x, y = mnist.x_train, mnist.y_train
    if config.limit:
        x, y = x[: config.limit], y[: config.limit]
    x_train, y_train, x_val, y_val = split_validation(x, y, config.validation, config.seed)

    model = build_model(config.arch, config.activation)
    steps_per_epoch = -(-len(x_train) // config.batch_size)
    trained = normalized(keras, model, config.batch_size, steps_per_epoch) if config.batch_norm else model
    steps = config.epochs * steps_per_epoch
    trained.compile(
        optimizer=keras.optimizers.Adam(_schedule(keras, config, steps)),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    keep_best, clock = _best_weights_callback(keras), _epoch_clock(keras)
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    start = time.perf_counter()
    fit = trained.fit(
        _dataset(tf, x_train, y_train, config, training=True),
        validation_data=_dataset(tf, x_val, y_val, config, training=False),
        epochs=config.epochs,
        callbacks=[keep_best, clock],
        shuffle=False,  # the pipeline shuffles, seeded
        verbose=verbose,
    )
    if trained is not model:
        fold(keras, model, trained)
    seconds = time.perf_counter() - start
    test_probs = KerasRunner(model=model).predict(mnist.x_test)
    return TrainResult(
        model=model,
        config=config,
        history={k: [float(v) for v in values] for k, values in fit.history.items()},
        best_epoch=keep_best.best_epoch,
        val_accuracy=float(keep_best.best[0]),
        test_accuracy=float(np.mean(test_probs.argmax(1) == mnist.y_test)),
        seconds=seconds,
        epoch_seconds=clock.seconds,
    )
