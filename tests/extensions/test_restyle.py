"""Restyling: vendor pairs, share 0 = the tokenizer's reconstruction, the metric against the real target."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from emojiray.cli import main
from emojiray.config import DataConfig, load_config
from emojiray.data.prepare import prepare
from emojiray.errors import EmojirayError
from emojiray.extensions.codes import decode, encode
from emojiray.extensions.paths import RunPaths
from emojiray.extensions.restyle import evaluate_restyle, plausibility, restyle, restyle_tokens, vendor_pairs
from emojiray.generate.sampler import Sampler
from helpers import tiny_pair


def test_vendor_pairs_match_code_points():
    labels = {"unified": ["A", "B", "A", "C", "B", "D"], "vendor": ["g", "g", "t", "t", "t", "g"]}
    src, tgt = vendor_pairs(labels, "g", "t")
    assert src == [0, 1] and tgt == [2, 4]
    assert vendor_pairs(labels, "t", "g") == ([2, 4], [0, 1])


def test_restyle_share_controls_how_much_changes(tmp_path):
    prior, _ = tiny_pair(tmp_path, "maskgit", condition="vendor")
    sampler = Sampler(prior)
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    recon = decode(sampler.vqvae, encode(sampler.vqvae, images))
    same = restyle(sampler, images, "twitter", share=0.0, generator=sampler.generator(0))
    assert np.array_equal(same, recon), "share 0 keeps every code: the tokenizer's reconstruction"
    tokens = sampler.layout.flatten(encode(sampler.vqvae, images))
    changed = {}
    for share in (0.25, 1.0):
        new = restyle_tokens(sampler, tokens, 1, share=share, steps=3, generator=sampler.generator(0))
        changed[share] = (new != tokens).float().mean(1)
    assert (changed[0.25] <= 0.25 + 1e-6).all(), "at most the share of codes changes"
    assert (changed[1.0] > changed[0.25]).all() and (changed[0.25] > 0).any()
    top_only = restyle_tokens(sampler, tokens, 0, share=1.0, steps=2, generator=sampler.generator(0), levels=["top"])
    (a, b), (c, d) = sampler.layout.spans()
    assert torch.equal(top_only[:, c:d], tokens[:, c:d]), "bottom codes kept when only the top level may change"
    assert (top_only[:, a:b] != tokens[:, a:b]).any()
    with pytest.raises(EmojirayError, match="unknown level"):
        restyle_tokens(sampler, tokens, 0, share=0.5, levels=["middle"])
    score = plausibility(sampler.prior, tokens, torch.full((4,), 1), torch.Generator().manual_seed(0))
    assert score.shape == tokens.shape and (score <= 0).all() and torch.isfinite(score).all()
    with pytest.raises(EmojirayError, match="unknown vendor 'apple'"):
        restyle(sampler, images, "apple", 0.5)
    with pytest.raises(EmojirayError, match="share must be in"):
        restyle(sampler, images, "twitter", 1.5)
    emo, _ = tiny_pair(tmp_path, "maskgit", condition="emotion")
    with pytest.raises(EmojirayError, match="conditioned on the vendor"):
        restyle(Sampler(emo), images, "twitter", 0.5)


def thumbnail(images):
    x = torch.from_numpy(np.asarray(images)).float().permute(0, 3, 1, 2)
    return torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1).numpy()


def test_evaluate_restyle_and_cli(npm_cache, tmp_path, capsys):
    data = str(tmp_path / "ds")
    prepare(DataConfig(npm_version="0.0.0-test", size=32, val_fraction=0.3, test_fraction=0.3), data,
            log=lambda *_: None)
    prior, vq = tiny_pair(tmp_path, "maskgit", condition="vendor")
    cfg = load_config("smoke", ["extensions.eval_images=5", "restyle.shares=0.25,0.75", "restyle.steps=2"])
    out = tmp_path / "ext"
    paths = RunPaths.of(data=data, vendor_prior=prior, vqvae=vq)
    oracle = lambda images: np.tile([[0.0, 1.0]], (len(images), 1))  # always says "twitter"  # noqa: E731
    rec = evaluate_restyle(paths, cfg, str(out), features=thumbnail, vendor_probs=oracle, log=lambda *_: None)
    saved = json.loads((out / "restyle.json").read_text())
    assert saved["chosen_share"] in (0.25, 0.75) and set(saved["validation_psnr"]) == {"0.25", "0.75"}
    assert set(saved["pairs"]) == {"google->twitter", "twitter->google"}
    assert all(0 < n <= 5 for n in saved["pairs"].values())
    m = saved["methods"]
    assert set(m) == {"source", "vq_source", "restyle_0.25", "restyle_0.75"}
    # the oracle classifier says "twitter" for everything: agreement is the share of ->twitter pairs
    tw = saved["pairs"]["google->twitter"] / sum(saved["pairs"].values())
    assert m["source"]["vendor_agreement"] == pytest.approx(tw)
    assert rec["vs_source"]["psnr_db"] == pytest.approx(m[rec["chosen"]]["psnr"] - m["source"]["psnr"], abs=1e-3)
    assert Image.open(out / "restyle.png").size[0] > 100

    assert main(["restyle", "grinning face", "--to", "twitter", "--prior", prior, "--data", data, "--out", str(out),
                 "--variants", "2", "--set", "restyle.steps=2"]) == 0
    assert (out / "grinning-face_twitter.png").exists() and (out / "restyle_grinning-face.png").exists()
    # the sheet holds source, 2 variants and the real twitter drawing
    assert main(["restyle", "grinning face", "--prior", prior, "--out", str(out)]) == 1
    assert "give --to VENDOR" in capsys.readouterr().err
    assert main(["restyle", "grinning face", "--to", "apple", "--prior", prior, "--data", data, "--out", str(out)]) == 1
    assert "unknown vendor 'apple'" in capsys.readouterr().err
