"""WSOL metrics with the exact numbers of the reference evaluation (``wsolevaluation``).

Conventions (``docs/WSOL_PROTOCOL.md`` of the shared folder, sections 1-11):
maps are quantised as ``q = (map * 255).astype(uint8)`` (truncation); a CAM
threshold ``t`` becomes the level ``L = int(t * q.max())`` and the foreground is
``q > L``; boxes come from ``cv2.findContours(RETR_TREE)`` contours as
``[x, y, min(x + w, W - 1), min(y + h, H - 1)]``; IoU uses inclusive "+1" areas.

Speed. The reference calls ``cv2.findContours`` once per threshold per map. Here no
contour is traced for CAM-like maps: one compiled sweep over the map's 255 uint8 levels
(:mod:`skcream._levelsets`, numba) gives, at every level, the best IoU of every contour box
(multi-contour, MaxBoxAccV2), the box of the largest contour (single-contour, MaxBoxAcc) or
all boxes in OpenCV's order (``boxes_from_scoremap``), so the cost per map does not depend
on the number of thresholds. The multiset of boxes is the reference's: for each
8-connected foreground component ``[xmin, ymin, min(xmax+1, W-1), min(ymax+1, H-1)]``, and
for each hole (a 4-connected background component not touching the border)
``[hxmin-1, hymin-1, min(hxmax+2, W-1), min(hymax+2, H-1)]``. Tests compare every number
with OpenCV at every level and with a plain re-implementation of the reference
(``benchmarks/wsol_reference.py``). Whole datasets: :class:`BoxAccumulator` and
:class:`PxAPAccumulator` accumulate per-threshold counts batch by batch, and ``n_jobs``
runs the GIL-free kernels in threads.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from numbers import Integral
from typing import Any

import numpy as np

from skcream import _levelsets, _pxap
from skcream._boxes import level_component_boxes
from skcream._checks import as_real
from skcream._masks import mask_codes
from skcream.scoremaps import (
    PROTOCOL_SHAPE,
    check_scoremap,
    contour_boxes,
    quantise,
    resize_scoremap,
)
from skcream.scoremaps import check_box_array as _check_boxes

__all__ = [
    "box_iou",
    "boxes_from_scoremap",
    "box_acc_curve",
    "iou_percents",
    "max_box_acc",
    "max_box_acc_v2",
    "pxap",
    "localization_accuracy",
    "WSOLScorer",
    "make_wsol_scorer",
    "BoxAccumulator",
    "PxAPAccumulator",
    "ProtocolAccumulators",
    "evaluate_scoremaps",
    "THRESHOLD_FREE_METRICS",
    "MIN_CAM_CURVE_INTERVAL",
    "NamedScorer",
    "SCORERS",
    "SCORER_METRICS",
]

ArrayLike = Any


# ----------------------------------------------------------------------------- validation
def _check_maps(scoremaps: ArrayLike, name: str = "scoremaps") -> list[np.ndarray]:
    return [check_scoremap(m, f"{name}[{i}]") for i, m in enumerate(_map_list(scoremaps, name))]


def _check_gt_boxes(gt_boxes: ArrayLike, n: int, name: str = "gt_boxes") -> list[np.ndarray]:
    try:
        items = list(gt_boxes)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of (k_i, 4) box arrays") from None
    if len(items) != n:
        raise ValueError(f"{name} has {len(items)} entries but there are {n} maps")
    return [_check_boxes(b, f"{name}[{i}]") for i, b in enumerate(items)]


#: the smallest ``cam_curve_interval`` accepted: 100,000 thresholds. The reference uses 0.01
#: and 0.001; box metrics reach every uint8 level from 0.001 on, and a tiny interval
#: (1e-9 asked for 22 GiB) would only allocate threshold and histogram arrays.
MIN_CAM_CURVE_INTERVAL = 1e-5


def _thresholds(cam_curve_interval: float) -> np.ndarray:
    if isinstance(cam_curve_interval, bool) or not isinstance(
        cam_curve_interval, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"cam_curve_interval must be a number, got {cam_curve_interval!r}")
    step = float(cam_curve_interval)
    if not (MIN_CAM_CURVE_INTERVAL <= step < 1.0):
        raise ValueError(
            f"cam_curve_interval must be in [{MIN_CAM_CURVE_INTERVAL:g}, 1) (the reference "
            f"uses 0.01 or 0.001), got {cam_curve_interval!r}"
        )
    return np.arange(0, 1, step)


def _levels(thresholds: np.ndarray, qmax: int) -> np.ndarray:
    """``int(t * q.max())`` for every threshold (float64 product, then truncation)."""
    return (thresholds * np.float64(qmax)).astype(np.int64)


# ----------------------------------------------------------------------------- IoU
def box_iou(boxes_a: ArrayLike, boxes_b: ArrayLike) -> np.ndarray:
    """IoU of every box of ``boxes_a`` with every box of ``boxes_b``.

    Boxes are ``x0, y0, x1, y1`` with inclusive pixel coordinates: a box covers
    ``(x1 - x0 + 1) * (y1 - y0 + 1)`` pixels, so two identical one-pixel boxes
    have IoU 1.

    Parameters
    ----------
    boxes_a : array-like (n_a, 4) or (4,)
    boxes_b : array-like (n_b, 4) or (4,)

    Returns
    -------
    ndarray (n_a, n_b) float64
    """
    a = _check_boxes(boxes_a, "boxes_a", allow_empty=True)
    b = _check_boxes(boxes_b, "boxes_b", allow_empty=True)
    return _iou(a, b)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # the reference's operations, element by element (identical float64 results)
    a = a[:, None, :]
    b = b[None, :, :]
    min_x = np.maximum(a[..., 0], b[..., 0])
    min_y = np.maximum(a[..., 1], b[..., 1])
    max_x = np.minimum(a[..., 2], b[..., 2])
    max_y = np.minimum(a[..., 3], b[..., 3])
    inter = np.maximum(0, max_x - min_x + 1) * np.maximum(0, max_y - min_y + 1)
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    denominator = area_a + area_b - inter
    degenerate = denominator <= 0
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / np.where(degenerate, 1, denominator)
    iou = np.asarray(iou, dtype=np.float64)
    iou[degenerate] = 0.0
    return iou


# ----------------------------------------------------------------------------- boxes
def boxes_from_scoremap(
    scoremap: ArrayLike, thresholds: ArrayLike, multi_contour: bool = False
) -> list[np.ndarray]:
    """The boxes the reference evaluation infers from one map at each CAM threshold.

    Parameters
    ----------
    scoremap : array-like (H, W) float in [0, 1]
    thresholds : array-like (n_thresholds,)
        CAM thresholds in [0, 1); the foreground is ``q > int(t * q.max())``.
    multi_contour : bool, default=False
        False: the box of the contour with the largest ``cv2.contourArea``
        (the original MaxBoxAcc and the box a user gets). True: one box per
        contour, holes included (MaxBoxAccV2).

    Returns
    -------
    list of n_thresholds ndarrays (k_t, 4) int64
        ``x0, y0, x1, y1`` boxes in the reference's (OpenCV's contour) order; an
        all-zero map gives ``[[0, 0, 0, 0]]``.
    """
    smap = check_scoremap(scoremap, "scoremap")
    thr = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if not np.isfinite(thr).all():
        raise ValueError("thresholds must be finite")
    q = quantise(smap)
    qmax = int(q.max())
    levels = _levels(thr, qmax)
    inside = (levels >= 0) & (levels < qmax)
    out: list[Any] = [None] * levels.size
    pieces: list[np.ndarray] | None = None
    if inside.any():
        want = levels[inside]
        if not multi_contour:  # every level at once from the level-set sweep
            _, winners = _levelsets.best_single(q, None)
            pieces = list(winners[want][:, None, :])
        else:
            # the contour tree of every level from two sweeps, in OpenCV's order (None for
            # maps with very many local maxima, e.g. noise: contours are traced instead)
            uniq = np.unique(want)
            res = _levelsets.ordered_multi_arrays(q, uniq)
            if res is not None:
                boxes, sizes = res
                # one copy, its rows per threshold: the per-threshold views do not alias
                gathered, bounds = _levelsets.expand_rows(boxes, sizes,
                                                          np.searchsorted(uniq, want))
                b = bounds.tolist()
                pieces = [gathered[x:y] for x, y in zip(b, b[1:])]
    if pieces is not None:
        if len(pieces) == levels.size:  # every threshold inside 0..max-1 (the usual case)
            return pieces
        for j, piece in zip(np.flatnonzero(inside).tolist(), pieces):
            out[j] = piece
    cache: dict[int, np.ndarray] = {}
    for j, level in enumerate(levels.tolist()):
        if out[j] is None:  # levels outside 0..max-1, or noise in multi-contour mode
            if level not in cache:
                cache[level] = contour_boxes(q, level, multi_contour)
            out[j] = cache[level].copy()
    return out


def _predicted_boxes_all_levels(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Multi-contour boxes at every level ``0..q.max()-1`` from the component trees.

    Returns
    -------
    levels : ndarray (K,) int64
    boxes : ndarray (K, 4) int64, the reference's boxes (foreground and holes)
    """
    h, w = q.shape
    lv, bx = level_component_boxes(q, 8)
    fg = np.stack(
        [bx[:, 0], bx[:, 1], np.minimum(bx[:, 2] + 1, w - 1), np.minimum(bx[:, 3] + 1, h - 1)],
        axis=1,
    )
    # background of q > L is {255 - q > 254 - L}; holes are its 4-connected
    # components that do not touch the border
    hlv, hbx = level_component_boxes(255 - q, 4)
    inside = (hbx[:, 0] > 0) & (hbx[:, 1] > 0) & (hbx[:, 2] < w - 1) & (hbx[:, 3] < h - 1)
    hlv, hbx = 254 - hlv[inside], hbx[inside]
    holes = np.stack(
        [hbx[:, 0] - 1, hbx[:, 1] - 1, np.minimum(hbx[:, 2] + 2, w - 1),
         np.minimum(hbx[:, 3] + 2, h - 1)],
        axis=1,
    )
    return np.concatenate([lv, hlv]), np.concatenate([fg, holes])


