"""Shared machinery of the loaders: validate records, then stream them into an Arrow dataset.

A loader describes its data as an iterable of :class:`Record` (paths and metadata only, no
pixels). :func:`build_dataset` makes two passes over it:

1. validation: labels inside the ClassLabel (always raise), image files present, boxes inside
   the image with ``x1 >= x0`` and ``y1 >= y0`` (image size from the file header, which must
   agree with a size given by the metadata), no empty image, readable mask headers, ready-made
   masks (imagefolder) of the image's size holding only 0/1/255, optionally a full decode of
   every image and mask (``verify=True``).
   With ``on_error="raise"`` (default) the first problem raises, naming the image id; with
   ``on_error="skip"`` the sample is left out and every skip is reported in one
   :class:`~skcream.data.schema.SkippedImagesWarning` carrying the count and the ids.
2. generation: :meth:`datasets.Dataset.from_generator` writes the rows to an Arrow file in
   ``cache_dir`` (memory-mapped afterwards); images are stored as file paths and decoded only
   when a row is read. OpenImages masks are combined here (with the ready-made masks' check,
   the only pixels a loader touches); an error in this pass is re-raised as its own type with
   its message (``datasets`` would hide it in a ``DatasetGenerationError``).

The cache key is a hash of the loader, its options, the metadata files' and the combined
mask files' sizes and modification times and the skipped ids, so edited metadata or masks are
never served stale.

Paths read from metadata must stay inside their root (:func:`inside_root`) unless the caller
passes ``allow_outside_root=True``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import datasets
import numpy as np
from PIL import Image

from .schema import check_boxes, encode_label, report_skipped

__all__ = [
    "Record",
    "build_dataset",
    "file_signature",
    "image_error",
    "inside_root",
    "metadata_lines",
    "require_dir",
    "require_file",
]

_CODE_VERSION = "skcream-data-1"


@dataclass
class Record:
    """One image as a loader sees it, before any pixel is read."""

    image_id: str
    path: str
    label: object
    bboxes: list = field(default_factory=list)
    size: tuple[int, int] | None = None
    mask_paths: list[str] | None = None
    ignore_path: str | None = None
    #: True: the single mask file already holds 0/1/255 and is stored as it is (imagefolder);
    #: False: instance masks + ignore mask are combined as for OpenImages.
    mask_raw: bool = False


def require_dir(path: str, what: str, layout: str) -> str:
    """Return ``path`` if it is a folder, else FileNotFoundError naming it and the layout."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{what} {path!r} does not exist or is not a folder; expected:\n{layout}")
    return path


