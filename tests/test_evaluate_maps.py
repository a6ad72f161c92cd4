"""``skcream evaluate-maps`` / ``skcream.metrics.evaluate_scoremaps``: maps you already have.

The reference numbers below are facts: ``evaluation.py`` of ``clovaai/wsolevaluation``
(96f4b88, ``evaluate_wsol``) run on the folders :func:`_scoremap_data.write_wsol_folder`
writes (maps bit-identical on every machine), with its own DataLoader and evaluators; its
``performance`` and, from its evaluator, the per-IoU maxima and the index of the first best
threshold. Its code is not here, only what it printed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import weakref
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _scoremap_data as D  # noqa: E402

from skcream import cli  # noqa: E402
from skcream.metrics import evaluate_scoremaps  # noqa: E402
from skcream.priors import centre_prior  # noqa: E402
from skcream.scoremaps import resize_scoremap  # noqa: E402

README = Path(__file__).resolve().parents[1] / "README.md"

# --------------------------------------------------------------------------- reference facts
#: (dataset, split, n, seed, dtype, families) -> {(interval, iou list): (MaxBoxAccV2 = the
#: reference's multi-contour multi-IoU performance, per-IoU maxima, first best threshold index
#: per IoU, MaxBoxAcc = its single-contour performance at IoU 50)}; families "no_noise":
#: all of _scoremap_data.FAMILIES but noise (the reference takes ~10 s per noise map at 0.001)
REFERENCE_BOXES: dict = {
    ('CUB', 'test', 24, 11, 'float64', 'no_noise'): {
        (0.01, (30, 50, 70)): (63.888888888888886, [70.83333333333333, 66.66666666666667, 54.166666666666664], [0, 34, 12], 66.66666666666667),
        (0.01, (10, 40, 60, 90)): (60.41666666666666, [75.0, 70.83333333333333, 54.166666666666664, 41.666666666666664], [0, 32, 0, 34], 66.66666666666667),
        (0.001, (30, 50, 70)): (63.888888888888886, [70.83333333333333, 66.66666666666667, 54.166666666666664], [0, 338, 118], 66.66666666666667),
        (0.001, (10, 40, 60, 90)): (60.41666666666666, [75.0, 70.83333333333333, 54.166666666666664, 41.666666666666664], [0, 314, 0, 338], 66.66666666666667),
    },
    ('ILSVRC', 'val', 24, 12, 'float64', 'no_noise'): {
        (0.01, (30, 50, 70)): (70.83333333333333, [75.0, 75.0, 62.5], [0, 14, 48], 75.0),
        (0.01, (25, 75)): (66.66666666666667, [75.0, 58.333333333333336], [0, 34], 75.0),
        (0.001, (30, 50, 70)): (70.83333333333333, [75.0, 75.0, 62.5], [0, 134, 479], 75.0),
        (0.001, (25, 75)): (66.66666666666667, [75.0, 58.333333333333336], [0, 338], 75.0),
    },
    ('CUB', 'val', 12, 14, 'float32', 'all'): {
        (0.01, (30, 50, 70)): (77.77777777777777, [83.33333333333333, 83.33333333333333, 66.66666666666667], [0, 19, 35], 83.33333333333333),
    },
}
#: (dataset, split, n, seed, dtype, families) -> {interval: PxAP}
REFERENCE_PXAP: dict = {
    ('OpenImages', 'test', 16, 13, 'float64', 'no_noise'): {
        0.01: 15.028217976159347,
        0.001: 15.079299197326785,
    },
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """The reference cases' folders, written once."""
    out = {}
    for key in [*REFERENCE_BOXES, *REFERENCE_PXAP]:
        dataset, split, n, seed, dtype, families = key
        families = D.FAMILIES if families == "all" else \
            tuple(f for f in D.FAMILIES if f != "noise")
        out[key] = D.write_wsol_folder(tmp_path_factory.mktemp(f"{dataset}{seed}"), dataset,
                                       split, n, seed, families=families,
                                       dtype=getattr(np, dtype))
    return out


def _evaluate(f, key, **kwargs):
    return evaluate_scoremaps(f["scoremap_root"], f["metadata_root"], dataset=key[0],
                              split=key[1], mask_root=f["mask_root"], **kwargs)


