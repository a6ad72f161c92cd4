"""Every level set of a uint8 map in one sweep: the compiled core of the box metrics.

The reference evaluation thresholds ``q = (map * 255).astype(uint8)`` at every CAM
threshold and calls ``cv2.findContours(RETR_TREE)`` each time. Only the integer level
``L`` matters (foreground ``q > L``, ``L <= 254``), and the level sets of one map are
nested, so one sweep over the values 255..1, merging components as the level drops,
visits the connected components of every level set at once; the cost does not depend on
the number of thresholds. ``docs/WSOL_PROTOCOL.md`` of the shared folder (sections 3-8)
gives the facts used here:

* Multi-contour mode (MaxBoxAccV2). Every RETR_TREE contour gives a box. Outer
  borders are the 8-connected components of ``{q > L}`` (box
  ``[xmin, ymin, min(xmax+1, W-1), min(ymax+1, H-1)]``), hole borders the 4-connected
  components of ``{q <= L}`` that do not touch the border (box
  ``[hxmin-1, hymin-1, min(hxmax+2, W-1), min(hymax+2, H-1)]``): a sweep over ``q``
  (8-connected) and one over ``255 - q`` (4-connected, border-touching components
  dropped). The best IoU of each level is the maximum over its components' boxes.
* Single-contour mode (MaxBoxAcc, the box a user gets). The contour with the largest
  ``cv2.contourArea`` is always the outer border of a top-level component (a nested
  contour lies inside its ancestor's outer border and comes after it in OpenCV's
  order), and among top-level components OpenCV lists the one whose first raster
  pixel is lowest first, so ties go to the largest first-pixel index. The area of an
  outer border (the polygon through pixel centres) is, over the 2x2 pixel blocks of the
  component with its holes filled, ``#blocks with 4 pixels + #blocks with 3 / 2``
  (tested against ``cv2.contourArea``). The filled top-level components of ``{q > L}``
  are the 8-connected components of ``{m > L}``, ``m`` the grey-level hole filling of
  ``q`` (4-connected from the border); one sweep over ``m`` tracks each component's box,
  first pixel and block counts (:func:`_block_gains`).
* Boxes in OpenCV's order (``boxes_from_scoremap(..., multi_contour=True)``). RETR_TREE
  lists the contour tree in pre-order, siblings by decreasing first raster pixel; the
  parent of an outer border is the hole holding the pixel above its first pixel, the
  parent of a hole the component holding the pixel left of the hole's first pixel.
  Both sweeps record their merge trees, which answer these questions at every level
  (:func:`ordered_multi_arrays`; equal to ``findContours`` at every level in the tests).

*Basins* (the usual path, :func:`_levels_best`). Pixels are ordered by a 64-bit key,
the float map's own value scaled by ``255 * 2**24`` above the raster index
(:func:`_map_keys`; its top bits are ``q``): the order refines every level set, so a
uint8 plateau of a smooth map is ordered by the underlying values. Every pixel points
to its largest-key 8-neighbour (:func:`_pointers8`, a vectorised 3x3 maximum); a basin
is the set of pixels whose pointers lead to one root (a local maximum of the map), and
a basin's pixels above any level are connected. One raster pass labels the pixels
(:func:`_labels`), one fills per-(basin, value) tables of boxes, first pixels and block
gains (:func:`_tables`), one lists the basins' heaviest joining levels
(:func:`_edges`), and a union-find over the few basins along those levels (Kruskal,
:func:`_kruskal`) gives every component of every level, evaluated only at the levels
asked for. Holes come from the same sweep over the 4-connected descent basins of
``255 - q``; they exist at some level iff ``q`` has a 4-connected regional minimum off
the border, which holds a descent root off the border (:func:`_pointers4`: without one
the hole sweep is skipped). The level at which each hole basin's group first reaches
the border is the filled map's value there (:func:`_filled_keys`). A map with a single
maximum and no hole (a smooth blob) is one component at every level: its boxes come
from the row and column maxima (:func:`_profile_boxes`). CAM-like maps have tens of
basins, smooth blobs one to three.

*Pixels* (maps with very many maxima, e.g. noise, where basin tables would need
~5 KB per basin): a union-find over the pixels sorted by value (counting sort), with a
per-root cache of the IoU. Memory is a few int32 arrays of the map's size either way
(a 1000x1000 noise map: ~50 MB, against 5.5 GB for the numpy component tree this
module replaced), and time is linear in the pixels plus the (component, level) pairs.

Why numba (measured on 224x224 CAM-like maps, one thread, CPU time; figures in
``benchmarks/README.md``): the plain loop costs ~50 us per threshold
(``cv2.threshold`` + ``cv2.findContours``), so being 3x faster than it at 100 thresholds
leaves ~1.7 ms per map for all levels. ``cv2.connectedComponentsWithStats`` costs
~270 us per level (~37 us without stats) and ``cv2.findContours`` ~40 us, so OpenCV once
per distinct level (100 or 255 calls) cannot get there; scikit-image's ``max_tree``
took ~58 ms per map on its own (boxes, holes and areas would still need a sequential
pass over its parent array); ``scipy.ndimage.label`` per level is slower than OpenCV.
A union-find with per-component accumulators is not offered by these libraries, so it
is written here with numba (compiled once, then loaded from its cache; see
:mod:`skcream._jit` for read-only installs).
"""

from __future__ import annotations

import numpy as np
from numba import uintp

from skcream._jit import njit

__all__ = ["best_both", "best_iou_multi", "best_levels", "best_single", "fill_holes",
           "all_component_boxes", "ordered_multi_arrays", "ordered_multi_boxes", "threshold_best"]


