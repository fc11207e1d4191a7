"""`emojiray tune`: a rate-distortion sweep of the tokenizer with Ray Tune, Optuna and ASHA.

Ray Train V2 with Tune (the API Ray 2.60 documents; ``Tuner(trainer)`` is deprecated): every
trial is a small Tune function (:func:`run_trial`) that builds the trial's config, launches a
Ray Train ``TorchTrainer`` running the tokenizer's own training loop, and forwards each epoch's
report to Tune through ``TuneReportCallback``. After training it measures the model on the
held-out split and reports once more, so finished trials carry PSNR, SSIM and rFID.

- Search: ``OptunaSearch`` with a seeded multi-objective TPE sampler over two objectives: the
  rate (entropy-coded bits per image from the measured code frequencies, minimised) and the
  distortion (validation PSNR, maximised).
- Early stopping: ASHA on the validation PSNR (trials report after every epoch, whatever
  ``train.report_every_s`` says; ``tune.grace_period`` epochs).
- Resources: one training worker per trial with ``tune.cpus_per_trial`` CPUs and, on GPUs,
  ``tune.gpus_per_trial`` of a GPU, so several trials share one GPU; trials spread over nodes.
  What a stopped trial's training run kept reserved is freed as the sweep goes
  (:func:`emojiray.raykit.releasing_orphans`).
- A failed trial is logged and the sweep goes on; Ctrl-C (or a lost driver) leaves a sweep that
  ``emojiray tune`` with the same ``--out`` resumes with ``Tuner.restore``: finished trials are
  kept, unfinished ones continue from their last epoch checkpoint.

Layout under ``out``::

    ray/sweep/             Ray Tune's experiment (state for restore, per-trial results)
    trials/<trial_id>/     each trial's Ray Train run, TensorBoard logs, model and eval_vqvae.json
    trials.csv, trials.md, pareto.png, importance.png, parallel_coordinates.png,
    presets/best_<budget>bits.yaml, sweep_summary.json     (see :mod:`emojiray.sweep.report`)
"""

from __future__ import annotations

from typing import Any

from emojiray import storage
from emojiray.config import Config, config_from_dict
from emojiray.errors import EmojirayError
from emojiray.sweep.space import apply_params, validate_space

EXPERIMENT = "sweep"
RATE, QUALITY = "entropy_bits_per_image", "val_psnr"


