"""Run by tests/test_training.py under ``torch.distributed.run --nproc_per_node 2``.

Trains a tiny CAMNet for two epochs through :func:`skcream.training.train` with a step hook
that updates :class:`skcream.context.ContextEmbeddings` from every process's batch via
``accelerator.gather_for_metrics``, then writes what each rank ends with to ``<out_dir>/rank<r>.pt``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch.utils.data import Dataset

from skcream.backbones import build_backbone
from skcream.context import ContextEmbeddings
from skcream.model import CAMNet
from skcream.training import TrainConfig, cross_entropy_loss, train


class Squares(Dataset):
    """Class c: a square bright in colour channel c, in quadrant i % 4 of noisy 32x32 image i."""

    def __init__(self, n: int = 24) -> None:
        g = torch.Generator().manual_seed(0)
        self.images = torch.randn(n, 3, 32, 32, generator=g) * 0.1
        self.labels = torch.arange(n) % 3
        for i, c in enumerate(self.labels.tolist()):
            y, x = divmod(i % 4, 2)
            self.images[i, c, 16 * y:16 * y + 12, 16 * x:16 * x + 12] += 1.0

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "label": self.labels[i], "index": i}


def main(out_dir: str) -> None:
    torch.manual_seed(0)
    model = CAMNet(build_backbone("test_resnet"), 3)
    context = ContextEmbeddings(3, model.backbone.num_features, random_state=0)
    initial = context.fg.clone()
    seen: list[int] = []

    def hook(accelerator, batch, outputs):
        _, features = outputs
        seen.extend(batch["index"].tolist())
        cams = accelerator.unwrap_model(model).cams(features, batch["label"])
        context.update(features, cams, batch["label"], gather=accelerator.gather_for_metrics)

    history = train(
        model, Squares(), loss_fn=cross_entropy_loss, step_hook=hook,
        state_objects={"context": context},
        config=TrainConfig(epochs=2, batch_size=4, lr=0.01, random_state=0, verbose=0,
                           device="cpu"),
    )
    import torch.distributed as dist

    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else 1
    torch.save({
        "world": world,
        "fg": context.fg.cpu(), "bg": context.bg.cpu(), "fg_initial": initial,
        "weights": {k: v.cpu() for k, v in model.state_dict().items()},
        "seen": torch.tensor(seen), "history_samples": [r["samples"] for r in history],
    }, Path(out_dir) / f"rank{rank}.pt")


if __name__ == "__main__":
    main(sys.argv[1])
