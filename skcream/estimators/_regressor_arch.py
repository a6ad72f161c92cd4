"""What differs between the regressor's two architectures, in one place per architecture.

``PseudoBoxRegressor(architecture=...)`` reads everything that depends on the architecture
from one of these objects: the network, the training crop and the regression target, the
evaluation frame (the input the network sees at test time, and the pixels in which a
predicted box is compared with the ground truth) and when a box counts as correct.

* ``"psol"`` (:data:`PSOL`): the released CREAM_Reg (Jazzcharles/CREAM ``models/models.py``,
  ``loader/cub_loader.py``, ``inference.py``, after PSOL). Network
  :func:`~skcream.estimators._regressor_net.build_psol_network`; training crop
  :class:`~skcream.data.transforms.RandomResizedBoxCrop` (0.2-1 of the area, overlapping
  the box, to ``image_size``, flip); target ``(x0, y0, w, h)`` of the box clipped to the
  crop, divided by the crop size; evaluation frame
  :class:`~skcream.data.transforms.ResizeCenterCrop` (``resize_size`` square, centre crop
  ``image_size``: 256 / 224), the ground-truth boxes mapped into the crop and clipped to it,
  the prediction ``(x0, y0, x0 + w, y0 + h)`` times the crop size (not clipped); correct
  when the continuous IoU with the best ground-truth box is > 0.5; Top-1 / Top-5 /
  GT-known Loc averaged per class, then over classes (``inference.py``).
* ``"gap"`` (:data:`GAP`): skcream's earlier regressor. Network
  :class:`~skcream.estimators._regressor_net.BoxRegressionNet` (WSOL backbone, GAP, head);
  training crop :class:`~skcream.data.transforms.TrainTransform` (resize, random crop,
  flip); target ``(x0, y0, x1, y1)`` / crop size; evaluation frame the whole image resized
  to ``image_size``, scored in the protocol's 224 frame (WSOL_PROTOCOL.md: ground truth
  ``int(x * 224 / W)``, inclusive +1 IoU >= 0.5), averaged over images.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from skcream.estimators import _boxes_target as bt
from skcream.estimators._regressor_net import (
    BoxRegressionNet,
    build_psol_network,
    iou50_correct,
    mse_box_loss,
    psol_box_loss,
    psol_iou50_correct,
)

__all__ = ["ARCHITECTURES", "GAP", "PSOL", "RegressorArchitecture", "get_architecture",
           "continuous_iou"]


def continuous_iou(box: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """IoU of one box with k boxes, continuous coordinates (no +1), as the reference's ``IoU``.

    Areas are ``max(0, x1 - x0) * max(0, y1 - y0)`` (an inverted box has area 0).

    Parameters
    ----------
    box : ndarray (4,)
    gt : ndarray (k, 4)

    Returns
    -------
    ndarray (k,) float64
        0 where the union is empty.
    """
    b = np.asarray(box, dtype=np.float64).reshape(4)
    g = np.asarray(gt, dtype=np.float64).reshape(-1, 4)

    def area(x0, y0, x1, y1):
        return np.maximum(0.0, x1 - x0) * np.maximum(0.0, y1 - y0)

    inter = area(np.maximum(b[0], g[:, 0]), np.maximum(b[1], g[:, 1]),
                 np.minimum(b[2], g[:, 2]), np.minimum(b[3], g[:, 3]))
    union = area(*b) + area(g[:, 0], g[:, 1], g[:, 2], g[:, 3]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


class RegressorArchitecture:
    """The architecture-dependent parts of :class:`PseudoBoxRegressor` (see the module)."""

    name: str = ""
    #: Top-1 / Top-5 / GT-known Loc averaged per class, then over classes (else over images)
    per_class_mean: bool = False
    loss_fn: Callable[[Any, Any], torch.Tensor]
    metric_fn: Callable[[Any, Any], torch.Tensor]

    def build(self, spec: Mapping[str, Any], pretrained: Any) -> torch.nn.Module:
        """The network of a ``spec`` (``backbone``, ``architecture``, ``hidden``, ...)."""
        raise NotImplementedError

    def train_transform(self, est: Any, data_config: Mapping[str, Any]):
        """The box-aware training transform of estimator ``est``."""
        raise NotImplementedError

    def eval_transform(self, est: Any, data_config: Mapping[str, Any]):
        """The box-aware evaluation transform (the network's test-time input)."""
        raise NotImplementedError

    def encode(self, unit: np.ndarray) -> np.ndarray:
        """Regression target (4,) float32 of a box ``x0, y0, x1, y1`` / crop size."""
        raise NotImplementedError

    def decode(self, outputs: np.ndarray) -> np.ndarray:
        """Network outputs (n, 4) -> ``x0, y0, x1, y1`` (``x0 <= x1``, ``y0 <= y1``) / size of
        the evaluation input."""
        raise NotImplementedError

    def frame_size(self, est: Any) -> int:
        """Side of the scoring frame in pixels."""
        raise NotImplementedError

    def gt_frame(self, gt: np.ndarray, size: tuple[int, int], est: Any) -> np.ndarray:
        """Ground-truth boxes (k, 4) of a ``size = (W, H)`` image in the scoring frame."""
        raise NotImplementedError

    def to_original(self, unit: np.ndarray, sizes: np.ndarray, est: Any) -> np.ndarray:
        """Decoded boxes (n, 4) -> each image's original pixels (``sizes`` (n, 2) ``(W, H)``)."""
        raise NotImplementedError

    def hit(self, box: np.ndarray, gt: np.ndarray) -> bool:
        """Whether a predicted box (4,) is correct against ground truth (k, 4) (frame pixels)."""
        raise NotImplementedError

    def hits(self, unit: np.ndarray, gts: Sequence[np.ndarray], est: Any) -> np.ndarray:
        """(n,) bool: the decoded boxes (n, 4) against each image's frame ground truth."""
        pred = np.asarray(unit, dtype=np.float64) * self.frame_size(est)
        return np.array([self.hit(p, g) for p, g in zip(pred, gts)], dtype=bool)


class _PSOL(RegressorArchitecture):
    name = "psol"
    per_class_mean = True
    loss_fn = staticmethod(psol_box_loss)
    metric_fn = staticmethod(psol_iou50_correct)

    def build(self, spec, pretrained):
        return build_psol_network(spec.get("architecture") or spec["backbone"], pretrained,
                                  int(spec["hidden"]))

    def train_transform(self, est, data_config):
        from skcream.data.transforms import RandomResizedBoxCrop

        return RandomResizedBoxCrop(size=est.image_size, flip=bool(est.flip),
                                    mean=data_config["mean"], std=data_config["std"])

    def eval_transform(self, est, data_config):
        from skcream.data.transforms import ResizeCenterCrop

        return ResizeCenterCrop(resize=est.resize_size,
                                crop=est.image_size,
                                mean=data_config["mean"], std=data_config["std"])

    def encode(self, unit):
        u = np.asarray(unit, dtype=np.float64).reshape(4)
        return np.array([u[0], u[1], u[2] - u[0], u[3] - u[1]], dtype=np.float32)

    def decode(self, outputs):
        o = np.asarray(outputs, dtype=np.float64).reshape(-1, 4)
        return np.concatenate([o[:, :2], o[:, :2] + o[:, 2:]], axis=1)

    def frame_size(self, est):
        return int(est.image_size)

    def gt_frame(self, gt, size, est):
        return self.eval_transform(est, _NO_NORM).transform_boxes(gt, *size)

    def to_original(self, unit, sizes, est):
        crop = self.eval_transform(est, _NO_NORM)
        pixels = np.asarray(unit, dtype=np.float64) * crop.crop
        out = [crop.to_original(b, int(w), int(h))[0] for b, (w, h) in zip(pixels, sizes)]
        return np.array(out, dtype=np.float64).reshape(-1, 4)

    def hit(self, box, gt):
        return bool(continuous_iou(box, gt).max() > 0.5)  # inference.py: IoU > 0.5


class _GAP(RegressorArchitecture):
    name = "gap"
    per_class_mean = False
    loss_fn = staticmethod(mse_box_loss)
    metric_fn = staticmethod(iou50_correct)

    def build(self, spec, pretrained):
        from skcream.backbones import build_backbone

        backbone = build_backbone(
            spec.get("architecture") or spec["backbone"], pretrained,
            feature_stage=spec["feature_stage"], modification=spec["modification"],
        )
        return BoxRegressionNet(backbone, int(spec["hidden"]))

    def train_transform(self, est, data_config):
        from skcream.estimators._common import train_transform

        return train_transform(est, data_config, flip=bool(est.flip))

    def eval_transform(self, est, data_config):
        from skcream.data.transforms import EvalTransform

        return EvalTransform(size=est.image_size, mean=data_config["mean"],
                             std=data_config["std"])

    def encode(self, unit):
        return np.asarray(unit, dtype=np.float32).reshape(4)

    def decode(self, outputs):
        return bt.order_corners(np.asarray(outputs, dtype=np.float64).reshape(-1, 4))

    def frame_size(self, est):
        return bt.PROTOCOL_SIZE

    def gt_frame(self, gt, size, est):
        return bt.to_protocol_frame(gt, size, truncate=True)

    def to_original(self, unit, sizes, est):
        return bt.denormalize_boxes(unit, sizes)

    def hit(self, box, gt):
        # the protocol's rule, as skcream.metrics.localization_accuracy: +1 IoU >= 0.5
        return bool(bt.protocol_hits(np.asarray(box, dtype=np.float64)[None], [gt])[0])


_NO_NORM = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}

PSOL = _PSOL()
GAP = _GAP()
#: ``PseudoBoxRegressor(architecture=...)`` values
ARCHITECTURES = {"psol": PSOL, "gap": GAP}


def get_architecture(name: str) -> RegressorArchitecture:
    """The architecture called ``name`` (``"psol"`` or ``"gap"``)."""
    try:
        return ARCHITECTURES[name]
    except (KeyError, TypeError):
        raise ValueError(f"architecture must be one of {list(ARCHITECTURES)}, got {name!r}") from None
