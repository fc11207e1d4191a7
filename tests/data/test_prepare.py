"""`emojiray data prepare` on every source kind, split hygiene, dedupe, atomicity, resume."""

from __future__ import annotations

import collections
import csv
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import draw_emoji, png_bytes

from emojiray.config import DataConfig
from emojiray.data import shards
from emojiray.data.info import contact_sheet, summary
from emojiray.data.prepare import assign_split, prepare
from emojiray.errors import EmojirayError


def npm_cfg(**kw) -> DataConfig:
    base = dict(source="npm:google,twitter", npm_version="0.0.0-test", size=64, shard_rows=16,
                val_fraction=0.2, test_fraction=0.2)
    return DataConfig(**{**base, **kw})


def read_rows(uri: str) -> list[dict]:
    m = shards.load_manifest(uri)
    rows = []
    for table in shards.iter_tables(uri, m):
        pixels = shards.pixels_from_table(table, m)
        for i, row in enumerate(table.drop(["image"]).to_pylist()):
            rows.append({**row, "pixels": pixels[i]})
    return rows


def test_npm_source_labels_splits_and_manifest(npm_cache, tmp_path):
    out = str(tmp_path / "ds")
    m = prepare(npm_cfg(), out, log=lambda *_: None)
    rows = read_rows(out)
    per_vendor = 10 + 30 + 2 * 5  # entries + skin-tone variants
    # google's extra duplicate entry is removed, so both vendors keep the same count
    assert m["counts"]["total"] == len(rows) == 2 * per_vendor
    assert m["counts"]["duplicates_removed"] == 1
    assert m["duplicates"][0] == {"item": "google/1f9ff.png", "duplicate_of": "google/1f600.png"}
    assert m["counts"]["vendor"] == {"google": per_vendor, "twitter": per_vendor}
    assert sum(m["counts"]["split"].values()) == len(rows)
    assert m["vocab"]["vendor"] == ["google", "twitter"]
    assert "Food & Drink" in m["vocab"]["category"] and "face-smiling" in m["vocab"]["subcategory"]
    assert [s["package"] for s in m["sources"]] == ["emoji-datasource-google", "emoji-datasource-twitter"]
    assert all(len(s["sha1"]) == 40 for s in m["sources"])

    by_key = {r["key"]: r for r in rows}
    grin = by_key["google/1f600.png"]
    assert (grin["emoji_id"], grin["name"], grin["emotion"], grin["skin_tone"]) == (
        "1F600", "GRINNING FACE", "happy", False)
    assert by_key["twitter/1f622.png"]["emotion"] == "sad"
    assert by_key["google/1f620.png"]["emotion"] == "angry"
    assert by_key["google/1f355.png"]["emotion"] == "none"
    tone = by_key["google/1f44d-1f3fd.png"]
    assert (tone["emoji_id"], tone["unified"], tone["skin_tone"]) == ("1F44D", "1F44D-1F3FD", True)

    # RGB uint8 at the configured size, transparent corners composited onto white
    assert grin["pixels"].shape == (64, 64, 3) and grin["pixels"].dtype == np.uint8
    assert grin["pixels"][0, 0].tolist() == [255, 255, 255]
    # the stored hash is the hash of the stored pixels
    assert grin["sha256"] == shards.pixel_hash(grin["pixels"])
    assert not shards.verify(out, m)


def test_no_emoji_crosses_splits(npm_cache, tmp_path):
    out = str(tmp_path / "ds")
    prepare(npm_cfg(val_fraction=0.3, test_fraction=0.3), out, log=lambda *_: None)
    splits_of = collections.defaultdict(set)
    for row in read_rows(out):
        splits_of[row["emoji_id"]].add(row["split"])
    assert all(len(s) == 1 for s in splits_of.values()), "an emoji leaks across splits"
    used = set().union(*splits_of.values())
    assert used == {"train", "val", "test"}
    # every vendor and every skin tone of one emoji in the same split
    hand = [r for r in read_rows(out) if r["emoji_id"] == "1F44D"]
    assert len(hand) == 12 and len({r["split"] for r in hand}) == 1


def test_split_is_seeded_and_stable():
    ids = [f"E{i}" for i in range(4000)]
    a = [assign_split(i, 0, 0.05, 0.05) for i in ids]
    assert a == [assign_split(i, 0, 0.05, 0.05) for i in ids]
    b = [assign_split(i, 1, 0.05, 0.05) for i in ids]
    assert a != b
    frac = collections.Counter(a)
    assert 0.04 < frac["val"] / len(ids) < 0.06 and 0.04 < frac["test"] / len(ids) < 0.06


