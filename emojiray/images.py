"""Image utilities (pure numpy/Pillow/torch, no Ray): robust decoding, preprocessing, grids.

``decode_image`` turns any file Pillow can read into a square RGB uint8 array of the configured
size, or raises :class:`SkipImage` with a one-line reason. What it converts instead of dropping:
16-bit and 32-bit grey, palette (with or without transparency), CMYK, grey, grey+alpha, bilevel,
animated images (first frame), EXIF-rotated photos (turned upright) and non-square images (padded
with the background colour, then resized).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageColor, ImageDraw, ImageFile, ImageOps, UnidentifiedImageError

from emojiray.errors import EmojirayError, SkipImage

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, not a half-grey image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def parse_color(spec: str) -> tuple[int, int, int]:
    """'white', '#ff00aa' or '255,0,170' -> an RGB triple."""
    spec = str(spec).strip()
    try:
        if "," in spec:
            rgb = tuple(int(v) for v in spec.split(","))
            if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
                raise ValueError
            return rgb  # type: ignore[return-value]
        return ImageColor.getrgb(spec)[:3]
    except ValueError:
        raise EmojirayError(f"unknown colour {spec!r}: use a name (white), #rrggbb or r,g,b") from None


@dataclass
class Decoded:
    """A preprocessed image and what was done to it to get there."""

    pixels: np.ndarray  # (size, size, 3) uint8, RGB
    conversions: list[str] = field(default_factory=list)  # e.g. ["16-bit", "exif-rotated"]


def _to_rgba(img: Image.Image, notes: list[str]) -> Image.Image:
    """Any Pillow mode -> RGBA, scaling high bit depths rather than clipping them."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        if mode == "I" and arr.max() > 65535:
            peak = float(arr.max())
        notes.append("16-bit")
        grey = np.clip(np.round(arr / peak * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGBA")
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        scale = 255.0 if arr.max() <= 1.0 else 1.0
        notes.append("float")
        grey = np.clip(np.round(arr * scale), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGBA")
    if mode == "RGBA":
        return img
    notes.append({"P": "palette", "PA": "palette", "CMYK": "cmyk", "L": "grayscale", "LA": "grayscale",
                  "1": "bilevel", "RGB": "rgb"}.get(mode, mode.lower()))
    if mode == "P" and "transparency" in img.info:
        return img.convert("RGBA")
    if mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        return img.convert("RGB").convert("RGBA")
    return img.convert("RGBA")


def decode_image(
    data: bytes,
    size: int,
    background: tuple[int, int, int] = (255, 255, 255),
    max_pixels: int = 40_000_000,
) -> Decoded:
    """Bytes of an image file -> (size, size, 3) uint8 RGB, alpha composited onto ``background``.

    Raises SkipImage (one line) for empty, truncated, corrupt, oversized or non-image input.
    """
    if not data:
        raise SkipImage("empty file (0 bytes)")
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > max_pixels:
                raise SkipImage(f"too large ({w}x{h} = {w * h:,} pixels > {max_pixels:,}): possible decompression bomb")
            if getattr(img, "is_animated", False):
                notes.append("animated:first-frame")
                img.seek(0)
            img.load()
            transposed = ImageOps.exif_transpose(img)
            if transposed is not None and transposed is not img:
                if img.getexif().get(0x0112, 1) not in (1, None):
                    notes.append("exif-rotated")
                img = transposed
            rgba = _to_rgba(img, notes)
    except SkipImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise SkipImage(f"decompression bomb refused: {str(exc).splitlines()[0]}") from None
    except UnidentifiedImageError:
        raise SkipImage("not an image Pillow can read (unrecognised or corrupt header)") from None
    except MemoryError:
        raise SkipImage("not enough memory to decode (corrupt header or huge image)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SkipImage(f"truncated or corrupt image data ({msg})") from None
    notes = [n for n in notes if n != "rgb"]

    w, h = rgba.size
    if w != h:
        notes.append("padded-to-square")
    if (w, h) != (size, size):
        # Shrink the long side to `size` first (so a long, thin image never needs a huge canvas),
        # in premultiplied alpha so transparent pixels' colours do not bleed into edges.
        scale = size / max(w, h)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        rgba = rgba.convert("RGBa").resize((nw, nh), Image.Resampling.LANCZOS).convert("RGBA")
        w, h = nw, nh
    if (w, h) != (size, size):  # pad to a square, centred: nothing is cropped or stretched
        canvas = Image.new("RGBA", (size, size), (0, 0, 0, 0))
        canvas.paste(rgba, ((size - w) // 2, (size - h) // 2))
        rgba = canvas
    bg = Image.new("RGBA", rgba.size, (*background, 255))
    rgb = Image.alpha_composite(bg, rgba).convert("RGB")
    return Decoded(np.asarray(rgb, dtype=np.uint8).copy(), notes)


def resize_rgb(pixels: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) uint8 with antialiasing (Lanczos)."""
    if pixels.shape[0] == size and pixels.shape[1] == size:
        return pixels
    img = Image.fromarray(pixels, "RGB").resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.uint8).copy()


def grid(images: np.ndarray, ncols: int, pad: int = 2, pad_value: int = 255) -> np.ndarray:
    """(N, H, W, 3) uint8 -> one (rows*(H+pad)+pad, ncols*(W+pad)+pad, 3) image."""
    n, h, w, c = images.shape
    nrows = max(1, -(-n // ncols))
    out = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), pad_value, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, ncols)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        out[y:y + h, x:x + w] = images[i]
    return out


def labelled_rows(rows: list[tuple[str, np.ndarray]], ncols: int, label_width: int = 150,
                  pad: int = 2) -> Image.Image:
    """A sheet with one labelled row per (label, (N, H, W, 3) images) pair."""
    if not rows:
        raise EmojirayError("nothing to draw: no images")
    h, w = rows[0][1].shape[1:3]
    row_h = h + pad
    sheet = Image.new("RGB", (label_width + ncols * (w + pad) + pad, pad + len(rows) * row_h), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (label, imgs) in enumerate(rows):
        y = pad + r * row_h
        draw.text((4, y + h // 2 - 5), label[:28], fill=(0, 0, 0))
        strip = grid(imgs[:ncols], ncols, pad=pad)[pad:pad + h]
        sheet.paste(Image.fromarray(strip[:, : ncols * (w + pad) + pad]), (label_width, y))
    return sheet


def to_png_bytes(image: np.ndarray | Image.Image) -> bytes:
    img = image if isinstance(image, Image.Image) else Image.fromarray(image)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def to_model_input(batch_uint8, device=None, channels_last: bool = True):
    """(N, H, W, 3) uint8 torch tensor -> (N, 3, H, W) float in [-1, 1] on ``device``.

    Batches stay uint8 (4x smaller) until they reach the training device; the conversion
    happens there.
    """
    import torch

    x = batch_uint8.to(device, non_blocking=True) if device is not None else batch_uint8
    x = x.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()


def from_model_output(x):
    """(N, 3, H, W) float in [-1, 1] -> (N, H, W, 3) uint8 numpy, for PNGs and metrics."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
