"""bench/gpu_suite.sh: its CPU dry run end to end, and the one-line stops of its preflight check.

The dry run runs every stage (tokenizer speed, sampling speed, 8 samples end to end with their
FID, a one-trial Ray Tune sweep) with tiny models and budgets on a fake dataset, its stages
connected to the session's Ray (``RAY_ADDRESS``) instead of each starting one: 74-136 s on the
shared 2-core development machine under another engineer's load (2 to 8), 2026-12-01. The other
tests stop in the preflight check (one Python start with the imports) or before it.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emojiray.config import DataConfig
from emojiray.data.prepare import prepare

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "bench" / "gpu_suite.sh"
STAGES = ["vqvae", "sampling", "e2e", "tune"]


def suite(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHON": sys.executable, **(env or {})}
    return subprocess.run(["bash", str(SUITE), *args], cwd=ROOT, env=full, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def data(npm_cache, tmp_path) -> str:
    uri = str(tmp_path / "data-32")
    prepare(DataConfig(npm_version="0.0.0-test", size=32, val_fraction=0.2, test_fraction=0.2), uri,
            log=lambda *_: None)
    return uri


def finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


@pytest.mark.ray
def test_dry_run_writes_every_stage_and_the_summary(ray_local, data, tmp_path):
    out = tmp_path / "gpu"
    address = ray_local.get_runtime_context().gcs_address  # one Ray for every stage: no start-ups
    t0 = time.perf_counter()
    res = suite("--dry-run", "--data", data, "--out", str(out), env={"RAY_ADDRESS": address})
    wall = time.perf_counter() - t0
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-5000:]

    vq = json.loads((out / "vqvae_speed.json").read_text())
    assert vq["images_per_s"] > 0 and finite(vq["psnr"]) and finite(vq["ssim"]) and finite(vq["rfid"])
    assert vq["rfid_images"] == 8

    ss = json.loads((out / "sampling_speed.json").read_text())
    measured = {(r["prior"], r["batch_size"]) for r in ss["results"] if r["samples_per_s"] > 0}
    assert {p for p, _ in measured} == {"maskgit", "transformer", "transformer_nocache", "pixelsnail"}
    assert ss["budget_seconds"] == 20 and ss["kv_cache_speedup"]

    e2e = json.loads((out / "end_to_end.json").read_text())["end_to_end"]
    assert e2e["samples"] == 8 and e2e["sample_samples_per_s"] > 0 and finite(e2e["fid"])
    assert e2e["prior"] in ("maskgit", "transformer", "pixelsnail")  # the fastest of the sampling stage

    tune = json.loads((out / "tune.json").read_text())
    assert len(tune["trials"]) == 1 and tune["trials"][0]["status"] == "TERMINATED"
    assert finite(float(tune["trials"][0]["val_psnr"]))

    summary = json.loads((out / "suite.json").read_text())
    print(f"gpu_suite --dry-run: {wall:.1f} s (" + ", ".join(f"{s['stage']} {s['wall_seconds']:.1f} s"
                                                           for s in summary["stages"]) + ")")
    assert summary["ok"] and summary["dry_run"] and summary["failed"] == []
    assert summary["device"].startswith("cpu") and summary["git"]
    assert [s["stage"] for s in summary["stages"]] == STAGES
    for s in summary["stages"]:
        assert s["rc"] == 0 and s["wall_seconds"] > 0 and s["command"]
        assert (out / s["output"]).is_file() and s["figures"]
    assert summary["stages"][0]["figures"]["images_per_s"] == vq["images_per_s"]
    assert summary["stages"][2]["figures"]["fid"] == e2e["fid"]
    assert (out / "suite.log").stat().st_size > 0


def test_missing_dataset_stops_at_once_with_one_line(tmp_path):
    t0 = time.perf_counter()
    res = suite("--out", str(tmp_path / "gpu"), "--data", str(tmp_path / "no-such-data"), timeout=120)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "no-such-data" in lines[0] and "data prepare --size 64" in lines[0]
    assert "carry" in lines[0]
    assert time.perf_counter() - t0 < 60
    assert not (tmp_path / "gpu" / "suite.json").exists()


def test_missing_package_stops_at_once_with_one_line(tmp_path):
    blocked = tmp_path / "blocked" / "optuna"  # an optuna that cannot be imported, ahead of the real one
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('not installed on this machine')\n")
    res = suite("--dry-run", "--out", str(tmp_path / "gpu"), timeout=120,
                env={"PYTHONPATH": str(tmp_path / "blocked")})
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "optuna (ImportError)" in lines[0] and ".devbundle" in lines[0]


def test_unknown_stage_is_refused(tmp_path):
    res = suite("--dry-run", "--stages", "vqvae,nope", "--out", str(tmp_path / "gpu"), timeout=60)
    assert res.returncode == 2 and "unknown stage 'nope'" in res.stderr


def test_a_timed_out_stage_and_a_skipped_one_are_recorded_and_fail_the_suite(tmp_path):
    out = tmp_path / "gpu"
    res = suite("--dry-run", "--stages", "sampling,e2e", "--out", str(out), timeout=120,
                env={"SUITE_TIMEOUT_SAMPLING": "1", "SUITE_MIN_E2E": "100000"})
    assert res.returncode == 1, res.stdout[-3000:] + res.stderr[-3000:]
    summary = json.loads((out / "suite.json").read_text())
    assert [(s["stage"], s["rc"]) for s in summary["stages"]] == [("sampling", 124), ("e2e", "skipped")]
    assert summary["stages"][0]["timeout_seconds"] == 1 and "figures" not in summary["stages"][0]
    assert summary["failed"] == ["sampling", "e2e"] and not summary["ok"]
    assert "e2e: skipped" in (out / "suite.log").read_text()
