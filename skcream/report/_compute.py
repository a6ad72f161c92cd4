"""The numbers of the report: the metric table and the per-image boxes behind the slider.

Everything is computed in the protocol's 224x224 frame with :mod:`skcream.metrics`, so the
table holds the numbers the Python API gives for the same maps:

- MaxBoxAccV2 / its curve (:func:`skcream.metrics.box_acc_curve`, multi-contour),
- per image and per threshold the single-contour box a user gets
  (:func:`skcream.metrics.boxes_from_scoremap`) and its best IoU with the ground truth: the
  slider's boxes and hit/miss marks, MaxBoxAcc (their best mean) and, at the chosen
  threshold tau, GT-known / Top-1 / Top-5 Loc (:func:`localization_scores`),
- PxAP (:func:`skcream.metrics.pxap`) where masks exist.

An image-blind prior is one map for every image: its boxes are computed once and only the
IoU with each image's ground truth differs (tested equal to the metric functions run on the
repeated map, which is n times slower).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from skcream.metrics import box_acc_curve, box_iou, boxes_from_scoremap, pxap

#: IoU thresholds (percent) of MaxBoxAccV2
IOU_THRESHOLDS = (30, 50, 70)
#: a box is a hit when its IoU with the best-matching ground-truth box is >= HIT_IOU
HIT_IOU = 0.5


@dataclass
class MethodResult:
    """One row of the table and, for maps, the per-image boxes.

    Attributes
    ----------
    name : str
    blind : bool
        An image-blind prior (one map for every image).
    row : dict
        ``max_box_acc_v2``, ``max_box_acc``, ``pxap``, ``gt_known_loc``, ``top1_loc``,
        ``top5_loc``, ``top1_acc`` (percent or None), ``threshold`` (tau) and
        ``threshold_source`` (where tau came from).
    curve : ndarray (T,)
        BoxAccV2 (mean over IoU 30/50/70, multi-contour) at each threshold of the grid.
    boxes : ndarray (n, S, 4) int64
        The single-contour box of each image at each slider threshold.
    iou : ndarray (n, S) float64
        Its best IoU with the image's ground-truth boxes.
    """

    name: str
    blind: bool
    row: dict[str, Any]
    curve: np.ndarray
    boxes: np.ndarray
    iou: np.ndarray = field(repr=False)

    @property
    def hits(self) -> np.ndarray:
        """(n, S) bool: IoU >= 0.5 (GT-known localization at each slider threshold)."""
        return self.iou >= HIT_IOU


def slider_grid(grid: np.ndarray, chosen: Sequence[float]) -> np.ndarray:
    """The curve's thresholds plus any chosen tau not on it, sorted."""
    extra = [float(t) for t in chosen if not np.any(np.isclose(grid, t, rtol=0, atol=1e-12))]
    return np.sort(np.concatenate([grid, np.asarray(extra, dtype=np.float64)]))


def _index(grid: np.ndarray, value: float) -> int:
    return int(np.argmin(np.abs(grid - value)))


