"""load_wsol on the REAL wsolevaluation metadata with placeholder images of the recorded sizes."""

import os
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from skcream.data import ImageSource, SkippedImagesWarning, load_wsol
from skcream.data.transforms import resize_mask

FILES = ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt")


def _meta(shared_dir, dataset, split):
    return os.path.join(shared_dir, "data", "wsol-metadata", dataset, split)


def _read(path):
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def _subset(shared_dir, tmp_path, dataset, split, ids=None, n=None):
    """Copy the metadata lines of the chosen ids (first n, or `ids`) into tmp_path/meta."""
    src = _meta(shared_dir, dataset, split)
    all_ids = _read(os.path.join(src, "image_ids.txt"))
    keep = list(ids) if ids is not None else all_ids[:n]
    keep_set = set(keep)
    dst = tmp_path / "meta" / dataset / split
    dst.mkdir(parents=True)
    for name in FILES:
        lines = [ln for ln in _read(os.path.join(src, name)) if ln.split(",")[0] in keep_set]
        if name == "image_ids.txt":
            lines = keep
        (dst / name).write_text("\n".join(lines) + ("\n" if lines else ""))
    return tmp_path / "meta", keep


def png_header(w, h):
    """A PNG file with a header saying (w, h) and no pixel data (opens, cannot decode)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", b"") + chunk(b"IEND", b""))


def _placeholders(root, sizes):
    for rel, (w, h) in sizes.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (w, h), (90, 120, 30)).save(path, quality=50)


def _sizes(meta_dir):
    return {p: (int(w), int(h)) for p, w, h in
            (ln.split(",") for ln in _read(os.path.join(meta_dir, "image_sizes.txt")))}


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_cub_every_real_split_parses_in_full(shared_dir, tmp_path, split):
    """All ids of the real split; images are header-only PNGs of the recorded sizes (the
    loader checks image_sizes.txt against each file's header, never decodes pixels)."""
    meta = _meta(shared_dir, "CUB", split)
    ids = _read(os.path.join(meta, "image_ids.txt"))
    sizes = _sizes(meta)
    for rel in ids:
        (tmp_path / "data" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "data" / rel).write_bytes(png_header(*sizes.get(rel, (8, 8))))
    ds = load_wsol(tmp_path / "data", os.path.join(shared_dir, "data", "wsol-metadata"), "CUB",
                   split, cache_dir=tmp_path / "cache")
    assert len(ds) == len(ids) == {"train": 5994, "val": 1000, "test": 5794}[split]
    assert ds["image_id"] == ids
    labels = dict(ln.split(",") for ln in _read(os.path.join(meta, "class_labels.txt")))
    assert ds["label"] == [int(labels[i]) for i in ids]
    boxes = {}
    for ln in _read(os.path.join(meta, "localization.txt")):
        p, *c = ln.split(",")
        boxes.setdefault(p, []).append([float(v) for v in c])
    assert ds["bboxes"] == [boxes[i] for i in ids]
    names = ds.features["label"].names
    assert len(names) == 200 and names[0] == "001.Black_footed_Albatross"
    assert names[199] == "200.Common_Yellowthroat"
    # stored as file paths, not pixels: memory-mapped Arrow on disk
    assert ds.cache_files and str(tmp_path / "cache") in ds.cache_files[0]["filename"]
    raw = ds.cast_column("image", type(ds.features["image"])(decode=False))[0]["image"]
    assert raw["bytes"] is None and raw["path"].endswith(ids[0])


def test_cub_val_subset_decodes_to_recorded_sizes(shared_dir, tmp_path):
    meta, ids = _subset(shared_dir, tmp_path, "CUB", "val", n=12)
    sizes = _sizes(meta / "CUB" / "val")
    _placeholders(tmp_path / "data", sizes)
    ds = load_wsol(tmp_path / "data", meta, "CUB", "val", cache_dir=tmp_path / "cache")
    src = ImageSource.from_input(ds)
    for i, image_id in enumerate(ids):
        assert src.size(i) == sizes[image_id]
        assert src.image(i).mode == "RGB"


def test_ilsvrc_val_real_metadata_multi_box(shared_dir, tmp_path):
    meta = _meta(shared_dir, "ILSVRC", "val")
    ids = _read(os.path.join(meta, "image_ids.txt"))
    sizes = _sizes(meta)
    for rel in ids:
        (tmp_path / "data" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "data" / rel).write_bytes(png_header(*sizes[rel]))
    ds = load_wsol(tmp_path / "data", os.path.join(shared_dir, "data", "wsol-metadata"), "ILSVRC",
                   "val", cache_dir=tmp_path / "cache")
    assert len(ds) == 10000 and len(ds.features["label"].names) == 1000
    n_boxes = [len(b) for b in ds["bboxes"]]
    assert sum(n_boxes) == len(_read(os.path.join(meta, "localization.txt"))) == 18532
    assert max(n_boxes) == 259
    first = [ln for ln in _read(os.path.join(meta, "localization.txt")) if ln.startswith(ids[0] + ",")]
    assert ds.select_columns(["bboxes"])[0]["bboxes"] == [
        [float(v) for v in ln.split(",")[1:]] for ln in first]


SAMPLE_IDS = [
    "val/0bt_c3/1cd9ac0169ec7df0.jpg",
    "val/0bt_c3/3a29f0b33894d4a6.jpg",  # two instance masks; ignore given once
    "val/0bt_c3/3b3b9931325d65c9.jpg",  # ignore box with 255 pixels
    "val/0by6g/490365f63135f3e0.jpg",  # RGBA files, an all-zero instance mask
    "val/0by6g/b4d953e7105da1d8.jpg",  # RGBA instance mask that is all 255
]


def _reference_mask_224(mask_root, lines):
    """wsolevaluation's get_mask, written plainly: resize each file to 224 first."""
    fg = []
    ignore_path = None
    for _, mpath, ipath in (ln.split(",") for ln in lines):
        m = np.float32(cv2.imread(os.path.join(mask_root, mpath), cv2.IMREAD_GRAYSCALE))
        fg.append(cv2.resize(m, (224, 224), interpolation=cv2.INTER_NEAREST) > 0.5)
        ignore_path = ignore_path or (ipath or None)
    fg = np.stack(fg).any(0)
    ig = np.float32(cv2.imread(os.path.join(mask_root, ignore_path), cv2.IMREAD_GRAYSCALE))
    ig = cv2.resize(ig, (224, 224), interpolation=cv2.INTER_NEAREST) > 0.5
    ignore = ig & ~fg
    return fg.astype(np.uint8) + 255 * ignore.astype(np.uint8)


def test_openimages_val_real_masks(shared_dir, tmp_path):
    meta, ids = _subset(shared_dir, tmp_path, "OpenImages", "val", ids=SAMPLE_IDS)
    mask_root = os.path.join(shared_dir, "data", "wsol-metadata", "OpenImages-sample-masks")
    loc = _read(meta / "OpenImages" / "val" / "localization.txt")
    sizes = {}
    for image_id in ids:
        first = next(ln for ln in loc if ln.startswith(image_id + ","))
        sizes[image_id] = Image.open(os.path.join(mask_root, first.split(",")[1])).size
    _placeholders(tmp_path / "data", sizes)
    ds = load_wsol(tmp_path / "data", meta, "OpenImages", "val", mask_root=mask_root,
                   cache_dir=tmp_path / "cache")
    assert ds.column_names == ["image", "label", "bboxes", "mask", "image_id"]
    assert ds.features["label"].names[ds[0]["label"]] == "0bt_c3"
    src = ImageSource.from_input(ds)
    for i, image_id in enumerate(ids):
        mask = src.mask(i)
        assert mask.shape[::-1] == sizes[image_id] == src.size(i)
        assert set(np.unique(mask)) <= {0, 1, 255}
        lines = [ln for ln in loc if ln.startswith(image_id + ",")]
        np.testing.assert_array_equal(resize_mask(mask, 224), _reference_mask_224(mask_root, lines))
    fg_share = [float((src.mask(i) == 1).mean()) for i in range(5)]
    assert fg_share[3] == 0.0 and fg_share[4] == 1.0
    assert (src.mask(2) == 255).any()
    # the union of both instance masks of 3a29f0b33894d4a6
    m1, m2 = (cv2.imread(os.path.join(mask_root, ln.split(",")[1]), cv2.IMREAD_GRAYSCALE) > 0
              for ln in loc if ln.startswith(SAMPLE_IDS[1] + ","))
    np.testing.assert_array_equal(src.mask(1) == 1, m1 | m2)


def test_openimages_full_val_metadata_parses(shared_dir, tmp_path):
    """Every real OpenImages val line: ids, labels, one ignore per image (no pixels read)."""
    meta = _meta(shared_dir, "OpenImages", "val")
    from skcream.data.wsol import _read_masks

    masks = _read_masks(meta, "masks", False)  # every real mask path stays inside mask_root
    ids = _read(os.path.join(meta, "image_ids.txt"))
    assert len(ids) == 2500 and set(masks) == set(ids)
    assert sum(len(m) for m, _ in masks.values()) == len(_read(os.path.join(meta, "localization.txt")))
    assert all(ig is not None for _, ig in masks.values())


# ---------------------------------------------------------------- bad input

def test_missing_paths_name_path_and_layout(shared_dir, tmp_path):
    real = os.path.join(shared_dir, "data", "wsol-metadata")
    with pytest.raises(FileNotFoundError, match="image_ids.txt") as err:
        load_wsol(tmp_path, tmp_path / "nope", "CUB", "val")
    assert "nope" in str(err.value)
    with pytest.raises(FileNotFoundError, match="metadata folder"):
        load_wsol(tmp_path, real, "ILSVRC", "train")
    with pytest.raises(FileNotFoundError, match="data_root"):
        load_wsol(tmp_path / "no-images", real, "CUB", "val")
    with pytest.raises(ValueError, match="dataset must be one of"):
        load_wsol(tmp_path, real, "COCO", "val")
    with pytest.raises(ValueError, match="split"):
        load_wsol(tmp_path, real, "CUB", "validation")


def test_missing_image_raises_or_skips_with_count(shared_dir, tmp_path):
    meta, ids = _subset(shared_dir, tmp_path, "CUB", "test", n=6)
    _placeholders(tmp_path / "data", _sizes(meta / "CUB" / "test"))
    os.remove(tmp_path / "data" / ids[2])
    with pytest.raises(ValueError, match=ids[2].replace(".", r"\.")):
        load_wsol(tmp_path / "data", meta, "CUB", "test", cache_dir=tmp_path / "c")
    with pytest.warns(SkippedImagesWarning, match="skipped 1 sample") as rec:
        ds = load_wsol(tmp_path / "data", meta, "CUB", "test", on_error="skip",
                       cache_dir=tmp_path / "c")
    assert len(ds) == 5 and ids[2] not in ds["image_id"]
    assert [i for i, _ in rec[0].message.skipped] == [ids[2]]


def test_corrupt_image_verify(shared_dir, tmp_path):
    meta, ids = _subset(shared_dir, tmp_path, "CUB", "val", n=4)
    _placeholders(tmp_path / "data", _sizes(meta / "CUB" / "val"))
    path = tmp_path / "data" / ids[1]
    data = path.read_bytes()
    path.write_bytes(data[:300])  # truncated inside the header: found while loading
    with pytest.raises(ValueError, match="corrupt, truncated or not an image"):
        load_wsol(tmp_path / "data", meta, "CUB", "val", cache_dir=tmp_path / "c")
    path.write_bytes(data[:-100])  # header intact, pixels truncated
    # lazily: loading works, decoding names the image
    ds = load_wsol(tmp_path / "data", meta, "CUB", "val", cache_dir=tmp_path / "c")
    with pytest.raises(ValueError, match=ids[1].split("/")[1]):
        ImageSource.from_input(ds).image(1)
    with pytest.raises(ValueError, match="corrupt, truncated"):
        load_wsol(tmp_path / "data", meta, "CUB", "val", verify=True, cache_dir=tmp_path / "c")
    with pytest.warns(SkippedImagesWarning, match="skipped 1"):
        ds = load_wsol(tmp_path / "data", meta, "CUB", "val", verify=True, on_error="skip",
                       cache_dir=tmp_path / "c")
    assert len(ds) == 3


@pytest.mark.parametrize("edit,match", [
    (lambda c: [c[0], c[1], str(int(c[2]) + 5000), c[3]], "outside the image"),
    (lambda c: [c[2], c[1], c[0], c[3]], "x1 < x0"),
])
def test_bad_boxes_reported_with_image_id(shared_dir, tmp_path, edit, match):
    meta, ids = _subset(shared_dir, tmp_path, "CUB", "val", n=3)
    _placeholders(tmp_path / "data", _sizes(meta / "CUB" / "val"))
    loc = meta / "CUB" / "val" / "localization.txt"
    lines = _read(loc)
    p, *c = lines[1].split(",")
    lines[1] = ",".join([p, *edit(c)])
    loc.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=match) as err:
        load_wsol(tmp_path / "data", meta, "CUB", "val", cache_dir=tmp_path / "c")
    assert ids[1] in str(err.value)


