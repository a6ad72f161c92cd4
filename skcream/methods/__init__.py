"""WSOL methods of the paper's Table 1, each a set of training hooks CREAM plugs into.

One module per method: :mod:`~skcream.methods.cam` (the baseline), :mod:`~.has`
(Hide-and-Seek), :mod:`~.acol`, :mod:`~.spg`, :mod:`~.adl`, :mod:`~.cutmix`; inference-only
map normalisations (CAM_IVR, RCAM) in :mod:`~.normalization`. The contract a method fulfils
(input / network / loss hooks and the ``readout`` of its map) is in :mod:`~._base`.

``CREAMLocalizer(method=..., method_params=...)`` picks one; :func:`get_method` builds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from skcream.methods._base import WSOLMethod
from skcream.methods.acol import ACoL
from skcream.methods.adl import ADL
from skcream.methods.cam import CAM
from skcream.methods.cutmix import CutMix
from skcream.methods.has import HaS
from skcream.methods.spg import SPG

__all__ = ["METHODS", "NETWORKS_REVISION", "WSOLMethod", "get_method", "method_param_names"]

#: bumped whenever the construction of a method network changes (trunks, initialisation,
#: learning-rate groups), so that ``memory=`` caches do not return a network built the old
#: way; 2: wsolevaluation's trunks and lr rule by name (issue 23)
NETWORKS_REVISION = 2

#: ``method=`` values and their classes, in the order of the paper's Table 1
METHODS: dict[str, type[WSOLMethod]] = {
    m.name: m for m in (CAM, HaS, ACoL, SPG, ADL, CutMix)
}


def method_param_names() -> dict[str, str]:
    """Every known ``method_params`` key and the method it belongs to."""
    return {k: name for name, cls in METHODS.items() for k in cls.PARAMS}


def get_method(method: Any, method_params: Mapping[str, Any] | None = None) -> WSOLMethod:
    """The method ``method`` with ``method_params`` validated.

    Parameters
    ----------
    method : str
        One of :data:`METHODS`.
    method_params : mapping or None
        Hyper-parameters (wsolevaluation's names, e.g. ``has_grid_size``). Keys of *other*
        methods are accepted and not used, so that one dict can serve a grid search over
        ``method``; every value is validated; unknown keys raise.

    Raises
    ------
    ValueError, TypeError
        Naming ``method`` / ``method_params[key]`` and what was expected.
    """
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {tuple(METHODS)}, got {method!r}")
    if method_params is None:
        method_params = {}
    if not isinstance(method_params, Mapping):
        raise TypeError(f"method_params must be a dict or None, got {type(method_params).__name__}")
    owners = method_param_names()
    unknown = sorted(str(k) for k in method_params if k not in owners)
    if unknown:
        cls = METHODS[method]
        raise ValueError(
            f"method_params: unknown keys {unknown}; method {method!r} takes "
            f"{sorted(cls.PARAMS) or 'no parameters'} (all methods: {sorted(owners)})"
        )
    own = {}
    for key, value in method_params.items():
        checked = METHODS[owners[key]].PARAMS[key].check(key, value)
        if owners[key] == method:
            own[key] = checked
    return METHODS[method](**own)
