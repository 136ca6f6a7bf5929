"""``consentry scan``: a thin Typer command over :func:`consentry.scan.pipeline.run_scan`."""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from consentry.cli_common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, err_console, fail, plural, progress_bar, write_result
from consentry.config import get_settings
from consentry.errors import ConsentryError


class ExecutorKind(str, Enum):
    local = "local"
    ray = "ray"


def scan_cmd(
    paths: List[Path] = typer.Argument(..., help="Files, folders and ZIP/TAR archives to scan.", show_default=False),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (scan.db and reports); "
                                                     "re-use it to resume an interrupted scan."),
    bank: Optional[List[str]] = typer.Option(None, "--bank", "-b", help="Match these banks only (repeatable; "
                                                                         "default: every bank in the database)."),
    known_good: Optional[Path] = typer.Option(None, "--known-good", help="Known-good hash set to set aside: "
                                                                         "NSRL-style CSV or one hash per line."),
    workers: int = typer.Option(1, "--workers", "-j", min=1, max=256, help="Local worker processes."),
    executor: ExecutorKind = typer.Option(ExecutorKind.local, "--executor", help="local process pool or a Ray cluster."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster address (with --executor ray)."),
    examiner: Optional[str] = typer.Option(None, "--examiner", help="Examiner name, for the report and custody record."),
    case_id: Optional[str] = typer.Option(None, "--case-id", help="Case identifier, for the report and custody record."),
    include_thumbnails: bool = typer.Option(False, "--include-thumbnails", help="Put thumbnails in report.pdf too."),
    no_match: bool = typer.Option(False, "--no-match", help="Do not match against banks."),
    no_evidence: bool = typer.Option(False, "--no-evidence", help="Skip the AI-generation evidence analysis."),
    no_genai: bool = typer.Option(False, "--no-genai", help="Skip AI-generation forensics (model inventory, "
                                                          "generator files, image-model links, sessions)."),
    prompt_terms: Optional[Path] = typer.Option(None, "--prompt-terms", help="Term list (one term or phrase per "
                                                                            "line): prompts using a term are "
                                                                            "flagged for the examiner."),
    show_prompts: bool = typer.Option(False, "--show-prompts", help="Show prompts in clear in report.html and "
                                                                    "report.pdf (withheld by default)."),
    verify_skipped: bool = typer.Option(False, "--verify-skipped", help="When resuming, re-hash files before "
                                                                        "skipping them (slower, catches edits "
                                                                        "that kept size and mtime)."),
) -> None:
    """Triage seized media: hashes, bank matches, AI-generation evidence, duplicates, reports.

    Writes OUT/scan.db as it goes, then report.html, report.pdf, results.jsonl, results.csv,
    vics.json and chain-of-custody.json. Exit status 0 when every file was read, 1 when any
    file had an error (the scan still completes), 2 for bad options.
    """
    from consentry.scan.pipeline import ScanOptions, count_inputs, run_scan

    if ray_address and executor is not ExecutorKind.ray:
        fail("--ray-address needs --executor ray", EXIT_USAGE)
    if known_good is not None and not known_good.is_file():
        fail(f"--known-good {known_good}: no such file", EXIT_USAGE)
    if prompt_terms is not None and not prompt_terms.is_file():
        fail(f"--prompt-terms {prompt_terms}: no such file", EXIT_USAGE)
    missing = [p for p in paths if not os.path.lexists(p)]
    if missing:  # before any work: no scan.db, no reports for a typo
        fail(f"{missing[0]}: no such file or directory"
             + (f" (and {plural(len(missing) - 1, 'other')})" if len(missing) > 1 else ""), EXIT_USAGE)
    opts = ScanOptions(
        paths=[str(p) for p in paths], out=out, banks=list(bank) if bank else None, known_good=known_good,
        workers=workers, executor=executor.value, ray_address=ray_address, examiner=examiner,
        case_id=case_id, include_thumbnails=include_thumbnails, match=not no_match,
        verify_skipped=verify_skipped, limits=get_settings().limits, evidence=not no_evidence,
        genai=not no_genai, prompt_terms=prompt_terms, show_prompts=show_prompts,
    )
    progress = progress_bar(
        err_console,
        TextColumn("scanning"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} files/s, {task.fields[errors]}, {task.fields[skipped]} skipped"),
        TimeElapsedColumn(), TimeRemainingColumn(),
    )
    with progress:
        total = count_inputs(opts.paths) if err_console.is_terminal else None
        task = progress.add_task("scan", total=total, rate="0.0", errors=plural(0, "error"), skipped=0)

        def update(p) -> None:
            rate = p.results / p.elapsed if p.elapsed > 0 else 0.0
            progress.update(task, completed=p.done, rate=f"{rate:.1f}", errors=plural(p.errors, "error"),
                            skipped=p.skipped)

        try:
            summary = run_scan(opts, update, total)
        except ConsentryError as exc:
            progress.stop()
            fail(str(exc), EXIT_USAGE if "bank" in str(exc) or "--out" in str(exc) else EXIT_FAILED)
    c = summary.counts
    echo = err_console.print
    echo(f"scanned {plural(summary.scanned, 'file')} in {summary.elapsed:.1f} s "
         f"({summary.files_per_second:.1f} files/s); skipped {summary.skipped} already done; "
         f"{plural(summary.errors, 'error')} in this run", highlight=False)
    echo(f"{plural(c['content'], 'file or archive member', 'files and archive members')} in {summary.out}: "
         f"{c['matched']} matched, {c['with_ai_evidence']} with AI evidence, {c['known_good']} known good, "
         f"{plural(c['duplicate_stacks'], 'duplicate stack')}, "
         f"{plural(c['near_duplicate_groups'], 'near-duplicate group')}, "
         f"{plural(c['errors'], 'error')} ({summary.matching})", highlight=False, markup=False)
    g = summary.genai
    if g:
        echo(f"AI-generation forensics: {plural(g['models'], 'model file')}, "
             f"{plural(g['artefacts'], 'generator file')}, {plural(g['sessions'], 'session')} "
             f"({g['generated_images']} images); model references {g['links_present']} found, "
             f"{g['links_absent']} not on the evidence; {plural(g['flagged_prompts'], 'flagged prompt')}",
             highlight=False, markup=False)
    for name, p in summary.reports.items():
        write_result(str(p))
    raise typer.Exit(EXIT_FAILED if c["errors"] else EXIT_OK)
