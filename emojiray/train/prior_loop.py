"""`emojiray train-prior`: a prior over VQ codes trained by a Ray Train TorchTrainer.

Reads the code shards of `emojiray extract-codes` through Ray Data; one worker per GPU (or per
CPU left after Ray Data). Every epoch rank 0 measures the validation split (NLL in bits per
code, next-code accuracy) and reports a checkpoint; Ray Train keeps the best on validation
(priors overfit small sets) plus the latest (for --resume and failures). After training the
best model is exported to ``<out>/prior`` and, given the VQ-VAE, a sheet of decoded samples is
written to ``<out>/samples_<kind>.png``.
"""

from __future__ import annotations

import math
import tempfile
import time
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from emojiray import storage
from emojiray.config import Config, config_from_dict
from emojiray.data.codes import LABELS, load_codes_manifest, read_code_tables
from emojiray.errors import EmojirayError
from emojiray.models.codes import CodeLayout
from emojiray.models.prior import CONDITIONS, build_prior, nats_to_bits, prior_loss
from emojiray.models import checkpoint as ckpt
from emojiray.train.loop_utils import (TensorBoard, any_worker, autocast, claim_run_dir, optimizer_step,
                                       restore_from_ray_checkpoint, warmup_cosine)
from emojiray.raykit import root_message

RUN_NAME = "prior"


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


# -- worker ---------------------------------------------------------------------------------------