def _best_iou_per_threshold(
    q: np.ndarray, gt: np.ndarray, thresholds: np.ndarray, multi_contour: bool | None
) -> np.ndarray:
    """Best IoU over predicted x GT boxes at each threshold, (n_thresholds,) float64; with
    ``multi_contour=None`` both modes, (2, n_thresholds): multi-contour, single-contour."""
    qmax = int(q.max())
    levels = _levels(thresholds, qmax)
    if qmax == 0:  # no contour at any threshold: the box [0, 0, 0, 0]
        best = np.full(levels.size, _iou(np.zeros((1, 4), np.int64), gt).max())
        return best if multi_contour is not None else np.stack([best, best])
    if multi_contour is None:  # one map's two modes share their work (_levelsets.best_both)
        return np.stack(_levelsets.best_both(q, gt))[:, levels]
    if multi_contour:
        best = _levelsets.best_iou_multi(q, gt)
    else:
        best = _levelsets.best_single(q, gt)[0]
    return best[levels]


# ----------------------------------------------------------------------------- MaxBoxAcc
def iou_percents(values: Any, name: str = "iou_thresholds") -> np.ndarray:
    """IoU thresholds in percent, checked: the one place every metric reads them.

    The protocol states IoU thresholds in percent (30, 50, 70). A value in (0, 1] would be
    read as a fraction of a percent (0.5 means IoU >= 0.005, which almost every box meets),
    so it is refused rather than guessed, as are values outside (1, 100].

    Parameters
    ----------
    values : number or sequence of numbers
    name : str
        The argument's name in errors (``iou_thresholds``, ``iou_threshold``).

    Returns
    -------
    ndarray (k,) float64

    Raises
    ------
    TypeError, ValueError
        Naming ``name`` and the value (a fraction gets "percentages: 50, not 0.5").
    """
    items = [values] if np.ndim(values) == 0 else list(np.asarray(values, dtype=object).ravel())
    if not items:
        raise ValueError(f"{name} must hold at least one IoU threshold (percent), got {values!r}")
    out = np.array([as_real(v, name) for v in items], dtype=np.float64)
    for v in out:
        if 0 < v <= 1:
            raise ValueError(
                f"{name}: IoU thresholds are percentages, e.g. 50 for IoU >= 0.5, not {v:g}; "
                f"got {values!r}"
            )
        if not 1 < v <= 100:
            raise ValueError(f"{name} must be percentages in (1, 100], got {values!r}")
    return out


def _n_jobs(n_jobs: Any) -> int:
    """joblib's convention: None -> 1, -1 -> all cores; anything else a clear error."""
    if n_jobs is None:
        return 1
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, Integral) or n_jobs == 0:
        raise ValueError(f"n_jobs must be None, a positive int or a negative int, got {n_jobs!r}")
    from joblib import effective_n_jobs

    return int(effective_n_jobs(int(n_jobs)))


