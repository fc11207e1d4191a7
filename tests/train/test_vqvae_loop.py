"""VQ-VAE training with Ray Train on CPU over synthetic shards: loss, workers, resume, NaN, errors."""

from __future__ import annotations

import json
import math

import pytest

from emojiray.config import Config, DataConfig, ModelConfig, RayConfig
from emojiray.data.prepare import prepare
from emojiray.errors import EmojirayError
from emojiray.models import checkpoint as ckpt
from emojiray.train.vqvae_loop import train_vqvae
from helpers import set_keys

pytestmark = pytest.mark.ray


def tiny_config(**train) -> Config:
    cfg = Config(
        data=DataConfig(size=32),
        ray=RayConfig(num_cpus=3, num_workers=1, data_cpus=1),
        model=ModelConfig(channels=32, res_blocks=1, res_channels=16, codebook_size=[32, 16], code_dim=[8, 8],
                          dead_code_steps=20),
    )
    return set_keys(cfg, "train", **{"epochs": 2, "batch_size": 8, "lr": 2e-3, "warmup_steps": 5, "log_every": 5,
                                     "report_every_s": 0, **train})


@pytest.fixture(scope="module")
def data32(tmp_path_factory):
    """Synthetic emoji (the fake npm packages of conftest) prepared at 32 px."""
    from conftest import fake_npm_cache
    import os

    root = tmp_path_factory.mktemp("vq")
    cache = fake_npm_cache(root / "cache")
    old = os.environ.get("EMOJIRAY_CACHE")
    os.environ["EMOJIRAY_CACHE"] = str(cache)
    try:
        out = str(root / "ds")
        prepare(DataConfig(npm_version="0.0.0-test", size=32, val_fraction=0.15, test_fraction=0.15), out,
                log=lambda *_: None)
    finally:
        if old is None:
            del os.environ["EMOJIRAY_CACHE"]
        else:
            os.environ["EMOJIRAY_CACHE"] = old
    return out


def test_two_workers_lower_the_loss(ray_local, data32, tmp_path):
    """Two DDP workers, with the adversarial loss on: its discriminator trains under DDP as well."""
    cfg = tiny_config(epochs=3, adv_weight=0.1, adv_start_step=2, disc_channels=8, disc_layers=2)
    cfg.ray.num_workers = 2
    cfg.ray.worker_cache_mb = 0  # stream from Ray Data every epoch (the other tests keep the split in memory)
    record = train_vqvae(cfg, data32, str(tmp_path / "run"), log=lambda *_: None)
    assert record["workers"] == 2 and record["use_gpu"] is False
    losses = [h["train_recon_mse"] for h in record["history"]]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert all(math.isfinite(h["train_adv_d_loss"]) and h["train_adv_weight"] > 0 for h in record["history"][1:])
    m = record["metrics"]
    assert m["val_psnr"] > 0 and -1 <= m["val_ssim"] <= 1 and m["val_mse"] > 0
    assert 0 < m["codes_used_top"] <= 16 and 0 < m["codes_used_bottom"] <= 32
    model, _, meta = ckpt.load_vqvae(str(tmp_path / "run" / "vqvae"))
    assert meta["epoch"] == 3 and meta["step"] == record["step"]
    summary = json.loads((tmp_path / "run" / "train_vqvae.json").read_text())
    assert summary["epoch"] == 3
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))


def test_a_killed_worker_recovers_then_resume_continues_then_nan_keeps_last_good(ray_local, data32, tmp_path):
    """Every recovery path on one run directory (one training run each, they are the slow part):
    FailureConfig restarts a SIGKILLed worker from its last checkpoint, and the history has every
    epoch exactly once with continuous steps; --resume goes on from the finished run without
    recomputing its curve; a diverging continuation stops with one line and keeps the last good
    model."""
    import glob
    import os
    import signal
    import threading
    import time

    out = str(tmp_path / "run")
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(
        run=train_vqvae(tiny_config(epochs=3, max_failures=2), data32, out, log=lambda *_: None)))
    thread.start()
    killed = False
    deadline = time.time() + 240
    while thread.is_alive() and time.time() < deadline and not killed:
        if glob.glob(os.path.join(out, "ray", "vqvae", "checkpoint_*", "meta.json")):
            for pid in training_worker_pids():
                os.kill(pid, signal.SIGKILL)
                killed = True
        time.sleep(0.2)
    thread.join(timeout=400)
    assert killed, "the worker was never seen alive after a checkpoint"
    first = result["run"]
    steps_per_epoch = first["history"][0]["step"]
    assert [e["epoch"] for e in first["history"]] == [1, 2, 3]
    assert [e["step"] for e in first["history"]] == [steps_per_epoch * i for i in (1, 2, 3)]

    with pytest.raises(EmojirayError, match="--resume"):
        train_vqvae(tiny_config(epochs=5), data32, out, log=lambda *_: None)

    resumed = train_vqvae(tiny_config(epochs=5), data32, out, resume=True, log=lambda *_: None)
    h = resumed["history"]
    assert [e["epoch"] for e in h] == [1, 2, 3, 4, 5]
    assert resumed["resumed_from_epoch"] == 3  # recorded for the user
    assert [e["step"] for e in h] == [steps_per_epoch * i for i in (1, 2, 3, 4, 5)]  # steps continue
    assert h[:3] == first["history"]  # the earlier curve is kept, not recomputed
    assert h[3]["train_loss"] < h[0]["train_loss"] * 1.05  # no jump back to an untrained model

    # a diverging continuation stops with one line and leaves the last good model in place
    with pytest.raises(EmojirayError, match=r"loss became .*epoch 6.*kept at") as err:
        train_vqvae(tiny_config(epochs=6, lr=1e30, warmup_steps=0, grad_clip=0), data32, out, resume=True,
                    log=lambda *_: None)
    assert "\n" not in str(err.value)
    _, _, meta = ckpt.load_vqvae(str(tmp_path / "run" / "vqvae"))
    assert meta["epoch"] == 5


