"""A prior decodes only through the VQ-VAE whose codes it learned (by weights hash, not by shape)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emojiray.errors import EmojirayError
from emojiray.generate.sampler import Sampler
from emojiray.models import checkpoint as ckpt
from helpers import tiny_pair


def test_a_vqvae_of_the_same_shape_but_other_weights_is_refused(tmp_path):
    prior, vq = tiny_pair(tmp_path / "a", seed=0)
    _, same_shape = tiny_pair(tmp_path / "b", seed=1)
    assert ckpt.read_meta(prior)["vqvae_sha256"] == ckpt.weights_hash(ckpt.read_meta(vq))
    Sampler(prior, device="cpu")  # its own VQ-VAE (the linked one) loads
    with pytest.raises(EmojirayError, match=r"the prior learned the codes of another VQ-VAE .*: pass the VQ-VAE"):
        Sampler(prior, same_shape, device="cpu")


def test_a_prior_without_the_link_hash_still_loads(tmp_path):
    prior, vq = tiny_pair(tmp_path, seed=0)
    meta_path = Path(prior) / ckpt.META
    meta = json.loads(meta_path.read_text())
    del meta["vqvae_sha256"]  # a prior trained before the link was recorded (its weights hash stays)
    meta_path.write_text(json.dumps(meta))
    assert Sampler(prior, vq, device="cpu").vqvae_uri == vq
