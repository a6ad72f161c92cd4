"""Box bookkeeping of the estimators: validation, normalisation, frames.

Pure numpy, no estimator state. Boxes are ``x0, y0, x1, y1`` rows. Three frames
appear in the regressor (the localizer uses the protocol frame):

* **original pixels** of each image (width ``W``, height ``H``): what users pass
  to ``fit`` and what ``predict`` returns;
* **unit frame**: coordinates divided by the image (or crop) size, in [0, 1];
  the regression head's sigmoid outputs live here;
* **protocol frame**: the 224x224 evaluation frame of WSOL_PROTOCOL.md, where
  ground-truth boxes are scaled with ``int(x * 224 / W)`` truncation.

:func:`localization_scores` scores boxes in that frame together with the classifier's
logits (Top-1 / Top-5 / GT-known Loc and top-1 accuracy); :func:`hit_scores` does the same
from per-image box hits of any frame (:func:`protocol_hits`: the protocol's rule).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from skcream.scoremaps import to_protocol_frame  # noqa: F401 (the rule lives there)

#: evaluation resolution of the protocol (images resized, maps upsampled to it)
PROTOCOL_SIZE = 224


def _as_float_array(value: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be numeric box coordinates; got {type(value).__name__}") from exc
    return arr


def as_sizes(sizes: Any, n: int | None = None, name: str = "sizes") -> np.ndarray:
    """Validate image sizes.

    Parameters
    ----------
    sizes : array-like of shape (n, 2)
        ``(W, H)`` of every image, positive.
    n : int, optional
        Expected number of images.

    Returns
    -------
    ndarray of shape (n, 2), float64
    """
    arr = _as_float_array(sizes, name)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name} must have shape (n, 2) as (W, H); got {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} rows, expected {n}")
    bad = np.flatnonzero(~np.all(np.isfinite(arr) & (arr > 0), axis=1))
    if bad.size:
        raise ValueError(f"{name}[{bad[0]}] = {arr[bad[0]].tolist()} is not a positive (W, H)")
    return arr


def one_box_per_image(boxes: Any, name: str = "boxes") -> np.ndarray:
    """Coerce regression targets to one box per image.

    Parameters
    ----------
    boxes : array-like of shape (n, 4), or a sequence of n boxes each of
        shape (4,) or (1, 4)
        One ``x0, y0, x1, y1`` box per image.

    Returns
    -------
    ndarray of shape (n, 4), float64

    Raises
    ------
    ValueError
        When an entry holds zero or several boxes (the index is named), or the
        array is not (n, 4).
    """
    if isinstance(boxes, np.ndarray) or not isinstance(boxes, Sequence):
        arr = _as_float_array(boxes, name)
        if arr.ndim != 2 or arr.shape[1] != 4:
            raise ValueError(
                f"{name} must have shape (n_samples, 4) as x0, y0, x1, y1; got {arr.shape}"
            )
        return arr
    rows = []
    for i, box in enumerate(boxes):
        b = _as_float_array(box, f"{name}[{i}]")
        if b.shape == (4,):
            rows.append(b)
        elif b.ndim == 2 and b.shape[1] == 4 and b.shape[0] == 1:
            rows.append(b[0])
        elif b.ndim == 2 and b.shape[1] == 4:
            raise ValueError(
                f"{name}[{i}] holds {b.shape[0]} boxes; the regressor learns exactly one box "
                "per image (pass one, e.g. the largest or their union)"
            )
        else:
            raise ValueError(f"{name}[{i}] must be 4 coordinates x0, y0, x1, y1; got shape {b.shape}")
    if not rows:
        return np.zeros((0, 4))
    return np.stack(rows)


def check_boxes_in_images(boxes: np.ndarray, sizes: np.ndarray, name: str = "boxes") -> None:
    """Raise when a target box is non-finite, degenerate or outside its image.

    A valid box has ``0 <= x0 < x1 <= W`` and ``0 <= y0 < y1 <= H``. Zero width
    or height is degenerate: a regression target without extent.

    Parameters
    ----------
    boxes : ndarray of shape (n, 4)
        Boxes in each image's original pixels.
    sizes : ndarray of shape (n, 2)
        ``(W, H)`` of each image.
    """
    if boxes.shape[0] != sizes.shape[0]:
        raise ValueError(f"{name} has {boxes.shape[0]} boxes for {sizes.shape[0]} images")
    bad = np.flatnonzero(~np.all(np.isfinite(boxes), axis=1))
    if bad.size:
        i = bad[0]
        raise ValueError(f"{name}[{i}] = {boxes[i].tolist()} has a NaN or infinite coordinate")
    degenerate = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    _raise_first(name, boxes, degenerate, "is degenerate: expected x0 < x1 and y0 < y1")
    w, h = sizes[:, 0], sizes[:, 1]
    outside = (boxes[:, 0] < 0) | (boxes[:, 1] < 0) | (boxes[:, 2] > w) | (boxes[:, 3] > h)
    i = int(np.argmax(outside))
    _raise_first(name, boxes, outside, f"lies outside image {i} of size W={w[i]:g} x H={h[i]:g}")


def _raise_first(name: str, boxes: np.ndarray, bad_rows: np.ndarray, problem: str) -> None:
    """ValueError naming the first row flagged in ``bad_rows`` (n,) bool, and how many are."""
    bad = np.flatnonzero(bad_rows)
    if bad.size:
        i = bad[0]
        raise ValueError(
            f"{name}[{i}] = {boxes[i].tolist()} {problem} "
            f"({bad.size} such box(es), indices {bad[:10].tolist()})"
        )


def degenerate_mask(boxes: np.ndarray) -> np.ndarray:
    """(n,) bool: rows with no extent (``x1 <= x0`` or ``y1 <= y0``) or a NaN."""
    boxes = np.asarray(boxes, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return ~((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]))


def normalize_boxes(boxes: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Original pixels -> unit frame.

    Parameters
    ----------
    boxes : ndarray of shape (n, 4)
    sizes : ndarray of shape (n, 2)
        ``(W, H)`` per row.

    Returns
    -------
    ndarray of shape (n, 4), float64: ``x / W, y / H``.
    """
    scale = np.concatenate([sizes, sizes], axis=1).astype(np.float64)
    return np.asarray(boxes, dtype=np.float64) / scale


