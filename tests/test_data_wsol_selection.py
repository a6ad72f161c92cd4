"""load_wsol's samples_per_class and proxy: wsolevaluation's ``--num_val_sample_per_class``
and ``--proxy_training_set``, on the REAL metadata with header-only placeholder images.

The reference lists below were produced by running wsolevaluation's own
``WSOLImageLabelDataset(num_sample_per_class=N)`` (``data_loaders.py`` at 96f4b88) on the
shared metadata after ``np.random.seed(seed)`` (what its ``main.py`` does with ``--seed``
before building the loaders): the number of ids and the first 16 hex digits of the SHA-256
of the ids joined by newlines, in the reference's order.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections import Counter

import numpy as np
import pytest
from test_data_wsol import _meta, _read, png_header

from skcream.data import load_wsol

#: (dataset, N, seed) -> (number of ids, sha256[:16]) of the reference's list
REFERENCE = {
    ("CUB", 2, 0): (400, "4362da81367aebc6"),
    ("CUB", 3, 7): (600, "fe20c59f20a97c78"),
    ("ILSVRC", 3, 1): (3000, "a8aefa15461d3ddc"),
    ("OpenImages", 5, 1): (500, "f16fde7a8ab7f639"),
    ("OpenImages", 25, 0): (2500, "84947e6245f1d3ee"),
}


def _digest(ids) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


def _header_images(meta_dir, root, ids=None):
    """Header-only PNGs of the recorded sizes for the ids of a metadata folder."""
    sizes = {p: (int(w), int(h)) for p, w, h in
             (ln.split(",") for ln in _read(os.path.join(meta_dir, "image_sizes.txt")))}
    for rel in ids if ids is not None else _read(os.path.join(meta_dir, "image_ids.txt")):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(png_header(*sizes[rel]))


@pytest.fixture(scope="module")
def roots(shared_dir, tmp_path_factory):
    """Placeholders for every image of CUB's and ILSVRC's real train-fullsup splits."""
    root = tmp_path_factory.mktemp("wsol")
    for dataset in ("CUB", "ILSVRC"):
        _header_images(_meta(shared_dir, dataset, "val"), root / dataset)
    return root, os.path.join(shared_dir, "data", "wsol-metadata")


def _load(roots, dataset, **kwargs):
    root, meta = roots
    return load_wsol(root / dataset, meta, dataset, "val", cache_dir=root / "cache", **kwargs)


@pytest.mark.parametrize("dataset, n, seed", [k for k in REFERENCE if k[0] != "OpenImages"])
def test_samples_per_class_is_the_references_draw(roots, shared_dir, dataset, n, seed):
    ds = _load(roots, dataset, samples_per_class=n, random_state=seed)
    assert (len(ds), _digest(ds["image_id"])) == REFERENCE[dataset, n, seed]
    counts = Counter(ds["label"])
    assert len(counts) == {"CUB": 200, "ILSVRC": 1000}[dataset] and set(counts.values()) == {n}
    labels = dict(ln.split(",") for ln in _read(os.path.join(
        _meta(shared_dir, dataset, "val"), "class_labels.txt")))
    assert ds["label"] == [int(labels[i]) for i in ds["image_id"]]
    assert len(set(ds["image_id"])) == len(ds)  # without replacement
    assert ds["label"] == sorted(ds["label"])  # class by class, as the reference


@pytest.mark.parametrize("n, seed", [k[1:] for k in REFERENCE if k[0] == "OpenImages"])
def test_openimages_draw_is_the_references(shared_dir, n, seed):
    # OpenImages rows need real mask files to load; the draw itself is checked on the full
    # real list (it happens before any image or mask is read)
    from skcream.data.wsol import _sample_per_class

    ids = _sample_per_class(_meta(shared_dir, "OpenImages", "val"), n, seed)
    assert (len(ids), _digest(ids)) == REFERENCE["OpenImages", n, seed]


def test_samples_per_class_is_reproducible_and_zero_is_all(roots):
    a = _load(roots, "CUB", samples_per_class=2, random_state=3)
    b = _load(roots, "CUB", samples_per_class=2, random_state=np.random.RandomState(3))
    c = _load(roots, "CUB", samples_per_class=2, random_state=4)  # the same cache_dir
    assert a["image_id"] == b["image_id"] != c["image_id"]
    unseeded = _load(roots, "CUB", samples_per_class=1)
    assert len(unseeded) == 200 and len(set(unseeded["label"])) == 200
    every = _load(roots, "CUB")
    assert _load(roots, "CUB", samples_per_class=0, random_state=3)["image_id"] == every["image_id"]
    assert set(a["image_id"]) <= set(every["image_id"])


def test_a_class_with_fewer_images_keeps_them_all(roots):
    """CUB's train-fullsup has one class of 3 images (the reference stops there with
    numpy's 'Cannot take a larger sample than population')."""
    with pytest.warns(UserWarning, match=r"samples_per_class=5: 1 class\(es\) .* \(class 58: 3\)"):
        ds = _load(roots, "CUB", samples_per_class=5, random_state=0)
    counts = Counter(ds["label"])
    assert len(ds) == 197 * 5 + 3 + 2 * 5 and counts[58] == 3
    assert set(counts.values()) == {3, 5}  # the two classes of 6 give 5


