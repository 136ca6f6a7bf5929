"""``consentry content …`` (the content ledger) and ``consentry sweep`` (issue 14)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import List, Optional

import typer

from consentry.cli_common import EXIT_USAGE, err_console, fail, write_result

content_app = typer.Typer(help="The content ledger: what the platform hosts, as hashes (never media).",
                          no_args_is_help=True)


def _db():
    from consentry.db import open_database

    return open_database()


def _sweeper(db):
    """A sweeper acting through the instance's rules, webhooks and review queue, as in serve."""
    from consentry.banks.service import BankService
    from consentry.config import get_settings
    from consentry.ledger import Sweeper
    from consentry.policy.runtime import PolicyRuntime
    from consentry.web.review_deps import build_review_state

    settings = get_settings()
    policy = PolicyRuntime(settings, db)
    banks = BankService(db)
    cases = build_review_state(settings, banks, policy.vault).cases
    return Sweeper.for_policy(db, policy, settings, cases.enqueue_handler(), banks=banks), policy


def _json(obj) -> None:
    write_result(json.dumps(obj, sort_keys=True, default=str) + "\n")


@content_app.command("import")
def import_cmd(
    path: str = typer.Argument(..., help="A JSONL or CSV file of contents ('-' for stdin)"),
    fmt: Optional[str] = typer.Option(None, "--format", help="jsonl or csv (default: from the file name)"),
    batch: Optional[int] = typer.Option(None, min=1, max=200_000,
                                        help="Contents written per transaction (default: 100,000 on "
                                             "SQLite, 20,000 on PostgreSQL)"),
) -> None:
    """Import the back catalogue: one content a line/row (content_id, url, uploader_id, surface,
    md5, sha256, pdq, pdq_quality, pdq_variants, vpdq). Idempotent by content id: importing the
    same file again changes nothing. Prints a JSON summary."""
    from consentry.ledger.service import LedgerService, read_csv

    fmt = (fmt or ("csv" if path.lower().endswith(".csv") else "jsonl")).lower()
    if fmt not in ("jsonl", "csv"):
        fail("--format must be jsonl or csv", EXIT_USAGE)
    if path != "-" and not Path(path).is_file():
        fail(f"no such file: {path}", EXIT_USAGE)
    ledger = LedgerService(_db())
    t0 = time.monotonic()

    def progress(r) -> None:
        if err_console.is_terminal:
            err_console.print(f"{r.read:,} read, {r.written:,} written", end="\r", highlight=False)

    binary = fmt == "jsonl"  # JSON Lines as bytes: read and checked in a child process when there are many
    if path == "-":
        stream = sys.stdin.buffer if binary else sys.stdin
    else:
        stream = open(path, "rb") if binary else open(path, encoding="utf-8", newline="")
    try:
        if binary:
            report = ledger.import_jsonl(stream, batch=batch, on_batch=progress)
        else:
            report = ledger.import_stream(read_csv(stream), batch=batch, on_batch=progress)
    except UnicodeDecodeError:
        fail(f"{path}: not UTF-8 text")
    finally:
        if path != "-":
            stream.close()
    seconds = time.monotonic() - t0
    out = {**report.to_dict(), "seconds": round(seconds, 3),
           "per_second": round(report.read / seconds) if seconds > 0 else None}
    _json(out)
    if report.error_count:
        err_console.print(f"{report.error_count} record(s) skipped; the first: {report.errors[0]}",
                          highlight=False, markup=False)


@content_app.command("delete")
def delete_cmd(content_id: str = typer.Argument(..., help="The platform's content id")) -> None:
    """The platform removed this content: it is never swept again (a tombstone is kept)."""
    from consentry.ledger.service import ContentNotFound, LedgerService

    try:
        info = LedgerService(_db()).delete(content_id)
    except ContentNotFound as exc:
        fail(str(exc))
    _json({"content_id": info.content_id, "status": info.status})


@content_app.command("show")
def show_cmd(location: str = typer.Argument(..., help="A content id or the URL it was registered with")) -> None:
    """A ledger entry (found by content id or URL) with its sweep hits."""
    from consentry.ledger.service import LedgerService

    ledger = LedgerService(_db())
    info = ledger.resolve(location, include_deleted=True)
    if info is None:
        fail(f"no content {location!r} in the ledger")
    _json({"content": info.to_dict(), "hits": ledger.hits(content_id=info.content_id, limit=1000)})


@content_app.command("hits")
def hits_cmd(
    bank: Optional[str] = typer.Option(None, "--bank", help="Only hits of this bank"),
    limit: int = typer.Option(100, min=1, max=10_000),
    cursor: int = typer.Option(0, min=0, help="The last hit id seen"),
) -> None:
    """Copies found online by the sweep, one JSON line each."""
    from consentry.ledger.service import LedgerService

    for h in LedgerService(_db()).hits(bank=bank, after_id=cursor, limit=limit):
        _json(h)


def sweep_cmd(
    bank: Optional[List[str]] = typer.Option(None, "--bank", help="Re-sweep every active entry of this bank "
                                             "(repeatable); without it: entries activated since the last sweep"),
    all_banks: bool = typer.Option(False, "--all-banks", help="Re-sweep every bank (after a back-catalogue import)"),
    show: int = typer.Option(100, "--show", min=0, help="Hits listed in the output (the count is always full)"),
) -> None:
    """Search the content ledger for bank entries: copies already online become sweep hits, and
    the rules act on new ones (content.matched webhooks, review cases). Prints a JSON report."""
    from consentry.banks.service import NotFound

    db = _db()
    sweeper, policy = _sweeper(db)
    names = list(bank or [])
    if all_banks:
        names = [b.name for b in sweeper.banks.list_banks() if b.kind != "allow"]
    try:
        if names:
            reports = []
            for name in names:
                def progress(r, name=name) -> None:
                    if err_console.is_terminal:
                        err_console.print(f"{name}: {r.entries:,} entries, {len(r.hits):,} hits", end="\r",
                                          highlight=False)

                reports.append(sweeper.sweep_bank(name, on_progress=progress).to_dict(show))
            out = reports[0] if len(reports) == 1 else {"banks": reports}
        else:
            r = sweeper.follow()
            if r.busy:
                fail("another sweep is running (the service's sweeper); try again shortly")
            out = r.to_dict(show)
        policy.webhooks.run_once()  # deliver content.matched now; failures are retried by serve
    except NotFound as exc:
        fail(str(exc))
    finally:
        policy.close()
    _json(out)


def register(app: typer.Typer) -> None:
    app.add_typer(content_app, name="content")
    app.command("sweep")(sweep_cmd)
