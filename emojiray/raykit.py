"""Starting or joining Ray (the Ray layer's single entry point to ``ray.init``).

Under ``ray job submit`` (RAY_ADDRESS set) or with ``ray.address`` configured, this joins that
cluster. Otherwise it starts an embedded local Ray with an explicit CPU count: on small machines
Ray's own detection can over-subscribe, and training workers must leave CPUs for Ray Data.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading

from emojiray.config import RayConfig
from emojiray.errors import EmojirayError


def init_ray(cfg: RayConfig | None = None):
    import ray

    cfg = cfg or RayConfig()
    if ray.is_initialized():
        return ray
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = cfg.address or os.environ.get("RAY_ADDRESS", "")
    if address:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True)
        _quiet_ray_data()
        return ray
    # Ray Train on a process-local cluster (the driver's values reach Train's controller): poll the
    # workers every 0.5 s rather than 2 s, so a finished run is noticed sooner, and start no
    # preemption watcher (an actor process watching for cloud spot-instance drains, which a local
    # cluster never has; every idle actor costs ~1 % of a core while training). Start-up measured
    # on 2 cores: 18.7 s against 19.4 s with Ray's defaults (results/bench/fit_overhead.jsonl).
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")
    os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
    kwargs = {"num_cpus": cfg.num_cpus or os.cpu_count() or 1}
    if cfg.num_gpus >= 0:
        kwargs["num_gpus"] = cfg.num_gpus
    # A lean embedded Ray: every idle Ray process wakes ~100 times a second, and on a small box each
    # wake-up pre-empts a training thread (measured on 2 cores: ~1,400 pre-emptions/s of the two
    # compute threads, see results/bench/ray_overhead_cpu.md). No dashboard: its ~12 processes
    # serve a UI that nothing can reach on a process-local cluster, and Ray starts ~2 s faster.
    ray.init(include_dashboard=False, logging_level=logging.WARNING,
             runtime_env={"worker_process_setup_hook": "emojiray.raykit.quiet_worker"}, **kwargs)
    _quiet_ray_data()
    return ray


def quiet_worker() -> None:
    """Runs in every worker of an embedded Ray: Ray Train's placement-group cleaner asks the
    dashboard's state API every second whether the controller lives, and warns each time it is
    unreachable; without a dashboard that is every second. What the cleaner would remove when a
    controller dies, :func:`release_orphans` does."""
    logging.getLogger("ray.train.v2._internal.execution.controller.placement_group_cleaner").setLevel(logging.ERROR)


def release_orphans() -> int:
    """Free what a Ray Train run leaves reserved when its controller is killed; returns how many
    placement groups it removed.

    A Train run's controller reserves its workers' CPUs in a placement group that lives as long as
    the job, and starts a detached ``PlacementGroupCleaner`` to remove that group should the
    controller die; the cleaner learns of the death from the dashboard's state API. An embedded
    Ray runs without a dashboard (:func:`init_ray`), so each Train run that Tune killed (a trial
    ASHA stopped, a trial an interrupted sweep left) kept its CPUs reserved and its cleaner polling
    for ever; once they held enough CPUs, no later trial could start and the sweep hung. This
    reads the same facts from the GCS, for this job only: placement groups whose creating actor is
    dead are removed, and the processes of cleaners on this node whose owner (the controller) is
    dead are ended. Ray 2.60 has no public call for either, hence the ``ray._private`` reads,
    checked by tests/test_raykit.py.
    """
    import ray
    from ray._private.state import state
    from ray.core.generated import gcs_pb2
    from ray.util.placement_group import PlacementGroup, remove_placement_group

    gcs = state._connect_and_get_accessor()
    job = ray.get_runtime_context().get_job_id()
    actors = [gcs_pb2.ActorTableData.FromString(raw) for raw in gcs.get_actor_table(ray.JobID.from_hex(job), None)]
    dead = gcs_pb2.ActorTableData.DEAD
    dead_workers = {a.address.worker_id for a in actors if a.state == dead}
    released = 0
    for raw in gcs.get_placement_group_table():
        pg = gcs_pb2.PlacementGroupTableData.FromString(raw)
        if (pg.creator_job_id.hex() == job and pg.creator_actor_dead and not pg.is_detached
                and not ray.ActorID(pg.creator_actor_id).is_nil()  # the driver's own groups read as dead
                and pg.state != gcs_pb2.PlacementGroupTableData.REMOVED):
            remove_placement_group(PlacementGroup(ray.PlacementGroupID(pg.placement_group_id)))
            released += 1
    node = ray.get_runtime_context().get_node_id()
    for a in actors:  # a driver cannot ray.kill an actor it holds no handle to: end its process
        if (a.class_name.split(".")[-1] == "PlacementGroupCleaner" and a.state != dead and a.pid
                and a.owner_address.worker_id in dead_workers and a.address.node_id.hex() == node):
            with contextlib.suppress(ProcessLookupError):
                os.kill(a.pid, signal.SIGTERM)
    return released


@contextlib.contextmanager
def releasing_orphans(every_s: float = 2.0):
    """Run :func:`release_orphans` every ``every_s`` seconds in a driver thread while the block
    runs (a Tune sweep), and once more as it ends."""
    stop = threading.Event()

    def release():
        try:
            release_orphans()
        except Exception as exc:  # the sweep goes on (and its own error, if any, is the one raised)
            logging.getLogger(__name__).warning("could not release a stopped trial's CPUs: %s", exc)

    def loop():
        while not stop.wait(every_s):
            release()

    thread = threading.Thread(target=loop, name="release-orphans", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        release()


def _quiet_ray_data() -> None:
    """Progress bars off in batch jobs; they flood logs and CI output."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False


