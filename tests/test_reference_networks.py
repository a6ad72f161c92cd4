"""The Table-1 method networks against wsolevaluation's, as data (commit 96f4b88).

The facts below were measured by running the reference's own code (``wsol/vgg.py``,
``wsol/resnet.py``, ``wsol/inception.py`` built by ``wsol.__dict__[architecture](
architecture_type=...)``, and ``main.py``'s ``Trainer._set_optimizer`` for the groups) with
random weights, nothing downloaded, for every method network (CAM, ACoL, SPG, ADL; HaS and
CutMix train the CAM network) x backbone x feature-map size (14x14; 28x28 with
``large_feature_map``), at 200 classes (CUB) unless said otherwise:

* ``params``, ``params_10x``: all parameters, and those the optimiser trains at
  ``lr * lr_classifier_ratio`` (the 10x group); ``params_1000``, ``params_10x_1000``: the same
  at 1000 classes (ILSVRC);
* ``modules``: parameters per top-level module of the reference network (``features``,
  ``conv6``, ``SPG_A_1``, ``classifier_A``, ``layer4``, ``Mixed_6e``, ...);
* ``shapes``: without the batch dimension, for a 224x224 input: the classifier's input map
  (``features``), ``logits``, the inference map of the labels (``cams``, ``return_cam``);
  ACoL's two class-map stacks (``maps_a``, ``maps_b``) and second logits; SPG's three branch
  outputs (``b1``, ``b2``, ``c``), their inputs and its class maps.

No reference code is part of skcream or of this test: only these numbers. Our networks are
built on the meta device (parameter counts and shapes without memory or arithmetic), each once.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from typing import NamedTuple

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from skcream.backbones import build_backbone
from skcream.lr_groups import is_fast, reference_names
from skcream.methods import get_method
from skcream.training import parameter_groups


class Facts(NamedTuple):
    params: int
    params_10x: int
    params_1000: int
    params_10x_1000: int
    modules: dict[str, int]
    shapes: dict[str, tuple[int, ...]]


# (method network, backbone, feature-map side at 224 px) -> facts of the reference network
REFERENCE = {
    ("cam", "vgg16", 14): Facts(
        19_639_304, 4_924_616, 20_459_304, 5_744_616,
        {"conv6": 4_719_616, "fc": 205_000, "features": 14_714_688},
        {"logits": (200,), "cams": (14, 14), "features": (1024, 14, 14)},
    ),
    ("cam", "vgg16", 28): Facts(
        19_639_304, 4_924_616, 20_459_304, 5_744_616,
        {"conv6": 4_719_616, "fc": 205_000, "features": 14_714_688},
        {"logits": (200,), "cams": (28, 28), "features": (1024, 28, 28)},
    ),
    ("acol", "vgg16", 14): Facts(
        43_440_336, 28_725_648, 45_080_336, 30_365_648,
        {"classifier_A": 14_362_824, "classifier_B": 14_362_824, "features": 14_714_688},
        {"logits": (200,), "cams": (14, 14), "features": (512, 14, 14), "maps_a": (200, 14, 14),
         "maps_b": (200, 14, 14), "logits_b": (200,)},
    ),
    ("acol", "vgg16", 28): Facts(
        43_440_336, 28_725_648, 45_080_336, 30_365_648,
        {"classifier_A": 14_362_824, "classifier_B": 14_362_824, "features": 14_714_688},
        {"logits": (200,), "cams": (28, 28), "features": (512, 28, 28), "maps_a": (200, 28, 28),
         "maps_b": (200, 28, 28), "logits_b": (200,)},
    ),
    ("spg", "vgg16", 14): Facts(
        28_977_162, 27_241_674, 29_387_562, 27_652_074,
        {"SPG_A_1": 5_899_776, "SPG_A_2": 7_079_424, "SPG_A_3": 4_719_616, "SPG_A_4": 102_600,
         "SPG_B_1a": 2_359_808, "SPG_B_2a": 2_359_808, "SPG_B_shared": 2_360_321,
         "SPG_C": 2_360_321, "features": 1_735_488},
        {"logits": (200,), "cams": (14, 14), "features": (512, 14, 14), "b1": (1, 14, 14),
         "b2": (1, 14, 14), "c": (1, 14, 14), "b1_input": (512, 14, 14),
         "b2_input": (512, 14, 14), "c_input": (512, 14, 14), "class_maps": (200, 14, 14)},
    ),
    ("spg", "vgg16", 28): Facts(
        28_977_162, 27_241_674, 29_387_562, 27_652_074,
        {"SPG_A_1": 5_899_776, "SPG_A_2": 7_079_424, "SPG_A_3": 4_719_616, "SPG_A_4": 102_600,
         "SPG_B_1a": 2_359_808, "SPG_B_2a": 2_359_808, "SPG_B_shared": 2_360_321,
         "SPG_C": 2_360_321, "features": 1_735_488},
        {"logits": (200,), "cams": (28, 28), "features": (512, 28, 28), "b1": (1, 28, 28),
         "b2": (1, 28, 28), "c": (1, 28, 28), "b1_input": (512, 28, 28),
         "b2_input": (512, 28, 28), "c_input": (512, 28, 28), "class_maps": (200, 28, 28)},
    ),
    ("adl", "vgg16", 14): Facts(
        19_639_304, 4_924_616, 20_459_304, 5_744_616,
        {"conv6": 4_719_616, "fc": 205_000, "features": 14_714_688},
        {"logits": (200,), "cams": (14, 14), "features": (1024, 14, 14)},
    ),
    ("adl", "vgg16", 28): Facts(
        19_639_304, 4_924_616, 20_459_304, 5_744_616,
        {"conv6": 4_719_616, "fc": 205_000, "features": 14_714_688},
        {"logits": (200,), "cams": (28, 28), "features": (1024, 28, 28)},
    ),
    ("cam", "resnet50", 14): Facts(
        23_917_832, 15_374_536, 25_557_032, 17_013_736,
        {"bn1": 128, "conv1": 9_408, "fc": 409_800, "layer1": 215_808, "layer2": 1_219_584,
         "layer3": 7_098_368, "layer4": 14_964_736},
        {"logits": (200,), "cams": (14, 14), "features": (2048, 14, 14)},
    ),
    ("cam", "resnet50", 28): Facts(
        23_917_832, 15_374_536, 25_557_032, 17_013_736,
        {"bn1": 128, "conv1": 9_408, "fc": 409_800, "layer1": 215_808, "layer2": 1_219_584,
         "layer3": 7_098_368, "layer4": 14_964_736},
        {"logits": (200,), "cams": (28, 28), "features": (2048, 28, 28)},
    ),
    ("acol", "resnet50", 14): Facts(
        80_545_232, 14_964_736, 82_185_232, 14_964_736,
        {"bn1": 128, "classifier_A": 28_518_600, "classifier_B": 28_518_600, "conv1": 9_408,
         "layer1": 215_808, "layer2": 1_219_584, "layer3": 7_098_368, "layer4": 14_964_736},
        {"logits": (200,), "cams": (14, 14), "features": (2048, 14, 14),
         "maps_a": (200, 14, 14), "maps_b": (200, 14, 14), "logits_b": (200,)},
    ),
    ("acol", "resnet50", 28): Facts(
        80_545_232, 14_964_736, 82_185_232, 14_964_736,
        {"bn1": 128, "classifier_A": 28_518_600, "classifier_B": 28_518_600, "conv1": 9_408,
         "layer1": 215_808, "layer2": 1_219_584, "layer3": 7_098_368, "layer4": 14_964_736},
        {"logits": (200,), "cams": (28, 28), "features": (2048, 28, 28),
         "maps_a": (200, 28, 28), "maps_b": (200, 28, 28), "logits_b": (200,)},
    ),
    ("spg", "resnet50", 14): Facts(
        61_671_690, 14_964_736, 63_310_890, 14_964_736,
        {"SPG_A1": 1_512_448, "SPG_A2": 5_585_920, "SPG_A4": 409_800, "SPG_B_1a": 9_438_208,
         "SPG_B_2a": 9_438_208, "SPG_B_shared": 9_439_233, "SPG_C": 9_438_209, "bn1": 128,
         "conv1": 9_408, "layer1": 215_808, "layer2": 1_219_584, "layer4": 14_964_736},
        {"logits": (200,), "cams": (14, 14), "features": (2048, 14, 14), "b1": (1, 14, 14),
         "b2": (1, 14, 14), "c": (1, 14, 14), "b1_input": (1024, 14, 14),
         "b2_input": (1024, 14, 14), "c_input": (2048, 14, 14), "class_maps": (200, 14, 14)},
    ),
    ("spg", "resnet50", 28): Facts(
        61_671_690, 14_964_736, 63_310_890, 14_964_736,
        {"SPG_A1": 1_512_448, "SPG_A2": 5_585_920, "SPG_A4": 409_800, "SPG_B_1a": 9_438_208,
         "SPG_B_2a": 9_438_208, "SPG_B_shared": 9_439_233, "SPG_C": 9_438_209, "bn1": 128,
         "conv1": 9_408, "layer1": 215_808, "layer2": 1_219_584, "layer4": 14_964_736},
        {"logits": (200,), "cams": (28, 28), "features": (2048, 28, 28), "b1": (1, 28, 28),
         "b2": (1, 28, 28), "c": (1, 28, 28), "b1_input": (1024, 28, 28),
         "b2_input": (1024, 28, 28), "c_input": (2048, 28, 28), "class_maps": (200, 28, 28)},
    ),
    ("adl", "resnet50", 14): Facts(
        23_917_832, 15_374_536, 25_557_032, 17_013_736,
        {"bn1": 128, "conv1": 9_408, "fc": 409_800, "layer1": 215_808, "layer2": 1_219_584,
         "layer3": 7_098_368, "layer4": 14_964_736},
        {"logits": (200,), "cams": (14, 14), "features": (2048, 14, 14)},
    ),
    ("adl", "resnet50", 28): Facts(
        23_917_832, 15_374_536, 25_557_032, 17_013_736,
        {"bn1": 128, "conv1": 9_408, "fc": 409_800, "layer1": 215_808, "layer2": 1_219_584,
         "layer3": 7_098_368, "layer4": 14_964_736},
        {"logits": (200,), "cams": (28, 28), "features": (2048, 28, 28)},
    ),
    ("cam", "inception_v3", 14): Facts(
        25_687_976, 16_722_120, 26_507_976, 17_542_120,
        {"Conv2d_1a_3x3": 928, "Conv2d_2a_3x3": 9_280, "Conv2d_2b_3x3": 18_560,
         "Conv2d_3b_1x1": 5_280, "Conv2d_4a_3x3": 138_624, "Mixed_5b": 255_904,
         "Mixed_5c": 277_472, "Mixed_5d": 285_152, "Mixed_6a": 1_153_280, "Mixed_6b": 1_297_408,
         "Mixed_6c": 1_691_008, "Mixed_6d": 1_691_008, "Mixed_6e": 2_141_952,
         "SPG_A3_1b": 7_078_912, "SPG_A3_2b": 9_438_208, "SPG_A4": 205_000},
        {"logits": (200,), "cams": (14, 14), "features": (1024, 14, 14)},
    ),
    ("cam", "inception_v3", 28): Facts(
        25_687_976, 16_722_120, 26_507_976, 17_542_120,
        {"Conv2d_1a_3x3": 928, "Conv2d_2a_3x3": 9_280, "Conv2d_2b_3x3": 18_560,
         "Conv2d_3b_1x1": 5_280, "Conv2d_4a_3x3": 138_624, "Mixed_5b": 255_904,
         "Mixed_5c": 277_472, "Mixed_5d": 285_152, "Mixed_6a": 1_153_280, "Mixed_6b": 1_297_408,
         "Mixed_6c": 1_691_008, "Mixed_6d": 1_691_008, "Mixed_6e": 2_141_952,
         "SPG_A3_1b": 7_078_912, "SPG_A3_2b": 9_438_208, "SPG_A4": 205_000},
        {"logits": (200,), "cams": (28, 28), "features": (1024, 28, 28)},
    ),
    ("acol", "inception_v3", 14): Facts(
        42_410_096, 33_444_240, 44_050_096, 35_084_240,
        {"Conv2d_1a_3x3": 928, "Conv2d_2a_3x3": 9_280, "Conv2d_2b_3x3": 18_560,
         "Conv2d_3b_1x1": 5_280, "Conv2d_4a_3x3": 138_624, "Mixed_5b": 255_904,
         "Mixed_5c": 277_472, "Mixed_5d": 285_152, "Mixed_6a": 1_153_280, "Mixed_6b": 1_297_408,
         "Mixed_6c": 1_691_008, "Mixed_6d": 1_691_008, "Mixed_6e": 2_141_952,
         "classifier_A": 16_722_120, "classifier_B": 16_722_120},
        {"logits": (200,), "cams": (14, 14), "features": (768, 14, 14), "maps_a": (200, 14, 14),
         "maps_b": (200, 14, 14), "logits_b": (200,)},
    ),
    ("acol", "inception_v3", 28): Facts(
        42_410_096, 33_444_240, 44_050_096, 35_084_240,
        {"Conv2d_1a_3x3": 928, "Conv2d_2a_3x3": 9_280, "Conv2d_2b_3x3": 18_560,
         "Conv2d_3b_1x1": 5_280, "Conv2d_4a_3x3": 138_624, "Mixed_5b": 255_904,
         "Mixed_5c": 277_472, "Mixed_5d": 285_152, "Mixed_6a": 1_153_280, "Mixed_6b": 1_297_408,
         "Mixed_6c": 1_691_008, "Mixed_6d": 1_691_008, "Mixed_6e": 2_141_952,
         "classifier_A": 16_722_120, "classifier_B": 16_722_120},
        {"logits": (200,), "cams": (28, 28), "features": (768, 28, 28), "maps_a": (200, 28, 28),
         "maps_b": (200, 28, 28), "logits_b": (200,)},
    ),
    ("spg", "inception_v3", 14): Facts(
        37_634_986, 28_669_130, 38_454_986, 29_489_130,
        {"Conv2d_1a_3x3": 928, "Conv2d_2a_3x3": 9_280, "Conv2d_2b_3x3": 18_560,
         "Conv2d_3b_1x1": 5_280, "Conv2d_4a_3x3": 138_624, "Mixed_5b": 255_904,
         "Mixed_5c": 277_472, "Mixed_5d": 285_152, "Mixed_6a": 1_153_280, "Mixed_6b": 1_297_408,
         "Mixed_6c": 1_691_008, "Mixed_6d": 1_691_008, "Mixed_6e": 2_141_952,
         "SPG_A3_1b": 7_078_912, "SPG_A3_2b": 9_438_208, "SPG_A4": 205_000,
         "SPG_B_1a": 1_327_616, "SPG_B_2a": 3_539_456, "SPG_B_shared": 2_360_321,
         "SPG_C": 4_719_617},
        {"logits": (200,), "cams": (14, 14), "features": (1024, 14, 14), "b1": (1, 14, 14),
         "b2": (1, 14, 14), "c": (1, 14, 14), "b1_input": (288, 14, 14),
         "b2_input": (768, 14, 14), "c_input": (1024, 14, 14), "class_maps": (200, 14, 14)},
    ),
    ("spg", "inception_v3", 28): Facts(
        37_634_986, 28_669_130, 38_454_986, 29_489_130,
        {"Conv2d_1a_3x3": 928, "Conv2d_2a_3x3": 9_280, "Conv2d_2b_3x3": 18_560,
         "Conv2d_3b_1x1": 5_280, "Conv2d_4a_3x3": 138_624, "Mixed_5b": 255_904,
         "Mixed_5c": 277_472, "Mixed_5d": 285_152, "Mixed_6a": 1_153_280, "Mixed_6b": 1_297_408,
         "Mixed_6c": 1_691_008, "Mixed_6d": 1_691_008, "Mixed_6e": 2_141_952,
         "SPG_A3_1b": 7_078_912, "SPG_A3_2b": 9_438_208, "SPG_A4": 205_000,
         "SPG_B_1a": 1_327_616, "SPG_B_2a": 3_539_456, "SPG_B_shared": 2_360_321,
         "SPG_C": 4_719_617},
        {"logits": (200,), "cams": (28, 28), "features": (1024, 28, 28), "b1": (1, 28, 28),
         "b2": (1, 28, 28), "c": (1, 28, 28), "b1_input": (288, 28, 28),
         "b2_input": (768, 28, 28), "c_input": (1024, 28, 28), "class_maps": (200, 28, 28)},
    ),
    ("adl", "inception_v3", 14): Facts(
        25_687_976, 16_722_120, 26_507_976, 17_542_120,
        {"Conv2d_1a_3x3": 928, "Conv2d_2a_3x3": 9_280, "Conv2d_2b_3x3": 18_560,
         "Conv2d_3b_1x1": 5_280, "Conv2d_4a_3x3": 138_624, "Mixed_5b": 255_904,
         "Mixed_5c": 277_472, "Mixed_5d": 285_152, "Mixed_6a": 1_153_280, "Mixed_6b": 1_297_408,
         "Mixed_6c": 1_691_008, "Mixed_6d": 1_691_008, "Mixed_6e": 2_141_952,
         "SPG_A3_1b": 7_078_912, "SPG_A3_2b": 9_438_208, "SPG_A4": 205_000},
        {"logits": (200,), "cams": (14, 14), "features": (1024, 14, 14)},
    ),
    ("adl", "inception_v3", 28): Facts(
        25_687_976, 16_722_120, 26_507_976, 17_542_120,
        {"Conv2d_1a_3x3": 928, "Conv2d_2a_3x3": 9_280, "Conv2d_2b_3x3": 18_560,
         "Conv2d_3b_1x1": 5_280, "Conv2d_4a_3x3": 138_624, "Mixed_5b": 255_904,
         "Mixed_5c": 277_472, "Mixed_5d": 285_152, "Mixed_6a": 1_153_280, "Mixed_6b": 1_297_408,
         "Mixed_6c": 1_691_008, "Mixed_6d": 1_691_008, "Mixed_6e": 2_141_952,
         "SPG_A3_1b": 7_078_912, "SPG_A3_2b": 9_438_208, "SPG_A4": 205_000},
        {"logits": (200,), "cams": (28, 28), "features": (1024, 28, 28)},
    ),
}

# the 20 Table-1 networks (VGG16 at 14x14; ResNet50 and InceptionV3 at both sizes) and
# VGG16 with large_feature_map, which the reference builds too
NETWORKS = list(REFERENCE)


@functools.cache
def _network(method: str, backbone: str, side: int, n_classes: int = 200) -> nn.Module:
    with torch.device("meta"):
        net = get_method(method).build(backbone, n_classes=n_classes, large_feature_map=side == 28)
    return net.eval()


def _ten_x(net: nn.Module) -> int:
    # the training loop's own groups (skcream.training.parameter_groups), lr 1 and 10
    slow, fast = parameter_groups(net, 1.0, 10.0)
    assert (slow["lr"], fast["lr"]) == (1.0, 10.0)
    return sum(p.numel() for p in fast["params"])


@pytest.mark.parametrize("key", NETWORKS, ids=["-".join(map(str, k)) for k in NETWORKS])
def test_parameter_counts_and_10x_group_equal_the_reference(key):
    facts = REFERENCE[key]
    for n_classes, total, ten_x in ((200, facts.params, facts.params_10x),
                                    (1000, facts.params_1000, facts.params_10x_1000)):
        net = _network(*key, n_classes)
        assert sum(p.numel() for p in net.parameters()) == total, n_classes
        assert _ten_x(net) == ten_x, n_classes


@pytest.mark.parametrize("key", NETWORKS, ids=["-".join(map(str, k)) for k in NETWORKS])
def test_parameters_per_reference_module(key):
    # every parameter's reference name (skcream.lr_groups) falls in the reference's module of
    # the same size: the names the lr rule reads are the reference's
    net = _network(*key)
    params = dict(net.named_parameters())
    per_module = Counter()
    for ours, ref in reference_names(net).items():
        per_module[ref.split(".")[0]] += params[ours].numel()
    assert dict(per_module) == REFERENCE[key].modules


def _shapes(method: str, net: nn.Module) -> dict[str, tuple[int, ...]]:
    """The shapes the reference facts name, from our network at 224 px (batch 2, meta)."""
    x = torch.empty(2, 3, 224, 224, device="meta")
    labels = torch.tensor([0, 1])  # on the CPU: checked against the class count
    seen: dict[str, tuple[int, ...]] = {}
    hooks = []

    def record(key, inputs=False):
        def hook(module, args, output):
            seen[key] = tuple((args[0] if inputs else output).shape[1:])
        return hook

    if method == "acol":
        hooks += [net.classifier_a.register_forward_hook(record("maps_a")),
                  net.classifier_b.register_forward_hook(record("maps_b"))]
    if method == "spg":
        hooks += [net.spg_b1.register_forward_hook(record("b1_input", inputs=True)),
                  net.spg_b2.register_forward_hook(record("b2_input", inputs=True)),
                  net.spg_c.register_forward_hook(record("c_input", inputs=True))]
    try:
        with torch.no_grad():
            out = net(x, labels, aux=True) if method in ("acol", "spg") else net(x)
            _, cams = net.readout(out[1], labels)
    finally:
        for h in hooks:
            h.remove()
    seen.update(logits=tuple(out[0].shape[1:]), features=tuple(out[1].shape[1:]),
                cams=tuple(cams.shape[1:]))
    if method == "acol":
        seen["logits_b"] = tuple(out[2].shape[1:])
    if method == "spg":
        seen.update(b1=tuple(out[2].shape[1:]), b2=tuple(out[3].shape[1:]),
                    c=tuple(out[4].shape[1:]), class_maps=tuple(net.cams(out[1]).shape[1:]))
    return seen


@pytest.mark.parametrize("key", NETWORKS, ids=["-".join(map(str, k)) for k in NETWORKS])
def test_map_and_branch_shapes_at_224(key):
    assert _shapes(key[0], _network(*key)) == REFERENCE[key].shapes


# ------------------------------------------------------------------ the rule by name
@pytest.mark.parametrize("name,family,fast", [
    ("features.28.weight", "vgg", False),
    ("conv6.weight", "vgg", True),
    ("SPG_A_1.0.weight", "vgg", True),  # VggSpg's pretrained conv4, renamed: 10x
    ("classifier_A.4.bias", "vgg", True),
    ("layer4.0.conv1.weight", "resnet", True),
    ("fc.weight", "resnet", True),
    ("layer3.5.bn3.bias", "resnet", False),
    ("SPG_A4.weight", "resnet", False),  # ResNetSpg's classifier: 1x
    ("classifier_B.0.weight", "resnet", False),  # ResNetAcol's branches: 1x
    ("Mixed_6e.branch_pool.conv.weight", "inception", False),
    ("Conv2d_4a_3x3.bn.weight", "inception", False),
    ("SPG_A3_1b.0.weight", "inception", True),
    ("SPG_B_1a.0.weight", "inception", True),
    ("features.model.blocks.3.0.conv_pw.weight", "efficientnet", False),  # skcream's rule
    ("fc.weight", "efficientnet", True),
    ("classifier_A.0.weight", "generic", True),
])
def test_the_rule_by_name(name, family, fast):
    assert is_fast(name, family) is fast


def test_a_parameter_without_a_reference_name_is_refused():
    net = _network("cam", "resnet50", 14)
    with pytest.raises(ValueError, match="backbone.body.model.conv1.weight.*no reference name"):
        reference_names(net, prefixes=[("head.", "fc.")])


def test_hand_made_backbones_train_their_new_layers_and_the_head_at_10x():
    class Tiny(nn.Module):
        num_features = 4

        def __init__(self):
            super().__init__()
            self.old, self.new = nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 1)

        def forward(self, x):
            return self.new(self.old(x))

        def new_parameters(self):
            return list(self.new.parameters())

    net = get_method("acol").build_network(Tiny(), 3)  # hand-made backbones: any trunk
    fast = {id(p) for p in net.new_parameters()}
    names = {n for n, p in net.named_parameters() if id(p) in fast}
    assert names == {n for n, _ in net.named_parameters() if not n.startswith("backbone.old.")}


# ----------------------------------------------------------- trunks the shapes cannot see
def _pools(layers):
    return [(m.kernel_size, m.stride, m.padding) for m in layers if isinstance(m, nn.MaxPool2d)]


@pytest.mark.parametrize("side", [14, 28])
def test_vgg16_acol_trunk_pools_and_smoothing(side):
    backbone = _network("acol", "vgg16", side).backbone
    # VggAcol's 'M1' (3x3, stride 2, padding 1) and 'M2' (3x3, stride 1, padding 1) pools
    m1, m2 = (3, 2, 1), (3, 1, 1)
    expected = [m1] * 4 + [m2] if side == 14 else [m1] * 3 + [m2, m2]
    assert _pools(backbone.body) == expected
    smooth = backbone.extra  # F.avg_pool2d(kernel_size=3, stride=1, padding=1) in its forward
    assert isinstance(smooth, nn.AvgPool2d) and smooth.count_include_pad
    assert (smooth.kernel_size, smooth.stride, smooth.padding) == (3, 1, 1)


@pytest.mark.parametrize("side", [14, 28])
def test_vgg16_spg_trunk(side):
    body = _network("spg", "vgg16", side).backbone.body
    assert _pools(body.features) == [(2, 2, 0)] * 3  # conv1-3 with VGG's own pools
    assert _pools(body.SPG_A_1) == _pools(body.SPG_A_2) == []
    assert _pools([body.pool]) == ([(3, 2, 1)] if side == 14 else [])


def test_inception_v3_dropout_per_method():
    # InceptionCam / InceptionSpg: dropout 0.5 before each new conv and the classifier;
    # InceptionAdl: none; InceptionAcol: no new conv, no dropout
    def dropouts(net):
        return [m.p for m in net.modules() if isinstance(m, nn.Dropout)]

    for method in ("cam", "spg"):
        net = _network(method, "inception_v3", 14)
        assert dropouts(net) == [0.5, 0.5] and net.head_dropout == 0.5
    adl = _network("adl", "inception_v3", 14)
    assert dropouts(adl) == [] and adl.head_dropout == 0.0
    acol = _network("acol", "inception_v3", 14)
    assert dropouts(acol) == [] and isinstance(acol.backbone.extra, nn.Identity)


def test_spg_classifier_and_branch_c_read_the_same_dropped_map():
    # InceptionSpg: x = dropout(x); SPG_A4(x) (logits, attention) and SPG_C(x) share the draw
    torch.manual_seed(0)
    backbone = build_backbone("test_resnet", trunk="spg")
    backbone.head_dropout = 0.5
    net = get_method("spg").build_network(backbone, 3).train()
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([0, 2])
    with torch.no_grad():
        torch.manual_seed(1)
        logits, features, _, _, c, cam = net(x, y, aux=True)
        torch.manual_seed(1)
        dropped = F.dropout(net.backbone(x), 0.5, training=True)
    assert not torch.equal(dropped, features)
    torch.testing.assert_close(logits, net.head(dropped.mean(dim=(2, 3))))
    torch.testing.assert_close(c, net.spg_c(dropped))
    torch.testing.assert_close(cam, net.cams(dropped, y))


# ------------------------------------------------------------------ initialisation
def _init_std(conv: nn.Conv2d, init: str) -> float:
    k = conv.kernel_size[0] * conv.kernel_size[1]
    fan_in, fan_out = conv.in_channels * k, conv.out_channels * k
    if init == "he":  # kaiming_normal_(mode='fan_out', nonlinearity='relu')
        return math.sqrt(2.0 / fan_out)
    if init == "xavier":  # xavier_uniform_: bound sqrt(6 / (fan_in + fan_out))
        return math.sqrt(6.0 / (fan_in + fan_out)) / math.sqrt(3.0)
    return 0.01  # normal_(0, 0.01)


@pytest.mark.parametrize("family,hidden,classifier", [
    ("resnet", "he", "he"),  # ResNetAcol: He (fan_out, relu) on every conv
    ("vgg", "xavier", "xavier"),  # VggAcol, InceptionAcol: Xavier-uniform on every conv
    ("inception", "xavier", "xavier"),
    ("efficientnet", "he", "normal"),  # other backbones: skcream's (acol.py, measured)
])
def test_acol_branch_initialisation_per_family(family, hidden, classifier):
    torch.manual_seed(0)
    backbone = build_backbone("test_resnet", trunk="acol")
    backbone.family = family  # the init follows the family; a small trunk keeps this cheap
    net = get_method("acol", {"acol_width": 256}).build_network(backbone, 100)
    for conv, init in ((net.hidden_a[0], hidden), (net.hidden_b[2], hidden),
                       (net.classifier_a, classifier), (net.classifier_b, classifier)):
        w = conv.weight.detach()
        assert float(w.std()) == pytest.approx(_init_std(conv, init), rel=0.1), (family, conv)
        assert not conv.bias.any()


def test_spg_classifier_is_xavier_on_every_backbone():
    # the reference's SPG_A4 / SPG_A_4 1x1 conv, initialize_weights(init_mode='xavier')
    torch.manual_seed(0)
    for name in ("test_resnet", "test_efficientnet"):
        net = get_method("spg").build(name, n_classes=100)
        d = net.head.in_features
        bound = math.sqrt(6.0 / (d + 100))
        assert float(net.head.weight.detach().abs().max()) <= bound
        assert float(net.head.weight.detach().std()) == pytest.approx(bound / math.sqrt(3.0), rel=0.1)
        assert not net.head.bias.any()


# ------------------------------------------------------------------ the one constructor
def test_a_backbone_built_for_another_method_is_refused():
    with torch.device("meta"):
        cam_trunk = build_backbone("vgg16")
        spg_trunk = build_backbone("inception_v3", trunk="spg")
    with pytest.raises(ValueError, match="trunk='cam'.*'acol' .*needs trunk='acol'"):
        get_method("acol").build_network(cam_trunk, 3)
    # the option keeps skcream's earlier ACoL: the branches on the CAM trunk (with conv6)
    net = get_method("acol", {"acol_trunk": "cam"}).build_network(cam_trunk, 3)
    assert net.hidden_a[0].in_channels == 1024
    # InceptionV3's SPG trunk is its CAM trunk: accepted for CAM
    get_method("cam").build_network(spg_trunk, 3)
    with pytest.raises(ValueError, match="trunk"):
        build_backbone("resnet50", trunk="psol")


def test_saves_from_before_the_reference_trunks_rebuild_their_network():
    # a saved net record without "networks" (skcream.methods.NETWORKS_REVISION) was fitted when
    # ACoL / SPG sat on the CAM trunk: it is rebuilt that way (acol_trunk / spg_trunk="cam")
    from skcream.estimators.localizer._fitted_state import build_model

    net = {"backbone": "vgg16", "feature_stage": None, "large_feature_map": False,
           "n_classes": 3, "method": "acol",
           "method_params": {"acol_threshold": 0.7, "acol_width": 1024,
                             "acol_cream_features": "branch"}}
    with torch.device("meta"):
        old = build_model(net)
        new = build_model({**net, "networks": 2})
        old_spg = build_model({**net, "method": "spg", "method_params": {}})
    assert old.backbone.trunk == "cam" and old.hidden_a[0].in_channels == 1024
    assert new.backbone.trunk == "acol" and new.hidden_a[0].in_channels == 512
    assert old_spg.backbone.trunk == "cam" and old_spg.head.in_features == 1024
    with pytest.raises(ValueError, match="acol_trunk.*one of"):
        get_method("acol", {"acol_trunk": "conv6"})
