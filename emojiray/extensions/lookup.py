"""One emoji by image file or by name in a dataset (the demos and the extension commands)."""

from __future__ import annotations

import functools

import numpy as np

from emojiray import storage
from emojiray.data.shards import load_manifest, read_arrays
from emojiray.errors import EmojirayError, SkipImage


def _dataset_version(data_uri: str) -> str:
    m = load_manifest(data_uri)
    return str(m.get("fingerprint") or m.get("created"))


@functools.lru_cache(maxsize=1)
def _name_index(data_uri: str, version: str) -> tuple[np.ndarray, dict[str, list]]:
    """Every image of a dataset with its names, read once per dataset version (demos look up several names)."""
    return read_arrays(data_uri, ("train", "val", "test"), ("name", "unified", "vendor", "skin_tone"))


def load_emoji(spec: str, size: int, data_uri: str = "", vendor: str = "") -> tuple[np.ndarray, str]:
    """One emoji as (size, size, 3) uint8 and a short label, from an image file or by name.

    ``spec`` is a path or URI of an image file (PNG, WebP, ...; transparency composited on white),
    or the name of an emoji in the dataset at ``data_uri`` ("grinning face", case-insensitive; an
    exact name first, then the shortest name containing it) or its code point ("1F600"). ``vendor``
    picks that vendor's drawing when the name matches several.
    """
    from emojiray.images import decode_image

    if storage.is_s3(spec) or storage.exists(spec):
        if storage.is_dir(spec):
            raise EmojirayError(f"{spec} is a directory, not an image file")
        try:
            return decode_image(storage.read_bytes(spec), size).pixels, storage.basename(spec).rsplit(".", 1)[0]
        except SkipImage as exc:
            raise EmojirayError(f"cannot read {spec}: {exc}") from None
    if not data_uri:
        raise EmojirayError(f"{spec!r} is not an image file; to look an emoji up by name give --data or --run")
    images, labels = _name_index(data_uri, _dataset_version(data_uri))
    if images.shape[1] != size:
        raise EmojirayError(f"the dataset at {data_uri} holds {images.shape[1]} px images, the model wants {size} px")
    want = spec.strip().lower()
    names = [str(n).lower() for n in labels["name"]]
    codes = [str(u).lower() for u in labels["unified"]]
    rows = [i for i, (n, u) in enumerate(zip(names, codes)) if want in (n, u)]
    if not rows:
        contains = [i for i, n in enumerate(names) if want in n]
        if contains:
            shortest = min(len(names[i]) for i in contains)
            rows = [i for i in contains if len(names[i]) == shortest]
    if not rows:
        raise EmojirayError(f"no emoji named {spec!r} in {data_uri} (and no such file)")
    rows.sort(key=lambda i: (bool(labels["skin_tone"][i]), i))  # the plain (no skin tone) drawing first
    if vendor:
        picked = [i for i in rows if labels["vendor"][i] == vendor]
        if not picked:
            have = sorted({labels["vendor"][i] for i in rows})
            raise EmojirayError(f"{spec!r} exists only for vendor(s) {', '.join(have)}, not {vendor!r}")
        rows = picked
    i = rows[0]
    return images[i].copy(), f"{labels['name'][i].lower()} ({labels['vendor'][i]})"
