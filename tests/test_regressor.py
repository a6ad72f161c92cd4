"""PseudoBoxRegressor and CREAMReg (CREAM_Reg): box bookkeeping, contract, learning."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skcream.estimators import _boxes_target as bt

# ---------------------------------------------------------------------------
# Box bookkeeping (pure numpy)
# ---------------------------------------------------------------------------


@st.composite
def boxes_and_sizes(draw, n_max=6):
    n = draw(st.integers(1, n_max))
    rows, sizes = [], []
    for _ in range(n):
        w = draw(st.integers(2, 2000))
        h = draw(st.integers(2, 2000))
        x0 = draw(st.floats(0, w - 1, allow_nan=False))
        y0 = draw(st.floats(0, h - 1, allow_nan=False))
        x1 = draw(st.floats(x0, w, allow_nan=False).filter(lambda v, x0=x0: v > x0))
        y1 = draw(st.floats(y0, h, allow_nan=False).filter(lambda v, y0=y0: v > y0))
        rows.append([x0, y0, x1, y1])
        sizes.append([w, h])
    return np.array(rows), np.array(sizes, dtype=np.float64)


@settings(max_examples=60, deadline=None)
@given(boxes_and_sizes())
def test_normalize_denormalize_round_trip(data):
    boxes, sizes = data
    unit = bt.normalize_boxes(boxes, sizes)
    assert np.all((unit >= 0) & (unit <= 1))
    np.testing.assert_allclose(bt.denormalize_boxes(unit, sizes), boxes, rtol=1e-12, atol=1e-9)
    bt.check_boxes_in_images(boxes, sizes)  # every generated box is valid


def test_normalize_hand_computed():
    boxes = np.array([[10, 20, 30, 40], [0, 0, 100, 50]], dtype=float)
    sizes = np.array([[100, 200], [100, 50]], dtype=float)
    np.testing.assert_array_equal(
        bt.normalize_boxes(boxes, sizes), [[0.1, 0.1, 0.3, 0.2], [0, 0, 1, 1]]
    )
    np.testing.assert_array_equal(bt.denormalize_boxes([[0.5, 0.5, 1, 1]], [[64, 32]]),
                                  [[32, 16, 64, 32]])


def test_order_corners_swaps_only_inverted_axes():
    got = bt.order_corners(np.array([[0.8, 0.1, 0.2, 0.9], [0.1, 0.7, 0.3, 0.2]]))
    np.testing.assert_array_equal(got, [[0.2, 0.1, 0.8, 0.9], [0.1, 0.2, 0.3, 0.7]])


def test_crop_target_clips_to_crop():
    # box partly left of / below the crop after a random crop
    np.testing.assert_array_equal(
        bt.crop_target(np.array([[-10, 50, 112, 300]]), 224),
        np.array([0, 50 / 224, 0.5, 1], dtype=np.float32),
    )
    with pytest.raises(ValueError, match="one box"):
        bt.crop_target(np.zeros((2, 4)), 224)


def test_check_boxes_errors_name_the_index():
    sizes = np.array([[100, 100]] * 3, dtype=float)
    good = np.array([[0, 0, 100, 100], [10, 10, 20, 20], [5, 5, 6, 6]], dtype=float)
    bt.check_boxes_in_images(good, sizes)
    bad = good.copy()
    bad[2] = [5, 5, 5, 9]
    with pytest.raises(ValueError, match=r"boxes\[2\].*degenerate"):
        bt.check_boxes_in_images(bad, sizes)
    bad = good.copy()
    bad[1] = [10, 10, 101, 20]
    with pytest.raises(ValueError, match=r"boxes\[1\].*outside image 1"):
        bt.check_boxes_in_images(bad, sizes)
    bad = good.copy()
    bad[0] = [-1, 0, 10, 10]
    with pytest.raises(ValueError, match=r"boxes\[0\].*outside"):
        bt.check_boxes_in_images(bad, sizes)
    bad = good.copy()
    bad[1, 3] = np.nan
    with pytest.raises(ValueError, match=r"boxes\[1\].*NaN"):
        bt.check_boxes_in_images(bad, sizes)


def test_one_box_per_image_forms():
    np.testing.assert_array_equal(
        bt.one_box_per_image([[1, 2, 3, 4], np.array([[5, 6, 7, 8]])]),
        [[1, 2, 3, 4], [5, 6, 7, 8]],
    )
    with pytest.raises(ValueError, match=r"boxes\[1\] holds 2 boxes"):
        bt.one_box_per_image([[1, 2, 3, 4], np.zeros((2, 4))])
    with pytest.raises(ValueError, match=r"shape \(n_samples, 4\)"):
        bt.one_box_per_image(np.zeros((3, 3)))


def test_gt_box_lists_names_images_without_box():
    with pytest.raises(ValueError, match=r"2 image\(s\).*b\.png, d\.png"):
        bt.gt_box_lists([[[0, 0, 1, 1]], [], [[0, 0, 2, 2]], None], 4,
                        image_ids=["a.png", "b.png", "c.png", "d.png"])
    with pytest.raises(ValueError, match="3 entries for 2 images"):
        bt.gt_box_lists([[0, 0, 1, 1]] * 3, 2)
    out = bt.gt_box_lists(np.array([[0, 0, 1, 1], [1, 1, 2, 2]]), 2)
    assert [o.shape for o in out] == [(1, 4), (1, 4)]


def test_protocol_frame_truncates_like_int():
    boxes = np.array([[10.0, 7.0, 333.0, 250.0]])
    size = (500, 375)
    expected = [int(10 * 224 / 500), int(7 * 224 / 375), int(333 * 224 / 500),
                int(250 * 224 / 375)]
    np.testing.assert_array_equal(bt.to_protocol_frame(boxes, size, truncate=True)[0], expected)
    np.testing.assert_allclose(bt.to_protocol_frame(boxes, size)[0],
                               [10 * 224 / 500, 7 * 224 / 375, 333 * 224 / 500, 250 * 224 / 375])