def require_file(path: str, what: str, layout: str) -> str:
    """Return ``path`` if it is a file, else FileNotFoundError naming it and the layout."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} {path!r} is missing; expected:\n{layout}")
    return path


def file_signature(paths: Iterable[str]) -> str:
    """Sizes and mtimes of files (missing ones count as such), for cache keys."""
    parts = []
    for p in paths:
        try:
            st = os.stat(p)
            parts.append(f"{os.path.abspath(p)}:{st.st_size}:{st.st_mtime_ns}")
        except FileNotFoundError:
            parts.append(f"{os.path.abspath(p)}:missing")
    return "|".join(parts)


def metadata_lines(path: str) -> Iterator[tuple[int, str]]:
    """``(line number, stripped line)`` of every non-blank line of a metadata text file.

    UTF-8 with or without a byte-order mark and with ``\\n`` or ``\\r\\n`` line ends (what
    Windows editors write) is accepted; bytes that are not UTF-8 raise ValueError naming the
    file and the line.
    """
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise ValueError(
                    f"{path}:{lineno}: not valid UTF-8 (byte 0x{raw[err.start]:02x} at column "
                    f"{err.start + 1}); save the metadata as UTF-8"
                ) from None
            line = line.strip()
            if line:
                yield lineno, line


def inside_root(root: str, rel: str, *, where: str, what: str, allow_outside: bool) -> str:
    """``root/rel``, refusing a metadata path that leaves ``root``.

    A path read from a metadata file must stay inside the folder it is relative to: an
    absolute path or one whose ``..`` components climb out of ``root`` would let a downloaded
    metadata file pull any file of the machine into a dataset. The check is lexical (symbolic
    links that the user placed inside ``root`` are followed as usual).

    Parameters
    ----------
    root : str
        The folder the path is relative to.
    rel : str
        The path as written in the metadata.
    where : str
        ``"file:line"`` of the metadata line, named in the error.
    what : str
        The loader argument that is the root (``"data_root"``, ``"root"``, ...).
    allow_outside : bool
        The loader's ``allow_outside_root``: True accepts such paths.

    Returns
    -------
    str
        ``os.path.join(root, rel)``.

    Raises
    ------
    ValueError
        When ``rel`` is absolute or escapes ``root`` and ``allow_outside`` is False.
    """
    path = os.path.join(root, rel)
    if allow_outside:
        return path
    norm = os.path.normpath(rel)
    if (os.path.isabs(rel) or os.path.splitdrive(rel)[0] or norm == os.pardir
            or norm.startswith(os.pardir + os.sep)):
        raise ValueError(
            f"{where}: path {rel!r} lies outside {what} {root!r} (absolute or climbing out "
            "with '..'); metadata paths must stay inside their root. Pass "
            "allow_outside_root=True (CLI: --allow-outside-root) if you trust this metadata file"
        )
    return path


def _decode_full(path: str) -> None:
    with Image.open(path) as img:
        img.load()


def combine_masks(mask_paths: list[str], ignore_path: str | None,
                  size: tuple[int, int] | None = None) -> np.ndarray:
    """Combine OpenImages instance masks and the ignore mask as ``wsolevaluation`` does.

    Each file is read as 8-bit grayscale (``cv2.IMREAD_GRAYSCALE``); any non-zero instance
    pixel is foreground; ignore = ignore-box pixels that are not foreground.

    Parameters
    ----------
    mask_paths : list of str
        The instance masks of one image.
    ignore_path : str or None
    size : (W, H), optional
        Resize every file to this size (nearest neighbour) before combining them: the
        reference's ``get_mask`` order, exact for files of any sizes (``evaluate_scoremaps``
        passes (224, 224)).

    Returns
    -------
    ndarray of shape (H, W), uint8
        0 background, 1 foreground, 255 ignore, at ``size`` or else at the resolution of the
        first instance mask.
        (Deviation, only for mismatched files: other masks of a different size are resized to
        it with nearest neighbour; the reference resizes each to 224x224 instead, which gives
        the same pixels whenever the sizes agree, as in every file we have seen.)
    """
    import cv2

    def read(path: str) -> np.ndarray:
        arr = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
        if arr is None:
            raise ValueError(f"mask file {path!r} is missing or not a readable image")
        return arr

    def fit(arr: np.ndarray) -> np.ndarray:
        if arr.shape != (h, w):
            arr = cv2.resize(arr, (w, h), interpolation=cv2.INTER_NEAREST)
        return arr

    if not mask_paths:
        raise ValueError("at least one instance mask is needed")
    first = read(mask_paths[0])
    h, w = first.shape if size is None else (int(size[1]), int(size[0]))
    first = fit(first)
    fg = first > 0

    for p in mask_paths[1:]:
        fg |= fit(read(p)) > 0
    out = fg.astype(np.uint8)
    if ignore_path:
        ignore = (fit(read(ignore_path)) > 0) & ~fg
        out[ignore] = 255
    return out


def _png_bytes(mask: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", mask)
    if not ok:  # pragma: no cover - cv2 encodes any uint8 2-D array
        raise RuntimeError("PNG encoding of a mask failed")
    return buf.tobytes()


def image_error(path: str, err: BaseException) -> str:
    """What went wrong reading image file ``path``, in words (no library traceback)."""
    if isinstance(err, Image.DecompressionBombError):
        return (f"image file {path!r} is too large to decode safely ({err}); if you trust it, "
                "raise PIL.Image.MAX_IMAGE_PIXELS before loading")
    return f"image file {path!r} is corrupt, truncated or not an image ({type(err).__name__}: {err})"


def _header_size(path: str) -> tuple[int, int]:
    with Image.open(path) as img:
        return img.size


#: Values a stored mask may hold: 0 background, 1 foreground, 255 ignore.
_MASK_VALUES = (0, 1, 255)


def _check_raw_mask(path: str, image_size: tuple[int, int]) -> str | None:
    """Problem with a ready-made 0/1/255 mask file, or None."""
    try:
        with Image.open(path) as img:
            size = img.size
            if size != image_size:
                return (f"mask file {path!r} is {size[0]}x{size[1]} (W x H) but its image is "
                        f"{image_size[0]}x{image_size[1]}; a mask must have the image's size")
            img.load()
            arr = np.asarray(img)
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, ...
        return f"mask {image_error(path, err)[len('image '):]}"
    if arr.ndim == 3:
        arr = arr[:, :, 0]
    bad = np.setdiff1d(np.unique(arr), _MASK_VALUES)
    if bad.size:
        return (f"mask file {path!r} holds values {bad[:5].tolist()}; a mask may only hold "
                "0 (background), 1 (foreground) and 255 (ignore)")
    return None


def _validate(rec: Record, n_classes: int, verify: bool) -> tuple[int, str | None, np.ndarray | None]:
    """Return (label, problem or None, boxes). Label errors raise immediately.

    The image header is read whenever a size matters: to check boxes, a size claimed by the
    metadata (``image_sizes.txt``) or a ready-made mask; with ``verify`` every image and mask
    is decoded in full.
    """
    label = encode_label(rec.label, n_classes, rec.image_id)
    if not os.path.isfile(rec.path):
        return label, f"image file {rec.path!r} is missing", None
    size = None
    try:
        if verify:
            _decode_full(rec.path)
        if verify or rec.size is not None or len(rec.bboxes) > 0 or (rec.mask_raw and rec.mask_paths):
            size = _header_size(rec.path)
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, ...
        return label, image_error(rec.path, err), None
    if size is not None and min(size) < 1:
        return label, f"image file {rec.path!r} is empty ({size[0]}x{size[1]} pixels)", None
    if rec.size is not None and size is not None and tuple(rec.size) != tuple(size):
        return label, (f"the metadata gives its size as {rec.size[0]}x{rec.size[1]} (W x H) "
                       f"but image file {rec.path!r} is {size[0]}x{size[1]}; fix image_sizes.txt"), None
    for p in [*(rec.mask_paths or []), *([rec.ignore_path] if rec.ignore_path else [])]:
        if not os.path.isfile(p):
            return label, f"mask file {p!r} is missing", None
        if not rec.mask_raw:
            try:
                _header_size(p)
            except Exception as err:
                return label, f"mask {image_error(p, err)[len('image '):]}", None
    if rec.mask_raw and rec.mask_paths:
        problem = _check_raw_mask(rec.mask_paths[0], size)
        if problem is not None:
            return label, problem, None
    elif verify and rec.mask_paths:
        try:
            combine_masks(rec.mask_paths, rec.ignore_path)
        except Exception as err:
            return label, f"masks are unreadable ({err})", None
    try:
        boxes = check_boxes(rec.bboxes, size, rec.image_id)
    except ValueError as err:
        return label, str(err), None
    return label, None, boxes


def _generate(records_fn: Callable[[], Iterator[Record]], n_classes: int, skip: frozenset,
              with_mask: bool) -> Iterator[dict]:
    for rec in records_fn():
        if rec.image_id in skip:
            continue
        row = {
            "image": {"path": os.path.abspath(rec.path), "bytes": None},
            "label": encode_label(rec.label, n_classes, rec.image_id),
            "bboxes": check_boxes(rec.bboxes, None, rec.image_id).tolist(),
            "image_id": rec.image_id,
        }
        if with_mask:
            if rec.mask_paths and rec.mask_raw:
                row["mask"] = {"path": os.path.abspath(rec.mask_paths[0]), "bytes": None}
            elif rec.mask_paths:
                try:
                    mask = combine_masks(rec.mask_paths, rec.ignore_path)
                except Exception as err:  # cv2.error, ValueError: name the image
                    raise ValueError(
                        f"image {rec.image_id!r}: {err} (verify=True finds unreadable masks "
                        "before writing, so that on_error='skip' can leave them out)"
                    ) from err
                row["mask"] = {"bytes": _png_bytes(mask), "path": None}
            else:
                row["mask"] = None
        yield row


class IdSet:
    """A set of strings in ~8 bytes each (1.28M ILSVRC ids: ~20 MB instead of ~150 MB).

    Holds 64-bit BLAKE2b digests in a numpy hash table (open addressing, grown x2 at half
    load). A digest collision of two different ids (probability ~n^2/2^65, 4e-8 for 1.28M)
    would report a false duplicate; the caller's error names the id, so it would be seen.
    """

    def __init__(self) -> None:
        self._table = np.zeros(1 << 16, dtype=np.uint64)  # 0 marks an empty slot
        self._n = 0

    @staticmethod
    def _digest(value: str) -> int:
        d = int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "little")
        return d or 1

    def _slot(self, d: int) -> int:
        table, mask = self._table, len(self._table) - 1
        i = d & mask
        while True:
            v = int(table[i])
            if v == 0 or v == d:
                return i
            i = (i + 1) & mask

    def __contains__(self, value: str) -> bool:
        d = self._digest(value)
        return int(self._table[self._slot(d)]) == d

    def add(self, value: str) -> None:
        d = self._digest(value)
        i = self._slot(d)
        if int(self._table[i]) == d:
            return
        self._table[i] = d
        self._n += 1
        if 2 * self._n > len(self._table):
            old = self._table[self._table != 0]
            self._table = np.zeros(2 * len(self._table), dtype=np.uint64)
            for v in old:  # one numpy scalar at a time: no list of a million ints
                v = int(v)
                self._table[self._slot(v)] = v

    def __len__(self) -> int:
        return self._n


def _generation_cause(err: Exception, source: str) -> Exception:
    """The error that made ``datasets`` give up (it wraps it in DatasetGenerationError,
    whose message hides the cause), as the same type with ``source`` in front."""
    cause = err.__cause__ or err.__context__
    while isinstance(cause, datasets.exceptions.DatasetGenerationError) and (
            cause.__cause__ or cause.__context__):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return err
    kind = type(cause) if isinstance(cause, (ValueError, OSError)) else RuntimeError
    try:
        return kind(f"{source}: {cause}")
    except TypeError:  # an OSError subclass with a special constructor
        return ValueError(f"{source}: {cause}")


def build_dataset(
    records_fn: Callable[[], Iterator[Record]],
    *,
    class_names: list[str],
    source: str,
    key: str,
    with_mask: bool = False,
    on_error: str = "raise",
    verify: bool = False,
    cache_dir: str | os.PathLike | None = None,
) -> datasets.Dataset:
    """Validate the records of ``records_fn()`` and write them to an Arrow-backed Dataset.

    Parameters
    ----------
    records_fn : callable returning an iterator of Record
        Called twice (validation, generation); must yield the same records each time.
    class_names : list of str
    source : str
        Loader name used in messages.
    key : str
        Everything that identifies the data (roots, options, metadata signatures); hashed
        into the cache fingerprint.
    with_mask : bool
    on_error : {"raise", "skip"}
    verify : bool
        Fully decode every image (and mask) during validation.
    cache_dir : path, optional
        Where the Arrow file goes (default: the datasets cache).

    Returns
    -------
    datasets.Dataset
    """
    from .schema import wsol_features

    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    n_classes = len(class_names)
    skipped: list[tuple[str, str]] = []
    seen = IdSet()
    count = 0
    # the masks are combined into the Arrow file, so their sizes and mtimes belong in the key
    # (an edited mask file is read again, never served stale from the cache)
    mask_files: list[str] = []
    for rec in records_fn():
        if rec.image_id in seen:
            raise ValueError(f"{source}: image id {rec.image_id!r} appears twice in the metadata")
        seen.add(rec.image_id)
        if not rec.mask_raw:
            mask_files += [*(rec.mask_paths or []), *([rec.ignore_path] if rec.ignore_path else [])]
        _, problem, _ = _validate(rec, n_classes, verify)
        if problem is not None:
            if on_error == "raise":
                raise ValueError(
                    f"{source}: image {rec.image_id!r}: {problem} "
                    "(pass on_error='skip' to leave such samples out and have them reported)"
                )
            skipped.append((rec.image_id, problem))
        count += 1
    del seen
    if count == 0:
        raise ValueError(f"{source}: the metadata lists no images")
    if count == len(skipped):
        raise ValueError(f"{source}: every one of the {count} images was skipped: {skipped[:3]}")
    skip = frozenset(i for i, _ in skipped)
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{_CODE_VERSION}|{source}|{key}|{class_names}|{with_mask}".encode())
    h.update("\n".join(sorted(skip)).encode())
    h.update(file_signature(mask_files).encode())
    del mask_files
    features = wsol_features(class_names, with_mask=with_mask)
    try:
        ds = datasets.Dataset.from_generator(
            _generate,
            features=features,
            cache_dir=None if cache_dir is None else os.fspath(cache_dir),
            gen_kwargs={"records_fn": records_fn, "n_classes": n_classes, "skip": skip,
                        "with_mask": with_mask},
            fingerprint=h.hexdigest(),
        )
    except datasets.exceptions.DatasetGenerationError as err:
        raise _generation_cause(err, source) from err
    report_skipped(skipped, source)
    from .sklearn_compat import for_sklearn

    return for_sklearn(ds)  # scikit-learn's model selection can split it
