"""PseudoBoxRegressor and CREAMReg (CREAM_Reg): box bookkeeping, contract, learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import BaseEstimator

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


def test_localization_scores_hand_computed():
    gt_box = np.array([[20.0, 20.0, 120.0, 120.0]])
    far = [150.0, 150.0, 220.0, 220.0]  # disjoint from gt_box
    gt = [gt_box] * 5
    boxes = np.array([gt_box[0], gt_box[0], gt_box[0], gt_box[0], far])
    logits = np.array([
        [9, 0, 0, 0, 0, 0],  # truth 0: class right, box right
        [0, 9, 8, 0, 0, 0],  # truth 2: second guess, box right
        [5, 4, 3, 2, 1, 0],  # truth 5: last of six classes (not in the top 5), box right
        [0, 0, 0, 9, 9, 0],  # truth 4: tie with class 3, the lower index wins top-1
        [9, 0, 0, 0, 0, 0],  # truth 0: class right, box wrong
    ], dtype=float)
    truth = np.array([0, 2, 5, 4, 0])
    out = bt.localization_scores(logits, boxes, gt, truth)
    assert out == {"top1_loc": 20.0, "top5_loc": 60.0, "gt_known_loc": 80.0, "top1_acc": 40.0}
    hits = bt.protocol_hits(boxes, gt)
    np.testing.assert_array_equal(hits, [True, True, True, True, False])
    assert bt.hit_scores(logits, hits, truth) == out
    # the released CREAM_Reg's inference.py: per class (0: images 0 and 4; 2; 5; 4), then
    # over the four classes
    out = bt.hit_scores(logits, hits, truth, per_class=True)
    assert out == {"top1_loc": 100 * (0.5 + 0 + 0 + 0) / 4,
                   "top5_loc": 100 * (0.5 + 1 + 0 + 1) / 4,
                   "gt_known_loc": 100 * (0.5 + 1 + 1 + 1) / 4,
                   "top1_acc": 100 * (1 + 0 + 0 + 0) / 4}


def test_take_rows_keeps_the_container_and_the_order():
    import datasets

    from skcream.estimators._inputs import DatasetView, take_rows

    keep = np.array([2, 0])
    ds = datasets.Dataset.from_dict({"v": [10, 11, 12]})
    assert take_rows(ds, keep)["v"] == [12, 10]
    view = take_rows(DatasetView(ds), keep)
    assert isinstance(view, DatasetView) and view.dataset["v"] == [12, 10]
    np.testing.assert_array_equal(take_rows(np.arange(3) * 2, keep), [4, 0])
    assert take_rows(["a", "b", "c"], keep) == ["c", "a"]


def test_json_value_makes_plain_json():
    import json
    from pathlib import Path

    from skcream.estimators._common import json_value

    value = {
        "path": Path("a") / "b",
        "device": torch.device("cpu"),
        "rs": np.random.RandomState(0),
        "n": np.int64(3),
        "t": (1.5, np.float32(0.5), [True, None]),
        "other": slice(1, 2),
    }
    out = json_value(value)
    assert out == {"path": str(Path("a") / "b"), "device": "cpu", "rs": None, "n": 3,
                   "t": [1.5, 0.5, [True, None]], "other": "slice(1, 2, None)"}
    assert json.loads(json.dumps(out)) == out


# ---------------------------------------------------------------------------
# Box-aware training targets: crop and flip move the box exactly
# ---------------------------------------------------------------------------


def _rectangle_image(w, h, box, value=255):
    """Dark uint8 image with a bright filled rectangle covering pixels [x0, x1) x [y0, y1)."""
    img = np.full((h, w, 3), 10, dtype=np.uint8)
    x0, y0, x1, y1 = box
    img[y0:y1, x0:x1] = value
    return img


class _FixedTransform:
    """TrainTransform with given crop/flip draws (box-aware)."""

    box_aware = True

    def __init__(self, transform, params):
        self.transform, self.params = transform, params

    def __call__(self, image, boxes=None):
        return self.transform.apply(image, boxes, self.params)


@pytest.mark.parametrize("left,top,flip", [(0, 0, False), (3, 5, False), (8, 8, True),
                                           (2, 7, True), (0, 8, True)])
def test_target_follows_crop_and_flip_exactly(left, top, flip):
    from skcream.data.adapters import ImageSource
    from skcream.data.transforms import CropParams, TrainTransform

    box = (9, 12, 30, 27)  # continuous [x0, x1) covers pixels 9..29
    img = _rectangle_image(40, 40, box)
    # resize == image size: no resampling, the crop is an exact pixel window
    tt = TrainTransform(resize=40, crop=32, flip=True, mean=(0, 0, 0), std=(1, 1, 1))
    ds = bt.BoxTargetDataset(ImageSource.from_input([img]), np.array([box], float),
                             _FixedTransform(tt, CropParams(left=left, top=top, flip=flip)))
    item = ds[0]
    bright = item["image"][0].numpy() > 0.5  # independent fact: where the rectangle landed
    rows, cols = np.nonzero(bright)
    expected = np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]) / 32
    np.testing.assert_allclose(item["target"].numpy(), expected, atol=1e-7)
    assert item["target"].dtype == torch.float32


# ---------------------------------------------------------------------------
# PseudoBoxRegressor: sklearn contract with a tiny untrained timm model
# ---------------------------------------------------------------------------

# the default architecture "psol" (a classifier at stride 32: 64 px keeps a 2x2 map, which
# BatchNorm needs when the last training batch holds one image)
TINY = dict(backbone="test_efficientnet", pretrained=False, max_epochs=1, batch_size=4,
            image_size=64, resize_size=72, random_state=0, verbose=0)
#: skcream's earlier regressor: WSOL backbone + GAP, the protocol's frame
TINY_GAP = {**TINY, "architecture": "gap", "image_size": 32, "resize_size": 36}


def _tiny_data(n=8, seed=0):
    rng = np.random.default_rng(seed)
    images, boxes = [], []
    for i in range(n):
        w, h = 40 + 3 * i, 36 + 2 * i
        images.append(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        boxes.append([2 + i % 3, 3, w - 5, h - 4 - i % 2])
    return images, np.array(boxes, dtype=float)


@pytest.fixture(scope="module")
def tiny_fitted():
    from skcream.estimators.regressor import PseudoBoxRegressor

    X, boxes = _tiny_data()
    return PseudoBoxRegressor(**TINY).fit(X, boxes), X, boxes


@pytest.fixture(scope="module")
def tiny_fitted_gap():
    from skcream.estimators.regressor import PseudoBoxRegressor

    X, boxes = _tiny_data()
    return PseudoBoxRegressor(**TINY_GAP).fit(X, boxes), X, boxes


def test_fit_predict_contract(tiny_fitted):
    reg, X, _ = tiny_fitted
    pred = reg.predict(X)
    assert pred.shape == (len(X), 4) and pred.dtype == np.float64
    sizes = np.array([[x.shape[1], x.shape[0]] for x in X])
    assert np.all(pred[:, 0] <= pred[:, 2]) and np.all(pred[:, 1] <= pred[:, 3])
    assert np.all(pred >= 0)
    assert np.all(pred[:, [0, 2]] <= sizes[:, [0]]) and np.all(pred[:, [1, 3]] <= sizes[:, [1]])
    assert len(reg.history_) == 1 and {"loss", "accuracy"} <= set(reg.history_[0])
    assert reg.n_train_ == len(X)
    # batch vs one by one
    one = np.concatenate([reg.predict([x]) for x in X[:3]])
    np.testing.assert_allclose(one, pred[:3], rtol=1e-5, atol=1e-4)


def test_gap_predict_scales_unit_boxes_to_each_image(tiny_fitted_gap):
    """Replace the network by one with known outputs: predict must scale by (W, H), order
    corners, and ignore the 224-resize."""
    import copy

    reg, X, _ = tiny_fitted_gap
    reg = copy.deepcopy(reg)

    class Fixed(torch.nn.Module):
        def forward(self, x):
            out = torch.tensor([[0.5, 0.2, 0.1, 0.6]], dtype=x.dtype)  # x0 > x1 on purpose
            return out.repeat(x.shape[0], 1)

    reg.model_ = Fixed()
    pred = reg.predict(X)
    for (x0, y0, x1, y1), img in zip(pred, X):
        h, w = img.shape[:2]
        np.testing.assert_allclose([x0, y0, x1, y1], [0.1 * w, 0.2 * h, 0.5 * w, 0.6 * h],
                                   rtol=1e-6)


def test_not_fitted_and_params():
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError

    from skcream.estimators.regressor import PseudoBoxRegressor

    reg = PseudoBoxRegressor(**TINY)
    with pytest.raises(NotFittedError):
        reg.predict([np.zeros((8, 8, 3), np.uint8)])
    params = reg.get_params()
    assert params["hidden"] == 512 and params["backbone"] == "test_efficientnet"
    c = clone(reg)
    assert c.get_params() == params and c is not reg
    c.set_params(hidden=16)
    assert c.hidden == 16 and reg.hidden == 512


def test_pickle_joblib_save_load_identical(tiny_fitted, tmp_path):
    import pickle

    import joblib

    from skcream.estimators.regressor import PseudoBoxRegressor

    reg, X, _ = tiny_fitted
    pred = reg.predict(X)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(reg)).predict(X), pred)
    joblib.dump(reg, tmp_path / "r.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "r.joblib").predict(X), pred)
    reg.save(tmp_path / "saved")
    loaded = PseudoBoxRegressor.load(tmp_path / "saved")
    np.testing.assert_array_equal(loaded.predict(X), pred)
    assert loaded.get_params() == reg.get_params()
    assert loaded.history_ == reg.history_
    reg.save(tmp_path / "saved")  # same estimator again: allowed
    other = PseudoBoxRegressor(**{**TINY, "random_state": 1}).fit(X[:4], tiny_fitted[2][:4])
    with pytest.raises(FileExistsError):
        other.save(tmp_path / "saved")


def test_fit_reproducible_with_random_state(tiny_fitted):
    from skcream.estimators.regressor import PseudoBoxRegressor

    reg, X, boxes = tiny_fitted
    again = PseudoBoxRegressor(**TINY).fit(X, boxes)
    np.testing.assert_array_equal(again.predict(X), reg.predict(X))


def test_fit_bad_boxes_name_the_index():
    from skcream.estimators.regressor import PseudoBoxRegressor

    X, boxes = _tiny_data(4)
    reg = PseudoBoxRegressor(**TINY)
    with pytest.raises(ValueError, match="3 rows but X has 4 images"):
        reg.fit(X, boxes[:3])
    bad = boxes.copy()
    bad[2, 2] = X[2].shape[1] + 1
    with pytest.raises(ValueError, match=r"boxes\[2\].*outside image 2"):
        reg.fit(X, bad)
    bad = boxes.copy()
    bad[1, 3] = bad[1, 1]
    with pytest.raises(ValueError, match=r"boxes\[1\].*degenerate"):
        reg.fit(X, bad)
    with pytest.raises(ValueError, match=r"lr must be a finite number in \(0.0, inf\)"):
        PseudoBoxRegressor(**{**TINY, "lr": 0.0}).fit(X, boxes)
    with pytest.raises(ValueError, match="resize_size must be >= image_size"):
        PseudoBoxRegressor(**{**TINY, "resize_size": 16}).fit(X, boxes)
    with pytest.raises(ValueError, match="one box per image"):
        reg.fit(X)  # a list of images has no bbox column


# ---------------------------------------------------------------------------
# End to end: the regressor learns boxes
# ---------------------------------------------------------------------------


def _squares(n, seed, size=48):
    """Noise images with one bright rectangle each; its box is [x0, y0, x0 + w, y0 + h]."""
    rng = np.random.default_rng(seed)
    images, boxes = [], []
    for _ in range(n):
        img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
        w, h = rng.integers(10, 34, size=2)
        x0, y0 = rng.integers(0, size - w + 1), rng.integers(0, size - h + 1)
        img[y0:y0 + h, x0:x0 + w] = rng.integers(180, 255, 3)
        images.append(img)
        boxes.append([x0, y0, x0 + w, y0 + h])
    return images, np.array(boxes, dtype=float)


def _plain_iou(a, b):
    """Continuous IoU of corresponding rows (reference written plainly)."""
    out = []
    for p, g in zip(a, b):
        iw = max(0.0, min(p[2], g[2]) - max(p[0], g[0]))
        ih = max(0.0, min(p[3], g[3]) - max(p[1], g[1]))
        inter = iw * ih
        union = (p[2] - p[0]) * (p[3] - p[1]) + (g[2] - g[0]) * (g[3] - g[1]) - inter
        out.append(inter / union)
    return np.array(out)


@pytest.mark.slow
@pytest.mark.parametrize("architecture,sizes", [
    ("psol", dict(image_size=64, resize_size=72)),  # stride 32: a 2x2 map
    ("gap", dict(image_size=48, resize_size=52, modification="none")),
])
def test_regressor_learns_boxes_beyond_constant_baseline(architecture, sizes):
    from skcream.estimators.regressor import PseudoBoxRegressor

    X_train, b_train = _squares(200, 0)
    X_test, b_test = _squares(100, 1)
    reg = PseudoBoxRegressor(
        backbone="test_efficientnet", architecture=architecture, pretrained=False,
        max_epochs=10, batch_size=16, lr=0.02, lr_step=None, random_state=0, verbose=0, **sizes,
    ).fit(X_train, b_train)
    assert reg.history_[-1]["loss"] < 0.5 * reg.history_[0]["loss"]
    iou = _plain_iou(reg.predict(X_test), b_test)
    const = np.repeat(b_train.mean(axis=0, keepdims=True), len(b_test), axis=0)
    iou_const = _plain_iou(const, b_test)
    # measured: mean IoU 0.44 ("psol") / 0.46 ("gap") vs 0.25, IoU >= 0.5 for 38% / 48% vs 9%
    # of the test images
    assert iou.mean() > iou_const.mean() + 0.12
    assert (iou >= 0.5).mean() > 3 * (iou_const >= 0.5).mean()


# ---------------------------------------------------------------------------
# score ("gap"): GT-known in the protocol frame, checked against a plain reference
# ---------------------------------------------------------------------------


class _FixedNet(torch.nn.Module):
    """Stands in for a trained network: the same unit box for every image."""

    def __init__(self, unit_box):
        super().__init__()
        self.unit_box = torch.tensor([unit_box], dtype=torch.float32)

    def forward(self, x):
        return self.unit_box.repeat(x.shape[0], 1)


def _plain_iou_plus1(p, g):
    """The protocol's inclusive IoU, written plainly."""
    iw = max(0.0, min(p[2], g[2]) - max(p[0], g[0]) + 1)
    ih = max(0.0, min(p[3], g[3]) - max(p[1], g[1]) + 1)
    inter = iw * ih
    area = (p[2] - p[0] + 1) * (p[3] - p[1] + 1) + (g[2] - g[0] + 1) * (g[3] - g[1] + 1)
    return inter / (area - inter)


