"""Token models (ViT, DeiT, EVA, Swin, MambaOut) and ConvNeXt as WSOL backbones.

Small random-init models only (timm's ``test_*`` variants, the smallest DeiT / EVA02, and
``skcream_test_swin`` from tests/_token_models.py); the independent facts are timm's own
``forward_features`` tokens reshaped by hand (pytorch-grad-cam's ``reshape_transform``
convention: drop the prefix tokens, (B, h*w, D) -> (B, D, h, w)), timm's position-embedding
resampling for another input size, and the map sizes stated in the README.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import timm
import torch
from _token_models import TINY_SWIN
from PIL import Image
from safetensors.torch import save_file
from sklearn.base import clone
from test_localizer import _dataset

from skcream import CREAMLocalizer
from skcream.backbones import build_backbone
from skcream.token_models import TokenGrid, token_layout

VIT, DEIT, EVA = "test_vit", "deit_tiny_patch16_224", "eva02_tiny_patch14_224"


def _same_weights_reference(backbone, name: str, **kwargs) -> torch.nn.Module:
    """timm's unmodified model with the backbone's weights (only the pooled path after
    ``forward_features`` is missing: the classifier and a pooled-token norm)."""
    ref = timm.create_model(name, pretrained=False, **kwargs).eval()
    missing, unexpected = ref.load_state_dict(backbone.body.model.state_dict(), strict=False)
    assert not unexpected, unexpected
    assert all(k.startswith(("head", "fc_norm.")) for k in missing), missing
    return ref


def _grid_by_hand(ref: torch.nn.Module, x: torch.Tensor, patch: int) -> torch.Tensor:
    """forward_features' patch tokens as (B, D, h, w): prefix tokens dropped, reshaped."""
    with torch.no_grad():
        tokens = ref.forward_features(x)
    if tokens.ndim == 4:  # channels-last grid (Swin, MambaOut)
        return tokens.permute(0, 3, 1, 2)
    b, _, d = tokens.shape
    h, w = x.shape[2] // patch, x.shape[3] // patch
    return tokens[:, ref.num_prefix_tokens:].reshape(b, h, w, d).permute(0, 3, 1, 2)


# ------------------------------------------------------------------------------ layout
@pytest.mark.parametrize("name,layout,prefix", [
    (VIT, "NLC", 1), ("test_vit2", "NLC", 1),  # class token / one register token, no class
    ("deit_tiny_distilled_patch16_224", "NLC", 2), (TINY_SWIN, "NHWC", None),
    ("test_mambaout", "NHWC", None), ("test_convnext", None, None), ("test_resnet", None, None),
])
def test_layout_comes_from_timm_metadata(name, layout, prefix):
    with torch.device("meta"):
        model = timm.create_model(name)
    assert token_layout(model) == layout
    assert getattr(model, "num_prefix_tokens", None) == prefix


# -------------------------------------------------------------------------- the grid
@pytest.mark.parametrize("name,patch", [
    (VIT, 16), ("test_vit2", 16), ("deit_tiny_distilled_patch16_224", 16), (EVA, 14),
    (TINY_SWIN, 4), ("test_mambaout", 4),
])
def test_grid_is_forward_features_patch_tokens_reshaped(name, patch):
    """Non-square input, so h and w cannot be swapped unnoticed."""
    torch.manual_seed(0)
    backbone = build_backbone(name).eval()
    assert isinstance(backbone.body, TokenGrid)
    size = (4 * 14, 7 * 14) if patch == 14 else (64, 96)
    x = torch.randn(2, 3, *size)
    dynamic = {"dynamic_img_size": True} if name != "test_mambaout" else {}
    ref = _same_weights_reference(backbone, name, **dynamic)
    with torch.no_grad():
        grid = backbone(x)
    expect = _grid_by_hand(ref, x, patch)
    assert grid.shape == expect.shape == (2, backbone.num_features, *expect.shape[2:])
    torch.testing.assert_close(grid, expect, rtol=1e-5, atol=1e-5)


