"""The CAM network: a feature backbone, global average pooling and a linear head (Eq. 1-2).

Because the head is linear after GAP, the logit of class c equals the spatial mean of its
class activation map plus the bias (Eq. 2), so CAM is exact for this network.
"""

from __future__ import annotations

from numbers import Integral

import torch
import torch.nn.functional as F
from torch import nn

from skcream.cam import class_activation_maps
from skcream.lr_groups import backbone_prefixes, rule_family, split_parameters

__all__ = ["CAMNet", "NewLayersMixin", "ReferenceLRMixin"]


class NewLayersMixin:
    """The learning-rate split of a ``backbone`` + ``head`` network (paper: 10x on new layers).

    For ``nn.Module`` subclasses with a ``backbone`` (whose ``new_parameters()`` is used when
    present, e.g. VGG's conv6) and a freshly initialised ``head``.
    """

    def new_parameters(self) -> list[nn.Parameter]:
        """The head and the backbone's new layers (trained at ``head_lr_mult`` x lr)."""
        extra = self.backbone.new_parameters() if hasattr(self.backbone, "new_parameters") else []
        return list(extra) + list(self.head.parameters())

    def pretrained_parameters(self) -> list[nn.Parameter]:
        """Every other parameter (the timm layers)."""
        new = {id(p) for p in self.new_parameters()}
        return [p for p in self.parameters() if id(p) not in new]


class ReferenceLRMixin:
    """The learning-rate split of a WSOL network by wsolevaluation's rule (paper: 10x on the
    classifier), :func:`skcream.lr_groups.split_parameters`.

    For ``nn.Module`` subclasses with ``reference_prefixes()`` (the reference's name of each
    of their layers) and a ``backbone`` whose ``family`` picks the rule.
    """

    def new_parameters(self) -> list[nn.Parameter]:
        """The 10x group (trained at ``head_lr_mult`` x lr)."""
        return split_parameters(self)[1]

    def pretrained_parameters(self) -> list[nn.Parameter]:
        """The 1x group."""
        return split_parameters(self)[0]


