"""Ray Data over prepared shards: a streaming Dataset of uint8 image batches plus label ids.

    ds = read_images("results/smoke/data", split="train")
    for batch in ds.iter_torch_batches(batch_size=256):        # or get_dataset_shard("train")
        x = to_model_input(batch["image"], device)              # uint8 until it reaches the device

Decoding happens in ``map_batches`` on Ray Data's CPU workers: the fixed-size binary column is
reinterpreted as an (N, H, W, 3) uint8 array without a per-row loop, and string labels become
integer ids from the manifest's vocabularies (stable for conditioning).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from emojiray import storage
from emojiray.config import LABELS
from emojiray.data import shards
from emojiray.errors import EmojirayError


def decode_batch(table: pa.Table, height: int, width: int, vocab: dict[str, list[str]],
                 labels: tuple[str, ...]) -> dict[str, np.ndarray]:
    """One Arrow batch of shard rows -> {"image": (N, H, W, 3) uint8, "<label>": (N,) int64}."""
    # A copy: the Arrow buffer is read-only and torch wants writable memory (a memcpy is cheap).
    pixels = shards.pixels_from_column(table.column("image"), height, width).copy()
    out: dict[str, np.ndarray] = {"image": pixels}
    for name in labels:
        index = {v: i for i, v in enumerate(vocab[name])}
        values = table.column(name).to_pylist()
        out[name] = np.fromiter((index.get(v, -1) for v in values), dtype=np.int64, count=len(values))
    return out


def read_parquet(paths: list[str], filesystem):
    """``ray.data.read_parquet`` over a known list of shard files, through Ray Data's V1 Parquet
    datasource.

    Ray 2.60's default (DataSource V2) plans a ``ListFiles`` task per read that took 3.5-4.4 s of
    wall time (0.1-0.4 s CPU) for a handful of local shards on a 2-core box, against 0.1 s for V1:
    with a read per split and per stage that added about 8 s to every training run. Our paths are
    explicit files (nothing to list or prune), so V1 loses nothing here.
    """
    import ray

    ctx = ray.data.DataContext.get_current()
    v2, ctx.use_datasource_v2 = ctx.use_datasource_v2, False  # read_parquet routes at call time
    try:
        return ray.data.read_parquet(paths, filesystem=filesystem)
    finally:
        ctx.use_datasource_v2 = v2


def read_images(uri: str, split: str | None = "train", labels: tuple[str, ...] = LABELS,
                batch_size: int = 1024, manifest: dict[str, Any] | None = None):
    """A Ray Dataset of decoded images (and label ids) from the shards of one split."""
    manifest = manifest or shards.load_manifest(uri)
    for name in labels:
        if name not in manifest["vocab"]:
            raise EmojirayError(f"unknown label {name!r}: the dataset has {', '.join(manifest['vocab'])}")
    paths = shards.shard_uris(uri, manifest, split)
    if not paths:
        raise EmojirayError(f"the {split} split of {uri} is empty")
    fs, _ = storage.filesystem(uri)
    local_paths = [storage.filesystem(p)[1] for p in paths]
    ds = read_parquet(local_paths, filesystem=fs).select_columns(["image", *labels])
    img = manifest["image"]
    return ds.map_batches(
        decode_batch,
        batch_format="pyarrow",
        batch_size=batch_size,
        zero_copy_batch=True,
        fn_kwargs={"height": img["height"], "width": img["width"], "vocab": manifest["vocab"],
                   "labels": tuple(labels)},
    )


def read_splits(uri: str, splits=("train", "val"), cache: bool = False, **kw) -> dict[str, Any]:
    """{split: Dataset} for a TorchTrainer's ``datasets=`` argument.

    ``cache`` materialises the decoded images in Ray's object store once, so epochs after the
    first stream from memory instead of re-reading Parquet (for datasets that fit in memory).
    """
    manifest = shards.load_manifest(uri)
    out = {s: read_images(uri, s, manifest=manifest, **kw) for s in splits}
    return {s: ds.materialize() for s, ds in out.items()} if cache else out


def measure_throughput(uri: str, split: str = "train", batch_size: int = 256, epochs: int = 1,
                       device: str = "cpu", cache: bool = False) -> dict[str, Any]:
    """Stream a split through Ray Data into torch batches on ``device``; images/s per epoch.

    Ray must be initialised. Without ``cache`` each epoch re-reads and decodes the shards; with
    it the decoded blocks are materialised once in Ray's object store (what training does for
    datasets that fit, see ``ray.cache_data``) and epochs stream from memory.
    """
    import time

    import torch

    from emojiray.images import to_model_input

    ds = read_images(uri, split, batch_size=max(batch_size, 256))
    if cache:
        ds = ds.materialize()
    rates, n = [], 0
    for _ in range(epochs):
        n, start = 0, time.perf_counter()
        for batch in ds.iter_torch_batches(batch_size=batch_size, device=device):
            x = to_model_input(batch["image"])
            n += x.shape[0]
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        rates.append(n / (time.perf_counter() - start))
    return {"split": split, "images": n, "batch_size": batch_size, "epochs": epochs, "cached": cache,
            "images_per_s": rates, "best_images_per_s": max(rates)}


def from_arrays(arrays: dict[str, np.ndarray], block_rows: int = 1024):
    """A materialised Ray Dataset of in-memory arrays with equal first dimensions (images, labels,
    codes: each row one example; multi-dimensional columns become tensor columns), in blocks of
    ``block_rows`` rows so Ray Train can split it between workers. Ray must be initialised.

    What the helper models (classifier, upscaler) train on: a few thousand small images prepared in
    the driver, put in the object store once (Arrow tables: no per-row Python objects)."""
    import ray
    from ray.data.extensions import ArrowTensorArray

    sizes = {len(v) for v in arrays.values()}
    if len(sizes) != 1:
        raise EmojirayError(f"columns of different lengths: {', '.join(f'{k} {len(v)}' for k, v in arrays.items())}")
    n = sizes.pop()

    def column(v: np.ndarray):
        v = np.ascontiguousarray(v)
        return ArrowTensorArray.from_numpy(v) if v.ndim > 1 else pa.array(v)

    tables = [pa.table({k: column(v[s:s + block_rows]) for k, v in arrays.items()})
              for s in range(0, max(n, 1), block_rows)]
    return ray.data.from_arrow(tables)
