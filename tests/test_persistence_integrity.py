"""Saved models, caches and checkpoints are all or nothing and checked before use (issue 17).

Each numbered case of the issue has a test here (failures simulated by patching the write
function, by truncating files, and with two real processes for the races), plus the
persistence cases of the robustness issue: a torn training checkpoint, a model saved with a
CUDA device loaded on a CPU-only machine, and truncated / foreign / incomplete weight files
as one-line errors. Tiny ``test_resnet`` models (32 px, one epoch) keep them fast.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from sklearn.base import clone

from skcream import CREAMLocalizer, persistence
from skcream._locks import FolderInUseError, FolderLock
from skcream.persistence import read_saved, write_saved

TINY = dict(backbone="test_resnet", pretrained=False, max_epochs=1, batch_size=8,
            image_size=32, resize_size=36, random_state=0, verbose=0)
REPO = Path(__file__).resolve().parents[1]


def _dataset(n: int = 16, seed: int = 0, with_boxes: bool = True) -> datasets.Dataset:
    rng = np.random.default_rng(seed)
    images, labels, boxes = [], [], []
    for i in range(n):
        img = rng.integers(0, 60, (40, 40, 3)).astype(np.uint8)
        x, y = (int(v) for v in rng.integers(0, 24, 2))
        img[y:y + 16, x:x + 16, i % 2] = 250
        images.append(img)
        labels.append(i % 2)
        boxes.append([[x, y, x + 16, y + 16]])
    cols = {"image": datasets.Image(), "label": datasets.ClassLabel(names=["red", "green"])}
    data = {"image": images, "label": labels}
    if with_boxes:
        cols["bboxes"] = datasets.Sequence(datasets.Sequence(datasets.Value("float32"), length=4))
        data["bboxes"] = boxes
    return datasets.Dataset.from_dict(data, features=datasets.Features(cols))


@pytest.fixture(scope="module")
def ds():
    return _dataset()


@pytest.fixture(scope="module")
def fitted(ds):
    return CREAMLocalizer(**TINY).fit(ds)


@pytest.fixture
def steps(monkeypatch):
    """Counts training steps (the context hook runs once per batch)."""
    from skcream.estimators.localizer import _training

    calls = []
    real = _training._ContextHook.__call__

    def counting(self, *args):
        calls.append(1)
        return real(self, *args)

    monkeypatch.setattr(_training._ContextHook, "__call__", counting)
    return calls


def _weights(est) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in est.model_.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _variant(fitted, shift: float, threshold: float):
    """A copy of ``fitted`` whose head bias and box threshold differ (JSON and weights)."""
    other = pickle.loads(pickle.dumps(fitted))
    with torch.no_grad():
        other.model_.head.bias.fill_(shift)
    other.auto_box_threshold_ = threshold  # what box_threshold=None stands for
    return other


def _edit(path: Path, meta_fn=None, tensors_fn=None) -> None:
    """Rewrite a saved unit with edited JSON / tensors, as a *consistent* unit (valid
    manifest): what a hostile or hand-edited model folder looks like."""
    meta = json.loads((path / "skcream.json").read_text())
    from safetensors.torch import load

    tensors = load((path / "weights.safetensors").read_bytes())
    if meta_fn is not None:
        meta_fn(meta)
    if tensors_fn is not None:
        tensors_fn(tensors)
    write_saved(path, meta, tensors, overwrite=True)


def _one_line(exc: BaseException, *fragments: str) -> str:
    text = str(exc)
    assert "\n" not in text, text
    for fragment in fragments:
        assert fragment in text, text
    return text


# ------------------------------------------------------------ case 1: failed save
def test_1_failed_save_leaves_the_previous_model_intact(fitted, tmp_path, monkeypatch):
    path = tmp_path / "m"
    fitted.save(path)
    other = _variant(fitted, 3.0, 0.7)
    real = persistence._write_file
    for fail_at in (1, 2, 3):  # after the JSON, after the weights, at the manifest
        written = []

        def failing(target, data, fsync=True, fail_at=fail_at, written=written):
            written.append(target.name)
            if len(written) == fail_at:
                raise OSError(28, "No space left on device")
            real(target, data, fsync)

        monkeypatch.setattr(persistence, "_write_file", failing)
        with pytest.raises(OSError, match="No space"):
            other.save(path, overwrite=True)
        monkeypatch.setattr(persistence, "_write_file", real)
        loaded = CREAMLocalizer.load(path)
        assert loaded.box_threshold_ == fitted.box_threshold_
        assert _same(_weights(loaded), _weights(fitted))
        assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no staging left over
    # a failure at the final move leaves it intact too
    monkeypatch.setattr(persistence, "publish_dir",
                        lambda *a, **k: (_ for _ in ()).throw(OSError(5, "I/O error")))
    with pytest.raises(OSError, match="I/O error"):
        other.save(path, overwrite=True)
    monkeypatch.undo()
    assert _same(_weights(CREAMLocalizer.load(path)), _weights(fitted))
    other.save(path, overwrite=True)  # and a save that succeeds replaces it
    assert CREAMLocalizer.load(path).box_threshold_ == 0.7


def test_1_replacing_without_an_atomic_exchange_still_works(fitted, tmp_path, monkeypatch):
    monkeypatch.setattr(persistence, "_exchange", lambda a, b: False)  # not Linux / no support
    fitted.save(tmp_path / "m")
    _variant(fitted, 3.0, 0.7).save(tmp_path / "m", overwrite=True)
    assert CREAMLocalizer.load(tmp_path / "m").box_threshold_ == 0.7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_1_staging_left_by_a_killed_save_is_cleaned_up(fitted, tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    orphan = tmp_path / f".m.tmp-{dead}-0123456789ab"  # a save killed before its rename
    orphan.mkdir()
    (orphan / "skcream.json").write_text("{}")
    fitted.save(tmp_path / "m")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_1_a_mixed_unit_is_refused_naming_the_file(fitted, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    fitted.save(a)
    _variant(fitted, 3.0, 0.7).save(b)
    # what the old two-file save left behind: B's weights beside A's JSON (and A's manifest)
    (a / "weights.safetensors").write_bytes((b / "weights.safetensors").read_bytes())
    with pytest.raises(ValueError) as err:
        CREAMLocalizer.load(a)
    _one_line(err.value, "weights.safetensors", "manifest.json", "incomplete or corrupt")


# ------------------------------------------------------- case 2: readers and writers
_WRITER = """
import sys, time
from skcream.persistence import read_saved, write_saved
units = [read_saved(p) for p in sys.argv[2:4]]
print("ready", flush=True)
sys.stdin.readline()  # go
deadline = time.time() + float(sys.argv[4])
n = 0
while time.time() < deadline:
    meta, tensors = units[n % 2]
    write_saved(sys.argv[1], meta, tensors, overwrite=True)
    n += 1
