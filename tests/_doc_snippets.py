"""The fenced code blocks of the documentation, and a runner that executes them as written.

Used by ``tests/test_readme_snippets.py`` (every block of README.md and docs/*.md runs in the
test suite) and ``benchmarks/bench_doc_timings.py`` (which times them). Nothing here knows a
particular block: a block added to the documentation is found and run without any change.

Documents: ``README.md`` and every ``docs/*.md``. Languages: ``python`` blocks of one document
run in order in one interpreter (a reader pasting them into one session: later blocks use
the names earlier ones define); ``bash`` / ``sh`` / ``shell`` / ``console`` blocks run one
block per fresh folder, line by line, in bash with ``set -e``.

Run as a script, it executes the python blocks of one document in the current folder and
writes a JSON report: ``python tests/_doc_snippets.py DOC OUT.json [NAME=EXPRESSION ...]``;
each ``NAME=EXPRESSION`` is evaluated in the session afterwards (``"probes"`` of the report).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ("python", "py", "python3")
SHELL = ("bash", "sh", "shell", "console")
#: fence languages that are not code to run (output, data, diagrams)
NOT_CODE = ("text", "json", "yaml", "toml", "diff", "output", "")

_FENCE = re.compile(r"^```([\w+-]*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)


@dataclass(frozen=True)
class Block:
    """One fenced block: ``doc`` (path relative to the repository), ``line`` (1-based line of
    its opening fence), ``lang`` (lower case), ``code``."""

    doc: str
    line: int
    lang: str
    code: str

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"

    @property
    def is_python(self) -> bool:
        return self.lang in PYTHON

    @property
    def is_shell(self) -> bool:
        return self.lang in SHELL


def documents(root: Path = ROOT) -> list[Path]:
    """README.md and every docs/*.md, sorted."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def blocks(doc: Path, root: Path = ROOT) -> list[Block]:
    """Every fenced block of ``doc``, in order."""
    doc = Path(doc).resolve()
    text = doc.read_text(encoding="utf-8")
    name = doc.relative_to(root.resolve()).as_posix()
    return [Block(name, text.count("\n", 0, m.start()) + 1, m.group(1).lower(), m.group(2))
            for m in _FENCE.finditer(text)]


def _strip_comment(line: str) -> str:
    """``line`` without a trailing ``# comment`` (a ``#`` after white space, outside quotes)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line


def shell_lines(block: Block) -> list[str]:
    """The commands of a shell block: one per line, ``\\``-continued lines joined, comments
    (whole-line and trailing) and blank lines left out, a ``$ `` prompt dropped."""
    out, pending = [], ""
    for raw in block.code.splitlines():
        line = raw.rstrip()
        if pending:
            line = pending + " " + line.strip()
            pending = ""
        if line.endswith("\\"):
            pending = line[:-1].rstrip()
            continue
        stripped = _strip_comment(line.strip())
        if not stripped:
            continue
        out.append(stripped[2:] if stripped.startswith("$ ") else stripped)
    return out


#: python blocks left out of their document's session, each run by another test: a text only
#: that block contains -> ``"tests/FILE.py::test_name"`` (tests/test_readme_snippets.py checks
#: that the text marks one block and that the test exists)
SESSION_SKIP: dict[str, str] = {
    # needs a wsolevaluation CUB folder; the text says the tests write a small one and change
    # image_size and max_epochs only, which that test does
    'train = load_wsol(root, meta, "CUB", "train")':
        "tests/test_readme_model_selection.py::test_benchmark_way_snippet_runs_as_written",
    # pretrained=True asks the hub for DeiT weights; the text says the tests run it with
    # pretrained=False, image_size=64 and resize_size=72, which that test does
    'vit = CREAMLocalizer(backbone="deit_tiny_patch16_224"':
        "tests/test_token_models.py::test_readme_token_model_snippet_runs_as_written",
    # reads the score-map and metadata folders the evaluate-maps section's commands name
    'report = evaluate_scoremaps("scoremaps", "metadata"':
        "tests/test_evaluate_maps.py::test_readme_commands_run_as_written",
}


class _Tee(io.StringIO):
    """Keeps what a block prints and passes it on."""

    def __init__(self, stream) -> None:
        super().__init__()
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(text)
        return super().write(text)


def run_python_session(doc: Path, probes: dict[str, str]) -> dict:
    """Execute the python blocks of ``doc`` in order in one namespace (current folder).

    Blocks marked in :data:`SESSION_SKIP` are left out. Stops at the first block that raises.
    What each block prints is kept (``"stdout"``). Returns ``{"blocks":
    [{"id", "seconds", "error"}], "probes": {name: value or {"error": ...}}}`` (probes only
    when every block ran).
    """
    namespace: dict = {"__name__": "__main__"}
    report: dict = {"blocks": [], "probes": {}}
    for block in blocks(doc):
        if not block.is_python or any(text in block.code for text in SESSION_SKIP):
            continue
        start = time.perf_counter()
        entry = {"id": block.id, "error": None}
        printed = _Tee(sys.stdout)
        try:
            with contextlib.redirect_stdout(printed):
                exec(compile(block.code, block.id, "exec"), namespace)
        except BaseException:  # noqa: BLE001 - reported to the test, which fails on it
            entry["error"] = traceback.format_exc(limit=12)
        entry["seconds"] = time.perf_counter() - start
        entry["stdout"] = printed.getvalue()
        report["blocks"].append(entry)
        print(f"[doc session] {block.id}: {entry['seconds']:.1f} s"
              f"{' FAILED' if entry['error'] else ''}", flush=True)
        if entry["error"]:
            return report
    for name, expression in probes.items():
        try:
            value = eval(expression, namespace)  # noqa: S307 - the tests' own expressions
            report["probes"][name] = float(value) if not isinstance(value, str) else value
        except Exception:  # noqa: BLE001
            report["probes"][name] = {"error": traceback.format_exc(limit=6)}
    return report


def main(argv: list[str]) -> int:
    doc, out, *pairs = argv
    probes = dict(pair.split("=", 1) for pair in pairs)
    report = run_python_session(Path(doc).resolve(), probes)
    Path(out).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
