"""Every time the README and ``skcream demo --help`` state, measured in one run.

Run (on a quiet machine, from the repository; it takes 5-10 minutes, ``--install`` and
``--tests`` add a fresh install and the whole test suite)::

    python benchmarks/bench_doc_timings.py [--install] [--tests] [--skip STEP ...]

Steps, each in an empty temporary folder, with the load average before and after and the
torch thread count it ran with:

- ``demo``: ``skcream demo`` as the README writes it; wall time and the training time it
  prints (README: "the demo ... of it training"; ``skcream demo --help``).
- ``quick``: ``skcream demo --quick``; wall time and the numbers the README states beside it.
- ``snippets``: the README's Python blocks as written, in one session
  (``tests/_doc_snippets.py``); the wall time of each block (README: snippet 1's time).
- ``threads``: one training epoch and a ``predict`` of the QUICK preset with one and with two
  torch intra-op threads, alternated twice, side by side (``skcream.threads`` docstring and
  ``--threads`` help: why one thread on <= 2 usable cores).
- ``install`` (``--install``): the README's first command verbatim in a fresh clone of this
  checkout's HEAD (venv, pip install, ``skcream demo``): README "about N minutes".
- ``tests`` (``--tests``): the README's test command in a fresh clone: its wall time and
  summary line (README: "ran N tests in ...").

The figures are printed as a table at the end, ready to be copied into README.md and
``skcream.presets.DEMO_TIMES`` (which ``skcream demo --help`` prints).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's skcream, also for the in-process steps
_spec = importlib.util.spec_from_file_location("_doc_snippets", ROOT / "tests" / "_doc_snippets.py")
docs = importlib.util.module_from_spec(_spec)
sys.modules["_doc_snippets"] = docs  # dataclasses look their module up there
_spec.loader.exec_module(docs)

STEPS = ("demo", "quick", "snippets", "threads", "install", "tests")


class _Rows(list):
    """(claim, measured, conditions) rows, each also printed when measured."""

    def append(self, row: tuple[str, str, str]) -> None:
        print(f"  {row[0]}: {row[1]} ({row[2]})", flush=True)
        super().append(row)


ROWS: list[tuple[str, str, str]] = _Rows()


def _load() -> float:
    return os.getloadavg()[0]


def _env() -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg", HF_HUB_OFFLINE="1",
                PATH=bin_dir + os.pathsep + os.environ["PATH"])


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s" if seconds >= 60 else f"{seconds:.0f} s"


def _shell(command: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[float, str, str]:
    """Run ``command`` in bash; (wall seconds, load-average text, stdout)."""
    before = _load()
    tic = time.perf_counter()
    run = subprocess.run(["bash", "-c", "set -eo pipefail\n" + command], cwd=cwd,
                         env=env or _env(), capture_output=True, text=True)
    wall = time.perf_counter() - tic
    if run.returncode:
        raise SystemExit(f"{command!r} failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
    return wall, f"load average {before:.2f} -> {_load():.2f}", run.stdout


def _threads_line(stdout: str) -> str:
    m = re.search(r"torch intra-op threads: (\d+)", stdout)
    return f"{m.group(1)} torch thread(s)" if m else "threads not printed"


def step_demo(tmp: Path) -> None:
    wall, load, out = _shell("skcream demo", tmp)
    timings = json.loads((tmp / "skcream-demo" / "results.json").read_text())["timings"]
    cond = f"{_threads_line(out)}, {load}"
    ROWS.append(("`skcream demo` (wall)", _minutes(wall), cond))
    ROWS.append(("  of it training", f"{timings['train']:.0f} s", cond))
    print(out, flush=True)


def step_quick(tmp: Path) -> None:
    wall, load, out = _shell("skcream demo --quick", tmp)
    rows = {r["method"]: r for r in json.loads(
        (tmp / "skcream-demo" / "results.json").read_text())["rows"]}
    cond = f"{_threads_line(out)}, {load}"
    ROWS.append(("`skcream demo --quick` (wall)", _minutes(wall), cond))
    ROWS.append(("  its accuracy, CAM, CREAM, centre prior (MaxBoxAccV2)",
                 f"{rows['CREAM']['top1_acc']:.1f}%, {rows['CAM']['max_box_acc_v2']:.1f}, "
                 f"{rows['CREAM']['max_box_acc_v2']:.1f}, "
                 f"{rows['centre prior']['max_box_acc_v2']:.1f}", cond))


def step_snippets(tmp: Path) -> None:
    before = _load()
    out = tmp / "session.json"
    tic = time.perf_counter()
    run = subprocess.run([sys.executable, str(ROOT / "tests" / "_doc_snippets.py"),
                          str(ROOT / "README.md"), str(out)], cwd=tmp, env=_env(),
                         capture_output=True, text=True)
    wall = time.perf_counter() - tic
    if run.returncode or not out.is_file():
        raise SystemExit(run.stdout[-3000:] + run.stderr[-3000:])
    from skcream.threads import default_threads

    rule = default_threads()
    cond = (f"{'1 torch thread' if rule == 1 else 'torch threads'} (skcream.threads' rule), "
            f"load average {before:.2f} -> {_load():.2f}")
    for k, block in enumerate(json.loads(out.read_text())["blocks"]):
        if block["error"]:
            raise SystemExit(f"{block['id']} failed:\n{block['error']}")
        ROWS.append((f"README Python block {k + 1} ({block['id']})",
                     _minutes(block["seconds"]), cond))
    ROWS.append(("  all README Python blocks, one session (wall)", _minutes(wall), cond))


def step_threads(tmp: Path) -> None:
    """QUICK preset: 1 training epoch + predict of the test split, 1 vs 2 threads, ABAB."""
    import datasets
    import torch

    from skcream.presets import QUICK
    from skcream.threads import torch_threads

    datasets.disable_progress_bars()
    train, _, test = QUICK.make_data(0)
    times: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
    before = _load()
    for _ in range(2):
        for n in (1, 2):
            with torch_threads(n):  # an explicit count: every skcream call keeps it
                assert torch.get_num_threads() == n
                tic = time.perf_counter()
                est = QUICK.estimator(max_epochs=1, random_state=0, verbose=0).fit(train)
                fit = time.perf_counter() - tic
                tic = time.perf_counter()
                est.predict(test)
                times[n].append((fit, time.perf_counter() - tic))
            print(f"threads {n}: epoch {fit:.1f} s, predict {times[n][-1][1]:.2f} s "
                  f"(load average {_load():.2f})", flush=True)
    cond = f"load average {before:.2f} -> {_load():.2f}, {os.cpu_count()} cores"
    for k, what in enumerate(("one training epoch (QUICK, 128 images)",
                              "predict (QUICK test, 64 images)")):
        one = sorted(t[k] for t in times[1])
        two = sorted(t[k] for t in times[2])
        ratio = two[0] / one[0]  # best against best: the least disturbed run of each
        verdict = f"{1 / ratio:.1f}x faster" if ratio < 1 else f"{ratio:.1f}x slower"
        ROWS.append((f"2 vs 1 torch threads: {what}",
                     f"two threads {verdict} (1 thread {one[0]:.2f}-{one[-1]:.2f} s, "
                     f"2 threads {two[0]:.2f}-{two[-1]:.2f} s)", cond))


def _fresh_clone(tmp: Path) -> Path:
    clone = tmp / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    return clone


def _readme_line(pattern: str) -> str:
    lines = [ln for b in docs.blocks(ROOT / "README.md") if b.is_shell
             for ln in docs.shell_lines(b)]
    return next(ln for ln in lines if re.search(pattern, ln))


def step_install(tmp: Path) -> None:
    clone = _fresh_clone(tmp)
    line = _readme_line(r"\[weights\].*skcream demo$")
    env = {k: v for k, v in _env().items() if k != "PYTHONPATH"}
    wall, load, out = _shell(line, clone, env)
    ROWS.append(("README's first command from a fresh clone (venv, install, demo)",
                 _minutes(wall), f"{_threads_line(out)}, {load}"))


def step_tests(tmp: Path) -> None:
    clone = _fresh_clone(tmp)
    line = _readme_line(r"pytest")
    env = {k: v for k, v in _env().items() if k != "PYTHONPATH"}
    wall, load, out = _shell(line, clone, env)
    summary = [ln for ln in out.splitlines() if re.search(r"\d+ passed", ln)]
    ROWS.append(("README's test command from a fresh clone", _minutes(wall),
                 f"{summary[-1].strip('= ') if summary else '?'}; {load}"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--install", action="store_true", help="also the install step")
    parser.add_argument("--tests", action="store_true", help="also the test-suite step")
    parser.add_argument("--skip", nargs="*", default=[], choices=STEPS, help="steps to skip")
    args = parser.parse_args(argv)
    steps = [s for s in STEPS if s not in args.skip and (s not in ("install", "tests")
                                                           or getattr(args, s))]
    print(f"steps: {', '.join(steps)}; {os.cpu_count()} CPUs; load average {_load():.2f}; "
          f"{time.strftime('%Y-%m-%d %H:%M')}", flush=True)
    for step in steps:
        tmp = Path(tempfile.mkdtemp(prefix=f"skcream-times-{step}-"))
        try:
            print(f"--- {step}", flush=True)
            globals()[f"step_{step}"](tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    width = max(len(r[0]) for r in ROWS)
    print("\n| claim | measured | conditions |\n|---|---|---|")
    for claim, value, cond in ROWS:
        print(f"| {claim:<{width}} | {value} | {cond} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
