"""Does the synthetic benchmark earn its place? Generation speed and the CAM phenomenon.

1. Speed: images/s of ``render_synthetic`` + PNG encoding (wall and CPU time, one process),
   and of ``make_synthetic`` into an Arrow file (tmp dir), at 128x128.
2. Phenomenon (paper Fig. 1): a frozen ImageNet EfficientNet-Lite0 (offline weights,
   ``skcream.backbones``, at 224 input: the last stage at stride 1, (1280, 14, 14), and
   ``feature_stage=-2``, (112, 14, 14)), a logistic regression on GAP features, CAM of the
   true class (``skcream.cam``; upsampled bicubic to 224 and min-max normalised as the
   protocol). Reported on held-out images: accuracy; the share of each map's top-10 % pixels
   (and of its hottest pixels, as many as the part has) on the discriminative part / the rest
   of the body / the background next to those regions' area shares; how often the CAM peak
   lies on the part; MaxBoxAccV2 against the whole-object boxes. The same read-outs for
   post-hoc CREAM (``skcream.reactivation.post_hoc_reactivate``, cosine kernel) and for a
   centre-Gaussian map (the trivial baseline of Choe et al.).

Run: ``python benchmarks/bench_synthetic.py`` (about a minute on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np
import torch

from skcream.data.synthetic import SyntheticConfig, _png, make_synthetic, render_synthetic


def bench_speed(n: int, size: int) -> None:
    cfg = SyntheticConfig(image_size=size)
    render_synthetic(0, 0, cfg)  # texture bank
    t, c = time.perf_counter(), time.process_time()
    for i in range(n):
        s = render_synthetic(i, 0, cfg)
        _png(s.image)
        _png(s.mask)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    print(f"render+PNG  {size}x{size}: {n / wall:7.0f} img/s wall, {n / cpu:7.0f} img/s CPU time "
          f"({n} images, one process)")
    with tempfile.TemporaryDirectory() as tmp:
        t, c = time.perf_counter(), time.process_time()
        ds = make_synthetic(n, image_size=size, random_state=0, cache_dir=tmp)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        mb = sum(os.path.getsize(f["filename"]) for f in ds.cache_files) / 2**20
        print(f"make_synthetic -> Arrow: {n / wall:7.0f} img/s wall, {n / cpu:7.0f} img/s CPU "
              f"time, {mb:.1f} MiB on disk")


def _features(backbone, images, mean, std, batch=32):
    """uint8 (N,S,S,3) -> features (N,d,h,w) at 224 input, no grad."""
    out = []
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = torch.from_numpy(images[i:i + batch]).permute(0, 3, 1, 2).float() / 255.0
            x = torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear",
                                                align_corners=False, antialias=False)
            out.append(backbone((x - m) / s))
    return torch.cat(out)


def _resize_nearest(masks: np.ndarray, size: int = 224) -> np.ndarray:
    import cv2

    return np.stack([cv2.resize(m.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
                     for m in masks]).astype(bool)


def _max_box_acc_v2(maps: np.ndarray, boxes224: list) -> tuple[float, str]:
    try:
        from skcream.metrics import max_box_acc_v2

        return float(max_box_acc_v2(maps, boxes224)), "skcream.metrics"
    except ImportError:
        sys.path.insert(0, os.path.dirname(__file__))
        from wsol_reference import max_box_acc

        return float(np.mean(max_box_acc(list(maps), [np.asarray(b) for b in boxes224]))), \
            "benchmarks/wsol_reference (skcream.metrics not available yet)"


def bench_phenomenon(n_train: int, n_test: int, size: int, seed: int, **options) -> None:
    cfg = SyntheticConfig(image_size=size, **options)
    samples = [render_synthetic(i, seed, cfg) for i in range(n_train + n_test)]
    images = np.stack([s.image for s in samples])
    labels = np.array([s.label for s in samples])
    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    test = samples[n_train:]
    obj = _resize_nearest(np.stack([s.mask for s in test]))
    part = _resize_nearest(np.stack([s.part_mask for s in test]))
    regions = (part, obj & ~part, ~obj)
    area = np.array([r.mean() for r in regions])
    boxes224 = []
    for s in test:
        x0, y0, x1, y1 = s.box
        # protocol box scaling int(x * 224 / W); x1, y1 made inclusive (one past -> last pixel)
        boxes224.append([[int(x0 * 224 / size), int(y0 * 224 / size),
                          int((x1 - 1) * 224 / size), int((y1 - 1) * 224 / size)]])

    print(f"\nphenomenon: {n_train} train / {n_test} test images at {size}x{size}, "
          f"{cfg.n_classes} classes, options {options or 'default'}")
    print("  region                          part    body    background")
    print(f"  area share                   {100 * area[0]:5.1f} % {100 * area[1]:5.1f} % "
          f"{100 * area[2]:5.1f} %")
    yy, xx = np.mgrid[0:224, 0:224]
    center = np.exp(-((xx - 111.5) ** 2 + (yy - 111.5) ** 2) / (2 * 56.0 ** 2))
    center = np.repeat(((center - center.min()) / np.ptp(center))[None], n_test, 0)
    _report("centre Gaussian", center, regions, area, boxes224)
    for stage, label in ((None, "last stage, stride 1"), (-2, "feature_stage=-2")):
        maps = _cam_maps(images, labels, n_train, stage, label, cfg.n_classes)
        for name, m in maps.items():
            _report(name, m, regions, area, boxes224)


def _cam_maps(images, labels, n_train, stage, label, n_classes):
    """Frozen EfficientNet-Lite0 + logistic regression on GAP -> CAM and post-hoc CREAM maps
    (n_test, 224, 224) of the true class."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from skcream.backbones import build_backbone
    from skcream.cam import class_activation_maps, normalize_maps, upsample_maps
    from skcream.reactivation import post_hoc_reactivate

    backbone = build_backbone("efficientnet_lite0", pretrained=True, feature_stage=stage).eval()
    dc = backbone.data_config
    t = time.perf_counter()
    feats = _features(backbone, images, dc["mean"], dc["std"])
    t_feat = time.perf_counter() - t
    gap = feats.mean(dim=(2, 3)).numpy()
    tr, te = slice(0, n_train), slice(n_train, None)
    scaler = StandardScaler().fit(gap[tr])
    clf = LogisticRegression(C=0.1, max_iter=3000).fit(scaler.transform(gap[tr]), labels[tr])
    acc = clf.score(scaler.transform(gap[te]), labels[te])
    train_acc = clf.score(scaler.transform(gap[tr]), labels[tr])
    print(f"\n  features: efficientnet_lite0 ImageNet (offline), {label}, "
          f"{tuple(feats.shape[1:])} at 224 input, {len(images) / t_feat:.0f} img/s")
    print(f"  logistic regression on GAP: test accuracy {100 * acc:.1f} % "
          f"(train {100 * train_acc:.1f} %, chance {100 / n_classes:.0f} %)")
    # CAM is exact through the scaler: logits = sum_k (w_k / sigma_k) GAP_k + const
    weight = torch.tensor(clf.coef_ / scaler.scale_[None], dtype=torch.float32)
    lab_te = torch.as_tensor(labels[te])
    cams = class_activation_maps(feats[te], weight, lab_te)
    # CREAM without learned embeddings (each image's own CAM fg/bg means start the EM): can
    # feature clustering recover the body? Cosine kernel, sigma on the cosine scale (the
    # paper's sigma=8 is for raw dot products and leaves these maps unchanged).
    cream = post_hoc_reactivate(feats[te], weight, lab_te, kernel="cosine", sigma=0.1)
    return {name: normalize_maps(upsample_maps(m, (224, 224))).double().numpy()
            for name, m in (("CAM", cams), ("post-hoc CREAM", cream))}


