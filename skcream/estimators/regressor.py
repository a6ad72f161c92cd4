"""CREAM_Reg (paper section 4.1, Fig. 3): a class-agnostic box regressor on pseudo boxes.

- :class:`PseudoBoxRegressor` is a scikit-learn regressor from images to one box per
  image: a timm backbone, global average pooling and the head
  ``Linear(d, 512) -> ReLU -> Linear(512, 4) -> Sigmoid``, trained with the MSE on the four
  box coordinates normalised to the (augmented) training image, through the one
  Accelerate loop of :mod:`skcream.training`. Random crops and flips move the target box.
- :class:`CREAMReg` composes a :class:`~skcream.estimators.localizer.CREAMLocalizer`
  (CREAM_Base: the class, and the pseudo boxes of the training set at 448x448) and a
  :class:`PseudoBoxRegressor` trained on those pseudo boxes (the box at test time).

The code lives in modules with one job each: the network, its loss and accuracy in
:mod:`~skcream.estimators._regressor_net`, the regressor in
:mod:`~skcream.estimators._box_regressor`, the meta-estimator in
:mod:`~skcream.estimators._cream_reg`; this module is their public face.

The two-step recipe, equivalent to ``CREAMReg(localizer, regressor).fit(train)``::

    loc = CREAMLocalizer(...).fit(train)                  # CREAM_Base
    boxes = loc.pseudo_boxes(train, resolution=448)       # (n, 4) original pixels
    reg = PseudoBoxRegressor(...).fit(train, boxes)       # class-agnostic boxes
    model = CREAMReg(loc, reg, prefit=True).fit(train)    # or keep loc and reg apart

Evaluation frame: ``score``/``evaluate`` follow WSOL_PROTOCOL.md. Ground-truth boxes are
scaled to 224x224 with ``int(x * 224 / W)``; the regressor's boxes are continuous and are
scaled to 224 without truncation. IoU uses the protocol's inclusive +1 convention (the
pseudo boxes the regressor learns from follow that convention too).
"""

from __future__ import annotations

from skcream.estimators._box_regressor import PseudoBoxRegressor
from skcream.estimators._cream_reg import CREAMReg, box_masks
from skcream.estimators._regressor_net import (
    BoxRegressionNet,
    box_iou_unit,
    iou50_correct,
    mse_box_loss,
)

__all__ = [
    "BoxRegressionNet",
    "CREAMReg",
    "PseudoBoxRegressor",
    "box_iou_unit",
    "box_masks",
    "iou50_correct",
    "mse_box_loss",
]
