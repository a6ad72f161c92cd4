"""The Accelerate training loop: reproducibility, resume, checkpoints, hooks, processes."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from skcream.backbones import build_backbone
from skcream.model import CAMNet
from skcream.training import (
    CHECKPOINT_FILES,
    TrainConfig,
    cross_entropy_loss,
    parameter_groups,
    train,
)

ROOT = Path(__file__).resolve().parents[1]



class Squares(Dataset):
    """Class c: a square bright in colour channel c, in quadrant i % 4 of noisy image i, plus
    fresh noise per access (so augmentation-like randomness is part of every run)."""

    def __init__(self, n: int = 24, n_classes: int = 3, with_label: bool = True,
                 size: int = 32) -> None:
        g = torch.Generator().manual_seed(0)
        self.images = torch.randn(n, 3, size, size, generator=g) * 0.1
        self.labels = torch.arange(n) % n_classes
        self.with_label = with_label
        half, side = size // 2, 3 * size // 8
        for i, c in enumerate(self.labels.tolist()):
            y, x = divmod(i % 4, 2)
            self.images[i, c, half * y:half * y + side, half * x:half * x + side] += 1.0

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        image = self.images[i] + 0.05 * torch.randn(self.images.shape[1:])  # global RNG, like transforms
        if not self.with_label:
            return {"image": image, "target": self.labels[i].float().reshape(1), "index": i}
        return {"image": image, "label": self.labels[i], "index": i}


class NoBNBackbone(nn.Module):
    """Conv + dropout backbone without BatchNorm (gradient accumulation is then exact)."""

    num_features = 8

    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=4, padding=1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return self.drop(torch.relu(self.conv(x)))


def _resnet_net(seed: int = 0) -> CAMNet:
    torch.manual_seed(seed)
    return CAMNet(build_backbone("test_resnet"), 3)


def _config(**kwargs) -> TrainConfig:
    base = {"epochs": 2, "batch_size": 8, "lr": 0.01, "random_state": 0, "verbose": 0, "device": "cpu"}
    base.update(kwargs)
    return TrainConfig(**base)


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _strip_times(history):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


# ------------------------------------------------------------------- reproducibility
def test_two_runs_are_bit_identical_and_seed_matters():
    runs = []
    for seed in (0, 0, 1):
        torch.manual_seed(0)
        net = CAMNet(NoBNBackbone(dropout=0.3), 3)
        history = train(net, Squares(), loss_fn=cross_entropy_loss, config=_config(random_state=seed))
        runs.append((net, history))
    assert _same_weights(runs[0][0], runs[1][0])
    assert _strip_times(runs[0][1]) == _strip_times(runs[1][1])
    assert not _same_weights(runs[0][0], runs[2][0])
    record = runs[0][1][-1]
    assert record["epoch"] == 2 and record["samples"] == 24
    assert 0.0 <= record["accuracy"] <= 1.0 and np.isfinite(record["loss"])


def test_caller_rng_is_left_untouched():
    torch.manual_seed(123)
    np.random.seed(123)  # noqa: NPY002 - checking the global state is preserved
    random.seed(123)
    expected = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002
    net = CAMNet(NoBNBackbone(), 3)
    torch.manual_seed(123)
    np.random.seed(123)  # noqa: NPY002
    random.seed(123)
    train(net, Squares(8), loss_fn=cross_entropy_loss, config=_config(epochs=1))
    got = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002
    assert torch.equal(got[0], expected[0])
    assert np.array_equal(got[1], expected[1]) and got[2] == expected[2]


def test_learns_a_separable_task():
    torch.manual_seed(0)
    net = CAMNet(NoBNBackbone(), 3)
    history = train(net, Squares(48), loss_fn=cross_entropy_loss,
                    config=_config(epochs=12, lr=0.05, batch_size=8))
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    assert history[-1]["accuracy"] > 0.9


def test_gradient_accumulation_equals_the_big_batch():
    # Without BatchNorm, 2 micro-batches of 4 give the mean gradient of the batch of 8.
    results = []
    for batch_size, steps in ((8, 1), (4, 2)):
        torch.manual_seed(0)
        net = CAMNet(NoBNBackbone(), 3)
        train(net, Squares(24), loss_fn=cross_entropy_loss,
              config=_config(batch_size=batch_size, gradient_accumulation_steps=steps))
        results.append(net)
    a, b = (r.state_dict() for r in results)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    torch.manual_seed(0)
    c = CAMNet(NoBNBackbone(), 3)
    train(c, Squares(24), loss_fn=cross_entropy_loss, config=_config(batch_size=4))
    assert not torch.allclose(c.head.weight, results[0].head.weight)  # 6 steps != 3 steps


def test_bf16_mixed_precision_runs():
    net = _resnet_net()
    history = train(net, Squares(8, size=16), loss_fn=cross_entropy_loss,
                    config=_config(epochs=1, mixed_precision="bf16"))
    assert np.isfinite(history[0]["loss"])
    assert net.head.weight.dtype == torch.float32
    # and a later fp32 run in the same process is not blocked by accelerate's singleton state
    train(CAMNet(NoBNBackbone(), 3), Squares(8), loss_fn=cross_entropy_loss, config=_config(epochs=1))


def test_workers_are_reproducible():
    nets = []
    for _ in range(2):
        torch.manual_seed(0)
        net = CAMNet(NoBNBackbone(dropout=0.3), 3)
        train(net, Squares(16), loss_fn=cross_entropy_loss, config=_config(epochs=1, num_workers=2))
        nets.append(net)
    assert _same_weights(*nets)


# --------------------------------------------------------------------------- schedule
def test_parameter_groups_and_step_decay():
    torch.manual_seed(0)
    net = CAMNet(build_backbone("test_resnet"), 3)
    groups = parameter_groups(net, 0.001, 10.0)
    assert [g["lr"] for g in groups] == [0.001, pytest.approx(0.01)]
    # the head and, as wsolevaluation trains ResNets, layer4
    layer4 = {id(p) for p in net.backbone.body.model.layer4.parameters()}
    assert {id(p) for p in groups[1]["params"]} == {id(net.head.weight), id(net.head.bias)} | layer4
    history = train(net, Squares(4, size=16), loss_fn=cross_entropy_loss,
                    config=_config(epochs=3, lr=0.001, lr_step_size=1, lr_gamma=0.1))
    assert [r["lr"] for r in history] == pytest.approx([1e-3, 1e-4, 1e-5])
    plain = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 3))
    assert len(parameter_groups(plain, 0.1, 10.0)) == 1


def test_frozen_parameters_stay_put():
    torch.manual_seed(0)
    net = CAMNet(NoBNBackbone(), 3)
    net.backbone.conv.weight.requires_grad_(False)
    before = net.backbone.conv.weight.clone()
    train(net, Squares(8), loss_fn=cross_entropy_loss, config=_config(epochs=1))
    assert torch.equal(net.backbone.conv.weight, before)


# ------------------------------------------------------------------------------ hooks
def test_hooks_see_every_batch_without_grad_and_extend_the_history():
    calls = []

    def step_hook(accelerator, batch, outputs):
        logits, features = outputs
        calls.append((torch.is_grad_enabled(), tuple(logits.shape), tuple(batch["index"].shape)))

    def epoch_hook(accelerator, epoch, record):
        return {"val_score": 10.0 * epoch, "loss_seen": record["loss"]}

    history = train(_resnet_net(), Squares(20, size=16), loss_fn=cross_entropy_loss, step_hook=step_hook,
                    epoch_hook=epoch_hook, config=_config(batch_size=8))
    assert len(calls) == 2 * 3  # 20 samples in batches of 8: 8, 8, 4
    assert all(grad is False for grad, _, _ in calls)
    assert [c[1][0] for c in calls[:3]] == [8, 8, 4]
    assert [r["val_score"] for r in history] == [10.0, 20.0]
    assert all(r["loss_seen"] == r["loss"] for r in history)


def test_regression_batches_without_labels():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, stride=4), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 1))

    def mse(outputs, batch):
        return F.mse_loss(outputs, batch["target"])

    history = train(model, Squares(16, with_label=False), loss_fn=mse, config=_config(epochs=2))
    assert history[0]["accuracy"] is None and np.isfinite(history[-1]["loss"])


def test_verbose_progress_bar(capsys):
    train(CAMNet(NoBNBackbone(), 3), Squares(8), loss_fn=cross_entropy_loss,
          config=_config(epochs=1, verbose=0))
    quiet = capsys.readouterr()
    assert quiet.err == "" and quiet.out == ""
    train(CAMNet(NoBNBackbone(), 3), Squares(8), loss_fn=cross_entropy_loss,
          config=_config(epochs=1, verbose=1))
    assert "loss=" in capsys.readouterr().err


# ------------------------------------------------------------------------ checkpoints
class Interrupt(Exception):
    pass


def _context(dim: int):
    from skcream.context import ContextEmbeddings

    return ContextEmbeddings(3, dim, random_state=0)


def _context_hook(model, context, stop_at_epoch=None, counter=None):
    def hook(accelerator, batch, outputs):
        _, features = outputs
        if stop_at_epoch is not None:
            counter[0] += 1
            if counter[0] > stop_at_epoch:
                raise Interrupt
        cams = accelerator.unwrap_model(model).cams(features, batch["label"])
        context.update(features, cams, batch["label"], gather=accelerator.gather)

    return hook


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    pytest.importorskip("skcream.context")
    config = _config(epochs=3, lr_step_size=2, batch_size=4)
    data = Squares(12, size=16)
    # uninterrupted
    net_a = _resnet_net()
    ctx_a = _context(net_a.backbone.num_features)
    hist_a = train(net_a, data, loss_fn=cross_entropy_loss,
                   step_hook=_context_hook(net_a, ctx_a), state_objects={"context": ctx_a},
                   config=config)
    # interrupted in the middle of epoch 2 (after 3 + 1 steps), then resumed in fresh objects
    ckpt = tmp_path / "ckpt"
    net_b = _resnet_net()
    ctx_b = _context(net_b.backbone.num_features)
    with pytest.raises(Interrupt):
        train(net_b, data, loss_fn=cross_entropy_loss,
              step_hook=_context_hook(net_b, ctx_b, stop_at_epoch=4, counter=[0]),
              state_objects={"context": ctx_b},
              config=_config(epochs=3, lr_step_size=2, batch_size=4, checkpoint_dir=ckpt))
    meta = json.loads((ckpt / CHECKPOINT_FILES[0]).read_text())
    assert meta["epoch"] == 1 and len(meta["history"]) == 1
    net_c = _resnet_net(seed=99)  # different init: everything must come from the checkpoint
    ctx_c = _context(net_c.backbone.num_features)
    torch.manual_seed(7)  # a different global RNG state must not matter either
    hist_c = train(net_c, data, loss_fn=cross_entropy_loss,
                   step_hook=_context_hook(net_c, ctx_c), state_objects={"context": ctx_c},
                   config=_config(epochs=3, lr_step_size=2, batch_size=4, checkpoint_dir=ckpt,
                                  resume=True))
    assert _same_weights(net_a, net_c)
    assert torch.equal(ctx_a.fg, ctx_c.fg) and torch.equal(ctx_a.bg, ctx_c.bg)
    assert _strip_times(hist_a) == _strip_times(hist_c)
    assert not torch.equal(ctx_a.fg, _context(net_a.backbone.num_features).fg)


def test_resume_of_a_finished_run_and_extension(tmp_path):
    ckpt = tmp_path / "run"
    net = _resnet_net()
    train(net, Squares(8, size=16), loss_fn=cross_entropy_loss, config=_config(epochs=1, checkpoint_dir=ckpt))
    again = _resnet_net(seed=5)
    history = train(again, Squares(8, size=16), loss_fn=cross_entropy_loss,
                    config=_config(epochs=1, checkpoint_dir=ckpt, resume=True))
    assert len(history) == 1 and _same_weights(net, again)  # nothing left to do: restored
    longer = train(again, Squares(8, size=16), loss_fn=cross_entropy_loss,
                   config=_config(epochs=2, checkpoint_dir=ckpt, resume=True))
    assert [r["epoch"] for r in longer] == [1, 2]


def test_checkpoint_of_another_configuration_is_refused(tmp_path):
    ckpt = tmp_path / "run"
    train(CAMNet(NoBNBackbone(), 3), Squares(8), loss_fn=cross_entropy_loss,
          config=_config(epochs=1, checkpoint_dir=ckpt), fingerprint={"data": "abc"})
    before = {p.name: p.read_bytes() for p in ckpt.iterdir()}
    with pytest.raises(ValueError, match=r"another configuration.*lr: 0\.01 -> 0\.02"):
        train(CAMNet(NoBNBackbone(), 3), Squares(8), loss_fn=cross_entropy_loss,
              config=_config(epochs=2, lr=0.02, checkpoint_dir=ckpt, resume=True),
              fingerprint={"data": "abc"})
    with pytest.raises(ValueError, match=r"extra\.data: 'abc' -> 'xyz'"):
        train(CAMNet(NoBNBackbone(), 3), Squares(8), loss_fn=cross_entropy_loss,
              config=_config(epochs=2, checkpoint_dir=ckpt, resume=True), fingerprint={"data": "xyz"})
    with pytest.raises(ValueError, match="n_samples: 8 -> 12"):  # resume=False refuses too
        train(CAMNet(NoBNBackbone(), 3), Squares(12), loss_fn=cross_entropy_loss,
              config=_config(epochs=1, checkpoint_dir=ckpt), fingerprint={"data": "abc"})
    with pytest.raises(ValueError, match="model_shapes"):
        train(CAMNet(build_backbone("test_efficientnet"), 3), Squares(8),
              loss_fn=cross_entropy_loss, config=_config(epochs=1, checkpoint_dir=ckpt),
              fingerprint={"data": "abc"})
    assert {p.name: p.read_bytes() for p in ckpt.iterdir()} == before


def test_user_files_in_the_checkpoint_dir_are_left_alone(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "model.pt").write_bytes(b"user weights")
    train(CAMNet(NoBNBackbone(), 3), Squares(8), loss_fn=cross_entropy_loss,
          config=_config(epochs=2, checkpoint_dir=tmp_path))
    names = sorted(p.name for p in tmp_path.iterdir())
    # only the last epoch's files remain (epoch 1's are removed once epoch 2 is committed)
    assert names == sorted(["notes.txt", "model.pt", "skcream-train.json",
                            "skcream-train-e2.pt", "skcream-train-e2-rng0.pt"])
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert (tmp_path / "model.pt").read_bytes() == b"user weights"
    # checkpoints load with weights_only=True: no arbitrary objects inside
    torch.load(tmp_path / "skcream-train-e2.pt", weights_only=True)
    torch.load(tmp_path / "skcream-train-e2-rng0.pt", weights_only=True)
    foreign = tmp_path / "other"
    foreign.mkdir()
    (foreign / "skcream-train.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="not written by skcream"):
        train(CAMNet(NoBNBackbone(), 3), Squares(8), loss_fn=cross_entropy_loss,
              config=_config(epochs=1, checkpoint_dir=foreign))
    a_file = tmp_path / "notes.txt"
    with pytest.raises(ValueError, match="not a directory"):
        train(CAMNet(NoBNBackbone(), 3), Squares(8), loss_fn=cross_entropy_loss,
              config=_config(epochs=1, checkpoint_dir=a_file))


# ------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"epochs": 0}, ValueError, "epochs"),
        ({"batch_size": 2.5}, TypeError, "batch_size"),
        ({"lr": -1.0}, ValueError, "lr"),
        ({"mixed_precision": "fp32"}, ValueError, "mixed_precision"),
        ({"device": "cuda:3"}, ValueError, "device"),
        ({"resume": True}, ValueError, "checkpoint_dir"),
        ({"lr_step_size": 0}, ValueError, "lr_step_size"),
        ({"momentum": float("nan")}, ValueError, "momentum"),
    ],
)
def test_invalid_config(kwargs, error, match):
    with pytest.raises(error, match=match):
        train(CAMNet(NoBNBackbone(), 3), Squares(8), loss_fn=cross_entropy_loss,
              config=_config(**kwargs))


def test_invalid_arguments():
    with pytest.raises(ValueError, match="empty"):
        train(CAMNet(NoBNBackbone(), 3), Squares(0), loss_fn=cross_entropy_loss, config=_config())
    with pytest.raises(TypeError, match="loss_fn"):
        train(CAMNet(NoBNBackbone(), 3), Squares(8), loss_fn=None, config=_config())
    with pytest.raises(TypeError, match=r"state_objects\['x'\]"):
        train(CAMNet(NoBNBackbone(), 3), Squares(8), loss_fn=cross_entropy_loss,
              state_objects={"x": 3}, config=_config())


# ------------------------------------------------------------------------- processes
@pytest.mark.slow
def test_two_cpu_processes_keep_context_and_weights_identical(tmp_path):
    pytest.importorskip("skcream.context")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "tests" / "_ddp_script.py"), str(tmp_path)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2
    # each process saw its own half of the data ...
    first0, first1 = set(r0["seen"][:12].tolist()), set(r1["seen"][:12].tolist())
    assert first0.isdisjoint(first1) and first0 | first1 == set(range(24))
    assert r0["history_samples"] == [24, 24]  # metrics gathered over both processes
    # ... yet the hook-maintained context embeddings are identical, and were updated
    assert torch.equal(r0["fg"], r1["fg"]) and torch.equal(r0["bg"], r1["bg"])
    assert not torch.equal(r0["fg"], r0["fg_initial"])
    # and so are the weights, BatchNorm statistics included
    assert all(torch.equal(r0["weights"][k], r1["weights"][k]) for k in r0["weights"])


def test_divergence_stops_with_a_clear_error():
    """A learning rate that blows the weights up stops training at the first non-finite loss
    with one message naming the learning rate, instead of training on NaN."""
    torch.manual_seed(0)
    net = CAMNet(NoBNBackbone(), 3)
    with pytest.raises(FloatingPointError, match=r"training diverged: .* lower the learning rate"):
        train(net, Squares(16), loss_fn=cross_entropy_loss, config=_config(epochs=3, lr=1e12))


def test_divergence_message_names_the_step_with_progress_bars_off():
    """The step in the message counts batches of the epoch even with verbose=0 (the disabled
    progress bar does not count): a loss that turns NaN at the 4th call of 2 steps/epoch is
    epoch 2, step 2."""
    calls = []

    def nan_on_fourth(outputs, batch):
        calls.append(1)
        loss = cross_entropy_loss(outputs, batch)
        return loss * float("nan") if len(calls) == 4 else loss

    net = CAMNet(NoBNBackbone(), 3)
    with pytest.raises(FloatingPointError, match=r"at epoch 2, step 2;"):
        train(net, Squares(16), loss_fn=nan_on_fourth, config=_config(epochs=3, verbose=0))
