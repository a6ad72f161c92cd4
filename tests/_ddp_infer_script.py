"""Run by tests/test_distributed.py under torchrun: a saved localizer's inference spread over
the processes (:func:`skcream.distributed_inference`) and chunked to a folder
(:func:`skcream.sharded_apply`); every rank writes what it returned to ``OUT/infer-rank<r>.pkl``.

``python _ddp_infer_script.py MODEL_DIR DATA_DIR OUT_DIR``
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import datasets
import torch

from skcream import CREAMLocalizer, distributed_inference, sharded_apply


def run(model: CREAMLocalizer, data: datasets.Dataset) -> dict:
    """Every inference method on ``data`` (the test calls it in one process, too)."""
    loc = model.predict(data)
    return {
        "predict": (loc.boxes, loc.labels, loc.scores, loc.maps, loc.masks),
        "transform": model.transform(data),
        "proba": model.predict_proba(data),
        "pseudo_boxes": model.pseudo_boxes(data, resolution=48),
        "evaluate": model.evaluate(data),
        "score": model.score(data),
    }


def main(model_dir: str, data_dir: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    model = CREAMLocalizer.load(model_dir)
    data = datasets.load_from_disk(data_dir)
    import skcream.estimators.localizer._estimator as localizer_module

    forwarded = [0]
    real = localizer_module.iter_forward

    def counting(*args, **kwargs):
        for batch in real(*args, **kwargs):
            forwarded[0] += len(batch.index)
            yield batch

    localizer_module.iter_forward = counting
    with distributed_inference() as (rank, world):
        out = run(model, data)
    out["forwarded"] = forwarded[0]
    out["world"] = world
    out["sharded"] = sharded_apply(model, "pseudo_boxes", data, Path(out_dir) / "shards",
                                   chunk_size=3, resolution=48)
    with open(Path(out_dir) / f"infer-rank{rank}.pkl", "wb") as fh:
        pickle.dump(out, fh)


if __name__ == "__main__":
    main(*sys.argv[1:4])
