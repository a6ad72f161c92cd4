"""The one dataset schema of skcream, image-mode conversion and input checks.

Every loader of :mod:`skcream.data` returns a :class:`datasets.Dataset` with the columns

========== ============================================ =========================================
column     feature                                      meaning
========== ============================================ =========================================
image      ``datasets.Image()`` (decoded lazily)        the picture, any mode (RGB on use)
label      ``ClassLabel(names=...)``                    the image-level class
bboxes     ``Sequence(Sequence(float32, length=4))``    x0, y0, x1, y1 in original pixels
mask       ``datasets.Image()`` (optional)              0 background, 1 foreground, 255 ignore
image_id   ``string``                                   stable id (relative path)
========== ============================================ =========================================
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

import datasets
import numpy as np
from PIL import Image

from skcream._masks import IGNORE

__all__ = [
    "IGNORE",
    "SkippedImagesWarning",
    "array_to_pil",
    "check_boxes",
    "check_labels",
    "encode_label",
    "label_value",
    "report_skipped",
    "to_rgb",
    "wsol_features",
]



def wsol_features(class_names: Sequence[str], *, with_mask: bool = False) -> datasets.Features:
    """The :class:`datasets.Features` of the skcream schema.

    Parameters
    ----------
    class_names : sequence of str
        Names of the classes, index = label.
    with_mask : bool, default=False
        Add the ``mask`` column (``datasets.Image()``; 0 bg, 1 fg, 255 ignore).

    Returns
    -------
    datasets.Features
    """
    names = [str(n) for n in class_names]
    if len(names) == 0:
        raise ValueError("class_names must name at least one class, got an empty sequence")
    if len(set(names)) != len(names):
        raise ValueError("class_names must be unique")
    columns = {
        "image": datasets.Image(),
        "label": datasets.ClassLabel(names=names),
        "bboxes": datasets.Sequence(datasets.Sequence(datasets.Value("float32"), length=4)),
    }
    if with_mask:
        columns["mask"] = datasets.Image()
    columns["image_id"] = datasets.Value("string")
    return datasets.Features(columns)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert a PIL image of any mode to RGB.

    Grayscale (``L``, ``1``) is replicated over the three channels, alpha (``RGBA``, ``LA``,
    palette with transparency) is dropped, ``CMYK`` and ``YCbCr`` are converted by PIL, 16-bit
    (``I;16*``) and 32-bit (``I``) integers are scaled to 8 bits by their range, float (``F``)
    images are taken as [0, 1] when their maximum is <= 1 and clipped to [0, 255] otherwise.

    Parameters
    ----------
    image : PIL.Image.Image
        Any mode.

    Returns
    -------
    PIL.Image.Image
        Mode ``RGB``, same size.
    """
    if not isinstance(image, Image.Image):
        raise TypeError(f"image must be a PIL.Image.Image, got {type(image).__name__}")
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I;16"):
        arr = np.asarray(image).astype(np.float64) / 257.0
        return Image.fromarray(np.round(arr).astype(np.uint8), mode="L").convert("RGB")
    if mode == "I":
        arr = np.asarray(image).astype(np.float64)
        arr = arr / 257.0 if arr.max(initial=0) > 255 else arr
        return Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8)).convert("RGB")
    if mode == "F":
        arr = np.asarray(image).astype(np.float64)
        arr = np.nan_to_num(arr)
        if arr.max(initial=0) <= 1.0:
            arr = arr * 255.0
        return Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8)).convert("RGB")
    if mode == "P":
        # palette images with transparency go through RGBA (PIL warns otherwise)
        image = image.convert("RGBA")
    return image.convert("RGB")


