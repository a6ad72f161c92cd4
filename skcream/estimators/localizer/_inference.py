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
from skcream.estimators._boxes_target import to_protocol_frame
from skcream.methods.normalization import normalize
from skcream.reactivation import reactivate

__all__ = [
    "ForwardBatch",
    "ReadoutSettings",
    "class_maps",
    "iter_forward",
    "maps_at_original_size",
    "protocol_gt_boxes",
]


@dataclass(frozen=True)
class ReadoutSettings:
    """How a class map is read out of features (the inference-only parameters).

    ``n_iter=0`` or ``output="cam"`` gives the method's own map (normalised). ``normalization``
    ("minmax", "ivr", "pas"), ``percentile`` and ``clamp_negative_weights`` are the
    inference-only variants of :mod:`skcream.methods.normalization`.
    """

    n_iter: int = 2
    sigma: float = 8.0
    kernel: str = "dot"
    fg_threshold: float = 0.2
    output: str = "final"
    normalization: str = "minmax"
    percentile: float | None = None
    clamp_negative_weights: bool = False


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
                out = model(batch["image"].to(device))
            logits, features = out[0], out[1]
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
    """The method's map (``n_iter=0``) or its CREAM re-activation, at feature resolution.

    The method's network gives its map and CREAM's feature space through
    ``model.readout(features, labels)`` (:mod:`skcream.methods`); the map is normalised by
    ``settings.normalization`` (min-max by default, then the raw map goes to the EM as
    before), and the EM re-activates it with the learned context.

    Parameters
    ----------
    model : CAMNet or another method's network
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
    feats, cams = model.readout(
        features, labels, clamp_negative_weights=bool(settings.clamp_negative_weights)
    )
    if settings.normalization != "minmax":
        # already in [0, 1] with min 0 and max 1: Eq. 12's min-max leaves it unchanged
        cams = normalize(cams, settings.normalization, settings.percentile)
    if settings.n_iter == 0 or settings.output == "cam":
        return normalize_maps(cams)
    fg, bg = context(labels)
    return reactivate(
        feats,
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


def protocol_gt_boxes(boxes: np.ndarray | None, size: tuple[int, int], index: int) -> np.ndarray:
    """Protocol scaling of GT boxes to 224: ``int(x * 224 / W)``, ``int(y * 224 / H)``."""
    if boxes is None or len(boxes) == 0:
        raise ValueError(f"image at index {index} has no ground-truth box; evaluation needs one")
    return to_protocol_frame(np.asarray(boxes, dtype=np.float64).reshape(-1, 4), size,
                             truncate=True)
