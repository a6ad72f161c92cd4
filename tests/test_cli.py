"""The ``skcream`` command: help texts, argument errors, options. (The README's commands,
``skcream demo --quick`` among them, run end to end in tests/test_readme_snippets.py.)"""

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from skcream import cli
from skcream.cli import DataSpec, main, parse_data_spec

COMMANDS = ("demo", "train", "evaluate", "report", "localize")


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
    (tmp_path / "checkpoints" / "skcream-train.json").write_text("{}")  # a committed one
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


# --------------------------------------------------------------------------- demo pieces
def test_demo_output_dir_never_takes_a_users_folder(tmp_path):
    from skcream.demo import MARKER, prepare_output_dir

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match="not made by 'skcream demo'"):
        prepare_output_dir(mine)
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.tex"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="is a file"):
        prepare_output_dir(tmp_path / "file")
    fresh = prepare_output_dir(tmp_path / "new" / "demo")
    assert (fresh / MARKER).is_file()
    (fresh / "notes.txt").write_text("kept")
    assert prepare_output_dir(fresh) == fresh  # a demo folder is reused
    assert (fresh / "notes.txt").read_text() == "kept"


def test_demo_refuses_users_folder_from_the_command_line(tmp_path, capsys):
    (tmp_path / "data.csv").write_text("1,2")
    code, _, err = _run(["demo", "--out", str(tmp_path)], capsys)
    assert code == 1
    assert "not made by 'skcream demo'" in _one_line_error(err, "skcream demo: error:")
    assert [p.name for p in tmp_path.iterdir()] == ["data.csv"]


def _box_map(box, size=224, rng=None):
    """A map that is 1 inside the inclusive box and small noise elsewhere."""
    m = np.zeros((size, size)) if rng is None else rng.random((size, size)) * 0.05
    x0, y0, x1, y1 = (int(v) for v in box)
    m[y0:y1 + 1, x0:x1 + 1] = 1.0
    return m


def test_method_report_agrees_with_the_metrics_module():
    from skcream import metrics
    from skcream.demo import method_report

    rng = np.random.default_rng(0)
    gt = [np.array([[10.0, 15.0, 60.0, 75.0]]), np.array([[25.0, 25.0, 60.0, 50.0]]),
          np.array([[0.0, 0.0, 30.0, 30.0]])]
    maps = np.stack([_box_map([12, 17, 55, 70], 64, rng), rng.random((64, 64)),
                     _box_map([0, 0, 15, 15], 64, rng)])
    logits = np.array([[3.0, 1.0], [0.0, 2.0], [1.0, 0.5]])
    labels = np.array([0, 0, 0])
    report = method_report(maps, gt, logits=logits, labels=labels)
    assert report["max_box_acc_v2"] == pytest.approx(metrics.max_box_acc_v2(maps, gt))
    assert report["max_box_acc"] == pytest.approx(
        metrics.max_box_acc(maps, gt, iou_thresholds=(50,), multi_contour=False)[0])
    assert report["top1_acc"] == pytest.approx(200 / 3)
    assert report["pxap"] is None
    assert report["box_acc_v2_curve"].shape == report["thresholds"].shape == (100,)
    # the first image is found at tau (IoU of the 44x54 box with the 51x61 GT > 0.5),
    # the third is not (a 16x16 box in a 31x31 GT): GT-known 1/3 at least, and Top-1 Loc
    # counts it only when the class is right (it is for image 0)
    assert report["gt_known_loc"] >= 100 / 3 - 1e-9
    assert report["top1_loc"] <= report["gt_known_loc"]


def test_method_report_of_perfect_maps_is_perfect():
    from skcream.demo import method_report

    gt = [np.array([[10.0, 20.0, 100.0, 180.0]]), np.array([[60.0, 5.0, 220.0, 90.0]])]
    maps = np.stack([_box_map(b[0]) for b in gt])
    masks = [(m > 0.5).astype(np.uint8) for m in maps]
    report = method_report(maps, gt, logits=np.eye(2), labels=np.array([0, 1]), masks=masks)
    for key in ("max_box_acc_v2", "max_box_acc", "pxap", "gt_known_loc", "top1_loc",
                "top1_acc"):
        assert report[key] == pytest.approx(100.0), key


@pytest.fixture(scope="module")
def tiny_localizer():
    """A seconds-long fit: random ResNet18 at 32x32 on 8 synthetic images."""
    from skcream import CREAMLocalizer
    from skcream.data import make_synthetic

    data = make_synthetic(8, n_classes=2, image_size=32, random_state=0)
    model = CREAMLocalizer(backbone="resnet18", pretrained=False, image_size=32, resize_size=36,
                           max_epochs=1, batch_size=4, random_state=0, verbose=0).fit(data)
    return model, data


