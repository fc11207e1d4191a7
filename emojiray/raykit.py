"""Starting or joining Ray (the Ray layer's single entry point to ``ray.init``).

Under ``ray job submit`` (RAY_ADDRESS set) or with ``ray.address`` configured, this joins that
cluster. Otherwise it starts an embedded local Ray with an explicit CPU count: on small machines
Ray's own detection can over-subscribe, and training workers must leave CPUs for Ray Data.
"""

from __future__ import annotations

import logging
import os

from emojiray.config import RayConfig


def init_ray(cfg: RayConfig | None = None):
    import ray

    cfg = cfg or RayConfig()
    if ray.is_initialized():
        return ray
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = cfg.address or os.environ.get("RAY_ADDRESS", "")
    if address:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True)
        return ray
    kwargs = {"num_cpus": cfg.num_cpus or os.cpu_count() or 1}
    if cfg.num_gpus >= 0:
        kwargs["num_gpus"] = cfg.num_gpus
    ray.init(include_dashboard=False, logging_level=logging.WARNING, **kwargs)
    _quiet_ray_data()
    return ray


def _quiet_ray_data() -> None:
    """Progress bars off in batch jobs; they flood logs and CI output."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
