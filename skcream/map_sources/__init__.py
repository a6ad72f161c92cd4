"""Map sources: features and a class map per image, from CAM or the gradient CAM family.

Beside :mod:`skcream.methods` (training-time hooks), a map source says where the class map
that localization starts from comes from. Every source gives the same thing,
:class:`ClassMaps` — the last feature layer ``F`` (B, d, h, w) and a raw class map on its
grid — so the EM (:func:`skcream.reactivation.reactivate_map`), the metrics, the report
and the CLI (``skcream localize --post-hoc --cam NAME``) take any of them.

Sources (:data:`MAP_SOURCES`; pytorch-grad-cam's names and definitions for the gradient
CAMs, see :mod:`skcream.map_sources.formulas`):

* ``cam``: Eq. 1 of the paper, ``sum_k w_k^c F_k``, for a head that is global average
  pooling + a linear layer;
* ``gradcam``, ``gradcam++``, ``xgradcam``, ``layercam``: activations and gradients of a
  chosen layer (default: the last feature layer);
* ``scorecam``: the class score of the input masked by each channel;
* ``eigencam``: the first principal component of the layer's features (class-agnostic).

On a network: :func:`class_maps` with a :class:`ClassifierNet` (any timm classifier:
``ClassifierNet.from_timm(model)``). From feature maps and a linear head alone (what
``CREAMReactivation`` holds): :func:`maps_from_features`, exact for every source but
Score-CAM, which needs the images.

The names below are importable without torch (the CLI builds its parser from them); the
functions and classes load their module on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

#: gradient CAMs whose map is a function of a layer's activations and their gradients
GRADIENT_CAMS = ("gradcam", "gradcam++", "xgradcam", "layercam")
#: names of the map sources (pytorch-grad-cam's names for the gradient CAMs)
MAP_SOURCES = ("cam",) + GRADIENT_CAMS + ("scorecam", "eigencam")
#: sources that a linear head on pooled features determines from the features alone
FEATURE_SOURCES = ("cam",) + GRADIENT_CAMS + ("eigencam",)

_LAZY = {
    "ClassMaps": "skcream.map_sources.network",
    "ClassifierNet": "skcream.map_sources.network",
    "class_maps": "skcream.map_sources.network",
    "maps_from_features": "skcream.map_sources.network",
    "eigen_cam": "skcream.map_sources.formulas",
    "eigen_projection": "skcream.map_sources.formulas",
    "gradient_cam": "skcream.map_sources.formulas",
    "score_cam": "skcream.map_sources.formulas",
    "score_cam_masks": "skcream.map_sources.formulas",
}

__all__ = sorted(["FEATURE_SOURCES", "GRADIENT_CAMS", "MAP_SOURCES", "check_map_source",
                  *_LAZY])


def check_map_source(cam: object, allowed: tuple[str, ...] = MAP_SOURCES,
                     why: str = "") -> str:
    """Return ``cam`` if it names a map source in ``allowed``, else raise ValueError.

    ``why`` is added to the message when ``cam`` is a map source that ``allowed`` lacks.
    """
    if not isinstance(cam, str) or cam not in allowed:
        extra = f" ({why})" if why and cam in MAP_SOURCES else ""
        raise ValueError(f"cam must be one of {allowed}{extra}, got {cam!r}")
    return cam


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'skcream.map_sources' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
