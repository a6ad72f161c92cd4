"""Every WSOL method end to end on a tiny model: fit, predict, score with and without CREAM,
persistence of its network, and scikit-learn's clone / GridSearchCV over ``method``.

timm's tiny ``test_resnet`` (untrained, 32 px, 1 epoch): plumbing and invariants, not quality
(``benchmarks/bench_methods.py`` measures quality).
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold
from test_localizer import TINY, _dataset

from skcream import CREAMLocalizer
from skcream.estimators.localizer import DatasetView
from skcream.methods import METHODS

pytestmark = pytest.mark.slow

# ACoL's reference branches are 1024 wide; 16 keeps the tiny test fast
SMALL = {"acol_width": 16}


@pytest.fixture(scope="module")
def ds():
    return _dataset(16)


@pytest.fixture(scope="module", params=sorted(METHODS))
def fitted(request, ds):
    return CREAMLocalizer(**TINY, method=request.param, method_params=SMALL).fit(ds)


@pytest.mark.parametrize("n_iter", [0, 2], ids=["plain", "cream"])
def test_fit_predict_score_each_method(fitted, ds, n_iter):
    est = clone(fitted).set_params(n_iter=n_iter)
    est.__dict__.update({k: v for k, v in fitted.__dict__.items() if k.endswith("_")})
    loc = est.predict(ds)
    assert len(loc) == len(ds) and np.isfinite(loc.boxes).all()
    maps = est.transform(ds)
    assert maps.shape == (len(ds), *est.feature_shape_) and maps.min() >= 0 and maps.max() <= 1
    score = est.score(ds)
    assert 0.0 <= score <= 100.0
    assert np.isfinite(est.history_[-1]["loss"])
    if fitted.method == "acol":
        assert est.feature_dim_ == 16 == est.context_.fg.shape[1]  # branch A's hidden features


def test_cream_changes_the_methods_map(fitted, ds):
    plain = fitted.set_params(n_iter=0).transform(ds)
    cream = fitted.set_params(n_iter=2).transform(ds)
    assert not np.allclose(plain, cream)


def test_pickle_and_save_rebuild_the_methods_network(fitted, ds, tmp_path):
    fitted.set_params(n_iter=2)
    before = fitted.transform(ds)
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_allclose(again.transform(ds), before, atol=1e-6)
    fitted.save(tmp_path / "m")
    loaded = CREAMLocalizer.load(tmp_path / "m")
    assert type(loaded.model_) is type(fitted.model_)
    np.testing.assert_allclose(loaded.transform(ds), before, atol=1e-6)


def test_normalisations_need_no_retraining(fitted, ds):
    # 2x2 maps here: the 0.5-quantile (not PaS's default 0.9, the maximum of 4 cells)
    maps = {
        norm: fitted.set_params(n_iter=0, map_normalization=norm, normalization_percentile=0.5)
        .transform(ds)
        for norm in ("minmax", "ivr", "pas")
    }
    fitted.set_params(map_normalization="minmax", normalization_percentile=None)
    assert not np.allclose(maps["minmax"], maps["ivr"])
    if fitted.method != "acol":  # ACoL's fused 2x2 map has two cells at 1: its median is the max
        assert not np.allclose(maps["minmax"], maps["pas"])


@pytest.mark.parametrize("method", ["cutmix"])  # draws from torch's global RNG (HaS alike)
def test_random_input_methods_are_reproducible(ds, method):
    a = CREAMLocalizer(**TINY, method=method).fit(ds)
    b = CREAMLocalizer(**TINY, method=method).fit(ds)
    sa, sb = a.model_.state_dict(), b.model_.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert torch.equal(a.context_.fg, b.context_.fg)
    c = CREAMLocalizer(**TINY).fit(ds)  # and they do change training
    assert not torch.equal(sa["head.weight"], c.model_.state_dict()["head.weight"])


def test_grid_search_over_method(ds):
    est = CREAMLocalizer(**TINY, method_params={"has_drop_rate": 0.3, **SMALL})
    grid = GridSearchCV(est, {"method": ["cam", "has", "acol"]}, cv=KFold(2), refit=False)
    grid.fit(DatasetView(ds))
    assert list(grid.cv_results_["param_method"]) == ["cam", "has", "acol"]
    assert np.isfinite(grid.cv_results_["mean_test_score"]).all()


def test_demo_methods_writes_the_table_and_figure(tmp_path, monkeypatch, capsys):
    import dataclasses

    import skcream.demo as demo
    from skcream.cli import main
    from skcream.presets import QUICK

    tiny = dataclasses.replace(
        QUICK, n_train=12, n_val=4, n_test=6, data_size=48, backbone="test_resnet",
        pretrained=False, image_size=32, resize_size=36, max_epochs=1, batch_size=6,
        feature_stage=None,
    )
    monkeypatch.setattr(demo, "_preset", lambda quick: tiny)
    monkeypatch.setattr("skcream.methods.comparison._DEFAULT_METHOD_PARAMS", SMALL)
    # two of the six methods keep the test short (the others run in test_fit_predict_...)
    monkeypatch.setattr("skcream.methods.METHODS", {k: METHODS[k] for k in ("cam", "acol")})
    assert main(["demo", "--methods", "--quiet", "--out", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    for name in ("CAM", "ACoL", "ACoL + CREAM", "CREAM gain", "centre prior", "train-box prior"):
        assert name in out
    assert (tmp_path / "d" / "methods_maps.png").stat().st_size > 0
    assert "MaxBoxAccV2" in (tmp_path / "d" / "methods.txt").read_text()


def test_from_localizer_refuses_what_is_not_a_linear_head(fitted):
    from skcream.estimators.feature_reactivation import CREAMReactivation

    if fitted.method == "acol":
        with pytest.raises(ValueError, match="method='acol'"):
            CREAMReactivation.from_localizer(fitted)
    else:  # CAM-head networks (SPG's auxiliary branches are not read out)
        assert CREAMReactivation.from_localizer(fitted).n_features_in_ == fitted.feature_dim_


def test_grid_over_normalisations_never_retrains(ds, tmp_path, monkeypatch):
    import skcream.training as training

    calls = []
    real = training.train
    monkeypatch.setattr(training, "train", lambda *a, **k: calls.append(1) or real(*a, **k))
    est = CREAMLocalizer(**TINY, method="has", memory=str(tmp_path / "cache"))
    grid = {"map_normalization": ["minmax", "ivr", "pas"], "clamp_negative_weights": [False, True]}
    GridSearchCV(est, grid, cv=KFold(2), refit=False).fit(DatasetView(ds))
    assert len(calls) == 2  # one training per fold, six read-outs each
