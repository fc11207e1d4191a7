"""Worker planning (training workers take what Ray Data leaves), Ray tasks' errors, and freeing what
a killed training run left reserved."""

import time

import pytest

from emojiray.config import RayConfig
from emojiray.errors import EmojirayError
from emojiray.raykit import plan_workers
from helpers import wait_until


def test_cpu_box_gives_every_cpu_to_training_unless_ray_data_streams():
    # a materialised dataset on CPUs: no Ray Data task runs, one worker takes both cores as threads
    assert plan_workers(RayConfig(), cpus=2, gpus=0) == {
        "num_workers": 1, "use_gpu": False, "resources_per_worker": {"CPU": 2}}
    # streaming from the shards (no cache): Ray Data keeps one CPU
    assert plan_workers(RayConfig(cache_data=False), cpus=2, gpus=0) == {
        "num_workers": 1, "use_gpu": False, "resources_per_worker": {"CPU": 1}}
    assert plan_workers(RayConfig(data_cpus=1), cpus=2, gpus=0)["resources_per_worker"] == {"CPU": 1}
    # several CPU nodes: one worker per node's worth of CPUs
    assert plan_workers(RayConfig(), cpus=12, gpus=0, node_cpus=4)["num_workers"] == 3
    assert plan_workers(RayConfig(num_workers=2, data_cpus=2), cpus=8, gpus=0)["resources_per_worker"] == {"CPU": 3}


def test_gpu_node_one_worker_per_gpu():
    plan = plan_workers(RayConfig(), cpus=16, gpus=1)
    assert plan == {"num_workers": 1, "use_gpu": True, "resources_per_worker": {"CPU": 15, "GPU": 1}}
    assert plan_workers(RayConfig(use_gpu=False, num_workers=2), cpus=16, gpus=1)["use_gpu"] is False


def test_a_worker_never_asks_for_more_cpus_than_one_node_has():
    # three 1-CPU nodes: two workers of one CPU each (not 2 + Ray Data's 1 on a node that does not exist)
    assert plan_workers(RayConfig(num_workers=1, data_cpus=1), cpus=3, gpus=0, node_cpus=1)["resources_per_worker"] \
        == {"CPU": 1}
    assert plan_workers(RayConfig(num_workers=2, data_cpus=1), cpus=9, gpus=0, node_cpus=4)["resources_per_worker"] \
        == {"CPU": 4}


def test_impossible_plans_are_one_line_errors():
    with pytest.raises(EmojirayError, match="not enough CPUs"):
        plan_workers(RayConfig(num_workers=2, data_cpus=1), cpus=2, gpus=0)
    with pytest.raises(EmojirayError, match="GPU"):
        plan_workers(RayConfig(num_workers=4), cpus=32, gpus=2)


@pytest.mark.ray
def test_actor_pool_plan_fits_the_free_cpus(ray_local):
    from emojiray.config import RayConfig
    from emojiray.raykit import actor_pool_plan

    cfg = RayConfig(data_cpus=1, use_gpu=True)  # the session Ray has 3 CPUs and no GPU
    assert actor_pool_plan(cfg) == {"count": 2, "threads": 1, "options": {"num_cpus": 1}}
    assert actor_pool_plan(cfg, cpus_per_actor=2) == {"count": 1, "threads": 2, "options": {"num_cpus": 2}}
    assert actor_pool_plan(cfg, actors=5)["count"] == 2  # never more actors than can be placed
    assert actor_pool_plan(cfg, max_actors=1)["count"] == 1
    # a pool with no Ray Data beside it keeps no CPU free: all 3 go to the actors
    assert actor_pool_plan(cfg, cpus_per_actor=2, data_cpus=0) == {"count": 1, "threads": 3, "options": {"num_cpus": 3}}


def _square_or_fail(x):
    if x < 0:
        raise EmojirayError(f"negative input {x}")
    return x * x


@pytest.mark.ray
def test_run_task_returns_results_and_one_line_user_errors(ray_local):
    import sys

    from emojiray.raykit import run_task

    ray_local.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the task runs this module's function
    assert run_task(_square_or_fail, 7, ray_cfg=RayConfig(num_cpus=3, data_cpus=1)) == 49
    with pytest.raises(EmojirayError, match="^negative input -2$"):
        run_task(_square_or_fail, -2, ray_cfg=RayConfig(num_cpus=3, data_cpus=1))


@pytest.mark.ray
def test_release_orphans_frees_what_a_killed_training_controller_reserved(ray_local):
    """Tune kills a stopped trial, and with it the trial's Ray Train controller: the CPUs the
    controller reserved for its workers and its detached cleaner outlive it on a Ray without a
    dashboard, until release_orphans frees them (a sweep that stopped 3 trials hung without it)."""
    import ray
    from ray.util.placement_group import placement_group, placement_group_table, remove_placement_group

    from emojiray.raykit import release_orphans

    @ray.remote(num_cpus=0)
    class PlacementGroupCleaner:  # Ray Train's class name: detached, owned by the controller
        def ping(self):
            return True

    @ray.remote(num_cpus=0)
    class Controller:  # reserves a worker's CPU and starts its cleaner, as Ray Train's controller does
        def start(self):
            self.group = placement_group([{"CPU": 1}])
            ray.get(self.group.ready())
            self.cleaner = PlacementGroupCleaner.options(lifetime="detached").remote()
            ray.get(self.cleaner.ping.remote())
            return self.group.id.hex()

    def cleaners_alive():
        return [a for a in ray._private.state.actors().values()
                if a["ActorClassName"].endswith("PlacementGroupCleaner") and a["State"] != "DEAD"]

    def cpus():
        return ray.available_resources().get("CPU", 0)

    free = ray.cluster_resources()["CPU"]
    wait_until(lambda: cpus() >= free)  # what earlier tests ran is still being released
    own = placement_group([{"CPU": 0.5}])  # the driver's own group (as Tune's per trial) is left alone
    ray.get(own.ready())
    controller = Controller.remote()
    orphan = ray.get(controller.start.remote())
    assert len(cleaners_alive()) == 1
    ray.kill(controller)
    assert wait_until(lambda: ray._private.state.actors(controller._actor_id.hex())["State"] == "DEAD")
    time.sleep(1.0)  # more than the raylets' resource reports take to reach the driver
    assert cpus() == pytest.approx(free - 1.5)  # the dead controller's CPU stays reserved
    removed = 0

    def removes_it():  # the group's record of its creator's death may lag the actor's
        nonlocal removed
        removed += release_orphans()
        return removed

    assert wait_until(removes_it) and removed == 1
    table = placement_group_table()
    assert table[orphan]["state"] == "REMOVED" and table[own.id.hex()]["state"] == "CREATED"
    assert wait_until(lambda: cpus() >= free - 0.5 and not cleaners_alive())
    assert cpus() == pytest.approx(free - 0.5)
    assert release_orphans() == 0
    remove_placement_group(own)
