"""Map sources: CAM and the gradient CAM family on any timm classifier.

The oracle is pytorch-grad-cam (the ``grad-cam`` package, a test dependency): same
network, same layer, same classes -> the same maps to float rounding, for every listed
CAM, on small random-init timm models. pytorch-grad-cam returns each map ReLU'd, min-max
scaled, resized to the input with OpenCV (bilinear) and min-max scaled again; the tests
apply exactly that to skcream's raw maps before comparing.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from skcream.cam import class_activation_maps, normalize_maps
from skcream.map_sources import (
    FEATURE_SOURCES,
    GRADIENT_CAMS,
    MAP_SOURCES,
    ClassifierNet,
    check_map_source,
    class_maps,
    eigen_cam,
    eigen_projection,
    gradient_cam,
    maps_from_features,
    score_cam_masks,
)
from skcream.reactivation import post_hoc_reactivate, reactivate_map

timm = pytest.importorskip("timm")
cv2 = pytest.importorskip("cv2")

SIZE = 96  # input side: feature grids of 3x3 (last layer) and 6x6 (an earlier one)
LABELS = torch.tensor([1, 4, 6])


def _oracle_classes() -> dict:
    gc = pytest.importorskip("pytorch_grad_cam")
    return {"gradcam": gc.GradCAM, "gradcam++": gc.GradCAMPlusPlus, "xgradcam": gc.XGradCAM,
            "layercam": gc.LayerCAM, "scorecam": gc.ScoreCAM, "eigencam": gc.EigenCAM}


def _net(name: str, seed: int = 0) -> tuple[nn.Module, ClassifierNet]:
    torch.manual_seed(seed)
    model = timm.create_model(name, num_classes=7).eval()
    return model, ClassifierNet.from_timm(model)


def _images(n: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def _oracle(cam: str, net: ClassifierNet, layer: str | None, x: torch.Tensor,
            labels: torch.Tensor | None) -> np.ndarray:
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    targets = None if labels is None else [ClassifierOutputTarget(int(c)) for c in labels]
    # ScoreCAM's progress bars go to stderr
    with contextlib.redirect_stderr(io.StringIO()):
        with _oracle_classes()[cam](model=net, target_layers=[net.layer(layer)]) as method:
            return method(x, targets)


def _as_oracle(maps: torch.Tensor, size: int = SIZE) -> np.ndarray:
    """pytorch-grad-cam's post-processing of raw maps: scale, resize (cv2), scale."""
    out = []
    for m in normalize_maps(maps).numpy():
        r = cv2.resize(np.float32(m), (size, size))
        r = r - r.min()
        out.append(r / (1e-7 + r.max()))
    return np.array(out)


CASES = [("test_resnet", None), ("test_resnet", "layer3"), ("test_efficientnet", None),
         ("test_efficientnet", "blocks.3"), ("test_convnext", None)]


@pytest.mark.parametrize("cam", [*GRADIENT_CAMS, "scorecam"])
@pytest.mark.parametrize("model_name, layer", CASES)
def test_gradient_cams_equal_pytorch_grad_cam(model_name, layer, cam):
    _, net = _net(model_name)
    x = _images()
    out = class_maps(net, x, LABELS, cam=cam, layer=layer)
    expected = _oracle(cam, net, layer, x, LABELS)
    got = _as_oracle(out.maps)
    assert expected.shape == got.shape == (3, SIZE, SIZE)
    assert expected.max() > 0.99  # not a degenerate all-zero map
    np.testing.assert_allclose(got, expected, atol=2e-5)
    # the map of an earlier layer stays on that layer's (finer) grid
    assert out.maps.shape[1:] == ((6, 6) if layer else tuple(out.features.shape[2:]))


@pytest.mark.parametrize("model_name, layer", CASES)
def test_eigencam_equals_pytorch_grad_cam_up_to_the_sign_of_the_component(model_name, layer):
    _, net = _net(model_name)
    x = _images()
    out = class_maps(net, x, None, cam="eigencam", layer=layer)
    expected = _oracle("eigencam", net, layer, x, None)
    # the signed projection of the same activations (captured the way class_maps does)
    acts = []
    handle = net.layer(layer).register_forward_hook(lambda m, i, o: acts.append(o.detach()))
    with torch.no_grad():
        net(x)
    handle.remove()
    projection = eigen_projection(acts[0])
    torch.testing.assert_close(out.maps, torch.relu(projection))
    same, flipped = _as_oracle(torch.relu(projection)), _as_oracle(torch.relu(-projection))
    for i in range(len(x)):
        err = min(np.abs(same[i] - expected[i]).max(), np.abs(flipped[i] - expected[i]).max())
        assert err < 2e-5, (i, err)


