"""`emojiray extract-codes`: every split encoded into code shards by a Ray Data actor pool.

Each actor loads the VQ-VAE once (on a GPU when the cluster has them) and encodes batches of
images into code grids. The splits go through one pipeline and one actor pool (a pool per split
started its actors three times: ~20 s of a 2-core machine for a small dataset), and the driver
writes the code grids, ~100 bytes an image, to their split's files. Output under ``out``::

    manifest.json              written last: levels, grids, codebook sizes, label vocabularies,
                               the VQ-VAE it came from, rows and files per split
    train/*.parquet, val/*.parquet, test/*.parquet
        <level>: fixed-size list of int16 (h*w codes in raster order), key, and label ids
        (category, vendor, emotion) indexing the manifest's vocabularies.

Readers take the file list from the manifest, so an interrupted extraction is never read.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pyarrow as pa

from emojiray import storage
from emojiray.config import LABELS
from emojiray.data import shards
from emojiray.errors import EmojirayError

FORMAT = "emojiray-codes"
MIRROR = "~mirror"  # key suffix of a mirrored image's codes


ROWS_PER_FILE = 65536  # code rows per shard file (~13 MB)


class Encoder:
    """Ray Data callable class: (images, labels, split) batch -> code grids (one VQ-VAE per actor).

    With ``mirror`` (a split's name), every image of that split is encoded a second time flipped
    left to right: the batch's rows, then their mirror images' rows (same labels, key +
    ``~mirror``). Mirror images of emoji are plausible emoji, and a prior over 7.5 k images learns
    more from twice the sequences.
    """

    def __init__(self, checkpoint: str, levels: tuple[str, ...], mirror: str = ""):
        import torch

        from emojiray.models.checkpoint import load_vqvae

        self.torch = torch
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model, _, _ = load_vqvae(checkpoint, self.device)
        self.levels = levels
        self.mirror = mirror

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        from emojiray.images import to_model_input

        flip = np.asarray(batch["split"] == self.mirror) if self.mirror else np.zeros(len(batch["key"]), bool)
        with self.torch.no_grad():
            pixels = np.require(batch["image"], requirements=["W"])  # Ray Data's batches can be read-only
            x = to_model_input(self.torch.from_numpy(pixels), self.device, channels_last=False)
            if flip.any():
                x = self.torch.cat([x, x[self.torch.from_numpy(flip).to(x.device)].flip(3)])
            codes = self.model.encode(x)
        cols: dict[str, Any] = {}
        for lv in self.levels:
            flat = codes[lv].flatten(1).to(self.torch.int16).cpu().numpy()  # (B, h*w)
            cols[lv] = pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), flat.shape[1])
        for name in ("key", *LABELS, "split"):
            values = batch[name]
            if flip.any():
                extra = values[flip]
                if name == "key":
                    extra = np.asarray([f"{k}{MIRROR}" for k in extra], dtype=object)
                values = np.concatenate([values, extra])
            cols[name] = pa.array(values)
        return pa.table(cols)


def extract_codes(vqvae: str, data_uri: str, out: str, cfg=None, log=print, mirror: bool = False,
                  force: bool = False) -> dict[str, Any]:
    """Encode every split of ``data_uri`` into code shards at ``out``; with ``mirror`` the train split
    also holds the codes of its images flipped left to right (``prior.mirror``), the others never.
    Codes of another VQ-VAE or dataset already at ``out`` are replaced only with ``force``."""
    import ray

    from emojiray.config import RayConfig
    from emojiray.raykit import init_ray
    from emojiray.models.checkpoint import load_vqvae, weights_hash

    cfg = cfg or RayConfig()
    model, vcfg, meta = load_vqvae(vqvae)  # validates the checkpoint before any actor starts
    manifest = shards.load_manifest(data_uri)
    size = manifest["image"]["height"]
    if size != vcfg.data.size:
        raise EmojirayError(f"the VQ-VAE was trained on {vcfg.data.size} px images but {data_uri} holds {size} px")
    grids = model.grid_sizes(size)
    sizes = {lv: q.K for lv, q in model.quantizers.items()}
    levels = tuple(model.levels)
    if not force:
        _refuse_other_codes(out, vqvae, weights_hash(meta), manifest["fingerprint"])

    init_ray(cfg)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    actors = max(1, gpus) if gpus else max(1, min(2, int(ray.cluster_resources().get("CPU", 1)) - max(cfg.data_cpus, 1)))
    run = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    parts = [_with_keys(data_uri, split, manifest) for split in shards.SPLITS
             if manifest["counts"]["split"].get(split, 0)]
    coded = parts[0].union(*parts[1:]).map_batches(
        Encoder, fn_constructor_kwargs={"checkpoint": vqvae, "levels": levels, "mirror": "train" if mirror else ""},
        batch_size=256, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=actors),
        num_gpus=1 if gpus else 0)
    splits = _write_codes(coded, out, f"codes-{run}")
    for split in shards.SPLITS:
        if splits[split]["rows"]:
            what = "code grids (images and their mirror images)" if mirror and split == "train" else "images"
            log(f"extract-codes: {split}: {splits[split]['rows']} {what} -> {storage.join(out, split)}")

    record = {
        "format": FORMAT, "format_version": 1,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "vqvae": storage.absolute(vqvae), "vqvae_sha256": weights_hash(meta), "vqvae_step": meta.get("step"),
        "data": storage.absolute(data_uri), "data_fingerprint": manifest["fingerprint"],
        "image_size": size, "levels": list(levels), "mirror": bool(mirror),
        "grids": {lv: list(grids[lv]) for lv in levels}, "codebook_size": sizes,
        "vocab": {k: manifest["vocab"][k] for k in LABELS},
        "splits": splits,
    }
    storage.write_json(storage.join(out, "manifest.json"), record)
    _remove_stale(out, record)
    return record


def _with_keys(data_uri: str, split: str, manifest: dict[str, Any]):
    """The split as a Ray Dataset of images, keys, label ids and the split's name (decoded in
    map_batches)."""
    from emojiray.data.stream import decode_batch, read_parquet

    paths = [storage.filesystem(p)[1] for p in shards.shard_uris(data_uri, manifest, split)]
    fs, _ = storage.filesystem(data_uri)
    img = manifest["image"]

    def decode(table: pa.Table) -> dict[str, np.ndarray]:
        out = decode_batch(table, img["height"], img["width"], manifest["vocab"], LABELS)
        out["key"] = np.asarray(table.column("key").to_pylist(), dtype=object)
        out["split"] = np.full(len(out["key"]), split, dtype=object)
        return out

    return read_parquet(paths, filesystem=fs).select_columns(["image", "key", *LABELS]).map_batches(
        decode, batch_format="pyarrow", batch_size=1024, zero_copy_batch=True)


def _write_codes(coded, out: str, prefix: str) -> dict[str, dict[str, Any]]:
    """Stream the encoded batches into ``<out>/<split>/<prefix>-NNNNN.parquet`` files of at most
    :data:`ROWS_PER_FILE` rows, each written whole and atomically; {split: {rows, files}}."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    splits: dict[str, dict[str, Any]] = {s: {"rows": 0, "files": []} for s in shards.SPLITS}
    pending: dict[str, list[pa.Table]] = {s: [] for s in shards.SPLITS}
    pending_rows = dict.fromkeys(shards.SPLITS, 0)

    def flush(split: str) -> None:
        if not pending[split]:
            return
        rel = f"{split}/{prefix}-{len(splits[split]['files']):05d}.parquet"
        buf = pa.BufferOutputStream()
        pq.write_table(pa.concat_tables(pending[split]), buf)
        storage.write_bytes(storage.join(out, rel), buf.getvalue().to_pybytes())
        splits[split]["files"].append(rel)
        pending[split], pending_rows[split] = [], 0

    for table in coded.iter_batches(batch_format="pyarrow", batch_size=None):
        for split in set(table.column("split").to_pylist()):
            part = table.filter(pc.equal(table.column("split"), split)).drop_columns(["split"])
            pending[split].append(part)
            pending_rows[split] += part.num_rows
            splits[split]["rows"] += part.num_rows
            if pending_rows[split] >= ROWS_PER_FILE:
                flush(split)
    for split in shards.SPLITS:
        flush(split)
    return splits


