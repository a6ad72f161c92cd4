"""skcream.report without a browser: the numbers behind the page equal the metric functions,
the page's data encodes them faithfully, the folder is written safely, bad input is refused.
The page itself is tested in Chromium in test_report_browser.py."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest
from _report_data import synthetic_case

from skcream.estimators._boxes_target import localization_scores
from skcream.localize import maps_to_localization
from skcream.metrics import box_acc_curve, box_iou, max_box_acc, max_box_acc_v2, pxap
from skcream.priors import centre_prior, prior_maps
from skcream.report import MARKER, write_report
from skcream.report._compute import evaluate_methods, slider_grid
from skcream.report._page import encode_scores


@pytest.fixture(scope="module")
def case():
    return synthetic_case(12, seed=3)


@pytest.fixture(scope="module")
def evaluated(case):
    _, maps, gt, labels, logits = case
    masks = [(m > 0.5).astype(np.uint8) for m in maps["CREAM"]]
    priors = {"centre": centre_prior()}
    return evaluate_methods(maps, priors, gt, labels=labels, logits=logits, masks=masks,
                            thresholds={"CREAM": 0.375}), masks


def test_rows_equal_the_metric_functions(case, evaluated):
    _, maps, gt, labels, logits = case
    (curve_grid, grid, results), masks = evaluated
    assert 0.375 in grid and np.all(np.isin(curve_grid, grid))
    for name in ("CAM", "CREAM", "centre"):
        m = maps[name] if name != "centre" else prior_maps(centre_prior(), len(gt))
        row = results[name].row
        assert row["max_box_acc_v2"] == max_box_acc_v2(m, gt)
        assert row["max_box_acc"] == max_box_acc(m, gt, iou_thresholds=(50,),
                                                 multi_contour=False)[0]
        assert row["pxap"] == pxap(m, masks)
        # the slider's hits at every curve threshold are the metric's single-contour curve
        _, single = box_acc_curve(m, gt, iou_thresholds=(50,), multi_contour=False)
        at = [int(np.argmin(np.abs(grid - t))) for t in curve_grid]
        np.testing.assert_array_equal(results[name].hits[:, at].sum(axis=0) * 100.0 / len(gt), single[0])
        # and the curve drawn is the metric's multi-contour curve
        _, multi = box_acc_curve(m, gt)
        np.testing.assert_array_equal(results[name].curve, multi.mean(axis=0))
        # Loc metrics at tau: the box a user gets (maps_to_localization) scored the usual way
        boxes = maps_to_localization(list(m), row["threshold"], labels).boxes
        expected = localization_scores(logits, boxes, gt, labels)
        for key in ("gt_known_loc", "top1_loc", "top5_loc"):
            assert row[key] == expected[key], (name, key)
    assert results["CREAM"].row["threshold"] == 0.375
    assert results["CREAM"].row["threshold_source"] == "given"
    assert results["CAM"].row["threshold_source"] == "test"
    assert results["centre"].blind and results["centre"].row["top1_acc"] is None
    assert results["CAM"].row["top1_acc"] == pytest.approx(
        100 * np.mean(logits.argmax(1) == labels))


def test_per_image_boxes_and_iou(case, evaluated):
    _, maps, gt, labels, _ = case
    (_, grid, results), _ = evaluated
    r = results["CAM"]
    for t in (0, 17, len(grid) - 1):
        boxes = maps_to_localization(list(maps["CAM"]), grid[t], labels).boxes
        np.testing.assert_array_equal(r.boxes[:, t], boxes)
        iou = [box_iou(boxes[i : i + 1], gt[i]).max() for i in range(len(gt))]
        np.testing.assert_array_equal(r.iou[:, t], iou)
    assert r.hits.any() and not r.hits.all()  # the case is not trivial


def test_tau_chosen_on_validation_maps(case):
    _, maps, gt, labels, _ = case
    val = {"CAM": maps["CAM"][::-1].copy()}
    val_gt = gt[::-1]
    _, _, results = evaluate_methods({"CAM": maps["CAM"]}, {}, gt, labels=labels,
                                     val_maps=val, val_gt=val_gt)
    thresholds, acc = box_acc_curve(val["CAM"], val_gt, iou_thresholds=(50,),
                                    multi_contour=False)
    assert results["CAM"].row["threshold"] == thresholds[int(np.argmax(acc[0]))]
    assert results["CAM"].row["threshold_source"] == "val"
    assert results["CAM"].row["top1_loc"] is None  # no logits: no class metrics


def test_slider_grid_adds_only_off_grid_thresholds():
    grid = np.arange(0, 1, 0.01)
    assert slider_grid(grid, [0.2, 0.35]).size == 100
    out = slider_grid(grid, [0.205])
    assert out.size == 101 and np.all(np.diff(out) > 0) and 0.205 in out


def test_scores_encoding_keeps_the_exact_hit_decision():
    below = np.nextafter(0.5, 0.0)
    iou = np.array([[0.0, below, 0.5, 0.73456, 1.0]])
    code = encode_scores(iou, iou >= 0.5)
    assert code.dtype == np.dtype("<u2")
    np.testing.assert_array_equal(code >> 15, [[0, 0, 1, 1, 1]])  # 'below' rounds to 5000
    np.testing.assert_array_equal(code & 0x7FFF, [[0, 5000, 5000, 7346, 10000]])


def _page_data(index_html: str) -> dict:
    block = re.search(r'<script type="application/json" id="report-data">(.*?)</script>',
                      index_html, re.S)
    return json.loads(block.group(1))


def test_written_folder_and_page_data(case, tmp_path):
    images, maps, gt, labels, logits = case
    out = tmp_path / "rep"
    index = write_report(out, images, maps, gt, labels, logits=logits,
                         class_names=["a</script><script>alert(1)</script>", "b"],
                         priors={}, settings={"Model": {"name": "<b>x</b>"}})
    assert index == out / "index.html"
    names = sorted(p.name for p in (out / "img").iterdir())
    assert names == sorted([f"{i:05d}.jpg" for i in range(12)] +
                           [f"{i:05d}_t.jpg" for i in range(12)])
    assert {p.name for p in out.iterdir()} == {"index.html", "img", MARKER,
                                               "threshold_curves.png", "histograms.png"}
    text = index.read_text()
    assert text.count("</script>") == 2  # the data block and the script, nothing injected
    assert "<b>x</b>" not in text and "&lt;b&gt;x&lt;/b&gt;" in text
    assert not re.search(r"(src|href)=\"(https?:)?//", text)  # nothing from a network
    data = _page_data(text)
    assert data["classes"][0].startswith("a</script>")
    n, s = data["n"], len(data["grid"])
    _, _, results = evaluate_methods(maps, {}, gt, labels=labels, logits=logits)
    for m in ("CAM", "CREAM"):
        boxes = np.frombuffer(base64.b64decode(data["boxes"][m]), np.uint8).reshape(n, s, 4)
        np.testing.assert_array_equal(boxes, results[m].boxes)
        code = np.frombuffer(base64.b64decode(data["iou"][m]), "<u2").reshape(n, s)
        np.testing.assert_array_equal(code >> 15, results[m].hits)
    # every gallery map's slider starts at its own tau (the table's), not the judge's
    assert data["judge"] == "CREAM"
    for m in ("CAM", "CREAM"):
        assert data["grid"][data["tau"][m]] == pytest.approx(results[m].row["threshold"])
    from skcream.viz import METHOD_COLORS

    assert data["colors"] == {m: METHOD_COLORS[m] for m in ("CAM", "CREAM")}


def test_existing_folders(case, tmp_path):
    images, maps, gt, labels, _ = case
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match="not empty"):
        write_report(foreign, images, maps, gt, labels, priors={})
    assert [p.name for p in foreign.iterdir()] == ["thesis.tex"]
    out = tmp_path / "rep"
    write_report(out, images, maps, gt, labels, priors={})
    (out / "img" / "stale.jpg").write_bytes(b"x")
    write_report(out, images[:3], {k: v[:3] for k, v in maps.items()}, gt[:3], labels[:3],
                 priors={})
    assert len(list((out / "img").iterdir())) == 6  # replaced, not merged
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no tmp left


@pytest.mark.parametrize("change, match", [
    (lambda a: a.update(maps={"CAM": a["maps"]["CAM"][:, :100]}), r"maps\['CAM'\]"),
    (lambda a: a.update(gt_boxes=a["gt_boxes"][:3]), "gt_boxes"),
    (lambda a: a.update(labels=a["labels"][:3]), "labels"),
    (lambda a: a.update(logits=np.zeros(3)), "logits"),
    (lambda a: a.update(gallery=["GradCAM"]), "gallery"),
    (lambda a: a.update(judge="CAMX"), "judge"),
    (lambda a: a.update(images=[]), "images"),
    (lambda a: a.update(labels=a["labels"] - 5), "labels must be class indices"),
    (lambda a: a.update(class_names=["one"]), "class_names has 1"),
    (lambda a: a.update(thresholds={"GradCAM": 0.2}), "thresholds names"),
    (lambda a: a.update(val_maps={"CAM": a["maps"]["CAM"]}), "val_maps and val_gt"),
])
def test_bad_input_is_refused_before_writing(case, tmp_path, change, match):
    images, maps, gt, labels, _ = case
    args = dict(images=images, maps=maps, gt_boxes=gt, labels=labels)
    change(args)
    with pytest.raises(ValueError, match=match):
        write_report(tmp_path / "rep", priors={}, **args)
    assert not (tmp_path / "rep").exists()


def test_cli_report_refuses_a_foreign_folder_in_one_line(tmp_path, capsys):
    from skcream.cli import main

    (tmp_path / "x.txt").write_text("keep")
    code = main(["report", "--model", str(tmp_path / "nomodel"), "--data", "synthetic:4",
                 "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and err[0].startswith("skcream report: error:")
    assert "not empty" in err[0]


@pytest.mark.slow
def test_cli_report_of_a_saved_model_matches_evaluate(tmp_path, capsys):
    """``skcream report`` on a saved model: the CREAM row is ``skcream evaluate``'s numbers."""
    from skcream import CREAMLocalizer
    from skcream.cli import main
    from skcream.data import make_synthetic
    from skcream.priors import PRIOR_NAMES

    data = make_synthetic(8, n_classes=2, image_size=32, random_state=0)
    CREAMLocalizer(backbone="resnet18", pretrained=False, image_size=32, resize_size=36,
                   max_epochs=1, batch_size=4, random_state=0, verbose=0).fit(data).save(
        tmp_path / "run" / "model")
    common = ["--model", str(tmp_path / "run"), "--data", "synthetic:6", "--quiet"]
    assert main(["evaluate", *common, "--json"]) == 0
    expected = json.loads(capsys.readouterr().out)
    out = tmp_path / "rep"
    assert main(["report", *common, "--out", str(out), "--val-split", "val",
                 "--prior-split", "train"]) == 0
    assert f"wrote {out / 'index.html'}" in capsys.readouterr().out
    text = (out / "index.html").read_text()
    rows = dict(re.findall(r'<tr data-method="([^"]+)"[^>]*>(.*?)</tr>', text))
    assert list(rows) == ["CAM", "CREAM", PRIOR_NAMES["centre"], PRIOR_NAMES["boxes"]]
    cells = dict(re.findall(r'data-key="(\w+)" data-value="([^"]*)"', rows["CREAM"]))
    baselines = expected.pop("baselines")  # skcream evaluate's guardrail rows
    for key, value in expected.items():
        assert float(cells[key]) == value, key
    cam = dict(re.findall(r'data-key="(\w+)" data-value="([^"]*)"', rows["CAM"]))
    assert float(cam["max_box_acc_v2"]) == baselines["CAM"]["max_box_acc_v2"]
    assert "(val)" in rows["CAM"] and "(given)" in rows["CREAM"]
    assert len(_page_data(text)["label"]) == 6


