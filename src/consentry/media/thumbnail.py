"""Small JPEG thumbnails of decoded images: for reports, scans and the review console.

``blurred=True`` greyscales and blurs the pixels themselves, so no viewer, PDF renderer or copy
can undo it (CSS filters can be switched off; this cannot).
"""

from __future__ import annotations

import io

from PIL import Image, ImageFilter, ImageOps


#: A box reduction alone is enough when it lands at least this close to ``side``.
_BOX_ONLY = 0.75


def thumbnail_jpeg(image: Image.Image, side: int, *, blurred: bool = False, quality: int = 70) -> bytes:
    """``image`` shrunk to fit ``side`` x ``side`` as JPEG bytes; greyscale and blurred if asked.

    An integer box reduction (averages whole pixel blocks: cheap, and no aliasing) brings most
    pictures to between 3/4 of ``side`` and ``side`` by itself; otherwise the picture is box-reduced
    to under twice ``side`` and resampled. The source image is never copied."""
    long_side = max(image.size)
    k = -(-long_side // side)  # the smallest factor that fits
    if k > 1 and long_side / k >= _BOX_ONLY * side:
        thumb = image.reduce(k)
    else:
        factor = max(1, long_side // (2 * side))
        thumb = image.reduce(factor) if factor > 1 else image
        if max(thumb.size) > side:
            w, h = thumb.size
            scale = side / max(w, h)
            thumb = thumb.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR)
    if thumb.mode != "RGB":
        thumb = thumb.convert("RGB")
    if blurred:
        thumb = ImageOps.grayscale(thumb).filter(ImageFilter.GaussianBlur(radius=max(4, max(thumb.size) // 20)))
    buf = io.BytesIO()
    thumb.save(buf, "JPEG", quality=quality)
    return buf.getvalue()
