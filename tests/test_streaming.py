"""Streaming (``datasets.IterableDataset``) input and hub detection-style datasets."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import torch

from skcream import CREAMLocalizer
from skcream.data.detection import from_detection
from skcream.data.streaming import materialize

NAMES = ["cat", "dog", "bird"]


def _detection(layout: str = "dict") -> datasets.Dataset:
    """Three images; objects in COCO xywh, categories a ClassLabel."""
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (40, 50, 3)).astype(np.uint8) for _ in range(3)]
    objects = [
        {"bbox": [[1, 2, 10, 10], [5, 5, 30, 20]], "category": [0, 1]},   # largest: dog
        {"bbox": [[0, 0, 4, 4], [10, 10, 4, 4], [3, 3, 20, 20]], "category": [2, 2, 0]},
        {"bbox": [[2, 2, 8, 6]], "category": [1]},
    ]
    cat = datasets.ClassLabel(names=NAMES)
    if layout == "dict":
        obj_feature = datasets.Sequence({"bbox": datasets.Sequence(datasets.Value("float32"),
                                                                   length=4), "category": cat})
        rows = objects
    else:
        obj_feature = [{"bbox": datasets.Sequence(datasets.Value("float32"), length=4),
                        "category": cat}]
        rows = [[{"bbox": b, "category": c} for b, c in zip(o["bbox"], o["category"])]
                for o in objects]
    features = datasets.Features({"image": datasets.Image(), "objects": obj_feature,
                                  "image_id": datasets.Value("int64"),
                                  "scene": datasets.ClassLabel(names=NAMES)})
    return datasets.Dataset.from_dict({"image": images, "objects": rows, "image_id": [7, 8, 9],
                                       "scene": [2, 0, 0]}, features=features)


@pytest.mark.parametrize("layout", ["dict", "list"])
def test_detection_labels_and_xyxy_boxes(layout):
    out = from_detection(_detection(layout), box_format="xywh")
    assert out.column_names == ["image", "label", "bboxes"]
    assert out.features["label"].names == NAMES
    assert out["label"] == [1, 0, 1]  # category of the largest box
    assert out[0]["bboxes"] == [[5, 5, 35, 25]]  # xywh -> xyxy, only the label's objects
    assert out[1]["bboxes"] == [[3, 3, 23, 23]]
    first = from_detection(_detection(layout), box_format="xywh", label="first")
    assert first["label"] == [0, 2, 1]
    assert first[1]["bboxes"] == [[0, 0, 4, 4], [10, 10, 14, 14]]
    assert from_detection(_detection(layout), box_format="xywh", label="most_common")["label"] == [0, 2, 1]
    given = from_detection(_detection(layout), box_format="xywh", label="scene")
    assert given["label"] == [2, 0, 0] and given[0]["bboxes"] == [] and \
        given[1]["bboxes"] == [[3, 3, 23, 23]]


def test_detection_xyxy_and_errors():
    ds = _detection()
    with pytest.raises(ValueError, match="x1 < x0"):
        from_detection(ds, box_format="xyxy")  # these are xywh: caught, not mangled
    ok = ds.map(lambda r: {"objects": {"bbox": [[b[0], b[1], b[0] + b[2], b[1] + b[3]]
                                                 for b in r["objects"]["bbox"]],
                                       "category": r["objects"]["category"]}})
    assert from_detection(ok, box_format="xyxy")[0]["bboxes"] == [[5, 5, 35, 25]]
    with pytest.raises(ValueError, match="box_format"):
        from_detection(ds, box_format="cxcywh")
    with pytest.raises(ValueError, match="objects_column"):
        from_detection(ds, box_format="xywh", objects_column="annotations")
    with pytest.raises(ValueError, match="label: 'species'"):
        from_detection(ds, box_format="xywh", label="species")
    with pytest.raises(TypeError, match="ds"):
        from_detection([{"image": None}], box_format="xywh")
    empty = ds.map(lambda r, i: {"objects": r["objects"] if i else {"bbox": [], "category": []}},
                   with_indices=True)
    with pytest.raises(ValueError, match="row 0: no objects"):
        from_detection(empty, box_format="xywh")


def test_detection_on_a_stream_is_lazy_and_equal():
    ds = _detection()
    stream = from_detection(ds.to_iterable_dataset(), box_format="xywh")
    assert isinstance(stream, datasets.IterableDataset)
    rows, eager = list(stream), from_detection(ds, box_format="xywh")
    assert [r["label"] for r in rows] == eager["label"]
    assert [r["bboxes"] for r in rows] == eager["bboxes"]


def test_materialize_keeps_rows_and_order():
    ds = _detection()
    back = materialize(ds.to_iterable_dataset())
    assert isinstance(back, datasets.Dataset) and len(back) == 3
    assert back["image_id"] == [7, 8, 9] and back.features == ds.features
    with pytest.raises(TypeError, match="stream"):
        materialize(ds)


def _squares(n: int = 12) -> datasets.Dataset:
    rng = np.random.default_rng(0)
    images, objects = [], []
    for i in range(n):
        img = rng.integers(0, 60, (40, 44, 3)).astype(np.uint8)
        x, y = int(rng.integers(0, 24)), int(rng.integers(0, 20))
        img[y:y + 16, x:x + 16, i % 2] = 250
        images.append(img)
        objects.append({"bbox": [[x, y, 16, 16]], "category": [i % 2]})
    cat = datasets.ClassLabel(names=["red", "green"])
    features = datasets.Features({"image": datasets.Image(), "objects": datasets.Sequence(
        {"bbox": datasets.Sequence(datasets.Value("float32"), length=4), "category": cat})})
    return datasets.Dataset.from_dict({"image": images, "objects": objects}, features=features)


def test_localizer_accepts_a_stream(tmp_path):
    hub = _squares()
    eager = from_detection(hub, box_format="xywh")
    stream = from_detection(hub.to_iterable_dataset(), box_format="xywh")
    params = dict(backbone="test_resnet", pretrained=False, max_epochs=1, batch_size=4,
                  image_size=32, resize_size=36, random_state=0, verbose=0, device="cpu")
    a = CREAMLocalizer(**params).fit(eager)
    b = CREAMLocalizer(**params).fit(stream)  # one pass into Arrow, then ordinary epochs
    sa, sb = a.model_.state_dict(), b.model_.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert np.array_equal(a.transform(eager), b.transform(stream))
    assert np.array_equal(a.predict(eager).boxes, b.predict(stream).boxes)
    assert a.evaluate(eager) == b.evaluate(stream)


# ------------------------------------------------- ILSVRC-size metadata in constant memory
def _write_meta(meta, ids, labels, sizes=None, boxes=None):
    meta.mkdir(parents=True, exist_ok=True)
    (meta / "image_ids.txt").write_text("".join(f"{i}\n" for i in ids))
    (meta / "class_labels.txt").write_text("".join(f"{p},{c}\n" for p, c in labels))
    if sizes is not None:
        (meta / "image_sizes.txt").write_text("".join(f"{p},{w},{h}\n" for p, w, h in sizes))
    if boxes is not None:
        (meta / "localization.txt").write_text(
            "".join(f"{p},{','.join(map(str, b))}\n" for p, b in boxes))


def test_streamed_metadata_records_equal_the_dict_reader(tmp_path):
    from skcream.data import wsol

    ids = [f"train/n{c:03d}/img_{i}.JPEG" for i in range(9) for c in [i % 3]]
    labels = [(p, i % 3) for i, p in enumerate(ids)]
    sizes = [(p, 40 + i, 30 + i) for i, p in enumerate(ids)]
    boxes = [(p, [1, 2, 3 + k, 4]) for i, p in enumerate(ids) for k in range(i % 3)]
    aligned, shuffled = tmp_path / "a", tmp_path / "s"
    _write_meta(aligned, ids, labels, sizes, boxes)
    rng = np.random.default_rng(0)
    _write_meta(shuffled, ids, [labels[i] for i in rng.permutation(9)],
                [sizes[i] for i in rng.permutation(9)], boxes[::-1])
    assert wsol._aligned(str(aligned), "ILSVRC") and not wsol._aligned(str(shuffled), "ILSVRC")
    a = list(wsol._records(str(aligned), "/d", "/d", "ILSVRC"))
    s = list(wsol._records(str(shuffled), "/d", "/d", "ILSVRC"))
    key = [(r.image_id, r.path, str(r.label), r.size) for r in a]
    assert key == [(r.image_id, r.path, str(r.label), r.size) for r in s]
    assert [r.bboxes for r in a] == [sorted(r.bboxes) for r in s]
    assert [len(r.bboxes) for r in a] == [i % 3 for i in range(9)]
    # a missing label line is not "aligned": the dict reader names the image
    _write_meta(tmp_path / "m", ids, labels[:-1])
    assert not wsol._aligned(str(tmp_path / "m"), "ILSVRC")
    with pytest.raises(ValueError, match="has no line in class_labels.txt"):
        list(wsol._records(str(tmp_path / "m"), "/d", "/d", "ILSVRC"))


def test_id_set_matches_a_python_set():
    from skcream.data._build import IdSet

    rng = np.random.default_rng(1)
    values = [f"train/n{int(v)}.JPEG" for v in rng.integers(0, 50_000, 40_000)]
    ids, ref = IdSet(), set()
    for v in values:
        assert (v in ids) == (v in ref)
        ids.add(v)
        ref.add(v)
    assert len(ids) == len(ref) and all(v in ids for v in ref)
    assert "train/n-1.JPEG" not in ids and "" not in ids
