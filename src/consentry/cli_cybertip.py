"""``consentry report cybertip …`` (NCMEC CyberTipline reports), ``consentry vault holds``
(preservation holds) and ``consentry users grant-reporter`` (issue 15), thin over
:mod:`consentry.cybertip`.

The command line is an operator's tool on the instance itself (it opens the database and the
vault directly), so it acts with an administrator's rights: the audit log names it ``cli:<login>``.
Results go to stdout as JSON; errors to stderr with exit code 1 (2 for wrong usage).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from consentry.cli_common import EXIT_USAGE, err_console, fail
from consentry.config import get_settings
from consentry.errors import ConsentryError

report_app = typer.Typer(help="Outbound legal reports.", no_args_is_help=True)
cybertip_app = typer.Typer(help="NCMEC CyberTipline reports: configure, draft, file, status, retract.",
                           no_args_is_help=True)
report_app.add_typer(cybertip_app, name="cybertip")


def _service():
    from consentry.cli_review import _db
    from consentry.cybertip.service import CybertipService
    from consentry.review.vault import Vault, VaultError

    settings = get_settings()
    db = _db()
    try:
        vault = Vault.from_settings(settings, db)
    except VaultError as exc:
        fail(str(exc))
    return CybertipService(db, settings, vault=vault)


def _actor() -> str:
    from consentry.cli_banks import _cli_actor

    return _cli_actor()


def _read_json(path: Path | None, what: str) -> Any:
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8") if str(path) != "-" else typer.get_text_stream("stdin").read()
    except OSError as exc:
        fail(f"cannot read the {what} {path}: {exc.strerror or exc}", EXIT_USAGE)
    if len(text) > 256 * 1024:
        fail(f"the {what} is over 256 KiB", EXIT_USAGE)
    try:
        return json.loads(text)
    except ValueError as exc:
        fail(f"the {what} {path} is not valid JSON: {exc}", EXIT_USAGE)


def _run(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except ConsentryError as exc:
        missing = getattr(exc, "missing", None)
        if missing:
            err_console.print("error: the CyberTipline report cannot be built; nothing was sent. Missing:",
                              highlight=False, markup=False)
            for m in missing:
                err_console.print(f"  - {m}", highlight=False, markup=False, soft_wrap=True)
            raise typer.Exit(1)
        fail(str(exc), EXIT_USAGE if exc.code in ("cybertip_error", "hold_error") else 1)


def _out(obj: Any) -> None:
    print(json.dumps(obj, indent=2))


@cybertip_app.command("configure")
def cybertip_configure(
    environment: Optional[str] = typer.Option(None, "--environment", "-e",
                                              help="test (exttest.cybertip.org) or production (report.cybertip.org)."),
    credentials_file: Optional[Path] = typer.Option(None, "--credentials-file",
                                                    help='JSON {"username", "password"} NCMEC issued; stored encrypted.'),
    reporter_file: Optional[Path] = typer.Option(None, "--reporter-file",
                                                 help="JSON: first_name, last_name, email, phone, company_template, "
                                                      "terms_of_service, legal_url, esp_service, contact{...}."),
    four_eyes: Optional[bool] = typer.Option(None, "--four-eyes/--no-four-eyes",
                                             help="A second reporter approves each draft before filing."),
    url: Optional[str] = typer.Option(None, "--url", help="Another base URL (a local stand-in); '' to clear."),
    xsd: Optional[str] = typer.Option(None, "--xsd", help="Validate against this XSD (NCMEC's current ispws.xsd); "
                                                          "'' for the reconstruction shipped with Consentry."),
) -> None:
    """Set up CyberTipline reporting; prints the configuration (never the credentials)."""
    creds = None
    if credentials_file is not None:
        try:
            creds = credentials_file.read_text(encoding="utf-8")
        except OSError as exc:
            fail(f"cannot read {credentials_file}: {exc.strerror or exc}", EXIT_USAGE)
    reporter = _read_json(reporter_file, "reporter file")
    _out(_run(_service().configure, environment=environment, url=url, credentials_text=creds, reporter=reporter,
              four_eyes=four_eyes, xsd=xsd, actor=_actor()))


@cybertip_app.command("draft")
def cybertip_draft(
    case_id: int = typer.Argument(..., help="A case confirmed into a csam bank."),
    details_file: Optional[Path] = typer.Option(None, "--details-file", "-d",
                                                help="JSON from the platform: incident_time, reported_user{...}, "
                                                     "files{sha256: {...}}, urls, additional_info ('-': stdin)."),
    xml: bool = typer.Option(False, "--xml", help="Print only the report XML that will be sent."),
) -> None:
    """Build and validate the report of a case; nothing is sent."""
    info = _run(_service().draft, case_id, _read_json(details_file, "details file"), actor=_actor(), permitted=True)
    if xml:
        print(info.report_xml, end="")
        return
    _out(info.to_dict())


@cybertip_app.command("approve")
def cybertip_approve(case_id: int = typer.Argument(...)) -> None:
    """Four-eyes: approve a draft someone else made."""
    _out(_run(_service().approve, case_id, actor=_actor(), permitted=True).to_dict(xml=False))


@cybertip_app.command("file")
def cybertip_file(case_id: int = typer.Argument(...)) -> None:
    """File the drafted report: submit, upload each file, file details, finish; holds the case a year."""
    svc = _service()
    before = svc.get(case_id)
    if before is not None and before.status == "filed":
        err_console.print(f"Case {case_id} is already filed as NCMEC report {before.ncmec_report_id}; nothing sent.",
                          highlight=False)
    else:
        err_console.print(f"Filing the CyberTipline report of case {case_id} ({svc.describe()['environment']})…",
                          highlight=False)
    _out(_run(svc.file, case_id, actor=_actor(), permitted=True).to_dict(xml=False))


@cybertip_app.command("status")
def cybertip_status(case_id: Optional[int] = typer.Argument(None, help="One case (default: every report).")) -> None:
    """Reports and their status (JSON lines), or one case's report."""
    svc = _service()
    if case_id is not None:
        info = svc.get(case_id)
        if info is None:
            fail(f"case {case_id} has no CyberTipline report")
        _out(info.to_dict())
        return
    for info in svc.list():
        print(json.dumps(info.to_dict(xml=False)))


