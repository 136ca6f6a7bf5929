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

from consentry import __version__
from consentry.cli_banks import bank_app, db_app, keys_app, match_cmd
from consentry.cli_victims import exchange_app, victim_app
from consentry.cli_evidence import analyze_cmd, compare_cmd
from consentry.cli_scan import scan_cmd
from consentry.cli_common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, err_console, fail, progress_bar  # noqa: F401
from consentry.cli_common import hash_table, plural, write_result
from consentry.config import get_settings, resolve_home


def _home_note() -> str:
    try:
        home, why = resolve_home()
    except Exception as exc:  # noqa: BLE001 - --help must work whatever the environment says
        return f"Home: cannot be determined ({exc})."
    state = "exists" if home.is_dir() else "not created yet"
    return (f"Home (database, keys, vault): {home} ({why}; {state}). "
            "Set CONSENTRY_HOME to use another; without it, a .consentry directory in the working "
            "directory or a parent is used, else the user data directory.")


app = typer.Typer(
    name="consentry",
    help="Hash, match and assess media against known abuse and non-consensual imagery.",
    epilog=_home_note(),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.add_typer(bank_app, name="bank")
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
from consentry.cli_signals import signals_app  # noqa: E402  (signal types on/off, issue 22)

app.add_typer(signals_app, name="signals")
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
app.command("compare")(compare_cmd)  # derivation proof (issue 16)
app.command("scan")(scan_cmd)
from consentry.cli_ledger import register as _register_ledger  # noqa: E402  (content ledger, sweep: issue 14)

_register_ledger(app)
from consentry.cli_cybertip import register as _register_cybertip  # noqa: E402  (CyberTipline: issue 15)

_register_cybertip(app)
from consentry.cli_notices import register as _register_notices  # noqa: E402  (notices, statements: issue 14)

_register_notices(app)
from consentry.cli_cybertip import report_app as _report_app  # noqa: E402
from consentry.cli_transparency import register as _register_transparency  # noqa: E402  (issue 15)

_register_transparency(_report_app)


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
    if not files:
        err_console.print("warning: no files found in " + ", ".join(str(p) for p in paths),
                          highlight=False, markup=False, soft_wrap=True)
    failures = 0
    results = []
    with progress_bar() as progress:
        task = progress.add_task("hashing", total=len(files), rate="")
        for i, result in enumerate(hash_many(files, limits, workers), 1):
            if not result.ok:
                failures += 1
            if fmt is OutputFormat.jsonl:
                write_result(json.dumps(result.to_dict()), progress)
            else:
                results.append(result)
            elapsed = progress.tasks[0].elapsed or 0
            progress.update(task, advance=1, rate=f"{i / elapsed:.1f} files/s" if elapsed else "")
    if fmt is OutputFormat.table:
        out = Console()
        out.print(hash_table(results, out.width))
    if failures:
        err_console.print(f"{failures} of {plural(len(files), 'file')} could not be hashed", highlight=False)
    raise typer.Exit(EXIT_FAILED if failures else EXIT_OK)


@app.command("serve")
def serve_cmd(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port."),
    workers: int = typer.Option(1, min=1, help="Worker processes."),
) -> None:
    """Run the HTTP service (API, console, victim page).

    The address is printed once the service answers. Forwarded client addresses
    (X-Forwarded-For) are believed only from the proxies in CONSENTRY_TRUSTED_PROXIES.
    """
    import uvicorn

    from consentry.bootstrap import DEMO_BANK, DEMO_PDQ, ensure_admin_key, ensure_demo_bank
    from consentry.config import ensure_home
    from consentry.db import open_database
    from consentry.web.accesslog import log_config

    settings = get_settings()
    if ensure_home(settings.home):
        _warn_new_home(settings.home, resolve_home()[1])
    # Bind first: a busy port fails here, with a way out, before anything is created or announced.
    # The socket also carries TCP_NODELAY to the accepted connections (see _listen_socket).
    sock = _listen_socket(host, port)
    try:
        db = open_database(settings)
        seeded = ensure_demo_bank(db)
        db.dispose()
    except Exception as exc:  # noqa: BLE001 - a bad DATABASE_URL or an unreachable server
        fail(f"cannot open the database: {str(exc).splitlines()[0][:200]}")
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
    where = ("DATABASE_URL" if settings.database_url else "SQLite") + f"; home {settings.home}"

    def announce() -> None:
        # the first admin key is created only once the service runs, so it is never created unseen
        try:
            db = open_database(settings, upgrade=False)
            try:
                secret = ensure_admin_key(db)
            finally:
                db.dispose()
        except Exception as exc:  # noqa: BLE001 - the service runs; say why there is no key
            secret = None
            err_console.print(f"warning: cannot create the first admin key: {str(exc).splitlines()[0][:200]} "
                              "(create one with: consentry keys create --role admin)",
                              highlight=False, markup=False, soft_wrap=True)
        print(f"Consentry {__version__} is running at {url}  (API docs: {url}docs; {where})", flush=True)
        print(f"  review console: {url}console  (add a reviewer: consentry users create NAME --role moderator)\n"
              f"  victim hashing page: {url}submit", flush=True)
        if secret:
            print("\nFirst start: an admin API key was created. It is shown only this once:\n"
                  f"\n    {secret}\n", flush=True)
        if seeded or secret:
            print(f"Try the demo bank ({DEMO_BANK!r}, benign example hashes):\n"
                  f"    curl -H 'Authorization: Bearer <key>' '{url}v1/match?signal_type=pdq&value={DEMO_PDQ}'\n",
                  flush=True)

    proxies = ",".join(settings.trusted_proxies)
    options = dict(factory=True, log_level="info", log_config=log_config(),
                   proxy_headers=bool(proxies), forwarded_allow_ips=proxies or None)
    if workers > 1:
        # uvicorn's multi-process mode leaves Nagle's algorithm on for accepted connections, which
        # costs ~40 ms per request (delayed ACKs); a listening socket with TCP_NODELAY passes it on.
        import threading

        threading.Thread(target=_announce_when_healthy, args=(sock, announce), daemon=True).start()
        uvicorn.run("consentry.web.app:create_app", fd=sock.fileno(), workers=workers, **options)
        return
    server = _announcing_server(uvicorn.Config("consentry.web.app:create_app", **options), announce)
    server.run(sockets=[sock])
    if not server.started:
        raise typer.Exit(EXIT_FAILED)


def _announcing_server(config, on_started):
    """A uvicorn server that calls ``on_started`` once the app started up and the socket serves."""
    import uvicorn

    class AnnouncingServer(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets=sockets)
            if self.started and not self.should_exit:
                on_started()

    return AnnouncingServer(config)


def _announce_when_healthy(sock, announce, timeout: float = 600.0) -> None:
    """Several workers: print the banner once one of them answers ``/healthz``."""
    import time
    import urllib.request

    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/healthz"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    announce()
                    return
        except OSError:
            pass
        time.sleep(0.2)


def _listen_socket(host: str, port: int):
    import errno
    import socket

    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(addr)
        sock.listen(2048)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            fail(f"port {port} on {host} is already in use (another Consentry or another program); "
                 f"pick another with --port {port + 1} (make run PORT={port + 1})")
        if exc.errno == errno.EACCES:
            fail(f"not allowed to listen on {host}:{port} (ports below 1024 need privileges); "
                 f"pick another with --port 8000 (make run PORT=8000)")
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    sock.set_inheritable(True)
    return sock


@app.command("version")
def version_cmd() -> None:
    """Print the version."""
    print(__version__)


_new_home_warned = False


def _warn_new_home(home: Path, why: str) -> None:
    """Say on stderr that a command created a new, empty home (often: run from another directory)."""
    global _new_home_warned
    if _new_home_warned:
        return
    _new_home_warned = True
    err_console.print(f"warning: created a new, empty Consentry home at {home} ({why}). If you meant an "
                      "existing one, set CONSENTRY_HOME to it or run from the directory holding its "
                      ".consentry.", highlight=False, markup=False, soft_wrap=True)


from consentry.cli_examples import add_examples  # noqa: E402

add_examples(app)  # every command's --help ends with an example


def main() -> None:
    """Entry point: never shows a traceback unless CONSENTRY_DEBUG is set."""
    try:
        home, why = resolve_home()
        existed = home.exists()
    except Exception:  # noqa: BLE001 - a command that needs the home reports the problem itself
        home, existed = None, True
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
    finally:
        if home is not None and not existed and home.exists():
            _warn_new_home(home, why)


if __name__ == "__main__":
    main()
