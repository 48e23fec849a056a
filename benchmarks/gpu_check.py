"""The GPU check: the full-size configuration on one GPU under Keras-JAX, in one go (< 8 minutes on an H100).

    bash benchmarks/gpu_check.sh                      # on the GPU machine, with .gpu/ carried (gpu_pack.py)
    KERAS_BACKEND=jax python benchmarks/gpu_check.py --prepared data/prepared --smoke   # CPU rehearsal

Stages, each timed (wall seconds):
1. unpack: the carried ELPV pack (JPEG, 224 px) into a prepared folder of this project's format;
2. ResNet-50 and VGG-16 from scratch at 224 px, RGB, full width, mixed precision and XLA as
   ``mixed_precision: auto`` / ``jit_compile: auto`` pick them: the project's training path
   (``training.train``: PyDataset input with dihedral + brightness/contrast augmentation, every callback)
   against a bare Keras ``fit`` on in-memory arrays (same model, batch, policy, XLA; no augmentation);
   images/s of the steady epochs (the first, with compilation, apart), then test accuracy and ROC-AUC
   (threshold chosen on validation);
3. the hed-VGG-16 transfer at 224 px with the published GPU recipe (whole base fine-tuned, dihedral
   augmentation on the fly, cosine), evaluated with flips test-time augmentation;
4. bare torchvision ResNet-50 on the same GPU (bf16 autocast, channels-last, cuDNN autotuning, data on
   the GPU), in its own process: the reference for Keras-JAX's ResNet-50 images/s.

Prints one table and writes the numbers as JSON (--out). Goals: project path >= 0.95x bare
Keras; Keras-JAX ResNet-50 >= 0.9x bare PyTorch.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


# --------------------------------------------------------------------------- bare PyTorch (own process)


def torch_resnet50(size: int, batch: int, steps: int) -> dict:
    """Bare torchvision ResNet-50 training steps: bf16 autocast, channels-last, data already on the device."""
    import torch
    import torchvision

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cudnn.benchmark = True
    model = torchvision.models.resnet50(num_classes=1).to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), 1e-4)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    x = torch.rand(batch, 3, size, size, device=device).to(memory_format=torch.channels_last)
    y = (torch.rand(batch, 1, device=device) > 0.5).float()

    def step():
        with torch.autocast(device, dtype=torch.bfloat16):
            loss = loss_fn(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(max(3, steps // 5)):  # warm-up: cuDNN autotuning
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - start
    name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    return {"images_per_s": round(steps * batch / wall, 1), "device": name, "torch": torch.__version__}


# --------------------------------------------------------------------------- data


def unpack(pack: Path, out: Path) -> Path:
    """The carried JPEG pack as a prepared folder (uint8 NumPy shards, <split>.csv, meta.json, manifest.csv)."""
    from PIL import Image

    from inspectcnn.data.store import STORAGE_FORMAT

    with zipfile.ZipFile(pack) as archive:
        rows = list(csv.DictReader(io.StringIO(archive.read("index.csv").decode())))
        classes = archive.read("classes.txt").decode().split("\n")
        out.mkdir(parents=True, exist_ok=True)
        splits = {}
        for split in ("train", "val", "test"):
            members = [r for r in rows if r["split"] == split]
            images = np.stack([np.asarray(Image.open(io.BytesIO(archive.read(f"{r['id']}.jpg"))))[..., None]
                               for r in members])
            np.save(out / f"{split}-00000.npy", images)
            with (out / f"{split}.csv").open("w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["id", "label", "group"])
                writer.writerows([r["id"], r["label"], r["group"]] for r in members)
            splits[split] = {"count": len(members), "shards": [f"{split}-00000.npy"]}
    with (out / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "label", "class", "group", "split", "probability"])
        writer.writeheader()
        writer.writerows({**r, "class": classes[int(r["label"])]} for r in rows)
    meta = {"source": "elpv", "classes": classes, "image_size": int(images.shape[1]), "channels": 1,
            "format": STORAGE_FORMAT, "has_groups": True, "splits": splits}
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    return out


# --------------------------------------------------------------------------- Keras runs


def steady_timer():
    from inspectcnn.training.callbacks import SteadyTimer

    return SteadyTimer()


def test_metrics(model, prepared: Path, tta: str = "none") -> dict:
    """Test accuracy and ROC-AUC, the threshold chosen on validation (max F1), as the evaluate stage."""
    from inspectcnn import dihedral, scoring
    from inspectcnn.data.dataset import load_split

    model = dihedral.tta_model(model, tta)
    size, channels = int(model.input.shape[1]), int(model.input.shape[-1])
    load = dict(image_size=size, batch_size=128, channels=channels)
    val = scoring.predict(model, load_split(prepared, "val", **load))
    threshold = scoring.choose_threshold(val.labels, val.probabilities, "max_f1")
    test = scoring.predict(model, load_split(prepared, "test", **load))
    found = scoring.classification_metrics(test.labels, test.probabilities, threshold, 10)
    return {"test_accuracy": round(found["accuracy"], 4), "test_roc_auc": round(found["roc_auc"], 4),
            "val_roc_auc": round(float(scoring.classification_metrics(
                val.labels, val.probabilities, threshold, 10)["roc_auc"]), 4)}


def in_memory(prepared: Path, split: str, size: int, channels: int):
    from inspectcnn.data.dataset import load_split

    data = load_split(prepared, split, image_size=size, batch_size=256, channels=channels)
    return np.concatenate([data[i][0] for i in range(len(data))]), data.labels


def scratch_pair(arch: str, args, prepared: Path, work: Path) -> dict:
    """The project's training path and a bare Keras fit, same model, batch, precision and XLA."""
    import keras

    from inspectcnn.config import TrainConfig
    from inspectcnn.models import build_model
    from inspectcnn.models.saving import load_model
    from inspectcnn.training import class_weights, configure_precision, make_optimizer, train, train_labels
    from inspectcnn.training.fit import compile_binary

    config = TrainConfig(arch=arch, image_size=args.size, channels=3, width=args.width, batch_size=args.batch,
                         epochs=args.epochs, learning_rate=args.lr[arch], warmup_epochs=1, early_stopping_patience=0,
                         mixed_precision="auto", jit_compile="auto",
                         augment={"flip": "none", "dihedral": True, "brightness": 0.1, "contrast": 0.1})
    timer = steady_timer()
    started = time.perf_counter()
    result = train(arch, config, prepared, work / f"out-{arch}", seed=42, work_dir=work / f"work-{arch}",
                   callbacks=[timer])
    project_wall = time.perf_counter() - started
    from inspectcnn.data.store import read_meta

    train_count = int(read_meta(prepared)["splits"]["train"]["count"])
    row = {"arch": arch, "precision": result.metrics["precision_policy"], "batch": args.batch,
           "project_images_per_s": round(train_count * (args.epochs - 1) / timer.steady, 1),
           "project_first_epoch_s": round(timer.first, 1), "project_wall_s": round(project_wall, 1)}
    row.update(test_metrics(load_model(work / f"out-{arch}" / "model.keras"), prepared))

    x, y = in_memory(prepared, "train", args.size, 3)
    xv, yv = in_memory(prepared, "val", args.size, 3)
    keras.utils.set_random_seed(42)
    configure_precision("auto")
    model = build_model(arch, x.shape[1:], width=args.width)
    compile_binary(model, make_optimizer(config, -(-len(x) // args.batch)), jit_compile="auto")
    timer = steady_timer()
    started = time.perf_counter()
    model.fit(x, y, batch_size=args.batch, epochs=args.epochs, validation_data=(xv, yv),
              class_weight=class_weights(train_labels(prepared)), callbacks=[timer], verbose=0)
    row.update({"bare_images_per_s": round(len(x) * (args.epochs - 1) / timer.steady, 1),
                "bare_first_epoch_s": round(timer.first, 1), "bare_wall_s": round(time.perf_counter() - started, 1)})
    row["project_over_bare"] = round(row["project_images_per_s"] / row["bare_images_per_s"], 3)
    keras.mixed_precision.set_global_policy("float32")
    return row


def transfer_run(args, prepared: Path, work: Path) -> dict:
    from inspectcnn.config import TransferConfig
    from inspectcnn.models.saving import load_model
    from inspectcnn.transfer.phases import run_transfer

    config = TransferConfig(backbone="vgg16", weights="hed-vgg16", image_size=args.size, head=(256,), dropout=0.4,
                            frozen_epochs=2, learning_rate=1e-3, finetune_epochs=args.transfer_epochs,
                            finetune_from="block5_conv1" if args.smoke else "block1_conv1",
                            finetune_learning_rate=1e-4, schedule="cosine",
                            weight_decay=1e-4, cache_features=False, batch_size=args.batch // 2,
                            augment={"flip": "none", "dihedral": True}, mixed_precision="auto")
    started = time.perf_counter()
    result = run_transfer("hed_vgg16", config, prepared, work / "out-hed", seed=42, work_dir=work / "work-hed")
    wall = time.perf_counter() - started
    row = {"model": "hed-VGG-16 transfer", "image_size": args.size, "epochs": 2 + args.transfer_epochs,
           "wall_s": round(wall, 1), "finetune_images_per_s": result.metrics.get("finetune_images_per_s")}
    row.update(test_metrics(load_model(work / "out-hed" / "model.keras"), prepared, tta="flips"))
    return row


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pack", type=Path, default=REPO / ".gpu")
    parser.add_argument("--prepared", type=Path, help="use a prepared folder instead of unpacking --pack")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=5, help="from-scratch epochs per run (the first is compile)")
    parser.add_argument("--transfer-epochs", type=int, default=25)
    parser.add_argument("--torch-steps", type=int, default=60)
    parser.add_argument("--smoke", action="store_true", help="a CPU rehearsal: 32 px, width 0.125, 2 epochs")
    parser.add_argument("--torch-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--skip", nargs="*", default=[], choices=["resnet50", "vgg16", "transfer", "torch"])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", tempfile.gettempdir())) / "gpu_check.json")
    args = parser.parse_args()
    if args.smoke:
        args.size, args.width, args.batch, args.epochs = 32, 0.125, 32, 2
        args.transfer_epochs, args.torch_steps = 1, 2
    args.lr = {"resnet50": 1e-3, "vgg16": 1e-4}
    if args.torch_only:
        print(json.dumps(torch_resnet50(args.size, args.batch, args.torch_steps)))
        return

    import keras

    from inspectcnn.devices import describe, versions

    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    stages, results = {}, {"device": describe(), "versions": versions(), "python": platform.python_version(),
                           "size": args.size, "batch": args.batch, "epochs": args.epochs}
    started = time.perf_counter()
    prepared = args.prepared or unpack(args.pack / "elpv224.zip", work / "prepared")
    stages["unpack"] = round(time.perf_counter() - started, 1)
    print(f"device: {results['device']}; {results['versions']}", flush=True)

    results["scratch"] = []
    for arch in ("resnet50", "vgg16"):
        if arch in args.skip:
            continue
        started = time.perf_counter()
        row = scratch_pair(arch, args, prepared, work)
        stages[arch] = round(time.perf_counter() - started, 1)
        results["scratch"].append(row)
        print(json.dumps(row), flush=True)
    if "transfer" not in args.skip:
        started = time.perf_counter()
        results["transfer"] = transfer_run(args, prepared, work)
        stages["transfer"] = round(time.perf_counter() - started, 1)
        print(json.dumps(results["transfer"]), flush=True)
    if "torch" not in args.skip:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, __file__, "--torch-only", "--size", str(args.size), "--batch",
                               str(args.batch), "--torch-steps", str(args.torch_steps)],
                              capture_output=True, text=True, env={**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"})
        stages["torch"] = round(time.perf_counter() - started, 1)
        if done.returncode == 0:
            results["torch_resnet50"] = json.loads(done.stdout.strip().splitlines()[-1])
        else:
            results["torch_resnet50"] = {"error": done.stderr[-2000:]}
        print(json.dumps(results["torch_resnet50"]), flush=True)
    results["stages_wall_s"] = stages

    print(f"\n== {results['device']} | keras {keras.__version__} on {results['versions']['backend']} "
          f"{results['versions']['backend_version']} | {args.size} px, batch {args.batch}")
    print(f"{'model':10s} {'policy':16s} {'project img/s':>14s} {'bare img/s':>11s} {'ratio':>6s} "
          f"{'first ep. (s)':>14s} {'test acc':>9s} {'test AUC':>9s}")
    for row in results["scratch"]:
        print(f"{row['arch']:10s} {row['precision']:16s} {row['project_images_per_s']:14,.0f} "
              f"{row['bare_images_per_s']:11,.0f} {row['project_over_bare']:6.2f} "
              f"{row['project_first_epoch_s']:6.1f}/{row['bare_first_epoch_s']:<7.1f} "
              f"{row['test_accuracy']:9.3f} {row['test_roc_auc']:9.3f}")
    resnet = next((r for r in results["scratch"] if r["arch"] == "resnet50"), None)
    torch_row = results.get("torch_resnet50", {})
    if resnet and "images_per_s" in torch_row:
        results["keras_jax_over_torch_resnet50"] = round(resnet["bare_images_per_s"] / torch_row["images_per_s"], 3)
        print(f"bare torchvision ResNet-50: {torch_row['images_per_s']:,.0f} img/s (torch {torch_row['torch']}); "
              f"Keras-JAX bare / PyTorch = {results['keras_jax_over_torch_resnet50']:.2f} (goal >= 0.9)")
    if "transfer" in results:
        t = results["transfer"]
        print(f"hed-VGG-16 transfer, {t['epochs']} epochs at {t['image_size']} px: test accuracy "
              f"{t['test_accuracy']:.3f}, ROC-AUC {t['test_roc_auc']:.3f} (flips TTA), {t['wall_s']:.0f} s")
    print("wall time per stage (s):", json.dumps(stages))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
