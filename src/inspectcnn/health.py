"""Label-issue candidates by confident learning (Northcutt et al. 2021, the ``cleanlab`` package).

Out-of-fold probabilities come from a logistic regression (scikit-learn, k stratified folds) over frozen
hed-VGG-16 features (global average of block 5) of the train and val images; the test split is not read.
``cleanlab.filter.find_label_issues`` then flags the images whose given label the rest of the data
contradicts most confidently. Candidates are listed for a person to check; nothing is relabelled or
dropped.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from inspectcnn.config import HealthConfig

log = logging.getLogger(__name__)


def features(prepared: Path, split: str, size: int, channels: int) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(N x 512 features, ids, labels) of one split through the frozen hed-VGG-16 base."""
    import keras

    from inspectcnn.transfer import base as transfer
    from inspectcnn.data.dataset import load_split

    base = transfer.backbone_base("vgg16", size)
    transfer.hed_vgg16_weights(base)
    inputs = keras.Input((size, size, channels))
    x = keras.layers.Concatenate()([inputs] * 3) if channels == 1 else inputs
    x = transfer.preprocess(x, "caffe")
    pooled = keras.layers.GlobalAveragePooling2D()(base(x, training=False))
    extractor = keras.Model(inputs, pooled)
    data = load_split(prepared, split, image_size=size, batch_size=64, channels=channels)
    rows = [np.asarray(keras.ops.convert_to_numpy(extractor(data[i][0], training=False))) for i in range(len(data))]
    return np.concatenate(rows), list(data.ids), data.labels.ravel().astype(int)


def label_issues(prepared: Path, config: HealthConfig, seed: int, levels: dict[str, float] | None = None) -> dict:
    """The candidates and how they were found (for data/health.json and the report)."""
    from cleanlab.filter import find_label_issues
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from inspectcnn.data.store import read_meta

    meta = read_meta(prepared)
    parts = [features(prepared, split, config.feature_size, int(meta["channels"])) for split in ("train", "val")]
    x = np.concatenate([p[0] for p in parts])
    ids = [i for p in parts for i in p[1]]
    splits = [s for s, p in zip(("train", "val"), parts) for _ in p[1]]
    labels = np.concatenate([p[2] for p in parts])
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000, class_weight="balanced"))
    folds = StratifiedKFold(config.folds, shuffle=True, random_state=seed)
    probabilities = cross_val_predict(model, x, labels, cv=folds, method="predict_proba")
    ranked = find_label_issues(labels, probabilities, return_indices_ranked_by="self_confidence")
    from sklearn.metrics import roc_auc_score

    classes = meta["classes"]
    candidates = [{"id": ids[i], "split": splits[i], "given": classes[labels[i]],
                   "p_given": round(float(probabilities[i, labels[i]]), 4),
                   **({"level": levels[ids[i]]} if levels and ids[i] in levels else {})} for i in ranked]
    by_class = {name: sum(1 for c in candidates if c["given"] == name) for name in classes}
    log.info("label issues: %d candidates of %d train+val images (out-of-fold ROC-AUC %.3f)", len(candidates),
             len(ids), roc_auc_score(labels, probabilities[:, 1]))
    return {
        "method": f"cleanlab find_label_issues (self_confidence ranking) on {config.folds}-fold out-of-fold "
                  f"probabilities of a logistic regression over frozen hed-VGG-16 features at {config.feature_size} px",
        "images": len(ids), "splits": ["train", "val"],
        "out_of_fold_roc_auc": round(float(roc_auc_score(labels, probabilities[:, 1])), 4),
        "candidates": len(candidates), "by_given_class": by_class,
        "listed": candidates[:config.listed],
    }


def run(params, prepared: Path, out: Path) -> dict:
    """The `health` stage: label-issue candidates (when ``health.label_issues``) into ``out``."""
    from inspectcnn.data.store import levels
    from inspectcnn.artifacts import write_json

    result = {"label_issues": None}
    if params.health.label_issues:
        result["label_issues"] = label_issues(prepared, params.health, params.seed, levels(prepared))
    write_json(out, result)
    return result
