"""The paper's Table 1 on one dataset: every method trained, then read out plain and + CREAM.

:func:`compare_methods` fits one :class:`~skcream.estimators.localizer.CREAMLocalizer` per
method with the same data, budget and seed, and evaluates each on the test split twice with
the *same* network: the method's own map (``n_iter=0``) and its CREAM re-activation
(``n_iter=2``; CREAM never changes training, so no second fit is needed). Beside them, the
image-blind priors of :mod:`skcream.priors` as the floor. :func:`step_costs` measures what a
training step of each method costs relative to CAM, interleaving the methods so that machine
load hits all of them alike. :func:`format_table` prints the result in the layout of the
paper's Table 1; :func:`plot_method_maps` draws one row of maps per method.

Used by ``benchmarks/bench_methods.py`` and ``skcream demo --methods``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["compare_methods", "format_table", "plot_method_maps", "step_costs"]

_METRICS = ("max_box_acc_v2", "pxap", "top1_acc")
#: ``method_params`` when none are given (tests shrink ACoL's branches through it)
_DEFAULT_METHOD_PARAMS: dict[str, Any] | None = None
_NAMES = {"cam": "CAM", "has": "HaS", "acol": "ACoL", "spg": "SPG", "adl": "ADL", "cutmix": "CutMix"}


def _ground_truth(test: Any) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    from skcream.data.adapters import ImageSource
    from skcream.data.transforms import resize_mask
    from skcream.estimators.localizer._inference import protocol_gt_boxes

    source = ImageSource.from_input(test)
    gt = [protocol_gt_boxes(source.boxes(i), source.size(i), i) for i in range(len(source))]
    masks = None
    if source.has_masks:
        masks = [resize_mask(source.mask(i), 224) for i in range(len(source))]
    return gt, masks


def _prior_rows(train: Any, test: Any) -> dict[str, dict[str, float]]:
    from skcream import metrics as M
    from skcream.data.adapters import ImageSource
    from skcream.priors import PRIOR_NAMES, box_prior, centre_prior, prior_maps

    gt, masks = _ground_truth(test)
    src = ImageSource.from_input(train)
    boxes = [src.boxes(i) for i in range(len(src))]
    sizes = [src.size(i) for i in range(len(src))]
    rows = {}
    for key, prior in (("centre", centre_prior()), ("boxes", box_prior(boxes, sizes))):
        maps = prior_maps(prior, len(gt))
        row = {"max_box_acc_v2": float(M.max_box_acc_v2(maps, gt))}
        if masks is not None:
            row["pxap"] = float(M.pxap(maps, masks))
        rows[PRIOR_NAMES[key]] = row
    return rows


def compare_methods(
    preset: Any,
    methods: Sequence[str] | None = None,
    *,
    data: tuple[Any, Any, Any] | None = None,
    method_params: dict[str, Any] | None = None,
    estimator_params: dict[str, Any] | None = None,
    random_state: int = 0,
    n_iter: int = 2,
    figure_images: int = 4,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Train every method on ``preset``'s data and budget; evaluate plain and + CREAM.

    Parameters
    ----------
    preset : skcream.presets.Preset
        Data sizes and estimator parameters (e.g. ``DEMO``).
    methods : sequence of str, optional
        Default: all of :data:`skcream.methods.METHODS`, CAM first.
    data : (train, val, test), optional
        Default: ``preset.make_data(random_state)``.
    method_params : dict, optional
        Passed to every estimator (keys of other methods are ignored by each).
    estimator_params : dict, optional
        Other :class:`CREAMLocalizer` parameters overriding the preset's (e.g. ``device``).
    n_iter : int, default=2
        CREAM's T for the "+ CREAM" columns.
    figure_images : int, default=4
        Test images whose maps are kept for :func:`plot_method_maps`.

    Returns
    -------
    dict
        ``rows``: {method: {"plain": metrics, "cream": metrics, "fit_seconds",
        "epoch_seconds" (median wall), "epoch_cpu_seconds", "context_seconds"}}; ``priors``: {name: metrics};
        ``maps``: {method: {"plain": list, "cream": list}} of original-size maps of the
        figure images; ``figure_index``; ``threads``, ``loadavg``; ``diverged``: {method:
        message} for the methods whose training diverged (no row, no maps).
    """
    from skcream.methods import METHODS

    methods = list(METHODS) if methods is None else list(methods)
    if method_params is None:
        method_params = _DEFAULT_METHOD_PARAMS
    train, val, test = preset.make_data(random_state) if data is None else data
    out: dict[str, Any] = {"rows": {}, "maps": {}, "diverged": {},
                           "threads": torch.get_num_threads()}
    out["priors"] = _prior_rows(train, test)
    index = list(range(min(figure_images, len(test))))
    out["figure_index"] = index
    figure_set = test.select(index)
    for m in methods:
        est = preset.estimator(**{"random_state": random_state, "verbose": 0,
                                  **(estimator_params or {}),
                                  "method": m, "method_params": method_params})
        tic, cpu = time.perf_counter(), time.process_time()
        try:
            est.fit(train)
        except FloatingPointError as exc:  # a method that diverges at this budget is reported
            out["diverged"][m] = str(exc)
            if log is not None:
                log(f"{_NAMES.get(m, m):7s} diverged: {exc}")
            continue
        fit_s = time.perf_counter() - tic
        row: dict[str, Any] = {"fit_seconds": fit_s}
        # CPU seconds of this process (one thread, in-process data loading): unlike wall
        # time, not inflated by other jobs on a shared machine
        row["epoch_cpu_seconds"] = (time.process_time() - cpu) / len(est.history_)
        row["epoch_seconds"] = float(np.median([r["seconds"] for r in est.history_]))
        row["context_seconds"] = float(sum(r.get("context_seconds", 0.0) for r in est.history_))
        maps = {}
        for key, t in (("plain", 0), ("cream", n_iter)):
            est.set_params(n_iter=t)
            metrics = [k for k in _METRICS if k != "pxap" or "mask" in test.column_names]
            row[key] = est.evaluate(test, metrics=metrics)
            maps[key] = list(est.localize(figure_set).maps)
        out["rows"][m] = row
        out["maps"][m] = maps
        if log is not None:
            log(f"{_NAMES.get(m, m):7s} fit {fit_s:6.1f}s  MaxBoxAccV2 "
                f"{row['plain']['max_box_acc_v2']:5.1f} -> {row['cream']['max_box_acc_v2']:5.1f} "
                f"(+CREAM)  top-1 {row['plain']['top1_acc']:5.1f}")
    out["loadavg"] = os.getloadavg()
    return out


