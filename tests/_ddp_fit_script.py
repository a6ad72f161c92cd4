"""Run by tests/test_distributed.py: ``CREAMLocalizer.fit`` itself, in 1 or N processes.

``python _ddp_fit_script.py OUT_DIR BATCH_SIZE`` fits a tiny ``test_resnet`` localizer on 10
images twice, with ``random_state=None`` and with ``random_state=0``, and writes what this
process ends with to ``OUT_DIR/<run>-rank<r>.pt``: the weights, the context tables, the tables
this process drew before training, every call of the context update (Eq. 4) with its
inputs, and the dataset indices of the samples behind them. 10 images at batch 4 on 2 processes make Accelerate
pad the last global batch (8 + 2 real samples), which must not enter Eq. 4 twice.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

import skcream.context as context_module
from skcream import CREAMLocalizer
from skcream.estimators.localizer import _training

N_IMAGES = 10


def _images(n: int) -> tuple[list[np.ndarray], list[int]]:
    rng = np.random.default_rng(0)
    images, labels = [], []
    for i in range(n):
        img = rng.integers(0, 60, (36, 36, 3)).astype(np.uint8)
        c = i % 2
        x, y = (int(v) for v in rng.integers(0, 20, 2))
        img[y:y + 16, x:x + 16, c] = 250
        images.append(img)
        labels.append(c)
    return images, labels


def main(out_dir: str, batch_size: int) -> None:
    torch.set_num_threads(1)
    drawn: list[torch.Tensor] = []
    rows: list[torch.Tensor] = []
    indices: list[torch.Tensor] = []

    real_init = context_module.ContextEmbeddings.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        drawn.append(torch.cat([self.fg, self.bg]).clone())

    real_update = context_module.update_context

    def update(fg, bg, fg_mean, bg_mean, labels, **kwargs):
        rows.append({"fg_mean": fg_mean.cpu().clone(), "bg_mean": bg_mean.cpu().clone(),
                     "labels": labels.cpu().clone(), "momentum": kwargs["momentum"],
                     "has_fg": kwargs["has_fg"].cpu().clone(),
                     "has_bg": kwargs["has_bg"].cpu().clone()})
        return real_update(fg, bg, fg_mean, bg_mean, labels, **kwargs)

    real_call = _training._ContextHook.__call__

    def call(self, accelerator, batch, outputs):
        index = batch["index"]
        if accelerator.num_processes > 1:
            index = accelerator.gather_for_metrics(index)
        indices.append(index.cpu().clone())
        return real_call(self, accelerator, batch, outputs)

    context_module.ContextEmbeddings.__init__ = init
    context_module.update_context = update
    _training._ContextHook.__call__ = call

    images, labels = _images(N_IMAGES)
    for name, seed in (("none", None), ("int", 0)):
        drawn.clear()
        rows.clear()
        indices.clear()
        est = CREAMLocalizer(
            backbone="test_resnet", pretrained=False, max_epochs=2, batch_size=batch_size,
            image_size=32, resize_size=36, random_state=seed, verbose=0, device="cpu",
        ).fit(images, labels)
        import torch.distributed as dist

        rank = dist.get_rank() if dist.is_initialized() else 0
        world = dist.get_world_size() if dist.is_initialized() else 1
        torch.save({
            "world": world,
            "weights": {k: v.cpu() for k, v in est.model_.state_dict().items()},
            "fg": est.context_.fg.cpu(), "bg": est.context_.bg.cpu(),
            "drawn": drawn[0],
            "rows": list(rows), "indices": list(indices),
            "global_batch": [r["global_batch_size"] for r in est.history_],
            "samples": [r["samples"] for r in est.history_],
        }, Path(out_dir) / f"{name}-rank{rank}.pt")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
