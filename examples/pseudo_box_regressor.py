"""CREAM_Reg (paper Fig. 3): pseudo boxes from CREAM, then a class-agnostic box regressor.

1. CREAM_Base (a ``CREAMLocalizer``) is trained from image labels only.
2. It produces pseudo boxes for the *training* images (at 448x448, as the paper).
3. A ``PseudoBoxRegressor`` learns to regress those boxes.
4. ``CREAMReg`` takes the class from CREAM_Base's classifier and the box from the
   regressor; GT-known / Top-1 Loc on the test split compare it with CREAM_Base.

Run:  python examples/pseudo_box_regressor.py      (under two minutes on a 2-core CPU)
"""

from __future__ import annotations

import numpy as np

from skcream import CREAMLocalizer, CREAMReg, PseudoBoxRegressor
from skcream.data import make_synthetic
from skcream.metrics import box_iou


def main() -> None:
    train = make_synthetic(160, random_state=0)
    test = make_synthetic(80, random_state=2)
    common = dict(backbone="efficientnet_lite0", pretrained=True, image_size=128,
                  resize_size=146, batch_size=32, lr_step=None, random_state=0, verbose=0)

    base = CREAMLocalizer(max_epochs=4, lr=1e-3, feature_stage=3, **common).fit(train)  # Base
    pseudo = base.pseudo_boxes(train, resolution=256)  # (n, 4), original pixels
    gt = [np.asarray(b, dtype=float) for b in train["bboxes"]]
    hits = [box_iou(p[None], g).max() >= 0.5 for p, g in zip(pseudo, gt)]
    print(f"pseudo boxes on the training set: GT-known {100 * np.mean(hits):.1f}%")

    regressor = PseudoBoxRegressor(max_epochs=4, lr=1e-3, **common).fit(train, pseudo)
    reg = CREAMReg(base, regressor, prefit=True).fit(train)

    base_scores = base.evaluate(test, metrics=["gt_known_loc", "top1_loc"])
    reg_scores = reg.evaluate(test)
    print(f"CREAM_Base: GT-known {base_scores['gt_known_loc']:.1f}  "
          f"Top-1 Loc {base_scores['top1_loc']:.1f}")
    print(f"CREAM_Reg:  GT-known {reg_scores['gt_known_loc']:.1f}  "
          f"Top-1 Loc {reg_scores['top1_loc']:.1f}")


if __name__ == "__main__":
    main()
