"""CREAMReactivation: the sklearn transformer over feature maps (feature maps -> CREAM maps).

The expected values are computed plainly here (numpy loops over samples, Eq. 1 and
Eq. 3-4 written out), not by calling the functions the estimator composes.
"""

from __future__ import annotations

import pickle

import joblib
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.utils import estimator_checks as ec

from skcream.estimators.feature_reactivation import CREAMReactivation, box_targets


# ----------------------------------------------------------------------------- data
def make_maps(n=40, n_classes=3, d=12, size=8, seed=0):
    """Feature maps with an object (shared "body" channel 0 + class "part" channel 1+c)
    on a noisy background; returns F (n,d,h,w) float32, y (n,), object boxes in map pixels."""
    rng = np.random.default_rng(seed)
    F = rng.normal(0.0, 0.1, size=(n, d, size, size)).astype(np.float32)
    F[:, n_classes + 1:] += rng.uniform(0, 1, size=(n, d - n_classes - 1, size, size))
    y = np.arange(n) % n_classes
    boxes = []
    for i in range(n):
        x0, y0 = rng.integers(0, size // 2, 2)
        x1, y1 = x0 + size // 2 - 1, y0 + size // 2 - 1
        F[i, 0, y0:y1 + 1, x0:x1 + 1] += 2.0          # body, shared by classes
        F[i, 1 + y[i], y0, x0] += 6.0                  # small discriminative part
        boxes.append([x0, y0, x1, y1])
    return F, y, np.array(boxes, dtype=np.float64)


def plain_cam(F, w):
    """Eq. 1 for one sample: sum_k w_k f_k (float64)."""
    return np.tensordot(w.astype(np.float64), F.astype(np.float64), axes=(0, 0))


def plain_minmax(m):
    lo, hi = m.min(), m.max()
    return np.zeros_like(m) if hi - lo <= 0 else (m - lo) / (hi - lo)


@pytest.fixture(scope="module")
def data():
    return make_maps()


@pytest.fixture(scope="module")
def fitted(data):
    F, y, _ = data
    return CREAMReactivation(random_state=0).fit(F, y)


# ----------------------------------------------------------------------------- sklearn plumbing
def test_init_stores_parameters_only():
    W = np.ones((2, 3))
    est = CREAMReactivation(n_iter=5, sigma=2.0, classifier_weights=W, init="image")
    assert est.get_params()["classifier_weights"] is W
    assert est.n_iter == 5 and est.sigma == 2.0
    assert not [k for k in vars(est) if k.endswith("_")]
    est.set_params(sigma=3.0)
    assert est.sigma == 3.0
    c = clone(est)
    assert c.get_params()["sigma"] == 3.0 and c is not est


SKLEARN_CHECKS = [
    # Checks that do not feed 2-D tabular data to fit/transform. The rest of
    # sklearn's checks build (n_samples, n_features) arrays, which are not feature
    # maps (n, d, h, w): they are replaced by the explicit tests in this file
    # (NaN/inf, n_features_in_, unfitted, pickle, idempotent fit, dtypes).
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
    check("CREAMReactivation", CREAMReactivation())


def test_unfitted_raises(data):
    F, _, _ = data
    est = CREAMReactivation()
    for method in (est.transform, est.predict, est.predict_proba, est.decision_function):
        with pytest.raises(NotFittedError):
            method(F)
    with pytest.raises(NotFittedError):
        est.localize(F, np.zeros(len(F), int))


def test_fitted_attributes(fitted, data):
    F, y, _ = data
    assert fitted.n_features_in_ == F.shape[1]
    assert fitted.coef_.shape == (3, F.shape[1])
    assert fitted.intercept_.shape == (3,)
    assert fitted.fg_context_.shape == fitted.bg_context_.shape == (3, F.shape[1])
    assert fitted.context_fitted_.all()
    np.testing.assert_array_equal(fitted.classes_, [0, 1, 2])
    assert fitted.feature_map_shape_ == F.shape[2:]


def test_fit_is_idempotent_and_seeded(data):
    F, y, _ = data
    a = CREAMReactivation(random_state=3).fit(F, y)
    b = CREAMReactivation(random_state=3).fit(F, y).fit(F, y)
    np.testing.assert_array_equal(a.fg_context_, b.fg_context_)
    np.testing.assert_array_equal(a.transform(F), b.transform(F))


# ----------------------------------------------------------------------------- classifier head
def test_logistic_head_matches_sklearn(data, fitted):
    F, y, _ = data
    gap = F.astype(np.float64).mean(axis=(2, 3))
    ref = LogisticRegression(max_iter=1000).fit(gap, y)
    np.testing.assert_allclose(fitted.coef_, ref.coef_, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(fitted.predict_proba(F), ref.predict_proba(gap), atol=1e-6)
    np.testing.assert_array_equal(fitted.predict(F), ref.predict(gap))
    assert (fitted.predict(F) == y).mean() > 0.9


def test_string_labels(data):
    F, y, _ = data
    names = np.array(["cat", "dog", "owl"])[y]
    est = CREAMReactivation(random_state=0).fit(F, names)
    np.testing.assert_array_equal(est.classes_, ["cat", "dog", "owl"])
    assert set(est.predict(F)) <= {"cat", "dog", "owl"}
    ref = CREAMReactivation(random_state=0).fit(F, y)
    np.testing.assert_allclose(est.localize(F, names), ref.localize(F, y), atol=1e-6)


def test_binary_head_is_a_two_row_table(data):
    F, y, _ = data
    keep = y < 2
    F2, y2 = F[keep], y[keep]
    est = CREAMReactivation(output="cam", random_state=0).fit(F2, y2)
    assert est.coef_.shape == (2, F.shape[1])
    np.testing.assert_array_equal(est.coef_[0], -est.coef_[1])
    np.testing.assert_array_equal(est.coef_[1], est.classifier_.coef_[0])
    # CAM of class 0 is the negated map of class 1, min-max normalised
    m0 = est.localize(F2, np.zeros(len(F2), int))
    for i in range(len(F2)):
        expect = plain_minmax(-plain_cam(F2[i], est.classifier_.coef_[0]))
        np.testing.assert_allclose(m0[i], expect, atol=1e-5)
    gap = F2.astype(np.float64).mean(axis=(2, 3))
    np.testing.assert_allclose(est.predict_proba(F2), est.classifier_.predict_proba(gap))
    np.testing.assert_array_equal(est.predict(F2), est.classifier_.predict(gap))


def test_cam_output_is_minmax_of_eq1(data):
    F, y, _ = data
    W = np.random.default_rng(1).normal(size=(5, F.shape[1]))
    est = CREAMReactivation(output="cam", init="image", classifier_weights=W).fit(F)
    labels = np.arange(len(F)) % 5
    maps = est.localize(F, labels)
    assert maps.shape == (len(F),) + F.shape[2:] and maps.dtype == np.float32
    for i in range(len(F)):
        np.testing.assert_allclose(maps[i], plain_minmax(plain_cam(F[i], W[labels[i]])),
                                   atol=1e-5)


def test_given_weights_with_bias_predict(data):
    F, _, _ = data
    rng = np.random.default_rng(2)
    W, b = rng.normal(size=(4, F.shape[1])), rng.normal(size=4) * 5
    est = CREAMReactivation(init="image", classifier_weights=W, classifier_bias=b).fit(F)
    gap = F.astype(np.float64).mean(axis=(2, 3))
    scores = gap @ W.T + b
    np.testing.assert_allclose(est.decision_function(F), scores, rtol=1e-6)
    np.testing.assert_array_equal(est.predict(F), scores.argmax(1))
    p = np.exp(scores - scores.max(1, keepdims=True))
    np.testing.assert_allclose(est.predict_proba(F), p / p.sum(1, keepdims=True), rtol=1e-6)
    # the bias does not enter CAM (Eq. 1)
    no_bias = CREAMReactivation(init="image", classifier_weights=W).fit(F)
    labels = np.arange(len(F)) % 4
    np.testing.assert_array_equal(est.localize(F, labels), no_bias.localize(F, labels))


# ----------------------------------------------------------------------------- context (Eq. 3-4)
def plain_context(F, labels, W, init_fg, init_bg, order, momentum, delta):
    """Eq. 3-4 sample by sample in the given order, float64."""
    fg, bg = init_fg.astype(np.float64).copy(), init_bg.astype(np.float64).copy()
    for i in order:
        c = labels[i]
        m = plain_cam(F[i], W[c])
        mask = m >= delta * m.max()
        feats = F[i].astype(np.float64).reshape(F.shape[1], -1)
        if mask.any():
            fg[c] = momentum * fg[c] + (1 - momentum) * feats[:, mask.ravel()].mean(1)
        if (~mask).any():
            bg[c] = momentum * bg[c] + (1 - momentum) * feats[:, ~mask.ravel()].mean(1)
    return fg, bg


@pytest.mark.parametrize("batch_size", [1, 7, 256])
def test_context_equals_sequential_eq4_in_seeded_order(data, batch_size):
    F, y, _ = data
    W = np.random.default_rng(5).normal(size=(3, F.shape[1]))
    seed = 11
    est = CREAMReactivation(classifier_weights=W, momentum=0.7, batch_size=batch_size,
                            random_state=seed).fit(F, y)
    # the documented order: RandomState(seed) seeds the embeddings, then permutes the samples
    rs = np.random.RandomState(seed)
    rs.randint(np.iinfo(np.int32).max)
    order = rs.permutation(len(F))
    untouched = CREAMReactivation(classifier_weights=W, momentum=1.0, random_state=seed).fit(F, y)
    fg, bg = plain_context(F, y, W, untouched.fg_context_, untouched.bg_context_, order, 0.7, 0.2)
    np.testing.assert_allclose(est.fg_context_, fg, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(est.bg_context_, bg, rtol=1e-5, atol=1e-5)


def test_context_order_matters_and_is_seeded(data):
    F, y, _ = data
    a = CREAMReactivation(momentum=0.5, random_state=0).fit(F, y)
    b = CREAMReactivation(momentum=0.5, random_state=1).fit(F, y)
    assert not np.allclose(a.fg_context_, b.fg_context_)


def test_momentum_one_keeps_random_init(data):
    F, y, _ = data
    a = CREAMReactivation(momentum=1.0, random_state=0).fit(F, y)
    # N(0, 1/d) initialisation, far from the (large, positive) feature means
    assert np.abs(a.fg_context_).max() < 5.0 / np.sqrt(F.shape[1]) * 3
    learned = CREAMReactivation(momentum=0.8, random_state=0).fit(F, y)
    assert learned.fg_context_[:, 0].min() > 0.5  # the body channel dominates the foreground


# ----------------------------------------------------------------------------- maps
@pytest.mark.parametrize("output", ["final", "calibrated", "cam", "posterior"])
@pytest.mark.parametrize("init", ["learned", "image"])
def test_maps_in_unit_interval(data, output, init):
    F, y, _ = data
    est = CREAMReactivation(output=output, init=init, random_state=0).fit(F, y)
    maps = est.transform(F)
    assert maps.shape == (len(F),) + F.shape[2:]
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
    # each map that is not constant spans [0, 1]
    assert np.allclose(maps.reshape(len(F), -1).max(1), 1.0)


def test_transform_is_localize_of_prediction(fitted, data):
    F, _, _ = data
    np.testing.assert_array_equal(fitted.transform(F), fitted.localize(F, fitted.predict(F)))


def test_n_iter_zero_is_cam(data):
    F, y, _ = data
    cam = CREAMReactivation(output="cam", random_state=0).fit(F, y).transform(F)
    for output in ("final", "calibrated", "posterior"):
        zero = CREAMReactivation(n_iter=0, output=output, random_state=0).fit(F, y).transform(F)
        np.testing.assert_allclose(zero, cam, atol=1e-6)


def separable_share(maps, inside):
    """Share of images for which some threshold gives exactly the object: every object
    pixel scores above every background pixel."""
    return np.mean([m[k].min() > m[~k].max() for m, k in zip(maps, inside)])


@pytest.mark.parametrize("init", ["learned", "image"])
def test_cream_covers_the_whole_object_better_than_cam(data, init):
    """The phenomenon: CAM peaks on the small part only; CREAM lifts the whole body above
    the background. sigma=1 because these toy features have unit scale (sigma=8 suits the
    large dot products of real 1000+-channel maps)."""
    F, y, boxes = data
    est = CREAMReactivation(sigma=1.0, init=init, random_state=0).fit(F, y)
    cam = est.set_params(output="cam").localize(F, y)
    cream = est.set_params(output="final").localize(F, y)
    inside = np.zeros_like(cam, dtype=bool)
    for i, (x0, y0, x1, y1) in enumerate(boxes.astype(int)):
        inside[i, y0:y1 + 1, x0:x1 + 1] = True
    assert separable_share(cam, inside) < 0.1
    assert separable_share(cream, inside) > 0.9


def test_batch_size_and_permutation_invariance(fitted, data):
    F, y, _ = data
    ref = fitted.localize(F, y)
    perm = np.random.default_rng(0).permutation(len(F))
    np.testing.assert_allclose(fitted.localize(F[perm], y[perm]), ref[perm], atol=1e-6)
    small = clone(fitted).set_params(batch_size=3)
    small.__dict__.update({k: v for k, v in vars(fitted).items() if k.endswith("_")})
    np.testing.assert_allclose(small.localize(F, y), ref, atol=1e-6)
    # one sample at a time gives the same maps as the batch
    one = np.stack([fitted.localize(F[i:i + 1], y[i:i + 1])[0] for i in range(5)])
    np.testing.assert_allclose(one, ref[:5], atol=1e-6)


def test_other_spatial_size_and_torch_input(fitted, data):
    F, y, _ = data
    big = np.repeat(np.repeat(F, 2, axis=2), 2, axis=3)
    out = fitted.localize(big, y)
    assert out.shape == (len(F), 16, 16)
    np.testing.assert_allclose(fitted.localize(torch.from_numpy(F), y), fitted.localize(F, y))
    np.testing.assert_allclose(fitted.localize(F.astype(np.float64), y), fitted.localize(F, y),
                               atol=1e-6)


def test_degenerate_maps_are_valid_not_nan(fitted, data):
    F, y, _ = data
    d = F.shape[1]
    zeros = np.zeros((2, d, 8, 8), np.float32)
    W = np.ones((2, d))
    for init in ("image", "learned"):
        est = CREAMReactivation(init=init, classifier_weights=W, random_state=0)
        est.fit(F[:4], np.array([0, 1, 0, 1]))
        # all-zero features: CAM is all zero
        out = est.localize(zeros, [0, 1])
        assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
        # CAM negative everywhere: no pixel reaches delta = 0.2 * max(M) > max(M)
        neg = -np.abs(np.random.default_rng(0).normal(1, 0.1, size=(2, d, 8, 8)))
        for output in ("final", "calibrated", "posterior", "cam"):
            out = est.set_params(output=output).localize(neg.astype(np.float32), [0, 1])
            assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    # a single-pixel map
    one = fitted.localize(F[:2, :, :1, :1], y[:2])
    assert one.shape == (2, 1, 1) and np.isfinite(one).all()


@settings(max_examples=15, deadline=None)
@given(scale=st.floats(1e-3, 1e3), sigma=st.floats(0.05, 100.0),
       kernel=st.sampled_from(["dot", "cosine"]), init=st.sampled_from(["learned", "image"]))
def test_property_finite_in_unit_interval(data, scale, sigma, kernel, init):
    F, y, _ = data
    Fs = (F[:12] * scale).astype(np.float32)
    est = CREAMReactivation(sigma=sigma, kernel=kernel, init=init, random_state=0)
    out = est.fit(Fs, y[:12]).transform(Fs)
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


# ----------------------------------------------------------------------------- post-hoc
def test_post_hoc_needs_no_labels(data):
    F, _, _ = data
    W = np.random.default_rng(3).normal(size=(4, F.shape[1]))
    est = CREAMReactivation(init="image", classifier_weights=W).fit(F)
    assert est.fg_context_ is None and est.classifier_ is None
    np.testing.assert_array_equal(est.classes_, np.arange(4))
    maps = est.transform(F)
    assert maps.shape == (len(F),) + F.shape[2:]


def test_post_hoc_init_is_the_image_own_means(data):
    """With lambda = 0 and one sample per class, the learned embeddings ARE that image's
    CAM-thresholded means, so learned and post-hoc give the same map."""
    F, _, _ = data
    W = np.random.default_rng(4).normal(size=(3, F.shape[1]))
    Fi = F[:3]
    labels = np.array([0, 1, 2])
    learned = CREAMReactivation(classifier_weights=W, momentum=0.0, random_state=0).fit(Fi, labels)
    post = CREAMReactivation(classifier_weights=W, init="image").fit(Fi)
    np.testing.assert_allclose(learned.localize(Fi, labels), post.localize(Fi, labels), atol=1e-5)


def test_post_hoc_with_learned_head(data):
    F, y, _ = data
    est = CREAMReactivation(init="image", random_state=0).fit(F, y)
    assert est.fg_context_ is None
    assert est.transform(F).shape == (len(F),) + F.shape[2:]


# ----------------------------------------------------------------------------- persistence
def test_pickle_and_joblib_round_trip(fitted, data, tmp_path):
    F, y, _ = data
    ref = fitted.transform(F)
    back = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(back.transform(F), ref)
    np.testing.assert_array_equal(back.predict_proba(F), fitted.predict_proba(F))
    joblib.dump(fitted, tmp_path / "m.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "m.joblib").transform(F), ref)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "params, match",
    [
        (dict(n_iter=-1), "n_iter"), (dict(n_iter=1.5), "n_iter"), (dict(sigma=0), "sigma"),
        (dict(sigma=float("nan")), "sigma"), (dict(momentum=1.5), "momentum"),
        (dict(fg_threshold=-0.1), "fg_threshold"), (dict(kernel="rbf"), "kernel"),
        (dict(init="random"), "init"), (dict(output="boxes"), "output"), (dict(C=0), "C"),
        (dict(batch_size=0), "batch_size"), (dict(max_iter=True), "max_iter"),
    ],
)
def test_bad_params(data, params, match):
    F, y, _ = data
    # a wrong type (1.5 for an int, a bool) is a TypeError, a value out of range a ValueError
    with pytest.raises((ValueError, TypeError), match=match):
        CREAMReactivation(**params).fit(F, y)


def test_bad_feature_maps(fitted, data):
    F, y, _ = data
    with pytest.raises(ValueError, match=r"\(n, d, h, w\).*3-D"):
        CREAMReactivation().fit(F[0], y)
    with pytest.raises(ValueError, match="4-D"):
        fitted.transform(F.reshape(len(F), -1))
    bad = F.copy()
    bad[5, 2, 1, 1] = np.nan
    with pytest.raises(ValueError, match=r"NaN or inf \(sample 5\)"):
        CREAMReactivation().fit(bad, y)
    bad[5, 2, 1, 1] = np.inf
    with pytest.raises(ValueError, match=r"NaN or inf \(sample 5\)"):
        fitted.transform(bad)
    with pytest.raises(ValueError, match="fitted on 12 channels"):
        fitted.transform(F[:, :10])
    with pytest.raises(TypeError, match="numeric"):
        CREAMReactivation().fit(np.full((2, 3, 4, 4), "a"), [0, 1])
    with pytest.raises(ValueError, match="0 samples"):
        fitted.transform(F[:0])


def test_bad_labels(fitted, data):
    F, y, _ = data
    with pytest.raises(ValueError, match=r"labels\[2\] = 7 is not a class seen in fit"):
        fitted.localize(F[:3], [0, 1, 7])
    with pytest.raises(ValueError, match="3 entries but F has 4"):
        fitted.localize(F[:4], [0, 1, 2])
    with pytest.raises(ValueError, match="y has 3 labels but F has 40"):
        CREAMReactivation().fit(F, y[:3])
    with pytest.raises(ValueError, match="at least 2 classes"):
        CREAMReactivation().fit(F, np.zeros(len(F), int))
    with pytest.raises(ValueError, match="y is required"):
        CREAMReactivation().fit(F)
    W = np.ones((3, F.shape[1]))
    with pytest.raises(ValueError, match="y is required"):
        CREAMReactivation(classifier_weights=W, init="learned").fit(F)
    with pytest.raises(ValueError, match=r"row indices in \[0, 3\); y\[0\] = 5"):
        CREAMReactivation(classifier_weights=W).fit(F[:2], [5, 0])


def test_class_without_learned_embedding(data):
    F, y, _ = data
    W = np.ones((4, F.shape[1]))
    est = CREAMReactivation(classifier_weights=W, random_state=0).fit(F, y)  # classes 0..2 only
    assert est.context_fitted_.tolist() == [True, True, True, False]
    with pytest.raises(ValueError, match=r"class 3 \(sample 1\).*init='image'"):
        est.localize(F[:2], [0, 3])


def test_bad_classifier_weights(data):
    F, y, _ = data
    d = F.shape[1]
    with pytest.raises(ValueError, match="classifier_weights has 5 columns but F has d=12"):
        CREAMReactivation(classifier_weights=np.ones((3, 5)), init="image").fit(F)
    with pytest.raises(ValueError, match=r"\(C, d\)"):
        CREAMReactivation(classifier_weights=np.ones(d), init="image").fit(F)
    W = np.ones((3, d))
    W[1, 2] = np.nan
    with pytest.raises(ValueError, match="classifier_weights contains NaN"):
        CREAMReactivation(classifier_weights=W, init="image").fit(F)
    with pytest.raises(ValueError, match=r"classifier_bias must have shape \(3,\)"):
        CREAMReactivation(classifier_weights=np.ones((3, d)), classifier_bias=np.ones(2),
                          init="image").fit(F)


# ----------------------------------------------------------------------------- box targets
def test_box_targets_layout_and_fit(data):
    F, y, boxes = data
    yt = box_targets(y, [b[None] for b in boxes], np.full((len(y), 2), 8))
    assert yt.shape == (len(y),)
    np.testing.assert_array_equal(yt["label"], y)
    a = CREAMReactivation(random_state=0).fit(F, yt)
    b = CREAMReactivation(random_state=0).fit(F, y)
    np.testing.assert_array_equal(a.transform(F), b.transform(F))
    np.testing.assert_array_equal(a.localize(F, yt), b.localize(F, y))
    # splitters index it like any y
    assert yt[[3, 1]]["boxes"][0].shape == (1, 4)


def test_box_targets_scale_to_the_protocol_frame():
    y = box_targets(["a", "b"], [[[10, 20, 30, 40]], [[0, 0, 223, 223], [5, 5, 9, 9]]],
                    [[100, 50], [224, 224]])
    # int(x * 224 / W): 22.4 -> 22, 89.6 -> 89, 67.2 -> 67, 179.2 -> 179
    np.testing.assert_array_equal(y["boxes"][0], [[22, 89, 67, 179]])
    np.testing.assert_array_equal(y["boxes"][1], [[0, 0, 223, 223], [5, 5, 9, 9]])
    np.testing.assert_array_equal(y["size"], [[100, 50], [224, 224]])
    assert y["label"].tolist() == ["a", "b"]
    # no sizes: the boxes are already in the 224x224 frame
    np.testing.assert_array_equal(box_targets([0], [[1.7, 2, 3, 4]])["boxes"][0], [[1, 2, 3, 4]])


def test_box_targets_bad_input():
    with pytest.raises(ValueError, match=r"boxes\[1\] must have shape \(k, 4\)"):
        box_targets([0, 1], [[[0, 0, 2, 2]], [[0, 0, 2]]])
    with pytest.raises(ValueError, match=r"boxes\[0\] must be x0,y0,x1,y1"):
        box_targets([0], [[[3, 0, 2, 2]]])
    with pytest.raises(ValueError, match="one .* per label"):
        box_targets([0, 1], [[[0, 0, 2, 2]]])
    with pytest.raises(ValueError, match=r"image_sizes\[1\] must be positive"):
        box_targets([0, 1], [[[0, 0, 2, 2]], [[0, 0, 2, 2]]], [[4, 4], [0, 4]])


def test_score_needs_boxes(fitted, data):
    F, y, _ = data
    with pytest.raises(TypeError, match="box_targets"):
        fitted.score(F, y)


# ----------------------------------------------------------------------------- map sources
def plain_gradcam_pp(F, w):
    """Grad-CAM++ (pytorch-grad-cam's formula) of a GAP + linear head, written out in numpy:
    the gradient of the class score w.r.t. F is w_k / (h w) at every pixel."""
    d, h, w_ = F.shape
    F = F.astype(np.float64)
    g = np.broadcast_to((w / (h * w_))[:, None, None], F.shape)
    total = F.sum(axis=(1, 2), keepdims=True)
    alpha = g**2 / (2 * g**2 + total * g**3 + 1e-6)
    alpha = np.where(g != 0, alpha, 0.0)
    weights = (np.maximum(g, 0) * alpha).sum(axis=(1, 2))
    return np.maximum(np.tensordot(weights, F, axes=(0, 0)), 0)


def test_cam_parameter_chooses_the_map_the_output_cam_returns(data):
    F, _, _ = data
    W = np.random.default_rng(1).normal(size=(5, F.shape[1]))
    labels = np.arange(len(F)) % 5
    est = CREAMReactivation(output="cam", init="image", classifier_weights=W,
                            cam="gradcam++").fit(F)
    maps = est.localize(F, labels)
    for i in range(len(F)):
        np.testing.assert_allclose(maps[i], plain_minmax(plain_gradcam_pp(F[i], W[labels[i]])),
                                   atol=1e-5)
    # the default is CAM, unchanged; set_params after fit takes effect
    cam = est.set_params(cam="cam").localize(F, labels)
    for i in range(3):
        np.testing.assert_allclose(cam[i], plain_minmax(plain_cam(F[i], W[labels[i]])),
                                   atol=1e-5)


@pytest.mark.parametrize("cam", ["gradcam", "xgradcam", "layercam", "eigencam"])
def test_post_hoc_reactivation_starts_from_the_chosen_map(data, cam):
    from skcream.cam import normalize_maps
    from skcream.map_sources import maps_from_features
    from skcream.reactivation import reactivate_map

    F, _, _ = data
    W = np.random.default_rng(3).normal(size=(4, F.shape[1]))
    labels = np.arange(len(F)) % 4
    est = CREAMReactivation(init="image", classifier_weights=W, cam=cam, sigma=2.0).fit(F)
    Ft = torch.from_numpy(F)
    source = maps_from_features(Ft, torch.from_numpy(W).float(), torch.from_numpy(labels), cam)
    expected = normalize_maps(reactivate_map(Ft, source, n_iter=2, sigma=2.0)).numpy()
    np.testing.assert_allclose(est.localize(F, labels), expected, atol=1e-6)
    if cam != "gradcam":  # Grad-CAM of a linear head is relu(CAM): same foreground as CAM
        assert not np.allclose(est.localize(F, labels),
                               est.set_params(cam="cam").localize(F, labels), atol=1e-3)


def test_learned_context_is_learned_from_the_chosen_map(data):
    F, y, _ = data
    a = CREAMReactivation(random_state=0).fit(F, y)
    b = CREAMReactivation(random_state=0, cam="eigencam").fit(F, y)
    assert not np.allclose(a.fg_context_, b.fg_context_)
    # Grad-CAM of a linear head is relu(CAM) / (h w): the same foreground (Eq. 3) as CAM,
    # so the same tables
    c = CREAMReactivation(random_state=0, cam="gradcam").fit(F, y)
    np.testing.assert_array_equal(a.fg_context_, c.fg_context_)
    np.testing.assert_array_equal(a.bg_context_, c.bg_context_)


def test_score_cam_needs_the_network(data):
    F, y, _ = data
    with pytest.raises(ValueError, match="Score-CAM masks the input image"):
        CREAMReactivation(cam="scorecam").fit(F, y)
    with pytest.raises(ValueError, match="cam must be one of"):
        CREAMReactivation(cam="GradCAM").fit(F, y)
