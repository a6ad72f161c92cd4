"""The report in a real browser: headless Chromium (the system's, driven by Playwright).

The page must load from file:// with no console error and no request other than file://,
show in its table the numbers the Python API returns, reorder and filter the gallery, and
its threshold slider must give the hit counts of :func:`skcream.metrics.box_acc_curve`.
Skipped only when no Chromium is installed (``.ci/run`` installs it).
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from _report_data import synthetic_case

from skcream.metrics import box_acc_curve, box_iou
from skcream.report import write_report


def _chromium() -> str | None:
    for candidate in (os.environ.get("SKCREAM_CHROMIUM"), "chromium", "chromium-browser",
                      "google-chrome"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


@pytest.fixture(scope="module")
def browser():
    path = _chromium()
    if path is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium); .ci/run installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield b
        b.close()


class Page:
    """A loaded report with everything it logged and requested."""

    def __init__(self, browser, index):
        self.errors, self.requests = [], []
        self.page = browser.new_page(viewport={"width": 1300, "height": 900})
        self.page.on("console", lambda m: m.type in ("error", "warning")
                     and self.errors.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(index.as_uri())
        self.page.wait_for_selector('body[data-ready="1"]', timeout=20000)

    def order(self) -> list[int]:
        return self.page.eval_on_selector_all(
            "#gallery > li:not([hidden])", "els => els.map(e => Number(e.dataset.index))")

    def shown(self) -> int:
        return int(self.page.get_attribute("#shown", "data-count"))

    def hits(self, method: str) -> int:
        return int(self.page.get_attribute(f'#summary output[data-method="{method}"]',
                                           "data-hits"))

    def tau(self, method: str) -> float:
        return float(self.page.inner_text(f'label.tau[data-method="{method}"] output'))

    def slider(self, method: str):
        return self.page.locator(f'#sliders input[data-method="{method}"]')

    def wait_tau(self, method: str, index: int) -> None:
        self.page.wait_for_selector(
            f'#summary output[data-method="{method}"][data-tau="{index}"]', timeout=5000)

    def cell(self, method: str, key: str) -> tuple[str, str]:
        sel = f'#metric-table tr[data-method="{method}"] td[data-key="{key}"]'
        return self.page.inner_text(sel), self.page.get_attribute(sel, "data-value")


@pytest.fixture(scope="module")
def synthetic_report(tmp_path_factory):
    images, maps, gt, labels, logits = synthetic_case(16, seed=1)
    out = tmp_path_factory.mktemp("report") / "rep"
    index = write_report(out, images, maps, gt, labels, logits=logits,
                         class_names=["red", "green"], thresholds={"CREAM": 0.3})
    return index, maps, gt, labels


def _best_iou(maps, gt, tau):
    from skcream.localize import maps_to_localization

    boxes = maps_to_localization(list(maps), tau, np.zeros(len(maps), dtype=int)).boxes
    return np.array([box_iou(boxes[i : i + 1], g).max() for i, g in enumerate(gt)])


def test_page_loads_offline_without_errors(browser, synthetic_report):
    index = synthetic_report[0]
    pg = Page(browser, index)
    try:
        assert pg.errors == []
        assert pg.requests and all(u.startswith("file://") for u in pg.requests), pg.requests
        # the thumbnails in view did load (not blocked), the others wait (lazy)
        loaded = pg.page.eval_on_selector_all(
            "#gallery img", "els => els.filter(e => e.complete && e.naturalWidth > 0).length")
        assert loaded >= 1
        assert pg.page.locator("#metric-table tbody tr").count() == 3  # CAM, CREAM, centre
        assert pg.page.locator("#gallery > li").count() == 16
        for name in ("threshold_curves.png", "histograms.png"):
            ok = pg.page.eval_on_selector(f'img[src="{name}"]',
                                          "e => e.complete && e.naturalWidth > 0")
            assert ok, name
    finally:
        pg.page.close()


def test_slider_hit_counts_equal_the_metric(browser, synthetic_report):
    index, maps, gt, labels = synthetic_report
    pg = Page(browser, index)
    try:
        n = len(gt)
        curves = {m: box_acc_curve(maps[m], gt, iou_thresholds=(50,), multi_contour=False)
                  for m in ("CAM", "CREAM")}
        thresholds = curves["CAM"][0]
        assert pg.tau("CREAM") == pytest.approx(0.3)  # each map starts at its own tau
        for m, (_, acc) in curves.items():
            slider = pg.slider(m)
            slider.focus()
            slider.press("Home")
            seen = set()
            for t in range(len(thresholds)):  # every threshold, moved with the keyboard
                if t:
                    slider.press("ArrowRight")
                pg.wait_tau(m, t)
                assert pg.tau(m) == pytest.approx(thresholds[t])
                assert pg.hits(m) == round(acc[0][t] * n / 100), (m, t)
                seen.add(pg.hits(m))
            assert len(seen) >= 3  # the slider did change the count
        assert pg.errors == []
    finally:
        pg.page.close()


def test_sorting_and_filtering_change_order_and_count(browser, synthetic_report):
    index, maps, gt, labels = synthetic_report
    pg = Page(browser, index)
    try:
        tau, tau_cam = pg.tau("CREAM"), pg.tau("CAM")
        iou = np.round(_best_iou(maps["CREAM"], gt, tau) * 10000)
        worst_first = sorted(range(len(gt)), key=lambda i: (iou[i], i))
        assert pg.order() == worst_first
        slider = pg.slider("CREAM")  # a committed slider move re-sorts at the new tau
        start = int(pg.page.get_attribute('#summary output[data-method="CREAM"]', "data-tau"))
        for _ in range(15):
            slider.press("ArrowRight")
        pg.wait_tau("CREAM", start + 15)
        iou_new = np.round(_best_iou(maps["CREAM"], gt, tau + 0.15) * 10000)
        assert pg.order() == sorted(range(len(gt)), key=lambda i: (iou_new[i], i))
        assert list(iou_new) != list(iou)
        for _ in range(15):
            slider.press("ArrowLeft")
        pg.wait_tau("CREAM", start)
        assert pg.order() == worst_first
        pg.page.select_option("#sort", "iou-desc")
        assert pg.order() == sorted(range(len(gt)), key=lambda i: (-iou[i], i))
        pg.page.select_option("#sort", "index")
        assert pg.order() == list(range(len(gt)))
        pg.page.select_option("#class-filter", label="green")
        assert pg.order() == [i for i in range(len(gt)) if labels[i] == 1]
        assert pg.shown() == int((labels == 1).sum())
        pg.page.select_option("#result-filter", "miss")
        hit = _best_iou(maps["CREAM"], gt, tau) >= 0.5
        expected = [i for i in range(len(gt)) if labels[i] == 1 and not hit[i]]
        assert pg.order() == expected and pg.shown() == len(expected)
        pg.page.select_option("#judge", "CAM")  # at CAM's own tau
        hit_cam = _best_iou(maps["CAM"], gt, tau_cam) >= 0.5
        assert pg.order() == [i for i in range(len(gt)) if labels[i] == 1 and not hit_cam[i]]
        assert pg.errors == []
    finally:
        pg.page.close()


def test_enlarge_with_the_keyboard(browser, synthetic_report):
    pg = Page(browser, synthetic_report[0])
    try:
        first = pg.page.locator("#gallery > li button.open").first
        first.focus()
        first.press("Enter")
        dialog = pg.page.locator("#viewer")
        assert dialog.get_attribute("open") is not None
        assert pg.page.locator("#viewer-frame img").get_attribute("src").endswith(".jpg")
        title = pg.page.inner_text("#viewer-title")
        pg.page.keyboard.press("ArrowRight")
        assert pg.page.inner_text("#viewer-title") != title
        pg.page.keyboard.press("Escape")
        assert dialog.get_attribute("open") is None
        assert pg.page.evaluate("document.activeElement.className") == "open"
        assert pg.errors == []
    finally:
        pg.page.close()


@pytest.mark.slow
def test_localizer_report_table_equals_evaluate(browser, tmp_path):
    """The CREAM row is ``evaluate``; the CAM row is ``evaluate`` with n_iter=0."""
    import datasets
    from test_localizer import TINY, _dataset

    from skcream import CREAMLocalizer
    from skcream.priors import PRIOR_NAMES

    ds = _dataset(16)
    model = CREAMLocalizer(**TINY).fit(ds)
    index = model.report(ds, out=tmp_path / "rep", prior_data=ds)
    expected = {"CREAM": model.evaluate(ds)}
    model.set_params(n_iter=0)
    expected["CAM"] = model.evaluate(ds)
    pg = Page(browser, index)
    try:
        assert pg.errors == []
        for method, metrics in expected.items():
            for key, value in metrics.items():
                text, raw = pg.cell(method, key)
                assert float(raw) == value, (method, key)
                assert text == f"{value:.2f}", (method, key)
        names = pg.page.eval_on_selector_all("#metric-table tbody th",
                                             "els => els.map(e => e.textContent)")
        assert names == ["CAM", "CREAM", PRIOR_NAMES["centre"], PRIOR_NAMES["boxes"]]
        assert isinstance(ds, datasets.Dataset)
    finally:
        pg.page.close()


def test_each_map_starts_at_its_own_tau_and_agrees_with_the_table(browser, synthetic_report):
    """Issue 21: one slider per map; at the start each header count is the table's GT-known
    Loc of that map at its tau (a single slider at CREAM's tau gave CAM a wrong count)."""
    from skcream.viz import METHOD_COLORS

    index, maps, gt, labels = synthetic_report
    pg = Page(browser, index)
    try:
        n = len(gt)
        for m in ("CAM", "CREAM"):
            _, tau = pg.cell(m, "threshold")
            assert pg.tau(m) == pytest.approx(float(tau), abs=1e-9), m
            _, gt_known = pg.cell(m, "gt_known_loc")
            assert pg.hits(m) * 100.0 / n == pytest.approx(float(gt_known)), m
        assert pg.tau("CAM") != pg.tau("CREAM")
        # one colour per method: table row, header count and slider use the figures' colour
        for m in ("CAM", "CREAM"):
            for sel in (f'#metric-table tr[data-method="{m}"] .swatch',
                        f'label.tau[data-method="{m}"] .swatch'):
                colour = pg.page.eval_on_selector(sel, "e => getComputedStyle(e).backgroundColor")
                r, g, b = (int(METHOD_COLORS[m][k:k + 2], 16) for k in (1, 3, 5))
                assert colour == f"rgb({r}, {g}, {b})", (m, sel, colour)
        # moving CAM's slider leaves CREAM's boxes and count alone
        before = pg.hits("CREAM")
        pg.slider("CAM").focus()
        pg.slider("CAM").press("End")
        pg.wait_tau("CAM", len(pg.page.evaluate("JSON.parse(document.getElementById("
                                                  "'report-data').textContent).grid")) - 1)
        assert pg.hits("CREAM") == before and pg.tau("CREAM") == pytest.approx(0.3)
        pg.page.click("#tau-reset")
        _, tau = pg.cell("CAM", "threshold")
        pg.page.wait_for_function(
            "t => Number(document.querySelector('label.tau[data-method=\"CAM\"] output')"
            ".textContent) === t", arg=round(float(tau), 2))
        assert pg.errors == []
    finally:
        pg.page.close()