def test_bad_inputs_are_one_line_errors(data32, tmp_path):
    cfg = tiny_config()
    cfg.data.size = 64
    with pytest.raises(EmojirayError, match="32 px but data.size is 64"):
        train_vqvae(cfg, data32, str(tmp_path / "a"))
    with pytest.raises(EmojirayError, match="no dataset"):
        train_vqvae(tiny_config(), str(tmp_path / "nothing"), str(tmp_path / "b"))
    no_val = str(tmp_path / "noval")
    prepare(DataConfig(source="parquet:" + data32, size=32, val_fraction=0.0, test_fraction=0.0), no_val,
            log=lambda *_: None)
    with pytest.raises(EmojirayError, match="val split .* is empty"):
        train_vqvae(tiny_config(), no_val, str(tmp_path / "d"))
    bad = tiny_config()
    bad.model.downsample = [4, 3]
    with pytest.raises(EmojirayError, match="power of two"):
        train_vqvae(bad, data32, str(tmp_path / "c"))


def test_ctrl_c_is_one_line_and_keeps_the_checkpoints(ray_local, data32, tmp_path, capsys, monkeypatch):
    """SIGINT mid-run: Ray Train aborts the run; the command says `emojiray: interrupted` and exits
    130 (not Ray Train's silent 1), keeps the checkpoints for --resume, exports nothing, and leaves
    no SIGINT handler of the finished run behind. The --out is relative: the workers (another
    working directory) still write the TensorBoard logs under it."""
    import glob
    import os
    import signal
    import threading
    import time

    from emojiray.cli import main

    monkeypatch.chdir(tmp_path)
    out = str(tmp_path / "run")
    checkpoints = os.path.join(out, "ray", "vqvae", "checkpoint_*", "meta.json")
    sets = ["data.size=32", "model.channels=32", "model.res_blocks=1", "model.res_channels=16",
            "model.codebook_size=[32,16]", "model.code_dim=[8,8]", "train.batch_size=8", "train.epochs=1000",
            "train.report_every_s=0", "ray.num_cpus=3", "ray.num_workers=1"]

    def interrupt_after_the_first_checkpoint():
        deadline = time.time() + 240
        while time.time() < deadline and not glob.glob(checkpoints):
            time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGINT)

    handler = signal.getsignal(signal.SIGINT)
    threading.Thread(target=interrupt_after_the_first_checkpoint, daemon=True).start()
    code = main(["train-vqvae", "--data", data32, "--out", "run", *[a for s in sets for a in ("--set", s)]])
    err = capsys.readouterr().err.splitlines()
    assert code == 130 and "emojiray: interrupted" in err and not any("Traceback" in line for line in err)
    assert glob.glob(checkpoints) and not os.path.exists(os.path.join(out, "vqvae"))
    assert glob.glob(os.path.join(out, "tensorboard", "events.out.tfevents.*"))
    assert signal.getsignal(signal.SIGINT) is handler


def training_worker_pids() -> list[int]:
    """The live Ray Train workers of this test session's embedded Ray (it has no state API: no
    dashboard), found by the process title Ray gives them; only descendants of this process, so
    that another run's workers on a shared machine are never touched."""
    import os

    def parent(pid: int) -> int:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("PPid:"))

    def ours(pid: int) -> bool:
        while pid > 1:
            pid = parent(pid)
            if pid == os.getpid():
                return True
        return False

    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if f.read().startswith(b"ray::RayTrainWorker") and ours(int(entry)):
                    pids.append(int(entry))
        except (OSError, ValueError, StopIteration):
            continue  # a process that ended meanwhile
    return pids
