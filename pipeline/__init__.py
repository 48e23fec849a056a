"""The DVC stage entry points: dvc.yaml runs ``python -m pipeline.<stage> ...`` for each of its stages.

Every module here has the same shape: an argument parser for the command line dvc.yaml gives it (the paths
default to :mod:`inspectcnn.artifacts`), ``stage_runner.run_stage`` that parses params.yaml once and turns a
:class:`inspectcnn.errors.UserError` into one line and exit code 2, one call to the library function
``run`` of the stage's module, and a one-line summary on stdout. Only this layer (and
:mod:`inspectcnn.tracking`) knows the folder layout, reads params.yaml or opens MLflow runs.

| stage | module | the call |
|---|---|---|
| prepare | pipeline.prepare | inspectcnn.data.prepare.run |
| health | pipeline.health | inspectcnn.health.run |
| train@<entry> | pipeline.train | inspectcnn.training.tracked.run |
| transfer@<entry> | pipeline.transfer | inspectcnn.transfer.phases.run |
| evaluate@<entry>, evaluate_transfer@, evaluate_ensemble | pipeline.evaluate | inspectcnn.evaluate.run |
| ensemble | pipeline.ensemble | inspectcnn.ensemble.run |
| champion | pipeline.champion | inspectcnn.champion.run |
| export | pipeline.export | inspectcnn.export.run |
| report | pipeline.report | inspectcnn.report.run |
| register | pipeline.register | inspectcnn.registration.run |
"""

from inspectcnn import backend as _backend

# params.yaml's `backend:` must be in KERAS_BACKEND before the stage module's own imports load Keras.
_backend.apply_from_params()
