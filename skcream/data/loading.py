"""DataLoader defaults: worker processes from the CPUs this process may use, pinned memory.

``num_workers=None`` (the estimators' default, "auto") resolves through
:func:`resolve_num_workers`: no workers for small inputs (starting worker processes costs
more than decoding a few hundred images), else one worker per CPU this process may run on
(``os.sched_getaffinity``, shared between the processes of a launcher on this node), minus
one for the training process itself, at most 8.
"""

from __future__ import annotations

import os

from skcream._checks import as_int

__all__ = ["AUTO_MIN_ITEMS", "available_cpus", "auto_num_workers", "pin_memory",
           "resolve_num_workers"]

#: Inputs with fewer items than this get no worker processes under "auto".
AUTO_MIN_ITEMS = 512
_MAX_AUTO_WORKERS = 8


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask; ``os.cpu_count()`` where unknown)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):  # not Linux
        return max(os.cpu_count() or 1, 1)


def auto_num_workers(n_items: int | None) -> int:
    """The "auto" number of DataLoader workers for ``n_items`` inputs (None: unknown, large).

    ``min(8, cpus_per_process - 1)`` with ``cpus_per_process = available_cpus() //
    LOCAL_WORLD_SIZE`` (the launcher's processes on this node), 0 below
    :data:`AUTO_MIN_ITEMS` items.
    """
    if n_items is not None and n_items < AUTO_MIN_ITEMS:
        return 0
    try:
        local = max(int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1), 1)
    except ValueError:
        local = 1
    return max(0, min(_MAX_AUTO_WORKERS, available_cpus() // local - 1))


def resolve_num_workers(value: int | None, n_items: int | None) -> int:
    """``value`` itself, or :func:`auto_num_workers` for None.

    Raises
    ------
    TypeError, ValueError
        ``value`` is not None or an int >= 0 (named ``num_workers``).
    """
    if value is None:
        return auto_num_workers(n_items)
    return as_int(value, "num_workers", low=0)


def pin_memory(device) -> bool:
    """Pinned host memory for batches bound for a CUDA ``device`` (faster async copies)."""
    return getattr(device, "type", str(device)).startswith("cuda")
