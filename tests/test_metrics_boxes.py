"""The component-tree boxes of skcream._boxes against per-level connected-component labelling."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage as ndi

from skcream._boxes import level_component_boxes


def _brute(img: np.ndarray, connectivity: int) -> list[tuple[int, ...]]:
    out = []
    for level in range(255):
        binary = (img > level).astype(np.uint8)
        n, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=connectivity)
        for i in range(1, n):
            x, y, w, h = stats[i, :4]
            out.append((level, int(x), int(y), int(x + w - 1), int(y + h - 1)))
    return sorted(out)


def _tree(img: np.ndarray, connectivity: int) -> list[tuple[int, ...]]:
    levels, boxes = level_component_boxes(img, connectivity)
    return sorted((int(lv), *map(int, b)) for lv, b in zip(levels, boxes))


@pytest.mark.parametrize("connectivity", [8, 4])
@pytest.mark.parametrize("seed", range(6))
def test_equals_per_level_labelling(connectivity, seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 30, 2)
    imgs = [
        rng.integers(0, 256, (h, w)).astype(np.uint8),
        (rng.integers(0, 4, (h, w)) * 60).astype(np.uint8),  # plateaus
        (255 * ndi.gaussian_filter(rng.random((h, w)), 2) / 1.0).clip(0, 255).astype(np.uint8),
    ]
    for img in imgs:
        assert _tree(img, connectivity) == _brute(img, connectivity)


@settings(max_examples=40, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 12), st.integers(1, 12)),
              elements=st.sampled_from([0, 1, 2, 100, 254, 255])),
       st.sampled_from([4, 8]))
def test_property_small_images(img, connectivity):
    assert _tree(img, connectivity) == _brute(img, connectivity)


def test_single_pixel_and_constant_images():
    assert _tree(np.array([[7]], np.uint8), 8) == [(lv, 0, 0, 0, 0) for lv in range(7)]
    assert _tree(np.full((3, 5), 2, np.uint8), 4) == [(0, 0, 0, 4, 2), (1, 0, 0, 4, 2)]
    with pytest.raises(ValueError, match="uint8"):
        level_component_boxes(np.zeros((3, 3)), 8)
    with pytest.raises(ValueError, match="connectivity"):
        level_component_boxes(np.zeros((3, 3), np.uint8), 6)
