"""Loader throughput and memory: does iterating a folder 10x larger cost 10x the memory?

Writes synthetic imagefolders (``root/metadata.jsonl`` with labels and boxes, PNG files) of
2,000 and 20,000 images into a temporary directory, then, each in a fresh subprocess so the
peak figures are clean:

- ``load_imagefolder`` (validation pass + Arrow file): time;
- one pass over ``TorchImageDataset(ImageSource, EvalTransform)`` through a ``DataLoader``
  (batch 64, ``collate``): images/s, the peak resident set size during the pass minus the
  RSS after imports (VmRSS sampled every batch; it includes the memory-mapped Arrow pages
  touched), and the tracemalloc peak (Python objects and numpy buffers).

Throughput at the protocol size (128x128 PNG -> 224x224 tensors) is measured on the 2k
folder with 0 and 2 workers. The folders cycle 500 distinct rendered images (file writes are
the cost being avoided; every file is still decoded).

Run: ``python benchmarks/bench_data.py`` (about a minute on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, os, sys, time, tracemalloc
import torch
from skcream.data import EvalTransform, ImageSource, TorchImageDataset, collate, load_imagefolder


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024


root, cache, size, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(1)
base = rss_mb()
t = time.perf_counter()
ds = load_imagefolder(root, cache_dir=cache)
t_load = time.perf_counter() - t
after_load = rss_mb()
tracemalloc.start()
data = TorchImageDataset(ImageSource.from_input(ds), EvalTransform(size))
loader = torch.utils.data.DataLoader(data, batch_size=64, num_workers=workers, collate_fn=collate)
n, peak_rss = 0, rss_mb()
t, c = time.perf_counter(), time.process_time()
for batch in loader:
    n += batch["image"].shape[0]
    assert len(batch["boxes"]) == batch["image"].shape[0]
    peak_rss = max(peak_rss, rss_mb())
dt, dc = time.perf_counter() - t, time.process_time() - c
_, peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
print(json.dumps({"n": n, "load_s": t_load, "iter_s": dt, "img_s": n / dt, "cpu_img_s": n / dc,
                  "rss_base_mb": base, "rss_load_mb": after_load - base,
                  "rss_iter_mb": peak_rss - base, "tracemalloc_peak_mb": peak / 2**20}))
"""


def write_folder(root: str, n: int, pngs: list, labels: list, boxes: list) -> float:
    t = time.perf_counter()
    os.makedirs(root)
    with open(os.path.join(root, "metadata.jsonl"), "w") as meta:
        for i in range(n):
            j = i % len(pngs)
            name = f"img/{i // 1000:03d}/{i:06d}.png"
            os.makedirs(os.path.join(root, os.path.dirname(name)), exist_ok=True)
            with open(os.path.join(root, name), "wb") as f:
                f.write(pngs[j])
            meta.write(json.dumps({"file_name": name, "label": labels[j], "bboxes": [boxes[j]]}) + "\n")
    return time.perf_counter() - t


def run_child(root: str, cache: str, size: int, workers: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, root, cache, str(size), str(workers)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=2000)
    ap.add_argument("--large", type=int, default=20000)
    ap.add_argument("--size", type=int, default=128, help="side of the PNG files")
    args = ap.parse_args(argv)

    from skcream.data.synthetic import SyntheticConfig, _png, render_synthetic

    cfg = SyntheticConfig(image_size=args.size)
    samples = [render_synthetic(i, 0, cfg) for i in range(500)]
    pngs = [_png(s.image) for s in samples]
    labels = [cfg.class_names[s.label] for s in samples]
    boxes = [s.box.tolist() for s in samples]
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for n in (args.small, args.large):
            root = os.path.join(tmp, f"folder{n}")
            t_write = write_folder(root, n, pngs, labels, boxes)
            # memory runs: 64x64 output so that the pass stays short
            results[n] = run_child(root, os.path.join(tmp, "cache"), 64, 0)
            results[n]["write_s"] = t_write
        print(f"imagefolder of {args.size}x{args.size} PNGs with metadata.jsonl (labels, boxes); "
              "one pass, batch 64, EvalTransform(64), 0 workers, fresh process each")
        print(f"{'images':>8} {'load_imagefolder':>17} {'RSS + after load':>17} {'iterate':>12} "
              f"{'peak RSS +':>11} {'tracemalloc':>12}")
        for n, r in results.items():
            print(f"{n:8d} {r['load_s']:15.1f} s {r['rss_load_mb']:14.1f} MB {r['img_s']:8.0f} im/s "
                  f"{r['rss_iter_mb']:8.1f} MB {r['tracemalloc_peak_mb']:9.1f} MB")
        a, b = results[args.small], results[args.large]
        print(f"ratio {args.large}/{args.small} images: peak RSS growth x"
              f"{b['rss_iter_mb'] / max(a['rss_iter_mb'], 1e-9):.2f}, tracemalloc peak x"
              f"{b['tracemalloc_peak_mb'] / max(a['tracemalloc_peak_mb'], 1e-9):.2f} "
              f"(base RSS after imports {a['rss_base_mb']:.0f} MB)")
        root = os.path.join(tmp, f"folder{args.small}")
        print(f"\nthroughput, {args.size}x{args.size} PNG -> EvalTransform(224) tensors, "
              f"{args.small} images, batch 64:")
        for workers in (0, 2):
            r = run_child(root, os.path.join(tmp, "cache"), 224, workers)
            cpu = f" ({r['cpu_img_s']:.0f} images per CPU-second of the main process)" \
                if workers == 0 else ""
            print(f"  num_workers={workers}: {r['img_s']:6.0f} images/s wall{cpu}")


if __name__ == "__main__":
    main()
