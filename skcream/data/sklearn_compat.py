"""``datasets.Dataset`` objects that scikit-learn's model selection can split.

scikit-learn indexes the samples of ``X`` with ``_safe_indexing``: an object with a
``shape`` attribute (a ``datasets.Dataset`` has one: ``(num_rows, num_columns)``) is
treated as an array and indexed as ``X[indices, ...]``, which ``datasets`` rejects with
``TypeError: '<' not supported between instances of 'int' and 'ellipsis'``. Its sample
count comes from ``X.shape[0]`` (``_num_samples``), which is already right.

:class:`SklearnDataset` is a ``datasets.Dataset`` subclass whose ``__getitem__`` also
understands that one key, ``(rows, Ellipsis)``, and answers it with ``select(rows)``
(no image decoded or copied; the fingerprint is the one ``select`` gives, so equal
folds are equal datasets for every cache). Every other key goes to ``datasets``
unchanged, and the methods of ``datasets.Dataset`` that return a new Dataset (``map``,
``select``, ``filter``, ``train_test_split``, ``shuffle``, ...) return a
``SklearnDataset`` again. Neither library is patched: scikit-learn's indexing is used
as documented for array-likes, and ``datasets`` sees an ordinary subclass (pickling,
``copy`` and fingerprints work as for the base class; the fingerprint of a transform does
not depend on the class).

The skcream loaders (``make_synthetic``, ``load_cub``, ``load_wsol``,
``load_imagefolder``) return ``SklearnDataset`` objects. A Dataset from elsewhere
(``datasets.load_dataset``, ``Dataset.from_dict``) needs one call::

    ds = skcream.data.for_sklearn(ds)
    GridSearchCV(CREAMLocalizer(...), grid).fit(ds)
"""

from __future__ import annotations

import inspect
from numbers import Integral
from typing import Any

import datasets
import numpy as np

__all__ = ["SklearnDataset", "for_sklearn"]


def for_sklearn(dataset: datasets.Dataset) -> SklearnDataset:
    """The same Dataset, indexable by scikit-learn's model selection.

    Parameters
    ----------
    dataset : datasets.Dataset
        Any Dataset (e.g. from ``datasets.load_dataset`` or ``Dataset.from_dict``); a
        ``SklearnDataset`` is returned as it is.

    Returns
    -------
    SklearnDataset
        A shallow copy sharing the Arrow tables (nothing is read or copied); ``dataset``
        itself is left unchanged. ``isinstance(result, datasets.Dataset)`` holds, and its
        columns, features, format and fingerprint are those of ``dataset``.

    Raises
    ------
    TypeError
        When ``dataset`` is not a ``datasets.Dataset`` (a ``DatasetDict`` names its splits:
        pass one of them; an ``IterableDataset`` has no random access to split).
    """
    if isinstance(dataset, SklearnDataset):
        return dataset
    if isinstance(dataset, datasets.DatasetDict):
        raise TypeError(
            f"dataset must be a datasets.Dataset; got a DatasetDict with splits "
            f"{sorted(dataset)}: pass one split, e.g. for_sklearn(ds[{next(iter(dataset))!r}])"
        )
    if not isinstance(dataset, datasets.Dataset):
        raise TypeError(
            f"dataset must be a datasets.Dataset; got {type(dataset).__name__}"
            + (" (an IterableDataset cannot be split by index)"
               if isinstance(dataset, datasets.IterableDataset) else "")
        )
    import copy

    view = copy.copy(dataset)  # shares the Arrow tables, info and format
    view.__class__ = SklearnDataset  # no state of its own: only the class changes
    return view


def _adopt(result: Any, source: Any) -> Any:
    """Make a Dataset (or the Datasets of a DatasetDict) that a method returned ours.

    ``datasets`` builds results as ``Dataset(...)`` (not ``type(self)(...)``): fresh objects
    nobody else holds, so changing their class in place is safe; the subclass adds no state.
    """
    if type(result) is datasets.Dataset and result is not source:
        result.__class__ = SklearnDataset
    elif isinstance(result, datasets.DatasetDict):
        for value in result.values():
            if type(value) is datasets.Dataset:
                value.__class__ = SklearnDataset
    return result


class SklearnDataset(datasets.Dataset):
    """A ``datasets.Dataset`` that scikit-learn's model selection can split.

    Built by :func:`for_sklearn` or returned by the skcream loaders; see the module
    docstring. ``ds[rows, ...]`` is ``ds.select(rows)`` for ``rows`` an integer array
    (negative indices count from the end), a boolean mask of length ``len(ds)``, a slice,
    or an int (one row dict, as ``ds[i]``).
    """

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, tuple):
            if len(key) == 2 and key[1] is Ellipsis:
                return self._sklearn_rows(key[0])
            raise TypeError(
                "a Dataset is indexed by rows or a column name; the only tuple key accepted "
                f"is (rows, ...) (scikit-learn's row selection); got {key!r}"
            )
        return super().__getitem__(key)

    def _sklearn_rows(self, rows: Any) -> Any:
        n = len(self)
        if isinstance(rows, Integral) and not isinstance(rows, bool):
            return super().__getitem__(int(rows))
        if isinstance(rows, slice):
            return self.select(range(n)[rows])
        idx = np.asarray(rows)
        if idx.ndim != 1:
            raise IndexError(f"row indices must be 1-D; got shape {idx.shape}")
        if idx.dtype == bool:
            if idx.shape[0] != n:
                raise IndexError(f"boolean row mask of length {idx.shape[0]} for {n} rows")
            idx = np.flatnonzero(idx)
        elif idx.size == 0:
            idx = idx.astype(np.int64)
        elif not np.issubdtype(idx.dtype, np.integer):
            raise IndexError(f"rows must be integer indices or a boolean mask; got dtype "
                             f"{idx.dtype}")
        if idx.size and (idx.min() < -n or idx.max() >= n):
            bad = idx[(idx < -n) | (idx >= n)][0]
            raise IndexError(f"row index {int(bad)} is out of range for {n} rows")
        idx = np.where(idx < 0, idx + n, idx)
        return self.select(idx.astype(np.int64).tolist())

    def __repr__(self) -> str:
        return super().__repr__().replace("Dataset(", "SklearnDataset(", 1)


def _returns_dataset(function: Any) -> bool:
    try:
        annotation = inspect.signature(function).return_annotation
    except (TypeError, ValueError):
        return False
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    return text in ("Dataset", "DatasetDict")


def _wrap(name: str, method: Any) -> Any:
    def wrapper(self, *args: Any, **kwargs: Any) -> Any:
        return _adopt(method(self, *args, **kwargs), self)

    wrapper.__name__ = name
    wrapper.__qualname__ = f"SklearnDataset.{name}"
    wrapper.__doc__ = method.__doc__
    wrapper.__wrapped__ = method
    return wrapper


# Instance methods of datasets.Dataset that return a new Dataset (by their annotation, plus
# the unannotated ones) give back a SklearnDataset. Class/static constructors are left alone:
# they build plain Datasets, turned into ours by for_sklearn.
_UNANNOTATED = ("add_column", "add_item", "with_format", "with_transform")
for _name in dir(datasets.Dataset):
    if _name.startswith("_"):
        continue
    _raw = inspect.getattr_static(datasets.Dataset, _name)
    if isinstance(_raw, (classmethod, staticmethod, property)) or not callable(_raw):
        continue
    if _name in _UNANNOTATED or _returns_dataset(_raw):
        setattr(SklearnDataset, _name, _wrap(_name, getattr(datasets.Dataset, _name)))
del _name, _raw