@pytest.mark.parametrize("size", [32, 64])
def test_sizes(npm_cache, tmp_path, size):
    out = str(tmp_path / f"ds{size}")
    m = prepare(npm_cfg(size=size, source="npm:google"), out, log=lambda *_: None)
    assert m["image"]["height"] == m["image"]["width"] == size
    rows = read_rows(out)
    assert {r["pixels"].shape for r in rows} == {(size, size, 3)}
    assert pq.read_schema(shards.shard_uris(out, m)[0]).field("image").type.byte_width == size * size * 3


def test_background_colour(npm_cache, tmp_path):
    out = str(tmp_path / "ds")
    prepare(npm_cfg(source="npm:google", background="#000000"), out, log=lambda *_: None)
    assert all(r["pixels"][0, 0].tolist() == [0, 0, 0] for r in read_rows(out))


def test_rerun_is_noop_and_changed_settings_rebuild_cleanly(npm_cache, tmp_path):
    out = str(tmp_path / "ds")
    logs: list[str] = []
    first = prepare(npm_cfg(), out, log=logs.append)
    again = prepare(npm_cfg(), out, log=logs.append)
    assert again["run_id"] == first["run_id"] and "up to date" in logs[-1]
    rebuilt = prepare(npm_cfg(size=32), out, log=logs.append)
    assert rebuilt["run_id"] != first["run_id"]
    files = {p.relative_to(tmp_path / "ds").as_posix() for p in (tmp_path / "ds").rglob("*.parquet")}
    assert files == {s["path"] for s in rebuilt["shards"]}, "old shards must be removed"


def test_interrupted_prepare_leaves_no_dataset_and_rerun_recovers(npm_cache, tmp_path, monkeypatch):
    out = str(tmp_path / "ds")
    real = shards.write_shard
    calls = {"n": 0}

    def dying_write(uri, table):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # killed mid-run, after one shard was written
        return real(uri, table)

    monkeypatch.setattr(shards, "write_shard", dying_write)
    with pytest.raises(KeyboardInterrupt):
        prepare(npm_cfg(), out, log=lambda *_: None)
    assert list((tmp_path / "ds").rglob("*.parquet")), "the first shard was written"
    with pytest.raises(EmojirayError, match="incomplete"):
        shards.load_manifest(out)

    monkeypatch.setattr(shards, "write_shard", real)
    m = prepare(npm_cfg(), out, log=lambda *_: None)
    files = {p.relative_to(tmp_path / "ds").as_posix() for p in (tmp_path / "ds").rglob("*.parquet")}
    assert files == {s["path"] for s in m["shards"]}, "the interrupted run's shard is cleaned up"
    assert not list((tmp_path / "ds").rglob("*.tmp-*"))


def test_interrupted_rebuild_keeps_previous_dataset_readable(npm_cache, tmp_path, monkeypatch):
    out = str(tmp_path / "ds")
    old = prepare(npm_cfg(), out, log=lambda *_: None)

    def boom(uri, table):
        raise KeyboardInterrupt

    monkeypatch.setattr(shards, "write_shard", boom)
    with pytest.raises(KeyboardInterrupt):
        prepare(npm_cfg(size=32), out, log=lambda *_: None)
    assert shards.load_manifest(out)["run_id"] == old["run_id"]
    assert not shards.verify(out, old)


def test_tampered_shard_detected(npm_cache, tmp_path):
    out = str(tmp_path / "ds")
    m = prepare(npm_cfg(), out, log=lambda *_: None)
    victim = tmp_path / "ds" / m["shards"][0]["path"]
    good = victim.read_bytes()
    victim.write_bytes(good[:-10] + b"0123456789")
    name = m["shards"][0]["path"]
    assert shards.verify(out, m) == [f"shard {name} does not match its SHA-256"]
    with pytest.raises(EmojirayError, match=rf"^{out}: shard {name} does not match its SHA-256: the dataset is "
                                            r"damaged; rebuild it with `emojiray data prepare --out .* --force`$"):
        shards.load_manifest(out)  # what every training, encoding and evaluation entry point reads first
    victim.unlink()
    with pytest.raises(EmojirayError, match=rf"shard {name} is missing"):
        shards.load_manifest(out)
    assert shards.load_manifest(out, verify_shards=False)["run_id"] == m["run_id"]  # `data info` still reads it
    victim.write_bytes(good)
    assert shards.load_manifest(out)["run_id"] == m["run_id"]
    victim.write_bytes(good[:100])  # damaged again after it passed (truncated: its size changed)
    with pytest.raises(EmojirayError, match="does not match its SHA-256"):
        shards.load_manifest(out)
    rebuilt = prepare(npm_cfg(), out, log=lambda *_: None)  # a damaged dataset is rebuilt, not kept as up to date
    assert rebuilt["run_id"] != m["run_id"] and not shards.verify(out, rebuilt)


