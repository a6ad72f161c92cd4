"""Shared machinery of the loaders: validate records, then stream them into an Arrow dataset.

A loader describes its data as an iterable of :class:`Record` (paths and metadata only, no
pixels). :func:`build_dataset` makes two passes over it:

1. validation: labels inside the ClassLabel (always raise), each file listed once (by its real
   path), image files present (a folder or a FIFO is named as such), boxes inside
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

Paths read from metadata (or found by scanning a folder) go through the one resolver,
:class:`skcream.data.files.RootResolver`: they must stay inside their root, symbolic links
resolved, unless the caller passes ``allow_outside_root=True``; its real path is each image's
identity, so one file listed twice under two spellings (``a/0.png``, ``./a/0.png``, a link)
is refused naming both ids. Pixels and sizes come from the one decoder,
:mod:`skcream.data.decode` (as viewers show the image), and boxes are checked by the one box
checker, :func:`skcream.data.schema.check_boxes`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import datasets
import numpy as np

from skcream._masks import mask_codes

from .decode import decode_image, decode_mask
from .decode import image_size as _image_size
from .files import file_problem
from .schema import check_boxes, encode_label, report_skipped

__all__ = [
    "Record",
    "build_dataset",
    "file_signature",
    "image_error",
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
    #: the image file's identity from the resolver (:attr:`skcream.data.files.Resolved.key`,
    #: its real path): two records with one key are the same file under two spellings
    key: str | None = None


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


def combine_masks(mask_paths: list[str], ignore_path: str | None,
                  size: tuple[int, int] | None = None) -> np.ndarray:
    """Combine OpenImages instance masks and the ignore mask as ``wsolevaluation`` does.

    Each file is read through the one decoder (:func:`skcream.data.decode.decode_image`, in
    the frame viewers show) as 8-bit luma (the reference reads ``cv2.IMREAD_GRAYSCALE``);
    any non-zero instance pixel is foreground;
    ignore = ignore-box pixels that are not foreground.

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

    def read(path: str) -> np.ndarray:  # 8-bit luma, as cv2.IMREAD_GRAYSCALE in the reference
        return np.asarray(decode_image(path, f"mask file {path!r}").convert("L"))

    def fit(arr: np.ndarray) -> np.ndarray:
        if arr.shape != (h, w):
            arr = cv2.resize(arr, (w, h), interpolation=cv2.INTER_NEAREST)
        return arr

    if not mask_paths:
        raise ValueError("at least one instance mask is needed")
    first = read(mask_paths[0])
    h, w = first.shape if size is None else (int(size[1]), int(size[0]))
    fg = fit(first) > 0

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
    if isinstance(err, ValueError):  # from the decoder: already names the file
        return str(err)
    return f"image file {path!r} is corrupt, truncated or not an image ({type(err).__name__}: {err})"


def _check_raw_mask(path: str, image_size: tuple[int, int]) -> str | None:
    """Problem with a ready-made 0/1/255 mask file, or None."""
    name = f"mask file {path!r}"
    try:
        size = _image_size(path, name)
        if size != image_size:
            return (f"{name} is {size[0]}x{size[1]} (W x H) but its image is "
                    f"{image_size[0]}x{image_size[1]}; a mask must have the image's size")
        mask_codes(decode_mask(path, name), name)
    except ValueError as err:
        return str(err)
    return None


def _validate(rec: Record, n_classes: int, verify: bool) -> tuple[int, str | None, np.ndarray | None]:
    """Return (label, problem or None, boxes). Label errors raise immediately.

    The image header is read whenever a size matters: to check boxes, a size claimed by the
    metadata (``image_sizes.txt``) or a ready-made mask; with ``verify`` every image and mask
    is decoded in full. Sizes are as viewers show the image (EXIF orientation applied: the
    one decoder, :mod:`skcream.data.decode`), the frame of the boxes.
    """
    label = encode_label(rec.label, n_classes, rec.image_id)
    name = f"image file {rec.path!r}"
    problem = file_problem(rec.path)
    if problem is not None:
        return label, f"{name} {problem}", None
    size = None
    try:
        if verify:
            decode_image(rec.path, name)
        if verify or rec.size is not None or len(rec.bboxes) > 0 or (rec.mask_raw and rec.mask_paths):
            size = _image_size(rec.path, name)
    except ValueError as err:
        return label, str(err), None
    if rec.size is not None and size is not None and tuple(rec.size) != tuple(size):
        turned = ""
        if tuple(rec.size) == tuple(size[::-1]):
            turned = (" (the file's EXIF orientation turns it: images, boxes and sizes are "
                      "taken as viewers show them)")
        return label, (f"the metadata gives its size as {rec.size[0]}x{rec.size[1]} (W x H) "
                       f"but {name} is {size[0]}x{size[1]}{turned}; fix image_sizes.txt"), None
    for p in [*(rec.mask_paths or []), *([rec.ignore_path] if rec.ignore_path else [])]:
        problem = file_problem(p)
        if problem is not None:
            return label, f"mask file {p!r} {problem}", None
        if not rec.mask_raw:
            try:
                _image_size(p, f"mask file {p!r}")
            except ValueError as err:
                return label, str(err), None
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


def _same_file(records_fn: Callable[[], Iterator[Record]], rec: Record, key: str,
               source: str) -> str:
    """The message for ``rec``, a file already listed under another id (found again by a
    second pass: the first pass keeps only digests)."""
    first = next((r.image_id for r in records_fn()
                  if (r.key if r.key is not None else os.path.realpath(r.path)) == key), None)
    return (f"{source}: images {first!r} and {rec.image_id!r} are the same file ({key!r}) "
            "listed twice; list each image once")


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
    files = IdSet()
    for rec in records_fn():
        if rec.image_id in seen:
            raise ValueError(f"{source}: image id {rec.image_id!r} appears twice in the metadata")
        seen.add(rec.image_id)
        file_key = rec.key if rec.key is not None else os.path.realpath(rec.path)
        if file_key in files:
            raise ValueError(_same_file(records_fn, rec, file_key, source))
        files.add(file_key)
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
    del seen, files
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
