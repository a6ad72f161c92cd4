"""How long a report of N images takes to write, what the page weighs, how fast it reacts.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_report.py [n_images] [--keep DIR]`` (default
1000 images; ``--keep DIR`` leaves the report in DIR). ``--browser DIR/index.html`` only
measures an existing page in the browser.

No training: the images are the synthetic benchmark's (``make_synthetic``, 128 px, with
masks), the maps CAM-like fields (14x14 noise plus a bump on the object, upsampled bicubic
to 224 and min-max normalised, as the protocol does), a noisier one for "CAM" and a cleaner
one for "CREAM". Side by side in one process: the metric computation a user runs anyway
(``max_box_acc_v2`` of both maps, the baseline) and the whole ``write_report``, split into
its parts. Then headless Chromium (if installed) opens the page: time to interactive, bytes
fetched at first paint, and the time of one slider move / one re-sort over all N cards.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from skcream.data import make_synthetic  # noqa: E402
from skcream.data.adapters import ImageSource  # noqa: E402
from skcream.data.transforms import resize_mask  # noqa: E402
from skcream.localize import protocol_maps  # noqa: E402
from skcream.metrics import max_box_acc_v2  # noqa: E402
from skcream.report import _images, priors_from_data, write_report  # noqa: E402
from skcream.report._compute import evaluate_methods  # noqa: E402


def make_case(n: int, seed: int = 0):
    data = make_synthetic(n, random_state=seed)
    source = ImageSource.from_input(data)
    rng = np.random.default_rng(seed)
    gt, masks, raw = [], [], {"CAM": [], "CREAM": []}
    for i in range(n):
        w, h = source.size(i)
        b = np.asarray(source.boxes(i), dtype=np.float64).reshape(-1, 4)
        g = np.floor(b * [224 / w, 224 / h, 224 / w, 224 / h])
        gt.append(g)
        masks.append(resize_mask(source.mask(i), 224))
        yy, xx = np.mgrid[0:14, 0:14] + 0.5
        cx, cy = (g[0, 0] + g[0, 2]) / 32, (g[0, 1] + g[0, 3]) / 32
        sx, sy = max((g[0, 2] - g[0, 0]) / 64, 0.5), max((g[0, 3] - g[0, 1]) / 64, 0.5)
        bump = np.exp(-0.5 * (((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2))
        for name, noise in (("CAM", 0.9), ("CREAM", 0.35)):
            raw[name].append(bump + noise * rng.random((14, 14)))
    maps = {k: protocol_maps(np.stack(v), (224, 224)) for k, v in raw.items()}
    labels = np.asarray(data["label"])
    logits = rng.normal(size=(n, 4))
    logits[np.arange(n), labels] += 1.5
    return data, maps, gt, masks, labels, logits


def folder_bytes(path: Path, pattern: str = "*") -> int:
    return sum(p.stat().st_size for p in path.rglob(pattern) if p.is_file())


def browser_figures(index: Path) -> dict | None:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        return None
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        page = b.new_page(viewport={"width": 1400, "height": 1000})
        urls = []
        page.on("request", lambda r: urls.append(r.url))
        t0 = time.perf_counter()
        page.goto(index.as_uri())
        page.wait_for_selector('body[data-ready="1"]', timeout=120000)
        ready = time.perf_counter() - t0
        page.wait_for_load_state("load")
        fetched = sum(Path(u[len("file://"):]).stat().st_size for u in set(urls)
                      if u.startswith("file://"))
        slider = page.evaluate("""() => new Promise(done => {
            const s = document.querySelector('#sliders input'); const t0 = performance.now(); let k = 0;
            const step = () => {
              s.value = String((Number(s.value) + 7) % (Number(s.max) + 1));
              s.dispatchEvent(new Event('input'));
              requestAnimationFrame(() => requestAnimationFrame(() => {
                if (++k < 10) step(); else done((performance.now() - t0) / 10); }));
            };
            step(); })""")
        resort = page.evaluate("""() => { const s = document.getElementById('sort');
            const t0 = performance.now();
            for (const v of ['index', 'iou-desc', 'iou-asc', 'index']) {
              s.value = v; s.dispatchEvent(new Event('change')); }
            return (performance.now() - t0) / 4; }""")
        b.close()
    return {"ready": ready, "fetched": fetched, "n_requests": len(set(urls)),
            "slider_ms": slider, "resort_ms": resort}


def print_browser(index: Path) -> None:
    figures = browser_figures(index)
    if figures is None:
        print("browser: no chromium, skipped")
        return
    print(f"browser: interactive after {figures['ready']:.2f} s; first paint fetched "
          f"{figures['fetched'] / 1e6:.2f} MB in {figures['n_requests']} files; slider move "
          f"{figures['slider_ms']:.0f} ms (incl. 2 frames); re-sort {figures['resort_ms']:.0f} ms"
          f" (load {os.getloadavg()})")


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["--browser"]:
        print_browser(Path(args[1]).resolve())
        return
    keep = None
    if "--keep" in args:
        keep = Path(args[args.index("--keep") + 1])
        del args[args.index("--keep"): args.index("--keep") + 2]
    n = int(args[0]) if args else 1000
    torch.set_num_threads(1)
    print(f"{n} images; torch threads {torch.get_num_threads()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, load {os.getloadavg()}")
    data, maps, gt, masks, labels, logits = make_case(n)
    train = make_synthetic(256, random_state=10)
    priors = priors_from_data(train)

    t0, c0 = time.perf_counter(), time.process_time()
    for m in maps.values():
        max_box_acc_v2(m, gt)
    base = (time.perf_counter() - t0, time.process_time() - c0)

    t0, c0 = time.perf_counter(), time.process_time()
    evaluate_methods(maps, priors, gt, labels=labels, logits=logits, masks=masks)
    numbers = (time.perf_counter() - t0, time.process_time() - c0)

    tmp = Path(tempfile.mkdtemp())
    source = ImageSource.from_input(data)
    (tmp / "strips").mkdir()
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(n):
        strip = _images.make_strip(source.image(i), [maps["CAM"][i], maps["CREAM"][i]])
        _images.write_strips(tmp / "strips", i, strip)
    strips = (time.perf_counter() - t0, time.process_time() - c0)

    out = tmp / "report"
    t0, c0 = time.perf_counter(), time.process_time()
    index = write_report(out, data, maps, gt, labels, logits=logits, masks=masks, priors=priors,
                         class_names=data.features["label"].names)
    total = (time.perf_counter() - t0, time.process_time() - c0)
    print(f"load after: {os.getloadavg()}")
    print("seconds (wall / CPU):")
    print(f"  baseline: max_box_acc_v2 of CAM and CREAM   {base[0]:7.1f} / {base[1]:7.1f}")
    print(f"  the table's numbers + slider boxes (+2 priors) {numbers[0]:5.1f} / {numbers[1]:7.1f}")
    print(f"  image strips + thumbnails                   {strips[0]:7.1f} / {strips[1]:7.1f}")
    print(f"  write_report, everything                    {total[0]:7.1f} / {total[1]:7.1f}"
          f"   = {total[1] / base[1]:.2f}x the baseline's CPU time")
    mb = 1e6
    html_b = (out / "index.html").stat().st_size
    thumbs = folder_bytes(out / "img", "*_t.jpg")
    print("page weight:")
    print(f"  index.html {html_b / mb:.2f} MB (data, script, styles inline)")
    print(f"  thumbnails {thumbs / mb:.1f} MB ({thumbs / n / 1e3:.1f} kB each), full-size strips "
          f"{(folder_bytes(out / 'img') - thumbs) / mb:.1f} MB, figures "
          f"{(folder_bytes(out, '*.png')) / mb:.2f} MB; folder {folder_bytes(out) / mb:.1f} MB")
    print_browser(index)
    if keep is not None:
        shutil.rmtree(keep, ignore_errors=True)
        shutil.move(str(out), str(keep))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
