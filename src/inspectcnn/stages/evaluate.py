"""DVC stage `evaluate@<entry>` / `evaluate_transfer@<entry>`: test-set metrics, curves and cost of one model."""

from __future__ import annotations

import logging
from pathlib import Path

from inspectcnn import evaluation, paths
from inspectcnn.cli_support import entry_parser, run_stage
from inspectcnn.config import Params, load_params
from inspectcnn.data.dataset import load_split
from inspectcnn.dvc_outputs import read_split_metrics, write_metrics, write_table
from inspectcnn.models.saving import load_model
from inspectcnn.models.summary import count_macs

log = logging.getLogger(__name__)


def run(name: str, params: Params, prepared_dir: Path, model_dir: Path) -> dict:
    """Evaluate models/<name>/model.keras on the test split; writes eval.json and plot tables."""
    model_path = model_dir / "model.keras"
    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path} not found: run its train/transfer stage first")
    model = load_model(model_path)
    size, channels = int(model.input.shape[1]), int(model.input.shape[-1])
    load = dict(image_size=size, batch_size=64, channels=channels, with_ids=True)
    config = params.evaluate

    val = evaluation.predict(model, load_split(prepared_dir, "val", **load))
    threshold = evaluation.choose_threshold(val.labels, val.probabilities, config.threshold)
    test = evaluation.predict(model, load_split(prepared_dir, "test", **load))
    results = evaluation.classification_metrics(test.labels, test.probabilities, threshold, config.calibration_bins)
    results["threshold_rule"] = config.threshold if isinstance(config.threshold, str) else "fixed"
    results["groups"] = evaluation.per_group(test, threshold, config.calibration_bins)
    results["cost"] = {
        "params": int(model.count_params()),
        "macs": int(count_macs(model)),
        "input": f"{size}x{size}x{channels}",
    }
    # Latencies change from one execution to the next: eval_run.json, not eval.json.
    latency = {
        "latency_batch1": evaluation.latency(model, (size, size, channels), 1, config.latency_runs),
        f"latency_batch{config.latency_batch}": evaluation.latency(model, (size, size, channels),
                                                                   config.latency_batch, config.latency_runs),
    }
    training = read_split_metrics(model_dir)
    results["training"] = {k: training[k] for k in ("epochs_run", "best_val_auc") if k in training}

    roc, pr = evaluation.curves(test.labels, test.probabilities)
    write_table(model_dir / "roc.csv", roc)
    write_table(model_dir / "pr.csv", pr)
    predicted = (test.probabilities >= threshold).astype(int)
    write_table(model_dir / "predictions.csv", [
        {"id": i, "group": g, "actual": int(a), "probability": round(float(p), 6), "predicted": int(q)}
        for i, g, a, p, q in zip(test.ids, test.groups, test.labels, test.probabilities, predicted)
    ])
    write_metrics(model_dir / "eval.json", results)
    write_metrics(model_dir / "eval_run.json", latency)
    results["cost"].update(latency)
    _log_to_mlflow(name, params, training.get("mlflow_run_id"), results, model_dir)
    return results


def _log_to_mlflow(name: str, params: Params, train_run_id: str | None, results: dict, model_dir: Path) -> None:
    """A linked evaluation run ``evaluate@<name>`` (tag evaluates_run) with the test metrics."""
    from inspectcnn import tracking

    flat = {f"test_{k}": v for k, v in results.items() if isinstance(v, (int, float)) and v is not None}
    flat.update({f"test_{g}_{k}": v for g, m in results["groups"].items() for k, v in m.items()
                 if isinstance(v, (int, float)) and v is not None})
    flat.update({"macs": results["cost"]["macs"], "latency_batch1_ms": results["cost"]["latency_batch1"]["median_ms"]})
    tags = {**tracking.environment_tags(), "dvc_stage": f"evaluate@{name}", "kind": "evaluate",
            "evaluates_run": train_run_id or "unknown", "entry": name}
    with tracking.start_run(f"evaluate@{name}", experiment=params.mlflow.experiment,
                            params={"entry": name, **params.evaluate.model_dump()}, tags=tags,
                            required=params.mlflow.required) as run:
        run.log_metrics(flat)
        for table in ("predictions.csv", "roc.csv", "pr.csv", "eval.json", "eval_run.json"):
            run.log_artifact(model_dir / table)
    log.info("%s: test ROC-AUC %.4f, accuracy %.4f at threshold %.3f", name, results["roc_auc"] or float("nan"),
             results["accuracy"], results["threshold"])


def main(argv: list[str] | None = None) -> None:
    args = entry_parser(__doc__, "models: or transfer", output="--model-dir").parse_args(argv)

    def work():
        params = load_params(args.params)
        params.check_entry(args.name)
        return run(args.name, params, args.prepared, args.model_dir or paths.model_dir(args.name))

    results = run_stage(f"evaluate@{args.name}", work)
    print(f"evaluate@{args.name}: test accuracy {results['accuracy']:.4f}, ROC-AUC {results['roc_auc']:.4f}, "
          f"F1 {results['f1']:.4f} at threshold {results['threshold']:.3f}")


if __name__ == "__main__":
    main()
