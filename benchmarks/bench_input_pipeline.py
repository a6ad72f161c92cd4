"""Input pipeline vs model: which one limits training images/s, per DataLoader worker count.

Input pipeline = what ``CREAMLocalizer.fit`` feeds the network: decode the stored image,
resize 256 / random crop 224 / flip / normalise (``TrainTransform``), collate; measured as
images/s through a ``DataLoader`` with 0, 1, ... workers (``skcream.data.loading``'s "auto"
value is marked). Model = one SGD step (forward, backward, update) of the CAMNet on
EfficientNet-Lite0 at 224 px, batch 16, on this CPU, in images/s. Both sides use one
intra-op thread (OMP_NUM_THREADS=1) and run back to back in this process; the bottleneck
printed is the slower of the pipeline at the auto worker count and the model.

Run:  OMP_NUM_THREADS=1 python benchmarks/bench_input_pipeline.py [--n 256]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch
from torch.utils.data import DataLoader


def pipeline_rate(dataset, workers: int, batch_size: int) -> float:
    from skcream.data.adapters import collate

    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                        collate_fn=collate)
    tic, n = time.perf_counter(), 0
    for batch in loader:
        n += batch["image"].shape[0]
    return n / (time.perf_counter() - tic)


def model_rate(batch_size: int, steps: int) -> float:
    from skcream.backbones import build_backbone
    from skcream.model import CAMNet
    from skcream.training import cross_entropy_loss

    model = CAMNet(build_backbone("efficientnet_lite0", pretrained=False), 4).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(batch_size, 3, 224, 224)
    batch = {"label": torch.arange(batch_size) % 4}
    for k in range(steps + 1):  # the first step warms up
        if k == 1:
            tic = time.perf_counter()
        loss = cross_entropy_loss(model(x), batch)
        loss.backward()
        opt.step()
        opt.zero_grad()
    return steps * batch_size / (time.perf_counter() - tic)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    from skcream.data.adapters import ImageSource, TorchImageDataset
    from skcream.data.loading import auto_num_workers, available_cpus
    from skcream.data.synthetic import make_synthetic
    from skcream.data.transforms import TrainTransform

    torch.set_num_threads(1)
    print(f"torch threads: {torch.get_num_threads()}, CPUs available: {available_cpus()}, "
          f"load average: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        data = make_synthetic(args.n, image_size=256, random_state=0, cache_dir=tmp)
        dataset = TorchImageDataset(ImageSource.from_input(data), TrainTransform(resize=256, crop=224))
        auto = auto_num_workers(10**6)  # what "auto" picks for a large dataset here
        rates = {}
        for workers in sorted({0, 1, max(auto, 1), 2}):
            rates[workers] = pipeline_rate(dataset, workers, 32)
            tag = "  <- auto" if workers == auto else ""
            print(f"input pipeline, {workers} worker(s): {rates[workers]:7.1f} images/s"
                  f"{'' if workers == 0 else f' ({rates[workers] / workers:.1f} per worker)'}{tag}",
                  flush=True)
    model = model_rate(16, args.steps)
    print(f"model training step (EfficientNet-Lite0, 224 px, batch 16): {model:.1f} images/s")
    feed = rates.get(auto, rates[0])
    side = "input pipeline" if feed < model else "model"
    print(f"bottleneck at the auto worker count ({auto}): {side} "
          f"(pipeline {feed:.1f} vs model {model:.1f} images/s, ratio {feed / model:.1f}x); "
          f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
