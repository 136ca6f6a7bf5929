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


def render_html(assessment: Assessment, *, image: Image.Image | None = None, show_image: bool = False) -> str:
    thumb = thumbnail_data_uri(image, clear=show_image) if image is not None else None
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
        show_image=show_image,
    )


def write_report(assessment: Assessment, out: str | Path, *, source: str | Path | None = None,
                 show_image: bool = False, limits: MediaLimits | None = None) -> Path:
    """Write ``out`` as HTML (``.html``/``.htm``) or PDF (``.pdf``)."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".html", ".htm", ".pdf"):
        raise ValueError(f"report must end in .html or .pdf, not {out.suffix or '(none)'}")
    image = None
    if source is not None and assessment.content_type == "photo" and assessment.error is None:
        from consentry.media.content import Content

        try:
            image = Content.from_path(source, limits or MediaLimits()).image()
        except Exception:  # noqa: BLE001 - a report without a thumbnail is still a report
            image = None
    html = render_html(assessment, image=image, show_image=show_image)
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".pdf":
        from weasyprint import HTML

        HTML(string=html, base_url=None).write_pdf(str(out))
    else:
        out.write_text(html, encoding="utf-8")
    return out
