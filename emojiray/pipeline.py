"""The main job, end to end: data -> summary -> streaming check (later: VQ-VAE, priors, samples).

One function per stage lives in its own module; this only chains them and records what each
wrote in ``<out>/pipeline.json``. The CLI (`emojiray pipeline`) and `jobs/pipeline.py` call it.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from emojiray import __version__, storage
from emojiray.config import Config


def run_pipeline(cfg: Config, out: str, force: bool = False, log=print) -> dict[str, Any]:
    from emojiray.data.info import format_summary, summary, write_info
    from emojiray.data.prepare import prepare
    from emojiray.data.stream import measure_throughput
    from emojiray.raykit import init_ray

    record: dict[str, Any] = {"emojiray_version": __version__, "out": out, "config": cfg.to_dict(),
                              "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                              "stages": {}}
    data_uri = storage.join(out, "data")

    t = time.perf_counter()
    manifest = prepare(cfg.data, data_uri, force=force, log=log)
    record["stages"]["prepare"] = {"uri": data_uri, "images": manifest["counts"]["total"],
                                   "seconds": round(time.perf_counter() - t, 2)}

    t = time.perf_counter()
    written = write_info(data_uri, out)
    log(format_summary(summary(data_uri, manifest)))
    record["stages"]["info"] = {**written, "seconds": round(time.perf_counter() - t, 2)}

    t = time.perf_counter()
    init_ray(cfg.ray)
    stream = measure_throughput(data_uri, "train", batch_size=cfg.ray.batch_size)
    log(f"stream: {stream['images']} train images through Ray Data into torch batches "
        f"at {stream['best_images_per_s']:.0f} images/s")
    record["stages"]["stream"] = {**stream, "seconds": round(time.perf_counter() - t, 2)}

    record["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    storage.write_json(storage.join(out, "pipeline.json"), record)
    log(f"pipeline: done -> {out}")
    return record
