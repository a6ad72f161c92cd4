"""Hugging Face detection-style datasets as the skcream schema (image, label, bboxes).

Hub detection datasets (COCO-style exports, ``cppe-5``, ...) have one row per image with an
``objects`` column holding per-object lists, either as a dict of lists
(``{"bbox": [[...], ...], "category": [...]}``, the ``Sequence({...})`` feature) or as a list
of dicts. :func:`from_detection` maps such a ``datasets.Dataset`` or
``datasets.IterableDataset`` (lazily: ``.map``, one pass, nothing materialised) to the
columns the estimators read:

* ``label``: the image's class, from a given column, or derived from its objects
  (``"largest"``: the category of the largest box, ``"first"``, or ``"most_common"``);
* ``bboxes``: x0, y0, x1, y1 pixel boxes of the objects of that class (the WSOL ground truth
  is the boxes of the image's class), converted from ``"xywh"`` (COCO) or kept ``"xyxy"``:
  the format is declared by the caller, never guessed, and every box is checked against its
  image as shown.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import datasets
import numpy as np

from .decode import image_size
from .schema import check_boxes

__all__ = ["from_detection"]

_RULES = ("largest", "first", "most_common")


def _objects(value: Any, bbox_key: str, category_key: str, index: str) -> tuple[list, list]:
    """(boxes, categories) of one row's objects, whichever of the two layouts it uses."""
    if value is None:
        return [], []
    if isinstance(value, Mapping):
        boxes, cats = value.get(bbox_key), value.get(category_key)
    elif isinstance(value, Sequence) and not isinstance(value, str):
        boxes = [o.get(bbox_key) for o in value]
        cats = [o.get(category_key) for o in value]
    else:
        raise TypeError(f"row {index}: objects must be a dict of lists or a list of dicts, "
                        f"got {type(value).__name__}")
    if boxes is None or cats is None or len(boxes) != len(cats):
        raise ValueError(f"row {index}: objects need {bbox_key!r} and {category_key!r} lists "
                         "of equal length")
    return list(boxes), list(cats)


_FORMATS = {"xywh": "x, y, width, height: COCO and most hub detection sets",
            "xyxy": "x0, y0, x1, y1: the corners"}


def _xyxy(boxes: list, box_format: str, bbox_key: str, index: int,
          size: tuple[int, int] | None) -> np.ndarray:
    """The boxes of one row as x0, y0, x1, y1, checked by the one box checker
    (:func:`skcream.data.schema.check_boxes`) against the image size as shown."""
    try:
        arr = np.asarray(boxes, dtype=np.float64) if boxes else np.zeros((0, 4))
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"row {index}: {bbox_key!r} must be lists of 4 numbers "
                         f"({box_format}), got {str(boxes)[:80]}") from None
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"row {index}: each box of {bbox_key!r} must be 4 numbers "
                         f"({box_format}: {_FORMATS[box_format]}), got {str(boxes)[:80]}")
    given = arr
    if box_format == "xywh":
        if (arr[:, 2:] < 0).any():
            j = int(np.flatnonzero((arr[:, 2:] < 0).any(axis=1))[0])
            raise ValueError(f"row {index}: box {j} {given[j].tolist()} has a negative width or "
                             "height (box_format='xywh'); is it 'xyxy'?")
        arr = np.concatenate([arr[:, :2], arr[:, :2] + arr[:, 2:]], axis=1)
    try:
        check_boxes(arr, size, None, where=f"row {index}")
    except ValueError as err:
        other = "xyxy" if box_format == "xywh" else "xywh"
        raise ValueError(f"{err}; given as {given.tolist()[:4]} with box_format={box_format!r} "
                         f"({_FORMATS[box_format]}): is it {other!r}?") from None
    return arr


def _shown_size(value: Any) -> tuple[int, int] | None:
    """Size of a row's image as viewers show it (the one decoder), None without an image."""
    if value is None:
        return None
    return image_size(value, "the row's image")


def _category_names(features: datasets.Features | None, objects_column: str,
                    category_key: str) -> list[str] | None:
    if features is None or objects_column not in features:
        return None
    feat = features[objects_column]
    inner = getattr(feat, "feature", feat)  # Sequence({...}) / List({...}) / [{...}] / {...}
    if isinstance(inner, list) and inner:
        inner = inner[0]
    if isinstance(inner, Mapping) and category_key in inner:
        cat = inner[category_key]
        cat = getattr(cat, "feature", cat)
        if isinstance(cat, datasets.ClassLabel):
            return list(cat.names)
    return None


