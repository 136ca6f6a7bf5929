"""The scan report as one self-contained HTML file, and as a PDF (WeasyPrint).

Self-contained: inline CSS, a few lines of inline JavaScript, an inline SVG bar chart and
thumbnails as small ``data:`` URIs; no external resource of any kind. Thumbnails are shown
greyscale and blurred until an examiner reveals one (click, Enter or Space on it). The PDF has
no images unless ``include_thumbnails`` is set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consentry.scan.triage import Triage

TEMPLATES = Path(__file__).parent / "templates"
#: rows shown per section (everything is in results.csv / results.jsonl)
SECTION_LIMIT = 2000


@dataclass
class ReportContext:
    tool: str
    version: str
    examiner: str | None
    case_id: str | None
    started_at: str | None
    finished_at: str | None
    inputs: list[str]
    matching: str
    host: str
    rows: list[dict[str, Any]] = field(repr=False, default_factory=list)
    triage: Triage | None = None
    genai: Any = None  # consentry.scan.genai.summary.GenAIReport
    show_prompts: bool = False  # prompts in clear (--show-prompts); otherwise withheld


def bar_chart(counts: dict[str, int]) -> dict[str, Any]:
    """Geometry of the summary bar chart (drawn as inline SVG by the template)."""
    bars = [
        ("Photos", counts.get("photos", 0), "#4c78a8"),
        ("Videos", counts.get("videos", 0), "#72b7b2"),
        ("Other files", counts.get("other", 0), "#9d9d9d"),
        ("Bank matches", counts.get("matched", 0), "#e45756"),
        ("AI evidence", counts.get("with_ai_evidence", 0), "#b279a2"),
        ("Known good", counts.get("known_good", 0), "#54a24b"),
        ("Exact duplicates", counts.get("duplicate_files", 0), "#f58518"),
        ("Near-duplicates", counts.get("near_duplicate_files", 0), "#eeca3b"),
        ("Errors", counts.get("errors", 0), "#333333"),
    ]
    top = max([v for _, v, _ in bars] + [1])
    label_w, bar_w, row_h = 130, 340, 24
    out = []
    for i, (label, value, color) in enumerate(bars):
        out.append({"label": label, "value": value, "color": color, "y": 8 + i * row_h,
                    "w": round(bar_w * value / top, 1) if value else 0})
    return {"bars": out, "label_w": label_w, "width": label_w + bar_w + 70,
            "height": 16 + len(bars) * row_h, "row_h": row_h}


def _env():
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["size"] = _human_size
    from consentry.evidence.assess import VERDICT_LABELS

    env.filters["verdict_label"] = lambda code: VERDICT_LABELS.get(code, code)
    from consentry.scan.genai.prompts import shown

    env.filters["prompt_shown"] = lambda text, show=False: shown(text, bool(show))
    return env


def _human_size(n: Any) -> str:
    if not isinstance(n, int):
        return ""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def render(ctx: ReportContext, thumbs: dict[str, str], *, pdf: bool, include_thumbnails: bool = True) -> str:
    tri = ctx.triage
    assert tri is not None
    by_path = {r["path"]: r for r in ctx.rows}
    matched = [r for r in ctx.rows if r.get("matches")]
    return _env().get_template("report.html").render(
        ctx=ctx, t=tri, counts=tri.counts, chart=bar_chart(tri.counts), thumbs=thumbs, pdf=pdf,
        show_images=(not pdf) or include_thumbnails, matched=matched[:SECTION_LIMIT], matched_total=len(matched),
        ai=tri.ai[:SECTION_LIMIT], groups=tri.groups[:SECTION_LIMIT], stacks=tri.stacks[:SECTION_LIMIT],
        errors=tri.errors[:SECTION_LIMIT], limit=SECTION_LIMIT, by_path=by_path, g=ctx.genai,
        show_prompts=ctx.show_prompts,
    )


def _shown_paths(ctx: ReportContext) -> list[str]:
    tri = ctx.triage
    assert tri is not None
    paths = [a.path for a in tri.ai[:SECTION_LIMIT]]
    paths += [r["path"] for r in ctx.rows if r.get("matches")][:SECTION_LIMIT]
    for g in tri.groups[:SECTION_LIMIT]:
        paths += [m.paths[0] for m in g.members]
    return sorted(set(paths))


def write_html(path: Path, ctx: ReportContext, store) -> Path:
    thumbs = store.thumbnails(_shown_paths(ctx))
    path.write_text(render(ctx, thumbs, pdf=False), encoding="utf-8")
    return path


def _data_only_fetcher():
    """A WeasyPrint URL fetcher for ``data:`` URIs only: never the network or the file system."""
    from weasyprint.urls import URLFetcher

    return URLFetcher(allowed_protocols={"data"}, timeout=5)


def write_pdf(path: Path, ctx: ReportContext, store, *, include_thumbnails: bool = False) -> Path:
    import logging

    from weasyprint import HTML
    from consentry.media.image import strict_truncation
    strict_truncation()  # weasyprint's import turned Pillow's truncated-file check off

    thumbs = store.thumbnails(_shown_paths(ctx)) if include_thumbnails else {}
    html = render(ctx, thumbs, pdf=True, include_thumbnails=include_thumbnails)
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    HTML(string=html, url_fetcher=_data_only_fetcher()).write_pdf(str(path))
    return path
