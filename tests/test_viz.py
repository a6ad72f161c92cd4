"""skcream.viz: overlays and figures, checked pixel by pixel where it matters."""

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from skcream import viz


def _grey(h=40, w=60, value=128):
    return np.full((h, w, 3), value, dtype=np.uint8)


def test_overlay_returns_rgb_image_of_the_input_size():
    out = viz.overlay(_grey(40, 60), np.zeros((7, 7)))
    assert isinstance(out, Image.Image)
    assert out.mode == "RGB"
    assert out.size == (60, 40)


def test_gt_box_outline_is_green_and_prediction_red():
    img = _grey(50, 50)
    out = np.asarray(viz.overlay(img, None, boxes=[[30, 30, 45, 45]], gt_boxes=[[5, 5, 20, 20]],
                                 line_width=1))
    # the four edges of each inclusive box
    for x, y in [(5, 5), (20, 5), (5, 20), (20, 20), (12, 5), (5, 12), (20, 12), (12, 20)]:
        assert tuple(out[y, x]) == viz.GT_COLOR
    for x, y in [(30, 30), (45, 45), (37, 30), (45, 37)]:
        assert tuple(out[y, x]) == viz.PRED_COLOR
    # inside and outside the outlines the picture is untouched
    assert tuple(out[12, 12]) == (128, 128, 128)
    assert tuple(out[4, 4]) == (128, 128, 128)
    assert tuple(out[21, 21]) == (128, 128, 128)


def test_prediction_is_drawn_over_a_coinciding_gt_box():
    out = np.asarray(viz.overlay(_grey(), None, boxes=[[5, 5, 20, 20]], gt_boxes=[[5, 5, 20, 20]]))
    assert tuple(out[5, 12]) == viz.PRED_COLOR


def test_default_line_width_scales_with_image():
    out = np.asarray(viz.overlay(_grey(448, 448), None, gt_boxes=[[100, 100, 300, 300]]))
    # 448 / 112 = 4 pixels wide, inward from the box edge
    assert all(tuple(out[200, x]) == viz.GT_COLOR for x in range(100, 104))
    assert tuple(out[200, 104]) == (128, 128, 128)


def test_map_blend_matches_colormap_formula():
    img = _grey(8, 8, 100)
    scores = np.linspace(0, 1, 64).reshape(8, 8)
    out = np.asarray(viz.overlay(img, scores, alpha=0.25, cmap="viridis")).astype(float)
    colours = matplotlib.colormaps["viridis"](scores)[..., :3] * 255
    expected = 0.75 * 100 + 0.25 * colours
    assert np.max(np.abs(out - expected)) <= 0.5 + 1e-9


def test_alpha_zero_leaves_image_and_alpha_one_shows_only_map():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    scores = rng.random((10, 12))
    assert np.array_equal(np.asarray(viz.overlay(img, scores, alpha=0.0)), img)
    only = np.asarray(viz.overlay(img, np.ones((10, 12)), alpha=1.0, cmap="jet"))
    top = np.round(np.array(matplotlib.colormaps["jet"](1.0)[:3]) * 255)
    assert np.all(only == top.astype(np.uint8))


def test_low_resolution_map_is_resized_to_the_image():
    img = _grey(64, 32)
    scores = np.zeros((4, 2))
    scores[:2] = 1.0  # top half hot
    out = np.asarray(viz.overlay(img, scores, alpha=1.0, cmap="gray")).astype(int)
    assert out[2, 16].mean() > 240  # top: white
    assert out[61, 16].mean() < 15  # bottom: black


def test_image_inputs_grey_float_pil_rgba():
    grey = np.full((10, 10), 0.5)
    a = np.asarray(viz.overlay(grey, None))
    assert a.shape == (10, 10, 3) and np.all(a == 128)
    rgba = Image.new("RGBA", (10, 10), (10, 20, 30, 0))
    assert tuple(np.asarray(viz.overlay(rgba, None))[0, 0]) == (10, 20, 30)
    pal = Image.new("P", (5, 5))
    assert viz.overlay(pal, None).mode == "RGB"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"map": np.full((4, 4), np.nan)}, "map contains NaN"),
        ({"map": np.full((4, 4), 2.0)}, r"map must hold values in \[0, 1\]"),
        ({"map": np.zeros((2, 4, 4))}, "map must be a non-empty 2-D"),
        ({"boxes": [[5, 5, 2, 8]]}, r"boxes\[0\]"),
        ({"gt_boxes": [[0, 0, 1, 1], [5, 9, 8, 2]]}, r"gt_boxes\[1\]"),
        ({"boxes": [[1, 2, 3]]}, r"boxes must have shape \(k, 4\)"),
        ({"alpha": 1.5}, "alpha"),
        ({"map": np.zeros((4, 4)), "cmap": "no-such-map"}, "cmap"),
    ],
)
def test_overlay_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        viz.overlay(_grey(), **kwargs)


