"""Benchmark: what one training step of a prior costs on this machine, by code grid and model size.

    python bench/prior_step_cost.py --seconds 6 > results/cpu/prior_step_cost.txt

``PriorFamily.train_step`` + backward + AdamW on random codes (the cost does not depend on the
values), for a 16x16 grid of 256 codes and an 8x8 grid of 1,024, the AR transformer and MaskGIT,
two model sizes and two batch sizes, in fp32 and under bf16 autocast. Prints seconds per step and
sequences (images) per second. A measurement, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from vqvae_speed import _revision  # noqa: E402

from emojiray.config import load_config  # noqa: E402
from emojiray.train.prior_loop import PriorFamily  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--seconds", type=float, default=6, help="timed seconds per configuration")
    args = ap.parse_args()
    print(f"# {dt.date.today().isoformat()}, git {_revision()}, cpu ({platform.machine()}, "
          f"{torch.get_num_threads()} threads): python {' '.join(sys.argv)}")
    for grid, K in ((16, 256), (8, 1024)):
        for dim, layers, batch in ((256, 6, 64), (128, 4, 64), (128, 4, 32)):
            for kind in ("transformer", "maskgit"):
                for bf16 in (False, True):
                    cfg = load_config(args.preset, [f"prior.kind={kind}", f"prior.dim={dim}",
                                                    f"prior.layers={layers}", f"prior.batch_size={batch}"])
                    spec = {"levels": ["bottom"], "grids": {"bottom": [grid, grid]}, "sizes": {"bottom": K},
                            "n_classes": 10, "examples": 6753, "vocab": {}, "vqvae": ""}
                    torch.manual_seed(0)
                    family = PriorFamily(cfg, spec)
                    codes = {"bottom": torch.randint(0, K, (batch, grid * grid)),
                             "category": torch.randint(0, 10, (batch,))}

                    def step() -> None:
                        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                            loss = family.train_step(codes)["loss"]
                        family.opt.zero_grad()
                        loss.backward()
                        family.opt.step()

                    step()
                    t0, n = time.perf_counter(), 0
                    while time.perf_counter() - t0 < args.seconds:
                        step()
                        n += 1
                    per = (time.perf_counter() - t0) / n
                    print(f"grid {grid}x{grid} K {K:5d} | {kind:11s} dim {dim} layers {layers} batch {batch:3d} | "
                          f"{'bf16' if bf16 else 'fp32'} | {per:6.3f} s/step | {batch / per:5.0f} images/s", flush=True)


if __name__ == "__main__":
    main()
