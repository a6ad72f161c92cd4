"""Pictures of localization maps and of their evaluation.

Everything here takes plain numpy arrays / PIL images and returns a PIL image
(:func:`overlay`) or a :class:`matplotlib.figure.Figure` (the plots), so it works
the same from a script, the ``skcream`` command and a notebook (a returned
``Figure`` displays inline; ``fig.savefig(path)`` writes it). The figures are
built without :mod:`matplotlib.pyplot`, so no global figure state is touched
and nothing needs closing.

Conventions: boxes are ``x0, y0, x1, y1`` in pixel coordinates of the image
they are drawn on, inclusive (the WSOL protocol's convention); maps are 2-D
float arrays in [0, 1], resized to the image when their size differs.
Ground-truth boxes are drawn in green, predicted boxes in red. Each method has one colour
in every figure and in the HTML report (:data:`METHOD_COLORS`, :func:`method_colors`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from skcream._checks import as_int

__all__ = [
    "GT_COLOR",
    "METHOD_COLORS",
    "OUTLINE_COLOR",
    "PRED_COLOR",
    "boxes_to_mask",
    "example_grid",
    "method_colors",
    "overlay",
    "plot_activation_histograms",
    "plot_threshold_curves",
]

#: RGB colour of ground-truth boxes.
GT_COLOR = (0, 255, 0)
#: RGB colour of predicted boxes.
PRED_COLOR = (255, 0, 0)
#: RGB colour of the contrasting line on both sides of a box (``overlay(outline=...)``)
OUTLINE_COLOR = (0, 0, 0)

#: one colour per method, the same in every figure and in the report (matplotlib's tab10)
METHOD_COLORS = {
    "CAM": "#1f77b4",
    "CREAM": "#ff7f0e",
    "calibrated": "#9467bd",
    "centre prior": "#7f7f7f",
    "train-box prior": "#8c564b",
}
#: colours of other methods, given in order of appearance
_OTHER_COLORS = ("#2ca02c", "#e377c2", "#17becf", "#bcbd22", "#d62728")


def method_colors(names: Sequence[str]) -> dict[str, str]:
    """The colour of each name: :data:`METHOD_COLORS` for the methods it lists, the others
    in turn for the rest. A name's method is the text before its first ``" ("``, so a legend
    label such as ``"CAM (MaxBoxAccV2 32.8)"`` gets CAM's colour.

    Returns
    -------
    dict of str to str
        ``name -> "#rrggbb"``.
    """
    out: dict[str, str] = {}
    k = 0
    for name in names:
        base = str(name).split(" (", 1)[0]
        if base in METHOD_COLORS:
            out[name] = METHOD_COLORS[base]
        else:
            out[name] = _OTHER_COLORS[k % len(_OTHER_COLORS)]
            k += 1
    return out


# Colours of the two histogram populations (paper Fig. 1: fg red, bg blue).
_FG_HIST = "#d62728"
_BG_HIST = "#1f77b4"


# --------------------------------------------------------------------------- inputs
def _as_rgb_array(image: Any, name: str = "image") -> np.ndarray:
    """Convert a PIL image or an array to an (H, W, 3) uint8 RGB array.

    Accepted arrays: (H, W) grey, (H, W, 1), (H, W, 3) or (H, W, 4); uint8 or
    floats in [0, 1].
    """
    if isinstance(image, Image.Image):  # as viewers show it (EXIF orientation): the one decoder
        from skcream.data.decode import decode_image

        return np.asarray(decode_image(image, name))
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be a PIL image or a numpy array, got {type(image).__name__}")
    arr = image
    if arr.ndim == 3 and arr.shape[2] in (1, 3, 4):
        arr = arr[..., :3] if arr.shape[2] != 1 else arr[..., 0]
    if arr.ndim not in (2, 3):
        raise ValueError(
            f"{name} must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {image.shape}"
        )
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {image.shape})")
    if arr.dtype == np.uint8:
        out = arr
    elif np.issubdtype(arr.dtype, np.floating) or arr.dtype == bool:
        arr = arr.astype(np.float64)
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or inf")
        if arr.min() < 0 or arr.max() > 1:
            raise ValueError(
                f"{name} of float dtype must hold values in [0, 1], "
                f"got [{arr.min():.3g}, {arr.max():.3g}]"
            )
        out = np.round(arr * 255).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.integer):
        if arr.min() < 0 or arr.max() > 255:
            raise ValueError(f"{name} of integer dtype must hold values in [0, 255]")
        out = arr.astype(np.uint8)
    else:
        raise TypeError(f"{name} has unsupported dtype {arr.dtype}")
    if out.ndim == 2:
        out = np.repeat(out[..., None], 3, axis=2)
    return np.ascontiguousarray(out)


def _as_map(scoremap: Any, name: str = "map", normalize: bool = False) -> np.ndarray:
    """Validate a 2-D score map and return it as float64 in [0, 1]."""
    arr = np.asarray(scoremap, dtype=np.float64)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (h, w), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    if normalize:
        lo, hi = arr.min(), arr.max()
        return (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
    if arr.min() < 0 or arr.max() > 1:
        raise ValueError(
            f"{name} must hold values in [0, 1], got [{arr.min():.3g}, {arr.max():.3g}]; "
            "pass normalize=True to min-max normalise a raw map"
        )
    return arr


def _as_boxes(boxes: Any, name: str) -> np.ndarray:
    """Validate boxes and return a (k, 4) float64 array (k may be 0)."""
    if boxes is None:
        return np.zeros((0, 4))
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 4))
    if arr.ndim == 1 and arr.shape[0] == 4:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name} must have shape (k, 4) (x0, y0, x1, y1), got {np.shape(boxes)}")
    bad = ~np.all(np.isfinite(arr), axis=1)
    if bad.any():
        raise ValueError(f"{name}[{int(np.flatnonzero(bad)[0])}] contains NaN or inf")
    bad = (arr[:, 2] < arr[:, 0]) | (arr[:, 3] < arr[:, 1])
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}[{i}] = {arr[i].tolist()} has x1 < x0 or y1 < y0")
    return arr


def _resize_map(scoremap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a (h, w) map to ``size`` = (W, H); values stay in [0, 1]."""
    h, w = scoremap.shape
    if (w, h) == tuple(size):
        return scoremap
    img = Image.fromarray(scoremap.astype(np.float32), mode="F")
    out = np.asarray(img.resize(tuple(size), Image.BILINEAR), dtype=np.float64)
    return np.clip(out, 0.0, 1.0)


