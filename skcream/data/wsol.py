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

wsolevaluation's two knobs on which images are used (``config.py``, ``data_loaders.py``):
``samples_per_class=N`` cuts train-fullsup to N random images per class
(``--num_val_sample_per_class``), ``proxy=True`` reads ILSVRC's smaller training list
``train/image_ids_proxy.txt`` (``--proxy_training_set``).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any

import datasets
import numpy as np

from ._build import (
    Record,
    build_dataset,
    file_signature,
    metadata_lines,
    require_dir,
    require_file,
)
from .files import RootResolver

__all__ = ["MAX_SAMPLES_PER_CLASS", "WSOL_N_CLASSES", "load_wsol", "wsol_records"]

#: Number of classes of each benchmark (the ClassLabel range when no names are given).
WSOL_N_CLASSES = {"CUB": 200, "ILSVRC": 1000, "OpenImages": 100}

#: wsolevaluation's limits on ``--num_val_sample_per_class`` (``config.py``,
#: ``check_dependency``): its train-fullsup splits hold about 5 (CUB) and 25 (OpenImages)
#: images per class; ILSVRC's has 10 and no stated limit
MAX_SAMPLES_PER_CLASS = {"CUB": 5, "OpenImages": 25}

_IDS, _PROXY_IDS = "image_ids.txt", "image_ids_proxy.txt"

_LAYOUT = """<metadata_root>/<dataset>/<split>/image_ids.txt, class_labels.txt (path,label),
    image_sizes.txt (path,width,height; optional), localization.txt (path,x0,y0,x1,y1 or, for
    OpenImages, path,mask_path,ignore_path; optional for train)
<data_root>/<image path as in image_ids.txt>"""

_PROXY_LAYOUT = f"""{_LAYOUT}
proxy=True reads <metadata_root>/ILSVRC/train/{_PROXY_IDS} (ILSVRC's proxy training list,
    one image path per line; it comes with wsolevaluation's ILSVRC train metadata)"""


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


def _aligned(meta: str, dataset: str, ids_name: str = _IDS) -> bool:
    """True when class_labels / image_sizes / localization list the images in the order of
    image_ids.txt (as wsolevaluation's files do): then :func:`_records` streams them in
    lockstep, in constant memory, instead of holding 1.28M ILSVRC ids in dicts."""
    if dataset == "OpenImages":
        return False
    ids_path = os.path.join(meta, ids_name)
    labels, sizes, boxes = (_Lockstep(_label_lines(meta)), _Lockstep(_size_lines(meta)),
                            _Lockstep(_box_lines(meta)))
    sizes_given = not sizes.exhausted
    for _, image_id in metadata_lines(ids_path):
        if len(labels.take(image_id)) != 1 or (sizes_given and len(sizes.take(image_id)) != 1):
            return False
        boxes.take(image_id)
    return labels.exhausted and sizes.exhausted and boxes.exhausted


def _records(meta: str, data_root: str, mask_root: str, dataset: str,
             allow_outside: bool = False, ids_name: str = _IDS) -> Iterator[Record]:
    """The records of the images listed in ``ids_name`` (image_ids.txt, or the proxy list
    image_ids_proxy.txt, whose images' labels, sizes and boxes are lines among those of the
    whole training set)."""
    if _aligned(meta, dataset, ids_name):  # no stray box possible: every line was matched
        yield from _streamed_records(meta, data_root, allow_outside)
        return
    labels = _read_labels(meta)
    sizes = _read_sizes(meta)
    loc_lines: dict[str, int] = {}
    boxes = _read_boxes(meta, loc_lines) if dataset != "OpenImages" else {}
    masks = (_read_masks(meta, mask_root, allow_outside, loc_lines)
             if dataset == "OpenImages" else {})
    ids_path = os.path.join(meta, ids_name)
    ids = {image_id for _, image_id in metadata_lines(ids_path)}
    if ids_name != _IDS:  # a proxy list: boxes of the other training images belong to images
        ids |= labels.keys()
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


