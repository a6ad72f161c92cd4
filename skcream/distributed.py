"""Inference spread over the processes of an ``accelerate launch`` / ``torchrun`` run.

Inside :func:`distributed_inference`, a fitted localizer's ``predict``, ``localize``,
``transform``, ``decision_function``/``predict_proba``, ``pseudo_boxes``, ``score`` and
``evaluate`` run the network on this process's share of the images only, then gather the
per-image results so that every process returns the same output, in input order::

    # accelerate launch --multi_gpu --num_processes N script.py   (or torchrun)
    with skcream.distributed_inference():
        boxes = model.pseudo_boxes(train)      # each process computes ~1/N of the boxes

It is opt-in (a context manager, not automatic) because every process must make the same
calls: a script that predicts on the main process only would otherwise wait forever.

Shares are contiguous runs of whole batches (:func:`shard_range`), so every batch is the
batch a single process would have run: outputs, and metrics computed from them, equal the
single-process ones exactly. :func:`sharded_apply` adds resumable output: it runs a
method chunk by chunk, each chunk written atomically to a folder, and skips chunks already
there, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
import pickle
from collections.abc import Iterator, MutableSequence, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from skcream._checks import as_int
from skcream._fs import make_dirs

__all__ = ["distributed_inference", "gather_rows", "process_info", "shard_range", "sharded_apply",
           "sum_across"]

_ACTIVE: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "skcream_distributed_inference", default=None)


def process_info() -> tuple[int, int]:
    """(rank, number of processes) of this run; (0, 1) outside a launcher.

    Under ``accelerate launch`` / ``torchrun`` (``WORLD_SIZE`` > 1) without an initialised
    process group, Accelerate's ``PartialState`` initialises it (gloo on CPU).
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        import torch
        from accelerate import PartialState

        # without cpu=True Accelerate ignores the launcher on a machine without CUDA
        state = PartialState(cpu=not torch.cuda.is_available())
        return state.process_index, state.num_processes
    return 0, 1


def active() -> tuple[int, int] | None:
    """(rank, world) inside :func:`distributed_inference` with several processes, else None."""
    return _ACTIVE.get()


@contextlib.contextmanager
def distributed_inference() -> Iterator[tuple[int, int]]:
    """Spread the inference methods of fitted localizers over this run's processes.

    Yields
    ------
    (rank, world) : tuple of int
        This process's index and the number of processes (0, 1 outside a launcher, where
        the context changes nothing).
    """
    rank, world = process_info()
    token = _ACTIVE.set((rank, world) if world > 1 else None)
    try:
        yield rank, world
    finally:
        _ACTIVE.reset(token)


def shard_range(n: int, batch_size: int, rank: int, world: int) -> range:
    """Indices of process ``rank``'s share of ``n`` items: a contiguous run of whole batches.

    The ``ceil(n / batch_size)`` batches are split into ``world`` contiguous groups of
    ``ceil(batches / world)`` (the last groups may be shorter or empty), so the batches of
    every share start at a multiple of ``batch_size``, as in a single-process run.
    """
    if n < 0 or batch_size < 1 or world < 1 or not 0 <= rank < world:
        raise ValueError(f"shard_range: bad arguments n={n}, batch_size={batch_size}, "
                         f"rank={rank}, world={world}")
    per = math.ceil(math.ceil(n / batch_size) / world) * batch_size
    return range(min(rank * per, n), min((rank + 1) * per, n))


def gather_rows(indices: Sequence[int], *columns: MutableSequence) -> None:
    """Fill, on every process, the rows other processes computed.

    Parameters
    ----------
    indices : sequence of int
        Rows this process filled in each of ``columns``.
    *columns : list or ndarray (n, ...)
        Per-image results indexed by input position; rows of the other processes' shares
        are written in place (the processes' shares must partition 0..n-1).
    """
    import torch.distributed as dist

    if active() is None:
        return
    indices = [int(i) for i in indices]
    payload = (indices, [[col[i] for i in indices] for col in columns])
    world = dist.get_world_size()
    everything: list = [None] * world
    dist.all_gather_object(everything, payload)
    for rows, values in everything:
        for col, vals in zip(columns, values):
            for i, v in zip(rows, vals):
                col[i] = v


def sum_across(obj: Any, *names: str) -> None:
    """Replace the attributes ``names`` of ``obj`` by their sums over the processes.

    For streaming metric accumulators (``BoxAccumulator``: ``correct``, ``n_maps``;
    ``PxAPAccumulator``: ``counts``, ``n_maps``) fed with each process's share: their
    counts are integers (held in float64, summed exactly), so the merged accumulator gives
    the single-process metric exactly. Does nothing outside :func:`distributed_inference`.
    """
    import torch.distributed as dist

    if active() is None or obj is None:
        return
    everything: list = [None] * dist.get_world_size()
    dist.all_gather_object(everything, [getattr(obj, n) for n in names])
    for k, name in enumerate(names):
        total = everything[0][k]
        for values in everything[1:]:
            total = total + values[k]
        setattr(obj, name, total)


