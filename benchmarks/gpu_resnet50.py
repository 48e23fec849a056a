"""GPU: ResNet-50 at 224x224, float32 vs mixed precision, XLA off vs on, project path vs bare Keras.

    python benchmarks/gpu_resnet50.py                      # on a GPU machine (refuses on a CPU)
    python benchmarks/gpu_resnet50.py --allow-cpu --size 64 --width 0.25 --epochs 2 --rounds 1   # smoke test

For each of the four variants (precision float32 | mixed, jit_compile false | true) it measures,
alternately as `pipeline_overhead.py` does, the images/s of the project's training path (prepared
TFRecords -> tf.data -> `training.train` with every callback and MLflow logging) and of a bare
`model.fit` on in-memory arrays with the same model, batch, dtype policy and XLA setting. "mixed"
is what `mixed_precision: auto` picks on the GPU (bfloat16 from compute capability 8, float16
below; bfloat16 on a CPU). The first epoch (tracing, XLA compilation, cache filling) is reported
apart from the steady epochs. ResNet-50 is the full network (width 1.0) on 3-channel input, as
`python -m pipeline.gpu_params` configures it.

Needs the prepared ELPV data (`dvc repro prepare`) with `data.image_size` >= --size for a fair
run (the default stores 224 px). Writes benchmarks/results/gpu_resnet50.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_overhead import bare_fit, compare, in_memory, project_fit  # noqa: E402

from inspectcnn import artifacts  # noqa: E402
from inspectcnn.config import load_params  # noqa: E402
from inspectcnn.data.store import read_meta  # noqa: E402
from inspectcnn.training import class_weights, configure_precision, train_labels  # noqa: E402


def mixed_mode() -> str:
    """The mixed precision `mixed_precision: auto` picks on this GPU (bfloat16 on a CPU, for smoke tests)."""
    policy = configure_precision("auto")
    keras.mixed_precision.set_global_policy("float32")
    return policy.removeprefix("mixed_") if policy != "float32" else "bfloat16"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=4, help="per fit; the first is not in the images/s")
    parser.add_argument("--rounds", type=int, default=2, help="alternating bare/project pairs per variant")
    parser.add_argument("--allow-cpu", action="store_true", help="run without a GPU (a smoke test, not a benchmark)")
    parser.add_argument("--out", default="benchmarks/results/gpu_resnet50.json")
    args = parser.parse_args()

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus and not args.allow_cpu:
        sys.exit("no GPU visible to TensorFlow; install tensorflow[and-cuda] on a GPU machine "
                 "(or pass --allow-cpu for a smoke test)")
    device = (tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU") if gpus
              else f"CPU ({os.cpu_count()} cores)")

    params = load_params()
    prepared = artifacts.PREPARED
    meta = read_meta(prepared)
    train_count = meta["splits"]["train"]["count"]
    scratch = Path(tempfile.mkdtemp(prefix="inspectcnn-gpu-"))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{scratch / 'mlflow.db'}"
    weights = class_weights(train_labels(prepared))
    base = params.model("resnet50").model_copy(update={
        "arch": "resnet50", "image_size": args.size, "width": args.width, "channels": 3,
        "batch_size": args.batch_size, "epochs": args.epochs, "early_stopping_patience": 0,
        "warmup_epochs": 0, "strategy": "default",
    })
    data = (in_memory(prepared, "train", args.size, 3), in_memory(prepared, "val", args.size, 3))

    results = []
    for precision in ("off", mixed_mode()):
        for jit in (False, True):
            config = base.model_copy(update={"mixed_precision": precision, "jit_compile": jit})
            label = f"{'float32' if precision == 'off' else 'mixed_' + precision}, xla {'on' if jit else 'off'}"
            bare, project = [], []
            for round_ in range(args.rounds):
                bare.append(bare_fit(config, data, weights, args.epochs, params.seed))
                project.append(project_fit(f"resnet50-{precision}-{jit}", config, prepared, scratch,
                                           params.seed, round_))
                for kind, timer in (("bare", bare[-1]), ("project", project[-1])):
                    print(f"{label:28s} round {round_} {kind:8s} first epoch {timer.first:7.2f} s, "
                          f"steady {train_count * (args.epochs - 1) / timer.steady:8.1f} images/s", flush=True)
            row = {"variant": label, "mixed_precision": precision, "jit_compile": jit,
                   **compare(bare, project, train_count * (args.epochs - 1))}
            results.append(row)
            print(f"{label:28s} bare {row['bare_images_per_s']:8.1f}  project {row['project_images_per_s']:8.1f} "
                  f"images/s  ratio {row['ratio']:.3f}", flush=True)
    keras.mixed_precision.set_global_policy("float32")

    out = {"machine": {"device": device, "cpus": os.cpu_count(), "platform": platform.platform(),
                       "tensorflow": tf.__version__, "keras": keras.__version__},
           "setup": {"arch": "resnet50", "image_size": args.size, "width": args.width, "channels": 3,
                     "batch_size": args.batch_size, "epochs_per_fit": args.epochs, "rounds": args.rounds,
                     "train_images": train_count, "smoke_test": not gpus},
           "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
