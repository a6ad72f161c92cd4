"""Where ADL's layers and SPG's auxiliary branches attach inside a :class:`FeatureBackbone`.

The reference (wsolevaluation) fixes the places for its three backbones; skcream uses the
same places there and one rule for every other timm CNN with a ``feature_info``:

* ResNets and generic timm CNNs: with ``P`` the penultimate and ``L`` the last feature stage
  used (``feature_info`` modules, e.g. ResNet's ``layer3`` / ``layer4``; the chosen
  ``feature_stage`` and the one before it):

  - ADL after ``P[0]``, ``L[0]`` and ``L`` (ResNet50: after ``layer3.0``, ``layer4.0`` and
    ``layer4.2``, wsolevaluation's ``_ADL_POSITION``);
  - SPG's branch B1 on ``P[0]``, B2 on ``P`` (ResNet50: ``SPG_A1 = layer3[0]``,
    ``SPG_A2 = layer3[1:]``).

  (``S[0]`` is the first block of a sequential stage, or of its ``blocks``, else the
  stage itself.)
* VGG: ADL after pool3, after conv4_3 (ReLU) and after conv5_3 (ReLU), before conv6 (the
  reference's ``'A'`` entries). SPG (its own trunk, ``VggSpg``): B1 on the 3x3 stride-2 pool
  after conv4 (on conv4 with ``large_feature_map``), B2 on conv5. SPG on the CAM trunk
  (``spg_trunk="cam"``): B1 on pool4's output (conv4_3 when pool4 is removed by
  ``large_feature_map``), B2 on conv5_3.
* InceptionV3: ADL after Mixed_5d, Mixed_6e and the new convs (``ADL_5d``, ``ADL_6e``,
  ``ADL_A3_2b``); SPG's B1 on Mixed_5d after its pool (``InceptionSpg``), B2 on Mixed_6d.

SPG's branch width (B_1a, B_2a and B_shared's channels) is that of B2's input (VGG16 512,
ResNet50 1024, as the reference), except on InceptionV3, where the reference uses 512
(:func:`spg_width`).

Places are modules whose *output* is used (forward hooks), so the backbone's parameters,
their names and the pretrained weights are untouched.
"""

from __future__ import annotations

from torch import nn

__all__ = ["adl_points", "spg_points", "spg_width"]


def _first(stage: nn.Module) -> nn.Module:
    blocks = getattr(stage, "blocks", None)  # e.g. ConvNeXt stages hold their blocks there
    if not isinstance(stage, nn.Sequential) and isinstance(blocks, nn.Sequential):
        stage = blocks
    if isinstance(stage, nn.Sequential) and len(stage):
        return stage[0]
    return stage


def _vgg_relus(backbone) -> tuple[list[nn.Module], list[int]]:
    """ReLUs of the body in conv order, and the conv count of each conv block."""
    import timm.models.vgg as tv

    cfg = tv.cfgs.get(backbone.architecture.split(".")[0].replace("_bn", ""))
    if cfg is None:
        raise ValueError(f"no VGG configuration for {backbone.architecture!r}")
    blocks, n = [], 0
    for v in cfg:
        if v == "M":
            blocks.append(n)
            n = 0
        else:
            n += 1
    relus = [m for m in backbone.body if isinstance(m, nn.ReLU)]
    return relus, blocks


def _stages(backbone, method: str) -> tuple[nn.Module, nn.Module]:
    """(penultimate, last) feature stages of a timm body."""
    body = backbone.body
    layout = getattr(body, "layout", None)  # a token model (skcream.token_models.TokenGrid)
    if layout is not None:
        raise ValueError(
            f"method={method!r}: its layers act on (B,C,H,W) feature maps inside the backbone, "
            f"but {backbone.name!r} is a token model ({layout} tokens between its blocks); "
            "use method 'cam', 'has', 'cutmix' or 'acol', which act on the input or the "
            "final feature map"
        )
    model = getattr(body, "model", None)
    info = getattr(model, "feature_info", None)
    if model is None or info is None:
        raise ValueError(
            f"method={method!r}: cannot place its layers in backbone {backbone.name!r}: the "
            "timm model has no feature_info naming its stages"
        )
    info = list(info)
    last = getattr(body, "index", len(info) - 1)
    if last < 1:
        raise ValueError(
            f"method={method!r}: needs two feature stages; backbone {backbone.name!r} with "
            f"feature_stage={last} has only one"
        )
    try:
        return model.get_submodule(info[last - 1]["module"]), model.get_submodule(info[last]["module"])
    except (AttributeError, KeyError) as exc:
        raise ValueError(
            f"method={method!r}: cannot find the feature stages of backbone {backbone.name!r} "
            f"({exc})"
        ) from None


def _family(backbone) -> str:
    family = getattr(backbone, "family", None)
    return family if family in ("vgg", "inception") else "generic"


def adl_points(backbone) -> list[nn.Module]:
    """Modules after which ADL is applied (see the module docstring), in forward order."""
    family = _family(backbone)
    if family == "vgg":
        pools = [m for m in backbone.body if isinstance(m, nn.MaxPool2d)]
        relus, blocks = _vgg_relus(backbone)
        if len(pools) < 3 or len(blocks) < 5:
            raise ValueError(f"method='adl': unexpected VGG layout in {backbone.name!r}")
        return [pools[2], relus[sum(blocks[:4]) - 1], relus[-1]]
    if family == "inception":
        return [backbone.body.Mixed_5d, backbone.body.Mixed_6e, backbone.extra]
    prev, last = _stages(backbone, "adl")
    points = []
    for m in (_first(prev), _first(last), last):
        if all(m is not p for p in points):
            points.append(m)
    return points


def spg_points(backbone) -> tuple[nn.Module, nn.Module]:
    """Modules whose outputs feed SPG's branches B1 and B2 (see the module docstring)."""
    family = _family(backbone)
    if family == "vgg" and backbone.trunk == "spg":
        return backbone.body.pool, backbone.body.SPG_A_2
    if family == "vgg":
        pools = [m for m in backbone.body if isinstance(m, nn.MaxPool2d)]
        relus, blocks = _vgg_relus(backbone)
        b1 = pools[3] if len(pools) >= 4 else relus[sum(blocks[:4]) - 1]
        return b1, relus[-1]
    if family == "inception":
        return backbone.body.pool_5d, backbone.body.Mixed_6d
    prev, _ = _stages(backbone, "spg")
    return _first(prev), prev


def spg_width(backbone) -> int | None:
    """Channels of SPG's B_1a / B_2a / B_shared: 512 on InceptionV3 (``InceptionSpg``), else
    None (the channels of B2's input, as ``VggSpg`` and ``ResNetSpg``)."""
    return 512 if _family(backbone) == "inception" else None
