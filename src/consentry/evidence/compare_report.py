"""The derivation report of ``consentry compare --report``: HTML, or PDF via WeasyPrint.

It shows the person's ORIGINAL with the differing regions outlined (red) and the part of it the
suspect shows (blue), the figures in plain words, and the SUSPECT only as a small thumbnail that is
blurred and greyscaled in its pixels (clear only with ``show_image=True``).

For two videos: one representative frame of the SOURCE with the regions that differ consistently
across frames outlined, the frame pairs in a table, and one suspect frame only as that thumbnail.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
from jinja2 import Environment, FileSystemLoader, select_autoescape
from PIL import Image, ImageDraw

from consentry.config import MediaLimits
from consentry.evidence.derivation import DIFF_SIDE, Derivation, VideoDerivation
from consentry.evidence.report import thumbnail_data_uri, write_html_or_pdf

TEMPLATES = Path(__file__).resolve().parent / "templates"
ORIGINAL_SIDE = 480
OUTLINE = (230, 20, 20)
FOOTPRINT = (30, 90, 230)
_env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]))


def _uri(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def outlined_original(original: Image.Image, d: Derivation, side: int = ORIGINAL_SIDE) -> Image.Image:
    """``original`` shrunk to ``side`` with the differing regions outlined and the suspect's
    footprint drawn."""
    import cv2

    img = original.convert("RGB")
    img.thumbnail((side, side), Image.Resampling.BILINEAR)
    ow, oh = original.size
    f = img.width / ow  # display pixels per original pixel
    draw = ImageDraw.Draw(img)
    width = max(2, img.width // 160)
    a = d.alignment
    if a is not None and a.ok and a.homography is not None and d.suspect_size:
        sw, sh = d.suspect_size
        quad = cv2.perspectiveTransform(np.array([[[0, 0], [sw, 0], [sw, sh], [0, sh]]], np.float64),
                                        a.homography)[0] * f
        draw.line([tuple(p) for p in quad] + [tuple(quad[0])], fill=FOOTPRINT, width=max(1, width // 2))
    if d.mask is not None and d.mask.any():
        dfac = max(ow, oh) / DIFF_SIDE if max(ow, oh) > DIFF_SIDE else 1.0
        contours, _ = cv2.findContours(d.mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        for c in contours:
            pts = [(float(x) * dfac * f, float(y) * dfac * f) for x, y in c[:, 0, :]]
            if len(pts) >= 2:
                draw.line(pts + [pts[0]], fill=OUTLINE, width=width, joint="curve")
    return img


def render_compare_html(d: Derivation, *, original: Image.Image | None = None, suspect: Image.Image | None = None,
                        show_image: bool = False) -> str:
    orig_uri = None
    if original is not None:
        buf = io.BytesIO()
        outlined_original(original, d).save(buf, "JPEG", quality=85)
        orig_uri = _uri(buf.getvalue())
    thumb = thumbnail_data_uri(suspect, clear=show_image) if suspect is not None else None
    a = d.alignment
    return _env.get_template("compare.html").render(
        d=d, r=d.to_dict(), a=a, original_image=orig_uri, thumb=thumb, show_image=show_image,
        pct=int(round(100 * d.share_derived)),
    )


def outlined_source_frame(d: VideoDerivation, side: int = ORIGINAL_SIDE) -> Image.Image | None:
    """The representative source frame with the regions that differ consistently outlined."""
    import cv2

    if d.source_frame is None:
        return None
    img = d.source_frame.convert("RGB")
    img.thumbnail((side, side), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(img)
    width = max(2, img.width // 160)
    if d.stable_mask is not None and d.stable_mask.any():
        f = img.width / d.stable_mask.shape[1]  # display pixels per mask pixel
        contours, _ = cv2.findContours(d.stable_mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        for c in contours:
            pts = [(float(x) * f, float(y) * f) for x, y in c[:, 0, :]]
            if len(pts) >= 2:
                draw.line(pts + [pts[0]], fill=OUTLINE, width=width, joint="curve")
    return img


def render_compare_video_html(d: VideoDerivation, *, show_image: bool = False) -> str:
    """The video report: one source frame outlined; the suspect only as a (blurred) thumbnail."""
    frame_uri = None
    frame = outlined_source_frame(d)
    if frame is not None:
        buf = io.BytesIO()
        frame.save(buf, "JPEG", quality=85)
        frame_uri = _uri(buf.getvalue())
    thumb = thumbnail_data_uri(d.suspect_frame, clear=show_image) if d.suspect_frame is not None else None
    return _env.get_template("compare_video.html").render(
        d=d, r=d.to_dict(), original_image=frame_uri, thumb=thumb, show_image=show_image,
        pct=int(round(100 * d.share_aligned)),
    )


def write_compare_report(d: Derivation | VideoDerivation, out: str | Path, *, original: str | Path | None = None,
                         suspect: str | Path | None = None, show_image: bool = False,
                         limits: MediaLimits | None = None) -> Path:
    """Write ``out`` as HTML (``.html``/``.htm``) or PDF (``.pdf``); the pictures are decoded again
    from ``original`` and ``suspect`` (a report without them is still a report)."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".html", ".htm", ".pdf"):
        raise ValueError(f"report must end in .html or .pdf, not {out.suffix or '(none)'}")
    if isinstance(d, VideoDerivation):  # the frames were kept (reduced) by the comparison
        return write_html_or_pdf(render_compare_video_html(d, show_image=show_image), out)
    images = []
    for p in (original, suspect):
        img = None
        if p is not None and d.error is None:
            from consentry.media.content import Content

            try:
                img = Content.from_path(p, limits or MediaLimits()).image()
            except Exception:  # noqa: BLE001 - the figures stand without the picture
                img = None
        images.append(img)
    html = render_compare_html(d, original=images[0], suspect=images[1], show_image=show_image)
    return write_html_or_pdf(html, out)