@pytest.mark.parametrize("key", sorted(REFERENCE_BOXES))
def test_box_metrics_equal_the_reference(folders, key):
    for (interval, ious), (v2, per_iou, best, single) in REFERENCE_BOXES[key].items():
        out = _evaluate(folders[key], key, cam_curve_interval=interval, iou_thresholds=ious)
        assert out["max_box_acc_v2"] == v2, (interval, ious)
        assert list(out["per_iou"].values()) == per_iou
        thr = np.arange(0, 1, interval)
        assert list(out["thresholds"].values()) == [float(thr[j]) for j in best]
        assert out["max_box_acc"] == single
        assert out["pxap"] is None and out["n_images"] == key[2]


@pytest.mark.parametrize("key", sorted(REFERENCE_PXAP))
def test_pxap_equals_the_reference(folders, key):
    for interval, value in REFERENCE_PXAP[key].items():
        out = _evaluate(folders[key], key, cam_curve_interval=interval)
        assert out["pxap"] == pytest.approx(value, rel=0, abs=1e-12)
        assert out["max_box_acc_v2"] is None and out["max_box_acc"] is None


# --------------------------------------------------------------------------- small folders
@pytest.fixture(scope="module")
def cub(tmp_path_factory):
    return D.write_wsol_folder(tmp_path_factory.mktemp("cub"), "CUB", "test", 16, 0)


@pytest.fixture(scope="module")
def cub_result(cub):
    return _evaluate(cub, ("CUB", "test"))


def _copy(f, tmp_path):
    shutil.copytree(f["root"], tmp_path / "c")
    return {k: tmp_path / "c" / Path(v).relative_to(f["root"]) for k, v in f.items()}


def _ids(f, dataset="CUB", split="test"):
    return (Path(f["metadata_root"]) / dataset / split / "image_ids.txt").read_text().split()


def _maps(f, ids):
    return [np.load(Path(f["scoremap_root"]) / f"{i}.npy") for i in ids]


def test_npz_bundle_gives_the_folder_numbers(cub, cub_result, tmp_path):
    ids = _ids(cub)
    bundle = tmp_path / "maps.npz"
    np.savez(bundle, **dict(zip(ids, _maps(cub, ids))))
    out = evaluate_scoremaps(bundle, cub["metadata_root"], dataset="CUB", split="test")
    assert out == cub_result


@pytest.mark.parametrize("bits", [8, 16])
def test_png_heat_maps_are_value_over_full_scale(cub, tmp_path, bits):
    ids = _ids(cub)
    top = 2**bits - 1
    npy, png = tmp_path / "npy", tmp_path / "png"
    for i, m in zip(ids, _maps(cub, ids)):
        v = np.floor(m * top).astype(np.uint8 if bits == 8 else np.uint16)
        for root, write in ((npy, lambda p, v=v: np.save(p, v / float(top))),
                            (png, lambda p, v=v: cv2.imwrite(str(p), v))):
            path = root / f"{i}.{'npy' if root is npy else 'png'}"
            path.parent.mkdir(parents=True, exist_ok=True)
            write(path)
    a = evaluate_scoremaps(npy, cub["metadata_root"], dataset="CUB", split="test")
    b = evaluate_scoremaps(png, cub["metadata_root"], dataset="CUB", split="test")
    assert a == b


def test_arrays_iterables_threads_and_chunks_give_the_same_numbers(cub, cub_result):
    ids = _ids(cub)
    maps = _maps(cub, ids)
    kw = {"dataset": "CUB", "split": "test"}
    meta = cub["metadata_root"]
    for scoremaps, extra in ((np.stack(maps), {}), (maps, {"n_jobs": 2, "chunk_size": 3}),
                             (iter(maps), {"chunk_size": 5}),
                             (iter(maps), {"n_jobs": 2, "chunk_size": 1}),
                             (cub["scoremap_root"], {"n_jobs": -1, "chunk_size": 7})):
        assert evaluate_scoremaps(scoremaps, meta, **kw, **extra) == cub_result


