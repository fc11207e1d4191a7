"""Super-resolution: the low-res encoder's shapes, the low-res operator and baselines, decoding the
predicted codes, training (through the Ray driver: the test marked ray), the metric and the CLI demo,
one-line errors (the rest: pure PyTorch, no Ray)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from emojiray.cli import main
from emojiray.config import DataConfig, ModelConfig, load_config
from emojiray.data.prepare import prepare
from emojiray.errors import EmojirayError
from emojiray.extensions.codes import decode, encode
from emojiray.extensions.paths import RunPaths
from emojiray.extensions.upscale import (KIND, bicubic, build_upscaler, downsample, evaluate_upscale, load_pair,
                                         load_upscaler, nearest, train_upscaler, upscale)
from emojiray.models import build_vqvae, checkpoint as ckpt
from emojiray.models.upscaler import LowResEncoder
from helpers import tiny_pair

QUIET = dict(log=lambda *_: None)


def thumbnail(images):
    """Cheap deterministic features instead of Inception: 4x4 block means (48-d)."""
    x = torch.from_numpy(np.asarray(images)).float().permute(0, 3, 1, 2)
    return F.adaptive_avg_pool2d(x, 4).flatten(1).numpy()


def psnr(a, b):
    return 10 * np.log10(255.0 ** 2 / np.mean((a.astype(float) - b.astype(float)) ** 2))


@pytest.mark.parametrize("arch,downsample_,size,factor", [
    ("vqvae2", [4, 2], 32, 2), ("vqvae2", [4, 2], 64, 2), ("vqvae2", [2, 2], 64, 4),
    ("vqvae", [4], 32, 2), ("vqvae", [4], 64, 2), ("vqvae", [2], 32, 4),
])
def test_logits_match_every_grid_and_codebook(arch, downsample_, size, factor):
    vq = build_vqvae(ModelConfig(arch=arch, channels=16, res_blocks=1, res_channels=8, downsample=downsample_,
                                 codebook_size=[32, 16], code_dim=[8, 8]), size)
    model = build_upscaler(vq, size, factor, channels=16, res_blocks=1)
    assert model.input_size == size // factor
    logits = model(torch.randn(2, 3, size // factor, size // factor))
    grids = vq.grid_sizes(size)
    assert set(logits) == set(vq.levels)
    for lv, (h, w) in grids.items():
        assert logits[lv].shape == (2, vq.quantizers[lv].K, h, w)
    with pytest.raises(EmojirayError, match="does not divide"):
        build_upscaler(vq, size, 3, 16, 1)
    with pytest.raises(EmojirayError, match="power of two"):  # 64 px / 2 = 32 px in, a 12 px grid out
        build_upscaler(type("VQ", (), {"grid_sizes": lambda self, s: {"bottom": (12, 12)},
                                        "quantizers": {"bottom": vq.quantizers[vq.levels[-1]]}})(), 64, 2, 16, 1)


def test_low_res_operator_and_baselines():
    flat = np.full((2, 32, 32, 3), (200, 40, 90), np.uint8)
    assert np.array_equal(downsample(flat, 2), flat[:, :16, :16]), "a constant image stays constant"
    assert np.array_equal(bicubic(downsample(flat, 2), 32), flat)
    yy, xx = np.mgrid[0:32, 0:32]
    smooth = np.stack([128 + 100 * np.sin(xx / 5.0), 128 + 100 * np.cos(yy / 7.0), (xx + yy) * 4], -1)
    smooth = np.clip(smooth, 0, 255).astype(np.uint8)[None]
    low = downsample(smooth, 2)
    assert low.shape == (1, 16, 16, 3) and downsample(smooth, 4).shape == (1, 8, 8, 3)
    assert nearest(low, 32).shape == bicubic(low, 32).shape == (1, 32, 32, 3)
    assert np.array_equal(nearest(low, 32)[0, ::2, ::2], low[0])
    assert psnr(bicubic(low, 32), smooth) > 30, "bicubic recovers a smooth image"
    assert psnr(bicubic(low, 32), smooth) > psnr(nearest(low, 32), smooth) + 3, "and beats pixel repetition"
    with pytest.raises(EmojirayError, match="does not divide"):
        downsample(smooth, 3)
    with pytest.raises(EmojirayError, match="wants \\(N, H, W, 3\\)"):
        downsample(smooth[0], 2)


class Oracle(LowResEncoder):
    """Logits that put all mass on given codes: what a perfect upscaler predicts."""

    def set_codes(self, codes):
        self.codes = codes

    def forward(self, x):
        return {lv: F.one_hot(c, self.codebook_sizes[lv]).permute(0, 3, 1, 2).float() for lv, c in self.codes.items()}


def test_perfect_codes_decode_to_the_vq_ceiling(tmp_path):
    _, vq_uri = tiny_pair(tmp_path, "maskgit")
    vq, _, _ = ckpt.load_vqvae(vq_uri)
    images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    true = encode(vq, images)
    model = Oracle(16, vq.grid_sizes(32), {lv: q.K for lv, q in vq.quantizers.items()}, channels=8, res_blocks=1)
    model.set_codes(true)
    out = upscale(model, vq, downsample(images, 2))
    assert out.shape == (5, 32, 32, 3)
    assert np.array_equal(out, decode(vq, true)), "the predicted codes of each level reach the decoder"
    swapped = {lv: c.roll(1, 0) for lv, c in true.items()}  # another image's codes decode to another image
    model.set_codes(swapped)
    assert not np.array_equal(upscale(model, vq, downsample(images, 2)), out)
    with pytest.raises(EmojirayError, match="takes 16x16 RGB images"):
        upscale(model, vq, images)


@pytest.mark.ray
def test_train_evaluate_cli_and_errors(ray_local, npm_cache, tmp_path, capsys):
    data = str(tmp_path / "ds")
    prepare(DataConfig(npm_version="0.0.0-test", size=32, val_fraction=0.2, test_fraction=0.2), data, **QUIET)
    _, vq = tiny_pair(tmp_path, "maskgit")
    cfg = load_config("smoke", ["upscale.channels=16", "upscale.res_blocks=1", "upscale.epochs=6",
                                "upscale.batch_size=8", "upscale.lr=3e-3", "extensions.eval_images=6"])
    up = str(tmp_path / "upscaler")
    report = train_upscaler(data, vq, up, cfg, **QUIET)
    losses = [r["train_loss"] for r in report["history"]]
    assert len(losses) == 6 and report["best_epoch"] == max(report["history"], key=lambda r: r["val_psnr"])["epoch"]
    assert losses[-1] < 0.8 * losses[0], f"the code loss falls: {losses}"
    assert report["input_size"] == 16 and report["output_size"] == 32 and report["grids"] == {"top": [4, 4], "bottom": [8, 8]}
    assert 0 <= report["val"]["code_accuracy"] <= 1 and report["val"]["psnr"] > 0
    assert json.loads((tmp_path / "upscaler" / "upscaler.json").read_text())["best_epoch"] == report["best_epoch"]
    model, meta = load_upscaler(up, "cpu")
    assert meta["kind"] == KIND and meta["vqvae"] == vq and meta["factor"] == 2 and model.input_size == 16
    assert meta["val"] == report["val"] and meta["epoch"] == report["best_epoch"]
    assert (tmp_path / "upscaler" / "train" / KIND / "meta.json").exists(), "the Ray Train run beside the model"

    out = tmp_path / "ext"
    rec = evaluate_upscale(RunPaths.of(data=data, upscaler=up), cfg, str(out), features=thumbnail, **QUIET)
    saved = json.loads((out / "upscale.json").read_text())
    m = saved["methods"]
    assert saved["images"] == 6 and saved["input_size"] == 16 and set(m) == {"upscaler", "bicubic", "nearest",
                                                                             "vq_reconstruction"}
    assert m["bicubic"]["psnr"] > m["nearest"]["psnr"], "bicubic beats pixel repetition on real emoji"
    assert all(m[k]["fid"] is not None for k in m) and set(m["upscaler"]["code_accuracy"]) == {"top", "bottom"}
    assert rec["vs_bicubic"]["upscaler"]["psnr_db"] == pytest.approx(m["upscaler"]["psnr"] - m["bicubic"]["psnr"], abs=1e-3)
    assert saved["vs_bicubic"]["upscaler"]["fid_ratio"] == pytest.approx(m["upscaler"]["fid"] / m["bicubic"]["fid"], rel=1e-3)
    assert Image.open(out / "upscale.png").size == (2 * (150 + 6 * 34 + 2), 2 * (2 + 5 * 34)), "5 rows of 6 examples"

    # the CLI demo: a large file is shrunk to 16 px first; an emoji name is looked up in the dataset
    Image.fromarray(np.full((72, 72, 3), (30, 160, 220), np.uint8)).save(tmp_path / "big.png")
    assert main(["upscale", str(tmp_path / "big.png"), "grinning face", "--upscaler", up, "--data", data,
                 "--out", str(out)]) == 0
    assert Image.open(out / "big_upscaled.png").size == (32, 32)
    assert Image.open(out / "upscale_big.png").size[0] > 3 * 32 and (out / "upscale_grinning-face.png").exists()

    # one-line errors: no upscaler, a VQ-VAE the upscaler was not trained for, missing inputs
    with pytest.raises(EmojirayError, match="no upscaler at"):
        load_upscaler(str(tmp_path / "nowhere"))
    _, other_vq = tiny_pair(tmp_path / "other", "maskgit", seed=1)
    with pytest.raises(EmojirayError, match="was trained for the VQ-VAE"):
        load_pair(up, other_vq, "cpu")
    capsys.readouterr()
    assert main(["upscale", "grinning face", "--upscaler", up, "--vqvae", other_vq, "--data", data,
                 "--out", str(out)]) == 1
    assert "was trained for the VQ-VAE" in capsys.readouterr().err
    assert main(["upscale", "x.png", "--run", str(tmp_path / "nowhere")]) == 1
    assert "no upscaler at" in capsys.readouterr().err
    assert main(["upscale", "--upscaler", up, "--out", str(out)]) == 1
    assert "give one or more image files" in capsys.readouterr().err
    assert main(["train-upscaler", "--data", data]) == 1
    assert "give --data DATA, --vqvae VQVAE and --out URI" in capsys.readouterr().err
    with pytest.raises(EmojirayError, match="no VQ-VAE at"):
        train_upscaler(data, str(tmp_path / "none"), up, cfg, **QUIET)
