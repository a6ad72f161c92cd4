"""Safe persistence of fitted estimators: one JSON file plus one safetensors file.

A saved estimator is a directory holding

- ``skcream.json``: format name and version, the estimator's class, its
  constructor parameters (JSON-representable ones; see ``skcream.estimators._common.json_value``)
  and its small fitted attributes (classes, history, chosen threshold, ...);
- ``weights.safetensors``: every tensor of the fitted state (network weights,
  context embeddings), keyed by dotted names;
- ``manifest.json``: the size and SHA-256 of both files, written last.

Nothing is pickled: loading reads JSON and raw tensors only, so a saved model
from an untrusted source cannot run code. The functions here know nothing about
the estimator classes; they move ``(meta, tensors)`` pairs to and from disk.

All or nothing
--------------
A saved directory is one unit: it is written complete into a fresh, uniquely named
sibling folder (``.<name>.tmp-<pid>-<random>``), every file and the folder are fsynced,
and it is moved into place with one ``rename`` (replacing an existing unit with one
atomic exchange of the two folders on Linux; elsewhere with two renames, during which a
reader waits). A save that fails at any point leaves the previous unit untouched. A
reader opens the folder once and reads every file through that handle, checks the
manifest's hashes, and retries when it raced a writer, so it returns the old or the new
unit, never a mix (:func:`read_saved`). A unit whose files disagree with its manifest,
a truncated or foreign weights file, or a non-finite tensor is refused with a one-line
``ValueError`` naming the file.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import hashlib
import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load, save

from skcream._fs import describe, make_dirs, non_folder_part

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "META_FILE",
    "WEIGHTS_FILE",
    "array_from_json",
    "array_to_json",
    "check_finite",
    "fsync_dir",
    "new_staging_dir",
    "publish_dir",
    "read_saved",
    "safetensors_header",
    "tensors_from_bytes",
    "tensors_to_bytes",
    "write_bytes_atomic",
    "write_saved",
]

FORMAT = "skcream-estimator"
FORMAT_VERSION = 1
META_FILE = "skcream.json"
WEIGHTS_FILE = "weights.safetensors"
MANIFEST_FILE = "manifest.json"
_MANIFEST_FORMAT = "skcream-manifest"


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


def tensors_from_bytes(data: bytes, *, source: str = "pickled weights") -> dict[str, torch.Tensor]:
    """Inverse of :func:`tensors_to_bytes`; every tensor is checked to be finite.

    Raises
    ------
    ValueError
        Bytes that are not a complete safetensors blob, or a non-finite tensor (named,
        with ``source``).
    """
    safetensors_header(data, source)
    tensors = _load_tensors(data, source)
    check_finite(tensors, source)
    return tensors




# ------------------------------------------------------------------------ checks
_DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2,
                "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


def safetensors_header(data: bytes, source: str) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Names, dtypes and shapes of a safetensors blob, read from its header only.

    Checks that the header is well formed and that every tensor's bytes lie inside ``data``
    with the size its dtype and shape imply, so a truncated file, a pickle renamed
    ``.safetensors`` or a header announcing huge tensors is refused before anything is
    allocated.

    Parameters
    ----------
    data : bytes
        The whole file.
    source : str
        Named in error messages (a file path).

    Returns
    -------
    dict of str to (dtype, shape)
        e.g. ``{"model.head.weight": ("F32", (4, 64))}``.

    Raises
    ------
    ValueError
        One line naming ``source`` and what is wrong.
    """
    def bad(why: str) -> ValueError:
        return ValueError(f"{source}: not a complete safetensors file ({why})")

    if len(data) < 8:
        raise bad(f"{len(data)} bytes")
    n = int.from_bytes(data[:8], "little")
    if n < 2 or 8 + n > len(data):
        raise bad(f"header length {n} does not fit in {len(data)} bytes; truncated, or "
                  "another format such as a pickle")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad(f"unreadable header: {exc}") from None
    if not isinstance(header, dict):
        raise bad("header is not a JSON object")
    body = len(data) - 8 - n
    out: dict[str, tuple[str, tuple[int, ...]]] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
            shape = tuple(int(s) for s in shape)
        except (KeyError, TypeError, ValueError):
            raise bad(f"entry {name!r} is malformed") from None
        if dtype not in _DTYPE_BYTES or any(s < 0 for s in shape):
            raise bad(f"entry {name!r} has dtype {dtype!r} and shape {list(shape)}")
        size = _DTYPE_BYTES[dtype]
        for s in shape:
            size *= s
        if not (0 <= begin <= end <= body) or end - begin != size:
            raise bad(f"tensor {name!r} {list(shape)} needs bytes {begin}..{begin + size} of "
                      f"{body}; truncated")
        out[name] = (dtype, shape)
    return out


