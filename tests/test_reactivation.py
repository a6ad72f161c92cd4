"""Tests for skcream.reactivation: EM (Eq. 7-9), calibration (Eq. 10-11), final map (Eq. 12)."""

import math

import pytest
import torch

from skcream.cam import class_activation_maps, normalize_maps
from skcream.context import foreground_background_means
from skcream.reactivation import (
    calibrate,
    em_soft_clustering,
    post_hoc_reactivate,
    reactivate,
)

LN3 = math.log(3.0)


# --------------------------------------------------------------------------- reference
def plain_em(features, fg_init, bg_init, n_iter, sigma, kernel):
    """Eq. 7-9 written plainly: loops over images and pixels, exp, no log space, float64."""
    b, d, h, w = features.shape
    z_fg = torch.zeros(b, h, w, dtype=torch.float64)
    z_bg = torch.zeros(b, h, w, dtype=torch.float64)
    for n in range(b):
        pixels = [features[n, :, i, j].double() for i in range(h) for j in range(w)]
        if kernel == "cosine":
            pixels = [x / x.norm() if x.norm() > 0 else x for x in pixels]
        centroids = [fg_init[n].double(), bg_init[n].double()]
        mix = [0.5, 0.5]
        for t in range(n_iter):
            resp = []
            for x in pixels:  # E-step, Eq. 7-8
                p = []
                for m in range(2):
                    v = centroids[m] / centroids[m].norm() if kernel == "cosine" else centroids[m]
                    p.append(mix[m] * math.exp(float(v @ x) / sigma))
                resp.append([p[0] / (p[0] + p[1]), p[1] / (p[0] + p[1])])
            if t < n_iter - 1:  # M-step, Eq. 9
                for m in range(2):
                    mass = sum(r[m] for r in resp)
                    centroids[m] = sum(r[m] * x for r, x in zip(resp, pixels)) / mass
                    mix[m] = mass / len(pixels)
        for k, r in enumerate(resp):
            z_fg[n, k // w, k % w] = r[0]
            z_bg[n, k // w, k % w] = r[1]
    return z_fg, z_bg


def plain_reactivate(features, cams, fg_ctx, bg_ctx, n_iter, sigma, kernel, fg_threshold=0.2):
    """Eq. 10-12 written plainly on top of ``plain_em``; returns (calibrated, final)."""
    z_fg, z_bg = plain_em(features, fg_ctx, bg_ctx, n_iter, sigma, kernel)
    cal = torch.zeros_like(z_fg)
    final = torch.zeros_like(z_fg)
    for n in range(features.shape[0]):
        cam = cams[n].double()
        mask = cam >= fg_threshold * cam.max()
        zbar_fg = float(z_fg[n][mask].sum()) / int(mask.sum())
        zbar_bg = float(z_bg[n][mask].sum()) / int(mask.sum())
        cal[n] = z_fg[n] if zbar_fg >= zbar_bg else z_bg[n]
        final[n] = cal[n] + (cam - cam.min()) / (cam.max() - cam.min())
    return cal, final


def random_case(seed, b=3, d=4, h=3, w=2, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(b, d, h, w, generator=g, dtype=dtype)
    fg = torch.randn(b, d, generator=g, dtype=dtype)
    bg = torch.randn(b, d, generator=g, dtype=dtype)
    cams = torch.randn(b, h, w, generator=g, dtype=dtype).abs()
    return f, cams, fg, bg


# --------------------------------------------------------------------------- hand-computed
def hand_dot_features():
    # d = 1, 2x2 map F = [[ln3, ln3], [0, -ln3]]
    return torch.tensor([[[[LN3, LN3], [0.0, -LN3]]]], dtype=torch.float64)


def test_em_dot_hand_computed_t1():
    # sigma = 1, V^fg = 1, V^bg = 0, a = 1/2 each: Z^fg = e^F / (e^F + 1) = sigmoid(F)
    # F = ln3 -> 3/4 ; F = 0 -> 1/2 ; F = -ln3 -> 1/4
    f = hand_dot_features()
    one = torch.ones(1, 1, dtype=torch.float64)
    z_fg, z_bg = em_soft_clustering(f, one, 0 * one, n_iter=1, sigma=1.0)
    torch.testing.assert_close(z_fg, torch.tensor([[[0.75, 0.75], [0.5, 0.25]]], dtype=torch.float64))
    torch.testing.assert_close(z_bg, 1 - z_fg)


def test_em_dot_hand_computed_t2():
    # From Z^fg(1) = [3/4, 3/4, 1/2, 1/4], Z^bg(1) = [1/4, 1/4, 1/2, 3/4]:
    #   sum Z^fg = 9/4, sum Z^bg = 7/4 -> a^fg = 9/16, a^bg = 7/16
    #   V^fg(2) = (3/4 ln3 + 3/4 ln3 + 0 - 1/4 ln3) / (9/4) = 5/9 ln3
    #   V^bg(2) = (1/4 ln3 + 1/4 ln3 + 0 - 3/4 ln3) / (7/4) = -1/7 ln3
    # Z^fg(2) = sigmoid(ln(9/7) + (5/9 + 1/7) ln3 * F) = sigmoid(ln(9/7) + 44/63 ln3 * F)
    #   F = 0 -> 9/16 exactly ; F = +-ln3 -> sigmoid(ln(9/7) +- 44/63 ln3^2)
    f = hand_dot_features()
    one = torch.ones(1, 1, dtype=torch.float64)
    z_fg, _ = em_soft_clustering(f, one, 0 * one, n_iter=2, sigma=1.0)

    def sig(x):
        return 1 / (1 + math.exp(-x))

    hi = sig(math.log(9 / 7) + 44 / 63 * LN3**2)
    lo = sig(math.log(9 / 7) - 44 / 63 * LN3**2)
    torch.testing.assert_close(z_fg, torch.tensor([[[hi, hi], [9 / 16, lo]]], dtype=torch.float64))


def test_em_cosine_hand_computed_t1():
    # d = 2; pixels (2,0), (0,5), (30,40), (0,0); V^fg = (1,0), V^bg = (0,1), sigma = 1.
    # cosines with fg/bg: (1, 0), (0, 1), (0.6, 0.8), (0, 0)  [zero vector: 0, eps-safe]
    # Z^fg = sigmoid(cos_fg - cos_bg) = sigmoid(1), sigmoid(-1), sigmoid(-0.2), 1/2
    f = torch.tensor([[[[2.0, 0.0], [30.0, 0.0]], [[0.0, 5.0], [40.0, 0.0]]]], dtype=torch.float64)
    fg = torch.tensor([[7.0, 0.0]], dtype=torch.float64)  # norm irrelevant for cosine
    bg = torch.tensor([[0.0, 0.5]], dtype=torch.float64)
    z_fg, z_bg = em_soft_clustering(f, fg, bg, n_iter=1, sigma=1.0, kernel="cosine")
    s = torch.sigmoid(torch.tensor([[[1.0, -1.0], [-0.2, 0.0]]], dtype=torch.float64))
    torch.testing.assert_close(z_fg, s)
    assert torch.isfinite(z_bg).all()


def test_calibrate_and_final_hand_computed():
    # CAM [[4, 1], [0.5, -1]]: delta = 0.8 -> CAM foreground = top row.
    # Z^fg = [[.3, .4], [.9, .8]]: mean on top row 0.35 < Z^bg's 0.65 -> keep Z^bg = [[.7,.6],[.1,.2]]
    # min-max CAM = (M + 1) / 5 = [[1, .4], [.3, 0]] -> final = [[1.7, 1.0], [0.4, 0.2]]
    cams = torch.tensor([[[4.0, 1.0], [0.5, -1.0]]])
    z_fg = torch.tensor([[[0.3, 0.4], [0.9, 0.8]]])
    cal = calibrate(z_fg, 1 - z_fg, cams)
    torch.testing.assert_close(cal, torch.tensor([[[0.7, 0.6], [0.1, 0.2]]]))
    torch.testing.assert_close(cal + normalize_maps(cams), torch.tensor([[[1.7, 1.0], [0.4, 0.2]]]))
    # swapping the posteriors swaps nothing in the answer
    torch.testing.assert_close(calibrate(1 - z_fg, z_fg, cams), cal)


def test_reactivate_hand_computed_outputs():
    # The dot example above with CAM = F: delta = 0.2 ln3 -> CAM foreground = top row.
    # T = 1: Z^fg top row = 3/4 > 1/4 -> calibrated = Z^fg = [[.75, .75], [.5, .25]]
    # min-max CAM = (F + ln3) / (2 ln3) = [[1, 1], [.5, 0]] -> final = [[1.75, 1.75], [1, .25]]
    f = hand_dot_features()
    cams = f[:, 0]
    one = torch.ones(1, 1, dtype=torch.float64)
    kw = dict(n_iter=1, sigma=1.0)
    expect_cal = torch.tensor([[[0.75, 0.75], [0.5, 0.25]]], dtype=torch.float64)
    torch.testing.assert_close(reactivate(f, cams, one, 0 * one, output="posterior", **kw), expect_cal)
    torch.testing.assert_close(reactivate(f, cams, one, 0 * one, output="calibrated", **kw), expect_cal)
    torch.testing.assert_close(
        reactivate(f, cams, one, 0 * one, **kw),
        torch.tensor([[[1.75, 1.75], [1.0, 0.25]]], dtype=torch.float64),
    )
    # swapped embeddings: posterior flips, calibration flips it back
    torch.testing.assert_close(reactivate(f, cams, 0 * one, one, output="posterior", **kw), 1 - expect_cal)
    torch.testing.assert_close(reactivate(f, cams, 0 * one, one, output="calibrated", **kw), expect_cal)


# --------------------------------------------------------------------------- reference comparison
@pytest.mark.parametrize("kernel", ["dot", "cosine"])
@pytest.mark.parametrize("n_iter", [1, 2, 3])
@pytest.mark.parametrize("sigma", [0.5, 8.0])
def test_em_matches_plain_float64(kernel, n_iter, sigma):
    f, cams, fg, bg = random_case(10 + n_iter)
    z_fg, z_bg = em_soft_clustering(f, fg, bg, n_iter=n_iter, sigma=sigma, kernel=kernel)
    ref_fg, ref_bg = plain_em(f, fg, bg, n_iter, sigma, kernel)
    torch.testing.assert_close(z_fg, ref_fg, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(z_bg, ref_bg, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kernel", ["dot", "cosine"])
def test_reactivate_matches_plain_float64(kernel):
    f, cams, fg, bg = random_case(20, b=4, d=5, h=4, w=3)
    cal, final = plain_reactivate(f, cams, fg, bg, 2, 2.0, kernel)
    kw = dict(n_iter=2, sigma=2.0, kernel=kernel)
    torch.testing.assert_close(reactivate(f, cams, fg, bg, output="calibrated", **kw), cal)
    torch.testing.assert_close(reactivate(f, cams, fg, bg, **kw), final)


def test_float32_close_to_float64_reference():
    f, cams, fg, bg = random_case(21, dtype=torch.float32)
    z_fg, _ = em_soft_clustering(f, fg, bg, n_iter=2, sigma=1.0)
    assert z_fg.dtype == torch.float32
    ref, _ = plain_em(f, fg, bg, 2, 1.0, "dot")
    torch.testing.assert_close(z_fg.double(), ref, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- invariants
@pytest.mark.parametrize("kernel", ["dot", "cosine"])
@pytest.mark.parametrize("output", ["final", "calibrated", "posterior", "cam"])
def test_batch_equals_one_by_one(kernel, output):
    f, cams, fg, bg = random_case(30, b=5, d=6, h=4, w=4, dtype=torch.float32)
    batched = reactivate(f, cams, fg, bg, kernel=kernel, output=output, sigma=1.0)
    for n in range(5):
        single = reactivate(
            f[n : n + 1], cams[n : n + 1], fg[n : n + 1], bg[n : n + 1],
            kernel=kernel, output=output, sigma=1.0,
        )
        torch.testing.assert_close(batched[n : n + 1], single, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kernel", ["dot", "cosine"])
def test_pixel_permutation_equivariance(kernel):
    f, cams, fg, bg = random_case(31, b=3, d=5, h=4, w=5)
    perm = torch.randperm(20, generator=torch.Generator().manual_seed(0))
    f_p = f.reshape(3, 5, 20)[:, :, perm].reshape(3, 5, 4, 5)
    cams_p = cams.reshape(3, 20)[:, perm].reshape(3, 4, 5)
    for output in ("final", "posterior"):
        out = reactivate(f, cams, fg, bg, kernel=kernel, output=output, sigma=2.0)
        out_p = reactivate(f_p, cams_p, fg, bg, kernel=kernel, output=output, sigma=2.0)
        torch.testing.assert_close(out_p, out.reshape(3, 20)[:, perm].reshape(3, 4, 5))


def test_calibration_picks_z_bg_when_background_cluster_sits_on_cam_foreground():
    # 4x4 map, d = 2. Left half: object, features ~ (0, 1), high CAM. Right half: ~ (1, 0).
    # The "fg" embedding points at the right half, so Z^fg is high on the background
    # and calibration must return Z^bg, which is high on the CAM foreground.
    g = torch.Generator().manual_seed(40)
    f = torch.zeros(2, 2, 4, 4)
    f[:, 1, :, :2] = 1.0
    f[:, 0, :, 2:] = 1.0
    f += 0.05 * torch.rand(2, 2, 4, 4, generator=g)
    cams = torch.zeros(2, 4, 4)
    cams[:, :, :2] = 3.0
    right, left = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    fg_ctx = torch.stack([right, left])  # sample 0: swapped clusters; sample 1: correct ones
    bg_ctx = torch.stack([left, right])
    for kernel in ("dot", "cosine"):
        z_fg, z_bg = em_soft_clustering(f, fg_ctx, bg_ctx, kernel=kernel, sigma=0.1)
        assert float(z_fg[0, :, :2].mean()) < 0.5 < float(z_bg[0, :, :2].mean())
        cal = calibrate(z_fg, z_bg, cams)
        assert torch.equal(cal[0], z_bg[0]) and torch.equal(cal[1], z_fg[1])
        assert float(cal[:, :, :2].min()) > 0.5 > float(cal[:, :, 2:].max())


def test_calibrate_empty_cam_foreground_keeps_z_fg():
    z_fg = torch.tensor([[[0.1, 0.2], [0.3, 0.4]]])
    cams = torch.tensor([[[-1.0, -2.0], [-3.0, -4.0]]])  # max < 0: empty foreground
    out = calibrate(z_fg, 1 - z_fg, cams)
    assert torch.equal(out, z_fg)
    f = torch.rand(1, 3, 2, 2)
    final = reactivate(f, cams, torch.rand(1, 3), torch.rand(1, 3))
    assert torch.isfinite(final).all()


# --------------------------------------------------------------------------- numerics
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kernel", ["dot", "cosine"])
@pytest.mark.parametrize("sigma", [1e-4, 1e4])
@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_extreme_sigma_and_magnitude_stay_finite(dtype, kernel, sigma, scale):
    f, cams, fg, bg = random_case(50, b=2, d=16, h=5, w=5, dtype=dtype)
    f, fg, bg = f * scale, fg * scale, bg * scale
    for n_iter in (1, 2, 4):
        z_fg, z_bg = em_soft_clustering(f, fg, bg, n_iter=n_iter, sigma=sigma, kernel=kernel)
        assert torch.isfinite(z_fg).all() and torch.isfinite(z_bg).all()
        assert float(z_fg.min()) >= 0 and float(z_fg.max()) <= 1
        torch.testing.assert_close(z_fg + z_bg, torch.ones_like(z_fg))
    for output in ("final", "calibrated", "posterior"):
        assert torch.isfinite(reactivate(f, cams, fg, bg, sigma=sigma, kernel=kernel, output=output)).all()


def test_tiny_sigma_gives_hard_assignment_where_naive_formula_is_nan():
    # dot kernel, T = 1: Z^fg = 1 exactly where (V^fg - V^bg) . F > 0, else 0.
    f, _, fg, bg = random_case(51, b=2, d=8, h=4, w=4, dtype=torch.float32)
    f, fg, bg = f * 1e4, fg * 1e4, bg * 1e4
    z_fg, _ = em_soft_clustering(f, fg, bg, n_iter=1, sigma=1e-4)
    expect = (torch.einsum("bd,bdhw->bhw", fg - bg, f) > 0).float()
    assert torch.equal(z_fg, expect)
    # the naive exp form overflows here, which is why the E-step is in log space
    naive = torch.exp(torch.einsum("bd,bdhw->bhw", fg, f) / 1e-4)
    naive = naive / (naive + torch.exp(torch.einsum("bd,bdhw->bhw", bg, f) / 1e-4))
    assert not torch.isfinite(naive).all()


def test_collapsed_cluster_keeps_finite_values():
    # identical pixels + tiny sigma: every pixel goes to fg, the bg cluster gets zero mass.
    f = torch.ones(1, 3, 4, 4)
    z_fg, z_bg = em_soft_clustering(f, torch.ones(1, 3), torch.zeros(1, 3), n_iter=4, sigma=1e-4)
    assert torch.equal(z_fg, torch.ones(1, 4, 4)) and torch.equal(z_bg, torch.zeros(1, 4, 4))


def test_huge_sigma_gives_mixing_prior():
    # sigma -> inf: kernels vanish, Z = a = 1/2 at every iteration
    f, _, fg, bg = random_case(52)
    z_fg, _ = em_soft_clustering(f, fg, bg, n_iter=3, sigma=1e12)
    torch.testing.assert_close(z_fg, torch.full_like(z_fg, 0.5))


# --------------------------------------------------------------------------- API behaviour
def test_n_iter_zero_is_plain_cam_for_every_output():
    f, cams, fg, bg = random_case(60)
    for output in ("final", "calibrated", "posterior", "cam"):
        torch.testing.assert_close(reactivate(f, cams, fg, bg, n_iter=0, output=output), normalize_maps(cams))
    with pytest.raises(ValueError, match="n_iter"):
        em_soft_clustering(f, fg, bg, n_iter=0)


def test_final_is_calibrated_plus_normalized_cam_and_dtype():
    f, cams, fg, bg = random_case(61)
    final = reactivate(f, cams, fg, bg)
    assert final.dtype == torch.float64 and final.shape == cams.shape
    torch.testing.assert_close(final, reactivate(f, cams, fg, bg, output="calibrated") + normalize_maps(cams))
    # mixed precision inputs promote
    z_fg, _ = em_soft_clustering(f.float(), fg, bg.float())
    assert z_fg.dtype == torch.float64


def test_post_hoc_equals_reactivate_from_own_means():
    f, _, _, _ = random_case(62, b=3, d=4, h=4, w=4)
    weight = torch.randn(5, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    labels = torch.tensor([4, 0, 4])
    cams = class_activation_maps(f, weight, labels)
    fg, bg, _, _ = foreground_background_means(f, cams)
    for kernel in ("dot", "cosine"):
        torch.testing.assert_close(
            post_hoc_reactivate(f, weight, labels, kernel=kernel),
            reactivate(f, cams, fg, bg, kernel=kernel),
        )


def test_post_hoc_reactivates_the_whole_object():
    # 6x6 image, d = 3. Object = rows 1-4, cols 1-4 (16 px), features ~ (1, 0.2, 0) in direction;
    # its "discriminative" 2x2 core (rows 2-3, cols 2-3) is 5x stronger. Background ~ (0, 0, 1).
    # Classifier weight (1, 0, 0): CAM = 5 on the core, 1 on the rest of the object, 0 outside;
    # delta = 0.2 * 5 = 1 keeps the whole object already, so use fg_threshold 0.5 (delta 2.5):
    # the CAM foreground is only the core, the re-activated map covers the whole object.
    g = torch.Generator().manual_seed(63)
    f = torch.zeros(1, 3, 6, 6)
    f[0, 2] = 1.0
    f[0, :, 1:5, 1:5] = torch.tensor([1.0, 0.2, 0.0])[:, None, None]
    f[0, :, 2:4, 2:4] *= 5
    f += 0.05 * torch.rand(1, 3, 6, 6, generator=g)
    weight = torch.tensor([[1.0, 0.0, 0.0]])
    obj = torch.zeros(6, 6, dtype=torch.bool)
    obj[1:5, 1:5] = True
    cam = class_activation_maps(f, weight, torch.tensor([0]))[0]
    assert int((cam >= 0.5 * cam.max()).sum()) == 4  # CAM alone: the core only
    for kernel, sigma in (("cosine", 0.1), ("dot", 0.1)):
        cal = post_hoc_reactivate(f, weight, torch.tensor([0]), kernel=kernel, sigma=sigma,
                                  fg_threshold=0.5, output="calibrated")[0]
        assert float(cal[obj].min()) > 0.5 > float(cal[~obj].max()), kernel


def test_validation_errors():
    f, cams, fg, bg = random_case(70)
    with pytest.raises(TypeError, match="n_iter"):
        reactivate(f, cams, fg, bg, n_iter=1.5)
    with pytest.raises(TypeError, match="n_iter"):
        reactivate(f, cams, fg, bg, n_iter=True)
    with pytest.raises(ValueError, match="n_iter"):
        reactivate(f, cams, fg, bg, n_iter=-1)
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="sigma"):
            reactivate(f, cams, fg, bg, sigma=bad)
    with pytest.raises(ValueError, match="kernel"):
        reactivate(f, cams, fg, bg, kernel="rbf")
    with pytest.raises(ValueError, match="output"):
        reactivate(f, cams, fg, bg, output="map")
    with pytest.raises(ValueError, match="cams"):
        reactivate(f, cams[:, :2], fg, bg)
    with pytest.raises(ValueError, match="fg_ctx"):
        reactivate(f, cams, fg[:2], bg)
    with pytest.raises(ValueError, match="bg_init"):
        em_soft_clustering(f, fg, bg[:, :2])
    with pytest.raises(ValueError, match="fg_threshold"):
        reactivate(f, cams, fg, bg, fg_threshold=1.2)
    bad_f = f.clone()
    bad_f[2, 0, 0, 0] = math.nan
    with pytest.raises(ValueError, match="sample 2"):
        reactivate(bad_f, cams, fg, bg)
    with pytest.raises(ValueError, match="z_bg"):
        calibrate(cams, cams[:, :1], cams)
    with pytest.raises(ValueError, match=r"labels\[1\] = 9"):
        post_hoc_reactivate(f, torch.rand(5, 4, dtype=torch.float64), torch.tensor([0, 9, 1]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    f, cams, fg, bg = random_case(80, dtype=torch.float32)
    cpu = reactivate(f, cams, fg, bg)
    gpu = reactivate(f.cuda(), cams.cuda(), fg.cuda(), bg.cuda())
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=1e-5)
