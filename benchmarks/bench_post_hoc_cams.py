"""Post-hoc boxes from every map source, with and without re-activation, on real photos.

The offline EfficientNet-Lite0 ImageNet classifier (``skcream.post_hoc.PostHocClassifier``:
the top-1 class of the unmodified classifier, the maps of the dilated 14 x 14 WSOL features
under the same head). Per map source (``skcream.map_sources.MAP_SOURCES``: CAM, Grad-CAM,
Grad-CAM++, XGrad-CAM, LayerCAM, Score-CAM, EigenCAM, on the last feature layer) two rows:
the map itself (``skcream localize --post-hoc --cam NAME --no-reactivate``) and the map
re-activated with :data:`skcream.post_hoc.POST_HOC_DEFAULTS` (``--cam NAME``), plus the
image-blind centre prior. The box is the CLI's: the map upsampled (bicubic) to the photo's
size, min-max normalised, the largest contour above ``threshold * max``.

Columns: mean IoU with the hand-drawn box and the share of photos with IoU >= 0.5, at the
default box threshold 0.2 (nothing tuned), and at the single threshold of 0.05 ... 0.95 with
the best mean IoU on that photo set (marked *tuned*: chosen on the photos it is scored on).

Two photo sets, the same defaults on both (nothing tuned per photo or per set):

* ``packaged``: the ten photos of ``bench_post_hoc_defaults.py`` (scikit-image and
  scikit-learn), on which ``POST_HOC_DEFAULTS`` were chosen;
* ``independent``: ten other real photos found offline in installed packages (see
  :data:`INDEPENDENT`), never used to choose anything.

Run:  OMP_NUM_THREADS=1 python benchmarks/bench_post_hoc_cams.py [--no-scorecam]
      (Score-CAM is 1280 forward passes per photo: about a minute per photo on an idle
      core, several on a loaded machine; the other sources take seconds.)
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

#: Debian's ``opencv-doc`` package (``apt-get install opencv-doc``): OpenCV's sample data
OPENCV_DOC = Path("/usr/share/doc/opencv-doc/examples")

#: The independent photo set: name -> (source, hand-drawn box x0, y0, x1, y1 in original
#: pixels, what it holds). Sources: ``opencv-doc:<path under OPENCV_DOC>`` (Debian's
#: opencv-doc 4.6.0, whose copyright file puts OpenCV's samples under Apache-2.0 /
#: BSD-3-Clause) and ``matplotlib:<sample data file>`` (Grace Hopper, a U.S. Navy photo in
#: the public domain). Chosen because each shows one object of an ImageNet class (the
#: class in brackets is the nearest one; the swallowtail, European robin and mandrill have
#: no exact ImageNet class). Boxes drawn by hand on 2026-12-06 by looking at each photo with
#: a 25-pixel grid overlaid (lines every 25 px, labelled every 50 px), reading the extreme
#: visible pixel of the object on each side to about +-5 px; antennae are left out, the
#: apple's stem is in, objects cut by the frame end at the frame, and the photo's subject is
#: boxed whole where the class names a part of it (the uniform: the person wearing it).
INDEPENDENT = {
    "butterfly": ("opencv-doc:data/butterfly.jpg", (5, 77, 483, 313),
                  "swallowtail butterfly, wings and body (no exact class)"),
    "apple": ("opencv-doc:data/apple.jpg", (41, 8, 463, 500), "apple with its stem"),
    "orange": ("opencv-doc:data/orange.jpg", (33, 53, 460, 497), "orange [orange]"),
    "squirrel": ("opencv-doc:data/squirrel_cls.jpg", (130, 107, 358, 360),
                 "red squirrel with its tail [fox squirrel]"),
    "dog": ("opencv-doc:data/chicky_512.png", (0, 33, 470, 511),
            "small long-haired dog, head and body [Pekinese]"),
    "mandrill": ("opencv-doc:data/baboon.jpg", (0, 0, 511, 511),
                 "mandrill face, fills the frame [baboon]"),
    "robin": ("opencv-doc:hfs/data/000.jpg", (74, 6, 312, 222), "European robin [robin]"),
    "plant": ("opencv-doc:alphamat/input_images/plant.jpg", (55, 0, 497, 332),
              "potted plant, leaves and pot [pot]"),
    "car": ("opencv-doc:data/licenseplate_motion.jpg", (0, 30, 580, 400),
            "motion-blurred car from behind [car classes]"),
    "hopper": ("matplotlib:grace_hopper.jpg", (23, 27, 511, 599),
               "Grace Hopper in uniform [military uniform]"),
}

THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.05), 2)


def load_photo(spec: str):
    """An RGB PIL image of a packaged photo (see ``bench_post_hoc_defaults.load_photo``)."""
    from PIL import Image

    kind, name = spec.split(":", 1)
    if kind == "opencv-doc":
        path = OPENCV_DOC / name
        if not path.is_file():
            raise SystemExit(f"{path}: missing; install Debian's opencv-doc package "
                             "(apt-get install opencv-doc) for the independent photo set")
        with Image.open(path) as im:
            return im.convert("RGB")
    if kind == "matplotlib":
        import matplotlib.cbook as cbook

        with Image.open(cbook.get_sample_data(name, asfileobj=False)) as im:
            return im.convert("RGB")
    from bench_post_hoc_defaults import load_photo as load  # this folder (run as a script)

    return load(spec)


def photo_sets() -> dict[str, dict]:
    from bench_post_hoc_defaults import PHOTOS

    return {"packaged": PHOTOS, "independent": INDEPENDENT}


def _ious(full_maps, boxes, threshold):
    from bench_post_hoc_defaults import iou

    from skcream.localize import maps_to_localization

    found = maps_to_localization(full_maps, threshold, np.zeros(len(full_maps), dtype=int)).boxes
    return np.array([iou(b, g) for b, g in zip(found, boxes)])


def score(full_maps, boxes, default: float) -> dict:
    """Mean IoU and share >= 0.5 at the default threshold and at the best one (tuned)."""
    table = {float(t): _ious(full_maps, boxes, float(t)) for t in THRESHOLDS}
    if default not in table:
        table[default] = _ious(full_maps, boxes, default)
    best = max(table, key=lambda t: (table[t].mean(), -abs(t - default)))
    return {"iou": table[default].mean(), "hit": (table[default] >= 0.5).mean(),
            "per_photo": table[default], "best_t": best, "best_iou": table[best].mean(),
            "best_hit": (table[best] >= 0.5).mean()}


def run_set(name: str, photos: dict, cams: list[str], clf) -> list[tuple[str, dict]]:
    import torch

    from skcream.post_hoc import POST_HOC_DEFAULTS, boxes_at_original_size, post_hoc_maps
    from skcream.priors import centre_prior

    names = list(photos)
    images = [load_photo(photos[n][0]) for n in names]
    sizes = [im.size for im in images]
    boxes = [photos[n][1] for n in names]
    default = float(POST_HOC_DEFAULTS["threshold"])
    rows = [("centre prior (blind)", score([centre_prior((h, w)) for (w, h) in sizes], boxes,
                                           default))]
    labels = None
    for cam in cams:
        t0 = time.perf_counter()
        result = clf.predict(images, cam=cam)
        if labels is None:
            labels = [f"{n}: {result.class_names[int(c)]} ({p:.2f})"
                      for n, c, p in zip(names, result.labels, result.scores)]
        for reactivate in (False, True):
            maps = post_hoc_maps(result) if reactivate else post_hoc_maps(result, output="cam")
            _, full = boxes_at_original_size(maps, sizes, default)
            rows.append((f"{cam}{' + re-activation' if reactivate else ''}",
                         score(full, boxes, default)))
        print(f"  [{name}] {cam}: {time.perf_counter() - t0:.1f} s (load "
              f"{os.getloadavg()[0]:.1f})", flush=True)
        del result
        torch.cuda.empty_cache() if torch.cuda.is_available() else None
    print(f"\n{name} photos (top-1 class, probability): " + "; ".join(labels))
    return rows


def print_table(name: str, rows, n: int) -> None:
    print(f"\n### {name} ({n} photos)\n")
    print("| map | mean IoU @0.2 | IoU >= 0.5 @0.2 | tuned: best threshold | "
          "mean IoU (tuned) | IoU >= 0.5 (tuned) |")
    print("|---|---|---|---|---|---|")
    for label, s in rows:
        print(f"| {label} | {s['iou']:.3f} | {s['hit']:.0%} | {s['best_t']:.2f} | "
              f"{s['best_iou']:.3f} | {s['best_hit']:.0%} |")
    print("\nper photo IoU @0.2:")
    for label, s in rows:
        print(f"  {label:32s} " + " ".join(f"{v:.2f}" for v in s["per_photo"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-scorecam", action="store_true",
                        help="leave out Score-CAM (1280 forward passes per photo)")
    parser.add_argument("--cams", nargs="+", default=None,
                        help="only these map sources (default: all)")
    parser.add_argument("--sets", nargs="+", default=["packaged", "independent"],
                        choices=["packaged", "independent"])
    args = parser.parse_args()
    import torch

    from skcream.map_sources import MAP_SOURCES
    from skcream.post_hoc import PostHocClassifier

    torch.set_num_threads(1)
    print(f"threads: torch {torch.get_num_threads()}, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS')}; load average at start {os.getloadavg()}")
    t0 = time.perf_counter()
    cams = [c for c in (args.cams or MAP_SOURCES)
            if c in MAP_SOURCES and not (args.no_scorecam and c == "scorecam")]
    cams = [c for c in cams if c != "scorecam"] + (["scorecam"] if "scorecam" in cams else [])
    clf = PostHocClassifier("efficientnet_lite0", True, batch_size=10)
    sets = photo_sets()
    for name in args.sets:
        rows = run_set(name, sets[name], cams, clf)
        print_table(name, rows, len(sets[name]))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s; load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
