"""skcream.metrics against the plain contour loop a user would write, on the same maps.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_metrics.py [n_maps]`` (default 20 maps per
family).

Baseline ("plain loop", what a competent user writes from the paper's description):
quantise each map to uint8 (``(map * 255).astype(uint8)``); for each CAM threshold one
``cv2.threshold`` + ``cv2.findContours(RETR_TREE, CHAIN_APPROX_SIMPLE)`` + a
``cv2.boundingRect`` box per contour (single-contour mode: the contour with the largest
``cv2.contourArea``); then the best IoU against the GT boxes, computed once per image
with numpy over all boxes of all thresholds. For PxAP the plain code is the reference's
own (``np.histogram`` of the positive and negative pixels of each map).

``benchmarks/wsol_reference.py`` is only a correctness oracle here (it recomputes IoUs
quadratically, so timing it would flatter skcream); every number is asserted equal to
both the plain loop and the oracle.

Map families (``FAMILIES``): ``cam``, CAM-like, 14x14 random fields upsampled bicubically to
224x224 and min-max normalised (the boxes_from_scoremap and PxAP rows use these); ``cam28``,
the same from 28x28 fields (the large-feature-map backbones); ``blob``, one smooth anisotropic
Gaussian (few contours: the plain loop's best case); ``blobs``, two or three Gaussians.
1-3 GT boxes per map; masks = the first GT box, with an ignored corner.
Everything runs in one process, one thread (OpenCV and numba single-threaded), each
timing the best of ``REPEATS`` runs interleaved with the baseline's, CPU time; the box
metrics of every family at both intervals are printed side by side in one table.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage as ndi

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from skcream import metrics  # noqa: E402

_spec = importlib.util.spec_from_file_location("wsol_reference", ROOT / "benchmarks" / "wsol_reference.py")
oracle = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(oracle)

REPEATS = 3


def _gaussians(rng: np.random.Generator, k: int) -> np.ndarray:
    yy, xx = np.mgrid[:224, :224].astype(np.float64)
    x = np.zeros((224, 224))
    for _ in range(k):
        cy, cx = rng.uniform(30, 194, 2)
        sy, sx = rng.uniform(12, 60, 2)
        x += rng.uniform(0.5, 1) * np.exp(-((yy - cy) ** 2 / (2 * sy**2)
                                             + (xx - cx) ** 2 / (2 * sx**2)))
    return x


def make_map(family: str, rng: np.random.Generator) -> np.ndarray:
    """One 224x224 map in [0, 1] of a family of :data:`FAMILIES`."""
    if family in ("cam", "cam28"):
        cells = 14 if family == "cam" else 28
        x = ndi.zoom(rng.random((cells, cells)), 224 // cells, order=3)
    elif family == "blob":
        x = _gaussians(rng, 1)
    elif family == "blobs":
        x = _gaussians(rng, int(rng.integers(2, 4)))
    else:
        raise ValueError(family)
    return (x - x.min()) / np.ptp(x)


FAMILIES = ("cam", "cam28", "blob", "blobs")


def make_data(n: int, seed: int = 0, family: str = "cam"):
    rng = np.random.default_rng(seed)
    maps, boxes, masks = [], [], []
    for _ in range(n):
        maps.append(make_map(family, rng))
        b = []
        for _ in range(rng.integers(1, 4)):
            x0, x1 = np.sort(rng.integers(0, 224, 2))
            y0, y1 = np.sort(rng.integers(0, 224, 2))
            b.append([x0, y0, x1, y1])
        boxes.append(np.array(b))
        m = np.zeros((224, 224), np.uint8)  # foreground: the first GT box
        m[b[0][1] : b[0][3] + 1, b[0][0] : b[0][2] + 1] = 1
        m[:16, :16] = 255
        masks.append(m)
    return maps, boxes, masks


# ----------------------------------------------------------------------------- the plain loop
def plain_boxes(scoremap: np.ndarray, thresholds: np.ndarray, multi_contour: bool):
    """Boxes per threshold: one threshold + findContours + boundingRect per contour."""
    h, w = scoremap.shape
    q = (scoremap * 255).astype(np.uint8)
    qmax = q.max()
    out = []
    for t in thresholds:
        _, binary = cv2.threshold(q, int(t * qmax), 255, cv2.THRESH_BINARY)
        contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
        if len(contours) == 0:
            out.append(np.zeros((1, 4), np.int64))
            continue
        if not multi_contour:
            contours = [max(contours, key=cv2.contourArea)]
        b = []
        for c in contours:
            x, y, bw, bh = cv2.boundingRect(c)
            b.append([x, y, min(x + bw, w - 1), min(y + bh, h - 1)])
        out.append(np.array(b, dtype=np.int64))
    return out


def plain_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a[:, None, :], b[None, :, :]
    iw = np.maximum(0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1)
    ih = np.maximum(0, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    return inter / (area_a + area_b - inter)


def plain_max_box_acc(maps, gts, interval, deltas=(30, 50, 70), multi_contour=True):
    thresholds = np.arange(0, 1, interval)
    correct = np.zeros((len(deltas), thresholds.size))
    for m, gt in zip(maps, gts):
        per_thr = plain_boxes(m, thresholds, multi_contour)
        sizes = [len(b) for b in per_thr]
        best_box = plain_iou(np.concatenate(per_thr), gt).max(axis=1)  # once per image
        best = np.maximum.reduceat(best_box, np.concatenate(([0], np.cumsum(sizes)[:-1])))
        correct += best[None, :] >= np.asarray(deltas)[:, None] / 100
    return (correct * 100 / len(maps)).max(axis=1)


# ----------------------------------------------------------------------------- timing
def cpu(fn, *args, **kwargs):
    t = time.process_time()
    out = fn(*args, **kwargs)
    return out, time.process_time() - t


def side_by_side(base, ours):
    """Best-of-REPEATS CPU seconds of two callables, interleaved; their results."""
    tb = to = np.inf
    for _ in range(REPEATS):
        rb, t = cpu(base)
        tb = min(tb, t)
        ro, t = cpu(ours)
        to = min(to, t)
    return rb, ro, tb, to


def main(n: int = 20) -> None:
    cv2.setNumThreads(1)
    numba_threads = "n/a"
    try:
        import numba

        numba.set_num_threads(1)
        numba_threads = numba.get_num_threads()
    except (ImportError, ValueError):
        pass
    maps, boxes, masks = make_data(n)
    # warm-up: numba compiles (or loads its cache) on first use
    metrics.max_box_acc(maps[:1], boxes[:1])
    metrics.max_box_acc(maps[:1], boxes[:1], multi_contour=False)
    print(f"{n} maps 224x224 per family, 1-3 GT boxes each; OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}, cv2 threads {cv2.getNumThreads()}, "
          f"numba threads {numba_threads}; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"CPU ms per map, best of {REPEATS}; baseline = the plain contour loop")
    family_rows = []
    for family in FAMILIES:
        fmaps, fboxes, _ = make_data(n, seed=FAMILIES.index(family), family=family)
        for multi in (True, False):
            deltas = (30, 50, 70) if multi else (50,)
            name = "MaxBoxAccV2 (multi)" if multi else "MaxBoxAcc (single)"
            cells = []
            for interval in (0.01, 0.001):
                rb, ro, tb, to = side_by_side(
                    lambda interval=interval, multi=multi, deltas=deltas, fmaps=fmaps,
                    fboxes=fboxes: plain_max_box_acc(fmaps, fboxes, interval, deltas, multi),
                    lambda interval=interval, multi=multi, deltas=deltas, fmaps=fmaps,
                    fboxes=fboxes: metrics.max_box_acc(
                        fmaps, fboxes, iou_thresholds=deltas, cam_curve_interval=interval,
                        multi_contour=multi),
                )
                assert np.array_equal(rb, ro), (family, rb, ro)
                if interval == 0.01:  # the oracle is quadratic: checked at 0.01 only
                    assert ro.tolist() == oracle.max_box_acc(fmaps, fboxes, interval, deltas,
                                                             multi)
                cells.append((tb / n * 1e3, to / n * 1e3))
            family_rows.append((family, name, cells, os.getloadavg()[0]))
    print(f"{'family':<7} {'metric':<20} {'plain@0.01':>10} {'ours@0.01':>9} {'ratio':>6}  "
          f"{'plain@0.001':>11} {'ours@0.001':>10} {'ratio':>6}  load")
    for family, name, ((b1, o1), (b2, o2)), load in family_rows:
        print(f"{family:<7} {name:<20} {b1:10.3f} {o1:9.3f} {b1 / o1:5.1f}x  {b2:11.3f} "
              f"{o2:10.3f} {b2 / o2:5.1f}x  {load:.2f}")
    rows = []
    for multi in (False, True):
        for interval in (0.01, 0.001):
            thr = np.arange(0, 1, interval)
            rb, ro, tb, to = side_by_side(
                lambda thr=thr, multi=multi: [plain_boxes(m, thr, multi) for m in maps],
                lambda thr=thr, multi=multi: [metrics.boxes_from_scoremap(m, thr, multi)
                                              for m in maps],
            )
            assert all(np.array_equal(a, b) for x, y in zip(rb, ro) for a, b in zip(x, y))
            mode = "multi" if multi else "single"
            rows.append((f"boxes_from_scoremap ({mode}) @ {interval}", tb, to, None))
    for interval in (0.01, 0.001):
        rb, ro, tb, to = side_by_side(
            lambda interval=interval: oracle.pxap(maps, masks, interval),
            lambda interval=interval: metrics.pxap(maps, masks, cam_curve_interval=interval),
        )
        assert rb == ro, (rb, ro)
        rows.append((f"PxAP @ {interval} (baseline: np.histogram per map)", tb, to, ro))
    width = max(len(r[0]) for r in rows)
    print(f"{'metric':<{width}}  {'plain ms/map':>12}  {'skcream ms/map':>14}  {'ratio':>7}  value")
    for label, tb, to, value in rows:
        v = "" if value is None else f"{value:.4f}"
        print(f"{label:<{width}}  {tb / n * 1e3:12.3f}  {to / n * 1e3:14.3f}  "
              f"{tb / to:6.1f}x  {v}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
