"""Hide-and-Seek (Singh & Lee, ICCV 2017): hide random grid cells of every training image.

As in wsolevaluation (``wsol/method/has.py``, ``config.py``): the image is cut into square
cells of ``has_grid_size`` pixels (the last row/column may be smaller), each cell is hidden
independently with probability ``has_drop_rate``, and a hidden cell is set to 0 *after*
normalisation, i.e. to the dataset mean colour (the original HaS fills hidden patches with
the mean). Only training images are hidden; the network and the map are CAM's.
Note the reference's default cell is small (4 px); the original paper used 16-56 px cells.

CREAM: the context embeddings learn from the CAM of the hidden images (what the network
sees during HaS training); at inference nothing is hidden.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from skcream.methods._base import ParamSpec, WSOLMethod

__all__ = ["HaS", "hide_patches"]


def hide_patches(
    images: torch.Tensor, grid_size: int, drop_rate: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Hide (zero) whole square cells of each image at random.

    Parameters
    ----------
    images : Tensor (B, C, H, W)
        Normalised images (0 is the mean colour).
    grid_size : int
        Cell side in pixels; 0 disables hiding (the reference's convention).
    drop_rate : float in [0, 1]
        Probability that a cell is hidden (independently per image and cell).
    generator : torch.Generator, optional
        Random source (default: torch's global RNG on the images' device).

    Returns
    -------
    Tensor (B, C, H, W)
        A new tensor; every ``grid_size x grid_size`` cell (aligned at 0, 0) is either equal
        to the input or all zeros in every channel.
    """
    if grid_size == 0:
        return images
    b, _, h, w = images.shape
    nh, nw = -(-h // grid_size), -(-w // grid_size)
    draw = torch.rand(b, nh, nw, device=images.device, generator=generator)
    keep = draw > drop_rate  # the reference hides a cell when random() <= drop_rate
    mask = keep.repeat_interleave(grid_size, 1).repeat_interleave(grid_size, 2)[:, :h, :w]
    return images * mask[:, None].to(images.dtype)


class HaS(WSOLMethod):
    """Hide-and-Seek: CAM trained on images with hidden grid cells."""

    name = "has"
    PARAMS = {
        "has_grid_size": ParamSpec(4, int, 0),
        "has_drop_rate": ParamSpec(0.5, float, 0.0, 1.0),
    }

    def forward(self, model: nn.Module, batch: Mapping[str, torch.Tensor]) -> Any:
        hidden = hide_patches(batch["image"], self.params["has_grid_size"], self.params["has_drop_rate"])
        return model(hidden)