def test_an_iterable_is_streamed_in_flat_memory(cub, cub_result):
    """At most ``2 * n_jobs`` chunks of maps are alive at once, whatever the number of maps."""
    ids = _ids(cub)
    maps = _maps(cub, ids)
    alive, peak = [0], [0]

    def gone():
        alive[0] -= 1

    def stream():
        for m in maps:
            c = m.copy()
            alive[0] += 1
            peak[0] = max(peak[0], alive[0])
            weakref.finalize(c, gone)  # called when the last reference goes (refcounting)
            yield c

    out = evaluate_scoremaps(stream(), cub["metadata_root"], dataset="CUB", split="test",
                             n_jobs=2, chunk_size=2)
    assert out == cub_result
    assert peak[0] <= 2 * 2 * 2 + 2, peak  # in flight + the chunk being made


def test_maps_of_another_size_are_resized_as_the_reference_inference(cub, tmp_path):
    ids = _ids(cub)
    small = [cv2.resize(m, (56, 48), interpolation=cv2.INTER_AREA) for m in _maps(cub, ids)]
    with pytest.raises(ValueError, match=rf"{re.escape(ids[0])}.* is 48x56 .*--resize-maps"):
        evaluate_scoremaps(small, cub["metadata_root"], dataset="CUB", split="test")
    out = evaluate_scoremaps(small, cub["metadata_root"], dataset="CUB", split="test",
                             resize=True)
    assert out["n_resized"] == len(ids)
    resized = [resize_scoremap(m) for m in small]
    assert out == {**evaluate_scoremaps(resized, cub["metadata_root"], dataset="CUB",
                                        split="test"), "n_resized": len(ids)}


def test_resize_scoremap_is_opencv_bicubic_then_min_max():
    rng = np.random.default_rng(0)
    m = rng.random((14, 10))
    up = cv2.resize(m, (224, 224), interpolation=cv2.INTER_CUBIC)
    expected = (up - up.min()) / (up - up.min()).max()
    got = resize_scoremap(m)
    assert got.shape == (224, 224) and got.dtype == np.float64
    assert np.array_equal(got, expected)
    assert got.min() == 0.0 and got.max() == 1.0
    # deviation from the reference (which min-maxes the rounding noise of the resized
    # constant map into a pattern): a constant map, or one with a NaN, becomes zeros
    assert np.ptp(cv2.resize(np.full((7, 7), 0.3), (224, 224), interpolation=cv2.INTER_CUBIC)) > 0
    assert not resize_scoremap(np.full((7, 7), 0.3)).any()
    assert not resize_scoremap(np.where(np.eye(7) > 0, np.nan, 0.2)).any()


def test_dataset_ground_truth_gives_the_metadata_numbers(cub, cub_result, tmp_path):
    """A Dataset of the skcream schema (boxes in original pixels, sizes from the images)."""
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    meta = Path(cub["metadata_root"]) / "CUB" / "test"
    sizes = dict(line.rsplit(",", 2)[0:1] + [tuple(map(int, line.rsplit(",", 2)[1:]))]
                 for line in (meta / "image_sizes.txt").read_text().split())
    boxes: dict = {}
    for line in (meta / "localization.txt").read_text().split():
        i, *b = line.rsplit(",", 4)
        boxes.setdefault(i, []).append([float(v) for v in b])
    ids = _ids(cub)
    ds = datasets.Dataset.from_dict({
        "image": [Image.new("L", sizes[i]) for i in ids],
        "bboxes": [boxes[i] for i in ids],
        "image_id": ids,
    })
    out = evaluate_scoremaps(np.stack(_maps(cub, ids)), ds)
    assert {k: out[k] for k in ("max_box_acc_v2", "max_box_acc", "per_iou", "thresholds")} == \
        {k: cub_result[k] for k in ("max_box_acc_v2", "max_box_acc", "per_iou", "thresholds")}


def test_the_baseline_is_the_prior_map_repeated(cub):
    prior = centre_prior()
    n = len(_ids(cub))
    out = evaluate_scoremaps(cub["scoremap_root"], cub["metadata_root"], dataset="CUB",
                             split="test", baseline=prior)
    repeated = evaluate_scoremaps(np.repeat(prior[None], n, axis=0), cub["metadata_root"],
                                  dataset="CUB", split="test")
    assert out["baseline"] == {k: repeated[k] for k in ("max_box_acc_v2", "max_box_acc", "pxap")}


