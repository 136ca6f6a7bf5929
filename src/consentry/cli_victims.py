"""``consentry victim ...`` (helplines: hash offline, submit to a hub, status, withdraw) and
``consentry exchange ...`` (subscribe to a hub, pull, send feedback)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from consentry.cli_common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, err_console, fail, plural
from consentry.config import get_settings
from consentry.errors import ConsentryError

victim_app = typer.Typer(help="For helplines: hash images offline and submit only the hashes to a victim hub.",
                         no_args_is_help=True)
exchange_app = typer.Typer(help="Subscribe to external hash sources (another Consentry hub), pull, feedback.",
                           no_args_is_help=True)


def _say(text: str) -> None:
    err_console.print(text, highlight=False, markup=False)


def _read_pin(pin_stdin: bool, confirm: bool) -> str:
    if pin_stdin:
        pin = sys.stdin.readline().rstrip("\r\n")
    else:
        pin = typer.prompt("PIN", hide_input=True, confirmation_prompt=confirm, err=True)
    if not pin:
        fail("a PIN is required", EXIT_USAGE)
    return pin


@victim_app.command("hash")
def victim_hash(
    paths: List[Path] = typer.Argument(..., help="Image or video files, or folders.", show_default=False),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the hashes here (default: stdout)."),
) -> None:
    """Hash files on this computer (nothing is sent) into a hashes file for `victim submit`.

    The file holds only what the victim page sends: md5 and PDQ (photos, with the PDQ of their
    crops, small turns and borderless copy, so such copies are found too) or per-second PDQ
    frames (videos). No file names, paths, sizes or dates.
    """
    from consentry.hashing import hash_path_for_bank, iter_files
    from consentry.victims.client import hashes_document

    files = list(iter_files(paths))
    limits = get_settings().limits
    doc, failed = hashes_document(hash_path_for_bank(f, limits, dense_video=False) for f in files)
    for r in failed:
        _say(f"could not hash {r.path}: {r.error}")
    text = json.dumps(doc, indent=1) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text)
    _say(f"{len(doc['items'])} of {plural(len(files), 'file')} hashed" + (f"; written to {out}" if out else "")
         + ". Only hashes: no images or file names.")
    raise typer.Exit(EXIT_FAILED if failed or not doc["items"] else EXIT_OK)


@victim_app.command("submit")
def victim_submit(
    hashes: Path = typer.Argument(..., help="A file made by `consentry victim hash`.", show_default=False),
    hub: str = typer.Option(..., "--hub", help="The hub's base URL, e.g. https://hub.example.org"),
    adult: Optional[bool] = typer.Option(None, "--adult/--minor",
                                         help="The person shown was 18 or older (--adult) or not (--minor)."),
    pin_stdin: bool = typer.Option(False, "--pin-stdin", help="Read the PIN from the first line of stdin."),
) -> None:
    """Submit a hashes file to a hub; prints the case number (shown once)."""
    from consentry.victims import client
    from consentry.victims.hub import minor_links

    try:
        doc = client.read_document(hashes.read_bytes())
    except OSError as exc:
        fail(f"cannot read {hashes}: {exc.strerror or exc}")
    except ConsentryError as exc:
        fail(str(exc))
    if adult is None:
        if not sys.stdin.isatty() or pin_stdin:
            fail("say whether the person shown was 18 or older: --adult or --minor", EXIT_USAGE)
        adult = not typer.confirm("Was the person shown under 18 when the images were made?", err=True)
    if not adult:
        s = get_settings()
        _say("Not submitted: this hub takes images of adults only. " + s.victim_minor_text)
        for link in minor_links(s.victim_minor_links):
            _say(f"  {link['title']}: {link['url']}")
        raise typer.Exit(EXIT_FAILED)
    pin = _read_pin(pin_stdin, confirm=True)
    try:
        result = client.submit(hub, doc, pin)
    except ConsentryError as exc:
        fail(str(exc))
    print(json.dumps(result))
    _say(f"Case number: {result.get('case_number')}  (write it down with the PIN; neither can be recovered)")


def _case(action: str, case: str, hub: str, pin_stdin: bool) -> None:
    from consentry.victims import client

    pin = _read_pin(pin_stdin, confirm=False)
    try:
        print(json.dumps(client.case_action(hub, case, pin, action)))
    except ConsentryError as exc:
        fail(str(exc))


@victim_app.command("status")
def victim_status(case: str = typer.Argument(..., show_default=False), hub: str = typer.Option(..., "--hub"),
                  pin_stdin: bool = typer.Option(False, "--pin-stdin")) -> None:
    """A case's status at a hub (counts only)."""
    _case("status", case, hub, pin_stdin)


