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
  ``q`` (4-connected from the border, :func:`fill_holes`); one sweep over ``m`` tracks
  each component's box, first pixel and block counts.
* Boxes in OpenCV's order (``boxes_from_scoremap(..., multi_contour=True)``). RETR_TREE
  lists the contour tree in pre-order, siblings by decreasing first raster pixel; the
  parent of an outer border is the hole holding the pixel above its first pixel, the
  parent of a hole the component holding the pixel left of the hole's first pixel.
  Both sweeps record their merge trees, which answer these questions at every level
  (:func:`ordered_multi_arrays`; equal to ``findContours`` at every level in the tests).

Two implementations of a sweep. *Basins* (maps with few local maxima, e.g. CAMs): every
pixel points to its largest neighbour, a basin is the set of pixels draining to one
local maximum, and a basin's pixels above any level are connected; so per-(value, basin)
tables (box, first pixel, block areas) filled in one raster pass, and a union-find over
the few basins along their best joining level (Kruskal), give every component of every
level. *Pixels* (maps with very many maxima, e.g. noise, where basin tables would need
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

from skcream._jit import njit

__all__ = ["best_both", "best_iou_multi", "best_single", "fill_holes", "all_component_boxes",
           "euler_numbers"]


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


def _euler_table() -> np.ndarray:
    """4 x the change of the 8-connected Euler number (components - holes) when a pixel
    joins the foreground, for each of the 256 foreground patterns of its 8 neighbours.

    From Gray's bit quads (Pratt, "Digital Image Processing"): over the 2x2 blocks of the
    image padded with background, ``4 E = n(1 pixel) - n(3 pixels) - 2 n(diagonal pair)``;
    only the four blocks holding the pixel change.
    """
    # neighbour bits: 0 up-left, 1 up, 2 up-right, 3 left, 4 right, 5 down-left, 6 down,
    # 7 down-right; the blocks holding the centre c, as (top-left, top-right, bottom-left,
    # bottom-right) with -1 = the centre
    blocks = ((0, 1, 3, -1), (1, 2, -1, 4), (3, -1, 5, 6), (-1, 4, 6, 7))

    def quad(a: int, b: int, c: int, d: int) -> int:
        n = a + b + c + d
        if n == 1:
            return 1
        if n == 3:
            return -1
        if n == 2 and a == d:  # the diagonal pairs: (a, d) or (b, c)
            return -2
        return 0

    table = np.zeros(256, np.int64)
    for mask in range(256):
        bits = [(mask >> k) & 1 for k in range(8)]
        for blk in blocks:
            before = [0 if j < 0 else bits[j] for j in blk]
            after = [1 if j < 0 else bits[j] for j in blk]
            table[mask] += quad(*after) - quad(*before)
    return table


_EULER = _euler_table()


@njit(nogil=True)
def _euler_sweep(q: np.ndarray, table: np.ndarray) -> np.ndarray:
    h, w = q.shape
    d = np.zeros(257, np.int64)  # 4 x the change when the pixels of value v join
    for y in range(h):
        for x in range(w):
            v = q[y, x]
            mask = 0
            k = 0
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    if dy == 0 and dx == 0:
                        continue
                    yy = y + dy
                    xx = x + dx
                    if 0 <= yy < h and 0 <= xx < w:
                        u = q[yy, xx]
                        # pixels join by decreasing value, earlier raster index first
                        if u > v or (u == v and (dy < 0 or (dy == 0 and dx < 0))):
                            mask |= 1 << k
                    k += 1
            d[v] += table[mask]
    out = np.zeros(256, np.int64)
    acc = 0
    for v in range(255, 0, -1):  # {q > v - 1}: every pixel of value >= v has joined
        acc += d[v]
        out[v - 1] = acc // 4
    return out


def euler_numbers(q: np.ndarray) -> np.ndarray:
    """The Euler number of ``{q > L}`` (8-connected components minus holes) for every level.

    Parameters
    ----------
    q : ndarray (H, W) uint8

    Returns
    -------
    ndarray (256,) int64
        Entry ``L`` for ``L = 0..254`` (entry 255: the empty set, 0).
    """
    return _euler_sweep(np.ascontiguousarray(q), _EULER)


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


def _level_sweep(img: np.ndarray, conn8: bool, v_min: int, rule: int, drop_border: bool,
                 single: bool, g: np.ndarray, area_b: np.ndarray,
                 order: tuple[np.ndarray, np.ndarray] | None = None, flip: bool = False,
                 counts: np.ndarray | None = None):
    """``best`` (256,) and, when ``single``, ``boxes`` (256, 4): basins when few, else pixels.

    ``order``: the bucket order of ``img`` (of ``255 - img`` when ``flip``), if known.
    ``counts`` (256,) int64, if given, receives the number of components at each level
    (multi-contour mode).
    """
    if order is None:
        order, flip = _bucket_order(img), False
    if counts is None:
        counts = np.zeros(256, np.int64)
    label, nb = _basin_labels_sorted(img, conn8, _max_basins(img.size), *order, flip)
    if nb >= 0:
        return _basin_sweep(img, label, nb, conn8, v_min, rule, drop_border, single, g, area_b,
                            counts)
    if single:
        return _single_sweep(img, v_min, g, area_b)
    best, _ = _sweep(img, conn8, drop_border, v_min, rule, g, area_b, False, *_NO_OUT, counts)
    return best, None


def best_iou_multi(q: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Multi-contour mode: best IoU of any contour box with ``gt`` at each level.

    Parameters
    ----------
    q : ndarray (H, W) uint8 with ``q.max() >= 1``
    gt : ndarray (k, 4) GT boxes ``x0, y0, x1, y1``

    Returns
    -------
    ndarray (256,) float64
        Entry ``L`` for ``L < q.max()`` (other entries are meaningless).
    """
    q = np.ascontiguousarray(q)
    qmax = int(q.max())
    g, area_b = _gt_terms(gt)
    order = _bucket_order(q)  # sorts both sweeps' pixels
    comps = np.zeros(256, np.int64)
    fg, _ = _level_sweep(q, True, 1, 1, False, False, g, area_b, order, counts=comps)
    # Holes exist at a level L iff the 8-connected components of {q > L} outnumber its
    # Euler number (components - holes, one pass: :func:`euler_numbers`); maps with no
    # hole at any level (smooth blobs, CAMs whose minima reach the border) skip the
    # background sweep, whose best IoUs would all be -inf
    if (comps[:qmax] == euler_numbers(q)[:qmax]).all():
        return fg
    # background {q <= L} = {255 - q > 254 - L}: 255 - q at values >= 256 - qmax
    hole, _ = _level_sweep(255 - q, False, 256 - qmax, 2, True, False, g, area_b, order, True)
    return np.maximum(fg, hole[(254 - np.arange(256)) % 256])


def best_both(q: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`best_iou_multi` and the ``best`` of :func:`best_single` of one map at once.

    The two share the bucket order of ``q`` and, when ``{q > L}`` has no hole at any level
    (the Euler test of :func:`best_iou_multi`), the hole filling: the filled map is ``q``
    itself, so the single-contour sweep runs on ``q`` without :func:`fill_holes`.
    """
    q = np.ascontiguousarray(q)
    qmax = int(q.max())
    g, area_b = _gt_terms(gt)
    order = _bucket_order(q)
    comps = np.zeros(256, np.int64)
    multi, _ = _level_sweep(q, True, 1, 1, False, False, g, area_b, order, counts=comps)
    if (comps[:qmax] == euler_numbers(q)[:qmax]).all():
        single, _ = _level_sweep(q, True, 1, 1, False, True, g, area_b, order)
        return multi, single
    hole, _ = _level_sweep(255 - q, False, 256 - qmax, 2, True, False, g, area_b, order, True)
    multi = np.maximum(multi, hole[(254 - np.arange(256)) % 256])
    single, _ = _level_sweep(fill_holes(q), True, 1, 1, False, True, g, area_b)
    return multi, single


def best_single(q: np.ndarray, gt: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Single-contour mode: the box of the largest contour at each level, and its best IoU.

    Parameters
    ----------
    q : ndarray (H, W) uint8 with ``q.max() >= 1``
    gt : ndarray (k, 4) or None

    Returns
    -------
    best : ndarray (256,) float64 (meaningful below ``q.max()``; -inf without ``gt``)
    boxes : ndarray (256, 4) int64, the reference's box at each level below ``q.max()``
    """
    q = np.ascontiguousarray(q)
    g, area_b = _gt_terms(gt)
    best, boxes = _level_sweep(fill_holes(q), True, 1, 1, False, True, g, area_b)
    return best, boxes.astype(np.int64)


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


# ----------------------------------------------------------------------------- basins
def _basin_labels(img: np.ndarray, conn8: bool, max_basins: int,
                  flipped_order: tuple[np.ndarray, np.ndarray] | None = None):
    """:func:`_basin_labels_sorted` with ``img``'s bucket order, or with the given bucket
    order of ``255 - img`` (shared by the two sweeps of one map)."""
    if flipped_order is None:
        order, starts = _bucket_order(img)
        return _basin_labels_sorted(img, conn8, max_basins, order, starts, False)
    return _basin_labels_sorted(img, conn8, max_basins, *flipped_order, True)


@njit(nogil=True)
def _basin_labels_sorted(img: np.ndarray, conn8: bool, max_basins: int, order: np.ndarray,
                         starts: np.ndarray, flip: bool):
    """Basin of every pixel (ravelled) and the number of basins, or -1 beyond ``max_basins``.

    Every pixel points to the neighbour (itself included) with the largest key
    ``(value, index)``; a basin is the set of pixels whose pointers end at one local
    maximum of the key. Along a pointer path values never decrease, so for every
    ``L`` the basin's pixels above ``L`` are connected.
    """
    h, w = img.shape
    n = h * w
    flat = img.ravel()
    # keys (value, index) packed in the bits; the 3x3 (or cross) maximum, separably
    row = np.empty(n, np.int64)
    for y in range(h):
        o = y * w
        for x in range(w):
            p = o + x
            k = (np.int64(flat[p]) << 32) | p
            if x > 0:
                k = max(k, (np.int64(flat[p - 1]) << 32) | (p - 1))
            if x < w - 1:
                k = max(k, (np.int64(flat[p + 1]) << 32) | (p + 1))
            row[p] = k
    ptr = np.empty(n, np.int32)
    n_roots = 0
    for y in range(h):
        o = y * w
        for x in range(w):
            p = o + x
            k = row[p]
            if conn8:
                if y > 0:
                    k = max(k, row[p - w])
                if y < h - 1:
                    k = max(k, row[p + w])
            else:
                if y > 0:
                    k = max(k, (np.int64(flat[p - w]) << 32) | (p - w))
                if y < h - 1:
                    k = max(k, (np.int64(flat[p + w]) << 32) | (p + w))
            t = k & 0xFFFFFFFF
            ptr[p] = t
            if t == p:
                n_roots += 1
    if n_roots > max_basins:
        return ptr, -1
    # in decreasing key order every pointer target is labelled before its sources.
    # ``order``/``starts``: the bucket order (increasing value, increasing index within a
    # value) of ``img``, or when ``flip`` of ``255 - img``: then the buckets are taken in
    # increasing order, each from its end (the same decreasing key order of ``img``)
    label = np.empty(n, np.int32)
    nb = 0
    for v in range(256):
        b0 = starts[255 - v] if not flip else starts[v]
        b1 = starts[256 - v] if not flip else starts[v + 1]
        for i in range(b1 - 1, b0 - 1, -1):
            p = order[i]
            t = ptr[p]
            if t == p:
                label[p] = nb
                nb += 1
            else:
                label[p] = label[t]
    return label, nb


#: basins up to which :func:`_basin_edges` keeps one edge per pair of basins (a
#: (nb, nb) int16 table: 2 MB at most)
_PAIR_TABLE_MAX = 1024


@njit(nogil=True)
def _basin_edges(flat: np.ndarray, label: np.ndarray, nb: int, h: int, w: int, fdy, fdx,
                 n_dir: int, edge_px: np.ndarray, n_px: int, n_edges: int, max_nb: int):
    """Edges between adjacent basins, weighted by ``min(value)`` of the pixel pair.

    ``edge_px`` lists the ``n_px`` pixels with a forward neighbour (``fdy``, ``fdx``) in
    another basin, ``n_edges`` such pairs in all. Kruskal's sweep merges two groups at
    the heaviest edge between them, so with at most ``max_nb`` basins only the
    heaviest edge of each pair of basins is returned (a smooth 224x224 map: ~150 pairs
    for ~8,500 pixel pairs); else every pixel pair. The merge order within one weight
    changes, not the components at any level, nor the nodes the merge trees give at a
    level (a climb passes every node made at one level).
    """
    if nb > max_nb:
        ea = np.empty(n_edges, np.int32)
        ec = np.empty(n_edges, np.int32)
        ew = np.empty(n_edges, np.int32)
        e = 0
        for i in range(n_px):
            p = edge_px[i]
            y = p // w
            x = p - y * w
            b = label[p]
            for d in range(n_dir):
                yy = y + fdy[d]
                xx = x + fdx[d]
                if yy < h and 0 <= xx < w:
                    r = yy * w + xx
                    c = label[r]
                    if c != b:
                        ea[e] = b
                        ec[e] = c
                        ew[e] = min(flat[p], flat[r])
                        e += 1
        return ea, ec, ew
    best = np.full((nb, nb), -1, np.int16)  # at [lo, hi], lo < hi
    m = 0
    for i in range(n_px):
        p = edge_px[i]
        y = p // w
        x = p - y * w
        b = label[p]
        for d in range(n_dir):
            yy = y + fdy[d]
            xx = x + fdx[d]
            if yy < h and 0 <= xx < w:
                r = yy * w + xx
                c = label[r]
                if c != b:
                    lo = min(b, c)
                    hi = max(b, c)
                    wv = min(flat[p], flat[r])
                    if best[lo, hi] < 0:
                        m += 1
                    if wv > best[lo, hi]:
                        best[lo, hi] = wv
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
def _by_value(ew: np.ndarray, top: np.ndarray, nb: int):
    """Counting sorts of the basin edges by weight and of the basins by their top value.

    Returns ``counts`` (257,) and ``eorder``: the edges of weight ``v`` are
    ``eorder[counts[v]:counts[v + 1]]``; ``bcount`` (257,) and ``by_top``: the basins whose
    maximum is ``v`` are ``by_top[bcount[v]:bcount[v + 1]]`` (both stable).
    """
    n_edges = ew.size
    counts = np.zeros(257, np.int64)
    for i in range(n_edges):
        counts[ew[i] + 1] += 1
    for v in range(256):
        counts[v + 1] += counts[v]
    fill = counts[:256].copy()
    eorder = np.empty(n_edges, np.int32)
    for i in range(n_edges):
        eorder[fill[ew[i]]] = i
        fill[ew[i]] += 1
    bcount = np.zeros(257, np.int64)
    for b in range(nb):
        bcount[top[b] + 1] += 1
    for v in range(256):
        bcount[v + 1] += bcount[v]
    bfill = bcount[:256].copy()
    by_top = np.empty(nb, np.int32)
    for b in range(nb):
        by_top[bfill[top[b]]] = b
        bfill[top[b]] += 1
    return counts, eorder, bcount, by_top


@njit(nogil=True)
def _basin_tables(img: np.ndarray, label: np.ndarray, nb: int, conn8: bool, single: bool):
    """The raster pass shared by :func:`_basin_sweep` and :func:`_basin_emit`.

    Returns the per-(value, basin) tables ``T`` (256, nb, 5) (box of the basin's pixels of
    value ``v`` and their first raster index; ``T[v, b, 2] < 0``: none), with ``single`` the
    doubled 2x2-block areas ``A`` (256, nb) (else (1, 1) zeros), the basin edges ``ea``,
    ``ec`` (by :func:`_by_value`'s ``counts``/``eorder``) and the basins by their maximum
    (``bcount``/``by_top``).
    """
    h, w = img.shape
    flat = img.ravel()
    T = np.empty((256, nb, 5), np.int32)  # x0, y0, x1, y1, first index; x1 < 0: empty
    T[:, :, 2] = -1
    A = np.zeros((256, nb) if single else (1, 1), np.int64)
    top = np.zeros(nb, np.int32)
    if conn8:
        fdy = (0, 1, 1, 1)
        fdx = (1, 0, 1, -1)
    else:
        fdy = (0, 1, 0, 0)
        fdx = (1, 0, 0, 0)
    n_dir = 4 if conn8 else 2
    # pass 1 (raster): tables, the pixels that start an edge to another basin and, in
    # single mode, the 2x2 blocks: +1 at their 3rd and at their 4th largest value (the
    # block's largest pixel is in the component whenever the block counts)
    edge_px = np.empty(h * w, np.int32)
    n_px = 0
    n_edges = 0
    for y in range(h):
        for x in range(w):
            p = y * w + x
            b = label[p]
            v = flat[p]
            # raster order: the first visit has the least y and index, the last the most y
            if T[v, b, 2] < 0:
                T[v, b, 0] = x
                T[v, b, 1] = y
                T[v, b, 2] = x
                T[v, b, 4] = p
            else:
                T[v, b, 0] = min(T[v, b, 0], x)
                T[v, b, 2] = max(T[v, b, 2], x)
            T[v, b, 3] = y
            k = 0
            right = x + 1 < w
            if right:
                k += label[p + 1] != b
            if y + 1 < h:
                k += label[p + w] != b
                if conn8:
                    if right:
                        k += label[p + w + 1] != b
                    if x > 0:
                        k += label[p + w - 1] != b
                if single and right:
                    a1 = flat[p + 1]
                    a2 = flat[p + w]
                    a3 = flat[p + w + 1]
                    tp = p
                    tv = v
                    if a1 > tv:
                        tp, tv = p + 1, a1
                    if a2 > tv:
                        tp, tv = p + w, a2
                    if a3 > tv:
                        tp, tv = p + w + 1, a3
                    lo1 = min(v, a1)
                    hi1 = max(v, a1)
                    lo2 = min(a2, a3)
                    hi2 = max(a2, a3)
                    bt = label[tp]
                    A[min(max(lo1, lo2), min(hi1, hi2)), bt] += 1
                    A[min(lo1, lo2), bt] += 1
            if k:
                edge_px[n_px] = p
                n_px += 1
                n_edges += k
    for b in range(nb):  # each basin's largest value (its local maximum)
        for v in range(255, -1, -1):
            if T[v, b, 2] >= 0:
                top[b] = v
                break
    ea, ec, ew = _basin_edges(flat, label, nb, h, w, fdy, fdx, n_dir, edge_px, n_px, n_edges,
                              _PAIR_TABLE_MAX)
    counts, eorder, bcount, by_top = _by_value(ew, top, nb)
    return T, A, ea, ec, counts, eorder, bcount, by_top


@njit(nogil=True)
def _basin_sweep(img: np.ndarray, label: np.ndarray, nb: int, conn8: bool, v_min: int,
                 rule: int, drop_border: bool, single: bool, gt: np.ndarray, area_b: np.ndarray,
                 n_comp: np.ndarray):
    """The components of ``{img > v - 1}``, ``v = 255 .. v_min``, as groups of basins.

    Same results as :func:`_sweep` (multi-contour, ``rule`` 1 or 2; border-touching
    components dropped when ``drop_border``) or :func:`_single_sweep` (``single``):
    ``best`` (256,) float64 and the single-mode winner's ``boxes`` (256, 4) int32.
    One raster pass fills per-(value, basin) tables (box ``T[v, b]`` of the basin's
    pixels of value ``v``, their first raster index, the doubled block area ``A``) and
    lists the basin edges, weighted by the best ``min(value)`` over adjacent pixel pairs
    of the two basins. The sweep then merges groups along the edges (Kruskal) and adds
    each level's table entries to the groups, so that nothing is recomputed per level.
    ``n_comp`` (256,) receives the number of components at each level ``v - 1``.
    """
    h, w = img.shape
    big = np.int32(2**30)
    T, A, ea, ec, counts, eorder, bcount, by_top = _basin_tables(img, label, nb, conn8, single)
    # groups: union-find over basins with the group's box, first index and area at its root
    parent = np.arange(nb).astype(np.int32)
    size = np.ones(nb, np.int32)
    G = np.empty((nb, 5), np.int32)
    G[:, 0] = big
    G[:, 1] = big
    G[:, 2] = -1
    G[:, 3] = -1
    G[:, 4] = big
    GA = np.zeros(nb, np.int64)
    cache = np.empty(nb, np.float64)
    dirty = np.ones(nb, np.bool_)
    active = np.empty(nb, np.int32)
    pos = np.full(nb, -1, np.int32)
    n_active = 0
    best = np.full(256, -np.inf)
    boxes = np.zeros((256, 4), np.int32)
    for v in range(255, v_min - 1, -1):  # after v: pixels >= v, the level set {img > v - 1}
        for k in range(bcount[v], bcount[v + 1]):
            b = by_top[k]
            pos[b] = n_active
            active[n_active] = b
            n_active += 1
        for k in range(counts[v], counts[v + 1]):
            i = eorder[k]
            ra = _find(parent, ea[i])
            rb = _find(parent, ec[i])
            if ra == rb:
                continue
            if size[ra] < size[rb]:
                ra, rb = rb, ra
            parent[rb] = ra
            size[ra] += size[rb]
            G[ra, 0] = min(G[ra, 0], G[rb, 0])
            G[ra, 1] = min(G[ra, 1], G[rb, 1])
            G[ra, 2] = max(G[ra, 2], G[rb, 2])
            G[ra, 3] = max(G[ra, 3], G[rb, 3])
            G[ra, 4] = min(G[ra, 4], G[rb, 4])
            GA[ra] += GA[rb]
            dirty[ra] = True
            last = active[n_active - 1]
            active[pos[rb]] = last
            pos[last] = pos[rb]
            pos[rb] = -1
            n_active -= 1
        for b in range(nb):  # this value's pixels and blocks
            if T[v, b, 2] < 0 and (not single or A[v, b] == 0):
                continue
            r = _find(parent, b)
            if T[v, b, 2] >= 0:
                G[r, 0] = min(G[r, 0], T[v, b, 0])
                G[r, 1] = min(G[r, 1], T[v, b, 1])
                G[r, 2] = max(G[r, 2], T[v, b, 2])
                G[r, 3] = max(G[r, 3], T[v, b, 3])
                G[r, 4] = min(G[r, 4], T[v, b, 4])
                dirty[r] = True
            if single:
                GA[r] += A[v, b]
        level_best = -np.inf
        win = -1
        for t in range(n_active):
            r = active[t]
            if single:
                if win < 0 or GA[r] > GA[win] or (GA[r] == GA[win] and G[r, 4] > G[win, 4]):
                    win = r
                continue
            if dirty[r]:
                x0, y0, x1, y1 = G[r, 0], G[r, 1], G[r, 2], G[r, 3]
                if drop_border and (x0 == 0 or y0 == 0 or x1 == w - 1 or y1 == h - 1):
                    cache[r] = -np.inf
                elif rule == 2:
                    cache[r] = _iou_max(x0 - 1, y0 - 1, min(x1 + 2, w - 1), min(y1 + 2, h - 1),
                                        gt, area_b)
                else:
                    cache[r] = _iou_max(x0, y0, min(x1 + 1, w - 1), min(y1 + 1, h - 1), gt, area_b)
                dirty[r] = False
            if cache[r] > level_best:
                level_best = cache[r]
        if single and win >= 0:
            bx0, by0 = G[win, 0], G[win, 1]
            bx1, by1 = min(G[win, 2] + 1, w - 1), min(G[win, 3] + 1, h - 1)
            boxes[v - 1, 0] = bx0
            boxes[v - 1, 1] = by0
            boxes[v - 1, 2] = bx1
            boxes[v - 1, 3] = by1
            if gt.shape[0]:
                level_best = _iou_max(bx0, by0, bx1, by1, gt, area_b)
        if v >= 1:
            best[v - 1] = level_best
            n_comp[v - 1] = n_active
    return best, boxes


# ----------------------------------------------------------------------------- contour order
@njit(nogil=True)
def _basin_emit(img: np.ndarray, label: np.ndarray, nb: int, conn8: bool, v_min: int,
                drop_border: bool):
    """Every component of every ``{img > v - 1}`` (``v = 255 .. v_min``) with its identity.

    Returns, per (component, level) record: the level ``v - 1``, the component's node in
    the merge tree, its first raster pixel and tight box (K, 4); ``starts`` (257,) the
    records of level ``lv`` at ``starts[lv + 1] .. starts[lv]`` (levels descend); the
    merge tree: ``tree_parent`` and ``tree_level`` (a node made by merging at value ``v``
    exists for levels ``<= v - 1``); basin ``b`` is leaf node ``b``. Components touching
    the border are not listed when ``drop_border``.
    """
    h, w = img.shape
    big = np.int32(2**30)
    T, _, ea, ec, counts, eorder, bcount, by_top = _basin_tables(img, label, nb, conn8, False)
    parent = np.arange(nb).astype(np.int32)
    size = np.ones(nb, np.int32)
    node = np.arange(nb).astype(np.int32)  # the merge-tree node of each root
    tree_parent = np.full(2 * nb, -1, np.int32)
    tree_level = np.full(2 * nb, 255, np.int32)
    n_nodes = nb
    G = np.empty((nb, 5), np.int32)
    G[:, 0] = big
    G[:, 1] = big
    G[:, 2] = -1
    G[:, 3] = -1
    G[:, 4] = big
    active = np.empty(nb, np.int32)
    pos = np.full(nb, -1, np.int32)
    n_active = 0
    # records: at most one per active group per level; counted on the fly (grown by
    # doubling outside the hot pixel loops)
    cap = 4 * nb + 16
    rec_lv = np.empty(cap, np.int32)
    rec_node = np.empty(cap, np.int32)
    rec = np.empty((cap, 5), np.int32)
    n_rec = 0
    starts = np.zeros(257, np.int64)
    for v in range(255, v_min - 1, -1):
        for k in range(bcount[v], bcount[v + 1]):
            b = by_top[k]
            pos[b] = n_active
            active[n_active] = b
            n_active += 1
        for k in range(counts[v], counts[v + 1]):
            i = eorder[k]
            ra = _find(parent, ea[i])
            rb = _find(parent, ec[i])
            if ra == rb:
                continue
            if size[ra] < size[rb]:
                ra, rb = rb, ra
            parent[rb] = ra
            size[ra] += size[rb]
            for j in range(5):
                if j < 2 or j == 4:
                    G[ra, j] = min(G[ra, j], G[rb, j])
                else:
                    G[ra, j] = max(G[ra, j], G[rb, j])
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
        for b in range(nb):
            if T[v, b, 2] < 0:
                continue
            r = _find(parent, b)
            G[r, 0] = min(G[r, 0], T[v, b, 0])
            G[r, 1] = min(G[r, 1], T[v, b, 1])
            G[r, 2] = max(G[r, 2], T[v, b, 2])
            G[r, 3] = max(G[r, 3], T[v, b, 3])
            G[r, 4] = min(G[r, 4], T[v, b, 4])
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
            if drop_border and (G[r, 0] == 0 or G[r, 1] == 0 or G[r, 2] == w - 1
                                or G[r, 3] == h - 1):
                continue
            rec_lv[n_rec] = v - 1
            rec_node[n_rec] = node[r]
            for j in range(5):
                rec[n_rec, j] = G[r, j]
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


def ordered_multi_arrays(q: np.ndarray, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Multi-contour boxes of ``q > L`` for the sorted distinct ``levels`` (each in
    ``0..q.max()-1``), in ``cv2.findContours(RETR_TREE)`` order, concatenated: boxes
    (K, 4) int64 and the number per level; None when the map has too many basins
    (noise), for which the caller traces contours instead."""
    q = np.ascontiguousarray(q)
    levels = np.asarray(levels, dtype=np.int64)
    if levels.size > 1 and not (np.diff(levels) > 0).all():
        raise ValueError("levels must be sorted and distinct")
    qmax = int(q.max())
    cap = _max_basins(q.size)
    order = _bucket_order(q)
    lab8, nb8 = _basin_labels_sorted(q, True, cap, *order, False)
    if nb8 < 0:
        return None
    r = 255 - q
    lab4, nb4 = _basin_labels(r, False, cap, order)
    if nb4 < 0:
        return None
    _, f_node, f_rec, f_starts, f_par, f_lev = _basin_emit(q, lab8, nb8, True, 1, False)
    _, h_node, h_rec, h_starts, h_par, h_lev = _basin_emit(r, lab4, nb4, False, 256 - qmax, True)
    return _ordered_boxes(q.shape[0], q.shape[1], levels, lab8,
                          lab4, f_node, f_rec, f_starts, f_par, f_lev, h_node, h_rec, h_starts,
                          h_par, h_lev)


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
