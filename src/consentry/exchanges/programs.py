"""Exchange programs beside ``consentry-hub``: StopNCII, NCMEC hash sharing, ThreatExchange.

One interface for every program client:

- ``fetch(state) -> Iterator[Batch]``: records since the checkpoint ``state`` (a JSON object the
  client defines). A batch's ``state`` is saved right after the batch is applied, or never when it
  is ``None`` (StopNCII and NCMEC save only once a run or a range is complete; ThreatExchange after
  each page, its updates being time-ordered).
- ``send(items) -> {outbox id: error or None}``: feedback (and opted-in submissions) from the
  outbox; raises :class:`~consentry.exchanges._http.RetryLater` when the whole batch must wait.
- ``stale_after``: seconds after the last successful pull when the checkpoint is reported stale.

Credentials are a JSON object (or the program's usual one-line form) kept encrypted with the
instance secret in ``exchanges.key_encrypted``; they are never printed, logged, returned or put in
``options``/``state``.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update

from consentry.banks.formats.records import HashRecord, RecordError
from consentry.banks.service import NotFound, as_utc as _aware
from consentry.banks.bulk_gc import collector_paused
from consentry.db.inorder import InOrder
from consentry.db.models import BANK_KINDS, ENTRY_NOT_ACTIVE, Bank, Entry, utcnow, value_key
from consentry.db.models_victims import ExchangeConfig, ExchangeKeptSignal, ExchangeOutbox
from consentry.errors import ConsentryError
from consentry.exchanges.base import _NAME, ExchangeError, ExchangeStore, PullReport, _fernet
from consentry.review.audit import AuditLog

PROGRAM_TYPES = ("stopncii", "ncmec", "threatexchange")
ENVIRONMENTS = ("production", "test")
MAX_CREDENTIALS = 8192
MAX_KEPT_VALUE = 512 * 1024
_OPTION_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_SECRET_WORDS = ("key", "password", "token", "secret")


@dataclass
class Batch:
    records: list[HashRecord | RecordError] = field(default_factory=list)
    kept: list[tuple[str, str, str]] = field(default_factory=list)  # (signal type, value, add|remove)
    state: dict[str, Any] | None = None  # checkpoint to save after this batch (None: not yet)
    rows: int = 0  # program records read (for the report)


def program_module(type_: str):
    if type_ == "stopncii":
        from consentry.exchanges import stopncii as m
    elif type_ == "ncmec":
        from consentry.exchanges import ncmec as m
    elif type_ == "threatexchange":
        from consentry.exchanges import threatexchange as m
    else:
        raise ExchangeError(f"unknown exchange type {type_!r}")
    return m


def parse_options(pairs: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in pairs or []:
        k, sep, v = str(p).partition("=")
        k = k.strip().lower().replace("-", "_")
        if not sep or not _OPTION_KEY.match(k):
            raise ExchangeError("options are key=value with a key of letters, digits and '_'")
        if any(w in k for w in _SECRET_WORDS):
            raise ExchangeError(f"option {k!r} looks like a secret: put it in the credentials file")
        if len(v) > 1000:
            raise ExchangeError(f"option {k!r} is longer than 1000 characters")
        out[k] = v.strip()
    return out


def read_credentials_text(text: str) -> Any:
    """The credentials file's content: a JSON object, else the one-line form (stripped)."""
    if not text or not text.strip():
        raise ExchangeError("the credentials file is empty")
    if len(text) > MAX_CREDENTIALS:
        raise ExchangeError("the credentials file is too large")
    text = text.strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError:
            raise ExchangeError("the credentials file is not valid JSON") from None
        if not isinstance(obj, dict) or not all(isinstance(v, str) for v in obj.values()):
            raise ExchangeError("the credentials JSON must be an object of strings")
        return obj
    return text


def _base_url(url: str) -> str:
    if not re.match(r"^https?://[^\s/?#]+(/[^\s?#]*)?$", url or "") or len(url) > 1000:
        raise ExchangeError("base_url must be an http:// or https:// URL without query or fragment")
    return url.rstrip("/")


