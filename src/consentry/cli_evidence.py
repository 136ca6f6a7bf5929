"""``consentry analyze``: is this content AI-generated or AI-edited, and how do we know?"""

from __future__ import annotations

import json
import textwrap
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from consentry.cli_common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, err_console, fail, plural, progress_bar, write_result
from consentry.config import get_settings


class AnalyzeFormat(str, Enum):
    jsonl = "jsonl"
    text = "text"


def _fresh_summary(a) -> str:
    """The summary sentence, or "" when the verdict, error and evidence lines already say it all
    (``Edited, with no indication of AI: <the top evidence item>.``)."""
    from consentry.evidence.assess import VERDICT_LABELS

    text = a.summary.strip()
    if a.error and a.error.rstrip(".") in text:
        return ""
    label = VERDICT_LABELS.get(a.verdict, "")
    if label and text.startswith(label + ": "):
        rest = text[len(label) + 2:].rstrip(".")
        if any(e.summary.strip() and rest.startswith(e.summary.strip().rstrip(".")) for e in a.evidence):
            return ""
    return text


def _text(a) -> str:
    from consentry.evidence.assess import VERDICT_WORDS

    words = VERDICT_WORDS[a.verdict]
    lines = [f"{a.path}", f"  verdict: {words}" + ("" if words == a.verdict else f"  ({a.verdict})")]
    if a.error:
        lines.append(f"  error: {a.error}")
    if a.sha256:
        lines.append(f"  sha256: {a.sha256}")
    lines += textwrap.wrap(_fresh_summary(a), 96, initial_indent="  ", subsequent_indent="  ")
    for e in a.evidence:
        lines.append(f"  - [{e.strength}] {e.claim} from {e.source}: {e.summary}")
        lines += [f"      caveat: {c}" for c in e.caveats]
    lines += [f"  note: {n}" for n in a.notes]
    return "\n".join(lines)


def analyze_cmd(
    paths: List[Path] = typer.Argument(..., help="Files or directories (recursed).", show_default=False),
    fmt: AnalyzeFormat = typer.Option(AnalyzeFormat.jsonl, "--format", "-f", help="Output format."),
    report: Optional[Path] = typer.Option(
        None, "--report", help="Write a report for ONE file: out.html or out.pdf.", dir_okay=False),
    show_image: bool = typer.Option(
        False, "--show-image", help="Put a clear thumbnail in the report (default: blurred, greyscale)."),
) -> None:
    """Look for provenance (C2PA), generator metadata and invisible watermarks in each file.

    One JSON object per file (path, sha256, verdict, evidence, error). Exit status 0 when every
    file was analysed, 1 when any failed, 2 for usage errors. Absence of indicators is reported as
    "no indicators found", never as authentic.
    """
    from consentry.evidence.assess import assess_path
    from consentry.hashing import iter_files

    files = list(iter_files(paths))
    if report is not None:
        if len(files) != 1:
            fail(f"--report needs exactly one file, got {len(files)}", EXIT_USAGE)
        if report.suffix.lower() not in (".html", ".htm", ".pdf"):
            fail("--report must end in .html or .pdf", EXIT_USAGE)
    limits = get_settings().limits
    failures = 0
    results = []
    with progress_bar() as progress:
        task = progress.add_task("analysing", total=len(files), rate="")
        for f in files:
            a = assess_path(f, limits=limits)
            results.append(a)
            failures += not a.ok
            if fmt is AnalyzeFormat.jsonl:
                write_result(json.dumps(a.to_dict(), ensure_ascii=False), progress)
            else:
                write_result(_text(a) + "\n\n", progress)
            progress.update(task, advance=1)
    if report is not None and results:
        from consentry.evidence.report import write_report

        try:
            out = write_report(results[0], report, source=files[0], show_image=show_image, limits=limits)
        except OSError as exc:
            fail(f"cannot write the report: {exc.strerror or exc}")
        err_console.print(f"report written to {out}", highlight=False)
    if failures:
        err_console.print(f"{failures} of {plural(len(files), 'file')} could not be analysed", highlight=False)
    raise typer.Exit(EXIT_FAILED if failures else EXIT_OK)
