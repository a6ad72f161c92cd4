"""The fitted state of a ``CREAMLocalizer`` as ``(meta, tensors)``: save/load, pickle, cache.

One representation serves three uses: :meth:`CREAMLocalizer.save` / ``load``
(a directory, JSON + safetensors), pickling (``__getstate__`` stores the
tensors as safetensors *bytes*, never the live modules or an accelerator), and
the ``memory=`` cache of trained networks.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from skcream.estimators._common import (
    estimator_meta,
    json_value,
    pickle_state,
    read_estimator,
    strip_prefix,
    unpickle_state,
)
from skcream.persistence import array_from_json, array_to_json, write_saved

__all__ = [
    "NETWORK_ATTRIBUTES",
    "build_network",
    "fitted_meta",
    "fitted_tensors",
    "getstate",
    "load",
    "restore",
    "save",
    "setstate",
]

#: attributes restored by :func:`restore` (besides ``model_`` and ``context_``)
NETWORK_ATTRIBUTES = (
    "classes_",
    "class_names_",
    "n_classes_",
    "feature_dim_",
    "feature_shape_",
    "data_config_",
    "history_",
)

_CLASS = "CREAMLocalizer"


def build_network(net: dict[str, Any]):
    """An untrained CAMNet + ContextEmbeddings of the recorded architecture.

    Parameters
    ----------
    net : dict
        ``backbone``, ``feature_stage``, ``large_feature_map``, ``n_classes``,
        ``feature_dim``, ``momentum``, ``context_threshold``, ``method``, ``method_params``.

    Returns
    -------
    model : CAMNet or another method's network
    context : ContextEmbeddings
    """
    from skcream.backbones import build_backbone
    from skcream.context import ContextEmbeddings
    from skcream.methods import get_method

    backbone = build_backbone(
        # the timm model actually built at fit time (offline efficientnet_lite0 weights live
        # in tf_efficientnet_lite0); older saves without it rebuild the name
        net.get("architecture", net["backbone"]),
        pretrained=False,
        feature_stage=net["feature_stage"],
        large_feature_map=bool(net["large_feature_map"]),
    )
    # saves from before the method zoo have no "method": they are CAM networks
    method = get_method(net.get("method", "cam"), net.get("method_params"))
    model = method.build_network(backbone, int(net["n_classes"]))
    context = ContextEmbeddings(
        int(net["n_classes"]),
        int(net["feature_dim"]),
        momentum=float(net["momentum"]),
        fg_threshold=float(net["context_threshold"]),
        random_state=0,
    )
    return model, context


def _jsonable_params(est) -> dict[str, Any]:
    params = est.get_params(deep=False)
    out: dict[str, Any] = {}
    for name, value in params.items():
        if name == "validation_data":
            value = None
        elif name == "memory":
            from skcream.estimators._cache import cache_location

            loc = cache_location(value)
            value = None if loc is None else os.fspath(loc)
        out[name] = json_value(value)
    return out


def fitted_meta(est, *, with_threshold: bool = True) -> dict[str, Any]:
    """JSON-ready description of the fitted estimator (no tensors)."""
    fitted = {
        "classes_": array_to_json(est.classes_),
        "class_names_": list(est.class_names_),
        "n_classes_": int(est.n_classes_),
        "feature_dim_": int(est.feature_dim_),
        "feature_shape_": list(est.feature_shape_),
        "data_config_": json_value(est.data_config_),
        "history_": json_value(est.history_),
        "net": dict(est._net_spec),
    }
    if with_threshold:
        fitted["box_threshold_"] = float(est.box_threshold_)
    return estimator_meta(_CLASS, _jsonable_params(est), fitted)


def fitted_tensors(est) -> dict[str, torch.Tensor]:
    """Network weights (``model.*``) and context tables (``context.fg``, ``context.bg``)."""
    tensors = {f"model.{k}": v for k, v in est.model_.state_dict().items()}
    tensors["context.fg"] = est.context_.fg
    tensors["context.bg"] = est.context_.bg
    return tensors


def restore(est, fitted: dict[str, Any], tensors: dict[str, torch.Tensor], device) -> None:
    """Rebuild ``model_``/``context_`` from ``tensors`` and set the fitted attributes."""
    model, context = build_network(fitted["net"])
    model.load_state_dict(strip_prefix(tensors, "model."), strict=True)
    context.load_state_dict({"fg": tensors["context.fg"], "bg": tensors["context.bg"]})
    est.model_ = model.to(device).eval()
    est.context_ = context.to(device)
    est._net_spec = dict(fitted["net"])
    est.classes_ = array_from_json(fitted["classes_"])
    est.class_names_ = list(fitted["class_names_"])
    est.n_classes_ = int(fitted["n_classes_"])
    est.feature_dim_ = int(fitted["feature_dim_"])
    est.feature_shape_ = tuple(fitted["feature_shape_"])
    est.data_config_ = dict(fitted["data_config_"])
    est.history_ = list(fitted["history_"])
    if "box_threshold_" in fitted:
        est.box_threshold_ = float(fitted["box_threshold_"])


def save(est, path: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Write ``est`` to the directory ``path`` (see :func:`skcream.persistence.write_saved`)."""
    write_saved(path, fitted_meta(est), fitted_tensors(est), overwrite=overwrite)


def load(cls, path: str | os.PathLike):
    """Read an estimator written by :func:`save`."""
    est, fitted, tensors = read_estimator(cls, path, _CLASS)
    restore(est, fitted, tensors, est._inference_device())
    return est


def getstate(est) -> dict[str, Any]:
    """``__getstate__``: the fitted tensors as safetensors bytes, modules left out."""

    def fitted_state():
        meta = fitted_meta(est, with_threshold=hasattr(est, "box_threshold_"))["fitted"]
        return meta, fitted_tensors(est)

    return pickle_state(est, ("model_", "context_", "_weights_digest"), fitted_state)


def setstate(est, state: dict[str, Any]) -> None:
    """``__setstate__``: inverse of :func:`getstate`."""
    unpickle_state(
        est, state, lambda meta, tensors: restore(est, meta, tensors, est._inference_device())
    )
