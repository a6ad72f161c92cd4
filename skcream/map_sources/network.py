"""Map sources on a network: features and a class map per image, from any classifier.

:class:`ClassifierNet` is what a map source reads: a classifier split at its last feature
layer, ``logits = head(features(x))``. :func:`class_maps` runs it once per batch and
returns :class:`ClassMaps`, the one interface the EM, the metrics, the report and the CLI
consume: the last feature layer ``F`` (B, d, h, w) — what CAM reads and the EM clusters —
and the class map of the chosen source (B, h, w) on the same grid (on the chosen layer's
own grid when a gradient CAM reads an earlier layer).

How the gradients are taken (a deviation from pytorch-grad-cam, same numbers): the
forward pass runs without autograd up to the chosen layer; its output becomes a fresh
leaf tensor from which the rest of the network is recorded, and only the gradient with
respect to that leaf is computed (``torch.autograd.grad``), never the parameters'
gradients through the whole network. The model's parameters, their ``requires_grad``
and ``.grad``, and its train/eval mode are left as they were.

Token models plug in through ``ClassifierNet(features, head, to_grid=..., default_layer=...)``:
``features`` returns the model's last feature layer in its own layout (tokens (B, N, d) of
a ViT, (B, h, w, d) of a Swin), ``head`` takes it, and ``to_grid`` maps it, a hooked
layer's output and its gradient to (B, d, h, w); ``ClassifierNet.from_timm`` sets both from
the model's metadata (:mod:`skcream.token_models`: prefix tokens dropped, the last block's
``norm1`` read by default in a ViT, as pytorch-grad-cam's examples do).
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from skcream._checks import as_int
from skcream.cam import _check_float_tensor, _check_labels, class_activation_maps
from skcream.map_sources import FEATURE_SOURCES, GRADIENT_CAMS, check_map_source
from skcream.map_sources.formulas import eigen_cam, gradient_cam, score_cam

__all__ = ["ClassMaps", "ClassifierNet", "class_maps", "maps_from_features"]

# max |head(F) - (GAP(F) W^T + b)| / (1 + max |logit|) above which the head is not linear
_LINEAR_HEAD_TOL = 1e-4


@dataclass(frozen=True)
class ClassMaps:
    """Features and a class map per image: what every consumer of a map source reads.

    Attributes
    ----------
    features : Tensor (B, d, h, w)
        The last feature layer (CAM's features; the EM clusters them).
    maps : Tensor (B, h', w')
        The source's class map of ``labels``, raw (not min-max normalised;
        :func:`skcream.cam.normalize_maps` gives the [0, 1] map), on the grid of the layer
        it was read from: the features' grid (h, w) for the last feature layer, finer for
        an earlier layer (the EM resizes it to the features' grid).
    labels : Tensor (B,) int64
        The class each map is of.
    logits : Tensor (B, C)
        The network's class scores.
    """

    features: torch.Tensor
    maps: torch.Tensor
    labels: torch.Tensor
    logits: torch.Tensor


class _TimmFeatures(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)


class _TimmHead(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(features)


def _identity_grid(t: torch.Tensor) -> torch.Tensor:
    return t


class ClassifierNet(nn.Module):
    """A classifier as map sources read it: images -> last feature map -> logits.

    Parameters
    ----------
    features : nn.Module
        Images (B, 3, H, W) -> the last feature layer (B, d, h, w).
    head : nn.Module
        Features (B, d, h, w) -> logits (B, C).
    linear : nn.Linear or None, default=None
        The linear layer of a head that is global average pooling + linear (needed by
        ``cam="cam"``; checked on every batch, a head that is not raises).
    layers : nn.Module or None, default=None
        The module whose ``named_modules()`` names the layers ``class_maps(layer=...)``
        accepts (default: ``features``).
    to_grid : callable or None, default=None
        Maps the features, a hooked layer's output and its gradient to (B, d, h, w) (token
        models); the identity by default.
    default_layer : str or None, default=None
        The layer (a name of ``layers``) the gradient CAMs read when given ``layer=None``;
        None is the last feature layer.
    """

    def __init__(self, features: nn.Module, head: nn.Module, *, linear: nn.Linear | None = None,
                 layers: nn.Module | None = None,
                 to_grid: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 default_layer: str | None = None) -> None:
        super().__init__()
        self.features = features
        self.head = head
        # not registered as submodules: they live inside features / head already
        self.__dict__["linear"] = linear
        self.__dict__["layers"] = layers if layers is not None else features
        self.__dict__["to_grid"] = to_grid if to_grid is not None else _identity_grid
        self.default_layer = default_layer

    @classmethod
    def from_timm(cls, model: nn.Module, *, features: nn.Module | None = None,
                  **kwargs: Any) -> ClassifierNet:
        """A timm classifier split at ``forward_features`` / ``forward_head``.

        Parameters
        ----------
        model : timm model
            Layer names are those of ``model.named_modules()`` (e.g. ``"blocks.5"``,
            ``"layer3"``); the linear head is ``model.get_classifier()`` when it is an
            ``nn.Linear``.
        features : nn.Module or None, default=None
            Another feature extractor in front of ``model``'s head, e.g. the WSOL-modified
            backbone with the same weights (``skcream.backbones.build_backbone``); then
            pass ``layers=`` to name its layers.
        **kwargs
            ``linear``, ``layers``, ``to_grid``, ``default_layer`` as in
            :class:`ClassifierNet`. For a token model (:func:`skcream.token_models.token_layout`)
            ``to_grid`` and ``default_layer`` default to its
            :class:`~skcream.token_models.TokenReshape` and
            :func:`~skcream.token_models.default_cam_layer`.
        """
        from skcream.token_models import TokenReshape, default_cam_layer, token_layout

        if token_layout(model) is not None:
            kwargs.setdefault("to_grid", TokenReshape(model))
            kwargs.setdefault("default_layer", default_cam_layer(model))
        head = model.get_classifier() if hasattr(model, "get_classifier") else None
        kwargs.setdefault("linear", head if isinstance(head, nn.Linear) else None)
        if features is None:
            kwargs.setdefault("layers", model)
            features = _TimmFeatures(model)
        return cls(features, _TimmHead(model), **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, C) of images (B, 3, H, W)."""
        return self.head(self.features(x))

    def layer(self, name: str | None) -> nn.Module:
        """The module named ``name`` in ``layers`` (None: ``default_layer``, else the last
        feature layer)."""
        if name is None and self.default_layer is not None:
            name = self.default_layer
        if name is None:
            return self.features
        if not isinstance(name, str):
            raise TypeError(f"layer must be a module name (str) or None, got {name!r}")
        modules = dict(self.layers.named_modules())
        if name not in modules or name == "":
            close = difflib.get_close_matches(name, [n for n in modules if n], n=6, cutoff=0.5)
            hint = f"; close matches: {', '.join(close)}" if close else ""
            raise ValueError(f"layer {name!r} is not a module of the network{hint}")
        return modules[name]


