"""`emojiray eval-samples` on a local Ray: metrics JSON, sheets, memorization, the real-feature cache."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from emojiray import storage
from emojiray.cli import main
from emojiray.config import DataConfig, EvalConfig, RayConfig, SampleConfig
from emojiray.data import shards
from emojiray.data.prepare import prepare
from emojiray.errors import EmojirayError
from emojiray.eval.samples import eval_samples
from emojiray.generate.sample_run import FORMAT, sample_run, samples_table, table_bytes
from helpers import tiny_pair

pytestmark = pytest.mark.ray
pytest.importorskip("ray").cloudpickle.register_pickle_by_value(sys.modules[__name__])  # actors get the factory

RAY = RayConfig(num_cpus=3, data_cpus=1)
PARAMS = {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "guidance": 1.0, "maskgit_steps": 4}


def thumbnail_factory(device):
    """Cheap deterministic features for tests: 4x4 block means of the pixels (48-d)."""
    import torch

    def features(images):
        x = torch.from_numpy(np.asarray(images)).float().permute(0, 3, 1, 2)
        return torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1).numpy()

    return features


@pytest.fixture
def data(npm_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("EMOJIRAY_CACHE", str(tmp_path / "cache"))
    uri = str(tmp_path / "ds")
    prepare(DataConfig(npm_version="0.0.0-test", size=32, val_fraction=0.2, test_fraction=0.2), uri,
            log=lambda *_: None)
    return uri


def copy_run(uri: str, data_uri: str, copies: int, noise: int) -> None:
    """A hand-made sample run: exact copies of training images, then random noise images."""
    manifest = shards.load_manifest(data_uri)
    train = np.concatenate([shards.pixels_from_table(t, manifest)
                            for t in shards.iter_tables(data_uri, manifest, "train", columns=["image"])])
    rng = np.random.default_rng(0)
    images = np.concatenate([train[:copies], rng.integers(0, 256, (noise, 32, 32, 3), dtype=np.uint8)])
    n = len(images)
    codes = {"top": rng.integers(0, 16, (n, 4, 4)), "bottom": rng.integers(0, 32, (n, 8, 8))}
    storage.write_bytes(storage.join(uri, "shards/samples-00000.parquet"),
                        table_bytes(samples_table(0, images, codes, None, [], 0, PARAMS)))
    storage.write_json(storage.join(uri, "manifest.json"), {
        "format": FORMAT, "kind": "copies", "prior": "none", "vqvae": "none", "count": n, "image_size": 32,
        "levels": ["top", "bottom"], "grids": {"top": [4, 4], "bottom": [8, 8]}, "params": PARAMS,
        "condition": {"name": "none", "mode": "none", "value": None}, "created": "now",
        "files": [{"path": "shards/samples-00000.parquet", "rows": n, "start": 0}]})


def test_exact_copies_are_flagged_as_memorized(ray_local, data, tmp_path):
    samples = str(tmp_path / "copies")
    copy_run(samples, data, copies=6, noise=6)
    lines = []
    r = eval_samples(samples, data, str(tmp_path / "eval"), cfg=EvalConfig(kid_subsets=5), ray_cfg=RAY,
                     feature_factory=thumbnail_factory, feature_id="thumb-test", log=lines.append)
    assert r["memorized_share"] == pytest.approx(0.5)  # the 6 copies and nothing else
    mem = r["memorization"]
    assert mem["pixel_rmse"]["count"] == 6 and mem["pixel_rmse"]["threshold"] > 0
    assert mem["feature"]["count"] >= 6
    assert r["diversity"]["distinct_code_sequences"] == 12
    assert r["precision"] is not None and 0 <= r["precision"] <= 1 and 0 <= r["recall"] <= 1
    assert r["fid"] > 0 and r["kid"] is not None and r["real_vs_real_fid"] > 0
    for sheet in ("samples_grid.png", "samples_nearest.png"):
        assert (tmp_path / "eval" / sheet).stat().st_size > 0
    assert not (tmp_path / "eval" / "samples_conditions.png").exists()  # unconditional samples
    saved = json.loads((tmp_path / "eval" / "eval_samples.json").read_text())
    assert saved["memorized_share"] == r["memorized_share"] and saved["count"] == 12

    # real features come from the cache the second time (keyed by the shards' content hashes)
    lines = []
    again = eval_samples(samples, data, str(tmp_path / "eval2"), cfg=EvalConfig(kid_subsets=5), ray_cfg=RAY,
                         feature_factory=thumbnail_factory, feature_id="thumb-test", log=lines.append)
    assert sum("from the cache" in ln for ln in lines) == 2
    assert again["fid"] == pytest.approx(r["fid"]) and again["memorized_share"] == r["memorized_share"]


def test_conditional_samples_get_per_condition_fid_and_a_sheet(ray_local, data, tmp_path):
    prior, vq = tiny_pair(tmp_path, "maskgit", size=32)
    samples = str(tmp_path / "samples")
    sample_run(prior, samples, 12, cfg=SampleConfig(batch_size=6, shard_size=6, png=False), ray_cfg=RAY,
               condition="emotion=all", log=lambda *_: None)
    r = eval_samples(samples, data, str(tmp_path / "eval"), cfg=EvalConfig(kid_subsets=5, min_condition_images=2),
                     ray_cfg=RAY, feature_factory=thumbnail_factory, feature_id="thumb-test", log=lambda *_: None)
    values = r["per_condition"]["values"]
    assert r["per_condition"]["name"] == "emotion" and set(values) == {"happy", "sad", "none"}
    assert all(v["samples"] == 4 for v in values.values())
    assert values["none"]["real_train"] > 2 and values["none"]["fid_train"] is not None
    assert r["prior"] == "maskgit" and r["count"] == 12
    assert (tmp_path / "eval" / "samples_conditions.png").stat().st_size > 0


def test_cli_with_the_standard_inception_features_and_errors(ray_local, data, tmp_path, capsys):
    prior, _ = tiny_pair(tmp_path, "maskgit", size=32)
    samples = str(tmp_path / "s")
    assert main(["sample", "--prior", prior, "-n", "6", "--out", samples, "--no-png", "--shard-size", "6",
                 "--set", "ray.num_cpus=3"]) == 0
    out = tmp_path / "e"
    assert main(["eval-samples", "--samples", samples, "--real", data, "--out", str(out), "--real-images", "6",
                 "--set", "ray.num_cpus=3", "--set", "eval.kid_subsets=5"]) == 0
    r = json.loads((out / "eval_samples.json").read_text())
    assert r["features"].startswith("tf-inception-pool3") and r["real_images"]["heldout"] == 6
    assert r["fid"] > 0 and r["count"] == 6
    capsys.readouterr()
    assert main(["eval-samples", "--samples", str(tmp_path / "nothing"), "--real", data, "--out", str(out)]) == 1
    assert capsys.readouterr().err.strip().startswith("emojiray: error: no samples at")
    big = str(tmp_path / "ds64")
    prepare(DataConfig(npm_version="0.0.0-test", size=16), big, log=lambda *_: None)
    with pytest.raises(EmojirayError, match="the samples are 32 px"):
        eval_samples(samples, big, str(out), ray_cfg=RAY)
