"""The registered champion as an MLflow pyfunc, logged as code (MLflow copies this file into the model).

It loads the Keras model (test-time augmentation built in) and ``inference.json`` from the model's
artifacts, and returns, per image, the probability of the positive class, the label at the validation
threshold that travels with the model, and the class name. ``params={"threshold": t}`` overrides it.
Its input is what ``inference.json`` describes: float32 images (N, S, S, C) scaled to [0, 1]
(``inspectcnn.serving.preprocess`` makes them from files).
"""

import json

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel



class InspectionModel(PythonModel):
    def load_context(self, context):
        import keras

        with open(context.artifacts["inference"]) as handle:
            self.spec = json.load(handle)
        self.model = keras.saving.load_model(context.artifacts["keras_model"], safe_mode=True, compile=False)

    # np.ndarray: a hint MLflow accepts without inferring a schema from it; the model's schema is its logged
    # tensor signature (float32 images), which MLflow validates the input against.
    def predict(self, context, model_input: np.ndarray, params=None):
        if isinstance(model_input, dict):  # a named tensor signature arrives as {"image": array}
            model_input = model_input.get("image", next(iter(model_input.values())))
        images = np.asarray(model_input, dtype="float32")
        threshold = float((params or {}).get("threshold") or self.spec["threshold"])
        probability = np.asarray(self.model.predict(images, verbose=0), dtype="float64").reshape(-1)
        label = (probability >= threshold).astype("int64")
        return pd.DataFrame({"probability": probability, "label": label,
                             "class": np.asarray(self.spec["classes"], dtype=object)[label]})


mlflow.models.set_model(InspectionModel())
