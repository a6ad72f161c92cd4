"""Re-activation mapping: EM soft clustering, map calibration, final map (paper Eq. 7-12).

For each image, pixels are soft-assigned to a foreground and a background
cluster of a two-component mixture whose base model is
``p^m(F_ij) = exp(k(V^m, F_ij) / sigma)`` (Eq. 7), started from the context
embeddings of the image's class with mixing weights ``a^fg = a^bg = 1/2``.
Iteration ``t = 1..T``:

* E-step (Eq. 8): ``Z^m(t) = a^m p^m / sum_m' a^m' p^m'`` from ``V^(t), a^(t)``;
* M-step (Eq. 9): ``V^m(t+1) = sum Z^m(t) F / sum Z^m(t)``, ``a^m(t+1) = sum Z^m(t) / (h w)``.

The returned posteriors are ``Z^(T)``. Calibration (Eq. 10-11) keeps ``Z^fg``
or ``Z^bg``, whichever has the larger mean over the CAM foreground, and the
final map (Eq. 12) adds the min-max normalised CAM.

Numerical deviations from the plain formulas (each tested to agree with them
where the plain formulas are finite):

* The E-step is evaluated in log space. A softmax over two components equals a
  logistic sigmoid of the difference of their logits, so
  ``Z^fg = sigmoid(log a^fg - log a^bg + (k(V^fg, F) - k(V^bg, F)) / sigma)`` and
  ``Z^bg = sigmoid(-...)``. Nothing is exponentiated, so a tiny ``sigma`` or huge
  features saturate to 0/1 instead of giving inf/NaN; for the dot kernel the
  difference ``(V^fg - V^bg) . F`` is formed before the product, which also
  avoids cancelling two large numbers.
* A cluster whose total responsibility underflows to exactly 0 keeps its
  previous centroid (Eq. 9 would give 0/0) and its mixing weight is clamped at
  the smallest positive normal number of the dtype (instead of log 0 = -inf).
* Calibration compares sums over the CAM foreground instead of means (same
  positive divisor, same decision); with an empty CAM foreground Eq. 10 is 0/0
  and ``Z^fg`` is kept.
"""

from __future__ import annotations

import torch

from skcream._checks import as_int, as_real
from skcream.cam import (
    _check_cams_match,
    _check_float_tensor,
    class_activation_maps,
    normalize_maps,
)
from skcream.context import cam_foreground, foreground_background_means

__all__ = ["em_soft_clustering", "calibrate", "reactivate", "post_hoc_reactivate",
           "reactivate_map"]

KERNELS = ("dot", "cosine")
OUTPUTS = ("final", "calibrated", "posterior", "cam")


def _check_n_iter(n_iter: object, minimum: int) -> int:
    return as_int(n_iter, "n_iter", low=minimum)


def _check_sigma(sigma: object) -> float:
    return as_real(sigma, "sigma", low=0.0, low_open=True)


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return str(value)


def _check_finite(name: str, x: torch.Tensor) -> None:
    # max/min propagate NaN and expose +-inf: two cheap reductions instead of an
    # elementwise isfinite (which costs more than the whole EM on CPU).
    flat = x.reshape(x.shape[0], -1)
    if flat.shape[1] == 0:
        return
    bad = ~(torch.isfinite(flat.amax(dim=1)) & torch.isfinite(flat.amin(dim=1)))
    if bool(bad.any()):
        raise ValueError(f"{name} must be finite; sample {int(bad.nonzero()[0, 0])} has NaN or inf")


def _check_features_and_inits(
    features: torch.Tensor, fg_init: torch.Tensor, bg_init: torch.Tensor,
    names: tuple[str, str] = ("fg_init", "bg_init"),
) -> None:
    _check_float_tensor("features", features, 4, "(B, d, h, w)")
    b, d = features.shape[:2]
    for name, init in zip(names, (fg_init, bg_init)):
        _check_float_tensor(name, init, 2, "(B, d)")
        if init.shape != (b, d):
            raise ValueError(
                f"{name} must have shape ({b}, {d}) to match features (B, d, h, w) = "
                f"{tuple(features.shape)}; got {tuple(init.shape)}"
            )
    _check_finite("features", features)
    _check_finite(names[0], fg_init)
    _check_finite(names[1], bg_init)