def _reference_gt_known(unit_box, images, gt_lists):
    ok = []
    for img, gts in zip(images, gt_lists):
        h, w = img.shape[:2]
        pred = [c * 224 for c in unit_box]  # continuous prediction in the 224 frame
        best = max(_plain_iou_plus1(pred, [int(g[0] * 224 / w), int(g[1] * 224 / h),
                                           int(g[2] * 224 / w), int(g[3] * 224 / h)])
                   for g in gts)
        ok.append(best >= 0.5)
    return 100.0 * np.mean(ok)


@pytest.mark.parametrize("unit_box", [(0.1, 0.1, 0.8, 0.85), (0.0, 0.0, 0.5, 0.5),
                                      (0.3, 0.2, 0.9, 0.7)])
def test_gap_score_equals_plain_gt_known(tiny_fitted_gap, unit_box):
    import copy

    reg, X, _ = tiny_fitted_gap
    reg = copy.deepcopy(reg)
    reg.model_ = _FixedNet(unit_box)
    rng = np.random.default_rng(0)
    X = X * 6  # 48 images of 8 sizes
    gt = []
    for img in X:  # GT boxes around the predicted one, IoU on both sides of 0.5
        h, w = img.shape[:2]
        base = np.array(unit_box) * [w, h, w, h]
        k = int(rng.integers(1, 3))  # several GT boxes per image: the best one counts
        jitter = rng.normal(0, 0.15, (k, 4)) * [w, h, w, h]
        b = np.clip(base + jitter, 0, [w - 1, h - 1, w - 1, h - 1])
        b[:, 2:] = np.maximum(b[:, 2:], b[:, :2] + 1)
        gt.append(b)
    expected = _reference_gt_known(unit_box, X, gt)
    assert 10 < expected < 90  # the test discriminates
    assert reg.score(X, gt) == pytest.approx(expected)
    first = np.array([g[0] for g in gt])
    assert reg.score(X, first) == pytest.approx(_reference_gt_known(unit_box, X, first[:, None]))


