"""The pieces of the report page as data, the number formatting, and the Jinja2 template that
renders them.

:class:`~emojiray.report.html.ReportBuilder` turns a run into :class:`Section` objects holding
blocks (:class:`Table`, :class:`Figure`, :class:`Note`, ...); ``templates/report.html.j2`` lays
them out, inlines ``templates/report.css`` and escapes every value (autoescape): nothing here
writes HTML.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import jinja2

TEMPLATE = "report.html.j2"


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


# ---- blocks: what a section holds, in order; the template renders each by its ``kind`` ----------
@dataclass(frozen=True)
class Cell:
    """A table cell: its text, right-aligned when ``numeric``; ``style`` "ok" or "bad" colours it
    (a verdict), "em" sets it in italics."""
    text: str
    numeric: bool = False
    style: str = ""


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]  # no header row when every header is empty
    rows: list[list[Cell]]
    cls: str = ""  # "kv": a name-value table, values left-aligned
    kind: str = "table"


@dataclass(frozen=True)
class Figure:
    src: str  # relative to index.html
    alt: str
    caption: str = ""
    width: int | None = None
    height: int | None = None
    pixelated: bool = False  # an enlarged emoji sheet: sharp pixels
    kind: str = "figure"


@dataclass(frozen=True)
class Heading:
    text: str
    anchor: str = ""
    kind: str = "heading"


@dataclass(frozen=True)
class Note:
    """A line of text: a remark (kind "note"), or a command shown as code (kind "code")."""
    text: str
    kind: str = "note"


@dataclass(frozen=True)
class Missing:
    """A part the run lacks: "<what>: not in this run"."""
    what: str
    kind: str = "missing"


@dataclass(frozen=True)
class Row:
    """Blocks side by side (tables, figures)."""
    blocks: list[Block]
    kind: str = "row"


@dataclass(frozen=True)
class Details:
    """A collapsed part: ``summary`` shown, ``blocks`` and a preformatted ``pre`` text on opening."""
    summary: str
    blocks: list[Block] = field(default_factory=list)
    pre: str = ""
    kind: str = "details"


Block = Union[Table, Figure, Heading, Note, Missing, Row, Details]


@dataclass
class Section:
    anchor: str
    title: str
    blocks: list[Block] = field(default_factory=list)
    error: str = ""  # why the section could not be built


@dataclass
class Page:
    name: str
    sections: list[Section]
    missing: list[tuple[str, str]]  # (section, what)
    problems: list[str]


def cell(v: Any) -> Cell:
    """A value as a cell: numbers right-aligned, None as a dash, a :class:`Cell` as it is."""
    if isinstance(v, Cell):
        return v
    return Cell(fmt(v), numeric=is_num(v))


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], cls: str = "") -> Table | None:
    """A table of values (see :func:`cell`); None when there are no rows."""
    body = [[cell(v) for v in row] for row in rows]
    return Table(tuple(str(h) for h in headers), body, cls) if body else None


def kv_table(pairs: Iterable[tuple[str, Any]], headers: Sequence[str] = ("", "")) -> Table | None:
    """A two-column table of (name, value) pairs, values left-aligned."""
    return table(headers, [(k, v) for k, v in pairs], cls="kv")


def verdict(ok: bool | None) -> Cell:
    if ok is None:
        return Cell("—")
    return Cell("yes", style="ok") if ok else Cell("no", style="bad")


def environment() -> jinja2.Environment:
    """The Jinja2 environment of the package's ``templates/`` folder: autoescaped, strict about
    undefined names."""
    return jinja2.Environment(loader=jinja2.PackageLoader("emojiray.report", "templates"), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True)


def render(page: Page) -> str:
    """The HTML of ``page``."""
    return environment().get_template(TEMPLATE).render(page=page)
