"""The one Ray Train driver: a family's :func:`emojiray.train.harness.run` on TorchTrainer workers.

``fit(family_cls, cfg, spec, datasets, out)`` is how the tokenizer, the priors, the sweep's trials
and the extensions' helper models (classifier, upscaler) train: it claims the run directory
(``--resume`` / ``--force``), sizes the workers to the cluster, starts a ``TorchTrainer`` whose
every worker builds the family, restores the latest checkpoint (a resume, or a restart after a
worker failure), wraps the model in DDP and runs the Ray-free loop over its Ray Data shard; rank 0
validates and checkpoints at each report. Afterwards the best checkpoint (by the family's score)
or the last is exported to ``<out>/<family.name>``; a failure is one line, a stop on a non-finite
loss keeps the last good model.

Layout under ``out``::

    ray/<name>/      Ray Train's run: checkpoint_* directories (resume, failures)
    tensorboard/     the family's scalars and image grids
    <name>/          the exported model (meta.json + model.safetensors)
"""

from __future__ import annotations

import math
import signal
import tempfile
import threading
import time
from typing import Any

import torch

from emojiray import storage
from emojiray.config import Config, config_from_dict
from emojiray.errors import EmojirayError
from emojiray.models import checkpoint as ckpt
from emojiray.train import harness
from emojiray.train.loop_utils import TensorBoard, claim_run_dir


def agree_max(device: torch.device) -> harness.Agree:
    """Agreement across DDP workers: each value's maximum over all of them (one all-reduce)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return harness.single

    def agree(values: list[float]) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t.tolist()

    return agree


def worker_cache(shard, budget_mb: int, batch_size: int, seed: int, device, agree: harness.Agree):
    """This worker's share of the train split read once through Ray Data and kept in its memory, as
    an epoch function of shuffled batches (:func:`harness.in_memory_batches`); None (stream every
    epoch) when caching is off or the share is larger than ``budget_mb`` on some worker. Every
    worker keeps the same number of examples (the smallest share), so DDP's steps pair up."""
    if budget_mb <= 0:  # the same on every worker (one config)
        return None
    parts, size = [], 0
    for batch in shard.iter_torch_batches(batch_size=1024, drop_last=False):
        parts.append(batch)
        size += sum(v.numel() * v.element_size() for v in batch.values())
        if size > budget_mb * 2**20:
            break
    too_big, fewest = agree([1.0 if size > budget_mb * 2**20 else 0.0, -float(sum(len(next(iter(p.values())))
                                                                              for p in parts))])
    n = int(-fewest)
    if too_big > 0 or n == 0:
        return None
    arrays = {k: torch.cat([p[k] for p in parts])[:n] for k in parts[0]}
    return harness.in_memory_batches(arrays, batch_size, seed, device)


def worker(config: dict[str, Any]) -> dict[str, Any]:
    """Ray Train's per-worker function: build the family, restore, run the harness loop."""
    import ray.train
    import ray.train.torch

    cfg = config_from_dict(config["cfg"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    torch.manual_seed(cfg.train.seed)  # identical initial weights on every worker
    family = config["family"](cfg, config["spec"], device, world=world, rank=rank)
    state = {}
    resumed = ray.train.get_checkpoint()
    if resumed is not None:
        with resumed.as_directory() as d:
            state = harness.restore(d, family)
    family.net = ray.train.torch.prepare_model(family.model, parallel_strategy_kwargs={"broadcast_buffers": False})
    if cfg.train.compile:
        family.net = torch.compile(family.net)
    batch_size = family.schedule.batch_size
    train_shard = ray.train.get_dataset_shard("train")
    val_shard = ray.train.get_dataset_shard("val") if rank == 0 else None

    agree = agree_max(device)

    def streamed():
        return train_shard.iter_torch_batches(batch_size=batch_size, device=device, drop_last=True,
                                              local_shuffle_buffer_size=4 * batch_size)

    train_batches = worker_cache(train_shard, cfg.ray.worker_cache_mb, batch_size, cfg.train.seed + rank,
                                 device, agree) or streamed

    def val_batches():
        return val_shard.iter_torch_batches(batch_size=256, device=device)

    def report(metrics: dict[str, float], st: dict[str, Any]) -> None:
        if rank != 0:
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory() as d:
            harness.save(d, family, config["cfg"], st, metrics)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))

    summary = harness.run(family, train_batches, val_batches if rank == 0 else None, report, state=state,
                          agree=agree, world=world,
                          tb=TensorBoard(config["tb_uri"] if rank == 0 else None))
    return summary


