"""Folders in the reference evaluator's layout, written for the tests of ``evaluate-maps``.

:func:`write_wsol_folder` writes what ``wsolevaluation``'s ``evaluation.py`` reads:

::

    <root>/metadata/<dataset>/<split>/{image_ids,class_labels,image_sizes,localization}.txt
    <root>/scoremaps/<image_id>.npy            224x224 float maps in [0, 1]
    <root>/masks/OpenImages/<mask path>        OpenImages instance and ignore masks (PNG)

The maps are made with integer arithmetic and one correctly rounded division per pixel, so
they are bit-identical on every machine (the reference's numbers written into the tests as
data must stay valid); they cycle through map families that exercise the protocol's corners:
CAM-like smooth fields, single blobs, rings (holes, islands), noise, plateaus at ``k / 100``
(PxAP's float edges), an all-zero map and a map whose maximum is below 1/255.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

SIZE = 224
FAMILIES = ("cam", "blob", "ring", "noise", "percent", "cam_fine", "zero", "faint")


def _smooth(rng: np.random.Generator, cells: int) -> np.ndarray:
    """Bilinear upsampling of random integers, in integers (exact), (224, 224) int64."""
    grid = rng.integers(0, 1000, (cells + 1, cells + 1)).astype(np.int64)
    step = -(-SIZE // cells)
    t = np.arange(SIZE, dtype=np.int64)
    i, f = t // step, t % step
    a = grid[i][:, i] * (step - f)[:, None] * (step - f)[None, :]
    b = grid[i][:, i + 1] * (step - f)[:, None] * f[None, :]
    c = grid[i + 1][:, i] * f[:, None] * (step - f)[None, :]
    d = grid[i + 1][:, i + 1] * f[:, None] * f[None, :]
    return a + b + c + d


def _unit(field: np.ndarray) -> np.ndarray:
    """Integers to [0, 1]: ``(v - min) / (max - min)``, one float64 division per pixel."""
    field = field - field.min()
    top = field.max()
    return field / top if top > 0 else field.astype(np.float64)


def make_map(family: str, rng: np.random.Generator) -> np.ndarray:
    """One (224, 224) float64 map in [0, 1] of ``family`` (see :data:`FAMILIES`)."""
    yy, xx = np.mgrid[:SIZE, :SIZE].astype(np.int64)
    if family == "cam":
        return _unit(_smooth(rng, 14))
    if family == "cam_fine":
        return _unit(_smooth(rng, 28))
    if family == "blob":
        cy, cx = (int(v) for v in rng.integers(30, 194, 2))
        ay, ax = (int(v) for v in rng.integers(1, 6, 2))
        return _unit(np.maximum(0, 40000 - ay * (yy - cy) ** 2 - ax * (xx - cx) ** 2))
    if family == "ring":
        cy, cx = (int(v) for v in rng.integers(60, 164, 2))
        r0 = int(rng.integers(400, 2500))
        d = np.abs((yy - cy) ** 2 + (xx - cx) ** 2 - r0)
        island = (yy - cy) ** 2 + (xx - cx) ** 2 < 30  # a bright island in the hole
        return _unit(np.where(island, 0, np.maximum(0, 3000 - d)) + island * 2500)
    if family == "noise":
        return rng.integers(0, 1001, (SIZE, SIZE)) / 1000.0
    if family == "percent":  # plateaus at k / 100, exactly the values PxAP's edges split
        return np.floor(_unit(_smooth(rng, 7)) * 100) / 100
    if family == "zero":
        return np.zeros((SIZE, SIZE))
    if family == "faint":  # maximum below 1/255: q.max() == 0, the box [0, 0, 0, 0]
        return _unit(_smooth(rng, 14)) * 0.003
    raise ValueError(f"unknown family {family!r}")


def _ids(dataset: str, split: str, n: int) -> list[str]:
    if dataset == "CUB":
        return [f"{c:03d}.Bird_{c}/Bird_{c}_{k:04d}_{k + 7}.jpg"
                for k in range(n) for c in [k % 3 + 1]]
    if dataset == "ILSVRC":
        return [f"val2/{k % 4}/{k}.jpeg" for k in range(n)] if split == "val" else \
            [f"test/ILSVRC2012_val_{k + 1:08d}.JPEG" for k in range(n)]
    return [f"{split}/0{k % 2}226z/{k:016x}.jpg" for k in range(n)]


def write_wsol_folder(root: str | os.PathLike, dataset: str = "CUB", split: str = "test",
                      n: int = 24, seed: int = 0, families: tuple[str, ...] = FAMILIES,
                      dtype: type = np.float64) -> dict[str, Path]:
    """Write maps, metadata (and OpenImages masks) for ``n`` images under ``root``.

    Returns the folders: ``scoremap_root``, ``metadata_root``, ``mask_root`` (the reference's
    ``--mask_root``: masks are under ``<mask_root>/OpenImages``), and ``root``.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    meta = root / "metadata" / dataset / split
    meta.mkdir(parents=True, exist_ok=True)
    maps_dir = root / "scoremaps"
    mask_root = root / "masks"
    ids = _ids(dataset, split, n)
    lines = {"image_ids": [], "class_labels": [], "image_sizes": [], "localization": []}
    for k, image_id in enumerate(ids):
        w, h = (int(v) for v in rng.integers(60, 520, 2))
        lines["image_ids"].append(image_id)
        lines["class_labels"].append(f"{image_id},{k % 3}")
        smap = make_map(families[k % len(families)], rng)
        path = maps_dir / f"{image_id}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, smap.astype(dtype))
        if dataset == "OpenImages":
            stem = image_id[: -len(".jpg")]
            masks = []
            for j in range(int(rng.integers(1, 3))):
                m = np.zeros((h, w), np.uint8)
                x0, x1 = np.sort(rng.integers(0, w, 2))
                y0, y1 = np.sort(rng.integers(0, h, 2))
                m[y0 : y1 + 1, x0 : x1 + 1] = 255 if j == 0 else 1  # any non-zero is foreground
                rel = f"{stem}_m0{k % 2}226z_{j:08x}.png"
                masks.append(rel)
                _imwrite(mask_root / "OpenImages" / rel, m)
            # every image has an ignore mask (as in the real metadata; the reference needs
            # one): an ignore box on two thirds of them, an empty one on the rest
            g = np.zeros((h, w), np.uint8)
            if k % 3 != 1:
                x0, x1 = np.sort(rng.integers(0, w, 2))
                y0, y1 = np.sort(rng.integers(0, h, 2))
                g[y0 : y1 + 1, x0 : x1 + 1] = 255
            ignore = f"{stem}_ignore.png"
            _imwrite(mask_root / "OpenImages" / ignore, g)
            for j, rel in enumerate(masks):
                lines["localization"].append(f"{image_id},{rel},{ignore if j == 0 else ''}")
        else:
            lines["image_sizes"].append(f"{image_id},{w},{h}")
            for j in range(int(rng.integers(1, 4))):
                x0, x1 = np.sort(rng.integers(0, w, 2))
                y0, y1 = np.sort(rng.integers(0, h, 2))
                ys, xs = np.nonzero(smap >= rng.integers(20, 90) / 100)
                if j == 0 and xs.size:  # the map's own region, jittered: hits and misses
                    jx, jy = (int(v) for v in rng.integers(-12, 13, 2))
                    x0 = min(max(xs.min() * w // SIZE + jx, 0), w - 1)
                    x1 = min(max(xs.max() * w // SIZE + jx, x0), w - 1)
                    y0 = min(max(ys.min() * h // SIZE + jy, 0), h - 1)
                    y1 = min(max(ys.max() * h // SIZE + jy, y0), h - 1)
                lines["localization"].append(f"{image_id},{x0},{y0},{x1},{y1}")
    for name, rows in lines.items():
        (meta / f"{name}.txt").write_text("".join(r + "\n" for r in rows))
    return {"root": root, "scoremap_root": maps_dir, "metadata_root": root / "metadata",
            "mask_root": mask_root}


def _imwrite(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), arr):
        raise OSError(f"could not write {path}")
