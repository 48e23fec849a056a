"""The comparison report (the `report` stage): ranking, champion, curves, cost, Grad-CAM, per-group results,
context. Writes a self-contained ``report.html`` (figures embedded, no network) and a ``report.md`` from
Jinja2 templates, plus ``ranking.csv`` and ``summary.json``; it registers nothing (the register stage does).

- :mod:`~inspectcnn.report.numbers`: the numbers it assembles;
- :mod:`~inspectcnn.report.pages`: the figures and pages it renders.
"""

from __future__ import annotations

import logging
from pathlib import Path

from inspectcnn import artifacts, devices
from inspectcnn.artifacts import read_json, write_json, write_table
from inspectcnn.config import Params
from inspectcnn.reference import ELPV_TASK, PUBLISHED, RECIPES

log = logging.getLogger(__name__)
from inspectcnn.report.numbers import (
    TIMING_COLUMNS,
    Entry,
    annotated_levels,
    architecture_table,
    champion_reason,
    collect,
    confusion_by_level,
    level_table,
    load_models,
    pareto_front,
    ranking,
    scratch_comparison,
    significance,
)
from inspectcnn.report.pages import (
    accuracy_latency_figure,
    anomaly_figures,
    error_gallery,
    figures,
    gradcam_figures,
    render,
)

__all__ = ["Entry", "champion_reason", "collect", "pareto_front", "ranking", "run"]


def run(params: Params, models_dir: Path, prepared_dir: Path, summary_path: Path, champion_path: Path,
        export_files: tuple[Path, Path] | None, health_path: Path | None, out_dir: Path,
        edge_dir: Path | None = None) -> dict:
    """The `report` stage: every evaluated entry compared, the champion (the champion stage's record) and the
    export checks shown; report.html, report.md, ranking.csv and summary.json written to ``out_dir``."""
    from inspectcnn import champion as choice
    from inspectcnn import export as exporting

    entries = collect(params, models_dir)
    record = choice.read(champion_path)
    champion = record["champion"]
    if champion not in {e.name for e in entries}:
        raise choice.ChampionError(f"{champion_path} names {champion}, which is not an entry of params.yaml: "
                                   "run the champion stage again (dvc repro champion)")
    rows = ranking(entries, params.report.rank_by)
    models = load_models(entries, models_dir)
    export = artifacts.read_export(*export_files) if export_files else None
    if export and export.get("champion") != champion:
        raise choice.ChampionError(f"{export_files[0]} exported {export.get('champion')}, but the champion is "
                                   f"{champion}: run the export stage again (dvc repro export)")
    data = read_json(summary_path) if summary_path.is_file() else {}
    context = _context(params, entries, rows, models, record, prepared_dir, data, health_path)
    context.update(export=export, export_problems=exporting.problems(export))
    context["edge"] = edge_section(edge_dir, export, champion) if edge_dir is not None else None
    render(context, out_dir)
    write_table(out_dir / artifacts.RANKING.name, [  # timings stay in the run records (models/*/run.json, ...)
        {**{k: v for k, v in row.items() if k != "ci95" and k not in TIMING_COLUMNS},
         **{f"{m}_ci_{end}": (row["ci95"].get(m) or [None, None])[i] for m in ("accuracy", "roc_auc", "f1")
            for i, end in enumerate(("low", "high"))}}
        for row in rows])
    best = next(r for r in rows if r["model"] == champion)
    summary = {"champion": champion, "select_by": record["select_by"], "champion_val": record["value"],
               "champion_roc_auc": best["roc_auc"], "champion_accuracy": best["accuracy"],
               "champion_ci95": best["ci95"], "models": len(rows), "export_problems": context["export_problems"]}
    if context["edge"]:
        edge = context["edge"]
        summary["edge"] = {"roc_auc": edge["evaluation"]["roc_auc"], "accuracy": edge["evaluation"]["accuracy"],
                           "roc_auc_minus_teacher": edge["evaluation"]["vs_teacher"]["roc_auc"],
                           "export_problems": edge["problems"]}
    write_json(out_dir / artifacts.SUMMARY.name, summary)
    return summary


def edge_section(edge_dir: Path, export: dict | None, champion: str) -> dict | None:
    """The edge student as the report shows it (None before its evaluation): evaluation, distillation,
    export checks with latencies, the latency verdict, the accuracy-versus-latency figure."""
    from inspectcnn import export as exporting

    folder = artifacts.ModelFolder(edge_dir)
    if not folder.evaluation.is_file():
        return None
    evaluation, training = folder.read_evaluation(with_run=True), folder.read_training()
    edge_export = artifacts.read_export(edge_dir / artifacts.EDGE_EXPORT_METRICS.name,
                                        edge_dir / artifacts.EDGE_EXPORT_RUN.name)
    verdict = exporting.latency_verdict(edge_export) if edge_export else None
    target = float((edge_export or {}).get("latency_target_ms") or 0) or None
    return {"evaluation": evaluation, "training": training, "export": edge_export, "verdict": verdict,
            "problems": exporting.problems(edge_export),
            "figure": accuracy_latency_figure(export, edge_export or {}, target or 10.0,
                                              (f"champion {champion} (TTA)", f"edge student (one view)"))}


def _context(params: Params, entries: list[Entry], rows: list[dict], models: dict, record: dict,
             prepared_dir: Path, data: dict, health_path: Path | None) -> dict:
    """What the templates show (all but the registry and export lines)."""
    champion = record["champion"]
    by_name = {e.name: e for e in entries}
    front_macs = pareto_front({r["model"]: (r["accuracy"], r["macs"]) for r in rows})
    front_latency = pareto_front({r["model"]: (r["accuracy"], r["latency_b1_ms"]) for r in rows})
    test_levels = annotated_levels(prepared_dir)
    config = params.report
    return {
        "rows": rows, "rank_by": config.rank_by, "champion": champion, "choice": record,
        "reason": champion_reason(record, rows, front_macs),
        "front_macs": sorted(front_macs), "front_latency": sorted(front_latency),
        "figures": figures(entries, rows, front_macs, front_latency),
        "gradcams": gradcam_figures(entries, models, prepared_dir, config.gradcam_per_category),
        "anomaly_maps": anomaly_figures(entries, models, prepared_dir, champion, config.gradcam_per_category),
        "groups": {e.name: e.eval["groups"] for e in entries if e.eval["groups"]},
        "data": data,
        "architectures": architecture_table(entries, models),
        "published": PUBLISHED, "task": ELPV_TASK, "environment": devices.environment(),
        "threshold_rule": params.evaluate.threshold, "tta": params.evaluate.tta,
        "resamples": params.evaluate.bootstrap, "recipes": RECIPES,
        "significance": significance(entries, champion, record["select_by"], params.evaluate.bootstrap, params.seed),
        "select_by": record["select_by"],
        "scratch": scratch_comparison(entries, record["select_by"], params.evaluate.bootstrap, params.seed),
        "levels": level_table(entries, rows),
        "gallery": error_gallery(by_name[champion], models[champion], prepared_dir, config.error_gallery,
                                 test_levels) if config.error_gallery else {"rows": [], "image": None},
        "level_confusion": confusion_by_level(by_name[champion], test_levels),
        "health": {**(data.get("health") or {}),
                   **(read_json(health_path) if health_path and health_path.is_file() else {})},
        # ELPV's description, published results and measured recipes describe ELPV only
        "is_elpv": data.get("source") == "elpv",
    }


