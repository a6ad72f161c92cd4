"""Where results are written and read back (issue 22, the "poor" kinds).

- ``save("afile/sub")`` and ``--out /dev/full`` said ``[Errno 17] File exists``: now one
  message naming the path and what is in the way (``skcream._fs.make_dirs``).
- ``format_version`` -5, ``true`` or 0 in a saved model was accepted.
- ``save(link, overwrite=True)`` replaced the symlink itself and left a temporary entry.
- A SIGTERM before the first epoch left the run's lock file, and the next ``skcream train``
  refused "already holds checkpoints".
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_localizer import TINY, _dataset
from test_persistence_integrity import _edit

from skcream import CREAMLocalizer
from skcream.cli import main

_DEV_FULL = Path("/dev/full")


@pytest.fixture(scope="module")
def fitted():
    return CREAMLocalizer(**TINY).fit(_dataset(8))


def _error_lines(err: str) -> list[str]:
    assert "Traceback" not in err
    return [line for line in err.splitlines() if "error:" in line]


def test_save_below_a_file_names_the_file(fitted, tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(NotADirectoryError, match=r"'.*afile', part of the path, is a file"):
        fitted.save(tmp_path / "afile" / "sub")
    with pytest.raises(NotADirectoryError, match=r"'.*afile', part of the path, is a file"):
        fitted.save(tmp_path / "afile" / "sub" / "deeper")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


@pytest.mark.skipif(not _DEV_FULL.exists(), reason="no /dev/full")
@pytest.mark.parametrize("command", ["localize", "train", "report", "demo"])
def test_out_that_is_a_device_is_one_line(fitted, tmp_path, command, capsys):
    fitted.save(tmp_path / "model")
    image = tmp_path / "a.png"
    from PIL import Image

    Image.new("RGB", (16, 16)).save(image)
    argv = {
        "localize": ["localize", str(image), "--model", str(tmp_path / "model")],
        "train": ["train", "--data", "synthetic:4"],
        "report": ["report", "--model", str(tmp_path / "model"), "--data", "synthetic:4"],
        "demo": ["demo", "--quick"],
    }[command]
    code = main([*argv, "--out", str(_DEV_FULL), "--quiet"])
    errors = _error_lines(capsys.readouterr().err)
    assert code != 0 and len(errors) == 1, errors
    assert "/dev/full" in errors[0] and "not a folder (a device, socket or pipe)" in errors[0]
    assert "Errno 17" not in errors[0]


@pytest.mark.parametrize("version", [-5, 0, True, 1.0, "1", None])
def test_format_version_outside_the_known_versions_is_refused(fitted, tmp_path, version):
    path = tmp_path / "m"
    fitted.save(path)

    def edit(meta):
        meta["format_version"] = version

    _edit(path, edit)
    with pytest.raises(ValueError, match=r"format_version = .*expected an integer in \[1, 1\]"):
        CREAMLocalizer.load(path)


def test_format_version_from_the_future_says_upgrade(fitted, tmp_path):
    path = tmp_path / "m"
    fitted.save(path)
    _edit(path, lambda meta: meta.update(format_version=2))
    with pytest.raises(ValueError, match="upgrade skcream"):
        CREAMLocalizer.load(path)


def test_save_through_a_symlink_replaces_its_target_and_keeps_the_link(fitted, tmp_path):
    real = tmp_path / "real" / "m"
    fitted.save(real)
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    other = CREAMLocalizer(**{**TINY, "random_state": 1}).fit(_dataset(8))
    other.save(link, overwrite=True)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]
    assert sorted(p.name for p in real.parent.iterdir()) == ["m"]  # no temporary entry
    loaded = CREAMLocalizer.load(link)
    assert loaded.model_.head.bias.tolist() == other.model_.head.bias.tolist()
    with pytest.raises(FileExistsError, match="different saved estimator"):
        fitted.save(link)  # without overwrite: refused, as for the real folder


_TRAIN = ["train", "--data", "synthetic:48", "--backbone", "test_resnet", "--pretrained",
          "false", "--epochs", "1", "--image-size", "32", "--batch-size", "4", "--quiet"]


def test_leftovers_of_a_run_killed_before_its_first_epoch_are_no_checkpoint(tmp_path, capsys):
    """A killed run (SIGKILL: no cleanup at all) leaves its lock file and maybe the files of
    an epoch it never committed; neither is a checkpoint to refuse or resume."""
    ckpt = tmp_path / "out" / "checkpoints"
    ckpt.mkdir(parents=True)
    (ckpt / ".skcream-train.lock").write_text("4242 elsewhere\n")
    (ckpt / "skcream-train-e1.pt").write_bytes(b"half written")
    (tmp_path / "out" / ".skcream.lock").write_text("4242 elsewhere\n")
    assert main([*_TRAIN, "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "model" / "skcream.json").is_file()
    # a committed checkpoint is still refused without --resume
    code = main([*_TRAIN, "--out", str(tmp_path / "out")])
    assert code == 2 and "already holds" in _error_lines(capsys.readouterr().err)[0]


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_before_the_first_epoch_unwinds_and_the_next_run_trains(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", "skcream.cli", *_TRAIN, "--out", str(out)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = out / "checkpoints" / ".skcream-train.lock"
    deadline = time.monotonic() + 300
    while not lock.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    if (out / "checkpoints" / "skcream-train.json").exists():
        pytest.skip("the first epoch finished before the signal arrived")
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "skcream train: terminated (SIGTERM)" in err and "Traceback" not in err
    assert not lock.exists() and not (out / ".skcream.lock").exists()  # released and removed
    again = subprocess.run([sys.executable, "-m", "skcream.cli", *_TRAIN, "--out", str(out)],
                           env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "model" / "skcream.json").read_text())["class"] == "CREAMLocalizer"
