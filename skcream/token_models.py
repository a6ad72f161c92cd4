"""Token models (ViT, DeiT, EVA, BEiT, Swin, MambaOut, ...) as WSOL feature backbones.

A transformer keeps its features as tokens: a sequence (B, N, D) whose first
``num_prefix_tokens`` are class / distillation / register tokens (timm's ViT family:
ViT, DeiT, EVA, BEiT, CaiT, XCiT, ...), or a channels-last grid (B, h, w, D) (timm's
``output_fmt="NHWC"``: Swin, SwinV2, MambaOut, ...). :class:`TokenGrid` turns them into
the (B, D, h, w) map every other module of skcream reads, through timm's own
``forward_intermediates``, which drops the prefix tokens and reshapes the rest to the
patch grid with the model's metadata (``patch_embed.dynamic_feat_size``). The CAM head
(global average pooling of the patch tokens + a linear layer, so CAM stays exact), the
context embeddings and the EM then work on tokens without any change.

* Which models (:func:`token_layout`): a timm model outside the protocol's CNN families
  whose metadata declares tokens: ``num_prefix_tokens`` (sequences) or a channels-last
  ``output_fmt`` (grids). Models whose ``forward_features`` is already NCHW (ConvNeXt,
  SwinV2-CR, MaxViT, ...) keep the generic CNN path of :mod:`skcream.backbones`.
* Which features: the last block (``feature_info[-1]``) after the model's final norm, i.e.
  the patch tokens of ``forward_features`` (tested). The class token is not used: the
  head is skcream's own, on the patch tokens (a deviation from ViT's class-token
  classifier, needed for CAM; the map of a class-token head is not a CAM).
  ``feature_stage`` picks an earlier block / stage, without the final norm (as timm's
  ``features_only``).
* Map resolution: ``image_size / reduction`` of that block: 14x14 for patch-16 ViTs and
  DeiTs at 224, 16x16 for patch-14 models (EVA02) at 224, 7x7 for Swin at 224 (14x14
  with ``feature_stage=-2``, its third stage).
* Map sources (:mod:`skcream.map_sources`): a hooked layer's tokens become a map with
  :class:`TokenReshape` (pytorch-grad-cam's ``reshape_transform`` convention), and the
  gradient CAMs of a sequence model read the last block's ``norm1`` by default
  (:func:`default_cam_layer`, pytorch-grad-cam's choice for ViT / DeiT): a class-token
  head sees the patch tokens only through attention, so after the last block their
  gradient is zero.
* Input size: a model timm builds for a fixed input size (``pretrained_cfg``'s
  ``fixed_input_size``) is built with ``dynamic_img_size=True`` when its class has that
  option (ViT, DeiT, EVA, Swin, SwinV2): position embeddings are interpolated (timm's
  bicubic ``resample_abs_pos_embed``) to each input's grid and Swin's attention masks are
  built for it, so any size whose sides are multiples of the patch size works (also
  ``pseudo_boxes`` at 448); at the native size nothing changes (tested). Models without
  the option take their native size only. :func:`check_input_size` refuses any other
  size before the forward pass, naming the sizes accepted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

__all__ = [
    "TokenGrid",
    "TokenReshape",
    "assemble_tokens",
    "check_input_size",
    "create_sized",
    "default_cam_layer",
    "input_size_rule",
    "token_layout",
]


def token_layout(model: nn.Module) -> str | None:
    """How a timm model's ``forward_features`` lays out its tokens, from its metadata.

    Parameters
    ----------
    model : nn.Module
        A timm model.

    Returns
    -------
    ``"NLC"``, ``"NHWC"`` or None
        ``"NLC"``: a token sequence, prefix tokens first (the model has
        ``num_prefix_tokens``); ``"NHWC"``: a channels-last grid (``output_fmt``); None:
        nothing declared (a CNN with NCHW maps, or a layout skcream does not read).
    """
    fmt = getattr(model, "output_fmt", None)
    fmt = getattr(fmt, "value", fmt)  # timm's Format enum or a plain string
    if isinstance(fmt, str) and fmt.upper() == "NHWC":
        return "NHWC"
    if getattr(model, "num_prefix_tokens", None) is not None:
        return "NLC"
    return None


def _fixed_input_size(name: str) -> bool:
    """timm's ``pretrained_cfg.fixed_input_size`` of a model name (False when unknown)."""
    from timm.models import get_pretrained_cfg

    try:
        cfg = get_pretrained_cfg(name)
    except Exception:  # a name timm has no config for: nothing declared
        return False
    return bool(getattr(cfg, "fixed_input_size", False)) if cfg is not None else False