def test_dynamic_size_is_timms_resampled_position_embedding():
    """At the native size (160) the network is timm's fixed-size ViT; at 64 it is the ViT
    timm builds for 64 from the same weights (position embeddings resampled, bicubic)."""
    from timm.layers import resample_abs_pos_embed

    torch.manual_seed(0)
    backbone = build_backbone(VIT).eval()
    fixed = _same_weights_reference(backbone, VIT, dynamic_img_size=False)
    assert fixed.patch_embed.strict_img_size
    x = torch.randn(1, 3, 160, 160)
    torch.testing.assert_close(backbone(x), _grid_by_hand(fixed, x, 16), rtol=1e-5, atol=1e-5)
    small = timm.create_model(VIT, pretrained=False, img_size=64, dynamic_img_size=False).eval()
    state = dict(backbone.body.model.state_dict())
    state["pos_embed"] = resample_abs_pos_embed(state["pos_embed"], (4, 4), num_prefix_tokens=1)
    small.load_state_dict(state, strict=False)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(backbone(x), _grid_by_hand(small, x, 16), rtol=1e-5, atol=1e-5)


# the map resolutions stated in README.md ("Transformers and other token models")
@pytest.mark.parametrize("name,kwargs,grid,stride", [
    (VIT, {}, 14, 16), (DEIT, {}, 14, 16), (EVA, {}, 16, 14),
    (TINY_SWIN, {}, 7, 32), (TINY_SWIN, {"feature_stage": -2}, 14, 16),
    ("test_mambaout", {}, 7, 32),
    ("test_convnext", {}, 7, 32), ("test_convnext", {"modification": "dilated"}, 14, 16),
])
def test_map_resolution_at_224(name, kwargs, grid, stride):
    backbone = build_backbone(name, **kwargs).eval()
    with torch.no_grad():
        f = backbone(torch.zeros(1, 3, 224, 224))
    assert f.shape == (1, backbone.num_features, grid, grid)
    assert backbone.feature_stride == stride == 224 // grid


def test_real_swin_tiny_config_takes_other_sizes():
    """timm's Swin-T (fixed input size 224, window 7) built for any size: 96 px -> 3x3."""
    backbone = build_backbone("swin_tiny_patch4_window7_224").eval()
    assert backbone.body.layout == "NHWC" and not backbone.body.model.patch_embed.strict_img_size
    with torch.no_grad():
        assert backbone(torch.zeros(1, 3, 96, 96)).shape == (1, 768, 3, 3)


# ------------------------------------------------------------------------- refusals
def test_sizes_and_options_a_token_model_cannot_take_are_refused():
    vit = build_backbone(VIT).eval()
    with pytest.raises(ValueError, match=r"multiples of 16, got 72x64; use e.g. image_size=80"):
        vit(torch.zeros(1, 3, 72, 64))
    fixed = build_backbone("test_vit_relpos").eval()  # no dynamic_img_size in its class
    with pytest.raises(ValueError, match=r"takes only 160x160 images.*image_size=160"):
        fixed(torch.zeros(1, 3, 64, 64))
    for kwargs, match in (({"large_feature_map": True}, "large_feature_map"),
                          ({"modification": "stride1"}, "stride1"),
                          ({"modification": "dilated"}, "output_stride")):
        with pytest.raises(ValueError, match=match):
            build_backbone(VIT, **kwargs)
    with pytest.raises(ValueError, match="got 72x72; use e.g. image_size=80"):  # before training
        CREAMLocalizer(backbone=VIT, pretrained=False, image_size=72, resize_size=80,
                       verbose=0).fit(_dataset(4))


def test_models_without_a_declared_layout_are_still_rejected():
    coat = build_backbone("coat_lite_tiny").eval()  # (B, 1 + h*w, D), no num_prefix_tokens
    with pytest.raises(ValueError, match="no token layout"):
        with torch.no_grad():
            coat(torch.zeros(1, 3, 224, 224))


