"""Small JPEG thumbnails of decoded images: for reports, scans and the review console.

``blurred=True`` greyscales and blurs the pixels themselves, so no viewer, PDF renderer or copy
can undo it (CSS filters can be switched off; this cannot).
"""

from __future__ import annotations

import io

from PIL import Image, ImageFilter, ImageOps


def thumbnail_jpeg(image: Image.Image, side: int, *, blurred: bool = False, quality: int = 70) -> bytes:
    """``image`` shrunk to fit ``side`` x ``side`` as JPEG bytes; greyscale and blurred if asked."""
    factor = max(1, max(image.size) // (2 * side))
    thumb = image.reduce(factor) if factor > 1 else image.copy()  # box filter first: cheap
    thumb = thumb.convert("RGB")
    thumb.thumbnail((side, side), Image.Resampling.BILINEAR)
    if blurred:
        thumb = ImageOps.grayscale(thumb).filter(ImageFilter.GaussianBlur(radius=max(4, max(thumb.size) // 20)))
    buf = io.BytesIO()
    thumb.save(buf, "JPEG", quality=quality)
    return buf.getvalue()
