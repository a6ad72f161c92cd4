"""The reference evaluation's handling of one score map, shared by the metrics and
:mod:`skcream.localize` (whose boxes follow the same rule as the metrics' boxes).

:func:`check_scoremap` validates a map, :func:`quantise` is the reference's uint8
quantisation ``q = (map * 255).astype(uint8)`` (truncation) and :func:`contour_boxes`
the boxes OpenCV's contours give for the foreground ``q > level``. Numpy and OpenCV
only, no torch.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

__all__ = ["check_scoremap", "contour_boxes", "quantise"]


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
        raise ValueError(f"{name} must lie in [0, 1]; min={lo!r}, max={hi!r}")
    return arr


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
