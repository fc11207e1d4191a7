"""Interpolation: exact pixel blends, latent and prior paths keep their endpoints, the smoothness metric,
the CLI demo's strip and GIFs, the held-out measurement."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import tiny_pair
from PIL import Image

from emojiray.cli import main
from emojiray.config import DataConfig, load_config
from emojiray.data.prepare import prepare
from emojiray.errors import EmojirayError
from emojiray.extensions.codes import decode, encode
from emojiray.extensions.paths import RunPaths
from emojiray.extensions.interpolate import (
    crossfade,
    evaluate_interpolation,
    interpolate,
    latent_path,
    prior_path,
    seeded_pairs,
    smoothness,
)
from emojiray.generate.sampler import Sampler


def thumbnails(images):
    """Cheap deterministic features: 4x4 block means of the pixels (48-d)."""
    x = torch.from_numpy(np.asarray(images)).float().permute(0, 3, 1, 2)
    return torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1).numpy()


def two_images(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return tuple(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(2))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    prior, vq = tiny_pair(tmp_path_factory.mktemp("models"), "maskgit")
    return prior, vq, Sampler(prior)


def test_crossfade_frames_are_exact_blends():
    a, b = two_images()
    f = crossfade(a, b, 4)
    assert f.shape == (5, 32, 32, 3) and f.dtype == np.uint8
    assert np.array_equal(f[0], a) and np.array_equal(f[-1], b)
    assert np.array_equal(f[2], np.rint(0.5 * a.astype(float) + 0.5 * b.astype(float)).astype(np.uint8))
    assert np.array_equal(f[1], np.rint(0.75 * a.astype(float) + 0.25 * b.astype(float)).astype(np.uint8))
    with pytest.raises(EmojirayError, match="steps >= 1"):
        crossfade(a, b, 0)


def test_latent_path_ends_at_the_vq_reconstructions(models):
    _, _, sampler = models
    a, b = two_images(1)
    f = latent_path(sampler.vqvae, a, b, 5)
    assert f.shape == (6, 32, 32, 3) and f.dtype == np.uint8
    recon = decode(sampler.vqvae, encode(sampler.vqvae, np.stack([a, b])))
    assert np.abs(f[0].astype(int) - recon[0]).max() <= 1 and np.abs(f[-1].astype(int) - recon[1]).max() <= 1
    assert not np.array_equal(f[0], f[-1])
    assert len({x.tobytes() for x in f}) > 2, "the re-quantised latents pass through other codes"


def test_prior_path_keeps_exact_endpoints_and_mixes_between(models):
    _, _, sampler = models
    a, b = two_images(2)
    ta, tb = sampler.layout.flatten(encode(sampler.vqvae, np.stack([a, b]))).cpu()
    differ = ta != tb
    assert differ.sum() > 10
    frames, tokens = prior_path(sampler, a, b, 4, 0.3, sampler.generator(0))
    assert frames.shape == (5, 32, 32, 3) and tokens.shape == (5, len(ta))
    assert torch.equal(tokens[0].cpu(), ta) and torch.equal(tokens[-1].cpu(), tb)
    mid = tokens[2].cpu()
    assert ((mid == ta) & differ).any() and ((mid == tb) & differ).any(), "the middle mixes both"
    recon = decode(sampler.vqvae, encode(sampler.vqvae, np.stack([a, b])))
    assert np.abs(frames[0].astype(int) - recon[0]).max() <= 1

    again, _ = prior_path(sampler, a, b, 4, 0.3, sampler.generator(0))
    assert np.array_equal(frames, again), "a seed fixes the path"
    # without re-sampling the switch is monotone: B's share of the differing positions only grows
    _, plain = prior_path(sampler, a, b, 6, 0.0, sampler.generator(1))
    from_b = (plain.cpu() == tb) & differ
    assert all((from_b[k] <= from_b[k + 1]).all() for k in range(6))
    assert from_b[0].sum() == 0 and from_b[-1].sum() == differ.sum() and 0 < from_b[3].sum() < differ.sum()
    # re-sampling changes some positions that plain mixing keeps
    assert not torch.equal(tokens[2].cpu(), prior_path(sampler, a, b, 4, 0.0, sampler.generator(0))[1][2].cpu())
    with pytest.raises(EmojirayError, match="remask"):
        prior_path(sampler, a, b, 4, 1.5, sampler.generator(0))


def test_smoothness_ranks_even_steps_above_one_jump():
    levels = np.linspace(0, 240, 7)
    even = np.stack([np.full((8, 8, 3), v, np.uint8) for v in levels])
    jump = np.stack([np.full((8, 8, 3), 0 if k < 6 else 240, np.uint8) for k in range(7)])
    s_even, s_jump = smoothness(even, thumbnails), smoothness(jump, thumbnails)
    assert s_even["step_variance"] == pytest.approx(0.0, abs=1e-9)
    assert s_jump["step_variance"] == pytest.approx(5.0)  # one jump among k = 6 steps: k - 1
    assert s_even["path_length"] == pytest.approx(s_jump["path_length"]), "the same distance either way"
    assert s_jump["max_step"] == pytest.approx(6 * s_even["max_step"])
    assert s_even["detour"] == pytest.approx(1.0) and s_even["steps"] == 6
    zigzag = np.stack([even[0], even[6], even[0], even[6]])
    assert smoothness(zigzag, thumbnails)["detour"] == pytest.approx(3.0)
    with pytest.raises(EmojirayError, match="two frames"):
        smoothness(even[:1], thumbnails)


def test_pairs_are_seeded_and_of_different_emoji():
    ids = ["a", "a", "b", "c", "c", "d"]
    all_pairs = seeded_pairs(ids, 100, 0)
    assert len(all_pairs) == 15 - 2 and all(ids[i] != ids[j] and i < j for i, j in all_pairs)
    some = seeded_pairs(ids, 5, 3)
    assert len(some) == 5 and set(some) <= set(all_pairs) and some == seeded_pairs(ids, 5, 3)
    many = [str(i // 2) for i in range(400)]
    big = seeded_pairs(many, 50, 0)
    assert len(set(big)) == 50 and all(many[i] != many[j] for i, j in big)
    assert len(seeded_pairs(many, 0, 0)) == 400, "cap 0: as many pairs as images"


def test_interpolate_demo_evaluation_and_cli(npm_cache, models, tmp_path, capsys):
    prior, vq, _ = models
    data = str(tmp_path / "ds")
    prepare(DataConfig(npm_version="0.0.0-test", size=32, val_fraction=0.2, test_fraction=0.2), data,
            log=lambda *_: None)
    cfg = load_config("smoke", ["interpolate.steps=4", "extensions.eval_images=3", "extensions.examples=4",
                                "prior.maskgit_steps=2"])
    out = tmp_path / "ext"
    paths = RunPaths.of(data=data, prior=prior, vqvae=vq)
    written = interpolate("grinning face", "crying face", paths, cfg, str(out), vendor="twitter", log=lambda *_: None)
    stem = "interpolate_grinning-face_crying-face"
    assert written["sheet"].endswith(f"{stem}.png")
    assert Image.open(out / f"{stem}.png").size[1] >= 3 * 64, "three rows of enlarged emoji"
    for m in ("latent", "prior"):
        gif = Image.open(out / f"{stem}_{m}.gif")
        assert 2 <= gif.n_frames <= 2 * 5 - 2  # ping-pong of 5 frames (identical neighbours merge)
        assert gif.size == (128, 128)

    # without a prior: pixel and latent rows only
    lines = []
    only = interpolate("grinning face", "crying face", RunPaths.of(data=data, vqvae=vq), cfg, str(tmp_path / "lat"),
                       log=lines.append)
    assert set(only) == {"sheet", "latent"} and "latent paths only" in lines[0]

    rec = evaluate_interpolation(paths, cfg, str(out), features=thumbnails, log=lambda *_: None)
    saved = json.loads((out / "interpolate.json").read_text())
    assert saved["pairs"] == 3 and set(saved["methods"]) == {"crossfade", "latent", "prior"}
    for m in saved["methods"].values():
        assert m["step_variance"] >= 0 and m["path_length"] > 0 and m["steps"] == 4
    ratio = rec["step_variance_vs_crossfade"]["latent"]
    assert ratio == pytest.approx(rec["methods"]["latent"]["step_variance"] / rec["methods"]["crossfade"]["step_variance"])
    assert len(saved["per_pair"]["prior"]) == 3
    assert Image.open(out / "interpolate.png").size[1] >= 2 * 3 * 64, "two pairs, three rows each"

    # the CLI demo; one-line errors
    assert main(["interpolate", "grinning face", "angry face", "--prior", prior, "--data", data, "--out", str(out),
                 "--steps", "2", "--set", "prior.maskgit_steps=2"]) == 0
    assert (out / "interpolate_grinning-face_angry-face_prior.gif").exists()
    assert main(["interpolate", "grinning face", "--prior", prior, "--data", data, "--out", str(out)]) == 1
    assert "exactly two" in capsys.readouterr().err
    assert main(["interpolate", "grinning face", "no such emoji", "--prior", prior, "--data", data,
                 "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "no emoji named 'no such emoji'" in err and len(err.strip().splitlines()) == 1
    assert main(["interpolate", "a", "b", "--steps", "0", "--prior", prior, "--out", str(out)]) == 1
    assert "config key 'interpolate.steps' is 0: must be >= 1" in capsys.readouterr().err
    assert main(["interpolate", "--evaluate", "--run", str(tmp_path / "nowhere")]) == 1
    assert "no data at" in capsys.readouterr().err
