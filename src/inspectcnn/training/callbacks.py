"""The Keras callbacks of every training phase, and the list both from-scratch training and transfer use."""

from __future__ import annotations

import math
import time
from pathlib import Path

import keras
import numpy as np

from inspectcnn import interrupts


class ThroughputMeter(keras.callbacks.Callback):
    """Training images per second of each epoch, excluding validation."""

    def __init__(self, images_per_epoch: int):
        super().__init__()
        self.images_per_epoch = images_per_epoch
        self.rates: list[float] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_test_begin(self, logs=None):
        if self._start:
            self.rates.append(self.images_per_epoch / (time.perf_counter() - self._start))
            self._start = 0.0

    @property
    def images_per_s(self) -> float:
        """Median over epochs, leaving out the first (graph tracing, cache filling) when possible."""
        rates = self.rates[1:] or self.rates
        return float(np.median(rates)) if rates else 0.0


class SteadyTimer(keras.callbacks.Callback):
    """Seconds from the start of the second epoch to the end of training, and the first epoch (tracing,
    compilation, cache filling) on its own. Placed last, it includes every other callback's end-of-epoch
    work: what the benchmarks compare between the project's training path and a bare ``fit``."""

    def __init__(self):
        super().__init__()
        self.start = self.first = self.steady = 0.0

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            self.first = time.perf_counter() - self.start
            self.start = time.perf_counter()

    def on_train_end(self, logs=None):
        self.steady = time.perf_counter() - self.start


class NanGuard(keras.callbacks.TerminateOnNaN):
    """Keras' TerminateOnNaN, remembering the epoch at which the loss stopped being finite.

    Safe to run on Keras' callback thread (``async_safe``): it only reads the batch's loss and sets
    ``stop_training``, so it does not force a device-to-host sync after every step.
    """

    async_safe = True
    diverged_at: int | None = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_batch_end(self, batch, logs=None):
        super().on_batch_end(batch, logs)
        if self.model.stop_training and self.diverged_at is None:
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                self.diverged_at = self._epoch + 1


class StopOnInterrupt(keras.callbacks.Callback):
    """Raises the KeyboardInterrupt of a Ctrl-C at the epoch end if Python swallowed the first one
    (see :mod:`inspectcnn.interrupts`); does nothing per batch, so it is ``async_safe``."""

    async_safe = True

    def on_epoch_end(self, epoch, logs=None):
        interrupts.check()


class LogLearningRate(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


def allow_async_dispatch(callbacks: list[keras.callbacks.Callback]) -> None:
    """Let Keras run per-batch callback hooks off the training thread when they do nothing per batch.

    BackupAndRestore and ModelCheckpoint define batch hooks (for batch-frequency saving) that are
    no-ops when they save per epoch; but any batch hook makes Keras pull every step's logs to the
    host synchronously, which costs small models up to a fifth of their speed on a CPU.

    TensorFlow only: under JAX, the same flags changed what was trained and saved (a LeNet epoch
    with class weights ended on other weights than the synchronous run, on one device and on two;
    tests/backends/test_data_parallel.py caught it), so JAX and PyTorch keep Keras' synchronous hooks.
    """
    if keras.backend.backend() != "tensorflow":
        return
    for callback in callbacks:
        if isinstance(callback, (keras.callbacks.BackupAndRestore, keras.callbacks.ModelCheckpoint)) \
                and callback.save_freq == "epoch":
            callback.async_safe = True


def phase_callbacks(backup: Path, history: Path, meter: ThroughputMeter, nan_guard: NanGuard, *,
                    checkpoint: keras.callbacks.Callback | None = None, log_learning_rate: bool = False,
                    extra: list | tuple = (), run=None, averaged: bool = False) -> list[keras.callbacks.Callback]:
    """The callbacks of one resumable training phase, in the order they must run at an epoch end.

    BackupAndRestore (resume), the learning rate into the logs, the Ctrl-C check, the NaN guard, the
    moving average of the weights swapped in (``averaged``: an optimizer with ``use_ema``; validation and
    what follows see the averaged weights, training resumes on its own), the best-model checkpoint,
    history.csv, the throughput meter, then ``extra`` (early stopping, LR schedules) and the MLflow
    per-epoch metrics of ``run``.
    """
    found = [keras.callbacks.BackupAndRestore(str(backup), delete_checkpoint=False)]
    if log_learning_rate:
        found.append(LogLearningRate())
    found += [StopOnInterrupt(), nan_guard]
    if averaged:
        found.append(keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    if checkpoint is not None:
        found.append(checkpoint)
    found += [keras.callbacks.CSVLogger(str(history), append=True), meter, *extra]
    if run is not None and (callback := run.keras_callback()) is not None:
        found.append(callback)
    allow_async_dispatch(found)
    return found