def test_score_names_images_without_boxes(tiny_fitted):
    import datasets

    reg, X, boxes = tiny_fitted
    ds = datasets.Dataset.from_dict({
        "image": [X[0], X[1], X[2]],
        "bboxes": [[boxes[0].tolist()], [], [boxes[2].tolist()]],
        "image_id": ["a.png", "b.png", "c.png"],
    })
    with pytest.raises(ValueError, match=r"1 image\(s\) have no ground-truth box.*b\.png"):
        reg.score(ds)
    with pytest.raises(ValueError, match="gt_boxes"):
        reg.score(X[:3])  # plain images carry no boxes


def test_fit_from_bbox_column_needs_one_box_per_image(tiny_fitted):
    import datasets

    from skcream.estimators.regressor import PseudoBoxRegressor

    _, X, boxes = tiny_fitted
    ds = datasets.Dataset.from_dict({"image": X[:4], "bboxes": [[b.tolist()] for b in boxes[:4]]})
    reg = PseudoBoxRegressor(**TINY).fit(ds)
    ref = PseudoBoxRegressor(**TINY).fit(X[:4], boxes[:4])
    np.testing.assert_allclose(reg.predict(ds), ref.predict(X[:4]), rtol=1e-5, atol=1e-4)
    two = ds.map(lambda row, i: {"bboxes": row["bboxes"] * (2 if i == 3 else 1)},
                 with_indices=True)
    with pytest.raises(ValueError, match=r"boxes\[3\] holds 2 boxes"):
        PseudoBoxRegressor(**TINY).fit(two)


