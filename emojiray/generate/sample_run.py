"""`emojiray sample`: large sample sets from a Ray actor pool, resumable and seed-deterministic.

The run is cut into shards of ``shard_size`` samples. A shard is the unit of work, of seeding and
of resumption: shard i holds samples [i·S, (i+1)·S), draws every random number from its own
generator seeded with (seed, i), and is written atomically. So the result does not depend on how
many actors there are or which actor made which shard, a restarted run keeps the shards already
written and makes only the missing ones, and a retried shard (actor killed) is rewritten
identically.

Each actor (one per GPU, or CPU actors) loads the prior and the VQ-VAE decoder once, then
generates, decodes and writes whole shards. Output under ``out``::

    plan.json                  the run's settings; a restart with other settings is refused
    shards/samples-00000.parquet
        index (global sample number), image (H·W·3 RGB bytes), <level> (h·w int16 codes),
        condition (value or ""), condition_id (-1 = unconditional), seed (the shard's seed),
        temperature, top_k, top_p, guidance, maskgit_steps, choice_temperature
    png/00000000.png ...       one PNG per sample (optional), written before its shard
    manifest.json              written last: the plan, every shard, speed and device

Conditions (``--condition``) for a conditional prior: ``name=value`` (all samples), ``name=all``
(cycle through every value), ``name=data`` (draw from the training label frequencies: the
default, so that samples follow the data's mix), ``none`` (unconditional, classifier-free path).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from emojiray import storage
from emojiray.config import MaskGITConfig
from emojiray.errors import EmojirayError

FORMAT = "emojiray-samples"
PLAN_FORMAT = "emojiray-samples-plan"
MODES = ("fixed", "all", "data", "none")


# -- plan: pure functions, tested without Ray -------------------------------------------------------


def shard_seed(seed: int, shard: int) -> int:
    """The seed of shard ``shard`` of a run seeded with ``seed`` (independent streams, < 2**63)."""
    state = np.random.SeedSequence([int(seed), int(shard)]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def shard_ranges(n: int, shard_size: int) -> list[tuple[int, int]]:
    """[start, end) of each shard."""
    if n < 1:
        raise EmojirayError(f"the number of samples must be >= 1, got {n}")
    if shard_size < 1:
        raise EmojirayError(f"sample.shard_size must be >= 1, got {shard_size}")
    return [(s, min(n, s + shard_size)) for s in range(0, n, shard_size)]


def parse_condition(spec: str | None, prior_condition: str, values: list[str]) -> dict[str, Any]:
    """``--condition`` text -> {"name", "mode", "value"} for a prior conditioned on ``prior_condition``."""
    if prior_condition == "none":
        if spec not in (None, "", "none"):
            raise EmojirayError(f"--condition {spec}: this prior was trained without a condition")
        return {"name": "none", "mode": "none", "value": None}
    if spec is None or spec == "":
        return {"name": prior_condition, "mode": "data", "value": None}
    if spec == "none":
        return {"name": prior_condition, "mode": "none", "value": None}
    name, sep, value = spec.partition("=")
    name, value = name.strip(), value.strip()
    if not sep or not value:
        raise EmojirayError(f"--condition {spec!r}: expected name=value, e.g. {prior_condition}=happy")
    if name != prior_condition:
        raise EmojirayError(f"--condition {spec}: this prior is conditioned on {prior_condition}, not {name}")
    if value in ("all", "data"):
        return {"name": name, "mode": value, "value": None}
    if value not in values:
        raise EmojirayError(f"unknown {name} {value!r}: choose from {', '.join(values)} (or all, data)")
    return {"name": name, "mode": "fixed", "value": value}


def condition_ids(condition: dict[str, Any], values: list[str], counts: list[int], start: int, end: int,
                  seed: int) -> np.ndarray | None:
    """(end - start,) class ids of samples [start, end) or None (unconditional)."""
    mode, m = condition["mode"], end - start
    if mode == "none":
        return None
    if mode == "fixed":
        return np.full(m, values.index(condition["value"]), dtype=np.int64)
    if mode == "all":
        return np.arange(start, end, dtype=np.int64) % len(values)
    p = np.asarray(counts, dtype=np.float64) if len(counts) == len(values) and sum(counts) > 0 \
        else np.ones(len(values))
    return np.random.default_rng(seed).choice(len(values), size=m, p=p / p.sum()).astype(np.int64)


def shard_name(i: int) -> str:
    return f"shards/samples-{i:05d}.parquet"


def png_name(index: int) -> str:
    return f"png/{index:08d}.png"


def samples_table(start: int, images: np.ndarray, codes: dict[str, np.ndarray], cond: np.ndarray | None,
                  values: list[str], seed: int, params: dict[str, Any]) -> pa.Table:
    """One shard's rows (see the module docstring for the columns)."""
    n, h, w, c = images.shape
    flat = np.ascontiguousarray(images).reshape(-1)
    cols: dict[str, Any] = {
        "index": pa.array(np.arange(start, start + n, dtype=np.int64)),
        "image": pa.FixedSizeBinaryArray.from_buffers(pa.binary(h * w * c), n, [None, pa.py_buffer(flat)]),
    }
    for lv, grid in codes.items():
        g = np.ascontiguousarray(grid.astype(np.int16)).reshape(n, -1)
        cols[lv] = pa.FixedSizeListArray.from_arrays(pa.array(g.reshape(-1)), g.shape[1])
    ids = np.full(n, -1, dtype=np.int32) if cond is None else cond.astype(np.int32)
    cols["condition"] = pa.array(["" if i < 0 else values[i] for i in ids], pa.string())
    cols["condition_id"] = pa.array(ids)
    cols["seed"] = pa.array(np.full(n, seed, dtype=np.int64))
    cols["temperature"] = pa.array(np.full(n, params["temperature"], dtype=np.float32))
    cols["top_k"] = pa.array(np.full(n, params["top_k"], dtype=np.int32))
    cols["top_p"] = pa.array(np.full(n, params["top_p"], dtype=np.float32))
    cols["guidance"] = pa.array(np.full(n, params["guidance"], dtype=np.float32))
    cols["maskgit_steps"] = pa.array(np.full(n, params["maskgit_steps"], dtype=np.int16))
    choice = params.get("choice_temperature", MaskGITConfig.choice_temperature)  # MaskGIT only; plans before it had none
    cols["choice_temperature"] = pa.array(np.full(n, choice, dtype=np.float32))
    return pa.table(cols)


