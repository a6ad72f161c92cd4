"""Docs as tests (issue 21): every fenced block of README.md and docs/*.md runs as written.

- **Python** blocks of one document run in order in one fresh interpreter, in an empty
  folder (``tests/_doc_snippets.py``), exactly as written: a block added to any of these
  documents runs without touching this file. The numbers the text states beside them
  (:data:`PYTHON_CLAIMS`) are compared with what the session computes. A block that needs
  data the text says the tests write for it runs in its own test instead
  (``_doc_snippets.SESSION_SKIP`` names it and that test).
- **Shell** blocks run line by line in bash in an empty folder, ``skcream`` being this
  repository. Not run, each for a reason stated in :data:`EXEMPT` and checked otherwise:
  the install half of the README's install lines (this suite runs inside what they install;
  ``.ci/run`` runs them verbatim), the test command (the suite itself) and the two launcher
  commands (two training processes; their arguments are parsed by skcream's own parser and
  the launchers' flags checked, and ``tests/test_distributed.py`` runs the same launcher on a
  smaller run). The numbers beside the commands (:data:`SHELL_CLAIMS`) are compared with
  what the commands print or write.
- Every claim's text must occur exactly once in its document, so editing a stated number
  without the measurement (or the reverse) fails here.

Tolerances: the runs are bit-for-bit reproducible on one host (seeded, one thread); on
another CPU torch's kernels round differently during training and the network ends up a
little different. Measured (the demo on two hosts of our machine, issue 21): accuracy moved by
one test image, MaxBoxAccV2 and PxAP by up to 1.6 points, the metrics at one threshold chosen
on the 64 validation images (MaxBoxAcc, GT-known / Top-1 Loc) by up to 3.9. Hence
:data:`TOL_POINTS`, :data:`TOL_AT_TAU` and two test images for accuracies.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import _doc_snippets as docs
import pytest

ROOT = Path(__file__).resolve().parents[1]

ALL_BLOCKS = [b for d in docs.documents() for b in docs.blocks(d)]
PYTHON_DOCS = sorted({b.doc for b in ALL_BLOCKS if b.is_python})
SHELL_BLOCKS = [b for b in ALL_BLOCKS if b.is_shell]

#: MaxBoxAccV2 / PxAP (percentage points) may move this much on another CPU
TOL_POINTS = 2.0
#: metrics at one threshold chosen on validation images (MaxBoxAcc, GT-known / Top-1 Loc)
TOL_AT_TAU = 4.0


def _accuracy_tol(n_images: int) -> float:
    """Two images of the test split, in percent."""
    return 200.0 / n_images + 1e-9


# --------------------------------------------------------------------------- claims
@dataclass(frozen=True)
class Claim:
    """Numbers a document states: ``pattern`` (a regex with one group per number) must match
    its document exactly once, in the text with every run of white space made one space (so
    re-wrapping a paragraph changes nothing); ``measure(outputs)`` gives the measured values
    in the same order; ``tol`` the allowed difference (one per number, or one for all)."""

    doc: str
    pattern: str
    measure: Callable[[dict], Sequence[float]]
    tol: float | Sequence[float]

    def stated(self) -> list[float]:
        text = re.sub(r"\s+", " ", (ROOT / self.doc).read_text(encoding="utf-8"))
        found = re.findall(self.pattern, text)
        assert len(found) == 1, (f"{self.doc}: the claim {self.pattern!r} must occur exactly "
                                 f"once, found {len(found)}")
        groups = found[0] if isinstance(found[0], tuple) else (found[0],)
        return [float(g.replace(",", "")) for g in groups]

    def check(self, outputs: dict) -> None:
        stated, measured = self.stated(), [float(v) for v in self.measure(outputs)]
        assert len(stated) == len(measured), self.pattern
        tols = self.tol if isinstance(self.tol, Sequence) else [self.tol] * len(stated)
        bad = [(s, m, t) for s, m, t in zip(stated, measured, tols) if abs(s - m) > t]
        assert not bad, (f"{self.doc} states {stated} for {self.pattern!r}; measured "
                         f"{[round(m, 2) for m in measured]} (stated, measured, tolerance: "
                         f"{bad})")


def _probe(name: str) -> Callable[[dict], list[float]]:
    return lambda outputs: [outputs["probes"][name]]


def _printed(marker: str, k: int) -> Callable[[dict], list[float]]:
    """The ``k``-th number printed alone on a line by the session's block that contains the
    text ``marker``."""

    def measure(outputs: dict) -> list[float]:
        code = {b.id: b.code for b in ALL_BLOCKS}
        (text,) = [e["stdout"] for e in outputs["blocks"] if marker in code[e["id"]]]
        numbers = [float(ln) for ln in text.splitlines() if re.fullmatch(r"-?\d+(\.\d+)?", ln)]
        return [numbers[k]]

    return measure


_SNIPPET_1 = "model.save(\"my-model\")"
_ACC = "100 * float((model.predict(test).labels == __import__('numpy').asarray(test['label'])).mean())"
#: name -> expression evaluated in the document's Python session after its blocks ran
PYTHON_PROBES = {
    "README.md": {
        "accuracy": _ACC,
        "centre": "model.evaluate(test, baselines=True)['centre prior']['max_box_acc_v2']",
        "n_test": "len(test)",
    },
}
PYTHON_CLAIMS = {
    "README.md": [
        Claim("README.md", r"argmax is right on ([\d.]+) ?% of `test`", _probe("accuracy"),
              _accuracy_tol(128)),
        Claim("README.md", r"MaxBoxAccV2 under the WSOL protocol: ([\d.]+)", _printed(_SNIPPET_1, 0),
              TOL_POINTS),
        Claim("README.md", r"plain CAM, same network, no retraining: ([\d.]+)", _printed(_SNIPPET_1, 1),
              TOL_POINTS),
        Claim("README.md", r"blind centre prior scores ([\d.]+) on it", _probe("centre"),
              TOL_POINTS),
        Claim("README.md", r"for p in net\.parameters\(\)\)\) # (\d+)",
              _printed("PseudoBoxRegressor(backbone=\"vgg16\"", 0), 0),
    ],
}


def _demo_rows(outputs: dict) -> dict:
    results = json.loads((outputs["cwd"] / "skcream-demo" / "results.json").read_text())
    return {r["method"]: r for r in results["rows"]}


def _row(method: str, *keys: str) -> Callable[[dict], list[float]]:
    return lambda outputs: [_demo_rows(outputs)[method][k] for k in keys]


_TABLE = ("max_box_acc_v2", "max_box_acc", "pxap", "gt_known_loc", "top1_loc")
_N = r"\**([\d.]+)\**"  # a number of the table, possibly in bold


def _table_row(label: str, method: str) -> Claim:
    pattern = r"\| " + re.escape(label) + r" \| " + r" \| ".join([_N] * 5) + r" \| [^|]+ \| "
    return Claim("README.md", pattern, _row(method, *_TABLE),
                 [TOL_POINTS, TOL_AT_TAU, TOL_POINTS, TOL_AT_TAU, TOL_AT_TAU])


def _cream_minus_cam(outputs: dict) -> list[float]:
    rows = _demo_rows(outputs)
    return [rows["CREAM"]["max_box_acc_v2"] - rows["CAM"]["max_box_acc_v2"]]


_DEMO_CLAIMS = [
    _table_row("centre prior (blind)", "centre prior"),
    _table_row("train-box prior (blind)", "train-box prior"),
    _table_row("CAM", "CAM"),
    _table_row("calibrated EM map (Eq. 11)", "calibrated"),
    _table_row("CREAM (Eq. 12)", "CREAM"),
    Claim("README.md", r"Classification accuracy is ([\d.]+)% \(4 classes\)",
          _row("CREAM", "top1_acc"), _accuracy_tol(128)),
    Claim("README.md", r"CREAM gains \+([\d.]+) MaxBoxAccV2 over CAM", _cream_minus_cam,
          TOL_POINTS),
    Claim("README.md", r"centre ([\d.]+) / ([\d.]+), train boxes ([\d.]+) / ([\d.]+), "
                       r"CAM ([\d.]+) / ([\d.]+) \|",
          lambda o: [_demo_rows(o)[m][k] for m in ("centre prior", "train-box prior", "CAM")
                     for k in ("max_box_acc_v2", "pxap")], TOL_POINTS),
]


def _quick_claims(outputs: dict) -> list[float]:
    rows = _demo_rows(outputs)
    return [rows["CREAM"]["top1_acc"], rows["CAM"]["max_box_acc_v2"],
            rows["CREAM"]["max_box_acc_v2"], rows["centre prior"]["max_box_acc_v2"]]


#: a command as the document writes it -> the claims its outputs are checked against
SHELL_CLAIMS: dict[str, list[Claim]] = {
    "skcream demo": _DEMO_CLAIMS,
    "skcream demo --quick": [
        Claim("README.md", r"`skcream demo --quick` takes [^)]+\) and prints accuracy "
                           r"([\d.]+)%, CAM ([\d.]+), CREAM ([\d.]+) and the blind centre "
                           r"prior ([\d.]+) MaxBoxAccV2",
              _quick_claims, [_accuracy_tol(64), TOL_POINTS, TOL_POINTS, TOL_POINTS]),
    ],
}

# --------------------------------------------------------------------------- exemptions
INSTALL = re.compile(r'^python3 -m venv \.venv && \. \.venv/bin/activate && '
                     r'(pip install torch==[\d.]+ torchvision==[\d.]+ -e "\.\[\w+\]") && (.+)$')
#: command lines not run here, each with its reason (checked by test_exemptions_are_checked)
EXEMPT = {
    "python -m pytest -n 2": "the test suite itself; .ci/run runs this line verbatim",
    "accelerate launch": "starts two training processes; the arguments are parsed here and "
                         "tests/test_distributed.py runs the launcher on a smaller run",
    "torchrun": "starts two training processes; as accelerate launch",
    "skcream evaluate-maps": "needs score-map and metadata folders: "
                             "tests/test_evaluate_maps.py::test_readme_commands_run_as_written "
                             "writes them and runs these lines",
    "skcream localize --post-hoc --cam gradcam++ --save-maps photo.jpg":
        "needs photo.jpg: tests/test_post_hoc_cams.py::test_the_documented_command_runs "
        "saves one and runs this line",
}


def _exemption(line: str) -> str | None:
    for start in EXEMPT:
        if line == start or line.startswith(start + " "):
            return start
    return None


def _env() -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg", HF_HUB_OFFLINE="1",
                HF_DATASETS_OFFLINE="1", PATH=bin_dir + os.pathsep + os.environ["PATH"])


# --------------------------------------------------------------------------- static checks
def test_every_block_is_code_we_run_or_declared_not_code():
    assert len(ALL_BLOCKS) >= 10 and PYTHON_DOCS and SHELL_BLOCKS
    odd = [b.id for b in ALL_BLOCKS if not (b.is_python or b.is_shell or b.lang in docs.NOT_CODE)]
    assert not odd, f"fenced blocks in a language this suite does not run: {odd}"


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.is_python], ids=lambda b: b.id)
def test_python_block_parses_and_its_imports_resolve(block):
    """Fast: syntax, every import, and every ``Class.method`` named on an imported class."""
    tree = ast.parse(block.code)
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{node.module}.{alias.name}"
                names[alias.asname or alias.name] = getattr(module, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in names and isinstance(names[node.value.id], type)):
            assert hasattr(names[node.value.id], node.attr), f"{node.value.id}.{node.attr}"


def test_claims_occur_once_in_their_documents():
    for claim in [c for cs in PYTHON_CLAIMS.values() for c in cs] + [
            c for cs in SHELL_CLAIMS.values() for c in cs]:
        claim.stated()
    commands = {_command(line) for b in SHELL_BLOCKS for line in docs.shell_lines(b)}
    for command in [*SHELL_CLAIMS, *COMMAND_CHECKS]:
        assert command in commands, f"no documented command {command!r} any more"


def test_exemptions_are_checked():
    """Each exempt line still exists, and what can be checked without running it is."""
    python = [b for b in ALL_BLOCKS if b.is_python]
    for text, runner in docs.SESSION_SKIP.items():
        assert sum(text in b.code for b in python) == 1, f"{text!r} must mark one block"
        test_file, _, test_name = runner.partition("::")
        assert f"def {test_name}(" in (ROOT / test_file).read_text(), runner
    lines = [line for b in SHELL_BLOCKS for line in docs.shell_lines(b)]
    used = {_exemption(_command(line)) for line in lines} - {None}
    assert used == set(EXEMPT), f"stale exemptions: {set(EXEMPT) - used}"
    for reason in EXEMPT.values():  # a test named as running the line exists
        for test_file, test_name in re.findall(r"(tests/\w+\.py)::(\w+)", reason):
            assert f"def {test_name}(" in (ROOT / test_file).read_text(), reason
    ci = (ROOT / ".ci" / "run").read_text()
    for line in lines:
        match = INSTALL.match(line)
        if match:  # the install half: the suite runs in what .ci/run installs, which holds it
            extras = _extras()
            extra = re.search(r'-e "\.\[(\w+)\]"', match.group(1)).group(1)
            assert extra in extras, f"pyproject.toml has no extra {extra!r}"
            assert set(extras[extra]) <= set(extras["test"]), extra
            assert match.group(1).replace(f"[{extra}]", "[test]") in ci
        command = _command(line)
        if _exemption(command) == "python -m pytest -n 2":
            assert match and f"{match.group(1)} && {command}" in ci, \
                "the README's test command must be .ci/run's, verbatim"
        elif _exemption(command) in ("accelerate launch", "torchrun"):
            _parse_launch(shlex.split(command))
        elif _exemption(command) and command.startswith("skcream "):
            from skcream.cli import build_parser

            build_parser().parse_args(shlex.split(command)[1:])  # its options exist


def _parse_launch(words: list[str]) -> None:
    """A launcher line parses with the launcher's own parser, and what it starts with
    skcream's: every option exists and takes its value."""
    from skcream.cli import build_parser

    if words[:2] == ["accelerate", "launch"]:
        from accelerate.commands.launch import launch_command_parser

        launch = launch_command_parser().parse_args(words[2:])
        assert launch.num_processes == 2
    else:
        assert words[0] == "torchrun"
        from torch.distributed.run import get_args_parser

        launch = get_args_parser().parse_args(words[1:])
    assert launch.module and launch.training_script == "skcream.cli"
    args = build_parser().parse_args(launch.training_script_args)
    assert args.command == "train"


