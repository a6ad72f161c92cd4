"""Hostile and wrong input (issue 14): every case is a tiny file or tensor made here, and the
answer is either the right result or one clear error naming the file / line / argument."""

import io
import json
import os
import struct
import warnings
import zlib

import cv2
import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from skcream import training
from skcream.cli import main
from skcream.data import (
    ImageSource,
    SkippedImagesWarning,
    load_cub,
    load_imagefolder,
    load_wsol,
    make_synthetic,
    wsol_features,
)


# --------------------------------------------------------------------------- helpers
def _png(path, size=(8, 6), value=(10, 200, 30), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value).save(path)
    return path


def _png_header(w, h):
    """A PNG whose header says (w, h), with no pixel data."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", b"") + chunk(b"IEND", b""))


def _write(path, lines, *, bom=False, crlf=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    text = ("\r\n" if crlf else "\n").join(lines) + ("\r\n" if crlf else "\n")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())


def _wsol(tmp_path, rows, *, dataset="CUB", split="test", sizes=None, loc=None, **fmt):
    """metadata for rows (image_id, label); returns (data_root, metadata_root)."""
    meta = tmp_path / "meta" / dataset / split
    _write(meta / "image_ids.txt", [r for r, _ in rows], **fmt)
    _write(meta / "class_labels.txt", [f"{r},{lab}" for r, lab in rows], **fmt)
    if sizes is not None:
        _write(meta / "image_sizes.txt", [f"{r},{w},{h}" for r, (w, h) in sizes.items()], **fmt)
    if loc is not None:
        _write(meta / "localization.txt", loc, **fmt)
    return tmp_path / "data", tmp_path / "meta"


def _one_error_line(err):
    """The one ``skcream CMD: error: ...`` line of stderr (progress bars of ``datasets`` may
    share stderr); no traceback."""
    lines = [ln for ln in err.splitlines() if "error:" in ln.lower()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith("skcream ") and ": error: " in lines[0]
    return lines[0]


def _cli(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    return code, *capsys.readouterr()


# --------------------------------------------------------------------------- path traversal
def test_wsol_image_id_outside_data_root_is_refused_with_its_line(tmp_path):
    (tmp_path / "outside_secret.jpg").write_bytes(b"secret")
    _png(tmp_path / "data" / "a" / "1.png")
    data, meta = _wsol(tmp_path, [("a/1.png", 0), ("../outside_secret.jpg", 0)])
    with pytest.raises(ValueError, match=r"image_ids\.txt:2: path '\.\./outside_secret\.jpg' "
                                         r"lies outside data_root.*allow_outside_root=True"):
        load_wsol(data, meta, "CUB", "test", cache_dir=tmp_path / "c")
    data, meta = _wsol(tmp_path, [("a/1.png", 0), (str(tmp_path / "data" / "a" / "1.png"), 1)])
    with pytest.raises(ValueError, match=r"image_ids\.txt:2: .* lies outside data_root"):
        load_wsol(data, meta, "CUB", "test", cache_dir=tmp_path / "c")
    # "a/../a/1.png" stays inside: accepted; the explicit opt-in accepts the absolute one
    _png(tmp_path / "elsewhere" / "2.png")
    data, meta = _wsol(tmp_path, [("a/../a/1.png", 0), (str(tmp_path / "elsewhere" / "2.png"), 1)])
    ds = load_wsol(data, meta, "CUB", "test", cache_dir=tmp_path / "c", allow_outside_root=True)
    assert len(ds) == 2
    # the same file under two spellings is one image listed twice (issue 22): refused
    data, meta = _wsol(tmp_path, [("a/../a/1.png", 0), (str(tmp_path / "data" / "a" / "1.png"), 1)])
    with pytest.raises(ValueError, match=r"images 'a/\.\./a/1\.png' and .* are the same file"):
        load_wsol(data, meta, "CUB", "test", cache_dir=tmp_path / "c", allow_outside_root=True)
    with pytest.raises(TypeError, match="allow_outside_root"):
        load_wsol(data, meta, "CUB", "test", allow_outside_root="yes")


def test_openimages_mask_path_outside_mask_root_is_refused(tmp_path):
    _png(tmp_path / "data" / "a" / "1.png")
    _png(tmp_path / "masks" / "m.png", mode="L", value=255)
    data, meta = _wsol(tmp_path, [("a/1.png", 0)], dataset="OpenImages", split="val",
                       loc=["a/1.png,m.png,", "a/1.png,../../etc/passwd,"])
    with pytest.raises(ValueError, match=r"localization\.txt:2: path '\.\./\.\./etc/passwd' lies "
                                         "outside mask_root"):
        load_wsol(data, meta, "OpenImages", "val", mask_root=tmp_path / "masks",
                  cache_dir=tmp_path / "c")


def test_imagefolder_file_name_outside_root_is_refused(tmp_path):
    root = tmp_path / "root"
    _png(root / "a" / "1.png")
    _png(tmp_path / "outside.png")
    for bad in ("../outside.png", "/etc/hostname", "a/../../outside.png"):
        _write(root / "metadata.jsonl", [json.dumps({"file_name": "a/1.png", "label": "x"}),
                                         json.dumps({"file_name": bad, "label": "y"})])
        with pytest.raises(ValueError, match=r"metadata\.jsonl:2: path .* lies outside root"):
            load_imagefolder(root, cache_dir=tmp_path / "c")
    _write(root / "metadata.jsonl", [json.dumps({"file_name": "a/1.png", "label": "x",
                                                 "mask": "../outside.png"})])
    with pytest.raises(ValueError, match=r"metadata\.jsonl:1: path '\.\./outside\.png'"):
        load_imagefolder(root, cache_dir=tmp_path / "c")
    _write(root / "metadata.jsonl", [json.dumps({"file_name": "a/1.png", "label": "x"}),
                                     json.dumps({"file_name": "../outside.png", "label": "y"})])
    ds = load_imagefolder(root, cache_dir=tmp_path / "c", allow_outside_root=True)
    assert ds["image_id"] == ["a/1.png", "../outside.png"]


def test_cub_images_txt_outside_images_folder_is_refused(tmp_path):
    root = tmp_path / "CUB_200_2011"
    _png(root / "images" / "001.a" / "x.png")
    _write(root / "images.txt", ["1 001.a/x.png", "2 ../../secret.png"])
    _write(root / "image_class_labels.txt", ["1 1", "2 1"])
    _write(root / "train_test_split.txt", ["1 1", "2 1"])
    _write(root / "bounding_boxes.txt", ["1 0 0 2 2", "2 0 0 2 2"])
    _write(root / "classes.txt", ["1 001.a"])
    with pytest.raises(ValueError, match=r"images\.txt:2: path '\.\./\.\./secret\.png' lies outside"):
        load_cub(root, cache_dir=tmp_path / "c")


# --------------------------------------------------------------------------- stale masks
def test_edited_openimages_mask_is_read_again(tmp_path):
    _png(tmp_path / "data" / "a" / "1.png", size=(8, 6))
    mask = np.zeros((6, 8), np.uint8)
    mask[:, :4] = 255
    (tmp_path / "masks").mkdir()
    cv2.imwrite(str(tmp_path / "masks" / "m.png"), mask)
    data, meta = _wsol(tmp_path, [("a/1.png", 0)], dataset="OpenImages", split="val",
                       loc=["a/1.png,m.png,"])
    kw = dict(mask_root=tmp_path / "masks", cache_dir=tmp_path / "c")
    first = ImageSource.from_input(load_wsol(data, meta, "OpenImages", "val", **kw)).mask(0)
    assert first[:, :4].all() and not first[:, 4:].any()
    st = os.stat(tmp_path / "masks" / "m.png")
    cv2.imwrite(str(tmp_path / "masks" / "m.png"), 255 - mask)  # same size on disk
    os.utime(tmp_path / "masks" / "m.png", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    again = ImageSource.from_input(load_wsol(data, meta, "OpenImages", "val", **kw)).mask(0)
    np.testing.assert_array_equal(again, 1 - first)


# --------------------------------------------------------------------------- wrong data
def test_localization_line_of_an_unlisted_image_is_an_error(tmp_path):
    _png(tmp_path / "data" / "a" / "1.png", size=(80, 60))
    data, meta = _wsol(tmp_path, [("a/1.png", 0)], loc=["a/1.png,1,1,7,5", "a/1.pn,0,0,4,3"])
    with pytest.raises(ValueError, match=r"localization\.txt:2: image 'a/1\.pn' is not listed "
                                         r"in image_ids\.txt"):
        load_wsol(data, meta, "CUB", "test", cache_dir=tmp_path / "c")


def test_image_sizes_txt_disagreeing_with_the_file(tmp_path):
    _png(tmp_path / "data" / "a" / "1.png", size=(80, 60))
    _png(tmp_path / "data" / "a" / "2.png", size=(80, 60))
    data, meta = _wsol(tmp_path, [("a/1.png", 0), ("a/2.png", 0)],
                       sizes={"a/1.png": (80, 60), "a/2.png": (800, 600)},
                       loc=["a/1.png,1,1,70,50", "a/2.png,1,1,700,500"])
    with pytest.raises(ValueError, match=r"'a/2\.png'.*size as 800x600.*is 80x60; fix image_sizes"):
        load_wsol(data, meta, "CUB", "test", cache_dir=tmp_path / "c")
    with pytest.warns(SkippedImagesWarning, match="skipped 1"):
        ds = load_wsol(data, meta, "CUB", "test", on_error="skip", cache_dir=tmp_path / "c")
    assert ds["image_id"] == ["a/1.png"]


@pytest.mark.parametrize("values,size,match", [
    ((0, 7), (80, 60), r"holds values \[7\]"),
    ((1, 128), (80, 60), r"holds values \[128\]"),
    ((0, 1), (10, 10), r"is 10x10 \(W x H\) but its image is 80x60"),
])
def test_imagefolder_bad_masks(tmp_path, values, size, match):
    root = tmp_path / "root"
    _png(root / "a" / "1.png", size=(80, 60))
    arr = np.full(size[::-1], values[0], np.uint8)
    arr[: size[1] // 2] = values[1]
    (root / "m").mkdir()
    Image.fromarray(arr).save(root / "m" / "1.png")
    _write(root / "metadata.jsonl", [json.dumps({"file_name": "a/1.png", "mask": "m/1.png"})])
    with pytest.raises(ValueError, match=match):
        load_imagefolder(root, cache_dir=tmp_path / "c")


def test_image_source_checks_mask_values_and_shape():
    img = np.zeros((60, 80, 3), np.uint8)
    feats = wsol_features(["a"], with_mask=True)

    def source(mask):
        return ImageSource.from_input(datasets.Dataset.from_dict(
            {"image": [img], "label": [0], "bboxes": [[]], "mask": [mask], "image_id": ["x"]},
            features=feats))

    with pytest.raises(ValueError, match=r"mask of image 'x' \(index 0\) holds values \[7\]"):
        source(np.full((60, 80), 7, np.uint8)).mask(0)
    with pytest.raises(ValueError, match=r"mask of image 'x' .* is 10x10 .* image is 80x60"):
        source(np.ones((10, 10), np.uint8)).mask(0)
    half = np.ones((30, 40), np.uint8)  # same picture at half resolution: resized by the protocol
    np.testing.assert_array_equal(source(half).mask(0), half)


def test_empty_images_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"X\[1\] is an empty image"):
        ImageSource.from_input([np.zeros((4, 4, 3), np.uint8), np.zeros((0, 0, 3), np.uint8)],
                               [0, 1])
    with pytest.raises(ValueError, match=r"X\[0\] is an empty image"):
        ImageSource.from_input([Image.new("RGB", (0, 5))], [0])
    # a file whose header says 0 x 5
    (tmp_path / "e.png").write_bytes(_png_header(0, 5))
    with pytest.raises(ValueError, match=r"e\.png"):
        ImageSource.from_input([str(tmp_path / "e.png")], [0]).image(0)


def test_timm_features_image_size_too_small():
    from skcream.estimators.features import TimmFeatures

    with pytest.raises(ValueError, match=r"image_size=1 gives backbone 'test_resnet' a 1x1 "
                                         "feature map"):
        TimmFeatures("test_resnet", pretrained=False, image_size=1, device="cpu").fit()


def test_localizer_image_size_too_small_fails_before_training(monkeypatch):
    from skcream.estimators.localizer import CREAMLocalizer

    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr("skcream.training.train", no_training)
    X = [np.full((20, 20, 3), 9 * i, np.uint8) for i in range(4)]
    with pytest.raises(ValueError, match=r"image_size=8 gives backbone 'test_resnet' a 1x1"):
        CREAMLocalizer(backbone="test_resnet", pretrained=False, image_size=8, resize_size=8,
                       max_epochs=1, verbose=0).fit(X, [0, 1, 0, 1])


# --------------------------------------------------------------------------- encodings
def test_bom_and_crlf_metadata_is_read(tmp_path):
    _png(tmp_path / "data" / "a" / "1.png", size=(8, 6))
    _png(tmp_path / "data" / "a" / "2.png", size=(8, 6))
    data, meta = _wsol(tmp_path, [("a/1.png", 0), ("a/2.png", 1)], sizes={"a/1.png": (8, 6)},
                       loc=["a/1.png,1,1,7,5", "a/2.png,0,0,8,6"], bom=True, crlf=True)
    ds = load_wsol(data, meta, "CUB", "test", cache_dir=tmp_path / "c")
    assert ds["image_id"] == ["a/1.png", "a/2.png"] and ds["label"] == [0, 1]
    assert ds["bboxes"] == [[[1, 1, 7, 5]], [[0, 0, 8, 6]]]
    root = tmp_path / "root"
    _png(root / "a" / "1.png")
    _write(root / "metadata.jsonl", [json.dumps({"file_name": "a/1.png", "label": "b"})],
           bom=True, crlf=True)
    assert load_imagefolder(root, cache_dir=tmp_path / "c")["image_id"] == ["a/1.png"]


def test_invalid_utf8_names_file_and_line(tmp_path):
    _png(tmp_path / "data" / "a" / "1.png")
    data, meta = _wsol(tmp_path, [("a/1.png", 0)])
    ids = meta / "CUB" / "test" / "image_ids.txt"
    ids.write_bytes(b"a/1.png\nb/\xff\xfe.png\n")
    with pytest.raises(ValueError, match=r"image_ids\.txt:2: not valid UTF-8 \(byte 0xff at "
                                         r"column 3\)"):
        load_wsol(data, meta, "CUB", "test", cache_dir=tmp_path / "c")


# --------------------------------------------------------------------------- hidden causes
def test_unreadable_openimages_mask_names_the_file(tmp_path):
    _png(tmp_path / "data" / "a" / "1.png", size=(8, 6))
    (tmp_path / "masks").mkdir()
    (tmp_path / "masks" / "m.png").write_bytes(b"not a png at all")
    data, meta = _wsol(tmp_path, [("a/1.png", 0)], dataset="OpenImages", split="val",
                       loc=["a/1.png,m.png,"])
    kw = dict(mask_root=tmp_path / "masks", cache_dir=tmp_path / "c")
    with pytest.raises(ValueError, match=r"mask file '.*m\.png' is corrupt, truncated or not an "
                                         "image") as info:
        load_wsol(data, meta, "OpenImages", "val", **kw)
    assert not isinstance(info.value, datasets.exceptions.DatasetGenerationError)
    # a mask whose header reads but whose pixels are cut: found while writing, cause shown
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 2, (60, 80), dtype=np.uint8) * 255
                    ).save(buf, "PNG")
    (tmp_path / "masks" / "m.png").write_bytes(buf.getvalue()[:-60])
    with pytest.raises(ValueError, match=r"image 'a/1\.png': mask file .*verify=True") as info:
        load_wsol(data, meta, "OpenImages", "val", **kw)
    assert type(info.value) is ValueError
    with pytest.raises(ValueError, match="masks are unreadable"):
        load_wsol(data, meta, "OpenImages", "val", verify=True, **kw)


def test_make_synthetic_unknown_background_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"backgrounds: skimage.data has no texture 'nosuch'"):
        make_synthetic(2, backgrounds=["nosuch"], cache_dir=tmp_path)


def test_decompression_bomb_is_named_not_raised_raw(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header(20000, 20000))  # 400 Mpx header, 60 bytes on disk
    with pytest.raises(ValueError, match=r"bomb\.png' \(index 0\) is too large to decode safely"):
        ImageSource.from_input([str(bomb)], [0]).image(0)
    root = tmp_path / "root"
    root.mkdir()
    os.replace(bomb, root / "bomb.png")
    _write(root / "metadata.jsonl", [json.dumps({"file_name": "bomb.png", "label": "a",
                                                 "bboxes": [[0, 0, 5, 5]]})])
    with pytest.raises(ValueError, match=r"bomb\.png' is too large to decode safely.*"
                                         "MAX_IMAGE_PIXELS"):
        load_imagefolder(root, cache_dir=tmp_path / "c")


def test_decompression_bomb_cli_is_one_line(tmp_path, capsys):
    (tmp_path / "bomb.png").write_bytes(_png_header(20000, 20000))
    code, _, err = _cli(["localize", str(tmp_path / "bomb.png"), "--post-hoc",
                         "--out", str(tmp_path / "o"), "--device", "cpu"], capsys)
    assert code != 0
    assert "bomb.png" in _one_error_line(err)


def test_out_of_memory_in_fit_says_what_to_reduce(monkeypatch):
    def oom(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: "
                           "not enough memory: you tried to allocate 9663676416 bytes.")

    monkeypatch.setattr(training, "_train", oom)
    ds = torch.utils.data.TensorDataset(torch.zeros(2, 3))
    with pytest.raises(MemoryError, match=r"out of memory while training with batch_size=64 "
                                          r".*reduce batch_size \(CLI: --batch-size\) or "
                                          r"image_size \(CLI: --image-size\)"):
        training.train(torch.nn.Linear(3, 2), ds, loss_fn=lambda o, b: o.sum(),
                       config=training.TrainConfig(batch_size=64, epochs=1))
    # other runtime errors keep their type (they are bugs, not resource limits)
    monkeypatch.setattr(training, "_train", lambda *a, **k: (_ for _ in ()).throw(
        RuntimeError("mat1 and mat2 shapes cannot be multiplied")))
    with pytest.raises(RuntimeError, match="mat1"):
        training.train(torch.nn.Linear(3, 2), ds, loss_fn=lambda o, b: o.sum())


def test_out_of_memory_cli_is_one_line(monkeypatch, tmp_path, capsys):
    from skcream.estimators.localizer import CREAMLocalizer

    def oom(self, X, y=None):
        raise MemoryError(training.out_of_memory_message(
            RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), self.batch_size))

    monkeypatch.setattr(CREAMLocalizer, "fit", oom)
    code, _, err = _cli(["train", "--data", "synthetic:8", "--batch-size", "64", "--out",
                         str(tmp_path / "o"), "--device", "cpu", "--quiet"], capsys)
    line = _one_error_line(err)
    assert code == 1 and "batch_size=64" in line and "--batch-size" in line


# --------------------------------------------------------------------------- offline hub
def test_offline_hub_fails_fast_and_names_the_local_file(monkeypatch):
    import timm

    from skcream.backbones import build_backbone

    real = timm.create_model

    def no_hub(*args, **kwargs):
        assert not kwargs.get("pretrained"), "the hub was contacted"
        return real(*args, **kwargs)

    monkeypatch.setattr(timm, "create_model", no_hub)
    monkeypatch.setattr("skcream.weights._hub_cached_file", lambda name: None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConnectionError, match=r"HF_HUB_OFFLINE.*pretrained='/path/to/"
                                              r"test_resnet\.safetensors' \(CLI: --pretrained PATH"):
        build_backbone("test_resnet", pretrained=True)
    # no offline switch, but the one short probe fails: no download attempt either
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr("skcream.weights._hub_offline_env", lambda: False)

    def unreachable(*args, **kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.setattr("socket.create_connection", unreachable)
    with pytest.raises(ConnectionError, match=r"unreachable \(OSError: Network is unreachable\)"):
        build_backbone("test_resnet", pretrained=True)  # no_hub above: timm never retried


def test_hub_probe_gives_up_after_its_timeout(monkeypatch):
    import threading

    from skcream import weights

    release = threading.Event()
    monkeypatch.setattr(weights, "_hub_offline_env", lambda: False)
    monkeypatch.setattr(weights, "HUB_PROBE_TIMEOUT", 0.05)
    def never_answers(*args, **kwargs):
        release.wait(30)
        raise OSError("late")

    monkeypatch.setattr("socket.create_connection", never_answers)
    try:  # a name lookup that never answers: the probe returns anyway
        assert weights._hub_unreachable_reason().startswith("no answer from huggingface.co:443")
    finally:
        release.set()


def test_hub_weights_in_the_local_cache_load_offline(monkeypatch, tmp_path):
    import timm
    from safetensors.torch import save_file

    from skcream.backbones import build_backbone

    src = timm.create_model("test_resnet", pretrained=False)
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, tmp_path / "w.safetensors")
    monkeypatch.setattr("skcream.weights._hub_cached_file", lambda name: str(tmp_path / "w.safetensors"))
    monkeypatch.setattr("skcream.weights._hub_unreachable_reason",
                        lambda: pytest.fail("probed the network although the cache has the file"))
    net = build_backbone("test_resnet", pretrained=True)
    stem = src.state_dict()["conv1.0.weight"]
    assert any(p.shape == stem.shape and torch.equal(p, stem) for p in net.parameters())


def test_offline_hub_cli_is_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("skcream.weights._hub_cached_file", lambda name: None)
    _png(tmp_path / "x.png", size=(40, 40))
    code, _, err = _cli(["localize", str(tmp_path / "x.png"), "--post-hoc", "--backbone",
                         "test_resnet", "--out", str(tmp_path / "o"), "--device", "cpu"], capsys)
    line = _one_error_line(err)
    assert code == 1 and "--pretrained PATH" in line


# --------------------------------------------------------------------------- CLI messages
@pytest.mark.parametrize("argv,fragment", [
    (["--lr", "inf"], "argument --lr: expected a finite positive number, got inf"),
    (["--lr", "nan"], "argument --lr: expected a finite positive number, got nan"),
    (["--image-size", "4"], "argument --image-size: expected an integer >= 8"),
])
def test_train_number_errors_name_the_option(argv, fragment, tmp_path, capsys):
    code, _, err = _cli(["train", "--data", "synthetic:8", "--out", str(tmp_path), *argv], capsys)
    assert code == 2 and fragment in _one_error_line(err)


def test_library_real_check_says_finite():
    from skcream.estimators.localizer import CREAMLocalizer

    with pytest.raises(ValueError, match=r"lr must be a finite number in \(0\.0, inf\), got inf"):
        CREAMLocalizer(lr=float("inf")).fit([np.zeros((8, 8, 3), np.uint8)] * 2, [0, 1])


@pytest.mark.slow
def test_train_with_val_data_and_large_image_size(tmp_path, capsys):
    code, out, err = _cli(["train", "--data", "synthetic:16", "--val-data", "synthetic:8",
                           "--backbone", "test_resnet", "--pretrained", "false", "--epochs", "1",
                           "--image-size", "300", "--batch-size", "8", "--out",
                           str(tmp_path / "o"), "--device", "cpu", "--quiet"], capsys)
    assert code == 0, err
    from skcream.estimators.localizer import CREAMLocalizer

    model = CREAMLocalizer.load(tmp_path / "o" / "model")
    from skcream.estimators._params import resolved_resize_size

    # resize_size=None (the default): the protocol's 256 / 224 of image_size
    assert model.image_size == 300 and model.resize_size is None
    assert resolved_resize_size(model.image_size, model.resize_size) == 343  # 300 * 256 / 224
    assert "val_max_box_acc_v2" in model.history_[-1]  # --val-data reached the estimator


# --------------------------------------------------------------------------- fuzz
GOOD = {"CUB": ["{i} 00{c}.k/{i}.png", "{i} {c1}", "{i} 1", "{i} 0 0 4 3", None],
        "wsol": ["k{c}/{i}.png", "k{c}/{i}.png,{c}", "k{c}/{i}.png,8,6", "k{c}/{i}.png,0,0,4,3"],
        "imagefolder": ['{{"file_name": "k{c}/{i}.png", "label": "k{c}", "bboxes": [[0, 0, 4, 3]]}}']}


def _garbage(rng, good):
    """One corrupt metadata line (bytes), made from a good one or from nothing."""
    kind = rng.integers(8)
    if kind == 0:
        return bytes(rng.integers(0, 256, rng.integers(1, 40), dtype=np.uint8))
    if kind == 1:
        return good.encode()[: rng.integers(0, len(good))]
    if kind == 2:
        return good.replace("0", rng.choice(["-1", "nan", "1e309", "x", "", "99999"])).encode()
    if kind == 3:
        return good.replace("k", rng.choice(["../", "/etc/", "..\\", "~/"]), 1).encode()
    if kind == 4:
        return (good + rng.choice([",", ", ,", "\t", "\x00", "\\", '"'])).encode()
    if kind == 5:
        return rng.choice([b"{}", b"[]", b"null", b'{"file_name": 3}', b'{"file_name": ""}',
                           b'{"file_name": "k0/0.png", "label": [1]}', b"[" * 5000,
                           b'{"file_name": "k0/0.png", "bboxes": [["a", {}, 1, 2]]}'])
    if kind == 6:
        return good.encode() * int(rng.integers(2, 4))
    return ("\ufeff" + good).encode()


def _make_images(root, rng, names, folder_of, bad):
    for name in names:
        path = root / folder_of(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        r = rng.integers(6) if bad else 5
        if r == 0:
            path.write_bytes(bytes(rng.integers(0, 256, rng.integers(0, 300), dtype=np.uint8)))
        elif r == 1:
            buf = io.BytesIO()
            Image.new("RGB", (8, 6), (1, 2, 3)).save(buf, "PNG")
            path.write_bytes(buf.getvalue()[: rng.integers(8, 40)])
        else:
            Image.new("RGB", (8, 6), tuple(int(v) for v in rng.integers(0, 256, 3))).save(path, "PNG")


def _corrupt_file(path, lines, rng, bad=True):
    """Write lines with one or two of them replaced by garbage (none when not bad)."""
    out = [ln.encode() for ln in lines]
    for _ in range(rng.integers(1, 3) if bad else 0):
        j = int(rng.integers(len(out)))
        out[j] = _garbage(rng, lines[j])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\n".join(out) + b"\n")


def _fuzz_case(kind, tmp, rng):
    """Build one corrupt dataset of `kind`; return a function loading it with on_error."""
    n = 4
    ids = [(i, i % 2) for i in range(n)]
    mode = rng.choice(["metadata", "images", "both"])
    bad_images, bad_meta = mode != "metadata", mode != "images"
    if kind == "CUB":
        root = tmp / "CUB_200_2011"
        _make_images(root / "images", rng, ids, lambda t: f"00{t[1]}.k/{t[0]}.png", bad_images)
        files = ["images.txt", "image_class_labels.txt", "train_test_split.txt",
                 "bounding_boxes.txt"]
        target = int(rng.integers(len(files)))
        for f, fmt in zip(files, GOOD["CUB"]):
            lines = [fmt.format(i=i, c=c, c1=c + 1) for i, c in ids]
            if files.index(f) == target:
                _corrupt_file(root / f, lines, rng, bad_meta)
            else:
                _write(root / f, lines)
        _write(root / "classes.txt", ["1 000.k", "2 001.k"])
        return lambda **kw: load_cub(root, "train", cache_dir=tmp / "c", **kw)
    if kind == "wsol":
        _make_images(tmp / "data", rng, ids, lambda t: f"k{t[1]}/{t[0]}.png", bad_images)
        meta = tmp / "meta" / "CUB" / "test"
        files = ["image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt"]
        target = int(rng.integers(len(files)))
        for f, fmt in zip(files, GOOD["wsol"]):
            lines = [fmt.format(i=i, c=c) for i, c in ids]
            if files.index(f) == target:
                _corrupt_file(meta / f, lines, rng, bad_meta)
            else:
                _write(meta / f, lines)
        return lambda **kw: load_wsol(tmp / "data", tmp / "meta", "CUB", "test",
                                      class_names=["a", "b"], cache_dir=tmp / "c", **kw)
    if kind == "openimages":
        _make_images(tmp / "data", rng, ids, lambda t: f"k{t[1]}/{t[0]}.png", False)
        _make_images(tmp / "masks", rng, ids, lambda t: f"m/{t[0]}.png", bad_images)
        _make_images(tmp / "masks", rng, ids, lambda t: f"ig/{t[0]}.png", bad_images)
        meta = tmp / "meta" / "OpenImages" / "val"
        _write(meta / "image_ids.txt", [f"k{c}/{i}.png" for i, c in ids])
        _write(meta / "class_labels.txt", [f"k{c}/{i}.png,{c}" for i, c in ids])
        _corrupt_file(meta / "localization.txt", [f"k{c}/{i}.png,m/{i}.png,ig/{i}.png"
                                                  for i, c in ids], rng, bad_meta)
        return lambda **kw: load_wsol(tmp / "data", tmp / "meta", "OpenImages", "val",
                                      mask_root=tmp / "masks", class_names=["a", "b"],
                                      cache_dir=tmp / "c", **kw)
    root = tmp / "root"
    _make_images(root, rng, ids, lambda t: f"k{t[1]}/{t[0]}.png", bad_images)
    _corrupt_file(root / "metadata.jsonl", [GOOD["imagefolder"][0].format(i=i, c=c)
                                            for i, c in ids], rng, bad_meta)
    return lambda **kw: load_imagefolder(root, cache_dir=tmp / "c", **kw)


def _clear(err):
    """A clear error: a plain ValueError / FileNotFoundError / TypeError with a message (not a
    library's own exception class such as JSONDecodeError or DatasetGenerationError)."""
    assert type(err) in (ValueError, FileNotFoundError, TypeError), repr(err)
    assert str(err).strip() and "Traceback" not in str(err)


@pytest.mark.parametrize("kind", ["CUB", "wsol", "openimages", "imagefolder"])
def test_fuzz_corrupt_metadata_and_images(kind, tmp_path):
    """Random corrupt metadata lines and random bytes as images: every outcome is a clear
    error, or a dataset (skipped rows reported in one warning) whose rows decode or raise a
    clear error; never a hang or a raw library exception."""
    import signal

    def hang(*_):
        raise AssertionError(f"{kind}: a loader hung")

    old = signal.signal(signal.SIGALRM, hang)
    rng = np.random.default_rng(14)
    outcomes = {"error": 0, "loaded": 0, "skipped": 0}
    try:
        for trial in range(8):
            load = _fuzz_case(kind, tmp_path / f"t{trial}", rng)
            for on_error in ("raise", "skip"):
                signal.alarm(60)
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    try:
                        ds = load(on_error=on_error, verify=bool(rng.integers(2)))
                    except Exception as err:  # noqa: BLE001 - the assertion is on its type
                        _clear(err)
                        outcomes["error"] += 1
                        continue
                    finally:
                        signal.alarm(0)
                skips = [w for w in caught if issubclass(w.category, SkippedImagesWarning)]
                assert on_error == "skip" or not skips
                outcomes["skipped" if skips else "loaded"] += 1
                src = ImageSource.from_input(ds)
                for i in range(len(src)):
                    try:
                        assert src.image(i).mode == "RGB"
                        mask = src.mask(i)
                        assert mask is None or set(np.unique(mask)) <= {0, 1, 255}
                    except Exception as err:  # noqa: BLE001
                        _clear(err)
    finally:
        signal.signal(signal.SIGALRM, old)
    # the fuzzer reaches all three outcomes (else it tests nothing)
    assert outcomes["error"] and outcomes["loaded"] + outcomes["skipped"], outcomes


def test_cli_traversal_is_one_line_and_the_flag_opts_in(tmp_path, capsys):
    from skcream.cli import parse_data_spec

    root = tmp_path / "root"
    _png(root / "a" / "1.png")
    _png(tmp_path / "outside.png")
    _write(root / "metadata.jsonl", [json.dumps({"file_name": "a/1.png", "label": "x"}),
                                     json.dumps({"file_name": "../outside.png", "label": "y"})])
    code, _, err = _cli(["train", "--data", f"imagefolder:{root}", "--out", str(tmp_path / "o"),
                         "--device", "cpu"], capsys)
    line = _one_error_line(err)
    assert code == 1 and "metadata.jsonl:2" in line and "--allow-outside-root" in line
    ds = parse_data_spec(f"imagefolder:{root}").load(None, allow_outside_root=True)
    assert ds["image_id"] == ["a/1.png", "../outside.png"]
