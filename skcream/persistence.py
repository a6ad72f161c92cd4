"""Safe persistence of fitted estimators: one JSON file plus one safetensors file.

A saved estimator is a directory holding

- ``skcream.json``: format name and version, the estimator's class, its
  constructor parameters (JSON-representable ones; see :func:`params_to_json`)
  and its small fitted attributes (classes, history, chosen threshold, ...);
- ``weights.safetensors``: every tensor of the fitted state (network weights,
  context embeddings), keyed by dotted names.

Nothing is pickled: loading reads JSON and raw tensors only, so a saved model
from an untrusted source cannot run code. The functions here know nothing about
the estimator classes; they move ``(meta, tensors)`` pairs to and from disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load, load_file, save

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "META_FILE",
    "WEIGHTS_FILE",
    "array_from_json",
    "array_to_json",
    "read_saved",
    "tensors_from_bytes",
    "tensors_to_bytes",
    "write_saved",
]

FORMAT = "skcream-estimator"
FORMAT_VERSION = 1
META_FILE = "skcream.json"
WEIGHTS_FILE = "weights.safetensors"


def array_to_json(values: np.ndarray) -> dict[str, Any]:
    """A 1-D numpy array of ints, floats, bools or strings as a JSON-ready dict.

    Parameters
    ----------
    values : ndarray (n,)

    Returns
    -------
    dict
        ``{"dtype": <numpy dtype string>, "values": [...]}``.

    Raises
    ------
    TypeError
        When the dtype is not one of those (e.g. object arrays of mixed types).
    """
    values = np.asarray(values)
    if values.dtype.kind not in "biufU":
        raise TypeError(
            f"cannot store an array of dtype {values.dtype} as JSON; class labels must be "
            "ints, floats, bools or strings"
        )
    return {"dtype": values.dtype.str, "values": values.tolist()}


def array_from_json(obj: Mapping[str, Any]) -> np.ndarray:
    """Inverse of :func:`array_to_json` (same dtype, same values)."""
    return np.asarray(obj["values"], dtype=np.dtype(obj["dtype"]))


def tensors_to_bytes(tensors: Mapping[str, torch.Tensor]) -> bytes:
    """Serialise named tensors to safetensors bytes (contiguous CPU copies)."""
    return save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})


def tensors_from_bytes(data: bytes) -> dict[str, torch.Tensor]:
    """Inverse of :func:`tensors_to_bytes`."""
    return load(data)


def _digest(meta_text: str, weights: bytes) -> str:
    h = hashlib.sha256()
    h.update(meta_text.encode())
    h.update(weights)
    return h.hexdigest()


def _existing_digest(path: Path) -> str | None:
    meta, weights = path / META_FILE, path / WEIGHTS_FILE
    if not (meta.is_file() and weights.is_file()):
        return None
    return _digest(meta.read_text(encoding="utf-8"), weights.read_bytes())


def _atomic_write(target: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_saved(
    path: str | os.PathLike,
    meta: Mapping[str, Any],
    tensors: Mapping[str, torch.Tensor],
    *,
    overwrite: bool = False,
) -> Path:
    """Write ``meta`` (JSON) and ``tensors`` (safetensors) into the directory ``path``.

    Parameters
    ----------
    path : str or PathLike
        Target directory; created if missing.
    meta : mapping
        JSON-serialisable metadata; ``format`` and ``format_version`` are added.
    tensors : mapping of str to Tensor
        Named tensors (moved to the CPU).
    overwrite : bool, default=False
        Replace an existing, *different* saved estimator in ``path``.

    Returns
    -------
    Path
        The directory.

    Raises
    ------
    FileExistsError
        ``path`` is a file; or it is a non-empty directory that is not a saved skcream
        estimator (never touched, even with ``overwrite=True``); or it holds a different
        saved estimator and ``overwrite`` is False. Saving the identical estimator again is
        allowed (idempotent).
    """
    path = Path(path)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta}
    meta_text = json.dumps(meta, indent=2, sort_keys=True)
    weights = tensors_to_bytes(tensors)
    if path.exists():
        if not path.is_dir():
            raise FileExistsError(f"path {os.fspath(path)!r} exists and is not a directory")
        contents = {p.name for p in path.iterdir()}
        if contents:
            existing = _existing_digest(path)
            if existing is None or not contents <= {META_FILE, WEIGHTS_FILE}:
                raise FileExistsError(
                    f"path {os.fspath(path)!r} is a non-empty directory that is not a saved "
                    f"skcream estimator (found {sorted(contents)[:5]}); choose an empty or "
                    "new directory"
                )
            if existing == _digest(meta_text, weights):
                return path
            if not overwrite:
                raise FileExistsError(
                    f"path {os.fspath(path)!r} already holds a different saved estimator; "
                    "pass overwrite=True to replace it"
                )
    path.mkdir(parents=True, exist_ok=True)
    _atomic_write(path / WEIGHTS_FILE, weights)
    _atomic_write(path / META_FILE, meta_text.encode())
    return path


def read_saved(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read a directory written by :func:`write_saved`.

    Returns
    -------
    meta : dict
    tensors : dict of str to Tensor (CPU)

    Raises
    ------
    FileNotFoundError
        When a file is missing (the message names the expected layout).
    ValueError
        When the metadata is not of this format or of a newer format version.
    """
    path = Path(path)
    meta_path, weights_path = path / META_FILE, path / WEIGHTS_FILE
    for p in (meta_path, weights_path):
        if not p.is_file():
            raise FileNotFoundError(
                f"{os.fspath(p)!r} not found: a saved skcream estimator is a directory with "
                f"{META_FILE} and {WEIGHTS_FILE}"
            )
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{os.fspath(meta_path)!r} is not a saved skcream estimator")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{os.fspath(meta_path)!r} has format_version {version!r}; this skcream reads "
            f"versions <= {FORMAT_VERSION} (upgrade skcream)"
        )
    return meta, load_file(weights_path)
