"""The embedded demo (``skcream demo``) and the evaluation report it shares with the CLI.

The demo builds the synthetic WSOL benchmark (objects whose class is decided by
a small part, on cluttered backgrounds), fine-tunes a :class:`CREAMLocalizer`
with the offline ImageNet EfficientNet-Lite0, and compares, on the same trained
network and the same test images, three read-outs of the ground-truth class:
plain CAM, the calibrated EM posterior (Eq. 11) and CREAM's final map (Eq. 12).
It prints a table of the protocol's metrics and writes pictures and the model.

Everything is composed from the public layers: the estimator for training,
its fitted ``model_`` / ``context_`` with :func:`skcream.reactivation.reactivate`
for the three read-outs (one forward pass serves all three, so the timings
compare the read-outs on identical features), :mod:`skcream.metrics` for the
numbers and :mod:`skcream.viz` for the pictures.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from skcream._fs import describe, make_dirs

__all__ = [
    "DEMO_FILES",
    "METHODS",
    "MARKER",
    "evaluate_localizer",
    "method_report",
    "prepare_output_dir",
    "readout_maps",
    "run_demo",
]

PROTOCOL_SIZE = 224
#: display name -> ``output`` of :func:`skcream.reactivation.reactivate`
METHODS = {"CAM": "cam", "calibrated": "calibrated", "CREAM": "final"}
#: the marker file that identifies a folder written by the demo
MARKER = ".skcream-demo"
#: every file the demo writes (plus the ``model/`` folder); nothing else is touched
DEMO_FILES = (
    MARKER,
    "results.json",
    "demo_examples.png",
    "demo_threshold_curves.png",
    "demo_histograms.png",
)
#: table columns: key in the report -> header
COLUMNS = {
    "method": "method",
    "max_box_acc_v2": "MaxBoxAccV2",
    "max_box_acc": "MaxBoxAcc",
    "pxap": "PxAP",
    "gt_known_loc": "GT-known Loc",
    "top1_loc": "Top-1 Loc",
    "top1_acc": "Cls acc",
    "threshold": "tau(val)",
    "ms_per_image": "ms/img",
}
_IOU_THRESHOLDS = (30, 50, 70)


# --------------------------------------------------------------------------- output folder
def prepare_output_dir(out: str | Path) -> Path:
    """Create ``out`` for the demo, refusing a folder with files the demo did not make.

    A folder is reused when it is empty or carries the demo's marker file; then only
    :data:`DEMO_FILES` and ``model/`` are (over)written.

    Raises
    ------
    FileExistsError
        When ``out`` is a file, or a non-empty folder without the marker.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is {describe(out)}; give a folder for the demo's "
                              "output")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise FileExistsError(
            f"--out {out} is not empty and was not made by 'skcream demo'; "
            "choose a new or empty folder"
        )
    make_dirs(out, "--out")
    (out / MARKER).write_text("written by 'skcream demo'; the demo may overwrite its own files "
                              "here: " + ", ".join(DEMO_FILES[1:]) + ", model/\n")
    return out


# --------------------------------------------------------------------------- read-outs
def _class_index(localizer: Any, labels: Sequence[Any]) -> np.ndarray:
    """Values of ``classes_`` -> positions (the network's class indices)."""
    lookup = {c.item() if hasattr(c, "item") else c: i for i, c in enumerate(localizer.classes_)}
    out = np.empty(len(labels), dtype=np.int64)
    for i, lab in enumerate(labels):
        key = lab.item() if hasattr(lab, "item") else lab
        if key not in lookup:
            raise ValueError(f"labels[{i}] = {key!r} is not one of the model's classes")
        out[i] = lookup[key]
    return out