# --------------------------------------------------------------------------- validity errors
def _one_map(f, tmp_path, value, ext="npy"):
    """A copy of ``f`` whose third map is replaced by ``value``; returns (copy, image id)."""
    c = _copy(f, tmp_path)
    image_id = _ids(c)[2]
    path = Path(c["scoremap_root"]) / f"{image_id}.npy"
    path.unlink()
    if ext == "npy":
        np.save(path, value, allow_pickle=True)
    else:
        path.with_suffix(".png").write_bytes(value) if isinstance(value, bytes) else \
            cv2.imwrite(str(path.with_suffix(".png")), value)
    return c, image_id


@pytest.mark.parametrize("value, message", [
    (np.zeros((224, 224), np.int64), "must be a floating-point array, got dtype int64"),
    (np.zeros((1, 224, 224)), r"must be 2-D \(H, W\), got shape \(1, 224, 224\)"),
    (np.where(np.eye(224) > 0, np.nan, 0.5), "contains NaN"),
    (np.where(np.eye(224) > 0, np.inf, 0.5), "contains an infinite value"),
    (np.full((224, 224), 1.5), r"must lie in \[0, 1\]; min=1.5, max=1.5"),
    (np.full((224, 224), -0.25), r"must lie in \[0, 1\]"),
    (np.zeros((100, 120)), "is 100x120 .*224x224"),
    (np.array([{"a": 1}], dtype=object), "not a readable .npy array"),
])
def test_invalid_maps_are_named_by_image_id(cub, tmp_path, value, message):
    c, image_id = _one_map(cub, tmp_path, value)
    with pytest.raises((ValueError, TypeError), match=message) as info:
        evaluate_scoremaps(c["scoremap_root"], c["metadata_root"], dataset="CUB", split="test")
    assert repr(image_id) in str(info.value)


def test_a_corrupt_file_and_a_colour_png_are_named(cub, tmp_path):
    c, image_id = _one_map(cub, tmp_path / "a", b"not a png", ext="png")
    with pytest.raises(ValueError, match=rf"{re.escape(repr(image_id))}.*not a readable PNG"):
        evaluate_scoremaps(c["scoremap_root"], c["metadata_root"], dataset="CUB", split="test")
    c, image_id = _one_map(cub, tmp_path / "b", np.zeros((224, 224, 3), np.uint8), ext="png")
    with pytest.raises(ValueError, match=rf"{re.escape(repr(image_id))}.*8- or 16-bit grey"):
        evaluate_scoremaps(c["scoremap_root"], c["metadata_root"], dataset="CUB", split="test")


def test_all_missing_maps_are_listed_at_once(cub, tmp_path):
    c = _copy(cub, tmp_path)
    ids = _ids(c)
    gone = [ids[1], ids[5], ids[9]]
    for i in gone:
        (Path(c["scoremap_root"]) / f"{i}.npy").unlink()
    with pytest.raises(FileNotFoundError, match=f"3 of {len(ids)} images have no score map") as e:
        evaluate_scoremaps(c["scoremap_root"], c["metadata_root"], dataset="CUB", split="test")
    for i in gone:
        assert repr(i) in str(e.value)
    bundle = tmp_path / "maps.npz"
    np.savez(bundle, **{i: np.zeros((224, 224)) for i in ids[2:]})
    with pytest.raises(FileNotFoundError, match="2 of .* .npz bundle") as e:
        evaluate_scoremaps(bundle, c["metadata_root"], dataset="CUB", split="test")
    assert repr(ids[0]) in str(e.value) and repr(ids[1]) in str(e.value)


def test_metadata_problems_are_named(cub, tmp_path):
    c = _copy(cub, tmp_path)
    meta = Path(c["metadata_root"]) / "CUB" / "test"
    ids = _ids(c)
    sizes = (meta / "image_sizes.txt").read_text().splitlines()
    (meta / "image_sizes.txt").write_text("\n".join(s for s in sizes if not s.startswith(ids[3])))
    with pytest.raises(ValueError, match=rf"{re.escape(repr(ids[3]))} has no line in image_sizes"):
        evaluate_scoremaps(c["scoremap_root"], c["metadata_root"], dataset="CUB", split="test")
    (meta / "image_sizes.txt").write_text("\n".join(sizes))
    loc = (meta / "localization.txt").read_text()
    (meta / "localization.txt").write_text(loc + f"{ids[4]},50,10,20,30\n")
    with pytest.raises(ValueError, match=rf"{re.escape(repr(ids[4]))}.*x1 < x0"):
        evaluate_scoremaps(c["scoremap_root"], c["metadata_root"], dataset="CUB", split="test")
    with pytest.raises(FileNotFoundError, match="metadata folder"):
        evaluate_scoremaps(c["scoremap_root"], c["metadata_root"], dataset="ILSVRC")
    with pytest.raises(ValueError, match="dataset"):
        evaluate_scoremaps(c["scoremap_root"], c["metadata_root"])