def test_folder_source_subfolder_labels_and_bad_files(tmp_path):
    root = tmp_path / "imgs"
    for base, label in ((0, "cats"), (100, "dogs")):  # fixed, distinct seeds: no duplicate to dedupe away
        (root / label).mkdir(parents=True)
        for i in range(3):
            draw_emoji(base + i).save(root / label / f"{label}{i}.png")
    (root / "cats" / "broken.png").write_bytes(b"")
    (root / "dogs" / "notes.png").write_bytes(b"this is text")
    (root / "readme.txt").write_text("ignored: not an image extension")
    m = prepare(DataConfig(source=f"folder:{root}", size=32, val_fraction=0.0, test_fraction=0.0),
                str(tmp_path / "ds"), log=lambda *_: None)
    assert m["counts"]["total"] == 6 and m["counts"]["category"] == {"cats": 3, "dogs": 3}
    reasons = {s["item"]: s["reason"] for s in m["skipped"]}
    assert set(reasons) == {"folder/cats/broken.png", "folder/dogs/notes.png"}
    assert "empty" in reasons["folder/cats/broken.png"] and "not an image" in reasons["folder/dogs/notes.png"]


def test_folder_source_csv_labels(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    for i in range(4):
        draw_emoji(i).save(root / f"e{i}.png")
    with open(root / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "name", "category", "vendor", "emoji_id"])
        for i in range(4):
            w.writerow([f"e{i}.png", "grinning face" if i % 2 else "pizza", "Custom", "mine", f"id{i // 2}"])
    m = prepare(DataConfig(source=f"folder:{root}", size=32), str(tmp_path / "ds"), log=lambda *_: None)
    rows = {r["key"]: r for r in read_rows(str(tmp_path / "ds"))}
    assert m["counts"]["vendor"] == {"mine": 4}
    assert rows["folder/e1.png"]["emotion"] == "happy" and rows["folder/e0.png"]["emotion"] == "none"
    assert rows["folder/e0.png"]["split"] == rows["folder/e1.png"]["split"]  # same emoji_id


def test_empty_folder_is_one_line_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmojirayError, match="no image files"):
        prepare(DataConfig(source=f"folder:{tmp_path / 'empty'}"), str(tmp_path / "ds"))
    with pytest.raises(EmojirayError, match="not a directory"):
        prepare(DataConfig(source=f"folder:{tmp_path / 'missing'}"), str(tmp_path / "ds"))


def test_all_inputs_bad_is_one_line_error(tmp_path):
    root = tmp_path / "bad"
    root.mkdir()
    (root / "a.png").write_bytes(b"")
    (root / "b.jpg").write_bytes(b"garbage")
    with pytest.raises(EmojirayError, match="no usable images"):
        prepare(DataConfig(source=f"folder:{root}"), str(tmp_path / "ds"))
    assert not (tmp_path / "ds" / "manifest.json").exists()


def _hf_rows(n: int) -> dict:
    names = ["grinning face", "crying face", "pizza", "rocket"]
    return {"image": [{"bytes": png_bytes(draw_emoji(100 + i)), "path": None} for i in range(n)],
            "text": [names[i % len(names)] for i in range(n)]}