def _line_width(width: int, height: int, *, bold: bool = False) -> int:
    """Box line width that stays visible on small and large images alike."""
    if bold:
        return max(2, int(round(min(width, height) / 64)))
    return max(1, int(round(min(width, height) / 112)))


def boxes_to_mask(boxes: Any, shape: tuple[int, int]) -> np.ndarray:
    """Union of boxes as a boolean mask.

    Parameters
    ----------
    boxes : array-like of shape (k, 4)
        ``x0, y0, x1, y1`` inclusive pixel coordinates.
    shape : tuple of int
        ``(H, W)`` of the mask.

    Returns
    -------
    ndarray of shape (H, W), bool
        True inside at least one box (clipped to the mask).
    """
    arr = _as_boxes(boxes, "boxes")
    height, width = int(shape[0]), int(shape[1])
    mask = np.zeros((height, width), dtype=bool)
    for x0, y0, x1, y1 in arr:
        c0, r0 = max(int(np.floor(x0)), 0), max(int(np.floor(y0)), 0)
        c1, r1 = min(int(np.floor(x1)), width - 1), min(int(np.floor(y1)), height - 1)
        if c1 >= c0 and r1 >= r0:
            mask[r0 : r1 + 1, c0 : c1 + 1] = True
    return mask


# --------------------------------------------------------------------------- overlay
def overlay(
    image: Any,
    map: Any | None = None,
    boxes: Any | None = None,
    gt_boxes: Any | None = None,
    alpha: float = 0.5,
    cmap: str = "jet",
    *,
    normalize: bool = False,
    line_width: int | None = None,
    label: str | None = None,
    outline: tuple[int, int, int] | None = None,
    min_side: int | None = None,
) -> Image.Image:
    """Blend a localization map over an image and draw boxes on it.

    Parameters
    ----------
    image : PIL.Image.Image or ndarray of shape (H, W), (H, W, 3) or (H, W, 4)
        The picture (uint8, or float in [0, 1]); any PIL mode is converted to RGB.
    map : array-like of shape (h, w), optional
        Scores in [0, 1] (e.g. one map of ``CREAMLocalizer.transform`` or
        ``Localization.maps``); bilinearly resized to (H, W) when h, w differ.
        None draws the boxes on the bare image.
    boxes : array-like of shape (k, 4) or (4,), optional
        Predicted boxes ``x0, y0, x1, y1`` (inclusive pixels of ``image``), in red.
    gt_boxes : array-like of shape (k, 4) or (4,), optional
        Ground-truth boxes, in green (drawn first, so a predicted box that
        coincides with the ground truth shows red).
    alpha : float, default=0.5
        Weight of the coloured map in the blend (0 = image only, 1 = map only).
    cmap : str, default="jet"
        A matplotlib colormap name.
    normalize : bool, default=False
        Min-max normalise ``map`` first (for raw CAMs of any range); otherwise a
        map outside [0, 1] is an error.
    line_width : int, optional
        Box line width in pixels (of the upsampled image with ``min_side``); default
        ``max(1, round(min(H, W) / 112))``, and with ``outline`` a bold
        ``max(2, round(min(H, W) / 64))`` (6 px on a 384-px overlay).
    label : str, optional
        Text drawn on a dark plate at the top-left corner of the first predicted box
        (e.g. ``"tabby cat 0.83"``), kept inside the image.
    outline : (r, g, b), optional
        Colour of a contrasting line (half the box line's width) drawn on both sides of
        every box line, so that a box stays visible on any map colour and along the image
        border (boxes are always drawn inside the image), e.g. :data:`OUTLINE_COLOR`.
        None: plain boxes.
    min_side : int, optional
        Upsample (bicubic) an image whose shorter side is below ``min_side`` to that
        size first; the map and the boxes follow (boxes stay in ``image``'s pixels).

    Returns
    -------
    PIL.Image.Image
        RGB image of size (W, H), or the upsampled size with ``min_side``.
    """
    rgb = _as_rgb_array(image)
    height, width = rgb.shape[:2]
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    pred = _as_boxes(boxes, "boxes")
    gt = _as_boxes(gt_boxes, "gt_boxes")
    if min_side is not None:
        min_side = as_int(min_side, "min_side", low=1)
        if min(width, height) < min_side:
            scale = min_side / min(width, height)
            size = (int(round(width * scale)), int(round(height * scale)))
            rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.BICUBIC))
            pred, gt = (_scale_inclusive(b, size[0] / width, size[1] / height)
                        for b in (pred, gt))
            width, height = size
    if line_width is None:
        line_width = _line_width(width, height, bold=outline is not None)
    elif int(line_width) < 1:
        raise ValueError(f"line_width must be >= 1, got {line_width}")

    out = rgb.astype(np.float64)
    if map is not None:
        import matplotlib

        try:
            colormap = matplotlib.colormaps[cmap]
        except KeyError:
            raise ValueError(f"cmap {cmap!r} is not a matplotlib colormap") from None
        scores = _resize_map(_as_map(map, "map", normalize), (width, height))
        colours = colormap(scores)[..., :3] * 255.0
        out = (1.0 - alpha) * out + alpha * colours
    result = Image.fromarray(np.clip(np.round(out), 0, 255).astype(np.uint8), mode="RGB")

    draw = ImageDraw.Draw(result)
    edge = 0 if outline is None else max(1, int(line_width) // 2)
    for colour, group in ((GT_COLOR, gt), (PRED_COLOR, pred)):
        for x0, y0, x1, y1 in group:
            # PIL draws a rectangle's outline inside its bounds; clamping the bounds to the
            # image keeps a box on the border fully visible
            rect = [min(max(int(round(v)), 0), hi) for v, hi in
                    ((x0, width - 1), (y0, height - 1), (x1, width - 1), (y1, height - 1))]
            if edge:
                draw.rectangle(rect, outline=tuple(outline), width=int(line_width) + 2 * edge)
                rect = [rect[0] + edge, rect[1] + edge, rect[2] - edge, rect[3] - edge]
                if rect[2] < rect[0] or rect[3] < rect[1]:
                    continue
            draw.rectangle(rect, outline=colour, width=int(line_width))
    if label:
        anchor = pred[0] if len(pred) else np.array([0, 0, width - 1, height - 1])
        _draw_label(draw, str(label), anchor, (width, height), int(line_width) + 2 * edge)
    return result


def _scale_inclusive(boxes: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Inclusive-pixel boxes of an image resized by (sx, sy): pixel i covers [i*s, (i+1)*s)."""
    out = boxes.astype(np.float64).copy()
    out[:, 0] = boxes[:, 0] * sx
    out[:, 1] = boxes[:, 1] * sy
    out[:, 2] = (boxes[:, 2] + 1) * sx - 1
    out[:, 3] = (boxes[:, 3] + 1) * sy - 1
    return out


def _draw_label(draw: ImageDraw.ImageDraw, text: str, box: np.ndarray,
                size: tuple[int, int], inset: int) -> None:
    """White text on a black plate at the box's top-left corner, inside the image."""
    from PIL import ImageFont

    width, height = size
    font_size = max(10, int(round(min(width, height) / 24)))
    try:
        font = ImageFont.load_default(size=font_size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        font = ImageFont.load_default()
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    pad = max(2, font_size // 5)
    w, h = right - left + 2 * pad, bottom - top + 2 * pad
    x = min(max(int(box[0]) + inset, 0), max(width - w, 0))
    y = min(max(int(box[1]) + inset, 0), max(height - h, 0))
    draw.rectangle([x, y, x + w - 1, y + h - 1], fill=(0, 0, 0))
    draw.text((x + pad - left, y + pad - top), text, fill=(255, 255, 255), font=font)


# --------------------------------------------------------------------------- figures
def _new_figure(figsize: tuple[float, float]):
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def plot_threshold_curves(
    curves: Mapping[str, Any],
    thresholds: Any | None = None,
    *,
    ax: Any | None = None,
    title: str | None = "Box accuracy over the CAM threshold",
    xlabel: str = "CAM threshold τ",
    ylabel: str = "BoxAccV2 (%)",
    mark_best: bool = True,
):
    """Box accuracy as a function of the map threshold, one line per method.

    The picture of the paper's Fig. 6: a method robust to the threshold has a
    high, flat curve. Each method has its colour of :func:`method_colors`.

    Parameters
    ----------
    curves : mapping of str to array-like of shape (n_thresholds,)
        Accuracy (percent) at each threshold, per method name (e.g.
        ``{"CAM": ..., "CREAM": ...}``).
    thresholds : array-like of shape (n_thresholds,), optional
        The thresholds; default ``np.arange(n_thresholds) / n_thresholds``
        (the protocol's grid, e.g. 0.00, 0.01, ..., 0.99).
    ax : matplotlib Axes, optional
        Draw into this axes (e.g. from ``plt.subplots``); else a new figure.
    title, xlabel, ylabel : str
        Labels.
    mark_best : bool, default=True
        Mark each curve's maximum (the threshold MaxBoxAcc picks) with a dot, and give
        its value and threshold in the legend.

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding the axes.
    """
    if not isinstance(curves, Mapping) or len(curves) == 0:
        raise ValueError("curves must be a non-empty mapping of method name -> accuracies")
    arrays = {}
    for name, values in curves.items():
        arr = np.asarray(values, dtype=np.float64)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"curves[{name!r}] must be a non-empty 1-D array, got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"curves[{name!r}] contains NaN or inf")
        arrays[name] = arr
    lengths = {arr.size for arr in arrays.values()}
    if len(lengths) != 1:
        raise ValueError(f"all curves must have the same length, got lengths {sorted(lengths)}")
    n = lengths.pop()
    if thresholds is None:
        xs = np.arange(n) / n
    else:
        xs = np.asarray(thresholds, dtype=np.float64)
        if xs.shape != (n,):
            raise ValueError(f"thresholds must have shape ({n},) like the curves, got {xs.shape}")

    fig = ax.figure if ax is not None else _new_figure((6.0, 4.0))
    if ax is None:
        ax = fig.add_subplot()
    colours = method_colors(list(arrays))
    for name, arr in arrays.items():
        i = int(np.argmax(arr))
        label = f"{name} (max {arr[i]:.1f} at {xs[i]:.2f})" if mark_best else name
        (line,) = ax.plot(xs, arr, label=label, linewidth=2, color=colours[name])
        if mark_best:
            ax.plot(xs[i], arr[i], "o", color=line.get_color())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xlim(float(xs.min()), float(xs.max()))
    ax.set_ylim(0, max(100.0, max(float(a.max()) for a in arrays.values()) + 5))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    if title:
        ax.set_title(title)
    return fig


def plot_activation_histograms(
    maps: Mapping[str, Sequence[Any]],
    fg_masks: Sequence[Any],
    *,
    bins: int = 40,
    threshold: float | Mapping[str, float] | None = 0.2,
    axes: Any | None = None,
    log: bool = False,
):
    """Histograms of map values on the object vs on the background.

    The picture of the paper's Fig. 1: under CAM, most object pixels get low
    values mixed up with the background; CREAM separates the two populations.

    Parameters
    ----------
    maps : mapping of str to sequence of arrays of shape (H_i, W_i)
        Per method name, one map in [0, 1] per image.
    fg_masks : sequence of arrays of shape (H_i, W_i)
        Per image, True (or 1) on the object. A mask in the OpenImages
        convention (0 bg, 1 fg, 255 ignore) is accepted: 255 pixels are left out.
        Build one from boxes with :func:`boxes_to_mask`.
    bins : int, default=40
        Number of equal bins over [0, 1].
    threshold : float, mapping of str to float, or None, default=0.2
        Draw a dashed vertical line at this map threshold (the customary τ); a mapping
        gives each method its own (e.g. the threshold chosen on a validation split).
    axes : sequence of matplotlib Axes, optional
        One axes per method; else a new figure with one panel per method.
    log : bool, default=False
        Logarithmic y axis.

    Notes
    -----
    Each population is normalised to sum to 1 (the y axis is the fraction of that
    population's pixels per bin), so a small object and a large background are
    comparable; the legend gives the pixel counts.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not isinstance(maps, Mapping) or len(maps) == 0:
        raise ValueError("maps must be a non-empty mapping of method name -> maps")
    if int(bins) < 2:
        raise ValueError(f"bins must be >= 2, got {bins}")
    n_images = len(fg_masks)
    if n_images == 0:
        raise ValueError("fg_masks must hold one mask per image, got none")
    fg_keep, bg_keep = [], []
    for i, mask in enumerate(fg_masks):
        m = np.asarray(mask)
        if m.ndim != 2:
            raise ValueError(f"fg_masks[{i}] must be 2-D, got shape {m.shape}")
        fg_keep.append(m == 1 if m.dtype != bool else m)
        bg_keep.append(m == 0 if m.dtype != bool else ~m)

    edges = np.linspace(0.0, 1.0, int(bins) + 1)
    if axes is None:
        fig = _new_figure((4.2 * len(maps), 3.4))
        axes = fig.subplots(1, len(maps), squeeze=False)[0]
    else:
        axes = list(np.ravel(axes))
        if len(axes) != len(maps):
            raise ValueError(f"axes must hold {len(maps)} axes (one per method), got {len(axes)}")
        fig = axes[0].figure
    for ax, (name, method_maps) in zip(axes, maps.items()):
        if len(method_maps) != n_images:
            raise ValueError(
                f"maps[{name!r}] has {len(method_maps)} maps but fg_masks has {n_images}"
            )
        fg_vals, bg_vals = [], []
        for i, scoremap in enumerate(method_maps):
            arr = _as_map(scoremap, f"maps[{name!r}][{i}]")
            if arr.shape != fg_keep[i].shape:
                raise ValueError(
                    f"maps[{name!r}][{i}] has shape {arr.shape} but fg_masks[{i}] has "
                    f"{fg_keep[i].shape}"
                )
            fg_vals.append(arr[fg_keep[i]])
            bg_vals.append(arr[bg_keep[i]])
        fg_all, bg_all = np.concatenate(fg_vals), np.concatenate(bg_vals)
        for values, colour, label in ((bg_all, _BG_HIST, "background"),
                                      (fg_all, _FG_HIST, "foreground")):
            counts = np.histogram(values, bins=edges)[0]  # last bin closed: 1.0 is counted
            fraction = counts / max(values.size, 1)
            ax.stairs(fraction, edges, fill=True, color=colour, alpha=0.35)
            ax.stairs(fraction, edges, color=colour, linewidth=1.8,
                      label=f"{label} ({values.size:,} px)")
        if log:
            ax.set_yscale("log")
        tau = threshold.get(name) if isinstance(threshold, Mapping) else threshold
        if tau is not None:
            ax.axvline(float(tau), color="k", linestyle="--", linewidth=1,
                       label=f"τ = {float(tau):.2f}")
        ax.set_title(name)
        ax.set_xlabel("activation")
        ax.set_xlim(0, 1)
        ax.set_ylabel("fraction of pixels")
        ax.legend(loc="upper right", fontsize=8)
    return fig


def example_grid(
    images: Sequence[Any],
    maps: Mapping[str, Sequence[Any]],
    *,
    boxes: Mapping[str, Sequence[Any]] | None = None,
    gt_boxes: Sequence[Any] | None = None,
    row_titles: Sequence[str] | None = None,
    alpha: float = 0.5,
    cmap: str = "jet",
    cell_size: float = 2.0,
):
    """A grid of examples: one row per image, the image then one overlay per method.

    Parameters
    ----------
    images : sequence of PIL images or arrays (H_i, W_i, 3)
        The pictures.
    maps : mapping of str to sequence of arrays of shape (h_i, w_i)
        Per method name (one column each, in mapping order), one map in [0, 1]
        per image.
    boxes : mapping of str to sequence of arrays of shape (k_i, 4), optional
        Per method name, the predicted boxes of each image (red), in the
        image's pixel coordinates. Methods absent from the mapping get no box.
    gt_boxes : sequence of arrays of shape (k_i, 4), optional
        Ground-truth boxes per image (green), drawn on every column.
    row_titles : sequence of str, optional
        A label per row (e.g. the class name), shown left of the row.
    alpha, cmap : see :func:`overlay`.
    cell_size : float, default=2.0
        Size of one cell in inches.

    Returns
    -------
    matplotlib.figure.Figure
    """
    n = len(images)
    if n == 0:
        raise ValueError("images must not be empty")
    if not isinstance(maps, Mapping) or len(maps) == 0:
        raise ValueError("maps must be a non-empty mapping of method name -> maps")
    boxes = boxes or {}
    for name, seq in maps.items():
        if len(seq) != n:
            raise ValueError(f"maps[{name!r}] has {len(seq)} maps but there are {n} images")
    for name, seq in boxes.items():
        if name not in maps:
            raise ValueError(f"boxes[{name!r}] has no matching entry in maps {list(maps)}")
        if len(seq) != n:
            raise ValueError(f"boxes[{name!r}] has {len(seq)} entries but there are {n} images")
    if gt_boxes is not None and len(gt_boxes) != n:
        raise ValueError(f"gt_boxes has {len(gt_boxes)} entries but there are {n} images")
    if row_titles is not None and len(row_titles) != n:
        raise ValueError(f"row_titles has {len(row_titles)} entries but there are {n} images")

    n_cols = 1 + len(maps)
    fig = _new_figure((cell_size * n_cols, cell_size * n))
    axes = fig.subplots(n, n_cols, squeeze=False)
    for r in range(n):
        gt = None if gt_boxes is None else gt_boxes[r]
        cells = [("image", overlay(images[r], None, gt_boxes=gt, outline=OUTLINE_COLOR))]
        for name, seq in maps.items():
            pred = boxes[name][r] if name in boxes else None
            cells.append((name, overlay(images[r], seq[r], boxes=pred, gt_boxes=gt,
                                        alpha=alpha, cmap=cmap, outline=OUTLINE_COLOR)))
        for c, (name, picture) in enumerate(cells):
            ax = axes[r, c]
            ax.imshow(picture)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=10)
            if c == 0 and row_titles is not None:
                ax.set_ylabel(str(row_titles[r]), fontsize=8)
    return fig