def test_missing_masks_are_listed_at_once(tmp_path):
    f = D.write_wsol_folder(tmp_path, "OpenImages", "test", 6, 3)
    masks = sorted((Path(f["mask_root"]) / "OpenImages").rglob("*_ignore.png"))
    for p in masks[:2]:
        p.unlink()
    with pytest.raises(FileNotFoundError, match="2 of 6 images have no mask file"):
        _evaluate(f, ("OpenImages", "test"))
    with pytest.raises(ValueError, match="mask_root"):
        evaluate_scoremaps(f["scoremap_root"], f["metadata_root"], dataset="OpenImages")


def test_argument_errors(cub):
    kw = {"dataset": "CUB", "split": "test"}
    for bad in ([], [0], [0.5], [120], ["x"]):
        with pytest.raises((ValueError, TypeError), match="iou_thresholds"):
            evaluate_scoremaps(cub["scoremap_root"], cub["metadata_root"], iou_thresholds=bad,
                               **kw)
    with pytest.raises(ValueError, match="cam_curve_interval"):
        evaluate_scoremaps(cub["scoremap_root"], cub["metadata_root"], cam_curve_interval=1.5,
                           **kw)
    with pytest.raises(ValueError, match="chunk_size"):
        evaluate_scoremaps(cub["scoremap_root"], cub["metadata_root"], chunk_size=0, **kw)
    with pytest.raises(FileNotFoundError, match="neither a folder"):
        evaluate_scoremaps(Path(cub["root"]) / "nope", cub["metadata_root"], **kw)
    with pytest.raises(ValueError, match="15 maps but the ground truth has 16"):
        evaluate_scoremaps(np.zeros((15, 224, 224)), cub["metadata_root"], **kw)


# --------------------------------------------------------------------------- command line
def _run(argv, capsys):
    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_help(capsys):
    code, out, err = _run(["--help"], capsys)
    assert code == 0 and "evaluate-maps" in out
    code, out, err = _run(["evaluate-maps", "--help"], capsys)
    assert code == 0 and err == "" and out.startswith("usage: skcream evaluate-maps")
    for text in ("(default: test)", "(default: 0.01)", "--iou-thresholds", "--resize-maps",
                 "--mask-root", "--json", "evaluation.py"):
        assert text in out


