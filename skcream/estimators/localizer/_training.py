"""Training of a ``CREAMLocalizer``: one call of :func:`skcream.training.train`.

The network (timm backbone + GAP + linear head) is trained with cross-entropy by
the paper's recipe; the context embeddings are updated from the CAM of the true
class in the step hook (Eq. 3-4; no gradients, gathered across processes), and
are checkpointed and restored with the network. With ``memory=`` the fitted
state is looked up in / stored to the on-disk :class:`~._cache.FitCache`.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from skcream.estimators._cache import FitCache, cache_key, cache_location, weights_key
from skcream.estimators._common import (
    inference_device,
    resolve_seed,
    seeded,
    train_config,
    train_transform,
)
from skcream.estimators._inputs import training_classes
from skcream.estimators._shape import probe_feature_shape
from skcream.estimators.localizer._fitted_state import (
    check_saved,
    fitted_meta,
    fitted_tensors,
    restore,
)
from skcream.estimators.localizer._validation import TRAINING_PARAMS

__all__ = ["LabelledImages", "Validation", "best_epoch_of", "check_validation_data",
           "fit_network", "resolve_seed", "validation_score"]


class LabelledImages(torch.utils.data.Dataset):
    """A torch Dataset whose ``label`` is the internal class index (0..C-1) of each image.

    Parameters
    ----------
    images : TorchImageDataset
    codes : ndarray (n,) int64
    """

    def __init__(self, images, codes: np.ndarray) -> None:
        self.images = images
        self.codes = codes

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        item = self.images[index]
        item["label"] = int(self.codes[index])
        return item


def _data_fingerprint(source, codes: np.ndarray) -> str:
    h = hashlib.sha256(source.fingerprint().encode())
    h.update(np.ascontiguousarray(codes, dtype=np.int64).tobytes())
    return h.hexdigest()


def _key_params(est, p, validation: Validation | None = None) -> dict[str, Any]:
    """What decides the fitted network: the training parameters (``p``, validated: numbers
    as Python values; a weight file by the digest of its bytes), how the method networks are
    built (:data:`skcream.methods.NETWORKS_REVISION`), and with ``keep="best"`` what picks the
    epoch (the validation data and the read-out that scores it)."""
    from skcream.methods import NETWORKS_REVISION, get_method

    out = {k: getattr(p, k) for k in TRAINING_PARAMS}
    if isinstance(out["random_state"], np.random.RandomState):
        out["random_state"] = None
    out["pretrained"] = weights_key(out["pretrained"])
    # the resolved values of the chosen method only: {} and explicit defaults are one run
    out["method_params"] = get_method(p.method, p.method_params).params
    # how the method networks are built (trunks, initialisation, lr groups): a cached fit of
    # an older construction is another run
    out["networks"] = NETWORKS_REVISION
    if out["keep"] == "last":
        # the last epoch is what every fit kept before ``keep`` existed: cache entries and
        # checkpoints written then stay valid
        del out["keep"]
    elif validation is not None:
        # the epoch kept depends on the validation images and on the maps that score them
        # (the inference parameters): a change of either is another fitted network
        out["selection"] = {
            "validation": _data_fingerprint(validation.source, validation.labels),
            "metric": validation.metric,
            "readout": repr(est._settings()),
        }
    return out


def _feature_shape(model, image_size: int, device) -> tuple[int, int]:
    was = model.training
    model.eval()
    with torch.no_grad():
        feats = model(torch.zeros(1, 3, image_size, image_size, device=device))[1]
    model.train(was)
    return int(feats.shape[2]), int(feats.shape[3])


class _ContextHook:
    """The training step hook: Eq. 3-4 on the true class's map, timed.

    Method-agnostic: the features and the map come from ``model.readout`` on the training
    forward's features (``outputs[1]``), i.e. the method's own CAM during its training.
    """

    def __init__(self, model, context) -> None:
        self.model = model
        self.context = context
        self.seconds = 0.0

    def __call__(self, accelerator, batch, outputs) -> None:
        tic = time.perf_counter()
        labels = batch["label"]
        features, cams = self.model.readout(outputs[1], labels)
        # gather_for_metrics: Accelerate's padding of an epoch's last batch (samples repeated
        # so that every process gets a full batch) must not enter Eq. 4 a second time
        gather = accelerator.gather_for_metrics if accelerator.num_processes > 1 else None
        self.context.update(features, cams, labels, gather=gather)
        self.seconds += time.perf_counter() - tic


def fit_network(est, p, source, class_label: bool) -> dict[str, Any]:
    """Train (or fetch from ``memory``) the network and context of ``est`` on ``source``.

    Parameters
    ----------
    est : CREAMLocalizer
    p : SimpleNamespace
        Its parameters, validated, numbers as Python values (``est._params(fitting=True)``):
        they drive everything.
    source : ImageSource
        With the labels (``y`` already in it).
    class_label : bool

    Returns
    -------
    dict
        Fitted attributes: ``model_``, ``context_``, ``classes_``, ``class_names_``,
        ``n_classes_``, ``feature_dim_``, ``feature_shape_``, ``data_config_``,
        ``history_``, ``_net_spec``.
    """
    from skcream.context import ContextEmbeddings
    from skcream.data.adapters import TorchImageDataset, collate
    from skcream.methods import NETWORKS_REVISION, get_method
    from skcream.training import train

    classes, codes, names = training_classes(source, class_label)
    validation = None
    if est.validation_data is not None:  # refused now, not after the first epoch
        validation = check_validation_data(est, classes, names)
    data_fp = _data_fingerprint(source, codes)
    key_params = _key_params(est, p, validation)
    location = cache_location(p.memory)
    cache = None
    if location is not None:
        if isinstance(p.random_state, np.random.RandomState):
            warnings.warn(
                "memory is ignored when random_state is a RandomState instance (its state "
                "cannot key a cache); pass an int",
                UserWarning,
                stacklevel=3,
            )
        else:
            cache = FitCache(location)
            key = cache_key(key_params, data_fp)
            entry = str(cache.root / key)

            def check(meta, shapes):
                check_saved(meta, shapes, entry)

            hit = cache.get(key, check=check)
            if hit is not None:
                meta, tensors = hit
                holder = _Holder(est)
                restore(holder, meta["fitted"], tensors, torch.device("cpu"), checked=True)
                return holder.fitted()

    method = get_method(p.method, p.method_params)
    seed = resolve_seed(p.random_state)
    with seeded(seed):
        model = method.build(
            p.backbone,
            p.pretrained,
            n_classes=len(classes),
            feature_stage=p.feature_stage,
            large_feature_map=p.large_feature_map,
        )
    backbone = model.backbone
    # before any training: an input the network cannot take fails here, in words
    probe_feature_shape(backbone.eval(), p.image_size, "cpu", p.backbone)
    backbone.train()
    context = ContextEmbeddings(
        len(classes),
        model.readout_dim,
        momentum=p.momentum,
        fg_threshold=p.context_threshold,
        random_state=seed,
    )
    data_config = dict(backbone.data_config)
    transform = train_transform(p, data_config, flip=True)
    dataset = LabelledImages(TorchImageDataset(source, transform, with_boxes=False), codes)
    device = inference_device(p.device)
    selection = {} if p.keep == "last" else {
        "keep": p.keep, "best_metric": validation.history_key}
    config = train_config(p, seed, **selection)
    hook = _ContextHook(model, context)
    net_spec = {
        "backbone": p.backbone,
        # the timm model actually built (offline efficientnet_lite0 -> tf_efficientnet_lite0)
        "architecture": backbone.architecture,
        "feature_stage": p.feature_stage,
        "large_feature_map": p.large_feature_map,
        "n_classes": len(classes),
        "feature_dim": int(model.readout_dim),
        "method": method.name,
        "method_params": dict(method.params),
        "networks": NETWORKS_REVISION,
        "momentum": p.momentum,
        "context_threshold": p.context_threshold,
    }
    epoch_hook = _validation_hook(est, p, model, context, data_config, validation, hook)
    history = train(
        model,
        dataset,
        loss_fn=method.loss,
        forward_fn=method.forward,
        config=config,
        step_hook=hook,
        epoch_hook=epoch_hook,
        state_objects={"context": context},
        # max_epochs is left out: a finished run may be continued to more epochs
        fingerprint={
            "params": {k: repr(v) for k, v in key_params.items() if k != "max_epochs"},
            "data": data_fp,
        },
        collate_fn=collate,
    )
    model.to(device).eval()
    context.to(device)
    fitted = {
        "model_": model,
        "context_": context,
        "_net_spec": net_spec,
        "classes_": classes,
        "class_names_": names,
        "n_classes_": len(classes),
        "feature_dim_": int(model.readout_dim),
        "feature_shape_": _feature_shape(model, p.image_size, device),
        "data_config_": data_config,
        "history_": history,
        "best_epoch_": best_epoch_of(history),
    }
    if cache is not None:
        holder = _Holder(est)
        holder.__dict__.update(fitted)
        cache.put(key, fitted_meta(holder, with_threshold=False), fitted_tensors(holder))
    return fitted


class _Holder:
    """Carries fitted attributes of ``est`` without touching ``est`` itself."""

    def __init__(self, est) -> None:
        self._est = est

    def get_params(self, deep: bool = False) -> dict[str, Any]:
        return self._est.get_params(deep=deep)

    def fitted(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_est"}


def _validation_hook(est, p, model, context, data_config, validation, hook):
    """Epoch hook: context-update seconds, and the validation score (``val_max_box_acc_v2``
    or ``val_pxap``, see :func:`check_validation_data`) on ``validation_data``."""

    def epoch_hook(accelerator, epoch: int, record: dict) -> dict[str, Any]:
        out: dict[str, Any] = {"context_seconds": hook.seconds}
        hook.seconds = 0.0
        if validation is not None:
            out[validation.history_key] = validation_score(
                est, p, model, context, data_config, validation, accelerator.device
            )
        return out

    return epoch_hook


#: the history keys of the validation scores, by metric
VALIDATION_KEYS = {"max_box_acc_v2": "val_max_box_acc_v2", "pxap": "val_pxap"}


@dataclass(frozen=True)
class Validation:
    """Checked ``validation_data``: the source, internal labels (n,) and the metric."""

    source: Any
    labels: np.ndarray
    metric: str  # "max_box_acc_v2" or "pxap"

    @property
    def history_key(self) -> str:
        return VALIDATION_KEYS[self.metric]


def best_epoch_of(history: list[dict[str, Any]]) -> int | None:
    """The epoch with the best validation score in ``history`` (ties: the earliest); None
    without validation scores. :func:`skcream.training.best_epoch` on whichever validation
    key the history has."""
    from skcream.training import best_epoch

    for key in VALIDATION_KEYS.values():
        if any(key in r for r in history):
            return best_epoch(history, key)
    return None


def check_validation_data(est, classes: np.ndarray, names: list[str]) -> Validation:
    """``est.validation_data``, checked, with the metric that scores it.

    Its labels go through the one encoder of every label
    (:func:`~skcream.estimators._inputs.encode_labels`): names matched to the training
    class ``names`` (a validation folder with another class list is read by its names).

    The protocol's choice of metric (wsolevaluation selects checkpoints by MaxBoxAccV2 on
    CUB and ILSVRC, by PxAP on OpenImages, whose train-fullsup split has masks only): boxes
    for every image give MaxBoxAccV2; a mask column and no box at all (``load_wsol`` of
    OpenImages) give PxAP, and every image must then have a mask.

    Raises
    ------
    ValueError
        Naming ``validation_data`` and what is wrong (no label column, an unseen class, the
        image without a box or a mask); ``fit`` calls this before training.
    """
    from skcream.estimators._inputs import as_source, encode_labels, raw_labels

    source, _ = as_source(
        est.validation_data,
        image_column=est.image_column,
        label_column=est.label_column,
        bbox_column=est.bbox_column,
    )
    values = raw_labels(source)
    if values is None or not (source.has_boxes or source.has_masks):
        raise ValueError(
            "validation_data must have a label column and a bbox column "
            f"({est.label_column!r}, {est.bbox_column!r}) or a 'mask' column"
        )
    if len(source) == 0:
        raise ValueError("validation_data: is empty")
    labels = encode_labels(values, classes, names, "validation_data labels",
                           n_images=len(source))
    boxed = [source.has_boxes and len(source.boxes(i)) > 0 for i in range(len(source))]
    if all(boxed):
        return Validation(source, labels, "max_box_acc_v2")
    if source.has_masks and not any(boxed):
        for i in range(len(source)):
            if source.mask(i) is None:
                raise ValueError(f"validation_data: image {source.image_id(i)!r} (index {i}) "
                                 "has no ground-truth mask (PxAP needs one per image)")
        return Validation(source, labels, "pxap")
    i = boxed.index(False)
    raise ValueError(f"validation_data: image {source.image_id(i)!r} (index {i}) has "
                     "no ground-truth box")


def validation_score(est, p, model, context, data_config, validation: Validation,
                     device) -> float:
    """MaxBoxAccV2 or PxAP (``validation.metric``) of the current network on the validation
    images (protocol maps)."""
    from skcream.data.transforms import resize_mask
    from skcream.estimators._boxes_target import PROTOCOL_SIZE
    from skcream.estimators.localizer._inference import class_maps, iter_forward
    from skcream.estimators.localizer._inference import protocol_gt_boxes as _scale_boxes
    from skcream.localize import protocol_maps
    from skcream.metrics import ProtocolAccumulators

    source, labels, metric = validation.source, validation.labels, validation.metric
    acc = ProtocolAccumulators([metric])  # streaming: one batch of maps in memory at a time
    for batch in iter_forward(
        model, source, image_size=p.image_size, data_config=data_config,
        batch_size=p.batch_size, device=device, num_workers=p.num_workers,
    ):
        lab = torch.as_tensor(labels[batch.index], device=device)
        m = class_maps(model, context, batch.features, lab, est._settings())
        gt = ([_scale_boxes(source.boxes(int(i)), source.size(int(i)), int(i))
               for i in batch.index] if metric == "max_box_acc_v2" else None)
        acc.update(protocol_maps(m, (PROTOCOL_SIZE, PROTOCOL_SIZE)), gt, lambda index=batch.index: [
            resize_mask(source.mask(int(i)), PROTOCOL_SIZE) for i in index])
    return acc.results()[metric]
