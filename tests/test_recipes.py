"""Recipe fidelity: the paper's backbones and recipes against wsolevaluation (commit 96f4b88).

The oracles here are written from the reference's rules, not from skcream's code:
``main.py``'s ``_FEATURE_PARAM_LAYER_PATTERNS`` (which parameters get 10x), its
``adjust_learning_rate`` loop (when the lr drops), ``wsol/util.py``'s
``initialize_weights`` (He / Xavier / N(0, 0.01)) and ``data_loaders.py``'s normalisation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from sklearn.base import clone
from torch import nn

import skcream.weights
from skcream.backbones import IMAGENET_MEAN, IMAGENET_STD, WSOL_WEIGHTS, build_backbone
from skcream.estimators._common import train_config
from skcream.estimators.localizer import CREAMLocalizer
from skcream.estimators.localizer._validation import validate_params
from skcream.model import CAMNet
from skcream.recipes import BACKBONES, DATASETS, Recipe, benchmark_milestones, recipe
from skcream.training import TrainConfig, parameter_groups, train

N_CLASSES = 200  # enough head entries for initialisation statistics


@pytest.fixture(scope="module")
def nets() -> dict[str, CAMNet]:
    """The three benchmark networks (random weights), built once for the module."""
    torch.manual_seed(0)
    return {name: CAMNet(build_backbone(name), N_CLASSES) for name in BACKBONES}


# ------------------------------------------------------------ parameter groups (main.py)
def _benchmark_name(backbone: str, ours: str) -> str:
    """Our parameter name -> the name of the same tensor in wsolevaluation's model."""
    if ours.startswith("head."):
        return ("SPG_A4." if backbone == "inception_v3" else "fc.") + ours.split(".", 1)[1]
    if ours.startswith("backbone.extra."):
        index, leaf = ours[len("backbone.extra."):].split(".")
        if backbone == "vgg16":
            return f"conv6.{leaf}"
        return {"1": "SPG_A3_1b.0.", "4": "SPG_A3_2b.0."}[index] + leaf
    body = ours[len("backbone.body."):]
    if backbone == "resnet50":
        return body[len("model."):]  # conv1..., layer4...
    return body if backbone == "inception_v3" else f"features.{body}"  # Mixed_... / conv N


_FEATURE_PATTERNS = {  # main.py, Trainer._FEATURE_PARAM_LAYER_PATTERNS
    "vgg16": ["features."],
    "resnet50": ["layer4.", "fc."],
    "inception_v3": ["Mixed", "Conv2d_1", "Conv2d_2", "Conv2d_3", "Conv2d_4"],
}


def _benchmark_is_10x(backbone: str, name: str) -> bool:
    hit = any(p in name for p in _FEATURE_PATTERNS[backbone])
    # vgg16 / inception_v3: matches are the features (1x); resnet50: matches are 10x
    return hit if backbone == "resnet50" else not hit


@pytest.mark.parametrize("backbone", BACKBONES)
def test_parameter_groups_follow_main_py(nets, backbone):
    model = nets[backbone]
    names = {id(p): n for n, p in model.named_parameters()}
    groups = parameter_groups(model, 1e-3, 10.0)
    assert [g["lr"] for g in groups] == [1e-3, pytest.approx(1e-2)]
    fast = {names[id(p)] for p in groups[1]["params"]}
    slow = {names[id(p)] for p in groups[0]["params"]}
    assert fast | slow == set(names.values()) and not fast & slow
    for name in names.values():
        assert (name in fast) == _benchmark_is_10x(backbone, _benchmark_name(backbone, name)), name
    expected_fast = {
        "vgg16": {"backbone.extra.0.weight", "backbone.extra.0.bias", "head.weight", "head.bias"},
        "inception_v3": {"backbone.extra.1.weight", "backbone.extra.1.bias",
                         "backbone.extra.4.weight", "backbone.extra.4.bias",
                         "head.weight", "head.bias"},
    }
    if backbone in expected_fast:
        assert fast == expected_fast[backbone]
    else:  # layer4 (3 bottlenecks: 3 convs + 3 BNs each, a downsample conv + BN) + head
        layer4 = {n for n in names.values() if n.startswith("backbone.body.model.layer4.")}
        assert fast == layer4 | {"head.weight", "head.bias"}
        assert len(layer4) == 3 * 3 * 3 + 3
        assert not any(n.startswith("backbone.body.model.layer3.") for n in fast)


