"""Map sources: features and a class map per image, from CAM or the gradient CAM family.

Beside :mod:`skcream.methods` (training-time hooks), a map source says where the class map
that localization starts from comes from. Every source gives the same thing,
:class:`ClassMaps` — the last feature layer ``F`` (B, d, h, w) and a raw class map
(B, h, w) on its grid — so the EM (:func:`skcream.reactivation.reactivate_map`), the
metrics, the report and the CLI (``skcream localize --post-hoc --cam NAME``) take any of
them.

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
"""

from skcream.map_sources.formulas import (
    GRADIENT_CAMS,
    eigen_cam,
    eigen_projection,
    gradient_cam,
    score_cam,
    score_cam_masks,
)
from skcream.map_sources.network import (
    FEATURE_SOURCES,
    MAP_SOURCES,
    ClassifierNet,
    ClassMaps,
    check_map_source,
    class_maps,
    maps_from_features,
)

__all__ = [
    "FEATURE_SOURCES",
    "GRADIENT_CAMS",
    "MAP_SOURCES",
    "ClassMaps",
    "ClassifierNet",
    "check_map_source",
    "class_maps",
    "eigen_cam",
    "eigen_projection",
    "gradient_cam",
    "maps_from_features",
    "score_cam",
    "score_cam_masks",
]
