"""``skcream.threads``: one intra-op thread on <= 2 usable cores for every estimator call that
runs torch, unless the user chose a count (issue 21)."""

import inspect

import numpy as np
import pytest
import torch

from skcream import threads


@pytest.fixture
def untouched(monkeypatch):
    """torch at the count skcream found, no thread variables in the environment."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", threads.ENV):
        monkeypatch.delenv(var, raising=False)
    torch.set_num_threads(4)
    monkeypatch.setattr(threads, "_FOUND", 4)


class _Probe:
    @threads.with_thread_rule
    def run(self):
        return torch.get_num_threads()


@pytest.mark.parametrize("cores, inside", [(1, 1), (2, 1), (3, 4), (16, 4)])
def test_rule_by_usable_cores(untouched, monkeypatch, cores, inside):
    monkeypatch.setattr(threads, "usable_cores", lambda: cores)
    assert _Probe().run() == inside
    assert torch.get_num_threads() == 4  # restored


def test_user_choices_win(untouched, monkeypatch):
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    torch.set_num_threads(3)  # set by the user after importing skcream
    assert _Probe().run() == 3
    torch.set_num_threads(4)
    with threads.torch_threads(2) as n:  # explicit block (the CLI's --threads)
        assert n == 2 and _Probe().run() == 2
    assert torch.get_num_threads() == 4
    monkeypatch.setenv(threads.ENV, "3")
    assert _Probe().run() == 3
    monkeypatch.setenv(threads.ENV, "torch")
    assert _Probe().run() == 4
    monkeypatch.delenv(threads.ENV)
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert _Probe().run() == 4


@pytest.mark.parametrize("value", ["0", "-2", "many"])
def test_bad_environment_value_is_named(untouched, monkeypatch, value):
    monkeypatch.setenv(threads.ENV, value)
    with pytest.raises(ValueError, match="SKCREAM_TORCH_THREADS must be a positive number"):
        _Probe().run()


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_torch_threads_checks_its_argument(bad):
    with pytest.raises((TypeError, ValueError), match=r"threads must be an int >= 1 or None"):
        with threads.torch_threads(bad):
            pass
    with threads.torch_threads(np.int64(2)) as n:  # any integer type (issue 22)
        assert n == 2 and isinstance(n, int) and torch.get_num_threads() == 2


def _torch_methods():
    from skcream import (
        CREAMLocalizer,
        CREAMReactivation,
        CREAMReg,
        PseudoBoxRegressor,
        TimmFeatures,
    )
    from skcream.post_hoc import PostHocClassifier

    names = {"fit", "predict", "predict_proba", "decision_function", "transform",
             "fit_transform", "localize", "pseudo_boxes", "score", "evaluate",
             "threshold_curve", "report", "predict_protocol"}
    for cls in (CREAMLocalizer, PseudoBoxRegressor, CREAMReg, TimmFeatures, CREAMReactivation,
                PostHocClassifier):
        for name in sorted(names):
            if name in vars(cls) or (name in ("predict_proba", "fit_transform")
                                     and hasattr(cls, name)):
                yield cls, name


@pytest.mark.parametrize("cls, name", list(_torch_methods()),
                         ids=lambda v: getattr(v, "__name__", v))
def test_every_estimator_method_that_runs_torch_applies_the_rule(cls, name):
    method = inspect.unwrap(getattr(cls, name), stop=lambda f: hasattr(
        f, "__skcream_thread_rule__"))
    if name in vars(cls) or hasattr(method, "__skcream_thread_rule__"):
        assert getattr(method, "__skcream_thread_rule__", False), f"{cls.__name__}.{name}"


def test_a_real_fit_and_predict_run_with_one_thread(untouched, monkeypatch):
    """Through the public API: the network runs with one thread on a 2-core machine."""
    from skcream import CREAMLocalizer
    from skcream.data import make_synthetic

    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    seen = []
    import skcream.estimators.localizer._inference as inference

    real = inference.iter_forward

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        yield from real(*args, **kwargs)

    monkeypatch.setattr(inference, "iter_forward", spy)
    monkeypatch.setattr("skcream.estimators.localizer._estimator.iter_forward", spy)
    data = make_synthetic(4, n_classes=2, image_size=32, random_state=0)
    model = CREAMLocalizer(backbone="test_resnet", pretrained=False, image_size=32,
                           max_epochs=1, batch_size=4, random_state=0, verbose=0).fit(data)
    labels = model.predict(data).labels
    assert seen and set(seen) == {1} and torch.get_num_threads() == 4
    assert np.isin(labels, model.classes_).all()
