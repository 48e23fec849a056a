"""One MLflow run of a stage (:class:`Run`), or a stand-in that only warns when tracking is optional and the
store is unreachable; how a store is checked and named in messages (credentials redacted)."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Mapping
from pathlib import Path

from inspectcnn import interrupts
from inspectcnn.errors import UserError

log = logging.getLogger(__name__)


class TrackingUnavailableError(UserError, RuntimeError):
    """The MLflow store cannot be reached and ``mlflow.required`` is true."""



class Run:
    """One MLflow run, or a stand-in that only warns when tracking is optional and unreachable.

    The store lost in the middle of the run (a server that stopped answering): with ``required`` a
    :class:`TrackingUnavailableError` that says so, stopping the stage; without, a warning, and the rest of
    the run goes unlogged, each skipped item listed in ``not_logged`` (and in a warning when the run ends).
    """

    def __init__(self, mlflow_run=None, *, required: bool = True, uri: str = ""):
        self._run = mlflow_run
        self._required, self._uri = required, uri
        self.lost = False  # the store stopped answering during the run
        self.not_logged: list[str] = []

    @property
    def active(self) -> bool:
        return self._run is not None

    @property
    def run_id(self) -> str | None:
        return self._run.info.run_id if self._run else None

    def _open(self, what: str) -> bool:
        """Whether to log ``what`` now; records it as not logged once the store was lost."""
        if self.lost:
            self.not_logged.append(what)
        return self._run is not None

    @contextlib.contextmanager
    def _logging(self, what: str):
        """One write to the store, Ctrl-C deferred past it; a failure while the store does not answer is the
        store lost mid-run (any other failure is raised as it is)."""
        try:
            with interrupts.deferred():
                yield
        except Exception as error:  # noqa: BLE001 - told apart below by asking the store
            try:
                check_reachable(self._uri, timeout_s=5.0)
            except TrackingUnavailableError:
                self._lose(what, error)
                return
            raise

    def _lose(self, what: str, error: Exception) -> None:
        first = (str(error).strip().splitlines() or [""])[0][:200]
        self.lost = True
        message = (f"lost the MLflow tracking store {redact(self._uri)} during run {self.run_id} while logging "
                   f"{what} ({type(error).__name__}: {redacted(Exception(first), self._uri)})")
        if self._required:
            raise TrackingUnavailableError(
                f"{message}. The stage failed, so DVC records nothing for it: rerun it when the server answers "
                "again (a training resumes from its last completed epoch), or set mlflow.required: false to go "
                "on without it") from None
        log.warning("%s: going on WITHOUT MLflow (mlflow.required: false); the DVC outputs are complete", message)
        self.not_logged.append(what)
        self._run = None

    def keras_callback(self):
        """A Keras callback logging each epoch's metrics with the epoch as step, or None.

        Not mlflow.keras.MlflowCallback: it also logs the optimizer's config as params at every
        fit(), which MLflow refuses the second time (the fine-tuning phase of a transfer run).
        """
        if not self._run:
            return None
        import keras

        run = self

        class EpochMetrics(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                run.log_metrics(logs or {}, step=epoch)

        return EpochMetrics()

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        what = "the summary metrics" if step is None else f"the metrics of epoch {step + 1}"
        if self._open(what):
            import mlflow

            numeric = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
            with self._logging(what):
                mlflow.log_metrics(numeric, step=step)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        if self._open("tags"):
            import mlflow

            with self._logging("tags"):
                mlflow.set_tags(dict(tags))

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        what = f"artifact {Path(path).name}"
        if self._open(what):
            import mlflow

            with self._logging(what):
                mlflow.log_artifact(str(path), artifact_path=folder)

    def log_figure(self, figure, name: str) -> None:
        if self._open(f"figure {name}"):
            import mlflow

            with self._logging(f"figure {name}"):
                mlflow.log_figure(figure, name)

    def log_keras_model(self, model, input_shape: tuple[int, ...], name: str = "model") -> None:
        """The model with a tensor signature (float32 images in [0, 1] -> probability)."""
        if not self._open(f"model {name}"):
            return
        import mlflow.keras
        import numpy as np
        from mlflow.models import ModelSignature
        from mlflow.types import Schema, TensorSpec

        signature = ModelSignature(
            inputs=Schema([TensorSpec(np.dtype("float32"), (-1, *input_shape), "image")]),
            outputs=Schema([TensorSpec(np.dtype("float32"), (-1, 1), "probability")]),
        )
        # input_example= is left out: it raised FileNotFoundError with mlflow 3.17.2 here.
        # The requirements are stated, not inferred: inference loads the model in a subprocess (~10 s a model).
        with warnings.catch_warnings(), self._logging(f"model {name}"):
            warnings.simplefilter("ignore")
            mlflow.keras.log_model(model, name=name, signature=signature, pip_requirements=model_requirements())


def model_requirements() -> list[str]:
    """What loading a logged Keras model needs: Keras, its backend, h5py and NumPy, at the versions in use."""
    from importlib.metadata import PackageNotFoundError, version

    from inspectcnn.backend import current

    found = []
    for package in ("keras", current(), "h5py", "numpy"):  # each backend's package is named like it
        try:
            found.append(f"{package}=={version(package)}")
        except (PackageNotFoundError, ValueError, TypeError):
            continue
    return found



def redact(uri: str) -> str:
    """``uri`` with any user name and password replaced by ***, for messages and logs."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"***@{host}"))


def redacted(error: Exception, uri: str) -> str:
    return str(error).replace(uri, redact(uri))


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds, not after MLflow's minutes of HTTP retries, when the store cannot be reached."""
    if uri.startswith("sqlite:///"):
        folder = Path(uri.removeprefix("sqlite:///")).parent
        if not folder.is_dir():
            raise TrackingUnavailableError(f"MLflow store {uri}: folder {folder} does not exist")
    elif uri.startswith(("http://", "https://")):
        import requests

        try:
            requests.get(f"{uri.rstrip('/')}/health", timeout=timeout_s)
        except requests.RequestException as error:
            raise TrackingUnavailableError(f"no MLflow server answers at {redact(uri)} "
                                           f"({type(error).__name__})") from None


