"""The Ray-free training harness: each family's train_step/evaluate, the loop's schedule and reports,
resumable checkpoints with every RNG state. No Ray is started here."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import draw_emoji

from emojiray.config import Config, ModelConfig, TrainConfig
from emojiray.errors import EmojirayError
from emojiray.models import checkpoint as ckpt
from emojiray.train import harness
from emojiray.train.prior_loop import PriorFamily
from emojiray.train.vqvae_loop import VQVAEFamily
from helpers import set_keys


def images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.stack([np.asarray(draw_emoji(seed + i, 32).convert("RGB")) for i in range(n)]))


def vq_config(**train) -> Config:
    cfg = Config(model=ModelConfig(channels=32, res_blocks=1, res_channels=16, codebook_size=[32, 16],
                                   code_dim=[8, 8], dead_code_steps=20))
    return set_keys(cfg, "train", **{"epochs": 6, "batch_size": 16, "lr": 2e-3, "warmup_steps": 5,
                                     "channels_last": False, "report_every_s": 0, **train})


def vq_family(cfg: Config, n: int = 64) -> VQVAEFamily:
    torch.manual_seed(0)
    return VQVAEFamily(cfg, {"image_size": 32, "examples": n})


class Reports:
    def __init__(self):
        self.metrics, self.states = [], []

    def __call__(self, metrics, state):
        self.metrics.append(metrics)
        self.states.append(dict(state))


def test_vqvae_family_learns_without_ray_and_evaluates_deterministically():
    train, val = images(64), images(32, seed=1000)
    fam = vq_family(vq_config())
    reports = Reports()
    summary = harness.run(fam, harness.in_memory_batches({"image": train}, 16), harness.sequential_batches(
        {"image": val}, 16), reports)
    assert summary["status"] == "ok" and summary["step"] == 6 * 4 and summary["epoch"] == 6
    losses = [m["train_loss"] for m in reports.metrics]
    assert len(losses) == 6 and losses[-1] < 0.9 * losses[0] and losses == sorted(losses, reverse=True)
    assert {"val_psnr", "val_ssim", "codes_used_top", "codes_used_bottom", "images_per_s"} <= set(reports.metrics[-1])
    fam.model.eval()
    with torch.no_grad():
        a, grid_a = fam.evaluate(harness.sequential_batches({"image": val}, 16)())
        b, grid_b = fam.evaluate(harness.sequential_batches({"image": val}, 16)())
    assert a == b and np.array_equal(grid_a, grid_b) and grid_a.dtype == np.uint8


def test_families_and_the_loop_import_no_ray():
    code = ("import sys, emojiray.train.harness, emojiray.train.vqvae_loop, emojiray.train.prior_loop, "
            "emojiray.extensions.classifier, emojiray.extensions.upscale; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'ray'))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


def synthetic_code_batch(n: int, rng) -> dict[str, torch.Tensor]:
    top = rng.integers(0, 4, (n, 4))
    bottom = np.repeat(np.repeat(top.reshape(n, 2, 2), 2, 1), 2, 2).reshape(n, 16) * 2
    return {"top": torch.from_numpy(top), "bottom": torch.from_numpy(bottom % 16),
            "emotion": torch.from_numpy(rng.integers(0, 3, n)), "category": torch.zeros(n, dtype=torch.int64),
            "vendor": torch.zeros(n, dtype=torch.int64)}


@pytest.mark.parametrize("kind", ["transformer", "maskgit"])
def test_prior_family_learns_without_ray(kind):
    rng = np.random.default_rng(0)
    train, val = synthetic_code_batch(256, rng), synthetic_code_batch(64, rng)
    cfg = set_keys(Config(train=TrainConfig(report_every_s=0)), "prior", kind=kind, condition="emotion", dim=32,
                   layers=2, heads=4, dropout=0.0, epochs=4, batch_size=32, lr=3e-3, warmup_steps=5)
    spec = {"levels": ["top", "bottom"], "grids": {"top": [2, 2], "bottom": [4, 4]}, "sizes": {"top": 8, "bottom": 16},
            "n_classes": 3, "examples": 256, "vocab": {}, "vqvae": "unused"}
    torch.manual_seed(0)
    fam = PriorFamily(cfg, spec)
    reports = Reports()
    harness.run(fam, harness.in_memory_batches(train, 32), harness.sequential_batches(val, 64), reports)
    bits = [m["val_bits_per_code"] for m in reports.metrics]
    assert len(bits) == 4 and bits[-1] < bits[0] < math.log2(16)
    assert reports.metrics[-1]["train_bits_per_code"] == pytest.approx(reports.metrics[-1]["train_loss"] / math.log(2))
    assert fam.meta()["n_classes"] == 3


class FakeClock:
    """Each call advances by ``tick`` seconds: one training step costs about one tick."""

    def __init__(self, tick: float):
        self.t, self.tick = 0.0, tick

    def __call__(self) -> float:
        self.t += self.tick
        return self.t


def test_reports_follow_the_time_cadence_and_the_budget_stops_training():
    train = images(64)
    fam = vq_family(vq_config(epochs=1000, report_every_s=10.0, max_seconds=35.0))
    reports = Reports()
    summary = harness.run(fam, harness.in_memory_batches({"image": train}, 16), None, reports, clock=FakeClock(1.0))
    seconds = [m["train_seconds"] for m in reports.metrics]
    assert summary["status"] == "ok" and 35 <= summary["train_seconds"] < 40
    assert seconds == [10.0, 20.0, 30.0, 35.0]  # every 10 s of training (not every 4-step epoch), and the end
    # the cosine decay follows the time budget (1000 epochs would never be reached): the run ends annealed
    assert fam.opt.param_groups[0]["lr"] < 0.12 * fam.schedule.lr
    # a report can fall inside an epoch longer than the cadence
    fam = vq_family(vq_config(epochs=1, report_every_s=1.0))
    reports = Reports()
    harness.run(fam, harness.in_memory_batches({"image": train}, 16), None, reports, clock=FakeClock(0.5))
    assert [m["epoch"] for m in reports.metrics][:2] == [0, 0] and reports.metrics[-1]["epoch"] == 1


def test_a_report_due_on_the_last_step_is_followed_by_the_final_one():
    """A report inside the epoch on its very last step leaves no step for the end-of-run report: it
    still comes (the checkpoint must say the epoch is done), with validation and no training means."""
    fam = vq_family(vq_config(epochs=1, report_every_s=4.0))
    reports = Reports()
    val = harness.sequential_batches({"image": images(16, seed=1000)}, 16)
    summary = harness.run(fam, harness.sequential_batches({"image": images(64)}, 16), val, reports,
                          clock=FakeClock(1.0))
    assert summary["status"] == "ok" and [m["epoch"] for m in reports.metrics] == [0, 1]
    assert "train_loss" in reports.metrics[0] and "train_loss" not in reports.metrics[1]
    assert "val_psnr" in reports.metrics[1] and reports.states[-1]["epoch"] == 1


def test_a_non_finite_loss_stops_before_the_weights_change():
    fam = vq_family(vq_config(lr=1e30, warmup_steps=0, grad_clip=0))
    reports = Reports()
    summary = harness.run(fam, harness.in_memory_batches({"image": images(64)}, 16), None, reports)
    assert summary["status"].startswith("loss became") and "epoch" in summary["status"]
    assert all(torch.isfinite(p).all() for p in fam.model.parameters())  # the bad step was not taken


ADVERSARIAL = {"adv_weight": 0.5, "adv_start_step": 2, "disc_channels": 8, "disc_layers": 2}


@pytest.mark.parametrize("adv", [{}, ADVERSARIAL], ids=["plain", "adversarial"])
def test_resume_from_a_checkpoint_continues_exactly(tmp_path, adv):
    """Two epochs in one go == one epoch, a checkpoint, a fresh process-like restore, one more epoch
    (weights, optimiser, step, history and the RNG that dead-code restarts draw from; with the
    adversarial loss also the discriminator, its optimiser and the step it started at)."""
    train = images(64)
    batches = harness.sequential_batches({"image": train}, 16)  # the same order in every epoch
    cfg = vq_config(epochs=2, **adv)
    cfg.model.dead_code_steps = 1  # restarts draw from the RNG at every step
    straight = vq_family(cfg)
    torch.manual_seed(5)
    harness.run(straight, batches, None, harness.no_report)

    first = vq_family(cfg)
    first.schedule.max_seconds = 4.0  # with one tick per step: stops after the first epoch's 4 steps
    saved = Reports()
    torch.manual_seed(5)
    harness.run(first, batches, None, saved, clock=FakeClock(1.0))
    harness.save(str(tmp_path / "c"), first, cfg.to_dict(), saved.states[-1], saved.metrics[-1])
    torch.manual_seed(123)  # a restarted worker starts from another random state
    second = vq_family(cfg)
    state = harness.restore(str(tmp_path / "c"), second)
    assert state["step"] == 4 and state["epoch"] == 1 and len(state["history"]) == 1
    summary = harness.run(second, batches, None, harness.no_report, state=state)
    assert summary["step"] == 8 and [h["epoch"] for h in summary["history"]] == [1, 2]
    for a, b in zip(straight.model.state_dict().values(), second.model.state_dict().values()):
        assert torch.equal(a, b)
    if adv:
        for a, b in zip(straight.disc.state_dict().values(), second.disc.state_dict().values()):
            assert torch.equal(a, b)
    meta = ckpt.read_meta(tmp_path / "c", kind="vqvae")
    assert meta["step"] == 4 and meta["epoch"] == 1


def test_the_tokenizer_trains_on_the_configured_reconstruction_loss_and_logs_its_mse():
    batch = {"image": images(16)}
    plain = vq_family(vq_config()).train_step(batch)
    assert torch.equal(plain["recon_loss"], plain["recon_mse"])  # the default: MSE
    fam = vq_family(vq_config(recon_loss="l1", edge_weight=0.5))
    logs = fam.train_step(batch)
    assert torch.allclose(logs["recon_mse"], plain["recon_mse"])  # the same model, images and first step
    assert logs["recon_loss"] > logs["recon_mse"]  # an L1 distance of errors below 1 is above their square
    assert torch.allclose(logs["loss"], logs["recon_loss"] + logs["vq_loss"])
    assert harness.step(fam, logs["loss"])


def test_the_adversarial_loss_starts_at_its_step_and_trains_only_the_discriminator_on_its_own_loss():
    fam = vq_family(vq_config(**ADVERSARIAL))
    assert vq_family(vq_config()).disc is None  # off by default
    batch = {"image": images(16)}
    disc0 = [p.detach().clone() for p in fam.disc.parameters()]
    for _ in range(2):  # before adv_start_step: MSE + commitment only, the discriminator untouched
        logs = fam.train_step(batch)
        assert "adv_g_loss" not in logs and harness.step(fam, logs["loss"])
    assert all(torch.equal(a, b) for a, b in zip(disc0, fam.disc.parameters()))
    logs = fam.train_step(batch)
    assert {"adv_d_loss", "adv_g_loss", "adv_weight"} <= logs.keys()
    assert all(math.isfinite(logs[k].item()) for k in ("adv_d_loss", "adv_g_loss")) and torch.isfinite(logs["loss"])
    assert float(logs["adv_weight"]) > 0  # adaptive: the reconstruction's gradient scale, times 0.5
    assert not torch.allclose(logs["loss"], logs["recon_mse"] + logs["vq_loss"])  # the decoder's term is in
    assert any(not torch.equal(a, b) for a, b in zip(disc0, fam.disc.parameters()))  # it took a step
    disc1 = [p.detach().clone() for p in fam.disc.parameters()]
    assert harness.step(fam, logs["loss"])  # the tokenizer's step leaves the discriminator as it was
    assert all(torch.equal(a, b) for a, b in zip(disc1, fam.disc.parameters()))
    assert fam.steps == 3


def test_no_full_batch_is_a_one_line_error():
    fam = vq_family(vq_config())
    with pytest.raises(EmojirayError, match="no full training batch"):
        harness.run(fam, harness.in_memory_batches({"image": images(8)}, 16), None, harness.no_report)
