"""The champion's model card (reports/model_card.md, also logged to MLflow with the registered version):
intended use, data, metrics with intervals, per-group results, threshold, known failure modes, formats."""

from __future__ import annotations

from typing import Any

ELPV_LICENCE = ("ELPV (Buerhop-Lutz et al. 2018; Deitsch et al. 2019), CC BY-NC-SA 4.0: non-commercial use, "
                "share alike, attribution. A model trained on it inherits those terms.")


def failure_modes(evaluation: dict[str, Any]) -> list[str]:
    """Plain statements of where the model errs, from its test evaluation: error types, annotated levels
    and groups well below the overall accuracy, calibration."""
    found = []
    c = evaluation["confusion"]
    total = c["fn"] + c["fp"]
    if total:
        kind = "missed defects (false negatives)" if c["fn"] >= c["fp"] else "false alarms (false positives)"
        found.append(f"Most test errors are {kind}: {c['fn']} false negatives, {c['fp']} false positives of "
                     f"{evaluation['count']} images; recall {evaluation['recall']:.3f}, precision "
                     f"{evaluation['precision']:.3f} at threshold {evaluation['threshold']:.3f}.")
    overall = evaluation["accuracy"]

    def numeric(level: str) -> float:
        top, _, bottom = level.partition("/")
        return float(top) / float(bottom or 1)

    for level, m in sorted((evaluation.get("levels") or {}).items(), key=lambda kv: numeric(kv[0])):
        if m["count"] and m["accuracy"] < overall - 0.1:
            value = numeric(level)
            why = ("borderline annotations, where the model is least reliable" if 0.0 < value < 1.0 else
                   "clear defects that it misses" if value >= 1.0 else "clear good images that it flags")
            right = f"{m['right']} of {m['count']} right" if "right" in m else f"n={m['count']}"
            interval = f", 95 % CI [{m['ci95'][0]:.2f}, {m['ci95'][1]:.2f}]" if m.get("ci95") else ""
            found.append(f"Known weakness: images the experts annotated at level {level} ({right}): accuracy "
                         f"{m['accuracy']:.3f}{interval}, against {overall:.3f} overall: {why}.")
    for group, m in sorted((evaluation.get("groups") or {}).items()):
        if m["count"] and m["accuracy"] < overall - 0.05:
            found.append(f"Group {group} (n={m['count']}): accuracy {m['accuracy']:.3f}, recall {m['recall']:.3f}.")
        elif m["count"] and m.get("recall") is not None and m["recall"] < evaluation["recall"] - 0.1:
            found.append(f"Group {group} (n={m['count']}): recall {m['recall']:.3f} against {evaluation['recall']:.3f} "
                         "overall: more of its defects are missed.")
    if evaluation.get("ece") is not None and evaluation["ece"] > 0.05:
        found.append(f"Probabilities are not calibrated (expected calibration error {evaluation['ece']:.3f}): read "
                     "them as scores for ranking and thresholding, not as frequencies.")
    return found


def render(*, champion: str, kind: str, evaluation: dict, spec: dict, data: dict, export: dict | None,
           registered: str | None, cost: dict, environment: dict, choice: dict | None = None) -> str:
    from jinja2 import Environment, PackageLoader

    templates = Environment(loader=PackageLoader("inspectcnn", "templates"), trim_blocks=True, lstrip_blocks=True)
    return templates.get_template("model_card.md.j2").render(
        champion=champion, kind=kind, e=evaluation, spec=spec, data=data, export=export, registered=registered,
        cost=cost, environment=environment, failures=failure_modes(evaluation), choice=choice,
        licence=ELPV_LICENCE if data.get("source") == "elpv" else None)