# ---------------------------------------------------------------------------
# CREAMReg
# ---------------------------------------------------------------------------


class _FakeLocalizer(BaseEstimator):
    """Minimal fitted-localizer stand-in: fixed pseudo boxes, records the resolution."""

    def __init__(self, pseudo=None):
        self.pseudo = pseudo
        self.classes_ = np.array([0, 1])
        self.seen = {}

    def fit(self, X, y=None):
        return self

    def pseudo_boxes(self, X, y=None, *, labels=None, resolution=448):
        self.seen["resolution"] = resolution
        return np.array(self.pseudo, dtype=float)

    def predict(self, X):
        raise AssertionError("not used")

    def __sklearn_is_fitted__(self):
        return True


def test_creamreg_leaves_out_degenerate_pseudo_boxes():
    from skcream.estimators.regressor import CREAMReg, PseudoBoxRegressor

    X, boxes = _tiny_data(6)
    pseudo = boxes.copy()
    pseudo[2] = [0, 0, 0, 0]  # no contour: all-zero map
    fake = _FakeLocalizer(pseudo)
    model = CREAMReg(fake, PseudoBoxRegressor(**TINY), pseudo_resolution=64, prefit=True)
    with pytest.warns(UserWarning, match=r"1 of 6 training images have a degenerate.*\[2\]"):
        model.fit(X)
    assert fake.seen["resolution"] == 64
    assert model.localizer_ is fake
    assert model.n_degenerate_pseudo_boxes_ == 1 and model.regressor_.n_train_ == 5
    np.testing.assert_array_equal(model.pseudo_boxes_, pseudo)
    # the same as training the regressor on the five valid images directly
    keep = [0, 1, 3, 4, 5]
    direct = PseudoBoxRegressor(**TINY).fit([X[i] for i in keep], pseudo[keep])
    np.testing.assert_array_equal(model.regressor_.predict(X), direct.predict(X))


