"""skcream.metrics vs the reference algorithm, side by side on the same maps.

Run: ``python benchmarks/bench_metrics.py [n_maps]`` (default 60 maps, about a minute).

Maps look like CAMs: 14x14 random fields upsampled bicubically to 224x224 and
min-max normalised; 1-3 ground-truth boxes per map; masks = map > 0.5 with an
ignored (255) corner. Both implementations run in one process on the same
inputs; the script asserts identical numbers and prints times and ratios.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from skcream import metrics  # noqa: E402

_spec = importlib.util.spec_from_file_location("wsol_reference", ROOT / "benchmarks" / "wsol_reference.py")
ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ref)


def make_data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    maps, boxes, masks = [], [], []
    for _ in range(n):
        x = ndi.zoom(rng.random((14, 14)), 16, order=3)
        x = (x - x.min()) / np.ptp(x)
        maps.append(x)
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


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


def timed_cpu(fn, *args, **kwargs):
    """(result, wall seconds, CPU seconds of the whole process, i.e. all threads)."""
    t, c = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t, time.process_time() - c


def main(n: int = 200) -> None:
    maps, boxes, masks = make_data(n)
    print(f"{n} maps 224x224, 1-3 GT boxes each")
    for interval in (0.01, 0.001):
        r, tr = timed(ref.max_box_acc, maps, boxes, interval, (30, 50, 70), True)
        s, ts = timed(metrics.max_box_acc, maps, boxes, cam_curve_interval=interval)
        assert np.array_equal(np.asarray(r), s), (r, s)
        print(f"MaxBoxAccV2 @{interval}: {np.average(s):.4f}  reference {tr:7.2f} s  "
              f"skcream {ts:6.3f} s  ratio {tr / ts:6.1f}x")
    for interval in (0.01, 0.001):
        r, tr = timed(ref.max_box_acc, maps, boxes, interval, (50,), False)
        s, ts = timed(metrics.max_box_acc, maps, boxes, iou_thresholds=(50,),
                      cam_curve_interval=interval, multi_contour=False)
        assert np.array_equal(np.asarray(r), s), (r, s)
        print(f"MaxBoxAcc (single) @{interval}: {s[0]:.4f}  reference {tr:7.2f} s  "
              f"skcream {ts:6.3f} s  ratio {tr / ts:6.1f}x")
    # PxAP: a few tens of ms per run, so best of 5; also CPU time (all threads), the
    # ratio of work done, which a busy shared machine disturbs less than wall-clock time
    for interval in (0.01, 0.001):
        best = np.full((2, 2), np.inf)  # [reference, skcream] x [wall, cpu]
        for _ in range(5):
            r, tr, cr = timed_cpu(ref.pxap, maps, masks, interval)
            s, ts, cs = timed_cpu(metrics.pxap, maps, masks, cam_curve_interval=interval)
            assert r == s, (r, s)
            best = np.minimum(best, [[tr, cr], [ts, cs]])
        (wr, cr), (ws, cs) = best
        print(f"PxAP @{interval}: {s:.6f}  reference {wr:6.3f} s (cpu {cr:6.3f} s)  "
              f"skcream {ws:6.3f} s (cpu {cs:6.3f} s)  ratio {wr / ws:5.1f}x (cpu {cr / cs:4.1f}x)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 60)