def create_sized(create: Callable[..., Any], name: str, *args: Any, **kwargs: Any) -> Any:
    """``create(name, *args, **kwargs)``, with ``dynamic_img_size=True`` for fixed-size models.

    Models whose timm config declares a fixed input size (transformers with absolute
    position embeddings or attention windows) are asked for ``dynamic_img_size=True``,
    which makes them accept other sizes; a model class without that option raises
    TypeError naming it, and is then created as it is (its native size only, see
    :func:`check_input_size`). Other models (every CNN) are created unchanged.

    Parameters
    ----------
    create : callable
        E.g. :func:`skcream.weights.create_pretrained_timm`.
    name : str
        The timm model name, passed first.
    *args, **kwargs
        Passed on.
    """
    if _fixed_input_size(name) and "dynamic_img_size" not in kwargs:
        try:
            return create(name, *args, dynamic_img_size=True, **kwargs)
        except TypeError as exc:
            if "dynamic_img_size" not in str(exc):
                raise
    return create(name, *args, **kwargs)


def input_size_rule(model: nn.Module) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
    """``(fixed, multiple)``: the input sizes a token model takes, from its patch embedding.

    Returns
    -------
    fixed : (H, W) or None
        The only size accepted (``patch_embed.strict_img_size``: no dynamic size).
    multiple : (p_h, p_w) or None
        Sides must be multiples of the patch size (dynamic size without padding).
    """
    embed = getattr(model, "patch_embed", None)
    if embed is None:
        return None, None
    img, patch = _pair(getattr(embed, "img_size", None)), _pair(getattr(embed, "patch_size", None))
    if getattr(embed, "strict_img_size", False) and img is not None:
        return img, None
    if not getattr(embed, "dynamic_img_pad", False) and patch is not None:
        return None, patch
    return None, None


def _pair(value: Any) -> tuple[int, int] | None:
    """(a, b) of an int or a pair (timm stores sizes either way); None otherwise."""
    if isinstance(value, int):
        return value, value
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return int(value[0]), int(value[1])
    return None