def test_creamreg_bad_parameters():
    from sklearn.exceptions import NotFittedError

    from skcream.estimators.localizer import CREAMLocalizer
    from skcream.estimators.regressor import CREAMReg, PseudoBoxRegressor

    X, _ = _tiny_data(4)
    with pytest.raises(ValueError, match="pseudo_resolution"):
        CREAMReg(CREAMLocalizer(), PseudoBoxRegressor(), pseudo_resolution=4).fit(X, [0, 1, 0, 1])
    with pytest.raises(TypeError, match="localizer must be"):
        CREAMReg(object(), PseudoBoxRegressor()).fit(X, [0, 1, 0, 1])
    with pytest.raises(NotFittedError, match="prefit=True"):
        CREAMReg(CREAMLocalizer(), PseudoBoxRegressor(), prefit=True).fit(X, [0, 1, 0, 1])
    with pytest.raises(NotFittedError):
        CREAMReg(CREAMLocalizer(), PseudoBoxRegressor()).predict(X)


LOC_TINY = dict(backbone="test_resnet", pretrained=False, max_epochs=1, batch_size=8,
                image_size=32, resize_size=36, random_state=0, verbose=0)


@pytest.fixture(scope="module")
def synthetic():
    from skcream.data.synthetic import make_synthetic

    return (make_synthetic(24, n_classes=3, image_size=40, random_state=0),
            make_synthetic(12, n_classes=3, image_size=40, random_state=1))


