"""Checks of a saved estimator's JSON before any network is built or tensor allocated.

A saved (or pickled, or ``memory=``-cached) estimator is ``(meta, tensors)``. Before the
network is rebuilt, :func:`check_localizer` and :func:`check_regressor` check the JSON
against a schema (types and ranges of every field the rebuild reads, the architecture is
one that skcream itself records for the backbone) and against the weights' names and
shapes, read from the safetensors header (or from the tensors already in memory). The
network is then rebuilt on PyTorch's ``meta`` device (shapes only, no memory) and its
state dict compared with the weights, so a missing, extra or resized tensor is named
before anything real is allocated. Every error is one ``ValueError`` naming the file (or
source) and the field.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch

__all__ = ["check_localizer", "check_network_shapes", "check_regressor", "shapes_of"]

Shapes = Mapping[str, tuple[str, tuple[int, ...]]]

_MAX_STAGE = 16


def shapes_of(tensors: Mapping[str, torch.Tensor]) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``{name: (dtype, shape)}`` of tensors in memory (the form of a safetensors header)."""
    return {k: (str(v.dtype), tuple(int(s) for s in v.shape)) for k, v in tensors.items()}


class _Fields:
    """Typed access to a JSON object whose errors name the source and the dotted field."""

    def __init__(self, obj: Any, source: str, prefix: str) -> None:
        if not isinstance(obj, Mapping):
            raise ValueError(f"{source}: {prefix.rstrip('.') or 'the file'} must be a JSON "
                             f"object, got {type(obj).__name__}")
        self.obj, self.source, self.prefix = obj, source, prefix

    def fail(self, name: str, expected: str, value: Any = None) -> ValueError:
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        return ValueError(f"{self.source}: {self.prefix}{name} = {shown}: expected {expected}")

    def get(self, name: str, *, optional: bool = False) -> Any:
        if name not in self.obj:
            if optional:
                return None
            raise ValueError(f"{self.source}: {self.prefix}{name} is missing")
        return self.obj[name]

    def int(self, name: str, low: int, high: int, *, none_ok: bool = False) -> int | None:
        v = self.get(name, optional=none_ok)
        if v is None and none_ok:
            return None
        if isinstance(v, bool) or not isinstance(v, Integral) or not low <= v <= high:
            raise self.fail(name, f"an int in [{low}, {high}]", v)
        return int(v)

    def real(self, name: str, low: float, high: float, *, high_open: bool = False) -> float:
        v = self.get(name)
        ok = isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v)
        if not ok or not low <= v <= high or (high_open and v == high):
            raise self.fail(name, f"a number in [{low}, {high}{')' if high_open else ']'}", v)
        return float(v)

    def bool(self, name: str) -> bool:
        v = self.get(name)
        if not isinstance(v, bool):
            raise self.fail(name, "true or false", v)
        return v

    def str(self, name: str, *, optional: bool = False) -> str | None:
        v = self.get(name, optional=optional)
        if v is None and optional:
            return None
        if not isinstance(v, str) or not v:
            raise self.fail(name, "a non-empty string", v)
        return v

    def list(self, name: str) -> list:
        v = self.get(name)
        if not isinstance(v, list):
            raise self.fail(name, "a list", v)
        return v

    def sub(self, name: str) -> _Fields:
        return _Fields(self.get(name), self.source, f"{self.prefix}{name}.")


def _recorded_architectures(backbone: str) -> set[str]:
    """The timm names skcream may record as the architecture built for ``backbone``."""
    from skcream.weights import OFFLINE_ARCHITECTURE

    names = {backbone, backbone.split(".")[0]}
    if backbone in OFFLINE_ARCHITECTURE:
        names.add(OFFLINE_ARCHITECTURE[backbone])
    return names


def _check_backbone_fields(net: _Fields, params: _Fields | None) -> str:
    """Check ``backbone`` / ``architecture``; return the architecture to build."""
    import timm

    backbone = net.str("backbone")
    if not timm.is_model(backbone):
        raise net.fail("backbone", "a timm model name", backbone)
    if params is not None and params.get("backbone", optional=True) not in (None, backbone):
        raise net.fail("backbone", f"the saved parameter backbone "
                       f"{params.get('backbone')!r}", backbone)
    architecture = net.str("architecture", optional=True) or backbone
    allowed = _recorded_architectures(backbone)
    if architecture not in allowed:
        raise net.fail("architecture", f"one of {sorted(allowed)} (the timm model skcream "
                       f"builds for backbone {backbone!r})", architecture)
    net.int("feature_stage", -_MAX_STAGE, _MAX_STAGE, none_ok=True)
    return architecture


