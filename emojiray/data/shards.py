"""The on-disk dataset format: Parquet shards per split plus ``manifest.json`` (no Ray).

Layout under a dataset URI::

    manifest.json                         written last: its presence marks a complete dataset
    train/part-<run>-00000.parquet ...    raw RGB pixels + labels, ``shard_rows`` rows each
    val/part-<run>-00000.parquet ...
    test/part-<run>-00000.parquet ...

Each row: ``image`` (fixed-size binary, H*W*3 bytes of RGB uint8 in HWC order), ``height``,
``width``, ``key``, ``sha256`` (of the pixels), ``split`` and the label columns. Readers take
the shard list from the manifest, never from a directory listing, so shards of an interrupted
run are never read.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from emojiray import storage
from emojiray.errors import EmojirayError

FORMAT = "emojiray-shards"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SPLITS = ("train", "val", "test")


def schema(size: int) -> pa.Schema:
    """The shard columns: the pixels and their size, the row's identity, then the labels (text, except
    the flag ``skin_tone``)."""
    text = pa.string()
    return pa.schema([
        ("image", pa.binary(size * size * 3)), ("height", pa.int16()), ("width", pa.int16()),
        ("key", text), ("sha256", text), ("split", text),
        *[(name, text) for name in ("emoji_id", "unified", "name", "category", "subcategory", "vendor")],
        ("skin_tone", pa.bool_()), ("emotion", text),
    ])


def rows_to_table(rows: list[dict[str, Any]], size: int) -> pa.Table:
    """Rows with ``pixels`` (H, W, 3) uint8 and label fields -> an Arrow table in shard schema."""
    sch = schema(size)
    pixels = np.stack([r["pixels"] for r in rows]).astype(np.uint8, copy=False)
    flat = pa.py_buffer(np.ascontiguousarray(pixels).tobytes())
    image = pa.Array.from_buffers(pa.binary(size * size * 3), len(rows), [None, flat])
    cols: dict[str, Any] = {"image": image,
                            "height": pa.array([size] * len(rows), pa.int16()),
                            "width": pa.array([size] * len(rows), pa.int16())}
    for f in sch:
        if f.name not in cols:
            cols[f.name] = pa.array([r[f.name] for r in rows], f.type)
    return pa.table(cols, schema=sch)


def pixels_from_column(column: pa.ChunkedArray | pa.Array, height: int, width: int) -> np.ndarray:
    """A fixed-size binary column -> (N, H, W, 3) uint8 without a per-row Python loop."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(arr)
    item = height * width * 3
    if n == 0:
        return np.zeros((0, height, width, 3), np.uint8)
    if not pa.types.is_fixed_size_binary(arr.type):  # e.g. after a round trip through pandas
        return np.frombuffer(b"".join(arr.to_pylist()), np.uint8).reshape(n, height, width, 3)
    buf = arr.buffers()[1]
    data = np.frombuffer(buf, dtype=np.uint8, count=(arr.offset + n) * item)[arr.offset * item:]
    return data.reshape(n, height, width, 3)


def pixels_from_table(table: pa.Table, manifest: dict[str, Any]) -> np.ndarray:
    h, w = manifest["image"]["height"], manifest["image"]["width"]
    return pixels_from_column(table.column("image"), h, w)


def pixel_hash(pixels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest()


def seeded_subset(n: int, cap: int, seed: int) -> np.ndarray:
    """Sorted row indices of a seeded subset of ``cap`` of ``n`` rows (all rows when cap is 0 or >= n)."""
    if not cap or n <= cap:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, cap, replace=False))


