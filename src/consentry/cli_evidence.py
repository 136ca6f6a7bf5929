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


class CompareFormat(str, Enum):
    json = "json"
    text = "text"


def _compare_head(d, r: dict, kind: str = "") -> list[str]:
    """The first lines of a comparison in text: who against whom, the result, any error, the summary."""
    lines = [f"{r['suspect'].get('name', 'suspect')} against {r['original'].get('name', 'original')}{kind}",
             "  result: " + ("could not be compared" if d.error else
                             "derived from the original" if d.derived else "not shown to be derived")]
    if d.error:
        lines.append(f"  error: {d.error}")
    return lines + textwrap.wrap(d.summary, 96, initial_indent="  ", subsequent_indent="  ")


def _compare_video_text(d) -> str:
    r = d.to_dict()
    lines = _compare_head(d, r, " (videos)")
    if not d.error:
        lines.append(f"  frames lined up: {d.frames_aligned} of {d.frames_usable} usable sampled frames"
                     + (f"; offset {r['offset_seconds']} s" if r["offset_seconds"] is not None else ""))
    for g in r["stable_regions"]:
        lines.append(f"  - differs consistently at x={g['x']} y={g['y']} {g['width']}x{g['height']} (source pixels), "
                     f"in {100 * g['fraction_of_frames']:.0f} % of the compared frames")
    for p in r["pairs"]:
        diff = "" if p["share_differing"] is None else f", {100 * p['share_differing']:.1f} % differing"
        src = "-" if p["source_t"] is None else f"{p['source_t']:.1f} s"
        lines.append(f"  frame {p['suspect_t']:.1f} s -> {src} (PDQ distance {p['pdq_distance']}, "
                     f"{p['matched_by'] or 'not lined up'}{diff})")
    lines += [f"  caveat: {c}" for c in d.caveats]
    return "\n".join(lines)


def _compare_text(d) -> str:
    if getattr(d, "kind", "") == "video":
        return _compare_video_text(d)
    r = d.to_dict()
    lines = _compare_head(d, r)
    if r["transform"]:
        t = r["transform"]
        lines.append(f"  transform: scale {t['scale']}, rotation {t['rotation_degrees']}°, mirrored {t['mirrored']}; "
                     f"{r['inliers']} consistent of {r['matches']} matches")
    for g in r["regions"]:
        lines.append(f"  - differs at x={g['x']} y={g['y']} {g['width']}x{g['height']} (original pixels)")
    if r["aligned_pdq"]:
        lines.append(f"  aligned PDQ distance: {r['aligned_pdq']['distance']}")
    lines += [f"  caveat: {c}" for c in d.caveats]
    return "\n".join(lines)


def compare_cmd(
    original: Path = typer.Argument(..., help="Your original picture or video.", show_default=False),
    suspect: Path = typer.Argument(..., help="The picture or clip suspected to be made from it.",
                                   show_default=False),
    fmt: CompareFormat = typer.Option(CompareFormat.json, "--format", "-f", help="Output format."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write a report: out.html or out.pdf.",
                                          dir_okay=False),
    show_image: bool = typer.Option(
        False, "--show-image", help="Show the suspect clearly in the report (default: blurred, greyscale)."),
) -> None:
    """Show whether SUSPECT was made from ORIGINAL: the share derived and the regions that differ.

    Aligns the pictures despite crops, resizing, rotation, mirroring, re-encoding and screenshots,
    then outlines where they differ. One JSON object (derived, share_derived, regions in the
    original's pixels, transform, inliers, aligned PDQ distance, summary, caveats). Exit status 0
    when compared (derived or not), 1 when a picture could not be read, 2 for usage errors.

    Two videos: about one suspect frame a second (at most 60) is paired with the nearest frame of
    the original by PDQ (time offsets and re-cuts followed) and compared as pictures; the answer
    gives the share of frames that line up, the frame pairs, and regions that differ consistently
    across frames (boxes in the original's pixels). A picture and a video cannot be compared.
    """
    from consentry.evidence.derivation import compare_paths

    if report is not None and report.suffix.lower() not in (".html", ".htm", ".pdf"):
        fail("--report must end in .html or .pdf", EXIT_USAGE)
    limits = get_settings().limits
    with err_console.status("comparing"):
        d = compare_paths(original, suspect, limits=limits)
    if fmt is CompareFormat.json:
        typer.echo(json.dumps(d.to_dict(), ensure_ascii=False))
    else:
        typer.echo(_compare_text(d))
    if report is not None:
        from consentry.evidence.compare_report import write_compare_report

        try:
            out = write_compare_report(d, report, original=original, suspect=suspect, show_image=show_image,
                                       limits=limits)
        except OSError as exc:
            fail(f"cannot write the report: {exc.strerror or exc}")
        err_console.print(f"report written to {out}", highlight=False)
    if d.error:
        err_console.print(f"could not compare: {d.error}", highlight=False)
    raise typer.Exit(EXIT_FAILED if d.error else EXIT_OK)