def _chunks(n: int, n_jobs: int) -> list[range]:
    size = max(1, -(-n // (4 * n_jobs)))  # a few chunks per worker
    return [range(i, min(i + size, n)) for i in range(0, n, size)]


def _parallel(fn: Callable[[range], np.ndarray], n: int, n_jobs: int) -> np.ndarray:
    """Sum of ``fn(chunk)`` over chunks of ``range(n)``; threads when ``n_jobs > 1``.

    The map kernels are numba (``nogil``), OpenCV and numpy: they release the GIL, so
    threads run them in parallel without copying maps to other processes. The parts are
    integer counts, so the sum is exact in any order.
    """
    if n_jobs <= 1 or n <= 1:
        return fn(range(n))
    from joblib import Parallel, delayed

    parts = Parallel(n_jobs=n_jobs, prefer="threads")(
        delayed(fn)(c) for c in _chunks(n, n_jobs)
    )
    return np.sum(parts, axis=0)


def _hits(best: np.ndarray, deltas: np.ndarray) -> np.ndarray:
    """(n_iou, n_thresholds) bool: best IoU per threshold >= delta / 100 (inclusive)."""
    return best[None, :] >= (deltas[:, None] / 100)


def _box_counts(maps: list[Any], gts: list[np.ndarray], thresholds: np.ndarray,
                deltas: np.ndarray, multi_contour: bool, checked: bool,
                chunk: range) -> np.ndarray:
    """Maps counted correct, (n_iou, n_thresholds), over ``chunk`` (maps checked there)."""
    correct = np.zeros((deltas.size, thresholds.size))
    for i in chunk:
        smap = maps[i] if checked else check_scoremap(maps[i], f"scoremaps[{i}]")
        correct += _hits(_best_iou_per_threshold(quantise(smap), gts[i], thresholds,
                                                 multi_contour), deltas)
    return correct


class BoxAccumulator:
    """Box accuracy per CAM threshold, accumulated batch by batch (streaming evaluation).

    The reference's ``BoxEvaluator.accumulate``: per map, the count of correct maps at
    every (IoU threshold, CAM threshold) is added to a small table, so that a dataset of
    any size never sits in memory at once; :meth:`curve` and :meth:`max_box_acc` give
    the numbers of :func:`box_acc_curve` and :func:`max_box_acc` over all maps seen.

    Parameters
    ----------
    iou_thresholds : sequence of float, default=(30, 50, 70)
        In percent, each in (1, 100] (:func:`iou_percents`: 0.5 is refused, not read as
        0.5 %).
    cam_curve_interval : float, default=0.01
    multi_contour : bool, default=True
    n_jobs : int or None, default=None
        Threads over the maps of each :meth:`update` (joblib convention).

    Examples
    --------
    >>> acc = BoxAccumulator()
    >>> for maps, boxes in batches:  # doctest: +SKIP
    ...     acc.update(maps, boxes)
    >>> acc.max_box_acc_v2()  # doctest: +SKIP
    """

    def __init__(self, *, iou_thresholds: Sequence[float] = (30, 50, 70),
                 cam_curve_interval: float = 0.01, multi_contour: bool = True,
                 n_jobs: int | None = None):
        deltas = iou_percents(iou_thresholds, "iou_thresholds")
        self.iou_thresholds = deltas
        self.thresholds = _thresholds(cam_curve_interval)
        self.multi_contour = bool(multi_contour)
        self.n_jobs = _n_jobs(n_jobs)
        self.correct = np.zeros((deltas.size, self.thresholds.size))
        self.n_maps = 0

    def update(self, scoremaps: ArrayLike, gt_boxes: ArrayLike) -> BoxAccumulator:
        """Add a batch: maps (n, H, W) or a sequence of 2-D maps, and their GT boxes."""
        return self._update(scoremaps, gt_boxes, checked=False)

    def _update(self, scoremaps: ArrayLike, gt_boxes: ArrayLike, checked: bool) -> BoxAccumulator:
        maps = _map_list(scoremaps)
        gts = _check_gt_boxes(gt_boxes, len(maps))
        counts = _parallel(
            functools.partial(_box_counts, maps, gts, self.thresholds, self.iou_thresholds,
                              self.multi_contour, checked),
            len(maps), self.n_jobs,
        )
        return self.add_counts(counts, len(maps))  # only after the whole batch is valid

    def add_counts(self, correct: np.ndarray, n_maps: int) -> BoxAccumulator:
        """Add counts made elsewhere (another thread, process or :func:`_map_box_counts`):
        ``correct`` (n_iou, n_thresholds), maps counted correct among ``n_maps`` maps."""
        correct = np.asarray(correct, dtype=np.float64)
        if correct.shape != self.correct.shape:
            raise ValueError(f"correct must have shape {self.correct.shape}, got {correct.shape}")
        self.correct += correct
        self.n_maps += int(n_maps)
        return self

    def curve(self) -> tuple[np.ndarray, np.ndarray]:
        """``thresholds`` (n_thr,) and accuracy (n_iou, n_thr) in percent."""
        if self.n_maps == 0:
            raise ValueError("BoxAccumulator: no map was added (call update first)")
        return self.thresholds, self.correct * 100.0 / float(self.n_maps)

    def max_box_acc(self) -> np.ndarray:
        """The best accuracy over CAM thresholds, per IoU threshold (n_iou,)."""
        return self.curve()[1].max(axis=1)

    def max_box_acc_v2(self) -> float:
        """The mean of :meth:`max_box_acc` (MaxBoxAccV2 with the default settings)."""
        return float(np.average(self.max_box_acc()))


def box_acc_curve(
    scoremaps: ArrayLike,
    gt_boxes: ArrayLike,
    *,
    iou_thresholds: Sequence[float] = (30, 50, 70),
    cam_curve_interval: float = 0.01,
    multi_contour: bool = True,
    n_jobs: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Box accuracy (percent of maps localized) at every CAM threshold.

    Parameters
    ----------
    scoremaps : ndarray (n, H, W) or sequence of n 2-D arrays (sizes may differ)
        Float maps in [0, 1] (float32 is converted to float64).
    gt_boxes : sequence of n array-likes (k_i, 4)
        Ground-truth boxes ``x0, y0, x1, y1`` in each map's pixels; the best
        match counts.
    iou_thresholds : sequence of float, default=(30, 50, 70)
        In percent, each in (1, 100] (:func:`iou_percents`); a map counts at delta when its
        best IoU >= delta / 100.
    cam_curve_interval : float, default=0.01
        The CAM thresholds are ``np.arange(0, 1, cam_curve_interval)``, with
        ``cam_curve_interval`` in [1e-5, 1).
    multi_contour : bool, default=True
        Every contour gives a box (MaxBoxAccV2) or only the largest one.
    n_jobs : int or None, default=None
        Threads over the maps (joblib convention; identical numbers).

    Returns
    -------
    thresholds : ndarray (n_thresholds,)
    accuracy : ndarray (n_iou, n_thresholds) float64, percent
    """
    maps = _check_maps(scoremaps)
    gts = _check_gt_boxes(gt_boxes, len(maps))
    acc = BoxAccumulator(iou_thresholds=iou_thresholds, cam_curve_interval=cam_curve_interval,
                         multi_contour=multi_contour, n_jobs=n_jobs)
    return acc._update(maps, gts, checked=True).curve()


def max_box_acc(
    scoremaps: ArrayLike,
    gt_boxes: ArrayLike,
    *,
    iou_thresholds: Sequence[float] = (30, 50, 70),
    cam_curve_interval: float = 0.01,
    multi_contour: bool = True,
    n_jobs: int | None = None,
) -> np.ndarray:
    """MaxBoxAcc: the best box accuracy over CAM thresholds, separately per IoU threshold.

    ``max_box_acc(maps, boxes, iou_thresholds=(50,), multi_contour=False)`` is the
    original MaxBoxAcc; the default settings give the three numbers averaged by
    MaxBoxAccV2. Parameters as :func:`box_acc_curve`.

    Returns
    -------
    ndarray (n_iou,) float64, percent
    """
    _, acc = box_acc_curve(
        scoremaps, gt_boxes, iou_thresholds=iou_thresholds,
        cam_curve_interval=cam_curve_interval, multi_contour=multi_contour, n_jobs=n_jobs,
    )
    return acc.max(axis=1)


def max_box_acc_v2(
    scoremaps: ArrayLike, gt_boxes: ArrayLike, *, cam_curve_interval: float = 0.01,
    n_jobs: int | None = None,
) -> float:
    """MaxBoxAccV2 (percent): mean of multi-contour MaxBoxAcc at IoU 30, 50 and 70."""
    return float(np.average(max_box_acc(
        scoremaps, gt_boxes, iou_thresholds=(30, 50, 70),
        cam_curve_interval=cam_curve_interval, multi_contour=True, n_jobs=n_jobs,
    )))


# ----------------------------------------------------------------------------- PxAP
# Speed (numbers in benchmarks/bench_metrics.py). The reference boolean-indexes each map
# and calls np.histogram (a sort) twice per map. Here each map gets one compiled pass
# (skcream._pxap.pxap_counts) that checks every score is in [0, 1], finds its bin exactly
# against the reference's float64 edges and counts it. All counts are integers, so the
# result is bit-identical to the reference however the maps are split into batches.


class _PxapBins:
    """The reference's bin edges for one interval.

    ``edges`` (n + 3,) float64 is ``np.append(np.arange(0, 1, interval), [1, 2, 3])``
    (read-only); ``n`` the number of thresholds; ``fast`` whether the edges are ``j / n``
    closely enough for :func:`skcream._pxap.pxap_counts`'s bracketing products.
    """

    __slots__ = ("edges", "n", "fast")

    def __init__(self, interval: float):
        self.edges = np.append(_thresholds(interval), [1.0, 2.0, 3.0])
        self.edges.flags.writeable = False
        self.n = self.edges.size - 3
        self.fast = _pxap.bracket_ok(self.edges)


@functools.lru_cache(maxsize=16)
def _pxap_bins(interval: float) -> _PxapBins:
    return _PxapBins(interval)


def _bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``np.histogram`` bin of each value in [0, 1] for the edges ``arange + [1, 2, 3]``
    (the binning of :func:`_pxap_counts`)."""
    return _pxap.bin_index(np.ascontiguousarray(values, dtype=np.float64).reshape(-1), edges)


def _pxap_counts(items: list[tuple[int, Any, Any]], bins: _PxapBins) -> np.ndarray:
    """Negative and positive counts per bin over ``(index, map, mask)`` items.

    Returns
    -------
    ndarray (2 * (n + 1),) float64
        ``[negatives in bins 0..n | positives in bins 0..n]`` (bin n + 1, scores >= 2,
        is always empty for maps in [0, 1]).
    """
    n, edges = bins.n, bins.edges
    sub = np.zeros((4, 2 * (n + 1)), dtype=np.int64)
    for i, smap, mask in items:
        arr = np.asarray(smap)
        if not (arr.dtype == np.float64 and arr.ndim == 2 and arr.size > 0
                and arr.flags.c_contiguous):
            arr = check_scoremap(arr, f"scoremaps[{i}]")  # other dtypes, layouts: converted
        cls = _pxap_mask(mask, arr, i)
        flat = arr.reshape(-1)
        if _pxap.pxap_counts(flat, flat.view(np.uint64), cls.reshape(-1), edges, bins.fast,
                             sub) >= 0:
            check_scoremap(arr, f"scoremaps[{i}]")  # raises its usual error
            raise AssertionError("unreachable: the map failed the range check")  # pragma: no cover
    return sub.sum(axis=0).astype(np.float64)


def _pxap_mask(mask: Any, smap: np.ndarray, i: int) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.shape != smap.shape:
        check_scoremap(smap, f"scoremaps[{i}]")  # a bad map is reported before its mask
        raise ValueError(f"gt_masks[{i}] has shape {mask.shape} but scoremaps[{i}] has {smap.shape}")
    return mask_codes(mask, f"gt_masks[{i}]")


def _map_list(scoremaps: ArrayLike, name: str = "scoremaps") -> list[Any]:
    """The maps as a list, unvalidated (same container checks as :func:`_check_maps`).

    Each map is validated just before it is binned, while it is in cache.
    """
    if isinstance(scoremaps, np.ndarray):
        if scoremaps.ndim != 3:
            raise ValueError(
                f"{name} must be an (n, H, W) array or a sequence of 2-D maps, "
                f"got an array of shape {scoremaps.shape}"
            )
        items = list(scoremaps)
    elif isinstance(scoremaps, Sequence) or hasattr(scoremaps, "__iter__"):
        items = list(scoremaps)
    else:
        raise TypeError(f"{name} must be an array or a sequence of 2-D maps")
    if not items:
        raise ValueError(f"{name} is empty")
    return items


class PxAPAccumulator:
    """Per-bin positive and negative pixel counts, accumulated batch by batch.

    The reference's ``MaskEvaluator.accumulate``: histograms are summed over all maps
    (micro-average), so a dataset of any size never sits in memory at once;
    :meth:`pxap` gives the number of :func:`pxap` over all maps seen.

    Parameters
    ----------
    cam_curve_interval : float, default=0.01
    n_jobs : int or None, default=None
        Threads over the maps of each :meth:`update` (joblib convention).
    """

    def __init__(self, *, cam_curve_interval: float = 0.01, n_jobs: int | None = None):
        _thresholds(cam_curve_interval)  # validates before the cache sees it
        self.bins = _pxap_bins(float(cam_curve_interval))
        self.n_jobs = _n_jobs(n_jobs)
        self.counts = np.zeros(2 * (self.bins.n + 1))
        self.n_maps = 0

    def update(self, scoremaps: ArrayLike, gt_masks: ArrayLike) -> PxAPAccumulator:
        """Add a batch of maps (n, H, W) and their masks (1 fg, 0 bg, 255 ignored; booleans)."""
        maps = _map_list(scoremaps)
        try:
            masks = list(gt_masks)
        except TypeError:
            raise TypeError("gt_masks must be an array or a sequence of 2-D masks") from None
        if len(masks) != len(maps):
            raise ValueError(f"gt_masks has {len(masks)} entries but there are {len(maps)} maps")
        bins = self.bins
        counts = _parallel(
            lambda chunk: _pxap_counts([(i, maps[i], masks[i]) for i in chunk], bins),
            len(maps), self.n_jobs,
        )
        return self.add_counts(counts, len(maps))  # only after the whole batch is valid

    def add_counts(self, counts: np.ndarray, n_maps: int) -> PxAPAccumulator:
        """Add per-bin counts made elsewhere (``_pxap_counts`` of other maps)."""
        counts = np.asarray(counts, dtype=np.float64)
        if counts.shape != self.counts.shape:
            raise ValueError(f"counts must have shape {self.counts.shape}, got {counts.shape}")
        self.counts += counts
        self.n_maps += int(n_maps)
        return self

    def pxap(self) -> float:
        """PxAP (percent) over all maps seen."""
        n = self.bins.n
        counts = self.counts
        # bins 0..n, plus the always-empty bin n + 1 (scores >= 2) of the reference
        neg = np.append(counts[: n + 1], 0.0)
        pos = np.append(counts[n + 1 :], 0.0)
        n_pos = pos.sum()
        if n_pos <= 0:
            raise ValueError("gt_masks: no positive (== 1) pixel in the whole set")
        tp = pos[::-1].cumsum()
        fp = neg[::-1].cumsum()
        fn = n_pos - tp
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = tp / (tp + fp)
            recall = tp / (tp + fn)
        nonzero = (tp + fp) != 0
        return float((precision[1:] * np.diff(recall))[nonzero[1:]].sum() * 100)


#: the threshold-free protocol metrics, the accumulators of :class:`ProtocolAccumulators`
THRESHOLD_FREE_METRICS = ("max_box_acc_v2", "max_box_acc", "pxap")


class ProtocolAccumulators:
    """The streamed threshold-free metrics of one set of maps, batch by batch.

    ``max_box_acc_v2`` (multi-contour, IoU 30/50/70), ``max_box_acc`` (IoU 50, single
    contour) and ``pxap``, for those named in ``metrics``; the accumulators are the
    attributes ``v2``, ``single``, ``px`` (None when not asked for), so that callers can
    combine their counts (e.g. across processes).

    Parameters
    ----------
    metrics : sequence of str
        Names from :data:`THRESHOLD_FREE_METRICS` (others are ignored).
    n_jobs : int, optional
    """

    def __init__(self, metrics: Sequence[str], *, n_jobs: int | None = None) -> None:
        metrics = set(metrics)
        self.v2 = BoxAccumulator(n_jobs=n_jobs) if "max_box_acc_v2" in metrics else None
        self.single = (BoxAccumulator(iou_thresholds=(50,), multi_contour=False, n_jobs=n_jobs)
                       if "max_box_acc" in metrics else None)
        self.px = PxAPAccumulator(n_jobs=n_jobs) if "pxap" in metrics else None

    def update(self, maps: ArrayLike, gt_boxes: ArrayLike, masks: Any = None
               ) -> ProtocolAccumulators:
        """Add a batch: maps (B, H, W), GT boxes per map, and (for PxAP) masks, a sequence
        of B masks or a callable returning them (only called when PxAP is accumulated)."""
        for acc in (self.v2, self.single):
            if acc is not None:
                acc.update(maps, gt_boxes)
        if self.px is not None:
            self.px.update(maps, masks() if callable(masks) else masks)
        return self

    def results(self) -> dict[str, float]:
        """The metrics accumulated so far (percent)."""
        out: dict[str, float] = {}
        if self.v2 is not None:
            out["max_box_acc_v2"] = self.v2.max_box_acc_v2()
        if self.single is not None:
            out["max_box_acc"] = float(self.single.max_box_acc()[0])
        if self.px is not None:
            out["pxap"] = self.px.pxap()
        return out


def pxap(scoremaps: ArrayLike, gt_masks: ArrayLike, *, cam_curve_interval: float = 0.01,
         n_jobs: int | None = None) -> float:
    """Pixel average precision (percent), micro-averaged over all pixels of all maps.

    Parameters
    ----------
    scoremaps : ndarray (n, H, W) or sequence of n 2-D arrays
        Float maps in [0, 1].
    gt_masks : ndarray (n, H, W) or sequence of n 2-D arrays, same shapes
        1 = foreground, 0 = background, 255 = ignored (or booleans, True foreground);
        any other value raises ValueError naming the mask (:func:`skcream._masks.mask_codes`).
    cam_curve_interval : float, default=0.01
        In [1e-5, 1).
    n_jobs : int or None, default=None
        Threads over the maps (joblib convention; identical numbers). One thread measured
        as fast as two on the project's shared 2-core machine.

    Returns
    -------
    float
        ``100 * sum_i P_i (R_i - R_{i-1})`` over the thresholds
        ``3, 2, 1, e_{n-1}, ..., e_0`` (step sum, no interpolation).

    Notes
    -----
    Maps and masks are checked map by map, so with several bad inputs the first
    error raised is the one at the lowest index (a map before its mask).
    """
    acc = PxAPAccumulator(cam_curve_interval=cam_curve_interval, n_jobs=n_jobs)
    return acc.update(scoremaps, gt_masks).pxap()


# ----------------------------------------------------------------------------- maps you have
def _protocol_map(raw: Any, image_id: str, resize: bool) -> tuple[np.ndarray, bool]:
    """One map as the reference evaluates it: checked, float64, 224x224; and whether it was
    resized. ``raw`` is an array or a map file path (:func:`skcream._scoremap_io.read_map_file`)."""
    from skcream._scoremap_io import read_map_file

    arr = read_map_file(raw, image_id) if isinstance(raw, str) else raw
    name = f"score map of image {image_id!r}"
    smap = check_scoremap(arr, name)
    if smap.shape == PROTOCOL_SHAPE:
        return smap, False
    if not resize:
        raise ValueError(
            f"{name} is {smap.shape[0]}x{smap.shape[1]} (H x W); the reference evaluates "
            f"{PROTOCOL_SHAPE[0]}x{PROTOCOL_SHAPE[1]} maps (its boxes and masks are scaled to "
            "224x224). resize=True (CLI: --resize-maps) resizes such maps as the reference's "
            "inference.py does (OpenCV bicubic, then min-max)")
    return resize_scoremap(smap, PROTOCOL_SHAPE), True


class _FixedMap:
    """The per-threshold boxes of one map used for every image (an image-blind baseline):
    each image then costs one IoU table, not a sweep; the numbers are those of the map
    repeated (the boxes of :func:`boxes_from_scoremap`, the reference's IoU)."""

    def __init__(self, smap: np.ndarray, thresholds: np.ndarray) -> None:
        self.map = smap
        self.parts = []
        for multi in (True, False):
            boxes = boxes_from_scoremap(smap, thresholds, multi_contour=multi)
            sizes = np.array([len(b) for b in boxes])
            self.parts.append((np.concatenate(boxes), np.concatenate(([0], np.cumsum(sizes)[:-1]))))

    def best(self, gt: np.ndarray, multi_contour: bool) -> np.ndarray:
        boxes, starts = self.parts[0 if multi_contour else 1]
        return np.maximum.reduceat(_iou(boxes, gt).max(axis=1), starts)


class _MapsRun:
    """The accumulators of one :func:`evaluate_scoremaps` run and the count of one chunk.

    ``v2`` (multi-contour, the IoU list), ``single`` (largest contour, IoU 50) and ``px``
    are None where the ground truth has no boxes / masks; ``prior`` holds the same three
    for the baseline map.
    """

    def __init__(self, truth: Any, thresholds: np.ndarray, interval: float, deltas: np.ndarray,
                 resize: bool, baseline: np.ndarray | None) -> None:
        self.truth, self.thresholds, self.deltas, self.resize = truth, thresholds, deltas, resize
        self.bins = _pxap_bins(interval)

        def accumulators() -> dict[str, Any]:
            box = truth.has_boxes
            return {
                "v2": BoxAccumulator(iou_thresholds=deltas, cam_curve_interval=interval)
                if box else None,
                "single": BoxAccumulator(iou_thresholds=(50,), cam_curve_interval=interval,
                                         multi_contour=False) if box else None,
                "px": PxAPAccumulator(cam_curve_interval=interval) if truth.has_masks else None,
            }

        self.accs = accumulators()
        self.fixed = None
        if baseline is not None:
            smap = check_scoremap(baseline, "baseline")
            if smap.shape != PROTOCOL_SHAPE:
                raise ValueError(f"baseline must be a {PROTOCOL_SHAPE} map, got {smap.shape}")
            self.fixed = _FixedMap(smap, thresholds)
            self.prior = accumulators()
        self.n_resized = 0

    def count(self, items: list[tuple[int, str, Any]]) -> dict[str, Any]:
        """Counts of one chunk of ``(index, image_id, map or path)`` (run in a worker)."""
        n_thr, fixed = self.thresholds.size, self.fixed
        out: dict[str, Any] = {
            "v2": np.zeros((self.deltas.size, n_thr)), "single": np.zeros((1, n_thr)),
            "prior_v2": np.zeros((self.deltas.size, n_thr)), "prior_single": np.zeros((1, n_thr)),
            "n": len(items), "resized": 0,
        }
        px_items, prior_items = [], []
        fifty = np.array([50.0])
        for i, image_id, raw in items:
            smap, resized = _protocol_map(raw, image_id, self.resize)
            out["resized"] += resized
            if self.truth.has_boxes:
                gt = self.truth.boxes(i)
                multi, single = _best_iou_per_threshold(quantise(smap), gt, self.thresholds,
                                                        None)
                out["v2"] += _hits(multi, self.deltas)
                out["single"] += _hits(single, fifty)
                if fixed is not None:
                    out["prior_v2"] += _hits(fixed.best(gt, True), self.deltas)
                    out["prior_single"] += _hits(fixed.best(gt, False), fifty)
            if self.truth.has_masks:
                mask = self.truth.mask(i)
                px_items.append((i, smap, mask))
                if fixed is not None:
                    prior_items.append((i, fixed.map, mask))
        if px_items:
            out["px"] = _pxap_counts(px_items, self.bins)
            if prior_items:
                out["prior_px"] = _pxap_counts(prior_items, self.bins)
        return out

    def add(self, part: dict[str, Any]) -> None:
        n = part["n"]
        self.n_resized += part["resized"]
        for key, accs in (("", self.accs), ("prior_", getattr(self, "prior", None))):
            if accs is None:
                continue
            for name in ("v2", "single", "px"):
                if accs[name] is not None:
                    accs[name].add_counts(part[key + name], n)

    def results(self, accs: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"max_box_acc_v2": None, "max_box_acc": None, "pxap": None,
                               "per_iou": None, "thresholds": None,
                               "max_box_acc_threshold": None}
        if accs["v2"] is not None:
            thr, acc = accs["v2"].curve()
            keys = [f"{d:g}" for d in self.deltas]
            out["per_iou"] = {k: float(a) for k, a in zip(keys, acc.max(axis=1))}
            # the best CAM threshold: the first (lowest) one reaching the maximum
            out["thresholds"] = {k: float(thr[j]) for k, j in zip(keys, acc.argmax(axis=1))}
            out["max_box_acc_v2"] = float(np.average(acc.max(axis=1)))
            thr, acc = accs["single"].curve()
            out["max_box_acc"] = float(acc[0].max())
            out["max_box_acc_threshold"] = float(thr[int(acc[0].argmax())])
        if accs["px"] is not None:
            out["pxap"] = accs["px"].pxap()
        return out


def _in_order(chunks: Sequence[range], make: Callable[[range], Any], work: Callable[[Any], Any],
              n_jobs: int) -> Any:
    """``work(make(chunk))`` for every chunk, yielded in order; ``make`` runs here, ``work``
    in ``n_jobs`` threads with at most ``2 * n_jobs`` chunks in flight (flat memory)."""
    if n_jobs <= 1:
        for c in chunks:
            yield work(make(c))
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=n_jobs) as pool:
        pending: deque = deque()
        try:
            for c in chunks:
                pending.append(pool.submit(work, make(c)))
                if len(pending) >= 2 * n_jobs:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()


def evaluate_scoremaps(
    scoremaps: Any,
    ground_truth: Any,
    *,
    dataset: str | None = None,
    split: str = "test",
    mask_root: str | os.PathLike | None = None,
    cam_curve_interval: float = 0.01,
    iou_thresholds: Sequence[float] = (30, 50, 70),
    resize: bool = False,
    baseline: ArrayLike | None = None,
    n_jobs: int | None = None,
    verbose: int = 0,
    chunk_size: int = 32,
    allow_outside_root: bool = False,
) -> dict[str, Any]:
    """Score maps you already have, with the reference evaluator's numbers (``skcream
    evaluate-maps``).

    A drop-in for ``evaluation.py`` of ``wsolevaluation``: the same folders in, the same
    numbers out (its box scaling ``int(x * 224 / W)``, threshold list, contour rules, IoU and
    PxAP histograms; tested against it), read and scored map by map in constant memory.

    Parameters
    ----------
    scoremaps : path, array or sequence
        A folder with ``<image_id>.npy`` per image (the reference's layout; ``<image_id>.png``
        8- or 16-bit greyscale heat maps are read as value / 255 or / 65535), an ``.npz``
        bundle keyed by image id (``np.savez(path, **{image_id: map})``), or the maps
        themselves in the order of the ground truth: an (n, H, W) array (a memmap too), a
        sequence of 2-D maps, or any iterable of them (read once). Maps are float in [0, 1]
        (float32 is converted), 224x224 unless ``resize``.
    ground_truth : path or datasets.Dataset
        The reference's ``metadata_root`` (``<dataset>/<split>/image_ids.txt``,
        ``image_sizes.txt``, ``localization.txt``, ``class_labels.txt``), or a Dataset of the
        skcream schema (``load_wsol``, ``load_cub``, ...: ``bboxes`` in original pixels,
        ``mask``, ``image_id``).
    dataset : {"CUB", "ILSVRC", "OpenImages"}, optional
        With a metadata folder (required there). CUB and ILSVRC are scored with boxes,
        OpenImages with masks, as the reference does.
    split : str, default="test"
    mask_root : path, optional
        OpenImages masks: the reference's ``--mask_root`` (masks at
        ``<mask_root>/OpenImages/<mask path>``; a folder without an ``OpenImages`` folder
        holds the mask paths directly).
    cam_curve_interval : float, default=0.01
        The CAM thresholds are ``np.arange(0, 1, cam_curve_interval)``.
    iou_thresholds : sequence of float, default=(30, 50, 70)
        In percent, each in (1, 100] (:func:`iou_percents`); MaxBoxAccV2 is the mean of the
        multi-contour MaxBoxAcc over these.
    resize : bool, default=False
        Maps of another size than 224x224 raise ValueError naming the image; True resizes
        them as the reference's ``inference.py`` makes its maps (OpenCV bicubic, then
        min-max: :func:`skcream.scoremaps.resize_scoremap`).
    baseline : ndarray (224, 224), optional
        An image-blind map (e.g. :func:`skcream.priors.centre_prior`) scored on the same
        ground truth: the floor the maps' numbers must clear (``skcream evaluate-maps``
        always shows the centre prior).
    n_jobs : int, optional
        Threads reading and scoring maps (joblib convention; identical numbers).
    verbose : int, default=0
        1: a progress bar (tqdm, on stderr).
    chunk_size : int, default=32
        Maps per unit of work; at most ``2 * n_jobs`` units are held at once.
    allow_outside_root : bool, default=False
        Accept image ids (and mask paths) that are absolute or climb out of their folder.

    Returns
    -------
    dict
        ``n_images``; ``max_box_acc_v2`` (multi-contour MaxBoxAcc averaged over
        ``iou_thresholds``), ``max_box_acc`` (largest contour, IoU 50) and ``pxap``, each
        None where the ground truth has no boxes / masks; ``per_iou`` (IoU threshold as text
        -> multi-contour MaxBoxAcc) and ``thresholds`` (-> its best CAM threshold, the
        lowest reaching the maximum), ``max_box_acc_threshold``; ``cam_curve_interval``,
        ``iou_thresholds``, ``dataset``, ``split``, ``n_resized`` (maps resized) and
        ``baseline`` (the same metrics of ``baseline``, or None). Percent.

    Raises
    ------
    FileNotFoundError
        Before any map is read: listing every image whose map (or mask) file is missing.
    ValueError
        Naming the image: a map that is not float, not 2-D, holds NaN or inf or values
        outside [0, 1], has another size (without ``resize``), or an unreadable file; an
        image without boxes, size or mask in the metadata.
    """
    from skcream import _scoremap_io

    thresholds = _thresholds(cam_curve_interval)
    deltas = iou_percents(iou_thresholds)
    jobs = _n_jobs(n_jobs)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) \
            or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    maps = _scoremap_io.open_maps(scoremaps)
    if isinstance(ground_truth, (str, os.PathLike)):
        if dataset is None:
            raise ValueError("dataset ('CUB', 'ILSVRC' or 'OpenImages') is needed with a "
                             "metadata folder")
        ids_root = maps.root if isinstance(maps, _scoremap_io.FolderMaps) else os.fspath(
            ground_truth)
        truth = _scoremap_io.MetadataTruth(
            os.fspath(ground_truth), dataset, split, ids_root=ids_root,
            mask_root=None if mask_root is None else os.fspath(mask_root),
            allow_outside_root=allow_outside_root)
    else:
        truth = _scoremap_io.DatasetTruth(ground_truth)
    ids = truth.ids
    maps.locate(ids)
    run = _MapsRun(truth, thresholds, float(cam_curve_interval), deltas, bool(resize),
                   None if baseline is None else np.asarray(baseline))
    n = len(ids)
    chunks = [range(s, min(s + int(chunk_size), n)) for s in range(0, n, int(chunk_size))]

    def make(chunk: range) -> list[tuple[int, str, Any]]:
        return [(i, ids[i], maps.item(i, ids[i])) for i in chunk]

    from tqdm.auto import tqdm

    with tqdm(total=n, desc="score maps", unit="map", disable=verbose < 1) as bar:
        for part in _in_order(chunks, make, run.count, jobs):
            run.add(part)
            bar.update(part["n"])
    if isinstance(maps, _scoremap_io.ArrayMaps):
        maps.finish(n)
    out: dict[str, Any] = {"n_images": n, "dataset": getattr(truth, "dataset", None),
                           "split": split if isinstance(ground_truth, (str, os.PathLike))
                           else None,
                           "cam_curve_interval": float(cam_curve_interval),
                           "iou_thresholds": [float(d) for d in deltas]}
    out.update(run.results(run.accs))
    out["n_resized"] = run.n_resized
    out["baseline"] = None
    if run.fixed is not None:
        prior = run.results(run.prior)
        out["baseline"] = {k: prior[k] for k in ("max_box_acc_v2", "max_box_acc", "pxap")}
    return out


# ----------------------------------------------------------------------------- Top-k Loc
def localization_accuracy(
    pred_boxes: ArrayLike,
    gt_boxes: ArrayLike,
    pred_labels_topk: ArrayLike,
    labels: ArrayLike,
    *,
    iou_threshold: float = 50,
) -> dict[str, float]:
    """Top-1 Loc, Top-5 Loc and GT-known Loc (percent).

    Parameters
    ----------
    pred_boxes : array-like (n, 4)
        One box per image, from the map of the true class (as the protocol).
    gt_boxes : sequence of n array-likes (k_i, 4)
        The best-matching ground-truth box counts.
    pred_labels_topk : array-like (n, k) or (n,)
        Predicted classes, best first; with k < 5 Top-5 uses the k given.
    labels : array-like (n,)
        True classes.
    iou_threshold : float, default=50
        In percent (in (1, 100]; see :func:`iou_percents`); a box is correct when IoU >=
        iou_threshold / 100.

    Returns
    -------
    dict with ``top1_loc``, ``top5_loc``, ``gt_known_loc``
    """
    iou_threshold = float(iou_percents(iou_threshold, "iou_threshold")[0])
    boxes = _check_boxes(pred_boxes, "pred_boxes")
    n = boxes.shape[0]
    gts = _check_gt_boxes(gt_boxes, n)
    topk = np.asarray(pred_labels_topk)
    if topk.ndim == 1:
        topk = topk[:, None]
    if topk.ndim != 2 or topk.shape[0] != n or topk.shape[1] == 0:
        raise ValueError(f"pred_labels_topk must have shape (n, k) with n={n}, got {topk.shape}")
    lab = np.asarray(labels).reshape(-1)
    if lab.shape[0] != n:
        raise ValueError(f"labels has {lab.shape[0]} entries but there are {n} boxes")
    loc_ok = np.array(
        [_iou(boxes[i : i + 1], gts[i]).max() >= iou_threshold / 100 for i in range(n)]
    )
    top1 = topk[:, 0] == lab
    top5 = (topk[:, :5] == lab[:, None]).any(axis=1)
    return {
        "top1_loc": float((loc_ok & top1).mean() * 100),
        "top5_loc": float((loc_ok & top5).mean() * 100),
        "gt_known_loc": float(loc_ok.mean() * 100),
    }


# ----------------------------------------------------------------------------- scorers
_METRICS: dict[str, tuple[Callable[..., Any], str]] = {
    "max_box_acc_v2": (max_box_acc_v2, "boxes"),
    "max_box_acc": (
        lambda m, b, **kw: float(max_box_acc(m, b, iou_thresholds=(50,), multi_contour=False,
                                             **kw)[0]),
        "boxes",
    ),
    "pxap": (pxap, "masks"),
}


def _field(y: Any, name: str) -> Any:
    if isinstance(y, Mapping):
        return y[name] if name in y else None
    names = getattr(getattr(y, "dtype", None), "names", None)
    if names and name in names:
        return y[name]
    return None


class WSOLScorer:
    """A scikit-learn scorer ``scorer(estimator, X, y) -> float`` for the WSOL metrics.

    The estimator must have a method (``maps_method``) ``(X, labels) -> maps``
    returning one 2-D map per image for the given classes (GT-known maps). The
    maps are brought to ``size`` by :func:`skcream.localize.protocol_maps`
    (bicubic upsampling, then min-max), unless ``size`` is None (maps used as
    they are, which must then be in [0, 1]).

    ``y`` is a mapping or a structured array with fields ``label`` and, for the
    box metrics, ``boxes`` (sequence of (k_i, 4) in the maps' frame, i.e. already
    scaled to ``size``) or, for PxAP, ``mask`` ((H, W) at ``size``).

    Parameters
    ----------
    metric : {"max_box_acc_v2", "max_box_acc", "pxap"}
    maps_method : str, default="localize"
    size : (int, int) or None, default=(224, 224)
    cam_curve_interval : float, default=0.01
    """

    def __init__(self, metric: str = "max_box_acc_v2", *, maps_method: str = "localize",
                 size: tuple[int, int] | None = (224, 224), cam_curve_interval: float = 0.01):
        if metric not in _METRICS:
            raise ValueError(f"metric must be one of {sorted(_METRICS)}, got {metric!r}")
        self.metric = metric
        self.maps_method = maps_method
        self.size = size
        self.cam_curve_interval = cam_curve_interval

    def __repr__(self) -> str:
        return (f"WSOLScorer(metric={self.metric!r}, maps_method={self.maps_method!r}, "
                f"size={self.size!r}, cam_curve_interval={self.cam_curve_interval!r})")

    def __call__(self, estimator: Any, X: Any, y: Any) -> float:
        fn, target = _METRICS[self.metric]
        labels = _field(y, "label")
        truth = _field(y, target if target == "boxes" else "mask")
        if labels is None or truth is None:
            raise ValueError(
                f"y must carry fields 'label' and '{'boxes' if target == 'boxes' else 'mask'}' "
                f"for metric {self.metric!r}"
            )
        method = getattr(estimator, self.maps_method, None)
        if not callable(method):
            raise TypeError(f"{type(estimator).__name__} has no method {self.maps_method!r}")
        maps = method(X, labels)
        if self.size is not None:
            from skcream.localize import protocol_maps

            maps = protocol_maps(maps, size=self.size)
        return float(fn(maps, truth, cam_curve_interval=self.cam_curve_interval))


def make_wsol_scorer(metric: str = "max_box_acc_v2", **kwargs: Any) -> WSOLScorer:
    """Shorthand for :class:`WSOLScorer` (``make_scorer``-style)."""
    return WSOLScorer(metric, **kwargs)


# ----------------------------------------------------------------------------- scorers by name
#: metric names of :data:`SCORERS` (those of ``CREAMLocalizer.evaluate``)
SCORER_METRICS = (
    "max_box_acc_v2",
    "max_box_acc",
    "pxap",
    "top1_loc",
    "top5_loc",
    "gt_known_loc",
    "top1_acc",
)


class NamedScorer:
    """``scorer(estimator, X, y=None) -> float``: one WSOL metric for any skcream model.

    scikit-learn accepts it wherever it accepts a scorer (``GridSearchCV(scoring=...)``,
    ``cross_val_score``, ``cross_validate``, ``sklearn.metrics.get_scorer(scorer)``,
    dicts of them for multi-metric search). Percent, higher is better.

    - An estimator with ``evaluate(X, y, metrics=...)`` (``CREAMLocalizer``) is scored
      by it: every metric of :data:`SCORER_METRICS` (``pxap`` needs masks).
    - Otherwise (``CREAMReactivation``, or a ``Pipeline`` ending in one, with
      ``y = box_targets(...)``): the GT-known maps of the last step's ``localize``
      on ``X`` transformed by the earlier steps, under the protocol
      (:class:`WSOLScorer`): ``max_box_acc_v2``, ``max_box_acc``, ``pxap``.

    Why not ``scoring="max_box_acc_v2"``: scikit-learn validates a string ``scoring``
    against ``sklearn.metrics.get_scorer_names()``, the keys of its private registry
    ``sklearn.metrics._scorer._SCORERS``; there is no public way to register a name, and
    ``cross_val_score`` / ``learning_curve`` freeze the allowed strings when
    ``sklearn.model_selection`` is imported. So names go through this dict instead:
    ``scoring=SCORERS["max_box_acc_v2"]``.

    Parameters
    ----------
    metric : str
        One of :data:`SCORER_METRICS`.
    """

    def __init__(self, metric: str) -> None:
        if metric not in SCORER_METRICS:
            raise ValueError(f"metric must be one of {list(SCORER_METRICS)}, got {metric!r}")
        self.metric = metric

    def __call__(self, estimator: Any, X: Any, y: Any = None) -> float:
        evaluate = getattr(estimator, "evaluate", None)
        if callable(evaluate):
            return float(evaluate(X, y, metrics=[self.metric])[self.metric])
        steps = getattr(estimator, "steps", None)
        if steps is not None:  # a Pipeline: transform X through all but the last step
            for _, step in steps[:-1]:
                if step is not None and step != "passthrough":
                    X = step.transform(X)
            estimator = steps[-1][1]
        if self.metric not in _METRICS:
            raise ValueError(
                f"metric {self.metric!r} needs a CREAMLocalizer (class predictions and box "
                f"threshold); {type(estimator).__name__} supports {sorted(_METRICS)}"
            )
        return WSOLScorer(self.metric)(estimator, X, y)

    def __repr__(self) -> str:
        return f"SCORERS[{self.metric!r}]"


#: ``{name: scorer}`` for every metric of :data:`SCORER_METRICS`:
#: ``GridSearchCV(model, grid, scoring=SCORERS["max_box_acc_v2"])`` or, multi-metric,
#: ``scoring={k: SCORERS[k] for k in ("max_box_acc_v2", "top1_loc")}, refit="max_box_acc_v2"``.
SCORERS: dict[str, NamedScorer] = {name: NamedScorer(name) for name in SCORER_METRICS}
