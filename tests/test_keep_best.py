"""keep="best": the weights of the epoch with the best validation localization.

wsolevaluation's ``--eval_checkpoint_type best`` (``main.py``: the val "localization"
``PerformanceMeter`` keeps ``values.index(max(values))``, i.e. ties go to the earliest epoch;
the best checkpoint is only rewritten by a strictly better epoch). Checked:

* in the training loop, with scripted validation scores (so the best epoch is known in
  advance and is not the last): the returned weights and context tables are those the epoch
  hook saw at that epoch, also after an interruption and a resume, whether the checkpoint
  the run resumes from is the best epoch itself or a later one;
* in ``CREAMLocalizer``: the weights equal those of a model trained for exactly
  ``best_epoch_`` epochs from the same seed; checkpoints, resume, save / load, pickling,
  the ``memory=`` key, PxAP on mask-only validation data, and bad input;
* on 2 processes: ``tests/_ddp_keep_script.py`` (slow).
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from _interrupt import fit_interrupted_at
from PIL import Image
from sklearn.base import clone
from test_localizer import TINY, _dataset
from test_training import (
    Interrupt,
    Squares,
    _config,
    _context,
    _context_hook,
    _resnet_net,
    _same_weights,
    _strip_times,
)

from skcream import CREAMLocalizer
from skcream.training import CHECKPOINT_FILES, TrainConfig, best_epoch, cross_entropy_loss, train

ROOT = Path(__file__).resolve().parents[1]

#: validation scores of epochs 1..4: epoch 2 is the best, epoch 3 ties it (the earliest wins)
SCORES = [1.0, 3.0, 3.0, 2.0]


# --------------------------------------------------------------------- best_epoch, the rule
@pytest.mark.parametrize("values, expected", [
    ([1.0, 3.0, 3.0, 2.0], 2),        # ties: the earliest (the reference's list.index(max))
    ([5.0, 1.0], 1),
    ([0.0, 0.0, 0.0], 1),
    ([float("nan"), 2.0, 1.0], 2),    # a non-finite score never wins
    ([None, None], None),
])
def test_best_epoch_is_the_first_maximum(values, expected):
    history = [{"epoch": i + 1, "val": v} for i, v in enumerate(values)]
    assert best_epoch(history, "val") == expected
    finite = [(v, i + 1) for i, v in enumerate(values) if v is not None and np.isfinite(v)]
    if finite:  # the reference's formulation, on the finite scores
        scores = [v for v, _ in finite]
        assert expected == finite[scores.index(max(scores))][1]


# ------------------------------------------------------------------------- training loop
def _scripted(model, context, seen, scores=SCORES):
    """Epoch hook returning ``scores[epoch - 1]`` as ``val`` and recording the weights and
    context tables of every epoch in ``seen``."""

    def hook(accelerator, epoch, record):
        net = accelerator.unwrap_model(model)
        seen[epoch] = ({k: v.detach().clone() for k, v in net.state_dict().items()},
                       context.fg.clone(), context.bg.clone())
        return {"val": scores[epoch - 1]}

    return hook


def _run(config, *, stop_after_steps=None, seed=0):
    net = _resnet_net(seed)
    ctx = _context(net.backbone.num_features)
    seen: dict[int, tuple] = {}
    counter = [0]
    history = train(net, Squares(12, size=16), loss_fn=cross_entropy_loss,
                    step_hook=_context_hook(net, ctx, stop_after_steps, counter),
                    epoch_hook=_scripted(net, ctx, seen), state_objects={"context": ctx},
                    config=config)
    return net, ctx, seen, history


def _equal_to_epoch(net, ctx, seen, epoch) -> bool:
    weights, fg, bg = seen[epoch]
    state = net.state_dict()
    return (all(torch.equal(state[k], weights[k]) for k in weights)
            and torch.equal(ctx.fg, fg) and torch.equal(ctx.bg, bg))


def test_training_keeps_the_best_epochs_weights_and_every_record():
    net, ctx, seen, history = _run(_config(epochs=4, batch_size=4, keep="best", best_metric="val"))
    assert [r["val"] for r in history] == SCORES and [r["epoch"] for r in history] == [1, 2, 3, 4]
    assert _equal_to_epoch(net, ctx, seen, 2)
    assert not _equal_to_epoch(net, ctx, seen, 3) and not _equal_to_epoch(net, ctx, seen, 4)
    last_net, last_ctx, last_seen, last_history = _run(_config(epochs=4, batch_size=4))
    assert _equal_to_epoch(last_net, last_ctx, last_seen, 4)  # keep="last": the default
    assert _strip_times(last_history) == _strip_times(history)  # selection never trains


@pytest.mark.parametrize("stop_after_steps, checkpoint_epoch", [
    (7, 2),    # interrupted in epoch 3: the checkpoint is the best epoch itself
    (10, 3),   # interrupted in epoch 4: the best epoch's weights ride along in epoch 3's
])
def test_best_epoch_survives_an_interruption(tmp_path, stop_after_steps, checkpoint_epoch):
    config = dict(epochs=4, batch_size=4, keep="best", best_metric="val")
    ref, ref_ctx, ref_seen, ref_history = _run(_config(**config))
    ckpt = tmp_path / "ckpt"
    with pytest.raises(Interrupt):  # 3 steps per epoch
        _run(_config(**config, checkpoint_dir=ckpt), stop_after_steps=stop_after_steps)
    meta = json.loads((ckpt / CHECKPOINT_FILES[0]).read_text())
    assert meta["epoch"] == checkpoint_epoch
    state = torch.load(ckpt / f"skcream-train-e{checkpoint_epoch}.pt", weights_only=True)
    assert state["best"]["epoch"] == 2
    assert ("model" in state["best"]) == (checkpoint_epoch != 2)  # stored once only
    # fresh objects, another init: the best weights can only come from the checkpoint
    net, ctx, _, history = _run(_config(**config, checkpoint_dir=ckpt, resume=True), seed=99)
    assert _same_weights(net, ref) and torch.equal(ctx.fg, ref_ctx.fg)
    assert _equal_to_epoch(net, ctx, ref_seen, 2)
    assert _strip_times(history) == _strip_times(ref_history)
    # a finished run resumed again returns the best epoch too (nothing left to train)
    again, again_ctx, _, _ = _run(_config(**config, checkpoint_dir=ckpt, resume=True), seed=5)
    assert _same_weights(again, ref) and torch.equal(again_ctx.bg, ref_ctx.bg)


def test_checkpoint_of_keep_last_is_not_resumed_as_keep_best(tmp_path):
    _run(_config(epochs=1, batch_size=4, checkpoint_dir=tmp_path))
    with pytest.raises(ValueError, match=r"another configuration.*keep: '<absent>' -> 'best'"):
        _run(_config(epochs=2, batch_size=4, checkpoint_dir=tmp_path, resume=True, keep="best",
                     best_metric="val"))


@pytest.mark.parametrize("kwargs, match", [
    ({"keep": "first"}, "keep: expected one of"),
    ({"keep": "best"}, "best_metric: keep='best' needs"),
    ({"keep": "best", "best_metric": "missing"}, "epoch 1's record has missing = None"),
])
def test_bad_keep_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _run(_config(epochs=1, batch_size=4, **kwargs))
    TrainConfig(keep="best", best_metric="val").validate()


# ----------------------------------------------------------------------------- estimator
def _untimed(history):
    return [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in history]


PARAMS = {**TINY, "lr": 0.05, "random_state": 2}  # seed 2: epoch 2 is best, 3 and 4 tie it


@pytest.fixture(scope="module")
def ds():
    return _dataset(16)


@pytest.fixture(scope="module")
def val():
    return _dataset(8, seed=1)


@pytest.fixture(scope="module")
def best(ds, val):
    # one thread, as the tests that compare with it (module fixtures are set up before the
    # per-test thread setting of conftest.py; other thread counts round differently)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return CREAMLocalizer(**{**PARAMS, "max_epochs": 4}, validation_data=val,
                              keep="best").fit(ds)
    finally:
        torch.set_num_threads(before)


def test_keep_best_equals_a_model_trained_for_that_many_epochs(ds, val, best):
    scores = [r["val_max_box_acc_v2"] for r in best.history_]
    assert len(scores) == 4
    assert best.best_epoch_ == scores.index(max(scores)) + 1
    # the premise of this test (the seed was chosen for it): the best epoch is not the
    # last, and a later epoch ties it
    assert best.best_epoch_ < 4 and scores.count(max(scores)) > 1
    short = CREAMLocalizer(**{**PARAMS, "max_epochs": best.best_epoch_}).fit(ds)
    assert _same_weights(best.model_, short.model_)
    assert torch.equal(best.context_.fg, short.context_.fg)
    np.testing.assert_array_equal(best.transform(ds), short.transform(ds))
    np.testing.assert_array_equal(best.decision_function(ds), short.decision_function(ds))
    last = CREAMLocalizer(**{**PARAMS, "max_epochs": 4}, validation_data=val).fit(ds)
    assert last.best_epoch_ == best.best_epoch_  # recorded, not kept
    assert not _same_weights(last.model_, best.model_)
    assert _untimed(last.history_) == _untimed(best.history_)
    assert best.score(val) == pytest.approx(max(scores))  # the kept epoch's validation score


def test_keep_best_resumes_after_an_interruption(ds, val, best, tmp_path, monkeypatch):
    params = {**PARAMS, "max_epochs": 4, "checkpoint_dir": tmp_path / "ckpt",
              "validation_data": val, "keep": "best"}
    fit_interrupted_at(7, params, ds, monkeypatch)  # first step of epoch 4 (two steps per epoch)
    resumed = CREAMLocalizer(**params).fit(ds)
    assert resumed.best_epoch_ == best.best_epoch_
    assert _untimed(resumed.history_) == _untimed(best.history_)
    assert _same_weights(resumed.model_, best.model_)
    assert torch.equal(resumed.context_.bg, best.context_.bg)
    # other validation data picks epochs by other scores: that checkpoint is not reused
    with pytest.raises(ValueError, match="another configuration"):
        CREAMLocalizer(**{**params, "validation_data": val.select(range(4))}).fit(ds)


def test_keep_best_persists(ds, best, tmp_path):
    best.save(tmp_path / "model")
    loaded = CREAMLocalizer.load(tmp_path / "model")
    assert loaded.keep == "best" and loaded.best_epoch_ == best.best_epoch_
    np.testing.assert_array_equal(loaded.transform(ds), best.transform(ds))
    saved = json.loads((tmp_path / "model" / "skcream.json").read_text())
    assert saved["fitted"]["best_epoch_"] == best.best_epoch_
    unpickled = pickle.loads(pickle.dumps(best))
    assert unpickled.best_epoch_ == best.best_epoch_ and _same_weights(unpickled.model_, best.model_)
    # the fitted state of a save from before keep existed: best_epoch_ is read off its history
    from skcream.estimators.localizer import _fitted_state

    del saved["fitted"]["best_epoch_"]
    old = CREAMLocalizer(**PARAMS)
    _fitted_state.restore(old, saved["fitted"], _fitted_state.fitted_tensors(best), "cpu")
    assert old.best_epoch_ == best.best_epoch_


def test_memory_key_holds_what_picks_the_epoch(ds, val, tmp_path, monkeypatch):
    import skcream.training as training

    calls = []
    real = training.train
    monkeypatch.setattr(training, "train", lambda *a, **k: calls.append(1) or real(*a, **k))
    base = CREAMLocalizer(**PARAMS, validation_data=val, keep="best", memory=tmp_path)
    base.fit(ds)
    clone(base).fit(ds)  # the same: from the cache
    clone(base).set_params(box_threshold=0.3).fit(ds)  # not used to score epochs: cached
    assert len(calls) == 1
    clone(base).set_params(n_iter=0).fit(ds)  # scores the epochs with other maps
    clone(base).set_params(validation_data=val.select(range(4))).fit(ds)
    assert len(calls) == 3
    last = CREAMLocalizer(**PARAMS, validation_data=val, memory=tmp_path).fit(ds)
    clone(last).set_params(n_iter=0, validation_data=None).fit(ds)  # keep="last": cached
    assert len(calls) == 4


def _with_masks(data: datasets.Dataset) -> datasets.Dataset:
    """The same images with a mask column: 1 inside their boxes, 0 outside."""
    masks = []
    for row in data:
        w, h = row["image"].size
        m = np.zeros((h, w), np.uint8)
        for x0, y0, x1, y1 in row["bboxes"]:
            m[int(y0):int(y1), int(x0):int(x1)] = 1
        masks.append(Image.fromarray(m))
    features = datasets.Features({**data.features, "mask": datasets.Image()})
    return datasets.Dataset.from_dict({**data.to_dict(), "mask": masks}, features=features)


def test_mask_only_validation_scores_pxap(ds, val):
    """wsolevaluation selects OpenImages checkpoints by PxAP (masks, no boxes)."""
    both = _with_masks(val)
    masked = both.remove_columns("bboxes")
    est = CREAMLocalizer(**{**PARAMS, "max_epochs": 3}, validation_data=masked,
                         keep="best").fit(ds)
    assert all("val_pxap" in r and "val_max_box_acc_v2" not in r for r in est.history_)
    scores = [r["val_pxap"] for r in est.history_]
    assert est.best_epoch_ == scores.index(max(scores)) + 1
    assert est.box_threshold_ == 0.2  # no box to choose it on
    # the recorded score is the estimator's own PxAP (evaluate) of the kept epoch
    assert max(scores) == pytest.approx(est.evaluate(both, metrics=["pxap"])["pxap"])
    # with boxes and masks, boxes decide (MaxBoxAccV2), as before
    boxed = CREAMLocalizer(**PARAMS, validation_data=both, keep="best").fit(ds)
    assert "val_max_box_acc_v2" in boxed.history_[0] and "val_pxap" not in boxed.history_[0]


@pytest.mark.parametrize("params, match", [
    ({"keep": "best"}, "keep='best' keeps the epoch .* pass validation_data"),
    ({"keep": "first"}, r"keep must be one of \['last', 'best'\]"),
])
def test_bad_keep_parameter(ds, params, match):
    with pytest.raises(ValueError, match=match):
        CREAMLocalizer(**{**TINY, **params}).fit(ds)


def test_validation_data_without_boxes_or_masks(ds):
    with pytest.raises(ValueError, match="has no ground-truth box"):
        CREAMLocalizer(**TINY, validation_data=ds.map(
            lambda r, i: {"bboxes": [] if i == 3 else r["bboxes"]}, with_indices=True)).fit(ds)


# ------------------------------------------------------------------------- 2 processes
@pytest.mark.slow
def test_keep_best_on_two_processes(tmp_path):
    """``tests/_ddp_keep_script.py`` on 2 CPU processes (gloo): the scripted-score loop
    (each rank scripts other scores: process 0's decide) uninterrupted and interrupted +
    resumed, and ``CREAMLocalizer(keep="best")`` against a fit of ``best_epoch_`` epochs."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "tests" / "_ddp_keep_script.py"), str(tmp_path)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2
    for r in (r0, r1):
        # process 0's scripted scores are the history of both; epoch 2 is kept
        assert r["history_val"] == SCORES and r["resumed_history_val"] == SCORES
        assert all(torch.equal(r["final"][k], r["epoch2"][k]) for k in r["epoch2"])
        assert all(torch.equal(r["resumed"][k], r["epoch2"][k]) for k in r["epoch2"])
        assert not all(torch.equal(r["final"][k], r["epoch4"][k]) for k in r["epoch4"])
        assert r["ckpt_epoch"] == 3
        # the estimator: the kept weights are those of a fit of best_epoch_ epochs
        assert r["best_epoch"] < r["max_epochs"]
        assert all(torch.equal(r["est_best"][k], r["est_short"][k]) for k in r["est_short"])
    for key in ("final", "resumed", "est_best"):  # identical on both processes
        assert all(torch.equal(r0[key][k], r1[key][k]) for k in r0[key])
    assert r0["best_epoch"] == r1["best_epoch"]
