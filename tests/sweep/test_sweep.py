"""`emojiray tune` on a local Ray: a 4-trial sweep with Optuna + ASHA, interrupted and resumed."""

from __future__ import annotations

import csv
import os
import signal

import pytest

from emojiray.config import (Config, DataConfig, ModelConfig, OptimConfig, RayConfig, SweepConfig, TrainConfig,
                             load_config)
from emojiray.data.prepare import prepare
from helpers import wait_until

pytestmark = pytest.mark.ray


def sweep_config() -> Config:
    return Config(
        data=DataConfig(size=32),
        ray=RayConfig(num_cpus=3, data_cpus=1),
        model=ModelConfig(channels=16, res_blocks=1, res_channels=8, codebook_size=[32, 16], code_dim=[8, 8]),
        train=TrainConfig(epochs=2, batch_size=16, optim=OptimConfig(warmup_steps=5, lr=2e-3), log_every=5,
                          image_every=0, report_every_s=0),
        tune=SweepConfig(trials=4, max_concurrent=2, fid_images=-1, seed=0, space={
            "model.codebook_size": {"type": "loguniform_int", "low": 8, "high": 64},
            "model.beta": {"type": "loguniform", "low": 0.05, "high": 1.0},
            # a batch larger than the training split fails its trial: the sweep must go on
            "train.batch_size": {"type": "choice", "values": [8, 16, 100000]},
        }),
    )


class InterruptAfter:
    """A Tune callback that presses Ctrl-C once ``n`` trials have ended (finished or failed)."""

    def __new__(cls, n):
        from ray.tune import Callback

        class _Interrupt(Callback):
            def __init__(self):
                self.done = 0

            def on_trial_complete(self, iteration, trials, trial, **info):
                self._ended()

            def on_trial_error(self, iteration, trials, trial, **info):
                self._ended()

            def _ended(self):
                self.done += 1
                if self.done == n:
                    os.kill(os.getpid(), signal.SIGINT)

        return _Interrupt()


def test_sweep_interrupted_then_resumed_writes_table_plot_and_presets(ray_local, npm_cache, tmp_path):
    from emojiray.sweep.sweep import run_sweep

    data = str(tmp_path / "ds")
    prepare(DataConfig(npm_version="0.0.0-test", size=32, val_fraction=0.2, test_fraction=0.2), data,
            log=lambda *_: None)
    out = tmp_path / "sweep"
    cfg = sweep_config()
    first = run_sweep(cfg, data, str(out), callbacks=[InterruptAfter(2)], log=lambda *_: None)
    assert not first["complete"] and 2 <= len(first["rows"]) < 4
    ended = {r["trial_id"]: r["status"] for r in first["rows"]}
    kept = {r["trial_id"]: (out / "trials" / r["trial_id"] / "eval_vqvae.json").stat().st_mtime_ns
            for r in first["rows"] if r["status"] == "TERMINATED"}

    lines = []
    second = run_sweep(cfg, data, str(out), log=lines.append)
    # the trials that ASHA stopped or the interrupt ended left no CPUs reserved (on a Ray without a
    # dashboard their training runs' placement groups outlived them, and a later sweep stalled)
    total = ray_local.cluster_resources()["CPU"]
    assert wait_until(lambda: ray_local.available_resources().get("CPU", 0) == total)
    assert any("resuming the sweep" in ln for ln in lines)
    assert second["complete"] and len(second["rows"]) == 4
    failed = [r for r in second["rows"] if r["status"] == "ERROR"]
    assert failed and all(r["params"]["train.batch_size"] == 100000 for r in failed)
    assert all("no full training batch" in r["error"] for r in failed)
    assert any(f"trial {failed[0]['trial_id']} failed: " in ln for ln in lines)
    # trials that had ended were neither redone nor retried
    assert {r["trial_id"]: r["status"] for r in second["rows"] if r["trial_id"] in ended} == ended
    assert {r["trial_id"]: (out / "trials" / r["trial_id"] / "eval_vqvae.json").stat().st_mtime_ns
            for r in second["rows"] if r["trial_id"] in kept} == kept
    finished = [r for r in second["rows"] if r["status"] == "TERMINATED"]
    assert finished and all(r["heldout_psnr"] > 0 and r["entropy_bits_per_image"] > 0 for r in finished)
    assert all(r["params"]["train.batch_size"] < 100000 for r in finished)
    assert len({r["params"]["model.codebook_size"] for r in second["rows"]}) > 1  # the search explored K

    with open(out / "trials.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 4
    assert (out / "trials.md").read_text().count("\n") > 4
    assert (out / "pareto.png").stat().st_size > 1000
    presets = sorted((out / "presets").glob("best_*bits.yaml"))
    assert presets
    best = load_config(str(presets[-1]))  # what `train-vqvae --preset` accepts
    assert best.model.codebook_size[0] == best.model.codebook_size[1]
    assert 8 <= best.model.codebook_size[0] <= 64 and 0.05 <= best.model.beta <= 1.0
