"""The helper models as harness families (classifier, upscaler): they learn on a tiny synthetic set,
evaluate deterministically and checkpoint what their loaders need, with no Ray (the Ray driver runs
them in tests/extensions/test_condition.py and test_upscale.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import draw_emoji

from emojiray.config import ClassifierConfig, Config, TrainConfig, UpscaleConfig
from emojiray.extensions.classifier import ClassifierFamily, class_weights, load_classifier
from emojiray.extensions.codes import decode, encode
from emojiray.extensions.measures import image_scores
from emojiray.extensions.upscale import UpscalerFamily, downsample, load_upscaler, vqvae_fingerprint
from emojiray.images import to_model_input
from emojiray.models import checkpoint as ckpt
from emojiray.train import harness
from helpers import set_keys, tiny_pair


class Reports:
    def __init__(self):
        self.metrics = []

    def __call__(self, metrics, state):
        self.metrics.append(metrics)


def toy_labelled(n: int, seed: int) -> dict[str, torch.Tensor]:
    """Warm or cool discs (category) on a white or grey background (vendor), 32 px."""
    rng = np.random.default_rng(seed)
    category, vendor = rng.integers(0, 2, n), rng.integers(0, 2, n)
    images = np.empty((n, 32, 32, 3), np.uint8)
    yy, xx = np.mgrid[0:32, 0:32]
    for i in range(n):
        images[i] = 255 if vendor[i] == 0 else 128
        r = rng.integers(7, 12)
        disc = (yy - 16 - rng.integers(-3, 4)) ** 2 + (xx - 16 - rng.integers(-3, 4)) ** 2 < r * r
        images[i][disc] = (220, 60, 30) if category[i] == 0 else (30, 60, 220)
    return {"image": torch.from_numpy(images), "category": torch.from_numpy(category),
            "vendor": torch.from_numpy(vendor)}


def evaluate(fam, batches):
    fam.model.eval()
    with torch.no_grad():
        return fam.evaluate(batches())


def test_classifier_family_learns_evaluates_deterministically_and_checkpoints_what_loading_needs(tmp_path):
    train, val = toy_labelled(64, 0), toy_labelled(32, 1)
    vocab = {"category": ["warm", "cool"], "vendor": ["white", "grey"]}
    cfg = set_keys(Config(classifier=ClassifierConfig(labels=["category", "vendor"], channels=8, epochs=5,
                                                      batch_size=16), train=TrainConfig(seed=0)), "classifier", lr=3e-3)
    spec = {"labels": ["category", "vendor"], "vocab": vocab, "image_size": 32, "examples": 64, "data": "toy",
            "class_weights": {lb: class_weights(train[lb].numpy(), 2).tolist() for lb in vocab}}
    assert ClassifierFamily.batch_key == "classifier.batch_size" and cfg.classifier.batch_size == 16
    torch.manual_seed(0)
    fam = ClassifierFamily(cfg, spec)
    sc = fam.schedule
    assert (sc.report_every_s, sc.min_lr_ratio, sc.grad_clip, sc.warmup_steps, fam.steps_per_epoch) == (0, 0.05, 1.0, 2, 4)
    reports = Reports()
    val_batches = harness.sequential_batches(val, 16)
    summary = harness.run(fam, harness.in_memory_batches(train, 16), val_batches, reports)
    assert summary["status"] == "ok" and len(reports.metrics) == 5, "a validation every epoch"
    losses = [m["train_loss"] for m in reports.metrics]
    assert losses[-1] < 0.7 * losses[0], losses
    last = reports.metrics[-1]
    assert last["val_score"] == pytest.approx((last["val_category_bacc"] + last["val_vendor_bacc"]) / 2)
    assert last["val_score"] > 0.7, "colour and background are easy"
    a, image = evaluate(fam, val_batches)
    assert image is None and a == evaluate(fam, val_batches)[0]
    assert a["val_score"] == pytest.approx(last["val_score"])

    # the shifts draw from the family's generator: its state goes into the checkpoint and comes back
    harness.save(tmp_path, fam, cfg.to_dict(), {"step": summary["step"], "epoch": 5}, last)
    state = ckpt.load_trainer_state(tmp_path)
    assert torch.equal(state["rng"]["generator"], fam.generator.get_state())
    model, meta = load_classifier(str(tmp_path), "cpu")
    assert meta["labels"] == ["category", "vendor"] and meta["vocab"] == vocab and meta["image_size"] == 32
    fam.generator.manual_seed(123)
    again = ClassifierFamily(cfg, spec)
    harness.restore(tmp_path, again)
    assert torch.equal(again.generator.get_state(), state["rng"]["generator"])
    assert all(torch.equal(p, q) for p, q in zip(model.state_dict().values(), fam.model.state_dict().values()))


def test_upscaler_family_learns_the_codes_and_evaluates_deterministically(tmp_path):
    _, vq_uri = tiny_pair(tmp_path, "maskgit")
    vq, _, _ = ckpt.load_vqvae(vq_uri)
    full = np.stack([np.asarray(draw_emoji(i, 32).convert("RGB")) for i in range(96)])
    codes = {lv: c for lv, c in encode(vq, full).items()}
    arrays = {"image": torch.from_numpy(full), "lowres": torch.from_numpy(downsample(full, 2)), **codes}
    train = {k: v[:64] for k, v in arrays.items() if k != "image"}
    val = {k: v[64:] for k, v in arrays.items()}
    grids = vq.grid_sizes(32)
    cfg = set_keys(Config(upscale=UpscaleConfig(channels=16, res_blocks=1, epochs=4, batch_size=16)), "upscale", lr=3e-3)
    spec = {"vqvae": vq_uri, "vqvae_fingerprint": vqvae_fingerprint(vq), "factor": 2, "input_size": 16,
            "image_size": 32, "grids": {lv: list(g) for lv, g in grids.items()},
            "codebook_sizes": {lv: q.K for lv, q in vq.quantizers.items()}, "examples": 64, "data": "toy"}
    assert UpscalerFamily.batch_key == "upscale.batch_size" and cfg.upscale.batch_size == 16
    torch.manual_seed(0)
    fam = UpscalerFamily(cfg, spec)
    reports = Reports()
    val_batches = harness.sequential_batches(val, 16)
    harness.run(fam, harness.in_memory_batches(train, 16), val_batches, reports)
    losses = [m["train_loss"] for m in reports.metrics]
    assert len(losses) == 4 and losses[-1] < 0.8 * losses[0], losses
    m, image = evaluate(fam, val_batches)
    assert image is None and m == evaluate(fam, val_batches)[0]
    assert set(m) == {"val_code_accuracy", "val_top_accuracy", "val_bottom_accuracy", "val_psnr", "val_ssim"}
    assert 0 <= m["val_code_accuracy"] <= 1 and m["val_psnr"] > 0
    # the metrics match decoding the whole val set at once
    with torch.no_grad():
        pred = fam.model.predict_codes(to_model_input(val["lowres"], channels_last=False))
    psnr, _ = image_scores(decode(vq, pred), full[64:])
    assert m["val_psnr"] == pytest.approx(float(psnr.mean()), rel=1e-5)
    assert m["val_bottom_accuracy"] == pytest.approx(float((pred["bottom"] == codes["bottom"][64:]).float().mean()))

    harness.save(tmp_path / "ckpt", fam, cfg.to_dict(), {"step": 16, "epoch": 4}, m)
    model, meta = load_upscaler(str(tmp_path / "ckpt"), "cpu")
    assert meta["vqvae"] == vq_uri and meta["factor"] == 2 and model.input_size == 16 and model.grids == grids
