"""Inference spread over 2 CPU processes vs one process: images/s of ``pseudo_boxes``.

    with skcream.distributed_inference():        # under torchrun / accelerate launch
        boxes = model.pseudo_boxes(data, resolution=RES)

Baseline: the same call in one process (what a user runs without a launcher). Both sides
use one intra-op thread per process (OMP_NUM_THREADS=1), the same saved model
(EfficientNet-Lite0, offline ImageNet weights, fine-tuned 1 epoch on synthetic images) and
the same images, and are run alternately (single, 2 processes, single, 2 processes) in one
invocation; the boxes of every run are checked equal to the first single-process run.
Each worker times the call after a warm-up and a barrier; the 2-process figure is
n_images / the slower rank's time (process start-up and model loading excluded on both sides).

Run:  OMP_NUM_THREADS=1 python benchmarks/bench_distributed.py [--n 96] [--resolution 224]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def worker(model_dir: str, data_dir: str, out: str, resolution: int) -> None:
    import datasets
    import torch

    from skcream import CREAMLocalizer, distributed_inference

    torch.set_num_threads(1)
    model = CREAMLocalizer.load(model_dir)
    data = datasets.load_from_disk(data_dir)
    model.pseudo_boxes(data.select(range(4)), resolution=resolution)  # warm-up
    with distributed_inference() as (rank, world):
        if world > 1:
            torch.distributed.barrier()
        tic = time.perf_counter()
        boxes = model.pseudo_boxes(data, resolution=resolution)
        seconds = time.perf_counter() - tic
    Path(f"{out}.rank{rank}.json").write_text(json.dumps({"seconds": seconds, "world": world}))
    if rank == 0:
        np.save(f"{out}.npy", boxes)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=96)
    parser.add_argument("--resolution", type=int, default=224)
    args = parser.parse_args()
    from skcream import CREAMLocalizer
    from skcream.data.synthetic import make_synthetic

    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    print(f"threads/process: 1, cpus: {os.cpu_count()}, load average: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train = make_synthetic(32, random_state=0, cache_dir=tmp / "cache")
        data = make_synthetic(args.n, random_state=1, cache_dir=tmp / "cache")
        data.save_to_disk(str(tmp / "data"))
        CREAMLocalizer(backbone="efficientnet_lite0", max_epochs=1, batch_size=16,
                       image_size=128, resize_size=144, random_state=0, verbose=0,
                       device="cpu").fit(train).save(tmp / "model")
        me = [str(Path(__file__).resolve()), "--worker", str(tmp / "model"), str(tmp / "data")]
        rows, reference = [], None
        for k, world in enumerate((1, 2, 1, 2)):
            out = str(tmp / f"run{k}")
            launcher = [sys.executable] if world == 1 else [
                sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node", str(world)]
            subprocess.run([*launcher, *me, out, str(args.resolution)], env=env, check=True,
                           capture_output=True)
            seconds = max(json.loads(Path(f"{out}.rank{r}.json").read_text())["seconds"]
                          for r in range(world))
            boxes = np.load(f"{out}.npy")
            reference = boxes if reference is None else reference
            assert np.array_equal(boxes, reference), "boxes differ between runs"
            rows.append((world, args.n / seconds))
            print(f"run {k}: {world} process(es): {args.n / seconds:6.2f} images/s "
                  f"({seconds:.1f} s)", flush=True)
    single = np.mean([r for w, r in rows if w == 1])
    double = np.mean([r for w, r in rows if w == 2])
    print(f"pseudo_boxes at {args.resolution} px, {args.n} images: 1 process {single:.2f} "
          f"images/s, 2 processes {double:.2f} images/s -> {double / single:.2f}x "
          f"(boxes identical); load average after: {os.getloadavg()}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        main()
