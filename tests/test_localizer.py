"""CREAMLocalizer: the sklearn contract, inputs, outputs, persistence, caching, resume.

Fast tests with timm's tiny ``test_resnet`` (untrained, 32 px inputs, 1-2 epochs): they
check plumbing and invariants, not localization quality (see test_localizer_slow.py).
"""

from __future__ import annotations

import pickle

import datasets
import joblib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _interrupt import fit_interrupted_at
from PIL import Image
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from skcream import CREAMLocalizer
from skcream.estimators.localizer import SCORERS, DatasetView
from skcream.localize import Localization
from skcream.metrics import max_box_acc_v2

TINY = dict(
    backbone="test_resnet",
    pretrained=False,
    max_epochs=1,
    batch_size=8,
    image_size=32,
    resize_size=36,
    random_state=0,
    verbose=0,
)


def _images(n: int, seed: int = 0, sizes=((40, 48), (52, 36), (44, 44))):
    """n images of varying sizes with a bright square whose channel is the class."""
    rng = np.random.default_rng(seed)
    images, labels, boxes = [], [], []
    for i in range(n):
        h, w = sizes[i % len(sizes)]
        img = rng.integers(0, 60, (h, w, 3)).astype(np.uint8)
        c = i % 2
        x, y = int(rng.integers(0, w - 16)), int(rng.integers(0, h - 16))
        img[y : y + 16, x : x + 16, c] = 250
        images.append(Image.fromarray(img))
        labels.append(c)
        boxes.append([[x, y, x + 16, y + 16]])
    return images, labels, boxes


def _dataset(n: int = 16, seed: int = 0) -> datasets.Dataset:
    images, labels, boxes = _images(n, seed)
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=["red", "green"]),
            "bboxes": datasets.Sequence(datasets.Sequence(datasets.Value("float32"), length=4)),
        }
    )
    return datasets.Dataset.from_dict(
        {"image": images, "label": labels, "bboxes": boxes}, features=features
    )



@pytest.fixture(scope="module")
def ds():
    return _dataset(16)


@pytest.fixture(scope="module")
def fitted(ds):
    return CREAMLocalizer(**TINY).fit(ds)


def _same_weights(a, b) -> bool:
    sa, sb = a.model_.state_dict(), b.model_.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ----------------------------------------------------------------------- sklearn contract
def test_init_stores_params_only_and_clone_roundtrips():
    est = CREAMLocalizer(sigma=3.0, n_iter=1, kernel="cosine")
    assert vars(est) == est.get_params(deep=False)
    c = clone(est)
    assert c.get_params() == est.get_params()
    c.set_params(sigma=5.0)
    assert c.sigma == 5.0 and est.sigma == 3.0


