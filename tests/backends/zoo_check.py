"""Run by test_zoo_backends.py under a given KERAS_BACKEND: every architecture builds, loads the weights
written under TensorFlow, predicts what TensorFlow predicted, and takes a training step.

    python zoo_check.py FOLDER    (FOLDER/<arch>.weights.h5, FOLDER/<arch>.npz with x and probabilities)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import keras
import numpy as np

from inspectcnn.models import build_model, list_models


def main() -> None:
    folder = Path(sys.argv[1])
    found = {}
    for name in list_models():
        reference = np.load(folder / f"{name}.npz")
        x = reference["x"]
        model = build_model(name, x.shape[1:], width=0.125)
        model.load_weights(folder / f"{name}.weights.h5")
        probabilities = keras.ops.convert_to_numpy(model(x, training=False))
        model.compile(keras.optimizers.SGD(0.01), "binary_crossentropy")
        loss = float(model.train_on_batch(x, np.array([[0], [1], [1], [1]], "float32")))
        found[name] = {"max_difference": float(np.abs(probabilities - reference["probabilities"]).max()),
                       "loss": loss}
    print(json.dumps({"backend": keras.backend.backend(), "models": found}))


if __name__ == "__main__":
    main()
