"""skcream: weakly supervised object localization (CREAM) as scikit-learn estimators.

The public names are imported lazily, so ``import skcream`` stays cheap and a
user who only needs the metrics never imports torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_PUBLIC = {
    "CREAMLocalizer": "skcream.estimators.localizer",
    "DatasetView": "skcream.estimators.localizer",
    "Localization": "skcream.localize",
    "CREAMReactivation": "skcream.estimators.feature_reactivation",
    "TimmFeatures": "skcream.estimators.features",
    "PseudoBoxRegressor": "skcream.estimators.regressor",
    "CREAMReg": "skcream.estimators.regressor",
    "reactivate": "skcream.reactivation",
    "calibrate": "skcream.reactivation",
    "em_soft_clustering": "skcream.reactivation",
    "post_hoc_reactivate": "skcream.reactivation",
    "reactivate_map": "skcream.reactivation",
    "ContextEmbeddings": "skcream.context",
    "update_context": "skcream.context",
    "box_iou": "skcream.metrics",
    "boxes_from_scoremap": "skcream.metrics",
    "max_box_acc": "skcream.metrics",
    "max_box_acc_v2": "skcream.metrics",
    "pxap": "skcream.metrics",
    "localization_accuracy": "skcream.metrics",
    "distributed_inference": "skcream.distributed",
    "sharded_apply": "skcream.distributed",
}

__all__ = sorted(_PUBLIC) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'skcream' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