def _refuse_other_codes(out: str, vqvae: str, vqvae_hash: str | None, data_fingerprint: str) -> None:
    """One line if ``out`` holds something other than codes of this VQ-VAE and dataset."""
    path = storage.join(out, "manifest.json")
    if not storage.exists(path):
        return
    old = storage.read_json(path)
    if not isinstance(old, dict) or old.get("format") != FORMAT:
        raise EmojirayError(f"{out} holds a manifest.json that is not an emojiray code set: choose another --out "
                            f"or pass --force to replace it")
    same_vqvae = (old["vqvae_sha256"] == vqvae_hash) if old.get("vqvae_sha256") and vqvae_hash \
        else old.get("vqvae") == storage.absolute(vqvae)
    if not same_vqvae or old.get("data_fingerprint") != data_fingerprint:
        raise EmojirayError(f"{out} holds the codes of another {'VQ-VAE' if not same_vqvae else 'dataset'} "
                            f"(from {old.get('vqvae')}): pass --force to replace them")


def _remove_stale(out: str, record: dict[str, Any]) -> None:
    keep = {f for s in record["splits"].values() for f in s["files"]}
    for split in shards.SPLITS:
        for uri in storage.list_files(storage.join(out, split), recursive=False):
            rel = f"{split}/{storage.basename(uri)}"
            if rel not in keep and storage.basename(uri).startswith("codes-"):
                storage.delete(uri)


def load_codes_manifest(uri: str) -> dict[str, Any]:
    path = storage.join(uri, "manifest.json")
    if not storage.exists(path):
        raise EmojirayError(f"no code shards at {uri}: run `emojiray extract-codes --out {uri}` first")
    m = storage.read_json(path)
    if m.get("format") != FORMAT:
        raise EmojirayError(f"{path} is not an emojiray code manifest")
    return m


def read_code_tables(uri: str, manifest: dict[str, Any], split: str):
    """Arrow tables of one split's code shards (no Ray), in manifest order."""
    import pyarrow.parquet as pq

    for rel in manifest["splits"][split]["files"]:
        fs, path = storage.filesystem(storage.join(uri, rel))
        yield pq.read_table(path, filesystem=fs)


def codes_from_table(table: pa.Table, manifest: dict[str, Any]) -> dict[str, np.ndarray]:
    """{level: (N, h, w) int64} from a code shard table."""
    out = {}
    for lv in manifest["levels"]:
        h, w = manifest["grids"][lv]
        col = table.column(lv).combine_chunks()
        out[lv] = col.flatten().to_numpy().astype(np.int64).reshape(-1, h, w)
    return out
