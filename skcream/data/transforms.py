"""Box-aware image transforms of the WSOL recipe.

Both transforms are callables ``(PIL image, boxes (k, 4) ndarray or None) -> (tensor (3, S, S),
boxes (k, 4) ndarray or None)``; boxes are x0, y0, x1, y1.

- :class:`TrainTransform`: resize to ``resize x resize``, random crop ``crop x crop``, random
  horizontal flip, normalise (paper, section 4.1). Boxes follow in continuous pixel coordinates
  (a point ``x`` of the original image lands on ``x * resize / W - left``; a flip maps ``x`` to
  ``crop - x``) and are clipped to ``[0, crop]``. A box that leaves the crop entirely becomes a
  zero-area box on the border; boxes are never dropped, so ``k`` is preserved.
- :class:`EvalTransform`: resize the whole image to ``size x size`` without cropping,
  normalise; boxes are scaled as the protocol does, ``int(x * size / W)`` and
  ``int(y * size / H)`` per coordinate (truncation).

Resizing is PIL bilinear, as torchvision's ``Resize`` on PIL images in the reference code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from skcream._checks import as_int

from .decode import decode_image

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CropParams",
    "EvalTransform",
    "TrainTransform",
    "resize_mask",
    "to_tensor",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _check_stats(mean: Sequence[float], std: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    m = torch.as_tensor(np.asarray(mean, dtype=np.float32))
    s = torch.as_tensor(np.asarray(std, dtype=np.float32))
    if m.shape != (3,) or s.shape != (3,):
        raise ValueError(f"mean and std must have 3 values each, got {tuple(m.shape)} and {tuple(s.shape)}")
    if not bool(torch.all(s > 0)):
        raise ValueError(f"std must be positive, got {s.tolist()}")
    return m.view(3, 1, 1), s.view(3, 1, 1)


def _check_size(value: object, name: str) -> int:
    return as_int(value, name, low=1)


def _as_pil(image: object) -> Image.Image:
    """RGB as shown (the one decoder: EXIF orientation applied, any mode)."""
    if not isinstance(image, (Image.Image, np.ndarray)):
        raise TypeError(
            f"image must be a PIL.Image.Image or uint8 ndarray, got {type(image).__name__}")
    return decode_image(image)


def _as_boxes(boxes: object) -> np.ndarray | None:
    if boxes is None:
        return None
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 4), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"boxes must have shape (k, 4) as x0,y0,x1,y1, got {arr.shape}")
    return arr


def to_tensor(image: Image.Image, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """RGB PIL image -> normalised float32 tensor of shape (3, H, W).

    Computed in numpy (one thread): torch's intra-op thread pool makes these small per-image
    operations 10-100x slower when the CPU is oversubscribed (DataLoader workers, shared
    machines). ``(x / 255 - mean) / std`` is folded into one multiply-add per channel.
    """
    arr = np.asarray(image, dtype=np.uint8)
    m = mean.numpy().reshape(3).astype(np.float32)
    s = std.numpy().reshape(3).astype(np.float32)
    scale = (1.0 / (255.0 * s)).astype(np.float32)
    shift = (-m / s).astype(np.float32)
    out = np.empty((3, arr.shape[0], arr.shape[1]), dtype=np.float32)
    for c in range(3):
        np.multiply(arr[:, :, c], scale[c], out=out[c], dtype=np.float32)
        out[c] += shift[c]
    return torch.from_numpy(out)


def resize_mask(mask: object, size: int | tuple[int, int] = 224) -> np.ndarray:
    """Nearest-neighbour resize of a 0/1/255 mask, as the protocol (``cv2.INTER_NEAREST``).

    Parameters
    ----------
    mask : PIL image or ndarray of shape (H, W)
    size : int or (W, H)

    Returns
    -------
    ndarray of shape (S_h, S_w), uint8
    """
    import cv2

    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {arr.shape}")
    w, h = (size, size) if isinstance(size, (int, np.integer)) else size
    return cv2.resize(arr.astype(np.uint8), (int(w), int(h)), interpolation=cv2.INTER_NEAREST)


class EvalTransform:
    """Resize the whole image to ``size x size`` (no crop), normalise; protocol box scaling.

    Parameters
    ----------
    size : int, default=224
    mean, std : sequence of 3 floats, default ImageNet
        Normalisation, e.g. from a timm ``pretrained_cfg`` (see :meth:`from_data_config`).

    Call
    ----
    ``transform(image, boxes=None) -> (tensor (3, size, size) float32, boxes (k, 4) float64)``;
    boxes are ``trunc(x * size / W)``, ``trunc(y * size / H)`` (integral floats); ``None`` stays
    ``None``.
    """

    box_aware = True

    def __init__(
        self,
        size: int = 224,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ):
        self.size = _check_size(size, "size")
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self._mean, self._std = _check_stats(self.mean, self.std)

    @classmethod
    def from_data_config(cls, data_config: Mapping, size: int | None = None) -> EvalTransform:
        """Build from a timm data config (``mean``, ``std``, ``input_size`` (3, H, W))."""
        if size is None:
            size = int(data_config.get("input_size", (3, 224, 224))[-1])
        return cls(size=size, mean=data_config["mean"], std=data_config["std"])

    def scale_boxes(self, boxes: np.ndarray, width: int, height: int) -> np.ndarray:
        """Protocol scaling: ``int(x * size / W)``, ``int(y * size / H)`` per coordinate."""
        out = np.array(boxes, dtype=np.float64, copy=True).reshape(-1, 4)
        out[:, 0::2] = np.trunc(out[:, 0::2] * self.size / width)
        out[:, 1::2] = np.trunc(out[:, 1::2] * self.size / height)
        return out

    def __call__(self, image, boxes=None):
        img = _as_pil(image)
        arr = _as_boxes(boxes)
        w, h = img.size
        x = to_tensor(img.resize((self.size, self.size), Image.BILINEAR), self._mean, self._std)
        return x, (None if arr is None else self.scale_boxes(arr, w, h))

    def __repr__(self) -> str:
        return f"EvalTransform(size={self.size}, mean={self.mean}, std={self.std})"


@dataclass(frozen=True)
class CropParams:
    """The random draws of one :class:`TrainTransform` call: crop corner and flip."""

    left: int
    top: int
    flip: bool


class TrainTransform:
    """Resize to ``resize x resize``, random ``crop x crop`` crop, random horizontal flip.

    Parameters
    ----------
    resize : int, default=256
    crop : int, default=224
        Must not exceed ``resize``.
    flip : bool, default=True
        Flip horizontally with probability 0.5.
    mean, std : sequence of 3 floats, default ImageNet
    random_state : None, int, numpy Generator/RandomState or torch.Generator
        None draws from torch's global generator (which DataLoader seeds per worker); an int
        or a generator makes the sequence of draws reproducible.

    Call
    ----
    ``transform(image, boxes=None) -> (tensor (3, crop, crop) float32, boxes (k, 4) float64)``
    """

    box_aware = True

    def __init__(
        self,
        resize: int = 256,
        crop: int = 224,
        flip: bool = True,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        random_state=None,
    ):
        self.resize = _check_size(resize, "resize")
        self.crop = _check_size(crop, "crop")
        if self.crop > self.resize:
            raise ValueError(f"crop ({crop}) must not exceed resize ({resize})")
        self.flip = bool(flip)
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self._mean, self._std = _check_stats(self.mean, self.std)
        self.random_state = random_state
        self._rng = self._make_rng(random_state)

    @classmethod
    def from_data_config(
        cls, data_config: Mapping, resize: int = 256, crop: int | None = None, **kwargs
    ) -> TrainTransform:
        """Build from a timm data config (``mean``, ``std``, ``input_size`` (3, H, W))."""
        if crop is None:
            crop = int(data_config.get("input_size", (3, 224, 224))[-1])
        return cls(resize=resize, crop=crop, mean=data_config["mean"], std=data_config["std"], **kwargs)

    @staticmethod
    def _make_rng(random_state):
        if random_state is None or isinstance(random_state, torch.Generator):
            return random_state
        if isinstance(random_state, (np.random.Generator, np.random.RandomState)):
            return random_state
        if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
            return np.random.default_rng(int(random_state))
        raise TypeError(
            "random_state must be None, an int, a numpy Generator/RandomState or a "
            f"torch.Generator, got {type(random_state).__name__}"
        )

    def _randint(self, high: int) -> int:
        """Uniform integer in [0, high)."""
        rng = self._rng
        if rng is None or isinstance(rng, torch.Generator):
            return int(torch.randint(high, (1,), generator=rng).item())
        if isinstance(rng, np.random.RandomState):
            return int(rng.randint(high))
        return int(rng.integers(high))

    def sample_params(self) -> CropParams:
        """Draw the crop corner (uniform over all ``resize - crop + 1`` positions) and the flip."""
        span = self.resize - self.crop + 1
        left = self._randint(span)
        top = self._randint(span)
        flip = bool(self._randint(2)) if self.flip else False
        return CropParams(left=left, top=top, flip=flip)

    def transform_boxes(self, boxes: np.ndarray, width: int, height: int, params: CropParams) -> np.ndarray:
        """Map original-pixel boxes (k, 4) through resize, crop, flip; clip to ``[0, crop]``."""
        out = np.array(boxes, dtype=np.float64, copy=True).reshape(-1, 4)
        out[:, 0::2] = out[:, 0::2] * (self.resize / width) - params.left
        out[:, 1::2] = out[:, 1::2] * (self.resize / height) - params.top
        np.clip(out, 0.0, float(self.crop), out=out)
        if params.flip:
            out[:, [0, 2]] = self.crop - out[:, [2, 0]]
        return out

    def apply(self, image, boxes, params: CropParams):
        """Deterministic part of the call, for given :class:`CropParams`."""
        img = _as_pil(image)
        arr = _as_boxes(boxes)
        w, h = img.size
        img = img.resize((self.resize, self.resize), Image.BILINEAR)
        img = img.crop((params.left, params.top, params.left + self.crop, params.top + self.crop))
        if params.flip:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        x = to_tensor(img, self._mean, self._std)
        return x, (None if arr is None else self.transform_boxes(arr, w, h, params))

    def __call__(self, image, boxes=None):
        return self.apply(image, boxes, self.sample_params())

    def __repr__(self) -> str:
        return (
            f"TrainTransform(resize={self.resize}, crop={self.crop}, flip={self.flip}, "
            f"mean={self.mean}, std={self.std})"
        )
