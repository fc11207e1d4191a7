"""The npm fetcher: cache and checksums, missing client, no network, and the real packages."""

from __future__ import annotations

import os
import shutil

import pytest

from emojiray.config import DataConfig
from emojiray.data import npm
from emojiray.data.prepare import prepare
from emojiray.errors import EmojirayError


def test_cached_tarball_needs_no_npm(npm_cache, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # no npm client reachable
    tb = npm.fetch("google", "0.0.0-test")
    assert tb.path.exists() and tb.sha1 == npm.sha1_file(tb.path)


def test_missing_npm_client_is_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOJIRAY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(EmojirayError, match="npm not found") as err:
        npm.fetch("google", "16.0.0")
    assert "\n" not in str(err.value)


@pytest.mark.skipif(shutil.which("npm") is None, reason="needs the npm client (make test installs it)")
def test_no_network_is_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOJIRAY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("npm_config_registry", "http://127.0.0.1:9/")  # nothing listens there
    monkeypatch.setenv("npm_config_cache", str(tmp_path / "npm-cache"))
    monkeypatch.setenv("npm_config_fetch_retries", "0")
    monkeypatch.setenv("npm_config_fetch_timeout", "2000")
    with pytest.raises(EmojirayError, match="npm pack emoji-datasource-google@16.0.0 failed") as err:
        npm.fetch("google", "16.0.0")
    assert "\n" not in str(err.value)
    assert not list((tmp_path / "cache" / "npm").glob("*.tgz"))


def test_corrupt_cache_entry_is_refetched_or_refused(npm_cache, monkeypatch):
    tgz = npm_cache / "npm" / "emoji-datasource-google-0.0.0-test.tgz"
    tgz.write_bytes(tgz.read_bytes()[:-100])  # corrupt: sha1 no longer matches
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(EmojirayError, match="npm not found"):
        npm.fetch("google", "0.0.0-test")
    assert not tgz.exists(), "a cache entry that fails its checksum is discarded"


def test_pinned_checksum_mismatch_is_refused(npm_cache, monkeypatch):
    src = npm_cache / "npm" / "emoji-datasource-google-0.0.0-test.tgz"
    fake = npm_cache / "npm" / "emoji-datasource-google-16.0.0.tgz"
    shutil.copy(src, fake)  # claims to be 16.0.0 but is not the published tarball
    (fake.parent / (fake.name + ".sha1")).write_text(npm.sha1_file(fake))
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(EmojirayError):
        npm.fetch("google", "16.0.0")
    assert not fake.exists()


def test_opt_in_vendor_prints_licence(npm_cache, capsys, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(EmojirayError):
        npm.fetch("apple", "0.0.0-test")
    assert "not licensed for commercial use" in capsys.readouterr().err


@pytest.mark.network
@pytest.mark.skipif(shutil.which("npm") is None, reason="needs the npm client (make test installs it)")
def test_real_default_packages(tmp_path):
    """Fetch emoji-datasource-google/twitter 16.0.0 from npm and prepare them (CI reaches npm)."""
    if not os.environ.get("EMOJIRAY_CACHE"):
        os.environ["EMOJIRAY_CACHE"] = str(tmp_path / "cache")
    m = prepare(DataConfig(), str(tmp_path / "ds"), log=lambda *_: None)
    c = m["counts"]
    assert c["inputs"] == 2 * 3786
    assert c["total"] >= 7500 and c["skipped"] == 0
    assert c["vendor"].keys() == {"google", "twitter"}
    assert len(m["vocab"]["category"]) == 10 and len(m["vocab"]["subcategory"]) == 99
    assert {"Smileys & Emotion", "People & Body", "Flags"} <= set(m["vocab"]["category"])
    assert c["emoji_ids"] >= 1890
    emotions = {k for k, v in c["emotion"].items() if v > 0}
    assert emotions == {"happy", "love", "playful", "neutral", "sad", "angry", "fearful/surprised",
                        "sick", "other", "none"}
    assert {s["sha1"] for s in m["sources"]} == set(v for k, v in npm.PINNED_SHA1.items() if k[1] == "16.0.0")
