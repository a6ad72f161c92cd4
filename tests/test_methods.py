"""The WSOL methods' training hooks on hand-made tensors (skcream.methods).

Each test checks what the method's paper / wsolevaluation describes: HaS hides whole grid
cells at the given rate, CutMix mixes labels by area, ADL's drop mask and importance map,
ACoL erases the first branch's high-activation region, SPG's thresholds; plus the
inference-only normalisations (CAM_IVR, RCAM) and the parameter validation.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from sklearn.base import clone

from skcream import CREAMLocalizer
from skcream.cam import class_activation_maps, normalize_maps
from skcream.methods import METHODS, get_method
from skcream.methods.acol import ACoLNet, acol_erase
from skcream.methods.adl import ADLHook, adl, adl_drop_mask, adl_importance_map
from skcream.methods.cutmix import cutmix, cutmix_box
from skcream.methods.has import hide_patches
from skcream.methods.normalization import normalize, normalize_ivr, normalize_pas
from skcream.methods.spg import spg_loss, spg_mask


# ----------------------------------------------------------------------------- HaS
@pytest.mark.parametrize("size, grid", [((16, 16), 4), ((18, 13), 4), ((12, 12), 5)])
def test_has_hides_whole_cells(size, grid):
    h, w = size
    images = torch.rand(8, 3, h, w) + 1.0  # never 0 before hiding
    out = hide_patches(images, grid, 0.5, torch.Generator().manual_seed(0))
    for y in range(0, h, grid):
        for x in range(0, w, grid):
            cell = out[:, :, y : y + grid, x : x + grid]
            zero = (cell == 0).flatten(1)
            same = (cell == images[:, :, y : y + grid, x : x + grid]).flatten(1)
            # every cell of every image: all channels hidden, or untouched
            assert bool((zero.all(1) | same.all(1)).all())


def test_has_rate_and_extremes():
    images = torch.ones(64, 1, 32, 32)
    g = torch.Generator().manual_seed(1)
    out = hide_patches(images, 4, 0.3, g)
    cells = out[:, 0, ::4, ::4]  # one pixel per cell: 64 * 64 cells
    assert abs(float((cells == 0).float().mean()) - 0.3) < 0.03
    assert torch.equal(hide_patches(images, 4, 0.0, g), images)
    assert float(hide_patches(images, 4, 1.0, g).abs().sum()) == 0.0
    assert hide_patches(images, 0, 0.5) is images  # grid 0: off (the reference's convention)


# ----------------------------------------------------------------------------- CutMix
def test_cutmix_box_is_clipped():
    assert cutmix_box(10, 10, 0.75, (0, 0)) == (0, 0, 2, 2)  # side 5 centred at a corner
    assert cutmix_box(10, 10, 0.75, (5, 5)) == (3, 3, 7, 7)
    assert cutmix_box(10, 10, 1.0, (5, 5)) == (5, 5, 5, 5)  # lam 1: empty box


@pytest.mark.parametrize("seed", range(5))
def test_cutmix_mixes_labels_by_area(seed):
    torch.manual_seed(seed)
    b, h, w = 6, 12, 10
    images = torch.arange(b, dtype=torch.float32).view(b, 1, 1, 1).expand(b, 2, h, w).clone()
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    mixed, labels_b, lam = cutmix(images, labels, beta=1.0)
    assert torch.equal(images[:, :, 0, 0], torch.arange(b, dtype=torch.float32)[:, None].expand(b, 2))
    pasted = mixed != images  # images have distinct constant values: changed == pasted
    for i in range(b):
        source = int(mixed[i].max()) if pasted[i].any() else i
        if source != i:
            # the pasted pixels come from one other image, whose label is labels_b[i]
            assert set(mixed[i][pasted[i]].tolist()) == {float(source)}
            assert int(labels_b[i]) == int(labels[source])
            assert float(pasted[i, 0].float().mean()) == pytest.approx(1.0 - lam)
    # the loss weights the two labels by area
    logits = torch.randn(b, 3)
    method = get_method("cutmix")
    loss = method.loss((logits, None, labels_b, lam), {"label": labels})
    expected = lam * F.cross_entropy(logits, labels) + (1 - lam) * F.cross_entropy(logits, labels_b)
    assert float(loss) == pytest.approx(float(expected))


def test_cutmix_prob_zero_never_mixes():
    method = get_method("cutmix", {"cutmix_prob": 0.0})
    seen = {}

    def model(x):
        seen["x"] = x
        return torch.zeros(len(x), 2), x

    batch = {"image": torch.rand(4, 3, 8, 8), "label": torch.tensor([0, 1, 0, 1])}
    _, _, labels_b, lam = method.forward(model, batch)
    assert seen["x"] is batch["image"] and lam == 1.0 and torch.equal(labels_b, batch["label"])


# ----------------------------------------------------------------------------- ADL
def test_adl_drop_mask_and_importance_map():
    # channel means: [[0, 1], [2, 4]] -> max 4; threshold 0.5 drops >= 2
    features = torch.tensor([[[[0.0, 2.0], [4.0, 8.0]], [[0.0, 0.0], [0.0, 0.0]]]])
    attention = features.mean(dim=1, keepdim=True)
    assert torch.equal(adl_drop_mask(attention, 0.5)[0, 0], torch.tensor([[1.0, 1.0], [0.0, 0.0]]))
    assert torch.allclose(adl_importance_map(attention), torch.sigmoid(attention))
    assert torch.equal(adl(features, 0.75, 0.5, use_drop=True), features * adl_drop_mask(attention, 0.5))
    assert torch.allclose(adl(features, 0.75, 0.5, use_drop=False), features * torch.sigmoid(attention))


def test_adl_hook_rate_and_identity_at_inference():
    layer = torch.nn.Identity()
    layer.register_forward_hook(ADLHook(drop_rate=0.75, threshold=0.9))
    x = torch.rand(2, 4, 5, 5) + 0.1
    layer.eval()
    assert torch.equal(layer(x), x)
    layer.train()
    torch.manual_seed(0)
    drops = [bool((layer(x) == 0).any()) for _ in range(400)]  # only the drop mask zeroes
    assert abs(sum(drops) / 400 - 0.75) < 0.07


def test_adl_places_on_a_resnet_follow_wsolevaluation():
    from skcream.backbones import build_backbone
    from skcream.methods._positions import adl_points, spg_points

    bb = build_backbone("test_resnet")
    body = bb.body.model
    points = adl_points(bb)
    assert points[0] is body.layer3[0] and points[1] is body.layer4[0] and points[2] is body.layer4
    assert spg_points(bb) == (body.layer3[0], body.layer3)
    net = get_method("adl").build_network(bb, 2)
    assert set(net.state_dict()) == set(CREAMLocalizer_state_keys(bb))  # no new parameters


def CREAMLocalizer_state_keys(backbone):
    from skcream.model import CAMNet

    return CAMNet(backbone, 2).state_dict().keys()


def test_adl_refused_where_there_is_no_second_stage():
    from skcream.backbones import build_backbone

    bb = build_backbone("test_resnet", feature_stage=0)
    with pytest.raises(ValueError, match="method='adl'.*two feature stages"):
        get_method("adl").build_network(bb, 2)


# ----------------------------------------------------------------------------- ACoL
def test_acol_erases_the_high_activation_region():
    features = torch.ones(1, 3, 2, 2)
    maps = torch.tensor([[[0.0, 1.0], [0.5, 0.8]]]) * 4 - 1  # any scale: normalised inside
    erased = acol_erase(features, maps, 0.7)
    assert torch.equal(erased[0, 0], torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
    assert torch.equal(erased[0, 1], erased[0, 0])


def test_acol_network_branches_and_fused_map():
    from skcream.backbones import build_backbone

    torch.manual_seed(0)
    net = ACoLNet(build_backbone("test_resnet"), 3, threshold=0.7, width=8).eval()
    x = torch.randn(2, 3, 32, 32)
    labels = torch.tensor([2, 0])
    logits, feats, logits_b = net(x, labels, aux=True)
    maps_a = net.classifier_a(net.hidden_a(feats))
    assert torch.allclose(logits, maps_a.mean(dim=(2, 3)), atol=1e-6)
    own = maps_a[torch.arange(2), labels]
    maps_b = net.classifier_b(net.hidden_b(acol_erase(feats, own, 0.7)))
    assert torch.allclose(logits_b, maps_b.mean(dim=(2, 3)), atol=1e-6)
    hidden, fused = net.readout(feats, labels)
    assert torch.allclose(hidden, net.hidden_a(feats)) and net.readout_dim == 8
    expected = torch.maximum(normalize_maps(own), normalize_maps(maps_b[torch.arange(2), labels]))
    assert torch.allclose(fused, expected, atol=1e-6)
    # the other choice of CREAM's feature space: the backbone's, same fused map
    net.cream_features, net.readout_dim = "backbone", feats.shape[1]
    same, fused2 = net.readout(feats, labels)
    assert same is feats and torch.equal(fused2, fused)


# ----------------------------------------------------------------------------- SPG
def test_spg_mask_thresholds():
    a = torch.tensor([[[0.9, 0.8, 0.5], [0.3, 0.005, 0.0]]])
    m = spg_mask(a, high=0.7, low=0.01, min_foreground=2)
    assert m.tolist() == [[[1.0, 1.0, -1.0], [-1.0, 0.0, 0.0]]]
    # fewer than min_foreground pixels above `high`: > 0.7 * max instead
    b = torch.tensor([[[0.5, 0.4, 0.3], [0.2, 0.1, 0.0]]])
    # 0.7 * 0.5 = 0.35: 0.5 and 0.4 are foreground
    assert spg_mask(b, high=0.7, low=0.05, min_foreground=1).tolist() == [[[1.0, 1.0, -1.0], [-1.0, -1.0, 0.0]]]
    # background wins over foreground (the reference applies it last)
    c = torch.full((1, 2, 2), 0.5)
    assert spg_mask(c, high=0.1, low=0.6, min_foreground=1).tolist() == [[[0.0, 0.0], [0.0, 0.0]]]


def test_spg_loss_equals_its_definition():
    torch.manual_seed(0)
    b, size = 2, (8, 8)
    logits = torch.randn(b, 3)
    labels = torch.tensor([1, 2])
    b1, b2, c = torch.randn(b, 1, 4, 4), torch.randn(b, 1, 4, 4), torch.randn(b, 1, 4, 4)
    cam = torch.randn(b, 4, 4)
    t = get_method("spg").params
    loss = spg_loss((logits, None, b1, b2, c, cam), labels, size, t)

    def up(m):
        return F.interpolate(m.view(b, 1, 4, 4), size=size, mode="bilinear", align_corners=False)[:, 0]

    def bce(z, target):
        keep = target >= 0
        return F.binary_cross_entropy_with_logits(z[keep], target[keep])

    att = normalize_maps(up(cam))
    fused = (torch.sigmoid(up(b1)) + torch.sigmoid(up(b2))) / 2
    expected = (
        F.cross_entropy(logits, labels)
        + bce(up(b2), spg_mask(att, 0.7, 0.01))
        + bce(up(b1), spg_mask(torch.sigmoid(up(b2)), 0.5, 0.05))
        + bce(up(c), spg_mask(fused, 0.7, 0.1))
    )
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)


def test_spg_branches_are_xavier_initialised_as_the_reference():
    # wsolevaluation's VggSpg / ResNetSpg / InceptionSpg: initialize_weights(init_mode='xavier').
    # He fan_out init (the former bug) gives the last 1x1 conv to one channel std sqrt(2) per
    # weight, aux logits of ~300 at step 1 and NaN within two epochs at the DEMO's lr.
    from skcream.backbones import build_backbone
    from skcream.methods.spg import SPGNet

    torch.manual_seed(0)
    net = SPGNet(build_backbone("test_resnet"), 3)
    convs = [m for branch in (net.spg_b1, net.spg_b2, net.spg_b_shared, net.spg_c)
             for m in branch.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 6
    for conv in convs:
        fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
        fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
        bound = (6.0 / (fan_in + fan_out)) ** 0.5
        w = conv.weight.detach()
        assert float(w.abs().max()) <= bound
        if w.numel() >= 1000:  # uniform on [-bound, bound]: std bound / sqrt(3) (He: ~sqrt(2)x more)
            assert float(w.std()) == pytest.approx(bound / 3**0.5, rel=0.1)
        assert torch.equal(conv.bias.detach(), torch.zeros_like(conv.bias))
    # hand-made images (a horizontal and a vertical ramp): at initialisation the auxiliary
    # logits are small (measured max 0.6 over seeds 0-2; He init: 3-12), so the first BCE
    # steps start near log(2) instead of saturated
    ramp = torch.linspace(-1, 1, 32)
    x = torch.stack([ramp.view(1, 32).expand(32, 32), ramp.view(32, 1).expand(32, 32)])
    x = x.unsqueeze(1).expand(2, 3, 32, 32).contiguous()
    with torch.no_grad():
        _, _, b1, b2, c, _ = net.train()(x, torch.tensor([0, 1]), aux=True)
    for aux in (b1, b2, c):
        assert aux.shape[:2] == (2, 1) and float(aux.abs().max()) < 2.0


# ----------------------------------------------------------------------------- normalisations
def test_ivr_and_pas_by_hand():
    m = torch.arange(10, dtype=torch.float64).view(1, 2, 5)
    # nearest 0.4-quantile of 0..9 is 4: max(x - 4, 0) / 5
    assert torch.allclose(normalize_ivr(m, 0.4), ((m - 4).clamp_min(0) / 5))
    # nearest 0.9-quantile is 8: min(x / 8, 1)
    assert torch.allclose(normalize_pas(m, 0.9), (m / 8).clamp_max(1))
    assert torch.allclose(normalize(m, "ivr", 0.0), normalize_maps(m))
    assert torch.allclose(normalize(m, "pas", 1.0), normalize_maps(m))
    flat = torch.ones(1, 3, 3)
    assert float(normalize(flat, "ivr").abs().sum()) == 0 == float(normalize(flat, "pas").abs().sum())


def test_negative_weight_clamping():
    from skcream.model import CAMNet

    backbone = torch.nn.Conv2d(3, 4, 1)
    backbone.num_features = 4
    net = CAMNet(backbone, 3)
    feats = torch.randn(2, 4, 3, 3)
    labels = torch.tensor([0, 2])
    _, clamped = net.readout(feats, labels, clamp_negative_weights=True)
    assert torch.allclose(clamped, class_activation_maps(feats, net.head.weight.clamp_min(0), labels))
    assert torch.allclose(net.readout(feats, labels)[1], net.cams(feats, labels))


# ----------------------------------------------------------------------------- parameters
def test_get_method_validates():
    assert set(METHODS) == {"cam", "has", "acol", "spg", "adl", "cutmix"}
    assert get_method("has").params == {"has_grid_size": 4, "has_drop_rate": 0.5}
    assert get_method("adl").params == {"adl_drop_rate": 0.75, "adl_threshold": 0.9}
    assert get_method("cutmix").params == {"cutmix_beta": 1.0, "cutmix_prob": 1.0}
    assert get_method("acol").params["acol_threshold"] == 0.7
    assert get_method("spg").params["spg_threshold_2l"] == 0.05
    # keys of other methods: validated, not used (one dict for a grid over `method`)
    assert get_method("cam", {"has_drop_rate": 0.2}).params == {}
    with pytest.raises(ValueError, match="method must be one of"):
        get_method("gradcam")
    with pytest.raises(ValueError, match=r"unknown keys \['has_rate'\].*has_drop_rate"):
        get_method("has", {"has_rate": 0.2})
    with pytest.raises(ValueError, match=r"method_params\['has_drop_rate'\] must be a finite number in \[0.0, 1.0\]"):
        get_method("cam", {"has_drop_rate": 2.0})
    with pytest.raises(TypeError, match=r"method_params\['has_grid_size'\] must be an int"):
        get_method("has", {"has_grid_size": 2.5})
    with pytest.raises(TypeError, match="method_params must be a dict"):
        get_method("has", [("has_grid_size", 2)])
    with pytest.raises(ValueError, match=r"acol_cream_features'\] must be one of"):
        get_method("acol", {"acol_cream_features": "head"})


@pytest.mark.parametrize(
    "params, match",
    [
        ({"method": "gradcam"}, "method must be one of"),
        ({"method_params": {"acol_treshold": 0.5}}, "unknown keys"),
        ({"map_normalization": "zscore"}, "map_normalization"),
        ({"normalization_percentile": 1.5}, "normalization_percentile"),
        ({"clamp_negative_weights": "yes"}, "clamp_negative_weights"),
    ],
)
def test_estimator_refuses_bad_method_params_before_training(params, match):
    from skcream.estimators.localizer._validation import validate_params

    est = CREAMLocalizer(**params)
    with pytest.raises((ValueError, TypeError), match=match):
        validate_params(est.get_params(deep=False), fitting=False)


def test_clone_keeps_method_params_independent():
    params = {"has_grid_size": 8}
    est = CREAMLocalizer(method="has", method_params=params)
    c = clone(est)
    assert c.get_params()["method_params"] == params and c.method == "has"
    c.method_params["has_grid_size"] = 2
    assert est.method_params == {"has_grid_size": 8}
