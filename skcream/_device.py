"""Fail-fast validation of a ``device`` argument (before any data is read or training starts).

``torch.device("cuda:7")`` succeeds on a machine without CUDA, and training placed on it
would only fail when the finished model is moved there; :func:`check_device` instead
refuses a device this machine does not have, naming the argument.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["check_device"]

_AVAILABLE = "None/'auto', 'cpu', 'cuda', 'cuda:N', 'mps' or 'xpu'"


def _backend_count(kind: str) -> tuple[bool, int]:
    """(available, device count) of the accelerator backend ``kind``."""
    if kind == "cuda":
        return torch.cuda.is_available(), torch.cuda.device_count()
    if kind == "mps":
        available = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
        return available, int(available)
    if kind == "xpu":
        xpu = getattr(torch, "xpu", None)
        available = bool(xpu is not None and xpu.is_available())
        return available, xpu.device_count() if available else 0
    return False, 0


def check_device(device: Any, name: str = "device") -> torch.device | None:
    """Return ``device`` as a :class:`torch.device` that exists here (None for auto).

    Parameters
    ----------
    device : None, "auto", str or torch.device
        None or ``"auto"``: CUDA when available, else the CPU (returned as None).
    name : str
        The argument's name in error messages (e.g. ``"device"`` or ``"--device"``).

    Returns
    -------
    torch.device or None

    Raises
    ------
    TypeError
        ``device`` is not None, a str or a torch.device.
    ValueError
        An unknown device name (``"gpu"``, ``"tpu"``), a backend this machine lacks
        (``"cuda"`` without CUDA) or an index beyond its device count (``"cuda:7"``).
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        return None
    if not isinstance(device, str | torch.device):
        raise TypeError(f"{name}: expected None, 'auto', a str or a torch.device, got {device!r}")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{name}: unknown device {device!r}; expected {_AVAILABLE}") from None
    if dev.type == "cpu":
        return dev
    if dev.type not in ("cuda", "mps", "xpu"):
        raise ValueError(f"{name}: device type {dev.type!r} is not supported; expected {_AVAILABLE}")
    available, count = _backend_count(dev.type)
    if not available:
        raise ValueError(
            f"{name}: {str(device)!r} requested but {dev.type.upper()} is not available on this "
            "machine (use 'cpu', or None/'auto' to pick CUDA only when present)"
        )
    if dev.index is not None and dev.index >= count:
        raise ValueError(
            f"{name}: {str(device)!r} requested but this machine has {count} {dev.type} "
            f"device(s) (indices 0..{count - 1})"
        )
    return dev
