"""The README's picture of the report: a screenshot of a report's gallery in headless Chromium.

Run: ``python benchmarks/report_screenshot.py skcream-demo/report/index.html docs/img/report.png``
(after ``skcream demo``). Prints where each map's threshold slider stands (its tau and the
hit count shown above the gallery) next to the table's tau and GT-known Loc of that map, so
the picture can be checked against the table. Needs the system's Chromium (``apt-get install
chromium``) and playwright (the ``test`` extra); nothing is downloaded.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    index, out = Path(argv[0]).resolve(), Path(argv[1])
    chromium = next((shutil.which(c) for c in ("chromium", "chromium-browser", "google-chrome")
                     if shutil.which(c)), None)
    if chromium is None:
        raise SystemExit("no Chromium found (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1250})
        page.goto(index.as_uri())
        page.wait_for_selector('body[data-ready="1"]', timeout=60000)
        for method in page.eval_on_selector_all("#sliders input", "els => els.map(e => "
                                                "e.dataset.method)"):
            row = f'#metric-table tr[data-method="{method}"]'
            tau = page.inner_text(f'{row} td[data-key="threshold"]')
            known = page.inner_text(f'{row} td[data-key="gt_known_loc"]')
            value = page.eval_on_selector(f'#sliders input[data-method="{method}"]', "e => e.value")
            shown = page.inner_text(f'label.tau[data-method="{method}"] output')
            hits = page.inner_text(f'#summary output[data-method="{method}"]')
            print(f"{method}: slider at position {value} (tau {shown}); header: {hits}; "
                  f"table: tau {tau}, GT-known Loc {known}")
        page.eval_on_selector("#images", "e => e.scrollIntoView()")
        page.wait_for_timeout(1500)  # lazy thumbnails in view
        page.screenshot(path=str(out))
        browser.close()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