def _report(name, m, regions, area, boxes224):
    top, near, mean_act = _concentration(m, regions)
    topk, _, _ = _concentration(m, regions, frac=None)
    boxacc, source = _max_box_acc_v2(m, boxes224)
    print(f"  {name:15s} top-10 % pixels {100 * top[0]:5.1f} % {100 * top[1]:5.1f} % "
          f"{100 * top[2]:5.1f} %   (part {top[0] / area[0]:.1f}x its area share, "
          f"body {top[1] / area[1]:.1f}x)")
    print(f"  {name:15s} top part-area px {100 * topk[0]:5.1f} % {100 * topk[1]:5.1f} % "
          f"{100 * topk[2]:5.1f} %   (the hottest pixels, as many as the part has)")
    print(f"  {name:15s} mean map value  {mean_act[0]:5.2f}   {mean_act[1]:5.2f}   "
          f"{mean_act[2]:5.2f}")
    print(f"  {name:15s} peak on the part in {100 * near[0]:.1f} % of the images, within "
          f"16 px (one feature cell) of it in {100 * near[1]:.1f} %")
    print(f"  {name:15s} MaxBoxAccV2 vs whole-object boxes: {boxacc:.1f}  [{source}]")


def _concentration(maps, regions, frac=0.10, cell=16):
    """Share of each map's top-`frac` pixels per region (frac None: as many pixels as the
    image's part has), peak-on-part rates, mean values per region."""
    import cv2

    part = regions[0]
    top = np.zeros(len(regions))
    on, near = 0, 0
    kernel = np.ones((2 * cell + 1, 2 * cell + 1), np.uint8)
    for i, m in enumerate(maps):
        k = int(part[i].sum()) if frac is None else int(frac * m.size)
        flat = m.ravel()
        idx = np.argpartition(-flat, k)[:k]
        top += [r[i].ravel()[idx].mean() for r in regions]
        peak = np.argmax(flat)
        on += bool(part[i].ravel()[peak])
        near += bool(cv2.dilate(part[i].astype(np.uint8), kernel).ravel()[peak])
    n = len(maps)
    return top / n, (on / n, near / n), [float(maps[r].mean()) for r in regions]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-speed", type=int, default=1000)
    ap.add_argument("--n-train", type=int, default=200)
    ap.add_argument("--n-test", type=int, default=100)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--part-scale", type=float, default=None)
    args = ap.parse_args(argv)
    bench_speed(args.n_speed, args.size)
    opts = {} if args.part_scale is None else {"part_scale": args.part_scale}
    bench_phenomenon(args.n_train, args.n_test, args.size, args.seed, **opts)


if __name__ == "__main__":
    main()
