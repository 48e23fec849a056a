"""Typed, frozen view of params.yaml: parsed once, validated before any work starts.

Every stage calls :func:`load_params`; no other module reads params.yaml. Unknown keys, wrong
types and impossible values raise :class:`ConfigError` whose message names the key (as a dotted
path such as ``models.resnet18.learning_rate``) and, where there is a fixed set, the allowed values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from inspectcnn.config.sections import (
    EDGE,
    ENSEMBLE,
    AnomalyConfig,
    EXPORT_FORMATS,
    AugmentConfig,
    DataConfig,
    EdgeConfig,
    EnsembleConfig,
    EvaluateConfig,
    ExportConfig,
    FitConfig,
    Frozen,
    HealthConfig,
    MlflowConfig,
    ModelEntry,
    OodConfig,
    RegisterConfig,
    ReportConfig,
    SplitConfig,
    TrainConfig,
    TransferConfig,
)
from inspectcnn.errors import UserError

__all__ = [
    "EDGE", "ENSEMBLE", "EXPORT_FORMATS", "PARAMS_FILE", "AnomalyConfig", "AugmentConfig", "ConfigError", "DataConfig", "EdgeConfig", "EnsembleConfig",
    "EvaluateConfig", "ExportConfig", "FitConfig", "HealthConfig", "MlflowConfig", "ModelEntry", "OodConfig", "Params", "RegisterConfig",
    "ReportConfig", "SplitConfig", "TrainConfig", "TransferConfig", "load_params", "parse_params", "read_raw",
]

PARAMS_FILE = Path("params.yaml")


class ConfigError(UserError, ValueError):
    """params.yaml is malformed; the message names every offending key."""


class Params(Frozen):
    """The whole params.yaml."""

    seed: int = 42
    # The Keras backend every stage runs under (applied before Keras is imported; see inspectcnn.backend)
    backend: Literal["tensorflow", "jax", "torch"] = "tensorflow"
    data: DataConfig = DataConfig()
    mlflow: MlflowConfig = MlflowConfig()
    train: TrainConfig = TrainConfig()
    # Only the keys given are overrides of ``train``; merged by :meth:`model`.
    models: dict[str, ModelEntry] = Field(default_factory=dict, strict=False)
    transfer: dict[str, TransferConfig] = Field(default_factory=dict, strict=False)
    # detectors fitted on good training cells only (no defect labels), evaluated like every entry
    anomaly: dict[str, AnomalyConfig] = Field(default_factory=dict, strict=False)
    ensemble: EnsembleConfig = EnsembleConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    report: ReportConfig = ReportConfig()
    # the register: section (a field named `register` would shadow the class's own ABC method)
    registry: RegisterConfig = Field(RegisterConfig(), alias="register")
    export: ExportConfig = ExportConfig()
    health: HealthConfig = HealthConfig()
    edge: EdgeConfig = EdgeConfig()

    @field_validator("models", mode="before")
    @classmethod
    def _models(cls, models):
        for name, overrides in (models or {}).items() if isinstance(models, dict) else ():
            if not isinstance(overrides, dict):
                raise ValueError(f"models.{name} must be a mapping of training parameters, got {overrides!r}")
        return models

    @model_validator(mode="after")
    def _distinct_entries(self) -> Params:
        sections = {"models": self.models, "transfer": self.transfer, "anomaly": self.anomaly}
        for first, second in (("models", "transfer"), ("models", "anomaly"), ("transfer", "anomaly")):
            shared = sorted(set(sections[first]) & set(sections[second]))
            if shared:
                raise ValueError(f"{first} and {second} share entry names {shared}: both write models/<name>/, "
                                 "rename one")
        if any(ENSEMBLE in entries for entries in sections.values()):
            raise ValueError(f"the entry name {ENSEMBLE!r} is the ensemble's folder (models/{ENSEMBLE}); rename the entry")
        student = self.edge.student
        if student != "auto" and student not in self.models and student not in self.transfer:
            raise ValueError(f"edge.student: {student!r} is not an entry of transfer: or models: "
                             f"(entries: {sorted([*self.models, *self.transfer])}), or auto")
        candidates = self.ensemble.candidates
        if candidates != "auto" and not candidates:
            raise ValueError("ensemble.candidates: name at least one entry, or auto (every entry)")
        unknown = [] if candidates == "auto" else [c for c in candidates if c not in self.models and c not in self.transfer]
        if unknown:
            raise ValueError(f"ensemble.candidates: {unknown} are not entries of models: or transfer: "
                             f"(entries: {sorted([*self.models, *self.transfer])})")
        return self

    def ensembles(self) -> list[str]:
        """The ensemble entries: ["ensemble"] (there is always one, over at least one candidate)."""
        return [ENSEMBLE]

    def ensemble_candidates(self) -> list[str]:
        candidates = self.ensemble.candidates
        return [*self.models, *self.transfer] if candidates == "auto" else list(candidates)

    def entries(self) -> list[str]:
        """Every evaluated model: the models entries, the transfer experiments, the anomaly detectors, then the
        ensemble."""
        return [*self.models, *self.transfer, *self.anomaly, *self.ensembles()]

    def kind(self, name: str) -> str:
        """What an entry is, as every table names it: train (from scratch), transfer, anomaly (no defect labels)
        or ensemble."""
        sections = (("train", self.models), ("transfer", self.transfer), ("anomaly", self.anomaly),
                    ("ensemble", self.ensembles()))
        return next((kind for kind, names in sections if name in names), "train")

    def tta(self, name: str) -> str:
        """The test-time augmentation an entry is evaluated and served with: evaluate.tta, except for an
        anomaly detector (a Gaussian per position of an aligned cell: a rotated view is a different cell)."""
        return "none" if name in self.anomaly else self.evaluate.tta

    def check_entry(self, name: str, section: str | None = None) -> str:
        """``name`` if it is an entry of ``section`` (models / transfer / anomaly; default any), else a
        ConfigError."""
        known = {"models": list(self.models), "transfer": list(self.transfer), "anomaly": list(self.anomaly),
                 None: self.entries()}[section]
        if name not in known:
            where = (f"{section}.{name}" if section
                     else f"{name}: not an entry of models:, transfer:, anomaly: or the ensemble;")
            raise ConfigError(f"{where} no such entry in params.yaml; entries: {sorted(known)}")
        return name

    def transfer_config(self, name: str) -> TransferConfig:
        return self.transfer[self.check_entry(name, "transfer")]

    def anomaly_config(self, name: str) -> AnomalyConfig:
        return self.anomaly[self.check_entry(name, "anomaly")]

    def model(self, name: str) -> TrainConfig:
        """The training config of one ``models`` entry: ``train`` defaults with the entry's overrides."""
        self.check_entry(name, "models")
        merged = self.train.model_dump()
        merged.update(self.models[name].model_dump(exclude_unset=True))
        merged["arch"] = merged.get("arch") or name
        try:
            return TrainConfig.model_validate(merged)
        except ValidationError as error:
            raise ConfigError(_describe(error, prefix=f"models.{name}")) from None