def add_program(store: ExchangeStore, type_: str, name: str, bank: str | None, credentials_text: str, *,
                environment: str = "production", options: dict[str, str] | None = None,
                actor: str = "cli") -> dict[str, Any]:
    if not _NAME.match(name or ""):
        raise ExchangeError("exchange name must be 1-100 characters: letters, digits, '.', '_', '-'")
    if type_ not in PROGRAM_TYPES:
        raise ExchangeError(f"exchange type must be one of: consentry-hub, {', '.join(PROGRAM_TYPES)}")
    if environment not in ENVIRONMENTS:
        raise ExchangeError("--environment must be test or production")
    mod = program_module(type_)
    options = dict(options or {})
    write_rows = options.pop("write_rows", None)  # every program: records gathered per write
    creds = mod.parse_credentials(read_credentials_text(credentials_text))
    options = mod.check_options(options, environment)
    if write_rows is not None:
        options["write_rows"] = str(write_rows_option({"write_rows": write_rows}))
    url = _base_url(options.pop("base_url", "") or mod.default_url(environment, options))
    bank = bank or name
    kind = options.get("bank_kind") or mod.BANK_KIND
    if kind not in BANK_KINDS or kind == "allow":
        raise ExchangeError(f"bank_kind must be one of {', '.join(k for k in BANK_KINDS if k != 'allow')}")
    try:
        store.banks.get_bank(bank)
    except NotFound:
        store.banks.create_bank(bank, kind, f"Hashes pulled from the {type_} exchange {name!r}",
                                source=f"exchange:{name}")
    token = _fernet(store.settings).encrypt(json.dumps(creds).encode()).decode()
    with store.db.session() as s:
        if s.scalar(select(ExchangeConfig.id).where(ExchangeConfig.name == name)) is not None:
            raise ExchangeError(f"an exchange named {name!r} already exists")
        s.add(ExchangeConfig(name=name, type=type_, url=url, key_encrypted=token, bank=bank, cursor=0,
                             environment=environment, options=options, state={}))
        s.flush()
        AuditLog(store.db).record("exchange.added", actor, {"exchange": name, "type": type_, "bank": bank,
                                                            "environment": environment}, session=s)
    return describe(store, name)


def credentials(store: ExchangeStore, name: str) -> dict[str, str]:
    raw = store.key(name)
    try:
        obj = json.loads(raw)
    except ValueError:
        raise ExchangeError("the stored credentials cannot be read") from None
    if not isinstance(obj, dict):
        raise ExchangeError("the stored credentials cannot be read")
    return obj


def rotate_credentials(store: ExchangeStore, name: str, credentials_text: str, *, actor: str = "cli") -> dict[str, Any]:
    with store.db.session() as s:
        x = s.scalar(select(ExchangeConfig).where(ExchangeConfig.name == name))
        if x is None:
            raise ExchangeError(f"no exchange named {name!r}")
        type_ = x.type
    if type_ == "consentry-hub":
        key = credentials_text.strip()
        if key.startswith("{"):
            obj = read_credentials_text(key)
            key = str(obj.get("key") or obj.get("api_key") or "")
        if not key or len(key) > 500 or "\n" in key:
            raise ExchangeError("the hub credentials are one API key (a partner key on the hub)")
        plain = key
    else:
        plain = json.dumps(program_module(type_).parse_credentials(read_credentials_text(credentials_text)))
    token = _fernet(store.settings).encrypt(plain.encode()).decode()
    with store.db.session() as s:
        s.execute(update(ExchangeConfig).where(ExchangeConfig.name == name)
                  .values(key_encrypted=token, credentials_rotated_at=utcnow()))
        AuditLog(store.db).record("exchange.credentials_rotated", actor, {"exchange": name}, session=s)
    return describe(store, name)


def client_for_program(store: ExchangeStore, name: str, **kw: Any):
    with store.db.session() as s:
        x = s.scalar(select(ExchangeConfig).where(ExchangeConfig.name == name))
        if x is None:
            raise ExchangeError(f"no exchange named {name!r}")
        type_, url, env, options = x.type, x.url, x.environment, dict(x.options or {})
    return program_module(type_).Client(url, credentials(store, name), options=options, environment=env, **kw)


# ----------------------------------------------------------------- status
STALE_AFTER = {"stopncii": 30 * 86400, "threatexchange": 85 * 86400, "ncmec": 30 * 86400}