def _best_iou(boxes: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(S, 4) boxes x (k, 4) GT -> (S,) best IoU."""
    return box_iou(boxes, gt).max(axis=1)


def _single_boxes(maps: Any, gt: list[np.ndarray], grid: np.ndarray):
    n = len(gt)
    boxes = np.zeros((n, grid.size, 4), dtype=np.int64)
    iou = np.zeros((n, grid.size))
    for i in range(n):
        boxes[i] = np.concatenate(boxes_from_scoremap(maps[i], grid, multi_contour=False))
        iou[i] = _best_iou(boxes[i], gt[i])
    return boxes, iou


def _prior_boxes(prior: np.ndarray, gt: list[np.ndarray], grid: np.ndarray, curve_grid):
    """Single-contour boxes/IoU on the slider grid and the (3, T) multi-contour accuracy."""
    single = np.concatenate(boxes_from_scoremap(prior, grid, multi_contour=False))
    boxes = np.broadcast_to(single, (len(gt), *single.shape))
    iou = np.stack([_best_iou(single, g) for g in gt])
    multi = boxes_from_scoremap(prior, curve_grid, multi_contour=True)
    correct = np.zeros((len(IOU_THRESHOLDS), curve_grid.size))
    deltas = np.asarray(IOU_THRESHOLDS, dtype=np.float64)[:, None] / 100
    for g in gt:
        best = np.array([box_iou(b, g).max() for b in multi])
        correct += best[None, :] >= deltas
    return boxes, iou, correct * 100.0 / float(len(gt))


def _choose_tau(on_grid: np.ndarray, hits_on_grid: np.ndarray) -> float:
    """Best single-contour accuracy at IoU 0.5; ties to the smallest threshold."""
    return float(on_grid[int(np.argmax(hits_on_grid))])


def _loc_scores(boxes: np.ndarray, gt, logits, labels) -> dict[str, float | None]:
    if logits is None:
        ok = np.array([_best_iou(boxes[i : i + 1], g)[0] >= HIT_IOU for i, g in enumerate(gt)])
        return {"gt_known_loc": float(ok.mean() * 100), "top1_loc": None, "top5_loc": None,
                "top1_acc": None}
    from skcream.estimators._boxes_target import localization_scores

    return localization_scores(np.asarray(logits, dtype=np.float64), boxes.astype(np.float64),
                               gt, np.asarray(labels))


def evaluate_methods(
    maps: Mapping[str, np.ndarray],
    priors: Mapping[str, np.ndarray],
    gt: list[np.ndarray],
    *,
    labels: np.ndarray,
    logits: np.ndarray | None = None,
    masks: Sequence[np.ndarray] | None = None,
    thresholds: Mapping[str, float] | None = None,
    val_maps: Mapping[str, np.ndarray] | None = None,
    val_gt: list[np.ndarray] | None = None,
    interval: float = 0.01,
) -> tuple[np.ndarray, np.ndarray, dict[str, MethodResult]]:
    """Evaluate every map and prior; see the module docstring.

    Parameters
    ----------
    maps : mapping of str to ndarray (n, 224, 224)
        Protocol maps of the ground-truth class, per method.
    priors : mapping of str to ndarray (224, 224)
        Image-blind prior maps.
    gt : list of n ndarrays (k_i, 4)
        Ground-truth boxes in the protocol frame.
    labels : ndarray (n,) int
        True class indices (columns of ``logits``).
    logits : ndarray (n, C), optional
        Class scores (Top-1/Top-5 Loc and accuracy); None leaves those empty.
    masks : sequence of n (224, 224) uint8, optional
        For PxAP (0 bg, 1 fg, 255 ignore).
    thresholds : mapping of str to float, optional
        A fixed tau per method (e.g. the model's ``box_threshold_``).
    val_maps, val_gt : optional
        Where tau is chosen for methods without a fixed one (priors: the prior itself on
        ``val_gt``); without them tau is chosen on the evaluated images themselves.
    interval : float, default=0.01
        Threshold grid ``np.arange(0, 1, interval)``.

    Returns
    -------
    curve_grid : ndarray (T,)
    grid : ndarray (S,)
        The slider's thresholds: ``curve_grid`` plus any fixed tau not on it.
    results : dict of str to MethodResult
    """
    thresholds = dict(thresholds or {})
    n = len(gt)
    curve_grid = np.arange(0, 1, interval)
    grid = slider_grid(curve_grid, list(thresholds.values()))
    on_curve = np.array([_index(grid, t) for t in curve_grid])
    results: dict[str, MethodResult] = {}
    for name, m in [*maps.items(), *priors.items()]:
        blind = name in priors and name not in maps
        if blind:
            boxes, iou, multi = _prior_boxes(np.asarray(m, dtype=np.float64), gt, grid,
                                             curve_grid)
        else:
            if len(m) != n:
                raise ValueError(f"maps[{name!r}] has {len(m)} maps for {n} images")
            _, multi = box_acc_curve(m, gt, iou_thresholds=IOU_THRESHOLDS,
                                     cam_curve_interval=interval, multi_contour=True)
            boxes, iou = _single_boxes(m, gt, grid)
        # count * 100 / n, the metric's own arithmetic (identical floats)
        hits_on_curve = (iou[:, on_curve] >= HIT_IOU).sum(axis=0) * 100.0 / float(n)
        if name in thresholds:
            tau, source = float(thresholds[name]), "given"
        elif val_gt is not None and (blind or (val_maps is not None and name in val_maps)):
            vm = np.broadcast_to(m, (len(val_gt), *np.shape(m))) if blind else val_maps[name]
            _, acc = box_acc_curve(vm, val_gt, iou_thresholds=(50,), cam_curve_interval=interval,
                                   multi_contour=False)
            tau, source = _choose_tau(curve_grid, acc[0]), "val"
        else:
            tau, source = _choose_tau(curve_grid, hits_on_curve), "test"
        at = _index(grid, tau)
        row: dict[str, Any] = {
            "max_box_acc_v2": float(multi.max(axis=1).mean()),
            "max_box_acc": float(hits_on_curve.max()),
            "pxap": None,
            **_loc_scores(boxes[:, at], gt, logits, labels),
            "threshold": tau,
            "threshold_source": source,
        }
        if blind:
            row["top1_acc"] = None  # a prior has no classifier; Top-k Loc use the model's
        if masks is not None:
            mm = np.broadcast_to(m, (n, *np.shape(m))) if blind else m
            row["pxap"] = float(pxap(mm, list(masks), cam_curve_interval=interval))
        results[name] = MethodResult(name, blind, row, multi.mean(axis=0), boxes, iou)
    return curve_grid, grid, results