def _unit(x: torch.Tensor, dim: int) -> torch.Tensor:
    """L2-normalise along ``dim``; a zero vector stays zero (eps = smallest normal number)."""
    norm = torch.linalg.vector_norm(x, dim=dim, keepdim=True)
    return x / norm.clamp_min(torch.finfo(x.dtype).tiny)


def em_soft_clustering(
    features: torch.Tensor,
    fg_init: torch.Tensor,
    bg_init: torch.Tensor,
    *,
    n_iter: int = 2,
    sigma: float = 8.0,
    kernel: str = "dot",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two-component EM over the pixels of each image (Eq. 7-9), batched.

    Parameters
    ----------
    features : Tensor (B, d, h, w)
        Feature maps F (finite).
    fg_init, bg_init : Tensor (B, d)
        Initial centroids ``V^fg(1)``, ``V^bg(1)`` (the context embeddings of each
        sample's class, or any other start).
    n_iter : int >= 1
        T, the number of E-steps; ``Z^(T)`` is returned (T = 1 is a single
        assignment to the initial centroids). ``reactivate`` maps T = 0 to plain CAM.
    sigma : float > 0
        Scale of Eq. 7.
    kernel : {"dot", "cosine"}
        ``"dot"``: ``V^T F_ij`` as written in Eq. 7. ``"cosine"``: features and
        centroids are L2-normalised (the EM then runs on unit feature vectors and
        each centroid is renormalised inside the kernel).

    Returns
    -------
    z_fg, z_bg : Tensor (B, h, w)
        Posteriors ``Z^fg(T)``, ``Z^bg(T)`` in [0, 1], summing to 1 (to rounding),
        in the promoted dtype of ``features`` and the inits.
    """
    _check_features_and_inits(features, fg_init, bg_init)
    n_iter = _check_n_iter(n_iter, 1)
    sigma = _check_sigma(sigma)
    kernel = _check_choice("kernel", kernel, KERNELS)
    return _em(features, fg_init, bg_init, n_iter, sigma, kernel)


def _em(
    features: torch.Tensor, fg_init: torch.Tensor, bg_init: torch.Tensor,
    n_iter: int, sigma: float, kernel: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """EM core of :func:`em_soft_clustering` on validated arguments."""
    dtype = torch.promote_types(features.dtype, torch.promote_types(fg_init.dtype, bg_init.dtype))
    b, d, h, w = features.shape
    n_pix = h * w
    x = features.to(dtype).reshape(b, d, n_pix)  # (B, d, N), no copy when already contiguous
    v_fg = fg_init.to(device=x.device, dtype=dtype)
    v_bg = bg_init.to(device=x.device, dtype=dtype)
    tiny = torch.finfo(dtype).tiny
    big = torch.finfo(dtype).max
    # Cosine kernel: the EM runs on unit pixel vectors x / |x|. They are never
    # materialised: scores and M-step weights are multiplied by 1 / |x| instead
    # (a zero pixel stays zero: its norm is clamped at the smallest normal number).
    inv_norm = None
    if kernel == "cosine":
        inv_norm = 1.0 / torch.linalg.vector_norm(x, dim=1).clamp_min(tiny)  # (B, N)
    log_ratio = torch.zeros(b, dtype=dtype, device=x.device)  # log a^fg - log a^bg, a = 1/2 each

    for t in range(n_iter):
        # E-step (Eq. 8) as a 2-way softmax = sigmoid of the logit difference.
        if kernel == "cosine":
            direction = _unit(v_fg, dim=1) - _unit(v_bg, dim=1)
        else:
            direction = v_fg - v_bg
        score = torch.bmm(direction[:, None, :], x)[:, 0, :]  # (B, N)
        if inv_norm is not None:
            score = score * inv_norm
        # Only reachable by overflow of finite inputs: keep the result finite.
        score = torch.nan_to_num(score / sigma, nan=0.0, posinf=big, neginf=-big)
        logit = log_ratio[:, None] + score
        z_fg = torch.sigmoid(logit)
        z_bg = torch.sigmoid(-logit)
        if t == n_iter - 1:
            break  # the last M-step would not change Z^(T)
        # M-step (Eq. 9), both clusters in one pass over the features.
        resp = torch.stack([z_fg, z_bg], dim=2)  # (B, N, 2)
        mass = resp.sum(dim=1)  # (B, 2)
        weights = resp if inv_norm is None else resp * inv_norm[:, :, None]
        sums = torch.bmm(x, weights)  # (B, d, 2)
        means = sums / mass.clamp_min(tiny)[:, None, :]
        v_fg = torch.where(mass[:, None, 0] > 0, means[:, :, 0], v_fg)
        v_bg = torch.where(mass[:, None, 1] > 0, means[:, :, 1], v_bg)
        log_a = torch.log((mass / n_pix).clamp_min(tiny))  # (B, 2)
        log_ratio = log_a[:, 0] - log_a[:, 1]
    return z_fg.reshape(b, h, w), z_bg.reshape(b, h, w)


def calibrate(
    z_fg: torch.Tensor, z_bg: torch.Tensor, cams: torch.Tensor, fg_threshold: float = 0.2
) -> torch.Tensor:
    """Map calibration (Eq. 10-11): keep the posterior that is larger on the CAM foreground.

    Parameters
    ----------
    z_fg, z_bg : Tensor (B, h, w)
        EM posteriors ``Z^fg(T)``, ``Z^bg(T)``.
    cams : Tensor (B, h, w)
        Raw CAM of each sample's class; its foreground is ``cam_foreground(cams, fg_threshold)``.
    fg_threshold : float in [0, 1]

    Returns
    -------
    Tensor (B, h, w)
        ``Z^fg`` where its mean over the CAM foreground is >= that of ``Z^bg``
        (ties and empty CAM foregrounds keep ``Z^fg``), else ``Z^bg``.
    """
    _check_float_tensor("z_fg", z_fg, 3, "(B, h, w)")
    for name, t in (("z_bg", z_bg), ("cams", cams)):
        _check_float_tensor(name, t, 3, "(B, h, w)")
        if t.shape != z_fg.shape:
            raise ValueError(f"{name} must have the shape of z_fg {tuple(z_fg.shape)}, got {tuple(t.shape)}")
    fg = cam_foreground(cams, fg_threshold).to(z_fg.device)
    # Eq. 10 divides both sums by ||M^fg||_0; comparing the sums is the same decision
    # and stays defined when the foreground is empty (0 >= 0 keeps Z^fg).
    zero = torch.zeros((), dtype=z_fg.dtype, device=z_fg.device)
    s_fg = torch.where(fg, z_fg, zero).sum(dim=(1, 2))
    s_bg = torch.where(fg, z_bg.to(z_fg.dtype), zero).sum(dim=(1, 2))
    keep_fg = (s_fg >= s_bg)[:, None, None]
    return torch.where(keep_fg, z_fg, z_bg.to(z_fg.dtype))


def reactivate(
    features: torch.Tensor,
    cams: torch.Tensor,
    fg_ctx: torch.Tensor,
    bg_ctx: torch.Tensor,
    *,
    n_iter: int = 2,
    sigma: float = 8.0,
    kernel: str = "dot",
    fg_threshold: float = 0.2,
    output: str = "final",
) -> torch.Tensor:
    """CREAM re-activation maps (Eq. 7-12) for a batch.

    Parameters
    ----------
    features : Tensor (B, d, h, w)
    cams : Tensor (B, h, w)
        Raw CAM of each sample's class (Eq. 1).
    fg_ctx, bg_ctx : Tensor (B, d)
        Context embeddings of each sample's class (index the (C, d) tables with the labels).
    n_iter : int >= 0
        T; 0 means plain CAM (``normalize_maps(cams)``) for every ``output``.
    sigma : float > 0
    kernel : {"dot", "cosine"}
    fg_threshold : float in [0, 1]
        delta / max(M_c) for the calibration foreground.
    output : {"final", "calibrated", "posterior", "cam"}
        ``"final"``: calibrated map + ``normalize_maps(cams)`` (Eq. 12 with the CAM
        min-max normalised, as everywhere in the protocol), values in [0, 2];
        ``"calibrated"``: ``M^cal`` (Eq. 11); ``"posterior"``: ``Z^fg(T)``
        uncalibrated; ``"cam"``: ``normalize_maps(cams)``.

    Returns
    -------
    Tensor (B, h, w)
        Not min-max normalised (the evaluation pipeline upsamples, then normalises).
    """
    _check_features_and_inits(features, fg_ctx, bg_ctx, names=("fg_ctx", "bg_ctx"))
    _check_cams_match(features, cams)
    n_iter = _check_n_iter(n_iter, 0)
    sigma = _check_sigma(sigma)
    kernel = _check_choice("kernel", kernel, KERNELS)
    output = _check_choice("output", output, OUTPUTS)
    cam_map = normalize_maps(cams)
    if n_iter == 0 or output == "cam":
        return cam_map
    z_fg, z_bg = _em(features, fg_ctx, bg_ctx, n_iter, sigma, kernel)
    if output == "posterior":
        return z_fg
    calibrated = calibrate(z_fg, z_bg, cams, fg_threshold)
    if output == "calibrated":
        return calibrated
    return calibrated + cam_map.to(device=calibrated.device, dtype=calibrated.dtype)


def post_hoc_reactivate(
    features: torch.Tensor,
    classifier_weight: torch.Tensor,
    labels: torch.Tensor,
    *,
    n_iter: int = 2,
    sigma: float = 8.0,
    kernel: str = "dot",
    fg_threshold: float = 0.2,
    output: str = "final",
) -> torch.Tensor:
    """Re-activation without learned embeddings, from each image's CAM.

    :func:`reactivate_map` with the CAM (Eq. 1) of ``classifier_weight`` as the map.

    Parameters
    ----------
    features : Tensor (B, d, h, w)
    classifier_weight : Tensor (C, d)
        Linear classifier weight (bias unused).
    labels : Tensor (B,) of int
        Class whose map is re-activated (ground truth or prediction).
    n_iter, sigma, kernel, fg_threshold, output
        As in :func:`reactivate`.

    Returns
    -------
    Tensor (B, h, w)
    """
    cams = class_activation_maps(features, classifier_weight, labels)
    return reactivate_map(
        features, cams,
        n_iter=n_iter, sigma=sigma, kernel=kernel, fg_threshold=fg_threshold, output=output,
    )


def reactivate_map(
    features: torch.Tensor,
    maps: torch.Tensor,
    *,
    n_iter: int = 2,
    sigma: float = 8.0,
    kernel: str = "dot",
    fg_threshold: float = 0.2,
    output: str = "final",
) -> torch.Tensor:
    """Re-activation on top of any class map, without learned embeddings.

    The map takes CAM's three places: its foreground ``M >= fg_threshold * max(M)``
    (Eq. 3) and background give the initial centroids (each image's own feature means,
    Eq. 4 with lambda = 0; an empty region starts at the zero vector), the calibration
    (Eq. 10) compares the posteriors over that foreground, and the final map (Eq. 12)
    adds the min-max normalised map. With CAM as the map this is
    :func:`post_hoc_reactivate`; any map of :mod:`skcream.map_sources` (Grad-CAM, ...)
    works the same way.

    Parameters
    ----------
    features : Tensor (B, d, h, w)
    maps : Tensor (B, h', w')
        Raw class maps (e.g. ``ClassMaps.maps``). A map on another grid (a gradient CAM
        of an earlier layer) is first resized to (h, w): bilinear, ``align_corners=False``,
        antialiased when shrinking.
    n_iter, sigma, kernel, fg_threshold, output
        As in :func:`reactivate`. ``n_iter=0`` or ``output="cam"``: the min-max normalised
        map itself, on its own grid (B, h', w').

    Returns
    -------
    Tensor (B, h, w)
    """
    _check_float_tensor("features", features, 4, "(B, d, h, w)")
    _check_float_tensor("maps", maps, 3, "(B, h, w)")
    if maps.shape[0] != features.shape[0]:
        raise ValueError(f"maps has {maps.shape[0]} maps but features has {features.shape[0]} "
                         "samples")
    if _check_n_iter(n_iter, 0) == 0 or _check_choice("output", output, OUTPUTS) == "cam":
        return normalize_maps(maps)  # the map itself, on its own grid
    maps = _on_grid(maps, tuple(features.shape[2:]))
    fg_mean, bg_mean, _, _ = foreground_background_means(features, maps, fg_threshold)
    return reactivate(
        features, maps, fg_mean, bg_mean,
        n_iter=n_iter, sigma=sigma, kernel=kernel, fg_threshold=fg_threshold, output=output,
    )


def _on_grid(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, h', w') maps resized to (h, w) (bilinear, antialiased when shrinking)."""
    if tuple(maps.shape[1:]) == tuple(size):
        return maps
    shrink = maps.shape[1] > size[0] or maps.shape[2] > size[1]
    return torch.nn.functional.interpolate(
        maps[:, None], size=size, mode="bilinear", align_corners=False, antialias=shrink,
    )[:, 0]
