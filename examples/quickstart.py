"""Quickstart: fit, predict, score a CREAMLocalizer on the built-in synthetic benchmark.

The synthetic benchmark reproduces the problem CREAM solves: every class shares
the same large body and differs only by a small head, so CAM lights up the head
while the box should cover the whole creature.

Run:  python examples/quickstart.py      (about a minute on a 2-core CPU)
"""

from __future__ import annotations

from skcream import CREAMLocalizer
from skcream.data import make_synthetic


def main() -> None:
    train = make_synthetic(200, random_state=0)  # a datasets.Dataset: image, label, bboxes, mask
    test = make_synthetic(100, random_state=2)

    model = CREAMLocalizer(
        backbone="efficientnet_lite0", pretrained=True,  # offline ImageNet weights
        image_size=128, resize_size=146, max_epochs=4, batch_size=32, lr=1e-3, lr_step=None,
        feature_stage=3,  # a higher-resolution stage, as skcream.presets (measured there)
        random_state=0,
    )
    model.fit(train)  # image-level labels only: the boxes are never used for training

    result = model.predict(test.select(range(3)))  # a Localization
    names = test.features["label"].names
    for box, label, score in zip(result.boxes, result.labels, result.scores):
        print(f"{names[int(label)]:>12} p={score:.2f} box {box.round().astype(int).tolist()}")

    print(f"MaxBoxAccV2 CREAM: {model.score(test):.1f}")
    print(f"MaxBoxAccV2 CAM:   {model.set_params(n_iter=0).score(test):.1f}  (same network)")


if __name__ == "__main__":
    main()