def table_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", compression_level=3)
    return sink.getvalue().to_pybytes()


# -- reading a finished run -------------------------------------------------------------------------


def load_samples_manifest(uri: str) -> dict[str, Any]:
    path = storage.join(uri, "manifest.json")
    if not storage.exists(path):
        if storage.exists(storage.join(uri, "plan.json")):
            raise EmojirayError(f"the sample run at {uri} is incomplete: run the same `emojiray sample` "
                                f"command again to finish it")
        raise EmojirayError(f"no samples at {uri}: run `emojiray sample --out {uri}` first")
    m = storage.read_json(path)
    if m.get("format") != FORMAT:
        raise EmojirayError(f"{path} is not an emojiray sample manifest")
    return m


def read_shard(uri: str, rel: str) -> pa.Table:
    fs, path = storage.filesystem(storage.join(uri, rel))
    try:
        return pq.read_table(path, filesystem=fs)
    except (OSError, pa.ArrowInvalid) as exc:
        raise EmojirayError(f"cannot read sample shard {storage.join(uri, rel)}: {exc}") from None


def shard_arrays(table: pa.Table, manifest: dict[str, Any]) -> dict[str, Any]:
    """{"index", "images" (N, H, W, 3) uint8, "codes" {level: (N, h, w)}, "condition" list[str]}."""
    from emojiray.data.shards import pixels_from_column

    size = manifest["image_size"]
    codes = {}
    for lv in manifest["levels"]:
        h, w = manifest["grids"][lv]
        codes[lv] = table.column(lv).combine_chunks().flatten().to_numpy().reshape(-1, h, w)
    return {"index": table.column("index").to_numpy(), "images": pixels_from_column(table.column("image"), size, size),
            "codes": codes, "condition": table.column("condition").to_pylist()}


