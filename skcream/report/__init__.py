"""``skcream report``: an evaluation you can look through, as a self-contained static page.

:func:`write_report` turns protocol maps (224x224, ground-truth class) and the ground truth
into a folder that opens from the file system in any browser (no server, no network, no
external script or font)::

    OUT/index.html        metric table, settings, figures, the gallery and its script
    OUT/img/00000.jpg     per image: the image, then each gallery method's map over it
    OUT/img/00000_t.jpg   the same strip at half size (lazy-loaded thumbnail)
    OUT/threshold_curves.png, OUT/histograms.png   paper Fig. 6 and Fig. 1

:meth:`skcream.CREAMLocalizer.report` and ``skcream report --model DIR --data SPEC --out DIR``
compute the maps of a fitted localizer and call it; the demo writes one beside its PNGs.
"""

from __future__ import annotations

import datetime
import os
import platform
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from skcream._fs import describe
from skcream.report._compute import HIT_IOU, MethodResult, evaluate_methods
from skcream.viz import method_colors

__all__ = ["HIT_IOU", "MARKER", "MethodResult", "default_priors", "priors_from_data",
           "write_report"]

#: marker file of a folder written by :func:`write_report` (only such folders are replaced)
MARKER = ".skcream-report"
#: the histogram figure uses at most this many images (evenly spaced), to bound memory
HIST_IMAGES = 300
_PROTOCOL = 224


def default_priors(train_boxes: Sequence[np.ndarray] | None = None,
                   train_sizes: Sequence[tuple[int, int]] | None = None) -> dict[str, np.ndarray]:
    """The image-blind prior maps of the table: the centre prior, and the train-box prior
    when training boxes (original pixels) and image sizes (W, H) are given."""
    from skcream.priors import PRIOR_NAMES, box_prior, centre_prior

    priors = {PRIOR_NAMES["centre"]: centre_prior((_PROTOCOL, _PROTOCOL))}
    if train_boxes is not None:
        if train_sizes is None:
            raise ValueError("train_sizes (W, H) per image is needed with train_boxes")
        priors[PRIOR_NAMES["boxes"]] = box_prior(list(train_boxes), list(train_sizes),
                                                 (_PROTOCOL, _PROTOCOL))
    return priors