def test_cli_json_has_the_documented_keys(cub, cub_result, capsys):
    code, out, err = _run(["evaluate-maps", "--scoremap-root", str(cub["scoremap_root"]),
                           "--metadata-root", str(cub["metadata_root"]), "--dataset", "cub",
                           "--split", "test", "--json", "--quiet", "--n-jobs", "2"], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert {"max_box_acc_v2", "max_box_acc", "pxap", "per_iou", "thresholds",
            "n_images"} <= set(report)
    assert {k: v for k, v in report.items() if k != "baseline"} == \
        {k: v for k, v in cub_result.items() if k != "baseline"}
    assert report["pxap"] is None and report["baseline"]["max_box_acc_v2"] is not None


def test_cli_every_flag(tmp_path, capsys):
    f = D.write_wsol_folder(tmp_path, "OpenImages", "val", 6, 5)
    code, out, err = _run(["evaluate-maps", "--scoremap-root", str(f["scoremap_root"]),
                           "--metadata-root", str(f["metadata_root"]),
                           "--mask-root", str(f["mask_root"]), "--dataset", "OpenImages",
                           "--split", "val", "--cam-curve-interval", "0.001",
                           "--iou-thresholds", "40", "60", "--resize-maps", "--n-jobs", "1",
                           "--allow-outside-root", "--quiet"], capsys)
    assert code == 0, err
    assert "PxAP" in out and "1000 CAM thresholds" in out and "MaxBoxAccV2" not in out
    expected = evaluate_scoremaps(f["scoremap_root"], f["metadata_root"], dataset="OpenImages",
                                  split="val", mask_root=f["mask_root"],
                                  cam_curve_interval=0.001)["pxap"]
    assert f"{expected:.2f}" in out


@pytest.mark.parametrize("argv, fragment", [
    (["--dataset", "COCO"], "invalid choice: 'COCO'"),
    (["--dataset", "CUB", "--cam-curve-interval", "2"], "a number in [1e-05, 1)"),
    (["--dataset", "CUB", "--iou-thresholds", "0.5"], "a percentage in (1, 100]"),
    (["--dataset", "CUB", "--split", "nope"], "split must be"),
    (["--dataset", "CUB"], "3 of 16 images have no score map"),
])
def test_cli_errors_are_one_line(cub, tmp_path, capsys, argv, fragment):
    """One ``error:`` line; exit 2 for a wrong command line, 1 for bad data (as every
    subcommand: missing maps, a split that does not exist)."""
    c = _copy(cub, tmp_path)
    for i in _ids(c)[:3]:
        (Path(c["scoremap_root"]) / f"{i}.npy").unlink()
    code, _, err = _run(["evaluate-maps", "--scoremap-root", str(c["scoremap_root"]),
                         "--metadata-root", str(c["metadata_root"]), *argv], capsys)
    assert code == (1 if fragment in ("split must be", "3 of 16 images have no score map") else 2)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err and "error:" in lines[0], err
    assert fragment in lines[0]


def _readme_blocks(lang):
    text = README.read_text()
    section = text[text.index("## Bring your own maps"):]
    section = section[: section.index("\n## ", 1)]
    return re.findall(rf"```{lang}\n(.*?)```", section, re.S)


def test_readme_commands_run_as_written(tmp_path):
    """The README's evaluate-maps section, in a folder the test writes (its layout: the
    reference's, ``scoremaps/`` and ``metadata/`` side by side)."""
    D.write_wsol_folder(tmp_path, "CUB", "test", 16, 0)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(README.parent), os.environ.get("PYTHONPATH", "")])}
    exe = shutil.which("skcream")
    blocks = _readme_blocks("bash")
    assert blocks
    for block in blocks:
        for line in block.strip().splitlines():
            if exe is None:  # not installed as a script: the same entry point
                line = line.replace("skcream ", f"{sys.executable} -m skcream.cli ", 1)
            run = subprocess.run(line, shell=True, cwd=tmp_path, env=env, capture_output=True,
                                 text=True, timeout=600)
            assert run.returncode == 0, run.stderr[-2000:]
            assert "MaxBoxAccV2" in run.stdout or '"max_box_acc_v2"' in run.stdout
    for block in _readme_blocks("python"):
        run = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr[-2000:]


_KERNEL_STATS = """
import json
import numpy as np
from numba.core.registry import CPUDispatcher
from skcream import _levelsets, _pxap, metrics
rng = np.random.default_rng(0)
maps = [rng.random((24, 24)), np.kron(rng.random((3, 3)), np.ones((8, 8)))]
for multi in (True, False):
    metrics.max_box_acc(maps, [[[0, 0, 9, 9]]] * 2, multi_contour=multi)
metrics.pxap(maps, [np.ones((24, 24), np.uint8)] * 2)
stats = {}
for mod in (_levelsets, _pxap):
    for name, f in vars(mod).items():
        if isinstance(f, CPUDispatcher) and f.signatures:
            stats[name] = [sum(f.stats.cache_hits.values()), sum(f.stats.cache_misses.values())]
print(json.dumps(stats))
"""


def test_compiled_kernels_are_loaded_from_numbas_cache_in_a_new_process():
    """The first-call compile cost is paid once per install: every kernel has
    ``cache=True``, so a second process loads them all (no cache miss)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(README.parent), os.environ.get("PYTHONPATH", "")])}
    runs = [subprocess.run([sys.executable, "-c", _KERNEL_STATS], env=env, capture_output=True,
                           text=True, timeout=600) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr[-2000:]
    stats = json.loads(runs[1].stdout)
    assert {"_basin_sweep", "_euler_sweep", "pxap_counts", "fill_holes"} <= set(stats)
    assert all(miss == 0 and hit > 0 for hit, miss in stats.values()), stats
