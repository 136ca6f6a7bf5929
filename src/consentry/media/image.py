"""Decode untrusted images safely and convert every mode to RGB correctly.

Meta's reference pipeline (python-threatexchange) feeds ``np.asarray(Image.open(...))`` straight
into PDQ, which hashes CMYK JPEGs to the bit complement (C, M, Y read as R, G, B), palette images
as grey indices and 1-bit images as 0/1 values. Here every mode is converted to 8-bit RGB first,
so the same picture hashes the same whatever its storage mode.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from typing import Iterator

import numpy as np
from PIL import Image, ImageCms, ImageFile, ImageOps

from consentry.config import MediaLimits
from consentry.errors import CorruptMedia, MediaTooLarge, UnsupportedMedia
from consentry.media import guard
from consentry.media.sniff import PHOTO, sniff

try:  # HEIC/HEIF (and AVIF on older Pillow) come from pillow-heif
    import pillow_heif

    pillow_heif.register_heif_opener()
    if hasattr(pillow_heif, "register_avif_opener"):  # pillow-heif < 1.0
        pillow_heif.register_avif_opener()
except ImportError:  # pragma: no cover - pillow-heif is a hard dependency
    pillow_heif = None

# Truncated files are errors, never silently padded with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False


def strict_truncation() -> None:
    """Put Pillow back to refusing truncated files. WeasyPrint sets the process-wide
    ``ImageFile.LOAD_TRUNCATED_IMAGES = True`` when it is imported (for its own images): every
    module importing it calls this right after, and every decode here re-asserts it."""
    ImageFile.LOAD_TRUNCATED_IMAGES = False

#: sniffed format -> Pillow plugin names allowed to open it (nothing else is tried).
_PIL_FORMATS = {
    "jpeg": ["JPEG"],
    "png": ["PNG"],
    "gif": ["GIF"],
    "webp": ["WEBP"],
    "bmp": ["BMP"],
    "tiff": ["TIFF"],
    "heif": ["HEIF"],
    "avif": ["AVIF", "HEIF"],
}

WHITE = (255, 255, 255)

#: 16-bit, 32-bit integer and float grey modes: scaled to 8 bits in row strips.
_HIGH_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
#: Pixels per strip when scaling a high-bit image (a strip's float64 copy is ~8 MB).
_STRIP_PIXELS = 1 << 20


def bytes_per_pixel(mode: str) -> int:
    """Bytes a pixel takes in memory once Pillow has decoded an image of this mode."""
    if mode in ("1", "L", "P"):
        return 1
    if mode.startswith("I;16"):
        return 2
    return 4  # RGB and YCbCr/LAB/HSV are stored 4 bytes a pixel too; RGBA, CMYK, LA, PA, I, F


def open_image(data: bytes, limits: MediaLimits) -> Image.Image:
    """Open (header only) after sniffing and checking byte and pixel limits."""
    if len(data) == 0:
        raise CorruptMedia("empty file")
    if len(data) > limits.max_bytes:
        raise MediaTooLarge(f"file is {len(data)} bytes, over the limit of {limits.max_bytes}")
    kind = sniff(data[:512])
    if kind.content_type != PHOTO:
        raise UnsupportedMedia("not a supported image format")
    Image.init()
    formats = [f for f in _PIL_FORMATS[kind.format] if f in Image.OPEN]
    if not formats:
        raise UnsupportedMedia(f"no decoder available for {kind.format}")
    try:
        with warnings.catch_warnings():
            # Our own pixel limit is checked below; Pillow's warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=formats)
    except Image.DecompressionBombError as exc:
        raise MediaTooLarge("image dimensions are over the pixel limit (decompression bomb)") from exc
    except (OSError, SyntaxError, ValueError, struct.error, EOFError, zlib.error) as exc:
        raise CorruptMedia(f"cannot read {kind.format} image: {_short(exc)}") from exc
    width, height = img.size
    if width <= 0 or height <= 0:
        raise CorruptMedia("image has no pixels")
    if width * height > limits.max_pixels:
        raise MediaTooLarge(
            f"image is {width}x{height} = {width * height} pixels, over the limit of "
            f"{limits.max_pixels} (decompression bomb?)"
        )
    decoded = width * height * bytes_per_pixel(img.mode)
    if decoded > limits.max_decoded_bytes:
        raise MediaTooLarge(
            f"image is {width}x{height} in mode {img.mode} and would take {decoded} bytes decoded, "
            f"over the limit of {limits.max_decoded_bytes} (CONSENTRY_MAX_DECODED_BYTES)"
        )
    return img


def load_image(data: bytes, limits: MediaLimits, draft_min_side: int = 0) -> Image.Image:
    """Decode the first frame, apply EXIF orientation and return an 8-bit RGB image.

    ``draft_min_side`` > 0 lets the JPEG decoder scale down by 1/2, 1/4 or 1/8 in the DCT domain
    while both sides stay at least that large: much faster for big photos, at a small PDQ
    distance (measured by ``bench/hash_bench.py``). Off by default: bit-exact interop first.
    """
    img = open_image(data, limits)
    fmt = (img.format or "image").lower()
    try:
        with guard.decoding(limits), warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)
            max_px = limits.max_hash_pixels
            if img.format == "JPEG":
                w, h = img.size
                scale = max(1, min(w, h) // draft_min_side) if draft_min_side > 0 else 1
                if max_px > 0 and w * h > max_px:
                    scale = max(scale, _reduce_factor(w, h, max_px))
                if scale >= 2:
                    img.draft(img.mode, (-(-w // scale), -(-h // scale)))
            strict_truncation()
            img.load()
            guard.check()
            img = _exif_transpose(img)
            # Huge images are box-reduced before any conversion: PDQ takes ~25 bytes a pixel
            img = _reduce_to(img, max_px)
            if img.mode in _HIGH_BIT:
                # scale to 8-bit grey in strips (no whole float copy), drop the source, reduce
                grey = _high_bit_to_grey8(img)
                img = None
                rgb = _reduce_to(grey, max_px).convert("RGB")
            else:
                rgb = _reduce_to(to_rgb(img), max_px)  # P, 1: reduced once converted
    except Image.DecompressionBombError as exc:
        raise MediaTooLarge("image is over the pixel limit (decompression bomb)") from exc
    except MemoryError as exc:
        raise MediaTooLarge("image needs too much memory to decode") from exc
    except (OSError, SyntaxError, ValueError, struct.error, EOFError, zlib.error, IndexError,
            KeyError, TypeError) as exc:
        raise CorruptMedia(f"cannot decode {fmt} image: {_short(exc)}") from exc
    w, h = rgb.size
    if w * h > limits.max_pixels:  # EXIF transpose never grows an image, but be certain
        raise MediaTooLarge("image is over the pixel limit")
    return rgb


def _exif_transpose(img: Image.Image) -> Image.Image:
    """``img`` turned upright by its EXIF orientation, in place: Pillow's default returns a copy
    of every picture, upright or not (a whole second image per file)."""
    try:
        ImageOps.exif_transpose(img, in_place=True)
    except Exception:  # noqa: BLE001 - malformed EXIF must not stop hashing; keep pixels as stored
        pass
    return img


def _composite_on_white(rgba: Image.Image) -> Image.Image:
    rgba = rgba.convert("RGBA") if rgba.mode != "RGBA" else rgba
    background = Image.new("RGBA", rgba.size, WHITE + (255,))
    background.alpha_composite(rgba)
    return background.convert("RGB")


def _scale_to_8bit(arr: np.ndarray, full_scale: float, offset: float = 0.0) -> np.ndarray:
    arr = arr.astype(np.float64)
    if offset:
        arr -= offset
    out = np.rint(arr * (255.0 / full_scale))
    return np.clip(out, 0, 255).astype(np.uint8)


def _strips(img: Image.Image) -> Iterator[tuple[int, np.ndarray]]:
    """(top row, pixel array) of consecutive row strips: never a copy of the whole image."""
    w, h = img.size
    rows = max(1, _STRIP_PIXELS // max(w, 1))
    for y in range(0, h, rows):
        guard.check()
        yield y, np.asarray(img.crop((0, y, w, min(h, y + rows))))


def _high_bit_to_grey8(img: Image.Image) -> Image.Image:
    """16-bit, 32-bit int or float grey -> 8-bit ``L``, in row strips.

    16-bit grey maps 0..65535 onto 0..255 (Pillow's convert would clip at 255); ``I`` is read as
    8-bit or 16-bit samples when its values fit, else stretched; ``F`` as 0..1, 0..255 or
    stretched (NaN is 0).
    """
    mode = img.mode
    out = Image.new("L", img.size)
    offset = 0.0
    if mode.startswith("I;16"):
        full = 65535.0
    else:
        lo, hi = None, None
        for _y, arr in _strips(img):
            if mode == "F":
                arr = np.nan_to_num(arr.astype(np.float64))
            if arr.size:
                a_lo, a_hi = arr.min(), arr.max()
                lo = a_lo if lo is None else min(lo, a_lo)
                hi = a_hi if hi is None else max(hi, a_hi)
        if mode == "I":
            lo, hi = int(lo or 0), int(hi or 0)
            if lo >= 0 and hi <= 255:
                full = 255.0
            elif lo >= 0 and hi <= 65535:
                full = 65535.0  # 16-bit samples stored in a 32-bit mode (PNG/TIFF)
            else:
                offset, full = float(lo), float(max(hi - lo, 1))
        else:
            lo, hi = float(lo or 0.0), float(hi or 0.0)
            if lo >= 0.0 and hi <= 1.0:
                full = 1.0
            elif lo >= 0.0 and hi <= 255.0:
                full = 255.0
            else:
                offset, full = lo, max(hi - lo, 1e-9)
    for y, arr in _strips(img):
        if mode == "F":
            arr = np.nan_to_num(arr.astype(np.float64))
        out.paste(Image.fromarray(np.ascontiguousarray(_scale_to_8bit(arr, full, offset))), (0, y))
    return out


def _reduce_factor(w: int, h: int, max_pixels: int) -> int:
    factor = 1
    while (-(-w // factor)) * (-(-h // factor)) > max_pixels:
        factor += 1
    return factor


#: Modes Pillow's ``reduce`` takes; the others (P, 1, I;16) are reduced after conversion.
_REDUCIBLE = ("L", "LA", "La", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "I", "F")


def _reduce_to(img: Image.Image, max_pixels: int) -> Image.Image:
    """Box-reduce by the smallest integer factor that brings the image to ``max_pixels``."""
    w, h = img.size
    if max_pixels <= 0 or w * h <= max_pixels or img.mode not in _REDUCIBLE:
        return img
    out = img.reduce(_reduce_factor(w, h, max_pixels))
    out.info = dict(img.info)  # keep transparency, EXIF orientation
    return out


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB, compositing transparency on white."""
    mode = img.mode
    if mode == "RGB" and "transparency" not in img.info:
        return img
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        if mode in ("RGBa", "La"):  # premultiplied alpha
            img = img.convert("RGBA")
        return _composite_on_white(img)
    if mode in ("P", "L", "RGB", "1") and "transparency" in img.info:
        return _composite_on_white(img.convert("RGBA"))
    if mode == "P":
        return img.convert("RGB")
    if mode == "1":
        return img.convert("L").convert("RGB")
    if mode == "L":
        return img.convert("RGB")
    if mode in _HIGH_BIT:
        return _high_bit_to_grey8(img).convert("RGB")
    if mode == "CMYK":
        return img.convert("RGB")
    if mode == "LAB":
        transform = ImageCms.buildTransform(
            ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB"
        )
        return ImageCms.applyTransform(img, transform)
    return img.convert("RGB")  # YCbCr, HSV, RGBX, ...


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]
