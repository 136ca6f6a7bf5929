"""``consentry signals list|enable|disable``: signal types switched on and off while running.

The choice is stored in the database (every worker and CLI follows it); without one,
``CONSENTRY_SIGNAL_TYPES`` (comma-separated) applies, and without that, every type."""

from __future__ import annotations

import json

import typer

from consentry.cli_common import fail
from consentry.config import get_settings
from consentry.errors import ConsentryError

signals_app = typer.Typer(help="Signal types this instance computes and matches (stored in the database).",
                          no_args_is_help=True)


def _db():
    from consentry.db import open_database

    return open_database()


def _actor() -> str:
    from consentry.cli_banks import _cli_actor

    return _cli_actor()


@signals_app.command("list")
def signals_list() -> None:
    """Show enabled and disabled signal types (JSON)."""
    from consentry.instance_settings import signal_types_view

    print(json.dumps(signal_types_view(_db(), get_settings().signal_types)))


def _switch(name: str, on: bool) -> None:
    from consentry.instance_settings import change_signal_type, signal_types_view

    db = _db()
    try:
        change_signal_type(db, name, on, get_settings().signal_types, actor=_actor())
    except ConsentryError as exc:
        fail(str(exc))
    print(json.dumps(signal_types_view(db, get_settings().signal_types)))


@signals_app.command("enable")
def signals_enable(name: str = typer.Argument(..., help="md5, sha1, sha256, pdq, vpdq, ...")) -> None:
    """Switch a signal type on (hashing and matching, on every worker within a second)."""
    _switch(name, True)


@signals_app.command("disable")
def signals_disable(name: str = typer.Argument(..., help="e.g. vpdq on a photo-only service")) -> None:
    """Switch a signal type off: not computed by POST /v1/hash, not matched (queries get a warning)."""
    _switch(name, False)
