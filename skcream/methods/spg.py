"""SPG, Self-Produced Guidance (Zhang et al., ECCV 2018).

CAM's network plus three class-agnostic single-channel auxiliary maps, trained with
pixel-wise binary cross-entropy on masks that the network produces itself
(wsolevaluation's ``wsol/method/spg.py`` and ``VggSpg`` / ``ResNetSpg`` / ``InceptionSpg``):

* B1 = ``B_shared(B_1a(x1))`` and B2 = ``B_shared(B_2a(x2))`` on two intermediate feature
  maps x1, x2 (places: :mod:`skcream.methods._positions`), C = ``SPG_C(F)`` on the final
  features (after the classifier's dropout on InceptionV3, as ``InceptionSpg``);
  ``B_1a``/``B_2a`` are conv3x3 + ReLU to w channels (VGG16 512, ResNet50 1024, InceptionV3
  512: :func:`~skcream.methods._positions.spg_width`), ``B_shared`` conv3x3 + ReLU + conv1x1
  -> 1, ``SPG_C`` conv3x3 (->512) + ReLU + conv1x1 -> 1. All Xavier-uniform initialised with
  zero biases, the classifier too, as the reference's ``initialize_weights(...,
  init_mode='xavier')``.
* Masks (:func:`spg_mask`), from a map ``a`` in [0, 1] at the input resolution: 1 where
  ``a > high`` (if fewer than 30 pixels pass, where ``a > 0.7 max(a)``), 0 where ``a < low``
  (this wins over 1), ignored elsewhere.
* Loss = CE + BCE(B2 | mask of the normalised class map, thresholds 1h/1l = 0.7/0.01)
  + BCE(B1 | mask of sigmoid(B2), 2h/2l = 0.5/0.05)
  + BCE(C | mask of (sigmoid(B1) + sigmoid(B2)) / 2, 3h/3l = 0.7/0.1);
  every map upsampled (bilinear) to the input size (the reference's fixed 224).

The trunk is the reference's SPG trunk (``trunk="spg"``, :data:`skcream.backbones.TRUNKS`):
VGG16 conv1-3, conv4, a 3x3 stride-2 pool, conv5 and two new convs to 512 (``VggSpg``'s
``SPG_A_1`` ... ``SPG_A_3``, no conv6); ResNet50 and InceptionV3 as for CAM. The class map is
the linear head on GAP, identical to the reference's 1x1 ``SPG_A4`` conv followed by GAP.
Learning rates follow the reference's rule by name (:mod:`skcream.lr_groups`): on VGG16 every
layer but conv1-3 at 10x (conv4/conv5 are named ``SPG_A_1``/``SPG_A_2`` there), on ResNet50
only layer4, on InceptionV3 every new layer. ``spg_trunk="cam"`` (skcream's earlier network,
an option) keeps VGG16's CAM trunk with conv6 (B1 on pool4, B2 on conv5_3); on ResNet50 and
InceptionV3 both trunks are the same. On other timm backbones B1 and B2 sit on the stages
before the last (:mod:`~skcream.methods._positions`) with w = B2's channels, and the new
layers train at 10x (the paper's rule, :mod:`skcream.lr_groups`).

Which map CREAM uses and why
----------------------------
SPG's inference map is its classification map, the CAM of the head on the final features
(the reference's ``return_cam``); B1, B2 and C are class-agnostic training signals that
shape the features and are not read out. So CREAM uses exactly what it uses for CAM: the
backbone's final features and the head's CAM, for the context update during training and
the EM at inference.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from skcream.cam import normalize_maps
from skcream.methods._base import ParamSpec, WSOLMethod
from skcream.methods._positions import spg_points, spg_width
from skcream.model import CAMNet

__all__ = ["SPG", "SPGNet", "spg_loss", "spg_mask"]

IGNORE = -1.0


def spg_mask(attention: torch.Tensor, high: float, low: float, min_foreground: int = 30) -> torch.Tensor:
    """SPG's self-produced target of one map per sample.

    Parameters
    ----------
    attention : Tensor (B, H, W)
        Values in [0, 1].
    high, low : float
        Foreground ``> high``, background ``< low``.
    min_foreground : int, default=30
        A sample with fewer foreground pixels uses ``> 0.7 * max`` instead (the reference).

    Returns
    -------
    Tensor (B, H, W): 1 (foreground), 0 (background) or -1 (ignored).
    """
    fg = attention > high
    few = fg.flatten(1).sum(dim=1) < min_foreground
    fallback = attention > 0.7 * attention.flatten(1).amax(dim=1).view(-1, 1, 1)
    fg = torch.where(few.view(-1, 1, 1), fallback, fg)
    mask = torch.full_like(attention, IGNORE)
    mask[fg] = 1.0
    mask[attention < low] = 0.0
    return mask


def _masked_bce(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    valid = mask != IGNORE
    if not bool(valid.any()):
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits[valid], mask[valid])


class _Capture:
    """Forward hook storing a module's output in ``store[key]``."""

    def __init__(self, store: dict, key: str) -> None:
        self.store, self.key = store, key

    def __call__(self, module, inputs, output):
        self.store[self.key] = output