@cybertip_app.command("retract")
def cybertip_retract(case_id: int = typer.Argument(...)) -> None:
    """Cancel a report NCMEC has not finished (a draft is discarded)."""
    _out(_run(_service().retract, case_id, actor=_actor(), permitted=True).to_dict(xml=False))


def vault_holds(
    all_: bool = typer.Option(False, "--all", help="Include released holds."),
    release_expired: bool = typer.Option(False, "--release-expired", help="Release the holds that have expired."),
    release: Optional[int] = typer.Option(None, "--release", help="End this hold early (an administrator's action)."),
    reason: str = typer.Option("", "--reason", "-r", help="Why the hold ends early (kept in the audit log)."),
) -> None:
    """Preservation holds (one year after a CyberTipline report), as JSON lines."""
    from consentry.cli_review import _db
    from consentry.cybertip.holds import HoldService

    holds = HoldService(_db())
    if release is not None:
        _out(_run(holds.release_early, release, actor=_actor(), role="admin", reason=reason).to_dict())
        return
    if release_expired:
        done = holds.release_expired(actor=_actor())
        err_console.print(f"released {len(done)} expired hold(s)", highlight=False)
    for h in holds.list(include_released=all_):
        print(json.dumps(h.to_dict()))


def users_grant_reporter(
    name: str = typer.Argument(...),
    revoke: bool = typer.Option(False, "--revoke", help="Take the permission away instead."),
) -> None:
    """Grant a console user the reporter permission (filing CyberTipline reports)."""
    from consentry.cli_review import _db
    from consentry.review.users import UserService

    user = _run(UserService(_db()).set_reporter, name, not revoke, actor=_actor())
    print(f"user {user.username} {'may' if user.can_report else 'may not'} file CyberTipline reports")


def register(app: typer.Typer) -> None:
    """Add ``report``, ``vault holds`` and ``users grant-reporter`` to the main app."""
    from consentry.cli_review import users_app, vault_app

    app.add_typer(report_app, name="report")
    vault_app.command("holds")(vault_holds)
    users_app.command("grant-reporter")(users_grant_reporter)
