"""`emojiray sample` on a local Ray: an actor pool, exactly N samples once each, resumable, seeded."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emojiray.cli import main
from emojiray.config import RayConfig, SampleConfig
from emojiray.errors import EmojirayError
from emojiray.generate.sample_run import load_samples_manifest, read_shard, sample_run, shard_arrays, shard_name
from helpers import tiny_pair

pytestmark = pytest.mark.ray

RAY = RayConfig(num_cpus=3, data_cpus=1)


def quiet(*_):
    pass


def all_samples(uri: str) -> dict[str, np.ndarray]:
    m = load_samples_manifest(uri)
    arrays = [shard_arrays(read_shard(uri, f["path"]), m) for f in m["files"]]
    return {"index": np.concatenate([a["index"] for a in arrays]),
            "images": np.concatenate([a["images"] for a in arrays]),
            "top": np.concatenate([a["codes"]["top"] for a in arrays]),
            "condition": [c for a in arrays for c in a["condition"]]}


def test_exactly_n_samples_once_each_across_a_restart_whatever_the_actor_count(ray_local, tmp_path):
    prior, vq = tiny_pair(tmp_path, "maskgit")
    cfg = SampleConfig(batch_size=2, shard_size=3, seed=5)
    out = tmp_path / "run"
    first = sample_run(prior, str(out), 10, cfg=cfg, ray_cfg=RAY, actors=2, log=quiet)
    assert first["count"] == 10 and first["actors"] == 2 and [f["rows"] for f in first["files"]] == [3, 3, 3, 1]
    a = all_samples(str(out))
    assert sorted(a["index"].tolist()) == list(range(10))
    assert len(list((out / "png").glob("*.png"))) == 10
    assert len({a["images"][i].tobytes() for i in range(10)}) > 1  # not one image repeated
    assert set(a["condition"]) <= {"happy", "sad", "none"}  # default: the training mix

    # interrupted run: the manifest and two shards never got written
    (out / "manifest.json").unlink()
    (out / shard_name(1)).unlink()
    (out / shard_name(3)).unlink()
    kept = {i: (out / shard_name(i)).stat().st_mtime_ns for i in (0, 2)}
    lines = []
    again = sample_run(prior, str(out), 10, cfg=cfg, ray_cfg=RAY, actors=1, log=lines.append)
    assert any("resuming: 6 samples in 2 shard(s) are kept" in ln for ln in lines)
    assert {i: (out / shard_name(i)).stat().st_mtime_ns for i in (0, 2)} == kept  # not rewritten
    assert again["count"] == 10 and again["made"] == 4
    b = all_samples(str(out))
    assert b["index"].tolist() == a["index"].tolist()
    assert np.array_equal(b["images"], a["images"])  # shards 1 and 3 remade identically by one actor
    assert np.array_equal(b["top"], a["top"]) and b["condition"] == a["condition"]

    # a complete run is not redone; other settings at the same place are refused
    lines = []
    sample_run(prior, str(out), 10, cfg=cfg, ray_cfg=RAY, log=lines.append)
    assert any("is complete" in ln for ln in lines)
    with pytest.raises(EmojirayError, match="other settings"):
        sample_run(prior, str(out), 10, cfg=SampleConfig(batch_size=2, shard_size=3, seed=6), ray_cfg=RAY, log=quiet)


def test_fixed_condition_and_parameters_are_recorded_per_row(ray_local, tmp_path):
    prior, vq = tiny_pair(tmp_path, "transformer")
    out = tmp_path / "sad"
    m = sample_run(prior, str(out), 4, cfg=SampleConfig(batch_size=4, shard_size=4, png=False), ray_cfg=RAY,
                   condition="emotion=sad", params={"guidance": 2.0, "top_k": 5}, log=quiet)
    assert m["condition"] == {"name": "emotion", "mode": "fixed", "value": "sad"}
    assert not (out / "png").exists()
    table = read_shard(str(out), m["files"][0]["path"])
    assert table.column("condition").to_pylist() == ["sad"] * 4
    assert table.column("condition_id").to_pylist() == [1] * 4
    assert table.column("guidance").to_pylist() == [2.0] * 4 and table.column("top_k").to_pylist() == [5] * 4
    plan = json.loads((out / "plan.json").read_text())
    assert plan["params"]["guidance"] == 2.0 and plan["vqvae"] == vq


def test_user_mistakes_are_one_line_errors_before_any_work(ray_local, tmp_path, capsys):
    prior, _ = tiny_pair(tmp_path, "maskgit")
    _, other_vq = tiny_pair(tmp_path, "maskgit", codebook_size=(64, 16))
    out = tmp_path / "x"
    with pytest.raises(EmojirayError, match="do not match"):
        sample_run(prior, str(out), 4, vqvae=other_vq, ray_cfg=RAY, log=quiet)
    code = main(["sample", "--prior", prior, "-n", "4", "--out", str(out), "--condition", "emotion=ecstatic",
                 "--set", "ray.num_cpus=3"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err == "emojiray: error: unknown emotion 'ecstatic': choose from happy, sad, none (or all, data)"
    assert main(["sample", "--prior", prior, "-n", "0", "--out", str(out)]) == 1
    assert "must be >= 1" in capsys.readouterr().err
    assert not out.exists()  # nothing was written
