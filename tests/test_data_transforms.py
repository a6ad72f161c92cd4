"""Box-aware transforms: normalisation, protocol box scaling, boxes follow crops and flips."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from skcream.data.schema import to_rgb
from skcream.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CropParams,
    EvalTransform,
    RandomResizedBoxCrop,
    ResizeCenterCrop,
    ResizedCropParams,
    TenCrop,
    TrainTransform,
    resize_mask,
)


def _solid(w, h, color, mode="RGB"):
    return Image.new(mode, (w, h), color)


def test_eval_normalisation_hand_computed():
    t = EvalTransform(size=32)
    x, boxes = t(_solid(50, 20, (255, 0, 51)))
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert boxes is None
    expected = [(1.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0], (0.0 - IMAGENET_MEAN[1]) / IMAGENET_STD[1],
                (0.2 - IMAGENET_MEAN[2]) / IMAGENET_STD[2]]
    for c in range(3):
        assert torch.allclose(x[c], torch.full((32, 32), expected[c]), atol=1e-5)


def test_eval_boxes_protocol_truncation_real_ilsvrc_box():
    # ILSVRC val2/0/0.jpeg: 500x375, box 156,163,318,230 (the real metadata line)
    t = EvalTransform(224)
    _, b = t(_solid(500, 375, 0), np.array([[156, 163, 318, 230]]))
    assert b.tolist() == [[int(156 * 224 / 500), int(163 * 224 / 375), int(318 * 224 / 500),
                           int(230 * 224 / 375)]]
    assert b.tolist() == [[69, 97, 142, 137]]


@settings(max_examples=60, deadline=None)
@given(
    w=st.integers(1, 2000), h=st.integers(1, 2000), size=st.integers(8, 448),
    fx=st.lists(st.floats(0, 1), min_size=4, max_size=4),
)
def test_eval_boxes_match_plain_python(w, h, size, fx):
    x0, x1 = sorted((fx[0] * w, fx[1] * w))
    y0, y1 = sorted((fx[2] * h, fx[3] * h))
    t = EvalTransform(size)
    out = t.scale_boxes(np.array([[x0, y0, x1, y1]]), w, h)
    ref = [int(x0 * size / w), int(y0 * size / h), int(x1 * size / w), int(y1 * size / h)]
    assert out[0].tolist() == ref


def _rect_image(size, box, fill=255):
    arr = np.zeros((size[1], size[0], 3), np.uint8)
    x0, y0, x1, y1 = box
    arr[y0:y1, x0:x1] = fill
    return Image.fromarray(arr)


def _white_extent(x):
    """Continuous extent [x0, y0, x1, y1) of pixels brighter than half in channel 0."""
    on = (x[0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]) > 0.5
    ys, xs = np.nonzero(on.numpy())
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("left,top", [(0, 0), (32, 0), (7, 19), (32, 32)])
def test_train_boxes_follow_crop_and_flip_exactly(left, top, flip):
    # a 128x128 image resized x2 to 256: a step edge at even x lands exactly at 2x (bilinear)
    box = (30, 40, 90, 100)
    img = _rect_image((128, 128), box)
    t = TrainTransform(resize=256, crop=224)
    x, out = t.apply(img, np.array([box], float), CropParams(left, top, flip))
    assert x.shape == (3, 224, 224)
    ex = _white_extent(x)
    assert out[0].tolist() == pytest.approx(ex)
    # hand computation
    x0, y0, x1, y1 = 2 * 30 - left, 2 * 40 - top, 2 * 90 - left, 2 * 100 - top
    if flip:
        x0, x1 = 224 - x1, 224 - x0
    assert out[0].tolist() == [x0, y0, x1, y1]


def test_train_boxes_non_square_scaling_and_clipping():
    t = TrainTransform(resize=256, crop=224)
    boxes = np.array([[0, 0, 400, 300], [390, 290, 400, 300], [10, 10, 20, 20]], float)
    out = t.transform_boxes(boxes, 400, 300, CropParams(20, 10, False))
    sx, sy = 256 / 400, 256 / 300
    np.testing.assert_allclose(out[0], [0, 0, 224, 224])
    np.testing.assert_allclose(out[1], [min(390 * sx - 20, 224), min(290 * sy - 10, 224), 224, 224])
    # the third box starts left of and above the crop: 10*sx - 20 < 0, 20*sx - 20 < 0 and
    # 10*sy - 10 < 0 clip to 0; 20*sy - 10 > 0 stays
    np.testing.assert_allclose(out[2], [0, 0, 0, 20 * sy - 10])
    assert out.shape == (3, 4)  # never dropped
    out_f = t.transform_boxes(boxes, 400, 300, CropParams(20, 10, True))
    np.testing.assert_allclose(out_f[:, [0, 2]], 224 - out[:, [2, 0]])
    np.testing.assert_allclose(out_f[:, [1, 3]], out[:, [1, 3]])


def test_train_random_params_reproducible_and_cover_all_positions():
    a = TrainTransform(resize=10, crop=8, random_state=3)
    b = TrainTransform(resize=10, crop=8, random_state=3)
    pa = [a.sample_params() for _ in range(200)]
    pb = [b.sample_params() for _ in range(200)]
    assert pa == pb
    assert {p.left for p in pa} == {0, 1, 2} and {p.top for p in pa} == {0, 1, 2}
    assert {p.flip for p in pa} == {False, True}
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    img = _rect_image((40, 30), (3, 4, 20, 25))
    x1, b1 = TrainTransform(32, 24, random_state=g1)(img, np.array([[3, 4, 20, 25]]))
    x2, b2 = TrainTransform(32, 24, random_state=g2)(img, np.array([[3, 4, 20, 25]]))
    assert torch.equal(x1, x2) and np.array_equal(b1, b2)
    rs = np.random.RandomState(0)
    assert TrainTransform(10, 8, random_state=rs).sample_params() == TrainTransform(
        10, 8, random_state=np.random.RandomState(0)).sample_params()
    assert all(not p.flip for p in (TrainTransform(10, 8, flip=False, random_state=1).sample_params()
                                    for _ in range(20)))


def test_transform_bad_arguments():
    with pytest.raises(ValueError, match="crop"):
        TrainTransform(resize=100, crop=224)
    with pytest.raises(ValueError, match="size"):
        EvalTransform(size=0)
    with pytest.raises(ValueError, match="std"):
        EvalTransform(std=(1, 0, 1))
    with pytest.raises(ValueError, match=r"\(k, 4\)"):
        EvalTransform(8)(_solid(4, 4, 0), np.zeros((2, 3)))
    with pytest.raises(TypeError, match="random_state"):
        TrainTransform(random_state="seed")
    with pytest.raises(TypeError, match="image"):
        EvalTransform(8)("not an image")


def test_from_data_config_uses_timm_stats():
    cfg = {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25), "input_size": (3, 240, 240)}
    t = EvalTransform.from_data_config(cfg)
    assert t.size == 240 and t.mean == (0.5, 0.5, 0.5)
    x, _ = t(_solid(10, 10, (255, 255, 255)))
    assert torch.allclose(x, torch.full_like(x, 2.0))
    tt = TrainTransform.from_data_config(cfg, resize=256)
    assert tt.crop == 240 and tt.std == (0.25, 0.25, 0.25)


@pytest.mark.parametrize(
    "mode,color,rgb",
    [
        ("L", 77, (77, 77, 77)),
        ("1", 1, (255, 255, 255)),
        ("RGBA", (10, 20, 30, 0), (10, 20, 30)),
        ("LA", (90, 5), (90, 90, 90)),
        ("CMYK", (0, 0, 0, 0), (255, 255, 255)),
        ("CMYK", (0, 0, 0, 255), (0, 0, 0)),
        ("I;16", 65535, (255, 255, 255)),
        ("F", 0.5, (128, 128, 128)),
    ],
)
def test_modes_become_rgb(mode, color, rgb):
    img = Image.new(mode, (3, 2), color)
    out = to_rgb(img)
    assert out.mode == "RGB" and out.size == (3, 2)
    assert np.asarray(out)[0, 0].tolist() == list(rgb)
    x, _ = EvalTransform(4, mean=(0, 0, 0), std=(1, 1, 1))(img)
    np.testing.assert_allclose(x[:, 0, 0].numpy(), np.array(rgb) / 255.0, atol=1e-6)


def test_palette_with_transparency_to_rgb():
    img = Image.new("P", (2, 2), 1)
    img.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    img.info["transparency"] = 0
    assert np.asarray(to_rgb(img))[1, 1].tolist() == [200, 100, 50]


def test_resize_mask_nearest_keeps_values():
    m = np.zeros((3, 4), np.uint8)
    m[0, 0], m[2, 3] = 1, 255
    out = resize_mask(m, 8)
    assert out.shape == (8, 8) and set(np.unique(out)) == {0, 1, 255}
    assert out[0, 0] == 1 and out[-1, -1] == 255


def test_to_tensor_matches_plain_formula():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, size=(13, 7, 3), dtype=np.uint8)
    mean, std = (0.1, 0.5, 0.9), (0.2, 0.3, 0.4)
    x, _ = EvalTransform(size=7, mean=mean, std=std)(Image.fromarray(arr).resize((7, 7)))
    ref = (torch.from_numpy(np.asarray(Image.fromarray(arr).resize((7, 7)), np.float64))
           .permute(2, 0, 1) / 255.0 - torch.tensor(mean, dtype=torch.float64).view(3, 1, 1)) \
        / torch.tensor(std, dtype=torch.float64).view(3, 1, 1)
    assert x.dtype == torch.float32
    torch.testing.assert_close(x.double(), ref, atol=1e-5, rtol=0)


# --------------------------------------------------------------------------- PSOL / CREAM_Reg
def _noise(w, h, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), np.uint8))


@pytest.mark.parametrize("size,box,expected", [
    # real CUB test boxes (x0, y0, x1, y1) and what the released CREAM_Reg's ResizedBBoxCrop
    # ((256, 256)) + CenterBBoxCrop(224) make of them (float32, times 224), measured
    ((500, 335), [60, 27, 385, 331], [14.720001, 4.6328354, 181.12001, 224.0]),
    ((500, 347), [14, 112, 402, 298], [0.0, 66.62824, 189.82401, 203.85014]),
    ((500, 470), [33, 53, 284, 448], [0.8959999, 12.868084, 129.408, 224.0]),
])
def test_center_crop_boxes_match_the_reference(size, box, expected):
    t = ResizeCenterCrop(256, 224)
    assert t.offset == 16
    x, b = t(_solid(*size, 0), np.array([box], float))
    assert x.shape == (3, 224, 224)
    np.testing.assert_allclose(b[0], expected, rtol=0, atol=2e-4)


def test_center_crop_image_is_torchvisions():
    from torchvision import transforms as T

    img = _noise(61, 47)
    ours, _ = ResizeCenterCrop(40, 32)(img)
    tv = T.Compose([T.Resize((40, 40)), T.CenterCrop(32), T.ToTensor(),
                    T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])(img)
    torch.testing.assert_close(ours, tv, rtol=0, atol=1e-5)


def test_center_crop_box_in_the_margin_has_no_area_and_maps_back():
    t = ResizeCenterCrop(256, 224)
    # W = 512: x in [0, 16) lands in the 16 px margin the crop leaves out
    b = t.transform_boxes(np.array([[2.0, 100.0, 30.0, 300.0]]), 512, 512)
    np.testing.assert_allclose(b, [[0.0, 34.0, 0.0, 134.0]])
    # back to the original pixels: (x + 16) * W / 256, clipped to the image
    np.testing.assert_allclose(t.to_original(np.array([[0.0, 34.0, 224.0, 250.0]]), 512, 512),
                               [[32.0, 100.0, 480.0, 512.0]])


@settings(max_examples=60, deadline=None)
@given(w=st.integers(20, 900), h=st.integers(20, 900), fx=st.floats(0.07, 0.45),
       fy=st.floats(0.07, 0.45), fw=st.floats(0.01, 0.4), fh=st.floats(0.01, 0.4))
def test_center_crop_boxes_map_back(w, h, fx, fy, fw, fh):
    """A box inside the central crop maps into it and back to itself."""
    t = ResizeCenterCrop(256, 224)
    box = np.array([[fx * w, fy * h, (fx + fw) * w, (fy + fh) * h]])
    crop = t.transform_boxes(box, w, h)
    assert np.all((crop >= 0) & (crop <= 224))
    np.testing.assert_allclose(t.to_original(crop, w, h), box, rtol=1e-9, atol=1e-9)


def test_resized_box_crop_hand_computed():
    t = RandomResizedBoxCrop(size=224, mean=(0, 0, 0), std=(1, 1, 1))
    params = ResizedCropParams(left=30, top=50, width=300, height=200, flip=False)
    _, b = t.apply(_solid(500, 335, 0), np.array([[60.0, 27.0, 385.0, 331.0]]), params)
    # the window [30, 330) x [50, 250) cuts the box to [60, 50, 330, 250]: (x - 30) / 300
    np.testing.assert_allclose(b, [[30 / 300 * 224, 0.0, 224.0, 224.0]])
    _, b = t.apply(_solid(500, 335, 0), np.array([[60.0, 27.0, 385.0, 331.0]]),
                   ResizedCropParams(30, 50, 300, 200, flip=True))
    np.testing.assert_allclose(b, [[0.0, 0.0, 224 - 30 / 300 * 224, 224.0]])


@pytest.mark.parametrize("left,top,width,height", [(0, 0, 40, 30), (5, 3, 20, 24),
                                                    (17, 9, 23, 21)])
def test_resized_box_crop_box_follows_the_pixels(left, top, width, height):
    """Where a bright rectangle lands in the output is where the transformed box says."""
    img = np.full((30, 40, 3), 10, np.uint8)
    img[6:24, 12:33] = 250  # box [12, 6, 33, 24]
    t = RandomResizedBoxCrop(size=64, mean=(0, 0, 0), std=(1, 1, 1))
    for flip in (False, True):
        params = ResizedCropParams(left, top, width, height, flip)
        x, b = t.apply(img, np.array([[12.0, 6.0, 33.0, 24.0]]), params)
        bright = x[0].numpy() > 0.5
        rows, cols = np.nonzero(bright)
        # bilinear resampling blurs the edge by up to one source pixel's width in output px
        tol = 64 / min(width, height) + 1
        np.testing.assert_allclose(b[0], [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1],
                                   atol=tol)


def test_resized_box_crop_image_is_torchvisions_and_flip_mirrors():
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    img = _noise(70, 50, seed=1)
    t = RandomResizedBoxCrop(size=32, mean=(0, 0, 0), std=(1, 1, 1))
    box = np.array([[10.0, 5.0, 50.0, 40.0]])
    x, b = t.apply(img, box, ResizedCropParams(7, 4, 45, 38, flip=False))
    tv = TF.to_tensor(TF.resized_crop(img, 4, 7, 38, 45, [32, 32], InterpolationMode.BILINEAR))
    torch.testing.assert_close(x, tv, rtol=0, atol=1e-6)
    xf, bf = t.apply(img, box, ResizedCropParams(7, 4, 45, 38, flip=True))
    torch.testing.assert_close(xf, torch.flip(x, dims=[2]))  # flip symmetry: the image ...
    np.testing.assert_allclose(bf, [[32 - b[0, 2], b[0, 1], 32 - b[0, 0], b[0, 3]]])  # ... box


@settings(max_examples=80, deadline=None)
@given(w=st.integers(8, 600), h=st.integers(8, 600), seed=st.integers(0, 10**6),
       fx=st.floats(0, 0.99), fy=st.floats(0, 0.99), fw=st.floats(0.005, 1), fh=st.floats(0.005, 1))
def test_resized_box_crop_window_invariants(w, h, seed, fx, fy, fw, fh):
    """The window lies in the image, overlaps the box, and has the drawn area and aspect
    (or is the fallback); the target is a proper box inside the crop."""
    x0, y0 = fx * w, fy * h
    box = np.array([[x0, y0, min(w, x0 + fw * w), min(h, y0 + fh * h)]])
    t = RandomResizedBoxCrop(size=16, random_state=seed)
    p = t.sample_params(w, h, box)
    assert 0 <= p.left and p.left + p.width <= w and 0 <= p.top and p.top + p.height <= h
    ix = min(box[0, 2], p.left + p.width) - max(box[0, 0], p.left)
    iy = min(box[0, 3], p.top + p.height) - max(box[0, 1], p.top)
    assert ix > 0 and iy > 0  # the crop must intersect the box
    area = p.width * p.height / (w * h)
    fallback = (p.left, p.top) == ((w - p.width) // 2, (h - p.height) // 2) or area == 1
    if not fallback:  # area and aspect as drawn, up to rounding to whole pixels
        assert 0.2 * (1 - 2 / min(p.width, p.height)) - 1e-9 <= area <= 1
        ratio = p.width / p.height
        slack = 1 / min(p.width, p.height)
        assert 0.75 * (1 - 2 * slack) <= ratio <= 4 / 3 * (1 + 2 * slack)
    _, b = t.apply(_solid(w, h, 0), box, p)
    assert b[0, 2] > b[0, 0] and b[0, 3] > b[0, 1]
    assert np.all((b >= 0) & (b <= 16))


def test_resized_box_crop_fallback_and_draws():
    # 400 x 20: no window of >= 0.2 of the area with aspect <= 4/3 fits in 20 px of height,
    # so every draw fails and the reference's fallback is used: the central crop with the
    # aspect clamped to 4/3, round(20 * 4/3) = 27 wide at (400 - 27) // 2 = 186
    t = RandomResizedBoxCrop(size=8, random_state=0)
    for _ in range(5):
        p = t.sample_params(400, 20, np.array([[150.0, 0.0, 250.0, 20.0]]))
        assert (p.left, p.top, p.width, p.height) == (186, 0, 27, 20)
    # a one-pixel box in the corner, which that crop misses: the whole image (deviation: the
    # reference's target would be an inverted box)
    p = t.sample_params(400, 20, np.array([[0.0, 0.0, 1.0, 1.0]]))
    assert (p.left, p.top, p.width, p.height) == (0, 0, 400, 20)
    # reproducible with an int seed, and both flips drawn
    a = RandomResizedBoxCrop(size=8, random_state=3)
    b = RandomResizedBoxCrop(size=8, random_state=3)
    box = np.array([[10.0, 10.0, 60.0, 50.0]])
    da = [a.sample_params(80, 60, box) for _ in range(20)]
    assert da == [b.sample_params(80, 60, box) for _ in range(20)]
    assert {d.flip for d in da} == {False, True}
    with pytest.raises(ValueError, match="needs the image's box"):
        a(_solid(80, 60, 0))
    with pytest.raises(ValueError, match="scale"):
        RandomResizedBoxCrop(scale=(0.5, 0.2))


def test_ten_crop_is_torchvisions():
    from torchvision import transforms as T

    img = _noise(53, 41, seed=2)
    ours = TenCrop(40, 32)(img)
    views = T.Compose([T.Resize((40, 40)), T.TenCrop(32)])(img)
    norm = T.Compose([T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    torch.testing.assert_close(ours, torch.stack([norm(v) for v in views]), rtol=0, atol=1e-5)
