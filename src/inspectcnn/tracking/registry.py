"""The MLflow Model Registry: the champion registered as the pyfunc of :mod:`inspectcnn.champion_pyfunc`
(the register stage's only call into it), a registered model read back, a run's logged model."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from inspectcnn import interrupts
from inspectcnn.artifacts import MODEL_FILE
from inspectcnn.tracking.lifecycle import tracking_uri
from inspectcnn.tracking.runs import model_requirements


def logged_model_uri(run_id: str) -> str | None:
    """``models:/<id>`` of the model logged by a run (MLflow 3 logged models), or None."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri())
    run = client.get_run(run_id)
    found = client.search_logged_models(experiment_ids=[run.info.experiment_id],
                                        filter_string=f"source_run_id = '{run_id}'")
    return f"models:/{found[0].model_id}" if found else None


def register_champion(served_model, spec: dict[str, Any], *, registry_name: str, run, description: str,
                      tags: dict[str, str], alias: str = "champion", ood_bank: Path | None = None) -> str | None:
    """Log ``served_model`` (the champion with its test-time augmentation) with its inference ``spec`` as the
    pyfunc of :mod:`inspectcnn.champion_pyfunc` into ``run`` (a :class:`Run`), register it under ``registry_name`` with ``description``
    and ``tags`` on the version, point ``alias`` at it; returns ``models:/<name>@<alias>``. With ``ood_bank`` (the
    spec's feature bank; ``served_model`` then outputs its features too) the model returns the
    out-of-distribution columns as well."""
    import tempfile
    from importlib.metadata import version

    import mlflow
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.tracking import MlflowClient
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec

    from inspectcnn.serving import write_spec

    if not run.active:
        return None
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one line per stage, not a bar per file
    shape = spec["input"]
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype("float32"), (-1, shape["size"], shape["size"], shape["channels"]),
                                  "image")]),
        outputs=Schema([ColSpec("double", "probability"), ColSpec("long", "label"), ColSpec("string", "class"),
                        *([ColSpec("double", "ood_score"), ColSpec("boolean", "in_distribution")] if ood_bank else [])]),
        params=ParamSchema([ParamSpec("threshold", "double", float(spec["threshold"]))]),
    )
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings(), interrupts.deferred():
        warnings.simplefilter("ignore")
        served_model.save(Path(folder) / MODEL_FILE)
        spec_file = write_spec(spec, Path(folder))
        info = mlflow.pyfunc.log_model(
            name="champion", python_model=str(Path(__file__).parent.parent / "champion_pyfunc.py"),
            artifacts={"keras_model": str(Path(folder) / MODEL_FILE), "inference": str(spec_file),
                       **({"ood_bank": str(ood_bank)} if ood_bank else {})},
            signature=signature, pip_requirements=[*model_requirements(), f"pandas=={version('pandas')}",
                                                   *([f"scikit-learn=={version('scikit-learn')}"] if ood_bank else [])],
        )
        registered = mlflow.register_model(info.model_uri, registry_name)
        client = MlflowClient(tracking_uri())
        client.update_model_version(registry_name, registered.version, description=description)
        for key, value in tags.items():
            client.set_model_version_tag(registry_name, registered.version, key, str(value))
        client.set_registered_model_alias(registry_name, alias, registered.version)
    return f"models:/{registry_name}@{alias}"


def download_keras_model(uri: str, folder: Path) -> Path:
    """The ``.keras`` file behind a registry URI, downloaded to ``folder``."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(folder)))
    found = sorted(local.rglob("*.keras"))
    if not found:
        raise FileNotFoundError(f"{uri} holds no .keras file")
    return found[0]
