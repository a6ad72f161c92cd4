"""The HTML of the report: one self-contained page (CSS, script and data inline).

The gallery's data travels as one JSON block: per gallery method, the single-contour box
of every image at every slider threshold (uint8 coordinates in the 224 frame) and its IoU
(uint16: bit 15 = hit, decided here in float64 as ``IoU >= 0.5``; bits 0-14 =
``round(IoU * 10000)`` for display and sorting), base64-encoded.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

import numpy as np

from skcream.report._compute import MethodResult
from skcream.viz import method_colors

#: table columns: key -> (header, description for the notes)
COLUMNS = {
    "max_box_acc_v2": "MaxBoxAccV2",
    "max_box_acc": "MaxBoxAcc",
    "pxap": "PxAP",
    "gt_known_loc": "GT-known Loc",
    "top1_loc": "Top-1 Loc",
    "top5_loc": "Top-5 Loc",
    "top1_acc": "Cls acc",
}


def _asset(name: str) -> str:
    return resources.files("skcream.report").joinpath("assets", name).read_text(encoding="utf-8")


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def encode_scores(iou: np.ndarray, hits: np.ndarray) -> np.ndarray:
    """(n, S) IoU and hits -> (n, S) little-endian uint16: bit 15 hit, bits 0-14 IoU x 1e4."""
    value = np.clip(np.round(iou * 10000), 0, 10000).astype("<u2")
    return value | (hits.astype("<u2") << 15)


def metric_table(results: Mapping[str, MethodResult], with_pxap: bool) -> str:
    """The metric table as HTML; every number cell carries ``data-key`` and ``data-value``."""
    keys = [k for k in COLUMNS if with_pxap or k != "pxap"]
    best = {}
    for k in keys:
        vals = [r.row[k] for r in results.values() if r.row[k] is not None]
        best[k] = max(vals) if vals else None
    head = "".join(f'<th scope="col">{COLUMNS[k]}</th>' for k in keys)
    colours = method_colors(list(results))
    lines = ['<table id="metric-table">',
             "<caption>Percent. Loc metrics at the threshold &tau; of the last column. "
             "Best value of each column in bold, blind priors included.</caption>",
             f'<thead><tr><th scope="col">map</th>{head}<th scope="col">&tau;</th></tr></thead>',
             "<tbody>"]
    for name, r in results.items():
        cells = []
        for k in keys:
            v = r.row[k]
            if v is None:
                cells.append(f'<td data-key="{k}" data-value="">&ndash;</td>')
                continue
            text = f"{v:.2f}"
            if best[k] is not None and v == best[k]:
                text = f"<strong>{text}</strong>"
            cells.append(f'<td data-key="{k}" data-value="{v!r}">{text}</td>')
        tau = r.row["threshold"]
        cells.append(f'<td data-key="threshold" data-value="{tau!r}">{tau:.2f} '
                     f'({html.escape(r.row["threshold_source"])})</td>')
        cls = ' class="blind"' if r.blind else ""
        lines.append(f'<tr data-method="{html.escape(name)}"{cls}><th scope="row">'
                     f'{swatch(colours[name])}{html.escape(name)}</th>{"".join(cells)}</tr>')
    lines.append("</tbody></table>")
    return "\n".join(lines)


def swatch(colour: str) -> str:
    """A small square of the method's colour (the colour of its curve in the figures)."""
    return f'<span class="swatch" style="background:{html.escape(colour)}"></span>'


def settings_list(settings: Mapping[str, Mapping[str, Any]]) -> str:
    """Sections of key/value settings as a definition list per section."""
    parts = []
    for section, items in settings.items():
        parts.append(f"<h3>{html.escape(str(section))}</h3><dl class=\"settings\">")
        for key, value in items.items():
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            parts.append(f"<dt>{html.escape(str(key))}</dt><dd>{html.escape(text)}</dd>")
        parts.append("</dl>")
    return "\n".join(parts)


def gallery_data(*, grid: np.ndarray, results: Mapping[str, MethodResult],
                 methods: Sequence[str], judge: str, taus: Mapping[str, int],
                 labels: np.ndarray, pred: np.ndarray | None, class_names: Sequence[str],
                 ids: Sequence[str], gt: Sequence[np.ndarray], strip: tuple[int, int],
                 panel: int, pad: int, thumb_scale: float, digits: int) -> dict[str, Any]:
    """The JSON the page's script reads (see the module docstring): ``tau`` is, per gallery
    method, the slider position of its own threshold (where its slider starts)."""
    boxes, iou = {}, {}
    for m in methods:
        r = results[m]
        boxes[m] = _b64(np.clip(r.boxes, 0, 255).astype(np.uint8))
        iou[m] = _b64(encode_scores(r.iou, r.hits))
    return {
        "n": len(labels), "grid": [round(float(t), 6) for t in grid], "methods": list(methods),
        "judge": judge, "tau": {m: int(taus[m]) for m in methods},
        "colors": method_colors(list(results)),
        "label": [int(v) for v in labels],
        "pred": None if pred is None else [int(v) for v in pred],
        "classes": [str(c) for c in class_names], "ids": [str(i) for i in ids],
        "gt": [np.asarray(g, dtype=np.int64).reshape(-1, 4).tolist() for g in gt],
        "boxes": boxes, "iou": iou, "strip": list(strip), "panel": panel, "pad": pad,
        "thumb_scale": thumb_scale, "digits": digits,
    }


def render(fields: Mapping[str, str], data: Mapping[str, Any]) -> str:
    """Fill the page template; ``fields`` are HTML fragments (already escaped)."""
    page = _asset("page.html")
    # "<" only occurs inside JSON strings: escaped, no "</script>" or "<!--" can end the block
    payload = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")
    values = {**fields, "css": _asset("report.css"), "js": _asset("report.js"), "data": payload}
    # one pass: text that arrives in a value is never scanned for placeholders again
    return re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], page)
