"""emojiray.images: robust decoding (bad input skipped with a one-line reason, odd formats converted),
padding/resizing, colours, grids and the model-tensor round trip. All images are made here."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from emojiray.errors import EmojirayError, SkipImage
from emojiray.images import decode_image, from_model_output, grid, parse_color, to_model_input

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
WHITE, BLACK = (255, 255, 255), (0, 0, 0)


# --------------------------------------------------------------------------- helpers


def encode(img: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def solid(color, size=(16, 16), mode="RGB") -> Image.Image:
    return Image.new(mode, size, color)


def halves(left, right, w=64, h=32) -> Image.Image:
    """A w x h RGB image, left half one colour and right half another (not symmetric)."""
    a = np.zeros((h, w, 3), np.uint8)
    a[:, : w // 2] = left
    a[:, w // 2:] = right
    return Image.fromarray(a, "RGB")


def noisy_png(side=64, seed=0) -> bytes:
    """A PNG that does not compress well, so its IDAT is most of the file."""
    rng = np.random.default_rng(seed)
    return encode(Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8), "RGB"))


def png_chunks(data: bytes):
    """(offset, type, length) of each chunk of a PNG."""
    i = 8
    while i < len(data):
        (n,) = struct.unpack(">I", data[i:i + 4])
        yield i, data[i + 4:i + 8], n
        i += 12 + n


def png_claiming_size(width: int, height: int) -> bytes:
    """A 1x1 PNG whose IHDR is patched to claim width x height (CRC recomputed): a decompression bomb."""
    data = bytearray(encode(Image.new("L", (1, 1))))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def skip_reason(data: bytes, size: int = 16, **kwargs) -> str:
    """decode_image must refuse ``data``; returns the reason after checking it is one non-empty line."""
    with pytest.raises(SkipImage) as info:
        decode_image(data, size, **kwargs)
    reason = str(info.value)
    assert reason and reason == reason.strip()
    assert "\n" not in reason and "\r" not in reason, reason
    return reason


def close(pixel, color, tol=12) -> bool:
    return bool(np.all(np.abs(np.asarray(pixel, int) - np.asarray(color, int)) <= tol))


def spy_on_load(monkeypatch) -> list:
    """Record every pixel load Pillow does (to prove an image was refused before being allocated)."""
    calls = []
    original = ImageFile.ImageFile.load

    def load(self):
        calls.append(self.size)
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    return calls


# --------------------------------------------------------------------------- bad input is skipped


def test_empty_file_is_skipped():
    assert "empty" in skip_reason(b"")


def test_truncated_png_is_skipped():
    data = noisy_png()
    assert decode_image(data, 16).pixels.shape == (16, 16, 3)  # the whole file is fine
    assert "truncated or corrupt" in skip_reason(data[: len(data) // 2])


@pytest.mark.parametrize("data", [b"hello, not a png", b"GIF89a but not really", bytes(range(256)) * 4])
def test_non_image_bytes_are_skipped(data):
    assert "not an image" in skip_reason(data)


def _garbage_after_signature(png: bytes) -> bytes:
    return png[:8] + np.random.default_rng(1).bytes(500)


def _garbage_after_ihdr(png: bytes) -> bytes:
    return png[:33] + np.random.default_rng(2).bytes(2000)


def _garbage_idat_valid_crc(png: bytes) -> bytes:
    off, _, n = next(c for c in png_chunks(png) if c[1] == b"IDAT")
    junk = np.random.default_rng(3).bytes(n)
    chunk = struct.pack(">I", n) + b"IDAT" + junk + struct.pack(">I", zlib.crc32(b"IDAT" + junk))
    return png[:off] + chunk + png[off + 12 + n:]


def _flipped_idat_byte(png: bytes) -> bytes:
    off, _, _ = next(c for c in png_chunks(png) if c[1] == b"IDAT")
    data = bytearray(png)
    data[off + 20] ^= 0xFF
    return bytes(data)


@pytest.mark.parametrize("corrupt", [_garbage_after_signature, _garbage_after_ihdr, _garbage_idat_valid_crc,
                                     _flipped_idat_byte])
def test_corrupt_data_after_valid_png_header_is_skipped(corrupt):
    data = corrupt(noisy_png())
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    reason = skip_reason(data)
    assert "corrupt" in reason or "not an image" in reason


def test_decompression_bomb_is_refused_without_allocating(monkeypatch):
    loads = spy_on_load(monkeypatch)
    data = png_claiming_size(100_000, 100_000)
    assert len(data) < 100
    assert "bomb" in skip_reason(data)
    assert loads == []


def test_bomb_refused_by_max_pixels_even_without_pillow_limit(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    loads = spy_on_load(monkeypatch)
    reason = skip_reason(png_claiming_size(100_000, 100_000))
    assert "bomb" in reason and "100000x100000" in reason
    assert loads == []


def test_pillow_bomb_warning_is_a_refusal_even_with_a_high_max_pixels(monkeypatch):
    """Between Pillow's warning (~89M pixels) and error (~179M) limits, the warning must still refuse."""
    loads = spy_on_load(monkeypatch)
    reason = skip_reason(png_claiming_size(10_000, 10_000), max_pixels=10**12)
    assert "bomb" in reason
    assert loads == []


