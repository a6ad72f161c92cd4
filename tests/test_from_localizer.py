"""The fine-tuned CREAMLocalizer as a feature-map pipeline (TimmFeatures / CREAMReactivation
``from_localizer``): equal maps, clone / pickle semantics, grid search without the network."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline

from skcream import CREAMLocalizer, CREAMReactivation, TimmFeatures
from skcream.estimators.feature_reactivation import box_targets_from
from skcream.estimators.features import TrainedBackbone

pytestmark = pytest.mark.slow  # each module run fine-tunes a tiny localizer (end to end)

TINY = dict(backbone="test_resnet", pretrained=False, max_epochs=1, batch_size=8,
            image_size=64, resize_size=72, random_state=0, verbose=0)


@pytest.fixture(scope="module")
def fitted():
    from skcream.data import make_synthetic

    torch.set_num_threads(1)
    train = make_synthetic(16, n_classes=3, image_size=64, random_state=0)
    test = make_synthetic(10, n_classes=3, image_size=64, random_state=1)
    return CREAMLocalizer(**TINY).fit(train), train, test


def test_pipeline_equals_the_localizers_own_maps(fitted):
    loc, _, test = fitted
    pipe = make_pipeline(TimmFeatures.from_localizer(loc), CREAMReactivation.from_localizer(loc))
    maps = pipe.transform(test)
    expected = loc.transform(test)
    assert maps.shape == expected.shape == (len(test), *loc.feature_shape_)
    assert float(maps.std()) > 0  # real maps, not constants
    np.testing.assert_allclose(maps, expected, atol=1e-5)
    # every inference parameter is carried over: T=0 is the CAM of the same head
    loc0 = clone(loc).set_params(n_iter=0)
    loc0.__setstate__(loc.__getstate__())  # the same fitted network
    loc0.set_params(n_iter=0, sigma=2.0)
    cam = CREAMReactivation.from_localizer(loc0)
    assert (cam.n_iter, cam.sigma) == (0, 2.0)
    np.testing.assert_allclose(cam.transform(pipe[0].transform(test)), loc0.transform(test),
                               atol=1e-5)


def test_transform_and_predict_on_user_feature_maps(fitted):
    loc, _, test = fitted
    cream = CREAMReactivation.from_localizer(loc)
    # feature maps the user computed with the localizer's own network
    from skcream.data.transforms import EvalTransform

    cfg = loc.data_config_
    tf = EvalTransform(size=loc.image_size, mean=cfg["mean"], std=cfg["std"])
    batch = torch.stack([tf(im, np.zeros((0, 4)))[0] for im in test["image"]])
    with torch.no_grad():
        logits, F = loc.model_(batch)
    np.testing.assert_allclose(cream.transform(F), loc.transform(test), atol=1e-5)
    np.testing.assert_array_equal(cream.predict(F), loc.classes_[logits.argmax(1).numpy()])
    np.testing.assert_allclose(cream.predict_proba(F), loc.predict_proba(test), atol=1e-5)
    labels = np.asarray(test["label"])
    np.testing.assert_allclose(cream.localize(F, labels), loc.transform(test, labels=labels),
                               atol=1e-5)
    assert list(cream.classes_) == list(loc.classes_)


def test_clone_and_pickle_keep_the_trained_state(fitted):
    loc, train, test = fitted
    feats = TimmFeatures.from_localizer(loc)
    cream = CREAMReactivation.from_localizer(loc)
    expected = loc.transform(test)
    # clone: the same frozen network and tables, unfitted; fit learns nothing from the data
    pipe = clone(make_pipeline(feats, cream))
    assert pipe[0].backbone is feats.backbone  # immutable TrainedBackbone, shared
    np.testing.assert_array_equal(pipe[1].classifier_weights, cream.classifier_weights)
    pipe.fit(train, np.asarray(train["label"]))
    np.testing.assert_allclose(pipe.transform(test), expected, atol=1e-5)
    # pickle: weights stored as safetensors bytes, the network rebuilt on load
    state = pickle.dumps(make_pipeline(feats, cream))
    assert b"torch.nn" not in state and b"timm.models" not in state
    again = pickle.loads(state)
    assert again[0].backbone.digest == feats.backbone.digest
    np.testing.assert_allclose(again.transform(test), expected, atol=1e-5)
    # later changes to the localizer do not reach the transformers
    before = cream.coef_.copy()
    with torch.no_grad():
        loc.model_.head.weight.add_(1.0)
    try:
        np.testing.assert_array_equal(cream.coef_, before)
        np.testing.assert_allclose(feats.transform(test[:2]["image"]),
                                   again[0].transform(test[:2]["image"]), atol=1e-6)
    finally:
        with torch.no_grad():
            loc.model_.head.weight.sub_(1.0)


def test_grid_search_over_inference_parameters_needs_no_network(fitted):
    loc, train, test = fitted
    F = TimmFeatures.from_localizer(loc).transform(test)
    y = box_targets_from(test)
    search = GridSearchCV(CREAMReactivation.from_localizer(loc),
                          {"sigma": [1.0, 8.0], "n_iter": [0, 2]}, cv=KFold(2))
    search.fit(F, y)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    # the score of the best candidate is the localizer's own score with those parameters
    best = search.best_params_
    loc2 = clone(loc)
    loc2.__setstate__(loc.__getstate__())
    loc2.set_params(**best)
    assert search.best_estimator_.score(F, y) == pytest.approx(loc2.score(test), abs=1e-6)


def test_errors_name_the_problem(fitted):
    loc, _, _ = fitted
    with pytest.raises(ValueError, match="fitted CREAMLocalizer"):
        TimmFeatures.from_localizer(CREAMLocalizer(**TINY))
    with pytest.raises(ValueError, match="fitted CREAMLocalizer"):
        CREAMReactivation.from_localizer(CREAMLocalizer(**TINY))
    feats = TimmFeatures.from_localizer(loc)
    with pytest.raises(ValueError, match="pretrained=True"):
        clone(feats).set_params(pretrained=True).fit()
    with pytest.raises(TypeError, match="FeatureBackbone"):
        TrainedBackbone(torch.nn.Linear(2, 2), loc.data_config_)
    cream = CREAMReactivation.from_localizer(loc)
    F = np.zeros((2, loc.feature_dim_, *loc.feature_shape_), dtype=np.float32)
    with pytest.raises(ValueError, match="needs classifier_weights"):
        CREAMReactivation(context_embeddings=cream.context_embeddings).fit(F, [0, 1])
    with pytest.raises(ValueError, match="sorted and unique"):
        clone(cream).set_params(classes=cream.classes[::-1]).fit(F)
    with pytest.raises(ValueError, match=r"context_embeddings fg must be a numeric \(3, "):
        clone(cream).set_params(context_embeddings=(np.zeros((2, 3)), np.zeros((2, 3)))).fit(F)
    with pytest.raises(ValueError, match="not a class seen in fit"):
        clone(cream).fit(F, [0, 7])


def test_from_a_saved_and_loaded_localizer(fitted, tmp_path):
    loc, _, test = fitted
    loc.save(tmp_path / "m")
    loaded = CREAMLocalizer.load(tmp_path / "m")
    pipe = make_pipeline(TimmFeatures.from_localizer(loaded),
                         CREAMReactivation.from_localizer(loaded))
    assert pipe[0].backbone.digest == TimmFeatures.from_localizer(loc).backbone.digest
    np.testing.assert_allclose(pipe.transform(test), loc.transform(test), atol=1e-5)
