"""Shared fixtures: synthetic emoji drawn with Pillow, fake npm packages, a local 2-CPU Ray."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from s3server import moto_s3_server

from emojiray import storage

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Ray Train's controller polls its workers every 2 s and starts a preemption watcher actor (an extra
# process, for cloud spot instances). An embedded Ray sets these two itself (raykit.init_ray); the
# tests set them for the Rays they join by address too (the cluster test, the GPU suite's dry run):
# Ray Train propagates them to its controller from the driver's environment.
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")
os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")


def pytest_runtest_logreport(report):
    """A failure is written out the moment it happens, not only in the closing summary: should a
    later teardown hang until pytest-timeout (or CI) stops the process, the reason is in the log."""
    if report.failed:
        import sys

        sys.__stderr__.write(f"\nFAILED {report.nodeid} ({report.when}):\n{report.longreprtext}\n")
        sys.__stderr__.flush()


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same random state: no test passes or fails by the draw."""
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


def draw_emoji(seed: int, size: int = 64, skin: int | None = None) -> Image.Image:
    """An RGBA 'emoji': a coloured disc with eyes and a mouth on a transparent background."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    face = tuple(int(v) for v in rng.integers(40, 256, 3)) + (255,)
    if skin is not None:  # skin-tone variants: same drawing, another face colour
        face = ((90 + 30 * skin) % 256, (60 + 25 * skin) % 256, (40 + 20 * skin) % 256, 255)
    m = size // 16
    d.ellipse([m, m, size - m, size - m], fill=face, outline=(0, 0, 0, 255), width=max(1, size // 32))
    ex = int(rng.integers(size // 4, size // 3))
    d.ellipse([ex, size // 3, ex + size // 10, size // 3 + size // 8], fill=(0, 0, 0, 255))
    d.ellipse([size - ex - size // 10, size // 3, size - ex, size // 3 + size // 8], fill=(0, 0, 0, 255))
    mouth = int(rng.integers(0, 180))
    d.arc([size // 4, size // 2, 3 * size // 4, 3 * size // 4], mouth, mouth + 180, fill=(120, 0, 0, 255),
          width=max(1, size // 20))
    return img


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


# emoji.json entries for a fake emoji-datasource package: faces (with emotions), a hand with
# skin tones, and objects, in the real package's format.
FAKE_ENTRIES = [
    ("1F600", "GRINNING FACE", "Smileys & Emotion", "face-smiling", False),
    ("1F622", "CRYING FACE", "Smileys & Emotion", "face-concerned", False),
    ("1F620", "ANGRY FACE", "Smileys & Emotion", "face-negative", False),
    ("1F60D", "SMILING FACE WITH HEART-SHAPED EYES", "Smileys & Emotion", "face-affection", False),
    ("1F44D", "THUMBS UP SIGN", "People & Body", "hand-fingers-closed", True),
    ("1F44B", "WAVING HAND SIGN", "People & Body", "hand-fingers-open", True),
    ("1F355", "SLICE OF PIZZA", "Food & Drink", "food-prepared", False),
    ("1F697", "AUTOMOBILE", "Travel & Places", "transport-ground", False),
    ("1F4A1", "ELECTRIC LIGHT BULB", "Objects", "light & video", False),
    ("2764-FE0F", "HEAVY BLACK HEART", "Smileys & Emotion", "heart", False),
] + [(f"1F9{i:02X}", f"TEST OBJECT {i}", "Objects", "tool", False) for i in range(30)]
TONES = ("1F3FB", "1F3FC", "1F3FD", "1F3FE", "1F3FF")


def fake_package(vendor: str, duplicate: bool = False) -> tuple[list[dict], dict[str, bytes]]:
    """(emoji.json entries, {image name: PNG bytes}) for one vendor."""
    vendor_seed = {"google": 0, "twitter": 1000, "apple": 2000, "facebook": 3000}[vendor]
    entries, images = [], {}
    for i, (unified, name, cat, sub, has_skin) in enumerate(FAKE_ENTRIES):
        image = unified.lower() + ".png"
        entry = {"name": name, "unified": unified, "image": image, "category": cat, "subcategory": sub,
                 "short_name": name.lower().replace(" ", "_"), f"has_img_{vendor}": True}
        images[image] = png_bytes(draw_emoji(vendor_seed + i))
        if has_skin:
            entry["skin_variations"] = {}
            for t, tone in enumerate(TONES):
                v_image = f"{unified.lower()}-{tone.lower()}.png"
                entry["skin_variations"][tone] = {"unified": f"{unified}-{tone}", "image": v_image,
                                                  f"has_img_{vendor}": True}
                images[v_image] = png_bytes(draw_emoji(vendor_seed + i, skin=t))
        entries.append(entry)
    if duplicate:  # a second emoji drawn exactly like the first one
        entries.append({"name": "DUPLICATE GRIN", "unified": "1F9FF", "image": "1f9ff.png",
                        "category": "Smileys & Emotion", "subcategory": "face-smiling",
                        f"has_img_{vendor}": True})
        images["1f9ff.png"] = images["1f600.png"]
    return entries, images


def write_tarball(path: Path, vendor: str, entries: list[dict], images: dict[str, bytes]) -> str:
    """Write an npm-pack style .tgz; return its SHA-1."""
    with tarfile.open(path, "w:gz") as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("package.json", json.dumps({"name": f"emoji-datasource-{vendor}", "version": "0.0.0-test"}).encode())
        add("emoji.json", json.dumps(entries).encode())
        for name, data in images.items():
            add(f"img/{vendor}/64/{name}", data)
    return hashlib.sha1(path.read_bytes()).hexdigest()


def fake_npm_cache(cache: Path, duplicate: bool = False) -> Path:
    """An EMOJIRAY_CACHE folder with verified fake tarballs (version 0.0.0-test) for google and
    twitter; with ``duplicate`` the google package holds one image twice."""
    (cache / "npm").mkdir(parents=True, exist_ok=True)
    for vendor in ("google", "twitter"):
        entries, images = fake_package(vendor, duplicate=duplicate and vendor == "google")
        tgz = cache / "npm" / f"emoji-datasource-{vendor}-0.0.0-test.tgz"
        sha = write_tarball(tgz, vendor, entries, images)
        (cache / "npm" / (tgz.name + ".sha1")).write_text(sha + "\n")
    return cache


@pytest.fixture
def npm_cache(tmp_path, monkeypatch):
    """EMOJIRAY_CACHE with verified fake tarballs (version 0.0.0-test) for google and twitter."""
    cache = fake_npm_cache(tmp_path / "cache", duplicate=True)
    monkeypatch.setenv("EMOJIRAY_CACHE", str(cache))
    return cache


@pytest.fixture(scope="session")
def ray_local():
    """One embedded Ray for the whole test session: 3 logical CPUs on this 2-core box, so a
    2-worker training run still leaves one CPU to Ray Data."""
    from emojiray.config import RayConfig
    from emojiray.raykit import init_ray

    ray = init_ray(RayConfig(num_cpus=3, num_gpus=0))
    yield ray
    ray.shutdown()


# -- S3 on loopback (moto) ----------------------------------------------------------------------

ACCESS_KEY = "testing"
SECRET_KEY = "testing"
BUCKET = "emojiray-test"

_AWS_ENV_TO_CLEAR = (
    "AWS_ENDPOINT_URL_S3",  # would win over AWS_ENDPOINT_URL
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)


@pytest.fixture(scope="session")
def s3(tmp_path_factory):
    """A moto S3 server on 127.0.0.1 with one empty bucket; yields ``s3://<bucket>``."""
    boto3 = pytest.importorskip("boto3")
    pytest.importorskip("moto")
    no_files = tmp_path_factory.mktemp("aws") / "absent"
    with moto_s3_server() as endpoint, pytest.MonkeyPatch.context() as mp:
        for name in _AWS_ENV_TO_CLEAR:
            mp.delenv(name, raising=False)
        mp.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        mp.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_ENDPOINT_URL", endpoint)
        mp.setenv("AWS_CONFIG_FILE", str(no_files))  # no shared config/credentials files
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(no_files))
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        storage._s3_filesystem.cache_clear()
        try:
            boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
                Bucket=BUCKET
            )
            yield f"s3://{BUCKET}"
        finally:
            storage._s3_filesystem.cache_clear()  # drop the filesystem bound to this endpoint


