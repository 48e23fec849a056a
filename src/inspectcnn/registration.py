"""The `register` stage: the champion (the champion stage's record) as a version of the MLflow Model
Registry, with its model card and the export checks beside it. Nothing else in the project registers.

The registered version is the MLflow pyfunc of :mod:`inspectcnn.champion_pyfunc` (probability, label and
class at the validation threshold); its description and tags repeat the card's facts, so that the registry
alone says what the version is. The card (``reports/model_card.md``) is written here because it is what
is registered: a report template or figure can change without a new version.
"""

from __future__ import annotations

import logging
from pathlib import Path

from inspectcnn import artifacts
from inspectcnn.config import Params

log = logging.getLogger(__name__)


def card_inputs(champion: str, kind: str, evaluation: dict, served, prepared_dir: Path, summary_path: Path,
                export_dir: Path) -> dict:
    """What the model card and the registered version say of the champion: its inference spec (the export
    stage's ``inference.json`` when there is one, else built as the export stage builds it) and data card."""
    from inspectcnn import serving

    spec_file = Path(export_dir) / artifacts.INFERENCE_SPEC
    spec = (serving.read_spec(spec_file) if spec_file.is_file()
            else serving.entry_spec(champion, served, evaluation, prepared_dir))
    data = dict(spec["data"])
    prepared = artifacts.read_json(summary_path) if Path(summary_path).is_file() else {}
    data["balance"] = {k: prepared[k]["positive_fraction"] for k in ("train", "val", "test")
                       if isinstance(prepared.get(k), dict) and "positive_fraction" in prepared[k]}
    return {"champion": champion, "kind": kind, "evaluation": evaluation, "spec": spec, "data": data,
            "cost": evaluation["cost"]}


def description_and_tags(card: dict, record: dict) -> tuple[str, dict[str, str]]:
    """The registered version's description (one paragraph) and tags, from the card's facts."""
    e, spec, name, kind = card["evaluation"], card["spec"], card["champion"], card["kind"]

    def shown(metric):
        interval = (e.get("ci95") or {}).get(metric)
        return f"{e[metric]:.3f}" + (f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "")

    description = (f"{name} ({kind}), TTA {spec['tta']}. Chosen on validation ({record['select_by']} "
                   f"{record['value']:.3f}). Test split (n={e['count']}, 95 % bootstrap "
                   f"intervals): accuracy {shown('accuracy')}, ROC-AUC {shown('roc_auc')}, F1 {shown('f1')}. Decision "
                   f"threshold {spec['threshold']:.4f} ({spec['threshold_rule']}); positive class "
                   f"{spec['positive_class']!r}. Input: {spec['preprocessing']}. Data: {spec['data'].get('source')}, "
                   f"manifest sha256 {str(spec['data'].get('manifest_sha256'))[:16]}. The pyfunc returns probability, "
                   "label and class; params={'threshold': t} overrides the threshold.")
    tags = {"entry": name, "kind": kind, "threshold": f"{spec['threshold']:.6f}",
            "threshold_rule": spec["threshold_rule"], "positive_class": spec["positive_class"],
            "classes": ",".join(spec["classes"]), "tta": spec["tta"],
            "input": f"{spec['input']['size']}x{spec['input']['size']}x{spec['input']['channels']}",
            "data_manifest_sha256": str(spec["data"].get("manifest_sha256")),
            "test_accuracy": f"{e['accuracy']:.4f}", "test_roc_auc": f"{e['roc_auc'] or 0:.4f}",
            "evaluate_run": e["cost"].get("mlflow_run_id") or "unknown",
            "selected_by": f"val_{record['select_by']}", f"val_{record['select_by']}": f"{record['value']:.4f}"}
    return description, tags


def register_version(params: Params, card: dict, served, artifacts_beside: list[Path], record: dict,
                     ood_bank: Path | None = None) -> str | None:
    """``served`` registered under ``register.registry_name`` with alias ``register.alias`` in its own
    MLflow run (``register@<entry>``), the files of ``artifacts_beside`` logged with it (and ``ood_bank``
    inside the model, when it outputs its features); its URI, or None when MLflow is optional
    (``mlflow.required: false``) and could not be reached."""
    from inspectcnn import tracking
    from inspectcnn.tracking import registry

    config, name = params.registry, card["champion"]
    description, tags = description_and_tags(card, record)
    with tracking.stage_run("register", "register", params,
                            {"entry": name, "registry_name": config.registry_name, "alias": config.alias,
                             "threshold": card["spec"]["threshold"]},
                            run_name=f"register@{name}", tags={"entry": name}) as run:
        for path in artifacts_beside:
            run.log_artifact(path)
        return registry.register_champion(served, card["spec"], registry_name=config.registry_name,
                                         alias=config.alias, run=run, description=description, tags=tags,
                                         ood_bank=ood_bank)


