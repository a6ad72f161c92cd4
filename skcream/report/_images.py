"""The report's pictures: one strip per image (the image, then each gallery method's map
over it) at full protocol size and as a half-size thumbnail, and the two figures.

Boxes are not drawn into the strips: the page draws them as SVG on top, so the threshold
slider can move them. The strip keeps a neutral margin of :data:`PAD` pixels around every
panel, so a box on the image's border still shows its whole outline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from skcream.viz import (
    boxes_to_mask,
    method_colors,
    overlay,
    plot_activation_histograms,
    plot_threshold_curves,
)

#: side of one panel (the protocol's frame, where the boxes live)
PANEL = 224
#: margin around every panel, in full-size pixels
PAD = 8
#: thumbnail scale
THUMB_SCALE = 0.5
_MARGIN_RGB = (64, 64, 64)


def strip_size(n_panels: int) -> tuple[int, int]:
    """(width, height) of a full-size strip of ``n_panels`` panels."""
    return n_panels * PANEL + (n_panels + 1) * PAD, PANEL + 2 * PAD


def panel_origin(k: int) -> tuple[int, int]:
    """Top-left pixel of panel ``k`` in a full-size strip."""
    return PAD + k * (PANEL + PAD), PAD


def make_strip(image: Image.Image, maps: Sequence[np.ndarray]) -> Image.Image:
    """The image at 224x224, then one heat-map overlay per map, side by side.

    Parameters
    ----------
    image : PIL.Image.Image
        Any size; resized to 224x224 without crop (the protocol's frame).
    maps : sequence of ndarray (224, 224) in [0, 1]

    Returns
    -------
    PIL.Image.Image
        RGB of size :func:`strip_size` (``1 + len(maps)`` panels).
    """
    from skcream.data.decode import decode_image

    base = decode_image(image).resize((PANEL, PANEL), Image.BILINEAR)  # as shown (EXIF)
    panels = [base] + [overlay(base, m, alpha=0.5) for m in maps]
    strip = Image.new("RGB", strip_size(len(panels)), _MARGIN_RGB)
    for k, panel in enumerate(panels):
        strip.paste(panel, panel_origin(k))
    return strip


def write_strips(folder: Path, index: int, strip: Image.Image) -> tuple[str, str]:
    """Save the full-size strip and its thumbnail (JPEG); return their names."""
    full, thumb = f"{index:05d}.jpg", f"{index:05d}_t.jpg"
    strip.save(folder / full, quality=85, optimize=True)
    w, h = strip.size
    small = strip.resize((round(w * THUMB_SCALE), round(h * THUMB_SCALE)), Image.LANCZOS)
    small.save(folder / thumb, quality=80, optimize=True)
    return full, thumb


def write_figures(folder: Path, curve_grid: np.ndarray, curves: Mapping[str, np.ndarray],
                  taus: Mapping[str, float], maps: Mapping[str, np.ndarray],
                  gt: Sequence[np.ndarray], masks: Sequence[np.ndarray] | None) -> dict[str, Any]:
    """Fig. 6 (BoxAccV2 over the threshold) and Fig. 1 (fg/bg histograms) as PNGs.

    Returns
    -------
    dict
        ``curves`` and ``histograms``: file names.
    """
    fig = plot_threshold_curves(dict(curves), curve_grid,
                                title="BoxAccV2 over the map threshold (paper Fig. 6)")
    ax = fig.axes[0]
    colours = method_colors(list(curves))
    for name, tau in taus.items():
        if name in curves:
            ax.axvline(tau, linestyle=":", linewidth=1.2, color=colours[name])
    fig.savefig(folder / "threshold_curves.png", dpi=100)
    fg = (list(masks) if masks is not None
          else [boxes_to_mask(b, (PANEL, PANEL)) for b in gt])
    fig = plot_activation_histograms({k: list(v) for k, v in maps.items()}, fg,
                                     threshold={k: taus[k] for k in maps})
    fig.suptitle("Map values on the object (fg) and on the background (bg), paper Fig. 1; "
                 "dashed: the box threshold τ", fontsize=10)
    fig.savefig(folder / "histograms.png", dpi=100)
    return {"curves": "threshold_curves.png", "histograms": "histograms.png"}