def _extras() -> dict[str, list[str]]:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

    with open(ROOT / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)["project"]["optional-dependencies"]


def _command(line: str) -> str:
    """The part of a line that runs here (an install line's after-install command)."""
    match = INSTALL.match(line)
    return match.group(2) if match else line


# --------------------------------------------------------------------------- running
@pytest.mark.slow
@pytest.mark.parametrize("doc", PYTHON_DOCS)
def test_python_blocks_run_as_written(doc, tmp_path):
    """One session per document, in an empty folder; then the stated numbers."""
    probes = PYTHON_PROBES.get(doc, {})
    out = tmp_path / "session.json"
    run = subprocess.run([sys.executable, str(ROOT / "tests" / "_doc_snippets.py"),
                          str(ROOT / doc), str(out), *(f"{k}={v}" for k, v in probes.items())],
                         cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0 and out.is_file(), run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(out.read_text())
    expected = [b.id for b in docs.blocks(ROOT / doc) if b.is_python
                and not any(text in b.code for text in docs.SESSION_SKIP)]
    for entry in report["blocks"]:
        assert entry["error"] is None, f"{entry['id']} failed:\n{entry['error']}"
    assert [e["id"] for e in report["blocks"]] == expected
    errors = {k: v for k, v in report["probes"].items() if isinstance(v, dict)}
    assert not errors, errors
    for claim in PYTHON_CLAIMS.get(doc, []):
        claim.check(report)
    if doc == "README.md":  # issue 21: snippet 1 as written trains a working classifier
        assert report["probes"]["accuracy"] >= 85.0, report["probes"]


def _run_shell_block(block, tmp_path) -> list[tuple[str, str]]:
    """Run the block's lines (exempt ones skipped) in ``tmp_path``; (command, stdout) each."""
    done = []
    for line in docs.shell_lines(block):
        command = _command(line)
        if _exemption(command):
            continue
        run = subprocess.run(["bash", "-c", "set -eo pipefail\n" + command], cwd=tmp_path,
                             env=_env(), capture_output=True, text=True, timeout=1800)
        assert run.returncode == 0, (f"{block.id}: {command!r} failed ({run.returncode}):\n"
                                     f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
        done.append((command, run.stdout))
    return done


@pytest.mark.slow
@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=lambda b: b.id)
def test_shell_blocks_run_as_written(block, tmp_path):
    """Each block in its own empty folder, line by line; then the stated numbers and what
    :data:`COMMAND_CHECKS` knows about a command's outputs."""
    done = _run_shell_block(block, tmp_path)
    for command, stdout in done:
        for claim in SHELL_CLAIMS.get(command, []):
            claim.check({"cwd": tmp_path, "stdout": stdout})
        check = COMMAND_CHECKS.get(command)
        if check is not None:
            check(tmp_path, stdout)


def _demo_is_honest(cwd: Path, stdout: str) -> None:
    """The demo's benchmark tells a localizer from a guess (issue 10; was
    tests/test_demo_benchmark.py): both blind priors at least 10 MaxBoxAccV2 and 5 PxAP
    points below CAM; the classifier works (>= 90%); CREAM beats CAM by >= 8 (measured
    +9.4; paper +7.8 on CUB)."""
    rows = _demo_rows({"cwd": cwd})
    assert "centre prior" in stdout and "train-box prior" in stdout
    cam = rows["CAM"]
    for prior in ("centre prior", "train-box prior"):
        assert cam["max_box_acc_v2"] >= rows[prior]["max_box_acc_v2"] + 10, (prior, rows)
        assert cam["pxap"] >= rows[prior]["pxap"] + 5, (prior, rows)
    assert cam["top1_acc"] >= 90.0, cam
    assert rows["CREAM"]["max_box_acc_v2"] >= cam["max_box_acc_v2"] + 8, rows


def _quick_demo_outputs(cwd: Path, stdout: str) -> None:
    """``skcream demo --quick`` (was tests/test_cli.py): the table, the files, the thread
    count, a working classifier (issue 10: >= 80% on the 4 classes), a loadable model."""
    from skcream import CREAMLocalizer
    from skcream.threads import default_threads

    out = cwd / "skcream-demo"
    for row in ("centre prior", "train-box prior", "CAM", "calibrated", "CREAM", "MaxBoxAccV2",
                "PxAP", "Top-1 Loc", "ms/img", "torch intra-op threads: "):
        assert row in stdout
    for name in ("demo_examples.png", "demo_threshold_curves.png", "demo_histograms.png",
                 "results.json", ".skcream-demo", "report/index.html"):
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text())
    rows = {r["method"]: r for r in results["rows"]}
    assert list(rows) == ["centre prior", "train-box prior", "CAM", "calibrated", "CREAM"]
    if default_threads() is not None:
        assert results["settings"]["threads"] == default_threads()
    assert rows["CREAM"]["top1_acc"] >= 80.0
    assert rows["CAM"]["top1_acc"] == rows["CREAM"]["top1_acc"]
    assert rows["centre prior"]["top1_acc"] is None
    CREAMLocalizer.load(out / "model")