def test_top1_class_when_no_label_is_given():
    _, net = _net("test_resnet")
    x = _images()
    out = class_maps(net, x, None, cam="gradcam++")
    torch.testing.assert_close(out.labels, out.logits.argmax(1))
    np.testing.assert_allclose(_as_oracle(out.maps), _oracle("gradcam++", net, None, x, None),
                               atol=2e-5)
    torch.testing.assert_close(out.logits, net(x))


@pytest.mark.parametrize("cam", MAP_SOURCES)
def test_batched_maps_equal_one_image_at_a_time(cam):
    _, net = _net("test_efficientnet")
    x = _images()
    batch = class_maps(net, x, LABELS, cam=cam, score_batch_size=5)
    for i in range(len(x)):
        one = class_maps(net, x[i:i + 1], LABELS[i:i + 1], cam=cam)
        torch.testing.assert_close(batch.maps[i:i + 1], one.maps, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(batch.features[i:i + 1], one.features, rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------- linear heads, by hand
class _GapLinear(nn.Module):
    def __init__(self, d: int, c: int) -> None:
        super().__init__()
        self.fc = nn.Linear(d, c)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(f.mean(dim=(2, 3)))


def _gap_linear_net(seed: int = 0) -> ClassifierNet:
    torch.manual_seed(seed)
    body = nn.Sequential(nn.Conv2d(3, 8, 3, stride=4, padding=1), nn.ReLU(),
                         nn.Conv2d(8, 12, 3, stride=2, padding=1), nn.ReLU())
    head = _GapLinear(12, 5)
    return ClassifierNet(body, head, linear=head.fc)


@pytest.mark.parametrize("cam", FEATURE_SOURCES)
def test_maps_from_features_equal_the_network_maps_of_a_linear_head(cam):
    net = _gap_linear_net()
    x = _images(4)
    labels = torch.tensor([0, 3, 4, 2])
    out = class_maps(net, x, labels, cam=cam)
    direct = maps_from_features(out.features, net.linear.weight.detach(), labels, cam)
    torch.testing.assert_close(direct, out.maps, rtol=1e-5, atol=1e-7)


def test_gradcam_of_a_linear_head_is_the_relu_of_cam_over_the_pixel_count():
    net = _gap_linear_net()
    x = _images(4)
    labels = torch.tensor([0, 3, 4, 2])
    out = class_maps(net, x, labels, cam="gradcam")
    cam = class_maps(net, x, labels, cam="cam").maps
    h, w = cam.shape[1:]
    torch.testing.assert_close(out.maps, torch.relu(cam) / (h * w), rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(cam, class_activation_maps(out.features, net.linear.weight,
                                                          labels))


def test_gradient_cams_on_a_hand_computed_case():
    # two channels on a 1x2 grid; gradients chosen by hand
    a = torch.tensor([[[[1.0, 3.0]], [[2.0, 0.0]]]])  # (1, 2, 1, 2): S = (4, 2)
    g = torch.tensor([[[[0.5, -1.0]], [[2.0, 0.0]]]])
    # Grad-CAM: w = mean g = (-0.25, 1); map = -0.25 * (1, 3) + (2, 0) = (1.75, -0.75) -> relu
    torch.testing.assert_close(gradient_cam(a, g, "gradcam"), torch.tensor([[[1.75, 0.0]]]))
    # XGrad-CAM: w_k = sum g A / (S_k + 1e-7) = (0.5 - 3) / 4, 4 / 2 = (-0.625, 2)
    x = -0.625 * a[0, 0] + 2.0 * a[0, 1]
    torch.testing.assert_close(gradient_cam(a, g, "xgradcam"), torch.relu(x)[None], rtol=1e-6,
                               atol=1e-6)
    # LayerCAM: relu(g) * A summed over channels = (0.5 * 1 + 2 * 2, 0) = (4.5, 0)
    torch.testing.assert_close(gradient_cam(a, g, "layercam"), torch.tensor([[[4.5, 0.0]]]))
    # Grad-CAM++: alpha = g^2 / (2 g^2 + S g^3 + 1e-6) where g != 0; w = sum relu(g) alpha
    a00 = 0.25 / (0.5 + 4 * 0.125 + 1e-6)           # channel 0, pixel 0 (g = 0.5)
    a10 = 4.0 / (8.0 + 2 * 8.0 + 1e-6)              # channel 1, pixel 0 (g = 2)
    w = (0.5 * a00, 2.0 * a10)                      # negative / zero gradients add nothing
    pp = torch.relu(w[0] * a[0, 0] + w[1] * a[0, 1])
    torch.testing.assert_close(gradient_cam(a, g, "gradcam++"), pp[None], rtol=1e-6, atol=1e-7)


def test_eigen_projection_recovers_a_rank_one_pattern_with_the_object_positive():
    # every channel is (a non-negative multiple of) one spatial pattern: an object on
    # a quiet background; the principal component is that pattern, the object positive
    pattern = torch.zeros(5, 6)
    pattern[1:3, 2:5] = 1.0
    channels = torch.tensor([0.5, 2.0, 1.0, 0.1])
    acts = channels[None, :, None, None] * pattern[None, None] + 0.2
    p = eigen_projection(acts)[0]
    centred = pattern - pattern.mean()
    scale = float((p * centred).sum() / (centred * centred).sum())
    assert scale > 0
    torch.testing.assert_close(p, scale * centred, rtol=1e-4, atol=1e-5)
    assert eigen_cam(acts)[0][pattern == 0].abs().max() < 1e-5


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(2, 6), st.integers(2, 5))
def test_eigen_projection_is_positively_correlated_with_the_total_activation(seed, d, side):
    gen = torch.Generator().manual_seed(seed)
    acts = torch.rand(2, d, side, side + 1, generator=gen, dtype=torch.float64)
    p = eigen_projection(acts)
    total = acts.sum(dim=1)
    cov = ((p - p.mean(dim=(1, 2), keepdim=True))
           * (total - total.mean(dim=(1, 2), keepdim=True))).sum(dim=(1, 2))
    assert bool((cov >= -1e-9).all())
    # orientation only: the same map up to the sign as without it
    flat = acts.reshape(2, d, -1).transpose(1, 2)
    flat = flat - flat.mean(dim=1, keepdim=True)
    v = torch.linalg.svd(flat, full_matrices=False)[2][:, 0]
    raw = torch.bmm(flat, v[:, :, None])[:, :, 0].reshape(p.shape)
    assert torch.allclose(p.abs(), raw.abs(), atol=1e-9)


def test_score_cam_masks_are_min_max_scaled_upsampled_channels():
    acts = torch.arange(8.0).reshape(1, 2, 2, 2)
    acts[0, 1] = 0.0  # an all-zero channel: masked to 0 (its span is 0, +1e-8)
    masks = score_cam_masks(acts, (4, 4))
    assert masks.shape == (1, 2, 4, 4)
    # align_corners=True keeps the corners: min 0 at (0, 0), max ~1 at (3, 3)
    assert float(masks[0, 0, 0, 0]) == 0.0 and abs(float(masks[0, 0, 3, 3]) - 1.0) < 1e-7
    assert float(masks[0, 1].abs().max()) == 0.0


# ----------------------------------------------------------------- contract and errors
def test_class_maps_leaves_the_network_as_it_was():
    model, net = _net("test_resnet")
    model.train()
    model.layer2.eval()  # mixed modes are restored module by module
    for p in model.layer1.parameters():
        p.requires_grad_(False)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    modes = {n: m.training for n, m in model.named_modules()}
    grads = {n: p.requires_grad for n, p in model.named_parameters()}
    for cam in MAP_SOURCES:
        if cam != "cam":
            class_maps(net, _images(2), LABELS[:2], cam=cam, layer="layer3")
    with pytest.raises(ValueError, match="labels"):
        class_maps(net, _images(2), torch.tensor([0, 99]), cam="gradcam")
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert {n: p.requires_grad for n, p in model.named_parameters()} == grads
    assert all(p.grad is None for p in model.parameters())
    assert all(not m._forward_hooks for m in net.modules())
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]), n
    assert torch.is_grad_enabled()
    with torch.no_grad():  # the caller's grad mode is kept too
        class_maps(net, _images(2), LABELS[:2], cam="gradcam")
        assert not torch.is_grad_enabled()


