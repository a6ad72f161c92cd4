"""TimmFeatures: a frozen timm backbone as a sklearn transformer (images -> feature maps)."""

from __future__ import annotations

import pickle

import joblib
import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline
from sklearn.utils import estimator_checks as ec

from skcream.estimators import features as features_module
from skcream.estimators.feature_reactivation import CREAMReactivation, box_targets
from skcream.estimators.features import TimmFeatures

SIZE = 64  # tiny inputs keep the tests fast; (1280, 4, 4) maps with the stride-1 last stage


def images(n=6, seed=0, size=(50, 40)):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
            for _ in range(n)]


@pytest.fixture(scope="module")
def tf():
    return TimmFeatures(image_size=SIZE, random_state=0, verbose=0).fit()


def manual_features(tf, imgs):
    """Preprocessing written out plainly: resize the whole image (no crop), scale to [0,1],
    normalise with the backbone's mean/std, then run the network."""
    mean = np.asarray(tf.data_config_["mean"], np.float32)
    std = np.asarray(tf.data_config_["std"], np.float32)
    batch = []
    for im in imgs:
        arr = np.asarray(im.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR), np.float32)
        batch.append(((arr / 255.0 - mean) / std).transpose(2, 0, 1))
    with torch.no_grad():
        return tf.backbone_(torch.from_numpy(np.stack(batch))).numpy()


# ----------------------------------------------------------------------------- sklearn plumbing
SKLEARN_CHECKS = [
    # Only the checks that never feed 2-D tabular data: TimmFeatures reads images, so the
    # data-driven checks (dtypes, NaN, n_features_in_, subset invariance...) do not apply;
    # their image counterparts are the explicit tests below.
    ec.check_parameters_default_constructible,
    ec.check_no_attributes_set_in_init,
    ec.check_get_params_invariance,
    ec.check_set_params,
    ec.check_estimator_cloneable,
    ec.check_estimator_repr,
    ec.check_do_not_raise_errors_in_init_or_set_params,
    ec.check_mixin_order,
    ec.check_estimator_tags_renamed,
    ec.check_valid_tag_types,
]


@pytest.mark.parametrize("check", SKLEARN_CHECKS, ids=lambda c: c.__name__)
def test_sklearn_checks(check):
    check("TimmFeatures", TimmFeatures())


def test_init_stores_only_and_fit_resolves(tf):
    est = TimmFeatures("resnet18", pretrained=False, image_size=32)
    assert not [k for k in vars(est) if k.endswith("_")]
    assert tf.image_size_ == SIZE
    assert tf.feature_shape_ == (1280, 4, 4)
    assert tf.n_features_out_ == 1280
    assert tf.random_init_ is True
    assert set(tf.data_config_) >= {"mean", "std", "input_size"}
    assert not any(p.requires_grad for p in tf.backbone_.parameters())
    assert not tf.backbone_.training


def test_default_image_size_from_config():
    est = TimmFeatures(random_state=0).fit()
    assert est.image_size_ == 224 and est.feature_shape_ == (1280, 14, 14)


def test_transform_matches_plain_preprocessing(tf):
    imgs = images(5)
    F = tf.transform(imgs)
    assert F.shape == (5, 1280, 4, 4) and F.dtype == np.float32
    np.testing.assert_allclose(F, manual_features(tf, imgs), rtol=1e-4, atol=1e-4)


def test_batch_size_invariance_and_order(tf):
    imgs = images(7)
    ref = tf.transform(imgs)
    small = clone(tf).set_params(batch_size=2).fit()
    np.testing.assert_allclose(small.transform(imgs), ref, rtol=1e-4, atol=1e-4)
    perm = [3, 0, 6, 1, 5, 2, 4]
    np.testing.assert_allclose(tf.transform([imgs[i] for i in perm]), ref[perm],
                               rtol=1e-4, atol=1e-4)


def test_inputs_arrays_modes_and_torch_output(tf):
    imgs = images(3)
    ref = tf.transform(imgs)
    np.testing.assert_allclose(tf.transform([np.asarray(i) for i in imgs]), ref, atol=1e-6)
    gray = [imgs[0].convert("L")]
    assert tf.transform(gray).shape == (1, 1280, 4, 4)  # grayscale becomes RGB
    out = clone(tf).set_params(output_type="torch").fit().transform(imgs)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-6)


def test_seeded_random_init_and_global_rng_untouched():
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = TimmFeatures(image_size=SIZE, random_state=1, verbose=0).fit()
    after = torch.rand(3)
    np.testing.assert_array_equal(before, after)  # fit does not consume the global RNG
    imgs = images(2)
    b = TimmFeatures(image_size=SIZE, random_state=1, verbose=0).fit()
    c = TimmFeatures(image_size=SIZE, random_state=2, verbose=0).fit()
    np.testing.assert_array_equal(a.transform(imgs), b.transform(imgs))
    assert not np.allclose(a.transform(imgs), c.transform(imgs))


def test_earlier_stage_is_higher_resolution():
    est = TimmFeatures(image_size=SIZE, feature_stage=2, random_state=0, verbose=0).fit()
    d, h, w = est.feature_shape_
    assert d < 1280 and h > 4
    assert est.transform(images(2)).shape == (2, d, h, w)


