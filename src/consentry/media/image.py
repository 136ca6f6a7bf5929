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

import numpy as np
from PIL import Image, ImageCms, ImageFile, ImageOps

from consentry.config import MediaLimits
from consentry.errors import CorruptMedia, MediaTooLarge, UnsupportedMedia
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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)
            if draft_min_side > 0 and img.format == "JPEG":
                w, h = img.size
                scale = max(1, min(w, h) // draft_min_side)
                if scale >= 2:
                    img.draft(img.mode, (w // scale, h // scale))
            img.load()
            img = _exif_transpose(img)
            rgb = to_rgb(img)
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
    try:
        out = ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - malformed EXIF must not stop hashing; keep pixels as stored
        return img
    return out if out is not None else img


def _composite_on_white(rgba: Image.Image) -> Image.Image:
    rgba = rgba.convert("RGBA") if rgba.mode != "RGBA" else rgba
    background = Image.new("RGBA", rgba.size, WHITE + (255,))
    background.alpha_composite(rgba)
    return background.convert("RGB")


def _scale_to_8bit(arr: np.ndarray, full_scale: float) -> np.ndarray:
    arr = arr.astype(np.float64)
    out = np.rint(arr * (255.0 / full_scale))
    return np.clip(out, 0, 255).astype(np.uint8)


def _grey_array_to_rgb(arr8: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(arr8)).convert("RGB")


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
    if mode.startswith("I;16"):
        # 16-bit grey: map 0..65535 onto 0..255 (Pillow's convert would clip at 255).
        arr = np.asarray(img).astype(np.uint32)
        return _grey_array_to_rgb(_scale_to_8bit(arr, 65535.0))
    if mode == "I":
        arr = np.asarray(img).astype(np.int64)
        lo, hi = int(arr.min()), int(arr.max())
        if lo >= 0 and hi <= 255:
            full = 255.0
        elif lo >= 0 and hi <= 65535:
            full = 65535.0  # 16-bit samples stored in a 32-bit mode (PNG/TIFF)
        else:
            arr = arr - lo
            full = float(max(hi - lo, 1))
        return _grey_array_to_rgb(_scale_to_8bit(arr, full))
    if mode == "F":
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64))
        hi = float(arr.max()) if arr.size else 0.0
        lo = float(arr.min()) if arr.size else 0.0
        if lo >= 0.0 and hi <= 1.0:
            full = 1.0
        elif lo >= 0.0 and hi <= 255.0:
            full = 255.0
        else:
            arr = arr - lo
            full = max(hi - lo, 1e-9)
        return _grey_array_to_rgb(_scale_to_8bit(arr, full))
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
