"""The ``inspectcnn`` console script: ``inspectcnn predict`` scores images with a trained model."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from inspectcnn import artifacts

log = logging.getLogger(__name__)


def collect_images(targets: list[str]) -> tuple[list[Path], list[str]]:
    """Image files named or found (recursively) in folders; links leading outside a given folder are refused."""
    from inspectcnn.data.images import is_image_file

    found, problems = [], []
    for target in targets:
        path = Path(target)
        if path.is_dir():
            root = path.resolve()
            for candidate in sorted(path.rglob("*")):
                if candidate.resolve().is_relative_to(root):
                    if is_image_file(candidate):
                        found.append(candidate)
                else:
                    problems.append(f"{candidate}: points outside {path}, not followed")
        elif path.is_file():
            found.append(path)
        else:
            problems.append(f"{path}: no such file or folder")
    return found, problems


def resolve_model(model_ref: str, workdir: Path) -> Path:
    """A local model file: the path itself, or the registered package behind models:/name@alias downloaded."""
    if model_ref.startswith("models:/"):
        from inspectcnn.tracking import registry

        return registry.download_keras_model(model_ref, workdir)
    path = Path(model_ref)
    if not path.is_file():
        raise FileNotFoundError(f"model {model_ref} not found (a .keras, .onnx, .tflite or OpenVINO .xml file, "
                                "or models:/name@alias)")
    return path


def spec_of(path: Path) -> dict:
    """The inference spec a model file travels with; a bare ``.keras`` file gets threshold 0.5 and one resize
    (with a warning); an exported file without its spec is an error."""
    from inspectcnn import serving

    spec, origin = serving.find_spec(path)
    if spec is not None:
        log.info("threshold %.3f, input %s from %s", spec["threshold"], spec["preprocessing"], origin)
        return spec
    if serving.format_of(path) != "keras":
        raise serving.ServingError(f"{path}: no {serving.SPEC_FILE} beside it; an exported model needs the "
                                   "inference spec it was exported with (threshold, input size)")
    log.warning("%s: no %s or evaluation beside it: threshold 0.5 and a single resize to the model's input "
                "(not necessarily what it was trained with)", path, serving.SPEC_FILE)
    return serving.bare_spec(path)


def predict(model_ref: str, targets: list[str], out: Path, threshold: float | None = None,
            batch_size: int = 32) -> dict:
    """Score every readable image with any model file the pipeline wrote (Keras, exported, registered): the
    preprocessing and decision threshold travel with the model (inference.json); bad files are reported."""
    import numpy as np
    from tqdm import tqdm

    from inspectcnn import serving
    from inspectcnn.data.images import BadImageError
    from inspectcnn.artifacts import write_table

    serving.format_of(Path(model_ref)) if not model_ref.startswith("models:/") else None  # before any work
    files, problems = collect_images(targets)
    with tempfile.TemporaryDirectory() as workdir:
        path = resolve_model(model_ref, Path(workdir))
        spec = spec_of(path)
        if threshold is None:
            threshold = float(spec["threshold"])
        runner = serving.served_runner(path, spec)
        positive = spec["classes"][1]
        ood_threshold = (spec.get("ood") or {}).get("threshold")
        rows, batch, names = [], [], []

        def flush():
            if batch:
                probabilities, ood_scores = runner.scores(np.stack(batch))
                for index, (name, p) in enumerate(zip(names, probabilities)):
                    rows.append(decide(name, p, threshold, spec["classes"],
                                       None if ood_scores is None else float(ood_scores[index]), ood_threshold))
                batch.clear()
                names.clear()

        for file in tqdm(files, desc="predict", unit="img", disable=None):
            try:
                batch.append(serving.read_file(file, spec))
            except BadImageError as error:
                problems.append(str(error))
                continue
            names.append(file)
            if len(batch) == batch_size:
                flush()
        flush()
    write_table(out, rows, ["path", "probability", "label", "class", "ood_score", "in_distribution"])
    for problem in problems:
        log.warning("skipped %s", problem)
    counts = {name: sum(row["class"] == name for row in rows) for name in (*spec["classes"], UNKNOWN)}
    if ood_threshold is None:
        log.warning("%s carries no out-of-distribution score (only the exported ONNX file and the registered model "
                    "do): every image gets a decision, even one that is not a cell", path.name)
    return {"scored": len(rows), "skipped": problems, "threshold": threshold, "positive_class": positive,
            "counts": counts, "ood_threshold": ood_threshold}


UNKNOWN = "unknown"


def decide(name, probability: float, threshold: float, classes: list[str], ood_score: float | None,
           ood_threshold: float | None) -> dict:
    """One image's row: its probability, and its decision (label, class) unless it is out of distribution
    (score above the threshold the model travels with): then label -1 and class ``unknown``."""
    label = int(probability >= threshold)
    inside = None if ood_score is None or ood_threshold is None else bool(ood_score <= ood_threshold)
    return {"path": str(name), "probability": round(float(probability), 6),
            "label": label if inside is not False else -1, "class": classes[label] if inside is not False else UNKNOWN,
            "ood_score": "" if ood_score is None else round(ood_score, 6),
            "in_distribution": "" if inside is None else str(inside).lower()}


def main(argv: list[str] | None = None) -> None:
    from inspectcnn.stage_runner import setup_logging

    parser = argparse.ArgumentParser(prog="inspectcnn", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("predict", help="score images with a trained model")
    p.add_argument("--model", required=True, help="a .keras, .onnx, .tflite or OpenVINO .xml file (reports/export/), "
                   "or models:/<name>@<alias>")
    p.add_argument("--out", default=str(artifacts.PREDICT_OUT))
    p.add_argument("--threshold", type=float, default=None, help="default: the model's validation threshold")
    p.add_argument("images", nargs="+", help="image files or folders")
    args = parser.parse_args(argv)
    from inspectcnn import backend

    backend.apply_from_params([])  # params.yaml's backend, TensorFlow's start-up noise kept off a CPU machine
    setup_logging()
    try:
        result = predict(args.model, args.images, Path(args.out), args.threshold)
    except (FileNotFoundError, ValueError) as error:  # ServingError and the other user errors are ValueErrors
        print(f"inspectcnn predict: error: {error}", file=sys.stderr)
        sys.exit(2)
    counts = ", ".join(f"{n} {name}" for name, n in result["counts"].items())
    unknown = (f"{UNKNOWN}: out of distribution, score > {result['ood_threshold']:.3f}"
               if result["ood_threshold"] is not None else "no out-of-distribution score")
    print(f"{result['scored']} images scored: {counts} (label 1 = {result['positive_class']!r} when probability >= "
          f"{result['threshold']:.3f}; {unknown}) -> {args.out}; "
          f"{len(result['skipped'])} skipped" + "".join(f"\n  skipped: {s}" for s in result["skipped"]))


if __name__ == "__main__":
    main()
