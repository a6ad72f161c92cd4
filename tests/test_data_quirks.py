"""Issue 22, data half: the user's own files, as they come.

Every quirk is made here (real JPEG bytes with EXIF orientation tags, symbolic links, path
spellings, FIFOs, non-UTF-8 names, boxes in other formats, failing streams) and the answer
is checked against an invariant: the same answer as the clean input, or one clear error
naming the image (never a silently different result or a raw library exception).

- one decoder (``skcream.data.decode``): pixels and sizes as viewers show them;
- one resolver (``skcream.data.files``): containment on real paths, one identity per file;
- one box checker (``skcream.data.schema.check_boxes``): the dataset index and the box as
  given; ``from_detection`` never guesses a box format;
- splits that do not exist are errors (``skcream report``), and the report never claims a
  validation set it did not have.
"""

from __future__ import annotations

import io
import json
import os
import signal
import string
from pathlib import Path

import datasets
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from skcream.cli import CLIError, main, parse_data_spec
from skcream.data import ImageSource, load_imagefolder, load_wsol
from skcream.data.decode import decode_image, image_size
from skcream.data.detection import from_detection
from skcream.data.files import RootResolver
from skcream.data.streaming import materialize

# EXIF orientation -> the picture a viewer shows, written from the EXIF specification (where
# the stored first row and first column end up), independently of PIL's transpose tables
SHOWN = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],  # mirrored left-right
    3: lambda a: a[::-1, ::-1],  # turned 180
    4: lambda a: a[::-1],  # mirrored top-bottom
    5: lambda a: a.transpose(1, 0, 2),  # first row -> left column, first column -> top row
    6: lambda a: np.rot90(a, -1),  # first row -> right column (turned 90 clockwise)
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),  # first row -> right col, first col -> bottom
    8: lambda a: np.rot90(a, 1),  # first row -> left column, first column -> bottom row
}
SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def _photo(path: Path, arr: np.ndarray, orientation: int | None, fmt: str = "JPEG") -> Path:
    """Real image bytes written by PIL, with the EXIF orientation tag when given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    kw = {"quality": 95} if fmt == "JPEG" else {}
    if orientation is not None:
        kw["exif"] = _exif(orientation)
    Image.fromarray(arr).save(path, fmt, **kw)
    return path


def _stored(path) -> np.ndarray:
    """The pixels as stored in the file (no tag applied): the oracle's input."""
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def _cli(argv, capsys):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def _error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ": error: " in ln]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _folder(root: Path, rows: list[dict]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def _pattern(h: int, w: int, seed: int) -> np.ndarray:
    """Smooth enough for JPEG, asymmetric so every turn and mirror is visible."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    arr = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1),
                    np.full((h, w), int(rng.integers(0, 255)))], axis=-1)
    return arr.astype(np.uint8)


# ====================================================================== item 2: orientation
@SETTINGS
@given(orientation=st.integers(1, 8), h=st.integers(2, 24), w=st.integers(2, 24),
       fmt=st.sampled_from(["JPEG", "PNG", "WEBP"]),
       kind=st.sampled_from(["path", "bytes", "dict", "pil"]))
def test_orientation_tags_decode_as_viewers_show(tmp_path, orientation, h, w, fmt, kind):
    path = _photo(tmp_path / f"p{orientation}.{fmt.lower()}", _pattern(h, w, 0), orientation, fmt)
    expected = SHOWN[orientation](_stored(path))
    value = {"path": str(path), "bytes": path.read_bytes(), "dict": {"path": None,
             "bytes": path.read_bytes()}, "pil": Image.open(path)}[kind]
    shown = decode_image(value)
    np.testing.assert_array_equal(np.asarray(shown), expected)
    # the size comes from the header alone and is the decoded one
    assert image_size(value) == shown.size == (expected.shape[1], expected.shape[0])
    # decoding again does not turn it twice; datasets' own decoding (ds[i]["image"]) agrees
    assert np.array_equal(np.asarray(decode_image(shown)), expected)
    theirs = datasets.Image().decode_example({"path": str(path), "bytes": None})
    assert theirs.size == shown.size
    # one frame for everything an ImageSource hands out
    src = ImageSource.from_input([value if kind in ("path", "pil") else str(path)])
    assert src.size(0) == src.image(0).size == shown.size


def test_tiff_orientation_is_applied_once(tmp_path):
    """PIL turns TIFF images itself when it reads them: the decoder must not turn them again."""
    stored = _pattern(5, 9, 1)
    for o in range(1, 9):
        path = tmp_path / f"t{o}.tif"
        Image.fromarray(stored).save(path, "TIFF", tiffinfo={0x0112: o})
        shown = decode_image(str(path))
        np.testing.assert_array_equal(np.asarray(shown), SHOWN[o](stored))
        assert image_size(str(path)) == shown.size


@pytest.fixture(scope="module")
def exif_case(tmp_path_factory):
    """A folder of 6 photos, two of them stored 64x32 with Orientation=6 (shown 32x64), and a
    tiny localizer fitted on it."""
    from skcream import CREAMLocalizer

    root = tmp_path_factory.mktemp("exif") / "photos"
    rows = []
    for i in range(6):
        label = "cat" if i % 2 else "dog"
        arr = np.full((32, 64, 3), 40, np.uint8)  # stored H=32, W=64
        arr[4:20, 8 + 6 * i:30 + 6 * i, i % 2] = 230
        tag = 6 if i < 2 else None
        _photo(root / label / f"{i}.jpg", arr, tag)
        # a box drawn on the photo as shown: 32 wide, 64 high for the tagged ones
        box = [2, 40, 30, 62] if tag else [8, 4, 40, 20]
        rows.append({"file_name": f"{label}/{i}.jpg", "label": label, "bboxes": [box]})
    _folder(root, rows)
    ds = load_imagefolder(root, cache_dir=root.parent / "cache")
    model = CREAMLocalizer(backbone="test_resnet", pretrained=False, image_size=32,
                           resize_size=36, max_epochs=1, batch_size=3, random_state=0,
                           verbose=0, device="cpu").fit(ds)
    return root, ds, model


def test_exif_photo_is_one_frame_for_loader_dataset_and_predictions(exif_case):
    root, ds, model = exif_case
    # before: the box drawn on the photo as shown was refused as outside the 64x32 image
    assert ds[0]["bboxes"] == [[2, 40, 30, 62]]
    src = ImageSource.from_input(ds)
    assert ds[0]["image"].size == src.size(0) == src.image(0).size == (32, 64)
    assert src.boxes(0).tolist() == [[2, 40, 30, 62]]
    result = model.predict(ds)
    # before: boxes and masks in the raw 64x32 frame
    for i in range(len(ds)):
        w, h = ds[i]["image"].size
        assert result.masks[i].shape == result.maps[i].shape == (h, w)
        x0, y0, x1, y1 = result.boxes[i]
        assert 0 <= x0 <= x1 <= w and 0 <= y0 <= y1 <= h
    # the same answer as the clean input: the upright pixels given as an array
    upright = [np.asarray(decode_image(str(root / "dog" / "0.jpg")))]
    clean = model.predict(upright)
    tagged = model.predict([str(root / "dog" / "0.jpg")])
    np.testing.assert_array_equal(tagged.boxes, clean.boxes)
    np.testing.assert_array_equal(tagged.masks[0], clean.masks[0])
    assert model.evaluate(ds)["max_box_acc_v2"] >= 0  # boxes and maps share the frame


def test_exif_photo_in_cli_localize(exif_case, tmp_path, capsys):
    root, _, model = exif_case
    model.save(tmp_path / "model")
    photo = root / "dog" / "0.jpg"
    code, out, err = _cli(["localize", photo, "--model", tmp_path / "model", "--out",
                           tmp_path / "o", "--quiet"], capsys)
    assert code == 0, err
    (rec,) = json.loads((tmp_path / "o" / "boxes.json").read_text())
    x0, y0, x1, y1 = rec["box"]
    assert 0 <= x0 <= x1 <= 32 and 0 <= y0 <= y1 <= 64  # the photo as shown: 32 x 64
    overlay = Image.open(tmp_path / "o" / rec["overlay"])
    assert overlay.size[1] == 2 * overlay.size[0]  # upright overlay
    assert rec["box"] == model.predict([str(photo)]).boxes[0].tolist()


# ====================================================================== item 3: symlinks
def _png(path: Path, value: int = 90, size=(12, 10)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, 20, 200)).save(path, "PNG")
    return path


def test_symlinks_leaving_the_root_are_refused_and_the_flag_opts_in(tmp_path):
    secret = tmp_path / "secret"
    _png(secret / "s.png", 7)
    root = tmp_path / "root"
    _png(root / "a" / "0.png")
    _png(root / "b" / "1.png")
    (root / "c").symlink_to(secret, target_is_directory=True)  # a linked folder
    # before: read, trained on and drawn into the report
    with pytest.raises(ValueError, match=r"\(scanned\): path 'c' lies outside root .*symbolic "
                                         r"link.*allow_outside_root=True"):
        load_imagefolder(root, cache_dir=tmp_path / "cache")
    (root / "c").unlink()
    (root / "a" / "2.png").symlink_to(secret / "s.png")  # a linked file
    with pytest.raises(ValueError, match=r"path 'a/2.png' lies outside root .*symbolic link"):
        load_imagefolder(root, cache_dir=tmp_path / "cache")
    # listed in metadata.jsonl: named with its line
    _folder(root, [{"file_name": "a/0.png", "label": "a"}, {"file_name": "b/1.png", "label": "b"},
                   {"file_name": "a/2.png", "label": "a"}])
    with pytest.raises(ValueError, match=r"metadata\.jsonl:3: path 'a/2.png' lies outside"):
        load_imagefolder(root, cache_dir=tmp_path / "cache")
    # the opt-in flag stays
    ds = load_imagefolder(root, cache_dir=tmp_path / "cache", allow_outside_root=True)
    assert len(ds) == 3 and np.asarray(ds[2]["image"])[0, 0, 0] == 7
    # links that stay inside the root are followed as usual: a linked folder is walked once
    (root / "metadata.jsonl").unlink()
    (root / "a" / "2.png").unlink()
    (root / "d").symlink_to(root / "b", target_is_directory=True)
    assert load_imagefolder(root, cache_dir=tmp_path / "cache")["image_id"] == ["a/0.png",
                                                                                "b/1.png"]
    # ... but one file listed under its name and under the link is the same file twice
    _folder(root, [{"file_name": "a/0.png", "label": "a"}, {"file_name": "b/1.png", "label": "b"},
                   {"file_name": "d/1.png", "label": "a"}])
    with pytest.raises(ValueError, match=r"images 'b/1.png' and 'd/1.png' are the same file"):
        load_imagefolder(root, cache_dir=tmp_path / "cache")


def test_wsol_and_cli_refuse_a_linked_image_outside_data_root(tmp_path, capsys):
    _png(tmp_path / "secret.png")
    data = tmp_path / "data"
    _png(data / "a" / "1.png")
    (data / "a" / "2.png").symlink_to(tmp_path / "secret.png")
    meta = tmp_path / "meta" / "CUB" / "test"
    meta.mkdir(parents=True)
    (meta / "image_ids.txt").write_text("a/1.png\na/2.png\n")
    (meta / "class_labels.txt").write_text("a/1.png,0\na/2.png,1\n")
    with pytest.raises(ValueError, match=r"image_ids\.txt:2: path 'a/2.png' lies outside "
                                         r"data_root.*symbolic link"):
        load_wsol(data, tmp_path / "meta", "CUB", "test", cache_dir=tmp_path / "c")
    root = tmp_path / "root"
    _png(root / "x" / "0.png")
    (root / "y").symlink_to(tmp_path / "data" / "a", target_is_directory=True)
    code, _, err = _cli(["train", "--data", f"imagefolder:{root}", "--out", tmp_path / "o",
                         "--device", "cpu"], capsys)
    line = _error_line(err)
    assert code == 1 and "symbolic link" in line and "--allow-outside-root" in line


@SETTINGS
@given(entries=st.lists(st.sampled_from(["file", "in_file", "out_file", "in_dir", "out_dir"]),
                        min_size=1, max_size=5),
       listed=st.booleans())
def test_linked_layouts_load_iff_every_file_stays_inside(tmp_path_factory, entries, listed):
    """Random layouts of plain files and links (to files or folders, inside or outside the
    root), scanned or listed in metadata.jsonl: the load succeeds exactly when no image
    resolves outside the root, and then every image it reads is a real file inside it;
    otherwise one error names a leaving path and the opt-in flag."""
    base = tmp_path_factory.mktemp("links")
    root, outside = base / "root", base / "outside"
    _png(root / "k" / "base.png", 1)
    rows = [{"file_name": "k/base.png", "label": "k"}]
    leaving = []
    for j, kind in enumerate(entries):
        name = f"e{j}"
        if kind == "file":
            rel = str(_png(root / "k" / f"{name}.png", 10 + j).relative_to(root))
        elif kind in ("in_file", "out_file"):
            # an inside target is no image file of its own (else it is listed twice)
            target = _png((root / "t" if kind == "in_file" else outside) / f"{name}.bin", 50 + j)
            (root / "k" / f"{name}.png").symlink_to(target)
            rel = f"k/{name}.png"
        else:
            target = (root / "t" if kind == "in_dir" else outside) / name
            _png(target / "x.png", 100 + j)
            (root / name).symlink_to(target, target_is_directory=True)
            rel = f"{name}/x.png"
        if kind.startswith("out"):
            leaving.append(rel if kind == "out_file" else name)
        rows.append({"file_name": rel, "label": "k"})
    if listed:
        _folder(root, rows)
    try:
        ds = load_imagefolder(root, cache_dir=base / "cache")
    except ValueError as err:
        message = str(err)
        assert leaving, message
        assert any(f"path '{p}" in message for p in leaving), message
        assert "symbolic link" in message and "allow_outside_root=True" in message
        return
    assert not leaving
    assert len(ds) == len(rows)
    real_root = os.path.realpath(root)
    for value in ds.cast_column("image", datasets.Image(decode=False))["image"]:
        assert os.path.realpath(value["path"]).startswith(real_root + os.sep)


# ====================================================================== item 4: one file, two names
def test_one_file_under_two_spellings_is_refused(tmp_path):
    root = tmp_path / "root"
    _png(root / "a" / "0.png")
    _png(root / "b" / "1.png")
    _folder(root, [{"file_name": "a/0.png", "label": "a"}, {"file_name": "b/1.png", "label": "b"},
                   {"file_name": "./a/0.png", "label": "b"}])
    # before: two rows of one file with contradictory labels
    with pytest.raises(ValueError, match=r"image id 'a/0.png' appears twice"):
        load_imagefolder(root, cache_dir=tmp_path / "c")
    (root / "c").symlink_to(root / "a", target_is_directory=True)  # a spelling through a link
    _folder(root, [{"file_name": "a/0.png", "label": "a"}, {"file_name": "b/1.png", "label": "b"},
                   {"file_name": "c/0.png", "label": "b"}])
    with pytest.raises(ValueError, match=r"images 'a/0.png' and 'c/0.png' are the same file"):
        load_imagefolder(root, cache_dir=tmp_path / "c")


@SETTINGS
@given(first=st.sampled_from(["a/0.png", "./a/0.png", "a//0.png", "a/./0.png", "b/../a/0.png",
                              "ln/0.png"]),
       second=st.sampled_from(["a/0.png", "./a/0.png", "a//0.png", "a/./0.png", "b/../a/0.png",
                               "ln/0.png"]))
def test_spellings_of_one_file(tmp_path_factory, first, second):
    """Any spelling alone loads the same pixels as the clean one; any two together are the
    same file twice (refused, naming both ids)."""
    root = tmp_path_factory.mktemp("spell") / "root"
    _png(root / "a" / "0.png", 33)
    _png(root / "b" / "1.png", 66)
    (root / "ln").symlink_to(root / "a", target_is_directory=True)
    clean = np.asarray(Image.open(root / "a" / "0.png").convert("RGB"))
    _folder(root, [{"file_name": first, "label": "x"}, {"file_name": "b/1.png", "label": "y"}])
    ds = load_imagefolder(root, cache_dir=root.parent / "c")
    np.testing.assert_array_equal(np.asarray(ds[0]["image"]), clean)
    assert ds[0]["image_id"] == os.path.normpath(first)  # the normalised spelling
    _folder(root, [{"file_name": first, "label": "x"}, {"file_name": "b/1.png", "label": "y"},
                   {"file_name": second, "label": "y"}])
    with pytest.raises(ValueError, match=r"same file|appears twice"):
        load_imagefolder(root, cache_dir=root.parent / "c")


def test_resolver_keys_every_spelling_to_the_real_file(tmp_path):
    _png(tmp_path / "r" / "a" / "0.png")
    (tmp_path / "r" / "ln").symlink_to(tmp_path / "r" / "a", target_is_directory=True)
    res = RootResolver(tmp_path / "r", "root", False)
    keys = {res.resolve(s, where="t").key for s in
            ("a/0.png", "./a/0.png", "a//0.png", "ln/0.png", "ln/../a/0.png")}
    assert keys == {os.path.realpath(tmp_path / "r" / "a" / "0.png")}
    # "link/.." is the parent of the link's target (as the system opens it), not of the link
    (tmp_path / "elsewhere" / "in").mkdir(parents=True)
    _png(tmp_path / "elsewhere" / "x.png")
    (tmp_path / "r" / "out").symlink_to(tmp_path / "elsewhere" / "in", target_is_directory=True)
    with pytest.raises(ValueError, match="symbolic link"):
        res.resolve("out/../x.png", where="t")


# ====================================================================== item 5: boxes
@pytest.fixture(scope="module")
def tiny_model(exif_case):
    return exif_case[2]


def _boxed(sizes, boxes) -> datasets.Dataset:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for w, h in sizes]
    return datasets.Dataset.from_dict(
        {"image": [Image.fromarray(a) for a in images], "label": [i % 2 for i in range(len(sizes))],
         "bboxes": boxes, "image_id": [f"img{i}" for i in range(len(sizes))]},
        features=datasets.Features({
            "image": datasets.Image(), "label": datasets.ClassLabel(names=["cat", "dog"]),
            "bboxes": datasets.Sequence(datasets.Sequence(datasets.Value("float32"))),
            "image_id": datasets.Value("string")}))


def test_boxes_outside_the_image_name_the_index_and_the_box_as_given(tiny_model):
    sizes = [(40, 32)] * 5
    boxes = [[[2, 2, 20, 20]]] * 5
    boxes[3] = [[100, 100, 500, 500]]  # before: scored silently
    ds = _boxed(sizes, boxes)
    for call in (lambda: tiny_model.evaluate(ds), lambda: tiny_model.score(ds),
                 lambda: ImageSource.from_input(ds).boxes(3)):
        with pytest.raises(ValueError, match=r"box 0 of image 'img3' \(index 3\) lies outside the "
                                             r"image of size \(W=40, H=32\): \[100, 100, 500, 500\]"):
            call()
    # before: "gt_boxes[1]" (its place in the batch) and 224-px coordinates
    boxes[3] = [[10, 5, 50, 20]]
    with pytest.raises(ValueError, match=r"\(index 3\) .*\[10, 5, 50, 20\]"):
        tiny_model.set_params(batch_size=2).evaluate(_boxed(sizes, boxes))
    tiny_model.set_params(batch_size=3)


@pytest.mark.parametrize("box,match", [
    ([[1, 2, 3]], r"3 numbers per box"),  # before: "cannot reshape array of size 3"
    ([[5, 5, 2, 9]], r"x1 < x0"),
    ([[float("nan"), 0, 1, 1]], r"not finite"),
    ([[-1, 0, 3, 3]], r"negative"),
])
def test_malformed_boxes_are_named(box, match):
    ds = _boxed([(40, 32)], [box])
    with pytest.raises(ValueError, match=r"image 'img0' \(index 0\).*" + match):
        ImageSource.from_input(ds).boxes(0)


def test_huge_box_coordinate_in_metadata_is_a_clear_error(tmp_path):
    root = tmp_path / "root"
    _png(root / "a" / "0.png")
    _png(root / "b" / "1.png")
    (root / "metadata.jsonl").write_text(
        '{"file_name": "a/0.png", "label": "a", "bboxes": [[0, 0, 1' + "0" * 400 + ', 3]]}\n'
        '{"file_name": "b/1.png", "label": "b"}\n')
    with pytest.raises(ValueError, match=r"bboxes of image 'a/0.png' must be numbers"):
        load_imagefolder(root, cache_dir=tmp_path / "c")  # before: OverflowError


def _detection(boxes_xywh, size=(50, 40)):
    images = [np.zeros((size[1], size[0], 3), np.uint8) for _ in boxes_xywh]
    return datasets.Dataset.from_dict(
        {"image": images, "objects": [{"bbox": b, "category": [0] * len(b)} for b in boxes_xywh]},
        features=datasets.Features({"image": datasets.Image(), "objects": datasets.Sequence(
            {"bbox": datasets.Sequence(datasets.Value("float32"), length=4),
             "category": datasets.ClassLabel(names=["a", "b"])})}))


def test_from_detection_needs_a_declared_box_format():
    xywh = _detection([[[10, 10, 30, 25]]])
    with pytest.raises(ValueError, match=r"box_format: declare .*does not guess"):
        from_detection(xywh)
    assert from_detection(xywh, box_format="xywh")[0]["bboxes"] == [[10, 10, 40, 35]]
    # xyxy data read as xywh: before, a box outside the image without complaint
    xyxy = _detection([[[2, 2, 8, 8]], [[20, 15, 45, 38]]])
    with pytest.raises(ValueError, match=r"box 0 of row 1 lies outside the image of size "
                                         r"\(W=50, H=40\).*box_format='xywh'.*is it 'xyxy'\?"):
        from_detection(xyxy, box_format="xywh")
    assert from_detection(xyxy, box_format="xyxy")[1]["bboxes"] == [[20, 15, 45, 38]]


@SETTINGS
@given(w=st.integers(4, 60), h=st.integers(4, 60), data=st.data())
def test_box_formats_give_the_clean_boxes_or_name_the_row(w, h, data):
    """Boxes written xyxy or xywh and declared so give the clean xyxy boxes; a box that does
    not fit the image (as given) is one error naming the row and the format."""
    x0 = data.draw(st.integers(0, w + 5))
    y0 = data.draw(st.integers(0, h + 5))
    x1 = data.draw(st.integers(x0, w + 10))
    y1 = data.draw(st.integers(y0, h + 10))
    clean = [x0, y0, x1, y1]
    inside = x1 <= w and y1 <= h
    for fmt, given_box in (("xyxy", clean), ("xywh", [x0, y0, x1 - x0, y1 - y0])):
        ds = _detection([[given_box]], size=(w, h))
        if inside:
            assert from_detection(ds, box_format=fmt)[0]["bboxes"] == [clean]
        else:
            with pytest.raises(ValueError, match=rf"row 0 lies outside the image of size "
                                                 rf"\(W={w}, H={h}\).*box_format='{fmt}'"):
                from_detection(ds, box_format=fmt)


@SETTINGS
@given(w=st.integers(1, 50), h=st.integers(1, 50),
       box=st.lists(st.integers(-3, 60), min_size=4, max_size=4), orientation=st.integers(1, 8))
def test_box_check_is_against_the_shown_size(tmp_path_factory, w, h, box, orientation):
    """One checker: a box is accepted exactly when it fits the image as shown, else the error
    names the index and the box as given."""
    folder = tmp_path_factory.mktemp("box")
    path = _photo(folder / "p.png", np.zeros((h, w, 3), np.uint8), orientation, "PNG")
    sw, sh = (h, w) if orientation >= 5 else (w, h)
    ds = datasets.Dataset.from_dict({"image": [str(path)], "bboxes": [[box]]},
                                    features=datasets.Features({
                                        "image": datasets.Image(),
                                        "bboxes": datasets.Sequence(datasets.Sequence(
                                            datasets.Value("float32")))}))
    x0, y0, x1, y1 = box
    ok = 0 <= x0 <= x1 <= sw and 0 <= y0 <= y1 <= sh
    src = ImageSource.from_input(ds)
    if ok:
        assert src.boxes(0).tolist() == [box]
    else:
        shown = "[" + ", ".join(str(v) for v in box) + "]"
        with pytest.raises(ValueError, match=r"\(index 0\)") as err:
            src.boxes(0)
        assert shown in str(err.value)


# ====================================================================== item 10: splits
def test_a_split_that_does_not_exist_is_an_error(tmp_path):
    flat = tmp_path / "flat"
    _png(flat / "cat" / "0.png")
    _png(flat / "dog" / "1.png")
    spec = parse_data_spec(f"imagefolder:{flat}")
    assert len(spec.load(None, default="test")) == 2  # no option given: the whole folder
    for split, option in (("test", "--split"), ("val", "--val-split")):
        with pytest.raises(CLIError, match=rf"{option} {split}: imagefolder:.* has no split "
                                           r"subfolders"):
            spec.load(split, option=option)
    split = tmp_path / "split"
    for name in ("train", "test"):
        _png(split / name / "cat" / "0.png", 10 if name == "train" else 200)
        _png(split / name / "dog" / "1.png")
    spec = parse_data_spec(f"imagefolder:{split}")
    test = spec.load("test")
    assert test[0]["image"].getpixel((0, 0))[0] == 200 and len(spec.load(None)) == 2
    with pytest.raises(CLIError, match=r"--val-split val: .*no split 'val'.*its splits: train, "
                                       r"test"):
        spec.load("val", option="--val-split")
    with pytest.raises(CLIError, match=r"--split valid: synthetic data has the splits"):
        parse_data_spec("synthetic:4").load("valid")


def test_report_refuses_missing_splits_and_never_claims_a_validation_set(exif_case, tmp_path,
                                                                       capsys):
    root, ds, model = exif_case
    model.save(tmp_path / "m")
    # before: the same images three times, and "tau chosen on the validation images"
    code, _, err = _cli(["report", "--model", tmp_path / "m", "--data", f"imagefolder:{root}",
                         "--split", "test", "--val-split", "val", "--out", tmp_path / "r",
                         "--quiet"], capsys)
    assert code == 2 and "no split subfolders" in _error_line(err)
    assert not (tmp_path / "r").exists()
    # validation data that is the reported images: tau is said to be chosen on them
    index = model.report(ds, out=tmp_path / "r2", prior_data=ds, validation_data=load_imagefolder(
        root, cache_dir=root.parent / "cache"))
    page = Path(index).read_text()
    assert "chosen on these images" in page and "chosen on the validation images" not in page
    assert "the reported images themselves" in page


# ====================================================================== poor kinds: files
def _alarm(seconds: int):
    def boom(*_):
        raise TimeoutError("blocked: a FIFO was opened")
    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    return old


def test_fifo_or_folder_where_an_image_should_be_is_named_as_such(tmp_path, capsys):
    root = tmp_path / "root"
    _png(root / "a" / "0.png")
    os.mkfifo(root / "a" / "pipe.png")
    (root / "a" / "dir.png").mkdir()
    old = _alarm(60)
    try:
        _folder(root, [{"file_name": "a/0.png", "label": "a"},
                       {"file_name": "a/pipe.png", "label": "b"}])
        with pytest.raises(ValueError, match=r"pipe\.png' is a FIFO \(named pipe\), not a regular "
                                             "file"):
            load_imagefolder(root, cache_dir=tmp_path / "c")  # before: "is missing"
        _folder(root, [{"file_name": "a/0.png", "label": "a"},
                       {"file_name": "a/dir.png", "label": "b"},
                       {"file_name": "a/pipe.png", "label": "b"}])
        with pytest.raises(ValueError, match=r"dir\.png' is a folder, not a file"):
            load_imagefolder(root, cache_dir=tmp_path / "c")
        src = ImageSource.from_input([str(root / "a" / "pipe.png"), str(root / "a" / "dir.png")])
        with pytest.raises(ValueError, match=r"\(index 0\) is a FIFO"):
            src.image(0)
        with pytest.raises(ValueError, match=r"\(index 1\) is a folder"):
            src.size(1)
        code, _, err = _cli(["localize", root / "a" / "pipe.png", "--post-hoc", "--out",
                             tmp_path / "o"], capsys)
        assert code == 2 and "is a FIFO" in _error_line(err)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_non_utf8_file_name_is_named_readably(tmp_path):
    root = tmp_path / "root"
    _png(root / "cat" / "0.png")
    _png(root / "dog" / "1.png")
    os.rename(os.fsencode(root / "cat" / "0.png"), os.fsencode(root / "cat") + b"/caf\xe9.png")
    # before: UnicodeEncodeError from deep inside the loader
    with pytest.raises(ValueError, match=r"file name 'cat/caf\\xe9\.png' is not valid UTF-8"):
        load_imagefolder(root, cache_dir=tmp_path / "c")


def test_non_utf8_file_name_in_cli_localize(exif_case, tmp_path, capsys):
    _, _, model = exif_case
    model.save(tmp_path / "m")
    name = os.fsencode(tmp_path) + b"/caf\xe9.png"
    _png(tmp_path / "x.png")
    os.rename(os.fsencode(tmp_path / "x.png"), name)
    code, out, err = _cli(["localize", os.fsdecode(name), "--model", tmp_path / "m",
                           "--out", tmp_path / "o"], capsys)
    assert code == 0, err
    out.encode("utf-8")  # printable on a strict UTF-8 console
    raw = (tmp_path / "o" / "boxes.json").read_bytes()
    (rec,) = json.loads(raw.decode("utf-8"))
    assert rec["image"].endswith("caf\\xe9.png")  # shown readably, valid UTF-8 JSON
    assert rec["overlay"] == "caf\\xe9_overlay.png" and (tmp_path / "o" / rec["overlay"]).is_file()


@SETTINGS
@given(stems=st.lists(st.text(string.ascii_letters + "é_-. ", min_size=1, max_size=300),
                      min_size=1, max_size=6))
def test_overlay_names_fit_the_name_limit_and_stay_distinct(stems):
    from skcream.cli import overlay_name

    used: set[str] = set()
    names = [overlay_name(s, used) for s in stems]
    assert len(set(names)) == len(names)
    for stem, name in zip(stems, names):
        assert len(os.fsencode(name)) <= 255 and name.endswith("_overlay.png")
        if len(os.fsencode(stem + "_overlay.png")) <= 255 and stems.count(stem) == 1:
            assert name == stem + "_overlay.png"  # short names are kept as they are


def test_long_names_are_valid_input(exif_case, tmp_path, capsys):
    from skcream.persistence import new_staging_dir, write_bytes_atomic

    _, _, model = exif_case
    long = "n" * 250  # a valid name (255 bytes is the usual limit)
    write_bytes_atomic(tmp_path / long, b"x")  # before: its hidden temp name was too long
    assert (tmp_path / long).read_bytes() == b"x"
    assert len(new_staging_dir(tmp_path / long).name.encode()) <= 255
    model.save(tmp_path / "m" / long)
    photo = _png(tmp_path / f"{long}.png")
    code, _, err = _cli(["localize", photo, "--model", tmp_path / "m" / long, "--out",
                         tmp_path / "o", "--quiet"], capsys)
    assert code == 0, err  # before: "<stem>_overlay.png" past the limit
    (rec,) = json.loads((tmp_path / "o" / "boxes.json").read_text())
    assert (tmp_path / "o" / rec["overlay"]).is_file()


# ====================================================================== poor kinds: streams
def test_a_stream_failing_midway_names_its_cause():
    def rows():
        yield {"image": np.zeros((8, 8, 3), np.uint8), "label": 0}
        raise ConnectionResetError("connection reset by peer")

    stream = datasets.IterableDataset.from_generator(rows, features=datasets.Features(
        {"image": datasets.Image(), "label": datasets.Value("int64")}))
    with pytest.raises(ConnectionResetError, match=r"reading the IterableDataset failed: "
                                                   "connection reset by peer"):
        materialize(stream)  # before: DatasetGenerationError, the cause hidden


def test_an_empty_stream_says_so(tiny_model):
    empty = datasets.IterableDataset.from_generator(lambda: iter(()), features=datasets.Features(
        {"image": datasets.Image(), "label": datasets.Value("int64")}))
    with pytest.raises(ValueError, match="the IterableDataset yielded no rows"):
        tiny_model.predict(empty)  # before: "Instruction 'train' corresponds to no data!"


def test_bytes_value_and_junk_are_named(tmp_path):
    junk = io.BytesIO(b"not an image")
    with pytest.raises(ValueError, match=r"image 'x' \(index 0\) is corrupt, truncated or not "
                                         "an image"):
        ImageSource.from_input(datasets.Dataset.from_dict(
            {"image": [{"bytes": junk.getvalue(), "path": None}], "image_id": ["x"]},
            features=datasets.Features({"image": datasets.Image(),
                                        "image_id": datasets.Value("string")}))).image(0)