def test_selected_sklearn_estimator_checks():
    from sklearn.utils import estimator_checks as ec

    est = CREAMLocalizer()
    name = type(est).__name__
    ec.check_no_attributes_set_in_init(name, est)
    ec.check_parameters_default_constructible(name, est)
    ec.check_get_params_invariance(name, est)
    ec.check_set_params(name, est)
    ec.check_estimator_repr(name, est)
    ec.check_estimator_cloneable(name, est)
    ec.check_do_not_raise_errors_in_init_or_set_params(name, est)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"kernel": "rbf"}, "kernel"),
        ({"sigma": 0.0}, "sigma"),
        ({"n_iter": -1}, "n_iter"),
        ({"momentum": 1.5}, "momentum"),
        ({"box_threshold": 1.0}, "box_threshold"),
        ({"resize_size": 30}, "resize_size"),
        ({"mixed_precision": "fp8"}, "mixed_precision"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_parameters_raise_naming_them(ds, params, match):
    with pytest.raises((ValueError, TypeError), match=match):
        CREAMLocalizer(**{**TINY, **params}).fit(ds)


def test_unknown_backbone_lists_close_matches(ds):
    with pytest.raises(ValueError, match="resnet50"):
        CREAMLocalizer(**{**TINY, "backbone": "resnet5O"}).fit(ds)


def test_one_class_and_empty_class_are_refused(ds):
    images, _, _ = _images(6)
    with pytest.raises(ValueError, match="at least two classes"):
        CREAMLocalizer(**TINY).fit(images, [1] * 6)
    three = ds.cast_column("label", datasets.ClassLabel(names=["red", "green", "blue"]))
    with pytest.raises(ValueError, match="blue"):
        CREAMLocalizer(**TINY).fit(three)


@pytest.mark.parametrize(
    "method", ["predict", "predict_proba", "decision_function", "transform", "score"]
)
def test_methods_before_fit_raise_not_fitted(ds, method):
    with pytest.raises(NotFittedError):
        getattr(CREAMLocalizer(**TINY), method)(ds)


def test_pseudo_boxes_and_save_before_fit_raise_not_fitted(ds, tmp_path):
    with pytest.raises(NotFittedError):
        CREAMLocalizer(**TINY).pseudo_boxes(ds)
    with pytest.raises(NotFittedError):
        CREAMLocalizer(**TINY).save(tmp_path / "m")


# ----------------------------------------------------------------------- outputs
def test_fitted_attributes(fitted):
    assert list(fitted.classes_) == [0, 1]
    assert fitted.class_names_ == ["red", "green"]
    assert fitted.n_classes_ == 2
    assert fitted.context_.fg.shape == (2, fitted.feature_dim_)
    assert fitted.feature_shape_ == (2, 2)
    assert len(fitted.history_) == 1
    assert {"epoch", "loss", "accuracy"} <= set(fitted.history_[0])
    assert fitted.box_threshold_ == 0.2


def test_proba_and_decision_function(fitted, ds):
    logits = fitted.decision_function(ds)
    proba = fitted.predict_proba(ds)
    assert logits.shape == proba.shape == (len(ds), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(proba.argmax(1), logits.argmax(1))


def test_predict_localization_in_original_pixels(fitted, ds):
    loc = fitted.predict(ds)
    assert isinstance(loc, Localization) and len(loc) == len(ds)
    proba = fitted.predict_proba(ds)
    np.testing.assert_array_equal(loc.labels, fitted.classes_[proba.argmax(1)])
    np.testing.assert_allclose(loc.scores, proba.max(1), rtol=1e-5)
    for i in range(len(ds)):
        w, h = ds[i]["image"].size
        assert loc.masks[i].shape == (h, w) and loc.maps[i].shape == (h, w)
        x0, y0, x1, y1 = loc.boxes[i]
        assert 0 <= x0 <= x1 <= w - 1 and 0 <= y0 <= y1 <= h - 1
        assert loc.maps[i].min() >= 0 and loc.maps[i].max() <= 1


def test_transform_cam_equals_plain_cam(fitted, ds):
    """n_iter=0 is plain CAM: sum_k w_k^c f_k of the predicted class, min-max normalised."""
    est = clone(fitted).set_params(n_iter=0)
    est.__dict__.update({k: v for k, v in vars(fitted).items() if k.endswith("_")})
    maps = est.transform(ds)
    assert maps.shape == (len(ds), *fitted.feature_shape_)
    img = ds[0]["image"].convert("RGB").resize((32, 32), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)
    mean = torch.tensor(fitted.data_config_["mean"]).view(3, 1, 1)
    std = torch.tensor(fitted.data_config_["std"]).view(3, 1, 1)
    with torch.no_grad():
        feats = fitted.model_.backbone(((x - mean) / std)[None])[0]
        logits = fitted.model_.head(feats.mean(dim=(1, 2)))
        cam = torch.einsum("d,dhw->hw", fitted.model_.head.weight[logits.argmax()], feats)
    ref = (cam - cam.min()) / (cam.max() - cam.min())
    np.testing.assert_allclose(maps[0], ref.numpy(), atol=1e-5)


def test_transform_cream_in_unit_interval_and_differs_from_cam(fitted, ds):
    maps = fitted.transform(ds)
    assert maps.min() >= 0 and maps.max() <= 1
    assert np.isclose(maps.reshape(len(ds), -1).max(1), 1).all()


def test_batch_and_single_predictions_agree(fitted, ds):
    full = fitted.predict(ds)
    one = fitted.predict(ds.select([5]))
    np.testing.assert_array_equal(one.boxes[0], full.boxes[5])
    np.testing.assert_allclose(one.maps[0], full.maps[5], atol=1e-5)  # float32 conv batching
    np.testing.assert_allclose(
        fitted.transform(ds.select([3, 7])), fitted.transform(ds)[[3, 7]], atol=1e-5
    )


def test_localize_labels_and_unknown_labels(fitted, ds):
    loc = fitted.localize(ds, labels=[1] * len(ds))
    np.testing.assert_array_equal(loc.labels, [1] * len(ds))
    with pytest.raises(ValueError, match=r"\[7, 9\]"):
        fitted.localize(ds, labels=[0] * (len(ds) - 2) + [7, 9])


def test_pseudo_boxes_batch_vs_subset(fitted, ds):
    boxes = fitted.pseudo_boxes(ds, resolution=48)
    assert boxes.shape == (len(ds), 4)
    np.testing.assert_array_equal(fitted.pseudo_boxes(ds.select([2, 9]), resolution=48),
                                  boxes[[2, 9]])
    for i in range(len(ds)):
        w, h = ds[i]["image"].size
        assert boxes[i, 2] <= w - 1 and boxes[i, 3] <= h - 1


def test_score_is_protocol_max_box_acc_v2(fitted, ds):
    """Reference written plainly: CAM of the true class, bicubic to 224, min-max, int boxes."""
    est = clone(fitted).set_params(n_iter=0)
    est.__dict__.update({k: v for k, v in vars(fitted).items() if k.endswith("_")})
    maps, gts = [], []
    mean = torch.tensor(fitted.data_config_["mean"]).view(3, 1, 1)
    std = torch.tensor(fitted.data_config_["std"]).view(3, 1, 1)
    for row in ds:
        img = row["image"].convert("RGB")
        w, h = img.size
        x = torch.from_numpy(np.asarray(img.resize((32, 32), Image.BILINEAR), np.float32) / 255)
        with torch.no_grad():
            feats = fitted.model_.backbone(((x.permute(2, 0, 1) - mean) / std)[None])
            cam = torch.einsum("d,bdhw->bhw", fitted.model_.head.weight[row["label"]], feats)
        up = F.interpolate(cam[None].double(), size=(224, 224), mode="bicubic",
                           align_corners=False)[0, 0]
        up = (up - up.min()) / (up.max() - up.min())
        maps.append(up.numpy())
        b = np.asarray(row["bboxes"], dtype=np.float64)
        gts.append(np.stack([np.trunc(b[:, 0] * 224 / w), np.trunc(b[:, 1] * 224 / h),
                             np.trunc(b[:, 2] * 224 / w), np.trunc(b[:, 3] * 224 / h)], 1))
    assert est.score(ds) == pytest.approx(max_box_acc_v2(np.stack(maps), gts), abs=1e-9)
    assert 0 <= fitted.score(ds) <= 100


def test_evaluate_returns_the_metrics(fitted, ds):
    out = fitted.evaluate(ds)
    assert out["max_box_acc_v2"] == pytest.approx(fitted.score(ds))
    assert fitted.evaluate(ds, n_jobs=2) == out  # streaming, threads: identical numbers
    assert set(out) >= {"max_box_acc", "top1_loc", "top5_loc", "gt_known_loc", "top1_acc"}
    assert out["top1_loc"] <= out["gt_known_loc"] and out["top1_loc"] <= out["top5_loc"]
    acc = 100 * np.mean(fitted.predict_proba(ds).argmax(1) == np.asarray(ds["label"]))
    assert out["top1_acc"] == pytest.approx(acc)
    with pytest.raises(ValueError, match="metrics"):
        fitted.evaluate(ds, metrics=["nope"])
    for name, scorer in SCORERS.items():
        assert scorer(fitted, ds) == pytest.approx(out[name])


def test_mixed_sizes_and_modes_with_string_labels():
    rng = np.random.default_rng(3)
    X = [
        rng.integers(0, 255, (30, 40), dtype=np.uint8),  # grayscale
        Image.fromarray(rng.integers(0, 255, (50, 35, 4), dtype=np.uint8), mode="RGBA"),
        Image.fromarray(rng.integers(0, 255, (33, 33, 3), dtype=np.uint8)).convert("P"),
        rng.integers(0, 255, (41, 29, 3), dtype=np.uint8),
    ] * 2
    y = ["cat", "dog", "cat", "dog"] * 2
    est = CREAMLocalizer(**TINY).fit(X, y)
    assert list(est.classes_) == ["cat", "dog"]
    loc = est.predict(X)
    assert set(loc.labels) <= {"cat", "dog"}
    assert loc.masks[0].shape == (30, 40) and loc.masks[1].shape == (50, 35)
    with pytest.raises(ValueError, match="bird"):
        est.localize(X, labels=["bird"] + y[1:])


def test_fit_is_reproducible_bit_for_bit(ds, fitted):
    again = CREAMLocalizer(**TINY).fit(ds)
    assert _same_weights(again, fitted)
    assert torch.equal(again.context_.fg, fitted.context_.fg)


def test_context_changes_with_momentum_below_one(ds, fitted):
    frozen = CREAMLocalizer(**{**TINY, "momentum": 1.0}).fit(ds)
    assert _same_weights(frozen, fitted)  # the context never touches the gradients
    assert not torch.equal(frozen.context_.fg, fitted.context_.fg)


# ----------------------------------------------------------------------- persistence
def test_pickle_and_joblib_roundtrips(fitted, ds, tmp_path):
    ref = fitted.predict(ds)
    blob = pickle.dumps(fitted)
    assert b"accelerate" not in blob
    for est in (pickle.loads(blob), joblib.load(joblib.dump(fitted, tmp_path / "m.joblib")[0])):
        loc = est.predict(ds)
        np.testing.assert_array_equal(loc.boxes, ref.boxes)
        np.testing.assert_array_equal(est.transform(ds), fitted.transform(ds))
        assert _same_weights(est, fitted)


def test_save_load_roundtrip_and_refusals(fitted, ds, tmp_path):
    path = tmp_path / "model"
    fitted.save(path)
    fitted.save(path)  # the identical estimator again: allowed
    loaded = CREAMLocalizer.load(path)
    assert loaded.get_params() == {**fitted.get_params(), "validation_data": None}
    np.testing.assert_array_equal(loaded.transform(ds), fitted.transform(ds))
    assert loaded.box_threshold_ == fitted.box_threshold_
    other = clone(fitted).set_params(max_epochs=2).fit(ds)
    with pytest.raises(FileExistsError, match="overwrite"):
        other.save(path)
    other.save(path, overwrite=True)
    assert _same_weights(CREAMLocalizer.load(path), other)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a saved"):
        fitted.save(foreign, overwrite=True)
    assert (foreign / "notes.txt").read_text() == "mine"
    import json

    assert json.loads((path / "skcream.json").read_text())["format"] == "skcream-estimator"


def test_load_never_unpickles(tmp_path):
    (tmp_path / "skcream.json").write_text('{"format": "other"}')
    (tmp_path / "weights.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="not a saved"):
        CREAMLocalizer.load(tmp_path)


# ----------------------------------------------------------------------- caching, CV
@pytest.fixture
def count_training(monkeypatch):
    import skcream.training as training

    calls = []
    real = training.train

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "train", counting)
    return calls


def test_memory_reuses_the_network_for_inference_params(ds, tmp_path, count_training):
    base = CREAMLocalizer(**TINY, memory=tmp_path / "cache").fit(ds)
    other = clone(base).set_params(sigma=2.0, n_iter=1, kernel="cosine", fg_threshold=0.3,
                                   box_threshold=0.4).fit(ds)
    assert len(count_training) == 1
    assert _same_weights(base, other) and torch.equal(base.context_.bg, other.context_.bg)
    assert other.box_threshold_ == 0.4
    fresh = CREAMLocalizer(**{**TINY, "sigma": 2.0, "n_iter": 1, "kernel": "cosine"}).fit(ds)
    np.testing.assert_allclose(other.transform(ds), fresh.transform(ds), atol=1e-6)
    clone(base).set_params(lr=5e-3).fit(ds)  # a training parameter: retrains
    clone(base).fit(ds.select(range(12)))  # other data: retrains
    assert len(count_training) == 4  # base, fresh (no memory), lr, data


def test_resize_size_none_follows_image_size(ds, tmp_path, count_training):
    """Issue 21: ``resize_size=None`` (default) is the protocol's 256 / 224 of image_size,
    for both trained estimators; an explicit value is kept; None and its resolved value are
    one training (one ``memory=`` entry, identical weights)."""
    from skcream import PseudoBoxRegressor
    from skcream.estimators._common import train_transform
    from skcream.estimators._params import resolved_resize_size
    from skcream.presets import DEMO, QUICK

    assert [resolved_resize_size(s, None) for s in (224, 128, 96, 32, 448)] == [
        256, 146, 110, 37, 512]
    assert resolved_resize_size(128, 200) == 200
    # the demo's explicit sizes are the rule's: its numbers do not move
    for preset in (DEMO, QUICK):
        assert preset.resize_size == resolved_resize_size(preset.image_size, None)
    cfg = {"mean": (0.5,) * 3, "std": (0.5,) * 3}
    for cls in (CREAMLocalizer, PseudoBoxRegressor):
        assert cls().resize_size is None
        # every path reads the validated parameters, where None is resolved (one place)
        assert cls(image_size=128)._params().resize_size == 146
        assert train_transform(cls(image_size=128)._params(), cfg, flip=True).resize == 146
        assert train_transform(cls(image_size=128, resize_size=200)._params(), cfg,
                               flip=True).resize == 200
    params = {**TINY, "resize_size": None}
    auto = CREAMLocalizer(**params, memory=tmp_path / "cache").fit(ds)
    given = CREAMLocalizer(**{**params, "resize_size": 37}, memory=tmp_path / "cache").fit(ds)
    assert len(count_training) == 1 and _same_weights(auto, given)
    with pytest.raises(ValueError, match="resize_size must be >= image_size"):
        CREAMLocalizer(**{**params, "resize_size": 30}).fit(ds)


def test_grid_search_over_inference_params_on_a_dataset(ds, tmp_path, count_training):
    est = CREAMLocalizer(**TINY, memory=str(tmp_path / "cache"))
    grid = GridSearchCV(est, {"sigma": [4.0, 8.0], "n_iter": [0, 2]}, cv=KFold(2),
                        scoring=SCORERS, refit="max_box_acc_v2")
    grid.fit(DatasetView(ds))
    assert len(count_training) == 3  # one fit per fold + the refit
    assert grid.cv_results_["mean_test_max_box_acc_v2"].shape == (4,)
    assert isinstance(grid.predict(ds), Localization)


def test_cross_val_score_and_pipeline(ds):
    scores = cross_val_score(CREAMLocalizer(**TINY), DatasetView(ds), cv=KFold(2))
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 100))
    rows = [ds[i] for i in range(len(ds))]  # what sklearn makes of a list-like of rows
    np.testing.assert_array_equal(
        CREAMLocalizer(**TINY).fit(rows).transform(rows), CREAMLocalizer(**TINY).fit(ds).transform(ds)
    )
    pipe = Pipeline([("identity", FunctionTransformer()), ("cream", CREAMLocalizer(**TINY))])
    pipe.fit(ds)
    assert isinstance(pipe.predict(ds), Localization)
    assert pipe.score(ds) == pytest.approx(pipe[-1].score(ds))


