"""Parameter checks shared by the trained estimators (``CREAMLocalizer``, ``PseudoBoxRegressor``).

scikit-learn's rule: ``__init__`` stores the parameters verbatim and ``fit`` validates them.
Each check reads ``params`` (``estimator.get_params(deep=False)``), raises ``TypeError`` /
``ValueError`` naming the parameter, what was expected and what was given, and never
mutates anything. :func:`check_training_params` checks the parameters both estimators
share (backbone, weights, training loop, input sizes, device, columns, seed).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from numbers import Integral, Real
from typing import Any

import numpy as np

from skcream._device import check_device

__all__ = [
    "MIXED_PRECISION",
    "check_choice",
    "check_column",
    "check_int",
    "check_real",
    "check_training_params",
    "resolved_resize_size",
]

MIXED_PRECISION = ("no", "fp16", "bf16")


def resolved_resize_size(image_size: int, resize_size: int | None) -> int:
    """The side training images are resized to before the random ``image_size`` crop.

    ``resize_size=None`` keeps the WSOL protocol's ratio, resize 256 / crop 224, at any input
    size: ``round(image_size * 256 / 224)`` (224 -> 256, 128 -> 146, 96 -> 110), so the crop
    always sees the same share of the image; an explicit ``resize_size`` is used as given.

    Parameters
    ----------
    image_size : int
        Side of the training crop.
    resize_size : int or None

    Returns
    -------
    int
    """
    if resize_size is None:
        return int(round(int(image_size) * 256 / 224))
    return int(resize_size)


def check_int(params: dict[str, Any], name: str, low: int, *, none_ok: bool = False) -> None:
    """``params[name]`` is an int >= ``low`` (or None when ``none_ok``); bools are refused."""
    value = params[name]
    if value is None and none_ok:
        return
    if isinstance(value, bool) or not isinstance(value, Integral):
        extra = " or None" if none_ok else ""
        raise TypeError(f"{name} must be an int >= {low}{extra}, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


def check_real(
    params: dict[str, Any],
    name: str,
    low: float,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    none_ok: bool = False,
) -> None:
    """``params[name]`` is a finite real number in the interval (bounds open or closed)."""
    value = params[name]
    if value is None and none_ok:
        return
    lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
    interval = f"{lo}{low}, inf)" if high is None else f"{lo}{low}, {high}{hi}"
    if isinstance(value, bool) or not isinstance(value, Real):
        extra = " or None" if none_ok else ""
        raise TypeError(f"{name} must be a real number in {interval}{extra}, got {value!r}")
    ok = np.isfinite(value) and (value > low if low_open else value >= low)
    if high is not None:
        ok = ok and (value < high if high_open else value <= high)
    if not ok:
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")


def check_choice(params: dict[str, Any], name: str, choices: tuple[str, ...]) -> None:
    """``params[name]`` is one of ``choices``."""
    value = params[name]
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def check_column(params: dict[str, Any], name: str) -> None:
    """``params[name]`` is a non-empty column name."""
    value = params[name]
    if not isinstance(value, str) or not value:
        raise TypeError(f"{name} must be a non-empty column name (str), got {value!r}")


def check_lr_step(value: Any) -> None:
    """``lr_step``: None, an int >= 1, or a strictly increasing sequence of ints >= 1."""
    if value is None or (isinstance(value, Integral) and not isinstance(value, bool)):
        check_int({"lr_step": value}, "lr_step", 1, none_ok=True)
        return
    if isinstance(value, list | tuple) and value and all(
        isinstance(v, Integral) and not isinstance(v, bool) for v in value
    ):
        if value[0] >= 1 and all(a < b for a, b in zip(value, value[1:])):
            return
    raise ValueError(
        "lr_step must be None, an int >= 1 (divide the lr by 10 every lr_step epochs) or a "
        "non-empty strictly increasing list/tuple of ints >= 1 (divide it after each of those "
        f"many epochs), got {value!r}"
    )


def check_training_params(
    params: dict[str, Any], *, fitting: bool, columns: Iterable[str]
) -> None:
    """Check the parameters every trained estimator has.

    Parameters
    ----------
    params : dict
        ``estimator.get_params(deep=False)``; must hold ``backbone``, ``pretrained``,
        ``max_epochs``, ``batch_size``, ``lr_step``, ``image_size``, ``resize_size``,
        ``feature_stage``, ``device``, ``mixed_precision``, ``gradient_accumulation_steps``,
        ``num_workers``, ``checkpoint_dir``, ``random_state``, ``verbose`` and ``columns``.
    fitting : bool
        Also check that a ``pretrained`` weight file exists (only ``fit`` reads it; a
        loaded or unpickled model does not need the file any more).
    columns : iterable of str
        Names of the column-name parameters (e.g. ``image_column``).

    Raises
    ------
    TypeError, ValueError
        Naming the parameter, what was expected and what was given.
    """
    if not isinstance(params["backbone"], str) or not params["backbone"]:
        raise TypeError(f"backbone must be a timm model name (str), got {params['backbone']!r}")
    pretrained = params["pretrained"]
    if not isinstance(pretrained, bool | str | os.PathLike):
        raise TypeError(
            "pretrained must be True, False or a path to a .pth/.safetensors state dict, "
            f"got {pretrained!r}"
        )
    if fitting and isinstance(pretrained, str | os.PathLike) and not os.path.isfile(pretrained):
        raise ValueError(f"pretrained: no such weight file {os.fspath(pretrained)!r}")
    check_int(params, "max_epochs", 1)
    check_int(params, "batch_size", 1)
    check_lr_step(params["lr_step"])
    check_int(params, "image_size", 8)
    check_int(params, "resize_size", 8, none_ok=True)
    if params["resize_size"] is not None and params["resize_size"] < params["image_size"]:
        raise ValueError(
            f"resize_size must be >= image_size (random crops of image_size are cut from the "
            f"resized image), got resize_size={params['resize_size']} < "
            f"image_size={params['image_size']}"
        )
    check_int(params, "feature_stage", -100, none_ok=True)
    check_device(params["device"], "device")  # before any data is read
    check_choice(params, "mixed_precision", MIXED_PRECISION)
    check_int(params, "gradient_accumulation_steps", 1)
    check_int(params, "num_workers", 0, none_ok=True)
    checkpoint_dir = params["checkpoint_dir"]
    if checkpoint_dir is not None and not isinstance(checkpoint_dir, str | os.PathLike):
        raise TypeError(
            f"checkpoint_dir must be None or a path (str or os.PathLike), got {checkpoint_dir!r}"
        )
    for name in columns:
        check_column(params, name)
    rs = params["random_state"]
    if isinstance(rs, bool) or (
        rs is not None and not isinstance(rs, Integral | np.random.RandomState)
    ):
        raise TypeError(f"random_state must be None, an int or a numpy RandomState, got {rs!r}")
    check_int(params, "verbose", 0)
