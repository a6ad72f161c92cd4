"""Tests for skcream.cam: Eq. 1-2, min-max normalisation and upsampling."""

import math

import pytest
import torch

from skcream.cam import class_activation_maps, normalize_maps, upsample_maps


def test_cam_hand_computed_2x2():
    # d = 2 channels, 2x2 map; class 1 has weight (2, -1):
    # M = 2 * f_0 - f_1 = 2*[[1,0],[2,3]] - [[0,1],[1,1]] = [[2,-1],[3,5]]
    f = torch.tensor([[[[1.0, 0.0], [2.0, 3.0]], [[0.0, 1.0], [1.0, 1.0]]]])
    weight = torch.tensor([[1.0, 1.0], [2.0, -1.0]])
    cam = class_activation_maps(f, weight, torch.tensor([1]))
    assert torch.equal(cam, torch.tensor([[[2.0, -1.0], [3.0, 5.0]]]))


def test_cam_matches_loop_and_all_classes():
    g = torch.Generator().manual_seed(0)
    f = torch.randn(3, 4, 5, 6, generator=g, dtype=torch.float64)
    weight = torch.randn(7, 4, generator=g, dtype=torch.float64)
    labels = torch.tensor([6, 0, 6])
    all_maps = class_activation_maps(f, weight)
    assert all_maps.shape == (3, 7, 5, 6)
    picked = class_activation_maps(f, weight, labels)
    for b in range(3):
        for c in range(7):
            ref = sum(weight[c, k] * f[b, k] for k in range(4))
            torch.testing.assert_close(all_maps[b, c], ref)
        torch.testing.assert_close(picked[b], all_maps[b, labels[b]])


def test_cam_sum_is_class_score_eq2():
    # Eq. 2: S_c = sum_k w_k^c sum_ij f_k(ij) = sum_ij M_c(ij); i.e. GAP then linear (no bias) x hw.
    g = torch.Generator().manual_seed(1)
    f = torch.rand(2, 8, 3, 4, generator=g, dtype=torch.float64)
    weight = torch.randn(5, 8, generator=g, dtype=torch.float64)
    logits = f.mean(dim=(2, 3)) @ weight.T
    maps = class_activation_maps(f, weight)
    torch.testing.assert_close(maps.sum(dim=(2, 3)), logits * 12)


def test_cam_bad_input():
    f = torch.rand(2, 3, 4, 4)
    with pytest.raises(ValueError, match="weight"):
        class_activation_maps(f, torch.rand(5, 4))
    with pytest.raises(ValueError, match="features"):
        class_activation_maps(torch.rand(3, 4, 4), torch.rand(5, 3))
    with pytest.raises(ValueError, match=r"labels\[1\] = 5"):
        class_activation_maps(f, torch.rand(5, 3), torch.tensor([0, 5]))
    with pytest.raises(ValueError, match=r"labels\[0\] = -1"):
        class_activation_maps(f, torch.rand(5, 3), torch.tensor([-1, 0]))
    with pytest.raises(TypeError, match="labels"):
        class_activation_maps(f, torch.rand(5, 3), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="labels"):
        class_activation_maps(f, torch.rand(5, 3), torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="features"):
        class_activation_maps(f.numpy(), torch.rand(5, 3))


def test_normalize_hand_computed():
    maps = torch.tensor([[[2.0, -1.0], [3.0, 5.0]], [[1.0, 1.0], [1.0, 1.0]]])
    out = normalize_maps(maps)
    # (x - (-1)) / (5 - (-1)) = [[3/6, 0], [4/6, 1]]; constant map -> zeros
    torch.testing.assert_close(out[0], torch.tensor([[0.5, 0.0], [4 / 6, 1.0]]))
    assert torch.equal(out[1], torch.zeros(2, 2))


def test_normalize_nan_and_inf_maps_become_zero_others_untouched():
    maps = torch.tensor([[[0.0, math.nan], [1.0, 2.0]], [[0.0, math.inf], [1.0, 2.0]], [[0.0, 4.0], [1.0, 2.0]]])
    out = normalize_maps(maps)
    assert torch.equal(out[0], torch.zeros(2, 2))
    assert torch.equal(out[1], torch.zeros(2, 2))
    torch.testing.assert_close(out[2], torch.tensor([[0.0, 1.0], [0.25, 0.5]]))


def test_normalize_invariant_to_positive_affine_maps_and_float64():
    g = torch.Generator().manual_seed(2)
    maps = torch.randn(4, 5, 6, generator=g, dtype=torch.float64)
    out = normalize_maps(maps)
    assert out.dtype == torch.float64
    torch.testing.assert_close(normalize_maps(3.5 * maps - 7.0), out)
    assert torch.all(out.amin(dim=(1, 2)) == 0) and torch.all(out.amax(dim=(1, 2)) == 1)


def test_upsample_bilinear_hand_computed():
    # align_corners=False: output x -> source (x + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25,
    # clamped to [0, 1]: values 0, 0.25, 0.75, 1 for the ramp [0, 1].
    maps = torch.tensor([[[0.0, 1.0], [0.0, 1.0]]])
    out = upsample_maps(maps, (4, 4), mode="bilinear")
    assert out.shape == (1, 4, 4)
    torch.testing.assert_close(out, torch.tensor([0.0, 0.25, 0.75, 1.0]).expand(1, 4, 4))


def test_upsample_constant_and_int_size():
    maps = torch.full((2, 3, 3), 0.7, dtype=torch.float64)
    out = upsample_maps(maps, 8)
    assert out.shape == (2, 8, 8) and out.dtype == torch.float64
    torch.testing.assert_close(out, torch.full((2, 8, 8), 0.7, dtype=torch.float64))
    same = torch.rand(1, 5, 5)
    torch.testing.assert_close(upsample_maps(same, (5, 5)), same)


def test_upsample_bad_input():
    with pytest.raises(ValueError, match="mode"):
        upsample_maps(torch.rand(1, 2, 2), 4, mode="cubic")
    with pytest.raises(ValueError, match="size"):
        upsample_maps(torch.rand(1, 2, 2), (4, 4, 4))
    with pytest.raises(ValueError, match="size"):
        upsample_maps(torch.rand(1, 2, 2), 0)
    with pytest.raises(ValueError, match="maps"):
        upsample_maps(torch.rand(2, 2), 4)
