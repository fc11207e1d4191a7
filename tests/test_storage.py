"""emojiray.storage: local paths and s3:// URIs (S3 against a throwaway moto server on loopback)."""

from __future__ import annotations

import os
import uuid

import pytest

from emojiray import storage
from emojiray.errors import EmojirayError

from conftest import ACCESS_KEY, BUCKET, SECRET_KEY


def _tmp_files(root) -> list[str]:
    return [
        os.path.join(d, f) for d, _, files in os.walk(root) for f in files if ".tmp-" in f
    ]


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert msg and "\n" not in msg, f"error message must be one line: {msg!r}"
    return msg


# --- URI helpers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, expected",
    [
        (("results", "run1", "x.json"), os.path.join("results", "run1", "x.json")),
        (("/abs/dir/", "f"), "/abs/dir/f"),
        (("s3://bucket", "a", "b.parquet"), "s3://bucket/a/b.parquet"),
        (("s3://bucket/prefix/", "x"), "s3://bucket/prefix/x"),
        (("s3://bucket/prefix",), "s3://bucket/prefix"),
    ],
)
def test_join(args, expected):
    assert storage.join(*args) == expected


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("results/run1/x.json", "results/run1"),
        ("results/run1/", "results"),
        ("x.json", "."),
        ("/abs/f", "/abs"),
        ("s3://bucket/a/b.parquet", "s3://bucket/a"),
        ("s3://bucket/a/", "s3://bucket"),
    ],
)
def test_parent(uri, expected):
    assert storage.parent(uri) == expected


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("results/run1/x.json", "x.json"),
        ("results/run1/", "run1"),
        ("s3://bucket/a/b.parquet", "b.parquet"),
        ("s3://bucket/a/", "a"),
        ("s3://bucket", "bucket"),
    ],
)
def test_basename(uri, expected):
    assert storage.basename(uri) == expected


def test_is_s3():
    assert storage.is_s3("s3://b/k")
    assert not storage.is_s3("/tmp/s3://x")
    assert not storage.is_s3("results/s3")


def test_helpers_accept_pathlike(tmp_path):
    assert storage.join(tmp_path, "a") == str(tmp_path / "a")
    assert storage.parent(tmp_path / "a") == str(tmp_path)
    assert storage.basename(tmp_path / "a") == "a"


def test_local_filesystem_path_is_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fs, path = storage.filesystem("sub/x.bin")
    assert path == str(tmp_path / "sub" / "x.bin")
    assert fs.type_name == "local"


@pytest.mark.parametrize("uri", ["s3://", "s3:///", "s3:////"])
def test_bad_s3_uri(uri):
    with pytest.raises(EmojirayError) as info:
        storage.filesystem(uri)
    assert "bad S3 URI" in _one_line(info)
    with pytest.raises(EmojirayError):
        storage.read_bytes(uri)


# --- local reads and writes -------------------------------------------------------------------


def test_write_read_round_trip(tmp_path):
    target = str(tmp_path / "deep" / "er" / "x.bin")
    assert storage.write_bytes(target, b"\x00\x01abc") == target  # creates parents
    assert storage.read_bytes(target) == b"\x00\x01abc"
    storage.write_text(str(tmp_path / "t.txt"), "héllo ✓")
    assert storage.read_text(str(tmp_path / "t.txt")) == "héllo ✓"
    obj = {"a": [1, 2.5, None, True], "b": {"c": "😀"}}
    storage.write_json(str(tmp_path / "o.json"), obj)
    assert storage.read_json(str(tmp_path / "o.json")) == obj
    assert _tmp_files(tmp_path) == []


def test_json_has_no_bare_nan(tmp_path):
    """JSON has no NaN: metrics files hold null, which strict readers (jq, browsers) accept."""
    import json
    import math

    import numpy as np

    target = str(tmp_path / "m.json")
    storage.write_json(target, {"psnr": math.nan, "fid": [1.5, math.inf, -math.inf], "np": np.float64("nan"),
                                "nested": {"ok": 2.0, "t": (math.nan,)}})
    text = (tmp_path / "m.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c}")) == {
        "psnr": None, "fid": [1.5, None, None], "np": None, "nested": {"ok": 2.0, "t": [None]}}