def check_input_size(
    rule: tuple[tuple[int, int] | None, tuple[int, int] | None], shape: torch.Size, name: str
) -> None:
    """Raise ValueError when an image batch of ``shape`` (B,3,H,W) does not fit ``rule``.

    Parameters
    ----------
    rule : (fixed, multiple)
        From :func:`input_size_rule`.
    shape : torch.Size
        The batch's shape.
    name : str
        The backbone, named in the message.
    """
    fixed, multiple = rule
    h, w = int(shape[-2]), int(shape[-1])
    if fixed is not None and (h, w) != fixed:
        raise ValueError(
            f"backbone {name!r} takes only {fixed[0]}x{fixed[1]} images (timm builds it for a "
            f"fixed input size and it has no dynamic_img_size option), got {h}x{w}: use "
            f"image_size={fixed[0]} (CLI: --image-size {fixed[0]})"
        )
    if multiple is not None and (h % multiple[0] or w % multiple[1]):
        p = multiple[0]
        near = -(-max(h, w) // p) * p  # the next multiple up
        raise ValueError(
            f"backbone {name!r} cuts images into {multiple[0]}x{multiple[1]} patches: the "
            f"image sides must be multiples of {p}, got {h}x{w}; use e.g. image_size={near} "
            f"(CLI: --image-size {near})"
        )


class TokenGrid(nn.Module):
    """A timm token model's block output as a feature map (B,3,H,W) -> (B,D,h,w).

    Parameters
    ----------
    model : nn.Module
        The timm model (head removed, later blocks pruned).
    index : int
        The ``feature_info`` entry read (a block of a ViT, a stage of a Swin).
    norm : bool
        Apply the model's final norm (the last block only, as ``forward_features``).
    name : str
        The backbone's name, for error messages.

    Attributes
    ----------
    layout : str
        :func:`token_layout` of the model (``"NLC"`` or ``"NHWC"``).
    input_rule : tuple
        :func:`input_size_rule` of the model.
    """

    def __init__(self, model: nn.Module, index: int, *, norm: bool, name: str) -> None:
        super().__init__()
        self.model = model
        self.index = int(index)
        self.norm = bool(norm)
        self.name = name
        self.layout = token_layout(model)
        self.input_rule = input_size_rule(model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_size(self.input_rule, x.shape, self.name)
        try:
            # timm drops the prefix tokens and reshapes to the patch grid (NCHW by default)
            return self.model.forward_intermediates(
                x, indices=[self.index], norm=self.norm, intermediates_only=True
            )[0]
        except AssertionError as exc:  # timm asserts on input sizes its metadata does not show
            raise ValueError(
                f"backbone {self.name!r} cannot take {x.shape[-2]}x{x.shape[-1]} images: {exc} "
                "(choose image_size accordingly; CLI: --image-size)"
            ) from None


def assemble_tokens(
    model: nn.Module, name: str, feature_stage: int | None, large: bool, modification: str
) -> tuple[nn.Module, None, int, int, str]:
    """The token model's (body, extra, num_features, feature_stride, applied modification).

    The body is a :class:`TokenGrid` of the last ``feature_info`` entry after the final
    norm, or of entry ``feature_stage`` without it; nothing is added (``extra`` None).
    """
    if large or modification in ("stride1", "dilated"):
        option = "large_feature_map" if large else f"modification={modification!r}"
        raise ValueError(
            f"{option}: not available for the token model {name!r}, whose map is its patch "
            "grid (image_size / patch size); for a finer map choose a model with smaller "
            "patches or a larger image_size, or an earlier feature_stage of a hierarchical "
            "model (Swin)"
        )
    if not hasattr(model, "forward_intermediates") or not hasattr(model, "feature_info"):
        raise ValueError(
            f"backbone {name!r}: timm's model has no forward_intermediates / feature_info, "
            "which skcream reads token models through"
        )
    info = list(model.feature_info)
    n = len(info)
    if feature_stage is None:  # the final norm, when the model has one (forward_features)
        final = getattr(model, "norm", None)
        index, norm = n - 1, isinstance(final, nn.Module) and not isinstance(final, nn.Identity)
    else:
        if not -n <= feature_stage < n:
            raise ValueError(f"feature_stage: {name!r} has stages 0..{n - 1}, got {feature_stage}")
        index, norm = feature_stage % n, False
    model.prune_intermediate_layers([index], prune_norm=not norm, prune_head=True)
    applied = "none" if feature_stage is None else f"stage{index}"
    return (
        TokenGrid(model, index, norm=norm, name=name), None, int(info[index]["num_chs"]),
        int(info[index]["reduction"]), applied,
    )


class TokenReshape:
    """A token layer's output as a feature map: pytorch-grad-cam's ``reshape_transform``.

    ``(B, N, D)`` sequences lose their ``num_prefix_tokens`` first tokens and the rest is
    reshaped to a square (h, w) grid (skcream feeds square images); channels-last grids
    ``(B, h, w, D)`` of an NHWC model are permuted; anything else is returned unchanged.

    Parameters
    ----------
    model : nn.Module
        The timm token model the tensors come from.
    """

    def __init__(self, model: nn.Module) -> None:
        self.layout = token_layout(model)
        self.prefix = int(getattr(model, "num_prefix_tokens", 0) or 0)

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, N, D) or (B, h, w, D) -> (B, D, h, w)."""
        if tokens.ndim == 3:
            b, n, d = tokens.shape
            side = int(round((n - self.prefix) ** 0.5))
            if side * side != n - self.prefix:
                raise ValueError(
                    f"{n - self.prefix} patch tokens (of {n}, {self.prefix} prefix tokens) do "
                    "not form a square grid: feed square images"
                )
            return tokens[:, self.prefix:].reshape(b, side, side, d).permute(0, 3, 1, 2)
        if tokens.ndim == 4 and self.layout == "NHWC":
            return tokens.permute(0, 3, 1, 2)
        return tokens


def default_cam_layer(model: nn.Module) -> str | None:
    """The layer a gradient CAM reads by default in a timm token model, or None.

    For sequence models (``"NLC"``) with timm's ``blocks[-1].norm1``: that module's name
    (``"blocks.11.norm1"`` for ViT-B), pytorch-grad-cam's choice for ViT and DeiT. None
    otherwise: the last feature layer, as for CNNs (Swin pools every token into its head).
    """
    blocks = getattr(model, "blocks", None)
    if token_layout(model) != "NLC" or not isinstance(blocks, (nn.Sequential, nn.ModuleList)) \
            or not len(blocks):
        return None
    if not isinstance(getattr(blocks[-1], "norm1", None), nn.Module):
        return None
    return f"blocks.{len(blocks) - 1}.norm1"
