"""The ``inspectcnn`` console script: ``inspectcnn predict`` scores images with a trained model."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

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


def load_for_prediction(model_ref: str, workdir: Path):
    """A Keras model from a .keras path or a registry URI (models:/name@alias), loaded in safe mode."""
    if model_ref.startswith("models:/"):
        from inspectcnn import tracking

        path = tracking.download_keras_model(model_ref, workdir)
    else:
        path = Path(model_ref)
        if not path.is_file():
            raise FileNotFoundError(f"model {model_ref} not found (a .keras file or models:/name@alias)")
    from inspectcnn.models.saving import load_model

    return load_model(path), path


def predict(model_ref: str, targets: list[str], out: Path, threshold: float | None = None,
            batch_size: int = 32) -> dict:
    """Score every readable image; the CSV has path, probability, label; bad files are reported."""
    import numpy as np
    from PIL import Image
    from tqdm import tqdm

    from inspectcnn.data.images import BadImageError, read_image
    from inspectcnn.dvc_outputs import read_metrics, write_table

    files, problems = collect_images(targets)
    with tempfile.TemporaryDirectory() as workdir:
        model, path = load_for_prediction(model_ref, Path(workdir))
        if threshold is None:  # the threshold chosen on validation by the evaluate stage, if known
            eval_file = path.parent / "eval.json"
            threshold = float(read_metrics(eval_file)["threshold"]) if eval_file.is_file() else 0.5
        size, channels = int(model.input.shape[1]), int(model.input.shape[-1])
        rows, batch, names = [], [], []

        def flush():
            if batch:
                probabilities = np.asarray(model.predict_on_batch(np.stack(batch)), dtype=float).ravel()
                rows.extend({"path": str(n), "probability": round(float(p), 6), "label": int(p >= threshold)}
                            for n, p in zip(names, probabilities))
                batch.clear()
                names.clear()

        for file in tqdm(files, desc="predict", unit="img"):
            try:
                pixels = read_image(file, "grayscale" if channels == 1 else "rgb")
            except BadImageError as error:
                problems.append(str(error))
                continue
            image = Image.fromarray(pixels).resize((size, size), Image.Resampling.BOX)
            array = np.asarray(image, dtype="float32") / 255.0
            batch.append(array[..., None] if array.ndim == 2 else array)
            names.append(file)
            if len(batch) == batch_size:
                flush()
        flush()
    write_table(out, rows, ["path", "probability", "label"])
    for problem in problems:
        log.warning("skipped %s", problem)
    return {"scored": len(rows), "skipped": problems, "threshold": threshold}


def main(argv: list[str] | None = None) -> None:
    from inspectcnn.cli_support import setup_logging

    parser = argparse.ArgumentParser(prog="inspectcnn", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("predict", help="score images with a trained model")
    p.add_argument("--model", required=True, help="a .keras file or models:/<name>@<alias>")
    p.add_argument("--out", default="predictions.csv")
    p.add_argument("--threshold", type=float, default=None, help="default: the model's validation threshold")
    p.add_argument("images", nargs="+", help="image files or folders")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        result = predict(args.model, args.images, Path(args.out), args.threshold)
    except (FileNotFoundError, ValueError) as error:
        print(f"inspectcnn predict: error: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"{result['scored']} images scored (threshold {result['threshold']:.3f}) -> {args.out}; "
          f"{len(result['skipped'])} skipped" + "".join(f"\n  skipped: {s}" for s in result["skipped"]))


if __name__ == "__main__":
    main()
