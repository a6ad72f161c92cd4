"""PxAP pixel counts per histogram bin: one compiled pass per map.

The reference (wsolevaluation's ``MaskEvaluator``) boolean-indexes each map and calls
``np.histogram`` on its positive and negative pixels with the edges
``np.append(np.arange(0, 1, interval), [1, 2, 3])``; for array edges ``np.histogram``
sorts the values and bins them by ``searchsorted``. A score ``v`` in [0, 1] falls in
bin ``searchsorted(edges, v, side="right") - 1``. Here each pixel's bin is found
exactly against the same float64 edges: a first guess ``min(trunc(v * n), n)`` (off
by at most a step or two next to an edge, as ``n * interval`` is within ``interval``
of 1), then moved down while ``edges[k] > v`` and up while ``edges[k + 1] <= v``, so
the result is the ``searchsorted`` bin whatever the rounding of the guess. When the
edges are ``j / n`` to within 1e-10 (0.01, 0.001: :func:`bracket_ok`), two truncated
products ``v * n * (1 -+ 1e-9)`` that agree are the bin without looking at the edges
(they disagree only within ~1e-9 of an edge, and at 1.0). All counts
are integers, so the sums are bit-identical to the reference however maps are grouped.

Why numba (measured in ``benchmarks/bench_metrics.py``, one thread, 224x224 maps): one
fused pass that validates the score, bins it and counts it (into four interleaved
sub-histograms, so that runs of equal bins in smooth maps do not wait on each other's
stores) reads each map once: ~1.1 ns per pixel, against ~1.6 ns for the five to six
numpy/OpenCV passes (two truncated products, a compare, a lookup table, a saturating add
and ``cv2.calcHist``) of the version it replaced and ~6 ns for the reference's
``np.histogram``. numpy and OpenCV have no histogram over arbitrary float edges that
avoids a sort or a ``searchsorted`` per value.
"""

from __future__ import annotations

import numpy as np

from skcream._jit import njit

__all__ = ["bin_index", "bracket_ok", "pxap_counts"]


@njit(nogil=True, inline="always")
def _bin(v: float, edges: np.ndarray, n: int, fn: float) -> int:
    """``searchsorted(edges, v, side="right") - 1`` for ``v`` in [0, 1] (``edges[0] = 0``,
    ``edges[n] = 1``, increasing)."""
    k = int(v * fn)
    if k > n:
        k = n
    while k > 0 and edges[k] > v:
        k -= 1
    while edges[k + 1] <= v:
        k += 1
    return k


@njit(nogil=True)
def bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The bin of each value in [0, 1] (1-D float64), as :func:`pxap_counts` finds it."""
    n = edges.size - 3
    fn = float(n)
    out = np.empty(values.size, np.int64)
    for i in range(values.size):
        out[i] = _bin(values[i], edges, n, fn)
    return out


#: relative margin of the bracketing multipliers ``n * (1 -+ MARGIN)``
MARGIN = 1e-9


def bracket_ok(edges: np.ndarray) -> bool:
    """Whether every edge ``e_j`` (j = 1..n) has ``|e_j * n - j| < 1e-10 * j``.

    Then a score ``v`` with ``trunc(v * n * (1 - MARGIN)) == trunc(v * n * (1 + MARGIN))
    == k`` has ``e_k < v < e_(k+1)``: its real ``v * n`` lies in
    ``[k (1 + ~MARGIN), (k + 1) (1 - ~MARGIN))`` (float products are within ~1e-16 of
    the real ones), strictly between ``e_k * n`` and ``e_(k+1) * n``. True for the
    reference's 0.01 and 0.001 (``n * interval == 1``), false for e.g. 0.3.
    """
    n = edges.size - 3
    j = np.arange(1, n + 1, dtype=np.float64)
    return bool((np.abs(edges[1 : n + 1] * n - j) < 1e-10 * j).all())


@njit(nogil=True)
def pxap_counts(scores: np.ndarray, bits: np.ndarray, classes: np.ndarray, edges: np.ndarray,
                fast: bool, sub: np.ndarray) -> int:
    """Add one map's pixels to the per-bin counts.

    Parameters
    ----------
    scores : ndarray (P,) float64
        The map, ravelled.
    bits : ndarray (P,) uint64
        ``scores.view(np.uint64)``: as unsigned integers, the doubles in [+0, 1] are
        exactly those ``<= bits(1.0)`` (a quick range check; -0.0, NaN, negatives and
        values above 1 are above it and are then checked as floats).
    classes : ndarray (P,) uint8
        0 background, 1 foreground, anything else ignored.
    edges : ndarray (n + 3,) float64
        ``np.append(np.arange(0, 1, interval), [1, 2, 3])``.
    fast : bool
        :func:`bracket_ok` of ``edges``: bins from two truncated products where they
        agree (the search against the edges only next to an edge).
    sub : ndarray (4, 2 * (n + 1)) int64
        Four interleaved histograms ``[negatives in bins 0..n | positives in bins 0..n]``,
        added to in place.

    Returns
    -------
    int
        -1, or the index of the first score not in [0, 1] (NaN included); the counts
        are then incomplete and must be discarded.
    """
    n = edges.size - 3
    fn = float(n)
    lo = fn * (1.0 - MARGIN)
    hi = fn * (1.0 + MARGIN)
    one = np.uint64(0x3FF0000000000000)  # bits of 1.0
    nk = n + 1
    for i in range(scores.size):
        v = scores[i]
        if bits[i] > one and not (v >= 0.0 and v <= 1.0):  # -0.0 is accepted, as 0
            return i
        c = classes[i]
        if c > 1:
            continue
        if fast:
            k = int(v * hi)
            if k != int(v * lo):
                k = _bin(v, edges, n, fn)
        else:
            k = _bin(v, edges, n, fn)
        sub[i & 3, k + nk * c] += 1
    return -1
