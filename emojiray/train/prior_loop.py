"""`emojiray train-prior`: a prior over VQ codes.

:class:`PriorFamily` is the Ray-free part (build, ``train_step``, ``evaluate``: validation NLL in
bits per code and next/masked-code accuracy); :func:`train_prior` reads the code shards of
`emojiray extract-codes` through Ray Data and trains the family with the one Ray driver
(:func:`emojiray.train.driver.fit`). Ray Train keeps the best checkpoint on validation (priors
overfit small sets) plus the latest (for --resume and failures); the best is exported to
``<out>/prior``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from emojiray import storage
from emojiray.config import CONDITIONS, LABELS, Config
from emojiray.data.codes import load_codes_manifest, read_code_tables
from emojiray.errors import EmojirayError
from emojiray.models.codes import CodeLayout
from emojiray.models.prior import build_prior, kind_settings, nats_to_bits, prior_loss
from emojiray.train import harness
from emojiray.train.loop_utils import autocast

RUN_NAME = "prior"
SUMMARY = "train_prior.json"


def sheet_name(kind: str) -> str:
    """The sample sheet drawn after a prior of ``kind`` trains (beside its summary)."""
    return f"samples_{kind}.png"


def layout_of(manifest: dict[str, Any]) -> CodeLayout:
    return CodeLayout.from_dicts(manifest["levels"], manifest["grids"], manifest["codebook_size"])


def n_classes_of(manifest: dict[str, Any], condition: str) -> int:
    if condition not in CONDITIONS:
        raise EmojirayError(f"unknown prior.condition {condition!r}: choose from {', '.join(CONDITIONS)}")
    return 0 if condition == "none" else len(manifest["vocab"][condition])


def decode_codes_batch(table: pa.Table, levels: list[str]) -> dict[str, np.ndarray]:
    """Code shard rows -> {level: (N, h*w) int64, label: (N,) int64}."""
    out = {}
    for lv in levels:
        col = table.column(lv).combine_chunks()
        out[lv] = col.flatten().to_numpy().astype(np.int64).reshape(len(col), -1)
    for name in LABELS:
        out[name] = table.column(name).to_numpy().astype(np.int64)
    return out


def read_code_splits(uri: str, manifest: dict[str, Any], splits=("train", "val"), cache: bool = True):
    from emojiray.data.stream import read_parquet

    fs, _ = storage.filesystem(uri)
    out = {}
    for split in splits:
        files = [storage.filesystem(storage.join(uri, f))[1] for f in manifest["splits"][split]["files"]]
        if not files:
            raise EmojirayError(f"the {split} split of the code shards at {uri} is empty")
        ds = read_parquet(files, filesystem=fs).map_batches(
            decode_codes_batch, batch_format="pyarrow", fn_kwargs={"levels": manifest["levels"]}, batch_size=1024)
        out[split] = ds.materialize() if cache else ds
    return out


def _codes(batch: dict[str, torch.Tensor], layout: CodeLayout, device) -> dict[str, torch.Tensor]:
    return {lv: batch[lv].to(device).view(-1, h, w) for lv, (h, w) in zip(layout.levels, layout.grids)}


# -- the family (no Ray) ------------------------------------------------------------------------------


class PriorFamily:
    """A prior over codes as a :mod:`~emojiray.train.harness` family: next-code (or masked-code)
    cross-entropy with condition dropout; the best checkpoint by validation bits per code.

    ``spec``: {"levels", "grids", "sizes", "n_classes", "examples" (train rows), "vocab", "vqvae",
    "vqvae_sha256" (the VQ-VAE's weights hash), "class_counts"}. Batches hold each level as (B, h*w)
    int64 and the label columns.
    """

    name = RUN_NAME
    score = ("val_bits_per_code", "min")  # priors overfit small sets: keep the best on validation
    batch_key = "prior.batch_size"  # the config key of the per-worker batch size

    def __init__(self, cfg: Config, spec: dict[str, Any], device: torch.device | str = "cpu", world: int = 1,
                 rank: int = 0):
        pc, tc = cfg.prior, cfg.train
        self.cfg, self.spec, self.device = cfg, spec, torch.device(device)
        self.layout = CodeLayout.from_dicts(spec["levels"], spec["grids"], spec["sizes"])
        self.n_classes = spec["n_classes"]
        self.model = build_prior(pc, self.layout, self.n_classes).to(self.device)
        self.net = self.model
        self.opt = harness.optimiser(self.model, pc.optim)
        self.steps_per_epoch = max(1, spec["examples"] // (pc.batch_size * world))
        self.schedule = harness.schedule(
            pc.optim, epochs=pc.epochs, batch_size=pc.batch_size, steps_per_epoch=self.steps_per_epoch,
            max_seconds=pc.max_seconds, report_every_s=tc.report_every_s, log_every=tc.log_every)
        self.generator = torch.Generator(device=self.device).manual_seed(tc.seed + 1000 * rank)
        self.smoothing = getattr(kind_settings(pc), "label_smoothing", 0.0)

    def examples(self, batch: dict[str, torch.Tensor]) -> int:
        return batch[self.layout.levels[0]].shape[0]

    def _inputs(self, batch):
        codes = _codes(batch, self.layout, self.device)
        cond = batch[self.cfg.prior.condition].to(self.device) if self.cfg.prior.condition != "none" else None
        return codes, cond

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        codes, cond = self._inputs(batch)
        if cond is not None:  # condition dropout: learn the unconditional model too (guidance)
            drop = torch.rand(cond.shape, generator=self.generator, device=self.device) < self.cfg.prior.cond_dropout
            cond = cond.masked_fill(drop, self.n_classes)
        with autocast(self.device, self.cfg.train.bf16, cpu=True):  # also on CPUs with native bf16
            loss, _, _ = prior_loss(self.net, self.cfg.prior.kind, self.layout, codes, cond, self.generator,
                                    label_smoothing=self.smoothing)
        return {"loss": loss, "bits_per_code": loss.detach() / math.log(2)}  # smoothed: above the plain NLL

    def evaluate(self, batches) -> tuple[dict[str, float], None]:
        gen = torch.Generator(device=self.device).manual_seed(0)  # fixed masks for MaskGIT: comparable reports
        nats, correct, count = 0.0, 0, 0
        for batch in batches:
            codes, cond = self._inputs(batch)
            with autocast(self.device, self.cfg.train.bf16):
                loss, ok, n = prior_loss(self.model, self.cfg.prior.kind, self.layout, codes, cond, gen)
            nats += loss.item() * n
            correct += ok
            count += n
        return {"val_bits_per_code": nats_to_bits(nats / max(count, 1)), "val_accuracy": correct / max(count, 1)}, None

    def meta(self) -> dict[str, Any]:
        s = self.spec
        return {"layout": {"levels": s["levels"], "grids": s["grids"], "sizes": s["sizes"]},
                "n_classes": s["n_classes"], "vocab": s["vocab"], "vqvae": s["vqvae"],
                "vqvae_sha256": s.get("vqvae_sha256"),
                "class_counts": s.get("class_counts", [])}


# -- driver ---------------------------------------------------------------------------------------


def _class_counts(codes_uri: str, manifest: dict[str, Any], condition: str, n_classes: int) -> list[int]:
    """How often each condition class occurs in the training codes (the sampler's default mix)."""
    if condition == "none":
        return []
    counts = np.zeros(n_classes, dtype=np.int64)
    for table in read_code_tables(codes_uri, manifest, "train"):
        ids = table.column(condition).to_numpy()
        counts += np.bincount(ids[(ids >= 0) & (ids < n_classes)], minlength=n_classes)
    return counts.tolist()


def train_prior(cfg: Config, codes_uri: str, out: str, resume: bool = False, force: bool = False,
                log=print) -> dict[str, Any]:
    from emojiray.train.driver import fit

    manifest = load_codes_manifest(codes_uri)
    layout = layout_of(manifest)
    n_classes = n_classes_of(manifest, cfg.prior.condition)
    build_prior(cfg.prior, layout, n_classes)  # config errors before any worker starts
    train_rows = manifest["splits"]["train"]["rows"]
    spec = {"levels": list(layout.levels), "grids": {lv: list(g) for lv, g in zip(layout.levels, layout.grids)},
            "sizes": dict(zip(layout.levels, layout.sizes)), "n_classes": n_classes, "examples": train_rows,
            "class_counts": _class_counts(codes_uri, manifest, cfg.prior.condition, n_classes),
            "vocab": manifest["vocab"], "vqvae": manifest["vqvae"], "vqvae_sha256": manifest.get("vqvae_sha256")}
    run = fit(PriorFamily, cfg, spec, lambda: read_code_splits(codes_uri, manifest, cache=cfg.ray.cache_data), out,
              resume=resume, force=force, log=log, outputs=(SUMMARY, sheet_name(cfg.prior.kind)),
              describe=f"{cfg.prior.kind} (condition: {cfg.prior.condition}) on {train_rows} code grids, "
                       f"{cfg.prior.epochs} epoch(s)")
    meta = run["meta"]
    record = {"prior": run["model"], "kind": cfg.prior.kind, "condition": cfg.prior.condition,
              "best_epoch": meta["epoch"], "metrics": meta.get("metrics", {}),
              "train_seconds": run["summary"].get("train_seconds"), "wall_seconds": run["wall_seconds"],
              "history": run["summary"].get("history", [])}
    storage.write_json(storage.join(out, SUMMARY), record)
    m = record["metrics"]
    log(f"train-prior: best epoch {meta['epoch']}: val {m.get('val_bits_per_code', math.nan):.3f} bits/code, "
        f"accuracy {m.get('val_accuracy', math.nan):.3f} -> {run['model']}")
    return record