def edge_description(evaluation: dict, training: dict, spec: dict) -> tuple[str, dict[str, str]]:
    """The edge student's registered description and tags: what it was distilled from and how it compares."""
    versus = evaluation["vs_teacher"]["roc_auc"]
    interval = (evaluation.get("ci95") or {}).get("roc_auc") or [float("nan")] * 2
    description = (f"Edge student: one view of {training['student']}, distilled from the champion {training['teacher']} "
                   f"(TTA {training['teacher_tta']}) with keras.distillation.Distiller. Test split (n={evaluation['count']}): "
                   f"accuracy {evaluation['accuracy']:.3f}, ROC-AUC {evaluation['roc_auc']:.3f} [{interval[0]:.3f}, "
                   f"{interval[1]:.3f}]; minus its teacher {versus['difference']:+.4f} [{versus['ci95'][0]:+.4f}, "
                   f"{versus['ci95'][1]:+.4f}] (paired bootstrap, 95 %). Decision threshold {spec['threshold']:.4f} "
                   f"({spec['threshold_rule']}). Input: {spec['preprocessing']}.")
    tags = {"entry": "edge", "kind": "distilled", "teacher": training["teacher"], "student": training["student"],
            "threshold": f"{spec['threshold']:.6f}", "tta": "none", "positive_class": spec["positive_class"],
            "input": f"{spec['input']['size']}x{spec['input']['size']}x{spec['input']['channels']}",
            "test_accuracy": f"{evaluation['accuracy']:.4f}", "test_roc_auc": f"{evaluation['roc_auc'] or 0:.4f}",
            "test_roc_auc_minus_teacher": f"{versus['difference']:+.4f}",
            "evaluate_run": evaluation["cost"].get("mlflow_run_id") or "unknown"}
    return description, tags


def register_edge(params: Params, edge_dir: Path, prepared_dir: Path) -> str | None:
    """The distilled student of ``edge_dir`` registered beside the champion (alias ``register.edge_alias``);
    its URI, or None when MLflow is optional and could not be reached."""
    from inspectcnn import serving, tracking
    from inspectcnn.config import EDGE
    from inspectcnn.models.saving import load_model
    from inspectcnn.tracking import registry

    folder = artifacts.ModelFolder(edge_dir)
    if not folder.model.is_file():
        raise FileNotFoundError(f"{folder.model} not found: run the distil stage first (dvc repro distil)")
    evaluation, training = folder.read_evaluation(with_run=True), folder.read_training()
    student = load_model(folder.model)
    spec_file = Path(edge_dir) / artifacts.EDGE_EXPORT.name / artifacts.INFERENCE_SPEC
    spec = (serving.read_spec(spec_file) if spec_file.is_file()
            else serving.entry_spec(EDGE, student, evaluation, prepared_dir))
    description, tags = edge_description(evaluation, training, spec)
    config = params.registry
    with tracking.stage_run("register", "register", params,
                            {"entry": EDGE, "registry_name": config.registry_name, "alias": config.edge_alias,
                             "threshold": spec["threshold"]},
                            run_name=f"register@{EDGE}", tags={"entry": EDGE}) as run:
        for path in (folder.evaluation, Path(edge_dir) / artifacts.EDGE_EXPORT_METRICS.name):
            if path.is_file():
                run.log_artifact(path)
        return registry.register_champion(student, spec, registry_name=config.registry_name, alias=config.edge_alias,
                                         run=run, description=description, tags=tags)


def run(params: Params, models_dir: Path, prepared_dir: Path, summary_path: Path, champion_path: Path,
        export_dir: Path, export_files: tuple[Path, Path], card_path: Path, out: Path,
        edge_dir: Path | None = None) -> dict:
    """The `register` stage: the model card of the champion into ``card_path``, then its registered version,
    then the edge student's (``edge_dir``); what was registered (or why not) into ``out``."""
    from inspectcnn import champion as choice, dihedral, model_card, ood
    from inspectcnn.devices import environment
    from inspectcnn.models.saving import load_model

    record = choice.read(champion_path)
    name = record["champion"]
    if name not in params.entries():
        raise choice.ChampionError(f"{champion_path} names {name}, which is not an entry of params.yaml: "
                                   "run the champion stage again (dvc repro champion)")
    export_metrics = export_files[0]
    export = artifacts.read_export(*export_files)
    if export and export.get("champion") != name:
        raise choice.ChampionError(f"{export_metrics} exported {export.get('champion')}, but the champion is "
                                   f"{name}: run the export stage again (dvc repro export)")
    folder = artifacts.model_folder(name, models_dir)
    evaluation = folder.read_evaluation(with_run=True)
    served = dihedral.tta_model(load_model(folder.model), evaluation.get("tta", "none"))
    card = card_inputs(name, params.kind(name), evaluation, served, prepared_dir, summary_path, export_dir)
    ood_entry = card["spec"].get("ood")
    bank = Path(export_dir) / ood_entry["bank"] if ood_entry else None
    if bank is not None:  # registered with its features as a second output, scored against the export's bank
        if not bank.is_file():
            raise FileNotFoundError(f"{bank} not found: run the export stage again (dvc repro export)")
        served = ood.served_features_model(load_model(folder.model), evaluation.get("tta", "none"),
                                           tuple(ood_entry.get("stages") or ()))  # the features the bank holds
    config = params.registry

    def write_card(registered_as: str | None) -> None:
        artifacts.write_text(card_path, model_card.render(**card, export=export, registered=registered_as,
                                                          environment=environment(), choice=record))

    write_card(f"models:/{config.registry_name}@{config.alias}")
    beside = [card_path, *(p for p in export_files if export and Path(p).is_file())]
    uri = register_version(params, card, served, beside, record, bank)
    if uri is None:  # MLflow optional and unreachable: the card must not claim a registration
        write_card(None)
    edge_uri = register_edge(params, edge_dir, prepared_dir) if edge_dir is not None else None
    result = {"champion": name, "registry_name": config.registry_name, "alias": config.alias, "uri": uri,
              "reason": None if uri else "the MLflow tracking server could not be reached (mlflow.required: false)",
              "edge": {"alias": config.edge_alias, "uri": edge_uri} if edge_dir is not None else None}
    artifacts.write_json(out, result)
    return result
