"""Class-specific context embeddings V^fg, V^bg and their momentum update (paper Eq. 3-4).

During training, each sample ``(x, c)`` splits its feature map F into a CAM
foreground ``M_c >= delta`` and background ``M_c < delta`` with
``delta = fg_threshold * max(M_c)`` (Eq. 3), and moves the embeddings of its
class towards the spatial means of the two regions (Eq. 4)::

    V_c^m <- lambda * V_c^m + (1 - lambda) * mean_{ij in M_c^m} F_ij,   m in {fg, bg}

The batched update here equals applying Eq. 4 sample by sample in batch order.
For a class c hit by the (valid) samples s_1..s_k in that order it is the
closed form::

    V_c <- lambda^k V_c + (1 - lambda) * sum_j lambda^(k - j) mean_{s_j}

computed with a stable sort, ``bincount`` and ``index_add`` (no loop over samples).
The result is the same as the sequential loop up to floating-point summation order.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Integral

import numpy as np
import torch
from sklearn.utils import check_random_state
from torch import nn

from skcream._checks import as_int, as_real
from skcream.cam import _check_cams_match, _check_float_tensor, _check_labels

__all__ = [
    "cam_foreground",
    "foreground_background_means",
    "update_context",
    "ContextEmbeddings",
]


def _check_unit_interval(name: str, value: object) -> float:
    return as_real(value, name, low=0.0, high=1.0)


def cam_foreground(cams: torch.Tensor, fg_threshold: float = 0.2) -> torch.Tensor:
    """CAM foreground indicator of Eq. 3: ``M >= fg_threshold * max(M)`` per map.

    Applied to the raw CAM, as in the paper. A map whose maximum is negative
    has an empty foreground (``delta > max``), and so has a map containing NaN;
    a map whose maximum is exactly 0 has ``delta = 0``.

    Parameters
    ----------
    cams : Tensor (B, h, w)
        Raw class activation maps M_c of each sample's class.
    fg_threshold : float in [0, 1]
        delta / max(M_c); 0.2 in the paper.

    Returns
    -------
    BoolTensor (B, h, w)
        True on the foreground ``M_c^fg``; its complement is ``M_c^bg``.
    """
    _check_float_tensor("cams", cams, 3, "(B, h, w)")
    fg_threshold = _check_unit_interval("fg_threshold", fg_threshold)
    if cams.numel() == 0:
        return torch.zeros_like(cams, dtype=torch.bool)
    delta = fg_threshold * cams.amax(dim=(1, 2), keepdim=True)
    return cams >= delta


def foreground_background_means(
    features: torch.Tensor, cams: torch.Tensor, fg_threshold: float = 0.2
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Spatial means of the features over the CAM foreground and background (Eq. 3-4).

    Parameters
    ----------
    features : Tensor (B, d, h, w)
    cams : Tensor (B, h, w)
        Raw CAM of each sample's class.
    fg_threshold : float in [0, 1]

    Returns
    -------
    fg_mean : Tensor (B, d)
        Mean of F over ``M_c^fg`` (zeros where that mask is empty).
    bg_mean : Tensor (B, d)
        Mean of F over ``M_c^bg`` (zeros where that mask is empty).
    has_fg : BoolTensor (B,)
        Whether the foreground mask is non-empty.
    has_bg : BoolTensor (B,)
        Whether the background mask is non-empty.
    """
    _check_float_tensor("features", features, 4, "(B, d, h, w)")
    _check_cams_match(features, cams)
    fg = cam_foreground(cams, fg_threshold)
    masks = torch.stack([fg, ~fg], dim=1).to(features.dtype)  # (B, 2, h, w)
    sums = torch.einsum("bdhw,bmhw->bmd", features, masks)  # (B, 2, d)
    counts = masks.sum(dim=(2, 3))  # (B, 2)
    means = sums / counts.clamp_min(1.0)[..., None]
    has = counts > 0
    return means[:, 0], means[:, 1], has[:, 0], has[:, 1]


def _momentum_update(
    table: torch.Tensor, means: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor,
    momentum: float,
) -> torch.Tensor:
    """Closed form of Eq. 4 applied in batch order to one (C, d) table (see module doc)."""
    n_classes = table.shape[0]
    batch = labels.shape[0]
    means = means.to(device=table.device, dtype=table.dtype)
    labels = labels.to(table.device)
    valid = valid.to(table.device)
    # Invalid samples get the sentinel class C so that they neither count nor move anything.
    key = torch.where(valid, labels, torch.full_like(labels, n_classes))
    counts = torch.bincount(key, minlength=n_classes + 1)  # (C + 1,)
    order = torch.sort(key, stable=True).indices  # batch order kept inside each class
    start = torch.cumsum(counts, 0) - counts  # first sorted position of each class
    rank = torch.empty_like(key)
    rank[order] = torch.arange(batch, device=key.device) - start[key[order]]  # 0-based j - 1
    exponent = counts[key] - 1 - rank  # k - j
    lam = torch.tensor(momentum, dtype=table.dtype, device=table.device)
    weights = (1.0 - lam) * lam.pow(exponent)  # (B,)  lambda^0 == 1 also for lambda == 0
    contrib = torch.where(valid[:, None], weights[:, None] * means, torch.zeros_like(means))
    safe_labels = torch.where(valid, labels, torch.zeros_like(labels))
    added = torch.zeros_like(table).index_add_(0, safe_labels, contrib)
    decay = lam.pow(counts[:n_classes])  # (C,)  lambda^k, 1 for untouched classes
    return table * decay[:, None] + added


