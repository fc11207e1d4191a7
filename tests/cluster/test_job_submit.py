"""The way the system is used on a cluster, on one machine: a real Ray cluster of three nodes
started with `ray start` (a head and two workers, one CPU each; token authentication on, dashboard
on loopback), the pipeline submitted with `ray job submit`, its two training workers on different
nodes reading the same shards, every artifact on S3 (a moto server on loopback), a training run
killed mid-way and resumed from its S3 checkpoints by the resubmitted job, then everything read back.

The pipeline is the smoke preset shrunk further (fake emoji packages, one prior, a few samples,
one extension) so that both jobs take about two minutes on two CPU cores.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import pytest

from conftest import fake_npm_cache
from s3server import free_port

# a three-node cluster, two jobs and a stopped-and-resumed run: above the suite-wide 900 s limit
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# enough epochs that the first job is stopped between its first checkpoint and the end: the tiny
# tokenizer trains an epoch in well under a second (6 epochs were all done before the stop landed)
EPOCHS = 30
TINY = [  # the smoke preset, smaller: each `--set` is one the CLI documents
    "--preset", "smoke", "--set", "ray.num_workers=2",
    "--set", "data.npm_version=0.0.0-test",
    "--set", "model.channels=32", "--set", "model.res_channels=16", "--set", "model.codebook_size=[32,16]",
    "--set", "model.code_dim=[8,8]",
    "--set", f"train.epochs={EPOCHS}", "--set", "train.batch_size=8", "--set", "train.warmup_steps=5",
    "--set", "train.report_every_s=0",  # a checkpoint every epoch: the stopped job resumes from one
    "--set", "eval.fid_images=8", "--set", "eval.real_images=8", "--set", "eval.min_condition_images=2",
    "--set", "pipeline.priors=[maskgit]", "--set", "prior.epochs=1", "--set", "prior.batch_size=16",
    "--set", "prior.sheet_samples=4",
    "--set", "sample.n=8", "--set", "sample.batch_size=8", "--set", "sample.shard_size=4",
    "--set", "extensions.run=[inpaint]", "--set", "extensions.demo=[grinning face]",
    "--set", "extensions.eval_images=4", "--set", "extensions.examples=2", "--set", "inpaint.completions=2",
]


def _ray(*args: str, env: dict, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN / "ray"), *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"ray {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def _http_status(url: str, token: str | None) -> int:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):  # not listening (yet)
        return 0


def _state(address: str, token: str, resource: str, **filters: str) -> list[dict]:
    """Rows of Ray's state API (``/api/v0/<resource>``: nodes, actors, ...), dead ones included."""
    query = [("limit", "1000"), ("detail", "true")]
    for key, value in filters.items():
        query += [("filter_keys", key), ("filter_predicates", "="), ("filter_values", value)]
    req = urllib.request.Request(f"{address}/api/v0/{resource}?{urlencode(query)}",
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())["data"]["result"]["result"]


@pytest.fixture(scope="module")
def fake_npm(tmp_path_factory) -> Path:
    return fake_npm_cache(tmp_path_factory.mktemp("npmcache"))