def data_cpus(cfg: RayConfig, use_gpu: bool) -> int:
    """CPUs kept free for Ray Data beside the training workers: ``ray.data_cpus``, or with -1 (auto)
    none when the workers train on CPUs from a materialised dataset (``ray.cache_data``: they read its
    blocks from the object store themselves, no Ray Data task runs) and one otherwise."""
    if cfg.data_cpus >= 0:
        return cfg.data_cpus
    return 0 if cfg.cache_data and not (cfg.use_gpu and use_gpu) else 1


def plan_workers(cfg: RayConfig, cpus: float, gpus: float, node_cpus: float = 0) -> dict:
    """How many training workers and what each takes, leaving :func:`data_cpus` to Ray Data.

    Pure arithmetic over the cluster's resources (tested without Ray): with GPUs, one worker per
    GPU (or ``num_workers``); without, ``num_workers`` or one worker per node's worth of the CPUs
    left after Ray Data's share (a CPU worker uses its CPUs as intra-op threads).
    """
    use_gpu = cfg.use_gpu and gpus >= 1
    keep = data_cpus(cfg, use_gpu)
    free = int(cpus) - keep
    node = int(node_cpus) or max(free, 1)
    workers = cfg.num_workers or (int(gpus) if use_gpu else max(1, -(-free // node)))
    if use_gpu and workers > int(gpus):
        raise EmojirayError(f"ray.num_workers={workers} but the cluster has {int(gpus)} GPU(s)")
    if free < workers:
        raise EmojirayError(
            f"not enough CPUs: {workers} training worker(s) + {keep} CPU(s) for Ray Data (ray.data_cpus) "
            f"need {workers + keep}, the cluster has {int(cpus)}; lower ray.num_workers or ray.data_cpus"
        )
    per_worker = {"CPU": max(1, free // workers)}
    if node_cpus:  # a worker lives on one node (``node_cpus``: the largest node's CPUs)
        per_worker["CPU"] = max(1, min(per_worker["CPU"], int(node_cpus)))
    if use_gpu:
        per_worker["GPU"] = 1
    return {"num_workers": workers, "use_gpu": use_gpu, "resources_per_worker": per_worker}


def scaling_config(cfg: RayConfig):
    """A Ray Train ScalingConfig sized to the running cluster (see :func:`plan_workers`)."""
    import ray
    import ray.train

    res = ray.cluster_resources()
    return ray.train.ScalingConfig(**plan_workers(cfg, res.get("CPU", 0), res.get("GPU", 0), _largest_node_cpus()))


def actor_pool_plan(cfg: RayConfig, actors: int = 0, cpus_per_actor: int = 1, max_actors: int = 0,
                    data_cpus: int | None = None) -> dict:
    """Size an actor pool for a batch job (sampling, feature extraction) to what is free now.

    With GPUs: one actor per GPU (or ``actors``), each with one GPU and one CPU. Without: CPU
    actors sharing the CPUs that are free now less ``data_cpus`` (default ``ray.data_cpus``; 0 for
    a pool with no Ray Data beside it, whose actors read their inputs themselves), by default one per
    ``cpus_per_actor`` of them, never more than fit (an actor that cannot be placed would stall
    the pool). Returns {"count", "threads" (0 = torch's default), "options" (for .options())}.
    """
    import ray

    gpus = int(ray.cluster_resources().get("GPU", 0))
    cap = max_actors or 1 << 30
    if cfg.use_gpu and gpus:
        count = max(1, min(actors or gpus, cap))
        return {"count": count, "threads": 0, "options": {"num_gpus": 1, "num_cpus": 1}}
    keep = max(cfg.data_cpus, 1) if data_cpus is None else data_cpus
    free = max(1, int(ray.available_resources().get("CPU", 0)) - keep)
    # an actor lives on one node: never ask one for more CPUs than the largest node has
    node = max(1, _largest_node_cpus())
    count = max(1, min(actors or free // max(1, min(cpus_per_actor, node)), free, cap))
    threads = max(1, min(free // count, node))
    return {"count": count, "threads": threads, "options": {"num_cpus": threads}}


def _largest_node_cpus() -> int:
    """The CPU count of the cluster's largest alive node (what one task or actor can get at most)."""
    import ray

    return int(max((n.get("Resources", {}).get("CPU", 0) for n in ray.nodes() if n.get("Alive")), default=0))


def _call_with_threads(fn, threads: int, args, kwargs):
    import torch

    if threads:
        torch.set_num_threads(threads)
    return fn(*args, **kwargs)


def run_task(fn, *args, ray_cfg: RayConfig | None = None, **kwargs):
    """``fn(*args, **kwargs)`` in one Ray task on a GPU of the cluster (or the free CPUs) -> its result.

    How the extensions' training and measuring runs reach an accelerator when the driver (e.g. a
    cluster's CPU head under ``ray job submit``) has none. A user error raised in the task
    (:class:`EmojirayError`) comes back as itself, so the CLI prints its one line.
    """

    ray = init_ray(ray_cfg)
    # one task reading its data itself (no Ray Data beside it): it may take every free CPU
    plan = actor_pool_plan(ray_cfg or RayConfig(), actors=1, max_actors=1, data_cpus=0)
    task = ray.remote(_call_with_threads).options(max_retries=0, **plan["options"])
    try:
        return ray.get(task.remote(fn, plan["threads"], args, kwargs))
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause if hasattr(exc, "cause") else None
        if isinstance(cause, EmojirayError):
            raise EmojirayError(str(cause)) from None
        raise


def root_message(exc: BaseException) -> str:
    """The innermost meaningful one-line message of a (Ray-wrapped) exception chain."""
    seen = set()
    cur: BaseException | None = exc
    best = str(exc)
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, EmojirayError):
            return str(cur)
        text = str(cur).strip()
        if text:
            best = text
        cur = cur.__cause__ or cur.__context__
    lines = [ln for ln in best.splitlines() if ln.strip()]
    for ln in reversed(lines):  # Ray prints the worker traceback; the last line names the error
        if "Error" in ln or "error" in ln:
            return ln.strip()[:300]
    return (lines[-1] if lines else type(exc).__name__)[:300]
