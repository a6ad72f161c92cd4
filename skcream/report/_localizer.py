"""The report of a fitted :class:`~skcream.CREAMLocalizer` (``CREAMLocalizer.report`` and
``skcream report``): its CAM and CREAM maps of the ground-truth class from one forward pass,
through the estimator's own read-out (so the CREAM row equals ``evaluate``), then
:func:`skcream.report.write_report`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

_SHOWN_PARAMS = ("backbone", "pretrained", "feature_stage", "image_size", "n_iter", "sigma",
                 "kernel", "fg_threshold", "momentum", "max_epochs", "lr", "batch_size",
                 "random_state")


def readouts(est: Any, X: Any, y: Any = None) -> dict[str, Any]:
    """CAM (T=0) and CREAM protocol maps of the true class, logits, GT, masks of ``X``.

    Returns
    -------
    dict
        ``maps`` {"CAM": (n, 224, 224), "CREAM": (n, 224, 224)}, ``logits`` (n, C),
        ``labels`` (n,) class indices, ``gt`` list of (k_i, 4) at 224, ``masks`` or None,
        ``source``.
    """
    from skcream.data.transforms import resize_mask
    from skcream.estimators._boxes_target import PROTOCOL_SIZE
    from skcream.estimators.localizer._inference import class_maps
    from skcream.estimators.localizer._inference import protocol_gt_boxes as _scale_boxes
    from skcream.localize import protocol_maps

    est._check_fitted()
    source, _ = est._source(X, y)
    if not source.has_boxes:
        raise ValueError(f"the report needs ground-truth boxes: X must be a Dataset with a "
                         f"{est.bbox_column!r} column (bbox_column)")
    labels = est._labels_for(source, y, None, required=True)
    n = len(source)
    # boxes checked against their images (index, box as given) before the forward pass
    gt = [_scale_boxes(source.boxes(i), source.size(i), i) for i in range(n)]
    settings = {"CAM": est._settings(n_iter=0), "CREAM": est._settings()}
    maps = {k: np.zeros((n, PROTOCOL_SIZE, PROTOCOL_SIZE)) for k in settings}
    logits = None
    for batch in est._forward(source):  # one forward pass serves both read-outs
        if logits is None:
            logits = np.zeros((n, batch.logits.shape[1]))
        logits[batch.index] = batch.logits.float().cpu().numpy()
        lab = torch_labels(labels[batch.index], batch.logits.device)
        for name, s in settings.items():
            m = class_maps(est.model_, est.context_, batch.features, lab, s)
            maps[name][batch.index] = protocol_maps(m, (PROTOCOL_SIZE, PROTOCOL_SIZE))
    masks = None
    if source.has_masks:
        masks = [resize_mask(source.mask(i), PROTOCOL_SIZE) for i in range(n)]
    return {"maps": maps, "logits": logits, "labels": labels, "gt": gt, "masks": masks,
            "source": source}


def torch_labels(values: np.ndarray, device: Any):
    import torch

    return torch.as_tensor(values, device=device)


def _blind_priors(est: Any, prior_data: Any) -> dict[str, np.ndarray]:
    """The centre prior, and the train-box prior when ``prior_data`` (with boxes) is given."""
    from skcream.report import priors_from_data

    if prior_data is None:
        return priors_from_data(None)
    source, _ = est._source(prior_data)
    return priors_from_data(source)


def localizer_report(est: Any, X: Any, out: str | os.PathLike, *, y: Any = None,
                     validation_data: Any = None, prior_data: Any = None,
                     data_settings: dict[str, Any] | None = None,
                     title: str = "skcream evaluation report", verbose: int = 0) -> Path:
    """See :meth:`skcream.CREAMLocalizer.report`."""
    from skcream.estimators._common import json_value
    from skcream.report import _check_out, write_report

    _check_out(Path(out))  # before any work
    r = readouts(est, X, y)
    val_maps = val_gt = None
    thresholds = {"CREAM": float(est.box_threshold_)}
    # validation data that holds the reported images themselves (e.g. the same folder loaded
    # as two splits) is no validation: tau is then chosen on these images, and the page says
    # so ("chosen on these images (optimistic)"), never "on the validation images"
    same = (validation_data is not None and est._source(validation_data)[0].fingerprint()
            == r["source"].fingerprint())
    if validation_data is not None and not same:
        v = readouts(est, validation_data)
        val_maps, val_gt = v["maps"], v["gt"]
    elif validation_data is None:
        thresholds["CAM"] = float(est.box_threshold_)
    priors = _blind_priors(est, prior_data)
    params = est.get_params(deep=False)
    names = list(getattr(est, "class_names_", None) or [str(c) for c in est.classes_])
    model = {"estimator": type(est).__name__,
             **{k: json_value(params[k]) for k in _SHOWN_PARAMS if k in params},
             "box_threshold_": float(est.box_threshold_), "classes": names}
    data = {"images": len(r["source"]), "masks": r["masks"] is not None,
            "validation images": ("the reported images themselves" if same
                                  else None if val_gt is None else len(val_gt)),
            "train-box prior": ("from the boxes of prior_data" if prior_data is not None else
                                "not shown: no prior_data (CLI: --prior-split) was given"),
            **(data_settings or {})}
    return write_report(out, r["source"], r["maps"], r["gt"], r["labels"], logits=r["logits"],
                        class_names=names, masks=r["masks"], priors=priors,
                        thresholds=thresholds, val_maps=val_maps, val_gt=val_gt,
                        settings={"Model": model, "Data": data}, title=title, verbose=verbose)
