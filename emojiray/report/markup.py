"""HTML building blocks of the report page: escaping, number formatting, tables and the style sheet.

Plain functions returning strings; a :class:`Raw` value is markup already and is never escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d232b;background:#fafbfc}
main{max-width:1180px;margin:0 auto;padding:0 20px 60px}
header{background:#24292f;color:#fff;padding:18px 20px}
header h1{margin:0;font-size:1.5em;max-width:1180px;margin:0 auto}
nav{max-width:1180px;margin:8px auto 0;font-size:.9em}
nav a{color:#c9d1d9;margin-right:14px;text-decoration:none}
h2{border-bottom:2px solid #d0d7de;padding-bottom:4px;margin-top:40px}
h3{margin-top:26px}
table{border-collapse:collapse;margin:10px 0 16px;font-size:.88em;background:#fff}
th,td{border:1px solid #d0d7de;padding:4px 9px;text-align:left;vertical-align:top}
th{background:#f0f3f6}
td.n{text-align:right;font-variant-numeric:tabular-nums}
tr:nth-child(even) td{background:#f7f9fb}
.ok{color:#1a7f37;font-weight:600}.bad{color:#cf222e;font-weight:600}
.missing{color:#7d4e00;background:#fff8c5;border:1px solid #eac54f;padding:4px 10px;display:inline-block}
.problem{color:#82071e;background:#ffebe9;border:1px solid #ff8182;padding:4px 10px}
.note{color:#57606a;font-size:.9em;max-width:960px}
figure{margin:12px 0 22px;display:inline-block;vertical-align:top;margin-right:18px}
figure img{max-width:100%;height:auto;border:1px solid #d0d7de;background:#fff}
img.px{image-rendering:pixelated}
figcaption{font-size:.85em;color:#57606a;max-width:1000px}
.row{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
code,pre{font-size:.85em;background:#f0f3f6}
pre{padding:10px;overflow:auto;max-height:420px}
.tw{overflow-x:auto;max-width:100%}
table.kv td.n{text-align:left}
table.kv td:first-child{color:#424a53}
"""


class Raw(str):
    """A table cell or fragment that is already HTML."""


def esc(value: Any) -> str:
    return value if isinstance(value, Raw) else html.escape(str(value))


def fmt(v: Any) -> str:
    """A number or value as short text: thousands separators, about four significant digits."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        a = abs(v)
        if v.is_integer() and a < 1e12:
            return f"{int(v):,}"
        if a >= 1000:
            return f"{v:,.0f}"
        if a >= 100:
            return f"{v:.1f}"
        if a >= 1:
            return f"{v:.2f}"
        if a >= 0.001:
            return f"{v:.4f}"
        return f"{v:.2e}"
    if isinstance(v, (list, tuple)):
        return ", ".join(fmt(x) for x in v)
    if isinstance(v, dict):
        return ", ".join(f"{k}: {fmt(x)}" for k, x in v.items())
    return str(v)


def is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], caption: str = "", cls: str = "") -> str:
    """An HTML table; numbers right-aligned, None as a dash, no header row when every header is
    empty. Empty string when there are no rows."""
    body = []
    for row in rows:
        cells = []
        for v in row:
            if isinstance(v, Raw):
                cells.append(f"<td>{v}</td>")
            elif is_num(v):
                cells.append(f'<td class="n">{esc(fmt(v))}</td>')
            else:
                cells.append(f"<td>{esc(fmt(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    if not body:
        return ""
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    head = ("<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in headers) + "</tr></thead>"
            if any(str(h) for h in headers) else "")
    klass = f' class="{cls}"' if cls else ""
    return f'<div class="tw"><table{klass}>{cap}{head}<tbody>{"".join(body)}</tbody></table></div>'


def kv_table(pairs: Iterable[tuple[str, Any]], headers: Sequence[str] = ("", "")) -> str:
    """A two-column table of (name, value) pairs, values left-aligned."""
    return table(headers, [(k, v) for k, v in pairs], cls="kv")


def verdict(ok: bool | None) -> Raw:
    if ok is None:
        return Raw("—")
    return Raw('<span class="ok">yes</span>' if ok else '<span class="bad">no</span>')


def flatten(d: Any, prefix: str = "", depth: int = 3) -> list[tuple[str, Any]]:
    """(path, value) pairs of the scalar leaves of nested dicts (short scalar lists kept whole)."""
    out: list[tuple[str, Any]] = []
    if isinstance(d, dict) and depth > 0:
        for k, v in d.items():
            out.extend(flatten(v, f"{prefix} / {k}" if prefix else str(k), depth - 1))
    elif isinstance(d, (list, tuple)):
        if len(d) <= 8 and all(not isinstance(x, (dict, list)) for x in d):
            out.append((prefix, list(d)))
    elif not isinstance(d, dict):
        out.append((prefix, d))
    return out