class CAMNet(ReferenceLRMixin, nn.Module):
    """GAP + linear classifier on a feature backbone.

    Parameters
    ----------
    backbone : nn.Module
        Maps (B,3,H,W) to (B,d,h,w) and has ``num_features`` (d), e.g. a
        :class:`skcream.backbones.FeatureBackbone`. Its ``reference_prefixes`` and ``family``
        give the learning-rate split (:mod:`skcream.lr_groups`; a backbone without them: its
        ``new_parameters()`` and the head at 10x, the rest at 1x), its ``head_init`` and
        ``head_dropout`` attributes (default ``"normal"``, 0.0) the head's.
    n_classes : int
        C, at least 2.
    head_init : {"normal", "xavier"}, optional
        Overrides the backbone's ``head_init`` (SPG's classifier is Xavier on every backbone).

    Attributes
    ----------
    backbone : nn.Module
    head : nn.Linear
        weight (C,d), bias (C,); new layer, bias 0, weight ~ N(0, 0.01^2) (wsolevaluation's
        initialisation of new linear layers: VGG16, ResNet50) or Xavier-uniform with
        ``head_init="xavier"`` (InceptionV3, whose benchmark head is a Xavier-initialised
        1x1 conv before GAP: the same linear map, the same fan-in d and fan-out C).
    head_dropout : float
        Dropout on the (B,d,h,w) map before GAP on the logit path, in training only
        (InceptionV3: 0.5, the benchmark's dropout before its 1x1-conv classifier). The
        returned features, which CAM and the context update use, are never dropped.
    """

    def __init__(self, backbone: nn.Module, n_classes: int, *, head_init: str | None = None) -> None:
        super().__init__()
        if isinstance(n_classes, bool) or not isinstance(n_classes, Integral):
            raise TypeError(f"n_classes: expected an int, got {n_classes!r}")
        if n_classes < 2:
            raise ValueError(f"n_classes: expected at least 2 classes, got {n_classes}")
        dim = getattr(backbone, "num_features", None)
        if not isinstance(dim, Integral) or dim <= 0:
            raise TypeError("backbone: expected a module with a positive int num_features attribute")
        where = "head_init" if head_init is not None else "backbone.head_init"
        if head_init is None:
            head_init = getattr(backbone, "head_init", "normal")
        if head_init not in ("normal", "xavier"):
            raise ValueError(f"{where}: expected 'normal' or 'xavier', got {head_init!r}")
        self.backbone = backbone
        self.head_dropout = float(getattr(backbone, "head_dropout", 0.0))
        self.head = nn.Linear(int(dim), int(n_classes))
        if head_init == "xavier":
            nn.init.xavier_uniform_(self.head.weight)
        else:
            nn.init.normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)

    def reference_prefixes(self) -> list[tuple[str, str]]:
        """(skcream prefix, wsolevaluation's name) of every layer (:mod:`skcream.lr_groups`)."""
        return backbone_prefixes(self.backbone) + [("head.", self._head_reference() + ".")]

    def _head_reference(self) -> str:
        # wsolevaluation's CAM classifier: ``fc`` (VggCam, ResNetCam), the 1x1 conv ``SPG_A4``
        # (InceptionCam, InceptionAdl)
        return "SPG_A4" if self.family == "inception" else "fc"

    @property
    def family(self) -> str:
        """The backbone's family for the learning-rate rule (``"generic"`` when unknown)."""
        return rule_family(getattr(self.backbone, "family", None))

    def head_input(self, features: torch.Tensor) -> torch.Tensor:
        """The (B,d,h,w) map the classifier reads: ``features`` dropped out with
        ``head_dropout`` in training (InceptionV3's dropout before its 1x1-conv classifier)."""
        if self.head_dropout > 0 and self.training:
            return F.dropout(features, self.head_dropout, training=True)
        return features

    @property
    def n_classes(self) -> int:
        """C."""
        return self.head.out_features

    @property
    def readout_dim(self) -> int:
        """d of :meth:`readout`'s features (the backbone's channels)."""
        return int(self.head.in_features)

    def readout(
        self, features: torch.Tensor, labels: torch.Tensor, *, clamp_negative_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The features CREAM works in and the map it re-activates (see :mod:`skcream.methods`).

        Parameters
        ----------
        features : Tensor (B,d,h,w)
            ``forward``'s second output.
        labels : Tensor (B,) of int
        clamp_negative_weights : bool, default=False
            RCAM's negative weight clamping: ``max(w, 0)`` in Eq. 1.

        Returns
        -------
        features : Tensor (B,d,h,w)
            Unchanged.
        cams : Tensor (B,h,w)
            Raw CAM of ``labels`` (Eq. 1).
        """
        if not clamp_negative_weights:
            return features, self.cams(features, labels)
        weight = self.head.weight.clamp_min(0)
        if features.dtype != weight.dtype:
            dtype = torch.promote_types(features.dtype, weight.dtype)
            features, weight = features.to(dtype), weight.to(dtype)
        return features, class_activation_maps(features, weight, labels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the feature maps they come from.

        Parameters
        ----------
        x : Tensor (B,3,H,W)

        Returns
        -------
        logits : Tensor (B,C)
            ``head(mean over h,w of features)`` (features dropped out first in training
            when ``head_dropout > 0``).
        features : Tensor (B,d,h,w)
            The backbone output, on which CAM and the context update are computed.
        """
        features = self.backbone(x)
        # the benchmark's dropout before its 1x1-conv head: (1x1 conv then GAP) of the
        # dropped map equals the linear head of its GAP
        logits = self.head(self.head_input(features).mean(dim=(2, 3)))
        return logits, features

    def cams(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Raw class activation maps of the head (bias excluded, Eq. 1).

        Parameters
        ----------
        features : Tensor (B,d,h,w)
        labels : Tensor (B,) of int, optional

        Returns
        -------
        Tensor (B,h,w) for the given labels, or (B,C,h,w) when labels is None.
        """
        weight = self.head.weight
        if features.dtype != weight.dtype:  # e.g. bf16 features under autocast
            dtype = torch.promote_types(features.dtype, weight.dtype)
            features, weight = features.to(dtype), weight.to(dtype)
        return class_activation_maps(features, weight, labels)
