"""What keying the ``memory=`` caches by content costs, beside what the cache saves.

The fingerprint of a data set (``ImageSource.fingerprint``: the bytes of every image file,
the labels, the class names) keys the fitted-network cache and the in-memory cache of
network outputs. It replaced a key made of the Dataset's path-based fingerprint, which was
free but returned the network of the old pixels after images were overwritten in place.

Measured side by side in one process, one torch thread, on N JPEG photos-like images
(500x375, quality 90) loaded with ``load_imagefolder``:

- the fingerprint, first call (every file read and hashed; the files are in the OS page
  cache, as right after they were written or read);
- the fingerprint again once the files have settled (``skcream._digest`` memoises a file's
  digest under its stat stamps, so only ``stat`` is paid);
- what a cache hit saves: the forward pass of the images through EfficientNet-Lite0 at 224
  (``TimmFeatures.transform``, the plain code a user of the frozen pipeline runs), and one
  re-activation read-out of those features (``CREAMReactivation.transform``), the work a
  cached grid-search candidate still does.

Run:  OMP_NUM_THREADS=1 python benchmarks/bench_cache_digest.py [--n 256]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _write_images(root: Path, n: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:375, 0:500]
    for i in range(n):
        cls = f"c{i % 4}"
        (root / cls).mkdir(parents=True, exist_ok=True)
        base = 120 + 80 * np.sin(xx / (20 + i % 7)) * np.cos(yy / (25 + i % 5))
        img = np.clip(base[..., None] + rng.normal(0, 12, (375, 500, 3)), 0, 255)
        Image.fromarray(img.astype(np.uint8)).save(root / cls / f"{i:05d}.jpg", quality=90)


def _timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        tic = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - tic)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from skcream import CREAMReactivation, TimmFeatures, _digest
    from skcream.data import ImageSource, load_imagefolder

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "photos"
        _write_images(root, args.n)
        size = sum(p.stat().st_size for p in root.rglob("*.jpg"))
        ds = load_imagefolder(root, cache_dir=Path(tmp) / "cache")
        print(f"{args.n} JPEG images, {size / args.n / 1024:.0f} KB each; torch threads "
              f"{torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}")

        def fingerprint():
            _digest._MEMO.clear()
            return ImageSource.from_input(ds).fingerprint()

        cold = _timed(fingerprint)
        time.sleep(_digest.RACY_SECONDS + 0.1)  # let the files settle: memoised from now on
        ImageSource.from_input(ds).fingerprint()
        warm = _timed(lambda: ImageSource.from_input(ds).fingerprint())
        features = TimmFeatures("efficientnet_lite0", pretrained=True, image_size=224,
                                batch_size=32, verbose=0).fit()
        tic = time.perf_counter()
        F = features.transform(ds)
        forward = time.perf_counter() - tic
        labels = np.asarray(ds["label"])
        head = CREAMReactivation(n_iter=2).fit(F, labels)
        readout = _timed(lambda: head.transform(F))
        print(f"load average after {os.getloadavg()[0]:.2f}")

    rows = [
        ("fingerprint, files read and hashed", cold),
        ("fingerprint, settled files (memoised digests)", warm),
        ("forward pass, EfficientNet-Lite0 @224 (what a hit saves)", forward),
        ("re-activation read-out of cached features (what a hit still does)", readout),
    ]
    for name, seconds in rows:
        print(f"{name:68s} {seconds * 1000 / args.n:8.3f} ms/image")
    print(f"fingerprint / forward pass: {cold / forward:.2%} (files read), "
          f"{warm / forward:.2%} (settled)")
    print(f"fingerprint / read-out: {cold / readout:.1%} (files read), "
          f"{warm / readout:.1%} (settled)")


if __name__ == "__main__":
    main()
