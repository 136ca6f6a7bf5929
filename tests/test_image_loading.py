"""Safe image decoding: every format and mode to RGB, orientation, limits, bad input."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from consentry.config import MediaLimits
from consentry.errors import CorruptMedia, MediaTooLarge, UnsupportedMedia
from consentry.media.image import load_image, to_rgb
from consentry.signals.pdq import pdq_from_image
from consentry.signals._hex import hamming_hex
from imagegen import encode, scene


def _dist(a: Image.Image, b: Image.Image) -> int:
    return hamming_hex(pdq_from_image(a)[0], pdq_from_image(b)[0])


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "HEIF", "AVIF"])
def test_every_format_decodes_to_rgb_and_hashes_like_the_original(fmt, limits):
    import pillow_heif

    pillow_heif.register_heif_opener()
    original = scene(320, 240, seed=3)
    kw = {"quality": 95} if fmt in ("JPEG", "WEBP", "HEIF", "AVIF") else {}
    img = load_image(encode(original, fmt, **kw), limits)
    assert img.mode == "RGB" and img.size == original.size
    assert _dist(img, original) <= 8, fmt  # GIF quantises to 256 colours


def test_gif_first_frame_is_used(limits):
    a, b = scene(96, 64, seed=1), Image.new("RGB", (96, 64), (0, 0, 0))
    buf = io.BytesIO()
    a.save(buf, format="GIF", save_all=True, append_images=[b], duration=100)
    img = load_image(buf.getvalue(), limits)
    assert np.asarray(img).mean() > 40  # the scene, not the black second frame


def test_exif_orientation_is_applied(limits):
    original = scene(200, 100, seed=2)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display needs a 90° clockwise turn
    stored = original.transpose(Image.Transpose.ROTATE_90)
    data = encode(stored, "JPEG", quality=95, exif=exif.tobytes())
    img = load_image(data, limits)
    assert img.size == (200, 100)
    assert _dist(img, original) <= 8


@pytest.mark.parametrize("mode", ["CMYK", "P", "1", "L", "LA", "RGBA", "I;16", "I", "F", "PA", "LAB"])
def test_every_mode_converts_close_to_the_rgb_original(mode):
    original = scene(256, 192, seed=5)
    grey_like = mode in ("1", "L", "LA", "I;16", "I", "F")
    reference = original.convert("L").convert("RGB") if grey_like else original
    if mode == "I;16":
        arr16 = (np.asarray(original.convert("L")).astype(np.uint16) * 257)
        img = Image.fromarray(arr16)
        assert img.mode == "I;16"
    elif mode == "I":
        img = Image.fromarray(np.asarray(original.convert("L")).astype(np.int32) * 257)
    elif mode == "F":
        img = Image.fromarray(np.asarray(original.convert("L")).astype(np.float32) / 255.0)
    elif mode == "PA":
        img = original.convert("P").convert("PA")
    elif mode == "LAB":
        from PIL import ImageCms

        t = ImageCms.buildTransform(ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"), "RGB", "LAB")
        img = ImageCms.applyTransform(original, t)
    else:
        img = original.convert(mode)
    rgb = to_rgb(img)
    assert rgb.mode == "RGB"
    limit = 40 if mode == "1" else 8  # 1-bit dithering loses real detail
    assert _dist(rgb, reference) <= limit, mode
    assert pdq_from_image(rgb)[1] >= 50


def test_alpha_is_composited_on_white():
    rgba = Image.new("RGBA", (64, 64), (255, 0, 0, 0))  # fully transparent red
    assert to_rgb(rgba).getpixel((10, 10)) == (255, 255, 255)
    half = Image.new("RGBA", (8, 8), (0, 0, 0, 128))
    assert to_rgb(half).getpixel((1, 1)) == (127, 127, 127)
    p = Image.new("P", (8, 8), 0)
    p.putpalette([0, 0, 0, 10, 20, 30])
    p.info["transparency"] = 0
    assert to_rgb(p).getpixel((0, 0)) == (255, 255, 255)


def test_sixteen_bit_grey_is_scaled_not_clipped():
    arr = np.full((16, 16), 32896, dtype=np.uint16)  # mid grey in 16 bits
    assert to_rgb(Image.fromarray(arr)).getpixel((0, 0)) == (128, 128, 128)


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_before_decoding():
    with pytest.raises(MediaTooLarge, match="pixel"):
        load_image(_png_header_only(60000, 60000), MediaLimits())


def test_pixel_and_byte_limits_are_configurable():
    data = encode(scene(200, 100), "PNG")
    with pytest.raises(MediaTooLarge):
        load_image(data, MediaLimits(max_pixels=10_000))
    with pytest.raises(MediaTooLarge):
        load_image(data, MediaLimits(max_bytes=100))
    assert load_image(data, MediaLimits(max_pixels=20_000)).size == (200, 100)


@pytest.mark.parametrize(
    "data,error",
    [
        (b"", CorruptMedia),
        (b"not an image at all", UnsupportedMedia),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 50, CorruptMedia),  # JPEG magic, garbage after
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 30, CorruptMedia),
        (b"GIF89a" + b"\xff" * 20, CorruptMedia),
    ],
)
def test_bad_bytes_give_clear_errors(data, error, limits):
    with pytest.raises(error):
        load_image(data, limits)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_truncated_files_are_errors_not_grey_padding(fmt, limits):
    data = encode(scene(320, 240, seed=9), fmt)
    with pytest.raises(CorruptMedia):
        load_image(data[: len(data) // 2], limits)


def test_truncated_files_stay_errors_after_weasyprint_is_imported(limits):
    """WeasyPrint turns Pillow's process-wide LOAD_TRUNCATED_IMAGES on when imported (PDF
    reports): a truncated upload must still be an error afterwards, never padded with grey."""
    import weasyprint  # noqa: F401
    from PIL import ImageFile

    ImageFile.LOAD_TRUNCATED_IMAGES = True  # as weasyprint's import leaves it
    try:
        data = encode(scene(320, 240, seed=9), "PNG")
        with pytest.raises(CorruptMedia):
            load_image(data[: len(data) // 2], limits)
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False


@pytest.mark.parametrize("size", [(4000, 3000), (800, 600), (650, 200), (321, 321), (161, 90), (120, 80), (90, 400)])
def test_thumbnails_fit_the_side_without_touching_the_source(size):
    from consentry.media.thumbnail import thumbnail_jpeg

    rng = np.random.default_rng(size[0])
    src = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")
    before = src.tobytes()
    with Image.open(io.BytesIO(thumbnail_jpeg(src, 160))) as t:
        assert t.format == "JPEG" and t.mode == "RGB"
        assert max(t.size) <= 160
        if max(size) >= 160:
            assert max(t.size) >= 120  # a box reduction alone never lands far below the side
        else:
            assert t.size == size  # never enlarged
        # the aspect ratio is kept (to a pixel)
        assert abs(t.size[0] / t.size[1] - size[0] / size[1]) < 2 / min(t.size)
    assert src.tobytes() == before and src.size == size
    with Image.open(io.BytesIO(thumbnail_jpeg(src, 160, blurred=True))) as t:
        assert t.mode == "L" and max(t.size) <= 160
