"""The one resolver of data files: a metadata entry (or a scanned name) -> a file path.

Every loader turns the paths it reads from metadata files, or finds by scanning a folder,
into file paths through :class:`RootResolver`, and every reader asks :func:`file_problem`
before it opens a file. Three rules live here and nowhere else:

- **Containment on the real path.** A path must stay inside its root after every symbolic
  link is resolved: ``../x``, an absolute path, and a link inside the root that points
  elsewhere (a file or a folder) are refused alike, unless the caller opts in with
  ``allow_outside_root=True`` (only for data one trusts). A link that stays inside the
  root is followed as usual.
- **One spelling per file.** :meth:`RootResolver.resolve` returns the real path of the file
  as its identity (``key``): ``a/0.png``, ``./a/0.png``, ``a//0.png``, ``b/../a/0.png`` and
  a link to it are one file, so a loader can refuse the same file listed twice
  (:func:`skcream.data._build.build_dataset` does).
- **Names that can be stored.** ``datasets`` keeps file paths as UTF-8 text; a name whose
  bytes are not UTF-8 (Python spells them with surrogate escapes) is refused with the name
  shown readably (:func:`display_path`) instead of a ``UnicodeEncodeError`` later.

:func:`file_problem` tells a missing file from a folder, a FIFO, a socket or a device
where an image should be (opening a FIFO would block forever).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

__all__ = ["Resolved", "RootResolver", "display_path", "file_problem"]


def display_path(path: str | os.PathLike | bytes) -> str:
    """``path`` as printable text: bytes that are not UTF-8 shown as ``\\xNN`` escapes.

    Parameters
    ----------
    path : str, bytes or path-like
        Possibly holding surrogate escapes (how Python spells undecodable file-name bytes).

    Returns
    -------
    str
        Encodable as UTF-8 (safe to print, to put in a message or in JSON text).
    """
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _not_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def file_problem(path: str | os.PathLike) -> str | None:
    """What keeps ``path`` from being read as an image or mask file, or None.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    str or None
        A phrase completing "<the file> ...": ``"is missing (no such file)"``, ``"is a
        broken symbolic link (to ...)"``, ``"is a folder, not a file"``, ``"is a FIFO
        (named pipe), not a regular file"``, ``"is a socket, not a regular file"``, ``"is a
        device, not a regular file"``; None for a regular file (through links).
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return f"is a broken symbolic link (to {display_path(os.readlink(path))!r})"
        return "is missing (no such file)"
    except NotADirectoryError:
        return "is missing (a parent of it is a file, not a folder)"
    except OSError as err:  # permission, name too long, loops of links
        return f"cannot be read ({err.strerror or err})"
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a folder, not a file"
    if stat.S_ISFIFO(mode):
        return "is a FIFO (named pipe), not a regular file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a regular file"
    return "is not a regular file"


@dataclass(frozen=True)
class Resolved:
    """A resolved metadata path.

    Attributes
    ----------
    path : str
        ``os.path.join(root, rel)``: the path to open (as the user's spelling, for messages).
    key : str
        The file's real path (links resolved, ``.``/``..``/``//`` gone): equal for every
        spelling of one file.
    spelling : str
        ``rel`` normalised (``a/./b//c`` -> ``a/b/c``, ``/`` separators).
    """

    path: str
    key: str
    spelling: str


class RootResolver:
    """Resolve paths relative to one root, refusing those that leave it.

    One resolver serves one pass of a loader over its metadata (it caches the real path of
    each folder it meets, so that a million images in a thousand folders cost a thousand
    ``realpath`` calls); make a new one for every load, so that links changed in between
    are seen.

    Parameters
    ----------
    root : str or path-like
        The folder the paths are relative to.
    what : str
        The loader argument that is the root (``"data_root"``, ``"root"``, ...), named in
        errors.
    allow_outside : bool
        The loader's ``allow_outside_root``: True accepts paths (and links) leaving ``root``.
    """

    def __init__(self, root: str | os.PathLike, what: str, allow_outside: bool) -> None:
        self.root = os.fspath(root)
        self.what = what
        self.allow_outside = bool(allow_outside)
        if _not_utf8(self.root):
            raise ValueError(
                f"{what} '{display_path(self.root)}': the folder name is not valid UTF-8; "
                "rename it (datasets stores file paths as UTF-8 text)"
            )
        self.real_root = os.path.realpath(self.root)
        # folder as written -> (its real path, the names of the links it holds): one realpath
        # and one listing per folder instead of a system call per file
        self._dirs: dict[str, tuple[str, frozenset[str]]] = {}

    def _folder(self, folder: str) -> tuple[str, frozenset[str]]:
        known = self._dirs.get(folder)
        if known is None:
            try:
                with os.scandir(folder) as entries:
                    links = frozenset(e.name for e in entries if e.is_symlink())
            except OSError:  # missing or unreadable: the file is reported missing later
                links = frozenset()
            known = self._dirs[folder] = (os.path.realpath(folder), links)
        return known

    def real_path(self, path: str) -> str:
        """The real path of ``path`` (every link resolved; the file need not exist).

        The folder part is resolved as written (not normalised first: ``link/..`` is the
        parent of the link's target, as the operating system opens it), once per folder.
        """
        folder, name = os.path.split(path)
        if name in ("", os.curdir, os.pardir):
            return os.path.realpath(path)
        real, links = self._folder(folder or os.curdir)
        joined = os.path.join(real, name)
        return os.path.realpath(joined) if name in links else joined

    def inside(self, real: str) -> bool:
        """True when the real path ``real`` is the root or lies under it."""
        return real == self.real_root or real.startswith(self.real_root.rstrip(os.sep) + os.sep)

    def resolve(self, rel: str, *, where: str) -> Resolved:
        """Resolve ``rel`` (as written in the metadata, or as found by a scan).

        Parameters
        ----------
        rel : str
            The path relative to the root.
        where : str
            ``"file:line"`` of the metadata line (or the scanned folder), named in errors.

        Returns
        -------
        Resolved

        Raises
        ------
        ValueError
            ``rel`` is not valid UTF-8; or (unless ``allow_outside``) it is absolute, climbs
            out of the root with ``..``, or resolves through a symbolic link to a file
            outside the root. The message names ``where``, the path and the flag.
        """
        if _not_utf8(rel):
            raise ValueError(
                f"{where}: file name '{display_path(rel)}' is not valid UTF-8; rename it "
                "(datasets stores file paths as UTF-8 text)"
            )
        path = os.path.join(self.root, rel)
        spelling = os.path.normpath(rel).replace(os.sep, "/")
        key = self.real_path(path)
        if self.allow_outside:
            return Resolved(path, key, spelling)
        hint = ("data paths must stay inside their root. Pass allow_outside_root=True "
                "(CLI: --allow-outside-root) if you trust this data")
        if (os.path.isabs(rel) or os.path.splitdrive(rel)[0] or spelling == os.pardir
                or spelling.startswith(os.pardir + "/")):
            raise ValueError(
                f"{where}: path {rel!r} lies outside {self.what} {self.root!r} (absolute or "
                f"climbing out with '..'); {hint}"
            )
        if not self.inside(key):
            raise ValueError(
                f"{where}: path {rel!r} lies outside {self.what} {self.root!r}: a symbolic "
                f"link makes it {key!r}; {hint}"
            )
        return Resolved(path, key, spelling)
