"""Input handling shared by the estimators (``CREAMLocalizer``, ``PseudoBoxRegressor``, ``CREAMReg``).

- :func:`as_source` turns whatever ``fit``/``predict``/``score`` receive into an
  :class:`~skcream.data.adapters.ImageSource`, including the list of row dicts
  that scikit-learn's ``_safe_indexing`` makes of a ``datasets.Dataset`` inside
  ``GridSearchCV`` / ``cross_val_score`` (``[ds[i] for i in indices]``): those
  rows are gathered back into a Dataset (``Dataset.from_list``), whose
  fingerprint depends on the content only, so equal folds hit the same cache.
- :class:`DatasetView` lets scikit-learn split a Dataset; :func:`take_rows` selects
  rows of any accepted ``X``.
- :func:`training_classes` derives ``classes_`` and the internal class indices,
  and refuses one-class problems and classes without images.
- :func:`raw_labels` gives the labels of a source as names or integers, and
  :func:`encode_labels` (the one label encoder, used at fit and at every later call)
  maps them to the network's output indices: names by name (a ``ClassLabel`` Dataset
  with another class list is matched by its names), integers by value; errors name the
  labels outside ``classes_``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import datasets
import numpy as np

from skcream.data.adapters import ImageSource

__all__ = [
    "DatasetView",
    "as_source",
    "encode_labels",
    "raw_labels",
    "take_rows",
    "training_classes",
]


class DatasetView:
    """A ``datasets.Dataset`` that scikit-learn's model selection can split.

    scikit-learn indexes ``X`` with integer arrays (``_safe_indexing``); a raw Dataset has a
    ``shape`` attribute, so scikit-learn treats it as a NumPy array and calls
    ``ds[indices, ...]``, which datasets does not support. This view offers the pandas-style
    ``take`` / ``iloc`` that scikit-learn uses instead, each mapped onto ``Dataset.select``
    (no image is decoded or copied; equal selections have equal fingerprints, so the
    ``memory=`` cache recognises equal folds).

    Kept for backward compatibility: the skcream loaders now return
    :class:`skcream.data.SklearnDataset` objects, which scikit-learn splits directly, and
    ``skcream.data.for_sklearn(ds)`` makes any other Dataset one (still a Dataset).

    Parameters
    ----------
    dataset : datasets.Dataset

    Examples
    --------
    >>> GridSearchCV(CREAMLocalizer(...), grid, cv=3).fit(DatasetView(ds))  # doctest: +SKIP
    """

    def __init__(self, dataset: datasets.Dataset) -> None:
        if not isinstance(dataset, datasets.Dataset):
            raise TypeError(f"dataset must be a datasets.Dataset, got {type(dataset).__name__}")
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def take(self, indices: Any, axis: int = 0) -> DatasetView:
        """The rows ``indices`` (in that order) as a new view."""
        if axis != 0:
            raise ValueError(f"DatasetView can only select rows (axis=0), got axis={axis}")
        idx = np.asarray(indices)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return DatasetView(self.dataset.select(idx.astype(np.int64).tolist()))

    @property
    def iloc(self) -> _ILoc:
        return _ILoc(self)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, int | np.integer):
            return self.dataset[int(key)]
        if isinstance(key, slice):
            return self.take(np.arange(len(self))[key])
        return self.take(key)

    def __repr__(self) -> str:
        return f"DatasetView({self.dataset!r})"


class _ILoc:
    def __init__(self, view: DatasetView) -> None:
        self._view = view

    def __getitem__(self, key: Any) -> Any:
        return self._view[key]


def _rows_to_dataset(rows: Sequence[Mapping], image_column: str) -> datasets.Dataset:
    keys = list(rows[0].keys())
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise TypeError(f"X[{i}] is a {type(row).__name__}; expected a row dict like X[0]")
        if image_column not in row:
            raise ValueError(
                f"X[{i}] has no {image_column!r} entry (image_column); keys are {sorted(row)}"
            )
        if list(row.keys()) != keys:
            raise ValueError(f"X[{i}] has keys {sorted(row)}, X[0] has {sorted(keys)}")
    return datasets.Dataset.from_list([dict(r) for r in rows])


def as_source(
    X: Any,
    y: Any = None,
    *,
    image_column: str = "image",
    label_column: str = "label",
    bbox_column: str = "bboxes",
) -> tuple[ImageSource, bool]:
    """Wrap ``X`` (and ``y``) for the estimator.

    Parameters
    ----------
    X : datasets.Dataset, DatasetView, ImageSource, sequence of images, or sequence of row
        dicts
        Row dicts (``{"image": ..., "label": ..., "bboxes": ...}``) are what scikit-learn's
        cross-validation makes of a Dataset.
    y : array-like (n,), optional
        Labels; override the label column.
    image_column, label_column, bbox_column : str
        Column names.

    Returns
    -------
    source : ImageSource
    class_label : bool
        True when the labels come from a ``datasets.ClassLabel`` column (their values are
        the indices into its names).
    """
    if isinstance(X, DatasetView):
        X = X.dataset
    if isinstance(X, Sequence) and not isinstance(X, str | bytes) and len(X) > 0:
        if isinstance(X[0], Mapping):
            X = _rows_to_dataset(X, image_column)
    class_label = (
        y is None
        and isinstance(X, datasets.Dataset)
        and label_column in X.column_names
        and isinstance(X.features[label_column], datasets.ClassLabel)
    )
    source = ImageSource.from_input(
        X, y, image_column=image_column, label_column=label_column, bbox_column=bbox_column
    )
    return source, class_label


def take_rows(X: Any, keep: np.ndarray) -> Any:
    """Rows ``keep`` of anything :func:`as_source` accepts, in that order.

    Parameters
    ----------
    X : datasets.Dataset, DatasetView, ImageSource, ndarray, or sequence (images, paths or
        row dicts)
    keep : ndarray (k,) int
        Row indices.

    Returns
    -------
    The same kind of container as ``X`` (a list for other sequences) with ``k`` rows.
    """
    if isinstance(X, datasets.Dataset | ImageSource):
        return X.select(keep.tolist())
    if isinstance(X, DatasetView):
        return X.take(keep)
    if isinstance(X, np.ndarray):
        return X[keep]
    return [X[int(i)] for i in keep]


def raw_labels(source: ImageSource) -> np.ndarray | None:
    """The labels of every image as values a user would give: names or integers.

    Parameters
    ----------
    source : ImageSource
        With ``y`` already in it (:func:`as_source` puts it there).

    Returns
    -------
    ndarray (n,) or None
        Class names (str) where the source has names (a ``ClassLabel`` column: its names,
        so that a Dataset with another class list is matched by name; string labels), else
        the integer labels; None without labels.
    """
    codes = source.labels
    if codes is None:
        return None
    if source.class_names is None:
        return codes
    return np.asarray(source.class_names, dtype=str)[codes]


def training_classes(
    source: ImageSource, class_label: bool
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``classes_``, the internal class index of each image, and the class names.

    Parameters
    ----------
    source : ImageSource
    class_label : bool
        From :func:`as_source`: the labels come from a ``ClassLabel`` column.

    Returns
    -------
    classes : ndarray (C,)
        Sorted label values (for a ClassLabel column: ``0..C-1`` for its C names).
    codes : ndarray (n,) int64
        Index into ``classes`` of every image, by :func:`encode_labels` (the encoder every
        later call uses).
    names : list of str
        Human-readable class names (ClassLabel names, or ``str`` of the classes).

    Raises
    ------
    ValueError
        No labels; fewer than two classes; a ClassLabel class without images (named).
    """
    values = raw_labels(source)
    if values is None:
        raise ValueError(
            "fit needs class labels: pass y, or a Dataset with a label column "
            "(label_column names it)"
        )
    if class_label:
        names = list(source.class_names)
        classes = np.arange(len(names))
        counts = np.bincount(source.labels, minlength=len(names))
        empty = [f"{i} ({names[i]!r})" for i in np.flatnonzero(counts == 0)]
        if empty:
            raise ValueError(
                f"the label column's ClassLabel has {len(names)} classes but these have no "
                f"training images: {', '.join(empty[:10])}"
                f"{' ...' if len(empty) > 10 else ''}; drop them from the ClassLabel "
                "(e.g. Dataset.cast_column) or add images"
            )
    else:
        classes = np.unique(values)
        names = [str(c) for c in classes]
    if len(classes) < 2:
        raise ValueError(
            f"fit needs at least two classes (CAM is a classifier's map); got only "
            f"{classes.tolist()} in {len(values)} images"
        )
    codes = encode_labels(values, classes, names, "labels", n_images=len(values))
    return classes, codes, names


