"""Sheets and animations of small emoji: labelled rows, enlarged when small, looping GIFs; an
extension's measurement with its sheet."""

from __future__ import annotations

import numpy as np

from emojiray import storage


def save_gif(uri: str, frames: np.ndarray, ms: int = 120, scale: int = 1) -> str:
    """(T, H, W, 3) uint8 frames -> a looping animated GIF (forwards then backwards)."""
    import io

    from PIL import Image

    imgs = [Image.fromarray(f).resize((f.shape[1] * scale, f.shape[0] * scale), Image.Resampling.NEAREST)
            for f in frames]
    seq = imgs + imgs[-2:0:-1]  # ping-pong
    buf = io.BytesIO()
    seq[0].save(buf, format="GIF", save_all=True, append_images=seq[1:], duration=ms, loop=0)
    return storage.write_bytes(uri, buf.getvalue())


def enlarged(sheet):
    """Sheets of small emoji are hard to see: a sheet under 400 px high is enlarged twice (nearest)."""
    from PIL import Image

    if sheet.height < 400:
        return sheet.resize((sheet.width * 2, sheet.height * 2), Image.Resampling.NEAREST)
    return sheet


def write_sheet(uri: str, rows, ncols: int) -> str:
    """Write a sheet of labelled rows [(label, uint8 NHWC images)] as PNG (enlarged when small); return its URI."""
    from emojiray.images import labelled_rows, to_png_bytes

    return storage.write_bytes(uri, to_png_bytes(enlarged(labelled_rows(rows, ncols))))


def write_measurement(out: str, name: str, record: dict, rows, ncols: int) -> None:
    """An extension's measurement under ``out``: ``<name>.json`` (the record, made JSON-safe) and
    ``<name>.png`` (its sheet of labelled rows, :func:`write_sheet`)."""
    from emojiray.extensions.measures import json_safe

    storage.write_json(storage.join(out, f"{name}.json"), json_safe(record))
    write_sheet(storage.join(out, f"{name}.png"), rows, ncols)
