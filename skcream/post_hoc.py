"""Post-hoc localization with a pretrained ImageNet classifier: no training at all.

What ``skcream localize --post-hoc`` runs, as a library function. The class and its
probability come from the unmodified timm classifier (its real ImageNet output); the map
comes from the WSOL feature map (higher resolution, same head): a class map of the
chosen source (:mod:`skcream.map_sources`: CAM by default, or Grad-CAM, Grad-CAM++,
XGrad-CAM, LayerCAM, Score-CAM, EigenCAM of the network "WSOL features + the classifier's
head"), re-activated by :func:`skcream.reactivation.reactivate_map` (each image's own
map-thresholded means start the EM; beyond the paper).

The defaults (:data:`POST_HOC_DEFAULTS`) were chosen by measurement on real photos with
hand-drawn boxes (``benchmarks/bench_post_hoc_defaults.py``, ``docs/post_hoc.md``): with
them the box of the map fits the object better than CAM's box at its usual threshold 0.2,
and no box swallows the whole frame around a small object.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from skcream.threads import with_thread_rule

__all__ = ["POST_HOC_DEFAULTS", "PostHocClassifier", "PostHocResult", "boxes_at_original_size",
           "imagenet_names", "post_hoc_maps", "post_hoc_predict"]

#: Read-out of the post-hoc map and its box threshold, chosen on real photos (see the module
#: docstring): ``output`` (which map), ``kernel``, ``sigma``, ``n_iter``, ``fg_threshold``
#: of the EM, and ``threshold``, the box threshold on the min-max normalised map.
#: Measured (``benchmarks/bench_post_hoc_defaults.py``, 10 photos, 4579 candidates): the
#: paper's sigma=8 makes the dot-kernel posteriors of 1280-channel ImageNet features hard,
#: whole background regions flip to foreground and the box at 0.2 covers the frame (mean
#: IoU 0.547, boxes of 97-100 % of the image); sigma=512 with one EM step gives 0.608, CAM
#: at 0.2 gives 0.604 (a tie within the noise of ten photos: leave-one-photo-out 0.594).
POST_HOC_DEFAULTS: dict[str, Any] = dict(
    output="final", kernel="dot", sigma=512.0, n_iter=1, fg_threshold=0.2, threshold=0.2,
)

_MAP_KEYS = ("output", "kernel", "sigma", "n_iter", "fg_threshold")


@dataclass
class PostHocResult:
    """Network outputs of :func:`post_hoc_predict`.

    Attributes
    ----------
    features : ndarray (n, d, h, w) float32
        WSOL feature maps.
    weight : ndarray (C, d)
        The classifier's head.
    bias : ndarray (C,) or None
    labels : ndarray (n,) int
        Top-1 class of the unmodified classifier.
    scores : ndarray (n,) float
        Its probability.
    class_names : list of str
    maps : ndarray (n, h', w') float32 or None
        Raw class maps of the labels from the source ``cam`` (``ClassMaps.maps``); None
        means CAM, computed from ``features`` and ``weight`` when needed.
    cam : str
        The map source of ``maps`` (:data:`skcream.map_sources.MAP_SOURCES`).
    """

    features: np.ndarray
    weight: np.ndarray
    bias: np.ndarray | None
    labels: np.ndarray
    scores: np.ndarray
    class_names: list[str]
    maps: np.ndarray | None = None
    cam: str = "cam"


class PostHocClassifier:
    """A pretrained timm classifier and its WSOL feature extractor, built once.

    Parameters
    ----------
    backbone : str, default="efficientnet_lite0"
        A timm model with a linear ImageNet head.
    pretrained : bool or path, default=True
        As in :func:`skcream.backbones.build_backbone` (offline for
        ``efficientnet_lite0``).
    device : str or None, default=None
    batch_size : int, default=32
    """

    def __init__(self, backbone: str = "efficientnet_lite0", pretrained: Any = True, *,
                 device: str | None = None, batch_size: int = 32) -> None:
        from skcream.backbones import build_classifier
        from skcream.data.transforms import EvalTransform
        from skcream.estimators.features import TimmFeatures

        classifier = build_classifier(backbone, pretrained)
        head = classifier.get_classifier()
        if not hasattr(head, "weight") or head.weight.ndim != 2:
            raise ValueError(f"post-hoc localization needs a linear classifier head; "
                             f"{backbone!r} has {head}")
        self.weight = head.weight.detach().cpu().numpy()
        self.bias = None if head.bias is None else head.bias.detach().cpu().numpy()
        self.features = TimmFeatures(backbone, pretrained=pretrained, device=device,
                                     batch_size=batch_size, verbose=0).fit()
        cfg = self.features.data_config_
        self.transform = EvalTransform(size=self.features.image_size_, mean=cfg["mean"],
                                       std=cfg["std"])
        self.classifier = classifier.to(self.features._device())
        self.batch_size = batch_size
        self.class_names = imagenet_names(len(self.weight))
        self._net = None

    @property
    def net(self):
        """The map sources' network: the WSOL feature extractor + the classifier's head.

        A :class:`skcream.map_sources.ClassifierNet`; layer names are those of the timm
        model inside the feature extractor (e.g. ``"blocks.5"``). A token model (ViT,
        Swin, ...) has no WSOL modification and its head may read tokens the patch grid
        lacks (the class token): the network is then the classifier itself, its tokens
        reshaped to the grid the feature extractor gives (:mod:`skcream.token_models`).
        """
        if self._net is None:
            from skcream.map_sources import ClassifierNet

            backbone = self.features._network()
            if getattr(backbone.body, "layout", None) is not None:  # a TokenGrid
                self._net = ClassifierNet.from_timm(self.classifier)
            else:
                self._net = ClassifierNet.from_timm(
                    self.classifier, features=backbone,
                    layers=getattr(backbone.body, "model", backbone))
        return self._net

    @with_thread_rule
    def predict(self, images: Sequence[Any], *, cam: str = "cam",
                layer: str | None = None) -> PostHocResult:
        """Top-1 class, its probability, the WSOL feature maps and the class maps of images.

        Parameters
        ----------
        images : sequence of RGB PIL images
        cam : str, default="cam"
            The map source (:data:`skcream.map_sources.MAP_SOURCES`).
        layer : str or None, default=None
            The layer a gradient CAM reads (a module name of the timm model); None is the
            last feature layer (a ViT's last ``blocks.N.norm1``, see
            :func:`skcream.token_models.default_cam_layer`).

        Returns
        -------
        PostHocResult
        """
        import torch

        from skcream.map_sources import check_map_source, class_maps

        cam = check_map_source(cam)
        n = len(images)
        probs, feats, maps = [], [], []
        device = self.features._device()
        for start in range(0, n, self.batch_size):
            chunk = list(images[start:start + self.batch_size])
            batch = torch.stack([self.transform(im, np.zeros((0, 4)))[0] for im in chunk])
            batch = batch.to(device)
            with torch.no_grad():
                logits = self.classifier(batch)
            prob = logits.softmax(1)
            probs.append(prob.cpu().numpy())
            out = class_maps(self.net, batch, prob.argmax(1), cam=cam, layer=layer)
            feats.append(out.features.float().cpu().numpy())
            maps.append(out.maps.float().cpu().numpy())
        prob = np.concatenate(probs)
        labels = prob.argmax(1)
        return PostHocResult(
            features=np.concatenate(feats), weight=self.weight, bias=self.bias, labels=labels,
            scores=prob[np.arange(n), labels], class_names=self.class_names,
            maps=np.concatenate(maps), cam=cam,
        )


def post_hoc_predict(
    images: Sequence[Any],
    *,
    backbone: str = "efficientnet_lite0",
    pretrained: Any = True,
    device: str | None = None,
    batch_size: int = 32,
    cam: str = "cam",
    layer: str | None = None,
) -> PostHocResult:
    """``PostHocClassifier(backbone, pretrained, ...).predict(images, cam=cam, layer=layer)``.

    Parameters
    ----------
    images : sequence of PIL images (RGB)
    backbone, pretrained, device, batch_size
        See :class:`PostHocClassifier`.
    cam, layer
        See :meth:`PostHocClassifier.predict`.

    Returns
    -------
    PostHocResult
    """
    return PostHocClassifier(backbone, pretrained, device=device,
                             batch_size=batch_size).predict(images, cam=cam, layer=layer)


def post_hoc_maps(result: PostHocResult, **settings: Any) -> np.ndarray:
    """Post-hoc maps (n, h, w) in [0, 1] of the top-1 classes, re-activated from ``result.maps``.

    Parameters
    ----------
    result : PostHocResult
    **settings
        ``output``, ``kernel``, ``sigma``, ``n_iter``, ``fg_threshold`` overriding
        :data:`POST_HOC_DEFAULTS` (``threshold`` is accepted and ignored: it is the box
        threshold, applied to the upsampled map). ``output="cam"`` (or ``n_iter=0``) is
        the source map itself, not re-activated (on its own grid).

    Returns
    -------
    ndarray (n, h, w) float32
    """
    import torch

    from skcream.cam import normalize_maps
    from skcream.map_sources import maps_from_features
    from skcream.reactivation import reactivate_map

    unknown = set(settings) - set(POST_HOC_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown post-hoc settings {sorted(unknown)}; "
                         f"choose from {sorted(POST_HOC_DEFAULTS)}")
    params = {k: v for k, v in {**POST_HOC_DEFAULTS, **settings}.items() if k in _MAP_KEYS}
    features = torch.from_numpy(np.ascontiguousarray(result.features, dtype=np.float32))
    if result.maps is not None:
        maps = torch.from_numpy(np.ascontiguousarray(result.maps, dtype=np.float32))
    else:
        maps = maps_from_features(features, torch.from_numpy(np.asarray(result.weight,
                                                                          dtype=np.float32)),
                                  torch.from_numpy(np.asarray(result.labels)), "cam")
    return normalize_maps(reactivate_map(features, maps, **params)).numpy()


def imagenet_names(n: int) -> list[str]:
    """Class descriptions of a 1000-class ImageNet head (indices as strings otherwise)."""
    if n == 1000:
        try:
            from timm.data import ImageNetInfo

            info = ImageNetInfo()
            return [info.index_to_description(i) for i in range(n)]
        except Exception:  # older timm without the class table: indices still work
            pass
    return [str(i) for i in range(n)]


def boxes_at_original_size(maps: np.ndarray, sizes: Sequence[tuple[int, int]],
                           threshold: float) -> tuple[np.ndarray, list[np.ndarray]]:
    """Boxes of maps upsampled to their images, as ``skcream localize`` draws them.

    Parameters
    ----------
    maps : ndarray (n, h, w)
    sizes : sequence of n (W, H)
    threshold : float in [0, 1)
        Box threshold on the min-max normalised upsampled map (largest contour).

    Returns
    -------
    boxes : ndarray (n, 4) float64, x0, y0, x1, y1 in each image's pixels
    full : list of n ndarrays (H, W) float64 in [0, 1], the upsampled maps
    """
    import torch

    from skcream.estimators.localizer._inference import maps_at_original_size
    from skcream.localize import maps_to_localization

    full = maps_at_original_size(torch.as_tensor(np.asarray(maps)), list(sizes))
    loc = maps_to_localization(full, threshold, np.zeros(len(full), dtype=int))
    return np.asarray(loc.boxes, dtype=np.float64), full
