"""Which parameters of a WSOL network train at the 10x learning rate: one rule, one place.

wsolevaluation (commit 96f4b88, ``main.py``, ``Trainer._set_optimizer``) decides by parameter
*name*, with one list of substrings per backbone (``_FEATURE_PARAM_LAYER_PATTERNS``):

* VGG16: names containing ``features.`` train at 1x, every other parameter at 10x;
* ResNet50: names containing ``layer4.`` or ``fc.`` train at 10x, every other at 1x;
* InceptionV3: names containing ``Mixed`` or ``Conv2d_1`` ... ``Conv2d_4`` at 1x, the others
  at 10x.

skcream's parameters have other names (``backbone.body.model.layer4.0.conv1.weight``,
``head.weight``, ``hidden_a.0.weight``). So every network declares, module by module, the name
the reference gives the same layer (``reference_prefixes()``: pairs of skcream prefix and
reference prefix; :func:`reference_names` composes them), and the reference's rule is applied
to those names (:func:`is_fast`, :func:`split_parameters`), for every method on every backbone.
Who declares what:

* :class:`skcream.backbones.FeatureBackbone`: its pretrained layers and new trunk layers
  (VGG16's ``features.`` and ``conv6.``; VGG16-SPG's conv4/conv5 ``SPG_A_1.``/``SPG_A_2.`` and
  new ``SPG_A_3.``; ResNet50's ``layer1.`` ... ``layer4.`` (``SPG_A1.``/``SPG_A2.`` for
  layer3 in the SPG trunk); InceptionV3's ``Mixed_*`` / ``Conv2d_*`` and ``SPG_A3_1b.`` /
  ``SPG_A3_2b.``);
* the networks: the classifier (``fc.``, or ``SPG_A4.`` / ``SPG_A_4.`` where the reference's
  classifier is that 1x1 conv) and the method's layers (ACoL's ``classifier_A.`` /
  ``classifier_B.``, SPG's ``SPG_B_1a.``, ``SPG_B_2a.``, ``SPG_B_shared.``, ``SPG_C.``).

Names are the reference's module names; indices inside a module can differ (the reference
numbers its ADL layers inside ``features`` / ``layer4``), which the substring rule never sees.
What the rule implies and skcream keeps: ResNet50-ACoL trains layer4 at 10x and its two new
branches at 1x; ResNet50-SPG trains only layer4 at 10x (its classifier ``SPG_A4`` and branches
at 1x); VGG16-SPG trains its pretrained conv4/conv5 at 10x.

Backbones the reference does not have (EfficientNets, ConvNeXts, ...; family ``"generic"``)
follow the paper's rule, "10x scale of the learning rate to the classifier due to its random
initialization" (section 4.1), which is also what the VGG16 and InceptionV3 patterns express:
their pretrained timm layers are named ``features.`` and train at 1x, every new layer at 10x.
Every timm VGG, ResNet and InceptionV3 uses its family's rule (the reference picks the list
by ``architecture.startswith(...)``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import nn

__all__ = [
    "FEATURE_PATTERNS",
    "backbone_prefixes",
    "is_fast",
    "reference_names",
    "rule_family",
    "split_parameters",
]

#: ``main.py``'s ``_FEATURE_PARAM_LAYER_PATTERNS``, by skcream's backbone family; ``"generic"``
#: is skcream's rule for the other timm models (pretrained layers are named ``features.``)
FEATURE_PATTERNS: dict[str, tuple[str, ...]] = {
    "vgg": ("features.",),
    "resnet": ("layer4.", "fc."),
    "inception": ("Mixed", "Conv2d_1", "Conv2d_2", "Conv2d_3", "Conv2d_4"),
    "generic": ("features.",),
}
# ResNet's patterns name the 10x group; the others' name the 1x group (main.py's two branches)
_MATCH_IS_10X = {"vgg": False, "resnet": True, "inception": False, "generic": False}


def rule_family(family: Any) -> str:
    """The key of :data:`FEATURE_PATTERNS` for a backbone family (unknown: ``"generic"``)."""
    return family if isinstance(family, str) and family in FEATURE_PATTERNS else "generic"


def is_fast(reference_name: str, family: str) -> bool:
    """True when the reference trains a parameter of this name at the 10x learning rate.

    Parameters
    ----------
    reference_name : str
        The parameter's name in the reference network (e.g. ``"layer4.0.conv1.weight"``).
    family : str
        ``"vgg"``, ``"resnet"``, ``"inception"``; anything else is ``"generic"``.
    """
    family = rule_family(family)
    hit = any(p in reference_name for p in FEATURE_PATTERNS[family])
    return hit if _MATCH_IS_10X[family] else not hit


def backbone_prefixes(backbone: nn.Module, at: str = "backbone.") -> list[tuple[str, str]]:
    """The reference-name prefixes of a backbone's parameters, under the attribute ``at``.

    A :class:`~skcream.backbones.FeatureBackbone` declares them (``reference_prefixes``); any
    other backbone module is read as the paper describes a network: the parameters its
    ``new_parameters()`` lists (if it has that method) are new layers (``new.``), every other
    one a pretrained feature layer (``features.``).
    """
    declared = getattr(backbone, "reference_prefixes", None)
    if declared is not None:
        return [(at + ours, ref) for ours, ref in declared]
    new = {id(p) for p in backbone.new_parameters()} if hasattr(backbone, "new_parameters") else set()
    return [(f"{at}{n}", f"{'new' if id(p) in new else 'features'}.{n}")
            for n, p in backbone.named_parameters()]


def reference_names(net: nn.Module, prefixes: Iterable[tuple[str, str]] | None = None) -> dict[str, str]:
    """Every parameter name of ``net`` -> the name the reference gives that parameter.

    Parameters
    ----------
    net : nn.Module
        A network with ``reference_prefixes()`` (CAMNet, ACoLNet, SPGNet), or any module when
        ``prefixes`` is given.
    prefixes : iterable of (str, str), optional
        (skcream prefix, reference prefix) pairs; the longest matching skcream prefix wins.

    Raises
    ------
    ValueError
        A parameter no prefix covers (it would otherwise fall into a group silently).
    """
    pairs = list(net.reference_prefixes() if prefixes is None else prefixes)
    pairs.sort(key=lambda pair: len(pair[0]), reverse=True)
    out = {}
    for name, _ in net.named_parameters():
        for ours, ref in pairs:
            if name.startswith(ours):
                out[name] = ref + name[len(ours):]
                break
        else:
            raise ValueError(
                f"{type(net).__name__}: parameter {name!r} has no reference name; its module "
                "must be declared in reference_prefixes() to get a learning-rate group"
            )
    return out


def split_parameters(net: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """``(1x group, 10x group)`` of ``net``'s parameters by the reference's rule.

    The family is ``net.backbone.family`` (``"generic"`` when absent).
    """
    family = getattr(getattr(net, "backbone", None), "family", "generic")
    names = reference_names(net)
    slow, fast = [], []
    for name, p in net.named_parameters():
        (fast if is_fast(names[name], family) else slow).append(p)
    return slow, fast
