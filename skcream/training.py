"""The one Accelerate training loop, shared by the localizer and the pseudo-box regressor.

:func:`train` is short and linear, as in accelerate's examples::

    prepare -> for each epoch: for each batch: forward, loss, backward, step, hook
            -> gather_for_metrics -> checkpoint

and the same code runs on a CPU, one GPU or many processes under ``accelerate launch``.

Contract with callers
---------------------
* ``model(batch[input_key])`` returns anything ``loss_fn(outputs, batch)`` turns into a scalar
  loss (for :class:`skcream.model.CAMNet`: ``(logits, features)``). Models with
  ``new_parameters()`` / ``pretrained_parameters()`` get two SGD parameter groups (lr and
  ``head_lr_mult * lr``), others one.
* ``step_hook(accelerator, batch, outputs)`` runs after every optimisation micro-step, under
  ``torch.no_grad()``; it is where the localizer updates its context embeddings with
  ``gather=accelerator.gather_for_metrics`` so that every process applies the same update
  and each real sample enters it exactly once (``accelerator.gather`` would also return the
  samples Accelerate repeats to even out the last batch of an epoch).
* ``epoch_hook(accelerator, epoch, record)`` runs after every epoch (all processes) and may
  return a dict merged into that epoch's history record (e.g. validation MaxBoxAccV2).
* ``state_objects={"context": ctx}``: objects with ``state_dict()`` / ``load_state_dict()``
  that are saved in every checkpoint and restored on resume (``nn.Module`` ones are moved to
  the training device first). Before the first step, the model's and these objects' states
  are broadcast from process 0, so every process starts from the same state whatever
  seeded it (e.g. context tables drawn from each process's own RNG with ``random_state=None``).
* ``keep="best"`` with ``best_metric="key"``: the model and the state objects returned are
  those of the epoch whose record has the highest ``record[key]`` (set by ``epoch_hook``,
  e.g. validation MaxBoxAccV2; ties: the earliest epoch, see :func:`best_epoch`), the
  history still has every epoch. The best epoch's weights travel in every checkpoint, so
  they survive an interruption; on several processes the value of process 0 decides.
* Checkpoints: files of skcream's own in ``checkpoint_dir`` (see :data:`CHECKPOINT_FILES`);
  nothing else in the directory is touched. A checkpoint is all or nothing: its JSON,
  written last with one rename, names the epoch's files with their SHA-256, checked on
  resume. A checkpoint written under another configuration (:func:`config_fingerprint`) is
  refused, never mixed; one of more epochs than asked is refused, never returned silently.
  While it trains, a run holds an OS lock on ``checkpoint_dir``: a second run on the same
  folder fails at once, before training (or waits, with ``lock_timeout``).

Reproducibility: with ``random_state`` set, the shuffling order, the data-augmentation and
dropout randomness of epoch e are functions of (random_state, e, process index) only (the
global RNGs are re-seeded at the start of every epoch and restored to the caller's state on
return), so two CPU runs give bit-identical weights and a resumed run equals an
uninterrupted one.

Batch size on several processes: ``batch_size`` is per process, so one optimisation step sees
``batch_size * num_processes * gradient_accumulation_steps`` samples (the *global* batch) at
the unchanged ``lr``. The paper's global batch of 32 on N processes: ``batch_size = 32 // N``
(or keep ``batch_size`` and set ``gradient_accumulation_steps``). The global batch size and
lr of a run are in every history record (``global_batch_size``, ``lr``) and printed at the
start when ``verbose``.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import io
import json
import math
import os
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Sampler

from skcream._checks import as_bool, as_int, as_real
from skcream._fs import make_dirs
from skcream.data.loading import pin_memory, resolve_num_workers

__all__ = [
    "CHECKPOINT_FILES",
    "KEEP",
    "TrainConfig",
    "best_epoch",
    "config_fingerprint",
    "cross_entropy_loss",
    "has_checkpoint",
    "make_accelerator",
    "parameter_groups",
    "top1_correct",
    "train",
]

#: skcream's own files in a checkpoint directory (the only files it writes or replaces): the
#: JSON that commits a checkpoint and names the other two (with sizes and SHA-256), the
#: training state and each process's RNG state of that epoch.
CHECKPOINT_FILES = ("skcream-train.json", "skcream-train-e{epoch}.pt",
                    "skcream-train-e{epoch}-rng{rank}.pt")
_FORMAT = "skcream-train/2"
_MIXED = ("no", "fp16", "bf16")
#: what :func:`train` returns: the last epoch's model (wsolevaluation's default
#: ``--eval_checkpoint_type last``) or the best epoch's by ``best_metric`` (``best``)
KEEP = ("last", "best")


@dataclass
class TrainConfig:
    """Hyper-parameters and run options of :func:`train` (paper section 4.1 defaults).

    Parameters
    ----------
    epochs : int
        Number of epochs to reach (a resumed run continues up to it).
    batch_size : int
        Per-process batch size; the global batch of one step is
        ``batch_size * num_processes * gradient_accumulation_steps``.
    lr : float
        Learning rate of the pretrained layers; new layers use ``lr * head_lr_mult``.
    head_lr_mult : float
    momentum, weight_decay : float
        SGD settings.
    nesterov : bool
        Nesterov momentum (wsolevaluation's SGD uses it).
    lr_step_size : int or None
        Divide the lr by ``1/lr_gamma`` every this many epochs; None keeps it constant.
    lr_milestones : tuple of int or None
        Instead of ``lr_step_size``: divide the lr by ``1/lr_gamma`` after each of these
        numbers of finished epochs (strictly increasing). wsolevaluation's loop divides at the
        start of epochs f, 2f, ... (1-based) for ``--lr_decay_frequency f``, i.e. after
        f-1, 2f-1, ... epochs (:mod:`skcream.recipes`).
    lr_gamma : float
    mixed_precision : {"no", "fp16", "bf16"}
    gradient_accumulation_steps : int
    num_workers : int or None
        DataLoader worker processes; None: :func:`skcream.data.loading.auto_num_workers`.
    checkpoint_dir : str or PathLike or None
        Where a checkpoint is written after every epoch; None disables checkpoints.
    resume : bool
        Continue from the checkpoint in ``checkpoint_dir`` when there is one.
    random_state : int or None
        Seed; with an int a CPU run is bit-for-bit reproducible.
    verbose : int
        0 silent; 1 a tqdm bar per epoch with loss and accuracy.
    device : {"auto", "cpu"}
        "cpu" forces the CPU; "auto" lets Accelerate choose.
    shuffle : bool
    drop_last : bool
    lock_timeout : float or None
        Seconds to wait when another run holds ``checkpoint_dir`` (0: fail at once; None:
        wait indefinitely); the environment variable ``SKCREAM_LOCK_TIMEOUT`` overrides it.
    keep : {"last", "best"}
        Return the last epoch's model, or the one of the epoch with the highest
        ``record[best_metric]`` (ties: the earliest).
    best_metric : str or None
        The history key (returned by ``epoch_hook``; higher is better) that ``keep="best"``
        ranks the epochs by.
    """

    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    head_lr_mult: float = 10.0
    momentum: float = 0.9
    weight_decay: float = 1e-4
    nesterov: bool = False
    lr_step_size: int | None = None
    lr_milestones: tuple[int, ...] | None = None
    lr_gamma: float = 0.1
    mixed_precision: str = "no"
    gradient_accumulation_steps: int = 1
    num_workers: int | None = None
    checkpoint_dir: str | os.PathLike | None = None
    resume: bool = False
    random_state: int | None = None
    verbose: int = 1
    device: str = "auto"
    shuffle: bool = True
    drop_last: bool = False
    lock_timeout: float | None = 0.0
    keep: str = "last"
    best_metric: str | None = None

    def validate(self) -> TrainConfig:
        """Raise ValueError/TypeError naming the first invalid field; return self, its numbers
        as Python ints / floats / bools (numpy scalars accepted, see :mod:`skcream._checks`)."""
        for name in ("epochs", "batch_size", "gradient_accumulation_steps"):
            setattr(self, name, as_int(getattr(self, name), name, low=1))
        self.num_workers = as_int(self.num_workers, "num_workers", low=0, none_ok=True)
        self.verbose = as_int(self.verbose, "verbose", low=0)
        self.lr_step_size = as_int(self.lr_step_size, "lr_step_size", low=1, none_ok=True)
        if self.lr_milestones is not None:
            if self.lr_step_size is not None:
                raise ValueError("lr_milestones and lr_step_size: give one of them, not both")
            milestones = [as_int(m, "lr_milestones", low=1) for m in self.lr_milestones]
            if not milestones or any(a >= b for a, b in zip(milestones, milestones[1:])):
                raise ValueError(
                    f"lr_milestones: expected a non-empty strictly increasing sequence, "
                    f"got {self.lr_milestones!r}"
                )
            self.lr_milestones = tuple(milestones)
        self.random_state = as_int(self.random_state, "random_state", low=0, none_ok=True)
        for name in ("lr", "head_lr_mult", "lr_gamma"):
            setattr(self, name, as_real(getattr(self, name), name, low=0.0, low_open=True))
        for name in ("momentum", "weight_decay"):
            setattr(self, name, as_real(getattr(self, name), name, low=0.0))
        self.nesterov = as_bool(self.nesterov, "nesterov")
        for name in ("shuffle", "drop_last", "resume"):
            setattr(self, name, as_bool(getattr(self, name), name))
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov: Nesterov momentum needs momentum > 0")
        if self.mixed_precision not in _MIXED:
            raise ValueError(f"mixed_precision: expected one of {_MIXED}, got {self.mixed_precision!r}")
        if self.device not in ("auto", "cpu"):
            raise ValueError(f"device: expected 'auto' or 'cpu', got {self.device!r}")
        self.lock_timeout = as_real(self.lock_timeout, "lock_timeout", low=0.0, none_ok=True)
        if self.resume and self.checkpoint_dir is None:
            raise ValueError("resume=True needs a checkpoint_dir")
        if self.keep not in KEEP:
            raise ValueError(f"keep: expected one of {KEEP}, got {self.keep!r}")
        if self.keep == "best" and (not isinstance(self.best_metric, str) or not self.best_metric):
            raise ValueError(f"best_metric: keep='best' needs the name of a history key to "
                             f"rank the epochs by, got {self.best_metric!r}")
        return self


# ------------------------------------------------------------------ losses and metrics
def _logits(outputs: Any) -> torch.Tensor:
    return outputs[0] if isinstance(outputs, (tuple, list)) else outputs


def cross_entropy_loss(outputs: Any, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Cross-entropy of the logits (``outputs`` or ``outputs[0]``, (B,C)) and ``batch["label"]`` (B,)."""
    return F.cross_entropy(_logits(outputs).float(), batch["label"])


def top1_correct(outputs: Any, batch: Any) -> torch.Tensor | None:
    """Per-sample top-1 correctness (B,) float, or None when the batch has no ``"label"``."""
    if not isinstance(batch, Mapping) or "label" not in batch:
        return None
    logits = _logits(outputs)
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        return None
    return (logits.argmax(dim=1) == batch["label"]).float()


# ------------------------------------------------------------------- the epoch to keep
def best_epoch(history: Sequence[Mapping[str, Any]], key: str) -> int | None:
    """The epoch (1-based) whose record has the highest ``record[key]``; ties: the earliest.

    wsolevaluation's rule (``PerformanceMeter``: ``values.index(max(values))``, and the best
    checkpoint is only rewritten when an epoch is strictly better). One deviation: the
    reference also scores the network before any training (its "epoch 0") and may keep it;
    skcream ranks trained epochs only (CREAM's context embeddings are a random draw before
    the first epoch, so an untrained model is not a CREAM model).

    Parameters
    ----------
    history : sequence of dict
        Per-epoch records with ``epoch`` and ``key``.
    key : str

    Returns
    -------
    int or None
        None when no record has a finite ``key``.
    """
    best, best_value = None, -math.inf
    for record in history:
        value = record.get(key)
        if value is None or not math.isfinite(float(value)):
            continue
        if best is None or float(value) > best_value:
            best, best_value = int(record["epoch"]), float(value)
    return best


def _cpu_copy(obj: Any) -> Any:
    """A deep copy of a state dict with every tensor detached and copied to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, Mapping):
        return {k: _cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_cpu_copy(v) for v in obj)
    return copy.deepcopy(obj)


def _snapshot(model: nn.Module, state_objects: Mapping[str, Any]) -> dict[str, Any]:
    """CPU copies of the states of ``model`` and of every state object."""
    return {"model": _cpu_copy(model.state_dict()),
            "objects": {k: _cpu_copy(v.state_dict()) for k, v in state_objects.items()}}


class _BestEpoch:
    """``keep="best"``: the epoch to keep so far and its model / state-object states (CPU).

    Parameters
    ----------
    key : str
        The history key ranking the epochs (:func:`best_epoch`).
    """

    def __init__(self, key: str) -> None:
        self.key = key
        self.epoch: int | None = None
        self.state: dict[str, Any] | None = None  # {"model": ..., "objects": ...}

    def offer(self, history: list, model: nn.Module, state_objects: Mapping[str, Any]) -> None:
        """After an epoch's record is in ``history``: copy the states when it is the best."""
        record = history[-1]
        value = record.get(self.key)
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
            raise ValueError(
                f"best_metric: keep='best' ranks the epochs by {self.key!r}, but epoch "
                f"{record['epoch']}'s record has {self.key} = {value!r} (epoch_hook must "
                "return a finite number)"
            )
        if best_epoch(history, self.key) == record["epoch"]:
            self.epoch = int(record["epoch"])
            self.state = _snapshot(model, state_objects)

    def for_checkpoint(self, epoch: int) -> dict[str, Any] | None:
        """What a checkpoint of ``epoch`` stores: the best epoch's number, and its states when
        it is an earlier epoch (the checkpoint's own states otherwise)."""
        if self.epoch is None:
            return None
        return {"epoch": self.epoch} if self.epoch == epoch else {"epoch": self.epoch, **self.state}

    def resume(self, saved: Mapping[str, Any] | None, history: list, model: nn.Module,
               state_objects: Mapping[str, Any], where: Path) -> None:
        """Take the best epoch back from a checkpoint (``saved``: its ``"best"`` entry) whose
        states were just loaded into ``model`` / ``state_objects``."""
        expected = best_epoch(history, self.key)
        got = saved.get("epoch") if isinstance(saved, Mapping) else None
        if got != expected:
            raise ValueError(
                f"checkpoint_dir: {where} records epoch {got!r} as the best, but its history "
                f"ranks epoch {expected!r} first by {self.key!r}; the checkpoint is "
                "inconsistent (delete the skcream-train* files to start over)"
            )
        self.epoch = expected
        if expected is None:  # a checkpoint of no finished epoch cannot exist; nothing to take
            return
        if "model" in saved:
            self.state = {"model": saved["model"], "objects": dict(saved["objects"])}
        else:  # the checkpoint's own epoch is the best
            self.state = _snapshot(model, state_objects)

    def restore(self, model: nn.Module, state_objects: Mapping[str, Any]) -> None:
        """Load the best epoch's states into ``model`` and ``state_objects``."""
        model.load_state_dict(self.state["model"])
        for name, obj in state_objects.items():
            obj.load_state_dict(self.state["objects"][name])


# --------------------------------------------------------------------- building blocks
def parameter_groups(model: nn.Module, lr: float, head_lr_mult: float) -> list[dict[str, Any]]:
    """SGD parameter groups: pretrained layers at ``lr``, new layers at ``lr * head_lr_mult``.

    Models without ``new_parameters()`` / ``pretrained_parameters()`` give one group at ``lr``.
    Frozen parameters (``requires_grad=False``) are left out; empty groups are dropped.
    """
    if hasattr(model, "new_parameters") and hasattr(model, "pretrained_parameters"):
        groups = [
            {"params": [p for p in model.pretrained_parameters() if p.requires_grad], "lr": lr},
            {"params": [p for p in model.new_parameters() if p.requires_grad], "lr": lr * head_lr_mult},
        ]
        n_grouped = sum(len(g["params"]) for g in groups)
        n_total = sum(1 for p in model.parameters() if p.requires_grad)
        if n_grouped != n_total:
            raise ValueError(
                f"model: new_parameters() and pretrained_parameters() cover {n_grouped} of "
                f"{n_total} trainable parameters; they must partition model.parameters()"
            )
    else:
        groups = [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr}]
    return [g for g in groups if g["params"]]


