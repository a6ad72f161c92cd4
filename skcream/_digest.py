"""Content digests of files, for cache keys that depend on what a file holds, not where it is.

A cache keyed by a file's path (or its path, size and modification time) returns stale
results when the file is overwritten in place with the same name, and misses when the same
bytes are read from another folder. :func:`file_digest` hashes the bytes; the
``memory=`` caches key image files and weight files by it.

Reading every byte on every call would cost more than it needs to: the digest of a file is
memoised in this process under the file's identity and change stamps (device, inode, size,
modification and status-change times, as ``git`` and ``ccache`` do). Any write to the file
changes its ``ctime``, which no user tool can set back; a file changed within
:data:`RACY_SECONDS` of being hashed is not memoised (a second write within the file
system's timestamp resolution could leave every stamp as it was), so it is read again.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict

__all__ = ["RACY_SECONDS", "file_digest"]

#: a file whose mtime or ctime is this recent is hashed again on every call
RACY_SECONDS = 2.0
_MAX_MEMO = 1 << 18  # entries (about 60 MB at most)
_MEMO: OrderedDict[str, tuple[tuple[int, ...], str]] = OrderedDict()
_LOCK = threading.Lock()


def _stamp(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def file_digest(path: str | os.PathLike) -> str:
    """BLAKE2b-128 hex digest of a file's bytes (memoised while the file is unchanged).

    Parameters
    ----------
    path : str or PathLike

    Returns
    -------
    str
        32 hex digits; equal for equal bytes, wherever the files are.

    Raises
    ------
    OSError
        The file cannot be read (the message names it).
    """
    name = os.path.abspath(os.fspath(path))
    st = os.stat(name)
    stamp = _stamp(st)
    with _LOCK:
        hit = _MEMO.get(name)
        if hit is not None and hit[0] == stamp:
            _MEMO.move_to_end(name)
            return hit[1]
    h = hashlib.blake2b(digest_size=16)
    with open(name, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    after = os.stat(name)
    settled = time.time_ns() - max(after.st_mtime_ns, after.st_ctime_ns) > RACY_SECONDS * 1e9
    if _stamp(after) == stamp and settled:
        with _LOCK:
            _MEMO[name] = (stamp, digest)
            while len(_MEMO) > _MAX_MEMO:
                _MEMO.popitem(last=False)
    return digest
