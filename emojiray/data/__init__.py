"""Emoji data: sources, preprocessing, Parquet shards, and Ray Data streaming.

``prepare`` writes shards; ``read_images`` (Ray layer, imports Ray lazily) streams them.
"""

from emojiray.data.prepare import prepare
from emojiray.data.shards import load_manifest


def read_images(*args, **kwargs):
    """Ray Dataset over a prepared dataset; see :func:`emojiray.data.stream.read_images`."""
    from emojiray.data.stream import read_images as _read

    return _read(*args, **kwargs)


__all__ = ["prepare", "load_manifest", "read_images"]
