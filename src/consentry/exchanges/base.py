"""Exchange configurations (stored in the ``exchanges`` table) and the checkpointed pull.

An exchange has a name, a type (``consentry-hub``), a URL, an API key (stored encrypted with
Fernet under the instance secret: ``CONSENTRY_SECRET_KEY``, else ``$CONSENTRY_HOME/secret.key``;
never printed), a target bank and a cursor. A pull reads the remote change log from the cursor,
applies adds and removals to the target bank (removals really withdraw: a hash the hub withdrew
stops matching here), and saves the cursor after each page, so an interrupted pull resumes where
it stopped and re-applying a page changes nothing. One pull per exchange runs at a time.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterator

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select, update

from consentry.banks.service import BankService, NotFound
from consentry.config import Settings, ensure_home
from consentry.db.models import utcnow
from consentry.db.models_victims import ExchangeConfig
from consentry.errors import ConsentryError

EXCHANGE_TYPES = ("consentry-hub",)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")


class ExchangeError(ConsentryError):
    code = "exchange_error"


@dataclass
class ExchangeInfo:
    id: int
    name: str
    type: str
    url: str
    bank: str
    cursor: int
    last_pull_at: datetime | None
    last_error: str | None
    created_at: datetime | None

    def to_dict(self) -> dict[str, Any]:  # never the key
        return {"name": self.name, "type": self.type, "url": self.url, "bank": self.bank,
                "cursor": self.cursor, "last_pull_at": self.last_pull_at.isoformat() if self.last_pull_at else None,
                "last_error": self.last_error}


@dataclass
class PullReport:
    exchange: str
    cursor_from: int
    cursor_to: int
    changes: int = 0
    added: int = 0
    removed: int = 0
    unchanged: int = 0
    skipped: int = 0  # changes without a hash (bank events) or rejected values
    errors: list[str] = field(default_factory=list)
    busy: bool = False  # another pull of this exchange was running

    def to_dict(self) -> dict[str, Any]:
        return {"exchange": self.exchange, "cursor_from": self.cursor_from, "cursor_to": self.cursor_to,
                "changes": self.changes, "added": self.added, "removed": self.removed,
                "unchanged": self.unchanged, "skipped": self.skipped, "errors": self.errors[:20],
                "busy": self.busy}


def _info(x: ExchangeConfig) -> ExchangeInfo:
    return ExchangeInfo(x.id, x.name, x.type, x.url, x.bank, int(x.cursor or 0), x.last_pull_at, x.last_error,
                        x.created_at)


def _fernet(settings: Settings) -> Fernet:
    secret = settings.secret_key
    if not secret:
        path = settings.home / "secret.key"
        if not path.exists():
            ensure_home(settings.home)  # 0700 when new
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(base64.urlsafe_b64encode(os.urandom(32)).decode())
        secret = path.read_text().strip()
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(("consentry-exchange:" + secret).encode()).digest()))


class ExchangeStore:
    def __init__(self, banks: BankService, settings: Settings):
        self.banks, self.db, self.settings = banks, banks.db, settings

    def add(self, name: str, type_: str, url: str, key: str, bank: str | None = None) -> ExchangeInfo:
        if not _NAME.match(name or ""):
            raise ExchangeError("exchange name must be 1-100 characters: letters, digits, '.', '_', '-'")
        if type_ not in EXCHANGE_TYPES:
            raise ExchangeError(f"exchange type must be one of: {', '.join(EXCHANGE_TYPES)}")
        if not re.match(r"^https?://[^\s/?#]+", url or "") or len(url) > 1000:
            raise ExchangeError("the URL must start with http:// or https://")
        if not key or len(key) > 500:
            raise ExchangeError("an API key for the exchange is required")
        bank = bank or name
        try:
            self.banks.get_bank(bank)
        except NotFound:
            self.banks.create_bank(bank, "ncii", f"Hashes pulled from the {type_} exchange {name!r}",
                                   source=f"exchange:{name}")
        token = _fernet(self.settings).encrypt(key.encode()).decode()
        with self.db.session() as s:
            if s.scalar(select(ExchangeConfig.id).where(ExchangeConfig.name == name)) is not None:
                raise ExchangeError(f"an exchange named {name!r} already exists")
            x = ExchangeConfig(name=name, type=type_, url=url.rstrip("/"), key_encrypted=token, bank=bank, cursor=0)
            s.add(x)
            s.flush()
            return _info(x)

    def list(self) -> list[ExchangeInfo]:
        with self.db.session() as s:
            return [_info(x) for x in s.scalars(select(ExchangeConfig).order_by(ExchangeConfig.name))]

    def get(self, name: str) -> ExchangeInfo:
        with self.db.session() as s:
            x = s.scalar(select(ExchangeConfig).where(ExchangeConfig.name == name))
            if x is None:
                raise ExchangeError(f"no exchange named {name!r}")
            return _info(x)

    def key(self, name: str) -> str:
        with self.db.session() as s:
            token = s.scalar(select(ExchangeConfig.key_encrypted).where(ExchangeConfig.name == name))
        if token is None:
            raise ExchangeError(f"no exchange named {name!r}")
        try:
            return _fernet(self.settings).decrypt(token.encode()).decode()
        except InvalidToken:
            raise ExchangeError("cannot decrypt the exchange key: was CONSENTRY_SECRET_KEY or "
                                "secret.key changed?") from None

    def remove(self, name: str) -> None:
        with self.db.session() as s:
            x = s.scalar(select(ExchangeConfig).where(ExchangeConfig.name == name))
            if x is None:
                raise ExchangeError(f"no exchange named {name!r}")
            s.delete(x)

    def checkpoint(self, name: str, cursor: int | None, error: str | None = None) -> None:
        values: dict[str, Any] = {"last_pull_at": utcnow(), "last_error": (error or None) and error[:500]}
        if cursor is not None:
            values["cursor"] = cursor
        with self.db.session() as s:
            s.execute(update(ExchangeConfig).where(ExchangeConfig.name == name).values(**values))

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """True while this process holds the pull lock of ``name`` (False: someone else does)."""
        from consentry.db.locks import exclusive  # shared with the ledger sweeper (issue 14)

        with exclusive(self.db, self.settings.home, "exchange", name) as got:
            yield got


def client_for(store: ExchangeStore, info: ExchangeInfo):
    if info.type == "consentry-hub":
        from consentry.exchanges.consentry_hub import ConsentryHubClient

        return ConsentryHubClient(info.url, store.key(info.name))
    if info.type in ("stopncii", "ncmec", "threatexchange"):  # issue 13: programs
        from consentry.exchanges.programs import client_for_program

        return client_for_program(store, info.name)
    raise ExchangeError(f"unknown exchange type {info.type!r}")


def pull(store: ExchangeStore, name: str, *, client=None, max_pages: int = 10_000,
         progress: Callable[[PullReport], None] | None = None) -> PullReport:
    """Pull ``name`` from its checkpoint to the end of the remote change log; ``progress`` is
    called with the report so far after each write (possibly from a writer thread)."""
    from consentry.exchanges.consentry_hub import apply_changes

    info = store.get(name)
    if info.type != "consentry-hub":  # issue 13: StopNCII, NCMEC, ThreatExchange
        from consentry.exchanges.programs import pull_program

        return pull_program(store, name, client=client, progress=progress)
    report = PullReport(name, info.cursor, info.cursor)
    with store.exclusive(name) as mine:
        if not mine:
            report.busy = True
            return report
        info = store.get(name)  # the cursor may have moved while we waited
        report.cursor_from = report.cursor_to = info.cursor
        client = client or client_for(store, info)
        cursor = info.cursor
        try:
            for _ in range(max_pages):
                rows, next_cursor = client.changes(cursor)
                if not rows:
                    break
                # adds, withdrawals and bank_deleted (withdraws the hub bank's entries), in order
                apply_changes(store.banks, info.bank, rows, name, report)
                report.changes += len(rows)
                if progress:
                    progress(report)
                if next_cursor <= cursor:
                    raise ExchangeError("the exchange returned a cursor that does not advance")
                cursor = next_cursor
                store.checkpoint(name, cursor)
                report.cursor_to = cursor
        except ConsentryError as exc:
            store.checkpoint(name, None, str(exc))
            raise
        except Exception as exc:  # a fault of ours or of the database: shown, never silent
            store.checkpoint(name, None, f"internal error: {type(exc).__name__}")
            raise
        store.checkpoint(name, cursor)
        from consentry.exchanges.programs import record_hub_result  # last success, added/removed

        record_hub_result(store, name, report)
    return report


def pull_all(store: ExchangeStore, progress: Callable[[PullReport], None] | None = None) -> list[PullReport]:
    out = []
    for info in store.list():
        try:
            out.append(pull(store, info.name, progress=progress))
        except ConsentryError as exc:
            r = PullReport(info.name, info.cursor, info.cursor)
            r.errors.append(str(exc))
            out.append(r)
    return out


def send_feedback(store: ExchangeStore, name: str, items: list[dict[str, Any]], *, client=None) -> dict[str, Any]:
    info = store.get(name)
    client = client or client_for(store, info)
    return client.feedback(items)


class ExchangePuller:
    """Background thread of ``consentry serve``: pulls every exchange each ``exchange_pull_seconds``
    (0 = off). Several workers may run one each: the per-exchange lock makes them take turns."""

    def __init__(self, banks: BankService, settings: Settings):
        import threading

        self.store = ExchangeStore(banks, settings)
        self.interval = settings.exchange_pull_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="exchange-puller", daemon=True)

    def start(self) -> None:
        if self.interval > 0:
            self._thread.start()

    def _run(self) -> None:
        import logging

        log = logging.getLogger("consentry.exchanges")
        while not self._stop.wait(self.interval):
            try:
                for r in pull_all(self.store):
                    if r.errors:
                        log.warning("exchange %s: %s", r.exchange, r.errors[0])
                from consentry.exchanges.feedback import deliver  # the feedback outbox (issue 13)

                for d in deliver(self.store):
                    if d.get("error"):
                        log.warning("exchange %s feedback: %s", d["exchange"], d["error"])
            except Exception:  # noqa: BLE001 - keep serving; the next round retries
                log.exception("exchange pull failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
