"""The class maps of the gradient CAM family, as pure batched tensor functions.

Definitions are those of pytorch-grad-cam (jacobgil/pytorch-grad-cam, the classes
``GradCAM``, ``GradCAMPlusPlus``, ``XGradCAM``, ``LayerCAM``, ``ScoreCAM``, ``EigenCAM``),
with the same constants, so that the maps agree to float rounding (tested against it
as an oracle). ``A`` is the activation of the chosen layer (B, d, h, w), ``g`` the
gradient of the target class score (the logit, as its ``ClassifierOutputTarget``) with
respect to ``A``, ``S_k = sum_ij A_kij``:

* ``gradcam``:   ``w_k = mean_ij g_kij``, map ``sum_k w_k A_k``;
* ``gradcam++``: ``a = g^2 / (2 g^2 + S_k g^3 + 1e-6)`` (0 where ``g == 0``),
  ``w_k = sum_ij relu(g_kij) a_kij``;
* ``xgradcam``:  ``w_k = sum_ij g_kij A_kij / (S_k + 1e-7)``;
* ``layercam``:  map ``sum_k relu(g_k) * A_k`` (a weight per pixel);
* ``scorecam``:  ``w = softmax_k(score of the target class on x * m_k)`` where ``m_k`` is
  ``A_k`` upsampled (bilinear, ``align_corners=True``) to the input and min-max
  normalised (``+1e-8``);
* ``eigencam``:  the projection of the centred pixel features ``A_ij - mean_ij A`` on
  their first principal direction (class-agnostic, no gradient).

Every map is passed through a ReLU, as pytorch-grad-cam does before it scales a map.
The maps are returned raw (not min-max normalised): :func:`skcream.cam.normalize_maps`
turns them into the [0, 1] maps the protocol evaluates, as for CAM.

Deviations from pytorch-grad-cam (each tested):

* Batched torch code on any device instead of numpy on the CPU; same numbers to float
  rounding.
* EigenCAM's sign. A principal direction is defined up to its sign, and pytorch-grad-cam
  keeps whatever sign its SVD returns, so its EigenCAM may light the background instead of
  the object. Here the direction ``v`` is oriented so that ``sum_k v_k >= 0``, i.e. so that
  the projection is positively correlated with each pixel's total activation
  ``sum_k A_kij`` (for ``v`` a principal direction of the covariance ``K``,
  ``cov(projection, total) = (K v) . 1 = lambda (v . 1)``). Tested equal to
  pytorch-grad-cam's map whenever its SVD returns the same sign, and to the map of the
  opposite sign otherwise.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from skcream.cam import _check_float_tensor
from skcream.map_sources import GRADIENT_CAMS

__all__ = [
    "eigen_cam",
    "eigen_projection",
    "gradient_cam",
    "score_cam",
    "score_cam_masks",
]


# pytorch-grad-cam's constants (part of the definitions the oracle tests compare with)
_GRADCAM_PP_EPS = 1e-6
_XGRADCAM_EPS = 1e-7
_SCORECAM_EPS = 1e-8


def _check_pair(activations: torch.Tensor, grads: torch.Tensor) -> None:
    _check_float_tensor("activations", activations, 4, "(B, d, h, w)")
    _check_float_tensor("grads", grads, 4, "(B, d, h, w)")
    if grads.shape != activations.shape:
        raise ValueError(
            f"grads must have the shape of activations {tuple(activations.shape)}; "
            f"got {tuple(grads.shape)}"
        )


def gradient_cam(activations: torch.Tensor, grads: torch.Tensor, method: str) -> torch.Tensor:
    """Grad-CAM, Grad-CAM++, XGrad-CAM or LayerCAM of a batch (see the module docstring).

    Parameters
    ----------
    activations : Tensor (B, d, h, w)
        Activations ``A`` of the chosen layer.
    grads : Tensor (B, d, h, w)
        Gradients of each sample's target class score with respect to ``A``.
    method : {"gradcam", "gradcam++", "xgradcam", "layercam"}

    Returns
    -------
    Tensor (B, h, w)
        ``relu`` of the weighted sum of the activations, not normalised.
    """
    _check_pair(activations, grads)
    if method not in GRADIENT_CAMS:
        raise ValueError(f"method must be one of {GRADIENT_CAMS}, got {method!r}")
    a, g = activations, grads.to(activations.dtype)
    if method == "layercam":
        return torch.relu((torch.relu(g) * a).sum(dim=1))
    if method == "gradcam":
        weights = g.mean(dim=(2, 3))
    elif method == "xgradcam":
        total = a.sum(dim=(2, 3), keepdim=True)
        weights = (g * a / (total + _XGRADCAM_EPS)).sum(dim=(2, 3))
    else:  # gradcam++ (Eq. 19 of arXiv:1710.11063, as pytorch-grad-cam writes it)
        total = a.sum(dim=(2, 3), keepdim=True)
        g2 = g * g
        alpha = g2 / (2 * g2 + total * (g2 * g) + _GRADCAM_PP_EPS)
        alpha = torch.where(g != 0, alpha, torch.zeros_like(alpha))
        weights = (torch.relu(g) * alpha).sum(dim=(2, 3))
    return torch.relu(torch.einsum("bk,bkhw->bhw", weights, a))


def eigen_projection(activations: torch.Tensor) -> torch.Tensor:
    """Signed EigenCAM projection: centred pixel features on their first principal direction.

    Parameters
    ----------
    activations : Tensor (B, d, h, w)
        NaN entries count as 0 (as in pytorch-grad-cam).

    Returns
    -------
    Tensor (B, h, w)
        ``(A_ij - mean A) . v`` with ``v`` the first right singular vector of the centred
        ``(h w, d)`` matrix, oriented so that ``sum_k v_k >= 0`` (the module docstring).
    """
    _check_float_tensor("activations", activations, 4, "(B, d, h, w)")
    b, d, h, w = activations.shape
    x = torch.nan_to_num(activations, nan=0.0).reshape(b, d, h * w).transpose(1, 2)  # (B, N, d)
    x = x - x.mean(dim=1, keepdim=True)
    # Only the first right singular vector is needed; full_matrices=False gives the same
    # vector (up to its sign, fixed below) for a fraction of the cost.
    _, _, vh = torch.linalg.svd(x, full_matrices=False)
    v = vh[:, 0, :]  # (B, d)
    sign = torch.where(v.sum(dim=1) < 0, -1.0, 1.0).to(v.dtype)
    projection = torch.bmm(x, (v * sign[:, None])[:, :, None])[:, :, 0]  # (B, N)
    return projection.reshape(b, h, w)


def eigen_cam(activations: torch.Tensor) -> torch.Tensor:
    """EigenCAM: ``relu`` of :func:`eigen_projection` (B, d, h, w) -> (B, h, w)."""
    return torch.relu(eigen_projection(activations))


def score_cam_masks(activations: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Score-CAM's input masks: each channel upsampled to the input and min-max normalised.

    Parameters
    ----------
    activations : Tensor (B, d, h, w)
    size : (H, W)
        The network input's spatial size.

    Returns
    -------
    Tensor (B, d, H, W)
        ``(up(A_k) - min) / (max - min + 1e-8)``, ``up`` bilinear with ``align_corners=True``
        (pytorch-grad-cam's ``UpsamplingBilinear2d``).
    """
    _check_float_tensor("activations", activations, 4, "(B, d, h, w)")
    up = F.interpolate(activations, size=tuple(size), mode="bilinear", align_corners=True)
    flat = up.flatten(2)
    lo = flat.amin(dim=2)[:, :, None, None]
    hi = flat.amax(dim=2)[:, :, None, None]
    return (up - lo) / (hi - lo + _SCORECAM_EPS)


