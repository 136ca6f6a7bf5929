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

    The file holds only what the victim page sends: md5 and PDQ (photos) or per-second PDQ
    frames (videos). No file names, paths, sizes or dates.
    """
    from consentry.hashing import hash_many, iter_files
    from consentry.victims.client import hashes_document

    files = list(iter_files(paths))
    doc, failed = hashes_document(hash_many(files, get_settings().limits))
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


@exchange_app.command("add")
def exchange_add(
    type_: str = typer.Option(..., "--type", help="consentry-hub"),
    url: str = typer.Option(..., "--url", help="The hub's base URL."),
    key: Optional[str] = typer.Option(None, "--key", help="API key (a partner key on the hub: consentry keys create --role partner)."),
    key_stdin: bool = typer.Option(False, "--key-stdin", help="Read the key from stdin instead."),
    name: Optional[str] = typer.Option(None, "--name", help="Name (default: from the URL's host)."),
    bank: Optional[str] = typer.Option(None, "--bank", help="Target bank (default: the exchange name)."),
) -> None:
    """Subscribe to an exchange. The key is stored encrypted and never shown again."""
    import re
    from urllib.parse import urlparse

    if key_stdin:
        key = sys.stdin.readline().strip()
    if not key:
        fail("give the exchange's API key with --key or --key-stdin", EXIT_USAGE)
    if name is None:
        host = urlparse(url).netloc or "hub"
        name = re.sub(r"[^A-Za-z0-9_.\-]+", "-", f"{type_}-{host}").strip("-")[:100]
    try:
        info = _store().add(name, type_, url, key, bank)
    except ConsentryError as exc:
        fail(str(exc))
    print(json.dumps(info.to_dict()))


@exchange_app.command("list")
def exchange_list() -> None:
    """Exchanges with their cursor and last pull (never the key); one JSON line each."""
    for info in _store().list():
        print(json.dumps(info.to_dict()))


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
    try:
        reports = [pull(store, name)] if name else pull_all(store)
    except ConsentryError as exc:
        fail(str(exc))
    failed = False
    for r in reports:
        print(json.dumps(r.to_dict()))
        failed = failed or bool(r.errors)
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)


@exchange_app.command("feedback")
def exchange_feedback(
    name: str = typer.Argument(..., show_default=False),
    status: str = typer.Option(..., "--status", help="pending_review, blocked or not_blocked"),
    pdq: Optional[List[str]] = typer.Option(None, "--pdq", help="PDQ hash (repeatable)"),
    md5: Optional[List[str]] = typer.Option(None, "--md5", help="MD5 (repeatable)"),
) -> None:
    """Tell the hub what happened to content matching its hashes (it shows victims counts only)."""
    from consentry.exchanges.base import send_feedback

    if status not in ("pending_review", "blocked", "not_blocked"):
        fail("--status must be pending_review, blocked or not_blocked", EXIT_USAGE)
    items = [{"signal_type": "pdq", "value": v, "status": status} for v in pdq or []]
    items += [{"signal_type": "md5", "value": v, "status": status} for v in md5 or []]
    if not items:
        fail("name at least one hash with --pdq or --md5", EXIT_USAGE)
    try:
        print(json.dumps(send_feedback(_store(), name, items)))
    except ConsentryError as exc:
        fail(str(exc))
