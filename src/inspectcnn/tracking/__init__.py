"""Tracking with MLflow, in three modules (the only ones that import it):

- :mod:`~inspectcnn.tracking.lifecycle`: the store (``MLFLOW_TRACKING_URI``, else a SQLite ``mlflow.db`` at the
  project root, as an absolute path, so runs that DVC executes in temporary copies log to the same store), the
  experiment, every stage's standard run (:func:`stage_run`) and its tags, the logged dataset;
- :mod:`~inspectcnn.tracking.runs`: one run (:class:`Run`), or a stand-in that warns when tracking is optional;
- :mod:`~inspectcnn.tracking.registry`: the Model Registry (used by the register stage alone).
"""

from inspectcnn.tracking.lifecycle import (
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    environment_tags,
    flatten,
    git_commit,
    log_dataset,
    mark_stale_runs,
    params_hash,
    prepared_dataset,
    project_root,
    stage_run,
    start_run,
    tracking_uri,
)
from inspectcnn.tracking.runs import Run, TrackingUnavailableError, model_requirements, redact

__all__ = [
    "EXPERIMENT_KIND", "EXPERIMENT_KIND_TAG", "Run", "TrackingUnavailableError", "environment_tags", "flatten",
    "git_commit", "log_dataset", "mark_stale_runs", "model_requirements", "params_hash", "prepared_dataset",
    "project_root", "redact", "stage_run", "start_run", "tracking_uri",
]
