"""skcream.metrics against hand-computed facts and a plain re-implementation of the reference."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from skcream import metrics as M

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "wsol_reference.py"
_spec = importlib.util.spec_from_file_location("wsol_reference", _PATH)
ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ref)

MAP_A = np.array([[0, 0, 0, 0, 0], [0, .4, .4, .4, .6], [0, .4, 1, .8, .6], [0, .4, .4, .4, .6]])
MAP_B = np.array([[.4, 0, .2, .2, .2], [.4, .4, 0, .4, 0], [0, 0, 0, .4, 0], [1, .6, .8, .2, .2]])
THRESHOLDS = [0, .2, .4, .6, .8]


# ----------------------------------------------------------------------------- map families
def _family(kind: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    if kind == "smooth":
        x = ndi.gaussian_filter(rng.random((h, w)), 2.0)
    elif kind == "noise":
        x = rng.random((h, w))
    elif kind == "plateaus":
        x = rng.integers(0, 4, (h, w)) / 3.0
    elif kind == "rings":  # rings with holes and islands inside holes
        r = np.hypot(yy - h / 2 + rng.random(), xx - w / 2 + rng.random())
        x = np.cos(r / rng.uniform(1.0, 2.5)) ** 2
    elif kind == "blobs":
        x = np.zeros((h, w))
        for _ in range(rng.integers(1, 4)):
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
            x += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / rng.uniform(4, 40))
    else:  # "thin": one-pixel lines and dots on a smooth background
        x = 0.3 * ndi.gaussian_filter(rng.random((h, w)), 3.0)
        x[rng.integers(0, h), :] = 0.9
        x[:, rng.integers(0, w)] = 0.7
        x[rng.integers(0, h, 5), rng.integers(0, w, 5)] = 1.0
    x = x - x.min()
    return x / x.max() if x.max() > 0 else x


def _gt(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    boxes = []
    for _ in range(rng.integers(1, 4)):
        x0, x1 = np.sort(rng.integers(0, w, 2))
        y0, y1 = np.sort(rng.integers(0, h, 2))
        boxes.append([x0, y0, x1, y1])
    return np.array(boxes)


KINDS = ["smooth", "noise", "plateaus", "rings", "blobs", "thin"]


def _dataset(seed: int, n: int, size=(6, 40)):
    rng = np.random.default_rng(seed)
    maps, gts = [], []
    for i in range(n):
        h, w = rng.integers(size[0], size[1], 2)  # non-square
        maps.append(_family(KINDS[i % len(KINDS)], int(h), int(w), rng))
        gts.append(_gt(int(h), int(w), rng))
    return maps, gts


# ----------------------------------------------------------------------------- hand facts
def test_box_iou_hand_values():
    assert M.box_iou([[1, 2, 5, 6]], [[3, 1, 4, 5]])[0, 0] == pytest.approx(8 / 27)
    assert M.box_iou([[0, 0, 0, 0]], [[0, 0, 0, 0]])[0, 0] == 1.0
    assert M.box_iou([[0, 0, 1, 1]], [[5, 5, 6, 6]])[0, 0] == 0.0
    iou = M.box_iou(np.zeros((3, 4)), np.ones((2, 4)))
    assert iou.shape == (3, 2)


@pytest.mark.parametrize("multi", [False, True])
def test_reference_facts_single_contour(multi):
    a = M.boxes_from_scoremap(MAP_A, THRESHOLDS, multi_contour=False)
    assert [b[0].tolist() for b in a] == [[1, 1, 4, 3], [1, 1, 4, 3], [2, 1, 4, 3],
                                          [2, 2, 4, 3], [2, 2, 3, 3]]
    b = M.boxes_from_scoremap(MAP_B, THRESHOLDS, multi_contour=False)
    assert [x[0].tolist() for x in b] == [[0, 0, 4, 3], [0, 0, 2, 2], [0, 3, 3, 3],
                                          [2, 3, 3, 3], [0, 3, 1, 3]]
    # multi-contour lists are the reference's, in the reference's order
    for m in (MAP_A, MAP_B):
        got = M.boxes_from_scoremap(m, THRESHOLDS, multi_contour=multi)
        exp, _ = ref.compute_bboxes_from_scoremaps(m, THRESHOLDS, multi)
        assert [g.tolist() for g in got] == [e.tolist() for e in exp]


def test_all_zero_map_gives_zero_box_and_nan_raises():
    boxes = M.boxes_from_scoremap(np.zeros((7, 9)), np.arange(0, 1, 0.1), multi_contour=True)
    assert all(b.tolist() == [[0, 0, 0, 0]] for b in boxes)
    # below 1/255 quantises to 0 as well: the [0,0,0,0] box covers (0,0) and counts as a hit
    tiny = np.full((5, 5), 1 / 300)
    assert M.max_box_acc([tiny], [[[0, 0, 0, 0]]], iou_thresholds=(50,)).tolist() == [100.0]
    bad = np.zeros((4, 4))
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        M.boxes_from_scoremap(bad, [0.5])


def test_pxap_perfect_and_constant():
    rng = np.random.default_rng(0)
    masks = [(rng.random((10, 12)) > 0.6).astype(np.uint8) for _ in range(3)]
    perfect = [m.astype(np.float64) for m in masks]
    assert M.pxap(perfect, masks) == 100.0
    masks[0][:2, :2] = 255  # ignored
    const = [np.full((10, 12), 0.3) for _ in range(3)]
    pos = sum((m == 1).sum() for m in masks)
    neg = sum((m == 0).sum() for m in masks)
    assert M.pxap(const, masks) == pytest.approx(100 * pos / (pos + neg), rel=1e-12)


def test_hot_pixel_and_plateau_boxes():
    m = np.zeros((240, 240))
    m[120:200, 100:210] = 1.0
    assert M.boxes_from_scoremap(m, [0.5])[0].tolist() == [[100, 120, 210, 200]]
    m = np.zeros((9, 9))
    m[3, 4] = 1.0
    assert M.boxes_from_scoremap(m, [0.5])[0].tolist() == [[4, 3, 5, 4]]


def test_ring_gives_outer_box_twice_in_multi_contour():
    m = np.zeros((9, 9))
    m[2:7, 2:7] = 1.0
    m[3:6, 3:6] = 0.0
    m[4, 4] = 1.0  # an island inside the hole
    boxes = sorted(M.boxes_from_scoremap(m, [0.5], multi_contour=True)[0].tolist())
    # outer border, hole border (hole 3..5 -> [2,2,7,7]) and the island
    assert boxes == sorted([[2, 2, 7, 7], [2, 2, 7, 7], [4, 4, 5, 5]])


# ----------------------------------------------------------------------------- equality with the reference
@pytest.mark.parametrize("interval", [0.01, 0.001])
@pytest.mark.parametrize("multi", [True, False])
def test_box_acc_curve_equals_reference(interval, multi):
    # the reference is quadratic in the number of boxes: keep the 0.001 case small
    n, size = (24, (6, 40)) if interval == 0.01 else (12, (5, 18))
    maps, gts = _dataset(seed=int(interval * 1000) + multi, n=n, size=size)
    thresholds, acc = M.box_acc_curve(maps, gts, cam_curve_interval=interval,
                                      multi_contour=multi)
    exp = ref.box_accuracies(maps, gts, list(np.arange(0, 1, interval)), (30, 50, 70), multi)
    assert np.array_equal(thresholds, np.arange(0, 1, interval))
    for j, d in enumerate((30, 50, 70)):
        assert np.array_equal(acc[j], exp[d])
    mba = M.max_box_acc(maps, gts, cam_curve_interval=interval, multi_contour=multi)
    assert mba.tolist() == ref.max_box_acc(maps, gts, interval, (30, 50, 70), multi)


def test_max_box_acc_v2_is_mean_and_original_is_single_50():
    maps, gts = _dataset(seed=5, n=12)
    three = ref.max_box_acc(maps, gts, 0.01, (30, 50, 70), True)
    assert M.max_box_acc_v2(maps, gts) == float(np.average(three))
    orig = ref.max_box_acc(maps, gts, 0.01, (50,), False)
    assert M.max_box_acc(maps, gts, iou_thresholds=(50,), multi_contour=False).tolist() == orig


@pytest.mark.parametrize("multi", [True, False])
def test_boxes_from_scoremap_equals_reference(multi):
    maps, _ = _dataset(seed=11, n=12)
    thr = np.arange(0, 1, 0.05)
    for m in maps:
        got = M.boxes_from_scoremap(m, thr, multi_contour=multi)
        exp, _ = ref.compute_bboxes_from_scoremaps(m, list(thr), multi)
        assert [g.tolist() for g in got] == [e.tolist() for e in exp]


def test_tree_boxes_are_the_contour_boxes_at_every_level():
    maps, _ = _dataset(seed=21, n=18)
    for m in maps:
        q = M.quantise(m)
        lv, boxes = M._predicted_boxes_all_levels(q)
        for level in range(int(q.max())):
            got = sorted(boxes[lv == level].tolist())
            exp = sorted(M.contour_boxes(q, level, True).tolist())
            assert got == exp, level


def test_float32_accepted_and_float64_identical():
    maps, gts = _dataset(seed=3, n=6)
    m32 = [m.astype(np.float32) for m in maps]
    m64 = [m.astype(np.float32).astype(np.float64) for m in maps]
    assert np.array_equal(M.max_box_acc(m32, gts), M.max_box_acc(m64, gts))
    stacked = np.stack([np.resize(m, (20, 20)) for m in maps])
    gts20 = [np.minimum(g, 19) for g in gts]
    assert np.array_equal(M.max_box_acc(stacked, gts20), M.max_box_acc(list(stacked), gts20))


# ----------------------------------------------------------------------------- PxAP
def test_bin_index_matches_numpy_histogram_on_edges():
    for interval in (0.01, 0.001):
        edges = np.append(np.arange(0, 1, interval), [1.0, 2.0, 3.0])
        vals = np.concatenate([
            edges[:-2], np.nextafter(edges[:-2], -1).clip(0), np.nextafter(edges[:-2], 2).clip(0, 1),
            np.arange(101) / 100, np.arange(1001) / 1000, np.arange(256) / 255, [0.35, 1.0, 0.0],
        ])
        k = M._bin_index(vals, edges)
        exp = np.searchsorted(edges, vals, side="right") - 1
        assert np.array_equal(k, exp)
        hist, _ = np.histogram(vals, bins=edges)
        assert np.array_equal(np.bincount(k, minlength=edges.size - 1), hist)


@pytest.mark.parametrize("interval", [0.01, 0.001])
def test_pxap_equals_reference(interval):
    rng = np.random.default_rng(7)
    maps, masks = [], []
    for i in range(10):
        h, w = rng.integers(5, 30, 2)
        m = _family(KINDS[i % len(KINDS)], int(h), int(w), rng)
        if i % 3 == 0:
            m = np.round(m, 2)  # values sitting exactly on decimal edges
        mask = (rng.random((h, w)) > 0.5).astype(np.uint8)
        mask[rng.random((h, w)) > 0.8] = 255
        maps.append(m)
        masks.append(mask)
    assert M.pxap(maps, masks, cam_curve_interval=interval) == ref.pxap(maps, masks, interval)
    masks[3][0, 0] = 7  # the reference ignores any value but 0/1; skcream names it (issue 22)
    with pytest.raises(ValueError, match=r"gt_masks\[3\] holds values \[7\]"):
        M.pxap(maps, masks, cam_curve_interval=interval)
    masks[3][0, 0] = 255
    bool_masks = [mk == 1 for mk in masks]
    assert M.pxap(maps, bool_masks, cam_curve_interval=interval) == ref.pxap(
        maps, [b.astype(np.uint8) for b in bool_masks], interval)


# adversarial PxAP inputs: scores on, and a few ulps either side of, every edge
FAST_INTERVALS = [0.01, 0.001, 0.005, 0.05, 0.25, 2e-5]  # n * interval == 1: brackets
SLOW_INTERVALS = [0.003, 0.3, 0.007]  # n * interval != 1: every pixel searched


def _edge_pool(interval: float) -> np.ndarray:
    """Scores on every edge, i/n, k/255, 0, 1, and 1-3 ulps either side of each."""
    edges = np.append(np.arange(0, 1, interval), [1.0])[:2001]
    n = np.arange(0, 1, interval).size
    base = np.concatenate([edges, np.arange(min(n, 2000) + 1) / n, np.arange(256) / 255,
                           np.arange(101) / 100, [0.0, 1.0, 0.35, 0.5]])
    near = [base]
    for direction in (0.0, 2.0):
        x = base
        for _ in range(3):
            x = np.nextafter(x, direction)
            near.append(x)
    return np.unique(np.clip(np.concatenate(near), 0.0, 1.0))


def _adversarial_set(interval: float, rng: np.random.Generator, n_maps: int = 4):
    pool = _edge_pool(interval)
    maps, masks = [], []
    for _ in range(n_maps):
        h, w = (int(v) for v in rng.integers(8, 40, 2))
        maps.append(rng.choice(pool, size=(h, w)))
        mask = rng.choice(np.array([0, 1, 1, 0, 255], np.uint8), size=(h, w))
        mask[0, 0] = 1
        masks.append(mask)
    return maps, masks


@pytest.mark.parametrize("interval", FAST_INTERVALS + SLOW_INTERVALS)
def test_pxap_exact_on_edges_and_their_neighbours(interval):
    maps, masks = _adversarial_set(interval, np.random.default_rng(11))
    assert M.pxap(maps, masks, cam_curve_interval=interval) == ref.pxap(maps, masks, interval)
    assert M._pxap_bins(interval).fast == (interval in FAST_INTERVALS)  # both code paths


@pytest.mark.parametrize("interval", FAST_INTERVALS + SLOW_INTERVALS)
def test_pxap_bins_equal_searchsorted_on_edges(interval):
    bins = M._pxap_bins(interval)
    s = _edge_pool(interval)
    exact = np.searchsorted(bins.edges, s, side="right") - 1
    assert np.array_equal(np.histogram(s, bins.edges)[0], np.bincount(exact, minlength=bins.n + 2))
    assert np.array_equal(M._bin_index(s, bins.edges), exact)
    # the compiled counts, where the bracketing products decide too: on, ulps from and
    # (1 -+ 1e-9..4e-9) times every edge, as positives and as negatives
    e = bins.edges[1 : bins.n + 1]
    s = np.unique(np.clip(np.concatenate(
        [s] + [e * (1 + d * 1e-9) for d in (-4, -2, -1, 1, 2, 4)]), 0.0, 1.0))
    hist = np.histogram(s, bins.edges)[0][: bins.n + 1]
    for cls in (0, 1):
        counts = M._pxap_counts([(0, s.reshape(1, -1), np.full((1, s.size), cls, np.uint8))],
                                bins)
        assert np.array_equal(counts[(bins.n + 1) * cls : (bins.n + 1) * (cls + 1)], hist)
        assert counts.sum() == s.size


def test_pxap_batches_give_identical_numbers():
    rng = np.random.default_rng(5)
    maps, masks = _adversarial_set(0.01, rng, n_maps=7)
    maps += [_family(k, 30, 33, rng) for k in KINDS]
    masks += [rng.choice(np.array([0, 1, 255], np.uint8), size=(30, 33)) for _ in KINDS]
    expected = ref.pxap(maps, masks, 0.01)
    assert M.pxap(maps, masks) == expected
    acc = M.PxAPAccumulator()
    for k in range(0, len(maps), 3):  # batch by batch
        acc.update(maps[k : k + 3], masks[k : k + 3])
    assert acc.pxap() == expected
    assert M.pxap(maps, masks, cam_curve_interval=0.001) == ref.pxap(maps, masks, 0.001)
    bad = list(maps)
    bad[9] = np.full((30, 33), np.nan)
    with pytest.raises(ValueError, match=r"scoremaps\[9\].*NaN"):
        M.pxap(bad, masks)
    bad_masks = list(masks)
    bad_masks[2] = np.zeros((3, 3), np.uint8)  # lowest index wins over a later bad map
    with pytest.raises(ValueError, match=r"gt_masks\[2\] has shape"):
        M.pxap(bad, bad_masks)


def test_pxap_mask_dtypes_and_stacked_arrays():
    rng = np.random.default_rng(9)
    maps = np.stack([rng.choice(_edge_pool(0.01), size=(12, 15)) for _ in range(5)])
    codes = rng.choice(np.array([0, 1, 255]), size=maps.shape)
    codes[:, 0, 0] = 1
    expected = ref.pxap(list(maps), list(codes.astype(np.uint8)), 0.01)
    assert M.pxap(maps, codes.astype(np.uint8)) == expected  # (n, H, W) arrays
    for dtype in (np.int64, np.uint16, np.float32):
        assert M.pxap(maps, codes.astype(dtype)) == expected, dtype
    # values that are no mask code are named, never read as "ignore" (issue 22); 256 would
    # alias to 0 if narrowed to uint8, NaN / 0.5 / -1 are no codes at all
    for bad in (256, -1, 0.5, np.nan, 2, 128):
        odd = codes.astype(np.float64)
        odd[2, 3, 4] = bad
        with pytest.raises(ValueError, match=r"gt_masks\[2\] holds values"):
            M.pxap(maps, odd)
    as_bool = codes == 1
    assert M.pxap(maps, as_bool) == ref.pxap(list(maps), list(as_bool.astype(np.uint8)), 0.01)


def test_pxap_validation_at_the_bit_level():
    """-0.0 is a valid score (as in the reference); anything just outside [0, 1] is not."""
    rng = np.random.default_rng(2)
    m = rng.random((6, 7))
    m[0, :3] = -0.0
    mask = (rng.random((6, 7)) > 0.5).astype(np.uint8)
    mask[0, 0] = 1
    assert M.pxap([m, m.T.copy()], [mask, mask.T.copy()]) == ref.pxap([m, m.T.copy()],
                                                                       [mask, mask.T.copy()])
    for bad, match in [(np.nextafter(1.0, 2.0), r"\[0, 1\]"), (-5e-324, r"\[0, 1\]"),
                       (-np.nan, "NaN"), (np.inf, "infinite")]:
        worse = m.copy()
        worse[3, 4] = bad
        with pytest.raises(ValueError, match=r"scoremaps\[1\].*" + match):
            M.pxap([m, worse], [mask, mask])
    strided = np.asfortranarray(m)  # non-contiguous and float32 maps take the general check
    assert M.pxap([strided, m.astype(np.float32)], [mask, mask]) == ref.pxap(
        [m, m.astype(np.float32).astype(np.float64)], [mask, mask])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), interval=st.sampled_from(FAST_INTERVALS + [0.003]),
       n_maps=st.integers(1, 4), uniform_share=st.floats(0, 1))
def test_pxap_equals_reference_property(seed, interval, n_maps, uniform_share):
    rng = np.random.default_rng(seed)
    pool = _edge_pool(interval)
    maps, masks = [], []
    for _ in range(n_maps):
        h, w = (int(v) for v in rng.integers(1, 25, 2))
        m = rng.choice(pool, size=(h, w))
        uniform = rng.random((h, w)) < uniform_share
        m[uniform] = rng.random(int(uniform.sum()))
        maps.append(m)
        masks.append(rng.choice(np.array([0, 1, 255], np.uint8)[:rng.choice([2, 3])], (h, w)))
    masks[0].flat[0] = 1
    assert M.pxap(maps, masks, cam_curve_interval=interval) == ref.pxap(maps, masks, interval)


# ----------------------------------------------------------------------------- Top-k Loc
def test_localization_accuracy_hand_example():
    gt = [np.array([[0, 0, 9, 9]]), np.array([[0, 0, 9, 9], [20, 20, 29, 29]]),
          np.array([[0, 0, 9, 9]])]
    pred = np.array([[0, 0, 9, 9], [20, 20, 29, 29], [50, 50, 59, 59]])
    topk = np.array([[1, 2, 3, 4, 5], [9, 2, 3, 4, 5], [3, 1, 1, 1, 1]])
    out = M.localization_accuracy(pred, gt, topk, [1, 2, 3])
    assert out == pytest.approx({"top1_loc": 100 / 3, "top5_loc": 200 / 3, "gt_known_loc": 200 / 3})


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "bad, match",
    [
        (np.full((4, 4), np.inf), r"scoremaps\[1\].*infinite"),
        (np.full((4, 4), np.nan), r"scoremaps\[1\].*NaN"),
        (np.full((4, 4), 1.5), r"scoremaps\[1\].*\[0, 1\]"),
        (np.full((4, 4), -0.1), r"scoremaps\[1\].*\[0, 1\]"),
        (np.zeros((2, 4, 4)), r"scoremaps\[1\].*2-D"),
    ],
)
def test_bad_maps_raise_value_error_with_index(bad, match):
    good = np.zeros((4, 4))
    with pytest.raises(ValueError, match=match):
        M.max_box_acc([good, bad], [[[0, 0, 1, 1]]] * 2)
    with pytest.raises(ValueError, match=match):
        M.pxap([good, bad], [np.ones((4, 4), np.uint8)] * 2)


@pytest.mark.parametrize(
    "boxes, match",
    [
        ([[[0, 0, 1, 1]], [[3, 0, 1, 1]]], r"gt_boxes\[1\]"),
        ([[[0, 0, 1, 1]], [[-1, 0, 1, 1]]], r"gt_boxes\[1\].*negative"),
        ([[[0, 0, 1, 1]], np.zeros((0, 4))], r"gt_boxes\[1\].*empty"),
        ([[[0, 0, 1, 1]]], r"gt_boxes has 1 entries but there are 2"),
    ],
)
def test_bad_boxes_raise_value_error_with_index(boxes, match):
    with pytest.raises(ValueError, match=match):
        M.max_box_acc([np.zeros((4, 4))] * 2, boxes)


def test_other_bad_inputs():
    with pytest.raises(ValueError, match="gt_masks has 1 entries"):
        M.pxap([np.zeros((3, 3))] * 2, [np.ones((3, 3))])
    with pytest.raises(ValueError, match=r"gt_masks\[0\] has shape"):
        M.pxap([np.zeros((3, 3))], [np.ones((3, 4))])
    with pytest.raises(ValueError, match="no positive"):
        M.pxap([np.zeros((3, 3))], [np.zeros((3, 3))])
    with pytest.raises(TypeError, match="floating-point"):
        M.max_box_acc([np.zeros((3, 3), dtype=np.int64)], [[[0, 0, 1, 1]]])
    with pytest.raises(ValueError, match="cam_curve_interval"):
        M.max_box_acc([np.zeros((3, 3))], [[[0, 0, 1, 1]]], cam_curve_interval=0)
    with pytest.raises(ValueError, match=r"boxes_a\[0\]"):
        M.box_iou([[2, 0, 1, 1]], [[0, 0, 1, 1]])


# ----------------------------------------------------------------------------- scorer
class _MapsEstimator:
    def __init__(self, maps):
        self.maps = maps

    def localize(self, X, labels):
        return self.maps[np.asarray(X)]


def test_scorer_calls_maps_method_and_metric():
    rng = np.random.default_rng(0)
    small = rng.random((4, 7, 7))
    est = _MapsEstimator(small)
    from skcream.localize import protocol_maps

    maps224 = protocol_maps(small)
    boxes = [np.array([[10, 10, 120, 150]])] * 4
    y = {"label": np.zeros(4, int), "boxes": boxes}
    scorer = M.make_wsol_scorer("max_box_acc_v2")
    assert scorer(est, np.arange(4), y) == M.max_box_acc_v2(maps224, boxes)
    masks = [(m > 0.5).astype(np.uint8) for m in maps224]
    px = M.WSOLScorer("pxap")(est, np.arange(4), {"label": np.zeros(4, int), "mask": masks})
    assert px == M.pxap(maps224, masks)
    with pytest.raises(ValueError, match="'boxes'"):
        scorer(est, np.arange(4), {"label": np.zeros(4)})
