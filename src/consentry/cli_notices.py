"""``consentry notices …`` and ``consentry statements …`` (issue 14 points 3 and 4).

The same :class:`~consentry.notices.NoticeService` as ``/report`` and ``/v1/notices``: list and
show notices (clock, case, decision, efforts), decide or reject them, escalate those due; export
statements of reasons in the DSA Transparency Database schema and submit them to its API.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from consentry.cli_common import EXIT_USAGE, fail, write_result

notices_app = typer.Typer(help="Notices: TAKE IT DOWN Act requests and DSA Art. 16 notices.", no_args_is_help=True)
statements_app = typer.Typer(help="Statements of reasons (DSA Art. 17) and the DSA Transparency Database.",
                             no_args_is_help=True)


def _service():
    from consentry.cli_ledger import _db, _sweeper
    from consentry.config import get_settings
    from consentry.notices import NoticeService, load_config

    db = _db()
    sweeper, policy = _sweeper(db)
    from consentry.review.cases import CaseService

    settings = get_settings()
    cases = CaseService(db, sweeper.banks, vault=policy.vault, limits=settings.limits)
    return NoticeService(db, config=load_config(settings.home), cases=cases, sweeper=sweeper, vault=policy.vault,
                         banks=sweeper.banks, limits=settings.limits)


def _json(obj) -> None:
    write_result(json.dumps(obj, sort_keys=True, default=str, ensure_ascii=False) + "\n")


def _guard(fn, *a, **kw):
    from consentry.errors import ConsentryError

    try:
        return fn(*a, **kw)
    except ConsentryError as exc:
        fail(str(exc))


@notices_app.command("list")
def list_cmd(status: Optional[str] = typer.Option(None, help="incomplete, open, decided, rejected, duplicate"),
             regime: Optional[str] = typer.Option(None, help="take_it_down or dsa_art16"),
             limit: int = typer.Option(100, min=1, max=1000)) -> None:
    """Notices, the earliest due first (JSON lines, with the clock)."""
    for n in _service().list(status=status, regime=regime, limit=limit):
        _json(n)


@notices_app.command("show")
def show_cmd(number: str = typer.Argument(..., help="The notice number, N-XXXX-XXXX-XXXX")) -> None:
    """One notice: notifier, locations, clock, case, decision, efforts record, statements."""
    _json(_guard(_service().get, number))


@notices_app.command("decide")
def decide_cmd(number: str = typer.Argument(...),
               decision: str = typer.Argument(..., help="remove, disable or no_action"),
               reviewer: str = typer.Option(..., "--reviewer", help="Who decides (recorded)"),
               ground: Optional[str] = typer.Option(None, help="legal (the law) or policy (a terms clause)"),
               reference: Optional[str] = typer.Option(None, help="The law or terms clause relied on"),
               explanation: str = typer.Option("", help="Why (shown to the uploader)"),
               automated: bool = typer.Option(False, "--automated", help="Automated means were used to decide")) -> None:
    """Record the decision; a removal adds the hashes to the notices bank and sweeps for copies."""
    from consentry.notices import Ground
    from consentry.notices.statements import StatementError

    g = None
    if ground:
        try:
            g = Ground(ground, reference or "", explanation)
        except StatementError as exc:
            fail(str(exc), EXIT_USAGE)
    out = _guard(_service().decide, number, reviewer, decision, ground=g, automated=automated, role="curator")
    _json(out)


@notices_app.command("reject")
def reject_cmd(number: str = typer.Argument(...), reason: str = typer.Option(..., help="Why (logged and audited)"),
               reviewer: str = typer.Option(..., "--reviewer")) -> None:
    """Reject an invalid or bad-faith notice, with its reason."""
    _json(_guard(_service().reject, number, reviewer, reason))


@notices_app.command("escalate")
def escalate_cmd() -> None:
    """Escalate the notices whose escalation time has come (``consentry serve`` does this every minute)."""
    _json({"escalated": _service().escalate_due()})


@statements_app.command("export")
def export_cmd(out: Optional[Path] = typer.Option(None, "--out", "-o", help="A file (default stdout)"),
               status: Optional[str] = typer.Option(None, help="pending, submitted, failed"),
               check: bool = typer.Option(True, help="Check each statement against the kept schema")) -> None:
    """Statements of reasons as JSON lines in the DSA Transparency Database submission schema
    (src/consentry/notices/tdb_statement.schema.json): no personal data."""
    from consentry.notices.statements import StatementService, schema_errors, write_jsonl

    rows = list(StatementService(_service().db).export(status=status))
    if check:
        bad = [(r.get("puid"), e) for r in rows for e in schema_errors(r)]
        if bad:
            fail(f"{len(bad)} schema error(s), first: {bad[0][0]}: {bad[0][1]}")
    if out is None:
        write_jsonl(rows, sys.stdout)
    else:
        with out.open("w", encoding="utf-8") as f:
            write_jsonl(rows, f)
        _json({"written": len(rows), "file": str(out)})


@statements_app.command("submit")
def submit_cmd(url: Optional[str] = typer.Option(None, help="Base URL (default CONSENTRY_DSA_TDB_URL, else production)"),
               limit: int = typer.Option(10_000, min=1)) -> None:
    """Send pending (and failed) statements to the DSA Transparency Database API
    (token: CONSENTRY_DSA_TDB_TOKEN), 100 a call."""
    from consentry.notices.dsa_tdb import TDBClient

    svc = _service()
    client = _guard(TDBClient, url)
    try:
        _json(_guard(svc.statements.submit_pending, client, limit=limit))
    finally:
        client.close()


@statements_app.command("show")
def statement_show_cmd(puid: str = typer.Argument(...)) -> None:
    """One statement: the submission and the text for the uploader."""
    svc = _service().statements
    _json({**_guard(svc.get, puid).to_dict(), "for_uploader": svc.for_uploader(puid)})


def register(app: typer.Typer) -> None:
    app.add_typer(notices_app, name="notices")
    app.add_typer(statements_app, name="statements")
