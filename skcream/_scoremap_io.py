"""Score maps and ground truth as the reference evaluator reads them, one image at a time.

The reference (``evaluation.py`` of ``wsolevaluation``) reads ``<scoremap_root>/<image_id>.npy``
for every id of ``<metadata_root>/<dataset>/<split>/image_ids.txt``, scales the boxes of
``localization.txt`` from the sizes of ``image_sizes.txt`` to 224x224 (``int(x * 224 / W)``)
and, for OpenImages, combines ``<mask_root>/OpenImages/<mask path>`` files resized to 224x224.
Here the same, as sources that :func:`skcream.metrics.evaluate_scoremaps` reads image by
image (nothing is held for the whole set but the boxes):

* maps: :class:`FolderMaps` (``<root>/<image_id>.npy``, or ``.png`` 8/16-bit grey heat maps),
  :class:`NpzMaps` (one ``.npz`` bundle keyed by image id), :class:`ArrayMaps` (an array or
  sequence of maps in the order of the ground truth, or any iterable of them, read once);
* ground truth: :class:`MetadataTruth` (the reference's metadata files) or
  :class:`DatasetTruth` (a ``datasets.Dataset`` of the skcream schema).

Every map file and mask file is looked for before any map is read, and all missing ones are
reported in one error.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from skcream.scoremaps import PROTOCOL_SHAPE, check_box_array, to_protocol_frame

__all__ = ["ArrayMaps", "DatasetTruth", "FolderMaps", "MetadataTruth", "NpzMaps",
           "missing_error", "open_maps", "read_map_file"]

#: map file extensions of :class:`FolderMaps`, in the order they are looked for
MAP_EXTENSIONS = (".npy", ".png")
#: how many missing ids an error message lists before "... and N more"
_LIST_MAX = 20


def missing_error(what: str, missing: Sequence[str], total: int, where: str) -> FileNotFoundError:
    """One error listing every missing item (the first :data:`_LIST_MAX` by name)."""
    shown = ", ".join(repr(m) for m in missing[:_LIST_MAX])
    more = f" ... and {len(missing) - _LIST_MAX} more" if len(missing) > _LIST_MAX else ""
    return FileNotFoundError(f"{len(missing)} of {total} images have no {what} in {where}: "
                             f"{shown}{more}")


def read_map_file(path: str, image_id: str) -> np.ndarray:
    """The map stored in ``path``: a ``.npy`` array as saved, a PNG as float64 in [0, 1].

    A grey PNG holding ``v`` is the map ``v / 255`` (8-bit) or ``v / 65535`` (16-bit), in
    float64 (what ``np.save`` of that map and the reference would read). Colour PNGs (a
    colour-mapped heat map cannot be inverted) and unreadable files raise ValueError naming
    the image id and the file.
    """
    if path.endswith(".png"):
        import cv2

        arr = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if arr is None:
            raise ValueError(f"score map of image {image_id!r}: {path!r} is not a readable PNG")
        if arr.ndim != 2 or arr.dtype not in (np.uint8, np.uint16):
            raise ValueError(
                f"score map of image {image_id!r}: {path!r} is a {arr.dtype} PNG with shape "
                f"{arr.shape}; PNG heat maps must be 8- or 16-bit greyscale (value / 255 or "
                "/ 65535 is the score)")
        return arr / (255.0 if arr.dtype == np.uint8 else 65535.0)
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"score map of image {image_id!r}: {path!r} is not a readable .npy "
                         f"array ({' '.join(str(exc).split())})") from None


class FolderMaps:
    """``<root>/<image_id>.npy`` (the reference's layout) or ``<root>/<image_id>.png``."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.paths: dict[str, str] = {}

    def locate(self, ids: Sequence[str]) -> None:
        """Find every id's file; one FileNotFoundError listing all ids without one."""
        missing, both = [], []
        for image_id in ids:
            found = [p for p in (os.path.join(self.root, image_id + ext) for ext in MAP_EXTENSIONS)
                     if os.path.isfile(p)]
            if not found:
                missing.append(image_id)
            elif len(found) > 1:
                both.append(image_id)
            else:
                self.paths[image_id] = found[0]
        if missing:
            raise missing_error("score map (<image_id>.npy or .png)", missing, len(ids),
                                f"--scoremap-root {self.root}")
        if both:
            raise ValueError(f"{len(both)} images have both a .npy and a .png map in "
                             f"{self.root}, e.g. {both[0]!r}: keep one")

    def item(self, i: int, image_id: str) -> str:
        return self.paths[image_id]


class NpzMaps:
    """One ``.npz`` bundle (``np.savez(path, **{image_id: map})``), read key by key."""

    def __init__(self, path: str) -> None:
        try:
            self._npz = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise ValueError(f"{path!r} is not a readable .npz bundle ({exc})") from None
        if not hasattr(self._npz, "files"):
            raise ValueError(f"{path!r} holds one array, not an .npz bundle keyed by image id")
        self.path = path
        self._lock = threading.Lock()

    def locate(self, ids: Sequence[str]) -> None:
        keys = set(self._npz.files)
        missing = [i for i in ids if i not in keys]
        if missing:
            raise missing_error("score map (a key of the .npz bundle)", missing, len(ids),
                                self.path)

    def item(self, i: int, image_id: str) -> np.ndarray:
        with self._lock:  # one zip file handle
            try:
                return self._npz[image_id]
            except (ValueError, OSError, EOFError) as exc:
                raise ValueError(f"score map of image {image_id!r} in {self.path!r} is not a "
                                 f"readable array ({exc})") from None


class ArrayMaps:
    """Maps in the order of the ground truth: an (n, H, W) array (a memmap too), a sequence
    of 2-D maps, or any iterable of them (read once, in order)."""

    def __init__(self, maps: Any) -> None:
        if isinstance(maps, np.ndarray) and maps.ndim != 3:
            raise ValueError(f"scoremaps must be an (n, H, W) array, a sequence of 2-D maps, "
                             f"a folder or an .npz file; got an array of shape {maps.shape}")
        self._maps = maps
        self._iter: Iterator[Any] | None = None
        self._next = 0
        if not hasattr(maps, "__getitem__") or not hasattr(maps, "__len__"):
            if not hasattr(maps, "__iter__"):
                raise TypeError("scoremaps must be a folder, an .npz file, an array or a "
                                f"sequence of 2-D maps, got {type(maps).__name__}")
            self._iter = iter(maps)

    def locate(self, ids: Sequence[str]) -> None:
        if self._iter is None and len(self._maps) != len(ids):
            raise ValueError(f"scoremaps has {len(self._maps)} maps but the ground truth has "
                             f"{len(ids)} images")

    def item(self, i: int, image_id: str) -> Any:
        if self._iter is None:
            return self._maps[i]
        if i != self._next:
            raise RuntimeError("an iterable of maps is read once, in order")  # pragma: no cover
        self._next += 1
        try:
            return next(self._iter)
        except StopIteration:
            raise ValueError(f"scoremaps ran out after {i} maps; the ground truth has more "
                             "images") from None

    def finish(self, n: int) -> None:
        """After ``n`` maps: an iterable must be exhausted too."""
        if self._iter is not None and next(self._iter, None) is not None:
            raise ValueError(f"scoremaps has more maps than the {n} images of the ground truth")


def open_maps(scoremaps: Any) -> FolderMaps | NpzMaps | ArrayMaps:
    """The map source of ``scoremaps``: a folder, an ``.npz`` file, or maps in memory."""
    if isinstance(scoremaps, (str, os.PathLike)):
        path = os.fspath(scoremaps)
        if os.path.isdir(path):
            return FolderMaps(path)
        if os.path.isfile(path) and path.endswith(".npz"):
            return NpzMaps(path)
        raise FileNotFoundError(f"scoremaps {path!r} is neither a folder of <image_id>.npy "
                                "maps nor an .npz bundle")
    return ArrayMaps(scoremaps)


def _scaled_boxes(boxes: Any, size: tuple[int, int] | None, image_id: str) -> np.ndarray:
    """GT boxes from original pixels to 224x224 as the reference: ``int(x * 224 / W)``."""
    arr = check_box_array(np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
                          f"ground-truth boxes of image {image_id!r}")
    if size is None:
        raise ValueError(f"image {image_id!r} has no line in image_sizes.txt: the reference "
                         "scales its boxes to 224x224 from the original image size")
    if min(size) <= 0:
        raise ValueError(f"image {image_id!r} has size {size[0]}x{size[1]} in image_sizes.txt")
    return to_protocol_frame(arr, size, size=PROTOCOL_SHAPE[0], truncate=True)


class MetadataTruth:
    """The reference's metadata files: ids, boxes at 224 (CUB, ILSVRC) or masks (OpenImages).

    Parameters
    ----------
    metadata_root, dataset, split : the reference's ``--metadata_root`` layout
    ids_root : str
        Folder the image ids are paths in (the score map folder): ids climbing out of it are
        refused unless ``allow_outside_root``.
    mask_root : str or None
        OpenImages masks: ``<mask_root>/OpenImages/<mask path>`` as the reference, or
        ``<mask_root>/<mask path>`` when there is no ``OpenImages`` folder in it.
    """

    def __init__(self, metadata_root: str, dataset: str, split: str, *, ids_root: str,
                 mask_root: str | None, allow_outside_root: bool = False) -> None:
        from skcream.data.wsol import wsol_records

        self.dataset = dataset
        self.has_masks = dataset == "OpenImages"
        self.has_boxes = not self.has_masks
        if self.has_masks:
            if mask_root is None:
                raise ValueError("OpenImages needs mask_root (--mask-root): the folder holding "
                                 "OpenImages/<mask path> as for the reference")
            mask_root = os.fspath(mask_root)
            if not os.path.isdir(mask_root):
                raise FileNotFoundError(f"mask_root {mask_root!r} does not exist or is not a "
                                        "folder")
            nested = os.path.join(mask_root, "OpenImages")
            mask_root = nested if os.path.isdir(nested) else mask_root
        records = wsol_records(metadata_root, dataset, split, data_root=ids_root,
                               mask_root=mask_root, allow_outside_root=allow_outside_root)
        self.ids: list[str] = []
        self._boxes: list[np.ndarray] = []
        self._masks: list[tuple[list[str], str | None]] = []
        for rec in records:
            self.ids.append(rec.image_id)
            if self.has_boxes:
                if not rec.bboxes:
                    raise ValueError(f"image {rec.image_id!r} has no box in localization.txt; "
                                     "the reference needs at least one per image")
                self._boxes.append(_scaled_boxes(rec.bboxes, rec.size, rec.image_id))
            else:
                if not rec.mask_paths:
                    raise ValueError(f"image {rec.image_id!r} has no mask in localization.txt")
                self._masks.append((rec.mask_paths, rec.ignore_path))
        if not self.ids:
            raise ValueError(f"image_ids.txt of {dataset}/{split} lists no image")
        if self.has_masks:
            files = [(self.ids[i], p) for i, (m, g) in enumerate(self._masks)
                     for p in [*m, *([g] if g else [])]]
            missing = sorted({i for i, p in files if not os.path.isfile(p)})
            if missing:
                raise missing_error("mask file", missing, len(self.ids), f"--mask-root {mask_root}")

    def __len__(self) -> int:
        return len(self.ids)

    def boxes(self, i: int) -> np.ndarray | None:
        return self._boxes[i] if self.has_boxes else None

    def mask(self, i: int) -> np.ndarray | None:
        """(224, 224) uint8: 0 background, 1 foreground, 255 ignore (the reference's get_mask)."""
        if not self.has_masks:
            return None
        from skcream.data._build import combine_masks

        paths, ignore = self._masks[i]
        return combine_masks(paths, ignore, size=(PROTOCOL_SHAPE[1], PROTOCOL_SHAPE[0]))


class DatasetTruth:
    """A ``datasets.Dataset`` of the skcream schema (``bboxes`` in original pixels, ``image``
    for the sizes, ``mask``, ``image_id``): boxes scaled and masks resized as the protocol."""

    def __init__(self, data: Any) -> None:
        from skcream.data.adapters import ImageSource

        self._source = ImageSource.from_input(data)
        src = self._source
        self.has_boxes = src.has_boxes
        self.has_masks = src.has_masks
        if not (self.has_boxes or self.has_masks):
            raise ValueError("the ground-truth Dataset has neither a 'bboxes' nor a 'mask' column")
        self.ids = [src.image_id(i) for i in range(len(src))]
        self.dataset = None

    def __len__(self) -> int:
        return len(self.ids)

    def boxes(self, i: int) -> np.ndarray | None:
        if not self.has_boxes:
            return None
        b = self._source.boxes(i)
        if b is None or len(b) == 0:
            raise ValueError(f"image {self.ids[i]!r} (index {i}) has no ground-truth box")
        return _scaled_boxes(b, self._source.size(i), self.ids[i])

    def mask(self, i: int) -> np.ndarray | None:
        if not self.has_masks:
            return None
        from skcream.data.transforms import resize_mask

        m = self._source.mask(i)
        if m is None:
            raise ValueError(f"image {self.ids[i]!r} (index {i}) has no mask")
        return resize_mask(m, (PROTOCOL_SHAPE[1], PROTOCOL_SHAPE[0]))
