"""Parameter validation of :class:`~skcream.estimators.localizer.CREAMLocalizer`.

scikit-learn's rule: ``__init__`` stores the parameters verbatim and ``fit``
validates them. :func:`validate_params` is what ``fit`` (and every inference
method) calls; it raises ``TypeError``/``ValueError`` naming the parameter and
what was expected, never mutates the estimator, and returns the parameters with
numbers as Python ints / floats / bools, which the estimator then reads its
settings from (at call time, so ``set_params`` after ``fit`` takes effect).

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
from typing import Any

from skcream.estimators._params import (
    MIXED_PRECISION,
    check_bool,
    check_choice,
    check_int,
    check_real,
    check_training_params,
)
from skcream.training import KEEP  # "last" | "best": which epoch fit keeps

__all__ = [
    "INFERENCE_PARAMS",
    "KEEP",
    "KERNELS",
    "MIXED_PRECISION",
    "TRAINING_PARAMS",
    "validate_params",
]

#: parameters that change the learned state (part of the ``memory=`` cache key)
TRAINING_PARAMS = (
    "backbone",
    "method",
    "method_params",
    "pretrained",
    "momentum",
    "context_threshold",
    "max_epochs",
    "batch_size",
    "lr",
    "lr_step",
    "nesterov",
    "image_size",
    "resize_size",
    "feature_stage",
    "large_feature_map",
    "mixed_precision",
    "gradient_accumulation_steps",
    "image_column",
    "label_column",
    "random_state",
    "keep",
)

#: parameters read at inference only (changing them never retrains)
INFERENCE_PARAMS = (
    "n_iter",
    "sigma",
    "kernel",
    "fg_threshold",
    "box_threshold",
    "map_normalization",
    "normalization_percentile",
    "clamp_negative_weights",
)

KERNELS = ("dot", "cosine")


def validate_params(params: dict[str, Any], *, fitting: bool = True) -> dict[str, Any]:
    """Check every constructor parameter of ``CREAMLocalizer``.

    Parameters
    ----------
    params : dict
        ``estimator.get_params(deep=False)``.
    fitting : bool, default=True
        Also check that a ``pretrained`` weight file exists (only ``fit`` reads it; a
        loaded or unpickled model does not need the file any more).

    Returns
    -------
    dict
        The parameters with numbers as Python ints / floats / bools (numpy scalars, e.g.
        from a ``GridSearchCV`` over an ``np.array`` grid, converted): what the estimator
        uses.

    Raises
    ------
    TypeError, ValueError
        Naming the parameter, what was expected and what was given.
    """
    params = check_training_params(
        params, fitting=fitting, columns=("image_column", "label_column", "bbox_column")
    )
    params["n_iter"] = check_int(params, "n_iter", 0)
    params["sigma"] = check_real(params, "sigma", 0.0, low_open=True)
    params["momentum"] = check_real(params, "momentum", 0.0, 1.0)
    params["fg_threshold"] = check_real(params, "fg_threshold", 0.0, 1.0)
    params["context_threshold"] = check_real(params, "context_threshold", 0.0, 1.0)
    check_choice(params, "kernel", KERNELS)
    check_choice(params, "keep", KEEP)
    if fitting and params["keep"] == "best" and params["validation_data"] is None:
        raise ValueError("keep='best' keeps the epoch with the best localization on "
                         "validation_data; pass validation_data (images with boxes, or masks)")
    params["box_threshold"] = check_real(params, "box_threshold", 0.0, 1.0, high_open=True,
                                         none_ok=True)
    params["lr"] = check_real(params, "lr", 0.0, low_open=True)
    from skcream.methods import get_method
    from skcream.methods.normalization import NORMALIZATIONS

    get_method(params["method"], params["method_params"])
    check_choice(params, "map_normalization", NORMALIZATIONS)
    params["normalization_percentile"] = check_real(params, "normalization_percentile", 0.0,
                                                    1.0, none_ok=True)
    for name in ("clamp_negative_weights", "nesterov", "large_feature_map"):
        params[name] = check_bool(params, name)
    memory = params["memory"]
    if memory is not None and not isinstance(memory, str | os.PathLike):
        if not hasattr(memory, "location"):
            raise TypeError(
                f"memory must be None, a directory path or a joblib.Memory, got {memory!r}"
            )
    return params
