"""Parameters as scikit-learn passes them, and settings that take effect (issue 22, 7 and 8).

- Item 8: every documented int / float accepts any ``numbers.Integral`` / ``numbers.Real``
  (numpy scalars are what ``GridSearchCV`` passes from an ``np.array`` grid) through one
  check (``skcream._checks``), and behaves exactly as the Python number it stands for; a
  value of the wrong kind is one error naming the parameter.
- Item 7: inference-time parameters are read at call time: ``set_params`` after ``fit``
  gives what the same value given before ``fit`` gives (``skcream localize --threshold``
  included).
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold
from test_localizer import TINY, _dataset

from skcream import CREAMLocalizer
from skcream.cli import main
from skcream.estimators.localizer import SCORERS, DatasetView
from skcream.estimators.localizer._validation import INFERENCE_PARAMS
from skcream.localize import maps_to_localization


@pytest.fixture(scope="module")
def ds():
    return _dataset(16)


@pytest.fixture(scope="module")
def fitted(ds):
    return CREAMLocalizer(**TINY).fit(ds)


def _weights(est):
    return {k: v.clone() for k, v in est.model_.state_dict().items()}


def _copy(est):
    """An independent copy of a fitted estimator (its pickle round trip)."""
    return pickle.loads(pickle.dumps(est))


# ------------------------------------------------------------------ item 8: numpy numbers
def test_fit_with_numpy_numbers_equals_fit_with_python_numbers(ds):
    plain = CREAMLocalizer(**{**TINY, "max_epochs": 2, "lr": 0.01, "momentum": 0.5,
                              "num_workers": 0, "gradient_accumulation_steps": 1})
    numpy = CREAMLocalizer(**{**TINY, "max_epochs": np.int64(2), "batch_size": np.int64(8),
                              "image_size": np.int32(32), "resize_size": np.uint16(36),
                              "lr": np.float64(0.01), "momentum": np.float64(0.5),
                              "num_workers": np.int8(0), "random_state": np.int64(0),
                              "gradient_accumulation_steps": np.int64(1),
                              "lr_step": np.int64(15), "nesterov": np.bool_(False)})
    a, b = plain.fit(ds), numpy.fit(ds)
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    np.testing.assert_array_equal(a.transform(ds), b.transform(ds))
    np.testing.assert_array_equal(a.pseudo_boxes(ds, resolution=np.int64(48)),
                                  a.pseudo_boxes(ds, resolution=48))


def test_numpy_feature_stage_is_an_int(ds):
    a = CREAMLocalizer(**{**TINY, "image_size": 64, "resize_size": 72, "feature_stage": -2})
    b = clone(a).set_params(feature_stage=np.int64(-2))
    np.testing.assert_array_equal(a.fit(ds).transform(ds), b.fit(ds).transform(ds))


def test_grid_search_over_numpy_arrays_equals_lists(ds, tmp_path):
    est = CREAMLocalizer(**TINY, memory=str(tmp_path / "cache"))
    grids = [{"batch_size": [4, 8], "sigma": [4.0, 8.0], "n_iter": [0, 2]},
             {"batch_size": np.array([4, 8]), "sigma": np.array([4.0, 8.0]),
              "n_iter": np.array([0, 2])}]
    results = []
    for grid in grids:
        search = GridSearchCV(est, grid, cv=KFold(2), scoring=SCORERS["max_box_acc_v2"])
        search.fit(DatasetView(ds))
        results.append(search.cv_results_["mean_test_score"])
    np.testing.assert_array_equal(*results)


_INFERENCE_VALUES = {  # parameter -> (values it may take) for the property below
    "n_iter": [0, 1, 3], "sigma": [0.5, 2.0, 8.0], "fg_threshold": [0.0, 0.3, 1.0],
    "box_threshold": [0.0, 0.25, 0.75], "normalization_percentile": [0.1, 0.5, 0.9],
    "clamp_negative_weights": [False, True],
}
_INT_TYPES = (int, np.int8, np.int16, np.int32, np.int64, np.uint8)
_REAL_TYPES = (float, np.float16, np.float32, np.float64, np.int64)


def _typed(value, kind):
    if isinstance(value, bool):
        return np.bool_(value) if kind else value
    if isinstance(value, int):
        return _INT_TYPES[kind % len(_INT_TYPES)](value)
    t = _REAL_TYPES[kind % len(_REAL_TYPES)]
    return t(value) if t is not np.int64 or float(value).is_integer() else np.float64(value)


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(choice=st.fixed_dictionaries({k: st.sampled_from(v) for k, v in _INFERENCE_VALUES.items()}),
       kinds=st.fixed_dictionaries({k: st.integers(0, 5) for k in _INFERENCE_VALUES}),
       normalization=st.sampled_from(["minmax", "ivr", "pas"]))
def test_numpy_inference_parameters_give_the_python_answer(fitted, ds, choice, kinds,
                                                           normalization):
    """Any mix of numpy types for the inference parameters: the same maps and boxes as the
    Python numbers they stand for (``float(np.float16(0.3))`` is the clean value of
    ``np.float16(0.3)``)."""
    typed = {k: _typed(v, kinds[k]) for k, v in choice.items()}
    clean = {k: v.item() if isinstance(v, np.generic) else v for k, v in typed.items()}
    rows = ds.select(range(4))
    a = _copy(fitted).set_params(map_normalization=normalization, **typed)
    got_maps, got = a.transform(rows), a.predict(rows)
    a.set_params(**clean)
    np.testing.assert_array_equal(got_maps, a.transform(rows))
    np.testing.assert_array_equal(got.boxes, a.predict(rows).boxes)


@pytest.mark.parametrize("name, value, error", [
    ("batch_size", np.float64(8.0), TypeError), ("batch_size", np.bool_(True), TypeError),
    ("n_iter", 2.0, TypeError), ("max_epochs", np.int64(0), ValueError),
    ("sigma", np.float64("nan"), ValueError), ("box_threshold", np.float32(1.0), ValueError),
    ("feature_stage", "last", TypeError), ("clamp_negative_weights", 1, TypeError),
])
def test_a_wrong_kind_of_number_is_one_error_naming_the_parameter(ds, name, value, error):
    with pytest.raises(error, match=f"^{name} must be"):
        CREAMLocalizer(**{**TINY, name: value}).fit(ds)


def test_functions_and_other_estimators_take_numpy_numbers(fitted, ds):
    from skcream import TimmFeatures
    from skcream.metrics import max_box_acc_v2
    from skcream.reactivation import reactivate
    from skcream.training import TrainConfig

    a = TimmFeatures("test_resnet", pretrained=False, image_size=64, batch_size=4,
                     feature_stage=-2, random_state=0, verbose=0).fit()
    b = TimmFeatures("test_resnet", pretrained=False, image_size=np.int64(64),
                     batch_size=np.int64(4), feature_stage=np.int64(-2), random_state=np.int64(0),
                     verbose=0).fit()
    np.testing.assert_array_equal(a.transform(ds), b.transform(ds))
    config = TrainConfig(epochs=np.int64(2), batch_size=np.int32(4), lr=np.float32(0.5)).validate()
    assert (type(config.epochs), type(config.batch_size), type(config.lr)) == (int, int, float)
    f = torch.rand(2, 3, 4, 4)
    cams = torch.rand(2, 4, 4)
    fg, bg = torch.rand(2, 3), torch.rand(2, 3)
    assert torch.equal(reactivate(f, cams, fg, bg, n_iter=np.int64(2), sigma=np.float32(2.0)),
                       reactivate(f, cams, fg, bg, n_iter=2, sigma=2.0))
    maps = [np.random.default_rng(0).random((32, 32))]
    boxes = [np.array([[2.0, 2.0, 20.0, 20.0]])]
    assert max_box_acc_v2(maps, boxes, n_jobs=np.int64(1)) == max_box_acc_v2(maps, boxes)


# ------------------------------------------------------------------ item 7: read at call time
def test_box_threshold_set_after_fit_takes_effect(fitted, ds):
    est = _copy(fitted)
    maps = est.predict(ds).maps
    boxes = {}
    for t in (0.0, 0.5, 0.95):
        est.set_params(box_threshold=t)
        assert est.box_threshold_ == t
        boxes[t] = est.predict(ds).boxes
        # independent: the boxes of the same maps at threshold t
        ref = maps_to_localization(maps, t, np.zeros(len(maps), dtype=int)).boxes
        np.testing.assert_array_equal(boxes[t], ref)
    assert not np.array_equal(boxes[0.0], boxes[0.95])
    est.set_params(box_threshold=None)
    assert est.box_threshold_ == est.auto_box_threshold_ == 0.2  # no validation data


def test_auto_threshold_is_kept_when_box_threshold_is_set_at_fit(ds):
    val = ds.select(range(8))
    auto = CREAMLocalizer(**TINY, validation_data=val).fit(ds)
    fixed = CREAMLocalizer(**TINY, validation_data=val, box_threshold=0.6).fit(ds)
    assert fixed.box_threshold_ == 0.6
    assert fixed.auto_box_threshold_ == auto.auto_box_threshold_ == auto.box_threshold_
    fixed.set_params(box_threshold=None)  # back to the threshold chosen on validation_data
    assert fixed.box_threshold_ == auto.box_threshold_
    np.testing.assert_array_equal(fixed.predict(ds).boxes, auto.predict(ds).boxes)


def test_box_threshold_survives_save_and_pickle(fitted, tmp_path):
    est = _copy(fitted).set_params(box_threshold=0.7)
    est.save(tmp_path / "m")
    loaded = CREAMLocalizer.load(tmp_path / "m")
    assert loaded.box_threshold_ == 0.7 and loaded.auto_box_threshold_ == 0.2
    meta = json.loads((tmp_path / "m" / "skcream.json").read_text())
    assert meta["params"]["box_threshold"] == 0.7
    assert meta["fitted"]["auto_box_threshold_"] == 0.2
    assert pickle.loads(pickle.dumps(loaded.set_params(box_threshold=None))).box_threshold_ == 0.2


def test_every_inference_parameter_set_after_fit_equals_it_given_before(ds, tmp_path):
    """set_params(p=v) on a fitted model == a model fitted with p=v (the same network from
    the memory cache): for every parameter of INFERENCE_PARAMS."""
    changed = {"n_iter": 1, "sigma": 3.0, "kernel": "cosine", "fg_threshold": 0.5,
               "box_threshold": 0.6, "map_normalization": "pas",
               "normalization_percentile": 0.7, "clamp_negative_weights": True}
    assert set(changed) == set(INFERENCE_PARAMS)
    base = CREAMLocalizer(**TINY, memory=tmp_path / "cache").fit(ds)
    rows = ds.select(range(6))
    for name, value in changed.items():
        extra = {"map_normalization": "ivr"} if name == "normalization_percentile" else {}
        after = _copy(base).set_params(**extra, **{name: value})
        before = clone(base).set_params(**extra, **{name: value}).fit(ds)
        np.testing.assert_array_equal(after.transform(rows), before.transform(rows), name)
        np.testing.assert_array_equal(after.predict(rows).boxes, before.predict(rows).boxes,
                                      name)


def test_cli_localize_threshold_takes_effect(fitted, tmp_path, capsys):
    fitted.save(tmp_path / "model")
    image = tmp_path / "a.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 48, 3)).astype(np.uint8)).save(image)
    boxes = {}
    for t in ("0.0", "0.95"):
        out = tmp_path / f"out{t}"
        assert main(["localize", str(image), "--model", str(tmp_path / "model"),
                     "--out", str(out), "--threshold", t, "--quiet"]) == 0
        boxes[t] = json.loads((out / "boxes.json").read_text())[0]["box"]
    capsys.readouterr()
    assert boxes["0.0"] == [0.0, 0.0, 47.0, 39.0]  # threshold 0: every pixel of the 48x40
    assert boxes["0.0"] != boxes["0.95"]


def test_timm_features_refuses_network_parameters_set_after_fit(ds):
    """TimmFeatures builds its network and feature_shape_ in fit: changing what they are
    built from afterwards is an error, not silently the old network."""
    from skcream import TimmFeatures

    est = TimmFeatures("test_resnet", pretrained=False, image_size=32, random_state=0,
                       verbose=0).fit()
    before = est.transform(ds)
    est.set_params(image_size=np.int64(32))  # the same size, as a numpy integer
    np.testing.assert_array_equal(est.transform(ds), before)
    for name, value in (("image_size", 64), ("feature_stage", -2)):
        changed = pickle.loads(pickle.dumps(est)).set_params(**{name: value})
        with pytest.raises(ValueError, match=f"^{name}={value!r} \\(fitted with .*call fit again"):
            changed.transform(ds)
        assert changed.fit().transform(ds).shape[0] == len(ds)  # a refit takes it