def test_overlay_rejects_non_image():
    with pytest.raises(TypeError, match="image must be a PIL image or a numpy array"):
        viz.overlay("cat.jpg", None)
    with pytest.raises(ValueError, match=r"image of float dtype must hold values in \[0, 1\]"):
        viz.overlay(np.full((4, 4, 3), 3.0), None)


def test_normalize_accepts_raw_cam():
    raw = np.array([[-3.0, 5.0], [1.0, 1.0]])
    out = np.asarray(viz.overlay(_grey(2, 2), raw, alpha=1.0, cmap="gray", normalize=True))
    assert tuple(out[0, 0]) == (0, 0, 0) and tuple(out[0, 1]) == (255, 255, 255)


def test_boxes_to_mask_is_inclusive_and_clipped():
    mask = viz.boxes_to_mask([[1, 2, 3, 4], [8, 8, 20, 20]], (10, 10))
    expected = np.zeros((10, 10), bool)
    expected[2:5, 1:4] = True
    expected[8:, 8:] = True
    assert np.array_equal(mask, expected)
    assert not viz.boxes_to_mask(np.zeros((0, 4)), (3, 3)).any()


def test_threshold_curves_figure_draws_each_curve():
    xs = np.arange(100) / 100
    fig = viz.plot_threshold_curves({"CAM": 80 * np.exp(-xs * 5), "CREAM": 70 - 10 * xs})
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["CAM (max 80.0 at 0.00)", "CREAM (max 70.0 at 0.00)"]
    ys = ax.get_lines()[0].get_ydata()
    assert np.allclose(ys, 80 * np.exp(-xs * 5))
    assert np.allclose(ax.get_lines()[0].get_xdata(), xs)


def test_threshold_curves_bad_input():
    with pytest.raises(ValueError, match="same length"):
        viz.plot_threshold_curves({"a": [1, 2], "b": [1, 2, 3]})
    with pytest.raises(ValueError, match="thresholds must have shape"):
        viz.plot_threshold_curves({"a": [1, 2]}, thresholds=[0.1])
    with pytest.raises(ValueError, match="non-empty mapping"):
        viz.plot_threshold_curves({})


