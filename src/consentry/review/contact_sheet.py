"""A video's first look in the review console: a contact sheet of blurred, greyscale keyframes.

Until a reviewer reveals a video (a logged reveal), the console shows this sheet instead of the
video: a few frames spread over its length, shrunk, greyscaled and blurred on the server, tiled
into one JPEG. The clear video (muted) is fetched only on reveal.
"""

from __future__ import annotations

import os
import tempfile

from PIL import Image

from consentry.config import MediaLimits

SHEET_FRAMES = 6
SHEET_COLUMNS = 3


def contact_sheet_jpeg(data: bytes, limits: MediaLimits, side: int = 480, frames: int = SHEET_FRAMES) -> bytes:
    """A blurred, greyscale contact sheet (JPEG) of ``frames`` frames spread over the video."""
    from consentry.media.thumbnail import thumbnail_jpeg
    from consentry.media.video import iter_frames, probe_video

    fd, path = tempfile.mkstemp(suffix=".video")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        info = probe_video(path, limits)
        step = max(info.duration / max(frames, 1), 0.04) if info.duration > 0 else 1.0
        picked: list[Image.Image] = []
        for frame in iter_frames(path, limits, seconds_per_frame=step):
            picked.append(frame.image)
            if len(picked) >= frames:
                break
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
    if not picked:
        from consentry.errors import CorruptMedia

        raise CorruptMedia("no frame could be decoded")
    cols = min(SHEET_COLUMNS, len(picked))
    rows = (len(picked) + cols - 1) // cols
    cell = max(32, side // cols)
    sheet = Image.new("RGB", (cols * cell, rows * cell), (40, 40, 40))
    for n, img in enumerate(picked):
        thumb = img.convert("RGB")
        thumb.thumbnail((cell - 4, cell - 4), Image.Resampling.BILINEAR)
        x = (n % cols) * cell + (cell - thumb.width) // 2
        y = (n // cols) * cell + (cell - thumb.height) // 2
        sheet.paste(thumb, (x, y))
    return thumbnail_jpeg(sheet, side, blurred=True, quality=60)
