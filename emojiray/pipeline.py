"""The main job, end to end: data -> summary -> streaming check -> VQ-VAE -> evaluation -> codes -> priors
-> samples -> sample evaluation -> extensions (demos and their metrics).

One function per stage lives in its own module; this only chains them and records what each
wrote in ``<out>/pipeline.json``. The CLI (`emojiray pipeline`) and `jobs/pipeline.py` call it.
Stages that are already done with the same inputs and settings are skipped (``force`` redoes
them); an interrupted training run is resumed from its last checkpoint.

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
    pipeline.json
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from typing import Any

from emojiray import __version__, storage
from emojiray.config import Config, config_from_dict


SAMPLE_KEYS = ("count", "samples_per_s", "fid", "kid", "precision", "recall", "fid_train", "memorized_share")


def _tokenizer_fingerprint(cfg: Config, data_fingerprint: str) -> str:
    payload = {"data": data_fingerprint, "model": cfg.to_dict()["model"], "train": cfg.to_dict()["train"]}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def run_pipeline(cfg: Config, out: str, force: bool = False, log=print) -> dict[str, Any]:
    from emojiray.data.info import format_summary, summary, write_info
    from emojiray.data.prepare import prepare
    from emojiray.data.stream import measure_throughput
    from emojiray.eval.vqvae import eval_vqvae
    from emojiray.extensions import stage as extension_stage
    from emojiray.raykit import init_ray
    from emojiray.train.vqvae_loop import train_vqvae

    extension_stage.check(cfg)  # a bad extension setting fails now, not after an hour of training
    out = storage.absolute(out)  # every manifest, model meta and report names absolute paths

    from emojiray.report.html import git_revision

    rev = git_revision()
    record: dict[str, Any] = {"emojiray_version": __version__, "out": out, "config": cfg.to_dict(),
                              "git_revision": (rev["revision"] + (" with uncommitted changes" if rev["dirty"] else ""))
                              if rev else None,
                              "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                              "stages": {}}
    data_uri = storage.join(out, "data")

    def stage(name: str, fn):
        t = time.perf_counter()
        result = fn()
        record["stages"][name] = {**result, "seconds": round(time.perf_counter() - t, 2)}
        return result

    manifest = {}

    def do_prepare():
        manifest.update(prepare(cfg.data, data_uri, force=force, log=log))
        return {"uri": data_uri, "images": manifest["counts"]["total"]}

    stage("prepare", do_prepare)
    extension_stage.check_demo(cfg, data_uri)

    def do_info():
        written = write_info(data_uri, out)
        log(format_summary(summary(data_uri, manifest)))
        return written

    stage("info", do_info)

    def do_stream():
        init_ray(cfg.ray)
        r = measure_throughput(data_uri, "train", batch_size=cfg.ray.batch_size)
        log(f"stream: {r['images']} train images through Ray Data into torch batches "
            f"at {r['best_images_per_s']:.0f} images/s")
        return r

    stage("stream", do_stream)

    run_uri = storage.join(out, "tokenizer")
    summary_uri = storage.join(run_uri, "train_vqvae.json")
    fingerprint = _tokenizer_fingerprint(cfg, manifest["fingerprint"])

    def do_train():
        if not force and storage.exists(summary_uri):
            done = storage.read_json(summary_uri)
            if done.get("fingerprint") == fingerprint:
                log(f"train-vqvae: {run_uri} is up to date (epoch {done['epoch']}); use --force to retrain")
                return {"model": done["model"], "skipped": True}
        interrupted = storage.exists(storage.join(run_uri, "ray")) and not storage.exists(summary_uri)
        result = train_vqvae(cfg, data_uri, run_uri, resume=interrupted and not force,
                             force=force or not interrupted, log=log)
        storage.write_json(summary_uri, {**result, "fingerprint": fingerprint})
        return {"model": result["model"], "epoch": result["epoch"], "metrics": result["metrics"], "retrained": True,
                "resumed_from_epoch": result.get("resumed_from_epoch", 0)}

    trained = stage("train_vqvae", do_train)

    def do_eval():
        r = eval_vqvae(trained["model"], data_uri, out, split=cfg.eval.split, fid_images=cfg.eval.fid_images,
                       batch_size=cfg.eval.batch_size, log=log)
        return {k: r[k] for k in ("psnr", "ssim", "rfid", "rfid_images", "codes_used", "bits_per_image")}

    stage("eval_vqvae", do_eval)

    from emojiray.data.codes import extract_codes
    from emojiray.generate.sampler import write_sample_sheet
    from emojiray.train.prior_loop import train_prior

    codes_uri = storage.join(out, "codes")

    def do_codes():
        manifest_uri = storage.join(codes_uri, "manifest.json")
        if not force and storage.exists(manifest_uri) and not trained.get("retrained"):
            done = storage.read_json(manifest_uri)
            if done.get("data_fingerprint") == manifest["fingerprint"] and done.get("vqvae") == trained["model"] \
                    and done.get("mirror", False) == cfg.prior.mirror:
                log(f"extract-codes: {codes_uri} is up to date")
                return {"uri": codes_uri, "skipped": True}
        r = extract_codes(trained["model"], data_uri, codes_uri, cfg.ray, log=log, mirror=cfg.prior.mirror,
                          force=True)  # this stage is being redone: its old codes go
        return {"uri": codes_uri, "rows": {k: v["rows"] for k, v in r["splits"].items()}}

    codes_stage = stage("extract_codes", do_codes)
    priors: dict[str, dict[str, Any]] = {}  # {kind: {"prior", "retrained", "samples"}} for the extensions

    for kind in cfg.pipeline.priors:
        run = storage.join(out, f"prior_{kind}")

        def do_prior(kind=kind, run=run):
            pcfg = config_from_dict(cfg.to_dict())
            pcfg.prior.kind = kind
            fp = hashlib.sha256(json.dumps({"tok": fingerprint, "prior": pcfg.to_dict()["prior"]},
                                           sort_keys=True).encode()).hexdigest()
            summary_uri = storage.join(run, "train_prior.json")
            if not force and not codes_stage.get("rows") and storage.exists(summary_uri):
                done = storage.read_json(summary_uri)
                if done.get("fingerprint") == fp:
                    log(f"train-prior: {run} is up to date")
                    return {"prior": done["prior"], "skipped": True}
            r = train_prior(pcfg, codes_uri, run, force=True, log=log)
            storage.write_json(summary_uri, {**r, "fingerprint": fp})
            sheet = write_sample_sheet(r["prior"], trained["model"], storage.join(out, f"samples_{kind}.png"),
                                       n=pcfg.prior.sheet_samples, seed=cfg.train.seed)
            log(f"train-prior: {kind} sample sheet -> {sheet}")
            return {"prior": r["prior"], "sheet": sheet, "metrics": r["metrics"], "retrained": True}

        prior_stage = stage(f"prior_{kind}", do_prior)

        def do_samples(kind=kind, prior_stage=prior_stage):
            from emojiray.eval.samples import eval_samples
            from emojiray.generate.sample_run import sample_run

            samples_uri = storage.join(out, f"samples_{kind}")
            fresh = force or bool(prior_stage.get("retrained"))
            smf = sample_run(prior_stage["prior"], samples_uri, cfg.sample.n, vqvae=trained["model"], cfg=cfg.sample,
                             ray_cfg=cfg.ray, force=fresh, log=log)
            eval_uri = storage.join(samples_uri, "eval_samples.json")
            if not fresh and storage.exists(eval_uri):
                done = storage.read_json(eval_uri)
                if done.get("samples_created") == smf["created"]:
                    log(f"eval-samples: {samples_uri} is up to date")
                    return {"uri": samples_uri, "skipped": True, **{k: done.get(k) for k in SAMPLE_KEYS}}
            r = eval_samples(samples_uri, data_uri, samples_uri, cfg=cfg.eval, ray_cfg=cfg.ray, log=log)
            return {"uri": samples_uri, **{k: r[k] for k in SAMPLE_KEYS}}

        samples_stage = stage(f"samples_{kind}", do_samples)
        priors[kind] = {"prior": prior_stage["prior"], "retrained": bool(prior_stage.get("retrained")),
                        "samples": samples_stage["uri"]}

    if cfg.extensions.run:
        def do_extensions():
            return extension_stage.run_extensions(cfg, out, data_uri, trained["model"], priors, codes_uri,
                                                  fingerprint, force=force, log=log)

        stage("extensions", do_extensions)

    record["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    storage.write_json(storage.join(out, "pipeline.json"), record)
    if cfg.pipeline.report:  # reads pipeline.json: written last
        from emojiray.report import build_report

        index = build_report(out, storage.join(out, "report"), log=lambda *_: None)
        log(f"report: {index}")
    log(f"pipeline: done -> {out}")
    return record