@njit(nogil=True)
def _bucket_order(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat pixel indices grouped by value (counting sort) and the 257 bucket starts."""
    flat = img.ravel()
    counts = np.zeros(257, np.int64)
    for i in range(flat.size):
        counts[flat[i] + 1] += 1
    for v in range(256):
        counts[v + 1] += counts[v]
    fill = counts[:256].copy()
    order = np.empty(flat.size, np.int32)
    for i in range(flat.size):
        v = flat[i]
        order[fill[v]] = i
        fill[v] += 1
    return order, counts


@njit(nogil=True, inline="always")
def _find(parent: np.ndarray, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]  # path halving
        i = parent[i]
    return i


@njit(nogil=True, inline="always")
def _iou_max(x0: int, y0: int, x1: int, y1: int, gt: np.ndarray, area_b: np.ndarray) -> float:
    """Best IoU of one box with the GT boxes, the reference's float64 operations in order."""
    best = -1.0
    area_a = float((x1 - x0 + 1) * (y1 - y0 + 1))
    for j in range(gt.shape[0]):
        min_x = max(float(x0), gt[j, 0])
        min_y = max(float(y0), gt[j, 1])
        max_x = min(float(x1), gt[j, 2])
        max_y = min(float(y1), gt[j, 3])
        iw = max_x - min_x + 1.0
        ih = max_y - min_y + 1.0
        inter = max(0.0, iw) * max(0.0, ih)
        den = area_a + area_b[j] - inter
        iou = 0.0 if den <= 0.0 else inter / den
        if iou > best:
            best = iou
    return best


@njit(nogil=True)
def _sweep(img: np.ndarray, conn8: bool, drop_border: bool, v_min: int, rule: int,
           gt: np.ndarray, area_b: np.ndarray, emit: bool, out_lv: np.ndarray,
           out_bx: np.ndarray, counts: np.ndarray):
    """Components of ``{img > v - 1}`` for ``v = 255 .. v_min``, in one union-find sweep.

    Returns ``best`` (256,) float64: at index ``v - 1`` the best IoU over the components
    of that level set (``-inf`` if none), and the number of (component, level) pairs.
    When ``emit``, the levels ``v - 1`` and boxes of every component at every level are
    written to ``out_lv`` and ``out_bx`` (sized by a first call without ``emit``).
    Boxes follow ``rule``: 0 tight ``[xmin, ymin, xmax, ymax]``, 1 the foreground
    contour rule, 2 the hole contour rule. ``counts`` (256,) receives the number of
    components listed at each level ``v - 1``.
    """
    h, w = img.shape
    n = h * w
    order, starts = _bucket_order(img)
    parent = np.full(n, -1, np.int32)
    size = np.zeros(n, np.int32)
    bx0 = np.empty(n, np.int32)
    by0 = np.empty(n, np.int32)
    bx1 = np.empty(n, np.int32)
    by1 = np.empty(n, np.int32)
    border = np.zeros(n, np.bool_)
    cache = np.empty(n, np.float64)
    dirty = np.zeros(n, np.bool_)
    active = np.empty(n, np.int32)
    pos = np.full(n, -1, np.int32)
    n_active = 0
    best = np.full(256, -np.inf)
    n_out = 0
    if conn8:
        dys = np.array([-1, -1, -1, 0, 0, 1, 1, 1])
        dxs = np.array([-1, 0, 1, -1, 1, -1, 0, 1])
    else:
        dys = np.array([-1, 0, 0, 1])
        dxs = np.array([0, -1, 1, 0])
    for v in range(255, v_min - 1, -1):
        for k in range(starts[v], starts[v + 1]):
            p = order[k]
            y = p // w
            x = p - y * w
            parent[p] = p
            size[p] = 1
            bx0[p] = x
            by0[p] = y
            bx1[p] = x
            by1[p] = y
            on_border = y == 0 or x == 0 or y == h - 1 or x == w - 1
            border[p] = on_border
            dirty[p] = True
            if not (drop_border and on_border):
                pos[p] = n_active
                active[n_active] = p
                n_active += 1
            rp = p  # p's root, kept up to date
            for d in range(dys.size):
                yy = y + dys[d]
                xx = x + dxs[d]
                if yy < 0 or yy >= h or xx < 0 or xx >= w:
                    continue
                q = yy * w + xx
                if parent[q] < 0:
                    continue
                ra = rp
                rb = _find(parent, q)
                if ra == rb:
                    continue
                if size[ra] < size[rb]:
                    ra, rb = rb, ra
                parent[rb] = ra  # rb is absorbed into ra
                size[ra] += size[rb]
                bx0[ra] = min(bx0[ra], bx0[rb])
                by0[ra] = min(by0[ra], by0[rb])
                bx1[ra] = max(bx1[ra], bx1[rb])
                by1[ra] = max(by1[ra], by1[rb])
                dirty[ra] = True
                # leave the active list: absorbed, or (ra) reached the border
                if drop_border and border[rb] and not border[ra]:
                    r = ra
                    if pos[r] >= 0:
                        last = active[n_active - 1]
                        active[pos[r]] = last
                        pos[last] = pos[r]
                        pos[r] = -1
                        n_active -= 1
                r = rb
                if pos[r] >= 0:
                    last = active[n_active - 1]
                    active[pos[r]] = last
                    pos[last] = pos[r]
                    pos[r] = -1
                    n_active -= 1
                border[ra] = border[ra] or border[rb]
                rp = ra
        level_best = -np.inf
        for t in range(n_active):
            r = active[t]
            if rule == 2:
                x0, y0 = bx0[r] - 1, by0[r] - 1
                x1, y1 = min(bx1[r] + 2, w - 1), min(by1[r] + 2, h - 1)
            elif rule == 1:
                x0, y0 = bx0[r], by0[r]
                x1, y1 = min(bx1[r] + 1, w - 1), min(by1[r] + 1, h - 1)
            else:
                x0, y0, x1, y1 = bx0[r], by0[r], bx1[r], by1[r]
            if emit:
                out_lv[n_out] = v - 1
                out_bx[n_out, 0] = x0
                out_bx[n_out, 1] = y0
                out_bx[n_out, 2] = x1
                out_bx[n_out, 3] = y1
            n_out += 1
            if not emit:
                if dirty[r]:
                    cache[r] = _iou_max(x0, y0, x1, y1, gt, area_b)
                    dirty[r] = False
                if cache[r] > level_best:
                    level_best = cache[r]
        if v >= 1:
            best[v - 1] = level_best
            counts[v - 1] = n_active
    return best, n_out


@njit(nogil=True)
def fill_holes(q: np.ndarray) -> np.ndarray:
    """Grey-level hole filling, 4-connected: ``m[p]`` = the least, over 4-paths from
    ``p`` to outside the image, of the largest value on the path.

    A priority flood from the border (one LIFO stack per value: a pixel reached first
    from the lowest level is final), on a copy padded with a frame of visited pixels so
    that neighbours need no bounds checks (and no index division). The tests compare it
    with a plain flood (:func:`_fill_holes_flood`).
    """
    h, w = q.shape
    W = w + 2
    n2 = (h + 2) * W
    val = np.zeros(n2, np.uint8)
    seen = np.ones(n2, np.bool_)  # the frame counts as visited: never entered
    for y in range(h):
        o = (y + 1) * W + 1
        for x in range(w):
            val[o + x] = q[y, x]
            seen[o + x] = False
    head = np.full(256, -1, np.int32)
    nxt = np.empty(n2, np.int32)
    out = np.empty(n2, np.uint8)
    for y in range(h):  # the border pixels start the flood at their own value
        step = 1 if y == 0 or y == h - 1 else max(w - 1, 1)
        for x in range(0, w, step):
            p = (y + 1) * W + x + 1
            seen[p] = True
            v = val[p]
            out[p] = v
            nxt[p] = head[v]
            head[v] = p
    for v in range(256):
        while head[v] >= 0:
            p = head[v]
            head[v] = nxt[p]
            for r in (p - W, p - 1, p + 1, p + W):
                if not seen[r]:
                    seen[r] = True
                    mv = max(v, int(val[r]))
                    out[r] = mv
                    nxt[r] = head[mv]
                    head[mv] = r
    m = np.empty((h, w), np.uint8)
    for y in range(h):
        o = (y + 1) * W + 1
        for x in range(w):
            m[y, x] = out[o + x]
    return m


@njit(nogil=True)
def _fill_holes_flood(q: np.ndarray) -> np.ndarray:
    """:func:`fill_holes` by a priority flood (an independent check for the tests)."""
    h, w = q.shape
    n = h * w
    flat = q.ravel()
    m = np.empty(n, np.uint8)
    seen = np.zeros(n, np.bool_)
    head = np.full(256, -1, np.int32)  # one LIFO stack per value
    nxt = np.empty(n, np.int32)
    for p in range(n):
        y = p // w
        x = p - y * w
        if y == 0 or x == 0 or y == h - 1 or x == w - 1:
            seen[p] = True
            m[p] = flat[p]
            nxt[p] = head[flat[p]]
            head[flat[p]] = p
    dys = (-1, 0, 0, 1)
    dxs = (0, -1, 1, 0)
    for v in range(256):
        while head[v] >= 0:
            p = head[v]
            head[v] = nxt[p]
            y = p // w
            x = p - y * w
            for d in range(4):
                yy = y + dys[d]
                xx = x + dxs[d]
                if yy < 0 or yy >= h or xx < 0 or xx >= w:
                    continue
                r = yy * w + xx
                if seen[r]:
                    continue
                seen[r] = True  # reached first from the lowest level: final
                mv = max(v, int(flat[r]))
                m[r] = mv
                nxt[r] = head[mv]
                head[mv] = r
    return m.reshape(h, w)


@njit(nogil=True)
def _single_sweep(m: np.ndarray, v_min: int, gt: np.ndarray, area_b: np.ndarray):
    """Largest-area top-level component of ``{m > v - 1}`` for ``v = 255 .. v_min``.

    Returns ``best`` (256,) float64 (IoU of the winner's box with the GT, -inf if no
    component) and ``boxes`` (256, 4) int32, the winner's reference box per level.
    Areas are kept doubled (integers): a 2x2 block adds 1 when its 3rd and its 4th
    pixel arrive.
    """
    h, w = m.shape
    n = h * w
    order, starts = _bucket_order(m)
    parent = np.full(n, -1, np.int32)
    size = np.zeros(n, np.int32)
    first = np.empty(n, np.int32)
    area2 = np.zeros(n, np.int64)
    bx0 = np.empty(n, np.int32)
    by0 = np.empty(n, np.int32)
    bx1 = np.empty(n, np.int32)
    by1 = np.empty(n, np.int32)
    active = np.empty(n, np.int32)
    pos = np.full(n, -1, np.int32)
    n_active = 0
    best = np.full(256, -np.inf)
    boxes = np.zeros((256, 4), np.int32)
    for v in range(255, v_min - 1, -1):
        for k in range(starts[v], starts[v + 1]):
            p = order[k]
            y = p // w
            x = p - y * w
            parent[p] = p
            size[p] = 1
            first[p] = p
            bx0[p] = x
            by0[p] = y
            bx1[p] = x
            by1[p] = y
            pos[p] = n_active
            active[n_active] = p
            n_active += 1
            rp = p
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    yy = y + dy
                    xx = x + dx
                    if (dy == 0 and dx == 0) or yy < 0 or yy >= h or xx < 0 or xx >= w:
                        continue
                    q = yy * w + xx
                    if parent[q] < 0:
                        continue
                    ra = rp
                    rb = _find(parent, q)
                    if ra == rb:
                        continue
                    if size[ra] < size[rb]:
                        ra, rb = rb, ra
                    parent[rb] = ra
                    size[ra] += size[rb]
                    first[ra] = min(first[ra], first[rb])
                    area2[ra] += area2[rb]
                    bx0[ra] = min(bx0[ra], bx0[rb])
                    by0[ra] = min(by0[ra], by0[rb])
                    bx1[ra] = max(bx1[ra], bx1[rb])
                    by1[ra] = max(by1[ra], by1[rb])
                    last = active[n_active - 1]
                    active[pos[rb]] = last
                    pos[last] = pos[rb]
                    pos[rb] = -1
                    n_active -= 1
                    rp = ra
            # the four 2x2 blocks holding p; all their pixels are in p's component now
            gained = 0
            for by in (y - 1, y):
                for bx in (x - 1, x):
                    if by < 0 or bx < 0 or by + 1 >= h or bx + 1 >= w:
                        continue
                    c = 0
                    for yy in (by, by + 1):
                        for xx in (bx, bx + 1):
                            if parent[yy * w + xx] >= 0:
                                c += 1
                    if c >= 3:
                        gained += 1
            if gained:
                area2[rp] += gained
        if v == 0 or n_active == 0:
            continue
        win = -1
        for t in range(n_active):
            r = active[t]
            if win < 0 or area2[r] > area2[win] or (area2[r] == area2[win] and first[r] > first[win]):
                win = r
        x0, y0 = bx0[win], by0[win]
        x1, y1 = min(bx1[win] + 1, w - 1), min(by1[win] + 1, h - 1)
        boxes[v - 1, 0] = x0
        boxes[v - 1, 1] = y0
        boxes[v - 1, 2] = x1
        boxes[v - 1, 3] = y1
        if gt.shape[0]:
            best[v - 1] = _iou_max(x0, y0, x1, y1, gt, area_b)
    return best, boxes


_NO_GT = (np.zeros((0, 4)), np.zeros(0))
_NO_OUT = (np.zeros(0, np.int32), np.zeros((0, 4), np.int32))


def _gt_terms(gt: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """GT boxes as float64 and their areas computed as the reference does (in their dtype)."""
    if gt is None:
        return _NO_GT
    area_b = (gt[:, 2] - gt[:, 0] + 1) * (gt[:, 3] - gt[:, 1] + 1)
    return (np.ascontiguousarray(gt, dtype=np.float64),
            np.ascontiguousarray(area_b, dtype=np.float64))


def _max_basins(n_pixels: int) -> int:
    """Basin tables cost ~7 KB per basin: beyond this many, the per-pixel sweep is used."""
    return max(256, n_pixels // 64)



# ----------------------------------------------------------------------------- keys, basins
#: ``(map * 255)`` scaled by 2**24: a key's value part keeps 24 bits below the uint8 level
_KEY_SCALE = 255.0 * 2.0**24
_LOW32 = np.uint64(0xFFFFFFFF)


@njit(nogil=True)
def _map_keys(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keys of a float map in [0, 1] and its quantisation ``q = (m * 255).astype(uint8)``.

    ``key = value << 32 | (index + 1)`` with ``value = trunc(m * 255 * 2**24)``, so that
    ``value >> 24 == q`` (scaling by a power of two commutes with rounding) and keys order
    the pixels by ``m``, ties by raster index. Returned on a frame of zeros ((H+2)*(W+2),
    uint64: below every key) so that neighbours need no bounds checks; ``q`` (H, W) uint8.
    """
    h, w = m.shape
    W = w + 2
    K = np.zeros((h + 2) * W, np.uint64)
    q = np.empty((h, w), np.uint8)
    for y in range(h):
        o = uintp((y + 1) * W + 1)
        base = np.uint64(y * w + 1)
        for x in range(w):
            s = np.uint64(m[y, x] * _KEY_SCALE)
            q[y, x] = s >> np.uint64(24)
            K[o + uintp(x)] = (s << np.uint64(32)) | (base + np.uint64(x))
    return K, q


@njit(nogil=True)
def _q_keys(q: np.ndarray) -> np.ndarray:
    """:func:`_map_keys` of a uint8 map alone (value ``q << 24``: ties by raster index)."""
    h, w = q.shape
    W = w + 2
    K = np.zeros((h + 2) * W, np.uint64)
    for y in range(h):
        o = uintp((y + 1) * W + 1)
        base = np.uint64(y * w + 1)
        for x in range(w):
            K[o + uintp(x)] = (np.uint64(q[y, x]) << np.uint64(56)) | (base + np.uint64(x))
    return K


@njit(nogil=True)
def _pointers8(K: np.ndarray, h: int, w: int):
    """Every pixel's largest-key 8-neighbour (itself included): the steepest ascent.

    Returns ``ptr`` (H*W,) int32 and the number of roots (pixels pointing to themselves)
    in all and with ``q >= 1``. A separable 3x3 maximum of the keys (vectorised).
    """
    W = w + 2
    R = np.zeros((h + 2) * W, np.uint64)
    one = uintp(1)
    for y in range(1, h + 1):
        o = uintp(y * W)
        for x in range(one, uintp(w + 1)):
            R[o + x] = max(max(K[o + x - one], K[o + x]), K[o + x + one])
    ptr = np.empty(h * w, np.int32)
    n_roots = 0
    n_up = 0
    lim = np.uint64(1) << np.uint64(56)  # value >= 2**24: q >= 1
    uW = uintp(W)
    for y in range(1, h + 1):
        o = uintp(y * W)
        oo = uintp((y - 1) * w) - one
        for x in range(one, uintp(w + 1)):
            b = max(max(R[o - uW + x], R[o + x]), R[o + uW + x])
            ptr[oo + x] = np.int32(b & _LOW32) - 1
            root = b == K[o + x]
            n_roots += root
            n_up += root and b >= lim
    return ptr, n_roots, n_up


@njit(nogil=True)
def _pointers4(K: np.ndarray, h: int, w: int):
    """Every pixel's smallest-key 4-neighbour (itself included): the steepest descent.

    Returns ``ptr`` (H*W,) int32, the number of roots and of roots off the image border.
    (``key - 1`` wraps the frame's zeros round to the largest key.)
    """
    W = w + 2
    ptr = np.empty(h * w, np.int32)
    n_roots = 0
    one = uintp(1)
    k1 = np.uint64(1)
    uW = uintp(W)
    for y in range(1, h + 1):
        o = uintp(y * W)
        oo = uintp((y - 1) * w) - one
        for x in range(one, uintp(w + 1)):
            p = o + x
            b = min(min(min(K[p - uW] - k1, K[p - one] - k1), min(K[p] - k1, K[p + one] - k1)),
                    K[p + uW] - k1)
            ptr[oo + x] = np.int32((b + k1) & _LOW32) - 1
            n_roots += b == K[p] - k1
    on_border = 0
    for y in range(h):
        step = 1 if y == 0 or y == h - 1 else max(w - 1, 1)
        for x in range(0, w, step):
            on_border += ptr[y * w + x] == y * w + x
    return ptr, n_roots, n_roots - on_border


@njit(nogil=True)
def _block_gains(K: np.ndarray, h: int, w: int) -> np.ndarray:
    """Per pixel, the number of its 2x2 blocks in which it arrives 3rd or 4th (by key).

    Over the blocks of a set, ``2 x (#blocks with 4 pixels + #blocks with 3 / 2)`` is the
    sum of these gains over its pixels: the doubled contour area of
    :func:`_kruskal`'s single-contour mode (blocks with frame pixels never reach 3).
    """
    W = w + 2
    out = np.empty(h * w, np.uint8)
    uW = uintp(W)
    one = uintp(1)
    for y in range(1, h + 1):
        o = uintp(y * W)
        oo = uintp((y - 1) * w) - one
        for x in range(one, uintp(w + 1)):
            p = o + x
            k = K[p]
            a = np.uint8(K[p - uW - one] > k)
            b = np.uint8(K[p - uW] > k)
            c = np.uint8(K[p - uW + one] > k)
            d = np.uint8(K[p - one] > k)
            e = np.uint8(K[p + one] > k)
            f = np.uint8(K[p + uW - one] > k)
            g = np.uint8(K[p + uW] > k)
            i = np.uint8(K[p + uW + one] > k)
            out[oo + x] = (((a + b + d) >> 1) + ((b + c + e) >> 1) + ((d + f + g) >> 1)
                           + ((e + g + i) >> 1))
    return out


_BIG = 2**30


@njit(nogil=True, inline="always")
def _xbits(w: int) -> int:
    """Bits that hold a column index: a pixel packs as ``y << xs | x`` (raster order)."""
    xs = 0
    while (1 << xs) < w:
        xs += 1
    return xs


@njit(nogil=True)
def _has_hole(q: np.ndarray, ptr4: np.ndarray) -> bool:
    """Whether ``{q > L}`` has a hole at some level ``L``.

    A hole at ``L`` is a 4-connected component of ``{q <= L}`` off the border; its
    lowest pixels hold a 4-connected regional minimum of ``q`` off the border, and such a
    minimum (value ``m``) is a hole at ``L = m``. Its smallest key is a descent root
    (:func:`_pointers4`), so only the plateaus of the roots off the border are flooded
    (4-connected, equal ``q``), each pixel at most once: a plateau reaching the border or
    a lower pixel, or one flooded before, is no hole.
    """
    h, w = q.shape
    qf = q.ravel()
    seen = np.zeros(h * w, np.int32)  # the flood that reached a pixel (0: none)
    stack = np.empty(h * w, np.int32)
    flood = 0
    for y in range(1, h - 1):
        for x in range(1, w - 1):
            p = y * w + x
            if ptr4[p] != p or seen[p]:
                continue
            flood += 1
            v = qf[p]
            seen[p] = flood
            stack[0] = p
            sp = 1
            i = 0
            minimum = True
            while i < sp and minimum:
                c = stack[i]
                i += 1
                cy = c // w
                cx = c - cy * w
                if cy == 0 or cx == 0 or cy == h - 1 or cx == w - 1:
                    minimum = False
                    break
                for r in (c - w, c - 1, c + 1, c + w):
                    if qf[r] < v or (qf[r] == v and seen[r] and seen[r] != flood):
                        minimum = False
                        break
                    if qf[r] == v and not seen[r]:
                        seen[r] = flood
                        stack[sp] = r
                        sp += 1
            if minimum:
                return True
    return False


@njit(nogil=True)
def _basins(ptr: np.ndarray, val: np.ndarray, n_roots: int, h: int, w: int, tables: bool,
            gains: np.ndarray):
    """Basin of every pixel (the root its pointers lead to) and, when ``tables``, per
    (basin, value) the box of the basin's pixels of that value, in one raster pass.

    Returns ``label`` (n,) int32, ``nb`` (= ``n_roots``), ``roots`` (nb,) (basins numbered
    in raster order of the first pixel reaching them), ``T`` (nb, 256, 4) int32
    ``x0, -x1, -y1, first`` (all minima; ``_BIG``: no pixel; the first pixel packed as
    ``y << xs | x`` (:func:`_xbits`): raster order, and ``y0 = first >> xs``; (0, 256, 4)
    without ``tables``) and, with ``gains`` (n,), ``A`` (nb, 256) their block gains
    (:func:`_block_gains`), else (1, 1).

    In raster order a pixel is labelled already (by an earlier path), or takes its
    target's label, chosen without a branch (the two are about equally likely); only
    when neither is known are the pointers followed to a labelled pixel or a root,
    labelling the path back. The pixel's table entry is then updated in place: no
    dependence between successive pixels, so the table updates overlap the labelling.
    """
    n = h * w
    xs = _xbits(w)
    label = np.full(n, -1, np.int32)
    stack = np.empty(n, np.int32)
    roots = np.empty(n_roots, np.int32)
    T = np.full((n_roots if tables else 0, 256, 4), _BIG, np.int32)
    single = gains.size > 0
    A = np.zeros((n_roots, 256) if single else (1, 1), np.int32)
    nb = 0
    for y in range(h):
        for x in range(w):
            p = y * w + x
            lp = label[p]
            lt = label[uintp(ptr[p])]
            lab = lp if lp >= 0 else lt
            if lab < 0:  # follow the pointers
                sp = 0
                c = uintp(p)
                while True:
                    t = uintp(ptr[c])
                    if t == c:
                        label[c] = nb
                        roots[nb] = c
                        nb += 1
                        break
                    stack[sp] = c
                    sp += 1
                    c = t
                    if label[c] >= 0:
                        break
                lab = label[c]
                while sp > 0:
                    sp -= 1
                    label[uintp(stack[sp])] = lab
            label[p] = lab
            if tables:
                b = uintp(lab)
                v = uintp(val[p])
                T[b, v, 0] = min(T[b, v, 0], x)
                T[b, v, 1] = min(T[b, v, 1], -x)
                T[b, v, 2] = min(T[b, v, 2], -y)
                T[b, v, 3] = min(T[b, v, 3], (y << xs) | x)
                if single:
                    A[b, v] += gains[p]
    return label, nb, roots, T, A


#: basins up to which :func:`_edges` keeps one edge per pair of basins (a (nb, nb) int16
#: table: 2 MB at most)
_PAIR_TABLE_MAX = 1024


@njit(nogil=True)
def _edges(val: np.ndarray, label: np.ndarray, nb: int, h: int, w: int, conn8: bool,
           max_nb: int):
    """Edges between adjacent basins, weighted by ``min(val)`` of the pixel pair.

    Kruskal's sweep merges two groups at the heaviest edge between them, so with at most
    ``max_nb`` basins only the heaviest edge of each pair of basins is returned (a
    smooth 224x224 map: a few hundred pairs for thousands of pixel pairs); else every
    pixel pair. A vectorised pass first flags the pixels with a forward neighbour
    (right, down and, 8-connected, both lower diagonals) in another basin.
    """
    n = h * w
    flag = np.zeros(n, np.uint8)
    one = uintp(1)
    uw = uintp(w)
    for y in range(h):
        o = uintp(y * w)
        for x in range(uintp(0), uintp(max(w - 1, 0))):
            flag[o + x] = label[o + x] != label[o + x + one]
    for y in range(h - 1):
        o = uintp(y * w)
        for x in range(uintp(0), uw):
            flag[o + x] |= label[o + x] != label[o + x + uw]
        if conn8:
            for x in range(uintp(0), uintp(max(w - 1, 0))):
                flag[o + x] |= label[o + x] != label[o + x + uw + one]
            for x in range(one, uw):
                flag[o + x] |= label[o + x] != label[o + x + uw - one]
    pair = nb <= max_nb
    best = np.full((nb, nb) if pair else (1, 1), -1, np.int16)  # at [lo, hi], lo < hi
    cap = 64
    ea = np.empty(cap, np.int32)
    ec = np.empty(cap, np.int32)
    ew = np.empty(cap, np.int32)
    m = 0
    for y in range(h):
        for x in range(w):
            p = y * w + x
            if flag[p] == 0:
                continue
            b = label[p]
            for d in range(4 if conn8 else 2):
                if d == 0:
                    r = p + 1 if x + 1 < w else -1
                elif d == 1:
                    r = p + w if y + 1 < h else -1
                elif d == 2:
                    r = p + w + 1 if y + 1 < h and x + 1 < w else -1
                else:
                    r = p + w - 1 if y + 1 < h and x > 0 else -1
                if r < 0 or label[r] == b:
                    continue
                c = label[r]
                wv = min(val[p], val[r])
                if pair:
                    lo = min(b, c)
                    hi = max(b, c)
                    if best[lo, hi] < 0:
                        m += 1
                    if wv > best[lo, hi]:
                        best[lo, hi] = wv
                    continue
                if m == cap:
                    cap *= 2
                    ea2 = np.empty(cap, np.int32)
                    ec2 = np.empty(cap, np.int32)
                    ew2 = np.empty(cap, np.int32)
                    ea2[:m] = ea[:m]
                    ec2[:m] = ec[:m]
                    ew2[:m] = ew[:m]
                    ea, ec, ew = ea2, ec2, ew2
                ea[m] = b
                ec[m] = c
                ew[m] = wv
                m += 1
    if not pair:
        return ea[:m].copy(), ec[:m].copy(), ew[:m].copy()
    ea = np.empty(m, np.int32)
    ec = np.empty(m, np.int32)
    ew = np.empty(m, np.int32)
    e = 0
    for lo in range(nb):
        for hi in range(lo + 1, nb):
            if best[lo, hi] >= 0:
                ea[e] = lo
                ec[e] = hi
                ew[e] = best[lo, hi]
                e += 1
    return ea, ec, ew


@njit(nogil=True)
def _counting_order(keys: np.ndarray, n_keys: int):
    """Stable counting sort of small non-negative ints: ``starts`` (n_keys + 1,) and order."""
    starts = np.zeros(n_keys + 1, np.int64)
    for i in range(keys.size):
        starts[keys[i] + 1] += 1
    for v in range(n_keys):
        starts[v + 1] += starts[v]
    fill = starts[:n_keys].copy()
    order = np.empty(keys.size, np.int32)
    for i in range(keys.size):
        order[fill[keys[i]]] = i
        fill[keys[i]] += 1
    return starts, order


@njit(nogil=True)
def _entries(T: np.ndarray, top: np.ndarray, nb: int):
    """The non-empty table entries by value: the basins with pixels of value ``v`` are
    ``ent[starts[v]:starts[v + 1]]`` (none when ``T`` is not the tables of the ``nb``
    basins: touch levels only)."""
    tables = T.shape[0] == nb
    starts = np.zeros(257, np.int64)
    for b in range(nb if tables else 0):
        for v in range(top[b] + 1):
            if T[b, v, 3] != _BIG:
                starts[v + 1] += 1
    for v in range(256):
        starts[v + 1] += starts[v]
    fill = starts[:256].copy()
    ent = np.empty(starts[256], np.int32)
    for b in range(nb if tables else 0):
        for v in range(top[b] + 1):
            if T[b, v, 3] != _BIG:
                ent[fill[v]] = b
                fill[v] += 1
    return starts, ent


@njit(nogil=True)
def _sweep_order(val: np.ndarray, roots: np.ndarray, nb: int, T: np.ndarray, ew: np.ndarray):
    """What a basin sweep visits, in order (shared by :func:`_kruskal` and
    :func:`_basin_emit`): ``top`` (nb,) int32 each basin's root value, the table entries
    (:func:`_entries`), and the edges by weight and the basins by ``top`` as counting orders
    ``(starts, order)``."""
    top = np.empty(nb, np.int32)
    for b in range(nb):
        top[b] = val[roots[b]]
    n_ent, ent = _entries(T, top, nb)
    e_start, e_order = _counting_order(ew, 256)
    b_start, by_top = _counting_order(top, 256)
    return top, n_ent, ent, e_start, e_order, b_start, by_top


@njit(nogil=True)
def _kruskal(val: np.ndarray, roots: np.ndarray, nb: int, T: np.ndarray, A: np.ndarray,
             ea: np.ndarray, ec: np.ndarray, ew: np.ndarray, h: int, w: int, gt: np.ndarray,
             area_b: np.ndarray, want: np.ndarray, v_min: int, holes: bool, multi: bool,
             single: bool, border_val: np.ndarray, floor: np.ndarray):
    """The components of ``{val > v - 1}``, ``v = 255 .. v_min``, as groups of basins.

    A union-find over the basins merges groups along the basin edges by decreasing weight
    (Kruskal) while each value's table entries (:func:`_tables`) grow the groups' boxes,
    block areas and first pixels: every component of every level set, nothing recomputed
    per level. Foreground (``holes`` False): ``val = q``, level ``L = v - 1``, boxes by the
    foreground contour rule. Holes (``holes`` True): ``val = 255 - q`` (4-connected basins),
    level ``L = 255 - v``, groups holding a border pixel dropped, boxes by the hole rule;
    ``border_val`` (nb,) is the largest ``val`` of each basin's border pixels (-1: none).

    Only the levels with ``want[L]`` are evaluated; a group's IoU is recomputed when its
    box has grown since. ``floor`` (256,): a best IoU per level known from elsewhere (the
    foreground's, for the holes): ``best`` is at least that, and boxes that cannot beat it
    are not evaluated. Returns ``best`` (256,) float64 (multi-contour: the best IoU of
    the level's boxes, -inf if none), ``best_single`` (256,) and ``boxes`` (256, 4) int32
    (single-contour: the largest-area group, ties to the largest first pixel) and, for
    holes, ``F`` (nb,) the level at which each basin's group first touches the border
    (``256 - v_min`` if never; -1 for basins never in the sweep).
    """
    xs = _xbits(w)
    top, n_ent, ent, e_start, e_order, b_start, by_top = _sweep_order(val, roots, nb, T, ew)
    if holes:
        bv = np.where(border_val < 0, 256, border_val).astype(np.int32)
        t_start, by_border = _counting_order(bv, 257)
    parent = np.arange(nb).astype(np.int32)
    size = np.ones(nb, np.int32)
    G = np.full((nb, 4), _BIG, np.int32)
    GA = np.zeros(nb, np.int64)
    cache = np.full(nb, -np.inf)
    dirty = np.zeros(nb, np.bool_)
    dirt = np.empty(nb, np.int32)
    area = np.empty(nb, np.int64)
    amin = np.inf
    for j in range(area_b.size):
        amin = min(amin, area_b[j])
    active = np.empty(nb, np.int32)
    pos = np.full(nb, -1, np.int32)
    n_active = 0
    touched = np.zeros(nb, np.bool_)
    nxt = np.full(nb, -1, np.int32)  # member lists (touch levels)
    tail = np.arange(nb).astype(np.int32)
    F = np.full(nb, -1, np.int32)
    best = np.full(256, -np.inf)
    best_single = np.full(256, -np.inf)
    boxes = np.zeros((256, 4), np.int32)
    for v in range(255, v_min - 1, -1):
        L = 255 - v if holes else v - 1
        for k in range(b_start[v], b_start[v + 1]):
            b = by_top[k]
            pos[b] = n_active
            active[n_active] = b
            n_active += 1
        for k in range(e_start[v], e_start[v + 1]):
            i = e_order[k]
            ra = _find(parent, ea[i])
            rb = _find(parent, ec[i])
            if ra == rb:
                continue
            if size[ra] < size[rb]:
                ra, rb = rb, ra
            parent[rb] = ra
            size[ra] += size[rb]
            g0, g1, g2, g3 = G[ra, 0], G[ra, 1], G[ra, 2], G[ra, 3]
            n0, n1 = min(g0, G[rb, 0]), min(g1, G[rb, 1])
            n2, n3 = min(g2, G[rb, 2]), min(g3, G[rb, 3])
            G[ra, 0], G[ra, 1], G[ra, 2], G[ra, 3] = n0, n1, n2, n3
            dirty[ra] |= (n0 != g0) | (n1 != g1) | (n2 != g2) | ((n3 >> xs) != (g3 >> xs))
            GA[ra] += GA[rb]
            if holes:
                if touched[ra] != touched[rb]:  # the other side is touched from now on
                    c = rb if touched[ra] else ra
                    while c >= 0:
                        F[c] = L
                        c = nxt[c]
                touched[ra] = touched[ra] or touched[rb]
                nxt[tail[ra]] = rb
                tail[ra] = tail[rb]
            last = active[n_active - 1]
            active[pos[rb]] = last
            pos[last] = pos[rb]
            pos[rb] = -1
            n_active -= 1
        for k in range(n_ent[v], n_ent[v + 1]):  # branch-free: growth is unpredictable
            b = ent[k]
            r = uintp(_find(parent, b))
            b = uintp(b)
            g0, g1, g2, g3 = G[r, 0], G[r, 1], G[r, 2], G[r, 3]
            n0, n1 = min(g0, T[b, v, 0]), min(g1, T[b, v, 1])
            n2, n3 = min(g2, T[b, v, 2]), min(g3, T[b, v, 3])
            G[r, 0], G[r, 1], G[r, 2], G[r, 3] = n0, n1, n2, n3
            dirty[r] |= (n0 != g0) | (n1 != g1) | (n2 != g2) | ((n3 >> xs) != (g3 >> xs))
        if single:
            for k in range(n_ent[v], n_ent[v + 1]):
                b = ent[k]
                GA[_find(parent, b)] += A[b, v]
        if holes:
            for k in range(t_start[v], t_start[v + 1]):
                r = _find(parent, by_border[k])
                if not touched[r]:
                    touched[r] = True
                    c = r
                    while c >= 0:
                        F[c] = L
                        c = nxt[c]
        if v == 0 or not want[L]:
            continue
        if multi:
            # the level's best IoU lb: cached IoUs of groups whose box has not grown, then
            # the grown boxes, largest first; a box of area < lb * (smallest GT area) has
            # IoU <= area / area(GT) < lb: it cannot raise lb and stays dirty
            level_best = floor[L]
            n_dirty = 0
            for t in range(n_active):
                r = active[t]
                if dirty[r]:
                    dirt[n_dirty] = r
                    n_dirty += 1
                elif cache[r] > level_best:
                    level_best = cache[r]
            big = -1
            big_area = -1
            for t in range(n_dirty):
                r = dirt[t]
                # the area of the box the IoU is taken of (contour rule)
                if holes:
                    a = ((min(-G[r, 1] + 2, w - 1) - G[r, 0] + 2)
                         * (min(-G[r, 2] + 2, h - 1) - (G[r, 3] >> xs) + 2))
                else:
                    a = ((min(-G[r, 1] + 1, w - 1) - G[r, 0] + 1)
                         * (min(-G[r, 2] + 1, h - 1) - (G[r, 3] >> xs) + 1))
                area[r] = a
                if a > big_area:
                    big_area = a
                    big = t
            if n_dirty:
                dirt[0], dirt[big] = dirt[big], dirt[0]
            for t in range(n_dirty):
                r = dirt[t]
                if level_best > 0.0 and area[r] < level_best * amin * (1.0 - 1e-9):
                    continue
                x0, y0, x1, y1 = G[r, 0], G[r, 3] >> xs, -G[r, 1], -G[r, 2]
                if not holes:
                    cache[r] = _iou_max(x0, y0, min(x1 + 1, w - 1), min(y1 + 1, h - 1),
                                        gt, area_b)
                elif x0 == 0 or y0 == 0 or x1 == w - 1 or y1 == h - 1:  # not a hole
                    cache[r] = -np.inf
                else:
                    cache[r] = _iou_max(x0 - 1, y0 - 1, min(x1 + 2, w - 1),
                                        min(y1 + 2, h - 1), gt, area_b)
                dirty[r] = False
                if cache[r] > level_best:
                    level_best = cache[r]
            best[L] = level_best
        if single and n_active:
            win = active[0]
            for t in range(1, n_active):
                r = active[t]
                if GA[r] > GA[win] or (GA[r] == GA[win] and G[r, 3] > G[win, 3]):
                    win = r
            x0, y0 = G[win, 0], G[win, 3] >> xs
            x1, y1 = min(-G[win, 1] + 1, w - 1), min(-G[win, 2] + 1, h - 1)
            boxes[L, 0] = x0
            boxes[L, 1] = y0
            boxes[L, 2] = x1
            boxes[L, 3] = y1
            if gt.shape[0]:
                best_single[L] = _iou_max(x0, y0, x1, y1, gt, area_b)
    if holes:
        for b in range(nb):
            if F[b] < 0 and top[b] >= v_min:
                F[b] = 256 - v_min
    return best, best_single, boxes, F


@njit(nogil=True)
def _profile_boxes(q: np.ndarray, want: np.ndarray, gt: np.ndarray, area_b: np.ndarray):
    """Box and IoU per level when ``{q > L}`` is one hole-free component at every level:
    its box is that of the set, from the row and column maxima of ``q``."""
    h, w = q.shape
    colmax = np.zeros(w, np.int32)
    rowmax = np.zeros(h, np.int32)
    for y in range(h):
        r = 0
        for x in range(w):
            v = np.int32(q[y, x])
            r = max(r, v)
            colmax[x] = max(colmax[x], v)
        rowmax[y] = r
    # first / last column (row) whose maximum exceeds L, for every L
    ext = np.zeros((4, 256), np.int32)
    for k in range(4):
        prof = colmax if k % 2 == 0 else rowmax
        m = prof.size
        run = 0
        for i in range(m):
            j = i if k < 2 else m - 1 - i
            while run < prof[j]:
                ext[k, run] = j
                run += 1
    best = np.full(256, -np.inf)
    boxes = np.zeros((256, 4), np.int32)
    for L in range(colmax.max()):
        if not want[L]:
            continue
        x0, y0 = ext[0, L], ext[1, L]
        x1, y1 = min(ext[2, L] + 1, w - 1), min(ext[3, L] + 1, h - 1)
        boxes[L, 0] = x0
        boxes[L, 1] = y0
        boxes[L, 2] = x1
        boxes[L, 3] = y1
        if gt.shape[0]:
            best[L] = _iou_max(x0, y0, x1, y1, gt, area_b)
    return best, boxes


@njit(nogil=True)
def _border_values(val: np.ndarray, label: np.ndarray, nb: int, h: int, w: int) -> np.ndarray:
    """Per basin, the largest ``val`` among its pixels on the image border (-1: none)."""
    out = np.full(nb, -1, np.int32)
    for y in range(h):
        step = 1 if y == 0 or y == h - 1 else max(w - 1, 1)
        for x in range(0, w, step):
            p = y * w + x
            out[label[p]] = max(out[label[p]], np.int32(val[p]))
    return out


@njit(nogil=True)
def _filled_keys(K: np.ndarray, q: np.ndarray, label4: np.ndarray, F: np.ndarray):
    """The keys and ``q`` of the grey-level hole filling: ``max(q, F[basin])`` per pixel
    (``F`` from :func:`_kruskal`'s hole sweep); a raised pixel keeps its index and takes
    the value ``F << 24`` (the bottom of its new level)."""
    h, w = q.shape
    W = w + 2
    Kf = K.copy()
    qf = q.copy()
    for y in range(h):
        o = (y + 1) * W + 1
        for x in range(w):
            f = F[label4[y * w + x]]
            if f > q[y, x]:
                qf[y, x] = f
                Kf[o + x] = (np.uint64(f) << np.uint64(56)) | (K[o + x] & _LOW32)
    return Kf, qf


_NO_GAIN = np.zeros(0, np.uint8)


@njit(nogil=True, inline="always")
def _run_time_flags(h: int) -> tuple[bool, bool, int]:
    """``False``, ``True`` and ``1`` as values known only at run time (``h >= 1``).

    numba compiles a kernel once per combination of argument types, and a constant argument
    (``True``, ``1``, a global array) is a type of its own. The basin sweeps pass these
    instead, so :func:`_basins`, :func:`_edges` and :func:`_kruskal` compile once each: the
    first metric call of an install compiles every kernel, and this makes it shorter.
    """
    return h < 1, h >= 1, min(h, 1)


@njit(nogil=True)
def _single_basins(K: np.ndarray, q: np.ndarray, ptr: np.ndarray, n_roots: int, n_up: int,
                   gt: np.ndarray, area_b: np.ndarray, want: np.ndarray):
    """Single-contour mode of a hole-free map (keys ``K``, uint8 ``q``, pointers ``ptr``
    with ``n_roots`` roots, ``n_up`` of them with ``q >= 1``)."""
    h, w = q.shape
    if n_up <= 1:
        return _profile_boxes(q, want, gt, area_b)
    no, yes, one = _run_time_flags(h)
    qf = q.ravel()
    label, nb, roots, T, A = _basins(ptr, qf, n_roots, h, w, yes, _block_gains(K, h, w))
    ea, ec, ew = _edges(qf, label, nb, h, w, yes, _PAIR_TABLE_MAX)
    _, best, boxes, _ = _kruskal(qf, roots, nb, T, A, ea, ec, ew, h, w, gt, area_b, want, one,
                                 no, no, yes, np.zeros(0, np.int32), np.full(256, -np.inf))
    return best, boxes


@njit(nogil=True)
def _levels_best(K: np.ndarray, q: np.ndarray, gt: np.ndarray, area_b: np.ndarray,
                 want: np.ndarray, multi: bool, single: bool, max_basins: int):
    """Multi-contour best IoU, single-contour best IoU and box at the levels ``want``.

    ``K``: the keys of ``q`` (:func:`_map_keys` or :func:`_q_keys`); ``q.max() >= 1``.
    Returns ``best`` (256,), ``best_single`` (256,), ``boxes`` (256, 4) int32; entries of
    levels not wanted (or of a mode not asked) are meaningless.
    """
    h, w = q.shape
    no, yes, one = _run_time_flags(h)
    qmax = int(q.max())
    ptr8, n8, n8_up = _pointers8(K, h, w)
    ptr4, n4, n4_inner = _pointers4(K, h, w)
    holes = n4_inner > 0 and _has_hole(q, ptr4)  # a descent root off the border first
    best = np.full(256, -np.inf)
    best_single = np.full(256, -np.inf)
    boxes = np.zeros((256, 4), np.int32)
    if n8 > max_basins or (holes and n4 > max_basins):  # e.g. noise: per-pixel sweeps
        if multi:
            no_lv = np.zeros(0, np.int32)
            no_bx = np.zeros((0, 4), np.int32)
            fg, _ = _sweep(q, yes, no, one, one, gt, area_b, no, no_lv, no_bx,
                           np.zeros(256, np.int64))
            hole, _ = _sweep((255 - q).astype(np.uint8), no, yes, 256 - qmax, one + one, gt,
                             area_b, no, no_lv, no_bx, np.zeros(256, np.int64))
            for L in range(256):
                best[L] = max(fg[L], hole[(254 - L) % 256])
        if single:
            best_single, boxes = _single_sweep(fill_holes(q), 1, gt, area_b)
        return best, best_single, boxes
    if not holes and n8_up <= 1:  # one component at every level (a smooth blob)
        b, bx = _profile_boxes(q, want, gt, area_b)
        return b, b, bx
    qf = q.ravel()
    if multi:
        gains = (_block_gains(K, h, w) if single and not holes
                 else np.zeros(0, np.uint8))
        label, nb, roots, T, A = _basins(ptr8, qf, n8, h, w, yes, gains)
        ea, ec, ew = _edges(qf, label, nb, h, w, yes, _PAIR_TABLE_MAX)
        best, best_single, boxes, _ = _kruskal(qf, roots, nb, T, A, ea, ec, ew, h, w, gt,
                                               area_b, want, one, no, yes,
                                               single and not holes, np.zeros(0, np.int32),
                                               np.full(256, -np.inf))
    elif single and not holes:
        best_single, boxes = _single_basins(K, q, ptr8, n8, n8_up, gt, area_b, want)
    if not holes:
        return best, best_single, boxes
    # the holes: 4-connected components of {q <= L} = {255 - q >= 255 - L} off the border
    u = (255 - qf).astype(np.uint8)  # uint8 like qf: one compiled variant of each kernel
    label4, nb4, roots4, T4, A4 = _basins(ptr4, u, n4, h, w, multi, np.zeros(0, np.uint8))
    ea, ec, ew = _edges(u, label4, nb4, h, w, no, _PAIR_TABLE_MAX)
    # (with the foreground's best IoU as the floor: most hole boxes are too small to beat it)
    best, _, _, F = _kruskal(u, roots4, nb4, T4, A4, ea, ec, ew, h, w, gt, area_b, want,
                             256 - qmax, yes, multi, no,
                             _border_values(u, label4, nb4, h, w), best)
    if single:  # the largest contour encloses its holes: the filled map's components
        Kf, qfill = _filled_keys(K, q, label4, F)
        ptrf, nf, nf_up = _pointers8(Kf, h, w)
        if nf > max_basins:
            best_single, boxes = _single_sweep(qfill, 1, gt, area_b)
        else:
            best_single, boxes = _single_basins(Kf, qfill, ptrf, nf, nf_up, gt, area_b, want)
    return best, best_single, boxes



# ----------------------------------------------------------------------------- public
def _keys(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_map_keys` of a float map in [0, 1] (pixels of one uint8 level ordered by
    the map's own values: smooth maps then have one basin per true local maximum), or
    :func:`_q_keys` of a uint8 map ``q``. Returns the keys and ``q`` (H, W) uint8."""
    img = np.asarray(img)
    if img.dtype == np.uint8:
        q = np.ascontiguousarray(img)
        return _q_keys(q), q
    return _map_keys(np.ascontiguousarray(img, dtype=np.float64))


def best_levels(img: np.ndarray, gt: np.ndarray | None, want: np.ndarray | None = None,
                multi: bool = True, single: bool = True):
    """Both box modes at every level of one map.

    Parameters
    ----------
    img : ndarray (H, W), float in [0, 1] or its uint8 quantisation ``q``; ``q.max() >= 1``
    gt : ndarray (k, 4) GT boxes ``x0, y0, x1, y1``, or None (boxes only)
    want : ndarray (256,) bool, optional
        The levels to evaluate (default: all).
    multi, single : bool
        The modes to compute.

    Returns
    -------
    best_multi : ndarray (256,) float64
        Multi-contour mode: the best IoU of any contour box with ``gt`` at level ``L``.
    best_single : ndarray (256,) float64
        Single-contour mode: the IoU of the largest contour's box (-inf without ``gt``).
    boxes : ndarray (256, 4) int32
        Single-contour mode: the reference's box at each level.
    Entries of levels ``>= q.max()``, not wanted, or of a mode not asked are meaningless.
    """
    K, q = _keys(img)
    g, area_b = _gt_terms(gt)
    want = np.ones(256, np.bool_) if want is None else np.asarray(want, dtype=np.bool_)
    return _levels_best(K, q, g, area_b, want, multi, single, _max_basins(q.size))


def best_iou_multi(img: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Multi-contour mode of :func:`best_levels`: best IoU per level, (256,) float64."""
    return best_levels(img, gt, multi=True, single=False)[0]


def best_single(img: np.ndarray, gt: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Single-contour mode of :func:`best_levels`: ``best`` (256,) float64 and ``boxes``
    (256, 4) int64."""
    _, best, boxes = best_levels(img, gt, multi=False, single=True)
    return best, boxes.astype(np.int64)


def best_both(img: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both modes of :func:`best_levels` at once (one set of keys and pointers): the
    multi-contour and the single-contour best IoU per level."""
    best, best_s, _ = best_levels(img, gt)
    return best, best_s


@njit(nogil=True)
def _threshold_best(m: np.ndarray, gt: np.ndarray, area_b: np.ndarray,
                    thresholds: np.ndarray, multi: bool, single: bool, max_basins: int):
    """(2, n_thresholds): the best IoU of each mode at ``L = int(t * q.max())``."""
    K, q = _map_keys(m)
    qmax = int(q.max())
    out = np.full((2, thresholds.size), -np.inf)
    if qmax == 0:  # no contour at any threshold: the box [0, 0, 0, 0]
        out[:] = _iou_max(0, 0, 0, 0, gt, area_b)
        return out
    want = np.zeros(256, np.bool_)
    levels = np.empty(thresholds.size, np.int64)
    for t in range(thresholds.size):
        levels[t] = int(thresholds[t] * float(qmax))  # the reference's float64 product
        want[levels[t]] = True
    best, best_s, _ = _levels_best(K, q, gt, area_b, want, multi, single, max_basins)
    for t in range(thresholds.size):
        out[0, t] = best[levels[t]]
        out[1, t] = best_s[levels[t]]
    return out


def threshold_best(smap: np.ndarray, gt: np.ndarray, thresholds: np.ndarray,
                   multi_contour: bool | None) -> np.ndarray:
    """Best IoU over predicted x GT boxes at each CAM threshold of one checked float map:
    (n_thresholds,) float64, or with ``multi_contour=None`` both modes, (2, n_thresholds):
    multi-contour, single-contour. One compiled call per map."""
    g, area_b = _gt_terms(gt)
    out = _threshold_best(smap, g, area_b, thresholds, multi_contour is not False,
                          multi_contour is not True, _max_basins(smap.size))
    if multi_contour is None:
        return out
    return out[0] if multi_contour else out[1]



def all_component_boxes(img: np.ndarray, connectivity: int) -> tuple[np.ndarray, np.ndarray]:
    """Tight boxes of every connected component of every ``{img > L}``, ``L = 0..254``.

    Returns ``levels`` (K,) int64 and ``boxes`` (K, 4) int64 ``[xmin, ymin, xmax, ymax]``.
    """
    img = np.ascontiguousarray(img)
    counts = np.zeros(256, np.int64)
    _, k = _sweep(img, connectivity == 8, False, 1, 0, *_NO_GT, False, *_NO_OUT, counts)
    lv = np.empty(k, np.int32)
    bx = np.empty((k, 4), np.int32)
    _sweep(img, connectivity == 8, False, 1, 0, *_NO_GT, True, lv, bx, counts)
    return lv.astype(np.int64), bx.astype(np.int64)



# ----------------------------------------------------------------------------- contour order
@njit(nogil=True)
def _basin_emit(val: np.ndarray, roots: np.ndarray, nb: int, T: np.ndarray, ea: np.ndarray,
                ec: np.ndarray, ew: np.ndarray, h: int, w: int, v_min: int,
                drop_border: bool):
    """Every component of every ``{val > v - 1}`` (``v = 255 .. v_min``) with its identity.

    Returns, per (component, level) record: the level ``v - 1``, the component's node in
    the merge tree and ``[x0, y0, x1, y1, first raster index]`` (K, 5); ``starts`` (257,)
    the records of level ``lv`` at ``starts[lv + 1] .. starts[lv]`` (levels descend); the
    merge tree: ``tree_parent`` and ``tree_level`` (a node made by merging at value ``v``
    exists for levels ``<= v - 1``); basin ``b`` is leaf node ``b``. Components touching
    the border are not listed when ``drop_border``. Basins, tables and edges as for
    :func:`_kruskal`.
    """
    xs = _xbits(w)
    top, n_ent, ent, e_start, e_order, b_start, by_top = _sweep_order(val, roots, nb, T, ew)
    parent = np.arange(nb).astype(np.int32)
    size = np.ones(nb, np.int32)
    node = np.arange(nb).astype(np.int32)  # the merge-tree node of each root
    tree_parent = np.full(2 * nb, -1, np.int32)
    tree_level = np.full(2 * nb, 255, np.int32)
    n_nodes = nb
    G = np.full((nb, 4), _BIG, np.int32)
    active = np.empty(nb, np.int32)
    pos = np.full(nb, -1, np.int32)
    n_active = 0
    # records: at most one per active group per level; grown by doubling outside the
    # pixel loops
    cap = 4 * nb + 16
    rec_lv = np.empty(cap, np.int32)
    rec_node = np.empty(cap, np.int32)
    rec = np.empty((cap, 5), np.int32)
    n_rec = 0
    starts = np.zeros(257, np.int64)
    for v in range(255, v_min - 1, -1):
        for k in range(b_start[v], b_start[v + 1]):
            b = by_top[k]
            pos[b] = n_active
            active[n_active] = b
            n_active += 1
        for k in range(e_start[v], e_start[v + 1]):
            i = e_order[k]
            ra = _find(parent, ea[i])
            rb = _find(parent, ec[i])
            if ra == rb:
                continue
            if size[ra] < size[rb]:
                ra, rb = rb, ra
            parent[rb] = ra
            size[ra] += size[rb]
            for j in range(4):
                G[ra, j] = min(G[ra, j], G[rb, j])
            tree_parent[node[ra]] = n_nodes
            tree_parent[node[rb]] = n_nodes
            tree_level[n_nodes] = v - 1
            node[ra] = n_nodes
            n_nodes += 1
            last = active[n_active - 1]
            active[pos[rb]] = last
            pos[last] = pos[rb]
            pos[rb] = -1
            n_active -= 1
        for k in range(n_ent[v], n_ent[v + 1]):
            b = ent[k]
            r = _find(parent, b)
            for j in range(4):
                G[r, j] = min(G[r, j], T[b, v, j])
        starts[v] = n_rec
        if v == 0:
            continue
        if n_rec + n_active > cap:
            cap = 2 * (n_rec + n_active)
            lv2 = np.empty(cap, np.int32)
            nd2 = np.empty(cap, np.int32)
            rc2 = np.empty((cap, 5), np.int32)
            lv2[:n_rec] = rec_lv[:n_rec]
            nd2[:n_rec] = rec_node[:n_rec]
            rc2[:n_rec] = rec[:n_rec]
            rec_lv, rec_node, rec = lv2, nd2, rc2
        for t in range(n_active):
            r = active[t]
            x0, y0, x1, y1 = G[r, 0], G[r, 3] >> xs, -G[r, 1], -G[r, 2]
            if drop_border and (x0 == 0 or y0 == 0 or x1 == w - 1 or y1 == h - 1):
                continue
            rec_lv[n_rec] = v - 1
            rec_node[n_rec] = node[r]
            rec[n_rec, 0] = x0
            rec[n_rec, 1] = y0
            rec[n_rec, 2] = x1
            rec[n_rec, 3] = y1
            rec[n_rec, 4] = y0 * w + (G[r, 3] - (y0 << xs))
            n_rec += 1
    for v in range(v_min - 1, -1, -1):
        starts[v] = n_rec
    starts[256] = 0
    return (rec_lv[:n_rec].copy(), rec_node[:n_rec].copy(), rec[:n_rec].copy(), starts,
            tree_parent[:n_nodes].copy(), tree_level[:n_nodes].copy())



@njit(nogil=True)
def _ordered_boxes(h: int, w: int, levels: np.ndarray, lab8: np.ndarray, lab4: np.ndarray,
                   f_node: np.ndarray, f_rec: np.ndarray, f_starts: np.ndarray,
                   f_par: np.ndarray, f_lev: np.ndarray,
                   h_node: np.ndarray, h_rec: np.ndarray, h_starts: np.ndarray,
                   h_par: np.ndarray, h_lev: np.ndarray):
    """The reference boxes of ``q > L`` for each ``L`` in ``levels``, in OpenCV's order.

    ``cv2.findContours(RETR_TREE)`` lists the contour tree in pre-order (a parent, then
    its subtrees), siblings by decreasing raster index of their first pixel. Outer
    borders are the 8-connected components (first pixel = their first raster pixel; the
    parent is the hole holding the pixel above it, or the frame), hole borders the
    4-connected background components inside the image (the parent is the component
    holding the pixel left of the hole's first pixel). ``levels`` must be increasing.
    Returns all boxes (K, 4) and the number per level.
    """
    n_lv = levels.size
    total = 0
    for i in range(n_lv):
        L = levels[i]
        total += (f_starts[L] - f_starts[L + 1]) + (h_starts[254 - L] - h_starts[255 - L])
    out = np.empty((total, 4), np.int64)
    sizes = np.zeros(n_lv, np.int64)
    kmax = 1
    for i in range(n_lv):
        L = levels[i]
        kmax = max(kmax, (f_starts[L] - f_starts[L + 1]) + (h_starts[254 - L] - h_starts[255 - L]))
    par = np.empty(kmax, np.int64)  # per-level work arrays, allocated once
    key = np.empty(kmax, np.int64)
    head = np.empty(kmax + 1, np.int64)
    nxt = np.empty(kmax, np.int64)
    tail = np.empty(kmax + 1, np.int64)
    stack = np.empty(kmax + 1, np.int64)
    order = np.empty(kmax, np.int64)
    slot_f = np.full(f_par.size, -1, np.int64)  # merge-tree node -> record of this level
    slot_h = np.full(h_par.size, -1, np.int64)
    # Parents through the other sweep's merge tree. The node holding a leaf only climbs
    # as the level drops, so each leaf keeps its last node and the next climb resumes
    # there (amortised: each tree edge is climbed once per leaf): outer borders ask the
    # background tree at 254 - L, which drops as L rises (levels ascending), holes ask
    # the foreground tree at L (levels descending).
    f_parent = np.full(f_node.size, -1, np.int64)  # per record: slot of its parent hole
    h_parent = np.full(h_node.size, -1, np.int64)  # per record: slot of its parent
    cur4 = np.arange(h_par.size)
    for i in range(n_lv):
        L = levels[i]
        f0, f1 = f_starts[L + 1], f_starts[L]
        lh = 254 - L
        h0, h1 = h_starts[lh + 1], h_starts[lh]
        nf = f1 - f0
        for j in range(h0, h1):
            slot_h[h_node[j]] = nf + (j - h0)
        for j in range(f0, f1):
            first = f_rec[j, 4]
            if first >= w:
                leaf = lab4[first - w]  # background at L: the pixel above the first pixel
                nd = cur4[leaf]
                while h_par[nd] >= 0 and h_lev[h_par[nd]] >= lh:
                    nd = h_par[nd]
                cur4[leaf] = nd
                f_parent[j] = slot_h[nd]
        for j in range(h0, h1):
            slot_h[h_node[j]] = -1
    cur8 = np.arange(f_par.size)
    for i in range(n_lv - 1, -1, -1):
        L = levels[i]
        f0, f1 = f_starts[L + 1], f_starts[L]
        lh = 254 - L
        h0, h1 = h_starts[lh + 1], h_starts[lh]
        for j in range(f0, f1):
            slot_f[f_node[j]] = j - f0
        for j in range(h0, h1):
            leaf = lab8[h_rec[j, 4] - 1]  # the pixel left of the hole's first pixel
            nd = cur8[leaf]
            while f_par[nd] >= 0 and f_lev[f_par[nd]] >= L:
                nd = f_par[nd]
            cur8[leaf] = nd
            h_parent[j] = slot_f[nd]
        for j in range(f0, f1):
            slot_f[f_node[j]] = -1
    o = 0
    for i in range(n_lv):
        L = levels[i]
        f0, f1 = f_starts[L + 1], f_starts[L]
        lh = 254 - L  # the background sweep's level (255 - q > 254 - L)
        h0, h1 = h_starts[lh + 1], h_starts[lh]
        nf = f1 - f0
        nh = h1 - h0
        k = nf + nh
        # nodes 0..nf-1 outer borders, nf..k-1 holes; parent -1 = the frame
        for j in range(nf):
            key[j] = f_rec[f0 + j, 4]
            par[j] = f_parent[f0 + j]
        for j in range(nh):
            key[nf + j] = h_rec[h0 + j, 4]
            par[nf + j] = h_parent[h0 + j]
        # children lists sorted by decreasing key: sort all nodes by key once (keys are
        # distinct first pixels; few per level: an insertion sort, no allocation)
        if k <= 48:
            for t in range(k):
                j = t
                kt = key[t]
                while j > 0 and key[order[j - 1]] < kt:
                    order[j] = order[j - 1]
                    j -= 1
                order[j] = t
        else:
            order[:k] = np.argsort(-key[:k])
        head[: k + 1] = -1  # k = the frame
        nxt[:k] = -1
        tail[: k + 1] = -1
        for t in range(k):
            j = order[t]
            pj = par[j] if par[j] >= 0 else k
            if head[pj] < 0:
                head[pj] = j
            else:
                nxt[tail[pj]] = j
            tail[pj] = j
        # pre-order walk with an explicit stack
        sp = 0
        c = head[k]
        while True:
            while c >= 0:
                if c < nf:
                    x0, y0, x1, y1 = f_rec[f0 + c, 0], f_rec[f0 + c, 1], f_rec[f0 + c, 2], \
                        f_rec[f0 + c, 3]
                    out[o, 0] = x0
                    out[o, 1] = y0
                    out[o, 2] = min(x1 + 1, w - 1)
                    out[o, 3] = min(y1 + 1, h - 1)
                else:
                    r = h0 + c - nf
                    out[o, 0] = h_rec[r, 0] - 1
                    out[o, 1] = h_rec[r, 1] - 1
                    out[o, 2] = min(h_rec[r, 2] + 2, w - 1)
                    out[o, 3] = min(h_rec[r, 3] + 2, h - 1)
                o += 1
                stack[sp] = nxt[c]
                sp += 1
                c = head[c]
            if sp == 0:
                break
            sp -= 1
            c = stack[sp]
        sizes[i] = k
    return out, sizes



@njit(nogil=True)
def _ordered_arrays(K: np.ndarray, q: np.ndarray, levels: np.ndarray, max_basins: int):
    """:func:`ordered_multi_arrays` on keys; ``ok`` False when a sweep has more than
    ``max_basins`` basins."""
    h, w = q.shape
    qmax = int(q.max())
    qf = q.ravel()
    ptr8, n8, _ = _pointers8(K, h, w)
    ptr4, n4, _ = _pointers4(K, h, w)
    if n8 > max_basins or n4 > max_basins:
        return False, np.zeros((0, 4), np.int64), np.zeros(0, np.int64)
    u = 255 - qf
    lab8, nb8, roots8, T8, _ = _basins(ptr8, qf, n8, h, w, True, _NO_GAIN)
    lab4, nb4, roots4, T4, _ = _basins(ptr4, u, n4, h, w, True, _NO_GAIN)
    ea8, ec8, ew8 = _edges(qf, lab8, nb8, h, w, True, _PAIR_TABLE_MAX)
    ea4, ec4, ew4 = _edges(u, lab4, nb4, h, w, False, _PAIR_TABLE_MAX)
    _, f_node, f_rec, f_starts, f_par, f_lev = _basin_emit(qf, roots8, nb8, T8, ea8, ec8, ew8,
                                                           h, w, 1, False)
    _, h_node, h_rec, h_starts, h_par, h_lev = _basin_emit(u, roots4, nb4, T4, ea4, ec4, ew4,
                                                           h, w, 256 - qmax, True)
    out, sizes = _ordered_boxes(h, w, levels, lab8, lab4, f_node, f_rec, f_starts, f_par,
                                f_lev, h_node, h_rec, h_starts, h_par, h_lev)
    return True, out, sizes


def ordered_multi_arrays(img: np.ndarray, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Multi-contour boxes of ``q > L`` for the sorted distinct ``levels`` (each in
    ``0..q.max()-1``), in ``cv2.findContours(RETR_TREE)`` order, concatenated: boxes
    (K, 4) int64 and the number per level; None when the map has too many basins
    (noise), for which the caller traces contours instead. ``img``: the float map in
    [0, 1] or its uint8 quantisation ``q`` (:func:`_keys`)."""
    K, q = _keys(img)
    levels = np.asarray(levels, dtype=np.int64)
    if levels.size > 1 and not (np.diff(levels) > 0).all():
        raise ValueError("levels must be sorted and distinct")
    ok, out, sizes = _ordered_arrays(K, q, levels, _max_basins(q.size))
    return (out, sizes) if ok else None



@njit(nogil=True)
def expand_rows(boxes: np.ndarray, sizes: np.ndarray, u: np.ndarray):
    """Per-threshold copies of per-level rows.

    ``boxes`` (K, 4) holds ``sizes[j]`` rows for each level ``j`` in turn; returns the
    rows of level ``u[t]`` for each ``t`` in turn (sum of ``sizes[u]``, 4) and the bounds
    (len(u) + 1,) of each threshold's rows in it.
    """
    offsets = np.empty(sizes.size, np.int64)
    o = 0
    for j in range(sizes.size):
        offsets[j] = o
        o += sizes[j]
    bounds = np.empty(u.size + 1, np.int64)
    bounds[0] = 0
    for t in range(u.size):
        bounds[t + 1] = bounds[t] + sizes[u[t]]
    out = np.empty((bounds[u.size], 4), boxes.dtype)
    for t in range(u.size):
        src = offsets[u[t]]
        dst = bounds[t]
        for r in range(sizes[u[t]]):
            for c in range(4):
                out[dst + r, c] = boxes[src + r, c]
    return out, bounds


def ordered_multi_boxes(q: np.ndarray, levels: np.ndarray) -> list[np.ndarray] | None:
    """:func:`ordered_multi_arrays` as one (k_L, 4) array per entry of ``levels``."""
    uniq, inverse = np.unique(np.asarray(levels, dtype=np.int64), return_inverse=True)
    res = ordered_multi_arrays(q, uniq)
    if res is None:
        return None
    out, sizes = res
    parts = np.split(out, np.cumsum(sizes)[:-1])
    return [parts[j] for j in inverse.tolist()]