def tune_domains(space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Validated space -> Ray Tune sampling domains (which OptunaSearch turns into distributions)."""
    from ray import tune

    out = {}
    for key, spec in space.items():
        kind = spec["type"]
        if kind == "choice":
            out[key] = tune.choice(spec["values"])
        elif kind == "uniform":
            out[key] = tune.uniform(spec["low"], spec["high"])
        elif kind == "loguniform":
            out[key] = tune.loguniform(spec["low"], spec["high"])
        elif kind == "int":
            out[key] = tune.randint(int(spec["low"]), int(spec["high"]) + 1)  # upper bound exclusive
        else:
            out[key] = tune.lograndint(int(spec["low"]), int(spec["high"]) + 1)
    return out


# -- one trial (runs in a Tune trial actor) ---------------------------------------------------------


def run_trial(params: dict[str, Any], base: dict[str, Any], data_uri: str, datasets: dict[str, Any], out: str,
              image_size: int, train_images: int, resources: dict[str, float], fid_images: int) -> None:
    import ray.tune
    from ray.train import ScalingConfig
    from ray.tune.integration.ray_train import TuneReportCallback

    from emojiray.eval.vqvae import eval_vqvae
    from emojiray.train.driver import fit
    from emojiray.train.vqvae_loop import VQVAEFamily

    cfg = apply_params(config_from_dict(base), params)
    trial_dir = storage.join(out, "trials", ray.tune.get_context().get_trial_id())
    try:  # resume=True: a restored trial goes on from its last epoch checkpoint
        run = fit(VQVAEFamily, cfg, {"image_size": image_size, "examples": train_images}, datasets, trial_dir,
                  resume=True, quiet_claim=True, callbacks=[TuneReportCallback()],
                  scaling=ScalingConfig(num_workers=1, use_gpu="GPU" in resources, resources_per_worker=resources))
    except EmojirayError as exc:  # the trial fails with the user's one line; the sweep goes on
        raise EmojirayError(f"trial: {exc}") from None
    ev = eval_vqvae(run["model"], data_uri, trial_dir, split="heldout", fid=fid_images >= 0,
                    fid_images=max(fid_images, 0), log=lambda *_: None)
    ray.tune.report({**{k: v for k, v in run["final_metrics"].items() if isinstance(v, (int, float))},
                     "heldout_psnr": ev["psnr"], "heldout_ssim": ev["ssim"], "rfid": ev["rfid"],
                     "heldout_entropy_bits_per_image": ev["entropy_coded_bits_per_image"], "finished": 1})


# -- the driver -------------------------------------------------------------------------------------


def _row(trial, result, space_keys) -> dict[str, Any]:
    """One Tune trial and its result -> a trial row for the report."""
    from emojiray.raykit import root_message

    m = result.metrics or {}
    levels = sorted(k[len("codes_used_"):] for k in m if k.startswith("codes_used_"))
    cfg = result.config or {}
    error = root_message(result.error) if result.error is not None else None
    if trial.status == "ERROR" or error:
        status = "ERROR"
    elif trial.status == "TERMINATED" and m.get("done"):  # Tune marks a trial's last result done
        status = "TERMINATED" if m.get("finished") else "STOPPED_EARLY"  # else ASHA stopped it at a rung
    else:
        status = "UNFINISHED"  # the sweep was interrupted: the next run resumes this trial
    return {
        "trial_id": trial.trial_id, "status": status,
        "params": {k: cfg[k] for k in space_keys if k in cfg}, "epochs": m.get("epoch"),
        "bits_per_image": m.get("bits_per_image"), "entropy_bits_per_image": m.get(RATE),
        "val_psnr": m.get("val_psnr"), "val_ssim": m.get("val_ssim"),
        "heldout_psnr": m.get("heldout_psnr"), "heldout_ssim": m.get("heldout_ssim"), "rfid": m.get("rfid"),
        "codes_used": {lv: m[f"codes_used_{lv}"] for lv in levels}, "error": error,
    }


def _concurrency(cfg: Config, cpus: float, gpus: float, use_gpu: bool) -> int:
    tc = cfg.tune
    if tc.max_concurrent:
        return tc.max_concurrent
    from emojiray.raykit import data_cpus

    by_cpu = max(1, int((cpus - data_cpus(cfg.ray, use_gpu)) // max(tc.cpus_per_trial, 1)))
    return min(by_cpu, max(1, int(gpus / tc.gpus_per_trial))) if use_gpu else by_cpu


def run_sweep(cfg: Config, data_uri: str, out: str, trials: int | None = None, force: bool = False,
              callbacks=None, log=print) -> dict[str, Any]:
    """Run (or resume) the sweep; write the trials table, plots and presets under ``out``."""
    import optuna
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from emojiray.data import shards
    from emojiray.data.stream import read_splits
    from emojiray.raykit import init_ray, releasing_orphans
    from emojiray.sweep.report import write_report

    tc = cfg.tune
    space = validate_space(tc.space, cfg)
    data_uri, out = storage.absolute(data_uri), storage.absolute(out)  # trials run in their own directory
    trials = trials or tc.trials
    if trials < 1:
        raise EmojirayError(f"the number of trials must be >= 1, got {trials}")
    if tc.gpus_per_trial <= 0 or tc.gpus_per_trial > 1 or tc.cpus_per_trial < 1:
        raise EmojirayError("tune.gpus_per_trial must be in (0, 1] and tune.cpus_per_trial >= 1")
    manifest = shards.load_manifest(data_uri)
    size = manifest["image"]["height"]
    if size != cfg.data.size:
        raise EmojirayError(f"the dataset's images are {size} px but data.size is {cfg.data.size}")
    train_images = manifest["counts"]["split"].get("train", 0)
    if not train_images or not manifest["counts"]["split"].get("val", 0):
        raise EmojirayError(f"{data_uri} needs images in its train and val splits")

    init_ray(cfg.ray)
    res = ray.cluster_resources()
    use_gpu = cfg.ray.use_gpu and res.get("GPU", 0) >= tc.gpus_per_trial
    resources = {"CPU": float(tc.cpus_per_trial), **({"GPU": tc.gpus_per_trial} if use_gpu else {})}
    concurrent = _concurrency(cfg, res.get("CPU", 1), res.get("GPU", 0), use_gpu)

    ray_dir = storage.join(out, "ray")
    fs, ray_path = storage.filesystem(ray_dir)
    exp_uri = storage.join(ray_dir, EXPERIMENT)
    # read (and, with ray.cache_data, decode into the object store) once for every trial
    datasets = read_splits(data_uri, ("train", "val"), cache=cfg.ray.cache_data, labels=())
    base = cfg.to_dict()
    base["train"]["report_every_s"] = 0.0  # trials report every epoch: ASHA's rungs are epochs
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, base=base, data_uri=data_uri, datasets=datasets, out=out,
                             image_size=size,
                             train_images=train_images, resources=resources, fid_images=tc.fid_images),
        {"CPU": 0.1})  # the trial's driver mostly waits; its training worker asks for the real resources
    if force and storage.exists(exp_uri):
        for uri in storage.list_files(exp_uri):
            storage.delete(uri)
    if storage.exists(exp_uri) and tune.Tuner.can_restore(storage.filesystem(exp_uri)[1], storage_filesystem=fs):
        log(f"tune: resuming the sweep at {out} (finished trials are kept)")
        tuner = tune.Tuner.restore(storage.filesystem(exp_uri)[1], trainable=trainable, resume_unfinished=True,
                                   resume_errored=False, storage_filesystem=fs)
    else:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        searcher = OptunaSearch(metric=[RATE, QUALITY], mode=["min", "max"],
                                sampler=optuna.samplers.TPESampler(seed=tc.seed, multivariate=True,
                                                                   n_startup_trials=min(10, trials)))
        asha = ASHAScheduler(time_attr="training_iteration", metric=QUALITY, mode="max",
                             max_t=cfg.train.epochs + 1,  # + the final held-out report
                             grace_period=tc.grace_period, reduction_factor=tc.reduction_factor)
        tuner = tune.Tuner(
            trainable, param_space=tune_domains(space),
            tune_config=tune.TuneConfig(search_alg=searcher, scheduler=asha, num_samples=trials,
                                        max_concurrent_trials=concurrent),
            run_config=tune.RunConfig(name=EXPERIMENT, storage_path=ray_path, storage_filesystem=fs,
                                      failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
                                      callbacks=callbacks, verbose=0),
        )
        log(f"tune: {trials} trial(s) over {', '.join(space)}; {concurrent} at a time, each with "
            f"{resources} -> {out}")
    with releasing_orphans():  # what trials that ASHA stopped or an interrupt ended left reserved
        grid = tuner.fit()
    # ResultGrid lists its results in the order of the experiment's trials
    all_rows = [_row(t, r, list(space)) for t, r in zip(grid._experiment_analysis.trials, grid)]
    for r in all_rows:
        if r["status"] == "ERROR":
            log(f"tune: trial {r['trial_id']} failed: {r['error']}")
    rows = [r for r in all_rows if r["status"] != "UNFINISHED"]
    complete = len(rows) >= trials
    if not complete:
        log(f"tune: the sweep stopped after {len(rows)} of {trials} trial(s); run the same command to resume")
    summary = write_report(rows, out, cfg, budgets=tc.budgets or None, space=space, log=log)
    failed = sum(r["status"] == "ERROR" for r in rows)
    log(f"tune: {len(rows) - failed} trial(s) finished or stopped early, {failed} failed; Pareto front: "
        f"{len(summary.get('front', []))} trial(s) -> {out}")
    return {**summary, "rows": rows, "complete": complete}
