"""`emojiray train-vqvae`: the VQ-VAE tokenizer trained by a Ray Train TorchTrainer.

Driver (``train_vqvae``): checks the dataset and config, sizes the workers to the cluster
(leaving CPUs for Ray Data), hands the Ray Data splits to the trainer, turns failures into one
line, and exports the final weights to ``<out>/vqvae``.

Worker (``train_loop``), per epoch: stream ``get_dataset_shard("train")`` as uint8 batches ->
float on the device -> VQ-VAE -> MSE + commitment loss -> AdamW with warm-up and cosine decay;
then rank 0 measures the validation split (MSE, PSNR, SSIM, codebook usage and perplexity per
level) and every worker calls ``ray.train.report``, rank 0 with a checkpoint.

Layout under ``--out``::

    ray/vqvae/...          Ray Train's run: checkpoint_* directories (resume, failures)
    tensorboard/           losses, usage, perplexity, learning rate, images/s, image grids
    vqvae/                 the final model (meta.json + model.safetensors) for eval and priors
    train_vqvae.json       a summary of the run
"""

from __future__ import annotations

import math
import tempfile
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from emojiray import storage
from emojiray.config import Config, config_from_dict
from emojiray.data import shards
from emojiray.errors import EmojirayError
from emojiray.images import from_model_output, grid, to_model_input
from emojiray.metrics.codes import (bits_per_image, code_histogram, entropy_coded_bits_per_image, perplexity,
                                    usage)
from emojiray.metrics.image import ReconstructionMeter
from emojiray.models import build_vqvae
from emojiray.models import checkpoint as ckpt
from emojiray.train.loop_utils import (TensorBoard, any_worker, autocast, claim_run_dir, optimizer_step,
                                       restore_from_ray_checkpoint, warmup_cosine)
from emojiray.raykit import root_message

RUN_NAME = "vqvae"


# -- worker ---------------------------------------------------------------------------------------