def step_costs(
    preset: Any,
    methods: Sequence[str] | None = None,
    *,
    method_params: dict[str, Any] | None = None,
    rounds: int = 4,
    steps: int = 2,
) -> dict[str, float]:
    """Seconds per training step of each method (median), measured interleaved.

    One step = the method's forward (with its input hook), its loss, backward, an SGD step and
    CREAM's context update from the method's readout, on a random batch of ``preset``'s batch
    size and image size, in training mode. The methods run in turn ``rounds`` times (``steps``
    steps each, the order rotated every round) and each step is timed in CPU seconds of this
    process, so that other jobs on a shared machine affect all of them alike (use one torch
    thread); divide by CAM's for the relative cost of an epoch (data loading, the same for
    all, is left out).

    Returns
    -------
    dict of method -> CPU seconds per step (median over rounds x steps)
    """
    from skcream.context import ContextEmbeddings
    from skcream.methods import METHODS, get_method

    methods = list(METHODS) if methods is None else list(methods)
    gen = torch.Generator().manual_seed(0)
    size = preset.image_size
    x = torch.randn(preset.batch_size, 3, size, size, generator=gen)
    y = torch.randint(0, preset.n_classes, (preset.batch_size,), generator=gen)
    batch = {"image": x, "label": y}
    setups = {}
    for m in methods:
        method = get_method(m, method_params)
        net = method.build(preset.backbone, preset.pretrained, n_classes=preset.n_classes,
                           feature_stage=preset.feature_stage).train()
        ctx = ContextEmbeddings(preset.n_classes, net.readout_dim, random_state=0)
        opt = torch.optim.SGD(net.parameters(), lr=1e-4, momentum=0.9)
        setups[m] = (method, net, ctx, opt)
    times: dict[str, list[float]] = {m: [] for m in methods}
    order = list(setups)
    for r in range(rounds):
        for m in order[r % len(order):] + order[: r % len(order)]:
            method, net, ctx, opt = setups[m]
            for _ in range(steps):
                tic = time.process_time()
                outputs = method.forward(net, batch)
                method.loss(outputs, batch).backward()
                opt.step()
                opt.zero_grad()
                with torch.no_grad():
                    feats, cams = net.readout(outputs[1], y)
                    ctx.update(feats, cams, y)
                times[m].append(time.process_time() - tic)
    return {m: float(np.median(t)) for m, t in times.items()}