@pytest.mark.parametrize("dataset, split, kwargs, error, match", [
    ("CUB", "val", {"samples_per_class": 6}, ValueError, "must be <= 5 for CUB"),
    ("OpenImages", "val", {"samples_per_class": 26}, ValueError, "must be <= 25 for OpenImages"),
    ("CUB", "val", {"samples_per_class": -1}, ValueError, "int >= 0"),
    ("CUB", "val", {"samples_per_class": 2.0}, TypeError, "int >= 0"),
    ("CUB", "val", {"samples_per_class": True}, TypeError, "int >= 0"),
    ("CUB", "train", {"samples_per_class": 2}, ValueError, r"train-fullsup split \(split='val'\)"),
    ("ILSVRC", "val", {"proxy": True}, ValueError, r"proxy training list \(split='train'"),
    ("ILSVRC", "train", {"proxy": 1}, TypeError, "proxy must be a bool"),
])
def test_bad_selection_is_refused_before_any_file_is_read(tmp_path, dataset, split, kwargs,
                                                          error, match):
    with pytest.raises(error, match=match):
        load_wsol(tmp_path / "no-images", tmp_path / "no-metadata", dataset, split, **kwargs)


def test_more_samples_than_any_class_has(roots):
    with pytest.raises(ValueError, match=r"samples_per_class=11: no class .* \(at most 10\)"):
        _load(roots, "ILSVRC", samples_per_class=11)


# ------------------------------------------------------------------------------ proxy
@pytest.fixture
def ilsvrc_train(shared_dir, tmp_path):
    """An ILSVRC train metadata folder made of the real train-fullsup lines, with a proxy
    list of every 7th image in reversed order; placeholders for the proxy images only."""
    src = _meta(shared_dir, "ILSVRC", "val")
    dst = tmp_path / "meta" / "ILSVRC" / "train"
    dst.mkdir(parents=True)
    ids = _read(os.path.join(src, "image_ids.txt"))
    for name in ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt"):
        (dst / name).write_text("\n".join(_read(os.path.join(src, name))) + "\n")
    proxy = ids[::7][::-1]
    (dst / "image_ids_proxy.txt").write_text("\n".join(proxy) + "\n")
    _header_images(src, tmp_path / "data", proxy)
    return tmp_path, proxy


def test_proxy_reads_the_proxy_list(ilsvrc_train, shared_dir):
    root, proxy = ilsvrc_train
    ds = load_wsol(root / "data", root / "meta", "ILSVRC", "train", proxy=True,
                   cache_dir=root / "cache")
    assert ds["image_id"] == proxy
    src = _meta(shared_dir, "ILSVRC", "val")
    labels = dict(ln.split(",") for ln in _read(os.path.join(src, "class_labels.txt")))
    assert ds["label"] == [int(labels[i]) for i in proxy]
    boxes: dict[str, list] = {}
    for ln in _read(os.path.join(src, "localization.txt")):
        p, *c = ln.split(",")
        boxes.setdefault(p, []).append([float(v) for v in c])
    assert ds["bboxes"] == [boxes[i] for i in proxy]
    # without proxy: the whole list, whose images are not all there
    with pytest.raises(ValueError, match="image file"):
        load_wsol(root / "data", root / "meta", "ILSVRC", "train", cache_dir=root / "cache")


def test_missing_proxy_list_names_the_file(ilsvrc_train):
    root, _ = ilsvrc_train
    os.remove(root / "meta" / "ILSVRC" / "train" / "image_ids_proxy.txt")
    with pytest.raises(FileNotFoundError, match=r"ILSVRC/train/image_ids_proxy\.txt' is missing"):
        load_wsol(root / "data", root / "meta", "ILSVRC", "train", proxy=True)


def test_no_warning_when_every_class_has_enough(roots):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(_load(roots, "CUB", samples_per_class=3, random_state=0)) == 600