def priors_from_data(train: Any = None, *, bbox_column: str = "bboxes") -> dict[str, np.ndarray]:
    """:func:`default_priors` with the train-box prior counted from ``train``'s boxes.

    Parameters
    ----------
    train : datasets.Dataset (or ImageSource) with a bbox column, optional
        None gives the centre prior only.
    bbox_column : str, default="bboxes"

    Raises
    ------
    ValueError
        When ``train`` is given but holds no box.
    """
    from skcream.priors import PRIOR_NAMES, box_prior_of

    priors = default_priors()
    if train is None:
        return priors
    prior = box_prior_of(train, (_PROTOCOL, _PROTOCOL), bbox_column=bbox_column)
    if prior is None:
        raise ValueError(f"train has no boxes in {bbox_column!r}: the train-box prior counts them")
    priors[PRIOR_NAMES["boxes"]] = prior
    return priors


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"out {out} is {describe(out)}; give a folder for the report")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise FileExistsError(f"out {out} is not empty and was not written by skcream report; "
                              "choose a new or empty folder")


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def _check_inputs(n: int, maps: Mapping[str, Any], gt: Sequence[Any], labels: np.ndarray,
                  logits: Any, masks: Any, gallery: Sequence[str]) -> None:
    if n == 0:
        raise ValueError("images is empty: the report needs at least one image")
    if not isinstance(maps, Mapping) or not maps:
        raise ValueError("maps must be a non-empty mapping of method name -> (n, 224, 224) maps")
    for name, m in maps.items():
        shape = np.shape(m)
        if shape != (n, _PROTOCOL, _PROTOCOL):
            raise ValueError(f"maps[{name!r}] must have shape ({n}, 224, 224) (protocol maps "
                             f"of the n images), got {shape}")
    if len(gt) != n:
        raise ValueError(f"gt_boxes has {len(gt)} entries for {n} images")
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {labels.shape}")
    if logits is not None and (np.ndim(logits) != 2 or np.shape(logits)[0] != n):
        raise ValueError(f"logits must have shape ({n}, n_classes), got {np.shape(logits)}")
    if masks is not None and len(masks) != n:
        raise ValueError(f"masks has {len(masks)} entries for {n} images")
    bad = [g for g in gallery if g not in maps]
    if bad or not gallery:
        raise ValueError(f"gallery must name methods of maps {list(maps)}, got {list(gallery)}")


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("skcream", "torch", "timm", "numpy", "scikit-learn", "opencv-python-headless"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def write_report(
    out: str | os.PathLike,
    images: Any,
    maps: Mapping[str, np.ndarray],
    gt_boxes: Sequence[np.ndarray],
    labels: Any,
    *,
    logits: np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    masks: Sequence[np.ndarray] | None = None,
    priors: Mapping[str, np.ndarray] | None = None,
    thresholds: Mapping[str, float] | None = None,
    val_maps: Mapping[str, np.ndarray] | None = None,
    val_gt: Sequence[np.ndarray] | None = None,
    gallery: Sequence[str] | None = None,
    judge: str | None = None,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    title: str = "skcream evaluation report",
    interval: float = 0.01,
    verbose: int = 0,
) -> Path:
    """Write the report folder (``index.html`` + images); see the module docstring.

    Parameters
    ----------
    out : path
        The folder. A new or empty folder, or an earlier report (it is replaced only when
        the new one is complete).
    images : datasets.Dataset or sequence of PIL images / arrays / paths
        The n evaluated images (any size; shown resized to 224x224, the protocol's frame).
    maps : mapping of str to ndarray (n, 224, 224)
        Protocol maps of the ground-truth class per method, e.g. ``{"CAM": ..., "CREAM": ...}``.
    gt_boxes : sequence of n ndarrays (k_i, 4)
        Ground-truth boxes in the 224 frame (``int(x * 224 / W)``).
    labels : array-like (n,) int
        True class indices (columns of ``logits``, positions in ``class_names``).
    logits : ndarray (n, C), optional
        Classifier scores: predicted class, Top-1 / Top-5 Loc, accuracy.
    class_names : sequence of str, optional
        Default: the indices.
    masks : sequence of n (224, 224) uint8, optional
        0 bg / 1 fg / 255 ignore: PxAP, and the histograms' foreground (else the GT boxes).
    priors : mapping of str to ndarray (224, 224), optional
        Image-blind prior maps (table rows and curves); default :func:`default_priors` (the
        centre prior). Pass ``{}`` for none.
    thresholds : mapping of str to float, optional
        A fixed tau per method (e.g. the model's ``box_threshold_``). Others are chosen on
        ``val_maps`` / ``val_gt`` when given, else on the evaluated images themselves; the
        table says which.
    val_maps, val_gt : optional
        Validation maps per method (n_val, 224, 224) and boxes.
    gallery : sequence of str, optional
        Methods shown in the gallery (default: "CAM" and "CREAM" when present, else all).
    judge : str, optional
        The gallery method that sorting and the hit/miss filter follow, at its own threshold
        (default: the last gallery method). Every gallery method has its own threshold
        slider, starting at its tau of the table.
    settings : mapping of section -> mapping, optional
        Shown under Settings (model, data, ...); versions and the date are added.
    title : str
    interval : float, default=0.01
        The threshold grid of the curves and the slider.
    verbose : int, default=0
        1: a progress bar while the images are written.

    Returns
    -------
    Path
        ``out / "index.html"``.
    """
    from tqdm.auto import tqdm

    from skcream.data.adapters import ImageSource
    from skcream.persistence import new_staging_dir, publish_dir
    from skcream.report import _images, _page

    out = Path(out)
    _check_out(out)  # before any work
    try:
        source = ImageSource.from_input(images)
    except (TypeError, ValueError) as exc:  # its messages call the argument X
        raise type(exc)(f"images: {exc}") from None
    n = len(source)
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    gt = [np.asarray(g, dtype=np.float64).reshape(-1, 4) for g in gt_boxes]
    if gallery is None:
        gallery = [m for m in ("CAM", "CREAM") if m in maps] or list(maps)
    gallery = list(gallery)
    _check_inputs(n, maps, gt, labels, logits, masks, gallery)
    judge = gallery[-1] if judge is None else judge
    if judge not in gallery:
        raise ValueError(f"judge must be one of the gallery methods {gallery}, got {judge!r}")
    priors = default_priors() if priors is None else dict(priors)
    for arg, keys, known in (("thresholds", thresholds, [*maps, *priors]),
                             ("val_maps", val_maps, list(maps))):
        unknown = [k for k in (keys or {}) if k not in known]
        if unknown:
            raise ValueError(f"{arg} names {unknown}, which are not among {known}")
    if (val_maps is None) != (val_gt is None):
        raise ValueError("val_maps and val_gt go together: give both or neither")
    n_classes = int(max(labels.max() + 1, 0 if logits is None else np.shape(logits)[1]))
    names = [str(c) for c in (class_names if class_names is not None else range(n_classes))]
    if labels.min() < 0 or len(names) < n_classes:
        raise ValueError(f"labels must be class indices in [0, {len(names)}) (class_names has "
                         f"{len(names)} names; labels/logits need {n_classes}), got "
                         f"[{labels.min()}, {labels.max()}]")

    curve_grid, grid, results = evaluate_methods(
        maps, priors, gt, labels=labels, logits=logits, masks=masks, thresholds=thresholds,
        val_maps=val_maps, val_gt=None if val_gt is None else list(val_gt), interval=interval)
    taus = {m: int(np.argmin(np.abs(grid - r.row["threshold"]))) for m, r in results.items()}
    # decimals that show every slider threshold exactly (2 on the 0.01 grid)
    digits = next((d for d in (2, 3, 4) if np.allclose(np.round(grid, d), grid, rtol=0,
                                                        atol=1e-9)), 6)

    tmp = new_staging_dir(out)  # built beside out, published in one step when complete
    (tmp / "img").mkdir()
    try:
        (tmp / MARKER).write_text("written by skcream report; it may replace this folder\n")
        for i in tqdm(range(n), desc="report images", unit="img", disable=verbose < 1,
                      leave=False):
            strip = _images.make_strip(source.image(i), [maps[m][i] for m in gallery])
            _images.write_strips(tmp / "img", i, strip)
        step = max(1, int(np.ceil(n / HIST_IMAGES)))
        keep = np.arange(0, n, step)
        figures = _images.write_figures(
            tmp, curve_grid, {m: r.curve for m, r in results.items()},
            {m: results[m].row["threshold"] for m in gallery},
            {m: np.asarray(maps[m])[keep] for m in gallery}, [gt[i] for i in keep],
            None if masks is None else [masks[i] for i in keep])
        pred = None if logits is None else np.asarray(logits).argmax(axis=1)
        ids = [source.image_id(i) for i in range(n)]
        data = _page.gallery_data(
            grid=grid, results=results, methods=gallery, judge=judge, taus=taus, labels=labels, pred=pred, class_names=names, ids=ids, gt=gt,
            strip=_images.strip_size(1 + len(gallery)), panel=_images.PANEL, pad=_images.PAD,
            thumb_scale=_images.THUMB_SCALE, digits=digits)
        colours = method_colors(list(results))
        date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        versions = _versions()
        all_settings = {**(settings or {}),
                        "Evaluation": {
                            "images": n, "frame": "224x224, GT-known maps (bicubic, min-max)",
                            "threshold grid": f"np.arange(0, 1, {interval:g})",
                            "hit": f"single-contour box, IoU >= {HIT_IOU}",
                            **{f"tau ({m})": f"{r.row['threshold']:.4g} "
                                             f"({r.row['threshold_source']})"
                               for m, r in results.items()}},
                        "Run": {"date": date, **versions}}
        fields = {
            "title": html_escape(title),
            "subtitle": html_escape(f"{n} images, {len(names)} classes; maps: "
                                    f"{', '.join(maps)}; blind priors: "
                                    f"{', '.join(priors) or 'none'}"),
            "table": _page.metric_table(results, with_pxap=masks is not None),
            "table_notes": html_escape(_table_notes(results)),
            "curves": figures["curves"], "histograms": figures["histograms"],
            "curve_names": html_escape(", ".join(results)),
            "hist_names": html_escape(", ".join(gallery)),
            "hist_caption": html_escape(
                "Fraction of object (fg) and background (bg) pixels per map value (paper "
                "Fig. 1); fg = " + ("the masks" if masks is not None else "inside a GT box")
                + (f"; {len(keep)} of {n} images, evenly spaced" if step > 1 else "")),
            "method_list": html_escape(" and ".join(gallery)),
            "summary": " &middot; ".join(
                f'{_page.swatch(colours[m])}{html_escape(m)}: '
                f'<output data-method="{html_escape(m)}"></output>' for m in gallery),
            "settings": _page.settings_list(all_settings),
            "version": html_escape(versions.get("skcream", "")),
            "date": html_escape(date),
        }
        _write_text(tmp / "index.html", _page.render(fields, data))
        publish_dir(tmp, out, replace=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out / "index.html"


def html_escape(text: str) -> str:
    import html

    return html.escape(str(text))


def _table_notes(results: Mapping[str, MethodResult]) -> str:
    sources = {"given": "fixed (e.g. the model's box_threshold_)",
               "val": "chosen on the validation images",
               "test": "chosen on these images (optimistic)"}
    used = sorted({r.row["threshold_source"] for r in results.values()})
    text = ("MaxBoxAccV2: mean over IoU 0.3/0.5/0.7 of the best box accuracy over thresholds, "
            "every contour. MaxBoxAcc: IoU 0.5, largest contour. GT-known / Top-1 / Top-5 Loc: "
            "the largest contour's box at tau with IoU >= 0.5 (and the right class in the top "
            "1 / 5). tau: " + "; ".join(f"{s} = {sources[s]}" for s in used) + ".")
    if any(r.blind for r in results.values()):
        text += (" Blind priors (italic) are one map for every image; their Top-k Loc use "
                 "the model's classes, they have no accuracy of their own.")
    return text
