"""CREAM_Reg (paper section 4.1, Fig. 3): a class-agnostic box regressor on pseudo boxes.

- :class:`PseudoBoxRegressor` is a scikit-learn regressor from images to one box per
  image: a timm backbone, global average pooling and the head
  ``Linear(d, 512) -> ReLU -> Linear(512, 4) -> Sigmoid``, trained with the MSE on the four
  box coordinates normalised to the (augmented) training image, through the one
  Accelerate loop of :mod:`skcream.training`. Random crops and flips move the target box.
- :class:`CREAMReg` composes a :class:`~skcream.estimators.localizer.CREAMLocalizer`
  (CREAM_Base: the class, and the pseudo boxes of the training set at 448x448) and a
  :class:`PseudoBoxRegressor` trained on those pseudo boxes (the box at test time).

The two-step recipe, equivalent to ``CREAMReg(localizer, regressor).fit(train)``::

    loc = CREAMLocalizer(...).fit(train)                  # CREAM_Base
    boxes = loc.pseudo_boxes(train, resolution=448)       # (n, 4) original pixels
    reg = PseudoBoxRegressor(...).fit(train, boxes)       # class-agnostic boxes
    model = CREAMReg(loc, reg, prefit=True).fit(train)    # or keep loc and reg apart

Evaluation frame: ``score``/``evaluate`` follow WSOL_PROTOCOL.md. Ground-truth boxes are
scaled to 224x224 with ``int(x * 224 / W)``; the regressor's boxes are continuous and are
scaled to 224 without truncation. IoU uses the protocol's inclusive +1 convention (the
pseudo boxes the regressor learns from follow that convention too).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted
from torch import nn

from skcream.estimators import _boxes_target as bt

__all__ = ["BoxRegressionNet", "CREAMReg", "PseudoBoxRegressor", "box_iou_unit"]

_CLASS = "PseudoBoxRegressor"
_MODIFICATIONS = ("auto", "stride1", "dilated", "none")
_MIXED = ("no", "fp16", "bf16")


# --------------------------------------------------------------------------- network
class BoxRegressionNet(nn.Module):
    """Backbone + GAP + ``Linear(d, hidden) -> ReLU -> Linear(hidden, 4) -> Sigmoid``.

    Parameters
    ----------
    backbone : nn.Module
        Maps (B, 3, H, W) to (B, d, h, w) and has ``num_features`` (d), e.g. a
        :class:`skcream.backbones.FeatureBackbone`.
    hidden : int, default=512

    Attributes
    ----------
    head : nn.Sequential
        New layers, He-initialised (trained at ``head_lr_mult`` x lr).
    """

    def __init__(self, backbone: nn.Module, hidden: int = 512) -> None:
        super().__init__()
        dim = int(backbone.num_features)
        self.backbone = backbone
        self.head = nn.Sequential(
            nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 4), nn.Sigmoid()
        )
        for layer in (self.head[0], self.head[2]):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Boxes in the unit frame of the input.

        Parameters
        ----------
        x : Tensor (B, 3, H, W)

        Returns
        -------
        Tensor (B, 4)
            ``x0/W, y0/H, x1/W, y1/H`` in (0, 1); corners not ordered (see
            :func:`skcream.estimators._boxes_target.order_corners`).
        """
        features = self.backbone(x)
        return self.head(features.float().mean(dim=(2, 3)))

    def new_parameters(self) -> list[nn.Parameter]:
        """The head and the backbone's new layers (e.g. VGG's conv6)."""
        extra = self.backbone.new_parameters() if hasattr(self.backbone, "new_parameters") else []
        return list(extra) + list(self.head.parameters())

    def pretrained_parameters(self) -> list[nn.Parameter]:
        """Every other parameter."""
        new = {id(p) for p in self.new_parameters()}
        return [p for p in self.parameters() if id(p) not in new]