@pytest.mark.slow
def test_readout_maps_equal_the_estimators_own_maps(tiny_localizer):
    """One forward pass, three read-outs: identical to transform / decision_function."""
    from skcream.demo import readout_maps
    from skcream.localize import protocol_maps

    model, data = tiny_localizer
    labels = np.asarray(data["label"])
    maps, logits, seconds = readout_maps(model, data, batch_size=3)
    assert set(maps) == {"cam", "calibrated", "final"} and set(seconds) == set(maps)
    assert all(m.shape == (len(data), 224, 224) for m in maps.values())
    np.testing.assert_allclose(logits, model.decision_function(data), rtol=1e-5, atol=1e-5)
    final = protocol_maps(model.transform(data, labels=labels), (224, 224))
    np.testing.assert_allclose(maps["final"], final, atol=1e-5)
    cam_model = model.set_params(n_iter=0)
    try:
        cam = protocol_maps(cam_model.transform(data, labels=labels), (224, 224))
    finally:
        model.set_params(n_iter=2)
    np.testing.assert_allclose(maps["cam"], cam, atol=1e-5)


@pytest.mark.slow
def test_evaluate_and_localize_a_saved_model(tiny_localizer, tmp_path, capsys):
    from PIL import Image

    model, data = tiny_localizer
    model.save(tmp_path / "run" / "model")
    code, out, err = _run(["evaluate", "--model", str(tmp_path / "run"), "--data", "synthetic:6",
                           "--json", "--quiet"], capsys)
    assert code == 0, err
    report = json.loads(out)
    for key in ("max_box_acc_v2", "max_box_acc", "pxap", "top1_loc", "gt_known_loc",
                "threshold"):
        assert 0 <= report[key] <= 100, key
    # guardrail rows: the blind centre prior and CAM of the same network
    base = report["baselines"]
    assert set(base) == {"centre prior", "CAM"}
    assert set(base["centre prior"]) == {"max_box_acc_v2", "max_box_acc", "pxap"}
    assert base["CAM"]["top1_acc"] == report["top1_acc"]  # same classifier
    code, out, err = _run(["evaluate", "--model", str(tmp_path / "run"), "--data", "synthetic:6",
                           "--quiet"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert [ln.split()[0] for ln in lines[2:5]] == ["centre", "CAM", "CREAM"]
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"img{i}.png")
        data[i]["image"].save(paths[-1])
    Image.new("RGB", (50, 30), (200, 10, 10)).save(tmp_path / "odd.jpg")
    paths.append(tmp_path / "odd.jpg")
    code, out, err = _run(["localize", "--model", str(tmp_path / "run" / "model"),
                           *map(str, paths), "--out", str(tmp_path / "loc"), "--quiet"], capsys)
    assert code == 0, err
    records = json.loads((tmp_path / "loc" / "boxes.json").read_text())
    assert [r["image"] for r in records] == [str(p) for p in paths]
    for rec, path in zip(records, paths):
        assert rec["class_name"] in model.class_names_
        w, h = Image.open(path).size
        x0, y0, x1, y1 = rec["box"]
        assert 0 <= x0 <= x1 <= w - 1 and 0 <= y0 <= y1 <= h - 1
        overlay = Image.open(tmp_path / "loc" / rec["overlay"])
        # small images are upsampled in the overlay (boxes.json keeps their own pixels)
        from skcream.cli import OVERLAY_MIN_SIDE

        scale = max(1.0, OVERLAY_MIN_SIDE / min(w, h))
        assert overlay.size == (round(w * scale), round(h * scale))
    assert re.search(r"^\[3/3\] .*odd\.jpg: ", out, re.MULTILINE), out  # one line per image


@pytest.mark.slow
def test_localize_post_hoc_names_the_imagenet_class(tmp_path, capsys):
    from PIL import Image
    from skimage import data as skdata

    Image.fromarray(skdata.chelsea()).save(tmp_path / "chelsea.jpg")
    code, out, err = _run(["localize", "--post-hoc", str(tmp_path / "chelsea.jpg"),
                           "--out", str(tmp_path / "o"), "--quiet"], capsys)
    assert code == 0, err
    (record,) = json.loads((tmp_path / "o" / "boxes.json").read_text())
    assert record["label"] == 285 and "cat" in record["class_name"].lower()
    assert 0.0 < record["score"] <= 1.0
    assert (tmp_path / "o" / "chelsea_overlay.png").is_file()


# --------------------------------------------------------------------------- train options
@pytest.fixture
def fake_fit(monkeypatch):
    """CREAMLocalizer.fit/save replaced: record the parameters, data and torch threads."""
    import torch

    from skcream import CREAMLocalizer

    seen = {}

    def fit(self, X, y=None, **kwargs):
        seen.clear()
        seen.update(self.get_params(deep=False), n_train=len(X),
                    threads=torch.get_num_threads(), X=X)
        self.history_ = []
        self.auto_box_threshold_ = 0.2  # what fit chooses without validation images
        return self

    monkeypatch.setattr(CREAMLocalizer, "fit", fit)
    monkeypatch.setattr(CREAMLocalizer, "save", lambda self, path, **kw: None)
    return seen


def test_train_preset_sets_the_demos_parameters_and_data(fake_fit, tmp_path, capsys):
    from skcream.presets import QUICK

    code, out, err = _run(["train", "--preset", "quick", "--out", str(tmp_path / "a"),
                           "--quiet"], capsys)
    assert code == 0, err
    assert {k: fake_fit[k] for k in QUICK.estimator_params()} == QUICK.estimator_params()
    train, val, _ = QUICK.make_data(0)
    assert fake_fit["n_train"] == len(train) and len(fake_fit["validation_data"]) == len(val)
    assert fake_fit["X"]["image_id"] == train["image_id"]  # the demo's own train split
    assert "the preset's 32 synthetic validation images" in out
    # every option given overrides the preset; the rest stays the preset's
    code, out, err = _run(["train", "--preset", "quick", "--out", str(tmp_path / "b"),
                           "--epochs", "2", "--feature-stage", "2", "--resize-size", "120",
                           "--lr-step", "none", "--image-size", "100", "--batch-size", "8",
                           "--quiet"], capsys)
    assert code == 0, err
    assert (fake_fit["max_epochs"], fake_fit["feature_stage"], fake_fit["resize_size"],
            fake_fit["lr_step"], fake_fit["image_size"], fake_fit["batch_size"]) == (
        2, 2, 120, None, 100, 8)
    assert (fake_fit["lr"], fake_fit["backbone"]) == (QUICK.lr, QUICK.backbone)
    # without --preset: the library's resize rule, the default lr schedule
    _run(["train", "--data", "synthetic:8", "--out", str(tmp_path / "c"), "--image-size", "128",
          "--lr-step", "3,5", "--quiet"], capsys)
    assert (fake_fit["resize_size"], fake_fit["lr_step"], fake_fit["feature_stage"]) == (
        None, (3, 5), None)


def test_train_holds_out_a_stratified_validation_share(fake_fit, tmp_path, capsys):
    from collections import Counter

    code, out, err = _run(["train", "--data", "synthetic:40", "--out", str(tmp_path / "a"),
                           "--quiet"], capsys)
    assert code == 0, err
    val = fake_fit["validation_data"]
    assert fake_fit["n_train"] + len(val) == 40 and 6 <= len(val) <= 10  # about 20%
    assert not set(val["image_id"]) & set(fake_fit["X"]["image_id"])  # never trained on
    assert set(Counter(val["label"])) == set(Counter(fake_fit["X"]["label"]))  # every class
    assert f"held out {len(val)} more (--val-fraction 0.2" in out
    code, out, err = _run(["train", "--data", "synthetic:40", "--out", str(tmp_path / "b"),
                           "--val-fraction", "0", "--quiet"], capsys)
    assert code == 0 and fake_fit["validation_data"] is None and fake_fit["n_train"] == 40
    assert "box threshold 0.2" in out
    _run(["train", "--data", "synthetic:40", "--out", str(tmp_path / "c"), "--val-data",
          "synthetic:6", "--quiet"], capsys)
    assert fake_fit["n_train"] == 40 and len(fake_fit["validation_data"]) == 6


def test_train_runs_under_the_thread_rule(fake_fit, tmp_path, capsys):
    import torch

    from skcream.threads import default_threads

    before = torch.get_num_threads()
    code, out, _ = _run(["train", "--data", "synthetic:8", "--out", str(tmp_path / "a"),
                         "--threads", "3", "--quiet"], capsys)
    assert code == 0 and fake_fit["threads"] == 3 and "torch intra-op threads: 3" in out
    _run(["train", "--data", "synthetic:8", "--out", str(tmp_path / "b"), "--quiet"], capsys)
    assert fake_fit["threads"] == (default_threads() or before)
    assert torch.get_num_threads() == before  # restored


@pytest.mark.parametrize("argv, fragment", [
    (["--out", "o"], "--data is required (or --preset"),
    (["--data", "synthetic:8", "--out", "o", "--val-data", "synthetic:4", "--val-fraction",
      "0.1"], "give --val-data or --val-fraction, not both"),
    (["--preset", "quick", "--out", "o", "--val-fraction", "0.1"], "--val-fraction holds out"),
    (["--data", "synthetic:8", "--out", "o", "--image-size", "128", "--resize-size", "100"],
     "--resize-size 100 is smaller than --image-size 128"),
])
def test_train_option_errors(argv, fragment, fake_fit, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(["train", *argv], capsys)
    assert code == 2 and fragment in _one_line_error(err, "skcream train: error:")
    if "--data" not in argv:
        assert not (tmp_path / "o").exists()  # refused before --out was touched


@pytest.mark.parametrize("argv, fragment", [
    (["--preset", "demo", "--recipe", "CUB"], "not allowed with argument"),
    (["--preset", "big"], "invalid choice: 'big'"),
    (["--val-fraction", "1"], "expected a fraction in [0, 1), got 1"),
    (["--lr-step", "5,3"], "increasing integers like 14,29,44"),
    (["--resize-size", "4"], "expected an integer >= 8"),
    (["--feature-stage", "x"], "expected an integer"),
])
def test_train_option_usage_errors(argv, fragment, capsys):
    code, _, err = _run(["train", "--data", "synthetic:8", "--out", "o", *argv], capsys)
    assert code == 2 and fragment in _one_line_error(err, "skcream train: error:")
