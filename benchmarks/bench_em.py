"""Cost of CREAM's re-activation on top of plain CAM (paper Table 7: 1.7 ms vs 6.0 ms on a GPU).

For a batch of 32 feature maps (d=1024 and d=320, 14x14) it times, side by side
in one run (interleaved repetitions, median):

* CAM: ``class_activation_maps`` + ``normalize_maps`` (the plain CAM map);
* CREAM: the same CAM + EM (T=2) + calibration + final map (``reactivate``),

for both kernels, and prints ms per image and the ratio.

Usage: ``python benchmarks/bench_em.py [--threads 1] [--repeats 30]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import torch

from skcream.cam import class_activation_maps, normalize_maps
from skcream.reactivation import reactivate


def cam_only(features, weight, labels):
    return normalize_maps(class_activation_maps(features, weight, labels))


def cam_and_cream(features, weight, labels, fg_table, bg_table, kernel):
    cams = class_activation_maps(features, weight, labels)
    return reactivate(features, cams, fg_table[labels], bg_table[labels], n_iter=2, kernel=kernel)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    n_classes, b = 200, args.batch
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {b}, float32, CPU, "
          f"median of {args.repeats} interleaved repeats")
    print(f"{'features':>16} {'kernel':>7} {'CAM ms/img':>11} {'CREAM ms/img':>13} {'ratio':>6}")
    for d in (1024, 320):
        features = torch.relu(torch.randn(b, d, 14, 14, generator=g))
        weight = torch.randn(n_classes, d, generator=g) / d**0.5
        labels = torch.randint(0, n_classes, (b,), generator=g)
        fg_table = torch.rand(n_classes, d, generator=g)
        bg_table = torch.rand(n_classes, d, generator=g)
        with torch.inference_mode():
            for kernel in ("dot", "cosine"):
                run_cam = partial(cam_only, features, weight, labels)
                run_cream = partial(cam_and_cream, features, weight, labels, fg_table, bg_table, kernel)
                for _ in range(3):  # warm-up
                    run_cam()
                    run_cream()
                t_cam, t_cream = [], []
                for _ in range(args.repeats):
                    t_cam.append(timed(run_cam))
                    t_cream.append(timed(run_cream))
                cam_ms = statistics.median(t_cam) / b * 1e3
                cream_ms = statistics.median(t_cream) / b * 1e3
                print(f"{f'{b}x{d}x14x14':>16} {kernel:>7} {cam_ms:>11.4f} {cream_ms:>13.4f} "
                      f"{cream_ms / cam_ms:>6.2f}")


if __name__ == "__main__":
    main()
