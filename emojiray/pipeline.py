"""The main job, end to end: data -> summary -> streaming check -> VQ-VAE -> evaluation -> codes -> priors
-> samples -> sample evaluation -> extensions (demos and their metrics).

The work of each stage lives in its own module; this declares the stages (name, the stages it
reads, its settings, its outputs, its function) and hands them to the one runner
(:mod:`emojiray.stages`), which records each in ``<out>/pipeline.json``. The CLI (`emojiray
pipeline`) and `jobs/pipeline.py` call it. Stages that are already done with the same inputs and
settings are skipped (``force`` redoes them all, ``start`` one and every later one); an
interrupted training run is resumed from its last checkpoint.

Layout under ``out``::

    data/                 Parquet shards + manifest.json
    data_summary.json, data_contact_category.png, data_contact_emotion.png
    tokenizer/            the VQ-VAE run: ray/ (checkpoints), tensorboard/, vqvae/ (the model)
    eval_vqvae.json, recon_grid.png
    codes/                code shards of every split (extract-codes)
    prior_<kind>/         one run per prior kind in ``pipeline.priors``: prior/ (the best model), ...
    samples_<kind>.png    a sheet of decoded samples per prior
    samples_<kind>/       ``sample.n`` samples per prior (shards/, png/, manifest.json, from `emojiray
                          sample`) and their evaluation (eval_samples.json, samples_grid.png,
                          samples_nearest.png, samples_conditions.png, from `emojiray eval-samples`)
    extensions/           the extensions in ``extensions.run`` (see emojiray.extensions.stage): their
                          extra models (vendor/category MaskGITs, classifier, upscaler), demo sheets
                          ``<extension>*.png`` and metrics ``<extension>.json``
    report/               the static HTML report (index.html + images/, `emojiray report`)
    stages/               one marker per stage: what it was run with, its result (emojiray.stages)
    pipeline.json
"""

from __future__ import annotations

import datetime as dt
from functools import partial
from typing import Any

from emojiray import __version__, storage
from emojiray.config import Config, config_from_dict
from emojiray.stages import Stage, StageContext, check_start, run_stages

SAMPLE_KEYS = ("count", "samples_per_s", "fid", "kid", "precision", "recall", "fid_train", "memorized_share")


# -- what each stage does -----------------------------------------------------------------------------


def _prepare(cfg: Config, out: str, ctx: StageContext, log=print) -> dict[str, Any]:
    from emojiray.data.prepare import prepare
    from emojiray.extensions import stage as extension_stage

    data_uri = storage.join(out, "data")
    manifest = prepare(cfg.data, data_uri, force=ctx.fresh, log=log)
    extension_stage.check_demo(cfg, data_uri)  # a misspelt demo emoji stops the run before any training
    return {"uri": data_uri, "images": manifest["counts"]["total"], "fingerprint": manifest["fingerprint"]}


def _info(out: str, ctx: StageContext, log=print) -> dict[str, Any]:
    from emojiray.data.info import format_summary, summary, write_info

    data_uri = ctx.done["prepare"]["uri"]
    written = write_info(data_uri, out)
    log(format_summary(summary(data_uri)))
    return written


def _stream(cfg: Config, ctx: StageContext, log=print) -> dict[str, Any]:
    from emojiray.data.stream import measure_throughput
    from emojiray.raykit import init_ray

    init_ray(cfg.ray)
    r = measure_throughput(ctx.done["prepare"]["uri"], "train", batch_size=cfg.ray.batch_size)
    log(f"stream: {r['images']} train images through Ray Data into torch batches "
        f"at {r['best_images_per_s']:.0f} images/s")
    return r


def _train_vqvae(cfg: Config, out: str, ctx: StageContext, log=print) -> dict[str, Any]:
    from emojiray.train.vqvae_loop import train_vqvae

    run_uri = storage.join(out, "tokenizer")
    summary_uri = storage.join(run_uri, "train_vqvae.json")
    interrupted = storage.exists(storage.join(run_uri, "ray")) and not storage.exists(summary_uri)
    resume = interrupted and not ctx.fresh
    result = train_vqvae(cfg, ctx.done["prepare"]["uri"], run_uri, resume=resume, force=not resume, log=log)
    storage.write_json(summary_uri, result)
    return {"model": result["model"], "epoch": result["epoch"], "metrics": result["metrics"], "retrained": True,
            "resumed_from_epoch": result.get("resumed_from_epoch", 0)}


def _eval_vqvae(cfg: Config, out: str, ctx: StageContext, log=print) -> dict[str, Any]:
    from emojiray.eval.vqvae import eval_vqvae

    r = eval_vqvae(ctx.done["train_vqvae"]["model"], ctx.done["prepare"]["uri"], out, split=cfg.eval.split,
                   fid_images=cfg.eval.fid_images, batch_size=cfg.eval.batch_size, log=log)
    return {k: r[k] for k in ("psnr", "ssim", "rfid", "rfid_images", "codes_used", "bits_per_image")}


def _extract_codes(cfg: Config, out: str, ctx: StageContext, log=print) -> dict[str, Any]:
    from emojiray.data.codes import extract_codes

    codes_uri = storage.join(out, "codes")
    r = extract_codes(ctx.done["train_vqvae"]["model"], ctx.done["prepare"]["uri"], codes_uri, cfg.ray, log=log,
                      mirror=cfg.prior.mirror, force=True)  # this stage is being redone: its old codes go
    return {"uri": codes_uri, "rows": {k: v["rows"] for k, v in r["splits"].items()}}


def _prior_config(cfg: Config, kind: str) -> Config:
    pcfg = config_from_dict(cfg.to_dict())
    pcfg.prior.kind = kind
    return pcfg


