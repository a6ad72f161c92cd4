"""OS locks that let one skcream run at a time claim a folder (output or checkpoints).

A :class:`FolderLock` holds an exclusive ``flock`` (``msvcrt.locking`` on Windows) on a
lock file inside the folder for as long as the run lasts; the operating system releases
it when the process dies, so a crashed run never leaves a stale lock behind. A second run
on the same folder fails at once with :class:`FolderInUseError` naming the folder and the
holder's pid (or waits, with ``timeout``). The lock file is removed on release; a
run that acquired a lock on a file unlinked meanwhile retries on the new file.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from pathlib import Path

from skcream._fs import make_dirs

__all__ = ["FolderInUseError", "FolderLock", "lock_timeout_from_env"]

#: environment variable: seconds a run waits for a folder held by another run ("inf": forever)
LOCK_TIMEOUT_ENV = "SKCREAM_LOCK_TIMEOUT"


class FolderInUseError(OSError):
    """Another running skcream process holds the folder."""


def lock_timeout_from_env(default: float | None = 0.0) -> float | None:
    """``SKCREAM_LOCK_TIMEOUT`` as seconds (None for ``inf``), else ``default``."""
    text = os.environ.get(LOCK_TIMEOUT_ENV, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{LOCK_TIMEOUT_ENV}: expected seconds or 'inf', got {text!r}") from None
    if value != value or value < 0:
        raise ValueError(f"{LOCK_TIMEOUT_ENV}: expected seconds >= 0 or 'inf', got {text!r}")
    return None if value == float("inf") else value


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class FolderLock:
    """An exclusive lock on ``folder`` (created if missing) held by this process.

    Parameters
    ----------
    folder : path
    what : str
        How to name the folder in the error (e.g. ``"checkpoint_dir"``, ``"--out"``).
    name : str, default=".skcream.lock"
        The lock file inside ``folder``.
    timeout : float or None, default=0
        Seconds to wait for another holder; 0 fails at once, None waits indefinitely.
    hint : str
        Appended to the error (how to wait instead).

    Use as a context manager, or :meth:`acquire` / :meth:`release`.
    """

    def __init__(self, folder, *, what: str = "folder", name: str = ".skcream.lock",
                 timeout: float | None = 0.0, hint: str = "") -> None:
        self.folder = Path(folder)
        self.path = self.folder / name
        self.what, self.timeout, self.hint = what, timeout, hint
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        """Take the lock; raise :class:`FolderInUseError` when another process holds it."""
        make_dirs(self.folder, self.what)
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if _try_lock(fd):
                try:
                    same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
                except FileNotFoundError:
                    same = False
                if same or sys.platform == "win32":
                    os.ftruncate(fd, 0)
                    os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
                    self._fd = fd
                    return self
                os.close(fd)  # the previous holder removed that file: lock the new one
                continue
            os.close(fd)
            if deadline is not None and time.monotonic() >= deadline:
                raise FolderInUseError(
                    f"{self.what} {os.fspath(self.folder)} is in use by another skcream run "
                    f"({self._holder()}); wait for it to finish or choose another folder"
                    + (f" ({self.hint})" if self.hint else "")
                )
            time.sleep(0.05)

    def _holder(self) -> str:
        try:
            pid, _, host = self.path.read_text().strip().partition(" ")
        except OSError:
            return "pid unknown"
        return f"pid {pid} on {host}" if pid else "pid unknown"

    def release(self) -> None:
        """Remove the lock file and release the lock (no-op when not held)."""
        if self._fd is None:
            return
        if sys.platform != "win32":
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        os.close(self._fd)
        if sys.platform == "win32":
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
