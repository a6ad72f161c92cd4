"""CREAM_Reg on the synthetic benchmark: pseudo-box quality, and both regressor architectures
beside CREAM_Base, CAM and image-blind boxes.

One run, same data, same backbone (EfficientNet-Lite0 with its offline ImageNet weights):

1. CREAM_Base (``CREAMLocalizer``) configured from ``skcream.presets.DEMO`` (data sizes,
   ``feature_stage=3``, 128 px, 8 epochs) is trained on the training split; its box
   threshold is chosen on the validation split (the protocol's ``val``).
2. Pseudo-box quality (paper Table 6): GT-known Loc of the pseudo boxes of the training
   images, generated at ``2 x image_size`` input (the paper's 448 for 224) and, for
   comparison, at ``image_size``; and their size relative to the ground truth.
3. For each architecture of ``PseudoBoxRegressor`` (from the same ImageNet weights, as in
   the paper) a regressor is trained on the pseudo boxes (CREAM_Reg):
   ``"psol"``, the released CREAM_Reg (the classifier with its last layer replaced by the
   box head, random resized crops overlapping the box, the 146 -> 128 centre crop at test
   time, the DEMO's 256 -> 224), and ``"gap"`` (GAP head on the backbone, whole image, flip
   only). ``--oracle`` also trains each on the ground-truth boxes of the same images.
4. On the test split, in one frame for every row (the protocol's: boxes in original pixels
   scaled to 224, ground truth ``int(x * 224 / W)``, inclusive IoU >= 0.5, over images):
   GT-known / Top-1 / Top-5 Loc of CREAM_Base, CAM (``n_iter=0``, same network; its box
   threshold chosen on val for CAM, and at CREAM_Base's), both regressors (class from CREAM_Base's classifier), and the image-blind
   boxes (the mean training pseudo box / GT box, relative to the image, on every test
   image). Then the ``"psol"`` regressor in its own frame as the reference counts it
   (``CREAMReg.evaluate``: centre crop, IoU > 0.5, per class then over classes) beside
   the blind mean pseudo box in that frame.

Run::

    python benchmarks/bench_regressor.py            # CREAM_Base + the two regressors
    python benchmarks/bench_regressor.py --oracle   # + regressors on GT boxes (10.6 min CPU)
    python benchmarks/bench_regressor.py --quick    # smaller, for a smoke run

With 4 classes Top-5 Loc equals GT-known Loc (every class is in the top 5).

Measured results are in ``benchmarks/README.md`` (section "CREAM_Reg").
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch

from skcream.estimators import _boxes_target as bt
from skcream.estimators.regressor import CREAMReg, PseudoBoxRegressor
from skcream.metrics import localization_accuracy
from skcream.presets import DEMO, QUICK, Preset

#: regressor training, both architectures: from ImageNet weights (as in the paper), SGD at
#: one lr for backbone and head (head_lr_mult=1: at 10x the "gap" head collapsed to one
#: constant box in a trial), constant lr
REG_EPOCHS = 8
REG_LR = 1e-2
ARCHITECTURES = ("psol", "gap")
METRICS = ("gt_known_loc", "top1_loc", "top5_loc", "top1_acc")


def regressor_params(preset: Preset, architecture: str, epochs: int, lr: float) -> dict:
    """``PseudoBoxRegressor`` keyword arguments for a preset's backbone and input size.

    ``"psol"``: the released recipe's frames at the preset's size (random resized crops of
    ``image_size``; the test image resized to ``resize_size``, centre crop ``image_size``).
    ``"gap"``: the plain network (``modification="none"``), whole image in, flip only
    (``resize_size = image_size``: no crop, so training and test see the same framing).
    """
    common = dict(backbone=preset.backbone, architecture=architecture,
                  pretrained=preset.pretrained, image_size=preset.image_size, flip=True,
                  max_epochs=epochs, batch_size=preset.batch_size, lr=lr, head_lr_mult=1.0,
                  lr_step=None, random_state=0, verbose=0)
    if architecture == "gap":
        return {**common, "modification": "none", "resize_size": preset.image_size}
    return {**common, "resize_size": preset.resize_size}


def protocol_scores(boxes: np.ndarray, dataset, scores: np.ndarray | None = None) -> dict:
    """GT-known / Top-1 / Top-5 Loc (percent) of one box per image (original pixels) in the
    protocol's 224 frame; classes ranked by ``scores`` (n, C) (None: GT-known only)."""
    pred, gt = [], []
    for box, row in zip(boxes, dataset):
        w, h = row["image"].size
        scale = np.array([224 / w, 224 / h, 224 / w, 224 / h])
        pred.append(np.asarray(box, float) * scale)
        gt.append(np.trunc(np.asarray(row["bboxes"], float).reshape(-1, 4) * scale))
    labels = np.asarray(dataset["label"])
    if scores is None:
        topk = labels[:, None]
    else:
        topk = np.argsort(-np.asarray(scores), axis=1, kind="stable")[:, :5]
    return localization_accuracy(np.array(pred), gt, topk, labels)