def _chunk_path(directory: Path, k: int) -> Path:
    return directory / f"chunk-{k:06d}.pkl"


def sharded_apply(estimator: Any, method: str, X: Any, out_dir: str | os.PathLike, *,
                  chunk_size: int = 1024, **kwargs: Any) -> Any:
    """``getattr(estimator, method)(X, **kwargs)``, chunk by chunk, resumable, spread over processes.

    Chunks of ``chunk_size`` consecutive images are given to the processes in turn (chunk k
    to rank ``k % world``); each result is written to ``out_dir/chunk-<k>.pkl`` (temporary
    file, fsync, rename), and chunks already in ``out_dir`` are loaded instead of recomputed.
    ``out_dir/meta.json`` records the method, ``len(X)`` and ``chunk_size``, and a folder
    written for other values is refused. With ``chunk_size`` a multiple of the estimator's
    ``batch_size`` the network runs the very batches of one call and the result is bit for
    bit the same; otherwise equal up to float rounding (batched convolutions on CPU may
    round differently for other batch compositions).

    Parameters
    ----------
    estimator : fitted CREAMLocalizer
    method : {"predict", "transform", "pseudo_boxes", "predict_proba", "decision_function",
        "localize"}
    X : Dataset or sequence of images
    out_dir : path
    chunk_size : int
    **kwargs
        Passed to the method (per-image arrays such as ``labels`` / ``y`` are sliced).

    Returns
    -------
    The method's result for all of ``X`` in input order (ndarray concatenated along axis 0;
    a :class:`~skcream.localize.Localization` concatenated field by field), on every process.
    """
    import json

    from skcream.estimators._inputs import take_rows

    allowed = ("predict", "transform", "pseudo_boxes", "predict_proba", "decision_function",
               "localize")
    if method not in allowed:
        raise ValueError(f"method: expected one of {allowed}, got {method!r}")
    chunk_size = as_int(chunk_size, "chunk_size", low=1)
    from skcream.data.streaming import is_stream, materialize

    if is_stream(X):
        X = materialize(X)  # chunks need random access; one pass over the stream
    n = len(X)
    directory = Path(out_dir)
    meta = {"format": "skcream-shards/1", "method": method, "n": n, "chunk_size": chunk_size}
    rank, world = process_info()
    meta_path = directory / "meta.json"
    if meta_path.is_file():
        old = json.loads(meta_path.read_text())
        if old != meta:
            raise ValueError(f"out_dir: {directory} holds shards of another run ({old}); "
                             f"expected {meta}. Use another out_dir.")
    elif rank == 0:
        make_dirs(directory, "out_dir")
        _atomic_write(meta_path, json.dumps(meta).encode())
    _barrier(world)
    n_chunks = math.ceil(n / chunk_size)
    for k in range(rank, n_chunks, world):
        path = _chunk_path(directory, k)
        if path.is_file():
            continue
        keep = np.arange(k * chunk_size, min((k + 1) * chunk_size, n))
        part_kwargs = {key: _slice(v, keep, n) for key, v in kwargs.items()}
        result = getattr(estimator, method)(take_rows(X, keep), **part_kwargs)
        _atomic_write(path, pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    _barrier(world)
    parts = []
    for k in range(n_chunks):
        with open(_chunk_path(directory, k), "rb") as fh:
            parts.append(pickle.load(fh))  # noqa: S301 - our own files, written above
    return _concat(parts)


def _slice(value: Any, keep: np.ndarray, n: int) -> Any:
    if isinstance(value, (list, tuple, np.ndarray)) and len(value) == n:
        return np.asarray(value)[keep]
    return value


def _concat(parts: list) -> Any:
    if not parts:
        return np.zeros((0,))
    first = parts[0]
    if isinstance(first, np.ndarray):
        return np.concatenate(parts)
    from skcream.localize import Localization

    if isinstance(first, Localization):
        return _concat_localization(parts)
    raise TypeError(f"cannot concatenate results of type {type(first).__name__}")


def _concat_localization(parts: list) -> Any:
    import dataclasses

    fields = {}
    for f in dataclasses.fields(parts[0]):
        values = [getattr(p, f.name) for p in parts]
        if values[0] is None:
            fields[f.name] = None
        elif isinstance(values[0], np.ndarray):
            fields[f.name] = np.concatenate(values)
        else:
            fields[f.name] = [v for vs in values for v in vs]
    return type(parts[0])(**fields)


def _atomic_write(path: Path, data: bytes) -> None:
    from skcream.persistence import write_bytes_atomic

    write_bytes_atomic(path, data)  # unique hidden sibling (valid for long names), fsync, rename


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
