"""Pipeline overhead: the project's training path against a bare ``model.fit`` on in-memory tensors.

    python benchmarks/pipeline_overhead.py                 # lenet, resnet18, vgg16 as in params.yaml
    python benchmarks/pipeline_overhead.py --models lenet --rounds 3 --epochs 6

Project path: prepared NumPy shards -> the PyDataset (resize, cache, shuffle, augment) -> ``training.train``
with every callback (BackupAndRestore, ModelCheckpoint, CSVLogger, NaN guard, throughput meter)
and per-epoch MLflow logging into a scratch SQLite store. Bare path: the same architecture, width,
input size, batch size, optimizer, loss, metrics and class weights, ``model.fit`` on NumPy arrays
already in memory (no augmentation, no callbacks). Both validate on the validation split every
epoch. The two are measured alternately (bare, project, bare, project, ...) so that a change in
machine load hits both.

Images/s are over the steady epochs (the second to the last, each including validation and all
its callbacks' work); the first epoch (graph tracing, cache filling) is reported separately.
Needs the prepared ELPV data (`dvc repro prepare`). Writes benchmarks/results/pipeline_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from inspectcnn import artifacts, tracking  # noqa: E402
from inspectcnn.config import load_params  # noqa: E402
from inspectcnn.data.dataset import load_split  # noqa: E402
from inspectcnn.data.store import read_meta  # noqa: E402
from inspectcnn.models import build_model  # noqa: E402
from inspectcnn.training import (  # noqa: E402
    make_optimizer, train_labels, class_weights, configure_precision, train,
)
from inspectcnn.training.callbacks import SteadyTimer  # noqa: E402


def in_memory(prepared: Path, split: str, size: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    data = load_split(prepared, split, image_size=size, batch_size=256, channels=channels)
    return np.concatenate([data[i][0] for i in range(len(data))]), data.labels


def compare(bare: list[SteadyTimer], project: list[SteadyTimer], steady_images: int) -> dict:
    """Median steady images/s and first-epoch seconds of both paths, and their ratio (project / bare)."""
    rate = lambda timers: round(statistics.median(steady_images / t.steady for t in timers), 1)  # noqa: E731
    row = {"bare_images_per_s": rate(bare), "project_images_per_s": rate(project),
           "bare_first_epoch_s": round(statistics.median(t.first for t in bare), 2),
           "project_first_epoch_s": round(statistics.median(t.first for t in project), 2)}
    row["ratio"] = round(row["project_images_per_s"] / row["bare_images_per_s"], 3)
    return row


def bare_fit(config, data, weights, epochs: int, seed: int) -> SteadyTimer:
    """Plain ``model.fit`` on arrays, with the same dtype policy and XLA setting the project uses."""
    (x, y), (xv, yv) = data
    keras.utils.set_random_seed(seed)
    configure_precision(config.mixed_precision)
    model = build_model(config.arch, x.shape[1:], width=config.width)
    model.compile(
        jit_compile=config.jit_compile,
        optimizer=make_optimizer(config, -(-len(x) // config.batch_size)),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc"),
                 keras.metrics.AUC(curve="PR", name="pr_auc")],
    )
    timer = SteadyTimer()
    model.fit(x, y, batch_size=config.batch_size, epochs=epochs, validation_data=(xv, yv),
              class_weight=weights, callbacks=[timer], shuffle=True, verbose=0)
    return timer


def project_fit(name: str, config, prepared: Path, scratch: Path, seed: int, round_: int) -> SteadyTimer:
    timer = SteadyTimer()
    with tracking.start_run(f"bench@{name}", experiment="pipeline-overhead", params=config.model_dump(),
                            tags={"benchmark": "pipeline_overhead"}) as run:
        train(name, config, prepared, scratch / f"out-{name}-{round_}", seed=seed, run=run,
              work_dir=scratch / f"work-{name}-{round_}", callbacks=[timer])
    return timer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=["lenet", "resnet18", "vgg16"],
                        help="entries of params.yaml models: (small, medium, large by default)")
    parser.add_argument("--epochs", type=int, default=5, help="per fit; the first is not in the ratio")
    parser.add_argument("--rounds", type=int, default=3, help="alternating bare/project pairs per model")
    parser.add_argument("--out", default="benchmarks/results/pipeline_overhead.json")
    args = parser.parse_args()

    params = load_params()
    prepared = artifacts.PREPARED
    meta = read_meta(prepared)
    train_count, val_count = meta["splits"]["train"]["count"], meta["splits"]["val"]["count"]
    scratch = Path(tempfile.mkdtemp(prefix="inspectcnn-overhead-"))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{scratch / 'mlflow.db'}"
    weights = class_weights(train_labels(prepared))

    results = []
    for name in args.models:
        config = params.model(name).model_copy(update={"epochs": args.epochs, "early_stopping_patience": 0})
        channels = config.channels or int(meta["channels"])
        data = (in_memory(prepared, "train", config.image_size, channels),
                in_memory(prepared, "val", config.image_size, channels))
        bare, project = [], []
        for round_ in range(args.rounds):
            for kind, runs in (("bare", bare), ("project", project)):
                timer = (bare_fit(config, data, weights, args.epochs, params.seed) if kind == "bare"
                         else project_fit(name, config, prepared, scratch, params.seed, round_))
                runs.append(timer)
                rate = train_count * (args.epochs - 1) / timer.steady
                print(f"{name:10s} round {round_} {kind:8s} first epoch {timer.first:6.2f} s, "
                      f"steady {rate:8.1f} train images/s", flush=True)
        row = {
            "model": name, "arch": config.arch, "width": config.width, "image_size": config.image_size,
            "batch_size": config.batch_size, "epochs_per_fit": args.epochs, "rounds": args.rounds,
            "train_images": train_count, "val_images": val_count,
            **compare(bare, project, train_count * (args.epochs - 1)),
        }
        results.append(row)
        print(f"{name:10s} bare {row['bare_images_per_s']:8.1f}  project {row['project_images_per_s']:8.1f} "
              f"images/s  ratio {row['ratio']:.3f} (target >= 0.95)", flush=True)

    out = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                       **__import__("inspectcnn.devices", fromlist=["versions"]).versions()},
           "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
