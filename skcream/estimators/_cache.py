"""Caches that let a grid search over inference-only parameters skip retraining.

Two levels, both switched on by the estimator's ``memory=`` parameter only:

- :class:`FitCache` (on disk): the fitted state (network weights, context
  embeddings, classes, history) of a training run, stored with
  :mod:`skcream.persistence` (JSON + safetensors, no pickle) under a key made of
  the training parameters (a weight file by the digest of its bytes) and a
  fingerprint of the training data's content (image bytes or pixels, labels,
  class names; never file names or paths, so files overwritten in place are
  trained on again). ``clone``s
  that differ only in inference parameters (``sigma``, ``n_iter``, ...) find
  the network already trained.
- :class:`ForwardCache` (in memory, bounded): the network's outputs (logits and
  feature maps) on an evaluation set, keyed by a digest of the weights and the
  content fingerprint of the images. Scoring nine re-activation settings on the same
  fold then runs the network once and the EM nine times.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import uuid
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from skcream._digest import file_digest
from skcream.persistence import read_saved, write_saved

__all__ = [
    "FitCache", "ForwardCache", "FORWARD_CACHE", "cache_key", "cache_location", "digest_tensors",
    "remove_tree", "weights_key",
]


def cache_location(memory: Any) -> Path | None:
    """The directory behind a ``memory=`` value, or None when caching is off.

    Parameters
    ----------
    memory : None, str, PathLike or joblib.Memory
        A ``joblib.Memory(location=None)`` means no caching, as in scikit-learn.
    """
    if memory is None:
        return None
    if isinstance(memory, str | os.PathLike):
        return Path(memory)
    location = getattr(memory, "location", None)
    return None if location is None else Path(location)


def weights_key(pretrained: Any) -> Any:
    """``pretrained`` as it enters a cache key: True / False as they are, a weight file as
    the digest of its bytes (never its path: a file overwritten in place is another key,
    the same bytes elsewhere the same key)."""
    if isinstance(pretrained, str | os.PathLike) and os.path.isfile(pretrained):
        return {"weights_blake2b": file_digest(pretrained)}
    return pretrained


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def cache_key(params: Mapping[str, Any], data_fingerprint: str) -> str:
    """A hex digest identifying one training run.

    Parameters
    ----------
    params : mapping
        The training parameters, JSON-representable (a weight file given by
        :func:`weights_key`, i.e. by the digest of its bytes).
    data_fingerprint : str
        Fingerprint of the training images and labels
        (:meth:`skcream.data.ImageSource.fingerprint`: their content).
    """
    payload = json.dumps(
        {"params": {k: _jsonable(v) for k, v in sorted(params.items())}, "data": data_fingerprint},
        sort_keys=True,
        default=repr,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def digest_tensors(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of named tensors (names, dtypes, shapes and bytes), in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


class FitCache:
    """Fitted states on disk under ``<location>/skcream-fits/<key>/``.

    Parameters
    ----------
    location : Path
        The ``memory=`` directory.
    """

    def __init__(self, location: Path) -> None:
        self.root = Path(location) / "skcream-fits"

    def get(
        self, key: str, check: Callable[[dict, dict], None] | None = None
    ) -> tuple[dict[str, Any], dict[str, torch.Tensor]] | None:
        """The cached ``(meta, tensors)`` for ``key``, or None.

        An entry that cannot be read, does not match its manifest or fails ``check(meta,
        shapes)`` (see :func:`skcream.persistence.read_saved`) is reported once in a
        ``UserWarning``, removed, and treated as missing, so the caller recomputes it.
        """
        path = self.root / key
        if not path.is_dir():
            return None
        try:
            return read_saved(path, check=check)
        except (OSError, ValueError) as exc:
            warnings.warn(
                f"memory: the cached network {os.fspath(path)} is unreadable "
                f"({' '.join(str(exc).split())}); removed it, training again",
                UserWarning,
                stacklevel=3,
            )
            remove_tree(path)
            return None

    def put(self, key: str, meta: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> None:
        """Store an entry as one atomic unit (see :func:`skcream.persistence.write_saved`)."""
        try:
            write_saved(self.root / key, meta, tensors)
        except FileExistsError:
            pass  # another process stored this key first: theirs is as good as ours


def remove_tree(path: Path) -> None:
    """Remove a folder: renamed aside first (one step), so no reader sees it half deleted."""
    aside = path.with_name(f".{path.name}.gone-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(path, aside)
    except OSError:
        return  # already gone (another process healed it)
    shutil.rmtree(aside, ignore_errors=True)


class ForwardCache:
    """A small LRU of network outputs, bounded by total bytes.

    Parameters
    ----------
    max_bytes : int
        Entries are evicted (least recently used first) beyond this budget; an entry larger
        than the budget is not stored.
    """

    def __init__(self, max_bytes: int = 1 << 30) -> None:
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict[tuple, tuple[dict[str, torch.Tensor], int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple) -> dict[str, torch.Tensor] | None:
        """The stored outputs (the same tensors; callers must not modify them), or None."""
        with self._lock:
            item = self._entries.get(key)
            if item is None:
                return None
            self._entries.move_to_end(key)
            return item[0]

    def put(self, key: tuple, outputs: dict[str, torch.Tensor]) -> None:
        """Store ``outputs`` (a dict of CPU tensors) under ``key``."""
        size = sum(t.numel() * t.element_size() for t in outputs.values())
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._entries:
                self._bytes -= self._entries.pop(key)[1]
            self._entries[key] = (outputs, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, old) = self._entries.popitem(last=False)
                self._bytes -= old

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0


#: process-wide forward cache shared by every estimator with ``memory`` set
FORWARD_CACHE = ForwardCache()
