"""Cost of the context-embedding update (paper Eq. 3-4) inside a CAM training step.

Runs :func:`skcream.training.train` on the same CAMNet and in-memory data with and without
the localizer's step hook (``ContextEmbeddings.update`` with ``gather=accelerator.gather``),
interleaved, and prints the time per step of both, their ratio, and the hook's own time
measured inside the step (less sensitive to noise from other processes).

    python benchmarks/bench_training.py                      # efficientnet_lite0, 224, C=200
    python benchmarks/bench_training.py --backbone resnet50 --batch-size 4
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.data import Dataset

from skcream.backbones import build_backbone
from skcream.context import ContextEmbeddings
from skcream.model import CAMNet
from skcream.training import TrainConfig, cross_entropy_loss, train


class RandomImages(Dataset):
    """n normalised-looking images (3,S,S) with labels in [0, C)."""

    def __init__(self, n: int, size: int, n_classes: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.images = torch.randn(n, 3, size, size, generator=g)
        self.labels = torch.randint(0, n_classes, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "label": self.labels[i], "index": i}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--classes", type=int, default=200, help="C (CUB has 200)")
    parser.add_argument("--steps", type=int, default=3, help="steps per timed epoch")
    parser.add_argument("--reps", type=int, default=2, help="interleaved repetitions")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 keeps timings stable on a shared CPU)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    model = CAMNet(build_backbone(args.backbone), args.classes)
    context = ContextEmbeddings(args.classes, model.backbone.num_features, random_state=0)
    data = RandomImages(args.batch_size * args.steps, args.image_size, args.classes)
    config = TrainConfig(epochs=1, batch_size=args.batch_size, random_state=0, verbose=0,
                         device="cpu", shuffle=False)
    hook_seconds: list[float] = []

    def hook(accelerator, batch, outputs):
        tic = time.perf_counter()
        _, features = outputs
        cams = accelerator.unwrap_model(model).cams(features, batch["label"])
        context.update(features, cams, batch["label"], gather=accelerator.gather)
        hook_seconds.append(time.perf_counter() - tic)

    with torch.no_grad():
        _, f = model.eval()(data.images[:1])
    print(f"backbone {args.backbone}: features {tuple(f.shape[1:])}, context "
          f"{tuple(context.fg.shape)} x2, batch {args.batch_size}x3x{args.image_size}^2, "
          f"{torch.get_num_threads()} threads")
    train(model, data, loss_fn=cross_entropy_loss, config=config)  # warm-up
    per_step = {"CAM step": [], "CAM step + context hook": []}
    for _ in range(args.reps):
        for name, step_hook in (("CAM step", None), ("CAM step + context hook", hook)):
            history = train(model, data, loss_fn=cross_entropy_loss, config=config,
                            step_hook=step_hook)
            per_step[name].append(history[0]["seconds"] / args.steps)
    base = statistics.median(per_step["CAM step"])
    with_hook = statistics.median(per_step["CAM step + context hook"])
    hook_alone = statistics.median(hook_seconds)
    for name, times in per_step.items():
        print(f"{name:26s} median {1000 * statistics.median(times):8.1f} ms/step  "
              f"(runs: {', '.join(f'{1000 * t:.0f}' for t in times)})")
    print(f"context hook alone         median {1000 * hook_alone:8.2f} ms/step")
    print(f"ratio with/without hook    {with_hook / base:.3f}")
    print(f"hook / step                {hook_alone / base:.4f}  (issue 3 target: <= 0.05)")


if __name__ == "__main__":
    main()
