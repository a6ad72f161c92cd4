"""The one check of numeric and boolean arguments.

Everywhere skcream documents an int, a float or a bool, the value goes through
:func:`as_int`, :func:`as_real` or :func:`as_bool`, so the same values are accepted
everywhere:

- an int: any :class:`numbers.Integral` (Python ints and numpy integers, which is what
  ``GridSearchCV`` passes from an ``np.array`` grid), never a ``bool``;
- a float: any :class:`numbers.Real` (ints and numpy floats included), never a ``bool``;
- a bool: ``bool`` or ``np.bool_``.

Each returns the value as the plain Python type, and the caller goes on with *that* value:
torch, timm, JSON and cache keys see ``8``, never ``np.int64(8)`` (a DataLoader refuses a
numpy batch size, ``json`` cannot write one, and ``repr`` would make ``8`` and
``np.int64(8)`` two cache keys). A wrong type is a ``TypeError``, a value out of range a
``ValueError``; both name the argument, the expected values and the value given.

This module imports nothing of skcream (every layer may use it).
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

import numpy as np

__all__ = ["as_bool", "as_int", "as_real", "plain"]


def _int_range(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f"an int in [{low}, {high}]"
    if low is not None:
        return f"an int >= {low}"
    if high is not None:
        return f"an int <= {high}"
    return "an int"


def as_int(
    value: Any, name: str, *, low: int | None = None, high: int | None = None,
    none_ok: bool = False,
) -> int | None:
    """``value`` as a Python int, checked.

    Parameters
    ----------
    value : object
        Any ``numbers.Integral`` except ``bool`` (or None when ``none_ok``).
    name : str
        The argument's name, used in the error message.
    low, high : int, optional
        Closed bounds.
    none_ok : bool, default=False
        Let None through (returned as None).

    Returns
    -------
    int or None

    Raises
    ------
    TypeError
        Not an integer (a ``bool``, a float such as ``8.0``, a string, ...).
    ValueError
        Outside ``[low, high]``.
    """
    if value is None and none_ok:
        return None
    expected = _int_range(low, high) + (" or None" if none_ok else "")
    if isinstance(value, bool | np.bool_) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be {expected}, got {value!r}")
    out = int(value)
    if (low is not None and out < low) or (high is not None and out > high):
        raise ValueError(f"{name} must be {expected}, got {out!r}")
    return out


def as_real(
    value: Any, name: str, *, low: float | None = None, high: float | None = None,
    low_open: bool = False, high_open: bool = False, none_ok: bool = False,
) -> float | None:
    """``value`` as a finite Python float, checked.

    Parameters
    ----------
    value : object
        Any ``numbers.Real`` except ``bool`` (ints and numpy scalars included), finite (or
        None when ``none_ok``).
    name : str
        The argument's name, used in the error message.
    low, high : float, optional
        Bounds of the interval, closed unless ``low_open`` / ``high_open``.
    none_ok : bool, default=False
        Let None through (returned as None).

    Returns
    -------
    float or None

    Raises
    ------
    TypeError
        Not a real number.
    ValueError
        NaN, infinite or outside the interval.
    """
    if value is None and none_ok:
        return None
    lo = "-inf" if low is None else low
    hi = "inf" if high is None else high
    interval = (f"{'(' if low_open or low is None else '['}{lo}, "
                f"{hi}{')' if high_open or high is None else ']'}")
    expected = f"a finite number in {interval}" + (" or None" if none_ok else "")
    if isinstance(value, bool | np.bool_) or not isinstance(value, Real):
        raise TypeError(f"{name} must be {expected}, got {value!r}")
    out = float(value)
    ok = math.isfinite(out)
    if low is not None:
        ok = ok and (out > low if low_open else out >= low)
    if high is not None:
        ok = ok and (out < high if high_open else out <= high)
    if not ok:
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return out


def as_bool(value: Any, name: str) -> bool:
    """``value`` (a ``bool`` or ``np.bool_``) as a Python bool; TypeError otherwise."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def plain(value: Any) -> Any:
    """A numpy scalar as the Python scalar it stands for (``np.str_`` -> ``str``); anything
    else unchanged."""
    if isinstance(value, np.generic):
        return value.item()
    return value