def unit_boxes(boxes: np.ndarray, dataset) -> np.ndarray:
    """Boxes (n, 4) in original pixels -> divided by each image's (W, H)."""
    sizes = np.array([row["image"].size for row in dataset], dtype=float)
    return np.asarray(boxes, float) / np.concatenate([sizes, sizes], axis=1)


def constant_boxes(unit_box: np.ndarray, dataset) -> np.ndarray:
    """The same relative box on every image (a blind box), in original pixels."""
    sizes = np.array([row["image"].size for row in dataset], dtype=float)
    return unit_box[None, :] * np.concatenate([sizes, sizes], axis=1)


def psol_frame_blind_gt_known(reg: PseudoBoxRegressor, train, pseudo, test) -> float:
    """GT-known Loc (percent, per class then over classes) in the ``"psol"`` frame of one
    fixed crop box for every test image: the mean of the training pseudo boxes in the crop."""
    arch = reg._arch()
    crop = arch.eval_transform(reg, reg.data_config_)
    sizes = [row["image"].size for row in train]
    in_crop = np.concatenate([crop.transform_boxes(b, w, h) for b, (w, h) in zip(pseudo, sizes)])
    mean = in_crop.mean(axis=0) / crop.crop
    source = reg._source(test)
    hits = arch.hits(np.repeat(mean[None], len(test), axis=0), reg._gt_frame(source, None), reg)
    truth = np.asarray(test["label"])
    one_hot = np.eye(int(truth.max()) + 1)[truth]  # GT-known needs no class
    return bt.hit_scores(one_hot, hits, truth, per_class=True)["gt_known_loc"]


def cam_with_own_threshold(loc, val):
    """The fitted localizer read out as CAM (``n_iter=0``) with the box threshold chosen for
    CAM on ``val`` by the localizer's own rule (best single-contour box accuracy at IoU 0.5,
    ties to the smallest threshold), not CREAM's."""
    thresholds, curve = loc.threshold_curve(val, n_iter=0, iou_threshold=50, multi_contour=False)
    cam = copy.copy(loc)  # shares the network; only the threshold differs
    cam.set_params(box_threshold=float(thresholds[int(np.argmax(curve))]))
    return cam


def iou_hit_rate(a: np.ndarray, b: np.ndarray) -> float:
    """Percent of rows whose continuous IoU (no +1) of boxes ``a`` and ``b`` (n, 4) is >= 0.5."""
    iw = (np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])).clip(min=0)
    ih = (np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])).clip(min=0)
    inter = iw * ih
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    union = area(a) + area(b) - inter
    return float(np.mean(inter >= 0.5 * union) * 100.0)


def mean_area(unit: np.ndarray) -> float:
    """Mean box area as a share of the image."""
    return float(np.mean((unit[:, 2] - unit[:, 0]) * (unit[:, 3] - unit[:, 1])))