def test_feature_stage_resnet_has_no_layer4_group():
    net = CAMNet(build_backbone("test_resnet", feature_stage=2), 3)
    names = {id(p): n for n, p in net.named_parameters()}
    assert {names[id(p)] for p in net.new_parameters()} == {"head.weight", "head.bias"}


# ------------------------------------------------------------------- heads and maps
@pytest.mark.parametrize("backbone,dim", [("vgg16", 1024), ("resnet50", 2048),
                                          ("inception_v3", 1024)])
def test_head_shapes_and_exact_cam(nets, backbone, dim):
    model = nets[backbone].eval()
    assert tuple(model.head.weight.shape) == (N_CLASSES, dim)
    assert tuple(model.head.bias.shape) == (N_CLASSES,)
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        logits, features = model(x)
        cams = model.cams(features)
    assert logits.shape == (2, N_CLASSES) and features.shape == (2, dim, 6, 6)
    # Eq. 2 holds in eval mode for every backbone (InceptionV3's dropout is off)
    torch.testing.assert_close(logits, cams.mean(dim=(2, 3)) + model.head.bias, rtol=1e-4,
                               atol=1e-5)
    # the benchmark's InceptionV3 CAM is its 1x1 conv output, bias included: the same map
    # after min-max normalisation
    from skcream.cam import normalize_maps

    with_bias = cams + cams.std() * torch.randn(N_CLASSES)[None, :, None, None]
    torch.testing.assert_close(normalize_maps(with_bias.flatten(0, 1)),
                               normalize_maps(cams.flatten(0, 1)), rtol=0, atol=1e-5)


def test_inception_head_dropout_is_the_benchmarks_1x1_conv_after_dropout(nets):
    model = nets["inception_v3"]
    assert model.head_dropout == 0.5
    model.train()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        torch.manual_seed(3)
        logits, features = model(x)
        # the same draws again: the backbone's two dropouts, then the head's
        torch.manual_seed(3)
        again = model.backbone(x)
        dropped = F.dropout(again, 0.5, training=True)
        conv = nn.Conv2d(1024, N_CLASSES, 1)  # wsolevaluation's SPG_A4, then GAP
        conv.weight.copy_(model.head.weight[:, :, None, None])
        conv.bias.copy_(model.head.bias)
        reference = conv(dropped).mean(dim=(2, 3))
    model.eval()
    torch.testing.assert_close(features, again)  # the returned map is not dropped
    torch.testing.assert_close(logits, reference, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(logits, model.head(features.mean(dim=(2, 3))))


def test_only_inception_has_head_dropout(nets):
    assert nets["vgg16"].head_dropout == 0.0 and nets["resnet50"].head_dropout == 0.0
    extra = nets["inception_v3"].backbone.extra
    assert [type(m).__name__ for m in extra] == ["Dropout", "Conv2d", "ReLU", "Dropout",
                                                  "Conv2d", "ReLU"]


# ----------------------------------------------------------- initialisation (util.py)
def _uniform_bound(fan_in: int, fan_out: int) -> float:
    return math.sqrt(6.0 / (fan_in + fan_out))


def test_vgg16_new_layers_he_and_normal_head(nets):
    model = nets["vgg16"]
    conv6 = model.backbone.extra[0]
    assert conv6.weight.std().item() == pytest.approx(math.sqrt(2 / (1024 * 9)), rel=0.02)
    assert abs(conv6.weight.mean().item()) < 1e-4
    assert torch.count_nonzero(conv6.bias) == 0
    assert model.head.weight.std().item() == pytest.approx(0.01, rel=0.02)
    assert torch.count_nonzero(model.head.bias) == 0


def test_resnet50_normal_head(nets):
    head = nets["resnet50"].head
    assert head.weight.std().item() == pytest.approx(0.01, rel=0.02)
    assert torch.count_nonzero(head.bias) == 0


def test_inception_new_layers_and_head_xavier(nets):
    model = nets["inception_v3"]
    convs = [m for m in model.backbone.extra if isinstance(m, nn.Conv2d)]
    layers = [(convs[0].weight, 768 * 9, 1024 * 9), (convs[1].weight, 1024 * 9, 1024 * 9),
              (model.head.weight, 1024, N_CLASSES)]  # the 1x1 conv: fans 1024 and C
    for weight, fan_in, fan_out in layers:
        bound = _uniform_bound(fan_in, fan_out)
        assert weight.abs().max().item() <= bound * (1 + 1e-6)  # float32 rounding
        assert weight.abs().max().item() > 0.99 * bound
        # uniform on [-b, b]: std b / sqrt(3) (He's normal would have sqrt(2 / fan_out))
        assert weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.02)
    for bias in (convs[0].bias, convs[1].bias, model.head.bias):
        assert torch.count_nonzero(bias) == 0


