"""Image-blind prior maps: the floor every localization number must clear.

A localizer is only worth its number when it beats a map that never looks at the image.
Two such maps are standard guardrails (``docs/ARCHITECTURE.md``, "Every number beside a
blind baseline"):

- :func:`centre_prior`: an isotropic Gaussian centred in the frame. Photographers (and
  careless benchmark generators) put objects in the middle; this map scores whatever that
  habit is worth.
- :func:`box_prior`: how often the *training* boxes cover each pixel, in the protocol's
  frame. It knows the dataset's typical object size and position, never the image.

Both return one (H, W) float64 map in [0, 1] with a maximum of exactly 1, i.e. a valid
score map of :mod:`skcream.metrics`; :func:`prior_maps` repeats one for a whole evaluation
set so that it goes through the very same metric code as CAM and CREAM.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from skcream._checks import as_real

__all__ = [
    "PRIOR_METRICS",
    "PRIOR_NAMES",
    "box_prior",
    "box_prior_of",
    "centre_prior",
    "prior_maps",
    "prior_scores",
]

#: display names used in result tables
PRIOR_NAMES = {"centre": "centre prior", "boxes": "train-box prior"}


def _check_shape(shape: Sequence[int]) -> tuple[int, int]:
    if len(shape) != 2 or not all(isinstance(s, int | np.integer) and s >= 1 for s in shape):
        raise ValueError(f"shape must be (H, W) with positive ints, got {shape!r}")
    return int(shape[0]), int(shape[1])


def centre_prior(shape: Sequence[int] = (224, 224), sigma: float = 0.25) -> np.ndarray:
    """A centred Gaussian, the same for every image.

    Parameters
    ----------
    shape : (H, W), default=(224, 224)
        The protocol's frame.
    sigma : float, default=0.25
        Standard deviation as a fraction of each side (0.25: the central half of the frame
        holds about 68% of the mass along each axis).

    Returns
    -------
    ndarray (H, W) float64
        ``exp(-((x - cx)^2 / (2 (sigma W)^2) + (y - cy)^2 / (2 (sigma H)^2)))`` at pixel
        centres, divided by its maximum (so the maximum is exactly 1).
    """
    h, w = _check_shape(shape)
    sigma = as_real(sigma, "sigma", low=0.0, low_open=True)
    y = (np.arange(h, dtype=np.float64) + 0.5 - h / 2.0) / (sigma * h)
    x = (np.arange(w, dtype=np.float64) + 0.5 - w / 2.0) / (sigma * w)
    m = np.exp(-0.5 * (y[:, None] ** 2 + x[None, :] ** 2))
    return m / m.max()


def box_prior(
    boxes: Sequence[np.ndarray],
    image_sizes: Sequence[tuple[int, int]],
    shape: Sequence[int] = (224, 224),
) -> np.ndarray:
    """How often the given (training) boxes cover each pixel of the protocol's frame.

    Parameters
    ----------
    boxes : sequence of n arrays (k_i, 4)
        ``x0, y0, x1, y1`` in each image's original pixels (``x1``/``y1`` one past the last
        pixel or inclusive: the difference is below one protocol pixel). Images with several
        boxes count each box.
    image_sizes : sequence of n (width, height)
        Original image sizes, to scale the boxes to ``shape`` (the protocol's truncation
        ``int(x * W' / W)``).
    shape : (H, W), default=(224, 224)

    Returns
    -------
    ndarray (H, W) float64
        Coverage counts divided by their maximum: 1 where most boxes overlap.

    Raises
    ------
    ValueError
        When there is no box at all, the lengths differ, or a box is malformed.
    """
    h, w = _check_shape(shape)
    if len(boxes) != len(image_sizes):
        raise ValueError(f"boxes ({len(boxes)}) and image_sizes ({len(image_sizes)}) must "
                         "have one entry per image")
    # a 2-D difference array: +1 at each box's top-left, -1 past its right/bottom edges;
    # the cumulative sums give the coverage count of every pixel in O(n + H W)
    diff = np.zeros((h + 1, w + 1), dtype=np.int64)
    n_boxes = 0
    for i, (b, size) in enumerate(zip(boxes, image_sizes)):
        b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
        if b.size == 0:
            continue
        iw, ih = (float(s) for s in size)
        if not (iw > 0 and ih > 0):
            raise ValueError(f"image_sizes[{i}] must be a positive (width, height), got {size!r}")
        if not np.isfinite(b).all() or (b[:, 2] < b[:, 0]).any() or (b[:, 3] < b[:, 1]).any():
            raise ValueError(f"boxes[{i}] must hold finite x0 <= x1, y0 <= y1 rows, got {b!r}")
        x0 = np.clip((b[:, 0] * w / iw).astype(np.int64), 0, w - 1)
        x1 = np.clip((b[:, 2] * w / iw).astype(np.int64), 0, w - 1)
        y0 = np.clip((b[:, 1] * h / ih).astype(np.int64), 0, h - 1)
        y1 = np.clip((b[:, 3] * h / ih).astype(np.int64), 0, h - 1)
        np.add.at(diff, (y0, x0), 1)
        np.add.at(diff, (y0, x1 + 1), -1)
        np.add.at(diff, (y1 + 1, x0), -1)
        np.add.at(diff, (y1 + 1, x1 + 1), 1)
        n_boxes += len(b)
    if n_boxes == 0:
        raise ValueError("box_prior needs at least one box")
    cover = diff.cumsum(axis=0).cumsum(axis=1)[:h, :w].astype(np.float64)
    return cover / cover.max()


def prior_maps(prior: np.ndarray, n: int) -> np.ndarray:
    """``n`` read-only copies of one prior map, without copying memory.

    Parameters
    ----------
    prior : ndarray (H, W)
    n : int

    Returns
    -------
    ndarray (n, H, W)
        A broadcast view: the metrics only read it.
    """
    prior = np.asarray(prior, dtype=np.float64)
    if prior.ndim != 2:
        raise ValueError(f"prior must be a 2-D map, got shape {prior.shape}")
    return np.broadcast_to(prior, (int(n), *prior.shape))


def box_prior_of(data: Any, shape: Sequence[int] = (224, 224), *,
                 bbox_column: str = "bboxes") -> np.ndarray | None:
    """:func:`box_prior` of a dataset's ground-truth boxes, or None when it has none.

    Parameters
    ----------
    data : datasets.Dataset (skcream schema) or ImageSource
        Usually the *training* split: the prior must not see the images it is scored on.
    shape : (H, W), default=(224, 224)
    bbox_column : str, default="bboxes"

    Returns
    -------
    ndarray (H, W) float64 or None
        None when ``data`` has no box column or no box at all (WSOL training sets usually
        carry image labels only).
    """
    from skcream.data.adapters import ImageSource

    source = ImageSource.from_input(data, bbox_column=bbox_column)
    if not source.has_boxes:
        return None
    boxes, sizes = [], []
    for i in range(len(source)):
        b = source.boxes(i)
        if b is not None and len(b):
            boxes.append(b)
            sizes.append(source.size(i))
    return box_prior(boxes, sizes, shape) if boxes else None


#: metrics an image-blind map has (the threshold-dependent Loc metrics need a classifier
#: and a chosen threshold, so they are left out): the threshold-free ones
PRIOR_METRICS = ("max_box_acc_v2", "max_box_acc", "pxap")


def prior_scores(
    prior: np.ndarray,
    data: Any,
    *,
    metrics: Sequence[str] | None = None,
    batch_size: int = 64,
    n_jobs: int | None = None,
    bbox_column: str = "bboxes",
    mask_column: str = "mask",
) -> dict[str, float]:
    """The protocol's threshold-free metrics of one prior map repeated over ``data``.

    The same metric code as every localizer (:class:`skcream.metrics.BoxAccumulator`,
    :class:`skcream.metrics.PxAPAccumulator`), streamed batch by batch.

    Parameters
    ----------
    prior : ndarray (224, 224)
        E.g. :func:`centre_prior` or :func:`box_prior_of` of the training split.
    data : datasets.Dataset (skcream schema) or ImageSource
        Evaluation images with ground-truth boxes (and masks, for PxAP).
    metrics : sequence of str, optional
        Any of :data:`PRIOR_METRICS`; default all that ``data`` allows.
    batch_size : int, default=64
    n_jobs : int, optional
        Threads for the metrics (identical numbers).

    Returns
    -------
    dict of str to float (percent)
    """
    from skcream.data.adapters import ImageSource
    from skcream.data.transforms import resize_mask
    from skcream.estimators._boxes_target import to_protocol_frame
    from skcream.metrics import ProtocolAccumulators

    prior = np.asarray(prior, dtype=np.float64)
    if prior.ndim != 2 or prior.shape[0] != prior.shape[1]:
        raise ValueError(f"prior must be a square (S, S) map, got shape {prior.shape}")
    side = prior.shape[0]
    source = ImageSource.from_input(data, bbox_column=bbox_column, mask_column=mask_column)
    if not source.has_boxes:
        raise ValueError(f"data needs ground-truth boxes (a {bbox_column!r} column)")
    if metrics is None:
        metrics = [m for m in PRIOR_METRICS if m != "pxap" or source.has_masks]
    bad = [m for m in metrics if m not in PRIOR_METRICS]
    if bad:
        raise ValueError(f"metrics: {bad} are not defined for a prior; choose from "
                         f"{list(PRIOR_METRICS)}")
    if "pxap" in metrics and not source.has_masks:
        raise ValueError(f"pxap needs ground-truth masks (a {mask_column!r} column)")
    accs = ProtocolAccumulators(metrics, n_jobs=n_jobs)
    for start in range(0, len(source), int(batch_size)):
        index = range(start, min(start + int(batch_size), len(source)))
        maps = prior_maps(prior, len(index))
        gt = []
        for i in index:
            b = source.boxes(i)
            if b is None or len(b) == 0:
                raise ValueError(f"image at index {i} has no ground-truth box; evaluation "
                                 "needs one")
            gt.append(to_protocol_frame(b, source.size(i), size=side, truncate=True))
        accs.update(maps, gt, lambda index=index: [resize_mask(source.mask(i), side)
                                                    for i in index])
    out = accs.results()
    return {m: out[m] for m in metrics}