def test_real_image_over_max_pixels_is_refused(monkeypatch):
    data = encode(solid(RED, (64, 64)))
    loads = spy_on_load(monkeypatch)
    reason = skip_reason(data, max_pixels=1000)
    assert "too large" in reason and "64x64" in reason
    assert loads == []
    # exactly at the limit is allowed
    assert decode_image(data, 16, max_pixels=64 * 64).pixels.shape == (16, 16, 3)


# --------------------------------------------------------------------------- odd formats are converted


def test_16bit_grayscale_is_scaled_not_clipped():
    values = np.array([[0, 32768], [65535, 1000]], dtype=np.uint16)
    img = Image.fromarray(values)
    assert img.mode == "I;16"
    out = decode_image(encode(img), 2)
    grey = out.pixels[..., 0]
    assert (out.pixels == grey[..., None]).all()  # still grey
    assert grey[1, 0] == 255  # 65535
    assert abs(int(grey[0, 1]) - 128) <= 1  # 32768: half way, not clipped to 255
    assert grey[0, 0] == 0
    assert grey[1, 1] <= 5  # 1000 / 65535 of full scale
    assert "16-bit" in out.conversions


def test_16bit_gradient_keeps_its_range():
    ramp = np.linspace(0, 65535, 32 * 32).astype(np.uint16).reshape(32, 32)
    out = decode_image(encode(Image.fromarray(ramp)), 32).pixels[..., 0]
    assert out.min() == 0 and out.max() == 255
    assert len(np.unique(out)) > 200  # not a saturated mostly-white image
    assert abs(float(out.mean()) - 127.5) < 3


def test_palette_transparency_becomes_background():
    img = Image.new("P", (16, 16), 0)
    img.putpalette([*RED, *GREEN] + [0] * (256 - 2) * 3)
    img.paste(1, (8, 0, 16, 16))  # right half green, left half palette index 0
    data = encode(img, transparency=0)  # index 0 is transparent
    for background in (WHITE, BLUE):
        out = decode_image(data, 16, background=background)
        assert (out.pixels[:, :8] == background).all()
        assert (out.pixels[:, 8:] == GREEN).all()
        assert "palette" in out.conversions


def test_cmyk_jpeg_is_converted_to_rgb():
    img = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # no cyan, full magenta + yellow: red
    out = decode_image(encode(img, "JPEG", quality=95), 16)
    assert out.pixels.shape == (16, 16, 3)
    assert close(out.pixels[8, 8], RED, tol=20)
    assert "cmyk" in out.conversions


@pytest.mark.parametrize("mode, value, expected, note", [
    ("L", 100, (100, 100, 100), "grayscale"),
    ("LA", (100, 255), (100, 100, 100), "grayscale"),
    ("LA", (100, 0), WHITE, "grayscale"),  # fully transparent grey: background
    ("1", 1, WHITE, "bilevel"),
])
def test_grayscale_images_are_converted(mode, value, expected, note):
    out = decode_image(encode(solid(value, mode=mode)), 16, background=WHITE)
    assert out.pixels.shape == (16, 16, 3) and out.pixels.dtype == np.uint8
    assert (out.pixels == expected).all()
    assert note in out.conversions


def test_grayscale_la_uses_custom_background():
    img = Image.new("LA", (16, 16), (200, 255))
    img.paste((0, 0), (0, 0, 8, 16))  # left half transparent
    out = decode_image(encode(img), 16, background=BLUE)
    assert (out.pixels[:, :8] == BLUE).all()
    assert (out.pixels[:, 8:] == (200, 200, 200)).all()