@victim_app.command("withdraw")
def victim_withdraw(case: str = typer.Argument(..., show_default=False), hub: str = typer.Option(..., "--hub"),
                    pin_stdin: bool = typer.Option(False, "--pin-stdin")) -> None:
    """Withdraw a case at a hub: partners must delete its hashes."""
    _case("withdraw", case, hub, pin_stdin)


# ---------------------------------------------------------------- exchanges
def _store():
    from consentry.banks.service import BankService
    from consentry.db import open_database
    from consentry.exchanges.base import ExchangeStore

    return ExchangeStore(BankService(open_database()), get_settings())


def _read_secret_file(path: Path) -> str:
    try:
        return sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read the credentials file {path}: {getattr(exc, 'strerror', None) or type(exc).__name__}")
    return ""  # unreachable


@exchange_app.command("add")
def exchange_add(
    type_: str = typer.Option(..., "--type", help="stopncii, ncmec, threatexchange or consentry-hub"),
    name: Optional[str] = typer.Option(None, "--name", help="Name (required for programs; hub: from the URL's host)."),
    bank: Optional[str] = typer.Option(None, "--bank", help="Target bank (default: the exchange name)."),
    credentials_file: Optional[Path] = typer.Option(
        None, "--credentials-file", help="JSON credentials ('-' = stdin); stored encrypted, never shown."),
    environment: str = typer.Option("production", "--environment", help="test or production"),
    option: Optional[List[str]] = typer.Option(None, "--option", help="key=value (repeatable), e.g. database=ngo"),
    url: Optional[str] = typer.Option(None, "--url", help="consentry-hub: the hub's base URL."),
    key: Optional[str] = typer.Option(None, "--key", help="consentry-hub: a partner key on the hub."),
    key_stdin: bool = typer.Option(False, "--key-stdin", help="consentry-hub: read the key from stdin."),
) -> None:
    """Subscribe to an exchange. Credentials are stored encrypted and never shown again."""
    import re
    from urllib.parse import urlparse

    from consentry.exchanges.programs import add_program, describe, parse_options

    store = _store()
    if type_ != "consentry-hub":
        if not name or credentials_file is None:
            fail(f"--type {type_} needs --name and --credentials-file", EXIT_USAGE)
        try:
            print(json.dumps(add_program(store, type_, name, bank, _read_secret_file(credentials_file),
                                         environment=environment, options=parse_options(option))))
        except ConsentryError as exc:
            fail(str(exc))
        return
    if not url:
        fail("--type consentry-hub needs --url", EXIT_USAGE)
    if key_stdin:
        key = sys.stdin.readline().strip()
    elif credentials_file is not None:
        key = _read_secret_file(credentials_file).strip()
        if key.startswith("{"):
            try:
                key = str(json.loads(key).get("key") or "")
            except (ValueError, AttributeError):
                fail("the credentials file is not valid JSON")
    if not key:
        fail("give the hub's API key with --key, --key-stdin or --credentials-file", EXIT_USAGE)
    if name is None:
        host = urlparse(url).netloc or "hub"
        name = re.sub(r"[^A-Za-z0-9_.\-]+", "-", f"{type_}-{host}").strip("-")[:100]
    try:
        info = store.add(name, type_, url, key, bank)
        out = {**describe(store, info.name), **info.to_dict()}
    except ConsentryError as exc:
        fail(str(exc))
    print(json.dumps(out))


@exchange_app.command("list")
def exchange_list() -> None:
    """Exchanges: checkpoint, last success, added/removed in the last pull, last error, stale
    warning, feedback outbox counts (never credentials); one JSON line each."""
    from consentry.exchanges.programs import describe_all

    for d in describe_all(_store()):
        print(json.dumps(d))
        if d.get("stale_warning"):
            _say(f"warning: exchange {d['name']}: {d['stale_warning']}")


