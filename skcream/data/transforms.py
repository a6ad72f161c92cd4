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

The frames of PSOL / CREAM_Reg's regressor (Jazzcharles/CREAM ``loader/cub_loader.py``,
``utils/augment.py``), boxes continuous:

- :class:`RandomResizedBoxCrop`: a random crop of 0.2-1 of the image area and aspect ratio
  3/4-4/3 that must overlap the box, resized to ``size x size``, then a random flip
  (training).
- :class:`ResizeCenterCrop`: resize to ``resize x resize`` (aspect not kept), centre crop
  ``crop x crop``; boxes mapped into the crop and clipped to it (evaluation).
- :class:`TenCrop`: resize to ``resize x resize``, the four corner and the centre crops and
  their mirror images (the reference's ten-crop classification).

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
    "RandomResizedBoxCrop",
    "ResizeCenterCrop",
    "ResizedCropParams",
    "TenCrop",
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


def _make_rng(random_state):
    """The random source of a random transform: None (torch's global generator, which the
    DataLoader seeds per worker), a torch.Generator, or a numpy Generator / RandomState
    (an int seeds a new numpy Generator)."""
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


def _randint(rng, high: int) -> int:
    """Uniform integer in [0, high) from a source of :func:`_make_rng`."""
    if rng is None or isinstance(rng, torch.Generator):
        return int(torch.randint(high, (1,), generator=rng).item())
    if isinstance(rng, np.random.RandomState):
        return int(rng.randint(high))
    return int(rng.integers(high))


def _uniform(rng, low: float, high: float) -> float:
    """Uniform float in [low, high) from a source of :func:`_make_rng`."""
    if rng is None or isinstance(rng, torch.Generator):
        u = float(torch.rand((), generator=rng, dtype=torch.float64).item())
    elif isinstance(rng, np.random.RandomState):
        u = float(rng.random_sample())
    else:
        u = float(rng.random())
    return low + (high - low) * u


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

    _make_rng = staticmethod(_make_rng)

    def _randint(self, high: int) -> int:
        """Uniform integer in [0, high)."""
        return _randint(self._rng, high)

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


# --------------------------------------------------------------------------- PSOL / CREAM_Reg
@dataclass(frozen=True)
class ResizedCropParams:
    """The random draws of one :class:`RandomResizedBoxCrop` call.

    The crop is the original-pixel window ``[left, left + width) x [top, top + height)``;
    ``flip`` mirrors the resized crop.
    """

    left: int
    top: int
    width: int
    height: int
    flip: bool


def _overlaps(boxes: np.ndarray, left: float, top: float, width: float, height: float) -> bool:
    """Whether the window overlaps at least one box with positive width and height."""
    ix = np.minimum(boxes[:, 2], left + width) - np.maximum(boxes[:, 0], left)
    iy = np.minimum(boxes[:, 3], top + height) - np.maximum(boxes[:, 1], top)
    return bool(np.any((ix > 0) & (iy > 0)))


class RandomResizedBoxCrop:
    """Training crop of PSOL / CREAM_Reg: a random resized crop that overlaps the box, a flip.

    As ``RandomResizedBBoxCrop`` + ``RandomHorizontalFlipBBox`` of the reference
    (Jazzcharles/CREAM ``utils/augment.py``, from PSOL): up to ``attempts`` draws of an area
    ``U(scale) * W * H`` and an aspect ratio ``exp(U(log ratio))``, the window
    ``w = round(sqrt(area * ratio))``, ``h = round(sqrt(area / ratio))`` placed uniformly
    (every integer corner); the first window that fits in the image and overlaps the box with
    positive width and height is taken. Otherwise the central crop with the aspect ratio
    clamped to ``ratio`` (the whole image when its aspect is inside). The window is resized to
    ``size x size`` (PIL bilinear), mirrored with probability 0.5 when ``flip``.

    Deviation: when the fallback central crop misses the box, the reference returns an
    inverted box (negative width) as the target; here the whole image is used instead, so
    every target is a proper box.

    Parameters
    ----------
    size : int, default=224
    scale : (float, float), default=(0.2, 1.0)
        Range of the window's area as a share of the image's.
    ratio : (float, float), default=(3/4, 4/3)
        Range of the window's aspect ratio (width / height).
    flip : bool, default=True
    mean, std : sequence of 3 floats, default ImageNet
    random_state : None, int, numpy Generator/RandomState or torch.Generator
        As :class:`TrainTransform`.
    attempts : int, default=30

    Call
    ----
    ``transform(image, boxes) -> (tensor (3, size, size) float32, boxes (k, 4) float64)``:
    the boxes in the pixels of the output, ``(x - left) * size / width`` (and y alike),
    clipped to ``[0, size]``, mirrored ``x -> size - x`` with the flip. ``boxes`` is required
    (the crop is drawn around it).
    """

    box_aware = True

    def __init__(
        self,
        size: int = 224,
        scale: tuple[float, float] = (0.2, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip: bool = True,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        random_state=None,
        attempts: int = 30,
    ):
        self.size = _check_size(size, "size")
        self.scale = tuple(float(v) for v in scale)
        self.ratio = tuple(float(v) for v in ratio)
        if len(self.scale) != 2 or not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise ValueError(f"scale must be (low, high) with 0 < low <= high <= 1, got {scale!r}")
        if len(self.ratio) != 2 or not 0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"ratio must be (low, high) with 0 < low <= high, got {ratio!r}")
        self.flip = bool(flip)
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self._mean, self._std = _check_stats(self.mean, self.std)
        self.attempts = _check_size(attempts, "attempts")
        self.random_state = random_state
        self._rng = _make_rng(random_state)

    def sample_params(self, width: int, height: int, boxes: np.ndarray) -> ResizedCropParams:
        """Draw the window (overlapping ``boxes`` (k, 4)) and the flip for a ``width x height``
        image."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        area = width * height
        log_lo, log_hi = np.log(self.ratio[0]), np.log(self.ratio[1])
        for _ in range(self.attempts):
            target = _uniform(self._rng, *self.scale) * area
            aspect = float(np.exp(_uniform(self._rng, log_lo, log_hi)))
            w = int(round(np.sqrt(target * aspect)))
            h = int(round(np.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                top = _randint(self._rng, height - h + 1)
                left = _randint(self._rng, width - w + 1)
                if _overlaps(boxes, left, top, w, h):
                    return self._with_flip(left, top, w, h)
        # the reference's fallback: the central crop, aspect ratio clamped
        aspect = width / height
        w, h = width, height
        if aspect < self.ratio[0]:
            h = int(round(width / self.ratio[0]))
        elif aspect > self.ratio[1]:
            w = int(round(height * self.ratio[1]))
        left, top = (width - w) // 2, (height - h) // 2
        if not _overlaps(boxes, left, top, w, h):  # deviation, see the class docstring
            left, top, w, h = 0, 0, width, height
        return self._with_flip(left, top, w, h)

    def _with_flip(self, left: int, top: int, w: int, h: int) -> ResizedCropParams:
        flip = bool(_randint(self._rng, 2)) if self.flip else False
        return ResizedCropParams(left=left, top=top, width=w, height=h, flip=flip)

    def transform_boxes(self, boxes: np.ndarray, params: ResizedCropParams) -> np.ndarray:
        """Map original-pixel boxes (k, 4) into the output: crop, scale, clip, flip."""
        out = np.array(boxes, dtype=np.float64, copy=True).reshape(-1, 4)
        out[:, 0::2] = (out[:, 0::2] - params.left) * (self.size / params.width)
        out[:, 1::2] = (out[:, 1::2] - params.top) * (self.size / params.height)
        np.clip(out, 0.0, float(self.size), out=out)
        if params.flip:
            out[:, [0, 2]] = self.size - out[:, [2, 0]]
        return out

    def apply(self, image, boxes, params: ResizedCropParams):
        """Deterministic part of the call, for given :class:`ResizedCropParams`."""
        img = _as_pil(image)
        arr = _as_boxes(boxes)
        window = (params.left, params.top, params.left + params.width, params.top + params.height)
        img = img.crop(window).resize((self.size, self.size), Image.BILINEAR)
        if params.flip:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        x = to_tensor(img, self._mean, self._std)
        return x, (None if arr is None else self.transform_boxes(arr, params))

    def __call__(self, image, boxes=None):
        arr = _as_boxes(boxes)
        if arr is None or len(arr) == 0:
            raise ValueError("RandomResizedBoxCrop needs the image's box: the crop must "
                             "overlap it")
        img = _as_pil(image)
        return self.apply(img, arr, self.sample_params(img.size[0], img.size[1], arr))

    def __repr__(self) -> str:
        return (
            f"RandomResizedBoxCrop(size={self.size}, scale={self.scale}, ratio={self.ratio}, "
            f"flip={self.flip}, mean={self.mean}, std={self.std})"
        )


class ResizeCenterCrop:
    """Evaluation frame of PSOL / CREAM_Reg: resize to ``resize x resize``, centre crop ``crop``.

    As the reference's ``Resize((256, 256))`` + ``CenterCrop(224)`` with ``ResizedBBoxCrop`` /
    ``CenterBBoxCrop`` for the boxes: the aspect ratio is not kept; the crop starts at
    ``offset = round((resize - crop) / 2)`` (16 for 256 / 224); a point ``x`` of a ``W``-wide
    image lands on ``x * resize / W - offset``; boxes are clipped to the crop.

    Parameters
    ----------
    resize : int, default=256
    crop : int, default=224
        Must not exceed ``resize``.
    mean, std : sequence of 3 floats, default ImageNet

    Call
    ----
    ``transform(image, boxes=None) -> (tensor (3, crop, crop) float32, boxes (k, 4) float64)``
    """

    box_aware = True

    def __init__(
        self,
        resize: int = 256,
        crop: int = 224,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ):
        self.resize = _check_size(resize, "resize")
        self.crop = _check_size(crop, "crop")
        if self.crop > self.resize:
            raise ValueError(f"crop ({crop}) must not exceed resize ({resize})")
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self._mean, self._std = _check_stats(self.mean, self.std)
        # torchvision's center_crop: int(round((256 - 224) / 2.0))
        self.offset = int(round((self.resize - self.crop) / 2.0))

    def transform_boxes(self, boxes: np.ndarray, width: int, height: int) -> np.ndarray:
        """Original-pixel boxes (k, 4) -> crop pixels, clipped to ``[0, crop]``."""
        out = np.array(boxes, dtype=np.float64, copy=True).reshape(-1, 4)
        out[:, 0::2] = out[:, 0::2] * (self.resize / width) - self.offset
        out[:, 1::2] = out[:, 1::2] * (self.resize / height) - self.offset
        return np.clip(out, 0.0, float(self.crop))

    def to_original(self, boxes: np.ndarray, width: int, height: int) -> np.ndarray:
        """Crop-pixel boxes (k, 4) -> original pixels, clipped to the image.

        The inverse of :meth:`transform_boxes` for boxes inside the crop; parts outside the
        image are cut off.
        """
        out = np.array(boxes, dtype=np.float64, copy=True).reshape(-1, 4)
        out[:, 0::2] = (out[:, 0::2] + self.offset) * (width / self.resize)
        out[:, 1::2] = (out[:, 1::2] + self.offset) * (height / self.resize)
        out[:, 0::2] = np.clip(out[:, 0::2], 0.0, float(width))
        out[:, 1::2] = np.clip(out[:, 1::2], 0.0, float(height))
        return out

    def __call__(self, image, boxes=None):
        img = _as_pil(image)
        arr = _as_boxes(boxes)
        w, h = img.size
        img = img.resize((self.resize, self.resize), Image.BILINEAR)
        o = self.offset
        img = img.crop((o, o, o + self.crop, o + self.crop))
        x = to_tensor(img, self._mean, self._std)
        return x, (None if arr is None else self.transform_boxes(arr, w, h))

    def __repr__(self) -> str:
        return (f"ResizeCenterCrop(resize={self.resize}, crop={self.crop}, mean={self.mean}, "
                f"std={self.std})")


class TenCrop:
    """Resize to ``resize x resize``; the four corner crops, the centre crop, and the same five
    of the mirrored image (torchvision's ``Resize((r, r))`` + ``TenCrop(c)``, the reference's
    ten-crop classification).

    Call
    ----
    ``transform(image) -> tensor (10, 3, crop, crop) float32``, in torchvision's order:
    top-left, top-right, bottom-left, bottom-right, centre, then the mirrored five.
    """

    def __init__(
        self,
        resize: int = 256,
        crop: int = 224,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ):
        self._center = ResizeCenterCrop(resize, crop, mean, std)
        self.resize, self.crop = self._center.resize, self._center.crop

    def __call__(self, image) -> torch.Tensor:
        img = _as_pil(image).resize((self.resize, self.resize), Image.BILINEAR)
        r, c, o = self.resize, self.crop, self._center.offset
        corners = [(0, 0), (r - c, 0), (0, r - c), (r - c, r - c), (o, o)]
        out = []
        for view in (img, img.transpose(Image.FLIP_LEFT_RIGHT)):
            for left, top in corners:
                crop = view.crop((left, top, left + c, top + c))
                out.append(to_tensor(crop, self._center._mean, self._center._std))
        return torch.stack(out)

    def __repr__(self) -> str:
        return f"TenCrop(resize={self.resize}, crop={self.crop})"