def readout_maps(
    localizer: Any,
    data: Any,
    *,
    outputs: Sequence[str] = ("cam", "calibrated", "final"),
    batch_size: int = 32,
    verbose: int = 0,
) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, float]]:
    """Protocol maps of the ground-truth class for several read-outs, in one forward pass.

    Parameters
    ----------
    localizer : CREAMLocalizer
        Fitted (``model_``, ``context_``, ``classes_``, ``data_config_``, ``image_size``).
    data : datasets.Dataset
        Images with a label column (skcream schema).
    outputs : sequence of str
        ``output`` values of :func:`skcream.reactivation.reactivate`.
    batch_size : int
    verbose : int
        A progress bar when > 0.

    Returns
    -------
    maps : dict of str to ndarray (n, 224, 224) float64
        Per output: bicubic upsampling to 224 then min-max (the evaluation pipeline).
    logits : ndarray (n, C) float32
    seconds : dict of str to float
        Wall-clock seconds of the forward pass plus the read-out, per output.
    """
    import torch
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from skcream.data.adapters import ImageSource, TorchImageDataset, collate
    from skcream.data.transforms import EvalTransform
    from skcream.localize import protocol_maps
    from skcream.reactivation import reactivate

    source = ImageSource.from_input(data, image_column=localizer.image_column,
                                    label_column=localizer.label_column,
                                    bbox_column=localizer.bbox_column)
    if source.labels is None:
        raise ValueError("data needs a label column: the maps are those of the true class")
    labels = torch.as_tensor(_class_index(localizer, source.labels))
    cfg = localizer.data_config_
    transform = EvalTransform(size=localizer.image_size, mean=cfg["mean"], std=cfg["std"])
    loader = DataLoader(TorchImageDataset(source, transform, with_boxes=False),
                        batch_size=batch_size, shuffle=False, collate_fn=collate)
    model, context = localizer.model_, localizer.context_
    device = next(model.parameters()).device
    n = len(source)
    maps = {o: np.zeros((n, PROTOCOL_SIZE, PROTOCOL_SIZE)) for o in outputs}
    seconds = dict.fromkeys(outputs, 0.0)
    logits_all = []
    model.eval()
    with torch.no_grad(), tqdm(total=n, desc="maps", unit="img", disable=not verbose,
                               leave=False) as bar:
        for batch in loader:
            index = batch["index"].numpy()
            lab = labels[index].to(device)
            start = time.perf_counter()
            logits, features = model(batch["image"].to(device))
            forward = time.perf_counter() - start
            logits_all.append(logits.float().cpu().numpy())
            fg, bg = context.fg[lab].to(features), context.bg[lab].to(features)
            for o in outputs:
                start = time.perf_counter()
                cams = model.cams(features, lab)
                m = reactivate(features, cams, fg, bg, n_iter=int(localizer.n_iter),
                               sigma=float(localizer.sigma), kernel=localizer.kernel,
                               fg_threshold=float(localizer.fg_threshold), output=o)
                seconds[o] += forward + time.perf_counter() - start
                maps[o][index] = protocol_maps(m.float().cpu(), (PROTOCOL_SIZE, PROTOCOL_SIZE))
            bar.update(len(index))
    return maps, np.concatenate(logits_all), seconds