# --------------------------------------------------------------------------- the hook
class _Capture:
    """Forward hook keeping one layer's output; with ``grad``, the graph starts there."""

    def __init__(self, grad: bool) -> None:
        self.grad = grad
        self.thread = threading.get_ident()
        self.outputs: list[torch.Tensor] = []

    def __call__(self, module: nn.Module, args: Any, output: Any) -> Any:
        if threading.get_ident() != self.thread:  # another thread using the same network
            return None
        if not isinstance(output, torch.Tensor):
            raise ValueError(f"layer {type(module).__name__} returns {type(output).__name__}, "
                             "not a tensor: choose a layer whose output is a feature map")
        if not self.grad:
            self.outputs.append(output.detach())
            return None
        leaf = output.detach().requires_grad_(True)
        self.outputs.append(leaf)
        torch.set_grad_enabled(True)  # record from here on (restored by class_maps)
        # a copy, so that in-place operations after the layer leave the leaf alone
        return leaf.clone()


def _linear_head(net: ClassifierNet, features: torch.Tensor,
                 logits: torch.Tensor) -> torch.Tensor:
    """The (C, d) weight of a GAP + linear head, checked against the head's logits."""
    lin = net.linear
    if lin is None:
        raise ValueError("cam='cam' needs a classifier whose head is global average pooling "
                         "+ a linear layer; this network has none: choose a gradient CAM")
    weight = lin.weight.detach()
    pooled = features.mean(dim=(2, 3))
    expect = F.linear(pooled.to(weight.dtype), weight,
                      None if lin.bias is None else lin.bias.detach())
    err = float((expect - logits).abs().max()) / (1.0 + float(logits.abs().max()))
    if not err <= _LINEAR_HEAD_TOL:
        raise ValueError("cam='cam' needs a head that is global average pooling + its linear "
                         f"layer, but this head differs from it (relative error {err:.2g}): "
                         "choose a gradient CAM")
    return weight


