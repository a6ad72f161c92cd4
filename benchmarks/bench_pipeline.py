"""Frozen-backbone pipeline: fit time, and how often GridSearchCV recomputes the features.

    make_pipeline(TimmFeatures("efficientnet_lite0", pretrained=True), CREAMReactivation())

1. Fit time of that pipeline on a few hundred synthetic images (this CPU), split into
   feature extraction and the CREAM step.
2. GridSearchCV over sigma x n_iter (default scoring = CREAMReactivation.score, the
   GT-known MaxBoxAccV2, with y = box_targets_from(dataset)), three ways, side by side:
     - no cache: every candidate and fold recomputes every image's features;
     - Pipeline(memory=...): sklearn caches the features of the *training* folds
       (fit_transform), but the test folds are transformed again for every candidate;
     - TimmFeatures(memory=...) as well: a per-image cache, each image's features are
       computed once in total (folds, candidates and the final refit all hit it).
   Counted: images forwarded through the network (instrumented), and wall time.

Run:  python benchmarks/bench_pipeline.py       (< 2 min on 2 cores)
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch

from skcream.estimators.feature_reactivation import CREAMReactivation, box_targets_from
from skcream.estimators.features import TimmFeatures

FORWARDED = [0]
_real_forward = TimmFeatures._forward_batch


def _counting_forward(self, batch):
    FORWARDED[0] += len(batch)
    return _real_forward(self, batch)


TimmFeatures._forward_batch = _counting_forward  # instrument: count images through the network


def images_and_targets(n: int, seed: int):
    from skcream.data import make_synthetic

    ds = make_synthetic(n, random_state=seed)
    # a list of PIL images: sklearn's splitters index lists (a Dataset row-slice is a dict)
    return [ds[i]["image"] for i in range(n)], box_targets_from(ds)


def fit_time(n: int) -> None:
    from sklearn.pipeline import make_pipeline

    X, y = images_and_targets(n, seed=0)
    pipe = make_pipeline(TimmFeatures("efficientnet_lite0", pretrained=True, verbose=0),
                         CREAMReactivation(random_state=0))
    t0, c0 = time.perf_counter(), time.process_time()
    features = pipe[0].fit_transform(X)
    t1, c1 = time.perf_counter(), time.process_time()
    pipe[1].fit(features, y)
    t2, c2 = time.perf_counter(), time.process_time()
    print(f"1. make_pipeline(TimmFeatures('efficientnet_lite0', pretrained=True), "
          f"CREAMReactivation()).fit on {n} images {pipe[0].image_size_}px "
          f"({torch.get_num_threads()} torch threads; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores):")
    print(f"   wall {t2 - t0:.1f} s = features {t1 - t0:.1f} s "
          f"({n / (t1 - t0):.1f} images/s, maps {features.shape[1:]}) "
          f"+ CREAM fit (logistic head + context) {t2 - t1:.2f} s")
    print(f"   CPU time of this process {c2 - c0:.1f} s = features {c1 - c0:.1f} s "
          f"+ CREAM fit {c2 - c1:.2f} s (on an otherwise idle machine, wall ~ CPU / threads)")


def grid_search(n: int, image_size: int, cv: int) -> None:
    from sklearn.model_selection import GridSearchCV, KFold
    from sklearn.pipeline import Pipeline

    X, y = images_and_targets(n, seed=1)
    grid = {"cream__sigma": [0.5, 2.0, 8.0], "cream__n_iter": [0, 2]}
    n_cand = int(np.prod([len(v) for v in grid.values()]))
    print(f"2. GridSearchCV, {n_cand} candidates (sigma x n_iter) x {cv} folds + refit, "
          f"{n} images at {image_size}px:")
    results = {}
    for label in ("no cache", "Pipeline(memory)", "Pipeline(memory) + TimmFeatures(memory)"):
        with tempfile.TemporaryDirectory() as tmp:
            feat = TimmFeatures("efficientnet_lite0", pretrained=True, image_size=image_size,
                                verbose=0, memory=tmp if "TimmFeatures" in label else None)
            pipe = Pipeline([("features", feat), ("cream", CREAMReactivation(random_state=0))],
                            memory=tmp if "Pipeline" in label else None)
            search = GridSearchCV(pipe, grid, cv=KFold(cv, shuffle=True, random_state=0))
            FORWARDED[0] = 0
            t0 = time.perf_counter()
            search.fit(X, y)
            elapsed = time.perf_counter() - t0
            results[label] = (FORWARDED[0], elapsed, search.best_params_, search.best_score_)
    base_n, base_t = results["no cache"][:2]
    print(f"   {'':42s} {'images forwarded':>16s} {'per image':>9s} {'time':>8s} "
          f"{'speed-up':>8s}")
    for label, (count, t, _best, _score) in results.items():
        print(f"   {label:42s} {count:16d} {count / n:8.1f}x {t:7.1f}s {base_t / t:7.1f}x")
    best, score = results["no cache"][2:]
    print(f"   best {best}: MaxBoxAccV2 {score:.1f} (identical in all three: "
          f"{len({str(r[2]) + f'{r[3]:.6f}' for r in results.values()}) == 1})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-fit", type=int, default=300)
    parser.add_argument("--n-grid", type=int, default=40)
    parser.add_argument("--grid-image-size", type=int, default=128)
    parser.add_argument("--cv", type=int, default=2)
    args = parser.parse_args()
    fit_time(args.n_fit)
    grid_search(args.n_grid, args.grid_image_size, args.cv)


if __name__ == "__main__":
    main()
