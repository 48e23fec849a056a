"""The champion: chosen once, on the validation split, by one rule; written to ``reports/champion.json``.

Every later step (the export stage, the report, the model card, the registry) reads that record and
never ranks again; no test metric takes part in the choice. The rule is ``report.select_by``: a metric
of each entry's *validation* predictions as served (with the configured test-time augmentation),
as its evaluate stage wrote them into ``eval.json`` (``"val"``).

Two entries need care, and both are handled here rather than by every reader:
- the ensemble chose its members and weights on the same validation cells, so its in-sample validation
  score flatters it; where its stage measured an out-of-fold (cross-fitted) score of the selection,
  that score stands in for it;
- an ensemble of one member is that member: it is not a candidate of its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from inspectcnn.errors import UserError

SELECT_METRICS = ("roc_auc", "pr_auc", "f1", "balanced_accuracy", "accuracy")
RECORD_VERSION = 1


class ChampionError(UserError, ValueError):
    """No champion can be chosen (or read) from what the evaluate stages left."""


def choose(validation: Mapping[str, Mapping[str, float | None]], select_by: str) -> dict:
    """The record of the choice: the entry with the highest validation ``select_by`` (ties: the earlier
    entry), every candidate's value, and the rule in words. ``validation``: entry -> its validation metrics
    (only validation: this function never sees a test number)."""
    if select_by not in SELECT_METRICS:
        raise ChampionError(f"report.select_by: {select_by!r} is not one of {', '.join(SELECT_METRICS)}")
    scored = [(name, metrics.get(select_by)) for name, metrics in validation.items()]
    scored = [(name, float(value)) for name, value in scored if value is not None]
    if not scored:
        raise ChampionError(f"no entry has a validation {select_by}: run the evaluate stages first "
                            "(dvc repro), or choose another report.select_by")
    order = {name: index for index, name in enumerate(validation)}
    ranked = sorted(scored, key=lambda item: (-item[1], order[item[0]]))
    best, value = ranked[0]
    record = {
        "version": RECORD_VERSION,
        "champion": best,
        "select_by": select_by,
        "split": "val",
        "value": round(value, 6),
        "rule": f"highest validation {select_by.replace('_', '-')} of the model as served (with its test-time "
                "augmentation); test metrics take no part",
        "candidates": [{"model": name, "value": round(v, 6)} for name, v in ranked],
    }
    if len(ranked) > 1:
        record["runner_up"] = {"model": ranked[1][0], "value": round(ranked[1][1], 6),
                               "margin": round(value - ranked[1][1], 6)}
    return record


def validation_scores(entries: Mapping[str, Mapping], ensembles: Mapping[str, Mapping]) -> dict[str, dict]:
    """entry -> the validation metrics the choice is made on.

    ``entries``: entry -> its ``eval.json`` (``"val"`` holds the validation metrics); ``ensembles``:
    ensemble entry -> its training metrics (``members``, ``val_crossfit``). A one-member ensemble is left
    out (it is its member); an ensemble's out-of-fold scores replace its in-sample ones."""
    scores = {}
    for name, evaluation in entries.items():
        val = dict(evaluation.get("val") or {})
        if name in ensembles:
            info = ensembles[name]
            if len(info.get("members") or {}) <= 1:
                continue
            val.update(info.get("val_crossfit") or {})
        scores[name] = val
    return scores


def write(path: Path, record: dict) -> None:
    """The record, written atomically as every other JSON output (:func:`inspectcnn.artifacts.write_json`)."""
    from inspectcnn.artifacts import write_json

    write_json(path, record)


def read(path: Path) -> dict:
    """The record of :func:`choose`, checked; a clear error when the champion stage has not run."""
    path = Path(path)
    if not path.is_file():
        raise ChampionError(f"{path} not found: run the champion stage first (dvc repro champion)")
    record = json.loads(path.read_text())
    if record.get("version") != RECORD_VERSION or "champion" not in record:
        raise ChampionError(f"{path} was written by another version: run the champion stage again "
                            "(dvc repro champion)")
    return record


def run(params, models_dir: Path, out: Path) -> dict:
    """The `champion` stage: every entry's validation metrics (its ``eval.json``), the choice, written to
    ``out``; the record."""
    from inspectcnn.artifacts import model_folder, read_json

    evaluations = {}
    for name in params.entries():
        path = model_folder(name, models_dir).evaluation
        if not path.is_file():
            raise ChampionError(f"{path} not found: run evaluate for {name} first (dvc repro)")
        evaluations[name] = read_json(path)
    ensembles = {name: model_folder(name, models_dir).read_training() for name in params.ensembles()}
    record = choose(validation_scores(evaluations, ensembles), params.report.select_by)
    write(out, record)
    return record
