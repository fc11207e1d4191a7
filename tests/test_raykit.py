"""Worker planning: training workers take what Ray Data leaves."""

import pytest

from emojiray.config import RayConfig
from emojiray.errors import EmojirayError
from emojiray.raykit import plan_workers


def test_cpu_box_leaves_a_cpu_for_ray_data():
    assert plan_workers(RayConfig(), cpus=2, gpus=0) == {
        "num_workers": 1, "use_gpu": False, "resources_per_worker": {"CPU": 1}}
    assert plan_workers(RayConfig(num_workers=2, data_cpus=2), cpus=8, gpus=0)["resources_per_worker"] == {"CPU": 3}


def test_gpu_node_one_worker_per_gpu():
    plan = plan_workers(RayConfig(), cpus=16, gpus=1)
    assert plan == {"num_workers": 1, "use_gpu": True, "resources_per_worker": {"CPU": 15, "GPU": 1}}
    assert plan_workers(RayConfig(use_gpu=False, num_workers=2), cpus=16, gpus=1)["use_gpu"] is False


def test_impossible_plans_are_one_line_errors():
    with pytest.raises(EmojirayError, match="not enough CPUs"):
        plan_workers(RayConfig(num_workers=2), cpus=2, gpus=0)
    with pytest.raises(EmojirayError, match="GPU"):
        plan_workers(RayConfig(num_workers=4), cpus=32, gpus=2)
