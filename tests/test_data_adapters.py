"""ImageSource / TorchImageDataset: every input kind, fingerprints, collation, bad input."""

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from skcream.data import EvalTransform, ImageSource, TorchImageDataset, TrainTransform, collate
from skcream.data.schema import wsol_features


def _img(w, h, value, mode="RGB"):
    return Image.new(mode, (w, h), value)


def test_sequence_of_mixed_pil_arrays_and_paths(tmp_path):
    p = tmp_path / "a.png"
    _img(7, 5, (1, 2, 3)).save(p)
    gray = np.full((4, 6), 9, np.uint8)
    rgba = np.zeros((3, 2, 4), np.uint8)
    rgba[..., :3] = (4, 5, 6)
    one = np.full((2, 2, 1), 8, np.uint8)
    X = [_img(10, 8, 200, "L"), gray, rgba, one, str(p), _img(3, 3, 5, "P")]
    src = ImageSource.from_input(X, y=["cat", "dog", "cat", "bird", "dog", "cat"])
    assert len(src) == 6
    assert src.class_names == ["bird", "cat", "dog"]
    assert src.labels.tolist() == [1, 2, 1, 0, 2, 1]
    assert [src.size(i) for i in range(6)] == [(10, 8), (6, 4), (2, 3), (2, 2), (7, 5), (3, 3)]
    for i in range(6):
        assert src.image(i).mode == "RGB"
    assert np.asarray(src.image(0))[0, 0].tolist() == [200] * 3
    assert np.asarray(src.image(1))[0, 0].tolist() == [9] * 3
    assert np.asarray(src.image(2))[0, 0].tolist() == [4, 5, 6]
    assert np.asarray(src.image(4))[0, 0].tolist() == [1, 2, 3]
    assert src.boxes(0) is None and src.mask(0) is None
    assert src.image_id(4) == str(p) and src.image_id(1) == "1"


def test_integer_labels_kept_and_unlabeled_is_minus_one():
    X = [np.zeros((4, 4, 3), np.uint8)] * 3
    src = ImageSource.from_input(X, y=np.array([5, 0, 2]))
    assert src.labels.tolist() == [5, 0, 2] and src.class_names is None
    assert ImageSource.from_input(X).label(1) == -1
    batch4d = ImageSource.from_input(np.zeros((2, 5, 6, 3), np.uint8))
    assert len(batch4d) == 2 and batch4d.size(0) == (6, 5)


def _schema_dataset(tmp_path, n=4):
    rows = {"image": [], "label": [], "bboxes": [], "mask": [], "image_id": []}
    for i in range(n):
        path = tmp_path / f"im{i}.png"
        _img(20 + i, 10, (i * 10, 0, 0)).save(path)
        mpath = tmp_path / f"m{i}.png"
        m = np.zeros((10, 20 + i), np.uint8)
        m[2:5, 3:7] = 1
        m[0, 0] = 255
        Image.fromarray(m).save(mpath)
        rows["image"].append(str(path))
        rows["label"].append(i % 2)
        rows["bboxes"].append([[1.0, 2.0, 3.0 + i, 4.0]] * (i + 1))
        rows["mask"].append(str(mpath))
        rows["image_id"].append(f"id{i}")
    return datasets.Dataset.from_dict(rows, features=wsol_features(["a", "b"], with_mask=True))


def test_dataset_source_columns_and_select(tmp_path):
    ds = _schema_dataset(tmp_path)
    src = ImageSource.from_input(ds)
    assert src.class_names == ["a", "b"] and src.labels.tolist() == [0, 1, 0, 1]
    assert src.has_boxes and src.has_masks
    assert src.boxes(2).tolist() == [[1, 2, 5, 4]] * 3
    m = src.mask(1)
    assert m.shape == (10, 21) and m[3, 4] == 1 and m[0, 0] == 255 and m[9, 9] == 0
    assert src.size(3) == (23, 10) and src.image_id(3) == "id3"
    assert np.asarray(src.image(3))[0, 0].tolist() == [30, 0, 0]
    # a shuffled/selected Dataset (indices mapping) still lines up
    sub = ImageSource.from_input(ds.select([3, 0]))
    assert sub.image_id(0) == "id3" and sub.boxes(0).shape == (4, 4)
    assert np.asarray(sub.image(0))[0, 0].tolist() == [30, 0, 0]
    sel = src.select([2, 1])
    assert sel.image_id(0) == "id2" and sel.labels.tolist() == [0, 1]
    # y overrides the label column; custom column names
    ren = ds.rename_columns({"image": "img", "bboxes": "bb"})
    src2 = ImageSource.from_input(ren, y=[1, 1, 1, 0], image_column="img", bbox_column="bb")
    assert src2.labels.tolist() == [1, 1, 1, 0] and src2.boxes(0).tolist() == [[1, 2, 3, 4]]


