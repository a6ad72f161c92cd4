"""The one image decoder: any stored image value -> pixels as image viewers show them.

Every consumer of images (the loaders' checks, :class:`~skcream.data.adapters.ImageSource`
and so every estimator, the transforms, ``skcream localize``, the report, the post-hoc
classifier, :mod:`skcream.viz`) reads pixels and sizes only through this module, so boxes,
masks, maps and sizes share one frame: the one a viewer shows.

- **Orientation.** A photo stored 64x32 with EXIF ``Orientation=6`` is shown (and drawn
  on, and annotated) as 32x64; :func:`decode_image` returns it that way and
  :func:`image_size` says ``(32, 64)`` from the file header alone. The tag is read before
  any pixel is decoded (JPEG APP1, WebP, a PNG ``eXIf`` chunk ahead of the pixel data; TIFF
  files PIL turns by itself; an unreadable EXIF block counts as no tag, as viewers ignore
  it), so the size and the pixels always agree. The decoded image no longer carries the tag, so decoding it
  again is a no-op. ``datasets.Image`` applies the same tag when it decodes a row
  (``ds[0]["image"]``), so both agree.
- **Values.** PIL images (any mode), ``(H, W[, 1|3|4])`` uint8 arrays (no orientation),
  file paths, raw bytes, and ``{"bytes", "path"}`` dicts (the ``datasets.Image`` storage).
- **Errors.** One ``ValueError`` (``TypeError`` for a value of the wrong type) whose message
  starts with the caller's ``name`` of the image and says what is wrong: missing, a folder
  or a FIFO where a file should be (:func:`skcream.data.files.file_problem`; a FIFO is never
  opened), corrupt or truncated, too large to decode safely, empty.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
from PIL import Image

from .files import display_path, file_problem
from .schema import array_to_pil, to_rgb

__all__ = ["ORIENTATION_TAG", "decode_image", "decode_mask", "image_size", "orientation",
           "shown_size", "upright"]

#: EXIF tag number of the orientation (0x0112).
ORIENTATION_TAG = 0x0112

# EXIF orientation -> the transposition that shows the stored pixels as intended
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_METADATA_KEYS = ("exif", "Raw profile type exif", "XML:com.adobe.xmp", "xmp")


def orientation(image: Image.Image) -> int:
    """The EXIF orientation (1-8) of an opened image, read without decoding its pixels.

    Parameters
    ----------
    image : PIL.Image.Image
        Opened (lazily) or in memory.

    Returns
    -------
    int
        1 (as stored) when there is no tag, an unknown value, or unreadable EXIF.
    """
    try:
        if hasattr(image, "tag_v2"):
            # TIFF: PIL turns these itself (the opened size is already the shown one, and
            # loading transposes the pixels and drops the tag): nothing left to do
            value = 1
        elif image.format == "PNG" and "exif" not in image.info:
            # PNG: only an eXIf chunk ahead of the pixels counts (PIL would decode the whole
            # image to look for a later one, and a size must come from the header alone)
            value = 1
        else:
            value = image.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # noqa: BLE001 - malformed EXIF of any kind: viewers ignore it
        value = 1
    return int(value) if value in _TRANSPOSE else 1


def shown_size(image: Image.Image) -> tuple[int, int]:
    """``(W, H)`` of ``image`` as shown: swapped for orientations 5-8 (header only)."""
    w, h = image.size
    return (h, w) if orientation(image) >= 5 else (w, h)


def upright(image: Image.Image) -> Image.Image:
    """``image`` decoded and turned as viewers show it, without an orientation tag.

    Parameters
    ----------
    image : PIL.Image.Image

    Returns
    -------
    PIL.Image.Image
        ``image`` itself (loaded) when it needs no turn; else a new image of size
        :func:`shown_size` whose EXIF/XMP metadata is dropped (so it is not turned twice).
    """
    o = orientation(image)
    image.load()
    if o == 1:
        return image
    out = image.transpose(_TRANSPOSE[o])
    for key in _METADATA_KEYS:
        out.info.pop(key, None)
    return out


@contextlib.contextmanager
def _reading(name: str) -> Iterator[None]:
    """Turn what PIL raises on a bad file into one ValueError starting with ``name``."""
    try:
        yield
    except Image.DecompressionBombError as err:
        raise ValueError(
            f"{name} is too large to decode safely ({err}); if you trust it, raise "
            "PIL.Image.MAX_IMAGE_PIXELS before loading"
        ) from None
    except (OSError, SyntaxError, EOFError, ValueError, IndexError, KeyError,
            ZeroDivisionError, MemoryError) as err:  # what PIL's plugins raise on junk
        if isinstance(err, ValueError) and getattr(err, "_skcream", False):
            raise
        raise ValueError(
            f"{name} is corrupt, truncated or not an image ({type(err).__name__}: {err})"
        ) from err


def _refusal(message: str) -> ValueError:
    err = ValueError(message)
    err._skcream = True  # type: ignore[attr-defined]  # passes through _reading unchanged
    return err


def _check_path(path: str | os.PathLike, name: str) -> None:
    problem = file_problem(path)
    if problem is not None:
        shown = display_path(path)
        where = "" if shown in name else f": {shown!r}"
        raise _refusal(f"{name} {problem}{where}")


@contextlib.contextmanager
def _opened(value: Any, name: str) -> Iterator[Image.Image]:
    """The value as a (lazily) opened PIL image; files are closed on exit."""
    if isinstance(value, Image.Image):
        yield value
        return
    if isinstance(value, dict) and ("bytes" in value or "path" in value):
        if value.get("bytes") is not None:
            value = value["bytes"]
        elif value.get("path") is not None:
            value = value["path"]
        else:
            raise _refusal(f"{name} has neither 'bytes' nor 'path'")
    if isinstance(value, (bytes, bytearray, memoryview)):
        with Image.open(io.BytesIO(bytes(value))) as img:
            yield img
        return
    if isinstance(value, (str, os.PathLike)):
        _check_path(value, name)
        with Image.open(value) as img:
            yield img
        return
    raise TypeError(
        f"{name}: images must be PIL images, uint8 arrays, file paths, bytes or "
        f"{{'path', 'bytes'}} dicts, got {type(value).__name__}"
    )


def _check_size(size: tuple[int, int], name: str) -> tuple[int, int]:
    if min(size) < 1:
        raise _refusal(f"{name} is empty ({size[0]}x{size[1]} pixels)")
    return int(size[0]), int(size[1])


def image_size(value: Any, name: str = "image") -> tuple[int, int]:
    """``(W, H)`` of a stored image as shown, from its header (no pixel decoded).

    Parameters
    ----------
    value : PIL image, uint8 ndarray, path, bytes or {"bytes", "path"} dict
    name : str
        How messages name the image (e.g. ``"image 'a/1.jpg' (index 3)"``).

    Returns
    -------
    (int, int)
        Equal to ``decode_image(value).size``.

    Raises
    ------
    ValueError, TypeError
        Starting with ``name`` (see the module docstring).
    """
    if isinstance(value, np.ndarray):
        return _check_size((value.shape[1], value.shape[0]) if value.ndim >= 2 else (0, 0), name)
    with _reading(name), _opened(value, name) as img:
        return _check_size(shown_size(img), name)


def decode_image(value: Any, name: str = "image") -> Image.Image:
    """A stored image as RGB pixels, as viewers show it (orientation applied).

    Parameters
    ----------
    value : PIL image (any mode), uint8 ndarray, path, bytes or {"bytes", "path"} dict
    name : str
        How messages name the image.

    Returns
    -------
    PIL.Image.Image
        Mode ``RGB``, size :func:`image_size` of ``value``.

    Raises
    ------
    ValueError, TypeError
        Starting with ``name`` (see the module docstring).
    """
    if isinstance(value, np.ndarray):
        try:
            return array_to_pil(value)
        except (TypeError, ValueError) as err:
            raise type(err)(f"{name}: {err}") from None
    with _reading(name), _opened(value, name) as img:
        _check_size(img.size, name)
        return to_rgb(upright(img))


def decode_mask(value: Any, name: str = "mask") -> np.ndarray:
    """A stored mask as an (H, W) array in the frame of its image (orientation applied).

    Parameters
    ----------
    value : PIL image, ndarray, path, bytes or {"bytes", "path"} dict
        Arrays are taken as they are; a 3-D array or a multi-band image gives its first
        channel; a palette image its indices.
    name : str

    Returns
    -------
    ndarray of shape (H, W)
        The stored values (not checked here: see :func:`skcream._masks.mask_codes`).
    """
    if isinstance(value, np.ndarray) or (isinstance(value, list)):
        arr = np.asarray(value)
    else:
        with _reading(name), _opened(value, name) as img:
            _check_size(img.size, name)
            arr = np.asarray(upright(img))
    if arr.ndim == 3:
        arr = arr[:, :, 0]
    return arr