def array_to_pil(array: np.ndarray, index: int | None = None) -> Image.Image:
    """uint8 array (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) -> RGB PIL image (alpha dropped)."""
    where = "" if index is None else f" at index {index}"
    if array.dtype != np.uint8:
        raise TypeError(f"image arrays must be uint8, got dtype {array.dtype}{where}")
    if array.ndim in (2, 3) and min(array.shape[:2]) < 1:
        raise ValueError(f"image arrays must not be empty, got shape {array.shape}{where}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        return Image.fromarray(np.ascontiguousarray(array), mode="L").convert("RGB")
    if array.ndim == 3 and array.shape[2] in (3, 4):
        return Image.fromarray(np.ascontiguousarray(array[:, :, :3]), mode="RGB")
    raise ValueError(
        f"image arrays must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), "
        f"got {array.shape}{where}"
    )


def _numbers(values: np.ndarray) -> str:
    """``[100, 100, 500.5, 500]``: a box as the user wrote it (no float noise)."""
    return "[" + ", ".join(f"{v:g}" for v in values.tolist()) + "]"


def check_boxes(boxes: object, size: tuple[int, int] | None, image_id: str | None, *,
                index: int | None = None, where: str | None = None) -> np.ndarray:
    """Validate the ground-truth boxes of one image: the one box checker of skcream.

    Every path that reads ground-truth boxes goes through it: the loaders,
    :meth:`skcream.data.adapters.ImageSource.boxes` (and so every estimator's ``evaluate``,
    ``score``, ``report`` and validation data) and
    :func:`skcream.data.detection.from_detection`, always against the image's size as
    viewers show it (:func:`skcream.data.decode.image_size`, EXIF orientation applied).
    Errors name the image, its dataset index and the box as given, in the image's own pixels
    (never scaled to the protocol's 224, never a position in a batch).

    Parameters
    ----------
    boxes : array-like of shape (k, 4) or (4,)
        x0, y0, x1, y1 in original pixel coordinates; k may be 0.
    size : (W, H) or None
        Image size as shown; when given, boxes must lie inside ``[0, W] x [0, H]``.
    image_id : str
        Named in the error message.
    index : int, optional
        The image's index in its dataset, named in the error message.
    where : str, optional
        Names the image instead (``"row 3"``); default ``"image <id> (index <index>)"``.

    Returns
    -------
    ndarray of shape (k, 4), float64

    Raises
    ------
    ValueError
        Not numbers (also integers too large for a float), wrong shape, non-finite values,
        ``x1 < x0`` or ``y1 < y0``, negative coordinates or coordinates beyond the image
        size; the message names ``image_id``, ``index`` and the box.
    """
    if where is None:
        where = f"image {image_id!r}" + ("" if index is None else f" (index {index})")
    try:
        arr = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(
            f"bboxes of {where} must be numbers of shape (k, 4) as x0,y0,x1,y1, "
            f"got {str(boxes)[:80]}"
        ) from None
    if arr.size == 0:
        return np.zeros((0, 4), dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 4:
        got = f"{arr.shape[1]} numbers per box" if arr.ndim == 2 else f"shape {arr.shape}"
        raise ValueError(
            f"bboxes of {where} must have shape (k, 4), four numbers x0,y0,x1,y1 per box; "
            f"got {got}: {str(boxes)[:80]}"
        )
    for j, row in enumerate(arr):
        x0, y0, x1, y1 = row
        if not np.all(np.isfinite(row)):
            raise ValueError(f"box {j} of {where} is not finite: {_numbers(row)}")
        if x1 < x0 or y1 < y0:
            raise ValueError(
                f"box {j} of {where} has x1 < x0 or y1 < y0: {_numbers(row)} "
                "(expected x0,y0,x1,y1)"
            )
        if min(x0, y0) < 0:
            raise ValueError(f"box {j} of {where} has a negative coordinate: {_numbers(row)}")
        if size is not None and (x1 > size[0] or y1 > size[1]):
            raise ValueError(
                f"box {j} of {where} lies outside the image of size "
                f"(W={size[0]}, H={size[1]}): {_numbers(row)}"
            )
    return arr


def encode_label(label: object, n_classes: int, image_id: str) -> int:
    """Check that ``label`` is an integer index of a ``ClassLabel`` with ``n_classes`` names.

    Raises
    ------
    ValueError
        When the label is not an integer in ``[0, n_classes)``; the message names ``image_id``.
    """
    try:
        value = int(str(label).strip())
    except ValueError:
        raise ValueError(
            f"label of image {image_id!r} must be an integer class index, got {label!r}"
        ) from None
    if not 0 <= value < n_classes:
        raise ValueError(
            f"label {value} of image {image_id!r} is outside the ClassLabel range "
            f"[0, {n_classes})"
        )
    return value


_LABEL_KINDS = "a class name (str) or an integer class label"


def label_value(value: Any, where: str) -> int | str:
    """One label as a Python ``str`` (a class name) or ``int`` (an integer label).

    Strings (``str``, ``np.str_``) are names; integers (any ``numbers.Integral``, and floats
    with an integral value such as ``1.0``, which is how pandas and JSON may carry them) are
    integer labels. Nothing else is a label.

    Parameters
    ----------
    value : object
    where : str
        How to name the label in an error, e.g. ``"y at index 3"`` or ``"label of image
        'a/0.png'"``.

    Raises
    ------
    ValueError
        A missing label (None, NaN) or a non-integral number, named by ``where``.
    TypeError
        Anything else (a bool, bytes, a list, ...).
    """
    if isinstance(value, str):
        return str(value)
    if value is None or (isinstance(value, Real) and not isinstance(value, Integral)
                         and math.isnan(float(value))):
        raise ValueError(f"{where} is missing ({value!r}); every image needs a label")
    if isinstance(value, bool | np.bool_):
        raise TypeError(f"{where} must be {_LABEL_KINDS}, got the bool {value!r}")
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        if float(value).is_integer():
            return int(value)
        raise ValueError(f"{where} must be {_LABEL_KINDS}, got the non-integral number "
                         f"{value!r}")
    raise TypeError(f"{where} must be {_LABEL_KINDS}, got {type(value).__name__} {value!r}")


def check_labels(values: Any, argument: str, ids: Sequence[str] | None = None) -> np.ndarray:
    """Labels of one kind: all class names or all integer labels.

    The one check of user labels (``y``, ``labels=``, a label column, metadata labels):
    every value goes through :func:`label_value`, and names and integers are never mixed
    (``["a", 1]`` is refused rather than read as the names ``"a"`` and ``"1"``).

    Parameters
    ----------
    values : array-like (n,)
        A list, tuple, numpy array, pandas Series, ...
    argument : str
        How to name the labels in an error (``"y"``, ``"labels"``, ``"column 'label'"``).
    ids : sequence of str, optional
        Image ids: errors then name the image instead of the index.

    Returns
    -------
    ndarray (n,)
        int64 (integer labels) or str (names).

    Raises
    ------
    ValueError, TypeError
        Not 1-D; a missing, non-integral or non-label value; names mixed with integers.
    """
    if isinstance(values, np.ndarray) and values.dtype.kind in "iuU":
        arr = values
    elif isinstance(values, np.ndarray) and values.dtype.kind == "f" and values.ndim == 1 \
            and np.isfinite(values).all() and (values == np.round(values)).all():
        arr = values.astype(np.int64)
    else:
        if isinstance(values, str | bytes) or not hasattr(values, "__len__"):
            raise TypeError(f"{argument} must be a 1-D sequence of labels (one per image), "
                            f"got {type(values).__name__}")
        items = values.tolist() if isinstance(values, np.ndarray) else list(values)
        if any(isinstance(v, list | tuple | np.ndarray) for v in items[:1]):
            raise ValueError(f"{argument} must be 1-D with one label per image, got shape "
                             f"{np.shape(values)}")

        def where(i: int) -> str:
            return (f"{argument} at index {i}" if ids is None
                    else f"{argument} of image {ids[i]!r}")

        parsed = [label_value(v, where(i)) for i, v in enumerate(items)]
        names = [i for i, v in enumerate(parsed) if isinstance(v, str)]
        if names and len(names) != len(parsed):
            j = next(i for i, v in enumerate(parsed) if not isinstance(v, str))
            raise ValueError(
                f"{argument} mix class names (str) and integer labels: {where(names[0])} is "
                f"{parsed[names[0]]!r}, {where(j)} is {parsed[j]!r}; give every label as a "
                "name, or every label as an integer"
            )
        arr = np.asarray(parsed, dtype=str if names else np.int64)
        if not parsed:
            arr = np.zeros(0, dtype=np.int64)
    if arr.ndim != 1:
        raise ValueError(f"{argument} must be 1-D with one label per image, got shape "
                         f"{arr.shape}")
    return arr.astype(np.int64) if arr.dtype.kind in "iu" else arr


class SkippedImagesWarning(UserWarning):
    """Emitted when a loader skipped bad samples because the caller asked for it.

    Attributes
    ----------
    skipped : list of (image_id, reason)
        Every skipped sample, in metadata order.
    """

    def __init__(self, message: str, skipped: list[tuple[str, str]]):
        super().__init__(message)
        self.skipped = skipped


def report_skipped(skipped: list[tuple[str, str]], source: str) -> None:
    """Warn with the count and ids of skipped samples (nothing when the list is empty)."""
    if not skipped:
        return
    shown = "; ".join(f"{i}: {r}" for i, r in skipped[:5])
    more = f" (and {len(skipped) - 5} more)" if len(skipped) > 5 else ""
    warnings.warn(
        SkippedImagesWarning(
            f"{source}: skipped {len(skipped)} sample(s) on request (on_error='skip'): "
            f"{shown}{more}",
            list(skipped),
        ),
        stacklevel=4,
    )
