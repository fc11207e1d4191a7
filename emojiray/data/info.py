"""`emojiray data info`: a prepared dataset's summary and a contact sheet (no Ray)."""

from __future__ import annotations

from typing import Any

import numpy as np

from emojiray import storage
from emojiray.data import shards
from emojiray.data.labels import NO_EMOTION
from emojiray.errors import EmojirayError
from emojiray.images import labelled_rows, to_png_bytes

SHEET_GROUPS = ("category", "emotion", "vendor", "subcategory")


def summary(uri: str, manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    m = manifest or shards.load_manifest(uri)
    return {
        "uri": uri,
        "created": m["created"],
        "image": f"{m['image']['height']}x{m['image']['width']} RGB uint8",
        "sources": m["sources"],
        "counts": m["counts"],
        "converted": m.get("converted", {}),
        "vocab_sizes": {k: len(v) for k, v in m["vocab"].items()},
        "shards": len(m["shards"]),
        "bytes": sum(s["bytes"] for s in m["shards"]),
    }


def format_summary(s: dict[str, Any]) -> str:
    c = s["counts"]
    lines = [
        f"dataset   {s['uri']}  ({s['image']}, created {s['created']})",
        "sources   " + "; ".join(_source_line(p) for p in s["sources"]),
        f"images    {c['total']} from {c['inputs']} inputs: {c['skipped']} skipped, "
        f"{c['duplicates_removed']} duplicates removed; {c['emoji_ids']} distinct emoji",
        "splits    " + ", ".join(f"{k} {v}" for k, v in c["split"].items()),
        "vendors   " + ", ".join(f"{k} {v}" for k, v in c["vendor"].items()),
        "emotions  " + ", ".join(f"{k} {v}" for k, v in c["emotion"].items()),
        "categories " + ", ".join(f"{k} {v}" for k, v in c["category"].items()),
        "vocab     " + ", ".join(f"{k} {v}" for k, v in s["vocab_sizes"].items()),
        f"storage   {s['shards']} shards, {s['bytes'] / 1e6:.1f} MB",
    ]
    if s["converted"]:
        lines.append("converted " + ", ".join(f"{k} {v}" for k, v in s["converted"].items()))
    return "\n".join(lines)


def _source_line(p: dict[str, Any]) -> str:
    if p["kind"] == "npm":
        return f"{p['package']}@{p['version']} ({p['license']}, sha1 {p['sha1'][:10]})"
    return ", ".join(f"{k}={v}" for k, v in p.items() if k != "sources")


def contact_sheet(uri: str, by: str = "category", per_row: int = 16,
                  manifest: dict[str, Any] | None = None) -> bytes:
    """PNG bytes: one labelled row of up to ``per_row`` images for each value of ``by``."""
    if by not in SHEET_GROUPS:
        raise EmojirayError(f"cannot group a contact sheet by {by!r}: choose from {', '.join(SHEET_GROUPS)}")
    m = manifest or shards.load_manifest(uri)
    picked: dict[str, list[np.ndarray]] = {}
    totals: dict[str, int] = {}
    for table in shards.iter_tables(uri, m, columns=["image", by]):
        pixels = shards.pixels_from_table(table, m)
        for i, value in enumerate(table.column(by).to_pylist()):
            if by == "emotion" and value == NO_EMOTION:
                continue
            totals[value] = totals.get(value, 0) + 1
            group = picked.setdefault(value, [])
            if len(group) < per_row:
                group.append(pixels[i])
    if not picked:
        raise EmojirayError(f"no images with a {by} label in {uri}")
    order = [v for v in m["vocab"].get(by, sorted(picked)) if v in picked]
    rows = [(f"{value} ({totals[value]})", np.stack(picked[value])) for value in order]
    return to_png_bytes(labelled_rows(rows, per_row))


def write_info(uri: str, out_dir: str, groups: tuple[str, ...] = ("category", "emotion")) -> dict[str, str]:
    """Write summary JSON and contact sheets under ``out_dir``; return their URIs."""
    m = shards.load_manifest(uri)
    written = {"summary": storage.write_json(storage.join(out_dir, "data_summary.json"), summary(uri, m))}
    for by in groups:
        written[f"sheet_{by}"] = storage.write_bytes(
            storage.join(out_dir, f"data_contact_{by}.png"), contact_sheet(uri, by, manifest=m))
    return written
