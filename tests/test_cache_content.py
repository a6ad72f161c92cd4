"""``memory=`` caches are keyed by content, not by file names (issue 22, item 6).

Images overwritten in place with the same names must be trained on again (the refit must
not return the network of the old pixels) and their maps recomputed; the same bytes in
another folder are the same data (a cache hit). Weight files likewise.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.base import clone
from test_localizer import TINY, count_training  # noqa: F401 (a fixture)

from skcream import CREAMLocalizer, TimmFeatures, _digest
from skcream.data import ImageSource, load_imagefolder


def _write_folder(root, seed):
    rng = np.random.default_rng(seed)
    for c, name in enumerate(("a", "b")):
        (root / name).mkdir(parents=True, exist_ok=True)
        for k in range(4):
            img = rng.integers(0, 80, (36, 40, 3)).astype(np.uint8)
            img[8:24, 8:24, c] = 250
            Image.fromarray(img).save(root / name / f"{k}.png")
    return root


def _same_weights(a, b):
    sa, sb = a.model_.state_dict(), b.model_.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


def test_images_overwritten_in_place_are_trained_on_again(tmp_path, count_training):  # noqa: F811
    folder = _write_folder(tmp_path / "data", seed=0)
    est = CREAMLocalizer(**TINY, memory=tmp_path / "cache")
    first = clone(est).fit(load_imagefolder(folder))
    old_maps = first.transform(load_imagefolder(folder))
    assert len(count_training) == 1
    _write_folder(folder, seed=1)  # the same names, other pixels
    data = load_imagefolder(folder)
    refit = clone(est).fit(data)
    assert len(count_training) == 2  # not the cached network of the old pixels
    fresh = CREAMLocalizer(**TINY).fit(data)
    assert _same_weights(refit, fresh) and not _same_weights(refit, first)
    # the first model's maps of the new pixels, not its cached maps of the old ones
    new_maps = first.transform(data)
    assert not np.array_equal(new_maps, old_maps)
    np.testing.assert_array_equal(new_maps, _without_memory(first).transform(data))


def _without_memory(est):
    import pickle

    return pickle.loads(pickle.dumps(est)).set_params(memory=None)


def test_the_same_bytes_elsewhere_are_the_same_data(tmp_path, count_training):  # noqa: F811
    folder = _write_folder(tmp_path / "data", seed=0)
    est = CREAMLocalizer(**TINY, memory=tmp_path / "cache")
    first = clone(est).fit(load_imagefolder(folder))
    shutil.copytree(folder, tmp_path / "copy")
    again = clone(est).fit(load_imagefolder(tmp_path / "copy"))
    assert len(count_training) == 1 and _same_weights(first, again)
    # a list of file paths is fingerprinted by the bytes too
    paths = sorted(str(p) for p in folder.glob("*/*.png"))
    copies = sorted(str(p) for p in (tmp_path / "copy").glob("*/*.png"))
    assert ImageSource.from_input(paths).fingerprint() == \
        ImageSource.from_input(copies).fingerprint()


def test_a_weight_file_overwritten_in_place_is_a_new_key(tmp_path, count_training):  # noqa: F811
    import timm
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"

    def weights(seed):
        torch.manual_seed(seed)
        model = timm.create_model("test_resnet", num_classes=0)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)

    folder = _write_folder(tmp_path / "data", seed=0)
    data = load_imagefolder(folder)
    weights(0)
    est = CREAMLocalizer(**{**TINY, "pretrained": str(path)}, memory=tmp_path / "cache")
    a = clone(est).fit(data)
    weights(1)
    b = clone(est).fit(data)
    assert len(count_training) == 2 and not _same_weights(a, b)
    features = TimmFeatures("test_resnet", pretrained=str(path), image_size=32,
                            memory=tmp_path / "feats", verbose=0).fit()
    f1 = features.transform(data)
    weights(2)
    f2 = clone(features).fit().transform(data)
    assert not np.array_equal(f1, f2)


def test_file_digest_sees_a_rewrite_that_keeps_size_and_mtime(tmp_path, monkeypatch):
    """The memo trusts (device, inode, size, mtime, ctime): a rewrite of the same size with
    its mtime set back still changes ctime, which no tool can set back."""
    monkeypatch.setattr(_digest, "RACY_SECONDS", -1.0)  # memoise even brand-new files
    path = tmp_path / "f.bin"
    path.write_bytes(b"a" * 100)
    before = os.stat(path)
    first = _digest.file_digest(path)
    assert _digest.file_digest(path) == first  # from the memo
    path.write_bytes(b"b" * 100)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(path).st_mtime_ns == before.st_mtime_ns
    assert _digest.file_digest(path) != first


@pytest.mark.parametrize("racy", [True, False])
def test_a_recently_changed_file_is_read_again(tmp_path, monkeypatch, racy):
    """Within RACY_SECONDS of a change the digest is not memoised, so even a change that
    kept every stamp (a file system with coarse timestamps) is seen."""
    path = tmp_path / "f.bin"
    path.write_bytes(b"a" * 10)
    monkeypatch.setattr(_digest, "RACY_SECONDS", 3600.0 if racy else -1.0)
    first = _digest.file_digest(path)
    stamps = os.stat(path)
    real_stat = os.stat

    def same_stamps(p, *a, **k):  # a coarse file system: the rewrite keeps every stamp
        return stamps if os.fspath(p) == os.fspath(path) else real_stat(p, *a, **k)

    path.write_bytes(b"b" * 10)
    monkeypatch.setattr(_digest.os, "stat", same_stamps)
    assert (_digest.file_digest(path) != first) is racy
