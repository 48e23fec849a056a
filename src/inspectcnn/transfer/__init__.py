"""Transfer learning: a pretrained convolutional base, a new head, phases of training.

Phase 1 trains the head with the base frozen (BatchNorm in inference mode); phase 2 unfreezes the
base from ``finetune_from`` on and fine-tunes at a lower learning rate. What never trains is
computed once (``cache_features: auto``): on a sequential base (VGG) the layers below
``finetune_from`` run once per augmentation view of each training cell (the 8 dihedral views with
``augment.dihedral``) and both phases train only the layers above on random cached views, which is
the same training as on the fly at a fraction of the cost; on other bases without augmentation the
pooled features are cached for phase 1. The model takes float images in [0, 1] like every other model of
the project: the backbone's own ``preprocess_input`` is rebuilt from plain Keras layers inside the model,
so the saved ``.keras`` file loads with ``safe_mode=True`` and no custom objects.

- :mod:`~inspectcnn.transfer.base`: the pretrained base and its weights, the preprocessing (public:
  the health stage uses it);
- :mod:`~inspectcnn.transfer.surgery`: the transfer model, which layers train, the sub-models sharing its layers;
- :mod:`~inspectcnn.transfer.cache`: computed-once features and views (``load_or_compute``);
- :mod:`~inspectcnn.transfer.phases`: the phases and their one training loop; the `transfer@<entry>` stage.
"""

from inspectcnn.transfer.base import (
    HED_WEIGHTS_ENV,
    TransferError,
    backbone_base,
    hed_vgg16_weights,
    hed_weights_file,
    load_base,
    preprocess,
)
from inspectcnn.transfer.cache import VIEW_CACHE_LIMIT_BYTES, ViewBatches, cache_views, extract_features, load_or_compute
from inspectcnn.transfer.surgery import build_transfer_model, head, head_model, set_trainable, split_model

__all__ = [
    "HED_WEIGHTS_ENV", "TransferError", "VIEW_CACHE_LIMIT_BYTES", "ViewBatches", "backbone_base",
    "build_transfer_model", "cache_views", "extract_features", "head", "head_model",
    "hed_vgg16_weights", "hed_weights_file", "load_base", "load_or_compute", "preprocess",
    "set_trainable", "split_model",
]
