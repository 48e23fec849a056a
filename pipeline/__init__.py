"""The DVC stage entry points: dvc.yaml runs ``python -m pipeline.<stage> ...`` for each of its stages.

Every module here has the same shape: an argument parser for the command line dvc.yaml gives it, one call
into the ``inspectcnn`` library that does the stage's work (``cli_support.run_stage`` turns a
:class:`inspectcnn.errors.UserError` into one line and exit code 2), and a one-line summary on stdout.

| stage | module | the call |
|---|---|---|
| prepare | pipeline.prepare | inspectcnn.data.prepare.prepare |
| health | pipeline.health | inspectcnn.health.health_stage |
| train@<entry> | pipeline.train | inspectcnn.training.tracked.train_entry |
| transfer@<entry> | pipeline.transfer | inspectcnn.transfer.transfer_entry |
| evaluate@<entry>, evaluate_transfer@, evaluate_ensemble | pipeline.evaluate | inspectcnn.evaluate_entry.evaluate_entry |
| ensemble | pipeline.ensemble | inspectcnn.ensemble.ensemble_entry |
| champion | pipeline.champion | inspectcnn.champion.champion_stage |
| export | pipeline.export | inspectcnn.export.export_champion |
| report | pipeline.report | inspectcnn.report.build_report |
"""

from inspectcnn import backend as _backend

# params.yaml's `backend:` must be in KERAS_BACKEND before the stage module's own imports load Keras.
_backend.apply_from_params()
