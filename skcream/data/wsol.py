"""Loader for the ``wsolevaluation`` metadata layout (CUB, ILSVRC, OpenImages).

::

    <metadata_root>/<dataset>/<split>/
        image_ids.txt      one relative image path per line
        class_labels.txt   path,label
        image_sizes.txt    path,width,height          (optional, may be empty)
        localization.txt   path,x0,y0,x1,y1           (CUB, ILSVRC; several lines per image allowed)
                           path,mask_path,ignore_path (OpenImages; one line per instance mask,
                                                       the ignore path given once)
    <data_root>/<image path>        the images
    <mask_root>/<mask path>         OpenImages masks (mask_root defaults to data_root)

``split="val"`` is the train-fullsup split (a few boxed images per class, for hyper-parameter
and threshold search); ``train`` has image labels only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from functools import partial
from typing import Any

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

__all__ = ["WSOL_N_CLASSES", "load_wsol"]

#: Number of classes of each benchmark (the ClassLabel range when no names are given).
WSOL_N_CLASSES = {"CUB": 200, "ILSVRC": 1000, "OpenImages": 100}

_LAYOUT = """<metadata_root>/<dataset>/<split>/image_ids.txt, class_labels.txt (path,label),
    image_sizes.txt (path,width,height; optional), localization.txt (path,x0,y0,x1,y1 or, for
    OpenImages, path,mask_path,ignore_path; optional for train)
