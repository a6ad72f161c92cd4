"""The synthetic WSOL benchmark: determinism, schema, ground truth, class information in the part."""

import numpy as np
import pytest

from skcream.data import ImageSource, make_synthetic
from skcream.data.synthetic import PATTERNS, SyntheticConfig, iter_synthetic, render_synthetic


def test_deterministic_and_prefix_stable():
    a = [s.image for s in iter_synthetic(6, random_state=3, image_size=64)]
    b = [s.image for s in iter_synthetic(6, random_state=3, image_size=64)]
    c = [s.image for s in iter_synthetic(6, random_state=4, image_size=64)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not any(np.array_equal(x, y) for x, y in zip(a, c))
    tail = [s.image for s in iter_synthetic(2, random_state=3, image_size=64, start=4)]
    assert np.array_equal(tail[0], a[4]) and np.array_equal(tail[1], a[5])
    rng_a = np.random.default_rng(9)
    rng_b = np.random.default_rng(9)
    assert np.array_equal(next(iter_synthetic(1, random_state=rng_a)).image,
                          next(iter_synthetic(1, random_state=rng_b)).image)


def test_ground_truth_box_mask_part():
    for s in iter_synthetic(40, random_state=0, image_size=96):
        assert s.image.shape == (96, 96, 3) and s.image.dtype == np.uint8
        assert set(np.unique(s.mask)) == {0, 1}
        ys, xs = np.nonzero(s.mask)
        assert s.box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        assert s.part_mask.any() and not (s.part_mask & (s.mask == 0)).any()
        share = s.part_mask.sum() / s.mask.sum()
        # a part of the object: with the defaults (part_scale 0.5, bodies cut by the border)
        # the head covers 30-62% of the visible object, median 40% (measured on 400 images)
        assert 0.2 < share < 0.7
        assert 0 <= s.label < 4


def test_only_the_part_carries_the_class():
    """Body colour statistics do not depend on the class; head colour does."""
    body_means = {k: [] for k in range(4)}
    head_means = {k: [] for k in range(4)}
    for s in iter_synthetic(400, random_state=1, image_size=64, noise=0.0):
        body = (s.mask == 1) & ~s.part_mask
        body_means[s.label].append(s.image[body].mean(0))
        head_means[s.label].append(s.image[s.part_mask].mean(0))
    body = np.array([np.mean(body_means[k], 0) for k in range(4)])
    head = np.array([np.mean(head_means[k], 0) for k in range(4)])
    spread_body = np.abs(body - body.mean(0)).max()
    spread_head = np.abs(head - head.mean(0)).max()
    assert spread_body < 4.0  # grey levels: sampling noise only
    assert spread_head > 30.0


def test_make_synthetic_dataset_roundtrip(tmp_path):
    ds = make_synthetic(12, image_size=64, random_state=5, with_parts=True, cache_dir=tmp_path)
    assert ds.column_names == ["image", "label", "bboxes", "mask", "image_id", "part_mask"]
    assert ds.features["label"].names == SyntheticConfig().class_names
    assert len(set(ds.features["label"].names)) == 4
    src = ImageSource.from_input(ds)
    raw = list(iter_synthetic(12, image_size=64, random_state=5))
    for i in (0, 7, 11):
        assert np.array_equal(np.asarray(src.image(i)), raw[i].image)  # PNG is lossless
        assert np.array_equal(src.mask(i), raw[i].mask)
        assert src.boxes(i).tolist() == [raw[i].box.tolist()]
        assert src.label(i) == raw[i].label
    head = np.asarray(ds[3]["part_mask"]) > 0
    assert np.array_equal(head, raw[3].part_mask)
    again = make_synthetic(4, image_size=64, random_state=5, cache_dir=tmp_path)
    assert again["image_id"] == ds["image_id"][:4]


def test_knobs_change_the_picture():
    plain = render_synthetic(0, 11, SyntheticConfig(n_distractors=(0, 0), noise=0.0))
    noisy = render_synthetic(0, 11, SyntheticConfig(n_distractors=(0, 0), noise=0.2))
    assert np.array_equal(plain.mask, noisy.mask)
    assert np.abs(plain.image.astype(int) - noisy.image).mean() > 20
    small = render_synthetic(0, 11, SyntheticConfig(part_scale=0.2))
    big = render_synthetic(0, 11, SyntheticConfig(part_scale=0.6))
    assert small.part_mask.sum() < big.part_mask.sum()
    assert SyntheticConfig(n_classes=6).class_names[5].endswith(PATTERNS[1])


@pytest.mark.parametrize("kwargs,match", [
    ({"part_scale": 0.0}, "part_scale"),
    ({"object_scale": (0.8, 0.2)}, "object_scale"),
    ({"n_distractors": (0, 1.5)}, "n_distractors"),
    ({"body_like_distractors": 2.0}, "body_like_distractors"),
    ({"backgrounds": ()}, "backgrounds"),
    ({"noise": -1.0}, "noise"),
])
def test_bad_knobs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        next(iter_synthetic(1, **kwargs))


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="n_samples"):
        make_synthetic(0, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="n_classes"):
        make_synthetic(3, n_classes=1, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="image_size"):
        make_synthetic(3, image_size=8, cache_dir=tmp_path)
    with pytest.raises(TypeError, match="unknown synthetic option"):
        make_synthetic(3, colour="red", cache_dir=tmp_path)
    with pytest.raises(TypeError, match="random_state"):
        make_synthetic(3, random_state="x", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="no texture"):
        next(iter_synthetic(1, backgrounds=("nope",)))


@pytest.mark.parametrize("n_classes", [2, 4, 7])
def test_every_class_whenever_n_reaches_n_classes(n_classes):
    from skcream.data.synthetic import _label

    for seed in range(20):
        for start in (0, 3):
            labels = [_label(i, seed, n_classes) for i in range(start * n_classes,
                                                                (start + 1) * n_classes)]
            assert sorted(labels) == list(range(n_classes))
    # the order within blocks is random, not cyclic
    firsts = {_label(0, seed, n_classes) for seed in range(50)}
    assert len(firsts) == n_classes


def test_make_synthetic_small_has_every_class(tmp_path):
    ds = make_synthetic(4, n_classes=4, random_state=8, cache_dir=tmp_path)
    assert sorted(ds["label"]) == [0, 1, 2, 3]
