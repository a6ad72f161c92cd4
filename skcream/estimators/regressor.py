"""CREAM_Reg (paper section 4.1, Fig. 3): a class-agnostic box regressor on pseudo boxes.

- :class:`PseudoBoxRegressor` is a scikit-learn regressor from images to one box per
  image, trained with the MSE on the four box coordinates normalised to the (augmented)
  training crop, through the one Accelerate loop of :mod:`skcream.training`. Its default
  ``architecture="psol"`` is the released CREAM_Reg (Jazzcharles/CREAM, after PSOL): the
  ImageNet classifier with its last layer replaced by ``Linear(d, 512) -> ReLU ->
  Linear(512, 4) -> Sigmoid`` (:class:`PSOLBoxNet`; VGG16 136,360,260 parameters),
  ``(x0, y0, w, h)`` targets on random resized crops that overlap the box, evaluated on
  the 256 -> 224 centre crop at IoU > 0.5. ``architecture="gap"`` is a WSOL backbone, GAP
  and the head (:class:`BoxRegressionNet`), evaluated in the protocol's frame.
- :class:`CREAMReg` composes a :class:`~skcream.estimators.localizer.CREAMLocalizer`
  (CREAM_Base: the class, and the pseudo boxes of the training set at 448x448) and a
  :class:`PseudoBoxRegressor` trained on those pseudo boxes (the box at test time);
  ``ten_crop=True`` averages the class probabilities over ten crops.

The code lives in modules with one job each: the networks, their losses and accuracy in
:mod:`~skcream.estimators._regressor_net`, what differs between the two architectures in
:mod:`~skcream.estimators._regressor_arch`, the regressor in
:mod:`~skcream.estimators._box_regressor`, the meta-estimator in
:mod:`~skcream.estimators._cream_reg`; this module is their public face.

The two-step recipe, equivalent to ``CREAMReg(localizer, regressor).fit(train)``::

    loc = CREAMLocalizer(...).fit(train)                  # CREAM_Base
    boxes = loc.pseudo_boxes(train, resolution=448)       # (n, 4) original pixels
    reg = PseudoBoxRegressor(...).fit(train, boxes)       # class-agnostic boxes
    model = CREAMReg(loc, reg, prefit=True).fit(train)    # or keep loc and reg apart

Evaluation frames (``score`` / ``evaluate``): see :class:`PseudoBoxRegressor` and
:meth:`CREAMReg.evaluate`.
"""

from __future__ import annotations

from skcream.estimators._box_regressor import PseudoBoxRegressor
from skcream.estimators._cream_reg import CREAMReg, box_masks, ten_crop_proba
from skcream.estimators._regressor_net import (
    BoxRegressionNet,
    PSOLBoxNet,
    box_iou_unit,
    build_psol_network,
    iou50_correct,
    mse_box_loss,
)

__all__ = [
    "BoxRegressionNet",
    "CREAMReg",
    "PSOLBoxNet",
    "PseudoBoxRegressor",
    "box_iou_unit",
    "box_masks",
    "build_psol_network",
    "iou50_correct",
    "mse_box_loss",
    "ten_crop_proba",
]
