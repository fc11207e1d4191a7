"""Data sources behind one interface: ``npm:google,twitter``, ``hf:NAME``, ``folder:PATH``, ``parquet:URI``.

Each source yields :class:`RawItem` records: the encoded image bytes (or, for re-used shards,
decoded pixels) plus labels. Preprocessing (``emojiray.data.prepare``) is the same for all.
"""

from __future__ import annotations

import csv
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from emojiray.config import DataConfig
from emojiray.data import npm
from emojiray.data.labels import emotion_of
from emojiray.errors import EmojirayError
from emojiray.images import IMAGE_EXTENSIONS

LABEL_FIELDS = ("emoji_id", "unified", "name", "category", "subcategory", "vendor", "skin_tone", "emotion")


@dataclass
class RawItem:
    key: str  # unique within the dataset, e.g. "google/1f600.png"
    labels: dict[str, Any]
    data: bytes | None = None  # an encoded image file
    pixels: np.ndarray | None = None  # or already decoded (H, W, 3) uint8


@dataclass
class Source:
    spec: str
    items: Iterator[RawItem]
    provenance: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # filled while iterating


def make_labels(**kw: Any) -> dict[str, Any]:
    """Complete a label dict: defaults for missing fields, emotion derived when not given."""
    name = str(kw.get("name") or "")
    category = str(kw.get("category") or "")
    subcategory = str(kw.get("subcategory") or "")
    emoji_id = str(kw.get("emoji_id") or kw.get("unified") or name)
    labels = {
        "emoji_id": emoji_id,
        "unified": str(kw.get("unified") or emoji_id),
        "name": name,
        "category": category or "unknown",
        "subcategory": subcategory or "unknown",
        "vendor": str(kw.get("vendor") or "unknown"),
        "skin_tone": bool(kw.get("skin_tone") or False),
        "emotion": str(kw.get("emotion") or emotion_of(name, category, subcategory)),
    }
    return labels


def open_source(cfg: DataConfig) -> Source:
    kind, sep, arg = cfg.source.partition(":")
    openers: dict[str, Callable[[str, DataConfig], Source]] = {
        "npm": _npm_source, "hf": _hf_source, "folder": _folder_source, "parquet": _parquet_source,
    }
    if not sep or kind not in openers:
        raise EmojirayError(
            f"unknown source {cfg.source!r}: use npm:google,twitter | hf:NAME | folder:PATH | parquet:URI"
        )
    return openers[kind](arg, cfg)


# -- npm ---------------------------------------------------------------------------------------


def _npm_source(arg: str, cfg: DataConfig) -> Source:
    vendors = npm.parse_vendors(arg)
    tarballs = [npm.fetch(v, cfg.npm_version) for v in vendors]
    src = Source(spec=f"npm:{','.join(vendors)}", items=iter(()))
    src.provenance = [
        {"kind": "npm", "vendor": t.vendor, "package": t.package, "version": t.version,
         "sha1": t.sha1, "license": t.license}
        for t in tarballs
    ]
    src.items = _iter_npm(tarballs, src.skipped)
    return src


def _iter_npm(tarballs: list[npm.Tarball], skipped: list[dict[str, str]]) -> Iterator[RawItem]:
    for tb in tarballs:
        img_dir = f"package/img/{tb.vendor}/64/"
        images: dict[str, bytes] = {}
        meta: bytes | None = None
        try:
            # One sequential pass: random access into a gzip stream re-decompresses from the start.
            with tarfile.open(tb.path, "r|gz") as tar:
                for member in tar:
                    if not member.isfile():
                        continue
                    if member.name == "package/emoji.json":
                        meta = tar.extractfile(member).read()
                    elif member.name.startswith(img_dir):
                        images[member.name[len(img_dir):]] = tar.extractfile(member).read()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise EmojirayError(f"cannot read {tb.path}: {exc} (delete it to fetch again)") from None
        if meta is None:
            raise EmojirayError(f"{tb.package}@{tb.version} has no emoji.json: not an emoji-datasource package")
        try:
            entries = json.loads(meta)
        except json.JSONDecodeError as exc:
            raise EmojirayError(f"{tb.package}@{tb.version}: emoji.json is not valid JSON ({exc})") from None
        for entry in entries:
            variants = [(entry, False)] + [(v, True) for v in (entry.get("skin_variations") or {}).values()]
            for var, skin in variants:
                if not var.get(f"has_img_{tb.vendor}", True):
                    continue  # the vendor does not draw this one
                key = f"{tb.vendor}/{var['image']}"
                data = images.get(var["image"])
                if data is None:
                    skipped.append({"item": key, "reason": "listed in emoji.json but missing from the package"})
                    continue
                yield RawItem(
                    key=key,
                    data=data,
                    labels=make_labels(
                        emoji_id=entry["unified"], unified=var["unified"], name=entry.get("name") or "",
                        category=entry.get("category", ""), subcategory=entry.get("subcategory", ""),
                        vendor=tb.vendor, skin_tone=skin,
                    ),
                )


# -- folder ------------------------------------------------------------------------------------


