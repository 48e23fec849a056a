"""The artifacts contract: every file a stage reads or writes, named once, with its readers and writers.

The pipeline's folders (relative to the repository root) and what each holds:

| artifact | written by | read by |
|---|---|---|
| ``data/prepared/`` (shards, ``<split>.csv``, ``meta.json``, ``manifest.csv``) | prepare | every later stage |
| ``data/prepare_summary.json`` | prepare | report, register |
| ``data/health.json`` | health | report |
| ``models/<entry>/`` (:class:`ModelFolder`: training files) | train, transfer, ensemble | evaluate |
| ``models/<entry>/`` (:class:`ModelFolder`: evaluation files) | evaluate | champion, export, report, register |
| ``data/val_predictions/<entry>.csv`` | evaluate | ensemble |
| ``reports/champion.json`` | champion | export, report, register |
| ``reports/export/``, ``reports/export.json``, ``export_run.json`` | export | report (checks), register |
| ``reports/edge/`` (:class:`ModelFolder`: training files) | distil | evaluate_edge |
| ``reports/edge/`` (evaluation files, ``export/``, ``export.json``, ``export_run.json``) | evaluate_edge | report, register |
| ``reports/report.html``, ``report.md``, ``ranking.csv``, ``summary.json`` | report | people |
| ``reports/model_card.md``, ``reports/registered.json`` | register | people, the MLflow registry |

No other module spells these names: stages ask this module, ``dvc.yaml`` declares the same paths (a test
holds the two together through :data:`STAGE_FILES`), and the library below takes explicit paths.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

# --- the pipeline's folders and records ------------------------------------------------------------------
PREPARED = Path("data/prepared")
PREPARE_SUMMARY = Path("data/prepare_summary.json")
HEALTH = Path("data/health.json")  # label-issue candidates (health stage)
# Every entry's validation probabilities (written by its evaluate stage), what the ensemble chooses on:
# one folder, so that the ensemble stage can depend on all of them without naming each entry.
VAL_PREDICTIONS = Path("data/val_predictions")
MODELS = Path("models")
REPORTS = Path("reports")
CHAMPION = REPORTS / "champion.json"  # the champion, chosen on validation (champion stage)
EXPORT = REPORTS / "export"  # the champion as deployable files (export stage)
EXPORT_METRICS = REPORTS / "export.json"  # every format's checks (export stage)
EXPORT_RUN = REPORTS / "export_run.json"  # every format's latency and file size: differ on every execution
REPORT_HTML = REPORTS / "report.html"
REPORT_MD = REPORTS / "report.md"
RANKING = REPORTS / "ranking.csv"
SUMMARY = REPORTS / "summary.json"
MODEL_CARD = REPORTS / "model_card.md"  # the champion's card (register stage; logged with the version)
REGISTERED = REPORTS / "registered.json"  # what the register stage registered, or why it did not
# the single-view student distilled from the champion (distil stage: ModelFolder training files; evaluate_edge:
# its evaluation files, export/ and the export checks beside them)
EDGE = REPORTS / "edge"
EDGE_EXPORT = EDGE / "export"
EDGE_EXPORT_METRICS = EDGE / "export.json"
EDGE_EXPORT_RUN = EDGE / "export_run.json"

PREDICT_OUT = Path("predictions.csv")  # what `inspectcnn predict` writes unless told --out

# --- inside a prepared folder (inspectcnn.data.store reads and writes them) -----------------------------
PREPARED_META = "meta.json"
PREPARED_MANIFEST = "manifest.csv"


def split_index(prepared_dir: str | Path, split: str) -> Path:
    """``<split>.csv`` of a prepared folder: id, label, group of every stored image, in shard order."""
    return Path(prepared_dir) / f"{split}.csv"


# --- beside any copy of a model (registered, exported) ------------------------------------------------
INFERENCE_SPEC = "inference.json"  # threshold, preprocessing, classes: how the model is to be used
MODEL_FILE = "model.keras"


# Numbers that differ between two executions of the same stage with the same inputs (timings, MLflow run
# ids) go to the run records, so that metrics.json/eval.json are byte-identical across deterministic reruns
# and ``dvc metrics diff`` shows only real changes.
RUN_KEYS = ("wall_time_s", "train_images_per_s", "mlflow_run_id", "feature_extraction_s", "fit_s", "peak_rss_mb",
            "frozen_phase_s", "finetune_phase_s", "finetune_images_per_s")


@dataclass(frozen=True)
class ModelFolder:
    """``models/<entry>/``: what its train/transfer/ensemble stage writes, then what its evaluation adds.

    Reproducible numbers and the records of one execution are kept apart: ``metrics.json`` and
    ``eval.json`` are byte-identical across deterministic reruns; ``run.json`` and ``eval_run.json``
    hold timings and MLflow run ids, which differ on every execution.
    """

    root: Path

    # written by training (train@, transfer@, ensemble)
    @property
    def model(self) -> Path:
        return self.root / MODEL_FILE

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def run(self) -> Path:
        return self.root / "run.json"

    @property
    def history(self) -> Path:
        return self.root / "history.csv"

    # written by evaluation (evaluate@, evaluate_transfer@, evaluate_ensemble)
    @property
    def evaluation(self) -> Path:
        return self.root / "eval.json"

    @property
    def evaluation_run(self) -> Path:
        return self.root / "eval_run.json"

    @property
    def scores(self) -> Path:
        return self.root / "scores.json"

    @property
    def roc(self) -> Path:
        return self.root / "roc.csv"

    @property
    def pr(self) -> Path:
        return self.root / "pr.csv"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions.csv"

    @property
    def val_predictions(self) -> Path:
        """The ensemble's own validation probabilities (not a candidate, so not in data/val_predictions)."""
        return self.root / "val_predictions.csv"

    @property
    def training_files(self) -> tuple[Path, ...]:
        return (self.model, self.metrics, self.run, self.history)

    @property
    def evaluation_files(self) -> tuple[Path, ...]:
        """What an evaluation writes into the folder (an ensemble of one copies its member's)."""
        return (self.evaluation, self.scores, self.evaluation_run, self.roc, self.pr, self.predictions)

    def write_training(self, metrics: Mapping) -> None:
        """A training's summary: RUN_KEYS (this execution's timings and run id) into ``run.json``, the
        reproducible rest into ``metrics.json``."""
        write_json(self.run, {k: v for k, v in metrics.items() if k in RUN_KEYS})
        write_json(self.metrics, {k: v for k, v in metrics.items() if k not in RUN_KEYS})

    def read_training(self) -> dict:
        """``metrics.json`` and ``run.json`` merged (a missing run record counts as empty)."""
        return {**read_json(self.metrics), **(read_json(self.run) if self.run.is_file() else {})}

    def read_evaluation(self, with_run: bool = False) -> dict:
        """``eval.json``; with ``with_run``, the latencies and run ids of ``eval_run.json`` under "cost"."""
        if not self.evaluation.is_file():
            raise FileNotFoundError(f"{self.evaluation} not found: run the evaluate stage of {self.root.name} first")
        results = read_json(self.evaluation)
        if with_run and self.evaluation_run.is_file():
            results["cost"].update(read_json(self.evaluation_run))
        return results


