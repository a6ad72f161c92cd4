"""Multi-process training correctness: ``CREAMLocalizer.fit`` in 2 CPU processes (gloo).

The processes run tests/_ddp_fit_script.py (10 images, batch 4 per process: the last
global batch holds 2 real samples and 6 of Accelerate's padding). Checked, for
``random_state=None`` and ``random_state=0``:

* weights and context tables agree bit for bit across the ranks, although with ``None``
  each rank drew different initial tables (so the check can fail);
* every real sample enters the context update (Eq. 4) exactly once per epoch;
* the tables equal Eq. 4 applied in one process to the gathered rows, in order, from the
  broadcast initial tables (an independent replay);
* with an int seed, the global batches are those of a 1-process run at batch 8.

Not compared with the 1-process run: weights and tables themselves, which differ by design
(BatchNorm statistics of 4 vs 8 samples, and each process draws its own augmentation).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from skcream.context import update_context

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "_ddp_fit_script.py"
N_IMAGES = 10


def _env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    two = tmp_path_factory.mktemp("two")
    one = tmp_path_factory.mktemp("one")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(SCRIPT), str(two), "4"]
    out = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    out = subprocess.run([sys.executable, str(SCRIPT), str(one), "8"], env=_env(),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]

    def load(directory, name, rank):
        return torch.load(directory / f"{name}-rank{rank}.pt", weights_only=True)

    return {name: ([load(two, name, r) for r in (0, 1)], load(one, name, 0))
            for name in ("none", "int")}


def _replay(initial: torch.Tensor, rows: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    n = initial.shape[0] // 2
    fg, bg = initial[:n].clone(), initial[n:].clone()
    for r in rows:
        fg, bg = update_context(fg, bg, r["fg_mean"], r["bg_mean"], r["labels"],
                                momentum=r["momentum"], has_fg=r["has_fg"], has_bg=r["has_bg"])
    return fg, bg


@pytest.mark.slow
@pytest.mark.parametrize("name", ["none", "int"])
def test_fit_in_two_processes_is_identical_across_ranks(runs, name):
    (r0, r1), _ = runs[name]
    assert r0["world"] == r1["world"] == 2
    # with random_state=None each process drew its own tables; with an int the same ones
    assert torch.equal(r0["drawn"], r1["drawn"]) == (name == "int")
    assert torch.equal(r0["fg"], r1["fg"]) and torch.equal(r0["bg"], r1["bg"])
    assert r0["weights"].keys() == r1["weights"].keys()
    assert all(torch.equal(r0["weights"][k], r1["weights"][k]) for k in r0["weights"])
    assert r0["global_batch"] == [8, 8] and r0["samples"] == [N_IMAGES] * 2


@pytest.mark.slow
@pytest.mark.parametrize("name", ["none", "int"])
def test_context_update_sees_each_real_sample_once(runs, name):
    (r0, r1), _ = runs[name]
    sizes = [len(r["labels"]) for r in r0["rows"]]
    assert sizes == [8, 2, 8, 2]  # not [8, 8, 8, 8]: the padding is dropped
    for epoch in range(2):
        seen = torch.cat(r0["indices"][2 * epoch:2 * epoch + 2]).tolist()
        assert sorted(seen) == list(range(N_IMAGES))
    for a, b in zip(r0["rows"], r1["rows"]):  # both ranks applied the same update
        assert all(torch.equal(a[k], b[k]) for k in ("fg_mean", "bg_mean", "labels", "has_fg"))
    # the tables are Eq. 4 applied in one process to the real rows, from rank 0's draw
    fg, bg = _replay(r0["drawn"], r0["rows"])
    assert torch.equal(fg, r0["fg"]) and torch.equal(bg, r0["bg"])
    assert not torch.equal(fg, r0["drawn"][: fg.shape[0]])


@pytest.mark.slow
def test_two_processes_run_the_global_batches_of_one_process(runs):
    (r0, _), single = runs["int"]
    assert single["world"] == 1
    assert [i.tolist() for i in r0["indices"]] == [i.tolist() for i in single["indices"]]
    assert [len(r["labels"]) for r in single["rows"]] == [8, 2, 8, 2]
    assert single["global_batch"] == r0["global_batch"] == [8, 8]
    assert torch.equal(single["drawn"], r0["drawn"])


# ---------------------------------------------------------------------------- the launcher
#: The README's multi-process command (N = 2), on CPU: ``--multi_gpu`` selects Accelerate's
#: torchrun launcher, which on a machine without GPUs runs MULTI_CPU processes over gloo.
LAUNCH = ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
          "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]


@pytest.mark.slow
def test_readme_launcher_trains_on_two_cpu_processes(tmp_path):
    from skcream import CREAMLocalizer

    out = tmp_path / "run"
    cmd = [sys.executable, *LAUNCH, "-m", "skcream.cli", "train", "--data", "synthetic:24",
           "--backbone", "test_resnet", "--pretrained", "false", "--epochs", "1",
           "--image-size", "32", "--global-batch-size", "8", "--device", "cpu",
           "--val-fraction", "0", "--out", str(out)]  # all 24 images train
    env = dict(_env(), CUDA_VISIBLE_DEVICES="")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    # two processes trained and reached the checkpoint: one RNG file per rank
    ckpt = out / "checkpoints"
    assert sorted(p.name for p in ckpt.glob("skcream-train-*rng*.pt")) == [
        "skcream-train-e1-rng0.pt", "skcream-train-e1-rng1.pt"]
    assert "2 process(es) on cpu; global batch 8 = batch_size 4 x 2 process(es)" in done.stdout
    assert "trained on 2 process(es): global batch 8 (4 per process)" in done.stdout
    # one model, written once (by the main process)
    assert done.stdout.count("saved the model to") == 1
    assert sorted(p.name for p in out.iterdir()) == ["checkpoints", "model"]
    model = CREAMLocalizer.load(out / "model")
    assert model.history_[-1]["num_processes"] == 2
    assert model.history_[-1]["samples"] == 24


def test_global_batch_size_option(monkeypatch, tmp_path, capsys):
    from skcream.cli import CLIError, _per_process_batch, main

    monkeypatch.setenv("WORLD_SIZE", "4")
    assert _per_process_batch(None, 32) == 8
    assert _per_process_batch(None, None) == 32 and _per_process_batch(16, None) == 16
    with pytest.raises(CLIError, match="not divisible by the 4 processes"):
        _per_process_batch(None, 30)
    with pytest.raises(CLIError, match="not both"):
        _per_process_batch(8, 32)
    code = main(["train", "--data", "synthetic:4", "--out", str(tmp_path / "o"),
                 "--global-batch-size", "6"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--global-batch-size 6" in err[0]
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------ distributed inference
def _boxed_dataset(n: int):
    import datasets
    import numpy as np

    rng = np.random.default_rng(1)
    images, labels, boxes = [], [], []
    for i in range(n):
        h, w = (40, 48) if i % 2 else (44, 36)
        img = rng.integers(0, 60, (h, w, 3)).astype(np.uint8)
        x, y = int(rng.integers(0, w - 16)), int(rng.integers(0, h - 16))
        img[y:y + 16, x:x + 16, i % 2] = 250
        images.append(img)
        labels.append(i % 2)
        boxes.append([[x, y, x + 16, y + 16]])
    features = datasets.Features({
        "image": datasets.Image(), "label": datasets.ClassLabel(names=["red", "green"]),
        "bboxes": datasets.Sequence(datasets.Sequence(datasets.Value("float32"), length=4)),
    })
    return datasets.Dataset.from_dict({"image": images, "label": labels, "bboxes": boxes},
                                      features=features)


def _same(a, b) -> bool:
    import numpy as np

    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    return a == b


@pytest.mark.slow
def test_inference_spread_over_two_processes_equals_one_process(tmp_path):
    import importlib.util
    import pickle

    from skcream import CREAMLocalizer

    data = _boxed_dataset(11)  # batch 4: rank 0 runs images 0-7, rank 1 images 8-10
    model = CREAMLocalizer(backbone="test_resnet", pretrained=False, max_epochs=1, batch_size=4,
                           image_size=32, resize_size=36, random_state=0, verbose=0,
                           device="cpu").fit(data)
    model.save(tmp_path / "model")
    data.save_to_disk(str(tmp_path / "data"))
    script = ROOT / "tests" / "_ddp_infer_script.py"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(script), str(tmp_path / "model"), str(tmp_path / "data"), str(tmp_path)]
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [pickle.loads((tmp_path / f"infer-rank{r}.pkl").read_bytes()) for r in (0, 1)]
    assert ranks[0]["world"] == ranks[1]["world"] == 2
    # each process ran the network on its own share only (6 passes over the data)
    assert [r["forwarded"] for r in ranks] == [6 * 8, 6 * 3]
    spec = importlib.util.spec_from_file_location("_ddp_infer_script", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    single = module.run(CREAMLocalizer.load(tmp_path / "model"), data)
    for key in single:  # bit for bit, metrics included, on both ranks
        assert _same(ranks[0][key], single[key]), key
        assert _same(ranks[1][key], single[key]), key
    assert _same(ranks[0]["sharded"], single["pseudo_boxes"])
    assert _same(ranks[1]["sharded"], single["pseudo_boxes"])
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == [
        "chunk-000000.pkl", "chunk-000001.pkl", "chunk-000002.pkl", "chunk-000003.pkl",
        "meta.json"]


@pytest.fixture(scope="module")
def small_model():
    from skcream import CREAMLocalizer

    data = _boxed_dataset(7)
    model = CREAMLocalizer(backbone="test_resnet", pretrained=False, max_epochs=1, batch_size=4,
                           image_size=32, resize_size=36, random_state=0, verbose=0,
                           device="cpu").fit(data)
    return model, data


def test_sharded_apply_resumes_where_it_stopped(small_model, tmp_path, monkeypatch):
    import numpy as np

    from skcream import sharded_apply

    model, data = small_model
    expected = model.pseudo_boxes(data, resolution=40)
    out = tmp_path / "shards"
    first = sharded_apply(model, "pseudo_boxes", data, out, chunk_size=3, resolution=40)
    assert np.array_equal(first, expected)
    # a finished chunk is never recomputed: mark chunk 1 (rows 3-5) ...
    import pickle

    marked = np.full((3, 4), -1.0)
    (out / "chunk-000001.pkl").write_bytes(pickle.dumps(marked))
    # ... and "kill" the run before chunk 2 (row 6) was written
    (out / "chunk-000002.pkl").unlink()
    calls = []
    real = type(model).pseudo_boxes

    def counting(self, X, *args, **kwargs):
        calls.append(len(X))
        return real(self, X, *args, **kwargs)

    monkeypatch.setattr(type(model), "pseudo_boxes", counting)
    again = sharded_apply(model, "pseudo_boxes", data, out, chunk_size=3, resolution=40)
    assert calls == [1]  # only the missing chunk ran
    assert np.array_equal(again[:3], expected[:3]) and np.array_equal(again[6:], expected[6:])
    assert np.array_equal(again[3:6], marked)
    assert not list(out.glob(".*.tmp"))
    with pytest.raises(ValueError, match="out_dir: .* another run"):
        sharded_apply(model, "pseudo_boxes", data, out, chunk_size=4, resolution=40)
    with pytest.raises(ValueError, match="method"):
        sharded_apply(model, "fit", data, tmp_path / "x")


def test_sharded_apply_localization_and_labels(small_model, tmp_path):
    import numpy as np

    from skcream import sharded_apply

    model, data = small_model
    labels = np.array(data["label"])
    whole = model.localize(data, labels=labels)
    # chunks of whole batches (batch_size 4): the very batches of one call, bit for bit
    parts = sharded_apply(model, "localize", data, tmp_path / "loc", chunk_size=4, labels=labels)
    assert np.array_equal(parts.boxes, whole.boxes) and np.array_equal(parts.labels, whole.labels)
    assert all(np.array_equal(a, b) for a, b in zip(parts.maps, whole.maps))
    # other chunk sizes regroup the batches: equal up to float rounding of batched convolutions
    odd = sharded_apply(model, "localize", data, tmp_path / "odd", chunk_size=3, labels=labels)
    assert np.array_equal(odd.labels, whole.labels)
    assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(odd.maps, whole.maps))


def test_shard_range_partitions_whole_batches():
    from skcream.distributed import shard_range

    for n in range(0, 30):
        for world in (1, 2, 3, 5):
            shares = [shard_range(n, 4, r, world) for r in range(world)]
            assert [i for s in shares for i in s] == list(range(n))
            assert all(s.start % 4 == 0 for s in shares if len(s))
    with pytest.raises(ValueError, match="shard_range"):
        shard_range(5, 4, 2, 2)