def make_accelerator(config: TrainConfig):
    """An :class:`accelerate.Accelerator` for ``config`` (resets accelerate's singleton state
    when an earlier run in this process used another mixed-precision mode)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    state = AcceleratorState._shared_state  # noqa: SLF001 - the documented reset path of accelerate's tests
    if state and state.get("_mixed_precision") not in (None, config.mixed_precision):
        AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(
        cpu=config.device == "cpu",
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        rng_types=[],  # shuffling is seeded per epoch by _EpochSampler, identical on every process
        step_scheduler_with_optimizer=False,
    )


class _EpochSampler(Sampler[int]):
    """Indices 0..n-1, shuffled by a function of (seed, epoch): the same on every process."""

    def __init__(self, n: int, seed: int, shuffle: bool) -> None:
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(self.n))
        rng = np.random.default_rng([self.seed, self.epoch])
        return iter(rng.permutation(self.n).tolist())


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32  # set by the DataLoader from its (re-seeded) generator
    np.random.seed(seed)  # noqa: NPY002 - transforms may draw from numpy's global RNG
    random.seed(seed)


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1, dtype=np.uint32)[0])


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - the global RNG is what user transforms draw from
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state(legacy=False)  # noqa: NPY002 - saved and restored as is
    py_version, py_state, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy_key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
        "numpy_pos": int(np_state["state"]["pos"]),
        "numpy_has_gauss": int(np_state["has_gauss"]),
        "numpy_gauss": float(np_state["gauss"]),
        "python": torch.tensor(py_state, dtype=torch.int64),
        "python_version": int(py_version),
        "python_gauss": py_gauss,
    }


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state({  # noqa: NPY002 - restores the state saved above
        "bit_generator": "MT19937",
        "state": {"key": state["numpy_key"].numpy().astype(np.uint32), "pos": state["numpy_pos"]},
        "has_gauss": state["numpy_has_gauss"],
        "gauss": state["numpy_gauss"],
    })
    random.setstate((state["python_version"], tuple(state["python"].tolist()), state["python_gauss"]))


@contextmanager
def _preserved_global_rng(active: bool):
    """Restore the caller's python / numpy / torch RNG states on exit when ``active``."""
    saved = _rng_state() if active else None
    try:
        yield
    finally:
        if saved is not None:
            _set_rng_state(saved)


