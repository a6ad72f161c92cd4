"""Plain-text tables for the command line and the demo (no heavy imports)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["format_table"]


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str],
                 headers: Sequence[str] | None = None) -> str:
    """A plain-text table, numbers right-aligned with two decimals.

    Parameters
    ----------
    rows : sequence of dict
        One dict per row; missing keys print as ``-``.
    columns : sequence of str
        Keys to print, in order (the first one is the row label).
    headers : sequence of str, optional
        Column titles (default: the keys).
    """
    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.2f}"
        return str(v)

    headers = list(columns if headers is None else headers)
    if len(headers) != len(columns):
        raise ValueError(f"headers has {len(headers)} names for {len(columns)} columns")
    table = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                       for i, (h, w) in enumerate(zip(headers, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for t in table:
        lines.append("  ".join(v.ljust(w) if i == 0 else v.rjust(w)
                               for i, (v, w) in enumerate(zip(t, widths))))
    return "\n".join(lines)