def train_loop(config: dict[str, Any]) -> dict[str, Any]:
    import ray.train
    import ray.train.torch

    cfg = config_from_dict(config["cfg"])
    pc, tc = cfg.prior, cfg.train
    layout = CodeLayout.from_dicts(config["levels"], config["grids"], config["sizes"])
    n_classes = config["n_classes"]
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    torch.manual_seed(tc.seed)

    model = build_prior(pc, layout, n_classes).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=pc.lr, weight_decay=pc.weight_decay, betas=(0.9, 0.95))
    steps_per_epoch = max(1, config["train_rows"] // (pc.batch_size * world))
    total = steps_per_epoch * pc.epochs
    state = restore_from_ray_checkpoint(model, opt)
    step, epoch0, history = int(state.get("step", 0)), int(state.get("epoch", 0)), list(state.get("history", []))
    elapsed = float(state.get("elapsed", 0.0))  # training seconds so far (prior.max_seconds), kept across resumes
    net = ray.train.torch.prepare_model(model)
    tb = TensorBoard(config["tb_uri"] if rank == 0 else None)
    train_shard = ray.train.get_dataset_shard("train")
    val_shard = ray.train.get_dataset_shard("val") if rank == 0 else None
    cond_name = pc.condition
    gen = torch.Generator(device=device).manual_seed(tc.seed + 1000 * rank)

    status = "ok"
    for epoch in range(epoch0, pc.epochs):
        net.train()
        t0, loss_sum, n_steps, seen = time.perf_counter(), 0.0, 0, 0
        for batch in train_shard.iter_torch_batches(batch_size=pc.batch_size, drop_last=True,
                                                    local_shuffle_buffer_size=4 * pc.batch_size):
            for g in opt.param_groups:
                g["lr"] = pc.lr * warmup_cosine(step, pc.warmup_steps, total, 0.1)
            codes = _codes(batch, layout, device)
            cond = None
            if cond_name != "none":
                cond = batch[cond_name].to(device)
                drop = torch.rand(cond.shape, generator=gen, device=device) < pc.cond_dropout
                cond = cond.masked_fill(drop, n_classes)  # condition dropout: learn the unconditional model too
            with autocast(device, tc.bf16):
                loss, _, _ = prior_loss(net, pc.kind, layout, codes, cond, gen)
            if any_worker(not torch.isfinite(loss).item(), device):
                status = f"loss became {loss.item()} at step {step} (epoch {epoch + 1})"
                break
            optimizer_step(net, opt, loss, tc.grad_clip)
            step, n_steps, seen = step + 1, n_steps + 1, seen + codes[layout.levels[0]].shape[0]
            loss_sum += loss.item()
            if rank == 0 and step % tc.log_every == 0:
                tb.scalars(step, **{"train/bits_per_code": nats_to_bits(loss.item()),
                                    "train/lr": opt.param_groups[0]["lr"]})
            if pc.max_seconds and any_worker(elapsed + time.perf_counter() - t0 >= pc.max_seconds, device):
                break  # every worker stops at the same step (DDP collectives must pair up)
        elapsed += time.perf_counter() - t0
        if status != "ok":
            break
        if n_steps == 0:
            raise EmojirayError(f"no full training batch: {config['train_rows']} images over {world} worker(s) "
                                f"is fewer than prior.batch_size={pc.batch_size}")
        metrics = {"epoch": epoch + 1, "step": step, "train_bits_per_code": nats_to_bits(loss_sum / n_steps),
                   "images_per_s": seen * world / (time.perf_counter() - t0)}
        if rank == 0:
            metrics.update(_validate(model, pc, layout, val_shard, device, tc, n_classes))
            tb.scalars(step, **{f"val/{k}": v for k, v in metrics.items()})
            tb.flush()
        history.append({k: float(v) for k, v in metrics.items()})
        _report(metrics, rank, model, cfg, config, step, epoch + 1, history, opt, elapsed)
        if pc.max_seconds and elapsed >= pc.max_seconds:
            break
    tb.close()
    return {"status": status, "step": step, "history": history}


@torch.no_grad()
def _validate(model, pc, layout, val_iter, device, tc, n_classes) -> dict[str, float]:
    model.eval()
    gen = torch.Generator(device=device).manual_seed(0)  # fixed masks for MaskGIT: comparable epochs
    nats, correct, count = 0.0, 0, 0
    for batch in val_iter.iter_torch_batches(batch_size=256):
        codes = _codes(batch, layout, device)
        cond = batch[pc.condition].to(device) if pc.condition != "none" else None
        with autocast(device, tc.bf16):
            loss, ok, n = prior_loss(model, pc.kind, layout, codes, cond, gen)
        nats += loss.item() * n
        correct += ok
        count += n
    model.train()
    return {"val_bits_per_code": nats_to_bits(nats / max(count, 1)), "val_accuracy": correct / max(count, 1)}


def _report(metrics, rank, model, cfg: Config, config, step, epoch, history, opt, elapsed: float) -> None:
    import ray.train

    if rank != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as d:
        ckpt.save(d, model, "prior", cfg.to_dict(), trainer_state={"optimizer": opt.state_dict(), "step": step,
                                                                  "epoch": epoch, "history": history,
                                                                  "elapsed": elapsed},
                  step=step, epoch=epoch, metrics=metrics,
                  layout={"levels": config["levels"], "grids": config["grids"], "sizes": config["sizes"]},
                  n_classes=config["n_classes"], vocab=config["vocab"], vqvae=config["vqvae"],
                  class_counts=config.get("class_counts", []))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))


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
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig
    from ray.train.torch import TorchTrainer

    from emojiray.raykit import init_ray, scaling_config

    manifest = load_codes_manifest(codes_uri)
    layout = layout_of(manifest)
    n_classes = n_classes_of(manifest, cfg.prior.condition)
    build_prior(cfg.prior, layout, n_classes)  # config errors before any worker starts
    train_rows = manifest["splits"]["train"]["rows"]
    class_counts = _class_counts(codes_uri, manifest, cfg.prior.condition, n_classes)
    run_dir = storage.join(out, "ray", RUN_NAME)
    claim_run_dir(run_dir, resume, force, log)
    init_ray(cfg.ray)
    scaling = scaling_config(cfg.ray)
    fs, ray_path = storage.filesystem(storage.join(out, "ray"))
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={"cfg": cfg.to_dict(), "levels": list(layout.levels),
                           "grids": {lv: list(g) for lv, g in zip(layout.levels, layout.grids)},
                           "sizes": dict(zip(layout.levels, layout.sizes)), "n_classes": n_classes,
                           "train_rows": train_rows, "class_counts": class_counts, "vocab": manifest["vocab"], "vqvae": manifest["vqvae"],
                           "tb_uri": storage.join(out, "tensorboard")},
        scaling_config=scaling,
        datasets=read_code_splits(codes_uri, manifest, cache=cfg.ray.cache_data),
        dataset_config=DataConfig(datasets_to_split=["train"]),
        run_config=RunConfig(
            name=RUN_NAME, storage_path=ray_path, storage_filesystem=fs,
            failure_config=FailureConfig(max_failures=cfg.train.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2, checkpoint_score_attribute="val_bits_per_code",
                                               checkpoint_score_order="min"),
        ),
    )
    log(f"train-prior: {cfg.prior.kind} (condition: {cfg.prior.condition}) on {train_rows} code grids, "
        f"{scaling.num_workers} worker(s), {cfg.prior.epochs} epoch(s) -> {out}")
    try:
        result = trainer.fit()
    except Exception as exc:  # Ray wraps worker errors; surface the user's one line
        raise EmojirayError(f"training failed: {root_message(exc)}") from None
    summary = result.return_value or {}
    best = min(result.best_checkpoints, key=lambda cm: cm[1].get("val_bits_per_code", math.inf))[0] \
        if result.best_checkpoints else result.checkpoint
    if best is None:
        raise EmojirayError(f"training produced no checkpoint ({summary.get('status', 'unknown reason')})")
    model_uri = storage.join(out, "prior")
    with best.as_directory() as d:
        ckpt.export(d, model_uri)
        meta = ckpt.read_meta(d, kind="prior")
    if summary.get("status", "ok") != "ok":
        raise EmojirayError(f"training stopped: {summary['status']}; the best checkpoint "
                            f"(epoch {meta['epoch']}) is kept at {model_uri}")
    record = {"prior": model_uri, "kind": cfg.prior.kind, "condition": cfg.prior.condition,
              "best_epoch": meta["epoch"], "metrics": meta.get("metrics", {}), "history": summary.get("history", [])}
    storage.write_json(storage.join(out, "train_prior.json"), record)
    m = record["metrics"]
    log(f"train-prior: best epoch {meta['epoch']}: val {m.get('val_bits_per_code', math.nan):.3f} bits/code, "
        f"accuracy {m.get('val_accuracy', math.nan):.3f} -> {model_uri}")
    return record