@pytest.fixture(scope="module")
def cream_reg(synthetic):
    from skcream.estimators.localizer import CREAMLocalizer
    from skcream.estimators.regressor import CREAMReg, PseudoBoxRegressor

    train, _ = synthetic
    return CREAMReg(CREAMLocalizer(**LOC_TINY), PseudoBoxRegressor(**TINY),
                    pseudo_resolution=64).fit(train)


def test_creamreg_pseudo_boxes_come_from_the_localizer(cream_reg, synthetic):
    train, _ = synthetic
    expected = cream_reg.localizer_.pseudo_boxes(train, resolution=64)
    np.testing.assert_array_equal(cream_reg.pseudo_boxes_, expected)
    assert cream_reg.regressor_.n_train_ == len(train) - cream_reg.n_degenerate_pseudo_boxes_
    np.testing.assert_array_equal(cream_reg.classes_, cream_reg.localizer_.classes_)


def test_creamreg_predict_combines_class_and_box(cream_reg, synthetic):
    from skcream.localize import Localization

    _, test = synthetic
    out = cream_reg.predict(test)
    base = cream_reg.localizer_.predict(test)
    assert isinstance(out, Localization) and len(out) == len(test)
    np.testing.assert_array_equal(out.labels, base.labels)
    np.testing.assert_array_equal(out.scores, base.scores)
    np.testing.assert_array_equal(out.boxes, cream_reg.regressor_.predict(test))
    for box, mask in zip(out.boxes, out.masks):  # masks: pixel centres inside the box
        rows, cols = np.mgrid[: mask.shape[0], : mask.shape[1]] + 0.5
        inside = (cols >= box[0]) & (cols <= box[2]) & (rows >= box[1]) & (rows <= box[3])
        np.testing.assert_array_equal(mask, inside)


def test_creamreg_gap_evaluate_matches_plain_reference(cream_reg, synthetic):
    import copy

    _, test = synthetic
    model = copy.deepcopy(cream_reg)
    model.regressor_.architecture = "gap"  # the same fitted parts, read in the gap frame
    unit_box = (0.15, 0.1, 0.85, 0.9)
    model.regressor_.model_ = _FixedNet(unit_box)
    images = [np.asarray(r["image"]) for r in test]
    gts = [np.asarray(r["bboxes"]) for r in test]
    truth = np.asarray(test["label"])
    logits = model.localizer_.decision_function(test)
    order = np.argsort(-logits, axis=1, kind="stable")
    loc_ok = []
    for img, g in zip(images, gts):
        loc_ok.append(_reference_gt_known(unit_box, [img], [g]) == 100.0)
    loc_ok = np.array(loc_ok)
    got = model.evaluate(test)
    assert got["gt_known_loc"] == pytest.approx(100 * loc_ok.mean())
    assert got["top1_loc"] == pytest.approx(100 * np.mean(loc_ok & (order[:, 0] == truth)))
    top5 = (order[:, :5] == truth[:, None]).any(axis=1)
    assert got["top5_loc"] == pytest.approx(100 * np.mean(loc_ok & top5))
    assert got["top1_acc"] == pytest.approx(100 * np.mean(order[:, 0] == truth))
    assert model.score(test) == pytest.approx(got["gt_known_loc"])


