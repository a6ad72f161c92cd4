"""Peak memory of reading ILSVRC-size wsolevaluation metadata (1.28M training images).

Writes ``ILSVRC/train/image_ids.txt`` and ``class_labels.txt`` with 1,281,167 lines in the
ILSVRC naming (``train/n01440764/n01440764_10026.JPEG``) to a temporary folder, then, in a
fresh process each, measures the Python heap peak (tracemalloc) and the RSS growth of the
metadata pass of ``load_wsol`` -- iterating ``skcream.data.wsol._records`` and the duplicate
check of ``build_dataset`` -- without image files (1.28M files would measure the file
system, not the loader). Run:  python benchmarks/bench_metadata.py [--n 1281167]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import os, resource, sys, tracemalloc
from skcream.data import wsol, _build
meta, mode = sys.argv[1], sys.argv[2]
def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
before = rss()
tracemalloc.start()
n = 0
if mode in ("records", "records+ids"):
    seen = set() if mode == "records" else _build.IdSet() if hasattr(_build, "IdSet") else set()
    for rec in wsol._records(meta, "/data", "/data", "ILSVRC"):
        if mode == "records+ids":  # build_dataset's duplicate check
            if rec.image_id in seen:
                raise SystemExit("duplicate")
            seen.add(rec.image_id)
        n += 1
peak = tracemalloc.get_traced_memory()[1] / 2**20
print(f"{mode}: {n} records, heap peak {peak:.1f} MiB, max RSS +{rss() - before:.1f} MiB")
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_281_167)
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    with tempfile.TemporaryDirectory() as tmp:
        meta = Path(tmp) / "ILSVRC" / "train"
        meta.mkdir(parents=True)
        per_class = -(-args.n // 1000)
        with open(meta / "image_ids.txt", "w") as ids, open(meta / "class_labels.txt", "w") as lab:
            for i in range(args.n):
                c = i // per_class
                path = f"train/n{1440764 + c:08d}/n{1440764 + c:08d}_{i:06d}.JPEG"
                ids.write(path + "\n")
                lab.write(f"{path},{c}\n")
        size = sum(f.stat().st_size for f in meta.iterdir()) / 2**20
        print(f"{args.n} lines per file, {size:.0f} MiB of metadata")
        for mode in ("baseline", "records", "records+ids"):
            out = subprocess.run([sys.executable, "-c", CHILD, str(meta), mode], env=env,
                                 capture_output=True, text=True, check=True)
            print(out.stdout.strip())


if __name__ == "__main__":
    main()