class SPGNet(CAMNet):
    """CAM network + SPG's auxiliary branches B1, B2 (on intermediate features) and C.

    ``forward(x)`` gives ``(logits, F)``; ``forward(x, aux=True)`` gives
    ``(logits, F, b1, b2, c)`` with single-channel logit maps (B, 1, *, *).
    """

    def __init__(self, backbone: nn.Module, n_classes: int, probe_size: int = 96) -> None:
        # the classifier is the reference's 1x1 conv SPG_A4 (SPG_A_4), Xavier on every backbone
        super().__init__(backbone, n_classes, head_init="xavier")
        from skcream.backbones import _xavier_init

        self._captured: dict[str, torch.Tensor] = {}
        p1, p2 = spg_points(backbone)
        p1.register_forward_hook(_Capture(self._captured, "x1"))
        p2.register_forward_hook(_Capture(self._captured, "x2"))
        c1, c2 = self._probe_channels(probe_size)
        w = spg_width(backbone) or c2
        # Xavier-uniform, zero bias: the reference's VggSpg, ResNetSpg and InceptionSpg all call
        # initialize_weights(..., init_mode='xavier'). (He fan_out init, used before, gives the
        # last 1x1 conv to one channel std sqrt(2) per weight: aux logits of ~300 at step 1,
        # BCE gradients that blow the branches up, NaN within two epochs at lr 5e-3.)
        self.spg_b1 = _xavier_init(nn.Sequential(nn.Conv2d(c1, w, 3, padding=1), nn.ReLU()))
        self.spg_b2 = _xavier_init(nn.Sequential(nn.Conv2d(c2, w, 3, padding=1), nn.ReLU()))
        self.spg_b_shared = _xavier_init(nn.Sequential(
            nn.Conv2d(w, w, 3, padding=1), nn.ReLU(), nn.Conv2d(w, 1, 1)))
        self.spg_c = _xavier_init(nn.Sequential(
            nn.Conv2d(self.backbone.num_features, 512, 3, padding=1), nn.ReLU(), nn.Conv2d(512, 1, 1)))

    def _probe_channels(self, size: int) -> tuple[int, int]:
        was = self.backbone.training
        self.backbone.eval()
        device = next(self.backbone.parameters()).device  # "meta" when built without memory
        try:
            with torch.no_grad():
                self.backbone(torch.zeros(1, 3, size, size, device=device))
        finally:
            self.backbone.train(was)
        x1, x2 = self._captured.pop("x1"), self._captured.pop("x2")
        return int(x1.shape[1]), int(x2.shape[1])

    def reference_prefixes(self) -> list[tuple[str, str]]:
        """(skcream prefix, wsolevaluation's name) of every layer (:mod:`skcream.lr_groups`)."""
        return super().reference_prefixes() + [
            ("spg_b1.", "SPG_B_1a."), ("spg_b2.", "SPG_B_2a."),
            ("spg_b_shared.", "SPG_B_shared."), ("spg_c.", "SPG_C."),
        ]

    def _head_reference(self) -> str:
        return "SPG_A_4" if self.family == "vgg" else "SPG_A4"  # VggSpg / ResNetSpg, InceptionSpg

    def forward(
        self, x: torch.Tensor, labels: torch.Tensor | None = None, aux: bool = False
    ) -> tuple[torch.Tensor, ...]:
        """``(logits, F)``; with ``aux``: ``(logits, F, b1, b2, c, cam)``.

        ``b1``, ``b2``, ``c`` are (B, 1, *, *) logit maps; ``cam`` (B, h, w) is the class map
        of ``labels`` (default: the predicted class) from which SPG's first mask is made.
        """
        try:
            features = self.backbone(x)
            # InceptionSpg: its classifier SPG_A4 and branch SPG_C read the same dropped-out map
            dropped = self.head_input(features)
            logits = self.head(dropped.mean(dim=(2, 3)))
            if not aux:
                return logits, features
            x1, x2 = self._captured["x1"], self._captured["x2"]
            b1 = self.spg_b_shared(self.spg_b1(x1))
            b2 = self.spg_b_shared(self.spg_b2(x2))
            if labels is None:
                labels = logits.argmax(dim=1)
            cam = self.cams(dropped, labels)  # the reference's attention: SPG_A4 of that map
            return logits, features, b1, b2, self.spg_c(dropped), cam
        finally:
            self._captured.clear()


