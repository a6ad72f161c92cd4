"""The input-size check shared by the estimators: one forward pass before any real work."""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["probe_feature_shape"]


def probe_feature_shape(
    forward: Callable[[torch.Tensor], torch.Tensor],
    image_size: int,
    device: torch.device | str,
    backbone: str,
) -> tuple[int, int, int]:
    """Shape ``(d, h, w)`` of the feature map of one ``image_size`` x ``image_size`` image.

    Parameters
    ----------
    forward : callable
        ``(1, 3, S, S) -> (1, d, h, w)`` feature map (run under ``no_grad``).
    image_size : int
        ``S``.
    device : torch.device or str
    backbone : str
        Named in the error.

    Returns
    -------
    tuple of int
        ``(d, h, w)``.

    Raises
    ------
    ValueError
        When the network cannot take an input of this size (a pooling or convolution window
        larger than the map, a transformer built for another size) or the feature map is
        smaller than 2 x 2: a 1 x 1 map makes every
        class activation map constant, so no localization is possible.
    """
    with torch.no_grad():
        try:
            feats = forward(torch.zeros(1, 3, image_size, image_size, device=device))
        except (RuntimeError, AssertionError) as err:  # timm asserts on sizes it cannot take
            native = getattr(forward, "data_config", {}).get("input_size")
            hint = f" or the model's native {native[-1]}" if native else ""
            raise ValueError(
                f"image_size={image_size} does not fit backbone {backbone!r} (the network "
                f"fails on it: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
                f"); use a larger image_size{hint} (CLI: --image-size; the protocol uses 224)"
            ) from None
    d, h, w = (int(s) for s in feats.shape[-3:])
    if min(h, w) < 2:
        raise ValueError(
            f"image_size={image_size} gives backbone {backbone!r} a {h}x{w} feature map; class "
            "activation maps need at least 2x2 to localize anything: use a larger image_size "
            "(CLI: --image-size; the protocol uses 224)"
        )
    return d, h, w
