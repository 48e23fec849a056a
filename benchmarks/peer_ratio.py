"""Peer ratio on the CPU: the same ResNet-18 (1 channel, 64 px, batch 32, Adam 1e-3, binary cross-entropy,
2 threads) trained by PyTorch eager and by Keras, in images/s, and where the project's own training path
spends its time.

Every variant trains on the same images: the prepared training split (``--prepared``, resized to 64 px, in
memory as float32) or, without one, seeded random images of that shape. Each variant runs in its own process
(the Keras backend is chosen at import), trains ``--epochs`` epochs and reports the median images/s of the
epochs after the first (the first one traces and compiles). Variants:

  torch            PyTorch eager: torchvision's ResNet-18 (1-channel stem, one logit), DataLoader over tensors
  keras_tf         bare Keras on TensorFlow: model.fit on the in-memory arrays, loss only (no metrics)
  keras_tf_xla     the same with jit_compile=True
  keras_tf_metrics the same as keras_tf with the project's metrics (accuracy, ROC-AUC, PR-AUC: compile_binary)
  project          the train stage's own path: the prepared split through inspectcnn's input pipeline
                   (load_split: shuffled, resized, dihedral/brightness/contrast augmentation as train: says),
                   compile_binary, and the phase callbacks (checkpoint-free: resume backup, history, meter)
  input_only       that input pipeline alone, one pass over the batches (no model): its images/s
  keras_tf_no_onednn  keras_tf with TensorFlow's oneDNN graph rewrites off (TF_ENABLE_ONEDNN_OPTS=0)
  keras_tf_interop1   keras_tf with one inter-op thread (TF_NUM_INTEROP_THREADS=1: ops run one after another,
                      each on both cores)
  keras_jax        bare Keras on JAX (model.fit on the arrays)
  keras_torch      bare Keras on PyTorch
  profile_torch    one PyTorch epoch under torch.profiler: the ops' share of self CPU time
  profile_keras_tf one bare Keras-TensorFlow epoch under the TensorFlow profiler, read with xprof (pip install
                   xprof): the op types' share of self time

    python benchmarks/peer_ratio.py                         # every variant, 4 epochs each
    python benchmarks/peer_ratio.py --variants torch keras_tf --epochs 3

Prints the table and writes benchmarks/results/peer_ratio.json. Ratios are only meaningful within one run on
one machine (run nothing else beside it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "peer_ratio.json"
SIZE, BATCH, THREADS, RATE = 64, 32, 2, 1e-3
VARIANTS = ("torch", "keras_tf", "keras_tf_xla", "keras_tf_metrics", "project", "input_only", "keras_tf_no_onednn",
            "keras_tf_interop1", "keras_jax", "keras_torch", "profile_torch", "profile_keras_tf")
BACKEND = {"keras_jax": "jax", "keras_torch": "torch"}
ENVIRONMENT = {"keras_tf_no_onednn": {"TF_ENABLE_ONEDNN_OPTS": "0"}, "keras_tf_interop1": {"TF_NUM_INTEROP_THREADS": "1"}}


def images(prepared: Path | None, count: int, seed: int, cache: Path):
    """(x NHWC float32 in [0, 1], y float32) at 64 px: the prepared training split, else random images; read
    once by the parent (through inspectcnn, which imports TensorFlow) into ``cache``, which the children load
    (PyTorch and TensorFlow in one process crash here)."""
    import numpy as np

    if cache.is_file():
        with np.load(cache) as stored:
            return stored["x"], stored["y"]
    cache.parent.mkdir(parents=True, exist_ok=True)
    if prepared is not None and (prepared / "meta.json").is_file():
        from inspectcnn.data.dataset import load_split

        data = load_split(prepared, "train", image_size=SIZE, batch_size=256, channels=1)
        x = np.concatenate([data[i][0] for i in range(len(data))])[:count].astype("float32")
        y = np.concatenate([data[i][1] for i in range(len(data))]).reshape(-1, 1)[:count].astype("float32")
    else:
        rng = np.random.default_rng(seed)
        x, y = rng.random((count, SIZE, SIZE, 1), dtype=np.float32), rng.integers(0, 2, (count, 1)).astype("float32")
    np.savez(cache, x=x, y=y)
    return x, y


def epoch_rates(durations: list[float], count: int) -> float:
    """Median images/s of the epochs after the first."""
    steady = durations[1:] or durations
    return round(count / statistics.median(steady), 1)


def run_torch(x, y, epochs: int) -> dict:
    import torch
    import torchvision

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=1)
    model.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=RATE)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    data = torch.utils.data.TensorDataset(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), torch.from_numpy(y))
    loader = torch.utils.data.DataLoader(data, batch_size=BATCH, shuffle=True)
    durations = []
    model.train()
    for _ in range(epochs):
        begin = time.perf_counter()
        for xb, yb in loader:
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
        durations.append(time.perf_counter() - begin)
    return {"images_per_s": epoch_rates(durations, len(x)), "epoch_s": [round(d, 2) for d in durations],
            "params": sum(p.numel() for p in model.parameters()), "runtime": f"torch {torch.__version__}"}


def epoch_timer():
    """A Keras callback whose ``durations`` lists each epoch's wall time."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.durations: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.begin = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.durations.append(time.perf_counter() - self.begin)

    return EpochTimer()