def format_table(result: dict[str, Any], costs: dict[str, float] | None = None) -> str:
    """The comparison in the layout of the paper's Table 1.

    One block for the methods alone and one for the methods + CREAM; per row MaxBoxAccV2,
    PxAP (when the data has masks) and top-1 accuracy (percent), the difference of each
    localization number to the CAM row of the same block, and the training cost (the fit's
    CPU seconds per epoch and its ratio to CAM's; with ``costs`` also the interleaved per-step
    CPU cost relative to CAM). The "+ CREAM" block adds the gain over the same method alone. The blind priors
    close the table.
    """
    rows = result["rows"]
    has_pxap = any("pxap" in r["plain"] for r in rows.values())
    cam = rows.get("cam")
    lines = []
    head = f"{'Method':18s} {'MaxBoxAccV2':>11s} {'vs CAM':>7s}"
    if has_pxap:
        head += f" {'PxAP':>6s} {'vs CAM':>7s}"
    head += f" {'Top-1':>6s} {'CPU s/ep':>8s} {'xCAM':>5s}"
    if costs:
        head += f" {'step xCAM':>9s}"
    head_cream = head + f" {'CREAM gain (box / PxAP)':>24s}"
    for block, title in (("plain", head), ("cream", head_cream)):
        lines.append(title)
        lines.append("-" * len(title))
        for m, r in rows.items():
            v = r[block]
            name = _NAMES.get(m, m) + (" + CREAM" if block == "cream" else "")
            box = v["max_box_acc_v2"]
            d_box = box - cam[block]["max_box_acc_v2"] if cam else float("nan")
            line = f"{name:18s} {box:11.1f} {d_box:+7.1f}"
            if has_pxap:
                px = v.get("pxap", float("nan"))
                d_px = px - cam[block].get("pxap", float("nan")) if cam else float("nan")
                line += f" {px:6.1f} {d_px:+7.1f}"
            ep = r.get("epoch_cpu_seconds", r["epoch_seconds"])
            ep_cam = cam.get("epoch_cpu_seconds", cam["epoch_seconds"]) if cam else float("nan")
            line += f" {v['top1_acc']:6.1f} {ep:8.1f} {ep / ep_cam:5.2f}"
            if costs:
                ratio = costs.get(m, float("nan")) / costs["cam"] if "cam" in costs else float("nan")
                line += f" {ratio:9.2f}"
            if block == "cream":
                gain = box - r["plain"]["max_box_acc_v2"]
                gain_px = v.get("pxap", float("nan")) - r["plain"].get("pxap", float("nan"))
                line += f" {gain:+11.1f} / {gain_px:+5.1f}" if has_pxap else f" {gain:+11.1f}"
            lines.append(line)
        lines.append("")
    for name, v in result["priors"].items():
        line = f"{name + ' (image-blind)':30s} MaxBoxAccV2 {v['max_box_acc_v2']:5.1f}"
        if "pxap" in v:
            line += f"  PxAP {v['pxap']:5.1f}"
        lines.append(line)
    for m, message in result.get("diverged", {}).items():
        lines.append(f"{_NAMES.get(m, m)}: no row, {message}")
    return "\n".join(lines)


def plot_method_maps(result: dict[str, Any], test: Any, path: str | os.PathLike) -> None:
    """One row per method: for each figure image, its map alone and + CREAM (PNG at ``path``).

    Maps are overlaid on the image with the ground-truth box (green).
    """
    from matplotlib.figure import Figure

    from skcream.data.adapters import ImageSource
    from skcream.viz import overlay

    source = ImageSource.from_input(test)
    index = result["figure_index"]
    methods = list(result["maps"])
    cols = 2 * len(index)
    fig = Figure(figsize=(1.3 * cols, 1.45 * len(methods)), layout="constrained")
    axes = fig.subplots(len(methods), cols, squeeze=False)
    for r, m in enumerate(methods):
        for j, i in enumerate(index):
            for k, key in enumerate(("plain", "cream")):
                ax = axes[r, 2 * j + k]
                img = overlay(source.image(i), result["maps"][m][key][j], gt_boxes=source.boxes(i))
                ax.imshow(img)
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title("alone" if key == "plain" else "+ CREAM", fontsize=8)
                if j == 0 and k == 0:
                    ax.set_ylabel(_NAMES.get(m, m), fontsize=9)
    tmp = f"{os.fspath(path)}.tmp.png"
    fig.savefig(tmp, dpi=80)
    os.replace(tmp, path)
