"""The network of CREAM_Reg's regressor, its loss and its training accuracy.

``BoxRegressionNet`` is a timm backbone, global average pooling and the head
``Linear(d, hidden) -> ReLU -> Linear(hidden, 4) -> Sigmoid`` (paper section 4.1); its
outputs are boxes in the unit frame of the input image.
"""

from __future__ import annotations

import torch
from torch import nn

from skcream.model import NewLayersMixin

__all__ = ["BoxRegressionNet", "box_iou_unit", "iou50_correct", "mse_box_loss"]


class BoxRegressionNet(NewLayersMixin, nn.Module):
    """Backbone + GAP + ``Linear(d, hidden) -> ReLU -> Linear(hidden, 4) -> Sigmoid``.

    Parameters
    ----------
    backbone : nn.Module
        Maps (B, 3, H, W) to (B, d, h, w) and has ``num_features`` (d), e.g. a
        :class:`skcream.backbones.FeatureBackbone`.
    hidden : int, default=512

    Attributes
    ----------
    head : nn.Sequential
        New layers, He-initialised (trained at ``head_lr_mult`` x lr).
    """

    def __init__(self, backbone: nn.Module, hidden: int = 512) -> None:
        super().__init__()
        dim = int(backbone.num_features)
        self.backbone = backbone
        self.head = nn.Sequential(
            nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 4), nn.Sigmoid()
        )
        for layer in (self.head[0], self.head[2]):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Boxes in the unit frame of the input.

        Parameters
        ----------
        x : Tensor (B, 3, H, W)

        Returns
        -------
        Tensor (B, 4)
            ``x0/W, y0/H, x1/W, y1/H`` in (0, 1); corners not ordered (see
            :func:`skcream.estimators._boxes_target.order_corners`).
        """
        features = self.backbone(x)
        return self.head(features.float().mean(dim=(2, 3)))


def box_iou_unit(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Continuous IoU of corresponding boxes (unit frame, no +1), corners ordered first.

    Parameters
    ----------
    a, b : Tensor (B, 4)

    Returns
    -------
    Tensor (B,)
        0 where the union is empty.
    """
    a = torch.stack([torch.minimum(a[:, 0], a[:, 2]), torch.minimum(a[:, 1], a[:, 3]),
                     torch.maximum(a[:, 0], a[:, 2]), torch.maximum(a[:, 1], a[:, 3])], dim=1)
    iw = (torch.minimum(a[:, 2], b[:, 2]) - torch.maximum(a[:, 0], b[:, 0])).clamp(min=0)
    ih = (torch.minimum(a[:, 3], b[:, 3]) - torch.maximum(a[:, 1], b[:, 1])).clamp(min=0)
    inter = iw * ih
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    union = area_a + area_b - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(union))


def mse_box_loss(outputs: torch.Tensor, batch: dict) -> torch.Tensor:
    """Mean squared error over the four normalised coordinates (paper: MSE, 4 coordinates)."""
    return torch.nn.functional.mse_loss(outputs.float(), batch["target"].float())


def iou50_correct(outputs: torch.Tensor, batch: dict) -> torch.Tensor:
    """Per-sample ``IoU(prediction, target) >= 0.5`` (unit frame), the history's accuracy."""
    return (box_iou_unit(outputs.detach().float(), batch["target"].float()) >= 0.5).float()
