"""``datasets.IterableDataset`` input: one pass over the stream into an Arrow file.

The estimators need random access (a shuffled order every epoch, labels before training,
ground truth beside the maps), so a stream is read once, row by row, into an Arrow file
written by ``datasets.Dataset.from_generator`` (memory bounded by its writer batch, not by
the stream's length) and used memory-mapped from there. What needs two passes over the
data (``fit``: the classes before training, then ``max_epochs`` epochs) reads the Arrow
file, never the stream again. A stream that fails midway raises what it raised (its type and
message, after ``X: reading the IterableDataset failed:``), an empty one a ValueError saying
so.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import datasets

from ._build import _generation_cause

__all__ = ["is_stream", "materialize"]


def is_stream(X: Any) -> bool:
    """True for a ``datasets.IterableDataset`` (streaming hub data, ``to_iterable_dataset``)."""
    return isinstance(X, datasets.IterableDataset)


def _rows(stream: datasets.IterableDataset) -> Iterator[dict]:
    yield from stream


def materialize(stream: datasets.IterableDataset, *,
                cache_dir: str | os.PathLike | None = None) -> datasets.Dataset:
    """Read ``stream`` once into an Arrow-backed ``datasets.Dataset`` (same rows, same order).

    Parameters
    ----------
    stream : datasets.IterableDataset
    cache_dir : path, optional
        Where the Arrow file goes (default: the ``datasets`` cache). Every call writes a new
        file: a stream has no fingerprint that could tell two streams apart.

    Returns
    -------
    datasets.Dataset
        Memory-mapped; images stay encoded (bytes or paths) until a row is read.
    """
    if not is_stream(stream):
        raise TypeError(f"stream: expected a datasets.IterableDataset, got {type(stream).__name__}")
    features = stream.features
    empty = ValueError("X: the IterableDataset yielded no rows; at least one image is needed")
    try:
        ds = datasets.Dataset.from_generator(
            _rows,
            features=features,
            cache_dir=None if cache_dir is None else os.fspath(cache_dir),
            gen_kwargs={"stream": stream},
            fingerprint=f"skcream-stream-{uuid.uuid4().hex}",
        )
    except datasets.exceptions.DatasetGenerationError as err:
        # datasets hides what the stream raised ("An error occurred while generating the
        # dataset"): the cause, with its own type, is what the user can act on
        raise _generation_cause(err, "X: reading the IterableDataset failed") from err
    except ValueError:  # datasets' "Instruction 'train' corresponds to no data!"
        if next(iter(stream), None) is None:
            raise empty from None
        raise
    if len(ds) == 0:
        raise empty
    return ds
