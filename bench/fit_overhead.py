"""Benchmark: the fixed cost of one training run through the Ray driver, besides its training.

    python bench/fit_overhead.py --data results/bench/data-32 --runs 4 --label HEAD

Trains the preset's tokenizer (``train_vqvae``, the Ray path) ``--runs`` times for ``--seconds``
of training each, one after another on one embedded Ray (as the pipeline and the test suite do),
and appends one JSON line per run to ``--out``: the run's wall time from the call to its return,
its training and report (validation, checkpoint) seconds, its images/s, and what is left, the
start-up and shut-down of Ray Train's controller, workers and dataset reading
(``overhead_seconds``). The first
run also pays the process's first imports and is marked ``first``. Run it from two checkouts
(``PYTHONPATH=<checkout>``) to compare revisions side by side.

A measurement, not a test: it asserts nothing. Ray Train's settings are the user's (the tests'
``RAY_TRAIN_*`` defaults are not set here).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

from emojiray.config import load_config
from emojiray.raykit import init_ray
from emojiray.train.vqvae_loop import train_vqvae

sys.path.insert(0, os.path.dirname(__file__))
from recipe_rows import append, provenance, tokenizer_parser  # noqa: E402


def main() -> None:
    ap = tokenizer_parser(__doc__, seconds=1.0)
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--label", default="", help="a name for this checkout in the rows")
    ap.add_argument("--out", default="results/bench/fit_overhead.jsonl")
    args = ap.parse_args()

    cfg = load_config(args.preset, [*args.overrides, f"train.max_seconds={args.seconds}", "train.epochs=100000",
                                    "train.image_every=0"])
    init_ray(cfg.ray)
    env = {k: os.environ.get(k) for k in ("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER")}
    for i in range(args.runs):
        with tempfile.TemporaryDirectory() as work:
            t0 = time.perf_counter()
            run = train_vqvae(cfg, args.data, work, log=lambda *_: None)
            wall = time.perf_counter() - t0
        row = {"benchmark": "fit_overhead", **provenance(), "label": args.label, "preset": args.preset,
               "run": i, "first": i == 0, "wall_seconds": round(wall, 2),
               "train_seconds": round(run["train_seconds"], 2), "report_seconds": round(run["report_seconds"], 2),
               "images_per_s": round(run["step"] * cfg.train.batch_size * run["workers"] / run["train_seconds"], 1),
               "overhead_seconds": round(wall - run["train_seconds"] - run["report_seconds"], 2), "env": env}
        append(args.out, row)
        print(f"{args.label or 'run'} {i}: wall {wall:.1f} s = train {row['train_seconds']} + report "
              f"{row['report_seconds']} + overhead {row['overhead_seconds']} s; {row['images_per_s']} images/s",
              flush=True)


if __name__ == "__main__":
    main()
