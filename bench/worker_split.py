"""Benchmark: how to split a CPU-only machine's cores between Ray Train workers and Ray Data.

    python bench/worker_split.py --preset smoke --data results/bench/data-32 --seconds 60

Trains the preset's tokenizer through ``train_vqvae`` (the Ray path) for ``--seconds`` of training
time once per split, in one run, rounds interleaved (``--rounds``), and records images/s (images
trained over training seconds) and the command's wall time for each:

- ``data1_worker1``: one CPU kept for Ray Data, one worker with the rest (the old default);
- ``data0_worker1``: no CPU kept (the dataset is materialised), one worker with every CPU as threads;
- ``data0_workers_per_cpu``: no CPU kept, one DDP worker per CPU (gloo), one thread each.

A measurement, not a test: it asserts nothing. The split ``ray.data_cpus=-1`` (auto) chooses is
the one this measured fastest.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import sys
import tempfile
import time

from emojiray import storage
from emojiray.config import load_config
from emojiray.train.vqvae_loop import train_vqvae

sys.path.insert(0, os.path.dirname(__file__))
from recipe_rows import tokenizer_parser  # noqa: E402
from vqvae_speed import _revision  # noqa: E402


def main() -> None:
    ap = tokenizer_parser(__doc__, seconds=60)
    ap.add_argument("--rounds", type=int, default=1, help="every split once per round")
    ap.add_argument("--out", default="results/bench/worker_split_cpu.json")
    args = ap.parse_args()

    cpus = int(load_config(args.preset, args.overrides).ray.num_cpus or os.cpu_count() or 1)
    splits = {"data1_worker1": ["ray.data_cpus=1", "ray.num_workers=1"],
              "data0_worker1": ["ray.data_cpus=0", "ray.num_workers=1"],
              "data0_workers_per_cpu": ["ray.data_cpus=0", f"ray.num_workers={cpus}"]}
    runs = []
    for rnd in range(args.rounds):
        for name, extra in splits.items():
            cfg = load_config(args.preset, [*args.overrides, *extra, f"train.max_seconds={args.seconds}",
                                            "train.epochs=100000"])
            with tempfile.TemporaryDirectory() as work:
                t0 = time.perf_counter()
                run = train_vqvae(cfg, args.data, work, log=lambda *_: None)
                wall = time.perf_counter() - t0
            images = run["step"] * cfg.train.batch_size * run["workers"]
            runs.append({"split": name, "round": rnd, "workers": run["workers"],
                         "images_per_s": images / run["train_seconds"], "train_seconds": run["train_seconds"],
                         "wall_seconds": wall, "data_wait_seconds": run["data_wait_seconds"],
                         "val_psnr": run["metrics"].get("val_psnr")})
            print(f"{name:24s} round {rnd}: {runs[-1]['images_per_s']:7.1f} images/s, wall {wall:.1f} s, "
                  f"data wait {run['data_wait_seconds']:.1f} s", flush=True)
            import ray

            ray.shutdown()  # each run starts its own Ray, as a command would
    best = {name: max(r["images_per_s"] for r in runs if r["split"] == name) for name in splits}
    record = {"benchmark": "worker_split", "device": f"cpu ({platform.machine()}), {cpus} cores",
              "date": dt.date.today().isoformat(), "git_revision": _revision(),
              "command": "python " + " ".join(shlex.quote(a) for a in sys.argv), "preset": args.preset,
              "runs": runs, "best_images_per_s": best, "fastest": max(best, key=best.get)}
    storage.write_json(args.out, record)
    print(f"fastest: {record['fastest']} -> {args.out}")


if __name__ == "__main__":
    main()
