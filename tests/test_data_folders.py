"""load_cub (official CUB_200_2011 layout) and load_imagefolder on tiny trees written here."""

import json

import numpy as np
import pytest
from PIL import Image

from skcream.data import ImageSource, SkippedImagesWarning, load_cub, load_imagefolder

# id, path, class (1-based), is_train, x, y, w, h, size, mode
CUB_ROWS = [
    (1, "001.Albatross/a_1.jpg", 1, 1, 10.0, 5.0, 20.0, 30.0, (60, 40), "RGB"),
    (2, "001.Albatross/a_2.png", 1, 0, 0.0, 0.0, 50.0, 40.0, (50, 40), "RGBA"),
    (3, "002.Auklet/b_1.jpg", 2, 1, 3.5, 4.5, 10.0, 10.0, (30, 30), "L"),
    (4, "002.Auklet/b_2.png", 2, 0, 1.0, 2.0, 3.0, 4.0, (20, 20), "P"),
    (5, "003.Cormorant/c_1.jpg", 3, 1, 0.0, 0.0, 8.0, 8.0, (16, 16), "CMYK"),
]


def _write_cub(root, rows=CUB_ROWS):
    cub = root / "CUB_200_2011"
    (cub / "images").mkdir(parents=True)
    for _, path, _, _, _, _, _, _, size, mode in rows:
        p = cub / "images" / path
        p.parent.mkdir(parents=True, exist_ok=True)
        color = {"RGB": (200, 10, 10), "RGBA": (0, 200, 0, 128), "L": 90, "P": 3,
                 "CMYK": (0, 0, 0, 0)}[mode]
        Image.new(mode, size, color).save(p)
    (cub / "images.txt").write_text("".join(f"{r[0]} {r[1]}\n" for r in rows))
    (cub / "image_class_labels.txt").write_text("".join(f"{r[0]} {r[2]}\n" for r in rows))
    (cub / "train_test_split.txt").write_text("".join(f"{r[0]} {r[3]}\n" for r in rows))
    (cub / "bounding_boxes.txt").write_text(
        "".join(f"{r[0]} {r[4]} {r[5]} {r[6]} {r[7]}\n" for r in rows))
    (cub / "classes.txt").write_text("1 001.Albatross\n2 002.Auklet\n3 003.Cormorant\n")
    return cub


def test_cub_official_layout_splits_boxes_labels(tmp_path):
    _write_cub(tmp_path)
    train = load_cub(tmp_path, "train", cache_dir=tmp_path / "c")
    test = load_cub(tmp_path / "CUB_200_2011", "test", cache_dir=tmp_path / "c")
    assert train["image_id"] == ["001.Albatross/a_1.jpg", "002.Auklet/b_1.jpg", "003.Cormorant/c_1.jpg"]
    assert test["image_id"] == ["001.Albatross/a_2.png", "002.Auklet/b_2.png"]
    assert train.features["label"].names == ["001.Albatross", "002.Auklet", "003.Cormorant"]
    assert train["label"] == [0, 1, 2] and test["label"] == [0, 1]
    assert train["bboxes"] == [[[10, 5, 30, 35]], [[3.5, 4.5, 13.5, 14.5]], [[0, 0, 8, 8]]]
    assert test["bboxes"] == [[[0, 0, 50, 40]], [[1, 2, 4, 6]]]
    src = ImageSource.from_input(test)
    for i in range(len(test)):
        assert src.image(i).mode == "RGB"
    assert np.asarray(src.image(0))[0, 0].tolist() == [0, 200, 0]  # RGBA -> alpha dropped
    assert np.asarray(ImageSource.from_input(train).image(2))[0, 0].tolist() == [255, 255, 255]


def test_cub_bad_input(tmp_path):
    cub = _write_cub(tmp_path)
    with pytest.raises(FileNotFoundError, match="CUB root"):
        load_cub(tmp_path / "missing")
    with pytest.raises(ValueError, match="split"):
        load_cub(tmp_path, "val")
    (cub / "images" / "002.Auklet" / "b_1.jpg").unlink()
    with pytest.raises(ValueError, match="b_1.jpg.*missing"):
        load_cub(tmp_path, cache_dir=tmp_path / "c")
    with pytest.warns(SkippedImagesWarning, match="skipped 1"):
        assert len(load_cub(tmp_path, on_error="skip", cache_dir=tmp_path / "c")) == 2
    # a box wider than its image
    (cub / "bounding_boxes.txt").write_text("1 10 5 55 30\n2 0 0 50 40\n3 1 1 1 1\n4 1 1 1 1\n5 0 0 8 8\n")
    with pytest.raises(ValueError, match="a_1.jpg.*outside the image"):
        load_cub(tmp_path, "train", cache_dir=tmp_path / "c")
    (cub / "classes.txt").unlink()
    with pytest.raises(FileNotFoundError, match="classes.txt"):
        load_cub(tmp_path)


