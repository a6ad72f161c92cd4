"""Small synthetic evaluation sets for the report tests: images with one square object each,
and maps whose quality differs per method, so hits change with the threshold."""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter


def synthetic_case(n: int = 16, seed: int = 0, size: int = 64):
    """(images, maps {"CAM", "CREAM"} (n, 224, 224), gt at 224, labels, logits)."""
    rng = np.random.default_rng(seed)
    images, gt, labels, cam, cream = [], [], [], [], []
    for i in range(n):
        img = rng.integers(0, 80, (size, size, 3)).astype(np.uint8)
        x, y = (int(v) for v in rng.integers(0, size - 26, 2))
        s = int(rng.integers(10, 25))
        img[y : y + s, x : x + s, i % 2] = 240
        images.append(Image.fromarray(img))
        scale = 224 / size
        g = np.array([[int(x * scale), int(y * scale), int((x + s) * scale),
                       int((y + s) * scale)]], dtype=np.float64)
        gt.append(g)
        labels.append(i % 2)
        m = np.zeros((224, 224))
        m[int(g[0, 1]) : int(g[0, 3]), int(g[0, 0]) : int(g[0, 2])] = 1
        for out, noise, blur in ((cam, 1.2, 10), (cream, 0.5, 5)):
            a = gaussian_filter(m + noise * rng.random((224, 224)), blur)
            out.append((a - a.min()) / (a.max() - a.min()))
    logits = rng.normal(size=(n, 2))
    logits[np.arange(n), labels] += 1.0
    return images, {"CAM": np.stack(cam), "CREAM": np.stack(cream)}, gt, np.array(labels), logits
