"""Blind prior maps: hand-computed cases and invariants."""

import numpy as np
import pytest

from skcream.metrics import max_box_acc_v2
from skcream.priors import box_prior, box_prior_of, centre_prior, prior_maps


def test_centre_prior_peak_symmetry_and_range():
    m = centre_prior((6, 8), sigma=0.25)
    assert m.shape == (6, 8) and m.dtype == np.float64
    assert m.max() == 1.0 and m.min() > 0
    np.testing.assert_allclose(m, m[::-1, :])
    np.testing.assert_allclose(m, m[:, ::-1])
    # the four central pixels are the maxima (even sides: centre between pixels)
    assert (m[2:4, 3:5] == 1.0).all()
    # one pixel right of the centre block: offset 1.5 px in x -> exp(-0.5 (1.5/2)^2) / exp(-0.5 (0.5/2)^2)
    expected = np.exp(-0.5 * (1.5 / 2.0) ** 2) / np.exp(-0.5 * (0.5 / 2.0) ** 2)
    assert m[2, 5] == pytest.approx(expected)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf")])
def test_centre_prior_rejects_bad_sigma(bad):
    with pytest.raises(ValueError, match="sigma"):
        centre_prior((4, 4), sigma=bad)


def test_box_prior_counts_coverage():
    # image 10x10 -> frame 10x10 (no scaling); two overlapping boxes
    boxes = [np.array([[0, 0, 4, 4]]), np.array([[2, 2, 6, 6]])]
    m = box_prior(boxes, [(10, 10), (10, 10)], shape=(10, 10))
    expected = np.zeros((10, 10))
    expected[0:5, 0:5] += 1
    expected[2:7, 2:7] += 1
    np.testing.assert_array_equal(m, expected / 2)


def test_box_prior_scales_like_the_protocol():
    # a box covering the right half of a 200x100 image covers the right half of the frame
    m = box_prior([np.array([[100, 0, 199, 99]])], [(200, 100)], shape=(8, 8))
    np.testing.assert_array_equal(m[:, 4:], 1.0)
    np.testing.assert_array_equal(m[:, :4], 0.0)


def test_box_prior_is_order_invariant():
    rng = np.random.default_rng(0)
    boxes = []
    for _ in range(20):
        x0, y0 = rng.integers(0, 50, 2)
        boxes.append(np.array([[x0, y0, x0 + rng.integers(1, 50), y0 + rng.integers(1, 50)]]))
    sizes = [(100, 100)] * 20
    perm = rng.permutation(20)
    np.testing.assert_array_equal(box_prior(boxes, sizes),
                                  box_prior([boxes[i] for i in perm], sizes))


def test_box_prior_errors():
    with pytest.raises(ValueError, match="at least one box"):
        box_prior([np.zeros((0, 4))], [(10, 10)])
    with pytest.raises(ValueError, match="one entry per image"):
        box_prior([np.array([[0, 0, 1, 1]])], [])
    with pytest.raises(ValueError, match=r"boxes\[0\]"):
        box_prior([np.array([[5, 0, 1, 1]])], [(10, 10)])


def test_prior_maps_score_like_any_map():
    # one GT box exactly where the prior's thresholded blob lands scores 100 at IoU 0.7
    prior = np.zeros((224, 224))
    prior[50:150, 60:160] = 1.0
    maps = prior_maps(prior, 3)
    assert maps.shape == (3, 224, 224)
    gt = [np.array([[60, 50, 160, 150]])] * 3
    assert max_box_acc_v2(maps, gt) == pytest.approx(100.0)


def test_box_prior_of_dataset_matches_the_boxes(tmp_path):
    from skcream.data import make_synthetic
    from skcream.data.adapters import ImageSource

    ds = make_synthetic(6, random_state=0, cache_dir=tmp_path)
    src = ImageSource.from_input(ds)
    expected = box_prior([src.boxes(i) for i in range(6)], [src.size(i) for i in range(6)])
    np.testing.assert_array_equal(box_prior_of(ds), expected)
    assert box_prior_of(ds.remove_columns("bboxes")) is None


def test_prior_scores_equal_the_metrics_on_explicit_maps(tmp_path):
    from skcream.data import make_synthetic
    from skcream.data.adapters import ImageSource
    from skcream.data.transforms import resize_mask
    from skcream.metrics import max_box_acc, pxap
    from skcream.priors import prior_scores

    ds = make_synthetic(10, image_size=64, random_state=3, cache_dir=tmp_path)
    src = ImageSource.from_input(ds)
    gt = [np.trunc(src.boxes(i) * 224 / 64) for i in range(10)]
    masks = [resize_mask(src.mask(i), 224) for i in range(10)]
    prior = centre_prior()
    maps = prior_maps(prior, 10)
    got = prior_scores(prior, ds, batch_size=3)  # batches of 3: streaming equals one shot
    assert got["max_box_acc_v2"] == pytest.approx(max_box_acc_v2(maps, gt))
    assert got["max_box_acc"] == pytest.approx(
        max_box_acc(maps, gt, iou_thresholds=(50,), multi_contour=False)[0])
    assert got["pxap"] == pytest.approx(pxap(maps, masks))
    with pytest.raises(ValueError, match="not defined for a prior"):
        prior_scores(prior, ds, metrics=["top1_loc"])