def box_iou_unit(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Continuous IoU of corresponding boxes (unit frame, no +1), corners ordered first.

    Parameters
    ----------
    a, b : Tensor (B, 4)

    Returns
    -------
    Tensor (B,)
        0 where the union is empty.
    """
    a = torch.stack([torch.minimum(a[:, 0], a[:, 2]), torch.minimum(a[:, 1], a[:, 3]),
                     torch.maximum(a[:, 0], a[:, 2]), torch.maximum(a[:, 1], a[:, 3])], dim=1)
    iw = (torch.minimum(a[:, 2], b[:, 2]) - torch.maximum(a[:, 0], b[:, 0])).clamp(min=0)
    ih = (torch.minimum(a[:, 3], b[:, 3]) - torch.maximum(a[:, 1], b[:, 1])).clamp(min=0)
    inter = iw * ih
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    union = area_a + area_b - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(union))


def mse_box_loss(outputs: torch.Tensor, batch: dict) -> torch.Tensor:
    """Mean squared error over the four normalised coordinates (paper: MSE, 4 coordinates)."""
    return torch.nn.functional.mse_loss(outputs.float(), batch["target"].float())


def iou50_correct(outputs: torch.Tensor, batch: dict) -> torch.Tensor:
    """Per-sample ``IoU(prediction, target) >= 0.5`` (unit frame), the history's accuracy."""
    return (box_iou_unit(outputs.detach().float(), batch["target"].float()) >= 0.5).float()


# --------------------------------------------------------------------------- validation
def _check_int(params: dict, name: str, low: int, *, none_ok: bool = False) -> None:
    value = params[name]
    if value is None and none_ok:
        return
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an int >= {low}{' or None' if none_ok else ''}, "
                        f"got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


def _check_positive(params: dict, name: str) -> None:
    value = params[name]
    if isinstance(value, bool) or not isinstance(value, Real) or not np.isfinite(value):
        raise TypeError(f"{name} must be a positive finite number, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")


def _validate_params(params: dict[str, Any], *, fitting: bool) -> None:
    if not isinstance(params["backbone"], str) or not params["backbone"]:
        raise TypeError(f"backbone must be a timm model name (str), got {params['backbone']!r}")
    pretrained = params["pretrained"]
    if not isinstance(pretrained, bool | str | os.PathLike):
        raise TypeError("pretrained must be True, False or a path to a .pth/.safetensors "
                        f"state dict, got {pretrained!r}")
    if fitting and isinstance(pretrained, str | os.PathLike) and not os.path.isfile(pretrained):
        raise ValueError(f"pretrained: no such weight file {os.fspath(pretrained)!r}")
    if params["modification"] not in _MODIFICATIONS:
        raise ValueError(f"modification must be one of {list(_MODIFICATIONS)}, "
                         f"got {params['modification']!r}")
    for name, low in (("hidden", 1), ("max_epochs", 1), ("batch_size", 1), ("image_size", 8),
                      ("resize_size", 8), ("gradient_accumulation_steps", 1),
                      ("num_workers", 0), ("verbose", 0)):
        _check_int(params, name, low)
    _check_int(params, "lr_step", 1, none_ok=True)
    _check_int(params, "feature_stage", -100, none_ok=True)
    _check_positive(params, "lr")
    _check_positive(params, "head_lr_mult")
    if params["resize_size"] < params["image_size"]:
        raise ValueError(
            f"resize_size must be >= image_size (random crops of image_size are cut from the "
            f"resized image), got resize_size={params['resize_size']} < "
            f"image_size={params['image_size']}"
        )
    if not isinstance(params["flip"], bool | np.bool_):
        raise TypeError(f"flip must be a bool, got {params['flip']!r}")
    if params["mixed_precision"] not in _MIXED:
        raise ValueError(f"mixed_precision must be one of {list(_MIXED)}, "
                         f"got {params['mixed_precision']!r}")
    device = params["device"]
    if device is not None and not isinstance(device, str | torch.device):
        raise TypeError(f"device must be None, a str or a torch.device, got {device!r}")
    cp = params["checkpoint_dir"]
    if cp is not None and not isinstance(cp, str | os.PathLike):
        raise TypeError(f"checkpoint_dir must be None or a path, got {cp!r}")
    for name in ("image_column", "bbox_column"):
        if not isinstance(params[name], str) or not params[name]:
            raise TypeError(f"{name} must be a non-empty column name (str), got {params[name]!r}")
    rs = params["random_state"]
    if isinstance(rs, bool) or (rs is not None and not isinstance(rs, Integral | np.random.RandomState)):
        raise TypeError(f"random_state must be None, an int or a numpy RandomState, got {rs!r}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, torch.device):
        return str(value)
    if isinstance(value, np.random.RandomState):
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


# --------------------------------------------------------------------------- estimator
class PseudoBoxRegressor(RegressorMixin, BaseEstimator):
    """Class-agnostic single-box regressor on a timm backbone (CREAM_Reg's regressor).

    Parameters
    ----------
    backbone : str, default="vgg16"
        Any timm CNN name (WSOL modifications as :func:`skcream.backbones.build_backbone`).
    pretrained : bool or path, default=True
        ImageNet weights (offline for ``efficientnet_lite0``), False, or a state-dict file.
    hidden : int, default=512
        Width of the head's hidden layer.
    feature_stage : int or None, default=None
        Read an earlier backbone stage (see ``build_backbone``).
    modification : {"auto", "stride1", "dilated", "none"}, default="auto"
        Stride modification of the backbone; a regressor does not need high-resolution
        maps, so ``"none"`` (the plain network) is cheaper for non-VGG/Inception models.
    max_epochs : int, default=50
    batch_size : int, default=32
        Also the inference batch size.
    lr : float, default=1e-3
        SGD lr of the pretrained layers (momentum 0.9, weight decay 1e-4).
    head_lr_mult : float, default=10.0
        lr multiplier of the new head (the paper's 10x for new layers).
    lr_step : int or None, default=15
        Divide the lr by 10 every ``lr_step`` epochs.
    image_size : int, default=224
        Training crop and inference size (the paper's regressor input: 224).
    resize_size : int, default=256
        Training images are resized to this square before the random crop.
    flip : bool, default=True
        Random horizontal flips in training (the target box is flipped too).
    device : str, torch.device or None, default=None
        Inference device; None: CUDA when available, else CPU.
    mixed_precision : {"no", "fp16", "bf16"}, default="no"
    gradient_accumulation_steps : int, default=1
    num_workers : int, default=0
    checkpoint_dir : path or None, default=None
        Per-epoch checkpoints; an interrupted fit resumes from them.
    image_column, bbox_column : str
        Column names of a ``datasets.Dataset``.
    random_state : int, RandomState or None, default=None
        An int makes a CPU fit reproducible bit for bit.
    verbose : int, default=1

    Attributes
    ----------
    model_ : BoxRegressionNet
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
        resize_size: int = 256,
        flip: bool = True,
        device: str | torch.device | None = None,
        mixed_precision: str = "no",
        gradient_accumulation_steps: int = 1,
        num_workers: int = 0,
        checkpoint_dir: str | os.PathLike | None = None,
        image_column: str = "image",
        bbox_column: str = "bboxes",
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 1,
    ) -> None:
        self.backbone = backbone
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
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.target_tags.required = False
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = False
        return tags

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")

    def _check_fitted(self) -> None:
        if not self.__sklearn_is_fitted__():
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                "training images and their boxes before using this method."
            )

    def _inference_device(self) -> torch.device:
        if self.device is not None:
            return torch.device(self.device)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def _source(self, X: Any):
        from skcream.estimators._localizer_data import as_source

        source, _ = as_source(X, None, image_column=self.image_column,
                              bbox_column=self.bbox_column)
        return source

    def _net_spec(self) -> dict[str, Any]:
        return {
            "backbone": self.backbone,
            "feature_stage": self.feature_stage,
            "modification": self.modification,
            "hidden": int(self.hidden),
        }

    @staticmethod
    def _build(spec: dict[str, Any], pretrained: Any) -> BoxRegressionNet:
        from skcream.backbones import build_backbone

        backbone = build_backbone(
            spec["backbone"], pretrained, feature_stage=spec["feature_stage"],
            modification=spec["modification"],
        )
        return BoxRegressionNet(backbone, int(spec["hidden"]))

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
        from skcream.data.transforms import TrainTransform
        from skcream.estimators._localizer_fit import resolve_seed
        from skcream.training import TrainConfig, train

        _validate_params(self.get_params(deep=False), fitting=True)
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("__")]:
            delattr(self, name)
        source = self._source(X)
        boxes = self._targets(source, y)
        sizes = bt.as_sizes([source.size(i) for i in range(len(source))], len(source))
        bt.check_boxes_in_images(boxes, sizes, "boxes")

        seed = resolve_seed(self.random_state)
        spec = self._net_spec()
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            model = self._build(spec, self.pretrained)
        data_config = dict(model.backbone.data_config)
        transform = TrainTransform(
            resize=self.resize_size, crop=self.image_size, flip=bool(self.flip),
            mean=data_config["mean"], std=data_config["std"],
        )
        dataset = bt.BoxTargetDataset(source, boxes, transform)
        device = self._inference_device()
        config = TrainConfig(
            epochs=self.max_epochs,
            batch_size=self.batch_size,
            lr=float(self.lr),
            head_lr_mult=float(self.head_lr_mult),
            lr_step_size=self.lr_step,
            mixed_precision=self.mixed_precision,
            gradient_accumulation_steps=self.gradient_accumulation_steps,
            num_workers=self.num_workers,
            checkpoint_dir=self.checkpoint_dir,
            resume=self.checkpoint_dir is not None,
            random_state=seed,
            verbose=self.verbose,
            device="cpu" if device.type == "cpu" else "auto",
        )
        fingerprint = {
            "estimator": _CLASS,
            "params": {k: repr(v) for k, v in self.get_params(deep=False).items()
                       if k not in ("device", "num_workers", "checkpoint_dir", "verbose")},
            "data": source.fingerprint(),
            "boxes": hashlib.sha256(np.ascontiguousarray(boxes).tobytes()).hexdigest(),
        }
        history = train(
            model, dataset, loss_fn=mse_box_loss, config=config, fingerprint=fingerprint,
            metric_fn=iou50_correct,
        )
        self.model_ = model.to(device).eval()
        self.data_config_ = data_config
        self.feature_dim_ = int(model.backbone.num_features)
        self.history_ = history
        self.n_train_ = len(source)
        self._spec = spec
        return self

    # ------------------------------------------------------------------ predict
    def _predict_unit(self, source) -> tuple[np.ndarray, np.ndarray]:
        """Unit-frame boxes (n, 4) (corners ordered) and image sizes (n, 2) (W, H)."""
        from torch.utils.data import DataLoader

        from skcream.data.adapters import TorchImageDataset, collate
        from skcream.data.transforms import EvalTransform

        transform = EvalTransform(size=self.image_size, mean=self.data_config_["mean"],
                                  std=self.data_config_["std"])
        loader = DataLoader(TorchImageDataset(source, transform, with_boxes=False),
                            batch_size=self.batch_size, shuffle=False,
                            num_workers=self.num_workers, collate_fn=collate)
        device = self._inference_device()
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
        return bt.order_corners(unit), sizes

    def predict(self, X: Any) -> np.ndarray:
        """One box per image.

        Parameters
        ----------
        X : datasets.Dataset, sequence of images, or row dicts

        Returns
        -------
        ndarray (n, 4) float64
            ``x0, y0, x1, y1`` (``x0 <= x1``, ``y0 <= y1``) in each image's original pixels
            (the image is resized to ``image_size`` without cropping, the network's unit
            box is scaled by the original ``W``, ``H``).
        """
        self._check_fitted()
        unit, sizes = self._predict_unit(self._source(X))
        return bt.denormalize_boxes(unit, sizes)

    def _gt_protocol(self, source, gt_boxes: Any) -> list[np.ndarray]:
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
        return [bt.to_protocol_frame(g, source.size(i), truncate=True) for i, g in enumerate(gt)]

    def predict_protocol(self, X: Any) -> np.ndarray:
        """Predicted boxes in the 224x224 evaluation frame (continuous), shape (n, 4)."""
        self._check_fitted()
        unit, _ = self._predict_unit(self._source(X))
        return unit * bt.PROTOCOL_SIZE

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """GT-known localization accuracy (percent) of the predicted boxes.

        An image counts when its box has IoU >= 0.5 with at least one of its ground-truth
        boxes, in the protocol's 224x224 frame (``int(x * 224 / W)`` for the ground truth)
        with the inclusive +1 IoU.

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
        source = self._source(X)
        gt = self._gt_protocol(source, y)
        unit, _ = self._predict_unit(source)
        pred = unit * bt.PROTOCOL_SIZE
        n = len(source)
        from skcream.metrics import localization_accuracy

        acc = localization_accuracy(pred, gt, np.zeros((n, 1), dtype=np.int64),
                                    np.zeros(n, dtype=np.int64), iou_threshold=50)
        return float(acc["gt_known_loc"])

    # ------------------------------------------------------------------ persistence
    def _fitted_meta(self) -> dict[str, Any]:
        import skcream

        params = {k: _jsonable(v) for k, v in self.get_params(deep=False).items()}
        return {
            "class": _CLASS,
            "skcream_version": skcream.__version__,
            "params": params,
            "fitted": {
                "net": dict(self._spec),
                "data_config_": _jsonable(self.data_config_),
                "feature_dim_": int(self.feature_dim_),
                "history_": _jsonable(self.history_),
                "n_train_": int(self.n_train_),
            },
        }

    def _fitted_tensors(self) -> dict[str, torch.Tensor]:
        return {f"model.{k}": v for k, v in self.model_.state_dict().items()}

    def _restore(self, fitted: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        spec = dict(fitted["net"])
        model = self._build(spec, False)
        model.load_state_dict({k[len("model."):]: v for k, v in tensors.items()
                               if k.startswith("model.")}, strict=True)
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
    def load(cls, path: str | os.PathLike) -> PseudoBoxRegressor:
        """Read a regressor written by :meth:`save` (nothing is unpickled)."""
        from skcream.persistence import read_saved

        meta, tensors = read_saved(path)
        if meta.get("class") != _CLASS:
            raise ValueError(f"{os.fspath(path)!r} holds a {meta.get('class')!r}, not a {_CLASS}")
        params = dict(meta["params"])
        unknown = sorted(set(params) - set(cls().get_params(deep=False)))
        if unknown:
            raise ValueError(f"{os.fspath(path)!r} has parameters this skcream does not know: "
                             f"{unknown}")
        est = cls(**params)
        est._restore(meta["fitted"], tensors)
        return est

    def __getstate__(self) -> dict[str, Any]:
        from skcream.persistence import tensors_to_bytes

        state = {k: v for k, v in self.__dict__.items() if k != "model_"}
        if self.__sklearn_is_fitted__():
            state["_skcream_fitted"] = {
                "meta": self._fitted_meta()["fitted"],
                "weights": tensors_to_bytes(self._fitted_tensors()),
            }
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        from skcream.persistence import tensors_from_bytes

        state = dict(state)
        fitted = state.pop("_skcream_fitted", None)
        self.__dict__.update(state)
        if fitted is not None:
            self._restore(fitted["meta"], tensors_from_bytes(fitted["weights"]))


# --------------------------------------------------------------------------- CREAM_Reg
def box_masks(boxes: np.ndarray, sizes: np.ndarray) -> list[np.ndarray]:
    """Filled box masks at each image's size.

    Parameters
    ----------
    boxes : ndarray (n, 4)
        Continuous ``x0, y0, x1, y1`` in original pixels.
    sizes : ndarray (n, 2)
        ``(W, H)``.

    Returns
    -------
    list of n bool arrays (H_i, W_i)
        Pixel ``(r, c)`` is inside when its centre ``(c + 0.5, r + 0.5)`` lies in the box
        (so the box ``[x, y, x + w, y + h]`` covers exactly ``w x h`` pixels).
    """
    out = []
    for (x0, y0, x1, y1), (w, h) in zip(np.asarray(boxes, float), np.asarray(sizes, int)):
        cx = np.arange(w) + 0.5
        cy = np.arange(h) + 0.5
        out.append(((cy >= y0) & (cy <= y1))[:, None] & ((cx >= x0) & (cx <= x1))[None, :])
    return out


def _subset(X: Any, keep: np.ndarray) -> Any:
    """Rows ``keep`` of a Dataset or a sequence (images, paths or row dicts)."""
    import datasets

    if isinstance(X, datasets.Dataset):
        return X.select(keep.tolist())
    if hasattr(X, "take") and hasattr(X, "dataset"):  # DatasetView
        return X.take(keep)
    if hasattr(X, "select") and hasattr(X, "fingerprint"):  # ImageSource
        return X.select(keep.tolist())
    if isinstance(X, np.ndarray):
        return X[keep]
    return [X[int(i)] for i in keep]


class CREAMReg(BaseEstimator):
    """CREAM_Reg: class from CREAM_Base's classifier, box from a pseudo-box regressor.

    ``fit`` trains the localizer (CREAM_Base) unless ``prefit``, generates its pseudo
    boxes for the training images at ``pseudo_resolution`` x ``pseudo_resolution`` input
    (paper: 448, following PSOL) with the ground-truth classes, and trains a clone of the
    regressor on them (paper Fig. 3). Training images whose pseudo box is degenerate (no
    contour: an all-zero map) are left out of the regressor's training with a warning and
    counted in ``n_degenerate_pseudo_boxes_``.

    Parameters
    ----------
    localizer : CREAMLocalizer or None, default=None
        CREAM_Base (None: ``CREAMLocalizer()``). Give it ``memory=`` to make refits inside
        a grid search free.
    regressor : PseudoBoxRegressor or None, default=None
        None: ``PseudoBoxRegressor()``. Cloned before fitting.
    pseudo_resolution : int, default=448
        Input size at which the localizer's maps for the pseudo boxes are computed.
    prefit : bool, default=False
        Use ``localizer`` as already fitted (not cloned, not refitted). ``clone`` drops
        the fitted weights, so inside ``GridSearchCV`` prefer ``prefit=False`` with a
        localizer ``memory=`` cache.

    Attributes
    ----------
    localizer_ : CREAMLocalizer
    regressor_ : PseudoBoxRegressor
    classes_ : ndarray (C,)
    pseudo_boxes_ : ndarray (n, 4)
        The pseudo boxes of the training images (original pixels).
    n_degenerate_pseudo_boxes_ : int
    """

    def __init__(self, localizer: Any = None, regressor: Any = None,
                 pseudo_resolution: int = 448, prefit: bool = False) -> None:
        self.localizer = localizer
        self.regressor = regressor
        self.pseudo_resolution = pseudo_resolution
        self.prefit = prefit

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.target_tags.required = False
        tags.non_deterministic = True
        return tags

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "regressor_") and hasattr(self, "localizer_")

    def _check_fitted(self) -> None:
        if not self.__sklearn_is_fitted__():
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                "training images and labels before using this method."
            )

    def _validate(self) -> tuple[Any, Any]:
        """Check the parameters; return (localizer, regressor), defaults for None."""
        from skcream.estimators.localizer import CREAMLocalizer

        r = self.pseudo_resolution
        if isinstance(r, bool) or not isinstance(r, Integral) or r < 8:
            raise ValueError(f"pseudo_resolution must be an int >= 8, got {r!r}")
        localizer = CREAMLocalizer() if self.localizer is None else self.localizer
        regressor = PseudoBoxRegressor() if self.regressor is None else self.regressor
        if not hasattr(localizer, "pseudo_boxes") or not hasattr(localizer, "fit"):
            raise TypeError("localizer must be a CREAMLocalizer (fit, predict, pseudo_boxes), "
                            f"got {type(localizer).__name__}")
        if not all(hasattr(regressor, m) for m in ("fit", "predict", "score")):
            raise TypeError("regressor must be a PseudoBoxRegressor (fit, predict, score), "
                            f"got {type(regressor).__name__}")
        if not isinstance(self.prefit, bool | np.bool_):
            raise TypeError(f"prefit must be a bool, got {self.prefit!r}")
        return localizer, regressor

    def fit(self, X: Any, y: Any = None) -> CREAMReg:
        """Fit CREAM_Base (unless ``prefit``), make pseudo boxes, fit the regressor on them.

        Parameters
        ----------
        X : datasets.Dataset, sequence of images, or row dicts
            Training images (no boxes needed).
        y : array-like (n,), optional
            Image-level labels (else the label column of ``X``).

        Returns
        -------
        self
        """
        localizer, regressor = self._validate()
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("__")]:
            delattr(self, name)
        if self.prefit:
            try:
                check_is_fitted(localizer)
            except NotFittedError as exc:
                raise NotFittedError(
                    "prefit=True but the localizer is not fitted; fit it first or pass "
                    "prefit=False"
                ) from exc
        else:
            localizer = clone(localizer).fit(X, y)
        pseudo = np.asarray(
            localizer.pseudo_boxes(X, y, resolution=int(self.pseudo_resolution)), np.float64
        )
        bad = bt.degenerate_mask(pseudo)
        keep = np.flatnonzero(~bad)
        if keep.size == 0:
            raise ValueError(
                "every pseudo box is degenerate (the localizer's maps have no contour): "
                "nothing to train the regressor on"
            )
        if bad.any():
            warnings.warn(
                f"{int(bad.sum())} of {len(pseudo)} training images have a degenerate pseudo "
                f"box (indices {np.flatnonzero(bad)[:10].tolist()}); they are left out of "
                "the regressor's training",
                UserWarning,
                stacklevel=2,
            )
        X_reg = X if keep.size == len(pseudo) else _subset(X, keep)
        self.regressor_ = clone(regressor).fit(X_reg, pseudo[keep])
        self.localizer_ = localizer
        self.classes_ = localizer.classes_
        self.pseudo_boxes_ = pseudo
        self.n_degenerate_pseudo_boxes_ = int(bad.sum())
        return self

    def predict(self, X: Any):
        """Class from the localizer, box (and box mask) from the regressor.

        Returns
        -------
        skcream.localize.Localization
            ``labels`` / ``scores`` from the localizer's classifier, ``maps`` its CREAM maps
            (original size), ``boxes`` (n, 4) from the regressor in original pixels,
            ``masks`` the filled boxes.
        """
        self._check_fitted()
        loc = self.localizer_.predict(X)
        boxes = self.regressor_.predict(X)
        sizes = np.array([m.shape[::-1] for m in loc.maps], dtype=np.int64)
        return dataclasses.replace(loc, boxes=boxes, masks=box_masks(boxes, sizes))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities of the localizer's classifier, (n, C)."""
        self._check_fitted()
        return self.localizer_.predict_proba(X)

    def score(self, X: Any, y: Any = None) -> float:
        """GT-known localization accuracy (percent) of the regressor's boxes (protocol frame).

        Parameters
        ----------
        X : Dataset (or row dicts) with a bbox column (the regressor's ``bbox_column``)
        y : ignored
            Present for the scikit-learn signature (GT-known needs no class).
        """
        self._check_fitted()
        return self.regressor_.score(X)

    def evaluate(self, X: Any, y: Any = None) -> dict[str, float]:
        """Top-1 Loc, Top-5 Loc, GT-known Loc and top-1 classification accuracy (percent).

        Boxes from the regressor, classes from the localizer's classifier, IoU >= 0.5 in
        the protocol's 224x224 frame (:func:`skcream.metrics.localization_accuracy`).

        Parameters
        ----------
        X : Dataset (or row dicts) with image, label and bbox columns
        y : array-like (n,), optional
            Labels overriding the label column.

        Returns
        -------
        dict
            ``top1_loc``, ``top5_loc``, ``gt_known_loc``, ``top1_acc``.
        """
        from skcream.estimators._localizer_data import as_source, encode_labels, raw_labels
        from skcream.metrics import localization_accuracy

        self._check_fitted()
        loc = self.localizer_
        source, class_label = as_source(X, y, image_column=loc.image_column,
                                        label_column=loc.label_column,
                                        bbox_column=loc.bbox_column)
        values = raw_labels(source, y, class_label)
        if values is None:
            raise ValueError("evaluate needs ground-truth labels: pass y, or a Dataset with a "
                             "label column")
        truth = encode_labels(values, loc.classes_, "y" if y is not None else "labels")
        reg_source = self.regressor_._source(X)
        gt = self.regressor_._gt_protocol(reg_source, None)
        unit, _ = self.regressor_._predict_unit(reg_source)
        logits = loc.decision_function(X)
        k = min(5, logits.shape[1])
        topk = np.argsort(-logits, axis=1, kind="stable")[:, :k]
        acc = localization_accuracy(unit * bt.PROTOCOL_SIZE, gt, topk, truth, iou_threshold=50)
        out = {name: float(acc[name]) for name in ("top1_loc", "top5_loc", "gt_known_loc")}
        out["top1_acc"] = float(np.mean(topk[:, 0] == truth) * 100.0)
        return out

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Write the fitted CREAM_Reg to the directory ``path`` (no pickle).

        Layout: ``localizer/`` and ``regressor/`` (each a saved estimator, see their
        ``save``) and ``cream_reg/`` (this object's parameters and pseudo boxes).
        """
        from pathlib import Path

        from skcream.persistence import write_saved

        self._check_fitted()
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise FileExistsError(f"path {os.fspath(path)!r} exists and is not a directory")
        extra = sorted({p.name for p in path.iterdir()} - {"localizer", "regressor", "cream_reg"}
                       ) if path.is_dir() else []
        if extra:
            raise FileExistsError(f"path {os.fspath(path)!r} holds other files ({extra[:5]}); "
                                  "choose an empty or new directory")
        self.localizer_.save(path / "localizer", overwrite=overwrite)
        self.regressor_.save(path / "regressor", overwrite=overwrite)
        meta = {
            "class": "CREAMReg",
            "params": {"pseudo_resolution": int(self.pseudo_resolution),
                       "prefit": bool(self.prefit)},
            "fitted": {"n_degenerate_pseudo_boxes_": self.n_degenerate_pseudo_boxes_},
        }
        tensors = {"pseudo_boxes": torch.from_numpy(np.ascontiguousarray(self.pseudo_boxes_))}
        write_saved(path / "cream_reg", meta, tensors, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike) -> CREAMReg:
        """Read a CREAM_Reg written by :meth:`save`."""
        from pathlib import Path

        from skcream.estimators.localizer import CREAMLocalizer
        from skcream.persistence import read_saved

        path = Path(path)
        meta, tensors = read_saved(path / "cream_reg")
        if meta.get("class") != "CREAMReg":
            raise ValueError(f"{os.fspath(path)!r} does not hold a saved CREAMReg")
        localizer = CREAMLocalizer.load(path / "localizer")
        regressor = PseudoBoxRegressor.load(path / "regressor")
        est = cls(localizer=localizer, regressor=clone(regressor), **meta["params"])
        est.localizer_ = localizer
        est.regressor_ = regressor
        est.classes_ = localizer.classes_
        est.pseudo_boxes_ = tensors["pseudo_boxes"].numpy().astype(np.float64)
        est.n_degenerate_pseudo_boxes_ = int(meta["fitted"]["n_degenerate_pseudo_boxes_"])
        return est