def _describe_row(x: ExchangeConfig, counts: dict[str, int], now: datetime) -> dict[str, Any]:
    state = dict(x.state or {})
    success = _aware(x.last_success_at)
    stale_after = STALE_AFTER.get(x.type)
    stale = None
    if stale_after is not None:
        if success is None:
            if x.created_at and (now - _aware(x.created_at)).total_seconds() > 86400:
                stale = "no successful pull yet"
        elif (now - success).total_seconds() > stale_after:
            stale = (f"the checkpoint is {int((now - success).total_seconds() // 86400)} days old "
                     f"(over {stale_after // 86400}): withdrawals may have been missed")
    if x.type == "consentry-hub":
        checkpoint: Any = int(x.cursor or 0)
    else:
        checkpoint = {k: v for k, v in state.items() if k in program_module(x.type).CHECKPOINT_KEYS}
    return {
        "name": x.name, "type": x.type, "environment": x.environment or "production", "url": x.url,
        "bank": x.bank, "options": dict(x.options or {}), "checkpoint": checkpoint,
        "cursor": int(x.cursor or 0),
        "last_pull_at": _aware(x.last_pull_at).isoformat() if x.last_pull_at else None,
        "last_success_at": success.isoformat() if success else None,
        "last_added": int(x.last_added or 0), "last_removed": int(x.last_removed or 0),
        "last_error": x.last_error, "stale": bool(stale), "stale_warning": stale,
        "credentials_rotated_at": _aware(x.credentials_rotated_at).isoformat() if x.credentials_rotated_at else None,
        "outbox": counts,
    }


def _counts(s, exchange_ids: list[int]) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = {i: {"pending": 0, "sent": 0, "failed": 0, "cancelled": 0} for i in exchange_ids}
    if not exchange_ids:
        return out
    rows = s.execute(select(ExchangeOutbox.exchange_id, ExchangeOutbox.state, func.count())
                     .where(ExchangeOutbox.exchange_id.in_(exchange_ids))
                     .group_by(ExchangeOutbox.exchange_id, ExchangeOutbox.state))
    for xid, st, n in rows:
        out.setdefault(xid, {})[st] = int(n)
    return out


def describe_all(store: ExchangeStore) -> list[dict[str, Any]]:
    now = utcnow()
    with store.db.session() as s:
        rows = list(s.scalars(select(ExchangeConfig).order_by(ExchangeConfig.name)))
        counts = _counts(s, [x.id for x in rows])
        return [_describe_row(x, counts.get(x.id, {}), now) for x in rows]


def describe(store: ExchangeStore, name: str) -> dict[str, Any]:
    with store.db.session() as s:
        x = s.scalar(select(ExchangeConfig).where(ExchangeConfig.name == name))
        if x is None:
            raise ExchangeError(f"no exchange named {name!r}")
        return _describe_row(x, _counts(s, [x.id]).get(x.id, {}), utcnow())


def record_hub_result(store: ExchangeStore, name: str, report: PullReport) -> None:
    """Pull statistics for a consentry-hub pull (its checkpoint is the cursor)."""
    with store.db.session() as s:
        s.execute(update(ExchangeConfig).where(ExchangeConfig.name == name).values(
            last_added=report.added, last_removed=report.removed, last_success_at=utcnow()))


# ----------------------------------------------------------------- pull
def _apply_kept(store: ExchangeStore, exchange_id: int, kept: list[tuple[str, str, str]]) -> tuple[int, int]:
    added = removed = 0
    now = utcnow()
    with store.db.session() as s:
        for st, value, op in kept:
            digest = hashlib.sha256(value.encode()).hexdigest()
            where = (ExchangeKeptSignal.exchange_id == exchange_id, ExchangeKeptSignal.signal_type == st,
                     ExchangeKeptSignal.value_sha256 == digest)
            row = s.scalar(select(ExchangeKeptSignal).where(*where))
            if op == "remove":
                if row is not None:
                    s.execute(delete(ExchangeKeptSignal).where(*where))
                    removed += 1
            elif row is None:
                s.add(ExchangeKeptSignal(exchange_id=exchange_id, signal_type=st, value_sha256=digest, value=value,
                                         updated_at=now))
                s.flush()
                added += 1
    return added, removed


def kept_signals(store: ExchangeStore, name: str) -> list[tuple[str, str]]:
    with store.db.session() as s:
        xid = s.scalar(select(ExchangeConfig.id).where(ExchangeConfig.name == name))
        return [(r.signal_type, r.value) for r in s.scalars(
            select(ExchangeKeptSignal).where(ExchangeKeptSignal.exchange_id == xid).order_by(ExchangeKeptSignal.id))]


def _save(store: ExchangeStore, name: str, **values: Any) -> None:
    if "last_error" in values and values["last_error"]:
        values["last_error"] = str(values["last_error"])[:500]
    with store.db.session() as s:
        s.execute(update(ExchangeConfig).where(ExchangeConfig.name == name).values(**values))


