"""IoU thresholds are percentages, checked in one place (issue 22, item 12).

``max_box_acc(..., iou_thresholds=(0.5,))`` read 0.5 as 0.5 % and returned 100 where the
answer at IoU 0.5 is 33.3; ``(-1,)`` gave 100 and ``(150,)`` 0. Every metric and
``CREAMLocalizer.threshold_curve`` now reads thresholds through ``metrics.iou_percents``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_localizer import TINY, _dataset

from skcream import CREAMLocalizer
from skcream.metrics import (
    BoxAccumulator,
    iou_percents,
    localization_accuracy,
    max_box_acc,
)


def _case():
    """Three 32x32 maps with the GT box [4, 4, 13, 13]: the first map's blob is the box
    (IoU 1), the other two lie in the opposite corner (IoU 0; the whole-image box of
    threshold 0 has IoU 100/1024 < 0.1). MaxBoxAcc at IoU 50 is 1/3 by hand."""
    maps = []
    for corner in (4, 20, 20):
        m = np.zeros((32, 32))
        m[corner:corner + 10, corner:corner + 10] = 1.0
        maps.append(m)
    return maps, [np.array([[4.0, 4.0, 13.0, 13.0]])] * 3


def test_the_hand_computed_case_and_the_fraction_refused():
    maps, boxes = _case()
    assert max_box_acc(maps, boxes, iou_thresholds=(50,))[0] == pytest.approx(100 / 3)
    with pytest.raises(ValueError, match=r"iou_thresholds: IoU thresholds are percentages, "
                                         r"e\.g\. 50 for IoU >= 0\.5, not 0\.5"):
        max_box_acc(maps, boxes, iou_thresholds=(0.5,))
    for bad in ((-1,), (150,), (0,), (50, 101)):
        with pytest.raises(ValueError, match=r"iou_thresholds must be percentages in \(1, 100\]"):
            max_box_acc(maps, boxes, iou_thresholds=bad)
    with pytest.raises(ValueError, match="percentages"):
        BoxAccumulator(iou_thresholds=[0.3, 0.5, 0.7])
    with pytest.raises(ValueError, match=r"iou_threshold: IoU thresholds are percentages"):
        localization_accuracy([[4, 4, 13, 13]], [boxes[0]], [0], [0], iou_threshold=0.5)
    with pytest.raises(TypeError, match="iou_thresholds must be a finite number"):
        max_box_acc(maps, boxes, iou_thresholds=(True,))


def test_threshold_curve_refuses_a_fraction():
    ds = _dataset(8)
    est = CREAMLocalizer(**TINY).fit(ds)
    with pytest.raises(ValueError, match=r"^iou_threshold: IoU thresholds are percentages"):
        est.threshold_curve(ds, iou_threshold=0.5)
    thresholds, curve = est.threshold_curve(ds, iou_threshold=np.float32(50))
    np.testing.assert_array_equal(curve, est.threshold_curve(ds, iou_threshold=50)[1])


@given(st.floats(1.0, 100.0, exclude_min=True), st.sampled_from([float, np.float32,
                                                                  np.float64]))
def test_percentages_are_accepted_in_any_numeric_type(value, kind):
    typed = kind(value)
    if not 1 < float(typed) <= 100:  # float32 rounding at the ends
        return
    assert iou_percents([typed])[0] == float(typed)


@given(st.one_of(st.floats(0.0, 1.0, exclude_min=True), st.floats(-1e6, 0.0),
                 st.floats(100.0, 1e6, exclude_min=True), st.just(float("nan"))))
def test_anything_else_is_one_error_naming_the_argument(value):
    with pytest.raises(ValueError, match="^iou_thresholds"):
        iou_percents((value,))