def test_report_without_prior_or_validation_data(tmp_path, capsys):
    """Issue 21: ``skcream report --model M --data D --out O`` and ``model.report(test,
    out=...)`` as the README writes them: no prior data, no validation split. The train-box
    prior row is left out and the page says so; CAM's tau is the model's (given)."""
    from skcream import CREAMLocalizer
    from skcream.cli import main
    from skcream.data import make_synthetic
    from skcream.priors import PRIOR_NAMES

    data = make_synthetic(8, n_classes=2, image_size=32, random_state=0)
    model = CREAMLocalizer(backbone="resnet18", pretrained=False, image_size=32,
                           max_epochs=1, batch_size=4, random_state=0, verbose=0).fit(data)
    model.save(tmp_path / "run" / "model")
    for index in (model.report(data, out=tmp_path / "py"),
                  tmp_path / "cli" / "index.html"):
        if index.parent.name == "cli":
            code = main(["report", "--model", str(tmp_path / "run"), "--data", "synthetic:6",
                         "--out", str(index.parent), "--quiet"])
            assert code == 0, capsys.readouterr().err
        text = index.read_text()
        rows = re.findall(r'<tr data-method="([^"]+)"', text)
        assert rows == ["CAM", "CREAM", PRIOR_NAMES["centre"]]
        assert "not shown: no prior_data (CLI: --prior-split) was given" in text
        assert "(given)" in text