@exchange_app.command("rotate-credentials")
def exchange_rotate(
    name: str = typer.Argument(..., show_default=False),
    credentials_file: Path = typer.Option(..., "--credentials-file", help="New credentials ('-' = stdin)."),
) -> None:
    """Replace an exchange's credentials (encrypted at rest; audited; never shown)."""
    from consentry.exchanges.programs import rotate_credentials

    try:
        print(json.dumps(rotate_credentials(_store(), name, _read_secret_file(credentials_file))))
    except ConsentryError as exc:
        fail(str(exc))


@exchange_app.command("remove")
def exchange_remove(name: str = typer.Argument(..., show_default=False)) -> None:
    """Forget an exchange (its bank and entries stay)."""
    try:
        _store().remove(name)
    except ConsentryError as exc:
        fail(str(exc))


@exchange_app.command("pull")
def exchange_pull(name: Optional[str] = typer.Argument(None, help="Only this exchange (default: all).")) -> None:
    """Pull from the checkpoint: add new hashes, withdraw the ones the source withdrew."""
    from consentry.exchanges.base import pull, pull_all

    store = _store()

    def progress(r) -> None:  # a live line on a terminal; nothing in logs or pipes
        if err_console.is_terminal:
            err_console.print(f"{r.exchange}: {r.changes:,} records read, {r.added:,} added, {r.removed:,} removed",
                              end="\r", highlight=False)

    try:
        reports = [pull(store, name, progress=progress)] if name else pull_all(store, progress)
    except ConsentryError as exc:
        fail(str(exc))
    if err_console.is_terminal:
        err_console.print(" " * 78, end="\r")  # clear the progress line
    failed = False
    for r in reports:
        print(json.dumps(r.to_dict()))
        failed = failed or bool(r.errors)
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)


@exchange_app.command("feedback")
def exchange_feedback(
    name: Optional[str] = typer.Argument(None, help="The exchange (default with --list/--send: all)."),
    status: Optional[str] = typer.Option(None, "--status", help="pending_review, blocked or not_blocked"),
    pdq: Optional[List[str]] = typer.Option(None, "--pdq", help="PDQ hash (repeatable)"),
    md5: Optional[List[str]] = typer.Option(None, "--md5", help="MD5 (repeatable)"),
    list_: bool = typer.Option(False, "--list", help="Show the feedback outbox (one JSON line per item)."),
    state: Optional[str] = typer.Option(None, "--state", help="With --list: pending, sent, failed or cancelled."),
    send: bool = typer.Option(False, "--send", help="Send what is due now (the service does this on its schedule)."),
) -> None:
    """Feedback to exchanges: hashes and the program's statuses only.

    Review decisions queue feedback automatically; --list shows the outbox, --send delivers what is
    due. With --status and hashes, queue feedback by hand (a consentry-hub gets it at once).
    """
    from consentry.exchanges import feedback as fb
    from consentry.exchanges.base import send_feedback

    store = _store()
    try:
        if list_:
            for it in fb.list_outbox(store, name, state, limit=10_000):
                print(json.dumps(it.to_dict()))
            return
        if status is None:
            if not send:
                fail("give --status with hashes, or --list, or --send", EXIT_USAGE)
            reports = fb.deliver(store, name)
            for r in reports:
                print(json.dumps(r))
            raise typer.Exit(EXIT_FAILED if any(r.get("error") or r.get("failed") for r in reports) else EXIT_OK)
        if status not in ("pending_review", "blocked", "not_blocked"):
            fail("--status must be pending_review, blocked or not_blocked", EXIT_USAGE)
        if not name:
            fail("name the exchange", EXIT_USAGE)
        hashes = [("pdq", v.strip().lower()) for v in pdq or []] + [("md5", v.strip().lower()) for v in md5 or []]
        if not hashes:
            fail("name at least one hash with --pdq or --md5", EXIT_USAGE)
        if store.get(name).type == "consentry-hub":
            items = [{"signal_type": st, "value": v, "status": status} for st, v in hashes]
            print(json.dumps(send_feedback(store, name, items)))
            return
        queued = fb.queue_manual(store, name, status, hashes)
        reports = fb.deliver(store, name)
        print(json.dumps({"queued": queued, "delivery": reports}))
    except ConsentryError as exc:
        fail(str(exc))