def keras_model():
    import keras

    from inspectcnn.models import build_model

    keras.utils.set_random_seed(0)
    return build_model("resnet18", (SIZE, SIZE, 1), width=1.0)


def run_keras(x, y, epochs: int, *, jit_compile=False, metrics=False) -> dict:
    import keras

    from inspectcnn.training import compile_binary

    model = keras_model()
    optimizer = keras.optimizers.Adam(RATE)
    if metrics:
        compile_binary(model, optimizer, jit_compile=jit_compile)
    else:
        model.compile(optimizer=optimizer, loss="binary_crossentropy", jit_compile=jit_compile)
    timer = epoch_timer()
    model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=True, verbose=0, callbacks=[timer])
    return {"images_per_s": epoch_rates(timer.durations, len(x)), "epoch_s": [round(d, 2) for d in timer.durations],
            "params": int(model.count_params()), "runtime": f"keras {keras.__version__} on {keras.backend.backend()}"}


def run_project(prepared: Path, epochs: int, work: Path, input_only: bool = False) -> dict:
    import keras

    from inspectcnn.config import TrainConfig
    from inspectcnn.data.dataset import load_split
    from inspectcnn.training import NanGuard, ThroughputMeter, compile_binary, phase_callbacks
    from inspectcnn.training.optim import build_optimizer

    config = TrainConfig()  # the train: defaults (augmentation, Adam, cosine) at 64 px, batch 32
    data = load_split(prepared, "train", shuffle=True, augment=config.augment, seed=0, image_size=SIZE,
                      batch_size=BATCH, channels=1)
    count = len(data.ids)
    if input_only:
        durations = []
        for epoch in range(epochs):
            begin = time.perf_counter()
            for i in range(len(data)):
                data[i]
            data.on_epoch_end()
            durations.append(time.perf_counter() - begin)
        return {"images_per_s": epoch_rates(durations, count), "epoch_s": [round(d, 2) for d in durations],
                "runtime": "inspectcnn input pipeline"}
    model = keras_model()
    compile_binary(model, build_optimizer("adam", RATE, schedule="cosine", steps=len(data) * epochs))
    timer = epoch_timer()
    shutil.rmtree(work, ignore_errors=True)  # a resume backup of an earlier run would skip epochs
    work.mkdir(parents=True, exist_ok=True)
    callbacks = phase_callbacks(work / "backup", work / "history.csv", ThroughputMeter(count), NanGuard())
    model.fit(data, epochs=epochs, verbose=0, callbacks=[timer, *callbacks])
    return {"images_per_s": epoch_rates(timer.durations, count), "epoch_s": [round(d, 2) for d in timer.durations],
            "params": int(model.count_params()), "runtime": f"keras {keras.__version__} on {keras.backend.backend()}"}


def top_ops(times: dict[str, float], count: int = 8) -> dict:
    """{op: share of the epoch's op self time} of the ``count`` largest, plus the total in seconds."""
    total = sum(times.values())
    ranked = sorted(times.items(), key=lambda item: -item[1])[:count]
    return {"op_self_s": round(total, 2), "top": {name: round(t / total, 3) for name, t in ranked}}


def profile_torch(x, y) -> dict:
    """One epoch of the PyTorch loop under torch.profiler (after a warm-up epoch): self CPU time per op."""
    import torch
    import torchvision
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=1)
    model.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    optimizer, loss_fn = torch.optim.Adam(model.parameters(), lr=RATE), torch.nn.BCEWithLogitsLoss()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(
        torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), torch.from_numpy(y)), batch_size=BATCH, shuffle=True)

    def epoch():
        for xb, yb in loader:
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(xb), yb).backward()
            optimizer.step()

    epoch()
    begin = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        epoch()
    wall = time.perf_counter() - begin
    times = {e.key: e.self_cpu_time_total / 1e6 for e in prof.key_averages()}
    return {"epoch_s": round(wall, 2), **top_ops(times), "runtime": f"torch {torch.__version__}"}


def profile_keras_tf(x, y, work: Path) -> dict:
    """One epoch of bare Keras-TensorFlow ``fit`` under the TensorFlow profiler (after a warm-up epoch), read
    back with xprof's framework_op_stats: self time per TensorFlow op type (needs ``pip install xprof``)."""
    import keras
    import tensorflow as tf
    from xprof.convert import raw_to_tool_data

    model = keras_model()
    model.compile(optimizer=keras.optimizers.Adam(RATE), loss="binary_crossentropy")
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=True, verbose=0)
    logdir = work / "tf-profile"
    shutil.rmtree(logdir, ignore_errors=True)
    begin = time.perf_counter()
    tf.profiler.experimental.start(str(logdir))
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=True, verbose=0)
    tf.profiler.experimental.stop()
    wall = time.perf_counter() - begin
    planes = sorted(str(p) for p in logdir.rglob("*.xplane.pb"))
    data, _ = raw_to_tool_data.xspace_to_tool_data(planes, "framework_op_stats", {})
    table = json.loads(data)
    table = table[0] if isinstance(table, list) else table
    columns = [c["id"] for c in table["cols"]]
    times: dict[str, float] = {}
    for row in table["rows"]:
        values = dict(zip(columns, (cell.get("v") if isinstance(cell, dict) else cell for cell in row["c"])))
        if values.get("host_or_device", "Host") != "Host" or values.get("type") in (None, "IDLE"):
            continue
        times[values["type"]] = times.get(values["type"], 0.0) + float(values.get("total_self_time") or 0) / 1e6
    return {"epoch_s": round(wall, 2), **top_ops(times), "runtime": f"keras {keras.__version__} on tensorflow"}