def test_activation_histograms_count_fg_and_bg_pixels():
    maps = [np.array([[0.0, 0.1], [0.9, 1.0]]), np.array([[0.55, 0.55], [0.05, 0.05]])]
    masks = [np.array([[0, 0], [1, 1]], bool), np.array([[1, 255], [0, 0]], np.uint8)]
    fig = viz.plot_activation_histograms({"CAM": maps, "CREAM": maps}, masks, bins=10, log=False)
    assert len(fig.axes) == 2
    ax = fig.axes[0]
    outlines = [p for p in ax.patches if not p.get_fill()]  # bg then fg, as fractions
    bg, edges_bg = outlines[0].get_data()[:2]
    fg, edges_fg = outlines[1].get_data()[:2]
    assert np.allclose(edges_bg, np.linspace(0, 1, 11)) and np.allclose(edges_fg, edges_bg)
    # background: 0.0, 0.1, 0.05, 0.05 -> bins 0,1,0,0 ; the 255 pixel is ignored
    assert np.allclose(bg * 4, [3, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    # foreground: 0.9, 1.0, 0.55 -> bins 9, 9 (last bin closed), 5
    assert np.allclose(fg * 3, [0, 0, 0, 0, 0, 1, 0, 0, 0, 2])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:2] == ["background (4 px)", "foreground (3 px)"]


def test_activation_histograms_bad_input():
    with pytest.raises(ValueError, match=r"maps\['CAM'\] has 1 maps but fg_masks has 2"):
        viz.plot_activation_histograms({"CAM": [np.zeros((2, 2))]}, [np.ones((2, 2))] * 2)
    with pytest.raises(ValueError, match=r"maps\['CAM'\]\[0\] has shape"):
        viz.plot_activation_histograms({"CAM": [np.zeros((3, 2))]}, [np.ones((2, 2))])


def test_example_grid_layout_and_cells():
    imgs = [_grey(20, 30), _grey(25, 25)]
    maps = {"CAM": [np.zeros((5, 5)), np.ones((5, 5))], "CREAM": [np.ones((5, 5))] * 2}
    fig = viz.example_grid(imgs, maps, boxes={"CREAM": [[[1, 1, 10, 10]], [[2, 2, 5, 5]]]},
                           gt_boxes=[[[0, 0, 29, 19]], [[3, 3, 20, 20]]], row_titles=["a", "b"])
    assert len(fig.axes) == 6
    assert [ax.get_title() for ax in fig.axes[:3]] == ["image", "CAM", "CREAM"]
    first = fig.axes[0].get_images()[0].get_array()
    assert first.shape == (20, 30, 3)
    # boxes are bold and outlined (visible on any map colour): the GT box on the plain
    # image, at the top border, reads black (outline), green, black from the edge inwards
    column = [tuple(first[y, 10]) for y in range(4)]
    assert column == [viz.OUTLINE_COLOR, viz.GT_COLOR, viz.GT_COLOR, viz.OUTLINE_COLOR]
    cream = fig.axes[2].get_images()[0].get_array()
    assert tuple(cream[1, 5]) == viz.OUTLINE_COLOR and tuple(cream[2, 5]) == viz.PRED_COLOR


def test_example_grid_bad_input():
    with pytest.raises(ValueError, match=r"maps\['CAM'\] has 1 maps but there are 2 images"):
        viz.example_grid([_grey(), _grey()], {"CAM": [np.zeros((2, 2))]})
    with pytest.raises(ValueError, match=r"boxes\['X'\] has no matching entry"):
        viz.example_grid([_grey()], {"CAM": [np.zeros((2, 2))]}, boxes={"X": [None]})


def test_histogram_threshold_per_method():
    rng = np.random.default_rng(0)
    maps = {"CAM": [rng.random((8, 8))], "CREAM": [rng.random((8, 8))]}
    fg = [np.eye(8, dtype=bool)]
    fig = viz.plot_activation_histograms(maps, fg, threshold={"CAM": 0.31, "CREAM": 0.07})
    lines = [[ln.get_xdata()[0] for ln in ax.get_lines()] for ax in fig.axes]
    assert lines == [[0.31], [0.07]]
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "τ = 0.31" in labels


def test_outlined_box_is_bold_and_visible_at_the_frame_edge():
    """Issue 21: a whole-frame box of ``skcream localize`` on a 128-px image (upsampled to a
    384-px overlay) on the jet colormap's red: from the edge inwards a black band, a 6-px
    red band, a black band, and only then the map (was a 3-px red line, lost on red)."""
    img = np.full((128, 128, 3), 90, dtype=np.uint8)
    heat = np.ones((128, 128))  # red everywhere under jet
    out = np.asarray(viz.overlay(img, heat, boxes=[0, 0, 127, 127], outline=viz.OUTLINE_COLOR,
                                 min_side=384, alpha=1.0))
    assert out.shape[:2] == (384, 384)
    for line in (out[192, :14], out[:14, 192], out[192, ::-1][:14], out[::-1, 192][:14]):
        colours = [tuple(int(v) for v in px) for px in line]
        assert colours[:3] == [viz.OUTLINE_COLOR] * 3
        assert colours[3:9] == [viz.PRED_COLOR] * 6
        assert colours[9:12] == [viz.OUTLINE_COLOR] * 3
        assert colours[12] not in (viz.OUTLINE_COLOR,)  # the map again


def test_one_colour_per_method_in_every_figure():
    """Issue 21: CAM was green and CREAM red in the demo's PNG (priors came first in the
    colour cycle) and blue / orange in the report's: the colour is now the method's."""
    from matplotlib.colors import to_hex

    grid = np.linspace(0, 0.99, 100)
    demo_like = {"centre prior (MaxBoxAccV2 19.8)": grid, "train-box prior (MaxBoxAccV2 20)": grid,
                 "CAM (MaxBoxAccV2 32.8)": grid, "CREAM (MaxBoxAccV2 42.2)": grid}
    report_like = {"CAM": grid, "CREAM": grid, "centre prior": grid}
    for curves in (demo_like, report_like):
        fig = viz.plot_threshold_curves(curves, grid)
        lines = [ln for ln in fig.axes[0].get_lines() if len(ln.get_xdata()) > 1]
        for name, line in zip(curves, lines):
            assert to_hex(line.get_color()) == viz.METHOD_COLORS[name.split(" (")[0]], name
    assert len(set(viz.METHOD_COLORS.values())) == len(viz.METHOD_COLORS)
    others = viz.method_colors(["HaS", "CAM", "ACoL"])
    assert others["CAM"] == viz.METHOD_COLORS["CAM"]
    assert len({others["HaS"], others["ACoL"], others["CAM"]}) == 3
    assert not {others["HaS"], others["ACoL"]} & set(viz.METHOD_COLORS.values())