def _train_prior(cfg: Config, out: str, kind: str, ctx: StageContext, log=print) -> dict[str, Any]:
    from emojiray.generate.sampler import write_sample_sheet
    from emojiray.train.prior_loop import train_prior

    pcfg = _prior_config(cfg, kind)
    r = train_prior(pcfg, ctx.done["extract_codes"]["uri"], storage.join(out, f"prior_{kind}"), force=True, log=log)
    sheet = write_sample_sheet(r["prior"], ctx.done["train_vqvae"]["model"], storage.join(out, f"samples_{kind}.png"),
                               n=pcfg.prior.sheet_samples, seed=cfg.train.seed)
    log(f"train-prior: {kind} sample sheet -> {sheet}")
    return {"prior": r["prior"], "sheet": sheet, "metrics": r["metrics"], "retrained": True}


def _samples(cfg: Config, out: str, kind: str, ctx: StageContext, log=print) -> dict[str, Any]:
    from emojiray.eval.samples import eval_samples
    from emojiray.generate.sample_run import sample_run

    samples_uri = storage.join(out, f"samples_{kind}")
    sample_run(ctx.done[f"prior_{kind}"]["prior"], samples_uri, cfg.sample.n, vqvae=ctx.done["train_vqvae"]["model"],
               cfg=cfg.sample, ray_cfg=cfg.ray, force=ctx.fresh, log=log)
    r = eval_samples(samples_uri, ctx.done["prepare"]["uri"], samples_uri, cfg=cfg.eval, ray_cfg=cfg.ray, log=log)
    return {"uri": samples_uri, **{k: r[k] for k in SAMPLE_KEYS}}


def _extensions(cfg: Config, out: str, force: bool, ctx: StageContext, log=print) -> dict[str, Any]:
    from emojiray.extensions import stage as extension_stage

    priors = {kind: {"prior": ctx.done[f"prior_{kind}"]["prior"], "samples": ctx.done[f"samples_{kind}"]["uri"],
                     "version": ctx.versions[f"prior_{kind}"]} for kind in cfg.pipeline.priors}
    return extension_stage.run_extensions(cfg, out, ctx.done["prepare"]["uri"], ctx.done["train_vqvae"]["model"],
                                          priors, ctx.done["extract_codes"]["uri"], ctx.versions["extract_codes"],
                                          force=force, log=log)


# -- the stages -------------------------------------------------------------------------------------


def pipeline_stages(cfg: Config, out: str, force: bool = False, log=print) -> list[Stage]:
    """The pipeline's stages for ``cfg``, in order."""
    section = cfg.to_dict()
    stages = [
        Stage("prepare", partial(_prepare, cfg, out, log=log)),
        Stage("info", partial(_info, out, log=log)),
        Stage("stream", partial(_stream, cfg, log=log)),
        Stage("train_vqvae", partial(_train_vqvae, cfg, out, log=log), after=("prepare",),
              key=lambda done: {"model": section["model"], "train": section["train"]},
              outputs=("tokenizer/vqvae/meta.json", "tokenizer/train_vqvae.json")),
        Stage("eval_vqvae", partial(_eval_vqvae, cfg, out, log=log), after=("prepare", "train_vqvae"),
              key=lambda done: {k: section["eval"][k] for k in ("split", "fid_images")},
              outputs=("eval_vqvae.json", "recon_grid.png")),
        Stage("extract_codes", partial(_extract_codes, cfg, out, log=log), after=("prepare", "train_vqvae"),
              key=lambda done: {"mirror": cfg.prior.mirror}, outputs=("codes/manifest.json",)),
    ]
    for kind in cfg.pipeline.priors:
        stages += [
            Stage(f"prior_{kind}", partial(_train_prior, cfg, out, kind, log=log), after=("extract_codes",),
                  key=lambda done, kind=kind: _prior_config(cfg, kind).to_dict()["prior"],
                  outputs=(f"prior_{kind}/prior/meta.json", f"samples_{kind}.png")),
            Stage(f"samples_{kind}", partial(_samples, cfg, out, kind, log=log), after=("prepare", f"prior_{kind}"),
                  key=lambda done: {"sample": section["sample"], "eval": section["eval"]},
                  outputs=(f"samples_{kind}/manifest.json", f"samples_{kind}/eval_samples.json")),
        ]
    if cfg.extensions.run:  # its pieces keep track of themselves (emojiray.extensions.stage)
        stages.append(Stage("extensions", partial(_extensions, cfg, out, force, log=log)))
    return stages


def run_pipeline(cfg: Config, out: str, force: bool = False, start: str | None = None, log=print) -> dict[str, Any]:
    """Run (or bring up to date) the pipeline at ``out``; ``start``: redo this stage and every later one."""
    from emojiray.extensions import stage as extension_stage
    from emojiray.report.html import git_revision

    extension_stage.check(cfg)  # a bad extension setting fails now, not after an hour of training
    out = storage.absolute(out)  # every manifest, model meta and report names absolute paths
    stages = pipeline_stages(cfg, out, force=force, log=log)
    check_start(stages, start)
    rev = git_revision()
    record: dict[str, Any] = {"emojiray_version": __version__, "out": out, "config": cfg.to_dict(),
                              "git_revision": (rev["revision"] + (" with uncommitted changes" if rev["dirty"] else ""))
                              if rev else None,
                              "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                              "stages": {}}
    record["stages"] = run_stages(stages, out, force=force, start=start, log=log)
    record["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    storage.write_json(storage.join(out, "pipeline.json"), record)
    if cfg.pipeline.report:  # reads pipeline.json: written last
        from emojiray.report import build_report

        index = build_report(out, storage.join(out, "report"), log=lambda *_: None)
        log(f"report: {index}")
    log(f"pipeline: done -> {out}")
    return record