def test_fingerprint_stable_and_content_sensitive(tmp_path):
    def build(value=0, labels=(0, 1)):
        a = np.zeros((4, 4, 3), np.uint8)
        a[1, 1] = value
        return ImageSource.from_input([a, _img(3, 3, (1, 2, 3))], y=list(labels))

    assert build().fingerprint() == build().fingerprint()
    assert build().fingerprint() != build(value=1).fingerprint()
    assert build().fingerprint() != build(labels=(1, 1)).fingerprint()
    p = tmp_path / "x.png"
    _img(3, 3, 1).save(p)
    f1 = ImageSource.from_input([str(p)]).fingerprint()
    _img(3, 3, 2).save(p)
    assert ImageSource.from_input([str(p)]).fingerprint() != f1
    ds = _schema_dataset(tmp_path)
    assert ImageSource.from_input(ds).fingerprint() == ImageSource.from_input(ds).fingerprint()
    assert ImageSource.from_input(ds).fingerprint() != ImageSource.from_input(ds.select([0, 1])).fingerprint()


def test_torch_dataset_and_collate_variable_boxes(tmp_path):
    ds = _schema_dataset(tmp_path)
    tds = TorchImageDataset(ImageSource.from_input(ds), EvalTransform(16))
    assert tds.with_boxes
    item = tds[1]
    assert item["image"].shape == (3, 16, 16) and item["label"] == 1 and item["index"] == 1
    assert item["boxes"].tolist() == [[int(1 * 16 / 21), int(2 * 16 / 10), int(4 * 16 / 21),
                                       int(4 * 16 / 10)]] * 2
    loader = torch.utils.data.DataLoader(tds, batch_size=3, collate_fn=collate)
    batches = list(loader)
    assert batches[0]["image"].shape == (3, 3, 16, 16)
    assert [b.shape[0] for b in batches[0]["boxes"]] == [1, 2, 3]
    assert batches[1]["index"].tolist() == [3] and batches[0]["size"].tolist()[0] == [20, 10]
    # train transform keeps box counts
    ttds = TorchImageDataset(ds, TrainTransform(20, 16, random_state=0))
    assert ttds[3]["boxes"].shape == (4, 4)


def test_torch_dataset_unlabeled_and_plain_transform():
    X = [np.zeros((5, 5, 3), np.uint8), np.ones((6, 4), np.uint8)]
    plain = TorchImageDataset(X, transform=lambda im: torch.zeros(3, 2, 2))
    assert plain[1]["label"] == -1 and "boxes" not in plain[1]
    with pytest.raises(ValueError, match="box-aware"):
        TorchImageDataset(X, transform=lambda im: torch.zeros(3, 2, 2), with_boxes=True)
    with pytest.raises(ValueError, match="no bounding-box"):
        TorchImageDataset(X, EvalTransform(8), with_boxes=True)
    bad = TorchImageDataset(X, transform=lambda im: np.zeros((2, 2)))
    with pytest.raises(TypeError, match="tensor"):
        bad[0]


def test_bad_input_named(tmp_path):
    with pytest.raises(TypeError, match=r"X\[1\].*uint8"):
        ImageSource.from_input([np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.float32)])
    with pytest.raises(TypeError, match=r"X\[0\]"):
        ImageSource.from_input([3.0])
    with pytest.raises(ValueError, match="y has 1 labels but there are 2"):
        ImageSource.from_input([np.zeros((2, 2), np.uint8)] * 2, y=[0])
    with pytest.raises(ValueError, match="index 1"):
        ImageSource.from_input([np.zeros((2, 2), np.uint8)] * 2, y=[0, -1])
    with pytest.raises(ValueError, match=r"shape \(H, W\)"):
        ImageSource.from_input([np.zeros((2, 2, 2), np.uint8)]).image(0)
    with pytest.raises(ValueError, match="empty"):
        ImageSource.from_input([])
    ds = _schema_dataset(tmp_path, 2)
    with pytest.raises(ValueError, match="image_column='pic'"):
        ImageSource.from_input(ds, image_column="pic")
    with pytest.raises(TypeError, match="DatasetDict"):
        ImageSource.from_input(datasets.DatasetDict({"train": ds}))
    with pytest.raises(IndexError):
        ImageSource.from_input(ds).image(5)


def test_corrupt_and_missing_images_name_the_id(tmp_path):
    good = tmp_path / "good.png"
    _img(64, 64, (1, 2, 3)).save(good)
    data = good.read_bytes()
    trunc = tmp_path / "trunc.png"
    trunc.write_bytes(data[: len(data) // 2])
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image at all")
    src = ImageSource.from_input([str(good), str(trunc), str(junk), str(tmp_path / "gone.png")])
    assert src.image(0).size == (64, 64)
    for i, name in [(1, "trunc.png"), (2, "junk.jpg"), (3, "gone.png")]:
        with pytest.raises(ValueError, match=name):
            src.image(i)
    # inside a Dataset the error names the image_id column
    ds = datasets.Dataset.from_dict(
        {"image": [str(good), str(trunc)], "label": [0, 0], "bboxes": [[], []],
         "image_id": ["birds/ok.png", "birds/broken.png"]},
        features=wsol_features(["x"]),
    )
    with pytest.raises(ValueError, match="birds/broken.png"):
        ImageSource.from_input(ds).image(1)