<data_root>/<image path as in image_ids.txt>"""


def _split(line: str, n: int, path: str, lineno: int, fmt: str) -> list[str]:
    parts = line.rsplit(",", n - 1)
    if len(parts) != n:
        raise ValueError(f"{path}:{lineno}: expected {fmt}, got {line!r}")
    return parts


def _read_labels(meta: str) -> dict[str, str]:
    path = os.path.join(meta, "class_labels.txt")
    return {p: lab for ln, line in metadata_lines(path)
            for p, lab in [_split(line, 2, path, ln, "path,label")]}


def _read_sizes(meta: str) -> dict[str, tuple[int, int]]:
    path = os.path.join(meta, "image_sizes.txt")
    if not os.path.isfile(path):
        return {}
    out = {}
    for ln, line in metadata_lines(path):
        p, w, h = _split(line, 3, path, ln, "path,width,height")
        try:
            out[p] = (int(w), int(h))
        except ValueError:
            raise ValueError(f"{path}:{ln}: width and height must be integers, got {line!r}") from None
    return out


def _read_boxes(meta: str, lines: dict[str, int] | None = None) -> dict[str, list[list[float]]]:
    path = os.path.join(meta, "localization.txt")
    out: dict[str, list[list[float]]] = {}
    if not os.path.isfile(path):
        return out
    for ln, line in metadata_lines(path):
        p, *coords = _split(line, 5, path, ln, "path,x0,y0,x1,y1")
        if lines is not None:
            lines.setdefault(p, ln)
        try:
            out.setdefault(p, []).append([float(c) for c in coords])
        except ValueError:
            raise ValueError(f"{path}:{ln}: box coordinates must be numbers, got {line!r}") from None
    return out


def _read_masks(meta: str, mask_root: str, allow_outside: bool,
                lines: dict[str, int] | None = None) -> dict[str, tuple[list[str], str | None]]:
    """image path -> (instance mask paths, ignore mask path or None), joined to mask_root;
    ``lines`` (when given) receives image path -> first line number."""
    path = os.path.join(meta, "localization.txt")
    out: dict[str, tuple[list[str], str | None]] = {}
    if not os.path.isfile(path):
        return out
    resolver = RootResolver(mask_root, "mask_root", allow_outside)
    for ln, line in metadata_lines(path):
        p, mask, ignore = _split(line, 3, path, ln, "path,mask_path,ignore_path")
        if lines is not None:
            lines.setdefault(p, ln)
        masks, prev_ignore = out.get(p, ([], None))
        ignore = ignore.strip() or None
        where = f"{path}:{ln}"
        if ignore is not None:
            ignore = resolver.resolve(ignore, where=where).path
        if prev_ignore is not None and ignore is not None and ignore != prev_ignore:
            raise ValueError(f"{where}: image {p!r} has two different ignore masks")
        masks.append(resolver.resolve(mask.strip(), where=where).path)
        out[p] = (masks, prev_ignore or ignore)
    return out


def _label_lines(meta: str) -> Iterator[tuple[str, str]]:
    path = os.path.join(meta, "class_labels.txt")
    for ln, line in metadata_lines(path):
        p, lab = _split(line, 2, path, ln, "path,label")
        yield p, lab


def _size_lines(meta: str) -> Iterator[tuple[str, tuple[int, int]]]:
    path = os.path.join(meta, "image_sizes.txt")
    if not os.path.isfile(path):
        return
    for ln, line in metadata_lines(path):
        p, w, h = _split(line, 3, path, ln, "path,width,height")
        try:
            yield p, (int(w), int(h))
        except ValueError:
            raise ValueError(f"{path}:{ln}: width and height must be integers, got {line!r}") from None


def _box_lines(meta: str) -> Iterator[tuple[str, list[float]]]:
    path = os.path.join(meta, "localization.txt")
    if not os.path.isfile(path):
        return
    for ln, line in metadata_lines(path):
        p, *coords = _split(line, 5, path, ln, "path,x0,y0,x1,y1")
        try:
            yield p, [float(c) for c in coords]
        except ValueError:
            raise ValueError(f"{path}:{ln}: box coordinates must be numbers, got {line!r}") from None


class _Lockstep:
    """Walk a ``(path, value)`` line iterator alongside image_ids.txt: the values of one
    image are the next lines with its path. ``aligned`` turns False at the first line that
    belongs to no image in that order (the caller then falls back to a dict)."""

    def __init__(self, lines: Iterator[tuple[str, Any]]) -> None:
        self._lines = lines
        self._head = next(lines, None)
        self.aligned = True

    def take(self, image_id: str) -> list:
        out = []
        while self._head is not None and self._head[0] == image_id:
            out.append(self._head[1])
            self._head = next(self._lines, None)
        return out

    @property
    def exhausted(self) -> bool:
        return self._head is None


def _aligned(meta: str, dataset: str) -> bool:
    """True when class_labels / image_sizes / localization list the images in the order of
    image_ids.txt (as wsolevaluation's files do): then :func:`_records` streams them in
    lockstep, in constant memory, instead of holding 1.28M ILSVRC ids in dicts."""
    if dataset == "OpenImages":
        return False
    ids_path = os.path.join(meta, "image_ids.txt")
    labels, sizes, boxes = (_Lockstep(_label_lines(meta)), _Lockstep(_size_lines(meta)),
                            _Lockstep(_box_lines(meta)))
    sizes_given = not sizes.exhausted
    for _, image_id in metadata_lines(ids_path):
        if len(labels.take(image_id)) != 1 or (sizes_given and len(sizes.take(image_id)) != 1):
            return False
        boxes.take(image_id)
    return labels.exhausted and sizes.exhausted and boxes.exhausted


def _records(meta: str, data_root: str, mask_root: str, dataset: str,
             allow_outside: bool = False) -> Iterator[Record]:
    if _aligned(meta, dataset):  # no stray box possible: every line was matched in order
        yield from _streamed_records(meta, data_root, allow_outside)
        return
    labels = _read_labels(meta)
    sizes = _read_sizes(meta)
    loc_lines: dict[str, int] = {}
    boxes = _read_boxes(meta, loc_lines) if dataset != "OpenImages" else {}
    masks = (_read_masks(meta, mask_root, allow_outside, loc_lines)
             if dataset == "OpenImages" else {})
    ids_path = os.path.join(meta, "image_ids.txt")
    ids = {image_id for _, image_id in metadata_lines(ids_path)}
    stray = [p for p in loc_lines if p not in ids]
    if stray:  # a box or mask that would silently belong to no image
        raise ValueError(
            f"{os.path.join(meta, 'localization.txt')}:{loc_lines[stray[0]]}: image "
            f"{stray[0]!r} is not listed in image_ids.txt ({len(stray)} such image(s))"
        )
    del ids
    resolver = RootResolver(data_root, "data_root", allow_outside)
    for ln, image_id in metadata_lines(ids_path):
        if image_id not in labels:
            raise ValueError(f"{ids_path}:{ln}: image {image_id!r} has no line in class_labels.txt")
        file = resolver.resolve(image_id, where=f"{ids_path}:{ln}")
        mask_paths, ignore = masks.get(image_id, (None, None))
        yield Record(
            image_id=image_id,
            path=file.path,
            key=file.key,
            label=labels[image_id],
            bboxes=boxes.get(image_id, []),
            size=sizes.get(image_id),
            mask_paths=mask_paths,
            ignore_path=ignore,
        )


def _streamed_records(meta: str, data_root: str, allow_outside: bool) -> Iterator[Record]:
    """The records of aligned metadata files (see :func:`_aligned`), read in lockstep."""
    labels, sizes, boxes = (_Lockstep(_label_lines(meta)), _Lockstep(_size_lines(meta)),
                            _Lockstep(_box_lines(meta)))
    ids_path = os.path.join(meta, "image_ids.txt")
    resolver = RootResolver(data_root, "data_root", allow_outside)
    for ln, image_id in metadata_lines(ids_path):
        size = sizes.take(image_id)
        file = resolver.resolve(image_id, where=f"{ids_path}:{ln}")
        yield Record(
            image_id=image_id,
            path=file.path,
            key=file.key,
            label=labels.take(image_id)[0],
            bboxes=boxes.take(image_id),
            size=size[0] if size else None,
        )


def _class_names(meta: str, n_classes: int) -> list[str]:
    """Name each class after the folder its images share (CUB ``001.Black_footed_Albatross``,
    OpenImages ``01226z``); ``str(label)`` where that folder is not unique or unknown."""
    folders: dict[str, set[str]] = {}
    path = os.path.join(meta, "class_labels.txt")
    for ln, line in metadata_lines(path):
        p, lab = _split(line, 2, path, ln, "path,label")
        folders.setdefault(lab.strip(), set()).add(os.path.basename(os.path.dirname(p)))
    names = []
    for i in range(n_classes):
        f = folders.get(str(i), set())
        names.append(next(iter(f)) if len(f) == 1 and next(iter(f)) else str(i))
    if len(set(names)) != len(names):
        names = [str(i) for i in range(n_classes)]
    return names


def load_wsol(
    data_root: str | os.PathLike,
    metadata_root: str | os.PathLike,
    dataset: str = "CUB",
    split: str = "train",
    *,
    mask_root: str | os.PathLike | None = None,
    class_names: Sequence[str] | None = None,
    on_error: str = "raise",
    verify: bool = False,
    cache_dir: str | os.PathLike | None = None,
    allow_outside_root: bool = False,
) -> datasets.Dataset:
    """Load a split of a WSOL benchmark from the ``wsolevaluation`` metadata.

    Parameters
    ----------
    data_root : path
        Folder the image ids are relative to (e.g. ``dataset/CUB``).
    metadata_root : path
        Folder holding ``<dataset>/<split>/`` metadata (``wsolevaluation/metadata``).
    dataset : {"CUB", "ILSVRC", "OpenImages"}
    split : {"train", "val", "test"}
        ``val`` is train-fullsup.
    mask_root : path, optional
        Folder the OpenImages mask paths are relative to; default ``data_root``.
    class_names : sequence of str, optional
        ClassLabel names; default: 200 / 1000 / 100 classes named after their image folders.
        A label outside ``range(len(class_names))`` raises ValueError naming the image.
    on_error : {"raise", "skip"}
        What to do with a missing, corrupt (see ``verify``) or truncated image, or a box
        outside its image / with ``x1 < x0``: raise naming the image id, or leave the
        sample out and report all of them in one ``SkippedImagesWarning`` (count and ids).
    verify : bool, default=False
        Fully decode every image (and mask) while loading; otherwise only headers are read
        (where sizes are needed) and decoding errors surface when a row is used.
    cache_dir : path, optional
        Where the Arrow file is written (default: the ``datasets`` cache).
    allow_outside_root : bool, default=False
        Image ids must be paths inside ``data_root`` and mask paths inside ``mask_root``: an
        absolute path or one climbing out with ``..`` raises ValueError naming the metadata
        file and line (a downloaded metadata file cannot make the loader read other files of
        the machine). True accepts them; only for metadata you wrote or trust.

    Returns
    -------
    datasets.Dataset
        Columns ``image`` (file paths, decoded lazily), ``label``, ``bboxes`` (original
        pixels; empty without ``localization.txt``), ``image_id``, and for OpenImages
        ``mask`` (0 bg, 1 fg, 255 ignore: any non-zero instance pixel is foreground, ignore
        = ignore box minus foreground, as the protocol).
    """
    if dataset not in WSOL_N_CLASSES:
        raise ValueError(f"dataset must be one of {sorted(WSOL_N_CLASSES)}, got {dataset!r}")
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    if not isinstance(allow_outside_root, bool):
        raise TypeError(f"allow_outside_root must be a bool, got {allow_outside_root!r}")
    data_root = os.fspath(data_root)
    metadata_root = os.fspath(metadata_root)
    mask_root = data_root if mask_root is None else os.fspath(mask_root)
    require_dir(metadata_root, "metadata_root", _LAYOUT)
    meta = require_dir(os.path.join(metadata_root, dataset, split), "metadata folder", _LAYOUT)
    for name in ("image_ids.txt", "class_labels.txt"):
        require_file(os.path.join(meta, name), "metadata file", _LAYOUT)
    require_dir(data_root, "data_root", _LAYOUT)
    if dataset == "OpenImages":
        require_dir(mask_root, "mask_root", _LAYOUT)
    if class_names is None:
        names = _class_names(meta, WSOL_N_CLASSES[dataset])
    else:
        names = [str(n) for n in class_names]
    files = [os.path.join(meta, f) for f in
             ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt")]
    key = (f"{os.path.abspath(data_root)}|{os.path.abspath(mask_root)}|{dataset}|{split}|"
           f"{verify}|{allow_outside_root}|{file_signature(files)}")
    return build_dataset(
        partial(_records, meta, data_root, mask_root, dataset, allow_outside_root),
        class_names=names,
        source=f"load_wsol({dataset!r}, {split!r})",
        key=key,
        with_mask=dataset == "OpenImages",
        on_error=on_error,
        verify=verify,
        cache_dir=cache_dir,
    )
