"""Rendering of :class:`~consentry.reports.transparency.TransparencyFigures`: HTML, PDF and CSV.

The HTML is one self-contained file: inline CSS, charts as inline SVG drawn here on the server
(no script, no external resource, a Content-Security-Policy that allows neither). The PDF is that
HTML printed by WeasyPrint with a fetcher that can only read ``data:`` URIs. The CSV has one row
per figure (``section, metric, dimension, value``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from consentry.reports.transparency import (
    LOCAL_BANKS,
    PERCENTILE_METHOD,
    REMOVAL_DEADLINE_HOURS,
    TransparencyError,
    TransparencyFigures,
)

FORMATS = ("html", "pdf", "csv")
BASENAME = "transparency"
PALETTE = ["#4c78a8", "#e45756", "#72b7b2", "#f58518", "#54a24b", "#b279a2", "#9d9d9d", "#eeca3b"]
REGIME_LABELS = {"take_it_down": "TAKE IT DOWN Act", "dsa_art16": "DSA Art. 16"}
SHORT_REGIME_LABELS = {"take_it_down": "TAKE IT DOWN", "dsa_art16": "DSA Art. 16"}


def parse_formats(text: str) -> list[str]:
    out = []
    for f in (p.strip().lower() for p in text.split(",")):
        if not f:
            continue
        if f not in FORMATS:
            raise TransparencyError(f"unknown format {f!r}: use one or more of {', '.join(FORMATS)}")
        if f not in out:
            out.append(f)
    if not out:
        raise TransparencyError("no format given")
    return out


# ----------------------------------------------------------------------------- charts
def bar_chart(rows: list[tuple[str, list[tuple[str, float, str]]]], *, unit: str = "",
              marker: float | None = None, marker_label: str = "", title: str = "") -> dict[str, Any]:
    """Geometry of a horizontal (optionally stacked) bar chart for the template's SVG.

    ``rows``: ``(label, [(part, value, colour), ...])``; one part per row is a plain bar. A
    ``marker`` draws a dashed vertical line at that value (e.g. the 48-hour deadline)."""
    label_w, bar_w, row_h = 200, 340, 26
    top = max([sum(v for _, v, _ in parts) for _, parts in rows] + [marker or 0, 1e-9])
    scale = bar_w / top
    out = []
    legend: dict[str, str] = {}
    for i, (label, parts) in enumerate(rows):
        y = 8 + i * row_h
        x = float(label_w)
        segs = []
        for part, value, colour in parts:
            w = round(value * scale, 1) if value else 0.0
            segs.append({"x": round(x, 1), "w": w, "colour": colour, "part": part, "value": _fmt(value)})
            x += w
            if len(parts) > 1:
                legend.setdefault(part, colour)
        total = sum(v for _, v, _ in parts)
        out.append({"label": label, "y": y, "segs": segs, "end": round(x, 1),
                    "total": _fmt(total) + (f" {unit}" if unit else "")})
    height = 16 + len(rows) * row_h + (22 if legend or marker is not None else 0)
    return {"rows": out, "label_w": label_w, "row_h": row_h, "width": label_w + bar_w + 110, "height": height,
            "legend": [{"part": p, "colour": c, "x": label_w + i * 110} for i, (p, c) in enumerate(legend.items())],
            "legend_y": 16 + len(rows) * row_h, "title": title,
            "marker": None if marker is None else {"x": round(label_w + marker * scale, 1), "label": marker_label}}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.2f}".rstrip("0").rstrip(".")
    return str(v)


def _regime(r: str) -> str:
    return REGIME_LABELS.get(r, r)


def charts(f: TransparencyFigures) -> dict[str, Any]:
    c: dict[str, Any] = {}
    if f.notices_by_regime:
        c["notices"] = bar_chart(
            [(_regime(r), [("valid", n.get("valid", 0), PALETTE[0]), ("invalid", n.get("invalid", 0), PALETTE[1]),
                           ("incomplete / duplicate", n.get("incomplete", 0) + n.get("duplicate", 0), PALETTE[6])])
             for r, n in sorted(f.notices_by_regime.items())], title="Notices per regime")
    timed = [(r, t) for r, t in sorted(f.removal_by_regime.items()) if t.count]
    if timed:
        rows = []
        for r, t in timed:
            short = SHORT_REGIME_LABELS.get(r, r)[:24]
            rows.append((f"{short}: median", [("median", t.median_hours or 0.0, PALETTE[0])]))
            rows.append((f"{short}: 95th pct.", [("p95", t.p95_hours or 0.0, PALETTE[3])]))
        c["removal"] = bar_chart(rows, unit="h", marker=float(REMOVAL_DEADLINE_HOURS),
                                 marker_label=f"{REMOVAL_DEADLINE_HOURS} h", title="Time to removal (hours)")
    kinds = sorted(set(f.review_matches_by_bank_kind) | set(f.sweep_by_bank_kind))
    if kinds:
        c["kinds"] = bar_chart([(k, [("review queue", f.review_matches_by_bank_kind.get(k, 0), PALETTE[0]),
                                     ("sweeps", f.sweep_by_bank_kind.get(k, 0), PALETTE[2])]) for k in kinds],
                               title="Matches by bank kind")
    exs = sorted(set(f.review_matches_by_exchange) | set(f.sweep_matches_by_exchange),
                 key=lambda e: (e == LOCAL_BANKS, e))
    if exs:
        c["exchanges"] = bar_chart([(e, [("review queue", f.review_matches_by_exchange.get(e, 0), PALETTE[0]),
                                         ("sweeps", f.sweep_matches_by_exchange.get(e, 0), PALETTE[2])])
                                    for e in exs], title="Matches by exchange")
    if f.feedback_sent:
        statuses = sorted({st for v in f.feedback_sent.values() for st in v})
        colours = {st: PALETTE[i % len(PALETTE)] for i, st in enumerate(statuses)}
        c["feedback"] = bar_chart([(e, [(st, v.get(st, 0), colours[st]) for st in statuses])
                                   for e, v in sorted(f.feedback_sent.items())], title="Feedback sent to exchanges")
    return c


# ----------------------------------------------------------------------------- output
def _env():
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    from consentry.reports.html import TEMPLATES

    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["regime"] = _regime
    env.filters["num"] = lambda v, nd=1: "—" if v is None else (f"{v:.{nd}f}" if isinstance(v, float) else str(v))
    env.filters["pct"] = lambda v: "—" if v is None else f"{100 * v:.1f} %"
    return env


def render_html(f: TransparencyFigures, *, pdf: bool = False, instance: str = "", version: str = "") -> str:
    return _env().get_template("transparency.html").render(
        f=f, pdf=pdf, charts=charts(f), deadline=REMOVAL_DEADLINE_HOURS, method=PERCENTILE_METHOD,
        instance=instance, version=version, local_banks=LOCAL_BANKS)


def write(f: TransparencyFigures, out_dir: Path, formats: list[str], *, instance: str = "",
          version: str = "") -> list[Path]:
    """Write ``transparency.<fmt>`` for each format into ``out_dir`` (created); returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        path = out_dir / f"{BASENAME}.{fmt}"
        if fmt == "csv":
            path.write_text(f.to_csv(), encoding="utf-8")
        elif fmt == "html":
            path.write_text(render_html(f, instance=instance, version=version), encoding="utf-8")
        elif fmt == "pdf":
            _write_pdf(path, render_html(f, pdf=True, instance=instance, version=version))
        else:  # pragma: no cover - parse_formats refuses it first
            raise TransparencyError(f"unknown format {fmt!r}")
        written.append(path)
    return written


def _write_pdf(path: Path, html: str) -> None:
    import logging

    from weasyprint import HTML

    from consentry.media.image import strict_truncation
    from consentry.reports.html import _data_only_fetcher

    strict_truncation()  # weasyprint's import turned Pillow's truncated-file check off
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    HTML(string=html, url_fetcher=_data_only_fetcher()).write_pdf(str(path))
