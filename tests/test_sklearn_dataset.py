"""Raw ``datasets.Dataset`` objects in scikit-learn's model selection (SklearnDataset /
for_sklearn) and scoring by metric name (skcream.metrics.SCORERS)."""

import copy
import pickle

import datasets
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import get_scorer
from sklearn.model_selection import (
    GridSearchCV,
    StratifiedKFold,
    cross_val_score,
    cross_validate,
    train_test_split,
)
from sklearn.pipeline import make_pipeline
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import _num_samples

from skcream.data import SklearnDataset, for_sklearn, make_synthetic
from skcream.metrics import SCORER_METRICS, SCORERS

TINY = dict(backbone="test_resnet", pretrained=False, max_epochs=1, batch_size=8,
            image_size=32, resize_size=36, random_state=0, verbose=0)


def _plain(n=10):
    return datasets.Dataset.from_dict({"x": list(range(n)), "y": [i % 3 for i in range(n)]})


def _folds(ds, k=2):
    """Stratified folds, so that every training fold has every class."""
    return list(StratifiedKFold(k).split(np.zeros(len(ds)), np.asarray(ds["label"])))


# ----------------------------------------------------------------------------- the subclass
def test_for_sklearn_is_a_shallow_dataset_view():
    plain = _plain()
    ds = for_sklearn(plain)
    assert isinstance(ds, datasets.Dataset) and isinstance(ds, SklearnDataset)
    assert type(plain) is datasets.Dataset  # the user's object is untouched
    assert ds._fingerprint == plain._fingerprint and ds.features == plain.features
    assert ds.column_names == ["x", "y"] and ds["x"][:3] == [0, 1, 2] and ds[4] == {"x": 4, "y": 1}
    assert for_sklearn(ds) is ds
    with pytest.raises(TypeError, match="DatasetDict"):
        for_sklearn(datasets.DatasetDict({"train": plain}))
    with pytest.raises(TypeError, match="IterableDataset"):
        for_sklearn(plain.to_iterable_dataset())
    with pytest.raises(TypeError, match="datasets.Dataset"):
        for_sklearn([1, 2])


@pytest.mark.parametrize("key, expected", [
    (np.array([3, 0, -1]), [3, 0, 9]),
    ([2, 2], [2, 2]),
    (np.arange(10) % 4 == 0, [0, 4, 8]),
    (slice(2, 8, 3), [2, 5]),
    (np.array([], dtype=np.int64), []),
])
def test_rows_key_is_select(key, expected):
    ds = for_sklearn(_plain())
    out = ds[key, ...]
    assert isinstance(out, SklearnDataset) and out["x"] == expected
    assert _safe_indexing(ds, key)["x"] == expected if not isinstance(key, slice) else True


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_rows_key_matches_numpy_indexing(data):
    n = data.draw(st.integers(1, 12))
    ds = for_sklearn(datasets.Dataset.from_dict({"x": list(range(n))}))
    if data.draw(st.booleans()):
        key = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    else:
        key = np.array(data.draw(st.lists(st.integers(-n, n - 1), max_size=15)), dtype=np.int64)
    assert list(ds[key, ...]["x"]) == np.arange(n)[key].tolist()


def test_rows_key_errors():
    ds = for_sklearn(_plain())
    assert ds[3, ...] == ds[3]
    with pytest.raises(IndexError, match="out of range"):
        ds[np.array([10]), ...]
    with pytest.raises(IndexError, match="boolean row mask of length 3"):
        ds[np.ones(3, bool), ...]
    with pytest.raises(IndexError, match="integer indices or a boolean mask"):
        ds[np.array([0.5]), ...]
    with pytest.raises(TypeError, match=r"\(rows, \.\.\.\)"):
        ds[0, "x"]


def test_survives_datasets_methods_pickle_and_fingerprints():
    plain = _plain()
    ds = for_sklearn(plain)

    def double(e):
        return {"z": e["x"] * 2}

    def odd(e):
        return e["y"] == 1

    results = {
        "map": (ds.map(double), plain.map(double)),
        "select": (ds.select([1, 2]), plain.select([1, 2])),
        "filter": (ds.filter(odd), plain.filter(odd)),
        "shuffle": (ds.shuffle(seed=0), plain.shuffle(seed=0)),
        "remove_columns": (ds.remove_columns("y"), plain.remove_columns("y")),
        "cast_column": (ds.cast_column("y", datasets.Value("int32")),
                        plain.cast_column("y", datasets.Value("int32"))),
        "with_format": (ds.with_format("numpy"), plain.with_format("numpy")),
        "add_column": (ds.add_column("w", list(range(10))), plain.add_column("w", list(range(10)))),
    }
    for name, (ours, theirs) in results.items():
        assert isinstance(ours, SklearnDataset), name
        assert ours._fingerprint == theirs._fingerprint, name  # the class is not hashed
        assert ours.to_dict() == theirs.to_dict() if name != "with_format" else True
    split = ds.train_test_split(test_size=0.3, seed=0)
    assert all(isinstance(v, SklearnDataset) for v in split.values())
    for clone in (pickle.loads(pickle.dumps(ds)), copy.deepcopy(ds), copy.copy(ds)):
        assert isinstance(clone, SklearnDataset) and clone.to_dict() == ds.to_dict()
    a, b = train_test_split(ds, test_size=0.3, random_state=0)
    assert isinstance(a, SklearnDataset) and sorted(list(a["x"]) + list(b["x"])) == list(range(10))
    assert _num_samples(ds) == 10


