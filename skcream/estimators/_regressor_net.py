"""The networks of CREAM_Reg's regressor, their losses and their training accuracy.

Both end in the head ``Linear(d, hidden) -> ReLU -> Linear(hidden, 4) -> Sigmoid`` (paper
section 4.1):

* :class:`PSOLBoxNet` (``architecture="psol"``, the released CREAM_Reg, Jazzcharles/CREAM
  ``models/models.py``, after PSOL): an ImageNet classifier whose last layer is replaced by
  the head. VGG16 keeps its pretrained fc6 / fc7 (136,360,260 parameters);
  InceptionV3 has the auxiliary classifier on, its ``fc`` replaced by a head too
  (25,790,184). Outputs ``(x0, y0, w, h)`` in the unit frame of the input crop.
* :class:`BoxRegressionNet` (``architecture="gap"``): a WSOL feature backbone
  (:func:`skcream.backbones.build_backbone`), global average pooling and the head; outputs
  ``(x0, y0, x1, y1)`` in the unit frame of the input image.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from skcream.model import NewLayersMixin

__all__ = [
    "AUX_LOSS_WEIGHT",
    "BoxRegressionNet",
    "PSOLBoxNet",
    "box_head",
    "box_iou_unit",
    "build_psol_network",
    "iou50_correct",
    "mse_box_loss",
    "psol_box_loss",
    "psol_iou50_correct",
    "xywh_to_xyxy",
]

#: PSOL's weight of the auxiliary head's MSE for InceptionV3 (``PSOL_training.py``:
#: ``1 * MSE(main) + 0.3 * MSE(aux)``; CREAM's training code is not released)
AUX_LOSS_WEIGHT = 0.3
#: the smallest Mixed_6e map InceptionV3's auxiliary classifier runs on (5x5 average pool at
#: stride 3, then a 5x5 convolution without padding): 17x17, reached from 299 px inputs.
#: At 224 px (12x12) it cannot run: torchvision's inception_v3 in training mode raises there.
AUX_MIN_MAP = 17


def box_head(in_features: int, hidden: int = 512) -> nn.Sequential:
    """``Linear(in_features, hidden) -> ReLU -> Linear(hidden, 4) -> Sigmoid``.

    PyTorch's default ``nn.Linear`` initialisation, as the reference's new layers.
    """
    return nn.Sequential(nn.Linear(int(in_features), int(hidden)), nn.ReLU(inplace=True),
                         nn.Linear(int(hidden), 4), nn.Sigmoid())


class PSOLBoxNet(nn.Module):
    """An ImageNet classifier whose last layer is the box head (PSOL, the released CREAM_Reg).

    Built by :func:`build_psol_network`.

    Parameters
    ----------
    body : nn.Module
        A timm classifier with its classifier reset (``reset_classifier(0)``): (B, 3, H, W)
        -> (B, d), everything before the last layer (VGG: the conv layers, fc6, fc7 and
        their dropout; InceptionV3: up to the pooled 2048 features and the dropout).
    num_features : int
        d.
    hidden : int, default=512
    aux : bool, default=False
        InceptionV3's auxiliary classifier with its ``fc`` replaced by a head too
        (``body.AuxLogits``, 768 features).
    architecture : str
        The timm model built (rebuild a trained network from it).
    data_config : dict
        ``mean`` / ``std`` (timm's config of the weights; for InceptionV3 0.5 / 0.5, which is
        what torchvision's ``transform_input=True`` makes of ImageNet-normalised inputs).

    Attributes
    ----------
    body, head, aux_head (None without ``aux``), num_features, architecture, data_config
    """

    def __init__(self, body: nn.Module, *, num_features: int, hidden: int = 512,
                 aux: bool = False, architecture: str = "", data_config: Any = None) -> None:
        super().__init__()
        self.body = body
        self.head = box_head(num_features, hidden)
        self.aux_head = box_head(768, hidden) if aux else None
        self.num_features = int(num_features)
        self.architecture = architecture
        self.data_config = dict(data_config or {})

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Boxes in the unit frame of the input.

        Parameters
        ----------
        x : Tensor (B, 3, H, W)

        Returns
        -------
        Tensor (B, 4)
            ``(x0/W, y0/H, w/W, h/H)``, each in (0, 1) (``x0 + w`` may exceed 1). In
            training with the auxiliary head and a map of at least :data:`AUX_MIN_MAP`, the
            pair ``(main, aux)`` (both (B, 4)).
        """
        if self.aux_head is None:
            return self.head(self.body(x))
        body = self.body
        feats = body.forward_preaux(x)  # (B, 768, h, w) of Mixed_6e
        aux = None
        if self.training and min(feats.shape[-2:]) >= AUX_MIN_MAP:
            aux = self.aux_head(body.AuxLogits(feats))
        out = self.head(body.forward_head(body.forward_postaux(feats)))
        return out if aux is None else (out, aux)

    def aux_trains_at(self, image_size: int) -> bool:
        """Whether the auxiliary head learns from ``image_size`` inputs; when it cannot (its
        map would be under :data:`AUX_MIN_MAP`), freeze it and its convolutions.

        They would get no gradient anyway; frozen, they stay out of the optimizer and of
        DistributedDataParallel, which fails on trainable parameters without a gradient.
        """
        if self.aux_head is None:
            return False
        was_training = self.body.training
        try:
            with torch.no_grad():
                probe = torch.zeros(1, 3, int(image_size), int(image_size),
                                    device=self.head[0].weight.device)
                side = min(self.body.eval().forward_preaux(probe).shape[-2:])
        finally:
            self.body.train(was_training)
        runs = side >= AUX_MIN_MAP
        for p in list(self.body.AuxLogits.parameters()) + list(self.aux_head.parameters()):
            p.requires_grad_(runs)
        return runs

    def new_parameters(self) -> list[nn.Parameter]:
        """The box heads (trained at ``head_lr_mult`` x lr)."""
        heads = [self.head] + ([self.aux_head] if self.aux_head is not None else [])
        return [p for h in heads for p in h.parameters()]

    def pretrained_parameters(self) -> list[nn.Parameter]:
        """The classifier's layers (VGG16: the conv layers, fc6, fc7)."""
        return list(self.body.parameters())


def _family_module(name: str) -> str:
    import timm.models

    return timm.models.model_entrypoint(name).__module__


def build_psol_network(backbone: str, pretrained: bool | str | os.PathLike = False,
                       hidden: int = 512) -> PSOLBoxNet:
    """The released CREAM_Reg network on a timm classifier, untrained (pretrained layers only).

    The timm classifier of ``backbone`` with its last layer replaced by :func:`box_head`:
    for ``vgg16`` and ``inception_v3`` the reference's models (torchvision's, whose weights
    timm's ``*.tv_in1k`` are; the same parameters, and the same outputs at 224 px given the
    same weights); for any other timm model the same rule (the reference builds ResNet50 and
    DenseNet161 that way: their counts agree too).

    * VGG (timm ``vgg*``): dropout 0.5 after fc6 and fc7, as torchvision's. timm writes fc6 /
      fc7 as 7x7 / 1x1 convolutions followed by average pooling: at 224 px (a 7x7 map) this
      is torchvision's flatten + linear; the reference's VGG16 only accepts 224 px, timm's
      also other sizes (smaller maps are average-pooled up to 7x7, larger ones give a map of
      fc7 outputs that is averaged).
    * InceptionV3: the auxiliary classifier on and its ``fc`` replaced by a head; dropout 0.5
      before ``fc``, as torchvision's.

    Parameters
    ----------
    backbone : str
        A timm model name (``vgg16``, ``inception_v3``: the benchmark's torchvision weights,
        :data:`skcream.backbones.WSOL_WEIGHTS`).
    pretrained : bool or path, default=False
        As :func:`skcream.backbones.build_backbone`: True, a ``.safetensors`` / ``.pth`` file
        (torchvision's ``vgg16-397923af.pth`` and ``inception_v3_google-1a9a5a14.pth`` load
        as they are, fc6 / fc7 and the auxiliary convolutions included), or False. The
        file's ImageNet classifier is not used.
    hidden : int, default=512

    Returns
    -------
    PSOLBoxNet
    """
    from skcream.backbones import WSOL_WEIGHTS, _data_config, check_backbone_name
    from skcream.weights import create_pretrained_timm, load_weights_into, torchvision_vgg_to_timm

    name = check_backbone_name(backbone)
    family = _family_module(name)
    kwargs: dict[str, Any] = {}
    aux = family == "timm.models.inception_v3"
    if family == "timm.models.vgg":
        kwargs["drop_rate"] = 0.5  # torchvision's VGG classifier
    elif aux:
        kwargs.update(aux_logits=True, drop_rate=0.5)  # torchvision's inception_v3
    model, state = create_pretrained_timm(WSOL_WEIGHTS.get(name, name), pretrained, **kwargs)
    replaced = [model.pretrained_cfg.get("classifier") or "fc"] + (["AuxLogits.fc"] if aux else [])
    prefixes = tuple(f"{c}." for c in replaced)
    if state is not None:
        if family == "timm.models.vgg":
            state = torchvision_vgg_to_timm(state)
        # the file's ImageNet classifier (of any size) is replaced by the box head
        state = {k: v for k, v in state.items() if not k.startswith(prefixes)}
        required = [k for k in model.state_dict() if not k.startswith(prefixes)]
        source = str(pretrained) if not isinstance(pretrained, bool) else f"{name} weights"
        load_weights_into(model, state, required=required, source=source)
    data_config = _data_config(model)
    architecture = getattr(model, "pretrained_cfg", {}).get("architecture", name)
    model.reset_classifier(0)
    num_features = int(getattr(model, "head_hidden_size", None) or model.num_features)
    return PSOLBoxNet(model, num_features=num_features, hidden=hidden, aux=aux,
                      architecture=architecture, data_config=data_config)


def xywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """``(x0, y0, w, h)`` -> ``(x0, y0, x0 + w, y0 + h)``, (B, 4)."""
    return torch.cat([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], dim=1)


class BoxRegressionNet(NewLayersMixin, nn.Module):
    """Backbone + GAP + ``Linear(d, hidden) -> ReLU -> Linear(hidden, 4) -> Sigmoid``.

    Parameters
    ----------
    backbone : nn.Module
        Maps (B, 3, H, W) to (B, d, h, w) and has ``num_features`` (d), e.g. a
        :class:`skcream.backbones.FeatureBackbone`.
    hidden : int, default=512

    Attributes
    ----------
    head : nn.Sequential
        New layers, He-initialised (trained at ``head_lr_mult`` x lr).
    """

    def __init__(self, backbone: nn.Module, hidden: int = 512) -> None:
        super().__init__()
        dim = int(backbone.num_features)
        self.backbone = backbone
        self.head = box_head(dim, hidden)
        for layer in (self.head[0], self.head[2]):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Boxes in the unit frame of the input.

        Parameters
        ----------
        x : Tensor (B, 3, H, W)

        Returns
        -------
        Tensor (B, 4)
            ``x0/W, y0/H, x1/W, y1/H`` in (0, 1); corners not ordered (see
            :func:`skcream.estimators._boxes_target.order_corners`).
        """
        features = self.backbone(x)
        return self.head(features.float().mean(dim=(2, 3)))

    @property
    def num_features(self) -> int:
        """d, the head's input."""
        return int(self.backbone.num_features)

    @property
    def architecture(self) -> str:
        """The timm model built (see :class:`skcream.backbones.FeatureBackbone`)."""
        return self.backbone.architecture

    @property
    def data_config(self) -> dict:
        """The backbone's normalisation."""
        return self.backbone.data_config


def box_iou_unit(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Continuous IoU of corresponding boxes (unit frame, no +1), corners ordered first.

    Parameters
    ----------
    a, b : Tensor (B, 4)

    Returns
    -------
    Tensor (B,)
        0 where the union is empty.
    """
    a = torch.stack([torch.minimum(a[:, 0], a[:, 2]), torch.minimum(a[:, 1], a[:, 3]),
                     torch.maximum(a[:, 0], a[:, 2]), torch.maximum(a[:, 1], a[:, 3])], dim=1)
    iw = (torch.minimum(a[:, 2], b[:, 2]) - torch.maximum(a[:, 0], b[:, 0])).clamp(min=0)
    ih = (torch.minimum(a[:, 3], b[:, 3]) - torch.maximum(a[:, 1], b[:, 1])).clamp(min=0)
    inter = iw * ih
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    union = area_a + area_b - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(union))


def mse_box_loss(outputs: torch.Tensor, batch: dict) -> torch.Tensor:
    """Mean squared error over the four normalised coordinates (paper: MSE, 4 coordinates)."""
    return torch.nn.functional.mse_loss(outputs.float(), batch["target"].float())


def iou50_correct(outputs: torch.Tensor, batch: dict) -> torch.Tensor:
    """Per-sample ``IoU(prediction, target) >= 0.5`` (unit frame), the history's accuracy."""
    return (box_iou_unit(outputs.detach().float(), batch["target"].float()) >= 0.5).float()


def psol_box_loss(outputs: torch.Tensor | tuple[torch.Tensor, torch.Tensor],
                  batch: dict) -> torch.Tensor:
    """MSE over ``(x0, y0, w, h)``, plus :data:`AUX_LOSS_WEIGHT` x the auxiliary head's MSE
    when the network returns it (InceptionV3, PSOL's ``1 * main + 0.3 * aux``)."""
    if isinstance(outputs, tuple | list):
        main, aux = outputs
        return mse_box_loss(main, batch) + AUX_LOSS_WEIGHT * mse_box_loss(aux, batch)
    return mse_box_loss(outputs, batch)


def psol_iou50_correct(outputs: torch.Tensor | tuple[torch.Tensor, torch.Tensor],
                       batch: dict) -> torch.Tensor:
    """:func:`iou50_correct` of the main head's ``(x0, y0, w, h)`` boxes (the history's
    accuracy, PSOL's ``compute_reg_acc``: continuous IoU >= 0.5 with the target)."""
    main = outputs[0] if isinstance(outputs, tuple | list) else outputs
    target = xywh_to_xyxy(batch["target"].float())
    return (box_iou_unit(xywh_to_xyxy(main.detach().float()), target) >= 0.5).float()