def _sample_per_class(meta: str, n: int, random_state: Any) -> list[str]:
    """wsolevaluation's cut of train-fullsup to ``n`` images per class.

    As ``WSOLImageLabelDataset._adjust_samples_per_class`` (``data_loaders.py``): for each
    class in increasing label order, ``n`` of its images (in image_ids.txt order) drawn
    without replacement by ``RandomState.choice``; the classes follow one another, each in
    draw order. The reference draws from numpy's global RNG, which its ``main.py`` seeds
    with ``--seed`` just before building the loaders, so ``random_state=seed`` gives its
    list. Deviation: a class with fewer than ``n`` images keeps all of them, with a
    warning (the reference stops with numpy's "Cannot take a larger sample than
    population": CUB's train-fullsup has a class of 3 images).
    """
    from sklearn.utils import check_random_state

    labels_path = os.path.join(meta, "class_labels.txt")
    ids_path = os.path.join(meta, _IDS)
    labels = _read_labels(meta)
    ids, codes = [], []
    for ln, image_id in metadata_lines(ids_path):
        if image_id not in labels:
            raise ValueError(f"{ids_path}:{ln}: image {image_id!r} has no line in class_labels.txt")
        try:
            codes.append(int(labels[image_id]))
        except ValueError:
            raise ValueError(f"{labels_path}: the label of {image_id!r} must be an integer "
                             f"for samples_per_class, got {labels[image_id]!r}") from None
        ids.append(image_id)
    rng = check_random_state(random_state)
    ids_arr, codes_arr = np.array(ids, dtype=object), np.array(codes)
    chosen: list[str] = []
    short: list[tuple[int, int]] = []
    classes = np.unique(codes_arr)
    for c in classes:
        members = np.flatnonzero(codes_arr == c)
        if len(members) < n:
            short.append((int(c), len(members)))
        chosen += ids_arr[rng.choice(members, min(n, len(members)), replace=False)].tolist()
    if short and len(short) == len(classes):
        raise ValueError(f"samples_per_class={n}: no class of {meta} has that many images "
                         f"(at most {max(k for _, k in short)}); 0 takes them all")
    if short:
        listed = ", ".join(f"class {c}: {k}" for c, k in short[:5])
        warnings.warn(
            f"samples_per_class={n}: {len(short)} class(es) of {meta} have fewer images "
            f"({listed}{', ...' if len(short) > 5 else ''}); all of their images are kept",
            UserWarning, stacklevel=3,
        )
    return chosen


def _chosen(records: Callable[[], Iterator[Record]], order: list[str]) -> Iterator[Record]:
    """The records of the image ids ``order``, in that order."""
    wanted = set(order)
    found = {r.image_id: r for r in records() if r.image_id in wanted}
    for image_id in order:
        yield found[image_id]


def _check_selection(dataset: str, split: str, samples_per_class: Any, proxy: Any) -> None:
    """Refuse ``samples_per_class`` / ``proxy`` values wsolevaluation has no meaning for."""
    if isinstance(samples_per_class, bool) or not isinstance(samples_per_class, int | np.integer):
        raise TypeError(f"samples_per_class must be an int >= 0 (0: all images), got "
                        f"{samples_per_class!r}")
    if samples_per_class < 0:
        raise ValueError(f"samples_per_class must be an int >= 0 (0: all images), got "
                         f"{samples_per_class}")
    if samples_per_class and split != "val":
        raise ValueError(f"samples_per_class cuts the train-fullsup split (split='val'), as "
                         f"wsolevaluation's --num_val_sample_per_class; got split={split!r}")
    limit = MAX_SAMPLES_PER_CLASS.get(dataset)
    if limit is not None and samples_per_class > limit:
        raise ValueError(f"samples_per_class must be <= {limit} for {dataset} (wsolevaluation's "
                         f"limit: its train-fullsup split holds about {limit} images per "
                         f"class), got {samples_per_class}")
    if not isinstance(proxy, bool):
        raise TypeError(f"proxy must be a bool, got {proxy!r}")
    if proxy and split != "train":
        raise ValueError(f"proxy=True reads the proxy training list (split='train', "
                         f"train/{_PROXY_IDS}); got split={split!r}")


