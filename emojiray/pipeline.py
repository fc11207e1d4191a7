"""The main job, end to end: data -> summary -> streaming check -> VQ-VAE -> evaluation.

One function per stage lives in its own module; this only chains them and records what each
wrote in ``<out>/pipeline.json``. The CLI (`emojiray pipeline`) and `jobs/pipeline.py` call it.
Stages that are already done with the same inputs and settings are skipped (``force`` redoes
them); an interrupted training run is resumed from its last checkpoint.

Layout under ``out``::

    data/                 Parquet shards + manifest.json
    data_summary.json, data_contact_category.png, data_contact_emotion.png
    tokenizer/            the VQ-VAE run: ray/ (checkpoints), tensorboard/, vqvae/ (the model)
    eval_vqvae.json, recon_grid.png
    pipeline.json
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from typing import Any

from emojiray import __version__, storage
from emojiray.config import Config


def _tokenizer_fingerprint(cfg: Config, data_fingerprint: str) -> str:
    payload = {"data": data_fingerprint, "model": cfg.to_dict()["model"], "train": cfg.to_dict()["train"]}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def run_pipeline(cfg: Config, out: str, force: bool = False, log=print) -> dict[str, Any]:
    from emojiray.data.info import format_summary, summary, write_info
    from emojiray.data.prepare import prepare
    from emojiray.data.stream import measure_throughput
    from emojiray.eval.vqvae import eval_vqvae
    from emojiray.raykit import init_ray
    from emojiray.train.vqvae_loop import train_vqvae

    record: dict[str, Any] = {"emojiray_version": __version__, "out": out, "config": cfg.to_dict(),
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
        return {"model": result["model"], "epoch": result["epoch"], "metrics": result["metrics"]}

    trained = stage("train_vqvae", do_train)

    def do_eval():
        r = eval_vqvae(trained["model"], data_uri, out, split=cfg.eval.split, fid_images=cfg.eval.fid_images,
                       batch_size=cfg.eval.batch_size, log=log)
        return {k: r[k] for k in ("psnr", "ssim", "rfid", "rfid_images", "codes_used", "bits_per_image")}

    stage("eval_vqvae", do_eval)

    record["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    storage.write_json(storage.join(out, "pipeline.json"), record)
    log(f"pipeline: done -> {out}")
    return record