def test_animated_gif_uses_first_frame():
    frames = [solid(RED), solid(BLUE), solid(GREEN)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    out = decode_image(data, 16)
    assert (out.pixels == RED).all()
    assert "animated:first-frame" in out.conversions


def test_still_gif_is_not_reported_as_animated():
    out = decode_image(encode(solid(BLUE), "GIF"), 16)
    assert (out.pixels == BLUE).all()
    assert "animated:first-frame" not in out.conversions


@pytest.mark.parametrize("orientation, top, bottom", [
    (6, RED, BLUE),  # turn 90 degrees clockwise: the left (red) half goes on top
    (8, BLUE, RED),  # turn 90 degrees counter-clockwise: the left (red) half goes to the bottom
])
def test_exif_rotated_jpeg_is_turned_upright(orientation, top, bottom):
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(halves(RED, BLUE, w=64, h=32), "JPEG", exif=exif.tobytes(), quality=95)
    out = decode_image(data, 64)
    px = out.pixels
    # upright it is 32 wide and 64 tall, so it is padded left and right
    assert close(px[4, 32], top) and close(px[20, 32], top)
    assert close(px[44, 32], bottom) and close(px[60, 32], bottom)
    assert (px[:, :14] == WHITE).all() and (px[:, 50:] == WHITE).all()
    assert "exif-rotated" in out.conversions
    assert "padded-to-square" in out.conversions


def test_jpeg_without_rotation_is_not_reported_rotated():
    exif = Image.Exif()
    exif[0x0112] = 1
    out = decode_image(encode(halves(RED, BLUE, w=64, h=64), "JPEG", exif=exif.tobytes(), quality=95), 64)
    assert close(out.pixels[32, 4], RED) and close(out.pixels[32, 60], BLUE)
    assert "exif-rotated" not in out.conversions


# --------------------------------------------------------------------------- alpha, padding, resizing


def _half_transparent() -> Image.Image:
    """Left half opaque red, right half fully transparent green."""
    a = np.zeros((32, 32, 4), np.uint8)
    a[:, :16] = (*RED, 255)
    a[:, 16:] = (*GREEN, 0)
    return Image.fromarray(a, "RGBA")


@pytest.mark.parametrize("kwargs, background", [({}, WHITE), ({"background": BLACK}, BLACK),
                                                ({"background": (10, 20, 30)}, (10, 20, 30))])
def test_rgba_is_composited_onto_background(kwargs, background):
    out = decode_image(encode(_half_transparent()), 32, **kwargs)
    assert (out.pixels[:, :16] == RED).all()
    assert (out.pixels[:, 16:] == background).all()
    assert out.conversions == []


def test_semi_transparent_pixels_are_blended():
    out = decode_image(encode(solid((255, 0, 0, 128), mode="RGBA")), 16)
    r, g, b = (int(v) for v in out.pixels[8, 8])
    assert r == 255 and abs(g - 127) <= 2 and abs(b - 127) <= 2


def test_resizing_does_not_bleed_transparent_colours():
    """Resized in premultiplied alpha: the green of invisible pixels must not leak into the edge."""
    out = decode_image(encode(_half_transparent()), 12, background=BLACK)
    assert out.pixels[..., 1].max() <= 3
    assert out.pixels[:, 0, 0].min() > 200 and (out.pixels[:, -1] <= 3).all()


@pytest.mark.parametrize("background", [WHITE, BLUE])
def test_wide_image_is_padded_not_stretched(background):
    out = decode_image(encode(solid(RED, (64, 32))), 64, background=background)
    px = out.pixels
    assert (px[:16] == background).all() and (px[48:] == background).all()
    assert (px[16:48] == RED).all()
    assert "padded-to-square" in out.conversions


def test_tall_image_is_padded_left_and_right():
    px = decode_image(encode(solid(RED, (20, 60))), 60).pixels
    assert (px[:, :20] == WHITE).all() and (px[:, 40:] == WHITE).all()
    assert (px[:, 20:40] == RED).all()


def test_padding_survives_resizing():
    out = decode_image(encode(solid(RED, (64, 32))), 32)
    px = out.pixels
    assert px.shape == (32, 32, 3)
    # Lanczos rings by a level or two near the edge, but the bands stay white and red
    assert all(close(p, WHITE, tol=4) for p in np.concatenate([px[:6], px[26:]]).reshape(-1, 3))
    assert all(close(p, RED, tol=4) for p in px[10:22].reshape(-1, 3))


def test_resize_down_gives_uint8_square():
    out = decode_image(noisy_png(64), 32)
    assert out.pixels.shape == (32, 32, 3) and out.pixels.dtype == np.uint8
    assert out.conversions == []


def test_same_size_opaque_rgb_is_unchanged():
    rng = np.random.default_rng(5)
    original = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    out = decode_image(encode(Image.fromarray(original, "RGB")), 64)
    np.testing.assert_array_equal(out.pixels, original)
    assert out.conversions == []


def test_solid_colour_survives_upscaling():
    out = decode_image(encode(solid(BLUE, (8, 8))), 64)
    assert out.pixels.shape == (64, 64, 3)
    assert (out.pixels == BLUE).all()


# --------------------------------------------------------------------------- colours, grids, tensors


@pytest.mark.parametrize("spec, rgb", [("white", WHITE), ("#ff0000", RED), ("0,255,0", GREEN),
                                       (" 1, 2, 3 ", (1, 2, 3)), ("#0000FF", BLUE), ("black", BLACK)])
def test_parse_color(spec, rgb):
    assert parse_color(spec) == rgb


@pytest.mark.parametrize("spec", ["notacolour", "1,2", "256,0,0", "-1,0,0", "a,b,c", ""])
def test_parse_color_rejects_nonsense(spec):
    with pytest.raises(EmojirayError) as info:
        parse_color(spec)
    message = str(info.value)
    assert message and "\n" not in message
    assert "colour" in message


@pytest.mark.parametrize("n, ncols, shape", [
    (1, 1, (12, 12, 3)),
    (4, 2, (22, 22, 3)),
    (5, 3, (22, 32, 3)),
    (3, 8, (12, 82, 3)),
    (0, 4, (12, 42, 3)),
])
def test_grid_shape(n, ncols, shape):
    out = grid(np.zeros((n, 8, 8, 3), np.uint8), ncols)
    assert out.shape == shape and out.dtype == np.uint8


def test_grid_places_images_row_major_with_padding():
    images = np.stack([np.full((4, 6, 3), v, np.uint8) for v in (10, 20, 30)])
    out = grid(images, ncols=2, pad=1, pad_value=200)
    assert out.shape == (2 * 5 + 1, 2 * 7 + 1, 3)
    assert (out[1:5, 1:7] == 10).all()
    assert (out[1:5, 8:14] == 20).all()
    assert (out[6:10, 1:7] == 30).all()
    assert (out[6:10, 8:14] == 200).all()  # empty cell
    assert (out[0] == 200).all() and (out[:, 7] == 200).all()


def test_model_input_round_trip():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    batch = rng.integers(0, 256, (3, 8, 10, 3), dtype=np.uint8)
    batch[0, 0, 0] = (0, 128, 255)
    x = to_model_input(torch.from_numpy(batch))
    assert x.shape == (3, 3, 8, 10) and x.dtype == torch.float32
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0
    assert x[0, :, 0, 0].tolist() == pytest.approx([-1.0, 128 / 127.5 - 1, 1.0], abs=1e-6)
    back = from_model_output(x)
    assert isinstance(back, np.ndarray) and back.dtype == np.uint8
    np.testing.assert_array_equal(back, batch)
    plain = to_model_input(torch.from_numpy(batch), channels_last=False)
    assert plain.is_contiguous()
    np.testing.assert_array_equal(from_model_output(plain), batch)


def test_model_output_is_clamped():
    torch = pytest.importorskip("torch")
    x = torch.tensor([-3.0, -1.0, 0.0, 1.0, 5.0]).view(1, 1, 1, 5).expand(1, 3, 1, 5)
    assert from_model_output(x)[0, 0, :, 0].tolist() == [0, 0, 128, 255, 255]


def test_long_thin_image_is_not_padded_at_full_resolution(monkeypatch):
    w, h, size = 4000, 2, 16
    data = encode(solid(RED, (w, h)))
    original_new = Image.new

    def guarded_new(mode, new_size, *args, **kwargs):
        assert new_size[0] * new_size[1] <= 4 * max(w * h, size * size), f"allocates a {new_size} image"
        return original_new(mode, new_size, *args, **kwargs)

    monkeypatch.setattr(Image, "new", guarded_new)
    out = decode_image(data, size)
    assert out.pixels.shape == (size, size, 3)
    assert "padded-to-square" in out.conversions
