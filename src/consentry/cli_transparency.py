"""``consentry report transparency`` (issue 15): the transparency report of a period, thin over
:mod:`consentry.reports.transparency` (figures) and :mod:`consentry.reports.transparency_render`
(HTML, PDF, CSV).

Prints a JSON summary (the files written and the headline figures) to stdout; errors go to
stderr with exit code 1 (2 for wrong usage).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from consentry.cli_common import EXIT_USAGE, fail


def transparency_cmd(
    from_: str = typer.Option(..., "--from", help="First day of the period, YYYY-MM-DD (UTC)."),
    to: str = typer.Option(..., "--to", help="Last day of the period, YYYY-MM-DD (UTC, included)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write transparency.html / .pdf / .csv into."),
    formats: str = typer.Option("html,pdf,csv", "--format", "-f", help="Comma-separated: html, pdf, csv."),
    instance: str = typer.Option("", "--instance", help="Name of the service shown in the title (optional)."),
) -> None:
    """Write the transparency report of a period: notices per regime, time to removal, copies
    found by sweeps, matches by bank kind and exchange, CyberTipline reports, feedback to
    exchanges, appeals. Aggregate figures only (no personal data)."""
    from consentry import __version__
    from consentry.cli_review import _db
    from consentry.reports.transparency import TransparencyError, compute, parse_day, period
    from consentry.reports.transparency_render import parse_formats, write

    try:
        start, end = period(parse_day(from_, "--from"), parse_day(to, "--to"))
        fmts = parse_formats(formats)
    except TransparencyError as exc:
        fail(str(exc), EXIT_USAGE)
    if out.exists() and not out.is_dir():
        fail(f"--out {out} exists and is not a folder", EXIT_USAGE)
    if len(instance) > 200:
        fail("--instance is over 200 characters", EXIT_USAGE)
    db = _db()
    try:
        figs = compute(db, start, end)
        try:
            paths = write(figs, out, fmts, instance=instance, version=__version__)
        except OSError as exc:
            fail(f"cannot write to {out}: {exc.strerror or exc}")
    finally:
        db.dispose()
    r = figs.removal
    print(json.dumps({
        "period": {"from": start.isoformat(), "to_exclusive": end.isoformat()},
        "files": [str(p) for p in paths],
        "notices": figs.notices_total if figs.notices_by_regime is not None else None,
        "removed": r.count if r else None,
        "median_hours_to_removal": None if r is None or r.median_hours is None else round(r.median_hours, 2),
        "copies_found_by_sweeps": figs.sweep_contents,
        "cybertip_reports_filed": figs.cybertip_filed,
    }, indent=2))


def register(report_app: typer.Typer) -> None:
    """Add ``transparency`` to the ``report`` group (:data:`consentry.cli_cybertip.report_app`)."""
    report_app.command("transparency")(transparency_cmd)