def _plain_psol_hit(xywh, gts, w, h, resize=256, crop=224):
    """inference.py's count, written plainly: the ground truth resized to resize x resize,
    cut to the centre crop (intersection, then minus the offset), the prediction
    (x, y, x + w, y + h) in crop pixels, continuous IoU > 0.5 with the best box."""
    off = round((resize - crop) / 2)
    x, y, bw, bh = xywh
    pred = [x * crop, y * crop, (x + bw) * crop, (y + bh) * crop]
    best = 0.0
    for g in gts:
        g = [max(off, g[0] * resize / w) - off, max(off, g[1] * resize / h) - off,
             min(off + crop, g[2] * resize / w) - off, min(off + crop, g[3] * resize / h) - off]
        iw = max(0.0, min(pred[2], g[2]) - max(pred[0], g[0]))
        ih = max(0.0, min(pred[3], g[3]) - max(pred[1], g[1]))
        area_g = max(0.0, g[2] - g[0]) * max(0.0, g[3] - g[1])
        inter = iw * ih
        best = max(best, inter / ((pred[2] - pred[0]) * (pred[3] - pred[1]) + area_g - inter))
    return best > 0.5


def test_creamreg_psol_evaluate_matches_plain_reference(cream_reg, synthetic):
    """The released CREAM_Reg's count: centre-crop frame, IoU > 0.5, per class then over
    classes; score stays the mean over images."""
    import copy

    _, test = synthetic
    model = copy.deepcopy(cream_reg)
    reg = model.regressor_
    assert reg.architecture == "psol"
    xywh = (0.1, 0.1, 0.7, 0.75)
    reg.model_ = _FixedNet(xywh)
    truth = np.asarray(test["label"])
    hits = np.array([
        _plain_psol_hit(xywh, np.asarray(r["bboxes"]), *r["image"].size,
                        resize=reg.resize_size, crop=reg.image_size)
        for r in test
    ])
    assert 0 < hits.mean() < 1  # the box discriminates
    order = np.argsort(-model.localizer_.decision_function(test), axis=1, kind="stable")
    top1 = order[:, 0] == truth

    def per_class(v):
        return 100 * np.mean([v[truth == c].mean() for c in np.unique(truth)])

    got = model.evaluate(test)
    assert got["gt_known_loc"] == pytest.approx(per_class(hits))
    assert got["top1_loc"] == pytest.approx(per_class(hits & top1))
    assert got["top1_acc"] == pytest.approx(per_class(top1))
    assert model.score(test) == pytest.approx(100 * hits.mean())


def test_ten_crop_with_the_default_resize_size(cream_reg, synthetic):
    """resize_size=None (the default) is the protocol's ratio here too: round(32 * 256 / 224)
    = 37 for the ten crops (it used to reach TenCrop as None and raise)."""
    import copy

    from torchvision import transforms as T

    from skcream.estimators.regressor import ten_crop_proba

    _, test = synthetic
    loc = copy.deepcopy(cream_reg.localizer_).set_params(resize_size=None)
    cfg = loc.data_config_
    views = T.Compose([T.Resize((37, 37)), T.TenCrop(loc.image_size)])
    norm = T.Compose([T.ToTensor(), T.Normalize(cfg["mean"], cfg["std"])])
    with torch.no_grad():
        expected = np.array([
            torch.softmax(loc.model_.eval()(torch.stack([norm(v) for v in views(
                row["image"].convert("RGB"))]))[0], dim=1).mean(dim=0).numpy()
            for row in test])
    np.testing.assert_allclose(ten_crop_proba(loc, test), expected, rtol=1e-5, atol=1e-6)


def test_creamreg_ten_crop_classes(cream_reg, synthetic):
    """ten_crop: the localizer's softmax averaged over torchvision's ten crops."""
    import copy

    from torchvision import transforms as T

    from skcream.estimators.regressor import ten_crop_proba

    _, test = synthetic
    loc = cream_reg.localizer_
    cfg = loc.data_config_
    views = T.Compose([T.Resize((loc.resize_size, loc.resize_size)), T.TenCrop(loc.image_size)])
    norm = T.Compose([T.ToTensor(), T.Normalize(cfg["mean"], cfg["std"])])
    expected = []
    with torch.no_grad():
        for row in test:
            x = torch.stack([norm(v) for v in views(row["image"].convert("RGB"))])
            expected.append(torch.softmax(loc.model_.eval()(x)[0], dim=1).mean(dim=0).numpy())
    expected = np.array(expected)
    proba = ten_crop_proba(loc, test)
    np.testing.assert_allclose(proba, expected, rtol=1e-5, atol=1e-6)
    model = copy.deepcopy(cream_reg).set_params(ten_crop=True)
    np.testing.assert_allclose(model.predict_proba(test), expected, rtol=1e-5, atol=1e-6)
    out = model.predict(test)
    best = np.argmax(proba, axis=1)
    np.testing.assert_array_equal(out.labels, loc.classes_[best])
    np.testing.assert_allclose(out.scores, proba[np.arange(len(best)), best], rtol=1e-6)
    truth = np.asarray(test["label"])
    top1 = np.argsort(-proba, axis=1, kind="stable")[:, 0] == truth
    assert model.evaluate(test)["top1_acc"] == pytest.approx(
        100 * np.mean([top1[truth == c].mean() for c in np.unique(truth)]))


