"""The ``consentry`` command line: thin Typer commands over the core modules."""

from __future__ import annotations

import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from consentry import __version__
from consentry.cli_banks import bank_app, db_app, keys_app, match_cmd
from consentry.cli_victims import exchange_app, victim_app
from consentry.cli_evidence import analyze_cmd
from consentry.cli_scan import scan_cmd
from consentry.cli_common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, err_console, fail, progress_bar  # noqa: F401
from consentry.config import get_settings

app = typer.Typer(
    name="consentry",
    help="Hash, match and assess media against known abuse and non-consensual imagery.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.add_typer(bank_app, name="bank")
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(victim_app, name="victim")
app.add_typer(exchange_app, name="exchange")
from consentry.cli_review import cases_app, users_app  # noqa: E402  (review console, issue 6 part B)

app.add_typer(users_app, name="users")
app.add_typer(cases_app, name="cases")
from consentry.cli_review import audit_app, rules_app, vault_app, webhooks_app  # noqa: E402  (issue 6 part A)

app.add_typer(rules_app, name="rules")
app.add_typer(audit_app, name="audit")
app.add_typer(vault_app, name="vault")
app.add_typer(webhooks_app, name="webhooks")
app.command("match")(match_cmd)
app.command("analyze")(analyze_cmd)
app.command("scan")(scan_cmd)


class OutputFormat(str, Enum):
    jsonl = "jsonl"
    table = "table"


@app.command("hash")
def hash_cmd(
    paths: List[Path] = typer.Argument(..., help="Files or directories (recursed).", show_default=False),
    fmt: OutputFormat = typer.Option(OutputFormat.jsonl, "--format", "-f", help="Output format."),
    seconds_per_hash: Optional[float] = typer.Option(
        None, "--seconds-per-hash", min=0.0, help="vPDQ sampling interval (0 = every frame)."
    ),
    workers: int = typer.Option(1, "--workers", "-j", min=1, max=256,
                                help="Processes hashing in parallel (output order is kept)."),
) -> None:
    """Compute md5, sha256, PDQ (photos) and vPDQ (videos) for each file.

    One JSON object per file on stdout. Exit status 0 when every file hashed, 1 when any failed.
    """
    from consentry.hashing import hash_many, iter_files

    limits = get_settings().limits
    if seconds_per_hash is not None:
        limits = limits.with_(video_seconds_per_hash=seconds_per_hash)
    files = list(iter_files(paths))
    failures = 0
    results = []
    with progress_bar() as progress:
        task = progress.add_task("hashing", total=len(files), rate="")
        for i, result in enumerate(hash_many(files, limits, workers), 1):
            if not result.ok:
                failures += 1
            if fmt is OutputFormat.jsonl:
                sys.stdout.write(json.dumps(result.to_dict()) + "\n")
                sys.stdout.flush()
            else:
                results.append(result)
            elapsed = progress.tasks[0].elapsed or 0
            progress.update(task, advance=1, rate=f"{i / elapsed:.1f} files/s" if elapsed else "")
    if fmt is OutputFormat.table:
        table = Table(show_lines=False)
        for col in ("path", "type", "size", "sha256", "pdq", "q", "vpdq frames", "error"):
            table.add_column(col, overflow="fold")
        for r in results:
            table.add_row(
                r.path, r.content_type, str(r.size if r.size is not None else ""),
                r.sha256 or "", r.pdq or "", "" if r.pdq_quality is None else str(r.pdq_quality),
                "" if r.vpdq is None else str(len(r.vpdq)), r.error or "",
            )
        Console().print(table)
    if failures:
        err_console.print(f"{failures} of {len(files)} file(s) could not be hashed", highlight=False)
    raise typer.Exit(EXIT_FAILED if failures else EXIT_OK)


@app.command("serve")
def serve_cmd(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port."),
    workers: int = typer.Option(1, min=1, help="Worker processes."),
) -> None:
    """Run the HTTP service (API, console, victim page)."""
    import uvicorn

    from consentry.bootstrap import DEMO_BANK, DEMO_PDQ, ensure_admin_key, ensure_demo_bank
    from consentry.db import open_database

    settings = get_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    try:
        db = open_database(settings)
        secret = ensure_admin_key(db)
        seeded = ensure_demo_bank(db)
        db.dispose()
    except Exception as exc:  # noqa: BLE001 - a bad DATABASE_URL or an unreachable server
        fail(f"cannot open the database: {str(exc).splitlines()[0][:200]}")
    url = f"http://{host}:{port}/"
    print(f"Consentry {__version__} is running at {url}  (API docs: {url}docs; state in "
          f"{settings.home.resolve()})", flush=True)
    print(f"  review console: {url}console  (add a reviewer: consentry users create NAME --role moderator)\n"
          f"  victim hashing page: {url}submit", flush=True)
    if secret:
        print("\nFirst start: an admin API key was created. It is shown only this once:\n"
              f"\n    {secret}\n", flush=True)
    if seeded or secret:
        print(f"Try the demo bank ({DEMO_BANK!r}, benign example hashes):\n"
              f"    curl -H 'Authorization: Bearer <key>' '{url}v1/match?signal_type=pdq&value={DEMO_PDQ}'\n",
              flush=True)
    if workers > 1:
        # uvicorn's multi-process mode leaves Nagle's algorithm on for accepted connections, which
        # costs ~40 ms per request (delayed ACKs); a listening socket with TCP_NODELAY passes it on.
        sock = _listen_socket(host, port)
        uvicorn.run("consentry.web.app:create_app", factory=True, fd=sock.fileno(), workers=workers,
                    log_level="info")
    else:
        uvicorn.run("consentry.web.app:create_app", factory=True, host=host, port=port, log_level="info")


def _listen_socket(host: str, port: int):
    import socket

    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(addr)
        sock.listen(2048)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    sock.set_inheritable(True)
    return sock


@app.command("version")
def version_cmd() -> None:
    """Print the version."""
    print(__version__)


def main() -> None:
    """Entry point: never shows a traceback unless CONSENTRY_DEBUG is set."""
    try:
        app(standalone_mode=True)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001
        if os.environ.get("CONSENTRY_DEBUG"):
            raise
        err_console.print(f"error: {type(exc).__name__}: {exc}", highlight=False)
        sys.exit(EXIT_FAILED)


if __name__ == "__main__":
    main()