# --------------------------------------------------------------------------- metrics
def method_report(
    test_maps: np.ndarray,
    test_gt: Sequence[np.ndarray],
    *,
    logits: np.ndarray,
    labels: np.ndarray,
    val_maps: np.ndarray | None = None,
    val_gt: Sequence[np.ndarray] | None = None,
    masks: Sequence[np.ndarray] | None = None,
    interval: float = 0.01,
) -> dict[str, Any]:
    """The protocol's metrics of one kind of map.

    Parameters
    ----------
    test_maps : ndarray (n, 224, 224) in [0, 1]
        Maps of the ground-truth class (GT-known).
    test_gt : sequence of n (k_i, 4)
        Ground-truth boxes in protocol (224) coordinates.
    logits : ndarray (n, C)
        Classifier outputs (Top-1 / Top-5 Loc, classification accuracy).
    labels : ndarray (n,)
        True class indices (columns of ``logits``).
    val_maps, val_gt : optional
        Where the box threshold tau of the threshold-dependent metrics is chosen (best
        single-box accuracy at IoU 0.5); default: on the test maps themselves.
    masks : sequence of n (224, 224) uint8, optional
        0 bg / 1 fg / 255 ignore, for PxAP.

    Returns
    -------
    dict
        ``max_box_acc_v2``, ``max_box_acc``, ``pxap`` (or None), ``gt_known_loc``,
        ``top1_loc``, ``top5_loc``, ``top1_acc`` (percent), ``threshold`` (tau), and the
        curves ``thresholds`` / ``box_acc_v2_curve`` (per tau, mean over IoU 30/50/70).
    """
    from skcream.localize import maps_to_localization
    from skcream.metrics import box_acc_curve, localization_accuracy, pxap

    test_gt = list(test_gt)
    # (3, T) box accuracy per IoU threshold, multi-contour: MaxBoxAccV2 and its curve
    thresholds, multi = box_acc_curve(test_maps, test_gt, iou_thresholds=_IOU_THRESHOLDS,
                                      cam_curve_interval=interval, multi_contour=True)
    # (1, T) single-contour IoU 0.5: the original MaxBoxAcc
    _, single = box_acc_curve(test_maps, test_gt, iou_thresholds=(50,),
                              cam_curve_interval=interval, multi_contour=False)
    if val_maps is None:
        val_maps, val_gt = test_maps, test_gt
    _, single_val = box_acc_curve(val_maps, list(val_gt), iou_thresholds=(50,),
                                  cam_curve_interval=interval, multi_contour=False)
    tau = float(thresholds[int(np.argmax(single_val[0]))])
    pred = maps_to_localization(list(test_maps), tau, np.zeros(len(test_maps), dtype=int))
    k = min(5, logits.shape[1])
    topk = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    loc = localization_accuracy(pred.boxes, test_gt, topk, labels, iou_threshold=50)
    return {
        # MaxBoxAcc(delta) takes the best threshold separately for each delta
        "max_box_acc_v2": float(multi.max(axis=1).mean()),
        "max_box_acc": float(single[0].max()),
        "pxap": None if masks is None else float(pxap(test_maps, list(masks),
                                                      cam_curve_interval=interval)),
        "gt_known_loc": float(loc["gt_known_loc"]),
        "top1_loc": float(loc["top1_loc"]),
        "top5_loc": float(loc["top5_loc"]),
        "top1_acc": float(np.mean(topk[:, 0] == labels) * 100.0),
        "threshold": tau,
        "thresholds": thresholds,
        "box_acc_v2_curve": multi.mean(axis=0),
    }


def evaluate_localizer(model: Any, data: Any, *, batch_size: int = 32,
                       verbose: int = 0, n_jobs: int | None = None) -> dict[str, Any]:
    """The metrics ``skcream evaluate`` prints: the estimator's own protocol evaluation.

    Streaming (one batch of maps at a time); ``n_jobs`` threads for the metrics.

    Returns
    -------
    dict
        MaxBoxAccV2, MaxBoxAcc, PxAP (with masks), Top-1/Top-5/GT-known Loc at the
        model's ``box_threshold_``, classification accuracy (percent), ``threshold``, and
        ``baselines``: the same metrics of plain CAM (``n_iter=0``, same network and
        threshold) and of the image-blind centre prior (threshold-free metrics only), rows
        ``{"centre prior": {...}, "CAM": {...}}``.
    """
    model = model.set_params(batch_size=batch_size, verbose=verbose)
    table = model.evaluate(data, n_jobs=n_jobs, baselines=True)
    report: dict[str, Any] = dict(table.pop("CREAM"))
    report["threshold"] = float(model.box_threshold_)
    report["baselines"] = table
    return report


# --------------------------------------------------------------------------- the demo
def _preset(quick: bool) -> Any:
    """``skcream.presets.QUICK`` or ``DEMO``: data sizes and estimator parameters, chosen and
    measured by the localizer (``benchmarks/bench_localizer.py``)."""
    from skcream.presets import DEMO, QUICK

    return QUICK if quick else DEMO


def _gt_protocol(data: Any) -> tuple[list[np.ndarray], list[np.ndarray] | None, np.ndarray]:
    """GT boxes scaled to 224 the protocol's way, masks resized to 224, labels."""
    from skcream.data.adapters import ImageSource
    from skcream.data.transforms import EvalTransform, resize_mask

    source = ImageSource.from_input(data)
    scaler = EvalTransform(size=PROTOCOL_SIZE)
    boxes = []
    for i in range(len(source)):
        b = source.boxes(i)
        if b is None or len(b) == 0:
            raise ValueError(f"image {i} has no ground-truth box; the demo evaluates boxes")
        boxes.append(scaler.scale_boxes(np.asarray(b, dtype=np.float64), *source.size(i)))
    masks = None
    if source.has_masks:
        masks = [resize_mask(source.mask(i), PROTOCOL_SIZE) for i in range(len(source))]
    return boxes, masks, np.asarray(source.labels)


