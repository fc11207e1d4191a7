"""eval-vqvae: metrics JSON, grid, code statistics and errors, on a tiny untrained checkpoint."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from emojiray.config import Config, DataConfig, ModelConfig
from emojiray.data.prepare import prepare
from emojiray.errors import EmojirayError
from emojiray.eval.vqvae import eval_vqvae
from emojiray.models import build_vqvae
from emojiray.models import checkpoint as ckpt

TINY = ModelConfig(channels=32, res_blocks=1, res_channels=16, codebook_size=[32, 16], code_dim=[8, 8])


@pytest.fixture
def setup(npm_cache, tmp_path):
    data = str(tmp_path / "ds")
    m = prepare(DataConfig(npm_version="0.0.0-test", size=32, val_fraction=0.2, test_fraction=0.2), data,
                log=lambda *_: None)
    cfg = Config(data=DataConfig(size=32), model=TINY)
    torch.manual_seed(0)
    model = build_vqvae(cfg.model, 32)
    model.train()(torch.randn(16, 3, 32, 32))  # k-means init, so codes are spread
    ckpt.save(tmp_path / "model", model, "vqvae", cfg.to_dict(), step=0, epoch=0)
    return data, m, str(tmp_path / "model"), tmp_path


def test_metrics_json_and_grid(setup):
    data, manifest, model_uri, tmp = setup
    r = eval_vqvae(model_uri, data, str(tmp / "out"), split="heldout", fid_images=6, log=lambda *_: None)
    heldout = manifest["counts"]["split"]["val"] + manifest["counts"]["split"]["test"]
    assert r["images"] == heldout and r["rfid_images"] == 6
    assert r["mse"] > 0 and math.isclose(r["psnr"], r["psnr"]) and -1 <= r["ssim"] <= 1
    assert r["rfid"] > 0
    assert set(r["levels"]) == {"top", "bottom"}
    for level, K, side in (("top", 16, 4), ("bottom", 32, 8)):
        lv = r["levels"][level]
        assert lv["codebook_size"] == K and lv["grid"] == [side, side]
        assert 1 <= lv["codes_used"] <= K and 1 <= lv["perplexity"] <= lv["codes_used"] + 1e-9
        assert math.isclose(lv["kl_uniform_nats"], math.log(K) - math.log(lv["perplexity"]), rel_tol=1e-9, abs_tol=1e-9)
    assert r["bits_per_image"] == 4 * 4 * math.log2(16) + 8 * 8 * math.log2(32)
    assert r["entropy_coded_bits_per_image"] <= r["bits_per_image"]
    saved = json.loads((tmp / "out" / "eval_vqvae.json").read_text())
    assert saved["codes_used"] == r["codes_used"]
    sheet = np.asarray(Image.open(tmp / "out" / "recon_grid.png"))
    assert sheet.shape[0] == 2 * 32 + 3 * 2  # originals row above reconstructions row


def test_eval_errors(setup, tmp_path):
    data, _, model_uri, tmp = setup
    with pytest.raises(EmojirayError, match="checkpoint not found"):
        eval_vqvae(str(tmp / "nope"), data, str(tmp / "o"), fid=False)
    d64 = str(tmp_path / "ds64")
    prepare(DataConfig(npm_version="0.0.0-test", size=64, source="npm:google"), d64, log=lambda *_: None)
    with pytest.raises(EmojirayError, match="trained on 32 px"):
        eval_vqvae(model_uri, d64, str(tmp / "o"), fid=False)