def spg_loss(outputs: tuple[torch.Tensor, ...], labels: torch.Tensor, size: tuple[int, int],
             thresholds: Mapping[str, float]) -> torch.Tensor:
    """SPG's training loss (see the module docstring) of ``SPGNet.forward(..., aux=True)``."""
    logits, _, b1, b2, c, cam = outputs

    def up(m: torch.Tensor) -> torch.Tensor:  # (B, 1, h, w) or (B, h, w) -> (B, H, W)
        m = m if m.ndim == 4 else m[:, None]
        return F.interpolate(m.float(), size=size, mode="bilinear", align_corners=False)[:, 0]

    t = thresholds
    b1_up, b2_up, c_up = up(b1), up(b2), up(c)
    attention = normalize_maps(up(cam.detach()))
    b2_prob = torch.sigmoid(b2_up).detach()
    fused = ((torch.sigmoid(b1_up) + torch.sigmoid(b2_up)) / 2).detach()
    loss = F.cross_entropy(logits.float(), labels)
    loss = loss + _masked_bce(b2_up, spg_mask(attention, t["spg_threshold_1h"], t["spg_threshold_1l"]))
    loss = loss + _masked_bce(b1_up, spg_mask(b2_prob, t["spg_threshold_2h"], t["spg_threshold_2l"]))
    return loss + _masked_bce(c_up, spg_mask(fused, t["spg_threshold_3h"], t["spg_threshold_3l"]))


class SPG(WSOLMethod):
    """SPG: CAM with self-produced pixel-wise guidance of three auxiliary maps."""

    name = "spg"
    PARAMS = {
        "spg_threshold_1h": ParamSpec(0.7, float, 0.0, 1.0),
        "spg_threshold_1l": ParamSpec(0.01, float, 0.0, 1.0),
        "spg_threshold_2h": ParamSpec(0.5, float, 0.0, 1.0),
        "spg_threshold_2l": ParamSpec(0.05, float, 0.0, 1.0),
        "spg_threshold_3h": ParamSpec(0.7, float, 0.0, 1.0),
        "spg_threshold_3l": ParamSpec(0.1, float, 0.0, 1.0),
        # skcream's: the reference's SPG trunk, or the CAM network's (see the module docstring)
        "spg_trunk": ParamSpec("reference", str, choices=("reference", "cam")),
    }

    @property
    def trunk(self) -> str:
        return "spg" if self.params["spg_trunk"] == "reference" else "cam"

    def build_network(self, backbone: nn.Module, n_classes: int) -> nn.Module:
        self.check_trunk(backbone)
        return SPGNet(backbone, n_classes)

    def forward(self, model: nn.Module, batch: Mapping[str, torch.Tensor]) -> Any:
        return model(batch["image"], batch["label"], aux=True)

    def loss(self, outputs: Any, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return spg_loss(outputs, batch["label"], tuple(batch["image"].shape[-2:]), self.params)