def _stale_adds(store: ExchangeStore, bank_id: int, records: list) -> list:
    """Drop the adds a withdrawal already applied here supersedes (snapshot programs: StopNCII).

    A run interrupted (killed, an error) after it withdrew a hash re-reads its pages from the saved
    checkpoint, older snapshots first: an ``Active`` record whose ``lastModtimestamp`` is older than
    the withdrawal recorded on the entry (``meta.withdrawn_last_modified``) must not bring the hash
    back, even for the time until the withdrawal's page is read again."""
    with store.db.session() as s:
        if s.scalar(select(Entry.id).where(Entry.bank_id == bank_id, ENTRY_NOT_ACTIVE,
                                           Entry.status == "withdrawn").limit(1)) is None:
            return records  # nothing withdrawn in the bank: nothing to supersede
        adds: dict[tuple[str, str], list[int]] = {}
        for i, r in enumerate(records):
            if isinstance(r, HashRecord) and r.op == "add" and isinstance((r.meta or {}).get("last_modified"), int):
                adds.setdefault((r.signal_type, value_key(r.value)), []).append(i)
        if not adds:
            return records
        drop: set[int] = set()
        keys = list({k for _, k in adds})
        for j in range(0, len(keys), 500):
            for st, vk, meta in s.execute(select(Entry.signal_type, Entry.value_key, Entry.meta).where(
                    Entry.bank_id == bank_id, Entry.signal_type.in_({t for t, _ in adds}),
                    Entry.value_key.in_(keys[j:j + 500]), Entry.status == "withdrawn")):
                gone = (meta or {}).get("withdrawn_last_modified")
                for i in adds.get((st, vk), ()):
                    if isinstance(gone, int) and records[i].meta["last_modified"] < gone:
                        drop.add(i)
    return [r for i, r in enumerate(records) if i not in drop] if drop else records


def _note_withdrawals(store: ExchangeStore, bank_id: int, records: list) -> None:
    """Record on each entry a batch withdraws the program's timestamp of the withdrawal (see
    _stale_adds); done before the batch is applied, so a kill between the two cannot lose it."""
    when: dict[tuple[str, str], int] = {}
    for r in records:
        if isinstance(r, HashRecord) and isinstance((r.meta or {}).get("last_modified"), int):
            k = (r.signal_type, value_key(r.value))
            if r.op == "remove":
                when[k] = max(when.get(k, 0), r.meta["last_modified"])
            else:
                when.pop(k, None)  # a later add in the same batch won
    if not when:
        return
    keys = list({k for _, k in when})
    with store.db.session() as s:
        for j in range(0, len(keys), 500):
            for e in s.scalars(select(Entry).where(
                    Entry.bank_id == bank_id, Entry.signal_type.in_({t for t, _ in when}),
                    Entry.value_key.in_(keys[j:j + 500]))):
                ts = when.get((e.signal_type, e.value_key))
                if ts is not None and ts > int((e.meta or {}).get("withdrawn_last_modified") or 0):
                    e.meta = {**(e.meta or {}), "withdrawn_last_modified": ts}


#: Program records gathered from consecutive pages before they are written (one ``add_records``
#: call, so one import batch): pages of a few hundred records each would otherwise cost a transaction
#: and its fixed work apiece. A page that arrives while the gathered ones wait is not delayed for
#: long: the group is also written when it is older than :data:`PULL_WRITE_SECONDS`. Override per
#: exchange with ``--option write_rows=N`` (1: every page on its own, as it arrives).
PULL_WRITE_ROWS = 50_000
PULL_WRITE_SECONDS = 2.0
MAX_WRITE_ROWS = 1_000_000


def write_rows_option(options: dict[str, Any]) -> int:
    """The ``write_rows`` option (records gathered per write), checked; the default when absent."""
    raw = str(options.get("write_rows") or "").strip()
    if not raw:
        return PULL_WRITE_ROWS
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_WRITE_ROWS:
        raise ExchangeError(f"option write_rows must be a whole number from 1 to {MAX_WRITE_ROWS}")
    return int(raw)


class _PageGroup:
    """Consecutive pages of one pull gathered into one write, with the checkpoint of the last.

    A page that withdraws a value an earlier page of the group adds is not gathered with it (the
    group is written first): inside one write the last record for a value wins, so the entry would
    never exist, and with it the withdrawal's timestamp that keeps a re-read older snapshot from
    bringing the hash back after an interrupted run (:func:`_stale_adds`)."""

    def __init__(self) -> None:
        self.records: list[HashRecord | RecordError] = []
        self.kept: list[tuple[str, str, str]] = []
        self.state: dict[str, Any] | None = None
        self.adds: set[tuple[str, str]] = set()
        self.since = 0.0

    def __len__(self) -> int:
        return len(self.records) + len(self.kept)

    def conflicts(self, batch: Batch) -> bool:
        adds = self.adds
        return bool(adds) and any(isinstance(r, HashRecord) and r.op == "remove" and (r.signal_type, r.value) in adds
                                  for r in batch.records)

    def take(self, batch: Batch, now: float) -> None:
        if not self:
            self.since = now
        self.records += batch.records
        self.kept += batch.kept
        self.adds.update((r.signal_type, r.value) for r in batch.records if isinstance(r, HashRecord) and r.op == "add")
        if batch.state is not None:
            self.state = batch.state


