"""``skcream evaluate-maps`` on a large folder: wall time and peak memory, one and two threads.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_evaluate_maps.py [n_maps] [dtype]``
(default 50,000 maps, float32). Writes a CUB-layout folder to a temporary directory (maps
drawn from a pool of 512 maps of tests/_scoremap_data.py's families, each file written
separately, so every map is read from disk and scored in full; CAM-like families: smooth
fields at two scales, single blobs, rings with an island; float32 halves the 20 GB a
float64 copy of 50,000 maps would need), runs the command as a user would, with
``--n-jobs 1`` and ``--n-jobs 2``, under ``/usr/bin/time -v`` when present (peak resident
memory) else ``resource`` (children's peak), prints one row per run, and deletes the folder.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import _scoremap_data as D  # noqa: E402


def write_folder(root: Path, n: int, dtype: type, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    families = ("cam", "blob", "cam_fine", "ring")  # CAM-like maps, as models give
    pool = [D.make_map(families[k % 4], rng).astype(dtype) for k in range(512)]
    meta = root / "metadata" / "CUB" / "test"
    meta.mkdir(parents=True)
    ids, labels, sizes, boxes = [], [], [], []
    for k in range(n):
        image_id = f"{k % 200:03d}.class/img_{k:06d}.jpg"
        w, h = (int(v) for v in rng.integers(100, 500, 2))
        x0, x1 = np.sort(rng.integers(0, w, 2))
        y0, y1 = np.sort(rng.integers(0, h, 2))
        ids.append(image_id)
        labels.append(f"{image_id},{k % 200}")
        sizes.append(f"{image_id},{w},{h}")
        boxes.append(f"{image_id},{x0},{y0},{x1},{y1}")
        path = root / "scoremaps" / f"{image_id}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, pool[k % len(pool)])
    for name, rows in (("image_ids", ids), ("class_labels", labels), ("image_sizes", sizes),
                       ("localization", boxes)):
        (meta / f"{name}.txt").write_text("\n".join(rows) + "\n")


def run(root: Path, n_jobs: int) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds (user + system), peak resident MB, the MaxBoxAccV2 line."""
    cmd = ["skcream", "evaluate-maps", "--scoremap-root", "scoremaps", "--metadata-root",
           "metadata", "--dataset", "CUB", "--split", "test", "--n-jobs", str(n_jobs), "--quiet"]
    if shutil.which("skcream") is None:
        cmd = [sys.executable, "-m", "skcream.cli", *cmd[1:]]
    timer = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)
    if timer:
        cmd = [timer, "-v", *cmd]
    t = time.perf_counter()
    out = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t
    if timer:
        peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr)[1]) / 1024
        cpu = sum(float(re.search(rf"{k} time \(seconds\): ([0-9.]+)", out.stderr)[1])
                  for k in ("User", "System"))
    else:
        use = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak, cpu = use.ru_maxrss / 1024, use.ru_utime + use.ru_stime
    line = next(x for x in out.stdout.splitlines() if x.startswith("MaxBoxAccV2"))
    return wall, cpu, peak, line


def main(n: int = 50_000, dtype: str = "float32") -> None:
    with tempfile.TemporaryDirectory(prefix="skcream-maps-") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        write_folder(root, n, getattr(np, dtype))
        du = sum(p.stat().st_size for p in (root / "scoremaps").rglob("*.npy")) / 2**30
        print(f"wrote {n} {dtype} maps ({du:.1f} GiB) in {time.perf_counter() - t:.0f} s; "
              f"load average {os.getloadavg()[0]:.2f}")
        print(f"{'n_jobs':>6}  {'wall s':>7}  {'CPU s':>7}  {'wall ms/map':>11}  {'peak MB':>8}  "
              "load  result", flush=True)
        for jobs in (1, 2):
            wall, cpu, peak, line = run(root, jobs)
            print(f"{jobs:>6}  {wall:7.1f}  {cpu:7.1f}  {wall / n * 1e3:11.2f}  {peak:8.0f}  "
                  f"{os.getloadavg()[0]:.2f}  {' '.join(line.split())}", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000,
         sys.argv[2] if len(sys.argv) > 2 else "float32")
