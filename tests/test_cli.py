"""The ``skcream`` command: help texts, argument errors, and (slow) the quick demo end to end."""

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from skcream import cli
from skcream.cli import DataSpec, main, parse_data_spec

COMMANDS = ("demo", "train", "evaluate", "localize")


def _run(argv, capsys):
    """Run ``skcream argv``; return (exit code, stdout, stderr)."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(err: str, prefix: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(prefix), err
    assert "Traceback" not in err
    return lines[0]


# --------------------------------------------------------------------------- help
def test_top_level_help_lists_every_command(capsys):
    code, out, _ = _run(["--help"], capsys)
    assert code == 0
    for command in COMMANDS:
        assert command in out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_defaults(command, capsys):
    code, out, err = _run([command, "--help"], capsys)
    assert code == 0 and err == ""
    assert out.startswith(f"usage: skcream {command}")
    assert "(default: " in out


def test_help_shows_the_documented_defaults(capsys):
    _, out, _ = _run(["demo", "--help"], capsys)
    assert "(default: skcream-demo)" in out
    assert "--quick" in out
    _, out, _ = _run(["train", "--help"], capsys)
    for text in ("(default: vgg16)", "(default: 50)", "(default: 0.001)", "(default: 32)",
                 "(default: 224)", "--resume", "accelerate launch"):
        assert text in out, text
    _, out, _ = _run(["localize", "--help"], capsys)
    assert "(default: efficientnet_lite0)" in out and "--post-hoc" in out


def test_version(capsys):
    code, out, _ = _run(["--version"], capsys)
    assert code == 0 and out.strip().startswith("skcream ")


# --------------------------------------------------------------------------- --data
@pytest.mark.parametrize(
    "text, expected",
    [
        ("synthetic", DataSpec("synthetic", (None,))),
        ("synthetic:64", DataSpec("synthetic", (64,))),
        ("cub:/data/CUB_200_2011", DataSpec("cub", ("/data/CUB_200_2011",))),
        ("CUB:C:/x", DataSpec("cub", ("C:/x",))),
        ("imagefolder:./pics", DataSpec("imagefolder", ("./pics",))),
        ("wsol:/d,/m,cub", DataSpec("wsol", ("/d", "/m", "CUB"))),
        ("wsol:/d, /m ,OpenImages", DataSpec("wsol", ("/d", "/m", "OpenImages"))),
    ],
)
def test_parse_data_spec(text, expected):
    assert parse_data_spec(text) == expected


@pytest.mark.parametrize(
    "text, match",
    [
        ("coco:/x", "unknown data kind 'coco'"),
        ("/data/CUB", "unknown data kind"),
        ("synthetic:many", "positive integer"),
        ("synthetic:1", "N >= 2"),
        ("cub:", "needs a folder"),
        ("wsol:/d,/m", "DATA_ROOT,METADATA_ROOT,DATASET"),
        ("wsol:/d,/m,VOC", "DATASET must be one of CUB, ILSVRC, OpenImages"),
    ],
)
def test_parse_data_spec_errors(text, match):
    with pytest.raises(argparse.ArgumentTypeError, match=match):
        parse_data_spec(text)


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "argv, fragment",
    [
        ([], "the following arguments are required: COMMAND"),
        (["fly"], "invalid choice: 'fly'"),
        (["train", "--out", "x"], "the following arguments are required: --data"),
        (["train", "--data", "coco:/x", "--out", "x"], "unknown data kind 'coco'"),
        (["train", "--data", "synthetic", "--out", "x", "--epochs", "0"],
         "expected a positive integer, got 0"),
        (["train", "--data", "synthetic", "--out", "x", "--lr", "-1"], "positive number"),
        (["evaluate", "--data", "synthetic"], "required: --model"),
        (["localize", "--out", "x"], "required: IMAGE"),
        (["localize", "a.jpg", "--out", "x", "--threshold", "1.5"], r"number in [0, 1]"),
        (["demo", "--seed", "x"], "invalid int value"),
    ],
)
def test_usage_errors_are_one_line_exit_2(argv, fragment, capsys):
    code, out, err = _run(argv, capsys)
    assert code == 2
    line = _one_line_error(err, "skcream")
    assert fragment in line
    assert "--help" in line


def test_localize_needs_exactly_one_of_model_and_post_hoc(tmp_path, capsys):
    img = tmp_path / "a.png"
    img.write_bytes(b"")
    code, _, err = _run(["localize", str(img), "--out", str(tmp_path / "o")], capsys)
    assert code == 2
    assert "--model DIR" in _one_line_error(err, "skcream localize: error:")
    code, _, err = _run(["localize", str(img), "--out", str(tmp_path / "o"), "--post-hoc",
                         "--model", str(tmp_path)], capsys)
    assert code == 2
    assert "drop --model" in _one_line_error(err, "skcream localize: error:")


def test_localize_missing_image_names_it(tmp_path, capsys):
    missing = tmp_path / "nope.jpg"
    code, _, err = _run(["localize", str(missing), "--out", str(tmp_path), "--post-hoc"], capsys)
    assert code == 2
    assert str(missing) in _one_line_error(err, "skcream localize: error:")


def test_evaluate_missing_model_folder(tmp_path, capsys):
    code, _, err = _run(["evaluate", "--model", str(tmp_path / "none"), "--data", "synthetic:4"],
                        capsys)
    assert code == 2
    assert "no such folder" in _one_line_error(err, "skcream evaluate: error:")


def test_train_resume_without_checkpoints(tmp_path, capsys):
    code, _, err = _run(["train", "--data", "synthetic:8", "--out", str(tmp_path), "--resume"],
                        capsys)
    assert code == 2
    assert "no checkpoints" in _one_line_error(err, "skcream train: error:")


def test_train_refuses_to_mix_with_existing_checkpoints(tmp_path, capsys):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "epoch_1").write_text("x")
    code, _, err = _run(["train", "--data", "synthetic:8", "--out", str(tmp_path)], capsys)
    assert code == 2
    assert "--resume" in _one_line_error(err, "skcream train: error:")


def test_library_errors_become_one_line_exit_1(monkeypatch, capsys):
    def boom(args):
        raise FileNotFoundError("cub: /data/CUB/images.txt not found (expected the "
                                "CUB_200_2011 layout)")

    monkeypatch.setattr(cli, "_cmd_evaluate", boom)
    code, _, err = _run(["evaluate", "--model", "m", "--data", "cub:/data/CUB"], capsys)
    assert code == 1
    assert "images.txt not found" in _one_line_error(err, "skcream evaluate: error:")


def test_bugs_keep_their_traceback(monkeypatch):
    def bug(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli, "_cmd_evaluate", bug)
    with pytest.raises(ZeroDivisionError):
        main(["evaluate", "--model", "m", "--data", "synthetic"])


def test_debug_env_shows_traceback(monkeypatch):
    monkeypatch.setenv("SKCREAM_DEBUG", "1")

    def fail(args):
        raise ValueError("bad")

    monkeypatch.setattr(cli, "_cmd_evaluate", fail)
    with pytest.raises(ValueError, match="bad"):
        main(["evaluate", "--model", "m", "--data", "synthetic"])


def test_format_table_aligns_columns():
    text = cli.format_table([{"m": "CAM", "acc": 61.234}, {"m": "CREAM", "acc": 7.5}],
                            ["m", "acc"])
    lines = text.splitlines()
    assert lines[0] == "m        acc"
    assert lines[2] == "CAM    61.23"
    assert lines[3] == "CREAM   7.50"


def test_console_script_runs_as_module():
    """The installed entry point's module runs under ``python -m`` (accelerate launch -m)."""
    out = subprocess.run([sys.executable, "-m", "skcream.cli", "fly"], capture_output=True,
                         text=True, cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 2
    line = _one_line_error(out.stderr, "skcream: error:")
    assert "invalid choice" in line and "localize" in line