# ----------------------------------------------------------------------------- persistence
def test_pickle_rebuilds_the_network(tf, tmp_path):
    imgs = images(3)
    ref = tf.transform(imgs)
    blob = pickle.dumps(tf)
    assert len(blob) < 20_000  # parameters and seed, no 4.6M-parameter network
    back = pickle.loads(blob)
    assert "backbone_" not in vars(back)
    features_module._NETWORKS.clear()  # as in a fresh process: a genuine rebuild
    np.testing.assert_array_equal(back.transform(imgs), ref)
    assert back.backbone_ is not tf.backbone_
    joblib.dump(tf, tmp_path / "tf.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "tf.joblib").transform(imgs), ref)
    # the original keeps its network
    assert tf.backbone_ is not None


def test_clones_share_the_frozen_network():
    a = TimmFeatures(image_size=SIZE, random_state=5, verbose=0).fit()
    b = clone(a).fit()
    c = clone(a).set_params(random_state=6).fit()
    assert a.backbone_ is b.backbone_  # same construction parameters and seed
    assert a.backbone_ is not c.backbone_  # random weights: the seed matters


def test_unfitted_raises():
    with pytest.raises(NotFittedError):
        TimmFeatures().transform(images(1))


# ----------------------------------------------------------------------------- caching
def test_memory_caches_per_image(tmp_path, monkeypatch):
    est = TimmFeatures(image_size=SIZE, random_state=0, verbose=0, memory=str(tmp_path)).fit()
    calls = []
    real = TimmFeatures._forward_batch

    def counting(self, batch):
        calls.append(len(batch))
        return real(self, batch)

    monkeypatch.setattr(TimmFeatures, "_forward_batch", counting)
    imgs = images(5)
    first = est.transform(imgs)
    assert sum(calls) == 5
    # a reordered subset plus one new image: only the new image is computed
    new = images(1, seed=9)
    second = est.transform([imgs[3], imgs[1]] + new)
    assert sum(calls) == 6
    np.testing.assert_array_equal(second[:2], first[[3, 1]])
    np.testing.assert_allclose(second[2], manual_features(est, new)[0], rtol=1e-4, atol=1e-4)
    # a clone (as GridSearchCV makes) with the same seed shares the cache
    clone(est).fit().transform(imgs)
    assert sum(calls) == 6
    # another parameter that changes the features does not hit that cache
    clone(est).set_params(image_size=32).fit().transform(imgs[:1])
    assert sum(calls) == 7


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "params, exc, match",
    [
        (dict(backbone="resnet_5O"), ValueError, "resnet"),
        (dict(backbone=3), TypeError, "backbone"),
        (dict(image_size=0), ValueError, "image_size"),
        (dict(batch_size=1.5), TypeError, "batch_size"),
        (dict(output_type="pandas"), ValueError, "output_type"),
        (dict(pretrained=1.0), TypeError, "pretrained"),
        (dict(feature_stage="last"), TypeError, "feature_stage"),
        (dict(memory=3), TypeError, "memory"),
        (dict(device="gpu0"), ValueError, "device"),
    ],
)
def test_bad_params(params, exc, match):
    with pytest.raises(exc, match=match):
        TimmFeatures(**params).fit()


def test_bad_images(tf):
    with pytest.raises(TypeError, match=r"X\[1\]"):
        tf.transform([images(1)[0], 3.0])
    with pytest.raises(ValueError, match="empty"):
        tf.transform([])
    with pytest.raises(ValueError, match="nope.png"):
        tf.transform(["/nonexistent/nope.png"])


# ----------------------------------------------------------------------------- pipelines
def synthetic(n=24, seed=0):
    """Two classes of coloured squares on noise; boxes are the squares."""
    rng = np.random.default_rng(seed)
    imgs, labels, boxes = [], [], []
    for i in range(n):
        a = rng.integers(0, 60, (48, 48, 3), dtype=np.uint8)
        x0, y0 = rng.integers(0, 24, 2)
        c = i % 2
        a[y0:y0 + 20, x0:x0 + 20, c] = 255
        imgs.append(Image.fromarray(a))
        labels.append(c)
        boxes.append([[x0, y0, x0 + 19, y0 + 19]])
    return imgs, np.array(labels), box_targets(labels, boxes, [(48, 48)] * n)


def test_grid_search_with_cached_features_computes_each_image_once(tmp_path, monkeypatch):
    imgs, labels, y = synthetic()
    calls = []
    real = TimmFeatures._forward_batch

    def counting(self, batch):
        calls.append(len(batch))
        return real(self, batch)

    monkeypatch.setattr(TimmFeatures, "_forward_batch", counting)
    pipe = Pipeline(
        [("features", TimmFeatures(image_size=SIZE, random_state=0, verbose=0,
                                   memory=str(tmp_path))),
         ("cream", CREAMReactivation(random_state=0))],
        memory=str(tmp_path / "pipe"),
    )
    grid = GridSearchCV(pipe, {"cream__sigma": [1.0, 8.0], "cream__n_iter": [0, 2]},
                        cv=KFold(2, shuffle=True, random_state=0))
    grid.fit(imgs, y)
    assert sum(calls) == len(imgs)  # every image once, across 4 candidates x 2 folds + refit
    scores = grid.cv_results_["mean_test_score"]
    assert np.all((scores >= 0) & (scores <= 100))
    maps = grid.best_estimator_.transform(imgs[:3])
    assert maps.shape == (3, 4, 4) and maps.min() >= 0 and maps.max() <= 1


@pytest.mark.slow
def test_offline_pretrained_pipeline_localizes_better_than_chance():
    """EfficientNet-Lite0 ImageNet features + CREAMReactivation on the toy squares."""
    imgs, labels, y = synthetic(40)
    pipe = Pipeline([("features", TimmFeatures(pretrained=True, image_size=96, verbose=0)),
                     ("cream", CREAMReactivation(random_state=0))])
    pipe.fit(imgs[:30], labels[:30])
    assert (pipe.predict(imgs[30:]) == labels[30:]).mean() >= 0.8
    score = pipe.score(imgs[30:], y[30:])
    assert 0 <= score <= 100
