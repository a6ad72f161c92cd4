"""skcream on a read-only install, run by a user who cannot write HOME (issue 22, item 11).

numba caches compiled kernels beside the source (``__pycache__``) or under ``HOME``; with
neither writable, ``@njit(cache=True)`` raised ``RuntimeError: cannot cache function`` at
``import skcream``. The tests run a copy of the package in a fresh interpreter where those
places cannot be written: the ``__pycache__`` folders and ``HOME`` are *files* (so
``mkdir`` fails for any user, root included), and, when the tests do not run as root, the
copy and HOME are also made read-only by permissions.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import skcream

_SCRIPT = """
import numpy as np
from skcream import CREAMLocalizer  # the import that used to fail
from skcream.metrics import pxap
rng = np.random.default_rng(0)
maps = [rng.random((24, 24)) for _ in range(3)]
masks = [(rng.random((24, 24)) > 0.5).astype(np.uint8) for _ in range(3)]
print(repr(pxap(maps, masks)))
"""


def _expected() -> float:
    from skcream.metrics import pxap

    rng = np.random.default_rng(0)
    maps = [rng.random((24, 24)) for _ in range(3)]
    masks = [(rng.random((24, 24)) > 0.5).astype(np.uint8) for _ in range(3)]
    return pxap(maps, masks)


def _read_only_copy(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the package that numba cannot cache beside, and a HOME it cannot write."""
    site = tmp_path / "site"
    shutil.copytree(Path(skcream.__file__).parent, site / "skcream",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for folder in [site / "skcream", *(p for p in (site / "skcream").rglob("*") if p.is_dir())]:
        (folder / "__pycache__").write_text("not a folder")
    home = tmp_path / "home"
    home.write_text("not a folder either")
    if os.geteuid() != 0:  # permissions bind only other users than root
        for p in [*site.rglob("*"), site]:
            p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return site, home


def _run(site: Path, home: Path, tmpdir: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(PYTHONPATH=str(site), HOME=str(home), XDG_CACHE_HOME=str(home / "cache"),
               TMPDIR=str(tmpdir), PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", _SCRIPT], env=env, cwd=tmpdir,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture
def readonly(tmp_path):
    site, home = _read_only_copy(tmp_path)
    yield site, home
    for p in [site, *site.rglob("*")]:  # let pytest remove it
        p.chmod(p.stat().st_mode | stat.S_IWUSR)


@pytest.mark.slow  # two fresh interpreters importing torch and compiling kernels
def test_import_and_run_fall_back_to_a_private_temporary_cache(readonly, tmp_path):
    site, home = readonly
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    result = _run(site, home, tmpdir)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.strip()) == _expected()
    cache = tmpdir / f"skcream-numba-{os.getuid()}"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert any(cache.rglob("*.nbi")), "the kernels were cached in the private folder"
    assert not (site / "skcream" / "__pycache__").is_dir()
    again = _run(site, home, tmpdir)  # loads from that cache
    assert again.returncode == 0 and again.stdout == result.stdout


@pytest.mark.slow  # a fresh interpreter importing torch and compiling without a cache
def test_import_and_run_without_any_cache(readonly, tmp_path):
    site, home = readonly
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    # the private folder's name is taken by a file: no safe cache anywhere
    (tmpdir / f"skcream-numba-{os.getuid()}").write_text("someone else's")
    result = _run(site, home, tmpdir)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.strip()) == _expected()


def test_a_private_cache_folder_writable_by_others_is_not_used(tmp_path, monkeypatch):
    """numba's cache files are pickles: a folder others may write is never trusted."""
    from skcream import _jit

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    path = _jit.private_cache_dir()
    assert path == str(tmp_path / f"skcream-numba-{os.getuid()}")
    os.chmod(path, 0o777)
    assert _jit.private_cache_dir() is None
