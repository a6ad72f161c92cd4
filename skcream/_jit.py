"""numba's ``njit`` with an on-disk cache wherever one can be written.

The metric kernels (:mod:`skcream._levelsets`, :mod:`skcream._pxap`) are compiled once and
then loaded from numba's cache. numba looks for a writable cache folder beside the source
(``__pycache__``) and then in the user's cache folder (under ``HOME``); on a read-only
install run by a user who cannot write ``HOME`` either (a container, a system package, a
locked-down service account) it finds none, and ``@njit(cache=True)`` raises
``RuntimeError: cannot cache function`` at import time.

:func:`njit` asks numba for its usual places first; when it has none, it tries a private
folder of this user in the temporary directory (created with mode 0700, used only if it is
a real folder owned by this user that nobody else may write: numba's cache files are
pickles); when that fails too, the kernels are compiled without a cache (the first call of
each compiles it, once per process: about 25 s for the box metrics' kernels on our 2-core
machine). Importing and running skcream works either way, with identical results.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from typing import Any

import numba
from numba.core import config as numba_config

__all__ = ["njit", "private_cache_dir"]

_UNSET = object()
_FALLBACK: Any = _UNSET


def private_cache_dir() -> str | None:
    """This user's numba cache folder under the temporary directory, or None when there is
    no safe one (cannot be created, not a folder, someone else's, writable by others)."""
    uid = os.getuid() if hasattr(os, "getuid") else None
    path = os.path.join(tempfile.gettempdir(), f"skcream-numba-{'' if uid is None else uid}")
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode):
        return None
    if uid is not None and (st.st_uid != uid or st.st_mode & 0o022):
        return None
    return path


def _fallback_dir() -> str | None:
    global _FALLBACK
    if _FALLBACK is _UNSET:
        _FALLBACK = private_cache_dir()
    return _FALLBACK


def _cached(fn: Callable, options: dict[str, Any]) -> Any:
    """``numba.njit(cache=True)(fn)``, or None when numba finds no writable cache folder."""
    try:
        return numba.njit(cache=True, **options)(fn)
    except RuntimeError as exc:
        if "cannot cache" not in str(exc):
            raise
        return None


def njit(**options: Any) -> Callable[[Callable], Any]:
    """``numba.njit(**options)`` with ``cache=True`` where a cache can be written.

    Parameters
    ----------
    **options
        numba options other than ``cache`` (``nogil``, ``inline``, ...).

    Returns
    -------
    callable
        A decorator returning numba's dispatcher.
    """

    def decorate(fn: Callable) -> Any:
        compiled = _cached(fn, options)
        if compiled is not None:
            return compiled
        fallback = _fallback_dir()
        if fallback is not None:
            # numba reads CACHE_DIR when the dispatcher picks its cache folder (here, at
            # decoration), so it is set for this call only and never leaks to other code
            saved = numba_config.CACHE_DIR
            numba_config.CACHE_DIR = fallback
            try:
                compiled = _cached(fn, options)
            finally:
                numba_config.CACHE_DIR = saved
            if compiled is not None:
                return compiled
        return numba.njit(cache=False, **options)(fn)

    return decorate