def _row(name: str, r: dict) -> str:
    cells = [f"{r[k]:10.2f}" if k in r else f"{'':10s}" for k in METRICS]
    return f"  {name:58s}" + "".join(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reg-epochs", type=int, default=REG_EPOCHS)
    parser.add_argument("--reg-lr", type=float, default=REG_LR)
    parser.add_argument("--architectures", nargs="+", choices=ARCHITECTURES,
                        default=list(ARCHITECTURES))
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: on a shared CPU, more threads "
                        "oversubscribe and run many times slower)")
    parser.add_argument("--oracle", action="store_true",
                        help="also train the regressors on the ground-truth boxes (upper bound)")
    parser.add_argument("--quick", action="store_true", help="the QUICK preset, 2 regressor epochs")
    args = parser.parse_args()
    preset = QUICK if args.quick else DEMO
    if args.quick:
        args.reg_epochs = 2
    torch.set_num_threads(args.threads)
    tic0 = time.perf_counter()
    train, val, test = preset.make_data(0)
    s = preset.image_size
    loc = preset.estimator(validation_data=val, random_state=0, verbose=0)
    print(f"synthetic ({preset.name} preset): {len(train)} train / {len(val)} val / "
          f"{len(test)} test images, {preset.n_classes} classes, {preset.data_size}px; "
          f"backbone {preset.backbone} (ImageNet); localizer: input {s}px, feature_stage "
          f"{preset.feature_stage}, {preset.max_epochs} epochs; regressors: "
          f"{args.reg_epochs} epochs, lr {args.reg_lr:g} (head x1); torch threads "
          f"{torch.get_num_threads()}")

    tic = time.perf_counter()
    loc.fit(train)
    print(f"CREAM_Base trained in {time.perf_counter() - tic:.1f} s "
          f"(box threshold {loc.box_threshold_:.2f})")

    models = {}
    for arch in args.architectures:
        reg = PseudoBoxRegressor(**regressor_params(preset, arch, args.reg_epochs, args.reg_lr))
        n_params = sum(p.numel() for p in reg.build_network().parameters())
        tic = time.perf_counter()
        models[arch] = CREAMReg(loc, reg, pseudo_resolution=2 * s, prefit=True).fit(train)
        print(f"CREAM_Reg {arch!r} ({n_params:,} parameters): pseudo boxes at {2 * s}px + "
              f"regressor trained in {time.perf_counter() - tic:.1f} s "
              f"({models[arch].n_degenerate_pseudo_boxes_} degenerate pseudo boxes left out)")
    first = next(iter(models.values()))

    # 2. pseudo-box quality on the training set (paper Table 6)
    gt_train = np.array([np.asarray(b, float).reshape(-1, 4)[0] for b in train["bboxes"]])
    unit_gt = unit_boxes(gt_train, train)
    unit_pseudo = unit_boxes(first.pseudo_boxes_, train)
    q_hi = protocol_scores(first.pseudo_boxes_, train)["gt_known_loc"]
    q_lo = protocol_scores(loc.pseudo_boxes(train, resolution=s), train)["gt_known_loc"]
    print("\nPseudo-box quality, GT-known Loc of the training pseudo boxes (paper Table 6):")
    print(f"  at {2 * s}px input (2x, the paper's 448/224): {q_hi:6.2f}")
    print(f"  at {s}px input (1x):                      {q_lo:6.2f}")
    print(f"  mean area / image: pseudo boxes {mean_area(unit_pseudo):.2f}, GT boxes "
          f"{mean_area(unit_gt):.2f}")
    for arch, model in models.items():
        fit_pred = unit_boxes(model.regressor_.predict(train), train)
        print(f"  {arch!r} regressor on its training images: IoU >= 0.5 with the pseudo box "
              f"{iou_hit_rate(fit_pred, unit_pseudo):.2f}%, with the GT box "
              f"{iou_hit_rate(fit_pred, unit_gt):.2f}%; spread of its boxes (std of x0, y0, "
              f"x1, y1 / image) {np.round(fit_pred.std(axis=0), 3).tolist()} vs pseudo "
              f"{np.round(unit_pseudo.std(axis=0), 3).tolist()}")

    # 4. test split, one frame for all
    logits = loc.decision_function(test)
    loc_metrics = list(METRICS)
    cam = cam_with_own_threshold(loc, val)
    rows = [("CREAM_Base (CREAM map, threshold on val)", loc.evaluate(test, metrics=loc_metrics)),
            (f"CAM (n_iter=0, same network, own threshold on val {cam.box_threshold_:.2f})",
             cam.evaluate(test, metrics=loc_metrics, n_iter=0)),
            ("CAM (n_iter=0, at CREAM_Base's threshold)",
             loc.evaluate(test, metrics=loc_metrics, n_iter=0))]
    acc = rows[0][1]["top1_acc"]
    for arch, model in models.items():
        r = protocol_scores(model.regressor_.predict(test), test, logits)
        rows.append((f"CREAM_Reg {arch!r} (CREAM_Base's class)", {**r, "top1_acc": acc}))
    if args.oracle:
        for arch, model in models.items():
            tic = time.perf_counter()
            oracle = PseudoBoxRegressor(**model.regressor.get_params()).fit(train)  # GT boxes
            r = protocol_scores(oracle.predict(test), test, logits)
            rows.append((f"upper bound: {arch!r} regressor on GT boxes", r))
            print(f"{arch!r} GT-box regressor trained in {time.perf_counter() - tic:.1f} s")
    for name, unit in (("pseudo box", unit_pseudo), ("GT box", unit_gt)):
        r = protocol_scores(constant_boxes(unit.mean(axis=0), test), test, logits)
        rows.append((f"image-blind: mean training {name}, every image", r))
    print(f"\nTest split ({len(test)} images), percent, protocol frame (224, IoU >= 0.5, "
          "over images):")
    print(f"  {'method':58s}" + "".join(f"{k:>10s}" for k in
                                        ("GT-known", "Top-1 Loc", "Top-5 Loc", "Top-1 cls")))
    for name, r in rows:
        print(_row(name, r))
    base = rows[0][1]
    for name, r in rows[3:3 + len(models)]:
        ratio = r["gt_known_loc"] / base["gt_known_loc"] if base["gt_known_loc"] else np.nan
        print(f"  {name} / CREAM_Base GT-known: {ratio:.3f}")

    if "psol" in models:
        model = models["psol"]
        own = model.evaluate(test)
        blind = psol_frame_blind_gt_known(model.regressor_, train, model.pseudo_boxes_, test)
        print("\n'psol' as the released CREAM_Reg counts it (inference.py: 146 -> 128 centre "
              "crop, IoU > 0.5, per class then over classes):")
        print(_row("CREAM_Reg 'psol'", own))
        print(_row("image-blind: mean training pseudo box in the crop", {"gt_known_loc": blind}))
    print(f"\ntotal {time.perf_counter() - tic0:.1f} s")


if __name__ == "__main__":
    main()
