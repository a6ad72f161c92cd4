"""Run by tests/test_keep_best.py under ``torch.distributed.run --nproc_per_node 2``.

``python _ddp_keep_script.py OUT_DIR`` writes what each process ends with to
``OUT_DIR/rank<r>.pt``:

1. :func:`skcream.training.train` with ``keep="best"`` and an epoch hook that returns
   scripted scores (process 0: ``SCORES``, epoch 2 the best; process 1: the reverse order,
   so that a decision taken by each process on its own scores would differ), uninterrupted,
   and interrupted in epoch 4 then resumed in fresh objects: the final weights, and the
   weights the hook saw at epochs 2 and 4;
2. ``CREAMLocalizer(keep="best", validation_data=...)`` and a fit of ``best_epoch_`` epochs
   from the same seed (``keep="last"``): both models' weights.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from skcream import CREAMLocalizer
from skcream.backbones import build_backbone
from skcream.context import ContextEmbeddings
from skcream.model import CAMNet
from skcream.training import TrainConfig, cross_entropy_loss, train

SCORES = [1.0, 3.0, 3.0, 2.0]


class Squares(Dataset):
    """Class c: a square bright in colour channel c, in quadrant i % 4 of noisy 16x16 image i."""

    def __init__(self, n: int = 16) -> None:
        g = torch.Generator().manual_seed(0)
        self.images = torch.randn(n, 3, 16, 16, generator=g) * 0.1
        self.labels = torch.arange(n) % 3
        for i, c in enumerate(self.labels.tolist()):
            y, x = divmod(i % 4, 2)
            self.images[i, c, 8 * y:8 * y + 6, 8 * x:8 * x + 6] += 1.0

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "label": self.labels[i], "index": i}


class Stop(Exception):
    pass


def _loop(rank: int, checkpoint_dir: Path, stop_at_step: int | None = None, seed: int = 0):
    torch.manual_seed(seed)
    model = CAMNet(build_backbone("test_resnet"), 3)
    context = ContextEmbeddings(3, model.backbone.num_features, random_state=seed)
    seen: dict[int, dict] = {}
    steps = [0]
    scores = SCORES if rank == 0 else SCORES[::-1]

    def step_hook(accelerator, batch, outputs):
        steps[0] += 1
        if stop_at_step is not None and steps[0] == stop_at_step:
            raise Stop
        _, features = outputs
        cams = accelerator.unwrap_model(model).cams(features, batch["label"])
        context.update(features, cams, batch["label"], gather=accelerator.gather_for_metrics)

    def epoch_hook(accelerator, epoch, record):
        seen[epoch] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        return {"val": scores[epoch - 1]}

    history = train(
        model, Squares(), loss_fn=cross_entropy_loss, step_hook=step_hook,
        epoch_hook=epoch_hook, state_objects={"context": context},
        config=TrainConfig(epochs=4, batch_size=4, lr=0.01, random_state=0, verbose=0,
                           device="cpu", checkpoint_dir=checkpoint_dir, resume=True,
                           keep="best", best_metric="val"),
    )
    weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    weights["context.fg"] = context.fg.cpu().clone()
    return weights, seen, [r["val"] for r in history]


def _images(n: int, seed: int):
    """n images with a bright square whose channel is the class, and its box."""
    rng = np.random.default_rng(seed)
    images, labels, boxes = [], [], []
    for i in range(n):
        img = rng.integers(0, 60, (36, 36, 3)).astype(np.uint8)
        c = i % 2
        x, y = (int(v) for v in rng.integers(0, 20, 2))
        img[y:y + 16, x:x + 16, c] = 250
        images.append(img)
        labels.append(c)
        boxes.append([[x, y, x + 16, y + 16]])
    return images, labels, boxes


def _estimators(seed: int):
    import datasets

    images, labels, _ = _images(12, 0)
    val_images, val_labels, val_boxes = _images(8, 1)
    features = datasets.Features({
        "image": datasets.Image(), "label": datasets.ClassLabel(names=["0", "1"]),
        "bboxes": datasets.Sequence(datasets.Sequence(datasets.Value("float32"), length=4)),
    })
    from PIL import Image

    val = datasets.Dataset.from_dict({"image": [Image.fromarray(v) for v in val_images],
                                      "label": val_labels, "bboxes": val_boxes},
                                     features=features)
    params = dict(backbone="test_resnet", pretrained=False, batch_size=4, image_size=32,
                  resize_size=36, lr=0.05, random_state=seed, verbose=0, device="cpu")
    best = CREAMLocalizer(**params, max_epochs=4, validation_data=val, keep="best")
    best.fit(images, labels)
    short = CREAMLocalizer(**params, max_epochs=best.best_epoch_).fit(images, labels)
    return best, short


def main(out_dir: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    out = Path(out_dir)
    rank = int(os.environ.get("RANK", "0"))
    final, seen, history_val = _loop(rank, out / "a")
    try:  # 2 steps per epoch and process (16 images, 2 processes x 4): step 7 opens epoch 4
        _loop(rank, out / "b", stop_at_step=7)
        raise SystemExit("the interruption did not happen")
    except Stop:
        pass
    ckpt_epoch = json.loads((out / "b" / "skcream-train.json").read_text())["epoch"]
    resumed, _, resumed_val = _loop(rank, out / "b", seed=99)
    best, short = _estimators(seed=3)  # a seed whose best epoch is not the last (asserted)
    world = dist.get_world_size() if dist.is_initialized() else 1
    torch.save({
        "world": world, "final": final, "resumed": resumed,
        "epoch2": seen[2], "epoch4": seen[4], "ckpt_epoch": ckpt_epoch,
        "history_val": history_val, "resumed_history_val": resumed_val,
        "best_epoch": best.best_epoch_, "max_epochs": best.max_epochs,
        "est_best": {k: v.cpu() for k, v in best.model_.state_dict().items()},
        "est_short": {k: v.cpu() for k, v in short.model_.state_dict().items()},
    }, out / f"rank{rank}.pt")


if __name__ == "__main__":
    main(sys.argv[1])
