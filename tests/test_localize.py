"""skcream.localize: protocol maps and maps -> boxes/masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from skcream.localize import Localization, maps_to_localization, protocol_maps
from skcream.metrics import boxes_from_scoremap


def test_protocol_maps_matches_plain_torch_and_min_max():
    rng = np.random.default_rng(0)
    small = rng.random((3, 7, 5))
    small[1] = 0.4  # constant -> zeros
    small[2, 1, 1] = np.nan  # NaN -> zeros
    out = protocol_maps(small, size=(20, 16))
    assert out.shape == (3, 20, 16) and out.dtype == np.float64
    up = F.interpolate(torch.as_tensor(small[:1])[:, None], size=(20, 16), mode="bicubic",
                       align_corners=False)[:, 0].numpy()
    exp = (up - up.min()) / (up.max() - up.min())
    np.testing.assert_allclose(out[0], exp[0], atol=1e-12)
    assert out[0].min() == 0.0 and out[0].max() == 1.0
    assert not out[1].any() and not out[2].any()
    # a sequence of maps of different sizes, and a tensor input
    seq = protocol_maps([small[0], rng.random((3, 4))], size=20)
    assert seq.shape == (2, 20, 20)
    np.testing.assert_allclose(protocol_maps(torch.as_tensor(small[:1]), (20, 16)), out[:1])
    with pytest.raises(ValueError, match=r"maps\[1\]"):
        protocol_maps([small[0], np.zeros((2, 2, 2))])


def test_maps_to_localization_uses_single_contour_rule():
    rng = np.random.default_rng(1)
    maps = [rng.random((12, 9)), np.zeros((5, 6)), np.linspace(0, 1, 64).reshape(8, 8)]
    loc = maps_to_localization(maps, 0.5, labels=[3, 1, 2], scores=[0.9, 0.2, 0.5])
    assert isinstance(loc, Localization) and len(loc) == 3
    for i, m in enumerate(maps):
        assert loc.boxes[i].tolist() == boxes_from_scoremap(m, [0.5])[0][0].tolist()
        q = (m * 255).astype(np.uint8)
        assert np.array_equal(loc.masks[i], q > int(0.5 * q.max()))
    assert loc.boxes[1].tolist() == [0, 0, 0, 0] and not loc.masks[1].any()
    item = loc[2]
    assert item["label"] == 2 and item["score"] == 0.5 and item["box"].shape == (4,)
    assert len(loc[:2]) == 2 and loc[:2].scores.tolist() == [0.9, 0.2]
    with pytest.raises(IndexError):
        loc[3]


def test_maps_to_localization_validation():
    with pytest.raises(ValueError, match="labels has 1"):
        maps_to_localization([np.zeros((3, 3))] * 2, 0.5, [1])
    with pytest.raises(ValueError, match=r"maps\[0\].*NaN"):
        maps_to_localization([np.full((3, 3), np.nan)], 0.5, [1])
    with pytest.raises(ValueError, match="threshold"):
        maps_to_localization([np.zeros((3, 3))], 1.0, [1])
    with pytest.raises(ValueError, match="scores has 2"):
        maps_to_localization([np.zeros((3, 3))], 0.2, [1], scores=[0.1, 0.2])