def _load_tensors(data: bytes, source: str) -> dict[str, torch.Tensor]:
    try:
        return load(data)
    except Exception as exc:  # SafetensorError and friends: one line naming the file
        raise ValueError(f"{source}: not a readable safetensors file ({exc})") from None


def check_finite(tensors: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise ValueError naming the first floating tensor holding NaN or infinity."""
    for name, t in tensors.items():
        if t.is_floating_point() and t.numel() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise ValueError(
                f"{source}: tensor {name!r} holds {bad} non-finite value(s) (NaN or inf); "
                "the saved model is corrupt or its training diverged"
            )


# ------------------------------------------------------------------ atomic writing
def _fsync_fd(fd: int) -> None:
    try:
        os.fsync(fd)
    except OSError:  # some file systems (and directories on Windows) refuse: best effort
        pass


def fsync_dir(path: str | os.PathLike) -> None:
    """fsync a directory so that renames inside it are durable (no-op where unsupported)."""
    if sys.platform == "win32":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        _fsync_fd(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes, fsync: bool = True) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        if fsync:
            fh.flush()
            _fsync_fd(fh.fileno())


#: bytes of a name kept in its hidden sibling's prefix: the longest temporary name,
#: ``.<kept>.<kind>-<pid>-<12 hex>``, then stays below the usual 255-byte name limit
_KEPT_NAME_BYTES = 200


def _prefix(path: Path) -> str:
    """``.<name>.``: the prefix of ``path``'s hidden siblings (staging, old unit, temporary
    file). A name near the file-name limit (255 bytes on most file systems) is shortened to
    its first bytes plus a digest of the whole, so that the sibling's name is valid too;
    equal names give equal prefixes (the orphan sweep finds them)."""
    name = path.name
    raw = os.fsencode(name)
    if len(raw) > _KEPT_NAME_BYTES:
        head = raw[:_KEPT_NAME_BYTES - 9].decode("utf-8", "ignore") or "x"
        name = f"{head}~{hashlib.sha256(raw).hexdigest()[:8]}"
    return f".{name}."


def _unique(path: Path, kind: str) -> Path:
    return path.with_name(f"{_prefix(path)}{kind}-{os.getpid()}-{uuid.uuid4().hex[:12]}")


def write_bytes_atomic(path: str | os.PathLike, data: bytes, *, fsync: bool = True) -> None:
    """Write one file all-or-nothing: a uniquely named temporary file, fsync, one rename.

    Concurrent writers never share a temporary name; a reader sees the old or the new
    content; a failure leaves the old file as it was. ``fsync=False`` skips the flushes to
    disk (for cache entries whose readers verify a content hash anyway).
    """
    path = Path(path)
    tmp = _unique(path, "tmp")
    try:
        _write_file(tmp, data, fsync)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    if fsync:
        fsync_dir(path.parent)


def new_staging_dir(path: str | os.PathLike) -> Path:
    """A fresh, uniquely named folder beside ``path`` in which to build a unit.

    Staging folders of ``path`` left by processes that died mid-save are removed first.
    """
    path = Path(path)
    make_dirs(path.parent, "folder")
    _remove_orphans(path)
    staging = _unique(path, "tmp")
    staging.mkdir()
    return staging


def _remove_orphans(path: Path) -> None:
    prefix = _prefix(path)
    for p in path.parent.iterdir():
        kind, _, rest = p.name[len(prefix):].partition("-")
        if not p.name.startswith(prefix) or kind not in ("tmp", "old") or not p.is_dir():
            continue
        pid = rest.partition("-")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)


def _alive(pid: int) -> bool:
    if sys.platform == "win32":
        return True  # no cheap check: leave it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: file system without exchange
        return False
    raise OSError(err, os.strerror(err), os.fspath(b))


def publish_dir(staging: str | os.PathLike, path: str | os.PathLike, *, replace: bool) -> None:
    """Move the complete folder ``staging`` to ``path`` in one step.

    Parameters
    ----------
    staging : path
        From :func:`new_staging_dir`, fully written. Consumed (removed) on success.
    path : path
        Target; must not exist (or be an empty folder) unless ``replace``.
    replace : bool
        Replace an existing unit at ``path`` (atomically on Linux: the two folders are
        exchanged, then the old one is removed).

    Raises
    ------
    FileExistsError
        ``path`` exists and ``replace`` is False.
    """
    staging, path = Path(staging), Path(path)
    fsync_dir(staging)
    try:
        os.rename(staging, path)  # atomic; also replaces an empty folder
    except OSError:
        if not path.exists():
            raise
        if not replace:
            raise FileExistsError(f"path {os.fspath(path)!r} already exists") from None
        if _exchange(staging, path):
            shutil.rmtree(staging, ignore_errors=True)  # now holds the old unit
        else:
            old = _unique(path, "old")
            os.rename(path, old)
            os.rename(staging, path)
            shutil.rmtree(old, ignore_errors=True)
    fsync_dir(path.parent)


# --------------------------------------------------------------------- saved units
def _manifest(files: Mapping[str, bytes]) -> bytes:
    entries = {name: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
               for name, data in files.items()}
    return json.dumps({"format": _MANIFEST_FORMAT, "files": entries}, indent=1,
                      sort_keys=True).encode()


def _is_unit(path: Path) -> bool:
    names = {p.name for p in path.iterdir()}
    return {META_FILE, WEIGHTS_FILE} <= names <= {META_FILE, WEIGHTS_FILE, MANIFEST_FILE}


def _same_content(path: Path, files: Mapping[str, bytes]) -> bool:
    try:
        return all((path / name).read_bytes() == data for name, data in files.items())
    except OSError:
        return False


def write_saved(
    path: str | os.PathLike,
    meta: Mapping[str, Any],
    tensors: Mapping[str, torch.Tensor],
    *,
    overwrite: bool = False,
) -> Path:
    """Write ``meta`` (JSON) and ``tensors`` (safetensors) as one unit, the directory ``path``.

    The unit (``skcream.json``, ``weights.safetensors``, ``manifest.json``) is built in a
    fresh sibling folder, fsynced and moved into place with one rename (see the module
    docstring); a failure at any point leaves what was at ``path`` untouched.

    Parameters
    ----------
    path : str or PathLike
        Target directory; its parent is created if missing.
    meta : mapping
        JSON-serialisable metadata; ``format`` and ``format_version`` are added.
    tensors : mapping of str to Tensor
        Named tensors (moved to the CPU; the saved unit records no device).
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
    if path.is_symlink():
        # saving through a link replaces what it points to; the link stays a link
        path = Path(os.path.realpath(path))
    blocker = non_folder_part(path.parent)
    if blocker is not None:
        raise NotADirectoryError(f"path {os.fspath(path)!r}: {os.fspath(blocker)!r}, part of "
                                 f"the path, is {describe(blocker)}; give a folder path")
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta}
    files = {
        META_FILE: json.dumps(meta, indent=2, sort_keys=True).encode(),
        WEIGHTS_FILE: tensors_to_bytes(tensors),
    }
    files[MANIFEST_FILE] = _manifest(files)
    replace = False
    if path.exists():
        if not path.is_dir():
            raise FileExistsError(f"path {os.fspath(path)!r} exists and is not a directory")
        contents = sorted(p.name for p in path.iterdir())
        if contents:
            if not _is_unit(path):
                raise FileExistsError(
                    f"path {os.fspath(path)!r} is a non-empty directory that is not a saved "
                    f"skcream estimator (found {contents[:5]}); choose an empty or "
                    "new directory"
                )
            if _same_content(path, {k: files[k] for k in (META_FILE, WEIGHTS_FILE)}):
                if (path / MANIFEST_FILE).is_file():
                    return path
            elif not overwrite:
                raise FileExistsError(
                    f"path {os.fspath(path)!r} already holds a different saved estimator; "
                    "pass overwrite=True to replace it"
                )
            replace = True
    staging = new_staging_dir(path)
    try:
        for name in (META_FILE, WEIGHTS_FILE, MANIFEST_FILE):  # the manifest last
            _write_file(staging / name, files[name])
        publish_dir(staging, path, replace=replace or overwrite)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return path


