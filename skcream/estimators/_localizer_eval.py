"""Protocol evaluation of maps already computed by the localizer.

Inputs are the protocol's 224x224 maps (upsampled bicubic, min-max) and the
ground truth scaled to 224 the protocol's way (``int(x * 224 / W)``). Only the
metric functions of :mod:`skcream.metrics` are used for numbers; this module
gathers the per-image pieces and picks thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from skcream.metrics import box_iou, boxes_from_scoremap

__all__ = ["box_accuracy_curve", "best_threshold"]


def box_accuracy_curve(
    maps: np.ndarray | Sequence[np.ndarray],
    gt_boxes: Sequence[np.ndarray],
    *,
    iou_threshold: float = 50,
    cam_curve_interval: float = 0.01,
    multi_contour: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Box accuracy (percent) at every CAM threshold of the protocol's grid.

    Parameters
    ----------
    maps : (n, H, W) float64 in [0, 1] or sequence of 2-D maps
    gt_boxes : sequence of n (k_i, 4) arrays
    iou_threshold : float, default=50
        In percent; an image counts when its best IoU is >= iou_threshold / 100.
    cam_curve_interval : float, default=0.01
    multi_contour : bool, default=False
        Single-contour (the box a user gets) or multi-contour (MaxBoxAccV2) boxes.

    Returns
    -------
    thresholds : ndarray (n_thresholds,)
        ``np.arange(0, 1, cam_curve_interval)``.
    accuracy : ndarray (n_thresholds,)
        Percent of images localized at each threshold; its maximum is MaxBoxAcc at
        ``iou_threshold``.
    """
    thresholds = np.arange(0, 1, cam_curve_interval)
    correct = np.zeros(len(thresholds), dtype=np.int64)
    for scoremap, gt in zip(maps, gt_boxes):
        per_threshold = boxes_from_scoremap(
            np.asarray(scoremap, dtype=np.float64), thresholds, multi_contour=multi_contour
        )
        gt = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
        for t, boxes in enumerate(per_threshold):
            best = box_iou(np.asarray(boxes).reshape(-1, 4), gt).max()
            correct[t] += best >= iou_threshold / 100
    return thresholds, correct * 100.0 / max(len(gt_boxes), 1)


def best_threshold(
    maps: np.ndarray | Sequence[np.ndarray],
    gt_boxes: Sequence[np.ndarray],
    *,
    iou_threshold: float = 50,
    cam_curve_interval: float = 0.01,
) -> float:
    """The CAM threshold with the best single-contour box accuracy (the protocol's choice
    on the ``val`` split for GT-known / Top-1 Loc). Ties go to the smallest threshold."""
    thresholds, acc = box_accuracy_curve(
        maps, gt_boxes, iou_threshold=iou_threshold, cam_curve_interval=cam_curve_interval
    )
    return float(thresholds[int(np.argmax(acc))])
