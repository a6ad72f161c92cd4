"""The code base stays ruff-clean (the README's test command checks it)."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is in the test extra")
def test_ruff_clean():
    paths = [p for p in ("skcream", "tests", "benchmarks", "examples") if (ROOT / p).is_dir()]
    out = subprocess.run(
        ["ruff", "check", *paths],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