def encode_labels(
    values: Any, classes: np.ndarray, names: Sequence[str] | None = None,
    argument: str = "labels", *, n_images: int | None = None,
) -> np.ndarray:
    """Internal class indices of label values: the one label encoder.

    ``fit`` encodes its training labels with it, and every later call (``predict``-side
    ``labels=``, ``y``, label columns of ``evaluate`` / ``score`` / ``localize`` /
    ``transform`` / ``report`` / the CLI) goes through it too. Names (str) are matched to
    the class names by name, so a ``ClassLabel`` Dataset with another class list (another
    folder) finds its classes by name; integer labels are matched to integer ``classes_`` by
    value (which range-checks them). Names and integers are never converted into each other.

    Parameters
    ----------
    values : array-like (n,)
        Labels: class names or integer labels (checked by
        :func:`skcream.data.schema.check_labels`).
    classes : ndarray (C,)
        ``classes_``.
    names : sequence of str, optional
        ``class_names_`` (default: the classes themselves when they are names).
    argument : str
        How to name the labels in errors.
    n_images : int, optional
        The number of images the labels are for: another count is an error.

    Returns
    -------
    ndarray (n,) int64

    Raises
    ------
    ValueError
        A count other than ``n_images``; names the model does not know (listed, with the
        first index holding one); integers outside ``classes_``; integers for a model whose
        classes are names.
    """
    from skcream.data.schema import check_labels

    arr = check_labels(values, argument)
    if n_images is not None and len(arr) != n_images:
        raise ValueError(f"{argument} has {len(arr)} labels but there are {n_images} images; "
                         "give one label per image")
    classes = np.asarray(classes)
    if arr.dtype.kind == "U":
        known = list(names) if names is not None else (
            [str(c) for c in classes] if classes.dtype.kind == "U" else None)
        if known is None:
            raise ValueError(
                f"{argument}: class names given ({arr[:3].tolist()} ...) but the classes "
                f"{classes[:10].tolist()} have no names; give integer labels"
            )
        lookup: dict[Any, int] = {str(n): i for i, n in enumerate(known)}
    else:
        if classes.dtype.kind not in "iu":
            raise ValueError(
                f"{argument}: integer labels given ({arr[:3].tolist()} ...) but the classes "
                f"are names {classes[:10].tolist()}; give labels as names"
            )
        known = [int(c) for c in classes]
        lookup = {c: i for i, c in enumerate(known)}
    # each distinct value is looked up once (a million labels of a few classes stay fast)
    distinct, inverse = np.unique(arr, return_inverse=True)
    index = np.array([lookup.get(v, -1) for v in distinct.tolist()], dtype=np.int64)
    out = index[inverse.reshape(-1)] if len(arr) else np.zeros(0, dtype=np.int64)
    unknown = distinct[index < 0].tolist()
    if unknown:
        first = int(np.flatnonzero(out < 0)[0])
        shown = f"{unknown[:10]}{' ...' if len(unknown) > 10 else ''}"
        what = "names" if arr.dtype.kind == "U" else "labels"
        raise ValueError(
            f"{argument}: {what} the model was not trained on: {shown} (first at index "
            f"{first}); its classes are {known[:20]}{' ...' if len(known) > 20 else ''}"
        )
    return out