def _check_layout(metadata_root: str, dataset: str, split: str, ids_name: str = _IDS) -> str:
    """The metadata folder of ``dataset``/``split`` after the layout checks, or a clear error."""
    if dataset not in WSOL_N_CLASSES:
        raise ValueError(f"dataset must be one of {sorted(WSOL_N_CLASSES)}, got {dataset!r}")
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    require_dir(metadata_root, "metadata_root", _LAYOUT)
    meta = require_dir(os.path.join(metadata_root, dataset, split), "metadata folder", _LAYOUT)
    for name in (ids_name, "class_labels.txt"):
        require_file(os.path.join(meta, name), "metadata file",
                     _LAYOUT if ids_name == _IDS else _PROXY_LAYOUT)
    return meta


def wsol_records(metadata_root: str | os.PathLike, dataset: str, split: str, *,
                 data_root: str | os.PathLike, mask_root: str | os.PathLike | None = None,
                 allow_outside_root: bool = False) -> Iterator[Record]:
    """The images of a split as :class:`~skcream.data._build.Record` s, no pixel read.

    The metadata parsing of :func:`load_wsol` (same checks and errors, same streaming in
    constant memory for aligned files), for callers that read other files per image id,
    e.g. ``skcream.metrics.evaluate_scoremaps`` (score maps at ``data_root/<image id>``).
    ``Record.path`` is ``data_root/<image id>``; OpenImages mask paths are joined to
    ``mask_root`` (default ``data_root``).
    """
    data_root = os.fspath(data_root)
    meta = _check_layout(os.fspath(metadata_root), dataset, split)
    mask_root = data_root if mask_root is None else os.fspath(mask_root)
    return _records(meta, data_root, mask_root, dataset, bool(allow_outside_root))


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
    samples_per_class: int = 0,
    random_state: Any = None,
    proxy: bool = False,
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
    samples_per_class : int, default=0
        ``split="val"`` only: keep N images per class drawn without replacement
        (wsolevaluation's ``--num_val_sample_per_class``; 0 keeps all). At most 5 for CUB
        and 25 for OpenImages (the reference's limits); a class with fewer than N images
        keeps them all, with a warning. The rows come class by class in increasing label
        order, each class in draw order, as the reference lists them.
    random_state : int, RandomState or None, default=None
        Seed of that draw (an int gives the reference's list for ``--seed`` of that int).
    proxy : bool, default=False
        ``split="train"`` only: read the images of ``train/image_ids_proxy.txt`` (ILSVRC's
        proxy training set for hyper-parameter search, wsolevaluation's
        ``--proxy_training_set``) instead of ``image_ids.txt``; labels, sizes and boxes
        come from the split's other files as usual.

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
    _check_selection(dataset, split, samples_per_class, proxy)
    data_root = os.fspath(data_root)
    metadata_root = os.fspath(metadata_root)
    mask_root = data_root if mask_root is None else os.fspath(mask_root)
    ids_name = _PROXY_IDS if proxy else _IDS
    meta = _check_layout(metadata_root, dataset, split, ids_name)
    require_dir(data_root, "data_root", _LAYOUT)
    if dataset == "OpenImages":
        require_dir(mask_root, "mask_root", _LAYOUT)
    if class_names is None:
        names = _class_names(meta, WSOL_N_CLASSES[dataset])
    else:
        names = [str(n) for n in class_names]
    files = [os.path.join(meta, f) for f in
             (ids_name, "class_labels.txt", "image_sizes.txt", "localization.txt")]
    records = partial(_records, meta, data_root, mask_root, dataset, allow_outside_root,
                      ids_name)
    chosen = ""
    if samples_per_class:
        order = _sample_per_class(meta, int(samples_per_class), random_state)
        records = partial(_chosen, records, order)
        chosen = hashlib.sha256("\n".join(order).encode()).hexdigest()
    key = (f"{os.path.abspath(data_root)}|{os.path.abspath(mask_root)}|{dataset}|{split}|"
           f"{verify}|{allow_outside_root}|{file_signature(files)}")
    if proxy or chosen:  # (the key of a plain split is what it was before these options)
        key += f"|{ids_name}|{chosen}"
    return build_dataset(
        records,
        class_names=names,
        source=f"load_wsol({dataset!r}, {split!r})",
        key=key,
        with_mask=dataset == "OpenImages",
        on_error=on_error,
        verify=verify,
        cache_dir=cache_dir,
    )