def train_loop(config: dict[str, Any]) -> dict[str, Any]:
    import ray.train
    import ray.train.torch

    cfg = config_from_dict(config["cfg"])
    tc, size = cfg.train, config["image_size"]
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    torch.manual_seed(tc.seed)  # identical initial weights and k-means draws on every worker

    model = build_vqvae(cfg.model, size)
    fmt = torch.channels_last if tc.channels_last else torch.contiguous_format
    model = model.to(device, memory_format=fmt)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, betas=tuple(tc.betas), weight_decay=tc.weight_decay)
    steps_per_epoch = max(1, config["train_images"] // (tc.batch_size * world))
    total_steps = steps_per_epoch * tc.epochs

    state = restore_from_ray_checkpoint(model, opt)
    step, epoch0 = int(state.get("step", 0)), int(state.get("epoch", 0))
    elapsed, history = float(state.get("elapsed", 0.0)), list(state.get("history", []))
    if "rng" in state:
        torch.set_rng_state(state["rng"])

    net = ray.train.torch.prepare_model(model, parallel_strategy_kwargs={"broadcast_buffers": False})
    if tc.compile:
        net = torch.compile(net)
    tb = TensorBoard(config["tb_uri"] if rank == 0 else None)
    train_shard = ray.train.get_dataset_shard("train")
    val_shard = ray.train.get_dataset_shard("val") if rank == 0 else None

    status, epoch, last_report = "ok", epoch0, elapsed
    for epoch in range(epoch0, tc.epochs):
        net.train()
        t_epoch, seen, loss_sum, n_steps = time.perf_counter(), 0, 0.0, 0
        for batch in train_shard.iter_torch_batches(batch_size=tc.batch_size, device=device, drop_last=True,
                                                    local_shuffle_buffer_size=4 * tc.batch_size):
            for g in opt.param_groups:
                g["lr"] = tc.lr * warmup_cosine(step, tc.warmup_steps, total_steps, tc.min_lr_ratio)
            x = to_model_input(batch["image"], device, channels_last=tc.channels_last)
            with autocast(device, tc.bf16):
                out = net(x)
                recon_loss = F.mse_loss(out.recon.float(), x)
                loss = recon_loss + out.vq_loss
            if any_worker(not torch.isfinite(loss).item(), device):
                status = f"loss became {loss.item()} at step {step} (epoch {epoch + 1})"
                break
            optimizer_step(net, opt, loss, tc.grad_clip)
            step += 1
            n_steps += 1
            seen += x.shape[0]
            loss_sum += loss.item()
            if rank == 0 and step % tc.log_every == 0:
                tb.scalars(step, **{"train/loss": loss.item(), "train/recon_mse": recon_loss.item(),
                                    "train/vq_loss": out.vq_loss.item(), "train/lr": opt.param_groups[0]["lr"],
                                    "train/images_per_s": seen * world / (time.perf_counter() - t_epoch)},
                           **{f"train/perplexity_{k}": v.item() for k, v in out.perplexity.items()},
                           **{f"train/restarts_{k}": v for k, v in out.restarted.items()})
            if tc.max_seconds and any_worker(elapsed + time.perf_counter() - t_epoch >= tc.max_seconds, device):
                break  # every worker stops at the same step (DDP collectives must pair up)
        train_seconds = time.perf_counter() - t_epoch
        elapsed += train_seconds
        if status != "ok":
            break
        if n_steps == 0:
            raise EmojirayError(f"no full training batch: {config['train_images']} images over {world} "
                                f"worker(s) is fewer than train.batch_size={tc.batch_size}")

        done = epoch + 1 >= tc.epochs or bool(tc.max_seconds and elapsed >= tc.max_seconds)
        epoch_loss = loss_sum / n_steps
        if not done and tc.report_every_s and elapsed - last_report < tc.report_every_s:
            continue  # short epochs (fast GPUs): validate and checkpoint every report_every_s only
        last_report = elapsed
        metrics = {"epoch": epoch + 1, "step": step, "train_loss": epoch_loss,
                   "train_seconds": elapsed, "images_per_s": seen * world / train_seconds}
        if rank == 0:
            val, sample = evaluate(model, val_shard, device, tc, max_batches=tc.eval_batches)
            metrics.update(val)
            tb.scalars(step, **{f"val/{k}": v for k, v in val.items()}, **{"train/epoch_loss": epoch_loss})
            if tc.image_every and (epoch + 1) % tc.image_every == 0 and sample is not None:
                tb.image("val/originals_over_reconstructions", sample, step)
            tb.flush()
        history.append({k: float(v) for k, v in metrics.items()})
        _report(metrics, rank, model, cfg, step, epoch + 1, elapsed, history, opt)
        if done:
            break

    tb.close()
    return {"status": status, "step": step, "epoch": epoch + 1 if status == "ok" else epoch,
            "train_seconds": elapsed, "history": history, "start_epoch": epoch0}


def _report(metrics, rank, model, cfg: Config, step, epoch, elapsed, history, opt) -> None:
    import ray.train

    if rank != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as d:
        state = {"optimizer": opt.state_dict(), "step": step, "epoch": epoch, "elapsed": elapsed,
                 "history": history, "rng": torch.get_rng_state()}
        ckpt.save(d, model, "vqvae", cfg.to_dict(), trainer_state=state, step=step, epoch=epoch,
                  metrics={k: v for k, v in metrics.items() if isinstance(v, (int, float))})
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))


@torch.no_grad()
def evaluate(model, val_iter, device, tc, max_batches: int = 0):
    """Validation metrics over a Ray Data iterator, and an originals-over-reconstructions grid."""
    model.eval()
    meter = ReconstructionMeter()
    hists: dict[str, np.ndarray] = {}
    grids: dict[str, tuple[int, int]] = {}
    sample = None
    for i, batch in enumerate(val_iter.iter_torch_batches(batch_size=256, device=device)):
        if max_batches and i >= max_batches:
            break
        x = to_model_input(batch["image"], device, channels_last=tc.channels_last)
        with autocast(device, tc.bf16):
            out = model(x)
        recon = out.recon.float().clamp(-1, 1)
        meter.update(recon, x)
        for level, codes in out.codes.items():
            K = model.quantizers[level].K
            hists[level] = hists.get(level, 0) + code_histogram(codes, K)
            grids[level] = tuple(codes.shape[-2:])
        if sample is None:
            n = min(16, x.shape[0])
            sample = grid(np.concatenate([from_model_output(x[:n]), from_model_output(recon[:n])]), ncols=n)
    model.train()
    metrics = {f"val_{k}": v for k, v in meter.compute().items() if k != "count"}
    for level, h in hists.items():
        metrics[f"codes_used_{level}"] = usage(h)
        metrics[f"perplexity_{level}"] = perplexity(h)
    if hists:  # the rate: fixed-length codes, and an ideal entropy coder of the measured frequencies
        metrics["bits_per_image"] = bits_per_image(grids, {lv: model.quantizers[lv].K for lv in hists})
        metrics["entropy_bits_per_image"] = entropy_coded_bits_per_image(hists, grids)
    return metrics, sample


