"""`emojiray train-vqvae`: the VQ-VAE tokenizer.

:class:`VQVAEFamily` is the Ray-free part (build, ``train_step``: reconstruction + commitment loss,
``evaluate``: validation MSE, PSNR, SSIM, codebook usage, perplexity and rate per level, and an
originals-over-reconstructions grid); :func:`train_vqvae` checks the dataset and the config and
trains the family through the one Ray driver (:func:`emojiray.train.driver.fit`) on the Ray Data
splits, exporting the last checkpoint to ``<out>/vqvae``.

Layout under ``--out``::

    ray/vqvae/...          Ray Train's run: checkpoint_* directories (resume, failures)
    tensorboard/           losses, usage, perplexity, learning rate, images/s, image grids
    vqvae/                 the final model (meta.json + model.safetensors) for eval and priors
    train_vqvae.json       a summary of the run
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from emojiray import storage
from emojiray.config import Config
from emojiray.data import shards
from emojiray.errors import EmojirayError
from emojiray.images import from_model_output, grid, to_model_input
from emojiray.metrics.codes import (bits_per_image, code_histogram, entropy_coded_bits_per_image, perplexity,
                                    usage)
from emojiray.metrics.image import ReconstructionMeter
from emojiray.models import build_vqvae
from emojiray.models.discriminator import PatchDiscriminator, balance, generator_loss, hinge_d_loss
from emojiray.models.vqvae import reconstruction_loss
from emojiray.train import harness
from emojiray.train.loop_utils import autocast

RUN_NAME = "vqvae"
SUMMARY = "train_vqvae.json"


# -- the family (no Ray) ------------------------------------------------------------------------------


class VQVAEFamily:
    """The tokenizer as a :mod:`~emojiray.train.harness` family: reconstruction loss (``train.recon_loss``
    and ``train.edge_weight``) + commitment loss, AdamW, and with ``train.adv_weight`` > 0 a patch
    discriminator's adversarial loss (VQGAN).

    ``spec``: {"image_size", "examples" (train images)}. Batches hold ``image``: (B, H, W, 3) uint8.
    """

    name = RUN_NAME
    score = None  # the last checkpoint is the model (reconstruction does not overfit like priors)
    batch_key = "train.batch_size"  # the config key of the per-worker batch size

    def __init__(self, cfg: Config, spec: dict[str, Any], device: torch.device | str = "cpu", world: int = 1,
                 rank: int = 0):
        tc = cfg.train
        self.cfg, self.device = cfg, torch.device(device)
        self.channels_last = tc.channels_last
        fmt = torch.channels_last if tc.channels_last else torch.contiguous_format
        self.model = build_vqvae(cfg.model, spec["image_size"]).to(self.device, memory_format=fmt)
        self.net = self.model
        self.opt = harness.optimiser(self.model, tc.optim)
        self.steps_per_epoch = max(1, spec["examples"] // (tc.batch_size * world))
        self.schedule = harness.schedule(
            tc.optim, epochs=tc.epochs, batch_size=tc.batch_size, steps_per_epoch=self.steps_per_epoch,
            max_seconds=tc.max_seconds, report_every_s=tc.report_every_s, log_every=tc.log_every,
            image_every=tc.image_every)
        self.eval_batches = tc.eval_batches
        self.generator = None
        self.steps = 0  # train steps taken (the adversarial loss starts at train.adv_start_step)
        self.disc = self.disc_net = self.disc_opt = None
        if tc.adv_weight > 0:
            self.disc = PatchDiscriminator(tc.disc_channels, tc.disc_layers).to(self.device, memory_format=fmt)
            self.disc_net = self.disc
            if world > 1:  # each worker judges its own batch; the gradients are averaged like the model's
                self.disc_net = torch.nn.parallel.DistributedDataParallel(self.disc, broadcast_buffers=False)
            self.disc_opt = torch.optim.Adam(self.disc.parameters(), lr=tc.disc_lr or tc.optim.lr, betas=(0.5, 0.9))

    def examples(self, batch: dict[str, torch.Tensor]) -> int:
        return batch["image"].shape[0]

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        tc = self.cfg.train
        x = to_model_input(batch["image"], self.device, channels_last=self.channels_last)
        with autocast(self.device, tc.bf16, cpu=True):
            out = self.net(x)
            recon = out.recon.float()
            recon_loss = reconstruction_loss(recon, x, tc.recon_loss, tc.edge_weight)
            loss = recon_loss + out.vq_loss
        mse = recon_loss if tc.recon_loss == "mse" and not tc.edge_weight else F.mse_loss(recon.detach(), x)
        logs = {"recon_mse": mse.detach(), "recon_loss": recon_loss.detach(), "vq_loss": out.vq_loss.detach(),
                **{f"perplexity_{k}": v.detach() for k, v in out.perplexity.items()},
                **{f"restarts_{k}": torch.as_tensor(v) for k, v in out.restarted.items()}}
        if self.disc is not None and self.steps >= tc.adv_start_step:
            loss = loss + self._adversarial(x, out.recon, recon_loss, logs)
        self.steps += 1
        return {"loss": loss, **logs}

    def _adversarial(self, x: torch.Tensor, recon: torch.Tensor, recon_loss: torch.Tensor,
                     logs: dict[str, torch.Tensor]) -> torch.Tensor:
        """One discriminator step (hinge loss, its own optimiser) on this batch; returns the decoder's
        weighted adversarial loss, judged by the updated discriminator with its weights frozen."""
        tc = self.cfg.train
        self.disc.requires_grad_(True)
        with autocast(self.device, tc.bf16, cpu=True):
            real, fake = self.disc_net(torch.cat([x, recon.detach().to(x.dtype)])).chunk(2)  # one pass (GroupNorm)
            d_loss = hinge_d_loss(real, fake)
        self.disc_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        self.disc_opt.step()
        self.disc.requires_grad_(False)  # the decoder's loss reaches the image, not these weights
        with autocast(self.device, tc.bf16, cpu=True):
            g_loss = generator_loss(self.disc(recon))
        weight = tc.adv_weight * (balance(recon_loss, g_loss, recon) if tc.adv_adaptive else 1.0)
        logs.update(adv_d_loss=d_loss.detach(), adv_g_loss=g_loss.detach(), adv_weight=torch.as_tensor(weight))
        return weight * g_loss

    def trainer_state(self) -> dict[str, Any]:
        """What a resumable checkpoint keeps besides the model and its optimiser."""
        state: dict[str, Any] = {"steps": self.steps}
        if self.disc is not None:
            state.update(discriminator=self.disc.state_dict(), disc_optimizer=self.disc_opt.state_dict())
        return state

    def load_trainer_state(self, state: dict[str, Any]) -> None:
        self.steps = int(state.get("steps", 0))
        if self.disc is not None and "discriminator" in state:
            self.disc.load_state_dict(state["discriminator"])
            self.disc_opt.load_state_dict(state["disc_optimizer"])

    def evaluate(self, batches) -> tuple[dict[str, float], np.ndarray | None]:
        return evaluate(self.model, batches, self.device, self.cfg.train, max_batches=self.eval_batches)

    def meta(self) -> dict[str, Any]:
        return {}


@torch.no_grad()
def evaluate(model, batches, device, tc, max_batches: int = 0):
    """Validation metrics over batches of ``image`` (uint8), and an originals-over-reconstructions grid."""
    model.eval()
    meter = ReconstructionMeter()
    hists: dict[str, np.ndarray] = {}
    grids: dict[str, tuple[int, int]] = {}
    sample = None
    for i, batch in enumerate(batches):
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
    from emojiray.data.stream import read_splits
    from emojiray.train.driver import fit

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

    run = fit(VQVAEFamily, cfg, {"image_size": size, "examples": train_images},
              lambda: read_splits(data_uri, ("train", "val"), cache=cfg.ray.cache_data, labels=()), out,
              resume=resume, force=force, log=log, outputs=(SUMMARY,),
              describe=f"{cfg.model.arch} on {train_images} images, {cfg.train.epochs} epoch(s)")
    meta, summary = run["meta"], run["summary"]
    record = {"model": run["model"], "checkpoint": run["checkpoint"], "workers": run["workers"],
              "use_gpu": run["use_gpu"], "wall_seconds": run["wall_seconds"],
              "step": meta["step"], "epoch": meta["epoch"], "metrics": meta.get("metrics", {}),
              "resumed_from_epoch": summary.get("start_epoch", 0),  # > 0: this run went on from a checkpoint
              "train_seconds": summary.get("train_seconds"), "data_wait_seconds": summary.get("data_wait_seconds"),
              "report_seconds": summary.get("report_seconds"), "history": summary.get("history", [])}
    storage.write_json(storage.join(out, SUMMARY), record)
    m = record["metrics"]
    log(f"train-vqvae: epoch {meta['epoch']}, step {meta['step']}: val PSNR {m.get('val_psnr', math.nan):.2f} dB, "
        f"SSIM {m.get('val_ssim', math.nan):.3f}, codes used "
        + ", ".join(f"{k[len('codes_used_'):]} {v}" for k, v in m.items() if k.startswith("codes_used_"))
        + f" -> {run['model']}")
    return record