print(n)
"""

_READER = """
import sys, time, torch
torch.set_num_threads(1)
from skcream import CREAMLocalizer
from skcream.persistence import read_saved
path, seconds = sys.argv[1], float(sys.argv[2])
expected = {0.25: 1.0, 0.75: 3.0}  # box threshold in the JSON -> head bias in the weights
counts = {"loads": 0, "estimator_loads": 0, "mixed": 0, "a": 0, "b": 0, "errors": 0}
CREAMLocalizer.load(path)  # warm up (imports timm) before the clock starts
print("ready", flush=True)
sys.stdin.readline()  # go
deadline = time.time() + seconds
while time.time() < deadline:
    try:
        if counts["loads"] % 10 == 9:  # every tenth through the estimator's own load
            est = CREAMLocalizer.load(path)
            thr, bias = est.box_threshold_, float(est.model_.head.bias[0])
            counts["estimator_loads"] += 1
        else:
            meta, tensors = read_saved(path)
            thr = meta["fitted"]["auto_box_threshold_"]
            bias = float(tensors["model.head.bias"][0])
    except Exception as exc:
        counts["errors"] += 1
        print(repr(exc), file=sys.stderr)
        continue
    counts["loads"] += 1
    counts["mixed"] += expected[thr] != bias
    counts["a" if thr == 0.25 else "b"] += 1
