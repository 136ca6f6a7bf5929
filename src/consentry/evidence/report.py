"""A one-file evidence report (HTML, or PDF via WeasyPrint) that a victim, lawyer or platform can
read and hand on: the file's hashes, the verdict in plain words, each piece of evidence with its
strength and the raw excerpt behind it, what the findings do not show, the tool version and the
UTC time.

The picture itself appears only as a small thumbnail that is blurred and greyscaled *in the file*
(Pillow), not by CSS, so no viewer, PDF renderer or copy of the report can un-blur it; the clear
thumbnail is included only with ``show_image=True``.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from PIL import Image

from consentry.config import MediaLimits
from consentry.evidence.assess import VERDICT_LABELS, Assessment
from consentry.media.thumbnail import thumbnail_jpeg

TEMPLATES = Path(__file__).resolve().parent / "templates"
THUMB_SIDE = 160
_env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]))
_env.filters["pretty"] = lambda v: json.dumps(v, indent=2, ensure_ascii=False, sort_keys=True, default=str)

STRENGTH_WORDS = {
    "proof": "proof (valid signature under a trusted list)",
    "strong": "strong (specific marker, not signed)",
    "weak": "weak",
}


def thumbnail_data_uri(image: Image.Image, *, clear: bool = False) -> str:
    """A small JPEG data URI of ``image``; blurred and greyscale unless ``clear``."""
    jpeg = thumbnail_jpeg(image, THUMB_SIDE, blurred=not clear)
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def _excerpt(details: dict[str, Any], limit: int = 4000) -> str:
    text = json.dumps(details, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= limit else text[:limit] + "\n… (truncated)"


#: Side of the forensic views: blurred ones as small as the thumbnail, clear ones larger.
VIEW_SIDE_CLEAR = 360
VIEW_SIDE_SPECTRUM = 240
#: The file's bytes are passed on for the JPEG tables only up to this size.
MAX_FORENSIC_BYTES = 64 * 1024 * 1024


def forensic_context(image: Image.Image, data: bytes | None = None, *, show_image: bool = False) -> list[dict[str, Any]]:
    """The forensic views as template rows.  A view that shows the content (ELA, noise residual)
    follows the thumbnail's policy: blurred and greyscale in its pixels unless ``show_image``; the
    magnitude spectrum does not show the content and is always clear."""
    from consentry.evidence.forensics import forensic_views

    rows = []
    for v in forensic_views(image, data):
        uri = None
        if v.image is not None:
            if v.shows_content:
                jpeg = thumbnail_jpeg(v.image, VIEW_SIDE_CLEAR if show_image else THUMB_SIDE, blurred=not show_image)
            else:
                jpeg = thumbnail_jpeg(v.image, VIEW_SIDE_SPECTRUM, quality=85)
            uri = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
        table = None
        if v.key == "jpeg":
            luma = v.details["tables"].get("0")
            table = [luma[r * 8:(r + 1) * 8] for r in range(8)] if luma else None
        rows.append({"key": v.key, "title": v.title, "note": v.note, "uri": uri, "table": table,
                     "blurred": v.shows_content and not show_image, "details": v.details})
    return rows


def render_html(assessment: Assessment, *, image: Image.Image | None = None, show_image: bool = False,
                data: bytes | None = None) -> str:
    thumb = thumbnail_data_uri(image, clear=show_image) if image is not None else None
    forensics: list[dict[str, Any]] = []
    if image is not None:
        try:
            forensics = forensic_context(image, data, show_image=show_image)
        except Exception:  # noqa: BLE001 - the views are extras: never lose the report over them
            forensics = []
    items = [
        {
            "source": e.source, "claim": e.claim, "strength": e.strength,
            "strength_words": STRENGTH_WORDS[e.strength], "summary": e.summary,
            "caveats": list(e.caveats), "excerpt": _excerpt(e.details),
        }
        for e in assessment.evidence
    ]
    return _env.get_template("report.html").render(
        a=assessment, verdict_label=VERDICT_LABELS[assessment.verdict], items=items, thumb=thumb,
        show_image=show_image, forensics=forensics,
    )


def write_report(assessment: Assessment, out: str | Path, *, source: str | Path | None = None,
                 show_image: bool = False, limits: MediaLimits | None = None) -> Path:
    """Write ``out`` as HTML (``.html``/``.htm``) or PDF (``.pdf``)."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".html", ".htm", ".pdf"):
        raise ValueError(f"report must end in .html or .pdf, not {out.suffix or '(none)'}")
    image = None
    data = None
    if source is not None and assessment.content_type == "photo" and assessment.error is None:
        from consentry.media.content import Content

        try:
            content = Content.from_path(source, limits or MediaLimits())
            image = content.image()
        except Exception:  # noqa: BLE001 - a report without a thumbnail is still a report
            image = None
        # the bytes already read for the picture, for the JPEG quantisation tables and the
        # double-compression estimate
        if image is not None and content.data is not None and len(content.data) <= MAX_FORENSIC_BYTES:
            data = content.data
    html = render_html(assessment, image=image, show_image=show_image, data=data)
    return write_html_or_pdf(html, out)


def write_html_or_pdf(html: str, out: Path) -> Path:
    """Write a self-contained report as ``out`` (``.pdf`` through WeasyPrint, else the HTML)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".pdf":
        from weasyprint import HTML

        from consentry.media.image import strict_truncation

        strict_truncation()  # weasyprint's import turned Pillow's truncated-file check off
        HTML(string=html, base_url=None).write_pdf(str(out))
    else:
        out.write_text(html, encoding="utf-8")
    return out
