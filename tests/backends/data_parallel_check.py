"""Run by test_data_parallel.py in a fresh process with two virtual CPU devices (JAX: XLA_FLAGS; TensorFlow:
two logical CPUs, set here before anything runs). Trains LeNet with the project's own ``training.train``
twice from the same seed: data-parallel over the two devices (per-replica batch 4) and on one device
(batch 8), and prints JSON: replicas, the per-device batch a model layer saw, the largest weight difference.

    python data_parallel_check.py PREPARED_DIR WORK_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import keras
import numpy as np

BACKEND = keras.backend.backend()
if BACKEND == "tensorflow":
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from inspectcnn.config import TrainConfig  # noqa: E402
from inspectcnn.training import runtime  # noqa: E402
from inspectcnn.training.scratch import train  # noqa: E402


def per_device_batches(strategy: runtime.Strategy, global_batch: int) -> list[int]:
    """The batch size one device's copy of a layer sees inside a distributed fit step."""
    seen: list[int] = []

    class Probe(keras.layers.Layer):
        def call(self, x):
            if BACKEND == "jax":
                import jax

                jax.debug.inspect_array_sharding(x, callback=lambda s: seen.append(s.shard_shape(x.shape)[0]))
            else:
                import tensorflow as tf

                tf.py_function(lambda n: seen.append(int(n)), [tf.shape(x)[0]], [])
            return x

    with strategy.scope():
        inputs = keras.Input((4,))
        model = keras.Model(inputs, keras.layers.Dense(1)(Probe()(inputs)))
        model.compile("sgd", "mse")
    x = np.ones((global_batch * 2, 4), "float32")
    model.fit(x, np.ones((global_batch * 2, 1), "float32"), batch_size=global_batch, epochs=1, verbose=0)
    return sorted(set(seen))


def main() -> None:
    prepared, work = Path(sys.argv[1]), Path(sys.argv[2])
    common = dict(arch="lenet", image_size=24, epochs=1, optimizer="sgd", learning_rate=0.05, schedule="constant",
                  augment={"flip": "none", "dihedral": False, "brightness": 0.0, "contrast": 0.0},
                  early_stopping_patience=0, mixed_precision="off", jit_compile=False)
    parallel = train("dp", TrainConfig(**common, batch_size=4, strategy="mirrored"), prepared, work / "parallel",
                     seed=7, work_dir=work / "w_parallel")
    replicas = parallel.metrics["replicas"]
    strategy = runtime.make_strategy("mirrored")
    split = per_device_batches(strategy, 8)
    single = train("one", TrainConfig(**common, batch_size=8, strategy="default"), prepared, work / "single",
                   seed=7, work_dir=work / "w_single")
    from inspectcnn.models.saving import load_model

    a = load_model(work / "parallel" / "model.keras").get_weights()
    b = load_model(work / "single" / "model.keras").get_weights()
    moved = max(float(np.abs(w - w0).max()) for w, w0 in zip(b, _initial(common, seed=7)))
    print(json.dumps({
        "backend": BACKEND, "replicas": replicas, "devices_seen_batch": split,
        "max_weight_difference": max(float(np.abs(x - y).max()) for x, y in zip(a, b)),
        "max_weight_change_by_training": moved,
    }))


def _initial(common: dict, seed: int) -> list[np.ndarray]:
    """LeNet's weights before training, from the same seed (how far training moved them)."""
    from inspectcnn.models import build_model

    keras.utils.set_random_seed(seed)
    return build_model("lenet", (common["image_size"], common["image_size"], 1)).get_weights()


if __name__ == "__main__":
    main()
