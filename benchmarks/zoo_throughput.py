"""Training throughput of every registered architecture on random in-memory data (no pipeline).

    python benchmarks/zoo_throughput.py --size 64 --width 0.25 --channels 1

Prints images/s per architecture and writes benchmarks/results/zoo_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from inspectcnn.models import build_model, list_models  # noqa: E402
from inspectcnn.models.summary import count_macs  # noqa: E402


def measure(name: str, size: int, width: float, channels: int, batch: int, steps: int) -> dict:
    model = build_model(name, (size, size, channels), width=width)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.random((batch, size, size, channels), dtype=np.float32)
    y = rng.integers(0, 2, (batch, 1)).astype(np.float32)
    for _ in range(2):
        model.train_on_batch(x, y)  # trace and warm up
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    rate = steps * batch / (time.perf_counter() - start)
    return {"model": name, "size": size, "width": width, "channels": channels, "batch": batch,
            "params": model.count_params(), "macs": count_macs(model), "train_images_per_s": round(rate, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--models", nargs="*", default=None)
    parser.add_argument("--out", default="benchmarks/results/zoo_throughput.json")
    args = parser.parse_args()
    results = []
    for name in args.models or list_models():
        size = max(args.size, 64) if name == "alexnet" else args.size
        row = measure(name, size, args.width, args.channels, args.batch, args.steps)
        results.append(row)
        print(f"{name:12s} {row['size']:4d}px w{row['width']:<5} params {row['params']:>11,} "
              f"MACs {row['macs'] / 1e6:9.1f} M  {row['train_images_per_s']:8.1f} img/s", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
