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
- :func:`raw_labels` / :func:`encode_labels` map user labels to the network's
  output indices (errors name the labels outside ``classes_``).
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


def raw_labels(source: ImageSource, y: Any, class_label: bool) -> np.ndarray | None:
    """The user-facing label values of every image, or None when there are none.

    Parameters
    ----------
    source : ImageSource
    y : array-like (n,) or None
        When given, its values are the labels.
    class_label : bool
        From :func:`as_source`.

    Returns
    -------
    ndarray (n,) or None
        ``y`` as an array; else the ClassLabel indices; else the label column values
        (strings decoded back from the source's encoding).
    """
    if y is not None:
        arr = np.asarray(list(y) if not isinstance(y, np.ndarray) else y)
        return arr
    codes = source.labels
    if codes is None:
        return None
    if class_label or source.class_names is None:
        return codes
    return np.asarray(source.class_names)[codes]


def training_classes(
    source: ImageSource, y: Any, class_label: bool
) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """``classes_``, the internal class index of each image, and the class names.

    Parameters
    ----------
    source : ImageSource
    y : array-like or None
    class_label : bool

    Returns
    -------
    classes : ndarray (C,)
        Sorted label values (for a ClassLabel column: ``0..C-1`` for its C names).
    codes : ndarray (n,) int64
        Index into ``classes`` of every image.
    names : list of str or None
        Human-readable class names (ClassLabel names, or ``str`` of the classes).

    Raises
    ------
    ValueError
        No labels; fewer than two classes; a ClassLabel class without images (named).
    """
    values = raw_labels(source, y, class_label)
    if values is None:
        raise ValueError(
            "fit needs class labels: pass y, or a Dataset with a label column "
            "(label_column names it)"
        )
    if class_label:
        names = list(source.class_names)
        classes = np.arange(len(names))
        counts = np.bincount(values, minlength=len(names))
        empty = [f"{i} ({names[i]!r})" for i in np.flatnonzero(counts == 0)]
        if empty:
            raise ValueError(
                f"the label column's ClassLabel has {len(names)} classes but these have no "
                f"training images: {', '.join(empty[:10])}"
                f"{' ...' if len(empty) > 10 else ''}; drop them from the ClassLabel "
                "(e.g. Dataset.cast_column) or add images"
            )
        codes = values.astype(np.int64)
    else:
        classes, codes = np.unique(values, return_inverse=True)
        names = [str(c) for c in classes]
    if len(classes) < 2:
        raise ValueError(
            f"fit needs at least two classes (CAM is a classifier's map); got only "
            f"{classes.tolist()} in {len(values)} images"
        )
    return classes, codes.astype(np.int64), names


def encode_labels(values: Any, classes: np.ndarray, argument: str = "labels") -> np.ndarray:
    """Internal indices of label values.

    Parameters
    ----------
    values : array-like (n,)
        Labels, each one of ``classes``.
    classes : ndarray (C,)
        ``classes_``.
    argument : str
        Name used in error messages.

    Returns
    -------
    ndarray (n,) int64

    Raises
    ------
    ValueError
        Naming the values that are not in ``classes`` and the first index holding one.
    """
    arr = np.asarray(list(values) if not isinstance(values, np.ndarray) else values)
    if arr.ndim != 1:
        raise ValueError(f"{argument} must be 1-D with one label per image, got shape {arr.shape}")
    lookup = {v.item() if hasattr(v, "item") else v: i for i, v in enumerate(classes)}
    out = np.empty(len(arr), dtype=np.int64)
    unknown: list[Any] = []
    first = None
    for i, v in enumerate(arr):
        key = v.item() if hasattr(v, "item") else v
        idx = lookup.get(key)
        if idx is None:
            if key not in unknown:
                unknown.append(key)
            first = i if first is None else first
            continue
        out[i] = idx
    if unknown:
        raise ValueError(
            f"{argument} holds values outside classes_ {classes.tolist()}: "
            f"{unknown[:10]}{' ...' if len(unknown) > 10 else ''} (first at index {first})"
        )
    return out