class _Raced(Exception):
    """The unit changed while it was read (a concurrent save): read it again."""


class _Mismatch(_Raced):
    """A file disagrees with the manifest: corrupt, unless a writer raced (retried twice)."""


@contextlib.contextmanager
def _opened_dir(path: Path) -> Iterator[Callable[[str], bytes]]:
    """``read(name) -> bytes`` for files of ``path``, all through one directory handle, so
    that a unit swapped in meanwhile is never mixed with the one first opened."""
    if sys.platform == "win32" or os.open not in os.supports_dir_fd:
        yield lambda name: (path / name).read_bytes()
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))

    def read(name: str) -> bytes:
        f = os.open(name, os.O_RDONLY, dir_fd=fd)
        with os.fdopen(f, "rb") as fh:
            return fh.read()

    try:
        yield read
    finally:
        os.close(fd)


def _read_unit(path: Path, retries: int) -> tuple[dict[str, bytes], bool]:
    """The files of the unit at ``path`` (checked against its manifest), and whether it had
    one. Retries when a concurrent writer replaced the unit while it was being read."""
    meta_path = path / META_FILE
    for attempt in range(retries + 1):
        try:
            return _read_unit_once(path)
        except _Raced as exc:
            if attempt == retries or (isinstance(exc, _Mismatch) and attempt >= 2):
                raise ValueError(str(exc)) from None
        except FileNotFoundError:
            # a unit being replaced without an atomic exchange is briefly absent
            siblings = any(p.name.startswith(_prefix(path)) for p in path.parent.iterdir())
            if attempt == retries or not siblings:
                raise FileNotFoundError(
                    f"{os.fspath(meta_path)!r} not found: a saved skcream estimator is a "
                    f"directory with {META_FILE}, {WEIGHTS_FILE} and {MANIFEST_FILE}"
                ) from None
        time.sleep(0.002 * (attempt + 1))
    raise AssertionError("unreachable")


