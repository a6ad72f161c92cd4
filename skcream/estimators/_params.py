"""Parameter checks shared by the trained estimators (``CREAMLocalizer``, ``PseudoBoxRegressor``).

scikit-learn's rule: ``__init__`` stores the parameters verbatim and ``fit`` validates them.
Each check reads ``params`` (``estimator.get_params(deep=False)``), raises ``TypeError`` /
``ValueError`` naming the parameter, what was expected and what was given, and never
mutates anything. The numeric checks return the value as a Python int / float / bool
(:mod:`skcream._checks`): a ``GridSearchCV`` over ``np.array`` grids passes numpy scalars,
and the estimators use the returned values, never the raw parameter.
:func:`check_training_params` checks the parameters both estimators share (backbone,
weights, training loop, input sizes, device, columns, seed).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from numbers import Integral
from typing import Any

import numpy as np

from skcream._checks import as_bool, as_int, as_real, plain
from skcream._device import check_device

__all__ = [
    "MIXED_PRECISION",
    "check_bool",
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


def check_int(params: dict[str, Any], name: str, low: int, *, none_ok: bool = False) -> int | None:
    """``params[name]`` as an int >= ``low`` (or None when ``none_ok``); bools are refused.

    Any ``numbers.Integral`` is accepted and returned as a Python int
    (:func:`skcream._checks.as_int`)."""
    return as_int(params[name], name, low=low, none_ok=none_ok)


def check_real(
    params: dict[str, Any],
    name: str,
    low: float,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    none_ok: bool = False,
) -> float | None:
    """``params[name]`` as a finite float in the interval (bounds open or closed).

    Any ``numbers.Real`` is accepted and returned as a Python float
    (:func:`skcream._checks.as_real`)."""
    return as_real(params[name], name, low=low, high=high, low_open=low_open,
                   high_open=high_open, none_ok=none_ok)


def check_bool(params: dict[str, Any], name: str) -> bool:
    """``params[name]`` as a Python bool (``bool`` or ``np.bool_``)."""
    return as_bool(params[name], name)


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


def check_lr_step(value: Any) -> int | tuple[int, ...] | None:
    """``lr_step``: None, an int >= 1, or a strictly increasing sequence of ints >= 1; returned
    as None, an int or a tuple of ints."""
    if value is None or (isinstance(value, Integral) and not isinstance(value, bool)):
        return check_int({"lr_step": value}, "lr_step", 1, none_ok=True)
    if isinstance(value, list | tuple | np.ndarray) and len(value) and all(
        isinstance(v, Integral) and not isinstance(v, bool) for v in value
    ):
        steps = tuple(int(v) for v in value)
        if steps[0] >= 1 and all(a < b for a, b in zip(steps, steps[1:])):
            return steps
    raise ValueError(
        "lr_step must be None, an int >= 1 (divide the lr by 10 every lr_step epochs) or a "
        "non-empty strictly increasing list/tuple of ints >= 1 (divide it after each of those "
        f"many epochs), got {value!r}"
    )


def check_training_params(
    params: dict[str, Any], *, fitting: bool, columns: Iterable[str]
) -> dict[str, Any]:
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

    Returns
    -------
    dict
        ``params`` with every numpy scalar as its Python value and the checked numbers as
        Python ints / floats (what the estimator then uses: see :mod:`skcream._checks`).

    Raises
    ------
    TypeError, ValueError
        Naming the parameter, what was expected and what was given.
    """
    params = {k: plain(v) for k, v in params.items()}
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
    for name, low in (("max_epochs", 1), ("batch_size", 1), ("image_size", 8),
                      ("gradient_accumulation_steps", 1), ("verbose", 0)):
        params[name] = check_int(params, name, low)
    params["resize_size"] = check_int(params, "resize_size", 8, none_ok=True)
    params["lr_step"] = check_lr_step(params["lr_step"])
    if params["resize_size"] is not None and params["resize_size"] < params["image_size"]:
        raise ValueError(
            f"resize_size must be >= image_size (random crops of image_size are cut from the "
            f"resized image), got resize_size={params['resize_size']} < "
            f"image_size={params['image_size']}"
        )
    # None becomes its value here, the one place every path reads it from (training crops,
    # PSOL's evaluation frame, ten-crop classes, cache keys): None and 256 at 224 are one run
    params["resize_size"] = resolved_resize_size(params["image_size"], params["resize_size"])
    params["feature_stage"] = check_int(params, "feature_stage", -100, none_ok=True)
    check_device(params["device"], "device")  # before any data is read
    check_choice(params, "mixed_precision", MIXED_PRECISION)
    params["num_workers"] = check_int(params, "num_workers", 0, none_ok=True)
    checkpoint_dir = params["checkpoint_dir"]
    if checkpoint_dir is not None and not isinstance(checkpoint_dir, str | os.PathLike):
        raise TypeError(
            f"checkpoint_dir must be None or a path (str or os.PathLike), got {checkpoint_dir!r}"
        )
    for name in columns:
        check_column(params, name)
    rs = params["random_state"]  # a numpy integer is already a Python int (plain)
    if isinstance(rs, bool) or (
        rs is not None and not isinstance(rs, Integral | np.random.RandomState)
    ):
        raise TypeError(f"random_state must be None, an int or a numpy RandomState, got {rs!r}")
    return params