print(counts)
"""


def _env():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    return env


@pytest.mark.slow
def test_2_a_reader_racing_a_writer_never_sees_a_mix(fitted, tmp_path):
    a, b, live = tmp_path / "a", tmp_path / "b", tmp_path / "live"
    _variant(fitted, 1.0, 0.25).save(a)
    _variant(fitted, 3.0, 0.75).save(b)
    _variant(fitted, 1.0, 0.25).save(live)
    seconds = 3.0
    procs = [subprocess.Popen([sys.executable, "-c", code, *args], env=_env(), text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
             for code, args in ((_WRITER, (str(live), str(a), str(b), str(seconds))),
                                (_READER, (str(live), str(seconds))))]
    for proc in procs:  # both imported and warmed up: start the clock together
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    (w_out, _), (r_out, r_err) = (p.communicate(timeout=120) for p in procs)
    saves = int(w_out)
    reader = procs[1]
    counts = eval(r_out.strip().splitlines()[-1])  # noqa: S307 - our own dict repr
    print(f"race: {saves} saves, {counts}")
    assert reader.returncode == 0, r_err
    assert counts["mixed"] == 0 and counts["errors"] == 0, (counts, r_err[-2000:])
    assert counts["loads"] >= 20 and counts["estimator_loads"] >= 1
    assert saves >= 20 and counts["a"] > 0 and counts["b"] > 0  # both models were seen
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # nothing left over


# --------------------------------------------------------------- case 3: caches heal
def test_3_a_corrupt_fit_cache_entry_warns_once_and_is_retrained(ds, tmp_path, monkeypatch):
    import skcream.training as training

    calls = []
    real = training.train
    monkeypatch.setattr(training, "train", lambda *a, **k: calls.append(1) or real(*a, **k))
    cache = tmp_path / "cache"
    first = CREAMLocalizer(**TINY, memory=cache).fit(ds)
    (entry,) = (cache / "skcream-fits").iterdir()
    weights = entry / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated (disk full, killed copy)
    with pytest.warns(UserWarning, match="unreadable") as record:
        again = clone(first).fit(ds)
    assert len([w for w in record if "unreadable" in str(w.message)]) == 1
    assert len(calls) == 2 and _same(_weights(again), _weights(first))
    read_saved(entry)  # healed: a complete entry again
    third = clone(first).set_params(sigma=2.0).fit(ds)  # and used
    assert len(calls) == 2 and _same(_weights(third), _weights(first))


def test_3_a_corrupt_feature_cache_entry_warns_once_and_is_recomputed(tmp_path):
    import warnings

    from skcream import TimmFeatures

    images = [np.full((32, 32, 3), v, dtype=np.uint8) for v in (10, 90, 200)]
    feats = TimmFeatures("test_resnet", image_size=32, memory=tmp_path, verbose=0,
                         random_state=0).fit(images)
    ref = feats.transform(images)
    files = sorted(tmp_path.rglob("*.npy"))
    assert len(files) == 3
    files[0].write_bytes(files[0].read_bytes()[:100])  # truncated
    files[1].write_bytes(files[1].read_bytes()[:-4] + b"\1\2\3\4")  # same size, other bytes
    with pytest.warns(UserWarning, match="2 unreadable feature-cache entries") as record:
        again = feats.transform(images)
    assert len(record) == 1
    np.testing.assert_allclose(again, ref, rtol=0, atol=1e-5)  # recomputed in a smaller batch
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # healed: no warning the next time
        np.testing.assert_array_equal(feats.transform(images), again)
    assert len(list(tmp_path.rglob("*.npy"))) == 3


# ------------------------------------------------------- case 4: JSON checked first
@pytest.fixture
def saved(fitted, tmp_path):
    path = tmp_path / "m"
    fitted.save(path)
    return path


def test_4_an_architecture_skcream_never_records_is_refused_before_building(saved, monkeypatch):
    import timm

    built = []
    real = timm.create_model
    monkeypatch.setattr(timm, "create_model", lambda name, **k: built.append(name) or real(name, **k))
    _edit(saved, lambda m: m["fitted"]["net"].update(architecture="vit_giant_patch14_224"))
    with pytest.raises(ValueError) as err:
        CREAMLocalizer.load(saved)
    _one_line(err.value, "skcream.json", "fitted.net.architecture", "vit_giant_patch14_224")
    assert "vit_giant_patch14_224" not in built


@pytest.mark.parametrize("field, value, fragment", [
    ("n_classes", 10**12, "fitted.net.n_classes"),
    ("feature_dim", 10**9, "fitted.net.feature_dim"),
    ("n_classes", "2", "fitted.net.n_classes"),
    ("momentum", 7.0, "fitted.net.momentum"),
    ("large_feature_map", "yes", "fitted.net.large_feature_map"),
    ("feature_stage", 10**9, "fitted.net.feature_stage"),
])
def test_4_sizes_and_types_are_checked_before_allocating(saved, monkeypatch, field, value,
                                                         fragment):
    import skcream.model

    monkeypatch.setattr(skcream.model.CAMNet, "__init__",
                        lambda *a, **k: pytest.fail("a network was built"))
    _edit(saved, lambda m: m["fitted"]["net"].update({field: value}))
    with pytest.raises(ValueError) as err:
        CREAMLocalizer.load(saved)
    _one_line(err.value, "skcream.json", fragment)


def test_4_class_lists_must_match_the_head(saved):
    _edit(saved, lambda m: m["fitted"]["classes_"].update(values=[0, 1, 2]))
    with pytest.raises(ValueError) as err:
        CREAMLocalizer.load(saved)
    _one_line(err.value, "skcream.json", "fitted.classes_.values", "model.head.weight")
    _edit(saved, lambda m: (m["fitted"]["classes_"].update(values=[0, 1]),
                            m["fitted"].update(class_names_=["a"])))
    with pytest.raises(ValueError, match="fitted.class_names_"):
        CREAMLocalizer.load(saved)


def test_4_checkpoint_json_is_checked_and_extra_epochs_are_refused(ds, tmp_path, steps):
    ckpt = tmp_path / "ckpt"
    CREAMLocalizer(**{**TINY, "max_epochs": 2}, checkpoint_dir=ckpt).fit(ds)
    meta_path = ckpt / "skcream-train.json"
    meta = json.loads(meta_path.read_text())
    assert meta["epoch"] == 2
    n_steps = len(steps)
    # max_epochs below the checkpoint's epochs: said, never the 2-epoch model returned silently
    with pytest.raises(ValueError) as err:
        CREAMLocalizer(**TINY, checkpoint_dir=ckpt).fit(ds)
    _one_line(err.value, "skcream-train.json", "2 epochs", "1 asked")
    # a hand-edited epoch count that its history does not back
    meta_path.write_text(json.dumps({**meta, "epoch": 1000}))
    with pytest.raises(ValueError) as err:
        CREAMLocalizer(**{**TINY, "max_epochs": 3}, checkpoint_dir=ckpt).fit(ds)
    _one_line(err.value, "skcream-train.json", "history")
    meta_path.write_text(json.dumps({**meta, "epoch": "2"}))
    with pytest.raises(ValueError, match="epoch = '2'"):
        CREAMLocalizer(**{**TINY, "max_epochs": 3}, checkpoint_dir=ckpt).fit(ds)
    assert len(steps) == n_steps  # refused before the first batch


# ------------------------------------------------------------- case 5: NaN weights
def test_5_non_finite_weights_are_refused(fitted, saved):
    def poison(tensors):
        tensors["model.head.weight"][0, 0] = float("nan")

    _edit(saved, tensors_fn=poison)
    with pytest.raises(ValueError) as err:
        CREAMLocalizer.load(saved)
    _one_line(err.value, "weights.safetensors", "model.head.weight", "non-finite")
    bad = pickle.loads(pickle.dumps(fitted))
    with torch.no_grad():
        bad.context_.fg[0, 0] = float("inf")
    with pytest.raises(ValueError, match="context.fg"):
        pickle.loads(pickle.dumps(bad))


# --------------------------------------------------------- case 6: two runs, one folder
_HOLDER = """
import sys, time
from skcream._locks import FolderLock
lock = FolderLock(sys.argv[1], what="x", name=sys.argv[2]).acquire()
print("locked", flush=True)
time.sleep(float(sys.argv[3]))
lock.release()
"""


def _hold(folder: Path, name: str, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(folder), name, str(seconds)],
                            env=_env(), stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_6_a_second_fit_on_a_checkpoint_dir_in_use_fails_at_once(ds, tmp_path, steps):
    ckpt = tmp_path / "ckpt"
    other = _hold(ckpt, ".skcream-train.lock", 60)  # another process training there
    try:
        with pytest.raises(FolderInUseError) as err:
            CREAMLocalizer(**TINY, checkpoint_dir=ckpt).fit(ds)
        _one_line(err.value, "checkpoint_dir", str(ckpt), f"pid {other.pid}",
                  "SKCREAM_LOCK_TIMEOUT")
        assert steps == []  # before any training
    finally:
        other.kill()
        other.wait()
    CREAMLocalizer(**TINY, checkpoint_dir=ckpt).fit(ds)  # the holder died: the OS freed it
    assert not (ckpt / ".skcream-train.lock").exists()


def test_6_a_waiting_run_gets_the_folder_when_the_other_finishes(tmp_path):
    other = _hold(tmp_path, ".skcream.lock", 1.0)
    with pytest.raises(FolderInUseError):
        FolderLock(tmp_path, timeout=0).acquire()
    with FolderLock(tmp_path, timeout=None):  # waits for the holder to release
        assert other.poll() is not None or other.wait(timeout=30) == 0
    other.wait()


def test_6_concurrent_writers_never_share_a_temporary_name(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    target = tmp_path / "skcream-train.json"
    payloads = [bytes([i]) * 100_000 for i in range(8)]
    with ThreadPoolExecutor(4) as pool:  # the old fixed ".tmp" name raised FileNotFoundError
        list(pool.map(lambda d: persistence.write_bytes_atomic(target, d), payloads * 5))
    assert target.read_bytes() in payloads
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_6_cli_second_train_on_one_out_fails_before_loading_data(tmp_path, capsys, monkeypatch):
    from skcream import cli

    other = _hold(tmp_path, ".skcream.lock", 60)
    monkeypatch.setattr(cli.DataSpec, "load", lambda *a, **k: pytest.fail("data was loaded"))
    try:
        code = cli.main(["train", "--data", "synthetic:8", "--out", str(tmp_path),
                         "--backbone", "test_resnet", "--epochs", "1"])
    finally:
        other.kill()
        other.wait()
    err = capsys.readouterr().err
    assert code == 1
    line = err.strip()
    assert "\n" not in line and line.startswith("skcream train: error: --out")
    assert f"pid {other.pid}" in line and "--wait" in line and "Traceback" not in err


def test_6_a_model_that_cannot_go_where_asked_is_saved_beside(fitted, tmp_path, capsys):
    from skcream.cli import save_or_save_beside

    target = tmp_path / "model"
    target.write_text("a file where the model folder should go")
    where = save_or_save_beside(fitted, target)
    assert where != target and where.parent == tmp_path and where.name.startswith("model-")
    assert _same(_weights(CREAMLocalizer.load(where)), _weights(fitted))
    assert str(target) in capsys.readouterr().err
    assert target.read_text().startswith("a file")  # the user's file untouched


# ------------------------------------------------------------ case 7: late validation
@pytest.mark.parametrize("bad, fragment", [
    ("no_boxes", "bbox column"),
    ("unseen", "validation_data labels"),
])
def test_7_bad_validation_data_is_refused_before_training(ds, steps, bad, fragment):
    if bad == "no_boxes":
        val = _dataset(4, seed=1, with_boxes=False)
    else:
        val = _dataset(4, seed=1).cast_column(
            "label", datasets.ClassLabel(names=["red", "green", "blue"]))
        val = val.map(lambda r: {"label": 2})
    with pytest.raises(ValueError, match=fragment):
        CREAMLocalizer(**TINY, validation_data=val).fit(ds)
    assert steps == []


# -------------------------------------------- robustness issue: torn checkpoint
def test_torn_checkpoint_resumes_from_the_last_complete_epoch(ds, tmp_path, monkeypatch):
    params = {**TINY, "max_epochs": 2, "checkpoint_dir": tmp_path / "ckpt"}
    uninterrupted = CREAMLocalizer(**{**params, "checkpoint_dir": None}).fit(ds)
    real = persistence.write_bytes_atomic

    def killed(path, data, **kwargs):
        # killed after epoch 2's state and RNG files were written, before its JSON
        if Path(path).name == "skcream-train.json" and json.loads(data)["epoch"] == 2:
            raise KeyboardInterrupt
        real(path, data, **kwargs)

    monkeypatch.setattr(persistence, "write_bytes_atomic", killed)
    with pytest.raises(KeyboardInterrupt):
        CREAMLocalizer(**params).fit(ds)
    monkeypatch.setattr(persistence, "write_bytes_atomic", real)
    names = {p.name for p in (tmp_path / "ckpt").iterdir()}
    assert {"skcream-train-e2.pt", "skcream-train-e1.pt", "skcream-train.json"} <= names
    assert json.loads((tmp_path / "ckpt" / "skcream-train.json").read_text())["epoch"] == 1
    resumed = CREAMLocalizer(**params).fit(ds)
    assert [r["epoch"] for r in resumed.history_] == [1, 2]
    assert _same(_weights(resumed), _weights(uninterrupted))
    assert torch.equal(resumed.context_.fg, uninterrupted.context_.fg)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "skcream-train-e2-rng0.pt", "skcream-train-e2.pt", "skcream-train.json"]
    # a checkpoint file that no longer matches its JSON is refused, naming it
    state = tmp_path / "ckpt" / "skcream-train-e2.pt"
    state.write_bytes(state.read_bytes()[:-10])
    with pytest.raises(ValueError) as err:
        CREAMLocalizer(**{**params, "max_epochs": 3}).fit(ds)
    _one_line(err.value, "skcream-train-e2.pt", "skcream-train.json", "corrupt")


# ------------------------------------------- robustness issue: device-portable models
def test_a_model_saved_on_a_gpu_loads_on_a_cpu_only_machine(fitted, saved, ds, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert json.loads((saved / "skcream.json").read_text())["params"]["device"] is None
    _edit(saved, lambda m: m["params"].update(device="cuda:0"))  # saved by skcream 0.1 on a GPU
    loaded = CREAMLocalizer.load(saved)
    assert loaded.device is None and loaded.model_.head.weight.device.type == "cpu"
    np.testing.assert_array_equal(loaded.transform(ds), fitted.transform(ds))
    with pytest.raises(ValueError) as err:  # an explicit device must exist
        CREAMLocalizer.load(saved, device="cuda")
    _one_line(err.value, "device", "not available")
    gpu = pickle.loads(pickle.dumps(fitted))
    gpu.device = "cuda"  # pickled on a GPU machine
    with pytest.warns(UserWarning, match="not available"):
        back = pickle.loads(pickle.dumps(gpu))
    np.testing.assert_array_equal(back.transform(ds), fitted.transform(ds))


# -------------------------- robustness issue: bad weight files are one-line errors
def _pickle_bytes() -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save({"conv1.weight": torch.zeros(3)}, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("damage", ["truncated", "pickle", "missing_tensor", "no_manifest"])
def test_bad_weights_in_a_model_folder_are_one_line_errors(saved, damage, capsys):
    weights = saved / "weights.safetensors"
    if damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:5000])
        (saved / "manifest.json").unlink()  # as an older skcream wrote it: no manifest
        fragments = ["weights.safetensors", "truncated"]
    elif damage == "pickle":
        weights.write_bytes(_pickle_bytes())
        (saved / "manifest.json").unlink()
        fragments = ["weights.safetensors", "not a complete safetensors file"]
    elif damage == "missing_tensor":
        _edit(saved, tensors_fn=lambda t: t.pop("model.backbone.body.model.conv1.0.weight"))
        fragments = ["weights.safetensors", "conv1.0.weight", "missing"]
    else:
        weights.write_bytes(weights.read_bytes()[:-8])
        fragments = ["weights.safetensors", "manifest.json"]
    with pytest.raises(ValueError) as err:
        CREAMLocalizer.load(saved)
    _one_line(err.value, *fragments)
    from skcream.cli import main

    assert main(["evaluate", "--model", str(saved), "--data", "synthetic:4"]) == 1
    err_text = capsys.readouterr().err.strip()
    assert "\n" not in err_text and err_text.startswith("skcream evaluate: error:")
    assert "weights.safetensors" in err_text


@pytest.mark.parametrize("damage", ["truncated", "pickle", "missing_tensor"])
def test_bad_pretrained_files_are_one_line_errors(tmp_path, damage):
    from safetensors.torch import save_file

    from skcream.backbones import build_backbone

    good = tmp_path / "w.safetensors"
    import timm

    state = timm.create_model("test_resnet").state_dict()
    if damage == "missing_tensor":
        state.pop("conv1.0.weight")
    save_file({k: v.contiguous() for k, v in state.items()}, good)
    if damage == "truncated":
        good.write_bytes(good.read_bytes()[:-100])
    elif damage == "pickle":
        good.write_bytes(_pickle_bytes())
    with pytest.raises(ValueError) as err:
        build_backbone("test_resnet", pretrained=good)
    _one_line(err.value, "pretrained", str(good))