# ------------------------------------------------------------------------ checkpoints
def config_fingerprint(
    config: TrainConfig, model: nn.Module, n_samples: int, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """What a checkpoint must agree with to be resumed.

    The training hyper-parameters (everything of ``config`` except ``epochs``, which may grow,
    and run options: workers, paths, verbosity, device), the model's class and parameter
    names and shapes (hashed), the dataset length, and the caller's ``extra`` (JSON-able;
    e.g. the estimator's parameters and a fingerprint of the data).
    """
    run_options = {"epochs", "num_workers", "checkpoint_dir", "resume", "verbose", "device",
                   "lock_timeout"}
    if config.keep == "last":  # what every run did before keep existed: such checkpoints resume
        run_options |= {"keep", "best_metric"}
    hyper = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
             if f.name not in run_options}
    shapes = hashlib.sha256(json.dumps(
        [[k, list(v.shape), str(v.dtype)] for k, v in model.state_dict().items()]
    ).encode()).hexdigest()
    return json.loads(json.dumps({
        "config": hyper,
        "model": type(model).__name__,
        "model_shapes_sha256": shapes,
        "n_samples": int(n_samples),
        "extra": dict(extra or {}),
    }, default=str))


def _state_name(epoch: int) -> str:
    return CHECKPOINT_FILES[1].format(epoch=epoch)