def fit(family_cls, cfg: Config, spec: dict[str, Any], datasets, out: str, *, resume: bool = False,
        force: bool = False, log=print, describe: str = "", scaling=None, callbacks=(),
        quiet_claim: bool = False, outputs: tuple[str, ...] = ()) -> dict[str, Any]:
    """Train ``family_cls`` with Ray Train on ``datasets`` ({"train", "val"} Ray Datasets, or a
    function of no arguments that reads them once Ray runs); export the chosen checkpoint to
    ``<out>/<name>``. ``spec["examples"]`` is the size of the train split. Returns {model, meta,
    summary, checkpoint, workers, use_gpu, wall_seconds, metrics, final_metrics}. ``scaling``
    overrides the cluster-sized ScalingConfig (a Tune trial's resources); ``callbacks`` go to the
    RunConfig (Tune's report callback). ``outputs`` are the files the caller writes under ``out``
    from the trained model (its summary, a sheet): ``force`` deletes them with the old run and its
    exported model before training starts, so an interrupted restart never passes for a finished one."""
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig
    from ray.train.torch import TorchTrainer

    from emojiray.raykit import init_ray, root_message, scaling_config

    name, score = family_cls.name, family_cls.score
    out = storage.absolute(out)
    ray_dir = storage.join(out, "ray")
    claim_run_dir(storage.join(ray_dir, name), resume, force, (lambda *_: None) if quiet_claim else log)
    if force:
        for old in (name, *outputs):
            storage.delete(storage.join(out, old))
    init_ray(cfg.ray)
    scaling = scaling or scaling_config(cfg.ray)
    key = family_cls.batch_key
    section, field = key.split(".")
    batch = getattr(getattr(cfg, section), field)
    if spec["examples"] < batch * scaling.num_workers:
        raise EmojirayError(f"no full training batch: {spec['examples']} examples over {scaling.num_workers} "
                            f"worker(s) is fewer than {key}={batch}")
    if describe:
        log(f"train-{name}: {describe}, {scaling.num_workers} worker(s){' with GPUs' if scaling.use_gpu else ' on CPU'}"
            f" -> {out}")
    datasets = datasets() if callable(datasets) else datasets
    fs, ray_path = storage.filesystem(ray_dir)
    keep = {"checkpoint_score_attribute": score[0], "checkpoint_score_order": score[1]} if score else {}
    trainer = TorchTrainer(
        worker,
        train_loop_config={"family": family_cls, "cfg": cfg.to_dict(), "spec": spec,
                           "tb_uri": storage.join(out, "tensorboard")},
        scaling_config=scaling,
        datasets=datasets,
        # one worker reads the whole train split itself: no split coordinator (one actor process
        # fewer, ~2 s of a run's start-up on 2 cores)
        dataset_config=DataConfig(datasets_to_split=["train"] if scaling.num_workers > 1 else []),
        run_config=RunConfig(name=name, storage_path=ray_path, storage_filesystem=fs, callbacks=list(callbacks),
                             failure_config=FailureConfig(max_failures=cfg.train.max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=2, **keep)),
    )
    t0 = time.perf_counter()
    previous = signal.getsignal(signal.SIGINT) if threading.current_thread() is threading.main_thread() else None
    try:
        result = trainer.fit()
    except SystemExit:  # Ray Train's SIGINT handler aborted the run, then exits (1, silently): an interrupt
        raise KeyboardInterrupt from None
    except Exception as exc:  # Ray wraps worker errors; surface the user's one line
        raise EmojirayError(f"training failed: {root_message(exc)}") from None
    finally:
        if previous is not None:  # Ray Train leaves its handler, bound to a finished run, behind
            signal.signal(signal.SIGINT, previous)
    summary = result.return_value or {}
    chosen = result.checkpoint
    if score and result.best_checkpoints:
        sign = 1 if score[1] == "min" else -1
        chosen = min(result.best_checkpoints, key=lambda cm: sign * cm[1].get(score[0], sign * math.inf))[0]
    if chosen is None:
        raise EmojirayError(f"training produced no checkpoint ({summary.get('status', 'unknown reason')})")
    model_uri = storage.join(out, name)
    with chosen.as_directory() as d:
        ckpt.export(d, model_uri)
        meta = ckpt.read_meta(d, kind=name)
    if summary.get("status", "ok") != "ok":
        which = "best" if score else "last good"
        raise EmojirayError(f"training stopped: {summary['status']}; the {which} checkpoint "
                            f"(epoch {meta['epoch']}) is kept at {model_uri}")
    return {"model": model_uri, "meta": meta, "summary": summary, "checkpoint": chosen.path,
            "workers": scaling.num_workers, "use_gpu": scaling.use_gpu, "metrics": meta.get("metrics", {}),
            "wall_seconds": round(time.perf_counter() - t0, 1), "final_metrics": result.metrics or {}}