def test_errors_name_the_argument():
    _, net = _net("test_resnet")
    x = _images(2)
    with pytest.raises(ValueError, match=r"cam must be one of .*'gradcam\+\+'.*got 'grad'"):
        class_maps(net, x, cam="grad")
    with pytest.raises(ValueError, match="layer 'layer5' is not a module.*close matches: layer"):
        class_maps(net, x, cam="gradcam", layer="layer5")
    with pytest.raises(ValueError, match="cam='cam' reads the last feature layer"):
        class_maps(net, x, cam="cam", layer="layer3")
    with pytest.raises(ValueError, match="ran 0 times"):  # the classifier is not a feature
        class_maps(net, x, cam="gradcam", layer="fc")
    with pytest.raises(ValueError, match=r"x must be a float image batch"):
        class_maps(net, x[0], cam="gradcam")
    with pytest.raises(ValueError, match="score_batch_size must be an int >= 1"):
        class_maps(net, x, cam="scorecam", score_batch_size=0)
    with pytest.raises(ValueError, match="Score-CAM masks the input image"):
        maps_from_features(torch.rand(1, 3, 2, 2), torch.rand(4, 3), torch.tensor([0]),
                           "scorecam")
    with pytest.raises(ValueError, match="cam must be one of"):
        check_map_source(None)
    # ConvNeXt's head normalises the pooled features: CAM is not defined, gradient CAMs are
    _, convnext = _net("test_convnext")
    with pytest.raises(ValueError, match="global average pooling \\+ its linear layer"):
        class_maps(convnext, x, cam="cam")
    assert class_maps(convnext, x, cam="gradcam").maps.shape == (2, 3, 3)


