"""Scalars from TensorBoard event files, without TensorFlow or TensorBoard.

An event file is a TFRecord stream: per record a little-endian uint64 length, a uint32 masked
CRC of the length, the payload (an ``Event`` protocol buffer) and a uint32 masked CRC of the
payload. The payloads are parsed with the ``Event`` message that tensorboardX ships. CRCs are not
checked; a truncated last record (a file still being written) ends the stream quietly.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from emojiray import storage

Series = dict[str, list[tuple[float, float]]]  # tag -> [(step, value)] sorted by step


def _records(data: bytes) -> Iterable[bytes]:
    pos, end = 0, len(data)
    while pos + 12 <= end:
        (length,) = struct.unpack_from("<Q", data, pos)
        start = pos + 12
        if start + length + 4 > end:
            return  # truncated: the writer has not finished this record
        yield data[start:start + length]
        pos = start + length + 4


def parse_scalars(data: bytes) -> Series:
    """The scalar summaries of one event file's bytes: {tag: [(step, value)]} in file order."""
    from google.protobuf.message import DecodeError
    from tensorboardX.proto import event_pb2

    out: Series = {}
    for payload in _records(data):
        event = event_pb2.Event()
        try:
            event.ParseFromString(payload)
        except DecodeError:  # a damaged record: skip it, keep the rest
            continue
        if not event.HasField("summary"):
            continue
        for value in event.summary.value:
            if value.WhichOneof("value") == "simple_value":
                out.setdefault(value.tag, []).append((float(event.step), float(value.simple_value)))
    return out


def read_scalars(folder: str) -> Series:
    """Every scalar under a TensorBoard log folder (local or ``s3://``), merged over its event files.

    A resumed run writes a new event file that repeats some steps; the later file wins per
    (tag, step). Empty when the folder does not exist or holds no scalars.
    """
    files = [u for u in storage.list_files(folder) if "tfevents" in storage.basename(u)]
    merged: dict[str, dict[float, float]] = {}
    for uri in sorted(files, key=storage.basename):  # names start with the creation time
        for tag, points in parse_scalars(storage.read_bytes(uri)).items():
            merged.setdefault(tag, {}).update(points)
    return {tag: sorted(points.items()) for tag, points in merged.items()}