def test_creamreg_params_clone_pickle_save_load(cream_reg, synthetic, tmp_path):
    import pickle

    from sklearn.base import clone

    from skcream.estimators.regressor import CREAMReg

    _, test = synthetic
    params = cream_reg.get_params()
    assert params["regressor__hidden"] == 512 and params["localizer__backbone"] == "test_resnet"
    c = clone(cream_reg).set_params(regressor__hidden=8)
    assert c.regressor.hidden == 8 and cream_reg.regressor.hidden == 512
    pred = cream_reg.predict(test)
    again = pickle.loads(pickle.dumps(cream_reg)).predict(test)
    np.testing.assert_array_equal(again.boxes, pred.boxes)
    np.testing.assert_array_equal(again.labels, pred.labels)
    cream_reg.save(tmp_path / "m")
    loaded = CREAMReg.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict(test).boxes, pred.boxes)
    np.testing.assert_array_equal(loaded.pseudo_boxes_, cream_reg.pseudo_boxes_)
    assert loaded.evaluate(test) == cream_reg.evaluate(test)


def test_creamreg_cross_validation_and_pipeline(synthetic):
    """Model selection over a Dataset (DatasetView) and use as the last Pipeline step."""
    from sklearn.model_selection import KFold, cross_val_score
    from sklearn.pipeline import Pipeline

    from skcream.estimators.localizer import CREAMLocalizer, DatasetView
    from skcream.estimators.regressor import CREAMReg, PseudoBoxRegressor

    train, _ = synthetic
    model = CREAMReg(CREAMLocalizer(**LOC_TINY), PseudoBoxRegressor(**TINY), pseudo_resolution=48)
    scores = cross_val_score(model, DatasetView(train), cv=KFold(2))
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 100))
    pipe = Pipeline([("cream_reg", model)]).fit(train)
    fitted = pipe.named_steps["cream_reg"]
    assert pipe.score(train) == pytest.approx(fitted.regressor_.score(train))
    np.testing.assert_array_equal(pipe.predict(train).boxes, fitted.regressor_.predict(train))


def test_regressor_grid_search_over_images_and_boxes():
    from sklearn.model_selection import GridSearchCV

    from skcream.estimators.regressor import PseudoBoxRegressor

    X, boxes = _tiny_data(8)
    search = GridSearchCV(PseudoBoxRegressor(**TINY), {"hidden": [8, 16]}, cv=2).fit(X, boxes)
    assert search.best_params_["hidden"] in (8, 16)
    assert search.best_estimator_.model_.head[0].out_features == search.best_params_["hidden"]
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


@pytest.mark.parametrize("make", ["regressor", "cream_reg"])
def test_selected_sklearn_estimator_checks(make):
    from sklearn.utils import estimator_checks as ec

    from skcream.estimators.localizer import CREAMLocalizer
    from skcream.estimators.regressor import CREAMReg, PseudoBoxRegressor

    est = (PseudoBoxRegressor() if make == "regressor"
           else CREAMReg(CREAMLocalizer(), PseudoBoxRegressor()))
    name = type(est).__name__
    ec.check_no_attributes_set_in_init(name, est)
    ec.check_parameters_default_constructible(name, est)
    ec.check_get_params_invariance(name, est)
    ec.check_set_params(name, est)
    ec.check_estimator_repr(name, est)
    ec.check_estimator_cloneable(name, est)
    ec.check_do_not_raise_errors_in_init_or_set_params(name, est)