# ----------------------------------------------------------------------- checkpoints
def test_interrupted_fit_resumes_from_the_last_checkpoint(ds, tmp_path, monkeypatch):
    params = {**TINY, "max_epochs": 2, "checkpoint_dir": tmp_path / "ckpt"}
    uninterrupted = CREAMLocalizer(**{**params, "checkpoint_dir": None}).fit(ds)
    fit_interrupted_at(3, params, ds, monkeypatch)  # first step of epoch 2 (two steps per epoch)
    resumed = CREAMLocalizer(**params).fit(ds)
    assert [r["epoch"] for r in resumed.history_] == [1, 2]
    assert _same_weights(resumed, uninterrupted)
    assert torch.equal(resumed.context_.fg, uninterrupted.context_.fg)


def test_checkpoint_of_another_configuration_is_refused(ds, tmp_path):
    CREAMLocalizer(**TINY, checkpoint_dir=tmp_path).fit(ds)
    with pytest.raises(ValueError, match="another configuration"):
        CREAMLocalizer(**{**TINY, "lr": 0.01}, checkpoint_dir=tmp_path).fit(ds)
    with pytest.raises(ValueError, match="another configuration"):
        CREAMLocalizer(**TINY, checkpoint_dir=tmp_path).fit(ds.select(range(12)))


# ----------------------------------------------------------------------- validation data
def test_validation_data_history_and_threshold(ds):
    est = CREAMLocalizer(**{**TINY, "max_epochs": 2}, validation_data=ds.select(range(8))).fit(ds)
    assert all(0 <= r["val_max_box_acc_v2"] <= 100 for r in est.history_)
    assert 0 <= est.box_threshold_ < 1
    fixed = clone(est).set_params(box_threshold=0.5).fit(ds)
    assert fixed.box_threshold_ == 0.5