def _check_flags(name: str, flags: torch.Tensor | None, batch: int) -> torch.Tensor | None:
    if flags is None:
        return None
    if not isinstance(flags, torch.Tensor):
        raise TypeError(f"{name} must be a bool tensor of shape ({batch},) or None")
    if flags.shape != (batch,):
        raise ValueError(f"{name} must have shape ({batch},), got {tuple(flags.shape)}")
    if flags.dtype != torch.bool:
        if flags.is_floating_point() or bool(((flags != 0) & (flags != 1)).any()):
            raise TypeError(f"{name} must be a bool (or 0/1 integer) tensor, got dtype {flags.dtype}")
        flags = flags.bool()
    return flags


def update_context(
    fg_ctx: torch.Tensor,
    bg_ctx: torch.Tensor,
    fg_mean: torch.Tensor,
    bg_mean: torch.Tensor,
    labels: torch.Tensor,
    *,
    momentum: float = 0.8,
    has_fg: torch.Tensor | None = None,
    has_bg: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Momentum update of the context embeddings (Eq. 4), batched.

    Identical to looping over the samples in batch order and applying
    ``V[label] = momentum * V[label] + (1 - momentum) * mean`` to each (up to
    summation order); a sample whose mask is empty (``has_* False``) leaves that
    embedding untouched. Pure function: the inputs are not modified.

    Parameters
    ----------
    fg_ctx, bg_ctx : Tensor (C, d)
        Current embeddings V^fg and V^bg.
    fg_mean, bg_mean : Tensor (B, d)
        Per-sample foreground / background feature means.
    labels : Tensor (B,) of int
        Class of each sample, in ``[0, C)``.
    momentum : float in [0, 1]
        lambda of Eq. 4 (0.8 in the paper; 1 keeps the embeddings, 0 keeps the last mean).
    has_fg, has_bg : BoolTensor (B,), optional
        Which samples have a non-empty foreground / background (all when None).

    Returns
    -------
    fg_ctx, bg_ctx : Tensor (C, d)
        New tensors with the dtype and device of the inputs tables.
    """
    _check_float_tensor("fg_ctx", fg_ctx, 2, "(C, d)")
    _check_float_tensor("bg_ctx", bg_ctx, 2, "(C, d)")
    if bg_ctx.shape != fg_ctx.shape:
        raise ValueError(f"bg_ctx must have the shape of fg_ctx {tuple(fg_ctx.shape)}, got {tuple(bg_ctx.shape)}")
    n_classes, dim = fg_ctx.shape
    _check_float_tensor("fg_mean", fg_mean, 2, "(B, d)")
    batch = fg_mean.shape[0]
    for name, mean in (("fg_mean", fg_mean), ("bg_mean", bg_mean)):
        _check_float_tensor(name, mean, 2, "(B, d)")
        if mean.shape != (batch, dim):
            raise ValueError(f"{name} must have shape ({batch}, {dim}), got {tuple(mean.shape)}")
    labels = _check_labels(labels, batch, n_classes)
    momentum = _check_unit_interval("momentum", momentum)
    has_fg = _check_flags("has_fg", has_fg, batch)
    has_bg = _check_flags("has_bg", has_bg, batch)
    all_valid = torch.ones(batch, dtype=torch.bool, device=labels.device)
    new_fg = _momentum_update(fg_ctx, fg_mean, labels, all_valid if has_fg is None else has_fg, momentum)
    new_bg = _momentum_update(bg_ctx, bg_mean, labels, all_valid if has_bg is None else has_bg, momentum)
    return new_fg, new_bg


def _seed_from(random_state: object) -> int:
    if isinstance(random_state, torch.Generator):
        return int(torch.randint(0, 2**62, (1,), generator=random_state))
    if isinstance(random_state, Integral) and not isinstance(random_state, bool):
        return int(random_state)
    if random_state is None or isinstance(random_state, np.random.RandomState):
        return int(check_random_state(random_state).randint(0, 2**31 - 1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**62))
    raise TypeError(
        "random_state must be None, an int, a numpy RandomState/Generator or a torch.Generator; "
        f"got {type(random_state).__name__}"
    )


class ContextEmbeddings(nn.Module):
    """Class-specific foreground/background context embeddings (paper Sec. 3.2).

    Two buffers ``fg`` and ``bg`` of shape (C, d), saved in the state dict and
    moved by ``.to()``, never trained by gradient descent.

    Initialisation: every entry is drawn i.i.d. from N(0, 1/d) (so each row has
    norm about 1 and a uniformly random direction), ``fg`` first, then ``bg``,
    from a CPU ``torch.Generator`` seeded by ``random_state`` (an int gives a
    reproducible table; None draws the seed from numpy's global RNG, as
    scikit-learn does). The paper only says "randomly initialised"; after n
    updates of a class the initial value is weighted by momentum**n.

    Parameters
    ----------
    n_classes : int
        C.
    dim : int
        d, the channel count of the feature maps.
    momentum : float in [0, 1]
        lambda of Eq. 4.
    fg_threshold : float in [0, 1]
        delta / max(M_c) of Eq. 3.
    random_state : int, numpy RandomState/Generator, torch.Generator or None
        Seed of the random initialisation.
    """

    fg: torch.Tensor
    bg: torch.Tensor

    def __init__(
        self,
        n_classes: int,
        dim: int,
        *,
        momentum: float = 0.8,
        fg_threshold: float = 0.2,
        random_state: object = None,
    ) -> None:
        super().__init__()
        self.n_classes = as_int(n_classes, "n_classes", low=1)
        self.dim = as_int(dim, "dim", low=1)
        self.momentum = _check_unit_interval("momentum", momentum)
        self.fg_threshold = _check_unit_interval("fg_threshold", fg_threshold)
        gen = torch.Generator().manual_seed(_seed_from(random_state))
        scale = 1.0 / math.sqrt(self.dim)
        self.register_buffer("fg", torch.randn(self.n_classes, self.dim, generator=gen) * scale)
        self.register_buffer("bg", torch.randn(self.n_classes, self.dim, generator=gen) * scale)

    def extra_repr(self) -> str:
        return (
            f"n_classes={self.n_classes}, dim={self.dim}, momentum={self.momentum}, "
            f"fg_threshold={self.fg_threshold}"
        )

    def forward(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings of the given classes.

        Parameters
        ----------
        labels : Tensor (B,) of int

        Returns
        -------
        fg, bg : Tensor (B, d)
            Rows of the tables (copies), ready for :func:`skcream.reactivation.reactivate`.
        """
        batch = labels.shape[0] if isinstance(labels, torch.Tensor) and labels.ndim == 1 else -1
        labels = _check_labels(labels, batch, self.n_classes).to(self.fg.device)
        return self.fg[labels], self.bg[labels]

    @torch.no_grad()
    def update(
        self,
        features: torch.Tensor,
        cams: torch.Tensor,
        labels: torch.Tensor,
        gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        """Apply Eq. 3-4 for a mini-batch, in place on ``fg`` and ``bg``.

        Parameters
        ----------
        features : Tensor (B, d, h, w)
            Feature maps (detached here; no gradient flows into the embeddings).
        cams : Tensor (B, h, w)
            Raw CAM of each sample's ground-truth class.
        labels : Tensor (B,) of int
            Ground-truth classes.
        gather : callable, optional
            ``gather(t)`` must return the concatenation along dim 0 of ``t`` from
            every process, in rank order (e.g. ``accelerator.gather_for_metrics``). The
            per-sample means, has-flags (as uint8) and labels are gathered and
            every replica applies the identical update, so the tables stay equal.
        """
        features = features.detach()
        cams = cams.detach()
        if isinstance(features, torch.Tensor) and features.ndim == 4 and features.shape[1] != self.dim:
            raise ValueError(f"features must have shape (B, {self.dim}, h, w), got {tuple(features.shape)}")
        if isinstance(features, torch.Tensor) and features.is_floating_point():
            dtype = torch.promote_types(features.dtype, self.fg.dtype)
            features = features.to(dtype)
        fg_mean, bg_mean, has_fg, has_bg = foreground_background_means(features, cams, self.fg_threshold)
        labels = _check_labels(labels, fg_mean.shape[0], self.n_classes).to(fg_mean.device)
        if gather is not None:
            fg_mean = gather(fg_mean)
            bg_mean = gather(bg_mean)
            has_fg = gather(has_fg.to(torch.uint8)).bool()
            has_bg = gather(has_bg.to(torch.uint8)).bool()
            labels = gather(labels)
            n = labels.shape[0]
            for name, t in (("fg_mean", fg_mean), ("bg_mean", bg_mean), ("has_fg", has_fg), ("has_bg", has_bg)):
                if t.shape[0] != n:
                    raise ValueError(
                        f"gather returned {t.shape[0]} rows for {name} but {n} labels; it must "
                        "concatenate per-sample tensors along dim 0"
                    )
        new_fg, new_bg = update_context(
            self.fg, self.bg, fg_mean, bg_mean, labels,
            momentum=self.momentum, has_fg=has_fg, has_bg=has_bg,
        )
        self.fg.copy_(new_fg)
        self.bg.copy_(new_bg)