def test_class_maps_cam_equals_eq1_of_the_timm_head():
    model, net = _net("test_efficientnet")
    x = _images()
    out = class_maps(net, x, LABELS, cam="cam")
    weight = model.get_classifier().weight
    torch.testing.assert_close(out.maps, class_activation_maps(out.features, weight, LABELS))
    with torch.no_grad():
        torch.testing.assert_close(out.features, model.forward_features(x))


# ----------------------------------------------------------------- re-activation of a map
def test_reactivate_map_with_cam_is_post_hoc_reactivation():
    net = _gap_linear_net()
    out = class_maps(net, _images(4), torch.tensor([0, 3, 4, 2]), cam="cam")
    weight = net.linear.weight.detach()
    for output in ("final", "calibrated", "posterior", "cam"):
        expected = post_hoc_reactivate(out.features, weight, out.labels, n_iter=2, sigma=0.5,
                                       output=output)
        torch.testing.assert_close(reactivate_map(out.features, out.maps, n_iter=2, sigma=0.5,
                                                  output=output), expected)


def test_reactivate_map_starts_from_the_chosen_map():
    net = _gap_linear_net()
    out = class_maps(net, _images(4), torch.tensor([0, 3, 4, 2]), cam="layercam")
    final = reactivate_map(out.features, out.maps, n_iter=1, sigma=4.0)
    cam_final = post_hoc_reactivate(out.features, net.linear.weight.detach(), out.labels,
                                    n_iter=1, sigma=4.0)
    assert not torch.allclose(final, cam_final)
    # Eq. 12: the calibrated posterior plus the normalised chosen map
    calibrated = reactivate_map(out.features, out.maps, n_iter=1, sigma=4.0,
                                output="calibrated")
    torch.testing.assert_close(final, calibrated + normalize_maps(out.maps))
    # n_iter=0: the map itself
    torch.testing.assert_close(reactivate_map(out.features, out.maps, n_iter=0),
                               normalize_maps(out.maps))


def test_reactivate_map_resizes_a_finer_map_to_the_feature_grid():
    _, net = _net("test_resnet")
    out = class_maps(net, _images(2), LABELS[:2], cam="gradcam", layer="layer3")
    assert out.maps.shape[1:] == (6, 6) and out.features.shape[2:] == (3, 3)
    final = reactivate_map(out.features, out.maps, n_iter=1, sigma=64.0)
    assert final.shape == (2, 3, 3)
    plain = reactivate_map(out.features, out.maps, n_iter=0)
    assert plain.shape == (2, 6, 6)  # not re-activated: the map on its own grid
    with pytest.raises(ValueError, match="maps has 1 maps but features has 2"):
        reactivate_map(out.features, out.maps[:1])
