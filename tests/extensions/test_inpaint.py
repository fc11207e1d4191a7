"""Inpainting: mask specs, the naive baseline, MaskGIT completions keep the unmasked pixels, the metric."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from emojiray.cli import main
from emojiray.config import DataConfig, load_config
from emojiray.data.prepare import prepare
from emojiray.errors import EmojirayError
from emojiray.extensions.codes import code_masks
from emojiray.extensions.inpaint import evaluate_inpaint, inpaint, naive_fill, parse_mask, random_boxes
from emojiray.extensions.paths import RunPaths
from emojiray.generate.sampler import Sampler
from helpers import tiny_pair


def test_mask_specs(tmp_path):
    m = parse_mask("box:4,8,12,16", 32)
    assert m.sum() == 8 * 8 and m[8, 4] and m[15, 11] and not m[16, 11] and not m[8, 12]
    f = parse_mask("box:0.25,0.25,0.75,0.75", 32)
    assert f.sum() == 16 * 16 and f[8, 8] and not f[24, 24]
    png = tmp_path / "mask.png"
    img = np.zeros((64, 64), np.uint8)
    img[:32] = 255  # the top half, at another resolution
    Image.fromarray(img).save(png)
    half = parse_mask(str(png), 32)
    assert half[:16].all() and not half[16:].any()
    for bad, msg in [("box:1,2,3", "expected box:x0,y0,x1,y1"), ("box:10,10,5,20", "is empty"),
                     ("circle:3", "give box:"), (str(tmp_path / "none.png"), "give box:")]:
        with pytest.raises(EmojirayError, match=msg):
            parse_mask(bad, 32)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "black.png")
    with pytest.raises(EmojirayError, match="marks no pixel"):
        parse_mask(str(tmp_path / "black.png"), 32)


def test_random_boxes_fit_and_code_masks_cover_them():
    masks = random_boxes(50, 32, 0.4, seed=0)
    side = 13
    assert masks.shape == (50, 32, 32) and (masks.sum((1, 2)) == side * side).all()
    assert not np.array_equal(masks[0], masks[1])
    cm = code_masks(masks[0], {"top": (4, 4), "bottom": (8, 8)})
    ys, xs = np.nonzero(masks[0])
    for lv, g in (("top", 8), ("bottom", 4)):  # every masked pixel's cell is masked, no cell far away
        assert cm[lv].numpy()[ys // g, xs // g].all()
        assert cm[lv].sum() <= (side // g + 2) ** 2


def test_naive_fill_recovers_smooth_content():
    flat = np.full((1, 32, 32, 3), (200, 40, 90), np.uint8)
    mask = random_boxes(1, 32, 0.4, seed=1)
    assert np.array_equal(naive_fill(flat, mask), flat), "a constant image is filled exactly"
    ramp = np.broadcast_to(np.linspace(0, 255, 32).astype(np.uint8)[None, None, :, None], (1, 32, 32, 3)).copy()
    filled = naive_fill(ramp, mask)
    assert np.array_equal(filled[~mask], ramp[~mask])
    err = np.abs(filled[mask].astype(int) - ramp[mask].astype(int)).mean()
    assert err < 0.25 * np.abs(ramp[mask].astype(int) - 128).mean() + 10  # far better than grey


def test_inpaint_keeps_unmasked_pixels_and_varies_inside(tmp_path):
    prior, _ = tiny_pair(tmp_path, "maskgit", condition="emotion")
    sampler = Sampler(prior)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    masks = random_boxes(3, 32, 0.4, seed=0)
    out = inpaint(sampler, images, masks, completions=4, steps=4, generator=sampler.generator(0))
    assert out.shape == (3, 4, 32, 32, 3)
    assert np.array_equal(out[:, :, ~masks[0]][0], np.repeat(images[0][~masks[0]][None], 4, 0))
    assert all(np.array_equal(out[i, k][~masks[i]], images[i][~masks[i]]) for i in range(3) for k in range(4))
    assert len({out[0, k].tobytes() for k in range(4)}) > 1, "completions differ"
    again = inpaint(sampler, images, masks, completions=4, steps=4, generator=sampler.generator(0))
    assert np.array_equal(out, again), "a seed fixes the completions"
    with pytest.raises(EmojirayError, match="do not match"):
        inpaint(sampler, images, masks[:2])
    ar, _ = tiny_pair(tmp_path, "transformer")
    with pytest.raises(EmojirayError, match="MaskGIT"):
        inpaint(Sampler(ar), images, masks)


def test_evaluate_inpaint_and_cli(npm_cache, tmp_path, capsys):
    data = str(tmp_path / "ds")
    prepare(DataConfig(npm_version="0.0.0-test", size=32, val_fraction=0.2, test_fraction=0.2), data,
            log=lambda *_: None)
    prior, vq = tiny_pair(tmp_path, "maskgit")
    cfg = load_config("smoke", ["extensions.eval_images=6", "inpaint.completions=2", "inpaint.steps=2"])
    out = tmp_path / "ext"
    rec = evaluate_inpaint(RunPaths.of(data=data, prior=prior, vqvae=vq), cfg, str(out), log=lambda *_: None)
    saved = json.loads((out / "inpaint.json").read_text())
    assert saved["images"] == 6 and saved["box_side"] == 13
    m = saved["methods"]
    assert set(m) == {"maskgit", "maskgit_best", "maskgit_greedy", "naive_fill", "vq_reconstruction"}
    assert m["maskgit_best"]["psnr"] >= m["maskgit"]["psnr"] - 1e-6, "the best completion is at least the mean"
    assert rec["vs_naive_fill"]["maskgit"]["psnr_db"] == pytest.approx(m["maskgit"]["psnr"] - m["naive_fill"]["psnr"], abs=1e-3)
    assert Image.open(out / "inpaint.png").size[0] > 100

    # the CLI demo on a file and a name; one-line errors
    Image.fromarray(np.full((48, 48, 3), 200, np.uint8)).save(tmp_path / "in.png")
    args = ["inpaint", str(tmp_path / "in.png"), "grinning face", "--mask", "box:0.2,0.2,0.6,0.6", "-n", "2",
            "--prior", prior, "--data", data, "--out", str(out), "--set", "inpaint.steps=2"]
    assert main(args) == 0
    assert (out / "inpaint_in.png").exists() and (out / "in_inpainted_2.png").exists()
    assert (out / "inpaint_grinning-face.png").exists()
    assert main(["inpaint", "x.png", "--prior", prior, "--out", str(out)]) == 1
    assert "give --mask" in capsys.readouterr().err
    assert main(["inpaint", "no such emoji", "--mask", "box:1,1,9,9", "--prior", prior, "--data", data,
                 "--out", str(out)]) == 1
    assert "no emoji named 'no such emoji'" in capsys.readouterr().err
    assert main(["inpaint", "--evaluate", "--run", str(tmp_path / "nowhere")]) == 1
    assert "no data at" in capsys.readouterr().err