# -------------------------------------------------------- weights and normalisation
@pytest.mark.parametrize("backbone", BACKBONES)
def test_imagenet_normalisation(nets, backbone):
    config = nets[backbone].backbone.data_config
    assert tuple(config["mean"]) == IMAGENET_MEAN == (0.485, 0.456, 0.406)
    assert tuple(config["std"]) == IMAGENET_STD == (0.229, 0.224, 0.225)


@pytest.fixture
def offline_hub(monkeypatch):
    """timm's hub download fails (no network) while the hub looks reachable (conftest sets
    HF_HUB_OFFLINE, which would stop before asking timm); the list of names timm was asked for."""
    asked = []
    real = timm.create_model

    def offline(name, *args, **kwargs):
        if kwargs.get("pretrained"):
            asked.append(name)
            raise OSError("no network")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(timm, "create_model", offline)
    monkeypatch.setattr(skcream.weights, "_hub_unreachable_reason", lambda: None)
    return asked


@pytest.mark.parametrize("backbone,url_part", [
    ("vgg16", "huggingface.co/timm/vgg16.tv_in1k/resolve/main/model.safetensors"),
    ("resnet50", "download.pytorch.org/models/resnet50-0676ba61.pth"),
    ("inception_v3", "download.pytorch.org/models/inception_v3_google-1a9a5a14.pth"),
])
def test_pretrained_asks_for_the_benchmark_weights(offline_hub, backbone, url_part):
    asked = offline_hub
    with pytest.raises(ConnectionError) as info:
        build_backbone(backbone, pretrained=True)
    assert asked == [WSOL_WEIGHTS[backbone]] == [f"{backbone}.tv_in1k"]
    message = str(info.value)
    assert f"'{backbone}.tv_in1k'" in message and url_part in message
    assert f"pretrained='/path/to/{backbone}.tv_in1k.safetensors'" in message


def test_explicit_tag_and_weights_record(offline_hub):
    asked = offline_hub
    with pytest.raises(ConnectionError, match="resnet50_a1_0-14fe96d1"):
        build_backbone("resnet50.a1_in1k", pretrained=True)
    assert asked == ["resnet50.a1_in1k"]
    assert build_backbone("test_resnet").weights is None


def test_torchvision_inception_file_loads(tmp_path):
    import torchvision

    torch.manual_seed(0)
    tv = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    state = tv.state_dict()
    assert any(k.startswith("AuxLogits.") for k in state)
    path = tmp_path / "inception_v3_google.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    backbone = build_backbone("inception_v3", pretrained=path)
    assert backbone.weights == str(path)
    ours = backbone.body.state_dict()
    for key in ("Conv2d_1a_3x3.conv.weight", "Mixed_6a.branch3x3.conv.weight",
                "Mixed_6e.branch_pool.bn.running_var"):
        torch.testing.assert_close(ours[key], state[key])


def test_torchvision_resnet50_file_loads(tmp_path):
    # the benchmark's resnet50-19c8e357.pth has torchvision's key names; layer4 and the
    # stem both arrive (VGG16's file, checked once by hand, is too slow to build here)
    import torchvision

    torch.manual_seed(0)
    state = torchvision.models.resnet50(weights=None).state_dict()
    path = tmp_path / "resnet50.pth"
    torch.save(state, path)
    ours = build_backbone("resnet50", pretrained=path).body.state_dict()
    assert len(ours) == len(state) - 2  # all but fc.weight / fc.bias
    for key, value in ours.items():
        torch.testing.assert_close(value, state[key[len("model."):]], rtol=0, atol=0)