def write_shard(uri: str, table: pa.Table) -> dict[str, Any]:
    """Write one shard atomically; return its manifest entry (path filled in by the caller)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", compression_level=3, row_group_size=1024)
    data = sink.getvalue().to_pybytes()
    storage.write_bytes(uri, data)
    return {"rows": table.num_rows, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


_VERIFIED: set[tuple] = set()  # dataset versions whose shards matched their checksums, this process


def load_manifest(uri: str, verify_shards: bool = True) -> dict[str, Any]:
    """Read and validate a dataset's manifest, or fail with one line saying why. With
    ``verify_shards`` every shard's SHA-256 is checked first (once per process and dataset
    version: :func:`check_shards`), so no training, encoding or evaluation reads a damaged shard."""
    path = storage.join(uri, MANIFEST)
    if not storage.exists(path):
        if storage.exists(uri) and storage.list_files(uri):
            raise EmojirayError(f"{uri} has no {MANIFEST}: an incomplete (interrupted?) prepare; run `emojiray data prepare` again")
        raise EmojirayError(f"no dataset at {uri}: run `emojiray data prepare --out {uri}` first")
    manifest = storage.read_json(path)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise EmojirayError(f"{path} is not an emojiray dataset manifest")
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise EmojirayError(f"{path} has format version {manifest['format_version']}; this emojiray reads up to {FORMAT_VERSION}")
    if not _well_formed(manifest):
        raise EmojirayError(f"{path} is damaged: its image size, counts or shard list is missing or malformed")
    if verify_shards:
        check_shards(uri, manifest)
    return manifest


def _well_formed(m: dict[str, Any]) -> bool:
    """The parts of a manifest every reader relies on, with the types they expect."""
    image, counts, listed = m.get("image"), m.get("counts"), m.get("shards")
    return (isinstance(image, dict) and all(isinstance(image.get(k), int) and image[k] > 0 for k in ("height", "width"))
            and isinstance(counts, dict) and isinstance(counts.get("split"), dict)
            and isinstance(m.get("vocab"), dict) and isinstance(listed, list)
            and all(isinstance(s, dict) and isinstance(s.get("path"), str) and s.get("split") in SPLITS
                    and isinstance(s.get("sha256"), str) for s in listed))


def check_shards(uri: str, manifest: dict[str, Any]) -> None:
    """One line naming the first missing or changed shard, or nothing. A dataset version that
    passed is not read again by this process (a pipeline checks its data once) unless a local
    shard's size or modification time changed since."""
    key = (storage.absolute(uri), str(manifest.get("fingerprint")), str(manifest.get("created")),
           _stamps(uri, manifest))
    if key in _VERIFIED:
        return
    problems = verify(uri, manifest)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise EmojirayError(f"{uri}: {problems[0]}{more}: the dataset is damaged; rebuild it with "
                            f"`emojiray data prepare --out {uri} --force`")
    _VERIFIED.add(key)


def shard_uris(uri: str, manifest: dict[str, Any], split: str | None = None) -> list[str]:
    if split is not None and split not in SPLITS:
        raise EmojirayError(f"unknown split {split!r}: choose from {', '.join(SPLITS)}")
    return [storage.join(uri, s["path"]) for s in manifest["shards"] if split is None or s["split"] == split]


def iter_tables(uri: str, manifest: dict[str, Any], split: str | None = None,
                columns: list[str] | None = None) -> Iterator[pa.Table]:
    for shard in shard_uris(uri, manifest, split):
        fs, path = storage.filesystem(shard)
        try:
            yield pq.read_table(path, filesystem=fs, columns=columns)
        except FileNotFoundError:
            raise EmojirayError(f"shard listed in the manifest is missing: {shard}") from None
        except (OSError, pa.ArrowInvalid) as exc:
            raise EmojirayError(f"cannot read shard {shard}: {str(exc).splitlines()[0]}") from None


def _stamps(uri: str, manifest: dict[str, Any]) -> tuple:
    """(size, mtime) of each local shard (None if missing); () on S3, whose versions the manifest names."""
    if storage.is_s3(uri):
        return ()
    stamps = []
    for shard in manifest["shards"]:
        try:
            st = os.stat(storage.join(uri, shard["path"]))
            stamps.append((st.st_size, st.st_mtime_ns))
        except OSError:
            stamps.append(None)
    return tuple(stamps)


def verify(uri: str, manifest: dict[str, Any]) -> list[str]:
    """Check every shard's SHA-256 against the manifest; return the problems found."""
    problems = []
    for shard in manifest["shards"]:
        target = storage.join(uri, shard["path"])
        if not storage.exists(target):
            problems.append(f"shard {shard['path']} is missing")
            continue
        h = hashlib.sha256()
        for block in storage.iter_chunks(target):
            h.update(block)
        if h.hexdigest() != shard["sha256"]:
            problems.append(f"shard {shard['path']} does not match its SHA-256")
    return problems


ROW_COLUMNS = ("key", "emoji_id", "name", "category", "vendor", "emotion", "split")  # read_arrays' default


def read_arrays(data_uri: str, splits=("val", "test"), columns=ROW_COLUMNS) -> tuple[np.ndarray, dict[str, list]]:
    """(pixels (N, H, W, 3) uint8, {column: values}) of the given splits, in manifest order."""
    manifest = load_manifest(data_uri)
    pix, labels = [], {c: [] for c in columns}
    for split in splits:
        for table in iter_tables(data_uri, manifest, split, columns=["image", *columns]):
            pix.append(pixels_from_table(table, manifest).copy())
            for c in columns:
                labels[c].extend(table.column(c).to_pylist())
    size = manifest["image"]["height"]
    images = np.concatenate(pix) if pix else np.zeros((0, size, size, 3), np.uint8)
    return images, labels