def class_maps(net: ClassifierNet, x: torch.Tensor, labels: torch.Tensor | None = None, *,
               cam: str = "cam", layer: str | None = None,
               score_batch_size: int = 16) -> ClassMaps:
    """Features and the class map of one source for a batch of images.

    Parameters
    ----------
    net : ClassifierNet
        E.g. ``ClassifierNet.from_timm(timm.create_model(...))``.
    x : Tensor (B, 3, H, W)
        Normalised images (on the network's device).
    labels : Tensor (B,) of int or None, default=None
        The class of each map; None takes each image's top-1 class (as pytorch-grad-cam).
    cam : str, default="cam"
        One of :data:`MAP_SOURCES`.
    layer : str or None, default=None
        The layer the gradient CAMs read (a name of ``net.layers``); None is
        ``net.default_layer`` (a ViT's last ``norm1``), else the last feature layer.
        ``cam="cam"`` reads only the last feature layer.
    score_batch_size : int, default=16
        Masked images per forward pass of Score-CAM.

    Returns
    -------
    ClassMaps
        Maps on the grid of the chosen layer (the features' grid for the default layer).
    """
    cam = check_map_source(cam)
    if cam == "cam" and layer is not None:
        raise ValueError("cam='cam' reads the last feature layer (its linear head's input); "
                         "layer= applies to the gradient CAMs")
    _check_float_tensor_images(x)
    score_batch_size = as_int(score_batch_size, "score_batch_size", low=1)
    module = net.layer(layer)
    capture = _Capture(grad=cam in GRADIENT_CAMS)
    handle = module.register_forward_hook(capture)
    modes = [(m, m.training) for m in net.modules()]  # restored module by module
    prev = torch.is_grad_enabled()
    net.eval()
    try:
        torch.set_grad_enabled(False)
        features = net.features(x)
        handle.remove()  # only the features' pass is captured (not the head, not Score-CAM)
        if len(capture.outputs) != 1:
            raise ValueError(f"layer {layer!r} ran {len(capture.outputs)} times in one forward "
                             "pass of the features; choose a layer that runs once on the way "
                             "to the last feature layer")
        logits = net.head(features)
        features = net.to_grid(features)  # a token model's tokens as (B, d, h, w)
        if features.ndim != 4:
            raise ValueError(f"the network's features have shape {tuple(features.shape)}, not "
                             "(B, d, h, w): give ClassifierNet a to_grid for token models")
        if labels is None:
            labels = logits.detach().argmax(dim=1)
        labels = _check_labels(labels, x.shape[0], logits.shape[1]).to(logits.device)
        activation = capture.outputs[0]
        if net.to_grid(activation).ndim != 4:
            raise ValueError(f"layer {layer!r} outputs shape {tuple(activation.shape)}, not a "
                             "feature map (B, d, h, w); choose a convolutional layer (or give "
                             "ClassifierNet a to_grid for token layers)")
        if cam in GRADIENT_CAMS:
            score = logits.gather(1, labels[:, None]).sum()
            (grad,) = torch.autograd.grad(score, activation)
            torch.set_grad_enabled(False)
            maps = gradient_cam(net.to_grid(activation.detach()), net.to_grid(grad), cam)
        elif cam == "cam":
            maps = class_activation_maps(features, _linear_head(net, features, logits), labels)
        elif cam == "eigencam":
            maps = eigen_cam(net.to_grid(activation))
        else:  # scorecam

            def target_scores(masked: torch.Tensor, i: int) -> torch.Tensor:
                return net(masked)[:, labels[i]]

            maps = score_cam(net.to_grid(activation), x, target_scores,
                             batch_size=score_batch_size)
    finally:
        torch.set_grad_enabled(prev)
        handle.remove()
        for m, mode in modes:
            m.training = mode
    return ClassMaps(features=features.detach(), maps=maps.detach(), labels=labels,
                     logits=logits.detach())


def _check_float_tensor_images(x: object) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a float image batch (B, 3, H, W), got {shape}")


def maps_from_features(features: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                       cam: str = "cam") -> torch.Tensor:
    """Class maps of a linear head on pooled features, from the features alone.

    For ``logits = GAP(F) W^T + b`` the gradient of class ``c`` with respect to ``F`` is
    ``W_c / (h w)`` at every pixel, so the gradient CAMs of the last feature layer need no
    network (equal to :func:`class_maps` on such a network, tested). Score-CAM masks the
    input image and needs the network.

    Parameters
    ----------
    features : Tensor (B, d, h, w)
    weight : Tensor (C, d)
    labels : Tensor (B,) of int
    cam : one of :data:`FEATURE_SOURCES`

    Returns
    -------
    Tensor (B, h, w)
        Raw maps (CAM as Eq. 1, the others after their ReLU).
    """
    cam = check_map_source(cam, FEATURE_SOURCES,
                           "Score-CAM masks the input image: use class_maps on the network")
    _check_float_tensor("features", features, 4, "(B, d, h, w)")
    _check_float_tensor("weight", weight, 2, "(C, d)")
    if weight.shape[1] != features.shape[1]:
        raise ValueError(f"weight must have shape (C, {features.shape[1]}) to match features "
                         f"(B, d, h, w); got shape {tuple(weight.shape)}")
    if cam == "cam":
        return class_activation_maps(features, weight, labels)
    if cam == "eigencam":
        return eigen_cam(features)
    b, d, h, w = features.shape
    labels = _check_labels(labels, b, weight.shape[0]).to(weight.device)
    grads = (weight[labels].to(features.dtype) / (h * w))[:, :, None, None].expand(b, d, h, w)
    return gradient_cam(features, grads, cam)
