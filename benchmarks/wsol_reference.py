"""A plain re-implementation of the reference WSOL evaluation (``wsolevaluation``).

This is the *slow* algorithm of Choe et al. (CVPR 2020), written down step by
step so that it can serve as an oracle: one ``cv2.findContours(RETR_TREE,
CHAIN_APPROX_SIMPLE)`` per CAM threshold per map, ``cv2.boundingRect`` per
contour, Python loops, ``np.histogram`` per map for PxAP. It is used by
``benchmarks/bench_metrics.py`` (timing) and by the tests of
:mod:`skcream.metrics` (randomised equality). It is not part of the package.

The reference raises ``TypeError``/``RuntimeError`` in places where skcream
raises ``ValueError``; here the checks raise what the reference raises.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = [
    "check_scoremap_validity",
    "check_box_convention",
    "calculate_multiple_iou",
    "compute_bboxes_from_scoremaps",
    "max_box_acc",
    "pxap",
]


def check_scoremap_validity(scoremap):
    """The reference's map checks, in the reference's order."""
    if not isinstance(scoremap, np.ndarray):
        raise TypeError("Scoremap must be a numpy array")
    if scoremap.dtype != np.float64:
        raise TypeError("Scoremap must be of np.float type")
    if len(scoremap.shape) != 2:
        raise ValueError("Scoremap must be a 2D array")
    if np.isnan(scoremap).any():
        raise ValueError("Scoremap must not contain nans.")
    if (scoremap > 1).any() or (scoremap < 0).any():
        raise ValueError("Scoremap must be in range [0, 1].")


def check_box_convention(boxes):
    """x0y0x1y1 checks: non-negative, shape (4,) or (n, 4), x1 >= x0 and y1 >= y0."""
    boxes = np.asarray(boxes)
    if (boxes < 0).any():
        raise RuntimeError("Box coordinates must be non-negative.")
    if boxes.ndim == 1:
        boxes = boxes[None]
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise RuntimeError("Box array must have dimension (4) or (num_boxes, 4).")
    if (boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any():
        raise RuntimeError("Box array must follow the x0y0x1y1 convention.")


def calculate_multiple_iou(box_a, box_b):
    """IoU of every box of ``box_a`` (n_a, 4) with every box of ``box_b`` (n_b, 4).

    Inclusive "+1" areas; a denominator <= 0 gives 0.
    """
    box_a = np.asarray(box_a)
    box_b = np.asarray(box_b)
    check_box_convention(box_a)
    check_box_convention(box_b)
    num_a, num_b = box_a.shape[0], box_b.shape[0]
    a = np.tile(box_a, num_b)
    a = np.expand_dims(a, axis=1).reshape((num_a, num_b, -1))
    b = np.tile(box_b, num_a)
    b = np.expand_dims(b, axis=1).reshape((num_b, num_a, -1))
    b = np.transpose(b, (1, 0, 2))
    min_x = np.maximum(a[:, :, 0], b[:, :, 0])
    min_y = np.maximum(a[:, :, 1], b[:, :, 1])
    max_x = np.minimum(a[:, :, 2], b[:, :, 2])
    max_y = np.minimum(a[:, :, 3], b[:, :, 3])
    area_intersect = np.maximum(0, max_x - min_x + 1) * np.maximum(0, max_y - min_y + 1)
    area_a = (a[:, :, 2] - a[:, :, 0] + 1) * (a[:, :, 3] - a[:, :, 1] + 1)
    area_b = (b[:, :, 2] - b[:, :, 0] + 1) * (b[:, :, 3] - b[:, :, 1] + 1)
    denominator = area_a + area_b - area_intersect
    degenerate = np.where(denominator <= 0)
    denominator[degenerate] = 1
    ious = area_intersect / denominator
    ious[degenerate] = 0
    return ious


def compute_bboxes_from_scoremaps(scoremap, scoremap_threshold_list, multi_contour_eval=False):
    """Boxes at each CAM threshold, one ``findContours`` per threshold.

    Returns
    -------
    boxes_at_each_threshold : list of ndarray (k_t, 4)
    number_of_box_list : list of int
    """
    check_scoremap_validity(scoremap)
    height, width = scoremap.shape
    scoremap_image = np.expand_dims((scoremap * 255).astype(np.uint8), 2)

    def scoremap2bbox(threshold):
        _, thr_gray_heatmap = cv2.threshold(
            src=scoremap_image,
            thresh=int(threshold * np.max(scoremap_image)),
            maxval=255,
            type=cv2.THRESH_BINARY,
        )
        contours = cv2.findContours(
            image=thr_gray_heatmap, mode=cv2.RETR_TREE, method=cv2.CHAIN_APPROX_SIMPLE
        )[0]
        if len(contours) == 0:
            return np.asarray([[0, 0, 0, 0]]), 1
        if not multi_contour_eval:
            contours = [max(contours, key=cv2.contourArea)]
        estimated_boxes = []
        for contour in contours:
            x, y, w, h = cv2.boundingRect(contour)
            x0, y0, x1, y1 = x, y, x + w, y + h
            x1 = min(x1, width - 1)
            y1 = min(y1, height - 1)
            estimated_boxes.append([x0, y0, x1, y1])
        return np.asarray(estimated_boxes), len(contours)

    boxes_list, number_list = [], []
    for threshold in scoremap_threshold_list:
        boxes, number = scoremap2bbox(threshold)
        boxes_list.append(boxes)
        number_list.append(number)
    return boxes_list, number_list


def box_accuracies(scoremaps, gt_boxes, cam_threshold_list, iou_threshold_list=(30, 50, 70),
                   multi_contour_eval=True):
    """The reference ``BoxEvaluator``: accumulate map by map, then accuracy per threshold.

    Returns
    -------
    dict iou_threshold -> ndarray (n_thresholds,) of percent.
    """
    num_correct = {d: np.zeros(len(cam_threshold_list)) for d in iou_threshold_list}
    cnt = 0
    for scoremap, gt in zip(scoremaps, gt_boxes):
        boxes_at_thresholds, number_of_box_list = compute_bboxes_from_scoremaps(
            scoremap, cam_threshold_list, multi_contour_eval
        )
        boxes_at_thresholds = np.concatenate(boxes_at_thresholds, axis=0)
        multiple_iou = calculate_multiple_iou(np.array(boxes_at_thresholds), np.array(gt))
        idx = 0
        sliced = []
        for nr_box in number_of_box_list:
            sliced.append(max(multiple_iou.max(1)[idx:idx + nr_box]))
            idx += nr_box
        for d in iou_threshold_list:
            correct = np.where(np.asarray(sliced) >= (d / 100))[0]
            num_correct[d][correct] += 1
        cnt += 1
    return {d: num_correct[d] * 100.0 / float(cnt) for d in iou_threshold_list}


def max_box_acc(scoremaps, gt_boxes, cam_curve_interval=0.01, iou_threshold_list=(30, 50, 70),
                multi_contour_eval=True):
    """MaxBoxAcc per IoU threshold (list, percent): the best threshold for each delta."""
    thresholds = list(np.arange(0, 1, cam_curve_interval))
    acc = box_accuracies(scoremaps, gt_boxes, thresholds, iou_threshold_list, multi_contour_eval)
    return [acc[d].max() for d in iou_threshold_list]


def pxap(scoremaps, gt_masks, cam_curve_interval=0.01):
    """The reference ``MaskEvaluator``: per-map histograms, summed, then a step-sum AP (%)."""
    threshold_list = list(np.arange(0, 1, cam_curve_interval))
    num_bins = len(threshold_list) + 2
    edges = np.append(threshold_list, [1.0, 2.0, 3.0])
    true_hist = np.zeros(num_bins, dtype=np.float64)
    false_hist = np.zeros(num_bins, dtype=np.float64)
    for scoremap, gt_mask in zip(scoremaps, gt_masks):
        check_scoremap_validity(scoremap)
        true_h, _ = np.histogram(scoremap[gt_mask == 1], bins=edges)
        true_hist += true_h.astype(np.float64)
        false_h, _ = np.histogram(scoremap[gt_mask == 0], bins=edges)
        false_hist += false_h.astype(np.float64)
    num_true = true_hist.sum()
    tp = true_hist[::-1].cumsum()
    fn = num_true - tp
    fp = false_hist[::-1].cumsum()
    if ((tp + fn) <= 0).all():
        raise RuntimeError("No positive ground truth in the eval set.")
    if ((tp + fp) <= 0).all():
        raise RuntimeError("No positive prediction in the eval set.")
    non_zero = (tp + fp) != 0
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / (tp + fp)
        recall = tp / (tp + fn)
    auc = (precision[1:] * np.diff(recall))[non_zero[1:]].sum()
    return auc * 100