def _print(verbose: int, *args: Any) -> None:
    if verbose >= 0:
        print(*args, flush=True)


def run_demo(
    out: str | Path = "skcream-demo",
    *,
    quick: bool = False,
    random_state: int = 0,
    device: str | None = None,
    verbose: int = 1,
    n_examples: int = 6,
    threads: int | None = None,
) -> dict[str, Any]:
    """Train CREAM on the synthetic benchmark, compare CAM / calibrated / CREAM, write results.

    Parameters
    ----------
    out : path, default="skcream-demo"
        Output folder (see :func:`prepare_output_dir`): ``results.json``,
        ``demo_examples.png``, ``demo_threshold_curves.png``, ``demo_histograms.png``, the
        HTML report in ``report/`` (:func:`skcream.report.write_report`) and the saved model
        in ``model/``.
    quick : bool, default=False
        ``skcream.presets.QUICK`` instead of ``DEMO``.
    random_state : int, default=0
        Seeds the data (train / val / test use disjoint seeds) and the training.
    device : str, optional
        Torch device (default: CUDA when available).
    verbose : int, default=1
        1: progress bars and the table; 0: the table only; -1: silent.
    n_examples : int, default=6
        Rows of the example grid.
    threads : int, optional
        torch intra-op threads for the run (restored afterwards). Default: the rule of
        :mod:`skcream.threads` (one thread on a machine with at most 2 usable cores, where
        two threads train several times slower; ``SKCREAM_TORCH_THREADS`` overrides it).
        Printed with the load average, because every time the demo reports depends on both.

    Returns
    -------
    dict
        ``rows`` (one report per method, without curves), ``timings`` (seconds per step),
        ``files`` (written paths).
    """
    out = prepare_output_dir(out)  # first: refuse a user's folder before any work
    preset = _preset(quick)
    params = preset.estimator_params()
    from skcream.threads import torch_threads, usable_cores

    with torch_threads(threads) as n_threads:
        _print(verbose, f"torch intra-op threads: {n_threads} ({usable_cores()} usable cores, "
                        f"load average {os.getloadavg()[0]:.2f} at start)")
        result = _run(out, preset, params, random_state=random_state, device=device,
                      verbose=verbose, n_examples=n_examples)
    result["settings"]["threads"] = n_threads
    (out / "results.json").write_text(json.dumps(_jsonable(result), indent=2) + "\n")
    return result


