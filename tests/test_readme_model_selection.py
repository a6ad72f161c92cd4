"""The README's "Choosing hyper-parameters the benchmark's way" snippet runs as written.

It needs a wsolevaluation data root: the test writes a small CUB-layout folder (200
classes, as load_wsol's CUB ClassLabel: 1 training image, 3 train-fullsup images and 1 test
image per class; 32-pixel squares whose colour says the class) and changes only the two
values the README says it changes (``image_size=128`` -> 32, ``max_epochs=8`` -> 1).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

README = Path(__file__).resolve().parents[1] / "README.md"
SHRUNK = {"image_size=128": "image_size=32", "max_epochs=8": "max_epochs=1"}


def _snippet() -> str:
    text = README.read_text()
    section = text[text.index("**Choosing hyper-parameters the benchmark's way.**"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert "The test suite runs this snippet on a small CUB-layout folder it writes, with " \
           "`image_size=32`\nand `max_epochs=1` (the only values it changes)" in section
    for old, new in SHRUNK.items():
        assert code.count(old) == 1, old
        code = code.replace(old, new)
    return code


def _write_cub(root: Path, meta: Path, per_class: dict[str, int]) -> None:
    """``per_class[split]`` images of each of CUB's 200 classes, boxes in localization.txt."""
    rng = np.random.default_rng(0)
    colours = rng.integers(40, 256, (200, 3))
    for split, n in per_class.items():
        lines = {"image_ids.txt": [], "class_labels.txt": [], "image_sizes.txt": [],
                 "localization.txt": []}
        for c in range(200):
            for k in range(n):
                rel = f"{c + 1:03d}.class_{c}/{split}_{k}.png"
                img = rng.integers(0, 40, (32, 32, 3)).astype(np.uint8)
                x, y = (int(v) for v in rng.integers(0, 16, 2))
                img[y:y + 14, x:x + 14] = colours[c]
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(img).save(root / rel)
                lines["image_ids.txt"].append(rel)
                lines["class_labels.txt"].append(f"{rel},{c}")
                lines["image_sizes.txt"].append(f"{rel},32,32")
                lines["localization.txt"].append(f"{rel},{x},{y},{x + 14},{y + 14}")
        folder = meta / "CUB" / split
        folder.mkdir(parents=True)
        for name, rows in lines.items():
            (folder / name).write_text("\n".join(rows) + "\n")


@pytest.mark.slow
def test_benchmark_way_snippet_runs_as_written(tmp_path, monkeypatch):
    import datasets

    datasets.disable_progress_bars()
    _write_cub(tmp_path / "CUB_200_2011" / "images", tmp_path / "wsolevaluation" / "metadata",
               {"train": 1, "val": 3, "test": 1})
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(_snippet(), str(README), "exec"), scope)  # noqa: S102 - the README's own code
    search, model, val = scope["search"], scope["model"], scope["val"]
    assert len(val) == 400 and len(scope["train"]) == 200  # 2 of the 3 per class
    assert len(search.cv_results_["params"]) == 4
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert model.keep == "best" and model.best_epoch_ == 1 and len(model.history_) == 1
    assert {k: model.get_params()[k] for k in search.best_params_} == search.best_params_
