"""CutMix (Yun et al., ICCV 2019): paste a random box of another image of the batch, mix labels by area.

As in wsolevaluation (``wsol/method/cutmix.py``, ``main.py``): with probability
``cutmix_prob`` (and ``cutmix_beta > 0``) a batch is mixed: ``lam0 ~ Beta(beta, beta)``, a box
of side ``int(S * sqrt(1 - lam0))`` (per axis) centred at a uniform pixel and clipped to the
image is copied from a random permutation of the batch, and the loss is
``lam * CE(logits, y) + (1 - lam) * CE(logits, y[perm])`` with ``lam`` = 1 - the *actual*
(clipped) box area / image area. The network and the map are CAM's.

CREAM: the context update of a mixed image uses the CAM of its own label ``y`` (the class
covering the larger share on average); at inference nothing is mixed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from skcream.methods._base import ParamSpec, WSOLMethod

__all__ = ["CutMix", "cutmix", "cutmix_box"]


def cutmix_box(height: int, width: int, lam: float, centre: tuple[int, int]) -> tuple[int, int, int, int]:
    """The pasted box ``(y0, x0, y1, x1)`` (end-exclusive) for a mixing ratio ``lam``.

    Side ``int(height * sqrt(1 - lam))`` by ``int(width * sqrt(1 - lam))`` centred at
    ``centre = (cy, cx)``, clipped to the image (so the area can be smaller).
    """
    ratio = (1.0 - lam) ** 0.5
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy, cx = centre
    y0, y1 = min(max(cy - cut_h // 2, 0), height), min(max(cy + cut_h // 2, 0), height)
    x0, x1 = min(max(cx - cut_w // 2, 0), width), min(max(cx + cut_w // 2, 0), width)
    return y0, x0, y1, x1


def cutmix(
    images: torch.Tensor, labels: torch.Tensor, beta: float
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Mix a batch: paste one random box from a permuted batch into every image.

    Parameters
    ----------
    images : Tensor (B, C, H, W)
    labels : Tensor (B,) int
    beta : float > 0
        Parameter of the Beta distribution of the mixing ratio.

    Draws from torch's global CPU RNG (seeded per epoch by :func:`skcream.training.train`).

    Returns
    -------
    mixed : Tensor (B, C, H, W)
        A new tensor: ``images`` with the box taken from ``images[perm]``.
    labels_b : Tensor (B,)
        ``labels[perm]``.
    lam : float
        1 - box area / image area: the weight of ``labels`` in the loss.
    """
    b, _, h, w = images.shape
    lam0 = float(torch.distributions.Beta(float(beta), float(beta)).sample())
    perm = torch.randperm(b).to(labels.device)
    cy, cx = int(torch.randint(h, (1,))), int(torch.randint(w, (1,)))
    y0, x0, y1, x1 = cutmix_box(h, w, lam0, (cy, cx))
    mixed = images.clone()
    mixed[:, :, y0:y1, x0:x1] = images[perm.to(images.device), :, y0:y1, x0:x1]
    lam = 1.0 - (y1 - y0) * (x1 - x0) / float(h * w)
    return mixed, labels[perm], lam


class CutMix(WSOLMethod):
    """CutMix: CAM trained on box-mixed images with area-mixed labels."""

    name = "cutmix"
    PARAMS = {
        "cutmix_beta": ParamSpec(1.0, float, 0.0),
        "cutmix_prob": ParamSpec(1.0, float, 0.0, 1.0),
    }

    def forward(self, model: nn.Module, batch: Mapping[str, torch.Tensor]) -> Any:
        images, labels = batch["image"], batch["label"]
        beta, prob = self.params["cutmix_beta"], self.params["cutmix_prob"]
        if beta > 0 and prob > float(torch.rand(())):
            images, labels_b, lam = cutmix(images, labels, beta)
        else:
            labels_b, lam = labels, 1.0
        logits, features = model(images)[:2]
        return logits, features, labels_b, lam

    def loss(self, outputs: Any, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        logits, _, labels_b, lam = outputs
        logits = logits.float()
        return lam * F.cross_entropy(logits, batch["label"]) + (1.0 - lam) * F.cross_entropy(logits, labels_b)