def _read_unit_once(path: Path) -> tuple[dict[str, bytes], bool]:
    with _opened_dir(path) as read:
        try:
            manifest_bytes = read(MANIFEST_FILE)
        except FileNotFoundError:
            manifest_bytes = None
        files = {}
        for name in (META_FILE, WEIGHTS_FILE):
            try:
                files[name] = read(name)
            except FileNotFoundError:
                if manifest_bytes is not None:
                    raise _Raced(f"{os.fspath(path / name)}: missing") from None
                raise
    if manifest_bytes is None:  # written by skcream 0.1 (no manifest): checked below only
        return files, False
    source = os.fspath(path / MANIFEST_FILE)
    try:
        manifest = json.loads(manifest_bytes.decode("utf-8"))
        entries = manifest["files"]
        if manifest.get("format") != _MANIFEST_FORMAT or not isinstance(entries, dict):
            raise ValueError("not a manifest")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise ValueError(f"{source}: not a readable skcream manifest") from None
    for name, data in files.items():
        entry = entries.get(name)
        if not isinstance(entry, dict):
            raise ValueError(f"{source}: does not list {name}")
        if entry.get("size") != len(data) or entry.get("sha256") != hashlib.sha256(data).hexdigest():
            raise _Mismatch(
                f"{os.fspath(path / name)}: content does not match {MANIFEST_FILE} (size "
                f"{len(data)}, manifest {entry.get('size')}): the saved unit is incomplete "
                "or corrupt; save it again"
            )
    return files, True


def read_saved(
    path: str | os.PathLike,
    *,
    check: Callable[[dict[str, Any], dict[str, tuple[str, tuple[int, ...]]]], None] | None = None,
    retries: int = 20,
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read a directory written by :func:`write_saved`, all or nothing.

    Parameters
    ----------
    path : str or PathLike
    check : callable, optional
        ``check(meta, shapes)`` with ``shapes`` the safetensors header ``{name: (dtype,
        shape)}``; runs before any tensor is materialised (validate the metadata against
        the weights' shapes there; raise ValueError naming the field).
    retries : int, default=20
        Re-reads when a concurrent save replaced the unit meanwhile.

    Returns
    -------
    meta : dict
    tensors : dict of str to Tensor (CPU, all finite)

    Raises
    ------
    FileNotFoundError
        When a file is missing (the message names the expected layout).
    ValueError
        Files that disagree with the manifest, metadata not of this format or of a newer
        format version, a truncated or foreign weights file, a non-finite tensor; the
        message names the file.
    """
    path = Path(path)
    meta_path, weights_path = path / META_FILE, path / WEIGHTS_FILE
    files, _ = _read_unit(path, retries)
    try:
        meta = json.loads(files[META_FILE].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{os.fspath(meta_path)}: not readable JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{os.fspath(meta_path)!r} is not a saved skcream estimator")
    version = meta.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise ValueError(
            f"{os.fspath(meta_path)!r} has format_version {version!r}; this skcream reads "
            f"versions <= {FORMAT_VERSION} (upgrade skcream)"
        )
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(
            f"{os.fspath(meta_path)}: format_version = {json.dumps(version)}: expected an "
            f"integer in [1, {FORMAT_VERSION}]; the file is corrupt or not written by skcream"
        )
    shapes = safetensors_header(files[WEIGHTS_FILE], os.fspath(weights_path))
    if check is not None:
        check(meta, shapes)
    tensors = _load_tensors(files[WEIGHTS_FILE], os.fspath(weights_path))
    check_finite(tensors, os.fspath(weights_path))
    return meta, tensors
