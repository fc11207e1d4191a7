"""The sample run's plan without Ray: shards, seeds, conditions, the shard table, progress lines."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pytest

from emojiray.errors import EmojirayError
from emojiray.generate.sample_run import (condition_ids, parse_condition, samples_table, shard_arrays, shard_ranges,
                                          shard_seed, table_bytes)
from emojiray.generate.sampler import check_params
from emojiray.progress import Progress

VALUES = ["happy", "sad", "none"]
PARAMS = {"temperature": 1.0, "top_k": 0, "top_p": 0.9, "guidance": 2.0, "maskgit_steps": 8}


def test_shards_cover_every_sample_once():
    ranges = shard_ranges(10, 4)
    assert ranges == [(0, 4), (4, 8), (8, 10)]
    covered = [i for s, e in ranges for i in range(s, e)]
    assert covered == list(range(10))
    with pytest.raises(EmojirayError, match=">= 1"):
        shard_ranges(0, 4)
    with pytest.raises(EmojirayError, match="shard_size"):
        shard_ranges(5, 0)


def test_shard_seeds_are_stable_distinct_and_depend_on_the_run_seed():
    seeds = [shard_seed(0, i) for i in range(1000)]
    assert len(set(seeds)) == 1000 and all(0 <= s < 2 ** 63 for s in seeds)
    assert seeds[:3] == [shard_seed(0, 0), shard_seed(0, 1), shard_seed(0, 2)]
    assert shard_seed(1, 0) not in seeds


def test_parse_condition_modes_and_one_line_errors():
    assert parse_condition(None, "emotion", VALUES) == {"name": "emotion", "mode": "data", "value": None}
    assert parse_condition("emotion=sad", "emotion", VALUES)["mode"] == "fixed"
    assert parse_condition("emotion=all", "emotion", VALUES)["mode"] == "all"
    assert parse_condition("none", "emotion", VALUES)["mode"] == "none"
    assert parse_condition(None, "none", [])["mode"] == "none"
    with pytest.raises(EmojirayError, match="unknown emotion 'ecstatic': choose from happy, sad, none"):
        parse_condition("emotion=ecstatic", "emotion", VALUES)
    with pytest.raises(EmojirayError, match="conditioned on emotion, not category"):
        parse_condition("category=food", "emotion", VALUES)
    with pytest.raises(EmojirayError, match="name=value"):
        parse_condition("happy", "emotion", VALUES)
    with pytest.raises(EmojirayError, match="without a condition"):
        parse_condition("emotion=happy", "none", [])


def test_condition_ids_per_mode():
    fixed = {"name": "emotion", "mode": "fixed", "value": "sad"}
    assert condition_ids(fixed, VALUES, [], 5, 9, seed=1).tolist() == [1, 1, 1, 1]
    cycle = {"name": "emotion", "mode": "all", "value": None}
    assert condition_ids(cycle, VALUES, [], 4, 8, seed=1).tolist() == [1, 2, 0, 1]  # by global index
    assert condition_ids({"mode": "none"}, VALUES, [], 0, 3, seed=1) is None
    data = {"name": "emotion", "mode": "data", "value": None}
    ids = condition_ids(data, VALUES, [8, 2, 0], 0, 5000, seed=7)
    assert np.array_equal(ids, condition_ids(data, VALUES, [8, 2, 0], 0, 5000, seed=7))  # seeded
    assert np.bincount(ids, minlength=3)[2] == 0  # a class never seen in training is never drawn
    assert abs((ids == 0).mean() - 0.8) < 0.03  # follows the training frequencies
    uniform = condition_ids(data, VALUES, [], 0, 3000, seed=7)  # no counts stored: uniform
    assert all(abs((uniform == k).mean() - 1 / 3) < 0.04 for k in range(3))


def test_samples_table_round_trip():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    codes = {"top": rng.integers(0, 16, (5, 2, 2)), "bottom": rng.integers(0, 32, (5, 4, 4))}
    cond = np.array([0, 1, 2, 0, 1])
    table = samples_table(10, images, codes, cond, VALUES, 1234, PARAMS)
    back = pa.BufferReader(table_bytes(table))
    import pyarrow.parquet as pq

    table = pq.read_table(back)
    manifest = {"image_size": 8, "levels": ["top", "bottom"], "grids": {"top": [2, 2], "bottom": [4, 4]}}
    arrays = shard_arrays(table, manifest)
    assert arrays["index"].tolist() == [10, 11, 12, 13, 14]
    assert np.array_equal(arrays["images"], images)
    assert all(np.array_equal(arrays["codes"][lv], codes[lv]) for lv in codes)
    assert arrays["condition"] == ["happy", "sad", "none", "happy", "sad"]
    assert table.column("seed").to_pylist() == [1234] * 5
    assert table.column("guidance").to_pylist() == [2.0] * 5 and table.column("maskgit_steps").to_pylist() == [8] * 5
    unconditional = samples_table(0, images, codes, None, VALUES, 1, PARAMS)
    assert unconditional.column("condition").to_pylist() == [""] * 5
    assert unconditional.column("condition_id").to_pylist() == [-1] * 5


@pytest.mark.parametrize("params, match", [
    ({"temperature": -1}, "temperature"), ({"top_p": 0}, "top_p"), ({"top_k": -2}, "top_k"),
    ({"guidance": -0.5}, "guidance"), ({"maskgit_steps": 0}, "maskgit_steps"), ({"beam": 3}, "unknown sampling"),
])
def test_bad_sampling_parameters_are_one_line_errors(params, match):
    with pytest.raises(EmojirayError, match=match):
        check_params(params)


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_progress_prints_rate_and_eta_in_logs_at_most_every_interval():
    clock, out = FakeClock(), io.StringIO()
    p = Progress(1000, "sample", done=200, stream=out, every_s=10, clock=clock)
    clock.t = 2.0
    p.update(100)  # 2 s: too soon for a log line
    assert out.getvalue() == ""
    clock.t = 10.0
    p.update(300)  # 400 new samples in 10 s; the 200 kept from an earlier run do not count
    assert out.getvalue().strip() == "sample: 600/1,000 samples (60%), 40.0 samples/s, ETA 10 s"
    clock.t = 20.0
    p.update(400)
    final = p.close()
    assert final == "sample: 1,000/1,000 samples (100%), 40.0 samples/s in 20 s"
    assert out.getvalue().strip().splitlines()[-1] == final
