"""Loader for users' own data in the ``datasets`` imagefolder convention.

::

    root/
        metadata.jsonl          optional; one JSON object per image:
                                {"file_name": "birds/a.jpg", "label": "bird" (or an int),
                                 "bboxes": [[x0, y0, x1, y1], ...], "mask": "masks/a.png"}
        <label>/<image>         without metadata.jsonl (or without "label" in it) the label is
                                the name of the image's parent folder

``bboxes`` and ``mask`` are optional (a mask is a 0/1/255 8-bit PNG of the image size).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from functools import partial

import datasets
from PIL import Image

from ._build import (
    Record,
    build_dataset,
    file_signature,
    metadata_lines,
    require_dir,
)
from .files import RootResolver, display_path
from .schema import label_value

__all__ = ["load_imagefolder"]

_LAYOUT = """root/metadata.jsonl with {"file_name": <path relative to root>, "label": <name or int>,
    "bboxes": [[x0,y0,x1,y1], ...], "mask": <optional mask path>} per line, or root/<label>/<image>"""


def _image_extensions() -> frozenset[str]:
    return frozenset(ext.lower() for ext, fmt in Image.registered_extensions().items()
                     if fmt in Image.OPEN)


def _scan(root: str, resolver: RootResolver) -> tuple[list[str], list[str]]:
    """All image files under root (relative, sorted), and the linked folders left out.

    Folders reached through symbolic links are walked too, each real folder once (a link to
    an ancestor cannot loop), their files then meeting the resolver like any other (the
    same file found twice is refused). A link to a folder outside ``root`` is not walked
    unless the resolver allows it; such folders are returned (relative) instead.
    """
    exts = _image_extensions()
    out, outside = [], []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames.sort()
        for d in list(dirnames):
            full = os.path.join(dirpath, d)
            if (not resolver.allow_outside and os.path.islink(full)
                    and not resolver.inside(os.path.realpath(full))):
                dirnames.remove(d)
                outside.append(os.path.relpath(full, root).replace(os.sep, "/"))
        for f in filenames:
            if os.path.splitext(f)[1].lower() in exts:
                out.append(os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, "/"))
    return sorted(out), outside


def _read_metadata(path: str) -> list[dict]:
    rows = []
    for lineno, line in metadata_lines(path):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
        except RecursionError:
            raise ValueError(f"{path}:{lineno}: JSON nested too deeply") from None
        if not isinstance(row, dict) or "file_name" not in row:
            raise ValueError(f"{path}:{lineno}: each line must be an object with 'file_name'")
        for key in ("file_name", "mask"):
            value = row.get(key)
            if key == "mask" and value in (None, ""):  # no mask
                continue
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{path}:{lineno}: {key!r} must be a non-empty path string, "
                                 f"got {value!r}")
        row["_where"] = f"{path}:{lineno}"
        rows.append(row)
    return rows


def _folder_label(rel: str) -> str:
    parent = os.path.dirname(rel)
    if not parent:
        raise ValueError(
            f"image {rel!r} lies directly in root: without a 'label' in metadata.jsonl the "
            "label is the name of the image's parent folder (root/<label>/<image>)"
        )
    return os.path.basename(parent)


def _plan(root: str, mask_key: str, allow_outside: bool = False) -> tuple[list[dict], bool]:
    """(rows with file_name, label, bboxes, mask) and whether any row has a mask.

    Every file name (listed in metadata.jsonl or found by the scan) goes through the one
    resolver (:class:`skcream.data.files.RootResolver`): rows get ``_image`` and ``_mask``
    (:class:`~skcream.data.files.Resolved`), and ``file_name`` becomes the normalised spelling
    (``./a/0.png`` -> ``a/0.png``), the image id.
    """
    meta = os.path.join(root, "metadata.jsonl")
    resolver = RootResolver(root, "root", allow_outside)
    if os.path.isfile(meta):
        rows = _read_metadata(meta)
    else:
        found, outside = _scan(root, resolver)
        for folder in outside:  # scanned images must not come from outside: say which link
            resolver.resolve(folder, where=f"{root} (scanned)")
        rows = [{"file_name": f, "_where": f"{root} (scanned)"} for f in found]
        if not rows:
            raise FileNotFoundError(f"no image files found under {root!r}; expected:\n{_LAYOUT}")
    for r in rows:
        r["_image"] = resolver.resolve(r["file_name"], where=r["_where"])
        r["file_name"] = r["_image"].spelling
        mask = r.get(mask_key)
        r["_mask"] = resolver.resolve(mask, where=r["_where"]) if mask else None
    if os.path.isfile(meta):
        listed = {r["_image"].key for r in rows} | {r["_mask"].key for r in rows if r["_mask"]}
        unlisted = [f for f in _scan(root, resolver)[0] if resolver.real_path(os.path.join(root, f)) not in listed]
        if unlisted:
            raise ValueError(
                f"{len(unlisted)} image file(s) under {root!r} are not listed in metadata.jsonl "
                f"(e.g. {[display_path(f) for f in unlisted[:3]]}); list them, or move them out "
                "of the folder"
            )
    for r in rows:
        if "label" not in r:
            r["label"] = _folder_label(r["file_name"])
    return rows, any(r.get(mask_key) for r in rows)


def _records(root: str, mask_key: str, names: list[str],
             allow_outside: bool = False) -> Iterator[Record]:
    rows, _ = _plan(root, mask_key, allow_outside)
    index = {n: i for i, n in enumerate(names)}
    for r in rows:
        label = label_value(r["label"], f"label of image {r['file_name']!r}")
        if isinstance(label, str):
            if label not in index:
                raise ValueError(f"label {label!r} of image {r['file_name']!r} is not one of the "
                                 f"class names {names}")
            label = index[label]
        bboxes = r.get("bboxes") or []
        if not isinstance(bboxes, list):
            raise ValueError(f"bboxes of image {r['file_name']!r} must be a list of [x0,y0,x1,y1]")
        yield Record(
            image_id=r["file_name"],
            path=r["_image"].path,
            label=label,
            bboxes=bboxes,
            mask_paths=[r["_mask"].path] if r["_mask"] else None,
            mask_raw=True,
            key=r["_image"].key,
        )


def load_imagefolder(
    root: str | os.PathLike,
    *,
    class_names: Sequence[str] | None = None,
    on_error: str = "raise",
    verify: bool = False,
    cache_dir: str | os.PathLike | None = None,
    allow_outside_root: bool = False,
) -> datasets.Dataset:
    """Load a folder of images with labels and optional boxes/masks.

    Parameters
    ----------
    root : path
        See the module docstring for the layout.
    class_names : sequence of str, optional
        ClassLabel names. Default: the sorted distinct string labels; integer labels then
        need ``class_names`` unless every label is an int (names ``"0" .. str(max)``).
        A label outside the names raises ValueError naming the image.
    on_error : {"raise", "skip"}
        Missing/corrupt images, unreadable masks, bad boxes: raise naming the image, or skip
        and report them (count and ids) in one ``SkippedImagesWarning``.
    verify : bool, default=False
        Fully decode every image (and mask) while loading.
    cache_dir : path, optional
        Where the Arrow file is written (default: the ``datasets`` cache).
    allow_outside_root : bool, default=False
        ``file_name`` and ``mask`` paths of metadata.jsonl must lie inside ``root``: an
        absolute path or one climbing out with ``..`` raises ValueError naming the line (a
        downloaded metadata file cannot make the loader read other files of the machine).
        True accepts them; only for metadata you wrote or trust.

    Returns
    -------
    datasets.Dataset
        ``image``, ``label``, ``bboxes``, ``image_id`` (path relative to root), and ``mask``
        when any row names one (rows without a mask get None).
    """
    root = os.fspath(root)
    require_dir(root, "root", _LAYOUT)
    if not isinstance(allow_outside_root, bool):
        raise TypeError(f"allow_outside_root must be a bool, got {allow_outside_root!r}")
    rows, with_mask = _plan(root, "mask", allow_outside_root)
    for r in rows:  # null, 1.5, true, ... are named here, image by image
        r["label"] = label_value(r["label"], f"label of image {r['file_name']!r}")
    labels = [r["label"] for r in rows]
    if class_names is not None:
        names = [str(n) for n in class_names]
    elif all(isinstance(v, str) for v in labels):
        names = sorted(set(labels))
    elif all(isinstance(v, int) for v in labels):
        top = max(labels)
        if min(labels) < 0:
            bad = next(r["file_name"] for r in rows if r["label"] < 0)
            raise ValueError(f"label of image {bad!r} is negative")
        names = [str(i) for i in range(top + 1)]
    else:
        first_name = next(r for r in rows if isinstance(r["label"], str))
        first_int = next(r for r in rows if isinstance(r["label"], int))
        raise ValueError(
            f"labels mix class names and integers (image {first_name['file_name']!r} has "
            f"{first_name['label']!r}, image {first_int['file_name']!r} has "
            f"{first_int['label']!r}); give class_names to map the integers, or write every "
            "label as a name"
        )
    meta = os.path.join(root, "metadata.jsonl")
    key = f"{os.path.abspath(root)}|{verify}|{allow_outside_root}|{file_signature([meta])}|{len(rows)}|{rows[-1]['file_name']}"
    if not os.path.isfile(meta):
        key += "|" + "\n".join(r["file_name"] for r in rows)
    del rows
    return build_dataset(
        partial(_records, root, "mask", names, allow_outside_root),
        class_names=names,
        source="load_imagefolder",
        key=key,
        with_mask=with_mask,
        on_error=on_error,
        verify=verify,
        cache_dir=cache_dir,
    )
