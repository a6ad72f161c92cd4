"""The reference evaluation's handling of one score map, shared by the metrics and
:mod:`skcream.localize` (whose boxes follow the same rule as the metrics' boxes).

:func:`check_scoremap` validates a map, :func:`quantise` is the reference's uint8
quantisation ``q = (map * 255).astype(uint8)`` (truncation) and :func:`contour_boxes`
the boxes OpenCV's contours give for the foreground ``q > level``;
:func:`resize_scoremap` brings a map of another size to the protocol's 224x224 the way the
reference's ``inference.py`` does; :func:`check_box_array` is the reference's box convention
and :func:`to_protocol_frame` its ground-truth box scaling to 224x224. Numpy and OpenCV only,
no torch.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

__all__ = ["PROTOCOL_SHAPE", "check_box_array", "check_scoremap", "contour_boxes", "quantise",
           "resize_scoremap", "to_protocol_frame"]

#: (H, W) of the maps the reference evaluates (its boxes and masks are scaled to 224x224)
PROTOCOL_SHAPE = (224, 224)


def check_box_array(boxes: Any, name: str, allow_empty: bool = False) -> np.ndarray:
    """(k, 4) x0, y0, x1, y1 boxes: finite, non-negative, x1 >= x0, y1 >= y0 (the reference's
    box convention), or a TypeError / ValueError naming ``name``; (4,) becomes (1, 4)."""
    try:
        arr = np.asarray(boxes)
        if arr.dtype == object or not (
            np.issubdtype(arr.dtype, np.number) or arr.dtype == bool
        ):
            raise TypeError
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be numeric boxes x0, y0, x1, y1") from None
    if arr.ndim == 1 and arr.size == 4:
        arr = arr.reshape(1, 4)
    if arr.ndim == 1 and arr.size == 0:
        arr = arr.reshape(0, 4)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name} must have shape (4,) or (k, 4), got {arr.shape}")
    if arr.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name} is empty: every image needs at least one box")
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf")
    if (arr < 0).any():
        raise ValueError(f"{name} has a negative coordinate")
    if (arr[:, 2] < arr[:, 0]).any() or (arr[:, 3] < arr[:, 1]).any():
        bad = int(np.flatnonzero((arr[:, 2] < arr[:, 0]) | (arr[:, 3] < arr[:, 1]))[0])
        raise ValueError(f"{name}[{bad}] = {arr[bad].tolist()} has x1 < x0 or y1 < y0")
    if arr.dtype == bool:
        arr = arr.astype(np.int64)
    return arr


def to_protocol_frame(boxes: np.ndarray, sizes: Any, size: int = PROTOCOL_SHAPE[0],
                      truncate: bool = False) -> np.ndarray:
    """Scale boxes from original pixels to the ``size x size`` evaluation frame.

    Parameters
    ----------
    boxes : ndarray of shape (k, 4)
        Boxes of ONE image (or of images that share ``sizes``).
    sizes : array-like of shape (2,) or (k, 2)
        ``(W, H)``.
    truncate : bool
        ``True`` applies the protocol's ground-truth rule ``int(x * size / W)`` (the
        reference's ``resize_bbox``: a float64 product, then the division, then truncation);
        ``False`` keeps the float (used for predicted boxes, which are continuous regressor
        outputs).

    Returns
    -------
    ndarray of shape (k, 4), float64
    """
    sizes = np.broadcast_to(np.asarray(sizes, dtype=np.float64).reshape(-1, 2), (len(boxes), 2))
    scaled = np.asarray(boxes, dtype=np.float64) * size / np.concatenate([sizes, sizes], axis=1)
    if truncate:
        scaled = np.trunc(scaled)
    return scaled


def check_scoremap(scoremap: Any, name: str) -> np.ndarray:
    """One score map as float64 (H, W) in [0, 1], or a ValueError/TypeError naming it."""
    arr = np.asarray(scoremap)
    if not (np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"{name} must be a floating-point array, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (H, W), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    lo, hi = arr.min(), arr.max()  # NaN propagates, so NaN fails the test below
    if not (lo >= 0.0 and hi <= 1.0):
        if np.isnan(arr).any():
            raise ValueError(f"{name} contains NaN")
        if np.isinf(arr).any():
            raise ValueError(f"{name} contains an infinite value")
        raise ValueError(f"{name} must lie in [0, 1]; min={float(lo)!r}, max={float(hi)!r}")
    return arr


def resize_scoremap(scoremap: np.ndarray, shape: tuple[int, int] = PROTOCOL_SHAPE) -> np.ndarray:
    """A map of another size at ``shape``, as the reference's ``inference.py`` makes its maps.

    ``cv2.resize(map, (W, H), interpolation=cv2.INTER_CUBIC)`` in float64, then its
    ``normalize_scoremap``: ``(m - m.min()) / (m - m.min()).max()`` (subtraction, then
    division, in place, in that order), a map with a NaN or a constant map becomes zeros.
    Deviation: constancy (and NaN) is decided on the map given, not on the resized one: a
    constant map resized by OpenCV is constant only up to rounding, which the reference's
    min-max would blow up to a pattern in [0, 1] (skcream's
    :func:`skcream.localize.protocol_maps` decides the same way). OpenCV's bicubic (a = -0.75,
    pixel centres aligned, border replicated) is not torch's: ``protocol_maps`` (skcream's
    own pipeline) differs from it in the last bits.

    Parameters
    ----------
    scoremap : ndarray (h, w) float
    shape : (H, W), default=(224, 224)

    Returns
    -------
    ndarray (H, W) float64 in [0, 1]
    """
    h, w = int(shape[0]), int(shape[1])
    arr = np.ascontiguousarray(scoremap, dtype=np.float64)
    if np.isnan(arr).any() or arr.min() == arr.max():
        return np.zeros((h, w))
    cam = cv2.resize(arr, (w, h), interpolation=cv2.INTER_CUBIC)
    if cam.min() == cam.max():  # pragma: no cover - a non-constant map stays non-constant
        return np.zeros_like(cam)
    cam -= cam.min()
    cam /= cam.max()
    return cam


def quantise(scoremap: np.ndarray) -> np.ndarray:
    """Truncation, as the reference: 0.999 -> 254, 1.0 -> 255."""
    return (scoremap * 255).astype(np.uint8)


def contour_boxes(q: np.ndarray, level: int, multi_contour: bool) -> np.ndarray:
    """The reference's boxes of ``q > level`` (contour order), (k, 4) int64."""
    h, w = q.shape
    _, binary = cv2.threshold(q, level, 255, cv2.THRESH_BINARY)  # q > level
    contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
    if len(contours) == 0:
        return np.zeros((1, 4), dtype=np.int64)
    if not multi_contour:
        contours = [max(contours, key=cv2.contourArea)]  # ties: the first one
    if len(contours) < 16:
        out = np.empty((len(contours), 4), dtype=np.int64)
        for i, c in enumerate(contours):
            x, y, bw, bh = cv2.boundingRect(c)
            out[i] = (x, y, min(x + bw, w - 1), min(y + bh, h - 1))
        return out
    # many contours (noise): cv2.boundingRect's box of every contour without a Python loop
    lengths = np.fromiter(map(len, contours), dtype=np.intp, count=len(contours))
    pts = np.concatenate(contours).reshape(-1, 2).astype(np.int64)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    lo = np.minimum.reduceat(pts, starts, axis=0)
    hi = np.maximum.reduceat(pts, starts, axis=0)
    return np.stack([lo[:, 0], lo[:, 1], np.minimum(hi[:, 0] + 1, w - 1),
                     np.minimum(hi[:, 1] + 1, h - 1)], axis=1)
