"""The registered champion as an MLflow pyfunc, logged as code (MLflow copies this file into the model).

It loads the Keras model (test-time augmentation built in) and ``inference.json`` from the model's
artifacts, and returns, per image, the probability of the positive class, the label at the validation
threshold that travels with the model, and the class name; with an out-of-distribution feature bank among its
artifacts (the Keras model then has a second output, its penultimate features), also the ``ood_score`` (distance
to the k-th nearest training cell) and ``in_distribution``: an image above the spec's threshold gets label -1
and class ``unknown``. ``params={"threshold": t}`` overrides it.
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
        self.knn = None
        ood = self.spec.get("ood")
        if ood and "ood_bank" in context.artifacts:  # the model's second output: its penultimate features
            from sklearn.neighbors import NearestNeighbors

            self.knn = NearestNeighbors(n_neighbors=int(ood["k"])).fit(np.load(context.artifacts["ood_bank"]))

    # np.ndarray: a hint MLflow accepts without inferring a schema from it; the model's schema is its logged
    # tensor signature (float32 images), which MLflow validates the input against.
    def predict(self, context, model_input: np.ndarray, params=None):
        if isinstance(model_input, dict):  # a named tensor signature arrives as {"image": array}
            model_input = model_input.get("image", next(iter(model_input.values())))
        images = np.asarray(model_input, dtype="float32")
        given = (params or {}).get("threshold")  # 0.0 is a threshold too
        threshold = float(self.spec["threshold"] if given is None else given)
        outputs = self.model.predict(images, verbose=0)
        features = None
        if isinstance(outputs, (list, tuple)):
            outputs, features = outputs
        probability = np.asarray(outputs, dtype="float64").reshape(-1)
        label = (probability >= threshold).astype("int64")
        names = np.asarray(self.spec["classes"], dtype=object)[label]
        if self.knn is None or features is None:
            return pd.DataFrame({"probability": probability, "label": label, "class": names})
        features = np.asarray(features, dtype="float32")
        features = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
        score = self.knn.kneighbors(features)[0][:, -1].astype("float64")
        inside = score <= float(self.spec["ood"]["threshold"])
        return pd.DataFrame({"probability": probability, "label": np.where(inside, label, -1),
                             "class": np.where(inside, names, "unknown"), "ood_score": score,
                             "in_distribution": inside})


mlflow.models.set_model(InspectionModel())