def _describe(error: ValidationError, prefix: str = "") -> str:
    lines = []
    for item in error.errors():
        loc = ".".join(str(part) for part in item["loc"] if part not in ("function-after",))
        key = ".".join(part for part in (prefix, loc) if part) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; see params.yaml in the repository for the known keys)"
        elif "input" in item and item["type"] not in ("missing",) and not isinstance(item["input"], dict):
            message = f"{message} (got {item['input']!r})"
        lines.append(f"  {key}: {message}")
    return "invalid params.yaml:\n" + "\n".join(lines)


def parse_params(raw: dict[str, Any] | None) -> Params:
    """Validate a params mapping. Architecture names are checked by ``inspectcnn.models.check_architectures``
    (the stages that build models call it), so that reading params never imports the model zoo."""
    try:
        params = Params.model_validate(raw or {})
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None
    for name in params.models:
        params.model(name)  # each entry merged with the train defaults and validated
    return params


def read_raw(path: str | Path = PARAMS_FILE) -> dict[str, Any]:
    """params.yaml as YAML, not validated (the only place the file is read): for the steps that run before
    validation can (the Keras backend, chosen before Keras is imported) or that rewrite the file (gpu_params)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} not found: run from the repository root") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{path} must be a mapping of sections, got {type(raw).__name__}")
    return raw or {}


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    """Read and validate params.yaml."""
    return parse_params(read_raw(path))

