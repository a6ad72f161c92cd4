"""``PseudoBoxRegressor``: a class-agnostic single-box regressor (CREAM_Reg's regressor).

A scikit-learn regressor from images to one box per image, trained with the MSE on the
four box coordinates normalised to the (augmented) training crop through the one
Accelerate loop of :mod:`skcream.training`. Two architectures
(:mod:`~skcream.estimators._regressor_arch` holds everything that differs):

* ``"psol"`` (default): the released CREAM_Reg, an ImageNet classifier with its last layer
  replaced by the box head (:class:`PSOLBoxNet`), ``(x0, y0, w, h)`` targets on random
  resized crops that overlap the box, evaluated on the 256 -> 224 centre crop at IoU > 0.5;
* ``"gap"``: a WSOL backbone with GAP and the head (:class:`BoxRegressionNet`),
  ``(x0, y0, x1, y1)`` targets on resize + random crops, evaluated in the protocol's
  224 frame (WSOL_PROTOCOL.md: ground truth ``int(x * 224 / W)``, inclusive +1 IoU >= 0.5).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin

from skcream.estimators import _boxes_target as bt
from skcream.estimators._common import (
    ImageEstimatorMixin,
    available_device,
    estimator_meta,
    json_value,
    load_device,
    pickle_state,
    read_estimator,
    resolve_seed,
    seeded,
    strip_prefix,
    train_config,
    unpickle_state,
)
from skcream.estimators._inputs import as_source
from skcream.estimators._params import (
    check_bool,
    check_choice,
    check_int,
    check_real,
    check_training_params,
)
from skcream.estimators._regressor_arch import ARCHITECTURES, get_architecture
from skcream.threads import with_thread_rule

__all__ = ["PseudoBoxRegressor"]

_CLASS = "PseudoBoxRegressor"
_MODIFICATIONS = ("auto", "stride1", "dilated", "none")


# --------------------------------------------------------------------------- validation
def _validate_params(params: dict[str, Any], *, fitting: bool) -> dict[str, Any]:
    """Check every constructor parameter of ``PseudoBoxRegressor`` (TypeError / ValueError);
    return them with numbers as Python ints / floats / bools (what the estimator uses)."""
    params = check_training_params(params, fitting=fitting,
                                   columns=("image_column", "bbox_column"))
    check_choice(params, "architecture", tuple(ARCHITECTURES))
    check_choice(params, "modification", _MODIFICATIONS)
    if params["architecture"] == "psol" and (params["feature_stage"] is not None
                                             or params["modification"] != "auto"):
        raise ValueError(
            "feature_stage and modification shape the WSOL backbone of architecture='gap'; "
            "architecture='psol' keeps the whole ImageNet classifier (leave feature_stage=None "
            f"and modification='auto'), got feature_stage={params['feature_stage']!r}, "
            f"modification={params['modification']!r}"
        )
    params["hidden"] = check_int(params, "hidden", 1)
    for name in ("lr", "head_lr_mult"):
        params[name] = check_real(params, name, 0.0, low_open=True)
    params["flip"] = check_bool(params, "flip")
    return params

# --------------------------------------------------------------------------- estimator
class PseudoBoxRegressor(ImageEstimatorMixin, RegressorMixin, BaseEstimator):
    """Class-agnostic single-box regressor on a timm model (CREAM_Reg's regressor).

    Parameters
    ----------
    backbone : str, default="vgg16"
        A timm model name.
    architecture : {"psol", "gap"}, default="psol"
        ``"psol"``: the released CREAM_Reg (Jazzcharles/CREAM, after PSOL). The network is
        the ImageNet classifier of ``backbone`` with its last layer replaced by
        ``Linear(d, hidden) -> ReLU -> Linear(hidden, 4) -> Sigmoid``
        (:func:`~skcream.estimators._regressor_net.build_psol_network`): for ``vgg16`` the
        conv layers and the pretrained fc6 / fc7 (136,360,260 parameters), for
        ``inception_v3`` the whole network with the auxiliary classifier on and its ``fc``
        replaced by a head too (25,790,184); the reference releases these two, and builds
        ResNet50 and DenseNet161 by the same rule, which any timm classifier
        (``efficientnet_lite0``, ViTs, ...) follows here. It regresses ``(x0, y0, w, h)``
        of the box clipped to a random resized crop (0.2-1 of the area, aspect 3/4-4/3,
        overlapping the box; :class:`~skcream.data.transforms.RandomResizedBoxCrop`) of
        ``image_size``, mirrored with ``flip``; at test time it sees the centre
        ``image_size`` crop of the image resized to ``resize_size`` x ``resize_size``
        (:class:`~skcream.data.transforms.ResizeCenterCrop`), and :meth:`score` counts
        a box correct at continuous IoU > 0.5 with the ground truth mapped into that crop.
        InceptionV3's auxiliary head is trained (PSOL: MSE + 0.3 x its MSE) only where it
        can run, from 299 px inputs; at 224 px it cannot (torchvision raises there) and only
        the main head learns. ``"gap"``: skcream's earlier regressor, a WSOL feature
        backbone (:func:`skcream.backbones.build_backbone`, ``feature_stage`` and
        ``modification`` apply; a token model gives its patch grid), global average pooling
        and the head, trained on ``(x0, y0, x1, y1)`` of resize + random crops, evaluated
        on the whole image resized to ``image_size`` in the protocol's 224 frame (inclusive
        +1 IoU >= 0.5).
    pretrained : bool or path, default=True
        ImageNet weights (offline for ``efficientnet_lite0``), False, or a state-dict file
        (torchvision's ``vgg16-397923af.pth`` / ``inception_v3_google-1a9a5a14.pth`` load as
        they are; nothing is downloaded without network).
    hidden : int, default=512
        Width of the head's hidden layer.
    feature_stage : int or None, default=None
        ``"gap"`` only: read an earlier backbone stage (see ``build_backbone``).
    modification : {"auto", "stride1", "dilated", "none"}, default="auto"
        ``"gap"`` only: stride modification of the backbone; a regressor does not need
        high-resolution maps, so ``"none"`` (the plain network) is cheaper for
        non-VGG/Inception models.
    max_epochs : int, default=50
    batch_size : int, default=32
        Also the inference batch size.
    lr : float, default=1e-3
        SGD lr of the pretrained layers (momentum 0.9, weight decay 1e-4). PSOL trains
        with 50 x the MSE at lr 1e-3 x batch / 256, which is the plain MSE at 50 x that lr
        with weight decay 2e-6 (CREAM's training code is not released).
    head_lr_mult : float, default=10.0
        lr multiplier of the new head (the paper's 10x for new layers; PSOL: 2x).
    lr_step : int or None, default=15
        Divide the lr by 10 every ``lr_step`` epochs.
    image_size : int, default=224
        Training crop and test input size (the paper's regressor input: 224).
    resize_size : int or None, default=None
        ``"psol"``: the test image is resized to this square before the centre crop.
        ``"gap"``: the training image is resized to this square before the random crop.
        None keeps the protocol's resize 256 / crop 224 ratio at any ``image_size``:
        ``round(image_size * 256 / 224)`` (256 at 224, 146 at 128).
    flip : bool, default=True
        Random horizontal flips in training (the target box is flipped too).
    device : str, torch.device or None, default=None
        Inference device; None: CUDA when available, else CPU.
    mixed_precision : {"no", "fp16", "bf16"}, default="no"
    gradient_accumulation_steps : int, default=1
    num_workers : int or None, default=None
        DataLoader workers; None: "auto" (:func:`skcream.data.loading.auto_num_workers`).
    checkpoint_dir : path or None, default=None
        Per-epoch checkpoints; an interrupted fit resumes from them.
    image_column, bbox_column : str
        Column names of a ``datasets.Dataset``.
    random_state : int, RandomState or None, default=None
        An int makes a CPU fit reproducible bit for bit.
    verbose : int, default=1

    Attributes
    ----------
    model_ : PSOLBoxNet or BoxRegressionNet
        Trained network (eval mode, on the inference device).
    data_config_ : dict
        Normalisation of the backbone.
    feature_dim_ : int
    history_ : list of dict
        Per epoch ``loss`` (MSE) and ``accuracy``: the share of training crops whose
        predicted box has continuous IoU >= 0.5 with its (augmented) target.
    n_train_ : int
        Number of training images.
    """

    def __init__(
        self,
        backbone: str = "vgg16",
        architecture: str = "psol",
        pretrained: bool | str | os.PathLike = True,
        hidden: int = 512,
        feature_stage: int | None = None,
        modification: str = "auto",
        max_epochs: int = 50,
        batch_size: int = 32,
        lr: float = 1e-3,
        head_lr_mult: float = 10.0,
        lr_step: int | None = 15,
        image_size: int = 224,
        resize_size: int | None = None,
        flip: bool = True,
        device: str | torch.device | None = None,
        mixed_precision: str = "no",
        gradient_accumulation_steps: int = 1,
        num_workers: int | None = None,
        checkpoint_dir: str | os.PathLike | None = None,
        image_column: str = "image",
        bbox_column: str = "bboxes",
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 1,
    ) -> None:
        self.backbone = backbone
        self.architecture = architecture
        self.pretrained = pretrained
        self.hidden = hidden
        self.feature_stage = feature_stage
        self.modification = modification
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.head_lr_mult = head_lr_mult
        self.lr_step = lr_step
        self.image_size = image_size
        self.resize_size = resize_size
        self.flip = flip
        self.device = device
        self.mixed_precision = mixed_precision
        self.gradient_accumulation_steps = gradient_accumulation_steps
        self.num_workers = num_workers
        self.checkpoint_dir = checkpoint_dir
        self.image_column = image_column
        self.bbox_column = bbox_column
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ plumbing
    _fit_inputs = "training images and their boxes"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = False
        return tags

    def _source(self, X: Any):
        source, _ = as_source(X, None, image_column=self.image_column,
                              bbox_column=self.bbox_column)
        return source

    def _params(self, *, fitting: bool = False) -> SimpleNamespace:
        """The validated parameters, numbers as Python values, read at call time."""
        return SimpleNamespace(**_validate_params(self.get_params(deep=False), fitting=fitting))

    @staticmethod
    def _net_spec(p: SimpleNamespace) -> dict[str, Any]:
        return {
            "network": p.architecture,
            "backbone": p.backbone,
            "feature_stage": p.feature_stage,
            "modification": p.modification,
            "hidden": p.hidden,
        }

    @staticmethod
    def _build(spec: dict[str, Any], pretrained: Any) -> torch.nn.Module:
        # saves from before the "psol" architecture record no network: "gap"
        return get_architecture(spec.get("network", "gap")).build(spec, pretrained)

    @staticmethod
    def _untrained(spec: dict[str, Any]) -> torch.nn.Module:
        """The network of a saved ``spec`` without pretrained weights (for the schema check)."""
        return PseudoBoxRegressor._build(spec, False)

    def build_network(self) -> torch.nn.Module:
        """The network ``fit`` starts from: the parameters' architecture with the
        ``pretrained`` weights, the box head untrained.

        Returns
        -------
        PSOLBoxNet (``architecture="psol"``) or BoxRegressionNet (``"gap"``)
            (B, 3, H, W) -> (B, 4); count its parameters with
            ``sum(p.numel() for p in net.parameters())`` (VGG16 ``"psol"``: 136,360,260).
            Built under ``torch.device("meta")`` with ``pretrained=False`` it allocates
            nothing.

        Raises
        ------
        TypeError, ValueError
            Invalid parameters (as :meth:`fit`).
        """
        p = self._params(fitting=True)
        return self._build(self._net_spec(p), p.pretrained)

    def _arch(self):
        return get_architecture(self.architecture)

    def _targets(self, source, y: Any) -> np.ndarray:
        """(n, 4) training boxes in original pixels: ``y`` or the bbox column."""
        if y is None:
            if not source.has_boxes:
                raise ValueError(
                    "fit needs one box per image: pass them as y (n, 4), or a Dataset with a "
                    f"{self.bbox_column!r} column (bbox_column) holding one box per image"
                )
            y = [source.boxes(i) for i in range(len(source))]
        boxes = bt.one_box_per_image(y, "boxes")
        if len(boxes) != len(source):
            raise ValueError(
                f"boxes has {len(boxes)} rows but X has {len(source)} images; pass one box "
                "per image"
            )
        return boxes

    # ------------------------------------------------------------------ fit
    @with_thread_rule
    def fit(self, X: Any, y: Any = None) -> PseudoBoxRegressor:
        """Train the network on one box per image.

        Parameters
        ----------
        X : datasets.Dataset, sequence of images (PIL / uint8 arrays / paths), or row dicts
        y : array-like (n, 4) or sequence of n boxes, optional
            ``x0, y0, x1, y1`` in each image's original pixels (e.g. CREAM pseudo boxes);
            default: the bbox column of ``X`` (exactly one box per image).

        Returns
        -------
        self

        Raises
        ------
        ValueError
            A box outside its image, degenerate (``x1 <= x0`` or ``y1 <= y0``) or NaN
            (index named); as many boxes as images otherwise.
        """
        from skcream.training import train

        p = self._params(fitting=True)
        self._clear_fitted()
        source = self._source(X)
        boxes = self._targets(source, y)
        sizes = bt.as_sizes([source.size(i) for i in range(len(source))], len(source))
        bt.check_boxes_in_images(boxes, sizes, "boxes")

        seed = resolve_seed(p.random_state)
        spec = self._net_spec(p)
        arch = get_architecture(p.architecture)
        with seeded(seed):
            model = self._build(spec, p.pretrained)
        # rebuild (load, unpickle) from the timm model actually built: the offline
        # efficientnet_lite0 weights live in tf_efficientnet_lite0
        spec["architecture"] = model.architecture
        if hasattr(model, "aux_trains_at"):  # InceptionV3's auxiliary head: from 299 px
            model.aux_trains_at(p.image_size)
        data_config = dict(model.data_config)
        dataset = bt.BoxTargetDataset(source, boxes, arch.train_transform(p, data_config),
                                      encode=arch.encode)
        config = train_config(p, seed, head_lr_mult=p.head_lr_mult)
        fingerprint = {
            "estimator": _CLASS,
            "params": {k: repr(v) for k, v in vars(p).items()
                       if k not in ("device", "num_workers", "checkpoint_dir", "verbose")},
            "data": source.fingerprint(),
            "boxes": hashlib.sha256(np.ascontiguousarray(boxes).tobytes()).hexdigest(),
        }
        history = train(
            model, dataset, loss_fn=arch.loss_fn, config=config, fingerprint=fingerprint,
            metric_fn=arch.metric_fn,
        )
        self.model_ = model.to(self._inference_device()).eval()
        self.data_config_ = data_config
        self.feature_dim_ = int(model.num_features)
        self.history_ = history
        self.n_train_ = len(source)
        self._spec = spec
        return self

    # ------------------------------------------------------------------ predict
    def _predict_unit(self, source) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (n, 4) ``x0, y0, x1, y1`` (ordered) divided by the size of the evaluation
        input, and the image sizes (n, 2) (W, H)."""
        from torch.utils.data import DataLoader

        from skcream.data.adapters import TorchImageDataset, collate
        from skcream.data.loading import pin_memory, resolve_num_workers

        p = self._params()
        transform = get_architecture(p.architecture).eval_transform(p, self.data_config_)

        device = self._inference_device()
        loader = DataLoader(TorchImageDataset(source, transform, with_boxes=False),
                            batch_size=p.batch_size, shuffle=False,
                            num_workers=resolve_num_workers(p.num_workers, len(source)),
                            collate_fn=collate, pin_memory=pin_memory(device))
        n = len(source)
        unit = np.zeros((n, 4), dtype=np.float64)
        sizes = np.zeros((n, 2), dtype=np.float64)
        self.model_.to(device).eval()
        with torch.no_grad():
            for batch in loader:
                out = self.model_(batch["image"].to(device)).double().cpu().numpy()
                idx = batch["index"].numpy()
                unit[idx] = out
                sizes[idx] = batch["size"].numpy()
        return get_architecture(p.architecture).decode(unit), sizes

    @with_thread_rule
    def predict(self, X: Any) -> np.ndarray:
        """One box per image.

        Parameters
        ----------
        X : datasets.Dataset, sequence of images, or row dicts

        Returns
        -------
        ndarray (n, 4) float64
            ``x0, y0, x1, y1`` (``x0 <= x1``, ``y0 <= y1``) in each image's original pixels.
            ``"psol"``: the box in the centre crop mapped back through the crop and the
            square resize, clipped to the image (the crop shows the central
            ``image_size / resize_size`` of each side; a box may reach into the margin).
            ``"gap"``: the whole image was resized, the unit box is scaled by ``W``, ``H``.
        """
        self._check_fitted()
        unit, sizes = self._predict_unit(self._source(X))
        p = self._params()
        return get_architecture(p.architecture).to_original(unit, sizes, p)

    def _gt_frame(self, source, gt_boxes: Any) -> list[np.ndarray]:
        """Ground-truth boxes of every image in the architecture's scoring frame."""
        n = len(source)
        ids = [source.image_id(i) for i in range(n)]
        if gt_boxes is None:
            if not source.has_boxes:
                raise ValueError(
                    "score needs ground-truth boxes: pass gt_boxes, or a Dataset with a "
                    f"{self.bbox_column!r} column (bbox_column)"
                )
            gt_boxes = [source.boxes(i) for i in range(n)]
        gt = bt.gt_box_lists(gt_boxes, n, "gt_boxes", image_ids=ids)
        p = self._params()
        arch = get_architecture(p.architecture)
        return [arch.gt_frame(g, source.size(i), p) for i, g in enumerate(gt)]

    @with_thread_rule
    def predict_protocol(self, X: Any) -> np.ndarray:
        """Predicted boxes (n, 4) in the scoring frame, continuous: the ``image_size`` centre
        crop (``"psol"``) or the protocol's 224x224 frame (``"gap"``)."""
        self._check_fitted()
        unit, _ = self._predict_unit(self._source(X))
        p = self._params()
        return unit * get_architecture(p.architecture).frame_size(p)

    def _box_hits(self, X: Any, gt_boxes: Any = None) -> np.ndarray:
        """(n,) bool: whether each image's predicted box is correct (the architecture's rule)."""
        source = self._source(X)
        gt = self._gt_frame(source, gt_boxes)
        unit, _ = self._predict_unit(source)
        p = self._params()
        return get_architecture(p.architecture).hits(unit, gt, p)

    @with_thread_rule
    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """GT-known localization accuracy (percent) of the predicted boxes, over images.

        An image counts when its box is correct for at least one of its ground-truth boxes:
        ``"psol"``: continuous IoU > 0.5 in the centre crop, the ground truth mapped into it
        (the released CREAM_Reg's ``inference.py``, which then averages per class:
        :meth:`CREAMReg.evaluate`); ``"gap"``: the protocol's inclusive +1 IoU >= 0.5 in the
        224x224 frame (``int(x * 224 / W)`` for the ground truth).

        Parameters
        ----------
        X : Dataset, images, or row dicts
        y : sequence of n (k_i, 4) arrays, or (n, 4), optional
            Ground-truth boxes in original pixels; default: the bbox column of ``X``.
        sample_weight : None
            Not supported (sklearn signature).

        Returns
        -------
        float

        Raises
        ------
        ValueError
            Images without a ground-truth box (named by id).
        """
        if sample_weight is not None:
            raise ValueError("sample_weight is not supported by PseudoBoxRegressor.score")
        self._check_fitted()
        return float(np.mean(self._box_hits(X, y)) * 100.0)

    # ------------------------------------------------------------------ persistence
    def _fitted_meta(self) -> dict[str, Any]:
        params = {k: json_value(v) for k, v in self.get_params(deep=False).items()}
        params["device"] = None  # a saved model records no device: chosen when loading
        fitted = {
            "net": dict(self._spec),
            "data_config_": json_value(self.data_config_),
            "feature_dim_": int(self.feature_dim_),
            "history_": json_value(self.history_),
            "n_train_": int(self.n_train_),
        }
        return estimator_meta(_CLASS, params, fitted)

    def _fitted_tensors(self) -> dict[str, torch.Tensor]:
        return {f"model.{k}": v for k, v in self.model_.state_dict().items()}

    def _restore(self, fitted: dict[str, Any], tensors: dict[str, torch.Tensor],
                 checked: bool = False) -> None:
        from skcream.estimators._saved_schema import check_regressor, shapes_of

        if not checked:
            check_regressor(fitted, shapes_of(tensors), f"pickled {_CLASS}",
                            build_model=self._untrained)
        wanted = self.device
        if wanted is not None and available_device(wanted) != torch.device(wanted):
            # pickled on a GPU machine, unpickled on a CPU-only one
            warnings.warn(f"device {str(wanted)!r} of the {_CLASS} is not available here; "
                          f"using {available_device(None)}", UserWarning, stacklevel=3)
            self.device = None
        spec = dict(fitted["net"])
        # saves from before the "psol" architecture: their parameters have no architecture
        spec.setdefault("network", "gap")
        self.architecture = spec["network"]
        model = self._build(spec, False)
        model.load_state_dict(strip_prefix(tensors, "model."), strict=True)
        self.model_ = model.to(self._inference_device()).eval()
        self._spec = spec
        self.data_config_ = dict(fitted["data_config_"])
        self.feature_dim_ = int(fitted["feature_dim_"])
        self.history_ = list(fitted["history_"])
        self.n_train_ = int(fitted["n_train_"])

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Write the fitted regressor to the directory ``path`` (JSON + safetensors, no pickle).

        Raises
        ------
        FileExistsError
            ``path`` holds something else (see :func:`skcream.persistence.write_saved`).
        """
        from skcream.persistence import write_saved

        self._check_fitted()
        write_saved(path, self._fitted_meta(), self._fitted_tensors(), overwrite=overwrite)

    @classmethod
    def load(
        cls, path: str | os.PathLike, *, device: str | torch.device | None = None
    ) -> PseudoBoxRegressor:
        """Read a regressor written by :meth:`save` (nothing is unpickled), all or nothing.

        ``device``: where to put the network (None: CUDA when available, else the CPU).
        Errors as in :meth:`CREAMLocalizer.load`.
        """
        from skcream.estimators._saved_schema import check_regressor

        def check(meta, shapes):
            check_regressor(meta, shapes, os.path.join(os.fspath(path), "skcream.json"),
                            os.path.join(os.fspath(path), "weights.safetensors"),
                            build_model=cls._untrained)

        load_device(device)
        est, fitted, tensors = read_estimator(cls, path, _CLASS, check=check)
        est.device = device
        est._restore(fitted, tensors, checked=True)
        return est

    def __getstate__(self) -> dict[str, Any]:
        return pickle_state(
            self, ("model_",), lambda: (self._fitted_meta()["fitted"], self._fitted_tensors())
        )

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = {"architecture": "gap", **state}  # pickled before the "psol" architecture
        unpickle_state(self, state, self._restore)