# -- driver ---------------------------------------------------------------------------------------


def train_vqvae(cfg: Config, data_uri: str, out: str, resume: bool = False, force: bool = False,
                log=print) -> dict[str, Any]:
    """Train a VQ-VAE on the dataset at ``data_uri``; write checkpoints and the model under ``out``."""
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig
    from ray.train.torch import TorchTrainer

    from emojiray.data.stream import read_splits
    from emojiray.raykit import init_ray, scaling_config

    manifest = shards.load_manifest(data_uri)
    size = manifest["image"]["height"]
    if size != cfg.data.size:
        raise EmojirayError(f"the dataset's images are {size} px but data.size is {cfg.data.size}: "
                            f"prepare a {cfg.data.size} px dataset or set data.size={size}")
    build_vqvae(cfg.model, size)  # config errors before any worker starts
    train_images = manifest["counts"]["split"].get("train", 0)
    if train_images == 0:
        raise EmojirayError(f"the train split of {data_uri} is empty")
    if not manifest["counts"]["split"].get("val", 0):
        raise EmojirayError(f"the val split of {data_uri} is empty: set data.val_fraction > 0 and prepare again")

    ray_dir = storage.join(out, "ray")
    run_dir = storage.join(ray_dir, RUN_NAME)
    claim_run_dir(run_dir, resume, force, log)

    init_ray(cfg.ray)
    scaling = scaling_config(cfg.ray)
    fs, ray_path = storage.filesystem(ray_dir)
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={"cfg": cfg.to_dict(), "image_size": size, "train_images": train_images,
                           "tb_uri": storage.join(out, "tensorboard")},
        scaling_config=scaling,
        datasets=read_splits(data_uri, ("train", "val"), cache=cfg.ray.cache_data, labels=()),
        dataset_config=DataConfig(datasets_to_split=["train"]),
        run_config=RunConfig(
            name=RUN_NAME,
            storage_path=ray_path,
            storage_filesystem=fs,
            failure_config=FailureConfig(max_failures=cfg.train.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
        ),
    )
    log(f"train-vqvae: {cfg.model.arch} on {train_images} images, {scaling.num_workers} worker(s)"
        f"{' with GPUs' if scaling.use_gpu else ' on CPU'}, {cfg.train.epochs} epoch(s) -> {out}")
    t0 = time.perf_counter()
    try:
        result = trainer.fit()
    except Exception as exc:  # Ray wraps worker errors; surface the user's one line
        raise EmojirayError(f"training failed: {root_message(exc)}") from None
    summary = result.return_value or {}
    if result.checkpoint is None:
        raise EmojirayError(f"training produced no checkpoint ({summary.get('status', 'unknown reason')})")
    model_uri = storage.join(out, "vqvae")
    with result.checkpoint.as_directory() as d:
        ckpt.export(d, model_uri)
        meta = ckpt.read_meta(d, kind="vqvae")
    if summary.get("status", "ok") != "ok":
        raise EmojirayError(f"training stopped: {summary['status']}; the last good checkpoint "
                            f"(epoch {meta['epoch']}) is kept at {model_uri}")
    record = {"model": model_uri, "checkpoint": result.checkpoint.path, "workers": scaling.num_workers,
              "use_gpu": scaling.use_gpu, "wall_seconds": round(time.perf_counter() - t0, 1),
              "step": meta["step"], "epoch": meta["epoch"], "metrics": meta.get("metrics", {}),
              "resumed_from_epoch": summary.get("start_epoch", 0),  # > 0: this run went on from a checkpoint
              "history": summary.get("history", [])}
    storage.write_json(storage.join(out, "train_vqvae.json"), record)
    m = record["metrics"]
    log(f"train-vqvae: epoch {meta['epoch']}, step {meta['step']}: val PSNR {m.get('val_psnr', math.nan):.2f} dB, "
        f"SSIM {m.get('val_ssim', math.nan):.3f}, codes used "
        + ", ".join(f"{k[len('codes_used_'):]} {v}" for k, v in m.items() if k.startswith("codes_used_"))
        + f" -> {model_uri}")
    return record