def one(variant: str, prepared: Path | None, count: int, epochs: int, work: Path) -> dict:
    """The variant in this process (the child)."""
    if variant in ("project", "input_only"):
        if prepared is None or not (prepared / "meta.json").is_file():
            return {"skipped": "needs a prepared data folder (--prepared; dvc repro prepare)"}
        return run_project(prepared, epochs, work, input_only=variant == "input_only")
    x, y = images(prepared, count, 0, work.parent / "images.npz")
    if variant == "torch":
        return run_torch(x, y, epochs)
    if variant == "profile_torch":
        return profile_torch(x, y)
    if variant == "profile_keras_tf":
        return profile_keras_tf(x, y, work)
    return run_keras(x, y, epochs, jit_compile=variant == "keras_tf_xla", metrics=variant == "keras_tf_metrics")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--prepared", type=Path, default=ROOT / "data" / "prepared")
    parser.add_argument("--images", type=int, default=1837, help="training images per epoch (at most the split)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--work", type=Path, default=Path("/tmp/inspectcnn-peer-ratio"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    prepared = args.prepared if (args.prepared / "meta.json").is_file() else None
    if args.child == "data":
        images(prepared, args.images, 0, args.work / "images.npz")
        return
    if args.child:
        print("RESULT " + json.dumps(one(args.child, prepared, args.images, args.epochs, args.work / args.child)))
        return
    (args.work / "images.npz").unlink(missing_ok=True)
    if any(v not in ("project", "input_only") for v in args.variants):
        subprocess.run([sys.executable, __file__, "--child", "data", "--prepared", str(args.prepared), "--images",
                        str(args.images), "--work", str(args.work)], check=True, capture_output=True,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    rows = {}
    for variant in args.variants:
        env = {**os.environ, "KERAS_BACKEND": BACKEND.get(variant, "tensorflow"), "OMP_NUM_THREADS": str(THREADS),
               "TF_NUM_INTRAOP_THREADS": str(THREADS), "TF_CPP_MIN_LOG_LEVEL": "3", **ENVIRONMENT.get(variant, {})}
        begin = time.perf_counter()
        done = subprocess.run([sys.executable, __file__, "--child", variant, "--prepared", str(args.prepared),
                               "--images", str(args.images), "--epochs", str(args.epochs), "--work", str(args.work)],
                              env=env, capture_output=True, text=True)
        line = next((l for l in done.stdout.splitlines() if l.startswith("RESULT ")), None)
        rows[variant] = (json.loads(line[7:]) if line else
                         {"failed": f"exit {done.returncode}: " + (done.stderr.strip().splitlines() or [""])[-1][:300]})
        rows[variant]["process_s"] = round(time.perf_counter() - begin, 1)
        print(f"{variant}: {rows[variant]}", file=sys.stderr)
    if RESULTS.is_file():  # a run of some variants keeps the others' rows measured with the same settings
        earlier = json.loads(RESULTS.read_text())
        if (earlier.get("images"), earlier.get("epochs")) == (args.images, args.epochs):
            rows = {**{k: v for k, v in earlier["rows"].items() if k not in rows}, **rows}
    reference = rows.get("torch", {}).get("images_per_s")
    for row in rows.values():
        if reference and row.get("images_per_s"):
            row["vs_torch"] = round(row["images_per_s"] / reference, 2)
    record = {"machine": platform.processor() or platform.machine(), "cores": os.cpu_count(),
              "avx512": "avx512f" in Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else None,
              "data": str(prepared) if prepared else "random", "images": args.images, "epochs": args.epochs,
              "rows": rows}
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(f"ResNet-18, 1 channel, {SIZE} px, batch {BATCH}, Adam {RATE:g}, {THREADS} threads; median images/s of "
          f"epochs 2-{args.epochs} ({record['cores']} cores, AVX-512: {record['avx512']})\n")
    print("| variant | images/s | x PyTorch | params |")
    print("|---|---|---|---|")
    for name, row in rows.items():
        shown = row.get("images_per_s", row.get("skipped") or row.get("failed"))
        print(f"| {name} | {shown} | {row.get('vs_torch', '')} | {row.get('params', '')} |")
    for name, row in rows.items():
        if "top" in row:
            print(f"\n{name}: one epoch {row['epoch_s']} s, op self time {row['op_self_s']} s; largest shares: "
                  + ", ".join(f"{op} {share:.0%}" for op, share in row["top"].items()))


if __name__ == "__main__":
    main()
