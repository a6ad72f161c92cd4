"""Batched inference of a fitted CAM network + context embeddings.

Pure plumbing between the layers: images -> (logits, feature maps) -> class
maps (CAM or CREAM) -> protocol maps / original-size maps. No estimator state:
every function takes the network, the context tables and the settings.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from skcream.cam import normalize_maps, upsample_maps
from skcream.data.adapters import ImageSource, TorchImageDataset, collate
from skcream.data.loading import pin_memory, resolve_num_workers
from skcream.data.transforms import EvalTransform
from skcream.reactivation import reactivate

__all__ = [
    "ForwardBatch",
    "ReadoutSettings",
    "class_maps",
    "iter_forward",
    "maps_at_original_size",
]


@dataclass(frozen=True)
class ReadoutSettings:
    """How a class map is read out of features (the inference-only parameters).

    ``n_iter=0`` or ``output="cam"`` gives plain CAM (min-max normalised).
    """

    n_iter: int = 2
    sigma: float = 8.0
    kernel: str = "dot"
    fg_threshold: float = 0.2
    output: str = "final"


@dataclass
class ForwardBatch:
    """Network outputs for a batch of images.

    Attributes
    ----------
    index : ndarray (B,) int
        Positions of the images in the source.
    logits : Tensor (B, C)
    features : Tensor (B, d, h, w)
    """

    index: np.ndarray
    logits: torch.Tensor
    features: torch.Tensor


def iter_forward(
    model: torch.nn.Module,
    source: ImageSource,
    *,
    image_size: int,
    data_config: Mapping[str, Any],
    batch_size: int,
    device: torch.device,
    num_workers: int | None = None,
    indices: range | None = None,
) -> Iterator[ForwardBatch]:
    """Run the network over ``source`` (or its rows ``indices``) in batches (eval mode, no grad).

    Images are resized to ``image_size x image_size`` without cropping and normalised with
    ``data_config`` (the evaluation transform of the protocol).

    Yields
    ------
    ForwardBatch
        Tensors on ``device``.
    """
    transform = EvalTransform(size=image_size, mean=data_config["mean"], std=data_config["std"])
    dataset = TorchImageDataset(source, transform, with_boxes=False)
    if indices is not None:  # items keep their source index in batch["index"]
        dataset = torch.utils.data.Subset(dataset, list(indices))
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=resolve_num_workers(num_workers, len(dataset)),
        pin_memory=pin_memory(device),
        collate_fn=collate,
    )
    was_training = model.training
    model.eval()
    try:
        for batch in loader:
            with torch.no_grad():  # not held across the yield: grad mode is global state
                logits, features = model(batch["image"].to(device))
            yield ForwardBatch(batch["index"].numpy(), logits.float(), features.float())
    finally:
        model.train(was_training)


def class_maps(
    model: torch.nn.Module,
    context: torch.nn.Module,
    features: torch.Tensor,
    labels: torch.Tensor,
    settings: ReadoutSettings,
) -> torch.Tensor:
    """CAM or CREAM maps of the given classes at feature resolution.

    Parameters
    ----------
    model : CAMNet
    context : ContextEmbeddings
    features : Tensor (B, d, h, w)
    labels : Tensor (B,) int64, internal class indices
    settings : ReadoutSettings

    Returns
    -------
    Tensor (B, h, w)
        Not min-max normalised (``reactivate``'s convention: Eq. 12 map in [0, 2]); plain CAM
        is returned min-max normalised.
    """
    with torch.no_grad():
        return _class_maps(model, context, features, labels.to(features.device), settings)


def _class_maps(model, context, features, labels, settings):
    cams = model.cams(features, labels)
    if settings.n_iter == 0 or settings.output == "cam":
        return normalize_maps(cams)
    fg, bg = context(labels)
    return reactivate(
        features,
        cams,
        fg.to(features),
        bg.to(features),
        n_iter=settings.n_iter,
        sigma=settings.sigma,
        kernel=settings.kernel,
        fg_threshold=settings.fg_threshold,
        output=settings.output,
    )


def maps_at_original_size(maps: torch.Tensor, sizes: list[tuple[int, int]]) -> list[np.ndarray]:
    """Upsample each map (bicubic, align_corners=False) to its image size, then min-max.

    Parameters
    ----------
    maps : Tensor (B, h, w)
    sizes : list of B (W, H)

    Returns
    -------
    list of B ndarrays (H_i, W_i) float64 in [0, 1]
    """
    out = []
    for m, (w, h) in zip(maps, sizes):
        up = normalize_maps(upsample_maps(m[None].double(), (int(h), int(w))))[0]
        out.append(up.cpu().numpy())
    return out
