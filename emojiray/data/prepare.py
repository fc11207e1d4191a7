"""`emojiray data prepare`: any source -> preprocessed, deduplicated, split Parquet shards.

Streaming and memory-bounded: images are decoded one at a time, each split keeps at most one
shard's worth of rows in memory. The split of an image depends only on its emoji identity and
the seed (a hash), so every vendor and skin tone of one emoji lands in the same split, and an
emoji keeps its split when vendors or sources are added.

Atomicity: shards get names unique to this run and the manifest is written last; a dataset
without a manifest is refused by every reader. A re-run with the same inputs and settings is a
no-op; with different ones it writes a new set and removes the old shards after the new
manifest is in place.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import json
import uuid
from typing import Any

from emojiray import __version__, storage
from emojiray.config import DataConfig, validate_section
from emojiray.data import shards
from emojiray.data.labels import EMOTION_VOCAB
from emojiray.data.sources import open_source
from emojiray.errors import EmojirayError, SkipImage
from emojiray.images import decode_image, parse_color, resize_rgb

# Settings that change the output (others, like `limit`, are part of it too; all are listed).
_FINGERPRINT_FIELDS = ("source", "npm_version", "size", "background", "val_fraction", "test_fraction",
                       "seed", "shard_rows", "dedupe", "max_pixels", "limit", "labels_csv",
                       "hf_split", "hf_image_column", "hf_text_column")


def assign_split(emoji_id: str, seed: int, val_fraction: float, test_fraction: float) -> str:
    """train/val/test from a seeded hash of the emoji identity (stable, leak-free)."""
    digest = hashlib.sha256(f"{seed}:{emoji_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


def _validate(cfg: DataConfig) -> None:
    validate_section("data", cfg)  # the ranges, for a DataConfig built without load_config
    parse_color(cfg.background)


def _fingerprint(cfg: DataConfig, provenance: list[dict[str, Any]]) -> str:
    payload = {"format_version": shards.FORMAT_VERSION,
               "config": {k: getattr(cfg, k) for k in _FINGERPRINT_FIELDS}, "provenance": provenance}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


class _SplitWriter:
    """Buffers rows of one split and writes a shard each time ``shard_rows`` are collected."""

    def __init__(self, out: str, split: str, run_id: str, size: int, shard_rows: int):
        self.out, self.split, self.run_id, self.size, self.shard_rows = out, split, run_id, size, shard_rows
        self.rows: list[dict[str, Any]] = []
        self.entries: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.shard_rows:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        rel = f"{self.split}/part-{self.run_id}-{len(self.entries):05d}.parquet"
        entry = shards.write_shard(storage.join(self.out, rel), shards.rows_to_table(self.rows, self.size))
        self.entries.append({"path": rel, "split": self.split, **entry})
        self.rows = []


def prepare(cfg: DataConfig, out: str, force: bool = False, log=print) -> dict[str, Any]:
    """Prepare the dataset described by ``cfg`` under ``out``; return its manifest."""
    _validate(cfg)
    background = parse_color(cfg.background)
    source = open_source(cfg)
    fingerprint = _fingerprint(cfg, source.provenance)
    manifest_uri = storage.join(out, shards.MANIFEST)
    if not force and storage.exists(manifest_uri):
        try:
            found = storage.read_json(manifest_uri)
        except EmojirayError:
            found = None
        if not isinstance(found, dict) or found.get("format") != shards.FORMAT:
            raise EmojirayError(f"{out} holds a {shards.MANIFEST} that is not an emojiray dataset: choose another "
                                f"--out or pass --force to replace it")
        try:
            old = shards.load_manifest(out)  # a damaged dataset (shards missing or changed) is rebuilt
        except EmojirayError:
            old = {}
        if old.get("fingerprint") == fingerprint:
            log(f"prepare: {out} is up to date ({old['counts']['total']} images); use --force to rebuild")
            return old

    run_id = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    writers = {s: _SplitWriter(out, s, run_id, cfg.size, cfg.shard_rows) for s in shards.SPLITS}
    seen: dict[str, str] = {}  # pixel hash -> key of the first image with those pixels
    duplicates: list[dict[str, str]] = []
    conversions: collections.Counter[str] = collections.Counter()
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    vocab: dict[str, set[str]] = collections.defaultdict(set)
    n_inputs = 0

    for item in source.items:
        if cfg.limit and n_inputs >= cfg.limit:
            break
        n_inputs += 1
        try:
            if item.pixels is not None:
                pixels = resize_rgb(item.pixels, cfg.size)
            else:
                decoded = decode_image(item.data or b"", cfg.size, background, cfg.max_pixels)
                pixels = decoded.pixels
                conversions.update(decoded.conversions)
        except SkipImage as exc:
            source.skipped.append({"item": item.key, "reason": str(exc)})
            continue
        digest = shards.pixel_hash(pixels)
        if cfg.dedupe and digest in seen:
            duplicates.append({"item": item.key, "duplicate_of": seen[digest]})
            continue
        seen.setdefault(digest, item.key)
        labels = item.labels
        split = assign_split(labels["emoji_id"], cfg.seed, cfg.val_fraction, cfg.test_fraction)
        writers[split].add({"pixels": pixels, "key": item.key, "sha256": digest, "split": split, **labels})
        for name, value in (("split", split), ("vendor", labels["vendor"]), ("category", labels["category"]),
                            ("emotion", labels["emotion"]), ("split_vendor", f"{split}/{labels['vendor']}"),
                            ("skin_tone", str(labels["skin_tone"]).lower())):
            counts[name][value] += 1
        for name in ("category", "subcategory", "vendor"):
            vocab[name].add(labels[name])
        vocab["emoji_id"].add(labels["emoji_id"])

    total = sum(counts["split"].values())
    if total == 0:
        first = source.skipped[0]["reason"] if source.skipped else "the source is empty"
        raise EmojirayError(f"no usable images from {cfg.source}: {n_inputs} input(s), all skipped ({first})")
    for w in writers.values():
        w.flush()

    manifest = {
        "format": shards.FORMAT,
        "format_version": shards.FORMAT_VERSION,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "emojiray_version": __version__,
        "run_id": run_id,
        "fingerprint": fingerprint,
        "config": {k: getattr(cfg, k) for k in _FINGERPRINT_FIELDS},
        "image": {"height": cfg.size, "width": cfg.size, "channels": 3, "dtype": "uint8", "layout": "HWC",
                  "column": "image", "background": list(background)},
        "sources": source.provenance,
        "counts": {
            "inputs": n_inputs,
            "total": total,
            "skipped": len(source.skipped),
            "duplicates_removed": len(duplicates),
            "emoji_ids": len(vocab["emoji_id"]),
            **{k: dict(sorted(v.items())) for k, v in counts.items()},
        },
        "vocab": {
            "category": sorted(vocab["category"]),
            "subcategory": sorted(vocab["subcategory"]),
            "vendor": sorted(vocab["vendor"]),
            "emotion": list(EMOTION_VOCAB),
            "split": list(shards.SPLITS),
        },
        "converted": dict(sorted(conversions.items())),
        "shards": [e for s in shards.SPLITS for e in writers[s].entries],
        "skipped": source.skipped,
        "duplicates": duplicates,
    }
    storage.write_json(manifest_uri, manifest)
    _remove_stale(out, {e["path"] for e in manifest["shards"]})
    log(f"prepare: {total} images ({len(source.skipped)} skipped, {len(duplicates)} duplicates removed) "
        f"in {len(manifest['shards'])} shards -> {out}")
    return manifest


def _remove_stale(out: str, keep: set[str]) -> None:
    """Delete shards of earlier or interrupted runs (only our own part-*.parquet files)."""
    for split in shards.SPLITS:
        for uri in storage.list_files(storage.join(out, split), recursive=False):
            name = storage.basename(uri)
            if f"{split}/{name}" not in keep and name.startswith("part-") and (
                name.endswith(".parquet") or ".parquet.tmp-" in name
            ):
                storage.delete(uri)

