"""The CLI side of the benchmark's model selection: ``skcream train --keep best`` and the
``samples_per_class=N`` / ``proxy=true`` options of ``wsol:`` data specs."""

from __future__ import annotations

import argparse
import os
from collections import Counter

import pytest
from test_cli import _one_line_error, _run
from test_data_wsol import _placeholders, _sizes, _subset

from skcream.cli import DataSpec, parse_data_spec
from skcream.data import load_wsol


@pytest.mark.parametrize("text, expected", [
    ("wsol:/d,/m,cub,samples_per_class=5",
     DataSpec("wsol", ("/d", "/m", "CUB"), {"samples_per_class": 5})),
    ("wsol:/d,/m,ILSVRC, proxy=true ,samples_per_class=0",
     DataSpec("wsol", ("/d", "/m", "ILSVRC"), {"proxy": True, "samples_per_class": 0})),
    ("wsol:/d,/m,ILSVRC,proxy=no", DataSpec("wsol", ("/d", "/m", "ILSVRC"), {"proxy": False})),
])
def test_wsol_spec_options(text, expected):
    assert parse_data_spec(text) == expected


@pytest.mark.parametrize("text, match", [
    ("wsol:/d,/m,CUB,samples_per_class=x", "samples_per_class expected an integer >= 0"),
    ("wsol:/d,/m,CUB,samples_per_class=-2", "samples_per_class expected an integer >= 0"),
    ("wsol:/d,/m,CUB,shots=3", "unknown option 'shots'"),
    ("wsol:/d,/m,CUB,proxy=maybe", "proxy expects true or false"),
    ("wsol:/d,/m,CUB,proxy=1,proxy=0", "proxy is given twice"),
    ("wsol:/d,/m,samples_per_class=3", r"DATA_ROOT,METADATA_ROOT,DATASET\[,samples_per_class"),
    ("wsol:/d,/m,CUB,extra", "DATA_ROOT,METADATA_ROOT,DATASET"),
])
def test_wsol_spec_option_errors(text, match):
    with pytest.raises(argparse.ArgumentTypeError, match=match):
        parse_data_spec(text)


def test_spec_options_apply_to_their_split(shared_dir, tmp_path):
    """As wsolevaluation's get_data_loader: samples_per_class cuts the val split only (the
    seed is --seed), proxy reads the train split's proxy list only."""
    meta, _ = _subset(shared_dir, tmp_path, "CUB", "val", n=30)  # 6 classes of 5
    _placeholders(tmp_path / "data", _sizes(meta / "CUB" / "val"))
    train_dir = meta / "CUB" / "train"
    train_dir.mkdir()
    for name in ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt"):
        (train_dir / name).write_text((meta / "CUB" / "val" / name).read_text())
    ids = (train_dir / "image_ids.txt").read_text().split()
    (train_dir / "image_ids_proxy.txt").write_text("\n".join(ids[:4]) + "\n")
    spec = parse_data_spec(f"wsol:{tmp_path / 'data'},{meta},CUB,samples_per_class=2,proxy=true")
    val = spec.load("val", random_state=3)
    assert set(Counter(val["label"]).values()) == {2} and len(val) == 12
    assert val["image_id"] == load_wsol(tmp_path / "data", meta, "CUB", "val",
                                        samples_per_class=2, random_state=3)["image_id"]
    assert spec.load("val", random_state=4)["image_id"] != val["image_id"]
    assert spec.load("train")["image_id"] == ids[:4]  # the proxy list, no cut
    plain = parse_data_spec(f"wsol:{tmp_path / 'data'},{meta},CUB")
    assert len(plain.load("val")) == 30 and len(plain.load("train")) == 30


def test_train_keep_best_needs_val_data(tmp_path, capsys):
    # validation images: --val-data, the preset's, or the --val-fraction held out (issue 21)
    code, _, err = _run(["train", "--data", "synthetic:8", "--keep", "best", "--val-fraction",
                         "0", "--out", str(tmp_path / "o")], capsys)
    assert code == 2
    assert "--keep best chooses the epoch on validation images: give --val-data or a " \
        "--val-fraction above 0" in _one_line_error(err, "skcream train")
    assert not (tmp_path / "o").exists()


def test_train_keep_best(tmp_path, capsys):
    from skcream import CREAMLocalizer

    code, out, err = _run(["train", "--data", "synthetic:12", "--val-data", "synthetic:6",
                           "--keep", "best", "--backbone", "test_resnet", "--pretrained",
                           "false", "--epochs", "2", "--image-size", "32", "--batch-size", "6",
                           "--out", str(tmp_path / "o"), "--device", "cpu", "--quiet"], capsys)
    assert code == 0, err
    model = CREAMLocalizer.load(tmp_path / "o" / "model")
    assert model.keep == "best" and len(model.history_) == 2
    scores = [r["val_max_box_acc_v2"] for r in model.history_]
    assert model.best_epoch_ == scores.index(max(scores)) + 1
    assert f"kept epoch {model.best_epoch_} of 2 (best on the validation images)" in out
    assert os.path.isdir(tmp_path / "o" / "checkpoints")


@pytest.mark.parametrize("argv, fragment", [
    (["train", "--data", "wsol:/d,/m,CUB,samples_per_class=2", "--out", "{tmp}/o"],
     "--data: samples_per_class applies to the 'val' split only, and this command loads 'train'"),
    (["train", "--data", "synthetic:8", "--val-data", "wsol:/d,/m,ILSVRC,proxy=true",
      "--out", "{tmp}/o"], "--val-data: proxy applies to the 'train' split only"),
    (["evaluate", "--model", "{tmp}/none", "--data", "wsol:/d,/m,CUB,samples_per_class=2"],
     "loads 'test' from it"),
    (["report", "--model", "{tmp}/none", "--data", "wsol:/d,/m,ILSVRC,proxy=true",
      "--val-split", "val", "--out", "{tmp}/r"], "loads 'test', 'val' from it"),
])
def test_an_option_no_loaded_split_uses_is_refused(tmp_path, capsys, argv, fragment):
    code, _, err = _run([a.replace("{tmp}", str(tmp_path)) for a in argv], capsys)
    assert code == 2
    assert fragment in _one_line_error(err, "skcream")