def score_cam(
    activations: torch.Tensor,
    inputs: torch.Tensor,
    target_scores: Callable[[torch.Tensor, int], torch.Tensor],
    *,
    batch_size: int = 64,
) -> torch.Tensor:
    """Score-CAM of a batch: channel weights from the class score of each masked input.

    Parameters
    ----------
    activations : Tensor (B, d, h, w)
        Activations of the chosen layer on ``inputs``.
    inputs : Tensor (B, 3, H, W)
        The network inputs.
    target_scores : callable (masked (m, 3, H, W), sample index i) -> (m,)
        The target class score of sample ``i`` (its logit) on masked copies of its input;
        called under ``torch.no_grad``.
    batch_size : int
        Masked inputs per call (the cost is ``d`` forward passes per image).

    Returns
    -------
    Tensor (B, h, w)
        ``relu(sum_k softmax_k(scores) A_k)``, not normalised.
    """
    _check_float_tensor("inputs", inputs, 4, "(B, 3, H, W)")
    b, d = activations.shape[:2]
    scores = torch.empty(b, d, dtype=torch.float32, device=activations.device)
    with torch.no_grad():
        for i in range(b):
            # one image's masks at a time: (d, H, W), 0.25 GB for 1280 channels at 224
            masks = score_cam_masks(activations[i:i + 1], tuple(inputs.shape[2:]))[0]
            # A channel that is 0 everywhere (common after a ReLU: 15-50 % of EfficientNet's
            # last layer) masks the input to the all-zero image: one forward pass serves
            # them all (pytorch-grad-cam runs each; same scores).
            zero = masks.flatten(1).amax(dim=1) == 0  # masks are >= 0
            if bool(zero.any()):
                blank = target_scores(torch.zeros_like(inputs[i][None]), i)
                scores[i, zero] = blank.float().to(scores.device)
            rest = (~zero).nonzero()[:, 0]
            for start in range(0, rest.shape[0], batch_size):
                sel = rest[start:start + batch_size]
                out = target_scores(inputs[i][None] * masks[sel, None], i)  # (m, 3, H, W)
                scores[i, sel] = out.float().to(scores.device)
    weights = torch.softmax(scores, dim=1).to(activations.dtype)
    return torch.relu(torch.einsum("bk,bkhw->bhw", weights, activations))
