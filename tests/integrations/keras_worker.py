"""A Keras 3 fit on scikit-learn's digits with metricreg's callback, for test_keras.py.

Keras picks its backend when first imported, so each backend runs in its own process:
``KERAS_BACKEND=torch|jax python keras_worker.py OUT_DIR``. Keras's own per-batch logs (the
running mean ``logs["loss"]``) and epoch logs are written to ``OUT_DIR/keras.json`` for the
test to compare against; a second fit, whose Monitor asks to stop at step 12, records where
Keras stopped in ``OUT_DIR/stop.json``.
"""

from __future__ import annotations

import json
import os
import sys

os.environ["METRICREG_DISABLE_PLUGIN_AUTOLOAD"] = "1"

import keras
import numpy as np
from sklearn.datasets import load_digits

from metricreg.integrations.keras import HealthCallback


class Record(keras.callbacks.Callback):
    """What Keras itself reports: logs per batch and per epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[dict] = []
        self.epochs: list[dict] = []

    def on_train_batch_end(self, batch, logs=None):
        self.batches.append({"batch": batch, "loss": float(logs["loss"])})

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append({k: float(v) for k, v in logs.items()})


def main(out: str) -> None:
    fit(out, None, "keras.json")
    fit(out, 12, "stop.json")


def fit(out: str, stop_at: int | None, record_name: str) -> None:
    keras.utils.set_random_seed(0)
    data = load_digits()
    x = (data.data / 16.0).astype("float32")
    y = data.target.astype("int64")
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10)])
    schedule = keras.optimizers.schedules.ExponentialDecay(0.05, decay_steps=1, decay_rate=0.99)
    model.compile(
        optimizer=keras.optimizers.SGD(schedule, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    run = "mr" if stop_at is None else "mr_stop"
    health = HealthCallback(os.path.join(out, run), config={"loss": {"every": 1}})
    callbacks = [health, Record()]
    if stop_at is not None:

        class Stop(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if health.step == stop_at:  # runs before HealthCallback sees this batch
                    health.mon.request_stop("test")

        callbacks.insert(0, Stop())
    history = model.fit(
        x[:1500],
        y[:1500],
        batch_size=32,
        epochs=3,
        validation_data=(x[1500:], y[1500:]),
        callbacks=callbacks,
        verbose=0,
        shuffle=False,
    )
    record = callbacks[-1]
    with open(os.path.join(out, record_name), "w") as f:
        json.dump(
            {
                "batches": record.batches,
                "epochs": record.epochs,
                "iterations": int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
                "epochs_run": len(history.epoch),
            },
            f,
        )


if __name__ == "__main__":
    main(sys.argv[1])