@pytest.mark.parametrize("method", ["adl", "spg"])
def test_methods_with_layers_inside_the_backbone_are_refused(method):
    from skcream.methods import get_method

    with pytest.raises(ValueError, match=f"method='{method}'.*token model"):
        get_method(method).build_network(build_backbone(VIT), 2)


# ------------------------------------------------------------------------- estimators
@pytest.fixture(scope="module")
def ds():
    return _dataset(8)


def _fit(name: str, size: int, ds, **params):
    return CREAMLocalizer(backbone=name, pretrained=False, max_epochs=1, batch_size=8,
                          image_size=size, resize_size=size + 8, random_state=0, verbose=0,
                          **params).fit(ds)


def _plain_cam(est, image: Image.Image) -> np.ndarray:
    """CAM of the predicted class written plainly on the backbone's grid, min-max."""
    s = est.image_size
    x = torch.from_numpy(np.asarray(image.convert("RGB").resize((s, s), Image.BILINEAR),
                                    dtype=np.float32) / 255).permute(2, 0, 1)
    mean = torch.tensor(est.data_config_["mean"]).view(3, 1, 1)
    std = torch.tensor(est.data_config_["std"]).view(3, 1, 1)
    with torch.no_grad():
        feats = est.model_.backbone(((x - mean) / std)[None])[0]
        logits = est.model_.head(feats.mean(dim=(1, 2)))
        cam = torch.einsum("d,dhw->hw", est.model_.head.weight[logits.argmax()], feats)
    return ((cam - cam.min()) / (cam.max() - cam.min())).numpy()


@pytest.mark.parametrize("name,size,grid", [
    (VIT, 64, 4), (DEIT, 64, 4), (EVA, 56, 4), (TINY_SWIN, 64, 2), ("test_convnext", 64, 2),
])
def test_localizer_fits_predicts_scores_saves_and_loads(name, size, grid, ds, tmp_path):
    est = _fit(name, size, ds)
    assert est.feature_shape_ == (grid, grid)
    maps = est.transform(ds)
    assert maps.shape == (len(ds), grid, grid) and maps.min() >= 0 and maps.max() <= 1
    cam = clone(est).set_params(n_iter=0)
    cam.__dict__.update({k: v for k, v in vars(est).items() if k.endswith("_")})
    np.testing.assert_allclose(cam.transform(ds.select([0]))[0], _plain_cam(est, ds[0]["image"]),
                               atol=1e-5)
    loc = est.predict(ds)
    for i in range(len(ds)):
        w, h = ds[i]["image"].size
        assert loc.maps[i].shape == (h, w)
        assert 0 <= loc.boxes[i][0] <= loc.boxes[i][2] <= w - 1
    assert 0 <= est.score(ds) <= 100
    blob = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(blob.transform(ds), maps)
    est.save(tmp_path / "m")
    loaded = CREAMLocalizer.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.transform(ds), maps)
    assert loaded.get_params()["backbone"] == name


def test_vit_pseudo_boxes_at_another_resolution_and_feature_pipeline(ds):
    """ViT trained at 64 px localizes at 96 px (position embeddings resampled); its
    backbone and read-out as feature transformers give the localizer's maps."""
    from sklearn.pipeline import make_pipeline

    from skcream import CREAMReactivation, TimmFeatures

    est = _fit(VIT, 64, ds)
    boxes = est.pseudo_boxes(ds, resolution=96)
    assert boxes.shape == (len(ds), 4)
    pipe = make_pipeline(TimmFeatures.from_localizer(est), CREAMReactivation.from_localizer(est))
    np.testing.assert_allclose(pipe.transform(ds), est.transform(ds), atol=1e-5)
    assert pickle.loads(pickle.dumps(pipe))[0].transform(ds).shape == (len(ds), 64, 4, 4)


