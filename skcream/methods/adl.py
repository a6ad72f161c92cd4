"""ADL, Attention-based Dropout Layer (Choe & Shim, CVPR 2019).

During training, a parameter-free layer at a few places of the backbone multiplies the
feature map by one of two maps of its channel-mean ``A = mean_k F_k`` (B,1,h,w), chosen
once per batch: with probability ``adl_drop_rate`` the **drop mask** ``A < adl_threshold *
max(A)`` (hides the most discriminative region), else the **importance map**
``sigmoid(A)``. At inference the layers are the identity. As in wsolevaluation
(``wsol/method/adl.py``; ``adl_drop_rate=0.75``, ``adl_threshold=0.9``); places: see
:mod:`skcream.methods._positions` (refused, with the reason, where a backbone has no
named stages).

The layers are forward hooks on backbone modules: they hold no parameters, so the network's
state dict is CAM's and pretrained weights load unchanged. The trunk is CAM's, except on
InceptionV3, where wsolevaluation's ``InceptionAdl`` has no dropout at all (``trunk="adl"``). The map is CAM's; CREAM's context
learns from the CAM of the training forward, i.e. with ADL active.
"""

from __future__ import annotations

import torch
from torch import nn

from skcream.methods._base import ParamSpec, WSOLMethod
from skcream.methods._positions import adl_points

__all__ = ["ADL", "ADLHook", "adl", "adl_drop_mask", "adl_importance_map"]


def adl_drop_mask(attention: torch.Tensor, threshold: float) -> torch.Tensor:
    """``1`` where ``attention < threshold * max`` (per sample), else ``0``.

    Parameters
    ----------
    attention : Tensor (B, 1, h, w)
    threshold : float in [0, 1]

    Returns
    -------
    Tensor (B, 1, h, w) of 0./1. in the dtype of ``attention``
    """
    peak = attention.flatten(1).amax(dim=1).view(-1, 1, 1, 1)
    return (attention < threshold * peak).to(attention.dtype)


def adl_importance_map(attention: torch.Tensor) -> torch.Tensor:
    """``sigmoid(attention)`` (B, 1, h, w)."""
    return torch.sigmoid(attention)


def adl(features: torch.Tensor, drop_rate: float, threshold: float, *, use_drop: bool | None = None) -> torch.Tensor:
    """Apply ADL to a feature map (training behaviour).

    Parameters
    ----------
    features : Tensor (B, d, h, w)
    drop_rate : float in [0, 1]
        Probability of using the drop mask for this batch.
    threshold : float in [0, 1]
    use_drop : bool, optional
        Force the choice (default: drawn, ``floor(U + drop_rate) == 1`` with U uniform).

    Returns
    -------
    Tensor (B, d, h, w): ``features * mask`` (mask broadcast over channels).
    """
    attention = features.mean(dim=1, keepdim=True)
    if use_drop is None:
        use_drop = bool(float(torch.rand(())) + drop_rate >= 1.0)
    selected = adl_drop_mask(attention, threshold) if use_drop else adl_importance_map(attention)
    return features * selected


class ADLHook:
    """A forward hook applying :func:`adl` to a module's output in training mode."""

    def __init__(self, drop_rate: float, threshold: float) -> None:
        self.drop_rate, self.threshold = drop_rate, threshold

    def __call__(self, module: nn.Module, inputs, output):
        if not module.training:
            return None  # identity at inference
        return adl(output, self.drop_rate, self.threshold)


class ADL(WSOLMethod):
    """ADL: CAM with attention-based dropout inside the backbone."""

    name = "adl"
    PARAMS = {
        "adl_drop_rate": ParamSpec(0.75, float, 0.0, 1.0),
        "adl_threshold": ParamSpec(0.9, float, 0.0, 1.0),
    }

    @property
    def trunk(self) -> str:
        return "adl"  # InceptionV3 without dropout (InceptionAdl); the CAM trunk elsewhere

    def build_network(self, backbone: nn.Module, n_classes: int) -> nn.Module:
        from skcream.model import CAMNet

        self.check_trunk(backbone)
        for module in adl_points(backbone):
            module.register_forward_hook(ADLHook(self.params["adl_drop_rate"], self.params["adl_threshold"]))
        return CAMNet(backbone, n_classes)