def model_folder(name: str, models_dir: str | Path = MODELS) -> ModelFolder:
    return ModelFolder(Path(models_dir) / name)


def val_predictions(name: str, folder: str | Path = VAL_PREDICTIONS) -> Path:
    """A candidate's validation probabilities (``data/val_predictions/<entry>.csv``)."""
    return Path(folder) / f"{name}.csv"


# --- writers and readers (atomic: an interrupted stage never leaves a half-written file) ---------------
def _replace(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json(path: str | Path, record: Mapping) -> None:
    """A JSON record or DVC metrics file (``dvc metrics show`` reads its numbers)."""
    _replace(Path(path), json.dumps(record, indent=2, sort_keys=False, default=float) + "\n")


def read_json(path: str | Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_text(path: str | Path, text: str) -> None:
    """A rendered page (report, model card)."""
    _replace(Path(path), text)


def write_table(path: str | Path, rows: Iterable[Mapping], fieldnames: list[str] | None = None) -> None:
    """A CSV table or DVC plots file (``dvc plots show`` reads its columns)."""
    rows = list(rows)
    fieldnames = fieldnames or (list(rows[0]) if rows else [])
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def read_table(path: str | Path) -> list[dict]:
    with Path(path).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# of each format's row, what belongs to this execution (kept in export_run.json): the latency, and the file's
# size in bytes (tf2onnx orders a graph's nodes in a process-dependent order: a few bytes differ between runs)
EXPORT_RUN_KEYS = ("latency_b1_ms", "size_bytes")


def write_export(result: Mapping, checks: str | Path, run: str | Path) -> None:
    """The export stage's record: every format's checks (reproducible) into ``checks``, each format's
    latency into ``run``, so that ``checks`` changes only when a result does."""
    rows = result["formats"]
    write_json(run, {"formats": {f: {k: r[k] for k in EXPORT_RUN_KEYS if k in r} for f, r in rows.items()}})
    write_json(checks, {**result, "formats": {f: {k: v for k, v in r.items() if k not in EXPORT_RUN_KEYS}
                                              for f, r in rows.items()}})


def read_export(checks: str | Path, run: str | Path | None) -> dict | None:
    """The two files of :func:`write_export` merged (None without the checks; no latencies without ``run``)."""
    if not Path(checks).is_file():
        return None
    result = read_json(checks)
    if run is not None and Path(run).is_file():
        for fmt, measured in read_json(run).get("formats", {}).items():
            result["formats"].setdefault(fmt, {}).update(measured)
    return result


# --- what each dvc.yaml stage reads and writes (beside its code) ---------------------------------------
KEY = "${key}"  # dvc.yaml's foreach placeholder


@dataclass(frozen=True)
class StageFiles:
    """The data a stage depends on and every file it writes, as dvc.yaml must declare them."""

    deps: tuple[Path, ...]
    outs: tuple[Path, ...]
    # Folders read through a fingerprint instead of a dep (DVC refuses a dep that holds the stage's own
    # outputs): the ensemble reads its members' files under models/, and each member's validation table
    # in data/val_predictions (a declared dep) carries the sha256 of that member's weights.
    fingerprinted: tuple[Path, ...] = ()


def _evaluate_stage(entry: str, val_out: Path) -> StageFiles:
    folder = model_folder(entry)
    return StageFiles(deps=(PREPARED, folder.model, folder.metrics, folder.run),
                      outs=(val_out, *folder.evaluation_files))


STAGE_FILES: dict[str, StageFiles] = {
    "prepare": StageFiles(deps=(), outs=(PREPARED, PREPARE_SUMMARY)),
    "health": StageFiles(deps=(PREPARED,), outs=(HEALTH,)),
    "train": StageFiles(deps=(PREPARED,), outs=model_folder(KEY).training_files),
    "transfer": StageFiles(deps=(PREPARED,), outs=model_folder(KEY).training_files),
    "anomaly": StageFiles(deps=(PREPARED,), outs=model_folder(KEY).training_files[:3]),
    "evaluate": _evaluate_stage(KEY, val_predictions(KEY)),
    "evaluate_transfer": _evaluate_stage(KEY, val_predictions(KEY)),
    "evaluate_anomaly": _evaluate_stage(KEY, val_predictions(KEY)),
    "ensemble": StageFiles(deps=(VAL_PREDICTIONS,), outs=model_folder("ensemble").training_files[:3],
                           fingerprinted=(MODELS,)),
    "evaluate_ensemble": StageFiles(
        deps=(*_evaluate_stage("ensemble", Path()).deps, VAL_PREDICTIONS),
        outs=(model_folder("ensemble").val_predictions, *model_folder("ensemble").evaluation_files),
        fingerprinted=(MODELS,)),  # an ensemble of one member reuses that member's evaluation
    "champion": StageFiles(deps=(MODELS,), outs=(CHAMPION,)),
    "export": StageFiles(deps=(CHAMPION, MODELS, PREPARED), outs=(EXPORT, EXPORT_METRICS, EXPORT_RUN)),
    "distil": StageFiles(deps=(CHAMPION, MODELS, PREPARED), outs=ModelFolder(EDGE).training_files),
    "evaluate_edge": StageFiles(deps=(MODELS, PREPARED, *ModelFolder(EDGE).training_files[:3]),
                                outs=(ModelFolder(EDGE).val_predictions, *ModelFolder(EDGE).evaluation_files,
                                      EDGE_EXPORT, EDGE_EXPORT_METRICS, EDGE_EXPORT_RUN)),
    "report": StageFiles(deps=(CHAMPION, MODELS, PREPARED, PREPARE_SUMMARY, EXPORT_METRICS, EXPORT_RUN, HEALTH,
                               *ModelFolder(EDGE).training_files[1:3], ModelFolder(EDGE).evaluation,
                               ModelFolder(EDGE).evaluation_run, EDGE_EXPORT_METRICS, EDGE_EXPORT_RUN),
                         outs=(REPORT_HTML, REPORT_MD, RANKING, SUMMARY)),
    "register": StageFiles(deps=(CHAMPION, MODELS, PREPARED, PREPARE_SUMMARY, EXPORT_METRICS, EXPORT_RUN, EXPORT,
                                 *ModelFolder(EDGE).training_files[:3], ModelFolder(EDGE).evaluation,
                                 ModelFolder(EDGE).evaluation_run, EDGE_EXPORT, EDGE_EXPORT_METRICS),
                           outs=(MODEL_CARD, REGISTERED)),
}
