"""Parameter validation of :class:`~skcream.estimators.localizer.CREAMLocalizer`.

scikit-learn's rule: ``__init__`` stores the parameters verbatim and ``fit``
validates them. :func:`validate_params` is what ``fit`` (and every inference
method) calls; it raises ``TypeError``/``ValueError`` naming the parameter and
what was expected, and never mutates the estimator.

The parameters fall in two groups, which the ``memory=`` cache relies on:

- :data:`TRAINING_PARAMS` decide the trained network and the learned context
  embeddings; they are part of the cache key.
- :data:`INFERENCE_PARAMS` only change how the fitted state is read out
  (re-activation and box threshold); changing them never retrains.

Everything else (device, workers, verbosity, where to put checkpoints and the
cache, the validation data) changes neither the learned state nor the maps.
"""

from __future__ import annotations

import os
from numbers import Integral, Real
from typing import Any

import numpy as np

__all__ = [
    "INFERENCE_PARAMS",
    "KERNELS",
    "MIXED_PRECISION",
    "TRAINING_PARAMS",
    "validate_params",
]

#: parameters that change the learned state (part of the ``memory=`` cache key)
TRAINING_PARAMS = (
    "backbone",
    "pretrained",
    "momentum",
    "context_threshold",
    "max_epochs",
    "batch_size",
    "lr",
    "lr_step",
    "image_size",
    "resize_size",
    "feature_stage",
    "large_feature_map",
    "mixed_precision",
    "gradient_accumulation_steps",
    "image_column",
    "label_column",
    "random_state",
)

#: parameters read at inference only (changing them never retrains)
INFERENCE_PARAMS = ("n_iter", "sigma", "kernel", "fg_threshold", "box_threshold")

KERNELS = ("dot", "cosine")
MIXED_PRECISION = ("no", "fp16", "bf16")


def _int(params: dict[str, Any], name: str, low: int, *, none_ok: bool = False) -> None:
    value = params[name]
    if value is None and none_ok:
        return
    if isinstance(value, bool) or not isinstance(value, Integral):
        extra = " or None" if none_ok else ""
        raise TypeError(f"{name} must be an int >= {low}{extra}, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


def _real(
    params: dict[str, Any],
    name: str,
    low: float,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    none_ok: bool = False,
) -> None:
    value = params[name]
    if value is None and none_ok:
        return
    lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
    interval = f"{lo}{low}, {'inf' if high is None else high}{hi}"
    if isinstance(value, bool) or not isinstance(value, Real):
        extra = " or None" if none_ok else ""
        raise TypeError(f"{name} must be a real number in {interval}{extra}, got {value!r}")
    ok = np.isfinite(value) and (value > low if low_open else value >= low)
    if high is not None:
        ok = ok and (value < high if high_open else value <= high)
    if not ok:
        raise ValueError(f"{name} must be in {interval}, got {value!r}")


def _choice(params: dict[str, Any], name: str, choices: tuple[str, ...]) -> None:
    value = params[name]
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def _path_or_none(params: dict[str, Any], name: str) -> None:
    value = params[name]
    if value is not None and not isinstance(value, str | os.PathLike):
        raise TypeError(f"{name} must be None or a path (str or os.PathLike), got {value!r}")


def _column(params: dict[str, Any], name: str) -> None:
    value = params[name]
    if not isinstance(value, str) or not value:
        raise TypeError(f"{name} must be a non-empty column name (str), got {value!r}")


def validate_params(params: dict[str, Any], *, fitting: bool = True) -> None:
    """Check every constructor parameter of ``CREAMLocalizer``.

    Parameters
    ----------
    params : dict
        ``estimator.get_params(deep=False)``.
    fitting : bool, default=True
        Also check that a ``pretrained`` weight file exists (only ``fit`` reads it; a
        loaded or unpickled model does not need the file any more).

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
    _int(params, "n_iter", 0)
    _real(params, "sigma", 0.0, low_open=True)
    _real(params, "momentum", 0.0, 1.0)
    _real(params, "fg_threshold", 0.0, 1.0)
    _real(params, "context_threshold", 0.0, 1.0)
    _choice(params, "kernel", KERNELS)
    _real(params, "box_threshold", 0.0, 1.0, high_open=True, none_ok=True)
    _int(params, "max_epochs", 1)
    _int(params, "batch_size", 1)
    _real(params, "lr", 0.0, low_open=True)
    _int(params, "lr_step", 1, none_ok=True)
    _int(params, "image_size", 8)
    _int(params, "resize_size", 8)
    if params["resize_size"] < params["image_size"]:
        raise ValueError(
            f"resize_size must be >= image_size (random crops of image_size are cut from the "
            f"resized image), got resize_size={params['resize_size']} < "
            f"image_size={params['image_size']}"
        )
    _int(params, "feature_stage", -100, none_ok=True)
    if not isinstance(params["large_feature_map"], bool | np.bool_):
        raise TypeError(f"large_feature_map must be a bool, got {params['large_feature_map']!r}")
    device = params["device"]
    if device is not None and not isinstance(device, str) and type(device).__name__ != "device":
        raise TypeError(f"device must be None, a str or a torch.device, got {device!r}")
    _choice(params, "mixed_precision", MIXED_PRECISION)
    _int(params, "gradient_accumulation_steps", 1)
    _int(params, "num_workers", 0)
    _path_or_none(params, "checkpoint_dir")
    memory = params["memory"]
    if memory is not None and not isinstance(memory, str | os.PathLike):
        if not hasattr(memory, "location"):
            raise TypeError(
                f"memory must be None, a directory path or a joblib.Memory, got {memory!r}"
            )
    for name in ("image_column", "label_column", "bbox_column"):
        _column(params, name)
    rs = params["random_state"]
    if rs is not None and not isinstance(rs, Integral | np.random.RandomState):
        raise TypeError(
            f"random_state must be None, an int or a numpy RandomState, got {rs!r}"
        )
    if isinstance(rs, bool):
        raise TypeError(f"random_state must be None, an int or a numpy RandomState, got {rs!r}")
    _int(params, "verbose", 0)