def test_hf_source_from_save_to_disk(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict(_hf_rows(8)).cast_column("image", datasets.Image())
    ds.save_to_disk(str(tmp_path / "hf"))
    m = prepare(DataConfig(source=f"hf:{tmp_path / 'hf'}", size=32), str(tmp_path / "ds"), log=lambda *_: None)
    rows = read_rows(str(tmp_path / "ds"))
    assert m["counts"]["total"] == 8 and m["sources"][0]["image_column"] == "image"
    by_name = collections.defaultdict(set)
    for r in rows:
        by_name[r["name"]].add(r["emotion"])
    assert by_name["grinning face"] == {"happy"} and by_name["pizza"] == {"none"}


def test_hf_source_from_local_parquet_repo_layout(tmp_path):
    """The hub layout (data/train-*.parquet with an Image feature), loaded from a local copy."""
    datasets = pytest.importorskip("datasets")
    repo = tmp_path / "emoji-dataset"
    (repo / "data").mkdir(parents=True)
    ds = datasets.Dataset.from_dict(_hf_rows(6)).cast_column("image", datasets.Image())
    ds.to_parquet(str(repo / "data" / "train-00000-of-00001.parquet"))
    m = prepare(DataConfig(source=f"hf:{repo}", size=32), str(tmp_path / "ds"), log=lambda *_: None)
    assert m["counts"]["total"] == 6


def test_hf_unreachable_is_one_line_error(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    import huggingface_hub.constants
    # the hub client reads HF_HUB_OFFLINE once, at import: an offline machine, set where it is read
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(EmojirayError, match="cannot load Hugging Face dataset") as err:
        prepare(DataConfig(source="hf:valhalla/emoji-dataset"), str(tmp_path / "ds"))
    assert "\n" not in str(err.value)


def test_parquet_source_reuses_shards_at_another_size(npm_cache, tmp_path):
    first = str(tmp_path / "ds64")
    m64 = prepare(npm_cfg(), first, log=lambda *_: None)
    second = str(tmp_path / "ds32")
    m32 = prepare(DataConfig(source=f"parquet:{first}", size=32, val_fraction=0.2, test_fraction=0.2),
                  second, log=lambda *_: None)
    assert m32["counts"]["total"] == m64["counts"]["total"]
    a = {r["key"]: r for r in read_rows(first)}
    b = {r["key"]: r for r in read_rows(second)}
    assert set(a) == set(b)
    key = "twitter/1f44b-1f3fc.png"
    assert {k: v for k, v in a[key].items() if k not in ("pixels", "sha256", "height", "width")} == \
        {k: v for k, v in b[key].items() if k not in ("pixels", "sha256", "height", "width")}
    assert b[key]["pixels"].shape == (32, 32, 3)
    # downscaled content stays close to the original
    small = a[key]["pixels"].reshape(32, 2, 32, 2, 3).mean(axis=(1, 3))
    assert np.abs(small - b[key]["pixels"]).mean() < 12


def test_limit_and_invalid_settings(npm_cache, tmp_path):
    m = prepare(npm_cfg(limit=7), str(tmp_path / "ds"), log=lambda *_: None)
    assert m["counts"]["inputs"] == 7
    with pytest.raises(EmojirayError, match="data.size"):
        prepare(npm_cfg(size=4), str(tmp_path / "x"))
    with pytest.raises(EmojirayError, match=r"'data.val_fraction' \+ 'data.test_fraction' are 1.1: must be < 1"):
        prepare(npm_cfg(val_fraction=0.6, test_fraction=0.5), str(tmp_path / "x"))
    with pytest.raises(EmojirayError, match="unknown source"):
        prepare(npm_cfg(source="ftp:somewhere"), str(tmp_path / "x"))
    with pytest.raises(EmojirayError, match="unknown npm vendor"):
        prepare(npm_cfg(source="npm:google,microsoft"), str(tmp_path / "x"))
    with pytest.raises(EmojirayError, match="colour"):
        prepare(npm_cfg(background="not-a-colour"), str(tmp_path / "x"))


def test_summary_and_contact_sheets(npm_cache, tmp_path):
    from PIL import Image
    import io

    out = str(tmp_path / "ds")
    m = prepare(npm_cfg(), out, log=lambda *_: None)
    s = summary(out, m)
    assert s["counts"]["total"] == m["counts"]["total"] and s["shards"] == len(m["shards"])
    json.dumps(s)  # serialisable
    by_cat = Image.open(io.BytesIO(contact_sheet(out, "category", per_row=8)))
    by_emotion = Image.open(io.BytesIO(contact_sheet(out, "emotion", per_row=8)))
    n_cats = len(m["vocab"]["category"])
    assert by_cat.height >= n_cats * 64 and by_cat.height < (n_cats + 1) * 68
    assert by_emotion.height >= 4 * 64  # happy, sad, angry, love rows; 'none' is left out
    with pytest.raises(EmojirayError, match="cannot group"):
        contact_sheet(out, "colour")