def test_torchvision_only_keys_are_not_a_free_pass(tmp_path):
    # an unrelated key still fails; the VGG classifier prefix is only skipped for VGGs
    from skcream.backbones import _drop_torchvision_only

    state = {"features.0.weight": torch.zeros(1), "classifier.0.weight": torch.zeros(1),
             "AuxLogits.fc.weight": torch.zeros(1)}
    model = {"features.0.weight": None}
    assert set(_drop_torchvision_only(state, model, "vgg")) == {"features.0.weight",
                                                                "AuxLogits.fc.weight"}
    assert set(_drop_torchvision_only(state, model, "resnet")) == set(state)


# ----------------------------------------------------------------------------- recipes
def _benchmark_lrs(epochs: int, frequency: int, lr: float) -> list[float]:
    """The lr each epoch trains at in wsolevaluation's main.py loop."""
    out = []
    for epoch in range(epochs):
        if epoch + 1 != 0 and (epoch + 1) % frequency == 0:  # adjust_learning_rate(epoch + 1)
            lr *= 0.1
        out.append(lr)
    return out


def _scheduled_lrs(config: TrainConfig) -> list[float]:
    """The lr of each epoch under skcream's scheduler (as train() steps it)."""
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=config.lr, momentum=0.9, nesterov=config.nesterov)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(config.lr_milestones), config.lr_gamma)
    out = []
    for _ in range(config.epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


PAPER = {"CUB": (50, 15, 200), "ILSVRC": (6, 2, 1000), "OpenImages": (10, 3, 100)}


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("backbone", BACKBONES)
def test_recipe_contents(dataset, backbone):
    r = recipe(dataset, backbone)
    epochs, period, n_classes = PAPER[dataset]
    assert isinstance(r, Recipe) and (r.dataset, r.backbone) == (dataset, backbone)
    assert r["backbone"] == backbone and r["pretrained"] is True
    assert r["max_epochs"] == epochs and r.lr_decay_frequency == period
    assert r["lr"] == 1e-3 and r["batch_size"] == 32 and r["nesterov"] is True
    assert (r["image_size"], r["resize_size"]) == (224, 256)
    assert r["large_feature_map"] is (backbone != "vgg16")
    assert (r["n_iter"], r["sigma"], r["momentum"]) == (2, 8.0, 0.8)
    assert r["fg_threshold"] == r["context_threshold"] == 0.2
    assert r.n_classes == n_classes
    defaults = TrainConfig()
    assert (r.sgd_momentum, r.weight_decay, r.lr_classifier_ratio) == (
        defaults.momentum, defaults.weight_decay, defaults.head_lr_mult) == (0.9, 1e-4, 10.0)
    # the schedule the estimator trains with equals the benchmark loop's, epoch by epoch
    est = CREAMLocalizer(**r)
    config = train_config(est, 0).validate()
    assert config.nesterov is True and config.lr_step_size is None
    assert config.lr_milestones == r["lr_step"]
    assert _scheduled_lrs(config) == pytest.approx(_benchmark_lrs(epochs, period, 1e-3))


def test_benchmark_milestones_by_hand():
    assert benchmark_milestones(50, 15) == (14, 29, 44)
    assert benchmark_milestones(6, 2) == (1, 3, 5)
    assert benchmark_milestones(10, 3) == (2, 5, 8)
    # StepLR(15) would drop one epoch later: epoch 15 (1-based) still at the full rate
    assert _benchmark_lrs(50, 15, 1.0)[13:16] == pytest.approx([1.0, 0.1, 0.1])


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("backbone", BACKBONES)
def test_recipe_builds_a_valid_estimator(dataset, backbone):
    r = recipe(dataset, backbone)
    est = CREAMLocalizer(**r)
    params = est.get_params(deep=False)
    validate_params(params, fitting=True)
    assert {k: params[k] for k in r} == dict(r)
    copy = clone(est)
    assert copy.get_params(deep=False) == params
    # overriding one value keeps the rest
    short = CREAMLocalizer(**dict(r, max_epochs=2, lr_step=None))
    assert short.max_epochs == 2 and short.nesterov is True


def test_recipe_names_are_case_insensitive_and_checked():
    assert dict(recipe("cub", "ResNet50")) == dict(recipe("CUB", "resnet50"))
    assert recipe("openimages").backbone == "vgg16"
    with pytest.raises(ValueError, match="dataset.*CUB"):
        recipe("COCO", "vgg16")
    with pytest.raises(ValueError, match="backbone.*resnet50"):
        recipe("CUB", "resnet18")
    with pytest.raises(TypeError, match="dataset"):
        recipe(None)
    r = recipe("CUB")
    with pytest.raises(TypeError):
        r["lr"] = 1.0  # read-only
    assert "recipe('CUB', 'vgg16')" in repr(r)


@pytest.mark.parametrize("bad", [(3, 2), [0, 4], (), "15", (1.5,), (True,), 0])
def test_bad_lr_step(bad):
    with pytest.raises((ValueError, TypeError), match="lr_step"):
        validate_params(CREAMLocalizer(lr_step=bad).get_params(deep=False))


def test_bad_nesterov_and_milestone_configs():
    with pytest.raises(TypeError, match="nesterov"):
        validate_params(CREAMLocalizer(nesterov=1).get_params(deep=False))
    with pytest.raises(TypeError, match="nesterov"):
        TrainConfig(nesterov="yes").validate()
    with pytest.raises(ValueError, match="nesterov"):
        TrainConfig(nesterov=True, momentum=0.0).validate()
    with pytest.raises(ValueError, match="not both"):
        TrainConfig(lr_step_size=2, lr_milestones=(1,)).validate()
    with pytest.raises(ValueError, match="lr_milestones"):
        TrainConfig(lr_milestones=(3, 3)).validate()


def test_train_follows_milestones_and_nesterov(monkeypatch):
    made = []
    real_sgd = torch.optim.SGD

    def sgd(*args, **kwargs):
        made.append(kwargs)
        return real_sgd(*args, **kwargs)

    monkeypatch.setattr(torch.optim, "SGD", sgd)
    torch.manual_seed(0)
    data = [(torch.randn(4), int(i % 2)) for i in range(8)]
    model = nn.Linear(4, 2)
    config = TrainConfig(epochs=6, batch_size=4, lr=1.0, lr_milestones=(1, 3, 5), nesterov=True,
                         device="cpu", verbose=0, random_state=0)
    history = train(model, data, config=config, metric_fn=None,
                    loss_fn=lambda out, batch: F.cross_entropy(out, batch[1]))
    assert made[0]["nesterov"] is True
    assert [h["lr"] for h in history] == pytest.approx(_benchmark_lrs(6, 2, 1.0))


def test_cli_train_recipe(monkeypatch, tmp_path, capsys):
    from skcream.cli import main

    seen = {}

    def fake_fit(self, X, y=None, **kwargs):
        seen.update(self.get_params(deep=False))
        self.history_ = []  # what the CLI reads after a fit
        self.auto_box_threshold_ = 0.2
        return self

    monkeypatch.setattr(CREAMLocalizer, "fit", fake_fit)
    monkeypatch.setattr(CREAMLocalizer, "save", lambda self, path, **kw: None)
    code = main(["train", "--data", "synthetic:8", "--out", str(tmp_path), "--recipe", "ilsvrc",
                 "--backbone", "inception_v3", "--pretrained", "false", "--epochs", "3",
                 "--quiet"])
    assert code == 0
    expected = dict(recipe("ILSVRC", "inception_v3"), pretrained=False, max_epochs=3)
    assert {k: seen[k] for k in expected} == expected
    seen.clear()  # without --epochs: the recipe's 6 (not the option's default 50)
    main(["train", "--data", "synthetic:8", "--out", str(tmp_path / "a"), "--recipe", "ILSVRC",
          "--backbone", "inception_v3", "--quiet"])
    assert seen["max_epochs"] == 6 and seen["lr_step"] == (1, 3, 5)
    seen.clear()  # without --recipe: the options' defaults, as before
    main(["train", "--data", "synthetic:8", "--out", str(tmp_path / "c"), "--quiet"])
    assert (seen["max_epochs"], seen["lr_step"], seen["nesterov"]) == (50, 15, False)
    code = main(["train", "--data", "synthetic:8", "--out", str(tmp_path / "b"),
                 "--recipe", "CUB", "--backbone", "resnet18", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and err[0].startswith("skcream train: error: --recipe")
    assert np.all([k in seen for k in ("lr_step", "nesterov", "large_feature_map")])