def test_cub_label_outside_classes_raises(tmp_path):
    cub = _write_cub(tmp_path)
    (cub / "image_class_labels.txt").write_text("1 1\n2 1\n3 4\n4 2\n5 3\n")
    with pytest.raises(ValueError, match="label 3 of image '002.Auklet/b_1.jpg'"):
        load_cub(tmp_path, cache_dir=tmp_path / "c")


def _img(path, size=(12, 10), color=(1, 2, 3), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)


def test_imagefolder_folder_labels(tmp_path):
    for name in ["cat/1.png", "cat/2.jpg", "dog/3.png", "bird/x/4.png"]:
        _img(tmp_path / "d" / name)
    (tmp_path / "d" / "notes.txt").write_text("ignored: not an image")
    ds = load_imagefolder(tmp_path / "d", cache_dir=tmp_path / "c")
    assert ds.features["label"].names == ["cat", "dog", "x"]
    assert ds["image_id"] == ["bird/x/4.png", "cat/1.png", "cat/2.jpg", "dog/3.png"]
    assert ds["label"] == [2, 0, 0, 1] and ds["bboxes"] == [[]] * 4
    assert "mask" not in ds.column_names


def test_imagefolder_metadata_boxes_masks(tmp_path):
    root = tmp_path / "d"
    _img(root / "a.png", (20, 10))
    _img(root / "b.png", (8, 8), 7, "L")
    m = np.zeros((10, 20), np.uint8)
    m[2:4, 3:9] = 1
    m[0] = 255
    (root / "masks").mkdir(parents=True)
    Image.fromarray(m).save(root / "masks" / "a.png")
    rows = [{"file_name": "a.png", "label": "fish", "bboxes": [[3, 2, 9, 4], [0, 0, 20, 10]],
             "mask": "masks/a.png"},
            {"file_name": "b.png", "label": "bird"}]
    (root / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    ds = load_imagefolder(root, cache_dir=tmp_path / "c")
    assert ds.features["label"].names == ["bird", "fish"] and ds["label"] == [1, 0]
    assert ds["bboxes"] == [[[3, 2, 9, 4], [0, 0, 20, 10]], []]
    src = ImageSource.from_input(ds)
    np.testing.assert_array_equal(src.mask(0), m)
    assert src.mask(1) is None
    ds2 = load_imagefolder(root, class_names=["bird", "fish", "eel"], cache_dir=tmp_path / "c")
    assert ds2.features["label"].num_classes == 3


def test_imagefolder_bad_input(tmp_path):
    root = tmp_path / "d"
    _img(root / "a.png")
    _img(root / "stray.png")
    (root / "metadata.jsonl").write_text(json.dumps({"file_name": "a.png", "label": 0}) + "\n")
    with pytest.raises(ValueError, match=r"1 image file\(s\).*stray.png"):
        load_imagefolder(root, cache_dir=tmp_path / "c")
    (root / "stray.png").unlink()
    (root / "metadata.jsonl").write_text(json.dumps({"file_name": "a.png", "label": "eel"}) + "\n")
    with pytest.raises(ValueError, match="'eel' of image 'a.png' is not one of"):
        load_imagefolder(root, class_names=["cat"], cache_dir=tmp_path / "c")
    (root / "metadata.jsonl").write_text(json.dumps({"file_name": "a.png", "label": 3}) + "\n")
    with pytest.raises(ValueError, match="label 3 of image 'a.png' is outside"):
        load_imagefolder(root, class_names=["cat", "dog"], cache_dir=tmp_path / "c")
    (root / "metadata.jsonl").write_text(
        json.dumps({"file_name": "a.png", "label": 0, "bboxes": [[5, 5, 2, 8]]}) + "\n")
    with pytest.raises(ValueError, match="a.png.*x1 < x0"):
        load_imagefolder(root, cache_dir=tmp_path / "c")
    (root / "metadata.jsonl").write_text("{not json\n")
    with pytest.raises(ValueError, match="metadata.jsonl:1"):
        load_imagefolder(root, cache_dir=tmp_path / "c")
    with pytest.raises(FileNotFoundError, match="root"):
        load_imagefolder(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no image files"):
        load_imagefolder(tmp_path / "empty")