def pull_program(store: ExchangeStore, name: str, *, client=None, max_batches: int = 1_000_000,
                 write_rows: int | None = None, progress: Any = None) -> PullReport:
    """Pull a program exchange from its checkpoint; the caller holds nothing (we take the lock).

    Pages are gathered into writes of up to ``write_rows`` records (default: the exchange's
    ``write_rows`` option, else :data:`PULL_WRITE_ROWS`); a checkpoint a page carries is saved only
    after the write holding that page (and every page before it) has committed, so a pull killed at
    any point resumes from a checkpoint whose records are all in the bank."""
    with store.db.session() as s:
        x = s.scalar(select(ExchangeConfig).where(ExchangeConfig.name == name))
        if x is None:
            raise ExchangeError(f"no exchange named {name!r}")
        cursor0 = int(x.cursor or 0)
    report = PullReport(name, cursor0, cursor0)
    with store.exclusive(name) as mine:
        if not mine:
            report.busy = True
            return report
        with store.db.session() as s:
            x = s.scalar(select(ExchangeConfig).where(ExchangeConfig.name == name))
            xid, bank, state = x.id, x.bank, dict(x.state or {})
            options = dict(x.options or {})
            bank_id = s.scalar(select(Bank.id).where(Bank.name == bank))
        if write_rows is None:
            write_rows = write_rows_option(options)
        client = client or client_for_program(store, name)
        kept = [0, 0]
        group = _PageGroup()

        def apply(g: _PageGroup) -> None:
            if g.records:
                records = _stale_adds(store, bank_id, g.records)
                _note_withdrawals(store, bank_id, records)
                result = store.banks.add_records(bank, records, added_by=f"exchange:{name}")
                report.added += result.added + result.reactivated
                report.removed += result.removed
                report.unchanged += result.unchanged + result.remove_not_found + len(g.records) - len(records)
                report.skipped += len(result.errors)
                report.errors += [f"{e.position}: {e.message}" for e in result.errors][:50]
                report.errors = report.errors[:50]
            if g.kept:
                a, r = _apply_kept(store, xid, g.kept)
                kept[0], kept[1] = kept[0] + a, kept[1] + r
            if g.state is not None:  # every record up to this page is committed: now it may move
                cur = int(g.state.get("cursor", 0) or 0)
                _save(store, name, state=g.state, cursor=cur)
                report.cursor_to = cur
            if progress and (g.records or g.kept):
                progress(report)

        writer = InOrder(store.db, "consentry-pull")

        def write(wait: bool = False) -> None:
            """Hand the gathered pages to the writer (it writes while the next pages are read)."""
            nonlocal group
            g, group = group, _PageGroup()
            writer.submit(apply, g)
            if wait:
                writer.drain()

        try:
            with collector_paused():  # pages of records that live until their write (bulk_gc)
                pages = iter(client.fetch(dict(state)))
                for n in range(max_batches):
                    try:
                        batch = next(pages)
                    except StopIteration:
                        break
                    except ConsentryError:
                        write(wait=True)  # the pages read before the failure are good: keep them
                        raise
                    report.changes += batch.rows
                    now = time.monotonic()
                    if group and group.conflicts(batch):
                        write()
                    group.take(batch, now)
                    if len(group) >= write_rows or now - group.since >= PULL_WRITE_SECONDS:
                        write()
                    elif not group.records and not group.kept and group.state is not None:
                        write()  # an empty page that moves the checkpoint: nothing to wait for
                write(wait=True)
        except ConsentryError as exc:
            _save(store, name, last_pull_at=utcnow(), last_error=str(exc))
            raise
        except Exception as exc:  # a fault of ours or of the database: shown, never silent
            _save(store, name, last_pull_at=utcnow(), last_error=f"internal error: {type(exc).__name__}")
            raise
        finally:
            writer.close()
            close = getattr(client, "close", None)
            if close:
                close()
        _save(store, name, last_pull_at=utcnow(), last_success_at=utcnow(), last_error=None,
              last_added=report.added + kept[0], last_removed=report.removed + kept[1])
    return report
