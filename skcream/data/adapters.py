"""One view over whatever images the user brings, and its torch Dataset.

:meth:`ImageSource.from_input` accepts

- a :class:`datasets.Dataset` with an image column (``datasets.Image`` feature, PIL images,
  arrays, paths or ``{"path", "bytes"}`` dicts) and optional label / bbox / mask columns
  (names configurable; ``y`` overrides the label column);
- a sequence of PIL images (any mode), ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or
  ``(H, W, 4)`` uint8 arrays, or file paths, with labels in ``y``; sizes and modes may differ.

Images are decoded one at a time, on request, through :mod:`skcream.data.decode` (the one
decoder): RGB, turned as viewers show them (EXIF orientation), and :meth:`ImageSource.size`
is that shown size; boxes are checked against it by
:func:`skcream.data.schema.check_boxes` (the one box checker) and masks by
:func:`skcream._masks.mask_codes`, so boxes, masks, maps and sizes share one frame.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from typing import Any

import datasets
import numpy as np
import torch
from PIL import Image

from skcream._digest import file_digest
from skcream._masks import mask_codes

from .decode import decode_image, decode_mask, image_size, orientation
from .schema import array_to_pil, check_boxes, check_labels

__all__ = ["ImageSource", "TorchImageDataset", "array_to_pil", "collate"]


def _hash_value(h: Any, value: Any) -> None:
    """Feed what an image value holds (never where it lives) to the hash ``h``."""
    if isinstance(value, Image.Image):
        # the orientation tag changes the image shown, so it is part of the content
        h.update(f"pil:{value.mode}:{value.size}:{orientation(value)}".encode())
        h.update(value.tobytes())
    elif isinstance(value, np.ndarray):
        h.update(f"arr:{value.dtype.str}:{value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, (str, os.PathLike)):
        h.update(f"file:{file_digest(value)}".encode())
    elif isinstance(value, dict) and ("bytes" in value or "path" in value):
        if value.get("bytes") is not None:
            h.update(b"bytes:")
            h.update(hashlib.blake2b(value["bytes"], digest_size=16).digest())
        elif value.get("path") is not None:
            h.update(f"file:{file_digest(value['path'])}".encode())
        else:
            h.update(b"none")
    elif value is None:
        h.update(b"none")
    elif isinstance(value, list | tuple):  # arrays stored as nested lists
        _hash_value(h, np.asarray(value))
    else:
        raise TypeError(f"cannot fingerprint a {type(value).__name__}")


#: sizes an ImageSource keeps (the recent ones: a box check and its scaling ask in turn)
_SIZE_MEMO = 4096


class ImageSource:
    """Random access to images, labels, boxes and masks, whatever the input.

    Build with :meth:`from_input`. Indices run over ``range(len(source))``.

    Attributes
    ----------
    class_names : list of str or None
        ``ClassLabel`` names of a Dataset's label column, or the sorted unique values of a
        non-integer ``y`` (which is then encoded to their indices); None otherwise.
    """

    def __init__(
        self,
        images: Sequence | datasets.Dataset,
        labels: np.ndarray | None,
        *,
        class_names: list[str] | None = None,
        dataset: datasets.Dataset | None = None,
        image_column: str = "image",
        bbox_column: str | None = None,
        mask_column: str | None = None,
        id_column: str | None = None,
    ):
        self._images = images
        self._labels = labels
        self.class_names = class_names
        self._dataset = dataset
        self._image_column = image_column
        self._bbox_column = bbox_column
        self._mask_column = mask_column
        self._id_column = id_column
        self._raw: datasets.Dataset | None = None
        self._sizes: dict[int, tuple[int, int]] = {}

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_input(
        cls,
        X: Any,
        y: Any = None,
        *,
        image_column: str = "image",
        label_column: str = "label",
        bbox_column: str = "bboxes",
        mask_column: str = "mask",
        id_column: str = "image_id",
    ) -> ImageSource:
        """Wrap a Dataset or a sequence of images (+ labels).

        Parameters
        ----------
        X : datasets.Dataset, ImageSource, or sequence of PIL images / uint8 arrays / paths
            A single 4-D uint8 array (N, H, W, C) is taken as N images.
        y : array-like of shape (N,), optional
            Labels, one per image, all class names (str, ``np.str_``) or all integers (any
            integer type; floats with integral values too), checked by
            :func:`~skcream.data.schema.check_labels` (a missing label, a mix of names and
            integers or another count is an error naming the index). Integers are kept as
            they are (they must be >= 0); names are encoded to the index of their sorted
            unique value (``class_names``). Overrides the Dataset's label column.
        image_column, label_column, bbox_column, mask_column, id_column : str
            Column names in a Dataset; missing label/bbox/mask/id columns are simply absent.

        Returns
        -------
        ImageSource
        """
        if isinstance(X, ImageSource):
            if y is None:
                return X
            labels, names = _encode_y(y, len(X))
            return cls(X._images, labels, class_names=names, dataset=X._dataset,
                       image_column=X._image_column, bbox_column=X._bbox_column,
                       mask_column=X._mask_column, id_column=X._id_column)
        if isinstance(X, datasets.DatasetDict):
            raise TypeError(
                f"X is a DatasetDict with splits {list(X)}; pass one split, e.g. X['train']"
            )
        if isinstance(X, datasets.Dataset):
            return cls._from_dataset(X, y, image_column, label_column, bbox_column,
                                     mask_column, id_column)
        if isinstance(X, (str, os.PathLike)):
            raise TypeError(
                "X is a single path; pass a sequence of image paths, or load a folder with "
                "skcream.data.load_imagefolder(root)"
            )
        if isinstance(X, np.ndarray):
            if X.ndim != 4 and X.dtype != object:
                raise ValueError(
                    f"an ndarray X must be a batch of images of shape (N, H, W, C), got {X.shape}"
                )
            X = list(X)
        if not isinstance(X, Sequence):
            raise TypeError(
                "X must be a datasets.Dataset or a sequence of PIL images, uint8 arrays or "
                f"file paths, got {type(X).__name__}"
            )
        if len(X) == 0:
            raise ValueError("X is empty: at least one image is needed")
        for i, item in enumerate(X):
            if not isinstance(item, (Image.Image, np.ndarray, str, os.PathLike)):
                raise TypeError(
                    f"X[{i}] must be a PIL image, a uint8 ndarray or a file path, "
                    f"got {type(item).__name__}"
                )
            if isinstance(item, np.ndarray) and item.dtype != np.uint8:
                raise TypeError(f"X[{i}] must be a uint8 array, got dtype {item.dtype}")
            shape = item.shape[:2] if isinstance(item, np.ndarray) else (
                item.size if isinstance(item, Image.Image) else (1, 1))
            if len(shape) == 2 and min(shape) < 1:  # found now, not after an epoch
                raise ValueError(f"X[{i}] is an empty image (size {tuple(shape)}); every "
                                 "image needs at least one pixel")
        labels, names = (None, None) if y is None else _encode_y(y, len(X))
        return cls(list(X), labels, class_names=names)

    @classmethod
    def _from_dataset(cls, ds, y, image_column, label_column, bbox_column, mask_column, id_column):
        if image_column not in ds.column_names:
            raise ValueError(
                f"image_column={image_column!r} is not a column of the Dataset; columns are "
                f"{ds.column_names}"
            )
        if len(ds) == 0:
            raise ValueError("the Dataset is empty: at least one image is needed")
        names = None
        if y is not None:
            labels, names = _encode_y(y, len(ds))
        elif label_column in ds.column_names:
            feature = ds.features[label_column]
            # the Arrow column in one step (row by row costs ~50 us a row); an Arrow column
            # holds one type, and nulls come out as None / NaN, which check_labels names
            raw = ds.with_format("arrow")[label_column].to_numpy(zero_copy_only=False)
            if isinstance(feature, datasets.ClassLabel):
                names = list(feature.names)
            labels, enc_names = _encode_y(raw, len(ds), argument=f"column {label_column!r}")
            names = names if names is not None else enc_names
        else:
            labels = None
        return cls(
            ds, labels, class_names=names, dataset=ds, image_column=image_column,
            bbox_column=bbox_column if bbox_column in ds.column_names else None,
            mask_column=mask_column if mask_column in ds.column_names else None,
            id_column=id_column if id_column in ds.column_names else None,
        )

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self._images)

    def _check_index(self, i: int) -> int:
        n = len(self)
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"index must be an int, got {type(i).__name__}")
        if not -n <= i < n:
            raise IndexError(f"index {i} is out of range for {n} images")
        return int(i) % n

    def _raw_dataset(self) -> datasets.Dataset:
        """The Dataset with images and masks left undecoded (``{"bytes", "path"}``)."""
        if self._raw is None:
            ds = self._dataset.with_format(None)
            for col in (self._image_column, self._mask_column):
                if col is not None and isinstance(ds.features[col], datasets.Image):
                    ds = ds.cast_column(col, datasets.Image(decode=False))
            self._raw = ds
        return self._raw

    def _row(self, i: int) -> dict:
        """Row ``i`` of the Dataset with images and masks left undecoded."""
        return self._raw_dataset()[i]

    def image_id(self, i: int) -> str:
        """Stable id of image ``i``: the id column, the file path, or ``str(i)``."""
        i = self._check_index(i)
        if self._dataset is not None:
            if self._id_column is not None:
                return str(self._row(i)[self._id_column])
            return str(i)
        item = self._images[i]
        return os.fspath(item) if isinstance(item, (str, os.PathLike)) else str(i)

    def _raw_image(self, i: int) -> Any:
        if self._dataset is None:
            return self._images[i]
        value = self._row(i)[self._image_column]
        if value is None:
            raise ValueError(f"image {self.image_id(i)!r} (index {i}) is missing (None)")
        if isinstance(value, (dict, str, Image.Image, np.ndarray)):
            return value  # {"bytes", "path"} dicts are decoded by decode_image: errors name the id
        return np.asarray(value, dtype=np.uint8)  # arrays stored as nested lists

    def _name(self, i: int) -> str:
        """How messages name image ``i``: its id and index."""
        return f"image {self.image_id(i)!r} (index {i})"

    def image(self, i: int) -> Image.Image:
        """Decode image ``i`` as RGB, as viewers show it (EXIF orientation applied).

        Corrupt or missing files, folders or FIFOs where a file should be, raise ValueError
        naming the id and index.
        """
        i = self._check_index(i)
        return decode_image(self._raw_image(i), self._name(i))

    def size(self, i: int) -> tuple[int, int]:
        """``(W, H)`` of image ``i`` as shown (file headers only, where possible): the size
        of :meth:`image`, the frame of :meth:`boxes`, :meth:`mask` and every prediction."""
        i = self._check_index(i)
        size = self._sizes.get(i)
        if size is None:  # boxes, masks and scaling ask in turn: read the header once
            if len(self._sizes) >= _SIZE_MEMO:  # bounded: a million images, a few kB
                self._sizes.clear()
            size = self._sizes[i] = image_size(self._raw_image(i), self._name(i))
        return size

    def label(self, i: int) -> int:
        """Integer label of image ``i``; -1 when the source has no labels."""
        i = self._check_index(i)
        return -1 if self._labels is None else int(self._labels[i])

    @property
    def labels(self) -> np.ndarray | None:
        """All labels, shape (N,) int64, or None."""
        return None if self._labels is None else self._labels.copy()

    @property
    def has_boxes(self) -> bool:
        return self._bbox_column is not None

    @property
    def has_masks(self) -> bool:
        return self._mask_column is not None

    def boxes(self, i: int) -> np.ndarray | None:
        """Ground-truth boxes of image ``i``, shape (k, 4) float64 x0,y0,x1,y1, or None.

        Checked by :func:`skcream.data.schema.check_boxes` against :meth:`size`: a box of
        the wrong shape, not finite, with ``x1 < x0``, or outside the image raises
        ValueError naming the image id, its index and the box as given.
        """
        i = self._check_index(i)
        if self._bbox_column is None:
            return None
        value = self._row(i)[self._bbox_column]
        if value is None:
            return np.zeros((0, 4), dtype=np.float64)
        checked = check_boxes(value, None, self.image_id(i), index=i)
        if len(checked) == 0:
            return checked
        return check_boxes(checked, self.size(i), self.image_id(i), index=i)

    def mask(self, i: int) -> np.ndarray | None:
        """Mask of image ``i``, shape (H, W) uint8 (0 bg, 1 fg, 255 ignore), or None.

        Decoded in the frame of the image (orientation applied). Other values, or a shape
        whose aspect ratio differs from the image's, raise ValueError naming the image.
        """
        i = self._check_index(i)
        if self._mask_column is None:
            return None
        value = self._row(i)[self._mask_column]
        if value is None:
            return None
        name = f"mask of {self._name(i)}"
        arr = mask_codes(decode_mask(value, name), name)
        # The protocol resizes mask and image to 224 x 224 independently (wsolevaluation), so a
        # mask at another resolution of the same picture is fine; a different aspect ratio
        # (a 10x10 mask for an 80x60 image) cannot be the same picture and is refused.
        w, h = self.size(i)
        mh, mw = arr.shape[:2]
        if min(mh, mw) < 1 or abs(mw * h / w - mh) > 1.0:
            raise ValueError(
                f"{name} is {mw}x{mh} (W x H) but the image is {w}x{h}; a mask must have the "
                "image's size (or its aspect ratio)"
            )
        return arr

    def select(self, indices: Sequence[int]) -> ImageSource:
        """A new source over ``indices`` (in that order)."""
        idx = [self._check_index(int(i)) for i in indices]
        labels = None if self._labels is None else self._labels[idx]
        if self._dataset is not None:
            sub = self._dataset.select(idx)
            return ImageSource(
                sub, labels, class_names=self.class_names, dataset=sub,
                image_column=self._image_column, bbox_column=self._bbox_column,
                mask_column=self._mask_column, id_column=self._id_column,
            )
        return ImageSource([self._images[i] for i in idx], labels, class_names=self.class_names)

    def fingerprint(self) -> str:
        """Stable hex hash of what determines a network trained or run on the data.

        The content of every image (its file's bytes, stored bytes, or the pixels of a PIL
        image / array; never its path or name, so an image overwritten in place gets a new
        fingerprint and a copy elsewhere the same one), the labels and the class names.
        Equal data gives equal fingerprints across processes and machines. Image files are
        read through :func:`skcream._digest.file_digest` (memoised while unchanged).
        """
        h = hashlib.blake2b(digest_size=16)
        h.update(f"n:{len(self)}".encode())
        if self._dataset is not None:
            raw = self._raw_dataset().select_columns([self._image_column])
            for batch in raw.iter(batch_size=256):
                for value in batch[self._image_column]:
                    _hash_value(h, value)
        else:
            for item in self._images:
                _hash_value(h, item)
        if self._labels is not None:
            h.update(b"labels")
            h.update(np.ascontiguousarray(self._labels, dtype=np.int64).tobytes())
        h.update(repr(self.class_names).encode())
        return h.hexdigest()

    def __repr__(self) -> str:
        kind = "Dataset" if self._dataset is not None else "sequence"
        return (f"ImageSource({kind}, n={len(self)}, labels={self._labels is not None}, "
                f"boxes={self.has_boxes}, masks={self.has_masks})")


def _encode_y(y: Any, n: int, argument: str = "y") -> tuple[np.ndarray, list[str] | None]:
    """Labels (checked by :func:`~skcream.data.schema.check_labels`) as codes (n,) int64 and,
    for names, the sorted distinct names the codes index."""
    arr = check_labels(y, argument)
    if len(arr) != n:
        raise ValueError(f"{argument} has {len(arr)} labels but there are {n} images; give "
                         "one label per image")
    if arr.dtype.kind == "i":
        if arr.size and arr.min() < 0:
            bad = int(np.argmin(arr))
            raise ValueError(f"{argument} must hold non-negative integer labels; index {bad} "
                             f"is {arr[bad]}")
        return arr, None
    names, codes = np.unique(arr, return_inverse=True)
    return codes.astype(np.int64), [str(s) for s in names]


def collate(batch: list[dict]) -> dict:
    """Collate :class:`TorchImageDataset` items; ``boxes`` become a list of (k_i, 4) tensors.

    Returns
    -------
    dict
        ``image`` (B, 3, S, S) float32, ``label`` (B,) int64, ``index`` (B,) int64,
        ``size`` (B, 2) int64 original (W, H), and ``boxes`` list of B tensors (k_i, 4) float32
        when present.
    """
    if not batch:
        raise ValueError("batch is empty")
    out = {
        "image": torch.stack([b["image"] for b in batch]),
        "label": torch.tensor([b["label"] for b in batch], dtype=torch.int64),
        "index": torch.tensor([b["index"] for b in batch], dtype=torch.int64),
        "size": torch.tensor([b["size"] for b in batch], dtype=torch.int64),
    }
    if "boxes" in batch[0]:
        out["boxes"] = [b["boxes"] for b in batch]
    return out


class TorchImageDataset(torch.utils.data.Dataset):
    """A map-style torch Dataset over an :class:`ImageSource`.

    Parameters
    ----------
    source : ImageSource (or anything :meth:`ImageSource.from_input` accepts)
    transform : callable, optional
        A box-aware transform (``box_aware = True``, called as ``transform(image, boxes)``)
        such as :class:`~skcream.data.transforms.EvalTransform` (the default, 224) or any
        ``image -> tensor (3, S, S)`` callable (e.g. a torchvision pipeline; no boxes then).
    with_boxes : bool, optional
        Pass ground-truth boxes through the transform and return them. Default: when the
        source has boxes and the transform is box-aware.

    Items
    -----
    ``{"image": (3, S, S) float32, "label": int (-1 if unlabeled), "index": int,
    "size": (W, H)}`` plus ``"boxes": (k, 4) float32`` tensor with boxes. Use
    :func:`collate` as the DataLoader's ``collate_fn``.
    """

    def __init__(self, source: Any, transform: Callable | None = None, *, with_boxes: bool | None = None):
        from .transforms import EvalTransform

        self.source = source if isinstance(source, ImageSource) else ImageSource.from_input(source)
        self.transform = EvalTransform() if transform is None else transform
        if not callable(self.transform):
            raise TypeError(f"transform must be callable, got {type(transform).__name__}")
        box_aware = bool(getattr(self.transform, "box_aware", False))
        if with_boxes is None:
            with_boxes = box_aware and self.source.has_boxes
        if with_boxes and not box_aware:
            raise ValueError(
                "with_boxes=True needs a box-aware transform (TrainTransform/EvalTransform or "
                "any callable with box_aware = True taking (image, boxes))"
            )
        if with_boxes and not self.source.has_boxes:
            raise ValueError("with_boxes=True but the source has no bounding-box column")
        self.with_boxes = bool(with_boxes)
        self._box_aware = box_aware

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict:
        img = self.source.image(index)
        item: dict[str, Any] = {"label": self.source.label(index), "index": int(index),
                                "size": img.size}
        if self._box_aware:
            boxes = self.source.boxes(index) if self.with_boxes else None
            x, boxes = self.transform(img, boxes)
            if self.with_boxes:
                item["boxes"] = torch.as_tensor(np.asarray(boxes, dtype=np.float32).reshape(-1, 4))
        else:
            x = self.transform(img)
        if not isinstance(x, torch.Tensor) or x.ndim != 3:
            raise TypeError(
                f"transform must return a (3, S, S) tensor, got "
                f"{getattr(x, 'shape', type(x).__name__)}"
            )
        item["image"] = x
        return item
