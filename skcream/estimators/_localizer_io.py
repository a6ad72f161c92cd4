"""The fitted state of a ``CREAMLocalizer`` as ``(meta, tensors)``: save/load, pickle, cache.

One representation serves three uses: :meth:`CREAMLocalizer.save` / ``load``
(a directory, JSON + safetensors), pickling (``__getstate__`` stores the
tensors as safetensors *bytes*, never the live modules or an accelerator), and
the ``memory=`` cache of trained networks.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from skcream.persistence import (
    array_from_json,
    array_to_json,
    read_saved,
    tensors_from_bytes,
    tensors_to_bytes,
    write_saved,
)

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
        ``feature_dim``, ``momentum``, ``context_threshold``.

    Returns
    -------
    model : CAMNet
    context : ContextEmbeddings
    """
    from skcream.backbones import build_backbone
    from skcream.context import ContextEmbeddings
    from skcream.model import CAMNet

    backbone = build_backbone(
        net["backbone"],
        pretrained=False,
        feature_stage=net["feature_stage"],
        large_feature_map=bool(net["large_feature_map"]),
    )
    model = CAMNet(backbone, int(net["n_classes"]))
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
        elif name == "random_state" and isinstance(value, np.random.RandomState):
            value = None
        elif isinstance(value, os.PathLike):
            value = os.fspath(value)
        elif isinstance(value, torch.device):
            value = str(value)
        elif isinstance(value, np.generic):
            value = value.item()
        out[name] = value
    return out


def fitted_meta(est, *, with_threshold: bool = True) -> dict[str, Any]:
    """JSON-ready description of the fitted estimator (no tensors)."""
    import skcream

    fitted = {
        "classes_": array_to_json(est.classes_),
        "class_names_": list(est.class_names_),
        "n_classes_": int(est.n_classes_),
        "feature_dim_": int(est.feature_dim_),
        "feature_shape_": list(est.feature_shape_),
        "data_config_": _plain(est.data_config_),
        "history_": _plain(est.history_),
        "net": dict(est._net_spec),
    }
    if with_threshold:
        fitted["box_threshold_"] = float(est.box_threshold_)
    return {
        "class": _CLASS,
        "skcream_version": skcream.__version__,
        "params": _jsonable_params(est),
        "fitted": fitted,
    }


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    return repr(value)


def fitted_tensors(est) -> dict[str, torch.Tensor]:
    """Network weights (``model.*``) and context tables (``context.fg``, ``context.bg``)."""
    tensors = {f"model.{k}": v for k, v in est.model_.state_dict().items()}
    tensors["context.fg"] = est.context_.fg
    tensors["context.bg"] = est.context_.bg
    return tensors


def restore(est, fitted: dict[str, Any], tensors: dict[str, torch.Tensor], device) -> None:
    """Rebuild ``model_``/``context_`` from ``tensors`` and set the fitted attributes."""
    model, context = build_network(fitted["net"])
    model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    model.load_state_dict(model_state, strict=True)
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
    meta, tensors = read_saved(path)
    if meta.get("class") != _CLASS:
        raise ValueError(f"{os.fspath(path)!r} holds a {meta.get('class')!r}, not a {_CLASS}")
    params = dict(meta["params"])
    known = cls().get_params(deep=False)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(f"{os.fspath(path)!r} has parameters this skcream does not know: {unknown}")
    est = cls(**params)
    restore(est, meta["fitted"], tensors, est._inference_device())
    return est


def getstate(est) -> dict[str, Any]:
    """``__getstate__``: the fitted tensors as safetensors bytes, modules left out."""
    state = {k: v for k, v in est.__dict__.items()
             if k not in ("model_", "context_", "_weights_digest")}
    if est.__sklearn_is_fitted__():
        state["_skcream_fitted"] = {
            "meta": fitted_meta(est, with_threshold=hasattr(est, "box_threshold_"))["fitted"],
            "weights": tensors_to_bytes(fitted_tensors(est)),
        }
    return state


def setstate(est, state: dict[str, Any]) -> None:
    """``__setstate__``: inverse of :func:`getstate`."""
    state = dict(state)
    fitted = state.pop("_skcream_fitted", None)
    est.__dict__.update(state)
    if fitted is not None:
        restore(est, fitted["meta"], tensors_from_bytes(fitted["weights"]),
                est._inference_device())