@pytest.fixture(scope="module")
def head(s3, fake_npm, tmp_path_factory):
    """A three-node Ray cluster (head + two workers, one CPU each) with token authentication and
    the dashboard on loopback; yields (dashboard address, env with the token, the S3 secret key)."""
    token = secrets.token_hex(16)
    secret_key = "emojiray-test-secret-" + secrets.token_hex(8)  # moto accepts any key; this one is findable
    env = {**os.environ,
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # the job's `python` is this venv's
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "RAY_USAGE_STATS_ENABLED": "0",
           "AWS_SECRET_ACCESS_KEY": secret_key, "EMOJIRAY_CACHE": str(fake_npm)}
    env.pop("RAY_ADDRESS", None)
    temp_dir = tempfile.mkdtemp(prefix="er-head-", dir="/tmp")  # short: Ray's socket paths have a length limit
    gcs, dash = free_port(), free_port()
    common = ["--block", "--num-cpus=1", "--num-gpus=0", "--disable-usage-stats"]
    address = f"http://127.0.0.1:{dash}"

    logs = tmp_path_factory.mktemp("ray-start")

    def start(*args: str) -> subprocess.Popen:
        with open(logs / f"node{len(list(logs.iterdir()))}.log", "w") as out:
            return subprocess.Popen([str(BIN / "ray"), "start", *args, *common], env=env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)

    nodes = [start("--head", f"--port={gcs}", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
                   f"--dashboard-port={dash}", f"--temp-dir={temp_dir}")]
    try:
        _await(lambda: _http_status(f"{address}/api/jobs/", token) == 200, nodes, "the Ray dashboard", logs)
        for want in (2, 3):  # one worker node at a time, each tried twice: a busy 2-core box can time out
            for attempt in range(2):
                node = start(f"--address=127.0.0.1:{gcs}")
                try:
                    _await(lambda: sum(n["state"] == "ALIVE" for n in _state(address, token, "nodes")) == want,
                           [node], f"{want} alive nodes", logs)
                    nodes.append(node)
                    break
                except AssertionError:
                    if attempt:
                        raise
                    node.kill()
                    node.wait()
        yield address, env, secret_key
    finally:
        for proc in reversed(nodes):  # workers first; `ray start --block` stops what it started
            proc.send_signal(signal.SIGTERM)
        for proc in reversed(nodes):
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _await(ready, procs: list[subprocess.Popen], what: str, logs: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if any(proc.poll() is not None for proc in procs):
            output = "\n".join(p.read_text() for p in sorted(logs.iterdir()))
            raise AssertionError(f"`ray start` exited before {what}:\n{output}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} after {timeout:.0f} s")
        time.sleep(1)


def _submit(address: str, env: dict, job_id: str, out: str) -> None:
    runtime_env = {"excludes": ["results/", "tests/", ".cache/", "*.png"]}
    _ray("job", "submit", "--address", address, "--submission-id", job_id, "--no-wait", "--working-dir", str(ROOT),
         "--runtime-env-json", json.dumps(runtime_env), "--",
         "python", "jobs/pipeline.py", *TINY, "--out", out, env=env)


def _status(address: str, env: dict, job_id: str) -> str:
    """The job's state from the Jobs REST API (the token as a bearer header, like the CLI sends it)."""
    req = urllib.request.Request(f"{address}/api/jobs/{job_id}",
                                 headers={"Authorization": f"Bearer {env['RAY_AUTH_TOKEN']}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())["status"]


def _wait(address: str, env: dict, job_id: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while (state := _status(address, env, job_id)) in ("RUNNING", "PENDING"):
        if time.monotonic() > deadline:
            _ray("job", "stop", "--address", address, job_id, env=env, check=False)
            raise AssertionError(f"job {job_id} still {state} after {timeout:.0f} s:\n{_logs(address, env, job_id)}")
        time.sleep(2)
    return state


def _logs(address: str, env: dict, job_id: str) -> str:
    return _ray("job", "logs", "--address", address, job_id, env=env, check=False).stdout


def _checkpoints(run: str) -> list[int]:
    """Epochs of the Ray Train checkpoints fully written under ``run``/tokenizer/ray (meta.json last)."""
    from emojiray import storage

    epochs = []
    for uri in storage.list_files(storage.join(run, "tokenizer", "ray")):
        if uri.endswith("/meta.json") and "/checkpoint_" in uri:
            try:
                epochs.append(int(storage.read_json(uri)["epoch"]))
            except Exception:  # mid-upload
                continue
    return sorted(epochs)


def test_token_auth_is_enforced(head):
    address, env, _ = head
    assert _http_status(f"{address}/api/jobs/", None) in (401, 403)
    assert _http_status(f"{address}/api/jobs/", "not-the-token") in (401, 403)
    wrong = {**env, "RAY_AUTH_TOKEN": "not-the-token"}
    assert _ray("job", "list", "--address", address, env=wrong, check=False).returncode != 0
    assert _ray("job", "list", "--address", address, env=env).returncode == 0


def test_pipeline_job_on_s3_resumes_a_killed_training_run(head, s3):
    from emojiray import storage
    from emojiray.generate.sampler import Sampler
    from emojiray.models import checkpoint as ckpt

    address, env, secret_key = head
    run = storage.join(s3, f"jobs-{secrets.token_hex(4)}")

    # 1. first job: stopped once the tokenizer has a checkpoint on S3 and before training ends
    t0 = time.monotonic()
    _submit(address, env, "emojiray-1", run)
    deadline = time.monotonic() + 300
    while not _checkpoints(run):
        state = _status(address, env, "emojiray-1")
        assert state in ("RUNNING", "PENDING"), f"job 1 ended ({state}) before a checkpoint:\n{_logs(address, env, 'emojiray-1')}"
        assert time.monotonic() < deadline, "no checkpoint on S3 after 300 s"
        time.sleep(0.5)
    _ray("job", "stop", "--address", address, "emojiray-1", env=env)
    assert _wait(address, env, "emojiray-1", 60) == "STOPPED"
    print(f"job 1, stopped after {time.monotonic() - t0:.0f} s:\n{_logs(address, env, 'emojiray-1')}")
    done_before = _checkpoints(run)
    assert done_before and max(done_before) < EPOCHS, f"training finished before the stop ({done_before})"
    assert not storage.exists(storage.join(run, "tokenizer", "train_vqvae.json"))

    # 2. the same job again: training goes on from the last S3 checkpoint, then every later stage
    _submit(address, env, "emojiray-2", run)
    state = _wait(address, env, "emojiray-2", 900)
    logs = _logs(address, env, "emojiray-2")
    assert state == "SUCCEEDED", logs

    record = storage.read_json(storage.join(run, "pipeline.json"))
    print("job 2 stages (s):", {k: v.get("seconds") for k, v in record["stages"].items()})
    train = storage.read_json(storage.join(run, "tokenizer", "train_vqvae.json"))
    assert train["epoch"] == EPOCHS
    assert 1 <= train["resumed_from_epoch"] <= max(done_before)
    assert record["stages"]["train_vqvae"]["resumed_from_epoch"] == train["resumed_from_epoch"]
    assert [h["epoch"] for h in train["history"]] == list(range(1, EPOCHS + 1))
    # two training workers per run, on 1-CPU nodes: necessarily on two nodes, reading the same shards
    assert train["workers"] == 2
    workers = _state(address, env["RAY_AUTH_TOKEN"], "actors", class_name="RayTrainWorker")
    assert len(workers) >= 4 and len({w["node_id"] for w in workers}) >= 2, workers
    for part in ("data/manifest.json", "eval_vqvae.json", "recon_grid.png", "codes/manifest.json",
                 "prior_maskgit/prior/meta.json", "samples_maskgit/eval_samples.json", "samples_maskgit.png",
                 "extensions/inpaint.json", "extensions/inpaint.png", "report/index.html"):
        assert storage.exists(storage.join(run, part)), f"{part} missing on S3"
    assert record["stages"]["samples_maskgit"]["count"] == 8
    assert "inpaint" in record["stages"]["extensions"]

    # 3. read back from S3: the tokenizer and the prior load and generate
    vqvae, cfg, _ = ckpt.load_vqvae(storage.join(run, "tokenizer", "vqvae"), "cpu")
    assert cfg.train.epochs == EPOCHS
    images, _ = Sampler(storage.join(run, "prior_maskgit", "prior"), device="cpu").sample(2, seed=0)
    assert np.asarray(images).shape == (2, 32, 32, 3)

    # 4. the same job once more: every stage is up to date and keeps what it recorded
    _submit(address, env, "emojiray-3", run)
    assert _wait(address, env, "emojiray-3", 300) == "SUCCEEDED", _logs(address, env, "emojiray-3")
    again = storage.read_json(storage.join(run, "pipeline.json"))["stages"]
    skipped = [name for name, st in again.items() if st.get("skipped")]
    assert skipped == ["train_vqvae", "eval_vqvae", "extract_codes", "prior_maskgit", "samples_maskgit"], again
    for name in ("samples_maskgit", "extensions"):  # as JSON: a NaN metric equals itself there
        kept = {k: v for k, v in again[name].items() if k not in ("seconds", "skipped")}
        assert json.dumps(kept, sort_keys=True) == json.dumps(
            {k: v for k, v in record["stages"][name].items() if k != "seconds"}, sort_keys=True)
    assert storage.read_json(storage.join(run, "tokenizer", "train_vqvae.json")) == train

    # credentials never reach logs or artifacts
    texts = [logs, _logs(address, env, "emojiray-1"), _logs(address, env, "emojiray-3")]
    texts += [storage.read_text(u) for u in storage.list_files(run) if u.endswith((".json", ".txt", ".log"))]
    for text in texts:
        assert secret_key not in text and env["RAY_AUTH_TOKEN"] not in text
