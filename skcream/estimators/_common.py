"""Plumbing shared by the trained estimators (``CREAMLocalizer``, ``PseudoBoxRegressor``, ``CREAMReg``).

- :class:`ImageEstimatorMixin`: scikit-learn tags for image inputs, the fitted check, the
  inference device, and dropping fitted attributes before a refit.
- :func:`resolve_seed`, :func:`seeded`: sklearn's ``random_state`` as one int seed, and
  seeded network initialisation that leaves the global torch RNG untouched.
- :func:`train_config`, :func:`train_transform`: the :class:`skcream.training.TrainConfig`
  and training augmentation built from the parameters both estimators share.
- :func:`json_value`, :func:`estimator_meta`, :func:`read_estimator`, :func:`pickle_state`,
  :func:`unpickle_state`, :func:`strip_prefix`: the fitted state as ``(meta, tensors)`` for
  :mod:`skcream.persistence` (save / load) and for pickling (tensors as safetensors bytes,
  never live modules).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from sklearn.exceptions import NotFittedError
from sklearn.utils import check_random_state

from skcream._device import check_device

__all__ = [
    "ImageEstimatorMixin",
    "available_device",
    "estimator_meta",
    "inference_device",
    "json_value",
    "load_device",
    "pickle_state",
    "read_estimator",
    "resolve_seed",
    "seeded",
    "strip_prefix",
    "train_config",
    "train_transform",
    "unpickle_state",
]


# --------------------------------------------------------------------------- sklearn plumbing
def inference_device(device: str | torch.device | None) -> torch.device:
    """``device`` as a torch.device that exists here; None: CUDA when available, else CPU.

    Raises ValueError for an unknown or unavailable device (:func:`skcream._device.check_device`).
    """
    dev = check_device(device, "device")
    if dev is not None:
        return dev
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def available_device(device) -> torch.device:
    """``device`` as a torch.device when this machine has it; None or an unavailable CUDA
    device: CUDA when available, else the CPU (a model trained on a GPU loads anywhere)."""
    if device is not None:
        dev = torch.device(device)
        if dev.type != "cuda" or (torch.cuda.is_available()
                                  and (dev.index or 0) < torch.cuda.device_count()):
            return dev
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_device(device) -> torch.device:
    """The device to load onto: None is what is available; an explicit device must exist."""
    if device is None:
        return available_device(None)
    dev = torch.device(device)
    if available_device(dev) != dev:
        raise ValueError(f"device: {str(device)!r} is not available on this machine; pass "
                         "device=None to use what is available")
    return dev


class ImageEstimatorMixin:
    """Tags, fitted check, device and refit hygiene of an estimator on images.

    Put it first among the bases (before ``RegressorMixin`` / ``TransformerMixin``) so that
    its tags win: inputs are images (not 2-D arrays) and no target is required.

    Class attributes
    ----------------
    _fitted_markers : tuple of str
        Attributes whose presence means "fitted".
    _fit_inputs : str
        What ``fit`` needs, quoted in the not-fitted error.
    """

    _fitted_markers: tuple[str, ...] = ("model_",)
    _fit_inputs: str = "training images and labels"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = getattr(self, "random_state", None) is None
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.target_tags.required = False
        return tags

    def __sklearn_is_fitted__(self) -> bool:
        return all(hasattr(self, name) for name in self._fitted_markers)

    def _check_fitted(self) -> None:
        if not self.__sklearn_is_fitted__():
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                f"{self._fit_inputs} before using this method."
            )

    def _inference_device(self) -> torch.device:
        return inference_device(getattr(self, "device", None))

    def _clear_fitted(self) -> None:
        """Drop every fitted attribute (``name_``) so a refit starts clean."""
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("__")]:
            delattr(self, name)


# --------------------------------------------------------------------------- training
def resolve_seed(random_state: Any) -> int | None:
    """An int seed for torch/Accelerate from sklearn's ``random_state`` (None stays None)."""
    if random_state is None:
        return None
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    return int(check_random_state(random_state).randint(0, 2**31 - 1))


@contextlib.contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Run the body with torch's CPU RNG seeded by ``seed`` (None: unseeded), then restore it."""
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        yield


def train_config(est: Any, seed: int | None, **extra: Any):
    """The :class:`skcream.training.TrainConfig` of ``est``'s training parameters.

    Parameters
    ----------
    est : estimator or namespace of its validated parameters
        Reads ``device``, ``max_epochs``, ``batch_size``, ``lr``, ``lr_step`` (an int: every that many
        epochs; a sequence: after those many epochs), ``nesterov`` (when the estimator has
        it), ``mixed_precision``,
        ``gradient_accumulation_steps``, ``num_workers``, ``checkpoint_dir`` (resume from
        it when set), ``verbose`` and the inference device (CPU there means CPU training).
    seed : int or None
        From :func:`resolve_seed`.
    **extra
        Further TrainConfig fields (e.g. ``head_lr_mult``).
    """
    from skcream.training import TrainConfig

    device = inference_device(est.device)
    step = est.lr_step
    milestones = tuple(int(e) for e in step) if isinstance(step, list | tuple) else None
    return TrainConfig(
        epochs=est.max_epochs,
        batch_size=est.batch_size,
        lr=float(est.lr),
        lr_step_size=None if milestones is not None else step,
        lr_milestones=milestones,
        nesterov=bool(getattr(est, "nesterov", False)),
        mixed_precision=est.mixed_precision,
        gradient_accumulation_steps=est.gradient_accumulation_steps,
        num_workers=est.num_workers,
        checkpoint_dir=est.checkpoint_dir,
        resume=est.checkpoint_dir is not None,
        random_state=seed,
        verbose=est.verbose,
        device="cpu" if device.type == "cpu" else "auto",
        **extra,
    )