def test_readme_token_model_snippet_runs_as_written():
    """README's "Transformers and other token models" snippet, with the three values it says
    the test changes; the 14x14 it states at 224 is the trained network's grid at 224."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text[text.index("**Transformers and other token models**"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert "runs this snippet with `pretrained=False`, `image_size=64` and\n`resize_size=72`" \
        in section
    for old, new in {"pretrained=True": "pretrained=False", "image_size=224": "image_size=64",
                     "resize_size=256": "resize_size=72"}.items():
        assert code.count(old) == 1, old
        code = code.replace(old, new)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    vit = scope["vit"]
    assert "# (14, 14)" in code and "# (16, 14, 14)" in code
    assert vit.feature_shape_ == (4, 4) and vit.transform(scope["train"]).shape == (16, 4, 4)
    with torch.no_grad():
        assert vit.model_.backbone(torch.zeros(1, 3, 224, 224)).shape[-2:] == (14, 14)


# ----------------------------------------------------------------------- map sources
def _token_oracle(cam: str, net, layer_module, x: torch.Tensor, labels: torch.Tensor,
                  prefix: int | None) -> np.ndarray:
    """pytorch-grad-cam with the reshape_transform of its ViT / Swin examples."""
    import contextlib
    import io

    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    from test_map_sources import _oracle_classes

    def reshape_transform(t: torch.Tensor) -> torch.Tensor:
        if prefix is None:  # channels-last grid (Swin)
            result = t
        else:  # usage_examples/vit_example.py, generalised to `prefix` leading tokens
            side = int(round((t.size(1) - prefix) ** 0.5))
            result = t[:, prefix:, :].reshape(t.size(0), side, side, t.size(2))
        return result.transpose(2, 3).transpose(1, 2)

    targets = [ClassifierOutputTarget(int(c)) for c in labels]
    with contextlib.redirect_stderr(io.StringIO()):
        with _oracle_classes()[cam](model=net, target_layers=[layer_module],
                                    reshape_transform=reshape_transform) as method:
            return method(x, targets)


_TOKEN_CASES = [(VIT, "blocks.5.norm1", 1, 6),
                ("deit_tiny_distilled_patch16_224", "blocks.11.norm1", 2, 6),
                (TINY_SWIN, None, None, 3)]


# Score-CAM (one forward pass per channel) on the ViT only: its tokens are the case to cover
@pytest.mark.parametrize("name,default_layer,prefix,grid,cam", [
    (*case, cam) for case in _TOKEN_CASES for cam in ("gradcam", "gradcam++", "xgradcam",
                                                      "layercam")
] + [(*_TOKEN_CASES[0], "scorecam")])
def test_gradient_cams_of_token_models_equal_pytorch_grad_cam(name, default_layer, prefix,
                                                              grid, cam):
    """Same network, layer (default: a ViT's last norm1, pytorch-grad-cam's ViT example) and
    classes as pytorch-grad-cam with its reshape_transform -> the same maps."""
    from test_map_sources import LABELS, _as_oracle, _images

    from skcream.map_sources import ClassifierNet, class_maps

    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=7, dynamic_img_size=True).eval()
    net = ClassifierNet.from_timm(model)
    assert net.default_layer == default_layer
    x = _images()  # 96 px
    out = class_maps(net, x, LABELS, cam=cam)
    assert out.maps.shape == (3, grid, grid) and out.features.shape[2:] == (grid, grid)
    expected = _token_oracle(cam, net, net.layer(None), x, LABELS, prefix)
    assert expected.max() > 0.99
    np.testing.assert_allclose(_as_oracle(out.maps), expected, atol=2e-5)
    # the features are the final tokens on the patch grid: the backbone's map
    backbone = build_backbone(name).eval()
    backbone.body.model.load_state_dict(model.state_dict(), strict=False)
    with torch.no_grad():
        torch.testing.assert_close(out.features, backbone(x), rtol=1e-5, atol=1e-5)


def test_cam_needs_a_pooled_linear_head():
    """Swin's head is global average pooling + a linear layer: CAM is exact on its grid;
    a ViT's head reads the class token, which the grid does not hold: refused."""
    from test_map_sources import LABELS, _images

    from skcream.cam import class_activation_maps
    from skcream.map_sources import ClassifierNet, class_maps

    torch.manual_seed(0)
    swin = timm.create_model(TINY_SWIN, num_classes=7, dynamic_img_size=True).eval()
    x = _images()
    out = class_maps(ClassifierNet.from_timm(swin), x, LABELS, cam="cam")
    with torch.no_grad():
        grid = swin.forward_features(x).permute(0, 3, 1, 2)
    torch.testing.assert_close(out.maps, class_activation_maps(grid, swin.head.fc.weight, LABELS))
    vit = timm.create_model(VIT, num_classes=7).eval()
    with pytest.raises(ValueError, match="choose a gradient CAM"):
        class_maps(ClassifierNet.from_timm(vit), x, LABELS, cam="cam")