def _train_preset_is_the_demos_network(cwd: Path, stdout: str) -> None:
    """``skcream train --preset quick`` after ``skcream demo --quick``: the same weights and
    the same box threshold, chosen on the same validation images."""
    from safetensors.torch import load_file

    mine = load_file(cwd / "run" / "model" / "weights.safetensors")
    demo = load_file(cwd / "skcream-demo" / "model" / "weights.safetensors")
    assert mine.keys() == demo.keys()
    assert all((mine[k] == demo[k]).all() for k in mine), "weights differ from the demo's"
    tau = json.loads((cwd / "skcream-demo" / "results.json").read_text())["box_threshold"]
    assert f"box threshold {tau:.2f} (chosen on the 32 validation images)" in stdout
    assert "the preset's 32 synthetic validation images" in stdout


def _report_of_the_readme(cwd: Path, stdout: str) -> None:
    """``skcream report --model run/ --data synthetic:200 --out report/`` (issue 21: crashed
    without prior data): the table without the train-box prior, saying why; every map's
    slider starts at its own tau, where its hit count is its GT-known Loc of the table."""
    import base64

    import numpy as np

    text = (cwd / "report" / "index.html").read_text()
    assert "wrote report/index.html (200 images)" in stdout
    assert re.findall(r'<tr data-method="([^"]+)"', text) == ["CAM", "CREAM", "centre prior"]
    assert "not shown: no prior_data (CLI: --prior-split) was given" in text
    data = json.loads(re.search(r'<script type="application/json" id="report-data">(.*?)'
                                r"</script>", text, re.S).group(1))
    n, s = data["n"], len(data["grid"])
    for m in ("CAM", "CREAM"):
        row = re.search(rf'<tr data-method="{m}".*?</tr>', text, re.S).group(0)
        cells = dict(re.findall(r'data-key="(\w+)" data-value="([^"]*)"', row))
        start = data["tau"][m]
        assert data["grid"][start] == pytest.approx(float(cells["threshold"]))
        codes = np.frombuffer(base64.b64decode(data["iou"][m]), "<u2").reshape(n, s)
        hits = int((codes[:, start] >> 15).sum())
        assert hits * 100.0 / n == pytest.approx(float(cells["gt_known_loc"])), m


#: a command as the documentation writes it -> a check of its outputs (folder, stdout)
COMMAND_CHECKS: dict[str, Callable[[Path, str], None]] = {
    "skcream demo": _demo_is_honest,
    "skcream demo --quick": _quick_demo_outputs,
    "skcream train --preset quick --out run": _train_preset_is_the_demos_network,
    "skcream report --model run/ --data synthetic:200 --out report/": _report_of_the_readme,
}
