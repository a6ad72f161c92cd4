"""Loader for the official CUB-200-2011 layout.

::

    CUB_200_2011/
        images.txt               <image id> <relative path>
        image_class_labels.txt   <image id> <class id, 1-based>
        train_test_split.txt     <image id> <1 = train, 0 = test>
        bounding_boxes.txt       <image id> <x> <y> <width> <height>
        classes.txt              <class id> <class name>
        images/<relative path>
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import partial

import datasets

from ._build import (
    Record,
    build_dataset,
    file_signature,
    metadata_lines,
    require_dir,
    require_file,
)
from .files import RootResolver

__all__ = ["load_cub"]

_FILES = ("images.txt", "image_class_labels.txt", "train_test_split.txt",
          "bounding_boxes.txt", "classes.txt")

_LAYOUT = """CUB_200_2011/images.txt (<id> <path>), image_class_labels.txt (<id> <class 1..200>),
    train_test_split.txt (<id> <1 train|0 test>), bounding_boxes.txt (<id> <x> <y> <w> <h>),
    classes.txt (<class id> <name>), images/<path>"""


def _table(path: str, n: int, fmt: str, lines: dict[str, int] | None = None) -> dict[str, list[str]]:
    """id -> the other fields; ``lines`` (when given) receives id -> line number."""
    out = {}
    for lineno, line in metadata_lines(path):
        parts = line.split(maxsplit=n - 1)
        if len(parts) != n:
            raise ValueError(f"{path}:{lineno}: expected {fmt}, got {line!r}")
        if parts[0] in out:
            raise ValueError(f"{path}:{lineno}: id {parts[0]!r} appears twice")
        out[parts[0]] = [p.strip() for p in parts[1:]]
        if lines is not None:
            lines[parts[0]] = lineno
    return out


def _records(root: str, split: str, allow_outside: bool = False) -> Iterator[Record]:
    images_txt = os.path.join(root, "images.txt")
    lines: dict[str, int] = {}
    images = _table(images_txt, 2, "<id> <path>", lines)
    labels = _table(os.path.join(root, "image_class_labels.txt"), 2, "<id> <class id>")
    splits = _table(os.path.join(root, "train_test_split.txt"), 2, "<id> <is_train>")
    boxes = _table(os.path.join(root, "bounding_boxes.txt"), 5, "<id> <x> <y> <w> <h>")
    want = "1" if split == "train" else "0"
    resolver = RootResolver(os.path.join(root, "images"), "the CUB image folder", allow_outside)
    for key, (path,) in images.items():
        for table, name in ((labels, "image_class_labels.txt"), (splits, "train_test_split.txt")):
            if key not in table:
                raise ValueError(f"image {path!r} (id {key}) has no line in {name}")
        if splits[key][0] not in ("0", "1"):
            raise ValueError(f"train_test_split.txt: image {path!r} has flag {splits[key][0]!r}, expected 0 or 1")
        if splits[key][0] != want:
            continue
        bbox = []
        if key in boxes:
            try:
                x, y, w, h = (float(v) for v in boxes[key])
            except ValueError:
                raise ValueError(f"bounding_boxes.txt: image {path!r} has a non-numeric box {boxes[key]}") from None
            bbox = [[x, y, x + w, y + h]]
        try:
            label = int(labels[key][0]) - 1  # 1-based class ids
        except ValueError:
            label = labels[key][0]  # reported by the label check with the image id
        file = resolver.resolve(path, where=f"{images_txt}:{lines[key]}")
        yield Record(image_id=path, path=file.path, label=label, bboxes=bbox, key=file.key)


def _class_names(root: str) -> list[str]:
    table = _table(os.path.join(root, "classes.txt"), 2, "<class id> <name>")
    try:
        ids = sorted(int(k) for k in table)
    except ValueError:
        raise ValueError("classes.txt: class ids must be integers") from None
    if ids != list(range(1, len(ids) + 1)):
        raise ValueError(f"classes.txt: class ids must run 1..{len(ids)} without gaps")
    return [table[str(i)][0] for i in ids]


def load_cub(
    root: str | os.PathLike,
    split: str = "train",
    *,
    on_error: str = "raise",
    verify: bool = False,
    cache_dir: str | os.PathLike | None = None,
    allow_outside_root: bool = False,
) -> datasets.Dataset:
    """Load CUB-200-2011 from its official layout.

    Parameters
    ----------
    root : path
        The ``CUB_200_2011`` folder, or a folder containing it.
    split : {"train", "test"}
        From ``train_test_split.txt``.
    on_error : {"raise", "skip"}
        Missing/corrupt images and bad boxes: raise naming the image id, or skip and report
        them (count and ids) in one ``SkippedImagesWarning``.
    verify : bool, default=False
        Fully decode every image while loading (headers are always read for the box check).
    cache_dir : path, optional
        Where the Arrow file is written (default: the ``datasets`` cache).
    allow_outside_root : bool, default=False
        Paths of images.txt must lie inside ``images/``: an absolute path or one climbing
        out with ``..`` raises ValueError naming the line. True accepts them.

    Returns
    -------
    datasets.Dataset
        ``image``, ``label`` (200 names from classes.txt), ``bboxes`` (one box per image,
        ``x, y, x + w, y + h``), ``image_id`` (path relative to ``images/``).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if not isinstance(allow_outside_root, bool):
        raise TypeError(f"allow_outside_root must be a bool, got {allow_outside_root!r}")
    root = os.fspath(root)
    require_dir(root, "CUB root", _LAYOUT)
    if not os.path.isfile(os.path.join(root, "images.txt")) and os.path.isdir(
        os.path.join(root, "CUB_200_2011")
    ):
        root = os.path.join(root, "CUB_200_2011")
    for name in _FILES:
        require_file(os.path.join(root, name), "CUB metadata file", _LAYOUT)
    require_dir(os.path.join(root, "images"), "CUB image folder", _LAYOUT)
    names = _class_names(root)
    key = f"{os.path.abspath(root)}|{split}|{verify}|{allow_outside_root}|{file_signature(os.path.join(root, f) for f in _FILES)}"
    return build_dataset(
        partial(_records, root, split, allow_outside_root),
        class_names=names,
        source=f"load_cub({split!r})",
        key=key,
        on_error=on_error,
        verify=verify,
        cache_dir=cache_dir,
    )