def test_absolute_checks_s3_uris_without_credentials(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert storage.absolute("rel/x") == str(tmp_path / "rel" / "x")
    assert storage.absolute("s3://bucket/prefix") == "s3://bucket/prefix"
    for bad in ("s3://", "s3:///prefix", "s3:/bucket", "S3://bucket/x", "s3://b//x"):
        with pytest.raises(EmojirayError, match="bad S3 URI"):
            storage.absolute(bad)


def test_write_relative_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    storage.write_text("rel/dir/f.txt", "x")
    assert (tmp_path / "rel" / "dir" / "f.txt").read_text() == "x"
    assert storage.exists("rel/dir/f.txt") and storage.is_dir("rel/dir")


def test_overwrite_replaces_content(tmp_path):
    target = str(tmp_path / "x.bin")
    storage.write_bytes(target, b"a much longer first version")
    storage.write_bytes(target, b"short")
    assert storage.read_bytes(target) == b"short"
    assert sorted(os.listdir(tmp_path)) == ["x.bin"]


def test_failed_write_keeps_old_content_and_no_temp(tmp_path, monkeypatch):
    target = str(tmp_path / "x.json")
    storage.write_json(target, {"v": 1})

    def boom(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(storage.os, "replace", boom)
    with pytest.raises(EmojirayError) as info:
        storage.write_json(target, {"v": 2})
    msg = _one_line(info)
    assert "cannot write" in msg and "disk on fire" in msg
    monkeypatch.undo()
    assert storage.read_json(target) == {"v": 1}
    assert _tmp_files(tmp_path) == []
    assert sorted(os.listdir(tmp_path)) == ["x.json"]


def test_failed_write_during_data_leaves_no_temp(tmp_path, monkeypatch):
    target = str(tmp_path / "x.bin")
    storage.write_bytes(target, b"old")

    def boom(fd):
        raise OSError("fsync failed")

    monkeypatch.setattr(storage.os, "fsync", boom)
    with pytest.raises(EmojirayError):
        storage.write_bytes(target, b"new")
    monkeypatch.undo()
    assert storage.read_bytes(target) == b"old"
    assert _tmp_files(tmp_path) == []


def test_write_onto_a_directory_fails_cleanly(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(EmojirayError) as info:
        storage.write_bytes(str(tmp_path / "d"), b"x")
    assert "cannot write" in _one_line(info)
    assert _tmp_files(tmp_path) == []


def test_read_missing_file(tmp_path):
    missing = str(tmp_path / "nope.bin")
    for fn in (storage.read_bytes, storage.read_text, storage.read_json, storage.open_input):
        with pytest.raises(EmojirayError) as info:
            fn(missing)
        msg = _one_line(info)
        assert "not found" in msg and missing in msg
    with pytest.raises(EmojirayError):
        list(storage.iter_chunks(missing))


def test_read_json_invalid(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text("{not json")
    with pytest.raises(EmojirayError) as info:
        storage.read_json(str(p))
    msg = _one_line(info)
    assert "not valid JSON" in msg and str(p) in msg


def test_read_json_not_utf8(tmp_path):
    p = tmp_path / "bin.json"
    p.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(EmojirayError):
        storage.read_json(str(p))


def test_exists_is_dir_makedirs(tmp_path):
    d = str(tmp_path / "a" / "b")
    assert not storage.exists(d) and not storage.is_dir(d)
    storage.makedirs(d)
    storage.makedirs(d)  # idempotent
    assert storage.exists(d) and storage.is_dir(d)
    f = storage.join(d, "f.txt")
    storage.write_text(f, "x")
    assert storage.exists(f) and not storage.is_dir(f)


def test_list_files_local(tmp_path):
    root = str(tmp_path / "root")
    for rel in ["a.txt", "b/c.txt", "b/d/e.txt"]:
        storage.write_text(storage.join(root, *rel.split("/")), rel)
    storage.makedirs(storage.join(root, "empty"))
    assert storage.list_files(root) == sorted(
        storage.join(root, *rel.split("/")) for rel in ["a.txt", "b/c.txt", "b/d/e.txt"]
    )
    assert storage.list_files(root, recursive=False) == [storage.join(root, "a.txt")]
    assert storage.list_files(root + "/", recursive=False) == [storage.join(root, "a.txt")]
    for uri in storage.list_files(root):
        assert storage.read_text(uri) == os.path.relpath(uri, root)


def test_list_files_relative_uri(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    storage.write_text("out/x/1.txt", "1")
    storage.write_text("out/2.txt", "2")
    assert storage.list_files("out") == [os.path.join("out", "2.txt"), os.path.join("out", "x", "1.txt")]


def test_list_files_missing_dir(tmp_path):
    assert storage.list_files(str(tmp_path / "nope")) == []
    assert storage.list_files(str(tmp_path / "nope"), recursive=False) == []


def test_delete_file_and_dir(tmp_path):
    f = str(tmp_path / "f.txt")
    storage.write_text(f, "x")
    storage.delete(f)
    assert not storage.exists(f)
    d = str(tmp_path / "d")
    storage.write_text(storage.join(d, "sub", "g.txt"), "y")
    storage.delete(d)
    assert not storage.exists(d)
    storage.delete(str(tmp_path / "never-existed"))  # a no-op, not an error
    assert tmp_path.exists()


def test_iter_chunks_local(tmp_path):
    data = os.urandom(10_000)
    p = str(tmp_path / "blob")
    storage.write_bytes(p, data)
    chunks = list(storage.iter_chunks(p, chunk=4096))
    assert [len(c) for c in chunks] == [4096, 4096, 10_000 - 8192]
    assert b"".join(chunks) == data
    assert list(storage.iter_chunks(storage.write_bytes(str(tmp_path / "empty"), b""))) == []


def test_open_input_local_is_seekable(tmp_path):
    p = storage.write_bytes(str(tmp_path / "f"), b"0123456789")
    with storage.open_input(p) as f:
        f.seek(5)
        assert f.read(3) == b"567"
        assert f.size() == 10


# --- S3 against moto --------------------------------------------------------------------------

@pytest.fixture
def prefix(s3):
    """A fresh prefix per test, so tests do not see each other's objects."""
    return storage.join(s3, f"t-{uuid.uuid4().hex[:8]}")


def test_s3_filesystem_uses_endpoint_and_is_cached(s3):
    fs1, path = storage.filesystem(storage.join(s3, "a", "b.bin"))
    fs2, _ = storage.filesystem(s3 + "/other")
    assert fs1.type_name == "s3"
    assert path == f"{BUCKET}/a/b.bin"
    assert fs1 is fs2  # one cached filesystem per (endpoint, region)
    assert fs1.region == "us-east-1"


def test_s3_bytes_text_json_round_trip(prefix):
    uri = storage.join(prefix, "dir", "x.bin")
    assert storage.write_bytes(uri, b"\x00\xffdata") == uri
    assert storage.read_bytes(uri) == b"\x00\xffdata"
    storage.write_bytes(uri, b"v2")  # overwrite
    assert storage.read_bytes(uri) == b"v2"
    storage.write_text(storage.join(prefix, "t.txt"), "héllo ✓")
    assert storage.read_text(storage.join(prefix, "t.txt")) == "héllo ✓"
    obj = {"rows": 3, "labels": ["😀", "cat"], "nested": {"ok": True}}
    storage.write_json(storage.join(prefix, "meta.json"), obj)
    assert storage.read_json(storage.join(prefix, "meta.json")) == obj


def test_s3_exists_is_dir(prefix, s3):
    uri = storage.join(prefix, "sub", "f.txt")
    assert not storage.exists(uri)
    assert not storage.exists(prefix) and not storage.is_dir(prefix)
    storage.write_text(uri, "x")
    assert storage.exists(uri) and not storage.is_dir(uri)
    assert storage.exists(storage.join(prefix, "sub")) and storage.is_dir(storage.join(prefix, "sub"))
    assert storage.is_dir(prefix) and storage.is_dir(s3)


def test_s3_makedirs(prefix):
    storage.makedirs(storage.join(prefix, "a", "b"))
    storage.write_text(storage.join(prefix, "a", "b", "f"), "1")
    assert storage.list_files(prefix) == [storage.join(prefix, "a", "b", "f")]


def test_s3_list_files(prefix):
    rels = ["a.txt", "b/c.txt", "b/d/e.txt"]
    for rel in rels:
        storage.write_text(storage.join(prefix, *rel.split("/")), rel)
    expected = sorted(f"{prefix}/{rel}" for rel in rels)
    assert storage.list_files(prefix) == expected
    assert storage.list_files(prefix + "/") == expected
    assert all(u.startswith(f"s3://{BUCKET}/") for u in expected)
    assert storage.list_files(prefix, recursive=False) == [f"{prefix}/a.txt"]
    for uri in storage.list_files(prefix):
        assert storage.read_text(uri) == uri[len(prefix) + 1:]
    assert storage.list_files(storage.join(prefix, "missing")) == []


def test_s3_delete(prefix):
    f = storage.join(prefix, "f.txt")
    storage.write_text(f, "x")
    storage.delete(f)
    assert not storage.exists(f)
    d = storage.join(prefix, "d")
    storage.write_text(storage.join(d, "1.txt"), "1")
    storage.write_text(storage.join(d, "e", "2.txt"), "2")
    storage.write_text(storage.join(prefix, "keep.txt"), "k")
    storage.delete(d)
    assert storage.list_files(d) == [] and not storage.exists(d)
    assert storage.list_files(prefix) == [storage.join(prefix, "keep.txt")]
    storage.delete(storage.join(prefix, "never-existed"))  # a no-op


def test_s3_read_missing(prefix):
    missing = storage.join(prefix, "nope.json")
    for fn in (storage.read_bytes, storage.read_json, storage.open_input):
        with pytest.raises(EmojirayError) as info:
            fn(missing)
        msg = _one_line(info)
        assert missing in msg
        assert "not found" in msg or "cannot read" in msg


def test_s3_missing_bucket(s3):
    uri = "s3://no-such-bucket-emojiray/x.bin"
    with pytest.raises(EmojirayError) as info:
        storage.read_bytes(uri)
    assert uri in _one_line(info)
    with pytest.raises(EmojirayError) as info:
        storage.write_bytes(uri, b"x")
    assert "cannot write" in _one_line(info)
    assert not storage.exists(uri)
    assert storage.list_files("s3://no-such-bucket-emojiray/p") == []


def test_s3_read_bucket_root_is_an_error(s3):
    with pytest.raises(EmojirayError) as info:
        storage.read_bytes(s3)
    assert "cannot read" in _one_line(info)


def test_s3_read_json_invalid(prefix):
    uri = storage.join(prefix, "bad.json")
    storage.write_text(uri, "{nope")
    with pytest.raises(EmojirayError) as info:
        storage.read_json(uri)
    assert "not valid JSON" in _one_line(info)


def test_s3_iter_chunks_and_open_input(prefix):
    data = os.urandom(3 * 1024 + 17)
    uri = storage.write_bytes(storage.join(prefix, "blob"), data)
    chunks = list(storage.iter_chunks(uri, chunk=1024))
    assert [len(c) for c in chunks] == [1024, 1024, 1024, 17]
    assert b"".join(chunks) == data
    assert b"".join(storage.iter_chunks(uri)) == data  # default chunk bigger than the object
    with storage.open_input(uri) as f:
        assert f.size() == len(data)
        f.seek(1000)
        assert f.read(10) == data[1000:1010]


def test_s3_parquet_round_trip(prefix):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table({"id": [1, 2, 3], "name": ["a", "b", "😀"], "img": [b"\x00", b"\x01\x02", b""]})
    uri = storage.join(prefix, "shards", "x.parquet")
    fs, path = storage.filesystem(uri)
    pq.write_table(table, path, filesystem=fs)
    assert storage.list_files(storage.join(prefix, "shards")) == [uri]
    fs2, path2 = storage.filesystem(uri)
    assert pq.read_table(path2, filesystem=fs2).equals(table)
    # The same object through the storage helpers.
    assert pq.read_table(pa.BufferReader(storage.read_bytes(uri))).equals(table)
    with storage.open_input(uri) as f:
        assert pq.ParquetFile(f).metadata.num_rows == 3


def test_s3_credentials_not_leaked(s3, prefix, capsys):
    # Nothing the storage layer hands back or raises should carry the credentials.
    fs, path = storage.filesystem(storage.join(prefix, "x"))
    texts = [repr(fs), str(fs), repr(path), storage.join(prefix, "x")]
    for bad in (storage.join(prefix, "missing"), "s3://no-such-bucket-emojiray/k"):
        with pytest.raises(EmojirayError) as info:
            storage.read_bytes(bad)
        texts += [str(info.value), repr(info.value)]
    out, err = capsys.readouterr()
    texts += [out, err]
    for text in texts:
        assert SECRET_KEY not in text
        assert ACCESS_KEY not in text


def test_s3_endpoint_env_precedence(s3, monkeypatch):
    # AWS_ENDPOINT_URL_S3 wins over AWS_ENDPOINT_URL; each endpoint gets its own filesystem.
    default_fs, _ = storage.filesystem(storage.join(s3, "k"))
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")  # discard port: nothing there
    other_fs, _ = storage.filesystem(storage.join(s3, "k"))
    assert other_fs is not default_fs
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    assert storage.filesystem(storage.join(s3, "k"))[0] is default_fs


# --- regressions of bugs found while writing these tests ---------------------------------


@pytest.mark.parametrize("uri", ["s3:///x", "s3://bucket//x", "s3://bucket/a//b"])
def test_malformed_s3_uri_is_emojiray_error(uri):
    with pytest.raises(EmojirayError):
        storage.exists(uri)


def test_read_text_not_utf8(tmp_path):
    p = tmp_path / "bin.txt"
    p.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(EmojirayError):
        storage.read_text(str(p))
