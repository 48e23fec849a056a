"""Compute efficiency: achieved training FLOP/s of each architecture against this machine's matmul peak.

    python benchmarks/compute_efficiency.py                       # every params.yaml models entry
    python benchmarks/compute_efficiency.py --entries lenet vgg16 --variants default xla

Peak: float32 dense matmul (n x n by n x n, 2 n^3 FLOPs) with TensorFlow, the best of a few sizes.
Per models entry (its own size, width, batch): training images/s from `model.fit` on one in-memory
batch repeated (no input pipeline), steady epoch only, and the multiply-accumulates per image
from the layer shapes. Training FLOPs per image are taken as 6 x MACs (forward 2 x MACs, the
backward pass about twice the forward). Variants tried:
  default  - what the pipeline runs on a CPU (jit_compile auto = off, steps_per_execution 1)
  xla      - jit_compile=True
  spe8     - steps_per_execution=8 (fewer Python round trips per step)
Writes benchmarks/results/compute_efficiency.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from inspectcnn.config import load_params  # noqa: E402
from inspectcnn.models import build_model  # noqa: E402
from inspectcnn.models.summary import count_macs  # noqa: E402

VARIANTS = {
    "default": {"jit_compile": False, "steps_per_execution": 1},
    "xla": {"jit_compile": True, "steps_per_execution": 1},
    "spe8": {"jit_compile": False, "steps_per_execution": 8},
}


def matmul_peak(sizes=(1024, 2048, 4096), repeats: int = 5) -> float:
    best = 0.0
    for n in sizes:
        a = tf.random.uniform((n, n))
        b = tf.random.uniform((n, n))
        matmul = tf.function(lambda x, y: tf.linalg.matmul(x, y))
        matmul(a, b).numpy()
        for _ in range(repeats):
            started = time.perf_counter()
            matmul(a, b).numpy()
            best = max(best, 2 * n**3 / (time.perf_counter() - started))
    return best


class EpochTimer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = time.perf_counter() - self.started
        if epoch == 0:
            self.first = self.seconds  # tracing, and XLA compilation when on


def train_rate(config, channels: int, variant: dict, steps: int) -> tuple[float, int, bool, float]:
    keras.utils.set_random_seed(0)
    shape = (config.image_size, config.image_size, channels)
    model = build_model(config.arch, shape, width=config.width)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="binary_crossentropy", **variant)
    rng = np.random.default_rng(0)
    x = rng.random((config.batch_size, *shape), dtype=np.float32)
    y = rng.integers(0, 2, (config.batch_size, 1)).astype(np.float32)
    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    steps = max(steps, 2 * variant["steps_per_execution"])
    steps -= steps % variant["steps_per_execution"]
    timer = EpochTimer()
    model.fit(data, steps_per_epoch=steps, epochs=2, callbacks=[timer], verbose=0)  # epoch 1 traces/compiles
    # Keras falls back to no XLA (with a warning) when a layer declares it cannot be compiled.
    return steps * config.batch_size / timer.seconds, count_macs(model), bool(model.jit_compile), timer.first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", nargs="*", default=None, help="params.yaml models entries (default: all)")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--channels", type=int, default=1, help="1 for ELPV (grayscale)")
    parser.add_argument("--out", default="benchmarks/results/compute_efficiency.json")
    args = parser.parse_args()

    peak = matmul_peak()
    print(f"matmul peak: {peak / 1e9:.1f} GFLOP/s float32 ({tf.config.threading.get_intra_op_parallelism_threads()} "
          f"intra-op threads set, 0 = all {os.cpu_count()} cores)", flush=True)
    params = load_params()
    rows = []
    for name in args.entries or list(params.models):  # transfer entries are not registered architectures
        config = params.model(name)
        channels = config.channels or args.channels
        row = {"entry": name, "arch": config.arch, "image_size": config.image_size, "width": config.width,
               "batch_size": config.batch_size}
        for variant in args.variants:
            try:
                rate, macs, compiled, first = train_rate(config, channels, VARIANTS[variant], args.steps)
            except Exception as error:  # noqa: BLE001 - e.g. an op XLA cannot compile: record and go on
                reason = str(error).strip().splitlines()[0][:200]
                row[variant] = {"failed": f"{type(error).__name__}: {reason}"}
                print(f"{name:12s} {variant:8s} failed: {type(error).__name__}: {reason}", flush=True)
                continue
            flops = 6 * macs * rate
            row["macs"] = macs
            row[variant] = {"images_per_s": round(rate, 1), "gflops": round(flops / 1e9, 2),
                            "fraction_of_peak": round(flops / peak, 4), "xla_used": compiled,
                            "first_epoch_s": round(first, 1)}
            print(f"{name:12s} {variant:8s} {rate:9.1f} images/s  {flops / 1e9:7.2f} GFLOP/s  "
                  f"{100 * flops / peak:5.1f} % of peak, first epoch {first:5.1f} s{'  (XLA)' if compiled else ''}",
                  flush=True)
        rows.append(row)
    Path(args.out).write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "tensorflow": tf.__version__},
        "matmul_peak_gflops": round(peak / 1e9, 1), "flops_per_image": "6 x MACs", "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
