"""Print params.yaml rewritten for a GPU: native input sizes, full widths, more epochs.

    python -m pipeline.gpu_params > params.gpu.yaml
"""

from __future__ import annotations

import sys

import yaml


def gpu_params(params: dict) -> dict:
    from inspectcnn.models import architecture  # each architecture declares its native input size

    params = dict(params)
    params["data"] = {**params.get("data", {}), "image_size": 224}
    params["train"] = {**params.get("train", {}), "batch_size": 64, "epochs": 40, "early_stopping_patience": 8,
                       "mixed_precision": "auto", "jit_compile": "auto", "width": 1.0}
    models = {}
    for name, entry in (params.get("models") or {}).items():
        arch = (entry or {}).get("arch", name)
        models[name] = {**(entry or {}), "width": 1.0, "image_size": architecture(arch).native_size}
    params["models"] = models
    # the GPU recipe measured on ELPV: 224 px, the whole base fine-tuned with dihedral augmentation on the fly
    params["transfer"] = {
        name: {**entry, "image_size": 224, "frozen_epochs": 2, "finetune_epochs": 40, "finetune_learning_rate": 1e-4,
               "schedule": "cosine", "weight_decay": 1e-4, "cache_features": False,
               "finetune_from": "block1_conv1" if entry.get("backbone", "vgg16").startswith("vgg") else "auto",
               "augment": {"flip": "none", "dihedral": True}}
        for name, entry in (params.get("transfer") or {}).items()
    }
    return params


def main() -> None:
    from inspectcnn.config import read_raw

    params = read_raw(sys.argv[1] if len(sys.argv) > 1 else "params.yaml")
    yaml.safe_dump(gpu_params(params), sys.stdout, sort_keys=False)


if __name__ == "__main__":
    main()
