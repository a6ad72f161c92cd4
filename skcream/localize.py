"""From localization maps to boxes and masks (the WSOL evaluation pipeline).

``protocol_maps`` is the protocol's map post-processing (bicubic upsampling,
``align_corners=False``, then per-map min-max; a constant or NaN map becomes
zeros). ``maps_to_localization`` thresholds each map the way the metrics do
(``q = (map * 255).astype(uint8)``, foreground ``q > int(threshold * q.max())``)
and keeps the box of the contour with the largest ``cv2.contourArea``, the
single-contour rule of :func:`skcream.metrics.boxes_from_scoremap`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from skcream.scoremaps import check_scoremap, contour_boxes, quantise

__all__ = ["Localization", "maps_to_localization", "protocol_maps"]


@dataclass
class Localization:
    """Boxes, masks and maps of n images, each in the image's own pixels.

    Attributes
    ----------
    boxes : ndarray (n, 4) float64
        ``x0, y0, x1, y1`` (inclusive pixel coordinates, the protocol's boxes).
    masks : list of n ndarrays (H_i, W_i) bool
        The thresholded foreground the box was taken from.
    labels : ndarray (n,)
        The class each map is for.
    maps : list of n ndarrays (H_i, W_i) float64 in [0, 1]
    scores : ndarray (n,) float64 or None
        Probability of the label, when known.
    """

    boxes: np.ndarray
    masks: list[np.ndarray]
    labels: np.ndarray
    maps: list[np.ndarray]
    scores: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def __getitem__(self, index: int | slice) -> Any:
        """An int gives a dict (``box``, ``mask``, ``label``, ``map``, ``score``); a slice
        gives a ``Localization``."""
        if isinstance(index, slice):
            return Localization(
                boxes=self.boxes[index], masks=self.masks[index], labels=self.labels[index],
                maps=self.maps[index],
                scores=None if self.scores is None else self.scores[index],
            )
        i = int(index)
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} localizations")
        return {
            "box": self.boxes[i], "mask": self.masks[i], "label": self.labels[i],
            "map": self.maps[i], "score": None if self.scores is None else float(self.scores[i]),
        }


def maps_to_localization(
    maps: Any, threshold: float, labels: Any, scores: Any = None
) -> Localization:
    """One box and mask per map, at a CAM threshold.

    Parameters
    ----------
    maps : ndarray (n, H, W) or sequence of n 2-D arrays (sizes may differ)
        Float maps in [0, 1] at each image's original size.
    threshold : float in [0, 1)
        Foreground is ``q > int(threshold * q.max())`` with
        ``q = (map * 255).astype(uint8)``.
    labels : array-like (n,)
    scores : array-like (n,) or None

    Returns
    -------
    Localization
        ``boxes`` from the largest contour (``cv2.contourArea``, ties to OpenCV's
        first); an all-zero map gives the box ``[0, 0, 0, 0]`` and an empty mask.
    """
    thr = float(threshold)
    if not 0.0 <= thr < 1.0:
        raise ValueError(f"threshold must be in [0, 1), got {threshold!r}")
    items = list(maps) if not isinstance(maps, np.ndarray) or maps.ndim == 3 else None
    if items is None:
        raise ValueError(f"maps must be (n, H, W) or a sequence of 2-D maps, got {maps.shape}")
    checked = [check_scoremap(m, f"maps[{i}]") for i, m in enumerate(items)]
    n = len(checked)
    lab = np.asarray(labels).reshape(-1)
    if lab.shape[0] != n:
        raise ValueError(f"labels has {lab.shape[0]} entries but there are {n} maps")
    sc = None
    if scores is not None:
        sc = np.asarray(scores, dtype=np.float64).reshape(-1)
        if sc.shape[0] != n:
            raise ValueError(f"scores has {sc.shape[0]} entries but there are {n} maps")
    boxes = np.zeros((n, 4), dtype=np.float64)
    masks = []
    for i, smap in enumerate(checked):
        q = quantise(smap)
        level = int(thr * q.max())
        boxes[i] = contour_boxes(q, level, multi_contour=False)[0]
        masks.append(q > level)
    return Localization(boxes=boxes, masks=masks, labels=lab, maps=checked, scores=sc)


def protocol_maps(maps: Any, size: Sequence[int] | int = (224, 224)) -> np.ndarray:
    """Upsample maps (bicubic, ``align_corners=False``) then min-max each to [0, 1].

    Parameters
    ----------
    maps : Tensor or ndarray (B, h, w), or a sequence of 2-D maps (sizes may differ)
    size : (H, W) or int, default=(224, 224)

    Returns
    -------
    ndarray (B, H, W) float64
        A constant map, or one with a NaN or inf, becomes all zeros.
    """
    import torch

    from skcream.cam import normalize_maps, upsample_maps

    if isinstance(maps, torch.Tensor) or (isinstance(maps, np.ndarray) and maps.ndim == 3):
        groups = [torch.as_tensor(np.asarray(maps.detach().cpu()) if isinstance(
            maps, torch.Tensor) else maps, dtype=torch.float64)]
    else:
        items = list(maps)
        if not items:
            raise ValueError("maps is empty")
        groups = []
        for i, m in enumerate(items):
            t = torch.as_tensor(np.asarray(m.detach().cpu() if isinstance(m, torch.Tensor) else m),
                                dtype=torch.float64)
            if t.ndim != 2:
                raise ValueError(f"maps[{i}] must be 2-D (h, w), got shape {tuple(t.shape)}")
            groups.append(t[None])
    if groups[0].ndim != 3:
        raise ValueError(f"maps must be (B, h, w), got shape {tuple(groups[0].shape)}")
    out = []
    with torch.no_grad():
        for g in groups:
            up = normalize_maps(upsample_maps(g, size, mode="bicubic"))
            # A constant map upsampled is constant only up to rounding, which min-max would
            # blow up: decide constancy (and NaN/inf) on the input map, as the protocol means.
            flat = g.reshape(g.shape[0], -1)
            degenerate = ~torch.isfinite(flat).all(dim=1) | (flat.amax(dim=1) == flat.amin(dim=1))
            up[degenerate] = 0.0
            out.append(up)
    return torch.cat(out).numpy().astype(np.float64, copy=False)
