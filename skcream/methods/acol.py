"""ACoL, Adversarial Complementary Learning (Zhang et al., CVPR 2018).

Two classifier branches on the backbone's feature map F, each
``conv3x3(d->1024) + ReLU + conv3x3(1024->1024) + ReLU + conv1x1(1024->C)`` followed by GAP
(wsolevaluation's ``classifier_A`` / ``classifier_B``). Branch A sees F; its class map of the
true class, min-max normalised, marks the high-activation region ``>= acol_threshold``
(0.7), which is erased (set to 0) in F before branch B. Loss: ``CE(A) + CE(B)``. Class
scores are branch A's. ACoL's map (the reference's ``return_cam``) is the element-wise
maximum of the two branches' min-max normalised maps of the class, B computed on F erased by
that class's map from A.

The network is wsolevaluation's ``VggAcol`` / ``ResNetAcol`` / ``InceptionAcol`` (commit
96f4b88): the branches sit on the ACoL trunk (``trunk="acol"``, see
:data:`skcream.backbones.TRUNKS`): VGG16 with 3x3 pools, pool5 at stride 1 and a 3x3 average
smoothing, no conv6 (512 channels); ResNet50's layer4 (2048); InceptionV3's Mixed_6e (768, no
new conv, no dropout). Every conv of both branches is Xavier-uniform initialised (VGG16,
InceptionV3) or He (fan_out; ResNet50), 1x1 classifiers included, biases 0. Learning rates
follow the reference's rule by name (:mod:`skcream.lr_groups`): the branches at 10x on VGG16
and InceptionV3, at 1x on ResNet50 (where layer4 trains at 10x).

``acol_trunk="cam"`` (skcream's earlier network, kept as an option) puts the branches on the
CAM network's trunk instead: VGG16 with conv6 (1024 channels), InceptionV3 with its two new
convs and their dropout (1024); ResNet50 is the same either way.

On other timm backbones (e.g. efficientnet_lite0 of the DEMO preset) the branches sit on the
backbone's feature map and train at 10x (the paper's rule for new layers,
:mod:`skcream.lr_groups`). Their initialisation is skcream's choice, as the reference's
differs by backbone: the 3x3 convs He (fan_out, as VggCam's new conv6), the 1x1 classifiers
N(0, 0.01^2) with bias 0 (the reference's init of a new linear classifier, CAMNet's head).
Measured on the DEMO preset (seed 0, the Table-1 benchmark): this init gives top-1 96.9%,
MaxBoxAccV2 31.0; Xavier on every conv (VggAcol's) 45.3% and 23.2 at the DEMO's learning
rate (5e-2 on new layers). He fan_out on the 1x1 classifiers too (ResNetAcol's) would give
each weight std sqrt(2 / C), logits in the tens at the first step for a few classes.

Which map CREAM uses and why
----------------------------
The EM re-activates **ACoL's fused map** (max of the normalised A and B maps), ACoL's own
inference map, and clusters pixels in **branch A's hidden feature space** (the 1024-channel
output of A's two 3x3 convs, d' = 1024): A's class map is exactly linear in those features
(its 1x1 conv), as Eq. 1 requires of the CAM whose foreground defines the context embeddings,
and A's features see the whole, un-erased image, so they describe foreground and background
alike. B's features are computed from an erased map and depend on the class being
erased, so they cannot serve as one feature space per image. The context embeddings are
learned during training from the same pair (A's hidden features, the fused map of the true
class).

``acol_cream_features="backbone"`` uses the backbone's F instead (the input of both branches,
the space CREAM uses for CAM). Measured on the DEMO preset with ``acol_width=256`` (synthetic
data before its balanced classes, one seed): ACoL alone 28.6 MaxBoxAccV2 / 22.6 PxAP; + CREAM
in branch A's space 27.6 / 22.1; in the backbone's space 34.9 / 12.2. Neither helps
clearly, so the default stays the space in which ACoL's map is linear; the choice is a
training-time parameter (the embeddings are learned in that space).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from skcream.cam import class_activation_maps, normalize_maps
from skcream.lr_groups import backbone_prefixes
from skcream.methods._base import ParamSpec, WSOLMethod
from skcream.model import ReferenceLRMixin

__all__ = ["ACoL", "ACoLNet", "acol_erase"]


def acol_erase(features: torch.Tensor, maps: torch.Tensor, threshold: float) -> torch.Tensor:
    """Erase the high-activation region of each sample's class map from its features.

    Parameters
    ----------
    features : Tensor (B, d, h, w)
    maps : Tensor (B, h, w)
        Class map of each sample's class (any scale; min-max normalised here).
    threshold : float in [0, 1]
        Cells whose normalised map is ``>= threshold`` are set to 0 in every channel.

    Returns
    -------
    Tensor (B, d, h, w)
    """
    keep = normalize_maps(maps.detach()) < threshold
    return features * keep[:, None].to(features.dtype)


def _branch(in_ch: int, width: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, width, 3, padding=1), nn.ReLU(inplace=False),
        nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=False),
    )


#: initialisation of the branches per backbone family: wsolevaluation's ResNetAcol calls
#: initialize_weights(init_mode='he'), VggAcol and InceptionAcol 'xavier', on every conv;
#: other backbones "skcream": He 3x3 convs, N(0, 0.01^2) 1x1 classifiers (module docstring)
_BRANCH_INIT = {"resnet": "he", "vgg": "xavier", "inception": "xavier"}


def _classifier(width: int, n_classes: int, scheme: str) -> nn.Conv2d:
    from skcream.backbones import _he_init, _xavier_init

    conv = nn.Conv2d(width, n_classes, 1)
    if scheme == "he":
        _he_init(conv)
    elif scheme == "xavier":
        _xavier_init(conv)
    else:  # the 1x1 conv is a linear head on each cell: CAMNet's init
        nn.init.normal_(conv.weight, std=0.01)
        nn.init.zeros_(conv.bias)
    return conv


class ACoLNet(ReferenceLRMixin, nn.Module):
    """Backbone + ACoL's two classifier branches.

    Parameters
    ----------
    backbone : FeatureBackbone
    n_classes : int
    threshold : float
        ``acol_threshold``.
    width : int, default=1024
        Channels of the branches' hidden convs (the reference's 1024).
    cream_features : {"branch", "backbone"}, default="branch"
        CREAM's feature space (see the module docstring).

    Attributes
    ----------
    hidden_a, hidden_b : nn.Sequential
        The two 3x3 convs (+ ReLU) of each branch.
    classifier_a, classifier_b : nn.Conv2d
        1x1 convs to C class maps.
    readout_dim : int
        ``width`` (CREAM's feature space: branch A's hidden features).
    """

    def __init__(
        self, backbone: nn.Module, n_classes: int, threshold: float, width: int = 1024,
        cream_features: str = "branch",
    ) -> None:
        super().__init__()
        from skcream.backbones import _he_init, _xavier_init

        dim = int(backbone.num_features)
        self.backbone = backbone
        self.threshold = float(threshold)
        scheme = _BRANCH_INIT.get(getattr(backbone, "family", None), "skcream")
        init = _xavier_init if scheme == "xavier" else _he_init
        self.hidden_a, self.hidden_b = init(_branch(dim, width)), init(_branch(dim, width))
        self.classifier_a = _classifier(width, n_classes, scheme)
        self.classifier_b = _classifier(width, n_classes, scheme)
        self.cream_features = cream_features
        self.readout_dim = int(width) if cream_features == "branch" else dim

    @property
    def n_classes(self) -> int:
        """C."""
        return self.classifier_a.out_channels

    def reference_prefixes(self) -> list[tuple[str, str]]:
        """(skcream prefix, wsolevaluation's name) of every layer (:mod:`skcream.lr_groups`):
        each branch is the reference's ``classifier_A`` / ``classifier_B`` Sequential."""
        out = backbone_prefixes(self.backbone)
        for ours, ref in (("a", "A"), ("b", "B")):
            out += [(f"hidden_{ours}.0.", f"classifier_{ref}.0."),
                    (f"hidden_{ours}.2.", f"classifier_{ref}.2."),
                    (f"classifier_{ours}.", f"classifier_{ref}.4.")]
        return out

    def forward(
        self, x: torch.Tensor, labels: torch.Tensor | None = None, aux: bool = False
    ) -> tuple[torch.Tensor, ...]:
        """``(logits_a, F)``; with ``aux``: ``(logits_a, F, logits_b)``.

        Parameters
        ----------
        x : Tensor (B, 3, H, W)
        labels : Tensor (B,), optional
            Classes whose A-map region is erased before B (default: A's prediction).
        aux : bool
            Also run branch B (training).
        """
        features = self.backbone(x)
        maps_a = self.classifier_a(self.hidden_a(features))  # (B, C, h, w)
        logits = maps_a.mean(dim=(2, 3))
        if not aux:
            return logits, features
        if labels is None:
            labels = logits.argmax(dim=1)
        own = maps_a[torch.arange(len(labels), device=maps_a.device), labels]
        erased = acol_erase(features, own, self.threshold)
        logits_b = self.classifier_b(self.hidden_b(erased)).mean(dim=(2, 3))
        return logits, features, logits_b

    def readout(
        self, features: torch.Tensor, labels: torch.Tensor, *, clamp_negative_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """CREAM's features and ACoL's fused map (B, h, w) in [0, 1].

        The features are branch A's hidden features (B, width, h, w) with
        ``cream_features="branch"``, the backbone's ``features`` with ``"backbone"``.
        ``clamp_negative_weights`` (RCAM) clamps both 1x1 classifiers' weights at 0.
        """
        wa, wb = self.classifier_a.weight[:, :, 0, 0], self.classifier_b.weight[:, :, 0, 0]
        if clamp_negative_weights:
            wa, wb = wa.clamp_min(0), wb.clamp_min(0)
        hidden = self.hidden_a(features)
        map_a = class_activation_maps(hidden, wa, labels)  # bias: irrelevant after min-max
        erased = acol_erase(features, map_a, self.threshold)
        map_b = class_activation_maps(self.hidden_b(erased), wb, labels)
        fused = torch.maximum(normalize_maps(map_a), normalize_maps(map_b))
        return (hidden if self.cream_features == "branch" else features), fused


class ACoL(WSOLMethod):
    """ACoL: two adversarial classifier branches with feature erasing."""

    name = "acol"
    PARAMS = {
        "acol_threshold": ParamSpec(0.7, float, 0.0, 1.0),
        # not a wsolevaluation option (fixed 1024 there): lets a CPU budget shrink the branches
        "acol_width": ParamSpec(1024, int, 1),
        # skcream's: the feature space of CREAM's context and EM (see the module docstring)
        "acol_cream_features": ParamSpec("branch", str, choices=("branch", "backbone")),
        # skcream's: the reference's ACoL trunk, or the CAM network's (see the module docstring)
        "acol_trunk": ParamSpec("reference", str, choices=("reference", "cam")),
    }

    @property
    def trunk(self) -> str:
        return "acol" if self.params["acol_trunk"] == "reference" else "cam"

    def build_network(self, backbone: nn.Module, n_classes: int) -> nn.Module:
        self.check_trunk(backbone)
        p = self.params
        return ACoLNet(backbone, n_classes, p["acol_threshold"], p["acol_width"], p["acol_cream_features"])

    def forward(self, model: nn.Module, batch: Mapping[str, torch.Tensor]) -> Any:
        return model(batch["image"], batch["label"], aux=True)

    def loss(self, outputs: Any, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        logits, _, logits_b = outputs
        y = batch["label"]
        return F.cross_entropy(logits.float(), y) + F.cross_entropy(logits_b.float(), y)
