"""Inference-only map normalisations of the paper's Table 1 (no retraining).

* ``"minmax"``: the protocol's ``(M - min) / (max - min)`` (CAM, CREAM).
* ``"ivr"``: CAM_IVR (Kim et al., ICCV 2021, "Normalization matters in WSOL"): values below
  the ``p``-th quantile are ignored, ``max(M - q_p, 0) / (max - q_p)``; default p = 0.4.
* ``"pas"``: RCAM's percentile as a standard (Bae et al., ECCV 2020):
  ``min((M - min) / (q_p - min), 1)`` with the 90th percentile by default.

RCAM's negative weight clamping is the ``clamp_negative_weights`` option of the networks'
``readout`` (classifier weights ``max(w, 0)`` in Eq. 1). RCAM's thresholded average pooling
changes training (the pooling of the head) and is not offered.

Every output is in [0, 1] with minimum 0 and maximum 1 (a flat map gives zeros), so the
protocol's min-max after upsampling keeps it, and CREAM's Eq. 12 adds it unchanged.
"""

from __future__ import annotations

import torch

from skcream.cam import _check_float_tensor, normalize_maps

__all__ = ["NORMALIZATIONS", "DEFAULT_PERCENTILE", "normalize", "normalize_ivr", "normalize_pas"]

NORMALIZATIONS = ("minmax", "ivr", "pas")
#: percentile used when ``normalization_percentile`` is None
DEFAULT_PERCENTILE = {"ivr": 0.4, "pas": 0.9}


def _quantile(flat: torch.Tensor, q: float) -> torch.Tensor:
    return torch.quantile(flat, q, dim=1, keepdim=True, interpolation="nearest")


def _rescale(maps: torch.Tensor, low_fn, high_fn) -> torch.Tensor:
    """``clamp((M - low) / (high - low), 0, 1)`` per map, ``low``/``high`` (B, 1) from
    ``low_fn``/``high_fn`` of the flattened maps (B, h*w); zeros where ``high <= low`` or a
    map is not finite."""
    _check_float_tensor("maps", maps, 3, "(B, h, w)")
    flat = maps.reshape(maps.shape[0], -1)
    if flat.shape[1] == 0:
        return torch.zeros_like(maps)
    finite = torch.isfinite(flat).all(dim=1, keepdim=True)
    flat = torch.where(finite, flat, torch.zeros_like(flat))
    low = low_fn(flat)
    span = high_fn(flat) - low
    ok = finite & (span > 0)
    out = (flat - low) / torch.where(ok, span, torch.ones_like(span))
    return torch.where(ok, out, torch.zeros_like(out)).clamp_(0, 1).reshape(maps.shape)


def normalize_ivr(maps: torch.Tensor, percentile: float = 0.4) -> torch.Tensor:
    """CAM_IVR: ``max(M - q_p(M), 0) / (max(M) - q_p(M))`` per map.

    Parameters
    ----------
    maps : Tensor (B, h, w)
    percentile : float in [0, 1)
        p; 0 gives min-max.

    Returns
    -------
    Tensor (B, h, w) in [0, 1]; all zeros where ``max == q_p`` or the map is not finite.
    """
    return _rescale(maps, lambda flat: _quantile(flat, percentile),
                    lambda flat: flat.amax(dim=1, keepdim=True))


def normalize_pas(maps: torch.Tensor, percentile: float = 0.9) -> torch.Tensor:
    """RCAM's PaS: ``min((M - min) / (q_p(M) - min), 1)`` per map.

    Parameters
    ----------
    maps : Tensor (B, h, w)
    percentile : float in (0, 1]
        p; 1 gives min-max.

    Returns
    -------
    Tensor (B, h, w) in [0, 1]; all zeros where ``q_p == min`` or the map is not finite.
    """
    return _rescale(maps, lambda flat: flat.amin(dim=1, keepdim=True),
                    lambda flat: _quantile(flat, percentile))


def normalize(maps: torch.Tensor, method: str = "minmax", percentile: float | None = None) -> torch.Tensor:
    """Normalise maps (B, h, w) by ``method`` (one of :data:`NORMALIZATIONS`).

    ``percentile`` None uses :data:`DEFAULT_PERCENTILE` (ignored by ``"minmax"``).
    """
    if method == "minmax":
        return normalize_maps(maps)
    if method not in NORMALIZATIONS:
        raise ValueError(f"map_normalization must be one of {NORMALIZATIONS}, got {method!r}")
    p = DEFAULT_PERCENTILE[method] if percentile is None else float(percentile)
    return normalize_ivr(maps, p) if method == "ivr" else normalize_pas(maps, p)