def _run(out: Path, preset: Any, params: dict[str, Any], *, random_state: int,
         device: str | None, verbose: int, n_examples: int) -> dict[str, Any]:
    """The body of :func:`run_demo` (threads already set)."""
    from skcream._tables import format_table
    from skcream.estimators.localizer import CREAMLocalizer
    from skcream.priors import PRIOR_NAMES, box_prior_of, centre_prior, prior_maps
    from skcream.viz import (
        example_grid,
        plot_activation_histograms,
        plot_threshold_curves,
    )

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    seed = int(random_state)
    train, val, test = preset.make_data(random_state=seed)  # disjoint seeds per split
    timings["data"] = time.perf_counter() - t0
    _print(verbose, f"synthetic benchmark: {len(train)} train / {len(val)} val / {len(test)} "
                    f"test images, {len(train.features['label'].names)} classes "
                    f"({timings['data']:.1f} s)")

    t0 = time.perf_counter()
    params.update(device=device, random_state=seed, verbose=max(verbose, 0),
                  validation_data=val)
    model = CREAMLocalizer(**params)
    _print(verbose, f"training CREAMLocalizer(backbone={params.get('backbone')!r}, "
                    f"max_epochs={params.get('max_epochs')}) ...")
    model.fit(train)
    timings["train"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    v = max(verbose, 0)
    val_maps, _, _ = readout_maps(model, val, outputs=tuple(METHODS.values()),
                                  batch_size=model.batch_size, verbose=v)
    test_maps, logits, seconds = readout_maps(model, test, outputs=tuple(METHODS.values()),
                                              batch_size=model.batch_size, verbose=v)
    val_gt, _, _ = _gt_protocol(val)
    test_gt, masks, labels = _gt_protocol(test)
    labels_idx = _class_index(model, labels)
    reports = {}
    # image-blind guardrails: the same metric code on maps that never look at the image
    # (the classifier's logits still give their Top-1 Loc)
    blind = {PRIOR_NAMES["centre"]: centre_prior((PROTOCOL_SIZE, PROTOCOL_SIZE))}
    train_prior = box_prior_of(train, (PROTOCOL_SIZE, PROTOCOL_SIZE))
    if train_prior is not None:
        blind[PRIOR_NAMES["boxes"]] = train_prior
    for name, prior in blind.items():
        reports[name] = method_report(prior_maps(prior, len(test)), test_gt, logits=logits,
                                      labels=labels_idx, val_maps=prior_maps(prior, len(val)),
                                      val_gt=val_gt, masks=masks)
        reports[name].update(top1_acc=None, ms_per_image=None)
    for name, output in METHODS.items():
        reports[name] = method_report(test_maps[output], test_gt, logits=logits,
                                      labels=labels_idx, val_maps=val_maps[output],
                                      val_gt=val_gt, masks=masks)
        reports[name]["ms_per_image"] = 1000.0 * seconds[output] / len(test)
    timings["evaluate"] = time.perf_counter() - t0

    rows = [{"method": name, **{k: v for k, v in r.items()
                                if k not in ("thresholds", "box_acc_v2_curve")}}
            for name, r in reports.items()]
    table = format_table(rows, list(COLUMNS), headers=list(COLUMNS.values()))

    t0 = time.perf_counter()
    files = _write_pictures(out, test, test_maps, test_gt, masks, reports, n_examples,
                            example_grid, plot_threshold_curves, plot_activation_histograms)
    from skcream.report import write_report

    files.append(write_report(  # report/index.html: table, figures, gallery of every image
        out / "report", test, {m: test_maps[o] for m, o in METHODS.items()}, test_gt,
        labels_idx, logits=logits, class_names=test.features["label"].names, masks=masks,
        priors=blind, val_maps={m: val_maps[o] for m, o in METHODS.items()},
        val_gt=val_gt, title="skcream demo: CAM vs CREAM on the synthetic benchmark",
        settings={"Demo": {"preset": preset.name, "seed": seed, **{
            k: v for k, v in params.items() if k != "validation_data"}}, "Data": {
            k: getattr(preset, k) for k in ("n_train", "n_val", "n_test", "n_classes",
                                            "data_size")}}))
    model.save(out / "model", overwrite=True)
    files.append(out / "model")
    timings["write"] = time.perf_counter() - t0
    timings["total"] = sum(timings.values())
    result = {"rows": rows, "timings": timings, "box_threshold": float(model.box_threshold_),
              "settings": {"preset": preset.name, "data": {k: getattr(preset, k) for k in (
                  "n_train", "n_val", "n_test", "n_classes", "data_size")},
                  "localizer": {k: v for k, v in params.items() if k != "validation_data"}},
              "files": [str(f) for f in files + [out / "results.json"]]}
    _print(verbose, "")
    _print(verbose, f"Test set ({len(test)} images), maps of the true class, same network; "
                    "tau chosen on val; the two priors never look at the image:")
    _print(verbose, table)
    _print(verbose, "")
    _print(verbose, "time: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    _print(verbose, f"wrote {', '.join(result['files'])}")
    return result


def _write_pictures(out: Path, test: Any, maps: dict[str, np.ndarray],
                    gt: list[np.ndarray], masks: list[np.ndarray] | None,
                    reports: dict[str, dict[str, Any]], n_examples: int,
                    example_grid: Any, plot_threshold_curves: Any,
                    plot_activation_histograms: Any) -> list[Path]:
    """The three demo figures, in the protocol's 224x224 frame (what the metrics see)."""
    from PIL import Image

    from skcream.data.adapters import ImageSource
    from skcream.localize import maps_to_localization
    from skcream.viz import boxes_to_mask

    source = ImageSource.from_input(test)
    names = test.features["label"].names
    shown = {"CAM": METHODS["CAM"], "CREAM": METHODS["CREAM"]}
    k = min(n_examples, len(source))
    images = [source.image(i).resize((PROTOCOL_SIZE, PROTOCOL_SIZE), Image.BILINEAR)
              for i in range(k)]
    grid_maps = {f"{m} (tau={reports[m]['threshold']:.2f})": list(maps[o][:k])
                 for m, o in shown.items()}
    grid_boxes = {}
    for (m, o), title in zip(shown.items(), grid_maps):
        loc = maps_to_localization(list(maps[o][:k]), reports[m]["threshold"],
                                   np.zeros(k, dtype=int))
        grid_boxes[title] = [b[None] for b in loc.boxes]
    fig = example_grid(images, grid_maps, boxes=grid_boxes, gt_boxes=gt[:k],
                       row_titles=[names[int(source.label(i))] for i in range(k)],
                       cell_size=2.1)
    fig.suptitle("GT box green, predicted box red (threshold chosen on val)", fontsize=9)
    files = [out / "demo_examples.png"]
    fig.savefig(files[-1], dpi=100)

    # The curve at one tau is the mean over IoU 30/50/70 of the box accuracy at that tau;
    # MaxBoxAccV2 (the table) takes the best tau for each IoU separately, so it is >= the
    # curve's peak. The legend gives both, so that the figure and the table agree.
    curves = {f"{m} (MaxBoxAccV2 {r['max_box_acc_v2']:.1f})": r["box_acc_v2_curve"]
              for m, r in reports.items() if m in shown or m.endswith("prior")}
    fig = plot_threshold_curves(
        curves, reports["CAM"]["thresholds"], ylabel="box accuracy at τ, mean of IoU 30/50/70",
        title="Test split: box accuracy over the map threshold τ")
    files.append(out / "demo_threshold_curves.png")
    fig.savefig(files[-1], dpi=100)

    fg = masks if masks is not None else [boxes_to_mask(b, (PROTOCOL_SIZE, PROTOCOL_SIZE))
                                          for b in gt]
    fig = plot_activation_histograms({m: list(maps[o]) for m, o in shown.items()}, fg,
                                     threshold={m: reports[m]["threshold"] for m in shown})
    fig.suptitle("Test split: map values on the object (fg) and on the background (bg); "
                 "dashed: the box threshold τ chosen on val", fontsize=9)
    files.append(out / "demo_histograms.png")
    fig.savefig(files[-1], dpi=100)
    return files


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


# --------------------------------------------------------------------------- demo --methods
def run_methods_demo(
    out: str | Path = "skcream-demo",
    *,
    quick: bool = False,
    random_state: int = 0,
    device: str | None = None,
    verbose: int = 1,
    threads: int | None = None,
) -> dict[str, Any]:
    """The paper's Table 1 on the demo's data: every WSOL method alone and + CREAM.

    Trains CAM, HaS, ACoL, SPG, ADL and CutMix with the demo's budget
    (:func:`skcream.methods.comparison.compare_methods`), prints the table and writes
    ``methods.txt``, ``methods.json`` and ``methods_maps.png`` to ``out``. About six demo
    trainings (ACoL's 1024-wide branches cost about 3x CAM's training on a CPU). ``threads``
    as in :func:`run_demo`.
    """
    from skcream.methods.comparison import compare_methods, format_table, plot_method_maps

    out = prepare_output_dir(out)
    preset = _preset(quick)
    data = preset.make_data(random_state=int(random_state))
    log = (lambda s: _print(verbose, s)) if verbose >= 0 else None
    from skcream.threads import torch_threads

    with torch_threads(threads) as n_threads:
        _print(verbose, f"torch intra-op threads: {n_threads}")
        result = compare_methods(preset, data=data, random_state=int(random_state), log=log,
                                 estimator_params={"device": device})
    table = format_table(result)
    (out / "methods.txt").write_text(table + "\n")
    plot_method_maps(result, data[2], out / "methods_maps.png")
    keep = {k: v for k, v in result.items() if k != "maps"}
    (out / "methods.json").write_text(json.dumps(_jsonable(keep), indent=2) + "\n")
    _print(verbose, "")
    _print(verbose, table)
    _print(verbose, f"wrote {out / 'methods.txt'}, {out / 'methods.json'}, {out / 'methods_maps.png'}")
    return result