def _folder_source(arg: str, cfg: DataConfig) -> Source:
    root = Path(arg).expanduser()
    if not arg or not root.is_dir():
        raise EmojirayError(f"folder source: {arg or '(empty path)'} is not a directory")
    csv_labels = _read_labels_csv(Path(cfg.labels_csv) if cfg.labels_csv else root / "labels.csv")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise EmojirayError(f"folder source: no image files ({', '.join(IMAGE_EXTENSIONS)}) under {root}")
    src = Source(spec=f"folder:{root}", items=iter(()),
                 provenance=[{"kind": "folder", "path": str(root.resolve()), "files": len(files),
                              "labels": "csv" if csv_labels else "sub-folders"}])

    def items() -> Iterator[RawItem]:
        for path in files:
            rel = path.relative_to(root).as_posix()
            row = csv_labels.get(rel) or csv_labels.get(path.name) or {}
            parts = rel.split("/")
            folder_label = parts[0] if len(parts) > 1 else ""
            stem = path.stem
            labels = make_labels(
                emoji_id=row.get("emoji_id") or rel.rsplit(".", 1)[0],
                unified=row.get("unified"),
                name=row.get("name") or stem.replace("_", " ").replace("-", " "),
                category=row.get("category") or folder_label,
                subcategory=row.get("subcategory"),
                vendor=row.get("vendor") or "folder",
                skin_tone=str(row.get("skin_tone", "")).lower() in ("1", "true", "yes"),
                emotion=row.get("emotion"),
            )
            try:
                data = path.read_bytes()
            except OSError as exc:
                src.skipped.append({"item": rel, "reason": f"unreadable file: {exc.strerror or exc}"})
                continue
            yield RawItem(key=f"folder/{rel}", data=data, labels=labels)

    src.items = items()
    return src


def _read_labels_csv(path: Path) -> dict[str, dict[str, str]]:
    if not path.exists():
        return {}
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise EmojirayError(f"labels CSV {path}: cannot read ({exc})") from None
    if rows and "file" not in rows[0]:
        raise EmojirayError(f"labels CSV {path}: needs a 'file' column (got {', '.join(rows[0])})")
    return {r["file"]: {k: v for k, v in r.items() if v not in (None, "")} for r in rows}


# -- Hugging Face --------------------------------------------------------------------------------


def _hf_source(arg: str, cfg: DataConfig) -> Source:
    if not arg:
        raise EmojirayError("hf source needs a dataset name or path, e.g. hf:valhalla/emoji-dataset")
    try:
        import datasets
    except ImportError:
        raise EmojirayError("hf sources need the `datasets` package: pip install datasets") from None
    datasets.disable_progress_bars()
    try:
        local = Path(arg)
        if (local / "dataset_info.json").exists() or (local / "dataset_dict.json").exists():
            ds = datasets.load_from_disk(arg)  # saved with Dataset.save_to_disk
            if isinstance(ds, datasets.DatasetDict):
                ds = ds[cfg.hf_split] if cfg.hf_split in ds else next(iter(ds.values()))
        else:
            ds = datasets.load_dataset(arg, split=cfg.hf_split)
    except (FileNotFoundError, ValueError, ConnectionError, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise EmojirayError(f"cannot load Hugging Face dataset {arg!r} (hub unreachable or bad name?): {reason[:200]}") from None
    except Exception as exc:  # the hub client raises many types for an offline or unknown repo
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise EmojirayError(f"cannot load Hugging Face dataset {arg!r}: {type(exc).__name__}: {reason[:200]}") from None

    features = ds.features
    image_col = cfg.hf_image_column or next(
        (k for k, f in features.items() if isinstance(f, datasets.Image)), "image" if "image" in features else ""
    )
    if image_col not in features:
        raise EmojirayError(f"hf dataset {arg!r} has no image column (columns: {', '.join(features)}); set data.hf_image_column")
    text_col = cfg.hf_text_column or (
        "text" if "text" in features else next(
            (k for k, f in features.items() if getattr(f, "dtype", None) == "string"), "")
    )
    if isinstance(features[image_col], datasets.Image):
        ds = ds.cast_column(image_col, datasets.Image(decode=False))  # raw bytes: we decode robustly
    src = Source(spec=f"hf:{arg}", items=iter(()),
                 provenance=[{"kind": "hf", "dataset": arg, "split": cfg.hf_split, "rows": len(ds),
                              "image_column": image_col, "text_column": text_col}])

    def items() -> Iterator[RawItem]:
        for i, row in enumerate(ds):
            value = row[image_col]
            text = str(row.get(text_col) or "") if text_col else ""
            data = value.get("bytes") if isinstance(value, dict) else value
            if data is None and isinstance(value, dict) and value.get("path"):
                try:
                    data = Path(value["path"]).read_bytes()
                except OSError as exc:
                    src.skipped.append({"item": f"row {i}", "reason": f"unreadable image path: {exc}"})
                    continue
            if not isinstance(data, (bytes, bytearray)):
                src.skipped.append({"item": f"row {i}", "reason": "image cell holds no bytes"})
                continue
            ident = " ".join(text.lower().split()) or f"row-{i}"
            yield RawItem(key=f"hf/{i}", data=bytes(data),
                          labels=make_labels(emoji_id=ident, name=text, vendor=f"hf:{arg}"))

    src.items = items()
    return src


# -- parquet (shards made earlier) ---------------------------------------------------------------


def _parquet_source(arg: str, cfg: DataConfig) -> Source:
    from emojiray.data import shards

    manifest = shards.load_manifest(arg)
    src = Source(spec=f"parquet:{arg}", items=iter(()),
                 provenance=[{"kind": "parquet", "uri": arg, "rows": manifest["counts"]["total"],
                              "sources": manifest.get("sources", [])}])

    def items() -> Iterator[RawItem]:
        for table in shards.iter_tables(arg, manifest):
            pixels = shards.pixels_from_table(table, manifest)
            cols = {k: table.column(k).to_pylist() for k in ("key",) + LABEL_FIELDS}
            for i in range(table.num_rows):
                yield RawItem(key=cols["key"][i], pixels=pixels[i],
                              labels={k: cols[k][i] for k in LABEL_FIELDS})

    src.items = items()
    return src
