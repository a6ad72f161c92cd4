"""CAMNet: GAP + linear head, Eq. 2 (logit = mean of the CAM + bias), parameter split."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from skcream.backbones import build_backbone
from skcream.cam import class_activation_maps
from skcream.model import CAMNet


class _TinyBackbone(nn.Module):
    """A conv + ReLU feature map with a "new" 1x1 layer, for fast float64 checks."""

    num_features = 5

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, stride=2)
        self.new = nn.Conv2d(4, 5, 1)

    def forward(self, x):
        return torch.relu(self.new(torch.relu(self.conv(x))))

    def new_parameters(self):
        return list(self.new.parameters())

    def pretrained_parameters(self):
        return list(self.conv.parameters())


def _net(n_classes: int = 4, seed: int = 0) -> CAMNet:
    torch.manual_seed(seed)
    net = CAMNet(_TinyBackbone(), n_classes).double().eval()
    with torch.no_grad():  # a non-trivial head (the default init is N(0, 0.01), bias 0)
        net.head.weight.normal_()
        net.head.bias.normal_()
    return net


def test_forward_shapes_with_a_timm_backbone():
    net = CAMNet(build_backbone("test_resnet"), 3).eval()
    logits, features = net(torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, 3)
    assert features.shape == (2, 96, 4, 4)
    assert net.n_classes == 3
    assert net.head.weight.shape == (3, 96)


@settings(max_examples=20, deadline=None)
@given(
    batch=st.integers(1, 3),
    size=st.sampled_from([8, 12, 18]),
    n_classes=st.integers(2, 6),
    seed=st.integers(0, 2**16),
)
def test_eq2_logit_is_mean_cam_plus_bias(batch, size, n_classes, seed):
    net = _net(n_classes, seed)
    x = torch.randn(batch, 3, size, size, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(seed))
    logits, features = net(x)
    h, w = features.shape[-2:]
    cams = net.cams(features)  # (B,C,h,w)
    assert cams.shape == (batch, n_classes, h, w)
    torch.testing.assert_close(cams.sum(dim=(2, 3)) / (h * w) + net.head.bias, logits)


def test_cams_by_hand_and_per_label():
    net = _net(3)
    features = torch.arange(2 * 5 * 2 * 2, dtype=torch.float64).reshape(2, 5, 2, 2)
    weight = net.head.weight.detach()
    by_hand = torch.zeros(2, 3, 2, 2, dtype=torch.float64)
    for b in range(2):
        for c in range(3):
            for k in range(5):
                by_hand[b, c] += weight[c, k] * features[b, k]
    torch.testing.assert_close(net.cams(features), by_hand)
    labels = torch.tensor([2, 0])
    torch.testing.assert_close(net.cams(features, labels), by_hand[[0, 1], [2, 0]])
    torch.testing.assert_close(
        net.cams(features, labels), class_activation_maps(features, weight, labels)
    )


def test_cams_promote_low_precision_features():
    net = CAMNet(_TinyBackbone(), 3)
    features = torch.rand(1, 5, 3, 3).bfloat16()
    out = net.cams(features, torch.tensor([1]))
    assert out.dtype == torch.float32
    torch.testing.assert_close(
        out, class_activation_maps(features.float(), net.head.weight, torch.tensor([1]))
    )


def test_batch_permutation_and_single_image_consistency():
    net = _net(4)
    x = torch.randn(4, 3, 10, 10, dtype=torch.float64)
    perm = torch.tensor([2, 0, 3, 1])
    logits, _ = net(x)
    torch.testing.assert_close(net(x[perm])[0], logits[perm])
    torch.testing.assert_close(torch.cat([net(x[i:i + 1])[0] for i in range(4)]), logits)


def test_head_initialisation_and_parameter_split():
    torch.manual_seed(0)
    net = CAMNet(_TinyBackbone(), 50)
    assert torch.all(net.head.bias == 0)
    assert net.head.weight.std().item() == pytest.approx(0.01, rel=0.2)
    new = {id(p) for p in net.new_parameters()}
    old = {id(p) for p in net.pretrained_parameters()}
    assert new == {id(net.head.weight), id(net.head.bias), id(net.backbone.new.weight),
                   id(net.backbone.new.bias)}
    assert old == {id(net.backbone.conv.weight), id(net.backbone.conv.bias)}
    # a ResNet: no new layer, but layer4 trains at 10x with the head (wsolevaluation's main.py)
    plain = CAMNet(build_backbone("test_resnet"), 2)
    layer4 = {id(p) for p in plain.backbone.body.model.layer4.parameters()}
    assert layer4
    assert {id(p) for p in plain.new_parameters()} == (
        {id(plain.head.weight), id(plain.head.bias)} | layer4
    )


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_classes"):
        CAMNet(_TinyBackbone(), 1)
    with pytest.raises(TypeError, match="n_classes"):
        CAMNet(_TinyBackbone(), 2.0)
    with pytest.raises(TypeError, match="num_features"):
        CAMNet(nn.Conv2d(3, 4, 1), 3)
