"""The data pipeline against S3 (a moto server on loopback): prepare, re-use, stream."""

from __future__ import annotations

import uuid

import pytest

from emojiray import storage
from emojiray.config import DataConfig
from emojiray.data import shards
from emojiray.data.prepare import prepare


@pytest.fixture
def s3_dataset(s3, npm_cache):
    uri = storage.join(s3, f"ds-{uuid.uuid4().hex[:8]}")
    cfg = DataConfig(source="npm:google,twitter", npm_version="0.0.0-test", size=32, shard_rows=16,
                     val_fraction=0.25, test_fraction=0.25)
    return uri, prepare(cfg, uri, log=lambda *_: None)


def test_prepare_to_s3_is_complete_and_verifiable(s3_dataset):
    uri, m = s3_dataset
    assert shards.load_manifest(uri)["run_id"] == m["run_id"]
    assert not shards.verify(uri, m)
    listed = {u[len(uri) + 1:] for u in storage.list_files(uri)}
    assert listed == {s["path"] for s in m["shards"]} | {"manifest.json"}


def test_rerun_to_s3_is_noop_then_rebuild_removes_old_shards(s3_dataset):
    uri, m = s3_dataset
    cfg = DataConfig(**{**m["config"]})
    assert prepare(cfg, uri, log=lambda *_: None)["run_id"] == m["run_id"]
    cfg.size = 16
    new = prepare(cfg, uri, log=lambda *_: None)
    listed = {u[len(uri) + 1:] for u in storage.list_files(uri)}
    assert listed == {s["path"] for s in new["shards"]} | {"manifest.json"}


def test_parquet_source_from_s3(s3_dataset, tmp_path):
    uri, m = s3_dataset
    local = prepare(DataConfig(source=f"parquet:{uri}", size=16), str(tmp_path / "ds16"), log=lambda *_: None)
    assert local["counts"]["total"] == m["counts"]["total"]
    assert local["sources"][0]["uri"] == uri


@pytest.mark.ray
def test_ray_data_streams_from_s3(ray_local, s3_dataset):
    from emojiray.data import read_images

    uri, m = s3_dataset
    n = sum(b["image"].shape[0] for b in read_images(uri, "train").iter_torch_batches(batch_size=8))
    assert n == m["counts"]["split"]["train"]
