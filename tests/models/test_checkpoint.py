"""Checkpoints: safetensors + weights_only state; tampered or foreign files are refused."""

from __future__ import annotations

import hashlib
import json
import pickle

import pytest
import torch

from emojiray.config import Config, ModelConfig
from emojiray.errors import EmojirayError
from emojiray.models import build_vqvae
from emojiray.models import checkpoint as ckpt

SMALL = ModelConfig(channels=32, res_channels=16, codebook_size=[32, 16], code_dim=[8, 8])


def _saved(tmp_path):
    cfg = Config(model=SMALL)
    model = build_vqvae(cfg.model)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.randn(2, 3, 32, 32)).vq_loss.backward()
    opt.step()
    d = ckpt.save(tmp_path / "c", model, "vqvae", cfg.to_dict(), trainer_state={"optimizer": opt.state_dict(), "step": 3},
                  step=3, epoch=1)
    return d, model


def test_round_trip(tmp_path):
    d, model = _saved(tmp_path)
    loaded, cfg, meta = ckpt.load_vqvae(str(d))
    assert meta["step"] == 3 and cfg.model.codebook_size == [32, 16]
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    state = ckpt.load_trainer_state(d)
    assert state["step"] == 3 and "state" in state["optimizer"]


def _rehash(d):
    """Record the current weights' hash in meta.json (a foreign file under a consistent meta)."""
    meta = json.loads((d / ckpt.META).read_text())
    meta[ckpt.HASH_KEY] = hashlib.sha256((d / ckpt.WEIGHTS).read_bytes()).hexdigest()
    (d / ckpt.META).write_text(json.dumps(meta))


def test_tampered_weights_are_refused(tmp_path):
    d, _ = _saved(tmp_path)
    blob = (d / ckpt.WEIGHTS).read_bytes()
    (d / ckpt.WEIGHTS).write_bytes(blob[:100] + b"garbage" + blob[107:-50])
    with pytest.raises(EmojirayError, match="differs from the hash"):
        ckpt.load_vqvae(str(d))
    _rehash(d)
    with pytest.raises(EmojirayError, match="not a valid safetensors file"):
        ckpt.load_vqvae(str(d))


def test_flipped_tensor_bytes_are_refused(tmp_path):
    """Damage inside the tensor data leaves a well-formed safetensors file: only the hash sees it."""
    d, _ = _saved(tmp_path)
    blob = bytearray((d / ckpt.WEIGHTS).read_bytes())
    blob[-300:-44] = bytes(b ^ 0xFF for b in blob[-300:-44])
    (d / ckpt.WEIGHTS).write_bytes(bytes(blob))
    with pytest.raises(EmojirayError, match="differs from the hash its meta.json records"):
        ckpt.load_vqvae(str(d))


def test_non_finite_weights_are_refused(tmp_path):
    cfg = Config(model=SMALL)
    model = build_vqvae(cfg.model)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    d = ckpt.save(tmp_path / "nan", model, "vqvae", cfg.to_dict(), step=0, epoch=0, metrics={"val_psnr": float("nan")})
    assert json.loads((d / ckpt.META).read_text())["metrics"]["val_psnr"] is None  # no bare NaN in meta.json
    with pytest.raises(EmojirayError, match="NaN or infinite weights"):
        ckpt.load_vqvae(str(d))


def test_hash_is_required_from_format_2_and_optional_before(tmp_path):
    d, model = _saved(tmp_path)
    meta = json.loads((d / ckpt.META).read_text())
    assert meta["format_version"] == 2
    assert meta[ckpt.HASH_KEY] == hashlib.sha256((d / ckpt.WEIGHTS).read_bytes()).hexdigest()
    del meta[ckpt.HASH_KEY]
    (d / ckpt.META).write_text(json.dumps(meta))
    with pytest.raises(EmojirayError, match="records no weights_sha256"):
        ckpt.load_vqvae(str(d))
    (d / ckpt.META).write_text(json.dumps({**meta, "format_version": 1}))  # saved before hashes existed
    loaded, _, _ = ckpt.load_vqvae(str(d))
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())


def test_pickle_with_code_is_refused(tmp_path):
    d, _ = _saved(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(d / ckpt.TRAINER, "wb") as f:
        pickle.dump({"x": Evil()}, f)
    with pytest.raises(EmojirayError, match="refused"):
        ckpt.load_trainer_state(d)


def test_foreign_or_mismatched_checkpoints(tmp_path):
    d, _ = _saved(tmp_path)
    with pytest.raises(EmojirayError, match="expected 'prior'"):
        ckpt.read_meta(d, kind="prior")
    meta = json.loads((d / ckpt.META).read_text())
    meta["config"]["model"]["codebook_size"] = [64, 16]  # weights no longer fit
    (d / ckpt.META).write_text(json.dumps(meta))
    with pytest.raises(EmojirayError, match="does not fit this model"):
        ckpt.load_vqvae(str(d))
    (d / ckpt.META).write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(EmojirayError, match="not an emojiray checkpoint"):
        ckpt.load_vqvae(str(d))
    with pytest.raises(EmojirayError, match="checkpoint not found"):
        ckpt.load_vqvae(str(tmp_path / "missing"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EmojirayError, match="no meta.json"):
        ckpt.load_vqvae(str(empty))


def test_unwrap_ddp_and_compile_wrappers():
    model = build_vqvae(SMALL)

    class Wrapper(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.module = m

    assert ckpt.unwrap(Wrapper(Wrapper(model))) is model


def test_linked_models_resolve_relative_to_the_model():
    assert ckpt.linked_uri("results/models/cpu/prior", "../vqvae") == "results/models/cpu/vqvae"
    assert ckpt.linked_uri("/a/b/prior", "/x/vqvae") == "/x/vqvae"
    assert ckpt.linked_uri("/a/b/prior", "s3://bucket/run/vqvae") == "s3://bucket/run/vqvae"
    assert ckpt.linked_uri("s3://bucket/models/prior", "../vqvae") == "s3://bucket/models/vqvae"