# -- the actor --------------------------------------------------------------------------------------


class SampleWorker:
    """One prior + decoder per actor; ``run(plan, shard)`` makes and writes one shard."""

    def __init__(self, prior: str, vqvae: str, threads: int = 0):
        import torch

        from emojiray.generate.sampler import Sampler

        if threads:
            torch.set_num_threads(threads)
        self.sampler = Sampler(prior, vqvae)

    def device(self) -> str:
        import torch

        dev = self.sampler.device
        return torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"

    def run(self, plan: dict[str, Any], shard: int) -> dict[str, Any]:
        import torch

        from emojiray.images import to_png_bytes

        t0 = time.perf_counter()
        start, end = plan["shards"][shard]
        seed = shard_seed(plan["seed"], shard)
        values = plan["condition_values"]
        cond = condition_ids(plan["condition"], values, plan["class_counts"], start, end, seed)
        cond_t = None if cond is None else torch.from_numpy(cond)
        images, codes = self.sampler.generate(cond_t, end - start, self.sampler.generator(seed), plan["params"],
                                              batch_size=plan["batch_size"])
        if plan["png"]:
            for k, img in enumerate(images):
                storage.write_bytes(storage.join(plan["out"], png_name(start + k)), to_png_bytes(img))
        data = table_bytes(samples_table(start, images, codes, cond, values, seed, plan["params"]))
        storage.write_bytes(storage.join(plan["out"], shard_name(shard)), data)  # last: marks the shard done
        return {"shard": shard, "rows": end - start, "bytes": len(data), "seconds": time.perf_counter() - t0}


# -- the driver -------------------------------------------------------------------------------------


def _shard_rows(uri: str) -> int:
    try:
        fs, path = storage.filesystem(uri)
        with fs.open_input_file(path) as f:
            return pq.ParquetFile(f).metadata.num_rows
    except (OSError, pa.ArrowInvalid):
        return -1


def make_plan(sampler, out: str, n: int, cfg, condition: str | None, params: dict[str, Any]) -> dict[str, Any]:
    """Everything that determines a run's output (what a restart must agree with)."""
    values = sampler.condition_values
    return {
        "format": PLAN_FORMAT, "out": out, "prior": storage.absolute(sampler.prior_uri),
        "vqvae": storage.absolute(sampler.vqvae_uri),
        "kind": sampler.kind, "n": int(n), "seed": int(cfg.seed), "shard_size": int(cfg.shard_size),
        "batch_size": int(cfg.batch_size), "png": bool(cfg.png),
        "shards": shard_ranges(n, cfg.shard_size),
        "condition": parse_condition(condition, sampler.condition_name, values),
        "condition_values": values, "class_counts": sampler.class_counts,
        "params": sampler.params(**params),
        "image_size": sampler.image_size, "levels": list(sampler.layout.levels),
        "grids": {lv: list(g) for lv, g in zip(sampler.layout.levels, sampler.layout.grids)},
    }


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = (set(a) | set(b)) - {"out"}
    return all(_jsonish(a.get(k)) == _jsonish(b.get(k)) for k in keys)


def _jsonish(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value))


def _clear(out: str) -> None:
    for rel in ("manifest.json", "plan.json"):
        if storage.exists(storage.join(out, rel)):
            storage.delete(storage.join(out, rel))
    for sub in ("shards", "png"):
        for uri in storage.list_files(storage.join(out, sub), recursive=False):
            storage.delete(uri)


