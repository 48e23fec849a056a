"""How much the preprocessing of ``inspectcnn predict`` changes the champion's output.

Training saw each image resized twice: by prepare to the stored size (data.image_size), then by the
input pipeline to the model's size. ``predict`` used to resize once, straight from the file to the
model's size. This script scores the validation images (never the test split) through both routes with
the champion as it is served (its test-time augmentation built in) and prints the probability
differences and the labels that flip at its threshold. ``predict`` now takes the training route
(inspectcnn.serving.preprocess), so the second column is what remains: zero by construction, checked.

    .venv/bin/python benchmarks/preprocess_parity.py [--model vgg16_hed] [--limit 395]

Needs the prepared ELPV data and the evaluated models (dvc repro).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image

RESULTS = Path("benchmarks/results/preprocess_parity.json")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="entry under models/ (default: the report's champion)")
    parser.add_argument("--limit", type=int, default=0, help="at most this many validation images (0: all)")
    args = parser.parse_args(argv)

    from inspectcnn import serving
    from inspectcnn.data.dataset import load_split
    from inspectcnn.data.images import read_image
    from inspectcnn.data.sources import list_items
    from inspectcnn.config import load_params

    name = args.model or json.loads(Path("reports/summary.json").read_text())["champion"]
    path = Path("models") / name / "model.keras"
    spec, origin = serving.find_spec(path)
    runner = serving.open_runner(path, tta=spec["tta"])
    size = spec["input"]["size"]
    params = load_params()
    by_source = {item.source: item for item in list_items(params.data).items}
    with open("data/prepared/manifest.csv") as handle:
        rows = [r for r in csv.DictReader(handle) if r["split"] == "val"]
    rows = rows[:args.limit] if args.limit else rows
    one_step, two_step = [], []
    for row in rows:
        pixels = read_image(by_source[row["source"]].path, spec["input"]["color_mode"])
        direct = np.asarray(Image.fromarray(pixels).resize((size, size), Image.Resampling.BOX), np.float32) / 255.0
        one_step.append(direct[..., None] if direct.ndim == 2 else direct)
        two_step.append(serving.preprocess(pixels, spec))
    p_one = np.concatenate([runner.predict(np.stack(one_step[i:i + 32])) for i in range(0, len(rows), 32)])
    p_two = np.concatenate([runner.predict(np.stack(two_step[i:i + 32])) for i in range(0, len(rows), 32)])
    # what the evaluate stage fed the model: the prepared shards through the input pipeline
    data = load_split("data/prepared", "val", image_size=size, batch_size=64, channels=spec["input"]["channels"])
    position = {item: i for i, item in enumerate(data.ids)}
    pipeline = np.concatenate([runner.predict(data[i][0]) for i in range(len(data))])
    p_pipe = np.array([pipeline[position[r["id"]]] for r in rows])
    t = spec["threshold"]
    result = {
        "model": name, "images": len(rows), "split": "val", "threshold": t, "spec_from": origin,
        "one_resize_vs_pipeline": {"max_abs_dp": float(np.abs(p_one - p_pipe).max()),
                                   "mean_abs_dp": float(np.abs(p_one - p_pipe).mean()),
                                   "labels_flipped": int(((p_one >= t) != (p_pipe >= t)).sum())},
        "predict_now_vs_pipeline": {"max_abs_dp": float(np.abs(p_two - p_pipe).max()),
                                    "mean_abs_dp": float(np.abs(p_two - p_pipe).mean()),
                                    "labels_flipped": int(((p_two >= t) != (p_pipe >= t)).sum())},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
