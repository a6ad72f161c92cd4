"""keep="last" vs keep="best" on the DEMO preset: which epoch, and what it gives on test.

wsolevaluation's ``--eval_checkpoint_type last|best``: the epoch whose validation
localization (MaxBoxAccV2 on the DEMO's 64-image val split) was best, or the last. Two fits
of the DEMO preset from the same seed, with ``validation_data=val``, differing only in
``keep``; their histories must be identical (the choice never changes training). Each model
is then evaluated once on the test split (GT-known MaxBoxAccV2 / PxAP, protocol maps),
beside CAM (``n_iter=0``, the same network) and the two image-blind priors.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_keep.py [--quick] [--threads N]``.
"""

from __future__ import annotations

import argparse
import os
import time

import torch


def _untimed(history):
    return [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in history]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the QUICK preset")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", default=None, help="save both models under this folder")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import datasets

    datasets.disable_progress_bars()
    from skcream.presets import DEMO, QUICK

    preset = QUICK if args.quick else DEMO
    train, val, test = preset.make_data(args.seed)
    print(f"preset={preset.name} threads={torch.get_num_threads()} seed={args.seed} "
          f"load average at start {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
    models, seconds = {}, {}
    for keep in ("last", "best"):
        tic = time.perf_counter()
        models[keep] = preset.estimator(random_state=args.seed, verbose=0, validation_data=val,
                                        keep=keep).fit(train)
        seconds[keep] = time.perf_counter() - tic
        print(f"fit keep={keep}: {seconds[keep]:.0f}s, load average "
              f"{os.getloadavg()[0]:.2f}", flush=True)
    last, best = models["last"], models["best"]
    assert _untimed(last.history_) == _untimed(best.history_), "keep changed the training"
    scores = [r["val_max_box_acc_v2"] for r in best.history_]
    accs = [r["accuracy"] for r in best.history_]
    print("val MaxBoxAccV2 per epoch: " + ", ".join(f"{s:.2f}" for s in scores))
    print("train accuracy per epoch: " + ", ".join(f"{a:.3f}" for a in accs))
    print(f"best_epoch_ = {best.best_epoch_} (of {len(scores)}); last.best_epoch_ = "
          f"{last.best_epoch_}")

    rows = []
    priors = None
    for keep, model in models.items():
        table = model.evaluate(test, baselines=True, prior_data=train,
                               metrics=["max_box_acc_v2", "pxap", "top1_acc"])
        epoch = model.best_epoch_ if keep == "best" else len(model.history_)
        val_score = model.history_[epoch - 1]["val_max_box_acc_v2"]
        rows.append((f"keep={keep!r}", epoch, val_score, table["CREAM"], table["CAM"]))
        priors = {k: v for k, v in table.items() if "prior" in k}
    print(f"\nTest split ({len(test)} images), GT-known, protocol maps; tau-free metrics:")
    print("| keep | epoch kept | val MaxBoxAccV2 | test MaxBoxAccV2 CREAM | CAM (same net) "
          "| test PxAP CREAM | CAM | top-1 acc |")
    print("|---|---|---|---|---|---|---|---|")
    for name, epoch, val_score, cream, cam in rows:
        print(f"| {name} | {epoch} of {len(scores)} | {val_score:.2f} | "
              f"{cream['max_box_acc_v2']:.2f} | {cam['max_box_acc_v2']:.2f} | "
              f"{cream['pxap']:.2f} | {cam['pxap']:.2f} | {cream['top1_acc']:.1f} |")
    for name, r in priors.items():
        print(f"| {name} (blind) | - | - | {r['max_box_acc_v2']:.2f} | | {r['pxap']:.2f} | | |")
    # the same numbers through the demo's metric code (skcream.demo.method_report on
    # readout_maps), as benchmarks/bench_localizer.py and `skcream demo` print them
    from skcream.demo import _class_index, _gt_protocol, method_report, readout_maps

    test_gt, masks, labels = _gt_protocol(test)
    val_gt, _, _ = _gt_protocol(val)
    print("\nThe demo's metric code (tau of GT-known Loc chosen on val):")
    for keep, model in models.items():
        vm, _, _ = readout_maps(model, val, outputs=("cam", "final"))
        tm, logits, _ = readout_maps(model, test, outputs=("cam", "final"))
        for out in ("cam", "final"):
            r = method_report(tm[out], test_gt, logits=logits, labels=_class_index(model, labels),
                              val_maps=vm[out], val_gt=val_gt, masks=masks)
            print(f"  keep={keep!r} {out:5s}: MaxBoxAccV2 {r['max_box_acc_v2']:.2f} PxAP "
                  f"{r['pxap']:.2f} GT-known Loc {r['gt_known_loc']:.2f} top-1 acc "
                  f"{r['top1_acc']:.1f}")
    if args.save:
        for keep, model in models.items():
            model.save(os.path.join(args.save, keep), overwrite=True)
    print(f"\nload average at the end {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