def denormalize_boxes(unit_boxes: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Unit frame -> original pixels (the inverse of :func:`normalize_boxes`).

    Parameters
    ----------
    unit_boxes : ndarray of shape (n, 4)
    sizes : ndarray of shape (n, 2)

    Returns
    -------
    ndarray of shape (n, 4), float64: ``x * W, y * H``.
    """
    scale = np.concatenate([sizes, sizes], axis=1).astype(np.float64)
    return np.asarray(unit_boxes, dtype=np.float64) * scale


def order_corners(boxes: np.ndarray) -> np.ndarray:
    """Make every row a proper box: ``x0 <= x1`` and ``y0 <= y1``.

    The head predicts four independent sigmoids, so an untrained (or badly
    trained) network may output ``x0 > x1``; the corners are then swapped.

    Parameters
    ----------
    boxes : ndarray of shape (n, 4)

    Returns
    -------
    ndarray of shape (n, 4)
    """
    boxes = np.asarray(boxes)
    x0 = np.minimum(boxes[:, 0], boxes[:, 2])
    x1 = np.maximum(boxes[:, 0], boxes[:, 2])
    y0 = np.minimum(boxes[:, 1], boxes[:, 3])
    y1 = np.maximum(boxes[:, 1], boxes[:, 3])
    return np.stack([x0, y0, x1, y1], axis=1)


def crop_target(boxes: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Regression target for one augmented training image.

    Parameters
    ----------
    boxes : ndarray of shape (1, 4) or (4,)
        The image's box after the box-aware transform, in the pixels of the
        transformed image (it may extend past the crop).
    size : int or (W, H)
        Size of the transformed image.

    Returns
    -------
    ndarray of shape (4,), float32, in [0, 1]: the box clipped to the crop and
    divided by its size.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if b.shape[0] != 1:
        raise ValueError(f"expected one box per training image, got {b.shape[0]}")
    w, h = (size, size) if np.isscalar(size) else size
    unit = b[0] / np.array([w, h, w, h], dtype=np.float64)
    return np.clip(unit, 0.0, 1.0).astype(np.float32)


def gt_box_lists(gt_boxes: Any, n: int, name: str = "gt_boxes",
                 image_ids: Sequence[str] | None = None) -> list[np.ndarray]:
    """Validate ground truth for scoring: a list of (k_i, 4) arrays, k_i >= 1.

    Parameters
    ----------
    gt_boxes : sequence of n array-likes of shape (k_i, 4) or (4,), or an
        array of shape (n, 4)
    n : int
        Number of images.
    image_ids : sequence of str, optional
        Used to name the images in the error message.

    Raises
    ------
    ValueError
        Length mismatch, or images with no box (all of them named).
    """
    if gt_boxes is None:
        raise ValueError(f"{name} is required: the images carry no ground-truth boxes")
    if isinstance(gt_boxes, np.ndarray) and gt_boxes.ndim == 2:
        gt_boxes = list(gt_boxes)
    if len(gt_boxes) != n:
        raise ValueError(f"{name} has {len(gt_boxes)} entries for {n} images")
    out, missing = [], []
    for i, b in enumerate(gt_boxes):
        if b is None:
            missing.append(i)
            continue
        arr = _as_float_array(b, f"{name}[{i}]")
        if arr.size == 0:
            missing.append(i)
            continue
        arr = arr.reshape(-1, 4) if arr.ndim == 1 and arr.shape[0] == 4 else arr
        if arr.ndim != 2 or arr.shape[1] != 4:
            raise ValueError(f"{name}[{i}] must have shape (k, 4); got {arr.shape}")
        out.append(arr)
    if missing:
        names = [image_ids[i] if image_ids is not None else str(i) for i in missing]
        shown = ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")
        raise ValueError(
            f"{len(missing)} image(s) have no ground-truth box to score against "
            f"(indices {missing[:20]}; images: {shown})"
        )
    return out


class BoxTargetDataset:
    """Torch map-style dataset of augmented images and their box regression targets.

    Parameters
    ----------
    source : skcream.data.adapters.ImageSource
    boxes : ndarray of shape (n, 4)
        One box per image in original pixels (validated by the caller).
    transform : box-aware transform
        ``transform(image, boxes (1, 4)) -> (tensor (3, S, S), boxes (1, 4))``, e.g.
        :class:`~skcream.data.transforms.TrainTransform` or
        :class:`~skcream.data.transforms.RandomResizedBoxCrop`: the crop and flip move the
        box (continuous coordinates, clipped to the crop).
    encode : callable, optional
        ``encode(unit (4,)) -> (4,)``: the regression target of the moved box divided by
        the crop size (``x0, y0, x1, y1``); default: that box itself.

    Items
    -----
    ``{"image": (3, S, S) float32, "target": (4,) float32, "index": int}``: the target is
    ``encode`` of the transformed box divided by ``S`` (:func:`crop_target`).
    """

    def __init__(self, source, boxes: np.ndarray, transform, encode=None) -> None:
        if len(boxes) != len(source):
            raise ValueError(f"boxes has {len(boxes)} rows for {len(source)} images")
        self.source = source
        self.boxes = np.asarray(boxes, dtype=np.float64)
        self.transform = transform
        self.encode = encode

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict:
        import torch

        image = self.source.image(index)
        x, moved = self.transform(image, self.boxes[index : index + 1])
        size = (int(x.shape[-1]), int(x.shape[-2]))
        unit = crop_target(moved, size)
        target = unit if self.encode is None else np.asarray(self.encode(unit), np.float32)
        return {"image": x, "target": torch.from_numpy(target), "index": int(index)}


def protocol_hits(boxes: np.ndarray, gt: Sequence[np.ndarray]) -> np.ndarray:
    """(n,) bool: the protocol's rule, inclusive +1 IoU >= 0.5 with the best ground-truth box.

    Parameters
    ----------
    boxes : ndarray (n, 4)
        Predicted boxes in the protocol frame.
    gt : list of n ndarrays (k_i, 4)
        Ground-truth boxes in the protocol frame.
    """
    from skcream.metrics import box_iou

    return np.array([box_iou(b, g).max() >= 0.5 for b, g in zip(np.asarray(boxes), gt)],
                    dtype=bool)


def localization_scores(
    logits: np.ndarray, boxes: np.ndarray, gt: list[np.ndarray], truth: np.ndarray
) -> dict[str, float]:
    """Top-1 Loc, Top-5 Loc, GT-known Loc and top-1 accuracy (percent) at IoU >= 0.5.

    Parameters
    ----------
    logits : ndarray (n, C)
        Class scores; the top 5 (or C) classes by score, ties to the lower index.
    boxes : ndarray (n, 4)
        Predicted boxes in the protocol frame.
    gt : list of n ndarrays (k_i, 4)
        Ground-truth boxes in the protocol frame.
    truth : ndarray (n,) int
        Ground-truth class indices (columns of ``logits``).

    Returns
    -------
    dict
        ``top1_loc``, ``top5_loc``, ``gt_known_loc`` (the protocol's
        :func:`skcream.metrics.localization_accuracy`, :func:`protocol_hits`) and
        ``top1_acc``, over images.
    """
    return hit_scores(logits, protocol_hits(boxes, gt), truth)


def hit_scores(
    scores: np.ndarray, hits: np.ndarray, truth: np.ndarray, *, per_class: bool = False
) -> dict[str, float]:
    """Top-1 Loc, Top-5 Loc, GT-known Loc and top-1 accuracy (percent) of given box hits.

    Parameters
    ----------
    scores : ndarray (n, C)
        Class scores (logits or probabilities); the top 5 (or C) classes by score, ties to
        the lower index.
    hits : ndarray (n,) bool
        Whether each image's box is correct (the frame's IoU rule).
    truth : ndarray (n,) int
        Ground-truth class indices (columns of ``scores``).
    per_class : bool, default=False
        Average over the images of each class, then over the classes present (the released
        CREAM_Reg's ``inference.py``); else over all images (the protocol).

    Returns
    -------
    dict
        ``top1_loc`` (box correct and top-1 class right), ``top5_loc`` (box correct and the
        class among the top 5), ``gt_known_loc`` (box correct), ``top1_acc``.
    """
    scores = np.asarray(scores)
    hits = np.asarray(hits, dtype=bool).reshape(-1)
    truth = np.asarray(truth).reshape(-1)
    k = min(5, scores.shape[1])
    topk = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    top1 = topk[:, 0] == truth
    top5 = (topk == truth[:, None]).any(axis=1)
    rows = {"top1_loc": hits & top1, "top5_loc": hits & top5, "gt_known_loc": hits,
            "top1_acc": top1}
    if per_class:
        groups = [truth == c for c in np.unique(truth)]
        return {name: float(np.mean([v[g].mean() for g in groups]) * 100.0)
                for name, v in rows.items()}
    return {name: float(v.mean() * 100.0) for name, v in rows.items()}
