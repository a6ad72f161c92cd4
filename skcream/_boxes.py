"""Boxes of every connected component of every upper level set of a uint8 image, at once.

For ``L = 0..254`` and every connected component of ``{img > L}``, the component's
tight bounding box. The work is one union-find sweep over the pixels sorted by value
(:mod:`skcream._levelsets`, compiled with numba); this listing is what the multi-contour
metrics reduce on the fly, kept for tests and for anyone who wants every box.
The result equals labelling ``{img > L}`` at every level (tested against
``cv2.connectedComponentsWithStats`` in ``tests/test_metrics_boxes.py``).
"""

from __future__ import annotations

import numpy as np

from skcream._levelsets import all_component_boxes

__all__ = ["level_component_boxes"]


def level_component_boxes(img: np.ndarray, connectivity: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Every connected component of every level set ``{img > L}``, ``L = 0..254``.

    Parameters
    ----------
    img : ndarray (H, W) uint8
    connectivity : {8, 4}
        Pixel adjacency of the components.

    Returns
    -------
    levels : ndarray (K,) int64
        The level ``L`` of each component (components of one level are listed
        together, in no particular order).
    boxes : ndarray (K, 4) int64
        Tight inclusive boxes ``[xmin, ymin, xmax, ymax]`` of the components.
    """
    if img.dtype != np.uint8 or img.ndim != 2 or img.size == 0:
        raise ValueError(f"img must be a non-empty 2-D uint8 array, got {img.dtype} {img.shape}")
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity!r}")
    return all_component_boxes(np.ascontiguousarray(img), connectivity)
