"""The fitted state of a ``CREAMLocalizer`` as ``(meta, tensors)``: save/load, pickle, cache.

One representation serves three uses: :meth:`CREAMLocalizer.save` / ``load``
(a directory, JSON + safetensors), pickling (``__getstate__`` stores the
tensors as safetensors *bytes*, never the live modules or an accelerator), and
the ``memory=`` cache of trained networks. All three check the metadata against
the weights (:mod:`._saved_schema`) before a network is built, and every tensor
is finite. A saved model records no device: the device is chosen when loading.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import torch

from skcream.estimators._common import (
    available_device,
    estimator_meta,
    json_value,
    load_device,
    pickle_state,
    read_estimator,
    strip_prefix,
    unpickle_state,
)
from skcream.persistence import array_from_json, array_to_json, write_saved

__all__ = [
    "NETWORK_ATTRIBUTES",
    "build_model",
    "build_network",
    "check_saved",
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
    "best_epoch_",
)

_CLASS = "CREAMLocalizer"


def build_model(net: dict[str, Any]):
    """An untrained network of the recorded architecture and method (``net`` as in
    :func:`build_network`): CAMNet, or the method's network (ACoL, SPG; ADL's hooks)."""
    from skcream.methods import get_method

    # saves from before the method zoo have no "method": they are CAM networks
    params = dict(net.get("method_params") or {})
    if (net.get("networks") or 1) < 2:
        # saved before wsolevaluation's method trunks (skcream.methods.NETWORKS_REVISION 2):
        # ACoL and SPG sat on the CAM trunk, today's acol_trunk / spg_trunk="cam" (the same
        # tensors, except InceptionV3-SPG's branch widths and InceptionV3-ADL's dropout
        # positions, which cannot be rebuilt and fail the shape check)
        params.setdefault("acol_trunk", "cam")
        params.setdefault("spg_trunk", "cam")
    method = get_method(net.get("method", "cam"), params)
    return method.build(
        # the timm model actually built at fit time (offline efficientnet_lite0 weights live
        # in tf_efficientnet_lite0); older saves without it rebuild the name
        net.get("architecture", net["backbone"]),
        pretrained=False,
        n_classes=int(net["n_classes"]),
        feature_stage=net["feature_stage"],
        large_feature_map=bool(net["large_feature_map"]),
    )


def check_saved(meta: dict[str, Any], shapes, source: str,
                weights_source: str | None = None) -> None:
    """:func:`skcream.estimators._saved_schema.check_localizer` with this estimator's
    network builder (:func:`build_model`): schema and shapes, before anything is allocated."""
    from skcream.estimators._saved_schema import check_localizer

    check_localizer(meta, shapes, source, weights_source, build_model=build_model)


def build_network(net: dict[str, Any]):
    """An untrained CAMNet + ContextEmbeddings of the recorded architecture.

    Parameters
    ----------
    net : dict
        ``backbone``, ``feature_stage``, ``large_feature_map``, ``n_classes``,
        ``feature_dim``, ``momentum``, ``context_threshold``, ``method``, ``method_params``,
        ``networks`` (:data:`skcream.methods.NETWORKS_REVISION` at fit time; 1 when absent).

    Returns
    -------
    model : CAMNet or another method's network
    context : ContextEmbeddings
    """
    from skcream.context import ContextEmbeddings
    model = build_model(net)
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
        if name in ("validation_data", "device"):
            value = None  # data is not saved; the device is chosen when loading
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
        "best_epoch_": est.best_epoch_,
        "net": dict(est._net_spec),
    }
    if with_threshold:  # the threshold of box_threshold=None (box_threshold is a parameter)
        fitted["auto_box_threshold_"] = float(est.auto_box_threshold_)
    return estimator_meta(_CLASS, _jsonable_params(est), fitted)


def fitted_tensors(est) -> dict[str, torch.Tensor]:
    """Network weights (``model.*``) and context tables (``context.fg``, ``context.bg``)."""
    tensors = {f"model.{k}": v for k, v in est.model_.state_dict().items()}
    tensors["context.fg"] = est.context_.fg
    tensors["context.bg"] = est.context_.bg
    return tensors


def restore(est, fitted: dict[str, Any], tensors: dict[str, torch.Tensor], device,
            source: str = "fitted state", *, checked: bool = False) -> None:
    """Check ``fitted`` against ``tensors`` (schema, shapes; skipped when ``checked``),
    rebuild ``model_``/``context_`` from ``tensors`` and set the fitted attributes."""
    from skcream.estimators._saved_schema import shapes_of

    if not checked:
        check_saved(fitted, shapes_of(tensors), source)
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
    if "best_epoch_" in fitted:
        est.best_epoch_ = fitted["best_epoch_"]
    else:  # saved before keep existed: a function of the history (box validation only then)
        from skcream.training import best_epoch

        est.best_epoch_ = best_epoch(est.history_, "val_max_box_acc_v2")
    if "auto_box_threshold_" in fitted:
        est.auto_box_threshold_ = float(fitted["auto_box_threshold_"])
    elif "box_threshold_" in fitted:  # earlier saves: the threshold then in use
        est.auto_box_threshold_ = float(fitted["box_threshold_"])


def save(est, path: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Write ``est`` to the directory ``path`` (see :func:`skcream.persistence.write_saved`)."""
    write_saved(path, fitted_meta(est), fitted_tensors(est), overwrite=overwrite)


def load(cls, path: str | os.PathLike, device=None):
    """Read an estimator written by :func:`save`, onto ``device`` (None: what is available)."""
    def check(meta, shapes):
        check_saved(meta, shapes, os.path.join(os.fspath(path), "skcream.json"),
                    os.path.join(os.fspath(path), "weights.safetensors"))

    target = load_device(device)
    est, fitted, tensors = read_estimator(cls, path, _CLASS, check=check)
    est.device = device
    restore(est, fitted, tensors, target, checked=True)
    return est


def getstate(est) -> dict[str, Any]:
    """``__getstate__``: the fitted tensors as safetensors bytes, modules left out."""

    def fitted_state():
        meta = fitted_meta(est, with_threshold=hasattr(est, "auto_box_threshold_"))["fitted"]
        return meta, fitted_tensors(est)

    return pickle_state(est, ("model_", "context_", "_weights_digest"), fitted_state)


def setstate(est, state: dict[str, Any]) -> None:
    """``__setstate__``: inverse of :func:`getstate`."""
    def restore_here(meta, tensors):
        # a pickle made on a GPU machine unpickles on a CPU-only one: fall back to what is
        # available (and say so) rather than fail in .to("cuda")
        wanted = getattr(est, "device", None)
        device = available_device(wanted)
        if wanted is not None and device != torch.device(wanted):
            warnings.warn(f"device {str(wanted)!r} of the pickled CREAMLocalizer is not "
                          f"available here; using {device}", UserWarning, stacklevel=4)
            est.device = None
        restore(est, meta, tensors, device, "pickled CREAMLocalizer")

    unpickle_state(est, state, restore_here)
