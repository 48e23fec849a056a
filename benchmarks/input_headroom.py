"""Input-pipeline headroom: the loader's images/s with no model against the fastest model's training images/s.

    python benchmarks/input_headroom.py

The input side is the project's own `load_split` on the prepared training split, exactly as
training uses it (memory-mapped NumPy shards, resize and cache, shuffle, batch, augment with
params.yaml's `train.augment`), iterated through Keras' own PyDataset adapter with no model for
several epochs, under the Keras backend in force (KERAS_BACKEND); the steady epochs (second
onwards, cache filled) count. The model side is every params.yaml models entry at its own size,
width and batch, trained on in-memory batches (`zoo_throughput.measure`); the fastest one is the
one the input pipeline must outrun. Target: input >= 10x the fastest model.
Needs the prepared data (`dvc repro prepare`). Writes benchmarks/results/input_headroom.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from zoo_throughput import measure  # noqa: E402

from inspectcnn import artifacts  # noqa: E402
from inspectcnn.config import load_params  # noqa: E402
from inspectcnn.data.dataset import load_split  # noqa: E402
from inspectcnn.data.store import read_meta  # noqa: E402


def input_rate(config, prepared: Path, channels: int, epochs: int, seed: int) -> tuple[float, float]:
    data = load_split(prepared, "train", image_size=config.image_size, batch_size=config.batch_size,
                      channels=channels, shuffle=True, augment=config.augment, seed=seed, cache=config.cache)
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    adapter = PyDatasetAdapter(data, shuffle=False)  # what Keras' fit iterates
    walls, cpus = [], []
    for _ in range(epochs):
        adapter.on_epoch_begin()
        started, cpu = time.perf_counter(), time.process_time()
        count = sum(int(batch[0].shape[0]) for batch in adapter.get_numpy_iterator())
        walls.append(count / (time.perf_counter() - started))
        cpus.append(count / (time.process_time() - cpu))
        adapter.on_epoch_end()
    return statistics.median(walls[1:]), statistics.median(cpus[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=6, help="input-pipeline epochs (the first is not counted)")
    parser.add_argument("--steps", type=int, default=10, help="training steps per model")
    parser.add_argument("--out", default="benchmarks/results/input_headroom.json")
    args = parser.parse_args()

    params = load_params()
    meta = read_meta(artifacts.PREPARED)
    models = []
    for name in params.models:  # the networks trained from scratch (transfer entries are not registered)
        config = params.model(name)
        channels = config.channels or int(meta["channels"])
        row = measure(config.arch, config.image_size, config.width, channels, config.batch_size, args.steps)
        models.append({"entry": name, **row})
        print(f"model {name:12s} {row['train_images_per_s']:8.1f} train images/s", flush=True)
    fastest = max(models, key=lambda row: row["train_images_per_s"])
    config = params.model(fastest["entry"])
    channels = config.channels or int(meta["channels"])
    wall, cpu = input_rate(config, artifacts.PREPARED, channels, args.epochs, params.seed)
    headroom = wall / fastest["train_images_per_s"]
    print(f"input pipeline ({config.image_size} px, batch {config.batch_size}, augment "
          f"{config.augment.model_dump()}): {wall:,.0f} images/s ({cpu:,.0f} per CPU-second)")
    print(f"fastest model {fastest['entry']}: {fastest['train_images_per_s']:,.0f} images/s; "
          f"headroom {headroom:.1f}x (target >= 10x)")
    Path(args.out).write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "input_images_per_s": round(wall, 1), "input_images_per_cpu_s": round(cpu, 1),
        "image_size": config.image_size, "batch_size": config.batch_size, "augment": config.augment.model_dump(),
        "fastest_model": fastest["entry"], "fastest_model_images_per_s": fastest["train_images_per_s"],
        "headroom": round(headroom, 2), "models": models}, indent=2) + "\n")


if __name__ == "__main__":
    main()
