"""Training, shared by from-scratch training and transfer learning.

- :mod:`~inspectcnn.training.runtime`: seeds, op determinism, dtype policy, distribution strategy
  (the only module that touches devices);
- :mod:`~inspectcnn.training.callbacks`: the Keras callbacks of a resumable phase, in one list;
- :mod:`~inspectcnn.training.checkpoints`: the work folder, resuming, publishing the outputs;
- :mod:`~inspectcnn.training.fit`: compile metrics, the divergence check, the history summary;
- :mod:`~inspectcnn.training.scratch`: one architecture of the zoo trained from scratch.
"""

from inspectcnn.training.callbacks import (
    LogLearningRate,
    NanGuard,
    StopOnInterrupt,
    ThroughputMeter,
    allow_async_dispatch,
    phase_callbacks,
)
from inspectcnn.training.checkpoints import CHECKPOINTS, TrainResult, best_so_far, publish, read_history, work_dir
from inspectcnn.training.fit import abort_if_diverged, compile_binary, fit_phase, monitor_mode, summarize
from inspectcnn.training.runtime import Runtime, TrainingError, configure_precision, make_strategy, setup
from inspectcnn.training.scratch import check_before_training, class_weights, make_optimizer, train, train_labels

__all__ = [
    "CHECKPOINTS", "LogLearningRate", "NanGuard", "Runtime", "StopOnInterrupt", "ThroughputMeter", "TrainResult",
    "TrainingError", "abort_if_diverged", "allow_async_dispatch", "best_so_far", "check_before_training",
    "class_weights", "compile_binary", "configure_precision", "fit_phase", "make_optimizer", "make_strategy",
    "monitor_mode", "phase_callbacks", "publish", "read_history", "setup", "summarize", "train", "train_labels",
    "work_dir",
]