def train_transform(est: Any, data_config: Mapping[str, Any], *, flip: bool):
    """Random ``resize_size`` -> ``image_size`` crop (and flip) normalised by ``data_config``
    (``est``: validated parameters, ``resize_size`` resolved)."""
    from skcream.data.transforms import TrainTransform

    return TrainTransform(
        resize=est.resize_size,
        crop=est.image_size,
        flip=flip,
        mean=data_config["mean"],
        std=data_config["std"],
    )


# --------------------------------------------------------------------------- persistence
def json_value(value: Any) -> Any:
    """A parameter or fitted attribute as plain JSON data.

    Paths become strings, devices their name, a ``RandomState`` None (its state is not
    saved), numpy scalars Python scalars, tuples lists; dicts and lists are converted
    item by item; any other object becomes its ``repr``.
    """
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, torch.device):
        return str(value)
    if isinstance(value, np.random.RandomState):
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    return repr(value)


def estimator_meta(class_name: str, params: dict[str, Any], fitted: dict[str, Any]) -> dict:
    """The JSON side of a saved estimator: class, skcream version, parameters, fitted state."""
    import skcream

    return {
        "class": class_name,
        "skcream_version": skcream.__version__,
        "params": params,
        "fitted": fitted,
    }


def read_estimator(
    cls: type, path: str | os.PathLike, class_name: str,
    check: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
) -> tuple[Any, dict[str, Any], dict[str, torch.Tensor]]:
    """Read a directory written with :func:`estimator_meta` + ``write_saved``.

    ``check(meta, shapes)`` (see :func:`skcream.persistence.read_saved`) runs after the
    class and parameter names are checked, before any tensor is materialised.

    Returns
    -------
    est : cls
        Constructed from the saved parameters, not yet fitted.
    fitted : dict
        The ``fitted`` part of the meta.
    tensors : dict of str to Tensor

    Raises
    ------
    ValueError
        The directory holds another class, or parameters this ``cls`` does not know.
    """
    from skcream.persistence import read_saved

    def check_meta(meta: dict[str, Any], shapes: dict[str, Any]) -> None:
        source = os.path.join(os.fspath(path), "skcream.json")
        if meta.get("class") != class_name:
            raise ValueError(f"{source}: holds a {meta.get('class')!r}, not a {class_name}")
        if not isinstance(meta.get("params"), dict):
            raise ValueError(f"{source}: params must be a JSON object")
        unknown = sorted(set(meta["params"]) - set(cls().get_params(deep=False)))
        if unknown:
            raise ValueError(f"{source}: has parameters this skcream does not know: {unknown}")
        if check is not None:
            check(meta, shapes)

    meta, tensors = read_saved(path, check=check_meta)
    return cls(**dict(meta["params"])), meta["fitted"], tensors


def strip_prefix(tensors: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors named ``prefix<name>``, keyed by ``<name>`` (a module's state dict)."""
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def pickle_state(
    est: Any,
    modules: tuple[str, ...],
    fitted_state: Callable[[], tuple[dict[str, Any], dict[str, torch.Tensor]]],
) -> dict[str, Any]:
    """``__getstate__``: ``est.__dict__`` without the live ``modules``, plus, when fitted,
    ``fitted_state()``'s meta and its tensors as safetensors bytes."""
    from skcream.persistence import tensors_to_bytes

    state = {k: v for k, v in est.__dict__.items() if k not in modules}
    if est.__sklearn_is_fitted__():
        meta, tensors = fitted_state()
        state["_skcream_fitted"] = {"meta": meta, "weights": tensors_to_bytes(tensors)}
    return state


def unpickle_state(
    est: Any,
    state: dict[str, Any],
    restore: Callable[[dict[str, Any], dict[str, torch.Tensor]], None],
) -> None:
    """``__setstate__``: inverse of :func:`pickle_state` (``restore(meta, tensors)``)."""
    from skcream.persistence import tensors_from_bytes

    state = dict(state)
    fitted = state.pop("_skcream_fitted", None)
    est.__dict__.update(state)
    if fitted is not None:
        source = f"pickled {type(est).__name__}"
        restore(fitted["meta"], tensors_from_bytes(fitted["weights"], source=source))
