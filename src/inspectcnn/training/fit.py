"""What every training phase shares: the compile metrics, the one fit loop, the divergence check, the
history summary."""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path

import keras

from inspectcnn.training.callbacks import NanGuard
from inspectcnn.training.runtime import TrainingError

SUMMARY_KEYS = ("val_loss", "val_accuracy", "val_auc", "val_pr_auc")


def compile_binary(model: keras.Model, optimizer, *, loss="binary_crossentropy", **options) -> None:
    """Binary cross-entropy with accuracy, ROC-AUC and PR-AUC, the metrics every history.csv carries."""
    model.compile(
        optimizer=optimizer,
        loss=loss,
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc"),
                 keras.metrics.AUC(curve="PR", name="pr_auc")],
        **options,
    )


def monitor_mode(monitor: str) -> str:
    return "min" if monitor == "val_loss" else "max"


def abort_if_diverged(nan_guard: NanGuard, work_dir: Path, message: str) -> None:
    """TrainingError(message, with the epoch) if the loss stopped being finite; nothing is kept to resume."""
    if nan_guard.diverged_at is not None:
        shutil.rmtree(work_dir, ignore_errors=True)  # nothing in it is worth resuming from
        raise TrainingError(message.format(epoch=nan_guard.diverged_at))


def fit_phase(model: keras.Model, data, *, validation, epochs: tuple[int, int], callbacks: list,
              nan_guard: NanGuard, work_dir: Path, diverged: str, around=None, **options) -> float:
    """The one training loop of every phase, from scratch or transfer (images, cached features or cached
    views): Keras' ``fit`` from epoch ``epochs[0]`` up to ``epochs[1]`` with the phase's callbacks (inside
    ``around``, e.g. the multi-worker peer check), then the divergence check; the wall time in seconds."""
    started = time.perf_counter()
    with around or contextlib.nullcontext():
        model.fit(data, validation_data=validation, initial_epoch=epochs[0], epochs=epochs[1],
                  callbacks=callbacks, verbose=2, **options)
    wall = time.perf_counter() - started
    abort_if_diverged(nan_guard, work_dir, diverged)
    return wall


def summarize(rows: list[dict], monitor: str) -> tuple[dict, dict]:
    """(best row, summary metrics) of a history: the best epoch by ``monitor`` and its validation values."""
    best = (max if monitor_mode(monitor) == "max" else min)(rows, key=lambda r: float(r[monitor]))
    metrics = {
        "best_epoch": int(best["epoch"]) + 1,
        "epochs_run": len(rows),
        **{f"best_{k}": float(best[k]) for k in SUMMARY_KEYS if k in best},
    }
    return best, metrics
