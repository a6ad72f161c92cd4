"""Creating the folders skcream writes to, with errors that say what is in the way.

``Path.mkdir(parents=True, exist_ok=True)`` reports ``[Errno 17] File exists: 'afile'``
when a component of the path is a file (``save("afile/sub")``) and the same for a target
that exists but is not a folder (``--out /dev/full``), naming neither the argument nor
what is wrong. :func:`make_dirs` is the one place every output folder is created.

This module imports nothing of skcream (every layer may use it).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["describe", "make_dirs", "non_folder_part"]


def non_folder_part(path: str | os.PathLike) -> Path | None:
    """The first existing component of ``path`` (itself included) that is not a folder, or
    None."""
    path = Path(path)
    for part in [*reversed(path.parents), path]:
        if part.exists() and not part.is_dir():
            return part
    return None


def describe(path: Path) -> str:
    """``"a file"`` or ``"not a folder (a device, socket or pipe)"``."""
    return "a file" if path.is_file() else "not a folder (a device, socket or pipe)"


def make_dirs(path: str | os.PathLike, what: str) -> Path:
    """Create the folder ``path`` and its parents (nothing happens when it exists).

    Parameters
    ----------
    path : str or PathLike
    what : str
        How to name the folder in an error (``"--out"``, ``"path"``, ``"checkpoint_dir"``).

    Returns
    -------
    Path

    Raises
    ------
    NotADirectoryError
        ``path`` or one of its parents exists and is not a folder (named, with its kind).
    OSError
        Any other failure (no permission, no space), with ``what`` and the path in front.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        return path
    except (FileExistsError, NotADirectoryError):
        blocker = non_folder_part(path)
        if blocker is None:  # raced: it is a folder now
            if path.is_dir():
                return path
            raise
    except OSError as exc:
        raise type(exc)(exc.errno, f"{what} {os.fspath(path)}: cannot create the folder "
                        f"({exc.strerror})") from None
    where = "it is" if blocker == path else f"{os.fspath(blocker)!r}, part of the path, is"
    raise NotADirectoryError(
        f"{what} {os.fspath(path)}: cannot create the folder: {where} {describe(blocker)}; "
        "give a folder path"
    )
