"""A validation share held out of the training images, stratified by class.

``skcream train`` without ``--val-data`` chooses the box threshold on images the network did
not train on (the protocol chooses it on a held-out ``val`` split): :func:`stratified_holdout`
says which ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["stratified_holdout"]


def stratified_holdout(labels: Sequence[Any], fraction: float,
                       random_state: int | None = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split image indices into a training part and a held-out part, class by class.

    Of the ``n_c`` images of each class, ``round(fraction * n_c)`` are held out, at least one
    when the class has two or more images and never the last one (a class is never held out
    entirely, so every class is still trained on). Which ones is drawn with ``random_state``.

    Parameters
    ----------
    labels : sequence (n,)
        Class of each image (any hashable values).
    fraction : float in [0, 1)
        Share to hold out; 0 holds out nothing.
    random_state : int or None, default=0

    Returns
    -------
    train, held_out : ndarray (n - k,), (k,) int64
        Sorted indices; together they are ``0 .. n - 1``, each once.

    Raises
    ------
    ValueError
        When ``fraction`` is not in [0, 1).
    """
    if isinstance(fraction, bool) or not 0.0 <= float(fraction) < 1.0:
        raise ValueError(f"fraction must be a number in [0, 1), got {fraction!r}")
    values = [v.item() if hasattr(v, "item") else v for v in labels]
    n = len(values)
    held = np.zeros(n, dtype=bool)
    if fraction > 0:
        rng = np.random.default_rng(random_state)
        by_class: dict[Any, list[int]] = {}
        for i, v in enumerate(values):
            by_class.setdefault(v, []).append(i)
        for members in by_class.values():  # classes in order of first appearance
            n_c = len(members)
            if n_c < 2:
                continue
            k = min(max(int(np.floor(fraction * n_c + 0.5)), 1), n_c - 1)
            held[rng.choice(np.asarray(members), size=k, replace=False)] = True
    index = np.arange(n, dtype=np.int64)
    return index[~held], index[held]