def test_label_outside_classlabel_raises(shared_dir, tmp_path):
    meta, ids = _subset(shared_dir, tmp_path, "CUB", "val", n=3)
    _placeholders(tmp_path / "data", _sizes(meta / "CUB" / "val"))
    lab = meta / "CUB" / "val" / "class_labels.txt"
    lines = _read(lab)
    lines[2] = lines[2].rsplit(",", 1)[0] + ",200"
    lab.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"label 200 of image .*outside the ClassLabel range"):
        load_wsol(tmp_path / "data", meta, "CUB", "val", on_error="skip", cache_dir=tmp_path / "c")
    # with 201 explicit names the same label is inside the ClassLabel
    ds = load_wsol(tmp_path / "data", meta, "CUB", "val", class_names=[f"c{i}" for i in range(201)],
                   cache_dir=tmp_path / "c")
    assert ds["label"][2] == 200


def test_metadata_edit_is_never_served_stale(shared_dir, tmp_path):
    meta, ids = _subset(shared_dir, tmp_path, "CUB", "val", n=3)
    _placeholders(tmp_path / "data", _sizes(meta / "CUB" / "val"))
    ds1 = load_wsol(tmp_path / "data", meta, "CUB", "val", cache_dir=tmp_path / "c")
    lab = meta / "CUB" / "val" / "class_labels.txt"
    lines = _read(lab)
    lines[0] = lines[0].rsplit(",", 1)[0] + ",7"
    lab.write_text("\n".join(lines) + "\n")
    ds2 = load_wsol(tmp_path / "data", meta, "CUB", "val", cache_dir=tmp_path / "c")
    assert ds1["label"][0] == 0 and ds2["label"][0] == 7