def test_plain_dataset_error_is_the_one_for_sklearn_fixes():
    # documents the failure mode the README's one call repairs
    with pytest.raises(TypeError, match="ellipsis"):
        train_test_split(_plain(), test_size=0.3, random_state=0)


def test_loaders_return_sklearn_datasets():
    ds = make_synthetic(4, n_classes=2, image_size=32, random_state=0)
    assert isinstance(ds, SklearnDataset) and isinstance(ds, datasets.Dataset)
    assert {"image", "label", "bboxes"} <= set(ds.column_names)


# ----------------------------------------------------------------------------- scorers
def test_scorers_by_name_are_get_scorer_compatible():
    assert set(SCORERS) == set(SCORER_METRICS)
    from skcream.estimators.localizer import LOCALIZER_METRICS

    assert tuple(SCORER_METRICS) == tuple(LOCALIZER_METRICS)
    for name, scorer in SCORERS.items():
        assert get_scorer(scorer) is scorer and scorer.metric == name
    with pytest.raises(ValueError, match="metric must be one of"):
        type(SCORERS["pxap"])("accuracy")


def test_scorer_on_a_feature_pipeline_uses_the_last_steps_localize():
    from skcream.estimators.feature_reactivation import CREAMReactivation, box_targets
    from skcream.metrics import max_box_acc_v2

    rng = np.random.default_rng(0)
    F = rng.random((6, 4, 7, 7)).astype(np.float32)
    y = box_targets([0, 1, 0, 1, 0, 1], [[[10, 10, 100, 120]]] * 6)
    cream = CREAMReactivation(random_state=0).fit(F, y)

    class Identity:
        def fit(self, X, y=None):
            return self

        def transform(self, X):
            return X

    pipe = make_pipeline(Identity(), cream)
    assert SCORERS["max_box_acc_v2"](pipe, F, y) == pytest.approx(cream.score(F, y))
    from skcream.localize import protocol_maps

    expected = max_box_acc_v2(protocol_maps(cream.localize(F, y), (224, 224)), list(y["boxes"]))
    assert SCORERS["max_box_acc_v2"](cream, F, y) == pytest.approx(expected)
    with pytest.raises(ValueError, match="needs a CREAMLocalizer"):
        SCORERS["top1_loc"](cream, F, y)


# ----------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def raw_synthetic():
    return make_synthetic(12, n_classes=2, image_size=32, random_state=0)


@pytest.mark.slow
def test_grid_search_and_cross_val_score_on_a_raw_make_synthetic_dataset(raw_synthetic, tmp_path):
    from skcream import CREAMLocalizer

    ds = raw_synthetic
    search = GridSearchCV(CREAMLocalizer(memory=str(tmp_path), **TINY),
                          {"sigma": [1.0, 8.0]}, cv=_folds(ds),
                          scoring=SCORERS["max_box_acc_v2"], error_score="raise")
    search.fit(ds)
    scores = search.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores)) and np.all((0 <= scores) & (scores <= 100))
    assert isinstance(search.best_estimator_.classes_, np.ndarray)
    cv = cross_val_score(CREAMLocalizer(memory=str(tmp_path), **TINY), ds, cv=_folds(ds),
                         error_score="raise")
    assert cv.shape == (2,) and np.all(np.isfinite(cv))
    res = cross_validate(CREAMLocalizer(memory=str(tmp_path), **TINY), ds, cv=_folds(ds),
                         scoring={k: SCORERS[k] for k in ("max_box_acc_v2", "top1_acc")},
                         error_score="raise")
    # the default score is MaxBoxAccV2: the named scorer agrees with it
    np.testing.assert_allclose(res["test_max_box_acc_v2"], cv)


@pytest.mark.slow
def test_grid_search_on_a_dataset_from_dict_after_for_sklearn(raw_synthetic, tmp_path):
    from skcream import CREAMLocalizer

    src = raw_synthetic
    plain = datasets.Dataset.from_dict({"image": list(src["image"]),
                                        "label": list(src["label"]),
                                        "bboxes": list(src["bboxes"])})
    assert type(plain) is datasets.Dataset
    ds = for_sklearn(plain)
    cv = cross_val_score(CREAMLocalizer(memory=str(tmp_path), **TINY), ds, cv=_folds(ds),
                         error_score="raise")
    assert cv.shape == (2,) and np.all(np.isfinite(cv))
    search = GridSearchCV(CREAMLocalizer(memory=str(tmp_path), **TINY), {"n_iter": [0, 2]},
                          cv=_folds(ds), error_score="raise").fit(ds)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))


def test_grid_search_over_a_feature_pipeline_on_a_raw_dataset(raw_synthetic):
    from skcream import CREAMReactivation, TimmFeatures
    from skcream.estimators.feature_reactivation import box_targets_from

    ds = raw_synthetic
    y = box_targets_from(ds)
    pipe = make_pipeline(TimmFeatures("test_resnet", image_size=32, random_state=0, verbose=0),
                         CREAMReactivation(random_state=0))
    search = GridSearchCV(pipe, {"creamreactivation__n_iter": [0, 2]}, cv=_folds(ds),
                          scoring=SCORERS["max_box_acc_v2"], error_score="raise").fit(ds, y)
    scores = search.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores))
    # the named scorer equals the pipeline's own score (MaxBoxAccV2) on the same split
    train, test = _folds(ds)[0]
    fitted = search.best_estimator_
    assert SCORERS["max_box_acc_v2"](fitted, ds[test, ...], y[test]) == pytest.approx(
        fitted.score(ds[test, ...], y[test]))
