"""A Ray cluster of three nodes on one machine (`ray.cluster_utils.Cluster`): the tokenizer's
training workers land on different nodes and stream their splits of the same Parquet shards."""

from __future__ import annotations

import os

import pytest

from conftest import fake_package, write_tarball
from emojiray.config import Config, DataConfig, ModelConfig, RayConfig, TrainConfig

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def data32(tmp_path_factory):
    from emojiray.data.prepare import prepare

    root = tmp_path_factory.mktemp("multinode")
    (root / "npm").mkdir()
    for vendor in ("google", "twitter"):
        entries, images = fake_package(vendor)
        tgz = root / "npm" / f"emoji-datasource-{vendor}-0.0.0-test.tgz"
        (root / "npm" / (tgz.name + ".sha1")).write_text(write_tarball(tgz, vendor, entries, images))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EMOJIRAY_CACHE", str(root))
        out = str(root / "ds")
        manifest = prepare(DataConfig(npm_version="0.0.0-test", size=32, val_fraction=0.15, test_fraction=0.15),
                           out, log=lambda *_: None)
    return out, manifest


@pytest.fixture
def three_nodes():
    """A head and two worker nodes with one CPU each: two 1-CPU training workers cannot share a node."""
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    os.environ.pop("RAY_ADDRESS", None)
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "num_gpus": 0, "include_dashboard": True, "dashboard_host": "127.0.0.1",
        "object_store_memory": 200 * 2**20})
    nodes = [cluster.add_node(num_cpus=1, num_gpus=0, object_store_memory=200 * 2**20) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    try:
        yield cluster, [cluster.head_node, *nodes]
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_training_workers_on_different_nodes_read_the_same_shards(three_nodes, data32, tmp_path):
    import ray
    from ray.util.state import list_actors

    from emojiray.train.vqvae_loop import train_vqvae

    _, nodes = three_nodes
    data_uri, manifest = data32
    assert len({n["NodeID"] for n in ray.nodes() if n["Alive"]}) == 3
    cfg = Config(
        data=DataConfig(size=32),
        ray=RayConfig(num_workers=2, data_cpus=1),
        model=ModelConfig(channels=32, res_blocks=1, res_channels=16, codebook_size=[32, 16], code_dim=[8, 8],
                          dead_code_steps=20),
        train=TrainConfig(epochs=2, batch_size=8, lr=2e-3, warmup_steps=5, log_every=5),
    )
    record = train_vqvae(cfg, data_uri, str(tmp_path / "run"), log=lambda *_: None)

    assert record["workers"] == 2 and record["epoch"] == 2
    workers = list_actors(filters=[("class_name", "=", "RayTrainWorker")], detail=True, limit=100)
    assert len(workers) == 2, workers
    assert len({w.node_id for w in workers}) == 2, "both training workers ran on one node"
    # each worker streamed its share of the one training split: together, every training image per epoch
    steps = record["step"]
    per_epoch = manifest["counts"]["split"]["train"] // (cfg.train.batch_size * 2)
    assert steps == 2 * per_epoch
    losses = [h["train_loss"] for h in record["history"]]
    assert losses[-1] < losses[0]