def from_detection(
    ds: datasets.Dataset | datasets.IterableDataset,
    *,
    label: str = "largest",
    box_format: str | None = None,
    objects_column: str = "objects",
    bbox_key: str = "bbox",
    category_key: str = "category",
    image_column: str = "image",
    class_names: Sequence[str] | None = None,
) -> datasets.Dataset | datasets.IterableDataset:
    """Map a detection-style dataset to ``image``, ``label``, ``bboxes`` (xyxy pixels).

    Parameters
    ----------
    ds : datasets.Dataset or datasets.IterableDataset
        One row per image with an image column and an objects column.
    label : {"largest", "first", "most_common"} or str
        How an image's class is derived from its objects (ties of ``"most_common"``: the
        first of them), or the name of a column of ``ds`` holding it (then ``bboxes`` keeps
        the objects of that category; an image without any gets none).
    box_format : {"xywh", "xyxy"}
        Layout of ``objects[bbox_key]``: ``"xywh"`` (x, y, width, height: COCO and most hub
        datasets) or ``"xyxy"`` (corners). Required: the two cannot be told apart from the
        numbers, so it is never guessed. Every converted box is checked against its image
        as shown (EXIF orientation applied); a box outside it, or with ``x1 < x0``, raises
        ValueError naming the row, the box as given and the declared format.
    objects_column, bbox_key, category_key, image_column : str
    class_names : sequence of str, optional
        Names of the category indices; default: the ``ClassLabel`` names of the category
        (or label column) feature. Without either, ``label`` stays a plain int column.

    Returns
    -------
    datasets.Dataset or datasets.IterableDataset (the kind of ``ds``)
        Columns ``image``, ``label`` (ClassLabel when names are known) and ``bboxes``; the
        other columns are dropped. Rows without objects raise ValueError (with a derived
        label) naming the row.
    """
    if not isinstance(ds, datasets.Dataset | datasets.IterableDataset):
        raise TypeError(f"ds: expected a datasets.Dataset or IterableDataset, got "
                        f"{type(ds).__name__}")
    if box_format is None:
        raise ValueError(
            "box_format: declare the layout of the boxes in objects[bbox_key]: 'xywh' "
            f"({_FORMATS['xywh']}) or 'xyxy' ({_FORMATS['xyxy']}); the numbers alone cannot "
            "tell them apart, so skcream does not guess")
    if box_format not in _FORMATS:
        raise ValueError(f"box_format: expected 'xywh' or 'xyxy', got {box_format!r}")
    if not isinstance(label, str):
        raise TypeError(f"label: expected one of {_RULES} or a column name, got {label!r}")
    columns = ds.column_names  # None for some streams
    derive = label in _RULES
    if columns is not None:
        for name, what in ((image_column, "image_column"), (objects_column, "objects_column")):
            if name not in columns:
                raise ValueError(f"{what}: no column {name!r} (columns: {columns})")
        if not derive and label not in columns:
            raise ValueError(f"label: {label!r} is neither one of {_RULES} nor a column "
                             f"(columns: {columns})")
    names = list(class_names) if class_names is not None else None
    features = ds.features
    if names is None:
        names = _category_names(features, objects_column, category_key)
    if names is None and not derive and features is not None and isinstance(
            features.get(label), datasets.ClassLabel):
        names = list(features[label].names)
    image_feature = (features or {}).get(image_column, datasets.Image())
    out_features = datasets.Features({
        "image": image_feature,
        "label": datasets.ClassLabel(names=names) if names else datasets.Value("int64"),
        "bboxes": datasets.Sequence(datasets.Sequence(datasets.Value("float32"), length=4)),
    })

    def convert(row: dict, index: int) -> dict:
        where = str(index)
        boxes, cats = _objects(row[objects_column], bbox_key, category_key, where)
        size = _shown_size(row[image_column]) if boxes else None
        xyxy = _xyxy(boxes, box_format, bbox_key, index, size)
        cats = [int(c) for c in cats]
        if derive:
            if not cats:
                raise ValueError(f"row {where}: no objects to derive a label from "
                                 f"(label={label!r}); filter such rows or pass a label column")
            if label == "first":
                cls = cats[0]
            elif label == "largest":
                area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
                cls = cats[int(np.argmax(area))]
            else:
                counts = Counter(cats)
                top = max(counts.values())
                cls = next(c for c in cats if counts[c] == top)
        else:
            cls = int(row[label])
        keep = [k for k, c in enumerate(cats) if c == cls]
        return {"image": row[image_column], "label": cls, "bboxes": xyxy[keep].tolist()}

    drop = [c for c in (columns or []) if c != "image"] or None
    return ds.map(convert, with_indices=True, remove_columns=drop, features=out_features)
