"""One module per `dvc.yaml` stage, named like the stage and its params section.

Each has a ``run(...)`` that does the stage's work from explicit arguments (callable from tests and
notebooks) and a ``main(argv)`` that parses the command line dvc.yaml gives it, reads params.yaml,
and turns a :class:`inspectcnn.errors.UserError` into one line and exit code 2. ``pipeline/`` keeps
thin aliases (``python -m pipeline.train`` = ``python -m inspectcnn.stages.train``).
"""

from inspectcnn import backend as _backend

# params.yaml's `backend:` must be in KERAS_BACKEND before the stage module's own imports load Keras.
_backend.apply_from_params()
