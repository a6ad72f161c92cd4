"""Throughput of the whole protocol evaluation: ``CREAMLocalizer.score`` on many images.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_evaluate.py [n_images]`` (default 1000).

A QUICK-preset localizer (efficientnet_lite0, offline ImageNet weights, 96 px) is fitted
for one epoch on 64 synthetic images; ``score`` then runs on ``n_images`` synthetic test
images: forward pass, CREAM maps, bicubic upsampling to 224 and min-max
(``protocol_maps``), and MaxBoxAccV2 accumulated batch by batch (streaming: one batch of
maps in memory). The time spent in the metric (``BoxAccumulator.update``) is measured
inside the same run, so its share is exact. One torch / OpenCV / numba thread.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import cv2
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(n: int = 1000) -> None:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    import datasets

    datasets.disable_progress_bars()
    from skcream import metrics
    from skcream.data import make_synthetic
    from skcream.presets import QUICK

    kw = dict(n_classes=QUICK.n_classes, image_size=QUICK.data_size)
    train = make_synthetic(64, random_state=0, **kw)
    tic = time.perf_counter()
    test = make_synthetic(n, random_state=2, **kw)
    t_data = time.perf_counter() - tic
    est = QUICK.estimator(max_epochs=1, random_state=0, verbose=0, box_threshold=0.5).fit(train)

    spent = {"metric": 0.0, "metric_cpu": 0.0, "maps": 0}
    update = metrics.BoxAccumulator.update

    def timed_update(self, maps, gt):
        tic, cpu = time.perf_counter(), time.process_time()
        out = update(self, maps, gt)
        spent["metric"] += time.perf_counter() - tic
        spent["metric_cpu"] += time.process_time() - cpu
        spent["maps"] += len(gt)
        return out

    metrics.BoxAccumulator.update = timed_update
    try:
        est.score(test.select(range(min(n, 32))))  # warm-up (numba cache, first batch)
        spent.update(metric=0.0, metric_cpu=0.0, maps=0)
        tic, cpu = time.perf_counter(), time.process_time()
        value = est.score(test)
        wall, cpu = time.perf_counter() - tic, time.process_time() - cpu
    finally:
        metrics.BoxAccumulator.update = update
    assert spent["maps"] == n
    print(f"{n} synthetic images {QUICK.data_size} px (generated in {t_data:.1f} s), "
          f"model {QUICK.backbone} at {QUICK.image_size} px, batch {est.batch_size}; "
          f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}")
    print(f"score (MaxBoxAccV2) = {value:.2f}")
    print(f"whole evaluation: {wall:.1f} s wall ({cpu:.1f} s CPU), {n / wall:.1f} images/s")
    print(f"metric (BoxAccumulator.update): {spent['metric']:.2f} s wall = "
          f"{100 * spent['metric'] / wall:.1f}% of the evaluation's wall time; "
          f"{spent['metric_cpu']:.2f} s CPU = {100 * spent['metric_cpu'] / cpu:.1f}% of its "
          f"CPU time, {1e3 * spent['metric_cpu'] / n:.2f} ms CPU per map")
    print(f"CPU-bound throughput (no other load): {n / cpu:.1f} images/s; "
          f"load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
