"""Ray Data streaming of prepared shards on a local 2-CPU Ray."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emojiray.config import DataConfig
from emojiray.data import shards
from emojiray.data.prepare import prepare
from emojiray.errors import EmojirayError
from emojiray.images import to_model_input

pytestmark = pytest.mark.ray


@pytest.fixture
def dataset(npm_cache, tmp_path):
    out = str(tmp_path / "ds")
    cfg = DataConfig(source="npm:google,twitter", npm_version="0.0.0-test", size=32, shard_rows=8,
                     val_fraction=0.25, test_fraction=0.25)
    return out, prepare(cfg, out, log=lambda *_: None)


def test_stream_yields_uint8_torch_batches_with_label_ids(ray_local, dataset):
    from emojiray.data import read_images

    uri, manifest = dataset
    ds = read_images(uri, "train")
    seen = 0
    for batch in ds.iter_torch_batches(batch_size=7):
        img = batch["image"]
        assert img.dtype == torch.uint8 and img.shape[1:] == (32, 32, 3)
        assert batch["emotion"].dtype == torch.int64
        assert ((batch["vendor"] >= 0) & (batch["vendor"] < len(manifest["vocab"]["vendor"]))).all()
        x = to_model_input(img)
        assert x.shape[1:] == (3, 32, 32) and x.min() >= -1 and x.max() <= 1
        seen += img.shape[0]
    assert seen == manifest["counts"]["split"]["train"]


def test_stream_matches_shard_contents(ray_local, dataset):
    from emojiray.data import read_images

    uri, manifest = dataset
    rows = read_images(uri, "val", labels=("emotion",)).take_all()
    expected = np.concatenate([shards.pixels_from_table(t, manifest)
                               for t in shards.iter_tables(uri, manifest, "val")])
    got = np.stack([r["image"] for r in rows])
    key = lambda a: sorted(x.tobytes() for x in a)  # noqa: E731 - order across blocks may vary
    assert key(got) == key(expected)
    emotions = {manifest["vocab"]["emotion"][r["emotion"]] for r in rows}
    assert emotions <= set(manifest["vocab"]["emotion"])


def test_stream_works_from_a_train_worker(ray_local, dataset):
    """get_dataset_shard inside a 1-worker TorchTrainer sees every training image once per epoch."""
    import ray.train
    from ray.train.torch import TorchTrainer

    from emojiray.data.stream import read_splits

    uri, manifest = dataset

    def loop(config):
        shard = ray.train.get_dataset_shard("train")
        return sum(b["image"].shape[0] for b in shard.iter_torch_batches(batch_size=5))

    result = TorchTrainer(
        loop,
        datasets=read_splits(uri, ("train",)),
        scaling_config=ray.train.ScalingConfig(num_workers=1, resources_per_worker={"CPU": 1}),
        run_config=ray.train.RunConfig(storage_path=str(uri) + "-ray", name="stream"),
    ).fit()
    assert result.return_value == manifest["counts"]["split"]["train"]


def test_throughput_measurement(ray_local, dataset):
    from emojiray.data.stream import measure_throughput

    uri, manifest = dataset
    r = measure_throughput(uri, "train", batch_size=16, epochs=2)
    assert r["images"] == manifest["counts"]["split"]["train"]
    assert len(r["images_per_s"]) == 2 and r["best_images_per_s"] > 0


def test_stream_errors(ray_local, dataset, tmp_path):
    from emojiray.data import read_images

    uri, _ = dataset
    with pytest.raises(EmojirayError, match="unknown split"):
        read_images(uri, "holdout")
    with pytest.raises(EmojirayError, match="unknown label"):
        read_images(uri, "train", labels=("colour",))
    with pytest.raises(EmojirayError, match="no dataset"):
        read_images(str(tmp_path / "nothing"), "train")