def test_post_hoc_gradient_cam_on_a_vit(tmp_path):
    """`skcream localize --post-hoc --cam gradcam` on a ViT: the features are the
    classifier's own patch tokens (same weights file) on the 10x10 grid of its native 160 px
    input; CAM is refused (the class-token head is not a pooled linear head)."""
    from skcream.post_hoc import PostHocClassifier, post_hoc_maps

    torch.manual_seed(0)
    model = timm.create_model(VIT, pretrained=False).eval()
    path = tmp_path / "vit.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    images = [im.convert("RGB") for im in _dataset(3)["image"]]
    post = PostHocClassifier(VIT, pretrained=path, batch_size=2)
    result = post.predict(images, cam="gradcam")
    assert result.maps.shape == (3, 10, 10) and result.features.shape == (3, 64, 10, 10)
    assert post.net.default_layer == "blocks.5.norm1"
    x = torch.stack([post.transform(im, np.zeros((0, 4)))[0] for im in images])
    with torch.no_grad():
        np.testing.assert_array_equal(result.labels, model(x).argmax(1).numpy())
    np.testing.assert_allclose(result.features, _grid_by_hand(model, x, 16).numpy(), atol=1e-5)
    maps = post_hoc_maps(result)
    assert maps.shape == (3, 10, 10) and maps.min() >= 0 and maps.max() <= 1
    with pytest.raises(ValueError, match="choose a gradient CAM"):
        post.predict(images[:1], cam="cam")


def test_localize_post_hoc_command_on_a_vit(tmp_path, capsys):
    """`skcream localize --post-hoc --backbone test_vit --cam gradcam [--layer blocks.3]`:
    maps at the photo's size; `--cam cam` is one error line (the class-token head has no
    CAM)."""
    import json

    from skcream.cli import main

    torch.manual_seed(0)
    weights = tmp_path / "vit.safetensors"
    save_file({k: v.contiguous() for k, v in timm.create_model(VIT).state_dict().items()},
              str(weights))
    photo = tmp_path / "p.png"
    _dataset(1)[0]["image"].convert("RGB").save(photo)
    args = ["localize", "--post-hoc", "--backbone", VIT, "--pretrained", str(weights),
            str(photo), "--quiet"]
    assert main([*args, "--cam", "gradcam", "--save-maps", "--out", str(tmp_path / "o")]) == 0
    record = json.loads((tmp_path / "o" / "boxes.json").read_text())[0]
    w, h = Image.open(photo).size
    default = np.load(tmp_path / "o" / record["map"])
    assert default.shape == (h, w)
    # --layer: another block's tokens, reshaped the same way
    assert main([*args, "--cam", "gradcam", "--layer", "blocks.3", "--save-maps",
                 "--out", str(tmp_path / "o3")]) == 0
    earlier = np.load(tmp_path / "o3" / record["map"])
    assert earlier.shape == (h, w) and not np.allclose(earlier, default)
    capsys.readouterr()
    assert main([*args, "--cam", "cam", "--out", str(tmp_path / "o2")]) == 1  # EXIT_FAILURE
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "gradient CAM" in err and "Traceback" not in err
