"""Priors trained with Ray Train over code shards; code extraction; the sampler."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from emojiray.config import Config, DataConfig, ModelConfig, RayConfig, TrainConfig
from emojiray.data.codes import MIRROR, codes_from_table, extract_codes, load_codes_manifest, read_code_tables
from emojiray.data.prepare import prepare
from emojiray.errors import EmojirayError
from emojiray.generate.sampler import Sampler
from emojiray.models import build_vqvae
from emojiray.models import checkpoint as ckpt
from emojiray.train.prior_loop import train_prior
from helpers import set_keys

pytestmark = pytest.mark.ray

GRIDS = {"top": (2, 2), "bottom": (4, 4)}
SIZES = {"top": 8, "bottom": 16}


def synthetic_codes(root, n_train=256, n_val=64) -> str:
    """Code shards with structure a prior can learn: a few top templates, bottom = f(top, class)."""
    rng = np.random.default_rng(0)
    templates = rng.integers(0, 8, (4, 4))
    manifest = {"format": "emojiray-codes", "format_version": 1, "levels": ["top", "bottom"],
                "grids": {k: list(v) for k, v in GRIDS.items()}, "codebook_size": SIZES,
                "vocab": {"category": ["a", "b"], "vendor": ["v"], "emotion": ["happy", "sad", "none"]},
                "vqvae": "unused", "splits": {"test": {"rows": 0, "files": []}}}
    for split, n in (("train", n_train), ("val", n_val)):
        t = rng.integers(0, 4, n)
        emotion = rng.integers(0, 3, n)
        top = templates[t]  # (n, 4)
        bottom = (np.repeat(np.repeat(top.reshape(n, 2, 2), 2, 1), 2, 2).reshape(n, 16) * 2 + (emotion[:, None] % 2)) % 16
        table = pa.table({
            "top": pa.FixedSizeListArray.from_arrays(pa.array(top.reshape(-1).astype(np.int16)), 4),
            "bottom": pa.FixedSizeListArray.from_arrays(pa.array(bottom.reshape(-1).astype(np.int16)), 16),
            "key": [f"{split}-{i}" for i in range(n)],
            "category": rng.integers(0, 2, n), "vendor": np.zeros(n, np.int64), "emotion": emotion,
        })
        (root / split).mkdir(parents=True)
        pq.write_table(table, root / split / "codes-0.parquet")
        manifest["splits"][split] = {"rows": n, "files": [f"{split}/codes-0.parquet"]}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return str(root)


def prior_config(kind: str, **prior) -> Config:
    cfg = Config(ray=RayConfig(num_cpus=3, num_workers=1, data_cpus=1), train=TrainConfig(log_every=5, report_every_s=0))
    return set_keys(cfg, "prior", **{"kind": kind, "dim": 32, "layers": 2, "heads": 4, "channels": 16, "blocks": 1,
                                     "res_per_block": 1, "dropout": 0.0, "epochs": 3, "batch_size": 32, "lr": 3e-3,
                                     "warmup_steps": 5, **prior})


def test_two_workers_lower_the_nll_and_keep_the_best(ray_local, tmp_path):
    codes = synthetic_codes(tmp_path / "codes")
    cfg = prior_config("transformer", condition="emotion", epochs=4)
    cfg.ray.num_workers = 2
    record = train_prior(cfg, codes, str(tmp_path / "run"), log=lambda *_: None)
    bits = [h["val_bits_per_code"] for h in record["history"]]
    assert len(bits) == 4 and bits[-1] < bits[0]
    assert bits[0] < np.log2(16)  # below the uniform code length after one epoch
    assert record["metrics"]["val_bits_per_code"] == min(bits)  # the exported model is the best one
    assert record["best_epoch"] == 1 + bits.index(min(bits))
    meta = ckpt.read_meta(tmp_path / "run" / "prior", kind="prior")
    assert meta["n_classes"] == 3 and meta["layout"]["levels"] == ["top", "bottom"]


def test_resume_continues(ray_local, tmp_path):
    codes = synthetic_codes(tmp_path / "codes")
    out = str(tmp_path / "run")
    first = train_prior(prior_config("transformer", epochs=1), codes, out, log=lambda *_: None)
    with pytest.raises(EmojirayError, match="--resume"):
        train_prior(prior_config("transformer", epochs=2), codes, out, log=lambda *_: None)
    second = train_prior(prior_config("transformer", epochs=2), codes, out, resume=True, log=lambda *_: None)
    assert [h["epoch"] for h in second["history"]] == [1, 2]
    assert second["history"][0] == first["history"][0]
    assert second["history"][1]["step"] == 2 * first["history"][0]["step"]


def test_extract_codes_and_sampler(ray_local, npm_cache, tmp_path):
    data = str(tmp_path / "ds")
    m = prepare(DataConfig(npm_version="0.0.0-test", size=32, val_fraction=0.2, test_fraction=0.2), data,
                log=lambda *_: None)
    cfg = Config(data=DataConfig(size=32), model=ModelConfig(channels=32, res_blocks=1, res_channels=16,
                                                             codebook_size=[32, 16], code_dim=[8, 8]))
    torch.manual_seed(0)
    vq = build_vqvae(cfg.model, 32)
    vq.train()(torch.randn(16, 3, 32, 32))
    ckpt.save(tmp_path / "vq", vq, "vqvae", cfg.to_dict(), step=0, epoch=0)
    out = str(tmp_path / "codes")
    record = extract_codes(str(tmp_path / "vq"), data, out, RayConfig(num_cpus=3), mirror=True, log=lambda *_: None)
    for split in ("train", "val", "test"):  # the train split with its images' mirror images
        assert record["splits"][split]["rows"] == m["counts"]["split"][split] * (2 if split == "train" else 1)
        assert sum(t.num_rows for t in read_code_tables(out, record, split)) == record["splits"][split]["rows"]
    train_keys = [k for t in read_code_tables(out, record, "train") for k in t.column("key").to_pylist()]
    assert len(set(train_keys)) == len(train_keys) and sum(k.endswith(MIRROR) for k in train_keys) == len(train_keys) // 2
    manifest = load_codes_manifest(out)
    tables = list(read_code_tables(out, manifest, "val"))
    grids = codes_from_table(tables[0], manifest)
    assert grids["top"].shape[1:] == (4, 4) and grids["bottom"].shape[1:] == (8, 8)
    assert grids["top"].max() < 16 and grids["bottom"].max() < 32
    # the codes are the VQ-VAE's encodings of the stored images
    assert set(tables[0].column_names) >= {"top", "bottom", "key", "category", "vendor", "emotion"}

    prior = train_prior(prior_config("pixelsnail", condition="emotion", epochs=1), out,
                        str(tmp_path / "prior"), log=lambda *_: None)
    assert prior["history"][0]["val_bits_per_code"] > 0
    sampler = Sampler(prior["prior"], device="cpu")
    images, codes = sampler.sample(3, sampler.condition_ids("happy", 3), seed=1)
    assert images.shape == (3, 32, 32, 3) and images.dtype == np.uint8
    again, _ = sampler.sample(3, sampler.condition_ids("happy", 3), seed=1)
    assert np.array_equal(images, again)  # deterministic for a seed
    with pytest.raises(EmojirayError, match="unknown emotion"):
        sampler.condition_ids("ecstatic", 3)
    other = Config(data=DataConfig(size=32), model=ModelConfig(channels=32, res_blocks=1, res_channels=16,
                                                               codebook_size=[64, 16], code_dim=[8, 8]))
    ckpt.save(tmp_path / "vq2", build_vqvae(other.model, 32), "vqvae", other.to_dict(), step=0, epoch=0)
    with pytest.raises(EmojirayError, match="do not match"):
        Sampler(prior["prior"], str(tmp_path / "vq2"), device="cpu")


def test_max_seconds_stops_training_and_records_class_counts(ray_local, tmp_path):
    codes = synthetic_codes(tmp_path / "codes")
    cfg = prior_config("maskgit", condition="emotion", epochs=50, max_seconds=0.01)
    record = train_prior(cfg, codes, str(tmp_path / "run"), log=lambda *_: None)
    assert len(record["history"]) == 1  # the time budget ends training in the first epoch, not after 50
    # MaskGIT through Ray Train (that it learns: tests/train/test_harness.py, without Ray)
    assert 0 < record["history"][0]["val_bits_per_code"] < 2 * np.log2(16)
    meta = ckpt.read_meta(tmp_path / "run" / "prior", kind="prior")
    assert meta["config"]["prior"]["kind"] == "maskgit"
    emotion = pq.read_table(tmp_path / "codes" / "train" / "codes-0.parquet").column("emotion").to_numpy()
    assert meta["class_counts"] == np.bincount(emotion, minlength=3).tolist()  # the sampler's default mix
