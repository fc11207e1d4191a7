"""Fetch the emoji-datasource-<vendor> npm packages with ``npm pack`` into a checksummed cache.

The cache lives in ``$EMOJIRAY_CACHE/npm`` (default ``~/.cache/emojiray/npm``). A tarball is
used only if its SHA-1 matches the pinned value for known versions, or the value npm reported
when it was fetched (kept in ``<tarball>.sha1``). A cached, verified tarball needs no network.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from emojiray import storage
from emojiray.errors import EmojirayError


@dataclass(frozen=True)
class Vendor:
    package: str
    license: str
    opt_in_notice: str = ""  # printed when the vendor is requested; empty for the defaults


VENDORS: dict[str, Vendor] = {
    "google": Vendor("emoji-datasource-google", "Apache-2.0"),
    "twitter": Vendor("emoji-datasource-twitter", "CC-BY-4.0"),
    "apple": Vendor(
        "emoji-datasource-apple", "proprietary",
        "Apple's emoji images are Apple's property and are not licensed for commercial use; "
        "use them only where your use is permitted.",
    ),
    "facebook": Vendor(
        "emoji-datasource-facebook", "unclear",
        "Facebook's emoji images carry no clear licence; check before you use or publish models trained on them.",
    ),
}
DEFAULT_VENDORS = ("google", "twitter")

# SHA-1 of the tarballs as published on the npm registry (npm's `dist.shasum`).
PINNED_SHA1: dict[tuple[str, str], str] = {
    ("emoji-datasource-google", "16.0.0"): "a80ac3e8106cbd4d8648ce758aa099e8827b6157",
    ("emoji-datasource-twitter", "16.0.0"): "e2bd39a8acb77e158106f8249dd7b4cd93fa1b14",
}


def cache_dir() -> Path:
    return storage.cache_dir("npm")


def sha1_file(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def parse_vendors(spec: str) -> list[str]:
    names = [v.strip().lower() for v in spec.split(",") if v.strip()] or list(DEFAULT_VENDORS)
    for name in names:
        if name not in VENDORS:
            raise EmojirayError(f"unknown npm vendor {name!r}: choose from {', '.join(VENDORS)}")
    return list(dict.fromkeys(names))


@dataclass
class Tarball:
    vendor: str
    package: str
    version: str
    path: Path
    sha1: str
    license: str


def fetch(vendor: str, version: str) -> Tarball:
    """Return the cached tarball of one vendor's package, running ``npm pack`` if needed."""
    info = VENDORS[vendor]
    if info.opt_in_notice:
        print(f"emojiray: licence notice for {vendor}: {info.opt_in_notice}", file=sys.stderr)
    name = f"{info.package}-{version}.tgz"
    cached = cache_dir() / name
    expected = PINNED_SHA1.get((info.package, version))
    if cached.exists():
        recorded = expected or _read_sha_file(cached)
        actual = sha1_file(cached)
        if recorded and actual == recorded:
            return Tarball(vendor, info.package, version, cached, actual, info.license)
        cached.unlink()  # corrupt or unverifiable cache entry: fetch again

    npm = shutil.which("npm")
    if npm is None:
        raise EmojirayError(
            "npm not found on PATH: install Node.js/npm (make run does), "
            "or use --source folder:PATH / hf:NAME / parquet:URI"
        )
    cache_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        spec = f"{info.package}@{version}"
        try:
            proc = subprocess.run(
                [npm, "pack", spec, "--json", "--pack-destination", tmp],
                capture_output=True, text=True, timeout=900,
            )
        except subprocess.TimeoutExpired:
            raise EmojirayError(f"npm pack {spec} timed out after 900 s (no network?)") from None
        if proc.returncode != 0:
            raise EmojirayError(f"npm pack {spec} failed: {_npm_reason(proc.stderr)}")
        try:
            meta = json.loads(proc.stdout)[0]
            reported, filename = meta["shasum"], meta["filename"]
        except (json.JSONDecodeError, KeyError, IndexError, TypeError):
            raise EmojirayError(f"npm pack {spec} printed no package metadata") from None
        got = Path(tmp) / filename
        actual = sha1_file(got)
        if actual != reported or (expected and actual != expected):
            raise EmojirayError(
                f"checksum mismatch for {spec}: got sha1 {actual}, expected {expected or reported}"
            )
        os.replace(got, cached)
        (cached.parent / (cached.name + ".sha1")).write_text(actual + "\n")
    return Tarball(vendor, info.package, version, cached, actual, info.license)


def _read_sha_file(path: Path) -> str:
    sha = path.parent / (path.name + ".sha1")
    return sha.read_text().strip() if sha.exists() else ""


def _npm_reason(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    errors = [ln.removeprefix("npm error").strip() for ln in lines if ln.startswith(("npm error", "npm ERR!"))]
    errors = [e for e in errors if e and not e.startswith(("A complete log", "Log files"))]
    picked = errors[:2] or lines[-1:] or ["unknown error"]
    text = "; ".join(picked)
    if any(k in stderr for k in ("ENOTFOUND", "ECONNREFUSED", "EAI_AGAIN", "ETIMEDOUT", "ENETUNREACH")):
        text = f"registry unreachable (no network?): {text}"
    return text[:300]