def _shape(shapes: Shapes, name: str, source: str) -> tuple[int, ...]:
    if name not in shapes:
        raise ValueError(f"{source}: tensor {name!r} is missing")
    return tuple(shapes[name][1])


def check_network_shapes(
    build: Callable[[], torch.nn.Module], shapes: Shapes, prefix: str, source: str
) -> None:
    """Build the network on the ``meta`` device (no memory) and compare its state dict with
    the saved tensors named ``prefix<key>``: every key present, none extra, same shapes.

    Raises
    ------
    ValueError
        Naming ``source`` and the first missing, unexpected or resized tensor.
    """
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in build().state_dict().items()}
    saved = {k[len(prefix):]: tuple(s) for k, (_, s) in shapes.items() if k.startswith(prefix)}
    missing = [k for k in expected if k not in saved]
    extra = [k for k in saved if k not in expected]
    resized = [k for k in expected if k in saved and saved[k] != expected[k]]
    if missing:
        raise ValueError(f"{source}: tensor {prefix + missing[0]!r} is missing "
                         f"({len(missing)} missing in all)")
    if extra:
        raise ValueError(f"{source}: tensor {prefix + extra[0]!r} does not belong to the "
                         f"network ({len(extra)} unexpected in all)")
    if resized:
        k = resized[0]
        raise ValueError(f"{source}: tensor {prefix + k!r} has shape {list(saved[k])}, the "
                         f"network expects {list(expected[k])}")


def _check_data_config(fitted: _Fields) -> None:
    cfg = fitted.sub("data_config_")
    for key in ("mean", "std"):
        v = cfg.list(key)
        ok = len(v) == 3 and all(isinstance(x, Real) and not isinstance(x, bool)
                                 and math.isfinite(x) for x in v)
        if not ok or (key == "std" and min(v) <= 0):
            raise cfg.fail(key, "3 finite numbers" + (" > 0" if key == "std" else ""), v)


def _sections(meta: dict[str, Any], source: str) -> tuple[Any, Any, Any]:
    """The ``params`` (None when absent), ``fitted`` and ``fitted.net`` fields of a saved
    estimator's JSON (a JSON without ``fitted`` is read as the fitted record itself)."""
    root = _Fields(meta, source, "")
    params = root.sub("params") if "params" in meta else None
    fitted = root.sub("fitted") if "fitted" in meta else _Fields(meta, source, "fitted.")
    return params, fitted, fitted.sub("net")