def _rng_name(epoch: int, rank: int) -> str:
    return CHECKPOINT_FILES[2].format(epoch=epoch, rank=rank)


_OWN_FILE = re.compile(r"skcream-train(-e(\d+))?(-rng\d+)?\.pt")
_LEGACY = ("skcream-train/1", "skcream-train.pt", "skcream-train-rng{rank}.pt")


def _checkpoint_error(meta_path: Path, field: str, value: Any, expected: str) -> ValueError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return ValueError(f"checkpoint_dir: {meta_path}: {field} = {shown}: expected {expected}; "
                      "delete the skcream-train* files there to start over")


def has_checkpoint(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` holds a committed checkpoint (its JSON, written last).

    Other entries (the run's lock file, files of an epoch that was never committed, the
    user's own files) are not a checkpoint: a run killed before its first epoch leaves none.
    """
    return (Path(directory) / CHECKPOINT_FILES[0]).is_file()


def _is_int(v: Any, low: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


def _read_meta(directory: Path) -> dict[str, Any] | None:
    """The checkpoint's JSON (its manifest), checked field by field; None when absent."""
    meta_path = directory / CHECKPOINT_FILES[0]
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"checkpoint_dir: {meta_path} is not a readable skcream checkpoint: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") not in (_FORMAT, _LEGACY[0]):
        raise ValueError(f"checkpoint_dir: {meta_path} was not written by skcream.training ({_FORMAT})")
    epoch, history = meta.get("epoch"), meta.get("history")
    if not _is_int(epoch, 1):
        raise _checkpoint_error(meta_path, "epoch", epoch, "an int >= 1")
    if not isinstance(history, list) or len(history) != epoch or not all(
            isinstance(r, dict) and r.get("epoch") == i + 1 for i, r in enumerate(history)):
        raise _checkpoint_error(meta_path, "history", history,
                                f"{epoch} per-epoch records numbered 1..{epoch}")
    if not _is_int(meta.get("num_processes"), 1):
        raise _checkpoint_error(meta_path, "num_processes", meta.get("num_processes"), "an int >= 1")
    if not isinstance(meta.get("fingerprint"), dict):
        raise _checkpoint_error(meta_path, "fingerprint", meta.get("fingerprint"), "an object")
    if meta["format"] == _FORMAT:
        files = meta.get("files")
        ok = (isinstance(files, dict) and _file_entry(files.get("state"), _state_name(epoch))
              and isinstance(files.get("rng"), dict)
              and all(_file_entry(v, _rng_name(epoch, int(k)))
                      for k, v in files["rng"].items() if str(k).isdigit()))
        if not ok:
            raise _checkpoint_error(meta_path, "files", files,
                                    f"the names, sizes and sha256 of epoch {epoch}'s files")
    return meta


def _file_entry(entry: Any, name: str) -> bool:
    return (isinstance(entry, dict) and entry.get("name") == name
            and _is_int(entry.get("size"), 0) and isinstance(entry.get("sha256"), str))


def _entry(name: str, data: bytes) -> dict[str, Any]:
    return {"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _check_fingerprint(meta: Mapping[str, Any], fingerprint: Mapping[str, Any], directory: Path) -> None:
    if meta["fingerprint"] == fingerprint:
        return
    old, new = meta["fingerprint"], fingerprint
    diffs = _diff(old, new)
    raise ValueError(
        f"checkpoint_dir: {directory} holds a checkpoint of another configuration "
        f"(differences: {'; '.join(diffs[:6])}); refusing to mix runs. Use another "
        "checkpoint_dir, or delete the skcream-train.* files there to start over."
    )


def _check_epochs(meta: Mapping[str, Any], epochs: int, directory: Path) -> None:
    """A checkpoint past the epochs asked for is never returned silently."""
    if meta["epoch"] > epochs:
        raise ValueError(
            f"checkpoint_dir: {directory / CHECKPOINT_FILES[0]} holds a run of "
            f"{meta['epoch']} epochs, more than the {epochs} asked for (epochs / max_epochs); "
            f"ask for at least {meta['epoch']} epochs to resume it, or use another "
            "checkpoint_dir"
        )


def _diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            out += _diff(old.get(key, "<absent>"), new.get(key, "<absent>"), f"{prefix}{key}.")
        return out
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]


def _torch_bytes(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _save_checkpoint(
    directory: Path, accelerator, model, optimizer, scheduler, state_objects, epoch: int,
    history: list, fingerprint: Mapping[str, Any], best: Mapping[str, Any] | None = None,
) -> None:
    """Write epoch ``epoch``'s checkpoint all or nothing.

    The state and every process's RNG go to files named by the epoch (each written to a
    unique temporary name, fsynced and renamed); then the main process writes
    ``skcream-train.json`` the same way, naming those files with their sizes and SHA-256:
    that one rename commits the checkpoint. Killed at any point before it, the directory
    still holds the previous epoch's complete checkpoint (its files are removed only after
    the commit). ``best`` (``keep="best"``, :meth:`_BestEpoch.for_checkpoint`) travels in
    the state file, so the best epoch's weights are committed with the epoch.
    """
    from skcream.persistence import write_bytes_atomic

    rank = accelerator.process_index
    write_bytes_atomic(directory / _rng_name(epoch, rank), _torch_bytes(_rng_state()))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        state = _torch_bytes({
            "model": accelerator.unwrap_model(model).state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "objects": {k: v.state_dict() for k, v in state_objects.items()},
            "best": best,
        })
        write_bytes_atomic(directory / _state_name(epoch), state)
        rng = {str(r): _entry(_rng_name(epoch, r), (directory / _rng_name(epoch, r)).read_bytes())
               for r in range(accelerator.num_processes)}
        meta = json.dumps({
            "format": _FORMAT, "epoch": epoch, "history": history,
            "num_processes": accelerator.num_processes, "fingerprint": fingerprint,
            "files": {"state": _entry(_state_name(epoch), state), "rng": rng},
        }, indent=1, default=str)
        write_bytes_atomic(directory / CHECKPOINT_FILES[0], meta.encode())  # the commit
        keep = {_state_name(epoch), *(e["name"] for e in rng.values())}
        for path in directory.iterdir():  # older epochs' (and 0.1's) files of skcream's own
            if _OWN_FILE.fullmatch(path.name) and path.name not in keep:
                path.unlink(missing_ok=True)
    accelerator.wait_for_everyone()


def _read_checked(directory: Path, entry: Mapping[str, Any] | None, name: str) -> bytes | None:
    """The bytes of a checkpoint file, verified against its manifest ``entry`` (None: a 0.1
    checkpoint without hashes). None when an optional file is absent."""
    path = directory / name
    if not path.is_file():
        if entry is None:
            return None
        raise ValueError(f"checkpoint_dir: {path} named by {CHECKPOINT_FILES[0]} is missing; "
                         "the checkpoint is incomplete (delete the skcream-train* files to "
                         "start over)")
    data = path.read_bytes()
    if entry is not None and (len(data) != entry["size"]
                              or hashlib.sha256(data).hexdigest() != entry["sha256"]):
        raise ValueError(f"checkpoint_dir: {path} does not match {CHECKPOINT_FILES[0]} (size "
                         f"{len(data)}, expected {entry['size']}, or its sha256): the checkpoint "
                         "is corrupt (delete the skcream-train* files to start over)")
    return data


def _torch_load(data: bytes, path: Path) -> Any:
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, truncated zip, ...: one line naming the file
        raise ValueError(f"checkpoint_dir: {path} is not a readable checkpoint ({exc})") from None


def _load_checkpoint(directory: Path, meta: Mapping[str, Any], rank: int, model, optimizer,
                     scheduler, state_objects) -> tuple[Any, Path]:
    """Load a checkpoint's states into the arguments; return its ``best`` entry (None
    without one) and the state file's path."""
    epoch = meta["epoch"]
    if meta["format"] == _FORMAT:
        files = meta["files"]
        state_name, rng_entry = _state_name(epoch), files["rng"].get(str(rank))
        state_data = _read_checked(directory, files["state"], state_name)
        rng_name = _rng_name(epoch, rank)
        rng_data = _read_checked(directory, rng_entry, rng_name) if rng_entry else None
    else:  # skcream 0.1: fixed names, no hashes
        state_name, rng_name = _LEGACY[1], _LEGACY[2].format(rank=rank)
        state_data = _read_checked(directory, None, state_name)
        if state_data is None:
            raise ValueError(f"checkpoint_dir: {directory / state_name} is missing")
        rng_data = _read_checked(directory, None, rng_name)
    state = _torch_load(state_data, directory / state_name)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    for name, obj in state_objects.items():
        if name not in state["objects"]:
            raise ValueError(f"checkpoint: {directory / state_name} has no state for object {name!r}")
        obj.load_state_dict(state["objects"][name])
    if rng_data is not None:
        _set_rng_state(_torch_load(rng_data, directory / rng_name))
    return state.get("best"), directory / state_name


# ------------------------------------------------------------------------------ train
def train(
    model: nn.Module,
    dataset: torch.utils.data.Dataset,
    *,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    config: TrainConfig | None = None,
    step_hook: Callable[[Any, Any, Any], None] | None = None,
    epoch_hook: Callable[[Any, int, dict], Mapping[str, Any] | None] | None = None,
    state_objects: Mapping[str, Any] | None = None,
    fingerprint: Mapping[str, Any] | None = None,
    metric_fn: Callable[[Any, Any], torch.Tensor | None] | None = top1_correct,
    collate_fn: Callable | None = None,
    input_key: str = "image",
    forward_fn: Callable[[nn.Module, Any], Any] | None = None,
) -> list[dict[str, Any]]:
    """Train ``model`` on ``dataset`` with SGD through Accelerate.

    Parameters
    ----------
    model : nn.Module
        Trained in place (the unwrapped module keeps the final weights).
    dataset : torch Dataset
        Map-style; items are dicts with ``input_key`` (e.g. {"image": (3,S,S), "label": int})
        or tuples whose first element is the input.
    loss_fn : callable
        ``loss_fn(outputs, batch) -> scalar Tensor`` (e.g. :func:`cross_entropy_loss`).
    config : TrainConfig, optional
    step_hook : callable, optional
        ``step_hook(accelerator, batch, outputs)`` after every micro-step, under no_grad.
    epoch_hook : callable, optional
        ``epoch_hook(accelerator, epoch, record)`` after every epoch (1-based); a returned
        dict is merged into the epoch's record.
    state_objects : mapping of str to object with state_dict/load_state_dict, optional
        Saved with every checkpoint and restored on resume.
    fingerprint : mapping, optional
        JSON-able facts that must match for a checkpoint to be resumed.
    metric_fn : callable or None
        ``metric_fn(outputs, batch) -> (B,) Tensor or None``; its mean is the epoch's
        ``accuracy`` (default :func:`top1_correct`).
    collate_fn : callable, optional
    input_key : str
        Key of the model input in dict batches.
    forward_fn : callable, optional
        ``forward_fn(model, batch) -> outputs`` replaces ``model(batch[input_key])`` (e.g. a
        WSOL method that hides or mixes the inputs, or whose network needs the labels);
        ``model`` is the prepared (possibly distributed) module.

    Returns
    -------
    list of dict
        One record per finished epoch (those restored from a checkpoint included):
        ``epoch`` (1-based), ``loss``, ``accuracy`` (None without a metric), ``lr``,
        ``seconds``, ``samples``, plus what ``epoch_hook`` returned.
    """
    config = (config or TrainConfig()).validate()
    if not callable(loss_fn):
        raise TypeError(f"loss_fn: expected a callable, got {type(loss_fn).__name__}")
    state_objects = dict(state_objects or {})
    for name, obj in state_objects.items():
        if not (hasattr(obj, "state_dict") and hasattr(obj, "load_state_dict")):
            raise TypeError(f"state_objects[{name!r}]: needs state_dict() and load_state_dict()")
    n_samples = len(dataset)
    if n_samples == 0:
        raise ValueError("dataset: is empty")
    lock = _claim_checkpoint_dir(config)
    try:
        with _preserved_global_rng(config.random_state is not None):
            return _train(model, dataset, n_samples, loss_fn, config, step_hook, epoch_hook,
                          state_objects, fingerprint, metric_fn, collate_fn, input_key,
                          forward_fn)
    except (RuntimeError, MemoryError) as exc:
        if not is_out_of_memory(exc):
            raise
        raise MemoryError(out_of_memory_message(exc, config.batch_size)) from exc
    finally:
        if lock is not None:
            lock.release()


def is_out_of_memory(exc: BaseException) -> bool:
    """True for the allocators' out-of-memory errors (CUDA, MPS, CPU, Python)."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc).lower()
    return any(s in text for s in ("out of memory", "can't allocate memory", "not enough memory",
                                   "cannot allocate memory", "failed to allocate"))


def out_of_memory_message(exc: BaseException, batch_size: int) -> str:
    """One line saying that memory ran out and what to reduce."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return (
        f"out of memory while training with batch_size={batch_size} ({first}); reduce "
        "batch_size (CLI: --batch-size) or image_size (CLI: --image-size), or use "
        "gradient_accumulation_steps / mixed_precision='bf16'"
    )


def _claim_checkpoint_dir(config: TrainConfig):
    """The main process's OS lock on ``checkpoint_dir`` (None without one): a second run on
    the same folder fails here, before any training."""
    if config.checkpoint_dir is None or int(os.environ.get("RANK", "0") or 0) != 0:
        return None
    from skcream._locks import LOCK_TIMEOUT_ENV, FolderLock, lock_timeout_from_env

    directory = Path(config.checkpoint_dir)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"checkpoint_dir: {directory} exists and is not a directory")
    return FolderLock(
        directory, what="checkpoint_dir", name=".skcream-train.lock",
        timeout=lock_timeout_from_env(config.lock_timeout),
        hint=f"or set {LOCK_TIMEOUT_ENV}=SECONDS (or inf) to wait for it",
    ).acquire()


def _train(model, dataset, n_samples, loss_fn, config, step_hook, epoch_hook, state_objects,
           fingerprint, metric_fn, collate_fn, input_key, forward_fn=None):
    from accelerate.utils import broadcast_object_list
    from tqdm.auto import tqdm

    accelerator = make_accelerator(config)
    seed = config.random_state
    if seed is None:  # sklearn's convention: draw from numpy's global RNG; same on every process
        drawn = int(np.random.randint(0, 2**31 - 1))  # noqa: NPY002
        seed = broadcast_object_list([drawn])[0]

    fp = config_fingerprint(config, model, n_samples, fingerprint)
    directory = Path(config.checkpoint_dir) if config.checkpoint_dir is not None else None
    meta = None
    if directory is not None:
        if directory.exists() and not directory.is_dir():
            raise ValueError(f"checkpoint_dir: {directory} exists and is not a directory")
        meta = _read_meta(directory) if directory.is_dir() else None
        if meta is not None:
            _check_fingerprint(meta, fp, directory)
            if config.resume:
                _check_epochs(meta, config.epochs, directory)
        if accelerator.is_main_process:
            make_dirs(directory, "checkpoint_dir")
        accelerator.wait_for_everyone()

    model.to(accelerator.device)
    for obj in state_objects.values():
        if isinstance(obj, nn.Module):
            obj.to(accelerator.device)
    optimizer = torch.optim.SGD(
        parameter_groups(model, config.lr, config.head_lr_mult),
        lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
        nesterov=config.nesterov,
    )
    scheduler = None
    if config.lr_step_size is not None:
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, config.lr_step_size, config.lr_gamma)
    elif config.lr_milestones is not None:
        scheduler = torch.optim.lr_scheduler.MultiStepLR(
            optimizer, list(config.lr_milestones), config.lr_gamma
        )
    start, history = 0, []
    best = _BestEpoch(config.best_metric) if config.keep == "best" else None
    if config.resume and meta is not None:
        saved_best, where = _load_checkpoint(directory, meta, accelerator.process_index, model,
                                             optimizer, scheduler, state_objects)
        start, history = int(meta["epoch"]), list(meta["history"])
        if best is not None:
            best.resume(saved_best, history, model, state_objects, where)
    _broadcast_from_main(accelerator, model, state_objects)
    global_batch = config.batch_size * accelerator.num_processes * config.gradient_accumulation_steps
    if config.verbose and accelerator.is_main_process:
        print(f"skcream.training: {accelerator.num_processes} process(es) on "
              f"{accelerator.device.type}; global batch {global_batch} = batch_size "
              f"{config.batch_size} x {accelerator.num_processes} process(es) x "
              f"{config.gradient_accumulation_steps} accumulation step(s); lr {config.lr:g}",
              flush=True)

    sampler = _EpochSampler(n_samples, seed, config.shuffle)
    generator = torch.Generator()
    workers = resolve_num_workers(config.num_workers, n_samples)
    loader = DataLoader(
        dataset, batch_size=config.batch_size, sampler=sampler, num_workers=workers,
        collate_fn=collate_fn, drop_last=config.drop_last, generator=generator,
        worker_init_fn=_seed_worker if workers else None,
        pin_memory=pin_memory(accelerator.device),
    )
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)

    for epoch in range(start, config.epochs):
        epoch_seed = _epoch_seed(seed, epoch, accelerator.process_index)
        # accelerate's loader re-sets the sampler's epoch from its own iteration counter (which
        # restarts at 0 in a resumed run): set both, or a resumed run replays epoch 0's order
        loader.set_epoch(epoch)
        sampler.set_epoch(epoch)
        generator.manual_seed(epoch_seed)
        if config.random_state is not None:
            _seed_everything(epoch_seed)
        model.train()
        tic = time.perf_counter()
        sums = {"loss": 0.0, "n": 0, "correct": 0.0, "m": 0}
        bar = tqdm(total=len(loader), desc=f"epoch {epoch + 1}/{config.epochs}",
                   disable=config.verbose == 0 or not accelerator.is_main_process,
                   leave=True, dynamic_ncols=True)
        for step, batch in enumerate(loader, 1):
            inputs = batch[input_key] if isinstance(batch, Mapping) else batch[0]
            with accelerator.accumulate(model):
                outputs = model(inputs) if forward_fn is None else forward_fn(model, batch)
                loss = loss_fn(outputs, batch)
                accelerator.backward(loss)
                optimizer.step()
                optimizer.zero_grad()
            with torch.no_grad():
                per_sample = loss.detach().float().reshape(1).repeat(inputs.shape[0])
                losses = accelerator.gather_for_metrics(per_sample)
            if not bool(torch.isfinite(losses).all()):
                # every process sees the same gathered losses, so all stop together
                raise FloatingPointError(
                    f"training diverged: the loss is {float(losses[~torch.isfinite(losses)][0])} "
                    f"at epoch {epoch + 1}, step {step}; lower the learning rate "
                    f"(lr={config.lr:g}; CLI: --lr)"
                )
            if step_hook is not None:
                with torch.no_grad():
                    step_hook(accelerator, batch, outputs)
            with torch.no_grad():
                sums["loss"] += float(losses.sum())
                sums["n"] += losses.numel()
                correct = metric_fn(outputs, batch) if metric_fn is not None else None
                if correct is not None:
                    correct = accelerator.gather_for_metrics(correct.detach().float())
                    sums["correct"] += float(correct.sum())
                    sums["m"] += correct.numel()
            bar.update(1)
            bar.set_postfix(_postfix(sums), refresh=False)
        bar.close()
        _sync_buffers(accelerator, model)
        lr = optimizer.param_groups[0]["lr"]
        if scheduler is not None:
            scheduler.step()
        record = {
            "epoch": epoch + 1,
            "loss": sums["loss"] / max(sums["n"], 1),
            "accuracy": sums["correct"] / sums["m"] if sums["m"] else None,
            "lr": lr,
            "seconds": time.perf_counter() - tic,
            "samples": sums["n"],
            "global_batch_size": global_batch,
            "num_processes": accelerator.num_processes,
        }
        if epoch_hook is not None:
            record.update(epoch_hook(accelerator, epoch + 1, record) or {})
        history.append(record)
        if best is not None:
            # one decision for all processes: process 0's score (each process computed its
            # own; the weights are identical, the scores need not be bit for bit)
            record[best.key] = _from_main(accelerator, record.get(best.key))
            best.offer(history, accelerator.unwrap_model(model), state_objects)
        if directory is not None:
            _save_checkpoint(directory, accelerator, model, optimizer, scheduler, state_objects,
                             epoch + 1, history, fp,
                             best.for_checkpoint(epoch + 1) if best is not None else None)
    accelerator.wait_for_everyone()
    if best is not None and best.epoch is not None:
        best.restore(accelerator.unwrap_model(model), state_objects)
        if config.verbose and accelerator.is_main_process:
            value = history[best.epoch - 1][best.key]
            print(f"skcream.training: keeping epoch {best.epoch} of {len(history)} (best "
                  f"{best.key} {value:.4g})", flush=True)
    return history


def _from_main(accelerator, value: Any) -> Any:
    """Process 0's ``value`` on every process (the value itself on one process)."""
    if accelerator.num_processes == 1:
        return value
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([value])[0]


def _broadcast_from_main(accelerator, model: nn.Module, state_objects: Mapping[str, Any]) -> None:
    """Make every process start from process 0's model and state objects.

    Parameters and buffers of ``model`` and of ``nn.Module`` state objects are broadcast in
    place; other state objects travel as their ``state_dict()``. Without this, anything seeded
    from a process's own RNG (``random_state=None``) differs between processes: DDP only
    broadcasts the wrapped model, never e.g. the context embedding tables.
    """
    if accelerator.num_processes == 1:
        return
    import torch.distributed as dist
    from accelerate.utils import broadcast_object_list

    with torch.no_grad():
        for module in (model, *(o for o in state_objects.values() if isinstance(o, nn.Module))):
            for tensor in (*module.parameters(), *module.buffers()):
                dist.broadcast(tensor.data, src=0)
    others = [name for name, obj in state_objects.items() if not isinstance(obj, nn.Module)]
    if others:
        states = broadcast_object_list([{n: state_objects[n].state_dict() for n in others}])[0]
        for name in others:
            state_objects[name].load_state_dict(states[name])


def _sync_buffers(accelerator, model: nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every process.

    DDP broadcasts buffers at the start of each forward, so after the last forward of an
    epoch every process holds statistics of its own shard; this makes the epoch hook, the
    checkpoint and the returned model identical on every process.
    """
    if accelerator.num_processes == 1:
        return
    import torch.distributed as dist

    with torch.no_grad():
        for buf in accelerator.unwrap_model(model).buffers():
            dist.broadcast(buf.data, src=0)


def _postfix(sums: Mapping[str, float]) -> dict[str, str]:
    out = {"loss": f"{sums['loss'] / max(sums['n'], 1):.4f}"}
    if sums["m"]:
        out["acc"] = f"{sums['correct'] / sums['m']:.3f}"
    return out
