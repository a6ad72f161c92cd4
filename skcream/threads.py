"""How many intra-op threads torch uses while skcream runs it.

On a machine where this process may use at most two CPU cores, every skcream call that runs
torch (``fit``, ``predict``, ``transform``, ``score``, ``evaluate``, ``report``, ... of the
estimators, and every ``skcream`` command) runs torch with **one** intra-op thread and puts
the previous count back afterwards. Measured side by side on our 2-core machine shared with
other jobs (``benchmarks/bench_doc_timings.py``, QUICK preset, load average 2.7-2.9,
2026-12-06): two threads, torch's own default there, made one training epoch 4-8x and
``predict`` about 9x slower, because OpenMP threads spin while they wait for a core another
process holds; on the idle machine (load average 1.0, 2026-12-07) two threads were 1.7x
faster for the epoch and 1.4x for ``predict``. One thread is the rule: its worst case is
mild, two threads' is severe, and every number the README states was measured with it (a
different thread count may change a network's last digits). With more usable cores torch's
own setting is kept.

The rule gives way to any choice of yours, in this order:

1. inside ``with torch_threads(n):`` (also what the CLI's ``--threads N`` does), n threads;
2. the environment variable ``SKCREAM_TORCH_THREADS``: a number of threads, or ``torch`` to
   leave torch's setting alone;
3. ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` set: torch's setting is left alone;
4. ``torch.set_num_threads(n)`` called after skcream was imported (the count differs from
   the one skcream found): left alone.

:func:`torch_threads` is the rule itself when called without a number.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch

from skcream._checks import as_int

__all__ = ["ENV", "default_threads", "torch_threads", "usable_cores", "with_thread_rule"]

#: environment variable overriding the rule: a positive int, or "torch" (leave torch alone)
ENV = "SKCREAM_TORCH_THREADS"
#: at most this many usable cores: one intra-op thread
SMALL_MACHINE_CORES = 2

#: torch's intra-op thread count when skcream first imported this module
_FOUND = torch.get_num_threads()
#: depth of explicit ``torch_threads(n)`` blocks (the rule does not touch them)
_explicit = 0

F = TypeVar("F", bound=Callable[..., Any])


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def default_threads() -> int | None:
    """The rule: 1 on a machine with at most 2 usable cores, else None (torch's own)."""
    return 1 if usable_cores() <= SMALL_MACHINE_CORES else None


def _env_threads() -> int | str | None:
    """``SKCREAM_TORCH_THREADS`` as a positive int, ``"torch"``, or None when unset."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return None
    if text.lower() == "torch":
        return "torch"
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{ENV} must be a positive number of threads or 'torch', got {text!r}")
    return value


@contextlib.contextmanager
def torch_threads(threads: int | None = None) -> Iterator[int]:
    """Run the block with ``threads`` intra-op threads, then restore torch's count.

    Parameters
    ----------
    threads : int or None, default=None
        A positive count, kept by every skcream call inside the block. None: the rule of
        this module (``SKCREAM_TORCH_THREADS`` if set, else 1 thread on at most 2 usable
        cores, else torch's current count).

    Yields
    ------
    int
        The thread count in force inside the block.
    """
    global _explicit
    threads = as_int(threads, "threads", low=1, none_ok=True)  # any integer type
    before = torch.get_num_threads()
    if threads is None:
        env = _env_threads()
        if isinstance(env, int):
            threads = env
        elif env is None:
            threads = default_threads()
    n = before if threads is None else threads
    torch.set_num_threads(n)
    _explicit += 1
    try:
        yield n
    finally:
        _explicit -= 1
        torch.set_num_threads(before)


def _rule_applies() -> bool:
    """False when the user chose the thread count (see the module docstring)."""
    if _explicit:
        return False
    env = _env_threads()
    if env is not None:
        return env != "torch"
    if any(os.environ.get(v, "").strip() for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")):
        return False
    return torch.get_num_threads() == _FOUND


def with_thread_rule(method: F) -> F:
    """Decorate an estimator method that runs torch: it runs under :func:`torch_threads`
    (the rule) unless the user chose the thread count; the count is restored afterwards."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not _rule_applies():
            return method(*args, **kwargs)
        with torch_threads():
            return method(*args, **kwargs)

    wrapper.__skcream_thread_rule__ = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]
