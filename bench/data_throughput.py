"""Benchmark: Ray Data read throughput from prepared shards into torch batches (images/s).

    python bench/data_throughput.py --data results/bench/data-64 --out results/bench/data_throughput.json

Prepares the default data first if --data has no dataset. Each epoch re-reads the shards from
storage through Ray Data (decode in map_batches, uint8 torch batches, conversion to float on the
device), as a training run does. Prints and records images/s per epoch with device, date and
command. A measurement, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import sys

from emojiray import storage
from emojiray.config import load_config
from emojiray.data import shards
from emojiray.data.prepare import prepare
from emojiray.data.stream import measure_throughput
from emojiray.raykit import init_ray


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="results/bench/data-64", help="dataset URI (prepared if missing)")
    ap.add_argument("--size", type=int, default=64, help="image size when the dataset has to be prepared")
    ap.add_argument("--split", default="train")
    ap.add_argument("--batch-size", type=int, nargs="+", default=[128, 512])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--num-cpus", type=int, default=0, help="local Ray CPUs (0 = all)")
    ap.add_argument("--device", default="cuda" if _has_cuda() else "cpu")
    ap.add_argument("--out", default="results/bench/data_throughput.json")
    args = ap.parse_args()

    cfg = load_config("smoke", [f"ray.num_cpus={args.num_cpus}", f"data.size={args.size}"])
    if not storage.exists(storage.join(args.data, shards.MANIFEST)):
        prepare(cfg.data, args.data)
    init_ray(cfg.ray)
    runs = []
    for cache in (False, True):
        for bs in args.batch_size:
            r = measure_throughput(args.data, args.split, batch_size=bs, epochs=args.epochs,
                                   device=args.device, cache=cache)
            mode = "cached   " if cache else "streaming"
            print(f"{mode} batch {bs:5d}: " + ", ".join(f"{v:,.0f}" for v in r["images_per_s"]) + " images/s per epoch")
            runs.append(r)
    import ray

    record = {
        "benchmark": "ray_data_read_throughput",
        "device": _device_name(args.device),
        "cpus": int(ray.cluster_resources().get("CPU", 0)),
        "host": platform.node(),
        "date": dt.date.today().isoformat(),
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "data": args.data,
        "image_size": shards.load_manifest(args.data)["image"]["height"],
        "images": runs[0]["images"],
        "runs": runs,
        "images_per_s_streaming": max(r["best_images_per_s"] for r in runs if not r["cached"]),
        "images_per_s_cached": max(r["best_images_per_s"] for r in runs if r["cached"]),
    }
    storage.write_json(args.out, record)
    print(f"best: streaming {record['images_per_s_streaming']:,.0f} images/s, cached "
          f"{record['images_per_s_cached']:,.0f} images/s on {record['device']} -> {args.out}")


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(0)
    return f"cpu ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"


if __name__ == "__main__":
    main()