def check_localizer(meta: Mapping[str, Any], shapes: Shapes, source: str,
                    weights_source: str | None = None, *,
                    build_model: Callable[[dict[str, Any]], torch.nn.Module]) -> None:
    """Check a saved ``CREAMLocalizer``'s metadata against the schema and the weights' shapes.

    Parameters
    ----------
    meta : mapping
        The whole saved JSON (``params``, ``fitted``) or, with no ``fitted`` key, the
        ``fitted`` part itself (pickles and the ``memory=`` cache).
    shapes : mapping of str to (dtype, shape)
        The weights' names and shapes (safetensors header or :func:`shapes_of`).
    source : str
        The JSON file (named in errors).
    weights_source : str, optional
        The weights file (named in errors about tensors); default ``source``.
    build_model : callable
        ``build_model(net) -> nn.Module``: the estimator's untrained network for the checked
        ``fitted.net`` record (built on the ``meta`` device to compare the state dict).
        Passed in by the estimator, so that this module depends on no estimator.
    """
    weights_source = weights_source or source
    params, fitted, net = _sections(meta, source)
    architecture = _check_backbone_fields(net, params)
    net.bool("large_feature_map")
    n_classes = net.int("n_classes", 2, 10**7)
    dim = net.int("feature_dim", 1, 10**6)
    net.real("momentum", 0.0, 1.0)
    net.real("context_threshold", 0.0, 1.0)
    net.int("networks", 1, 10**6, none_ok=True)  # skcream.methods.NETWORKS_REVISION; older: none
    # the WSOL method (saves from before the method zoo have none: CAM); ACoL's class maps
    # come from a 1x1 conv on its branch features (feature_dim = the branch width)
    from skcream.methods import METHODS, get_method

    method = net.obj.get("method", "cam")
    if method not in METHODS:
        raise net.fail("method", f"one of {list(METHODS)}", method)
    try:
        get_method(method, net.obj.get("method_params"))
    except (TypeError, ValueError) as exc:
        raise net.fail("method_params", f"valid parameters of {method!r} ({exc})",
                       net.obj.get("method_params")) from None
    head_name = "model.classifier_a.weight" if method == "acol" else "model.head.weight"
    head = _shape(shapes, head_name, weights_source)
    if head[:2] != (n_classes, dim) or head[2:] not in ((), (1, 1)):
        raise net.fail("n_classes", f"the head's shape in {weights_source}: {head_name} "
                       f"is {list(head)} for (n_classes, feature_dim) = "
                       f"({n_classes}, {dim})", n_classes)
    for name in ("context.fg", "context.bg"):
        got = _shape(shapes, name, weights_source)
        if got != (n_classes, dim):
            raise ValueError(f"{weights_source}: tensor {name!r} has shape {list(got)}, "
                             f"expected [{n_classes}, {dim}] (fitted.net)")
    if fitted.int("n_classes_", 2, 10**7) != n_classes:
        raise fitted.fail("n_classes_", f"net.n_classes = {n_classes}", fitted.get("n_classes_"))
    if fitted.int("feature_dim_", 1, 10**6) != dim:
        raise fitted.fail("feature_dim_", f"net.feature_dim = {dim}", fitted.get("feature_dim_"))
    classes = fitted.sub("classes_")
    try:
        dtype = np.dtype(classes.str("dtype"))
    except TypeError:
        raise classes.fail("dtype", "a numpy dtype string", classes.get("dtype")) from None
    if dtype.kind not in "biufU":
        raise classes.fail("dtype", "ints, floats, bools or strings", classes.get("dtype"))
    values = classes.list("values")
    if len(values) != n_classes or len(set(map(repr, values))) != len(values):
        raise classes.fail("values", f"{n_classes} distinct labels, one per row of the head "
                           f"({head_name} {list(head)})", values)
    names = fitted.list("class_names_")
    if len(names) != n_classes or not all(isinstance(n, str) for n in names):
        raise fitted.fail("class_names_", f"{n_classes} strings", names)
    fshape = fitted.list("feature_shape_")
    if len(fshape) != 2 or not all(isinstance(s, int) and s >= 1 for s in fshape):
        raise fitted.fail("feature_shape_", "[h, w], two positive ints", fshape)
    _check_data_config(fitted)
    history = fitted.list("history_")
    if not all(isinstance(r, dict) for r in history):
        raise fitted.fail("history_", "a list of per-epoch objects", history)
    if "best_epoch_" in fitted.obj:  # absent in saves from before keep="best"
        fitted.int("best_epoch_", 1, max(len(history), 1), none_ok=True)
    for name in ("auto_box_threshold_", "box_threshold_"):  # box_threshold_: earlier saves
        if name in fitted.obj:
            fitted.real(name, 0.0, 1.0, high_open=True)

    def build():
        return build_model({**net.obj, "architecture": architecture})

    check_network_shapes(build, shapes, "model.", weights_source)


def check_regressor(meta: Mapping[str, Any], shapes: Shapes, source: str,
                    weights_source: str | None = None, *,
                    build_model: Callable[[dict[str, Any]], torch.nn.Module]) -> None:
    """Like :func:`check_localizer` for a saved ``PseudoBoxRegressor``."""
    from skcream.backbones import MODIFICATIONS
    from skcream.estimators._regressor_arch import ARCHITECTURES

    weights_source = weights_source or source
    params, fitted, net = _sections(meta, source)
    architecture = _check_backbone_fields(net, params)
    # saves from before the "psol" architecture record none: "gap"
    network = net.obj.get("network", "gap")
    if network not in ARCHITECTURES:
        raise net.fail("network", f"one of {list(ARCHITECTURES)}", network)
    if params is not None and params.get("architecture", optional=True) not in (None, network):
        raise net.fail("network", f"the saved parameter architecture "
                       f"{params.get('architecture')!r}", network)
    if net.get("modification") not in MODIFICATIONS:
        raise net.fail("modification", f"one of {MODIFICATIONS}", net.get("modification"))
    hidden = net.int("hidden", 1, 10**6)
    dim = fitted.int("feature_dim_", 1, 10**6)
    got = _shape(shapes, "model.head.0.weight", weights_source)
    if got != (hidden, dim):
        raise net.fail("hidden", f"the head's shape in {weights_source}: model.head.0.weight "
                       f"is {list(got)} for (hidden, feature_dim_) = ({hidden}, {dim})", hidden)
    fitted.int("n_train_", 1, 10**12)
    _check_data_config(fitted)
    if not isinstance(fitted.list("history_"), list):
        raise fitted.fail("history_", "a list", fitted.get("history_"))

    def build():
        return build_model({**net.obj, "architecture": architecture})

    check_network_shapes(build, shapes, "model.", weights_source)