def sample_run(prior: str, out: str, n: int, vqvae: str | None = None, cfg=None, ray_cfg=None,
               condition: str | None = None, params: dict[str, Any] | None = None, force: bool = False,
               actors: int = 0, log=print) -> dict[str, Any]:
    """Generate ``n`` samples into ``out`` with an actor pool; returns the manifest."""
    import ray
    from ray.util import ActorPool

    from emojiray.config import RayConfig, SampleConfig
    from emojiray.generate.sampler import Sampler
    from emojiray.progress import Progress
    from emojiray.raykit import actor_pool_plan, init_ray
    from emojiray.raykit import root_message

    cfg = cfg or SampleConfig()
    ray_cfg = ray_cfg or RayConfig()
    if cfg.batch_size < 1:
        raise EmojirayError(f"sample.batch_size must be >= 1, got {cfg.batch_size}")
    driver = Sampler(prior, vqvae, device="cpu")  # validates the pair, the condition and the parameters
    plan = make_plan(driver, storage.absolute(out), n, cfg, condition, params or {})
    del driver

    plan_uri, manifest_uri = storage.join(out, "plan.json"), storage.join(out, "manifest.json")
    if force:
        _clear(out)
    elif storage.exists(plan_uri):
        if not _same(storage.read_json(plan_uri), plan):
            raise EmojirayError(f"{out} holds samples made with other settings: use --force to replace "
                                f"them or another --out")
        if storage.exists(manifest_uri):
            done = storage.read_json(manifest_uri)
            log(f"sample: {out} is complete ({done['count']} samples); use --force to redo it")
            return done
    storage.write_json(plan_uri, plan)

    todo, kept = [], 0
    for i, (s, e) in enumerate(plan["shards"]):
        if _shard_rows(storage.join(out, shard_name(i))) == e - s:
            kept += e - s
        else:
            todo.append(i)
    if kept:
        log(f"sample: resuming: {kept} samples in {len(plan['shards']) - len(todo)} shard(s) are kept")

    init_ray(ray_cfg)
    pool_plan = actor_pool_plan(ray_cfg, actors or cfg.actors, max_actors=len(todo))
    count, threads, options = pool_plan["count"], pool_plan["threads"], pool_plan["options"]
    worker_cls = ray.remote(SampleWorker).options(max_restarts=2, max_task_retries=2, **options)
    t0 = time.perf_counter()
    device, rate = "cpu", None
    if todo:
        pool_actors = [worker_cls.remote(plan["prior"], plan["vqvae"], threads) for _ in range(count)]
        try:
            device = ray.get(pool_actors[0].device.remote())
            log(f"sample: {plan['kind']} prior, {n} samples in {len(plan['shards'])} shard(s), "
                f"{count} actor(s) on {device} -> {out}")
            progress = Progress(n, "sample", done=kept)
            pool = ActorPool(pool_actors)
            for r in pool.map_unordered(lambda a, i: a.run.remote(plan, i), todo):
                progress.update(r["rows"])
            progress.close()
            rate = progress.rate
        except ray.exceptions.RayError as exc:
            raise EmojirayError(f"sampling failed: {root_message(exc)} (written shards are kept; "
                                f"run the command again to resume)") from None
        finally:
            for a in pool_actors:
                ray.kill(a)
    seconds = time.perf_counter() - t0
    made = n - kept
    # every shard was either checked above (kept) or written whole by an actor that returned
    shards = [{"path": shard_name(i), "rows": e - s, "start": s} for i, (s, e) in enumerate(plan["shards"])]
    manifest = {**plan, "format": FORMAT, "format_version": 1, "files": shards, "count": n,
                "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "device": device, "actors": count if todo else 0, "seconds": round(seconds, 3),
                "made": made, "samples_per_s": round(rate, 2) if rate else None}
    storage.write_json(manifest_uri, manifest)
    log(f"sample: {n} samples -> {out}" + (f" at {rate:.1f} samples/s (decoded and written; {seconds:.1f} s "
                                           f"with actor start-up)" if rate else ""))
    return manifest
