"""The rule of ground-truth mask values, in one place (numpy only).

A mask holds 0 (background), 1 (foreground) or 255 (ignore: OpenImages' ignore regions,
left out of PxAP), or is boolean (True foreground). Any other value is refused, naming the
mask and the values: an anti-aliased 0..255 mask, or a label image, silently read as
"ignore" would score a different task. (Deviation from ``wsolevaluation``, whose PxAP
ignores any value but 0 and 1: on masks of 0 / 1 / 255 the numbers are identical, which
the tests check against a re-implementation of the reference.) Used by the metrics (:func:`skcream.metrics.pxap`,
the streaming accumulators, the scorers) and by every reader of masks in
:mod:`skcream.data`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["IGNORE", "MASK_VALUES", "mask_codes"]

#: Mask value of pixels left out of PxAP.
IGNORE = 255
#: The values a (non-boolean) mask may hold.
MASK_VALUES = (0, 1, IGNORE)


def mask_codes(mask: Any, name: str = "mask") -> np.ndarray:
    """A mask as uint8 codes 0 / 1 / 255, refusing any other value.

    Parameters
    ----------
    mask : array-like of shape (H, W)
        Boolean, or numbers (any dtype) among 0, 1 and 255.
    name : str
        Named in the error (e.g. ``"gt_masks[3]"``, ``"mask of image 'a.png' (index 3)"``).

    Returns
    -------
    ndarray of shape (H, W), uint8 (C-contiguous)

    Raises
    ------
    ValueError
        Naming ``name`` and up to five offending values.
    """
    arr = np.asarray(mask)
    if arr.dtype == np.bool_:
        return np.ascontiguousarray(arr).view(np.uint8)
    if arr.dtype == np.uint8:
        bad = (arr > 1) & (arr != IGNORE)
    elif arr.dtype.kind in "iuf":
        bad = ~np.isin(arr, MASK_VALUES)  # NaN, -1, 0.5, 256 ... are not codes
    else:
        raise ValueError(f"{name} must hold numbers 0, 1, 255 or booleans, got dtype {arr.dtype}")
    if bad.any():
        values = np.unique(arr[bad])[:5].tolist()
        raise ValueError(
            f"{name} holds values {values}; masks may only hold 0 (background), 1 "
            "(foreground) and 255 (ignore), or booleans"
        )
    return np.ascontiguousarray(arr, dtype=np.uint8)
