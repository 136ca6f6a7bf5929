"""Banks and entries: create, add, import, withdraw, list, export.

All writes go through here (CLI, API and exchanges alike), and each write that affects matching
appends to the ``changes`` log in the same transaction, so an index tailing the log can never
miss one.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator, Sequence

from sqlalchemy.exc import IntegrityError
from sqlalchemy import DateTime, Text, and_, bindparam, cast, func, not_, or_, select, text, update
from sqlalchemy.orm import Session

from consentry import fastjson
from consentry.banks.bulk_gc import collector_paused
from consentry.banks.formats.records import HashRecord, RecordError
from consentry.db.models import (
    BANK_KINDS, ENTRY_NOT_ACTIVE, ENTRY_STATUSES, Bank, Change, Entry, EntryVariant, utcnow, value_key,
)
from consentry.db.session import Database, ensure_pg_temp_table
from consentry.errors import ConsentryError, SignalValueError
from consentry.review.audit import AuditLog
from consentry.signals import get_signal_type, signal_types


class BankError(ConsentryError):
    code = "bank_error"


class NotFound(BankError):
    code = "not_found"


class Conflict(BankError):
    code = "conflict"


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")


@dataclass
class BankInfo:
    id: int
    name: str
    kind: str
    description: str
    thresholds: dict[str, Any]
    source: str
    shared: bool
    created_at: datetime
    counts: dict[str, int] = field(default_factory=dict)  # entries by status
    match_percent: float = 100.0  # gradual rollout: share of lookups that may match this bank
    disabled_until: datetime | None = None  # the bank matches nothing until then

    def threshold(self, signal_type: str) -> int | float:
        t = self.thresholds.get(signal_type)
        return get_signal_type(signal_type).default_threshold if t is None else t

    def disabled_at(self, now: datetime | None = None) -> bool:
        """True while a timed disable is in force (it ends by itself)."""
        return self.disabled_until is not None and self.disabled_until > (now or utcnow())

    def in_rollout(self, content_key: str | None) -> bool:
        """Whether a lookup of ``content_key`` may match this bank under its rollout share.

        Deterministic: the same content (its SHA-256, or the queried value) always gets the
        same answer for the same bank, so an upload is never blocked on one try and let
        through on the next."""
        return rollout_bucket(self.name, content_key) < self.match_percent

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "kind": self.kind, "description": self.description,
            "thresholds": self.thresholds, "source": self.source, "shared": self.shared,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "counts": self.counts, "match_percent": self.match_percent,
            "disabled_until": self.disabled_until.isoformat() if self.disabled_until else None,
        }


@dataclass
class EntryInfo:
    id: int
    bank: str
    signal_type: str
    value: str
    quality: int | None
    status: str
    source: str | None
    external_ids: list[str]
    tags: list[str]
    category: str | None
    meta: dict[str, Any]
    added_by: str | None
    added_at: datetime
    disabled_until: datetime | None = None  # a timed disable: active again from then on

    @property
    def provenance(self) -> dict[str, Any]:
        return {
            "source": self.source, "external_ids": self.external_ids, "tags": self.tags,
            "category": self.category, "added_by": self.added_by,
            "added_at": self.added_at.isoformat() if self.added_at else None,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "bank": self.bank, "signal_type": self.signal_type, "value": self.value,
            "quality": self.quality, "status": self.status, **self.provenance, "meta": self.meta,
            "disabled_until": self.disabled_until.isoformat() if self.disabled_until else None,
        }


@dataclass
class ImportReport:
    records: int = 0
    added: int = 0
    reactivated: int = 0
    unchanged: int = 0
    removed: int = 0
    remove_not_found: int = 0
    errors: list[RecordError] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "records": self.records, "added": self.added, "reactivated": self.reactivated,
            "unchanged": self.unchanged, "removed": self.removed,
            "remove_not_found": self.remove_not_found, "errors": len(self.errors),
        }


def as_utc(dt: datetime | None) -> datetime | None:
    """SQLite hands back naive UTC datetimes; PostgreSQL aware ones."""
    return dt.replace(tzinfo=timezone.utc) if dt is not None and dt.tzinfo is None else dt


def rollout_bucket(bank_name: str, content_key: str | None) -> float:
    """A number in [0, 100) fixed by (bank, content): SHA-256 of both, as a fraction."""
    digest = hashlib.sha256(f"{bank_name}\0{content_key or ''}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") * 100.0 / 2**64


def validate_match_percent(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BankError("match_percent must be a number from 0 to 100") from None
    if not (0.0 <= number <= 100.0):
        raise BankError("match_percent must be a number from 0 to 100")
    return number


def validate_until(value: Any) -> datetime | None:
    """An ISO 8601 time (or datetime) in the future, as aware UTC; None clears."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise BankError(f"not an ISO 8601 time: {value!r} (e.g. 2030-01-31T12:00:00Z)") from None
    if not isinstance(value, datetime):
        raise BankError("disabled_until must be an ISO 8601 time")
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    value = value.astimezone(timezone.utc)
    if value <= utcnow():
        raise BankError("disabled_until must be in the future")
    return value


def _bank_info(bank: Bank, counts: dict[str, int] | None = None) -> BankInfo:
    mp = bank.match_percent
    return BankInfo(bank.id, bank.name, bank.kind, bank.description or "", dict(bank.thresholds or {}),
                    bank.source, bool(bank.shared), bank.created_at, counts or {},
                    100.0 if mp is None else float(mp), as_utc(bank.disabled_until))


#: :meth:`BankService.entries_by_id`'s query: the columns :func:`_entry_info` reads
_ENTRIES_BY_ID = (
    select(Entry.id, Entry.signal_type, Entry.value, Entry.quality, Entry.status, Entry.source,
           Entry.external_ids, Entry.tags, Entry.category, Entry.meta, Entry.added_by, Entry.added_at,
           Entry.disabled_until, Entry.bank_id, Bank.name.label("bank_name"))
    .join(Bank, Bank.id == Entry.bank_id)
    .where(Entry.id.in_(bindparam("ids", expanding=True)))
)


def _entry_info(e: Entry, bank_name: str) -> EntryInfo:
    until = as_utc(e.disabled_until)
    status = e.status
    if status == "disabled" and until is not None and until <= utcnow():
        status, until = "active", None  # the timed disable has run out
    return EntryInfo(e.id, bank_name, e.signal_type, e.value, e.quality, status, e.source,
                     list(e.external_ids or []), list(e.tags or []), e.category, dict(e.meta or {}),
                     e.added_by, e.added_at, until)


def validate_thresholds(thresholds: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in (thresholds or {}).items():
        if name not in signal_types():
            raise BankError(f"unknown signal type in thresholds: {name!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise BankError(f"threshold for {name} must be a number") from None
        if name == "pdq" and not (0 <= number <= 128 and number == int(number)):
            raise BankError("PDQ threshold must be an integer from 0 to 128")
        if name == "vpdq" and not (0 <= number <= 256 and number == int(number)):
            raise BankError("vPDQ frame threshold must be an integer from 0 to 256")
        out[name] = int(number) if number == int(number) else number
    return out


# ------------------------------------------------------------------ bulk import (issue 13)
#: Records per import batch: one transaction, committed with its change-log rows. SQLite writes
#: every index page a commit touched again (to the WAL, then back), and random hashes touch most
#: pages of the unique index, so fewer, larger commits cost far less there: 1M new entries took
#: 21.5 s in batches of 50,000 and 13.3 s in batches of 200,000 (SQL alone, bench machine).
IMPORT_BATCH = {"sqlite": 200_000, "postgresql": 50_000}

_CANONICAL = {name: re.compile(f"[0-9a-f]{{{n}}}").fullmatch
              for name, n in (("md5", 32), ("sha1", 40), ("sha256", 64), ("pdq", 64))}
_STAGE_COLS = "signal_type, value, value_key, quality, op, source, external_ids, tags, category, meta"
_SQLITE_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS consentry_import (signal_type TEXT, value TEXT, value_key TEXT, "
    "quality INTEGER, op TEXT, source TEXT, external_ids TEXT, tags TEXT, category TEXT, meta TEXT)"
)
_PG_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS consentry_import (signal_type text, value text, value_key text, "
    "quality integer, op text, source text, external_ids json, tags json, category text, meta json) "
    "ON COMMIT DELETE ROWS"
)
#: SQLite page cache while an import batch runs (KiB, negative as PRAGMA cache_size takes it):
#: the unique index is updated at random places, so a small cache re-reads pages for every row.
_SQLITE_IMPORT_CACHE = -256 * 1024
_NOW = bindparam("now", type_=DateTime(timezone=True))


def _join_statements(join: str) -> dict[str, Any]:
    """The statements that join the staging table to ``entries``. ``join`` is ``CROSS JOIN`` on
    SQLite, which makes the staging table the outer loop (one unique-index probe a row); left
    free, SQLite may drive from the bank's withdrawn entries and scan the staging table for each."""
    on = (f"consentry_import t {join} entries e ON e.bank_id = :bank AND e.signal_type = t.signal_type "
          "AND e.value_key = t.value_key")
    withdrawable = f"FROM {on} WHERE t.op = 'remove' AND e.status <> 'withdrawn'"
    revivable = f"FROM {on} WHERE t.op = 'add' AND e.status = 'withdrawn'"
    return {
        "removes_found": text(f"SELECT count(*) FROM {on} WHERE t.op = 'remove'"),
        "withdraw_ids": text(f"SELECT e.id {withdrawable} ORDER BY e.id LIMIT 50"),
        "withdraw_changes": text(
            "INSERT INTO changes (op, bank_id, entry_id, signal_type, at) "
            f"SELECT 'withdraw', :bank, e.id, e.signal_type, :now {withdrawable} ORDER BY e.id").bindparams(_NOW),
        "withdraw": text(
            f"UPDATE entries SET status = 'withdrawn', updated_at = :now WHERE id IN (SELECT e.id {withdrawable})"
        ).bindparams(_NOW),
        "revive_ids": text(f"SELECT e.id {revivable} ORDER BY e.id LIMIT 50"),
        "revive_changes": text(
            "INSERT INTO changes (op, bank_id, entry_id, signal_type, at) "
            f"SELECT 'add', :bank, e.id, e.signal_type, :now {revivable} ORDER BY e.id").bindparams(_NOW),
        "revive": text(
            f"UPDATE entries SET status = 'active', updated_at = :now WHERE id IN (SELECT e.id {revivable})"
        ).bindparams(_NOW),
    }


_SQL = {"postgresql": _join_statements("JOIN"), "sqlite": _join_statements("CROSS JOIN")}
#: the bank, held against deletion until the batch commits (entries carry no foreign key)
_PG_HOLD_BANK = text("SELECT 1 FROM banks WHERE id = :bank FOR KEY SHARE")
_SQL_BANK_EXISTS = text("SELECT 1 FROM banks WHERE id = :bank")
_ENTRY_COPY_COLS = ("id, bank_id, signal_type, value, value_key, quality, status, source, external_ids, tags, "
                    "category, meta, added_by, added_at, updated_at")
_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")
_COPY_ESCAPE = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NUL = "\\N"  # COPY text format's NULL


def _copy_text(value: Any) -> str:
    """One field in PostgreSQL's COPY text format."""
    if value is None:
        return _NUL
    text_ = value if isinstance(value, str) else str(value)
    return text_.translate(_COPY_ESCAPE) if _COPY_SPECIAL.search(text_) else text_


def _pg_copy_entries(copy: Any, bank_id: int, rows: list[tuple], ids: list[int], added_by: str | None,
                     now: str) -> None:
    """COPY ``rows`` (staged adds) into ``entries`` with the given ids, as text: each line is
    formatted once in Python, the fields escaped where they hold a tab, newline or backslash."""
    tail = f"\t{_copy_text(added_by)}\t{now}\t{now}\n"
    head = f"\t{bank_id}\t"
    lines = []
    for i, (st, value, vkey, quality, _op, source, ext, tags, category, meta) in zip(ids, rows):
        if _COPY_SPECIAL.search(f"{value}{vkey}{source or ''}{ext}{tags}{category or ''}{meta}"):
            st, value, vkey, source, ext, tags, category, meta = map(
                _copy_text, (st, value, vkey, source, ext, tags, category, meta))
        lines.append(f"{i}{head}{st}\t{value}\t{vkey}\t{_NUL if quality is None else quality}\tactive\t"
                     f"{_NUL if source is None else source}\t{ext}\t{tags}\t"
                     f"{_NUL if category is None else category}\t{meta}{tail}")
        if len(lines) >= 10_000:
            copy.write("".join(lines))
            lines = []
    if lines:
        copy.write("".join(lines))
_SQL_ANY_WITHDRAWN = text("SELECT 1 FROM entries WHERE bank_id = :bank AND status <> 'active' "
                          "AND status = 'withdrawn' LIMIT 1")
# Values already in the bank are left to ON CONFLICT, an index probe per row: a NOT EXISTS
# anti-join here let PostgreSQL choose a hash join that read the whole bank once per batch (a
# re-import of 1M entries took 34 s instead of 11 s). Each conflicting row uses up a value of the
# entries' sequence, which leaves gaps in ids and nothing else.
_INSERT_NEW = (
    "INSERT INTO entries (bank_id, signal_type, value, value_key, quality, status, source, external_ids, "
    "tags, category, meta, added_by, added_at, updated_at) "
    "SELECT :bank, t.signal_type, t.value, t.value_key, t.quality, 'active', t.source, t.external_ids, "
    "t.tags, t.category, t.meta, :by, :now, :now FROM consentry_import t WHERE t.op = 'add'"
    " ORDER BY t.signal_type, t.value_key "
    "ON CONFLICT (bank_id, signal_type, value_key) DO NOTHING"
)
_SQLITE_INSERT = text(_INSERT_NEW).bindparams(_NOW)
_SQL_MAX_ENTRY = text("SELECT coalesce(max(id), 0) FROM entries")
_SQLITE_ADD_CHANGES = text(
    "INSERT INTO changes (op, bank_id, entry_id, signal_type, at) "
    "SELECT 'add', bank_id, id, signal_type, :now FROM entries WHERE id > :before ORDER BY id").bindparams(_NOW)
_SQLITE_FIRST_NEW = text("SELECT id FROM entries WHERE id > :before ORDER BY id LIMIT 50")
_PG_INSERT_WITH_CHANGES = text(
    f"WITH ins AS ({_INSERT_NEW} RETURNING id, signal_type), "
    "ch AS (INSERT INTO changes (op, bank_id, entry_id, signal_type, at) "
    "SELECT 'add', :bank, id, signal_type, :now FROM ins ORDER BY id RETURNING entry_id) "
    "SELECT count(*), (array_agg(entry_id ORDER BY entry_id))[1:50] FROM ch"
).bindparams(_NOW)


def _quality(q: Any) -> int | None:
    if q is None:
        return None
    try:
        return int(q)
    except (TypeError, ValueError, OverflowError):
        return None


def _json_list(items: Any) -> str:
    return fastjson.dumps(list(items)) if items else "[]"


def _stage_row(rec: HashRecord) -> tuple | str:
    """One record as a staging row (canonical value, JSON already serialised), or an error."""
    st_name, value = rec.signal_type, rec.value
    check = _CANONICAL.get(st_name)
    if check is None or not isinstance(value, str) or check(value) is None:
        try:
            st = get_signal_type(st_name)
            st_name, value = st.name, st.parse(value)
        except (KeyError, SignalValueError) as exc:
            msg = exc.args[0] if isinstance(exc, KeyError) else str(exc)
            return str(msg)[:200]
        rec.signal_type, rec.value = st_name, value
    meta = rec.meta if isinstance(rec.meta, dict) else {}
    if meta:
        quality = _quality(meta.get("quality"))
        rest = {k: v for k, v in meta.items() if k != "quality"}
        meta_json = fastjson.dumps(rest) if rest else "{}"
    else:
        quality, meta_json = None, "{}"
    return (st_name, value, value_key(value), quality, "remove" if rec.op == "remove" else "add",
            rec.source, _json_list(rec.external_ids), _json_list(rec.tags), rec.category, meta_json)


def _sqlite_rows(conn: Any, rows: list[tuple], sql_for: Callable[[int], str], fixed: Sequence = ()) -> int:
    """Run ``sql_for(k)`` (a statement taking ``fixed`` then ``k`` rows' values) over ``rows`` in
    statements of thousands of rows: cheaper than ``executemany``, and the driver lets go of the GIL
    once a statement, not once a row, so the reader thread is not held up. Returns the rows changed."""
    import itertools
    import sqlite3

    raw = conn.connection.driver_connection
    width = len(rows[0]) if rows else 1
    limit = raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) if hasattr(raw, "getlimit") else 999
    per = max(1, min(3000, (limit - len(fixed)) // width))
    full = sql_for(per)
    cur = raw.cursor()
    changed = 0
    try:
        for i in range(0, len(rows), per):
            part = rows[i : i + per]
            cur.execute(full if len(part) == per else sql_for(len(part)),
                        [*fixed, *itertools.chain.from_iterable(part)])
            changed += max(cur.rowcount, 0)
    finally:
        cur.close()
    return changed


def _stage_sql(k: int) -> str:
    return f"INSERT INTO temp.consentry_import ({_STAGE_COLS}) VALUES " + ",".join(["(?,?,?,?,?,?,?,?,?,?)"] * k)


@functools.lru_cache(maxsize=8)
def _direct_sql(k: int) -> str:
    """``k`` staged rows straight into ``entries`` (parameters ?1 bank, ?2 added_by, ?3 now, then
    the rows' ten columns each; ``op`` is not stored): the path of a batch of adds only."""
    values = ",".join("(" + ",".join(f"?{4 + r * 10 + c}" for c in range(10)) + ")" for r in range(k))
    return ("INSERT INTO entries (bank_id, signal_type, value, value_key, quality, status, source, external_ids, "
            "tags, category, meta, added_by, added_at, updated_at) SELECT ?1, column1, column2, column3, "
            "column4, 'active', column6, column7, column8, column9, column10, ?2, ?3, ?3 "
            f"FROM (VALUES {values}) WHERE true ON CONFLICT (bank_id, signal_type, value_key) DO NOTHING")


def _merge(report: ImportReport, part: ImportReport) -> None:
    report.added += part.added
    report.reactivated += part.reactivated
    report.unchanged += part.unchanged
    report.removed += part.removed
    report.remove_not_found += part.remove_not_found
    report.errors += part.errors


def _pg_copy_adds(conn: Any, bank_id: int, rows: list[tuple], added_by: str | None,
                  now: datetime) -> list[int] | None:
    """New entries (``rows``, adds only) written with ``COPY``: ids taken from the entries'
    sequence first, so the change-log rows can be copied too. Returns the ids, or None with nothing
    written when a row is already in the bank (the unique index refuses it; the COPY is undone)."""
    import psycopg

    cur = conn.connection.driver_connection.cursor()
    cur.execute("SELECT nextval(pg_get_serial_sequence('entries', 'id')) FROM generate_series(1, %s)",
                (len(rows),))
    ids = [r[0] for r in cur.fetchall()]
    stamp = now.isoformat()
    cur.execute("SAVEPOINT consentry_copy")
    try:
        with cur.copy(f"COPY entries ({_ENTRY_COPY_COLS}) FROM STDIN") as copy:
            _pg_copy_entries(copy, bank_id, rows, ids, added_by, stamp)
    except psycopg.errors.UniqueViolation:
        cur.execute("ROLLBACK TO SAVEPOINT consentry_copy")
        return None
    cur.execute("RELEASE SAVEPOINT consentry_copy")
    with cur.copy("COPY changes (op, bank_id, entry_id, signal_type, at) FROM STDIN") as copy:
        copy.write("".join([f"add\t{bank_id}\t{i}\t{r[0]}\t{stamp}\n" for i, r in zip(ids, rows)]))
    return ids


class _Pipeline:
    """Runs an import's batch writes in order on one worker thread, at most one batch behind the
    reader: parsing the next batch (Python) overlaps writing this one (the database drivers let go
    of the GIL while the database works). An import of one batch, or a database whose connections
    cannot move between threads (in-memory SQLite), runs inline."""

    def __init__(self, db: Database) -> None:
        from sqlalchemy.pool import SingletonThreadPool, StaticPool

        self._threaded = not isinstance(db.engine.pool, (SingletonThreadPool, StaticPool))
        self._pool: Any = None
        self._pending: Any = None

    def submit(self, fn: Callable[..., ImportReport], args: tuple, report: ImportReport, final: bool) -> None:
        self.drain(report)
        if not self._threaded or (final and self._pool is None):
            _merge(report, fn(*args))
            return
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(1, thread_name_prefix="consentry-import")
        self._pending = self._pool.submit(fn, *args)

    def drain(self, report: ImportReport) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            _merge(report, pending.result())

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)  # a batch in flight finishes (or fails) on its own


class BankService:
    def __init__(self, db: Database):
        self.db = db

    # ---------------------------------------------------------------- banks
    def create_bank(
        self, name: str, kind: str = "custom", description: str = "",
        thresholds: dict[str, Any] | None = None, source: str = "local", shared: bool = False,
        actor: str | None = None, match_percent: float = 100.0,
    ) -> BankInfo:
        if not _NAME.match(name or ""):
            raise BankError("bank name must be 1-100 characters: letters, digits, '.', '_', '-'")
        if kind not in BANK_KINDS:
            raise BankError(f"bank kind must be one of: {', '.join(BANK_KINDS)}")
        try:
            return self._create_bank(name, kind, description, thresholds, source, shared, actor, match_percent)
        except IntegrityError:  # created by another process between our check and our insert
            raise Conflict(f"a bank named {name!r} already exists") from None

    def _create_bank(self, name, kind, description, thresholds, source, shared, actor, match_percent) -> BankInfo:
        with self.db.session() as s:
            if s.scalar(select(Bank.id).where(Bank.name == name)) is not None:
                raise Conflict(f"a bank named {name!r} already exists")
            bank = Bank(name=name, kind=kind, description=description or "",
                        thresholds=validate_thresholds(thresholds), source=source, shared=shared,
                        published_at=utcnow() if shared else None,  # issue 23: deletions reach partners
                        match_percent=validate_match_percent(match_percent))
            s.add(bank)
            s.flush()
            s.add(Change(op="bank", bank_id=bank.id))
            AuditLog(self.db).record("bank.create", actor or "system", {
                "bank": name, "bank_id": bank.id, "kind": kind, "thresholds": bank.thresholds,
                "shared": bool(shared), "source": source, "match_percent": bank.match_percent}, session=s)
            return _bank_info(bank)

    def _bank(self, s: Session, name: str, *, lock: bool = False) -> Bank:
        q = select(Bank).where(Bank.name == name)
        bank = s.scalar(q.with_for_update() if lock else q)
        if bank is None:
            raise NotFound(f"no bank named {name!r}")
        return bank

    def _counts(self, s: Session, bank_ids: Sequence[int]) -> dict[int, dict[str, int]]:
        out: dict[int, dict[str, int]] = {b: {st: 0 for st in ENTRY_STATUSES} for b in bank_ids}
        if bank_ids:
            # all entries from the unique index, the few not active from the partial one
            for bank_id, n in s.execute(select(Entry.bank_id, func.count())
                                        .where(Entry.bank_id.in_(bank_ids)).group_by(Entry.bank_id)):
                out[bank_id]["active"] = n
            rows = s.execute(
                select(Entry.bank_id, Entry.status, func.count())
                .where(Entry.bank_id.in_(bank_ids), ENTRY_NOT_ACTIVE).group_by(Entry.bank_id, Entry.status)
            )
            for bank_id, status, n in rows:
                out[bank_id][status] = n
                out[bank_id]["active"] -= n
            expired = s.execute(
                select(Entry.bank_id, func.count())
                .where(Entry.bank_id.in_(bank_ids), ENTRY_NOT_ACTIVE, Entry.status == "disabled",
                       Entry.disabled_until.is_not(None), Entry.disabled_until <= utcnow())
                .group_by(Entry.bank_id)
            )
            for bank_id, n in expired:  # timed disables that have run out count as active
                out[bank_id]["disabled"] -= n
                out[bank_id]["active"] += n
        return out

    def list_banks(self) -> list[BankInfo]:
        with self.db.session() as s:
            banks = list(s.scalars(select(Bank).order_by(Bank.name)))
            counts = self._counts(s, [b.id for b in banks])
            return [_bank_info(b, counts[b.id]) for b in banks]

    def get_bank(self, name: str) -> BankInfo:
        with self.db.session() as s:
            bank = self._bank(s, name)
            return _bank_info(bank, self._counts(s, [bank.id])[bank.id])

    def banks_by_id(self) -> dict[int, BankInfo]:
        with self.db.session() as s:
            return {b.id: _bank_info(b) for b in s.scalars(select(Bank))}

    def update_bank(self, name: str, actor: str | None = None, **changes: Any) -> BankInfo:
        # ``disabled_until``: given (even as None, which clears it) only when it is to change
        allowed = {"description", "thresholds", "kind", "shared", "new_name", "match_percent", "disabled_until"}
        unknown = set(changes) - allowed
        if unknown:
            raise BankError(f"cannot change: {', '.join(sorted(unknown))}")
        with self.db.session() as s:
            bank = self._bank(s, name)
            if "kind" in changes and changes["kind"] is not None:
                if changes["kind"] not in BANK_KINDS:
                    raise BankError(f"bank kind must be one of: {', '.join(BANK_KINDS)}")
                bank.kind = changes["kind"]
            if changes.get("description") is not None:
                bank.description = changes["description"]
            if changes.get("thresholds") is not None:
                bank.thresholds = validate_thresholds(changes["thresholds"])
            if changes.get("shared") is not None:
                bank.shared = bool(changes["shared"])
                if bank.shared and bank.published_at is None:
                    bank.published_at = utcnow()  # kept when un-published (issue 23)
            if changes.get("match_percent") is not None:
                bank.match_percent = validate_match_percent(changes["match_percent"])
            if "disabled_until" in changes:
                bank.disabled_until = validate_until(changes["disabled_until"])
                changes["disabled_until"] = (bank.disabled_until.isoformat() if bank.disabled_until
                                             else "cleared")
            if changes.get("new_name"):
                if not _NAME.match(changes["new_name"]):
                    raise BankError("bad bank name")
                if s.scalar(select(Bank.id).where(Bank.name == changes["new_name"])) is not None:
                    raise Conflict(f"a bank named {changes['new_name']!r} already exists")
                bank.name = changes["new_name"]
            s.add(Change(op="bank", bank_id=bank.id))
            s.flush()
            AuditLog(self.db).record("bank.update", actor or "system", {
                "bank": name, "bank_id": bank.id,
                "changes": {k: v for k, v in changes.items() if v is not None}}, session=s)
            return _bank_info(bank, self._counts(s, [bank.id])[bank.id])

    def delete_bank(self, name: str, actor: str | None = None) -> int:
        """Delete a bank and all its entries; returns how many entries went with it."""
        with self.db.session() as s:
            # the row lock first (PostgreSQL): an import batch holding the bank commits before the
            # entries are counted and deleted, so none of its entries outlives the bank
            bank = self._bank(s, name, lock=True)
            n = s.scalar(select(func.count()).select_from(Entry).where(Entry.bank_id == bank.id)) or 0
            s.execute(EntryVariant.__table__.delete().where(
                EntryVariant.entry_id.in_(select(Entry.id).where(Entry.bank_id == bank.id))))
            s.execute(Entry.__table__.delete().where(Entry.bank_id == bank.id))
            s.delete(bank)
            # a bank ever published is announced to partners, who withdraw its entries (issue 23)
            s.add(Change(op="bank_deleted", bank_id=bank.id,
                         published=True if bank.shared or bank.published_at is not None else None))
            AuditLog(self.db).record("bank.delete", actor or "system",
                                     {"bank": name, "bank_id": bank.id, "entries": int(n)}, session=s)
            return int(n)

    # -------------------------------------------------------------- entries
    def add_entry(
        self, bank: str, signal_type: str, value: str, *, quality: int | None = None,
        source: str | None = None, external_ids: Sequence[str] = (), tags: Sequence[str] = (),
        category: str | None = None, meta: dict[str, Any] | None = None, added_by: str | None = None,
    ) -> tuple[EntryInfo, bool]:
        """Add one entry (idempotent). Returns (entry, created); a withdrawn entry is revived."""
        st = get_signal_type(signal_type)
        canonical = st.parse(value)
        rec = HashRecord(st.name, canonical, "add", list(external_ids), list(tags), category, source,
                         dict(meta or {}))
        if quality is not None:
            rec.meta["quality"] = int(quality)
        report = self.add_records(bank, [rec], added_by=added_by)
        if report.errors:
            raise SignalValueError(report.errors[0].message)
        entry = self.find_entry(bank, st.name, canonical)
        assert entry is not None
        return entry, bool(report.added or report.reactivated)

    def add_records(
        self, bank: str, records: Iterable[HashRecord | RecordError], *, batch_size: int | None = None,
        added_by: str | None = None, progress: Callable[[int], None] | None = None,
    ) -> ImportReport:
        """Apply a stream of records (adds and removes), committing every ``batch_size``.

        Idempotent: a value already active in the bank is left alone, so importing the same file
        twice adds nothing. Inside one batch the last record for a value wins (duplicates count as
        unchanged). Each batch is written set-based (a staging table loaded with ``COPY`` on
        PostgreSQL, ``executemany`` on SQLite, then one ``INSERT ... SELECT`` into ``entries`` and
        one into ``changes``) and committed with its change-log rows, so a matcher tailing the log
        sees the import arrive batch by batch. Records are read and checked on the calling thread
        while the previous batch is written on another, so a crash loses at most two batches.
        Bad records are reported with their position, in input order. The cyclic garbage
        collector is held off meanwhile (:mod:`consentry.banks.bulk_gc`).
        """
        with collector_paused():
            return self._add_records(bank, records, batch_size=batch_size, added_by=added_by, progress=progress)

    def _add_records(
        self, bank: str, records: Iterable[HashRecord | RecordError], *, batch_size: int | None,
        added_by: str | None, progress: Callable[[int], None] | None,
    ) -> ImportReport:
        report = ImportReport()
        with self.db.session() as s:
            bank_id = self._bank(s, bank).id
        batch_size = max(1, int(batch_size or IMPORT_BATCH.get(self.db.dialect, 50_000)))
        pipe = _Pipeline(self.db)
        state: dict[str, Any] = {}  # carried from batch to batch: whether a COPY met a conflict
        # a large import's first batch is smaller, so the writer starts while the reader is early on
        first_size = batch_size // 8 if batch_size >= 10_000 else batch_size
        ops: dict[tuple[str, str], tuple] = {}
        n_ops = 0
        tombs: list[tuple[str, list[str]]] = []  # (position, external ids), applied in order

        def submit_ops(final: bool = False) -> None:
            nonlocal ops, n_ops
            if ops:
                rows = [ops[k] for k in sorted(ops)]  # key order: index pages are filled in order
                pipe.submit(self._write_batch, (bank_id, rows, added_by, state), report, final)
            if progress and n_ops:
                progress(n_ops)
            ops, n_ops = {}, 0

        def submit_tombs(final: bool = False) -> None:
            nonlocal tombs
            if tombs:
                pipe.submit(self._remove_by_external_ids, (bank_id, tombs), report, final)
                if progress:
                    progress(len(tombs))
            tombs = []

        try:
            for rec in records:
                if isinstance(rec, RecordError):
                    report.records += 1
                    report.errors.append(rec)
                    if progress:
                        progress(1)
                    continue
                if rec.op == "remove" and isinstance(rec.meta, dict) and rec.meta.get("remove_by") == "external_id":
                    # a tombstone naming the list's own entry id (NCMEC deletedImage): no hash in it
                    report.records += 1
                    submit_ops()  # it applies after the records before it
                    ids = [str(x) for x in rec.external_ids if x]
                    if not ids:
                        report.errors.append(RecordError(rec.position or f"record {report.records}",
                                                         "removal names no entry id"))
                        continue
                    tombs.append((rec.position or f"record {report.records}", ids))
                    if len(tombs) >= batch_size:
                        submit_tombs()
                    continue
                report.records += 1
                if tombs:
                    submit_tombs()
                row = _stage_row(rec)
                if isinstance(row, str):
                    report.errors.append(RecordError(rec.position or f"record {report.records}", row))
                    continue
                key = (row[0], row[2])
                if key in ops:
                    report.unchanged += 1
                ops[key] = row
                n_ops += 1
                if n_ops >= (batch_size if report.records > n_ops else first_size):
                    submit_ops()
            submit_tombs(final=True)
            submit_ops(final=True)
            pipe.drain(report)
        finally:
            pipe.close()
        return report

    # ------------------------------------------------------------- bulk writes
    def _write_batch(self, bank_id: int, rows: list[tuple], added_by: str | None,
                     state: dict[str, Any] | None = None) -> ImportReport:
        """Apply one batch of staged rows (unique by signal type and value) in one transaction.

        On PostgreSQL a batch of new entries for a bank with nothing withdrawn goes straight into
        ``entries`` and ``changes`` with ``COPY``; if any of them is already in the bank the COPY
        is undone (a savepoint) and the batch merged through the staging table, as every later
        batch of the import (``state`` remembers)."""
        out = ImportReport()
        pg = self.db.dialect == "postgresql"
        n_add = sum(1 for r in rows if r[4] == "add")
        n_remove = len(rows) - n_add
        when = {"bank": bank_id, "now": utcnow(), "by": added_by}
        q = _SQL["postgresql" if pg else "sqlite"]
        copied: list[int] | None = None
        with self.db.session() as s:
            conn = s.connection()
            if pg:
                if conn.execute(_PG_HOLD_BANK, when).first() is None:
                    raise BankError("the bank was deleted during the import")
                if (not n_remove and state is not None and not state.get("conflict")
                        and conn.execute(_SQL_ANY_WITHDRAWN, when).first() is None):
                    copied = _pg_copy_adds(conn, bank_id, rows, added_by, when["now"])
                    if copied is None:
                        state["conflict"] = True
                if copied is None:
                    ensure_pg_temp_table(conn, "consentry_import", _PG_STAGE)
                    cur = conn.connection.driver_connection.cursor()
                    with cur.copy(f"COPY consentry_import ({_STAGE_COLS}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
                    conn.exec_driver_sql("ANALYZE consentry_import")  # row count and values for the planner
            else:
                raw = conn.connection.driver_connection
                if not raw.in_transaction:  # the write lock first: the reads below stay true until commit
                    raw.execute("BEGIN IMMEDIATE")
                if conn.execute(_SQL_BANK_EXISTS, when).first() is None:
                    raise BankError("the bank was deleted during the import")
                cache = conn.exec_driver_sql("PRAGMA cache_size").scalar()
                # adds only, into a bank with nothing to revive: straight into entries, no staging
                direct = not n_remove and conn.execute(_SQL_ANY_WITHDRAWN, when).first() is None
                if not direct:
                    conn.exec_driver_sql(_SQLITE_STAGE)
                    conn.exec_driver_sql("DELETE FROM temp.consentry_import")
                    _sqlite_rows(conn, rows, _stage_sql)
                conn.exec_driver_sql(f"PRAGMA cache_size = {_SQLITE_IMPORT_CACHE}")
            ids: list[int] = copied[:50] if copied is not None else []
            out.added = len(copied) if copied is not None else 0
            if n_remove:
                existing = conn.execute(q["removes_found"], when).scalar_one()
                ids += conn.execute(q["withdraw_ids"], when).scalars().all()
                # the change rows first, then the update: one predicate, so one set of entries
                out.removed = conn.execute(q["withdraw_changes"], when).rowcount
                conn.execute(q["withdraw"], when)
                out.remove_not_found = n_remove - existing
                out.unchanged += existing - out.removed
            if (n_add and copied is None and not (not pg and direct)
                    and conn.execute(_SQL_ANY_WITHDRAWN, when).first() is not None):
                ids += conn.execute(q["revive_ids"], when).scalars().all()
                out.reactivated = conn.execute(q["revive_changes"], when).rowcount
                conn.execute(q["revive"], when)
            if n_add and copied is None:
                if pg:
                    added, first = conn.execute(_PG_INSERT_WITH_CHANGES, when).one()
                    out.added, ids = int(added or 0), list(first or []) + ids
                else:
                    # SQLite: this transaction holds the write lock (BEGIN IMMEDIATE above),
                    # and rowids grow, so the new entries are exactly those above the old maximum
                    before = conn.execute(_SQL_MAX_ENTRY).scalar_one()
                    if direct:
                        bind = _NOW.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
                        now = bind(when["now"]) if bind else when["now"]
                        out.added = _sqlite_rows(conn, rows, _direct_sql, (bank_id, added_by, now))
                    else:
                        out.added = conn.execute(_SQLITE_INSERT, when).rowcount
                    logged = conn.execute(_SQLITE_ADD_CHANGES, {**when, "before": before}).rowcount
                    if logged != out.added:  # never expected: refuse rather than miss a change
                        raise BankError("import: change log out of step with the entries written")
                    ids = conn.execute(_SQLITE_FIRST_NEW, {"before": before}).scalars().all() + ids
                out.unchanged += n_add - out.added - out.reactivated  # present, or a concurrent writer
            if out.added or out.reactivated or out.removed:
                AuditLog(self.db).record("bank.entries", added_by or "system", {
                    "bank_id": bank_id, "added": out.added, "reactivated": out.reactivated,
                    "withdrawn": out.removed, "entry_ids": ids[:50]}, session=s)
            if not pg:
                if not direct:
                    conn.exec_driver_sql("DELETE FROM temp.consentry_import")
                conn.exec_driver_sql(f"PRAGMA cache_size = {cache}")
        return out

    def _remove_by_external_ids(self, bank_id: int, tombs: list[tuple[str, list[str]]]) -> ImportReport:
        """Withdraw every entry carrying an external id a tombstone names, tombstones in order.

        One pass over the bank for the whole group: the entries whose ``external_ids`` hold any
        named id are read once, then each tombstone takes those not already withdrawn (so a
        second tombstone for the same entry counts as not found, as it would one at a time)."""
        out = ImportReport()
        wanted = {ext for _, ids in tombs for ext in ids}
        now = utcnow()
        with self.db.session() as s:
            by_ext: dict[str, set[int]] = {}
            status: dict[int, tuple[str, str]] = {}
            for entry_id, ext_ids, st, entry_status in self._entries_with_external_ids(s, bank_id, wanted):
                status[entry_id] = (st, entry_status)
                for ext in ext_ids or []:
                    if isinstance(ext, str) and ext in wanted:
                        by_ext.setdefault(ext, set()).add(entry_id)
            hit: list[int] = []
            gone = {i for i, (_, es) in status.items() if es == "withdrawn"}
            for _position, ids in tombs:
                found = sorted({i for ext in ids for i in by_ext.get(ext, ())} - gone)
                if not found:
                    out.remove_not_found += 1
                    continue
                gone.update(found)
                hit += found
            if not hit:
                return out
            for i in range(0, len(hit), 5000):
                s.execute(update(Entry).where(Entry.id.in_(hit[i : i + 5000]))
                          .values(status="withdrawn", updated_at=now))
            s.execute(Change.__table__.insert(),
                      [{"op": "withdraw", "bank_id": bank_id, "entry_id": i, "signal_type": status[i][0],
                        "at": now} for i in hit])
            AuditLog(self.db).record("bank.entries", "system", {
                "bank_id": bank_id, "withdrawn": len(hit), "entry_ids": hit[:50],
                "by_external_ids": sorted(wanted)[:20]}, session=s)
            out.removed = len(hit)
        return out

    def _entries_with_external_ids(self, s: Session, bank_id: int, wanted: set[str]) -> Iterable[tuple]:
        """(id, external_ids, signal_type, status) of the bank's entries naming any of ``wanted``."""
        if len(wanted) <= 5:  # a few: a LIKE each ('_' and '%' escaped), as before
            seen: set[int] = set()
            for ext in sorted(wanted):
                # as the standard library writes it (\u escapes) and as imports do (fastjson: UTF-8)
                likes = [cast(Entry.external_ids, Text).like(
                    "%" + form.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%", escape="\\")
                    for form in sorted({json.dumps(ext), fastjson.dumps(ext)})]
                rows = s.execute(
                    select(Entry.id, Entry.external_ids, Entry.signal_type, Entry.status).where(
                        Entry.bank_id == bank_id, or_(*likes))
                )
                for row in rows:
                    if row[0] not in seen:
                        seen.add(row[0])
                        yield tuple(row)
            return
        # many: one scan of the bank's entries that have any external id at all
        rows = s.execute(
            select(Entry.id, Entry.external_ids, Entry.signal_type, Entry.status).where(
                Entry.bank_id == bank_id, cast(Entry.external_ids, Text) != "[]")
            .execution_options(yield_per=20_000)
        )
        for entry_id, ext_ids, st, entry_status in rows:
            if any(isinstance(e, str) and e in wanted for e in ext_ids or ()):
                yield entry_id, ext_ids, st, entry_status

    def find_entry(self, bank: str, signal_type: str, value: str) -> EntryInfo | None:
        st = get_signal_type(signal_type)
        canonical = st.parse(value)
        with self.db.session() as s:
            b = self._bank(s, bank)
            e = s.scalar(select(Entry).where(Entry.bank_id == b.id, Entry.signal_type == st.name,
                                             Entry.value_key == value_key(canonical)))
            return _entry_info(e, b.name) if e else None

    def get_entry(self, entry_id: int, bank: str | None = None) -> EntryInfo:
        with self.db.session() as s:
            row = s.execute(select(Entry, Bank.name).join(Entry.bank).where(Entry.id == entry_id)).first()
            if row is None or (bank is not None and row[1] != bank):
                raise NotFound(f"no entry {entry_id}" + (f" in bank {bank!r}" if bank else ""))
            return _entry_info(row[0], row[1])

    def set_variants(self, bank: str, pdq: str, variants: Sequence[Any]) -> int:
        """Store the local extra hashes of the bank's PDQ entry ``pdq`` (issue 21): ``variants``
        are :class:`consentry.signals.canonical.CanonicalHash` (kind, value, quality) of its
        picture; those with quality < 50 are left out. Replaces what the entry had, and logs an
        ``add`` of the entry in the same transaction, so every worker re-reads the entry with
        them. Returns how many were stored."""
        from consentry.signals import PDQ_MIN_QUALITY

        canonical = get_signal_type("pdq").parse(pdq)
        rows = [(str(v.kind)[:32], get_signal_type("pdq").parse(v.value), int(v.quality)) for v in variants
                if v.value and int(v.quality) >= PDQ_MIN_QUALITY and v.value != canonical]
        with self.db.session() as s:
            b = self._bank(s, bank)
            e = s.scalar(select(Entry).where(Entry.bank_id == b.id, Entry.signal_type == "pdq",
                                             Entry.value_key == value_key(canonical)))
            if e is None:
                raise NotFound(f"no PDQ entry {canonical[:16]}... in bank {bank!r}")
            s.execute(EntryVariant.__table__.delete().where(EntryVariant.entry_id == e.id))
            if rows:
                s.execute(EntryVariant.__table__.insert(),
                          [{"entry_id": e.id, "kind": k, "pdq": v, "quality": q} for k, v, q in rows])
            s.add(Change(op="add", bank_id=b.id, entry_id=e.id, signal_type="pdq"))
        return len(rows)

    def has_variants(self) -> bool:
        """Whether any entry has stored extra hashes (one index probe)."""
        with self.db.engine.connect() as conn:
            return conn.execute(select(EntryVariant.id).limit(1)).first() is not None

    def variants_for(self, entry_ids: Iterable[int]) -> dict[int, list[tuple[int, str, str]]]:
        """Entry id -> its stored extra hashes as (variant id, kind, PDQ hex)."""
        ids = list(entry_ids)
        out: dict[int, list[tuple[int, str, str]]] = {}
        if not ids:
            return out
        with self.db.engine.connect() as conn:
            for i in range(0, len(ids), 500):
                q = (select(EntryVariant.id, EntryVariant.entry_id, EntryVariant.kind, EntryVariant.pdq)
                     .where(EntryVariant.entry_id.in_(ids[i:i + 500])).order_by(EntryVariant.id))
                for vid, eid, kind, pdq in conn.execute(q):
                    out.setdefault(int(eid), []).append((int(vid), kind, pdq))
        return out

    def entries_by_id(self, ids: Iterable[int]) -> dict[int, tuple[EntryInfo, int]]:
        """Active or not, with their bank id (the matcher filters). On every lookup with a
        candidate: plain rows on a pooled connection, one cached statement (no ORM session)."""
        ids = list(ids)
        out: dict[int, tuple[EntryInfo, int]] = {}
        with self.db.engine.connect() as conn:
            for i in range(0, len(ids), 500):
                for row in conn.execute(_ENTRIES_BY_ID, {"ids": ids[i : i + 500]}):
                    out[row.id] = (_entry_info(row, row.bank_name), row.bank_id)
        return out

    def set_status(
        self, bank: str, status: str, *, entry_id: int | None = None,
        signal_type: str | None = None, value: str | None = None, actor: str | None = None,
        until: datetime | str | None = None,
    ) -> list[EntryInfo]:
        """Withdraw, disable or re-enable entries picked by id or by value; takes effect at once.

        ``until`` (with ``disabled`` only): the entry matches again from that time on, without
        anyone re-enabling it (the matcher checks the time on every query; a sweep then logs an
        ``enable`` change so partners follow)."""
        if status not in ENTRY_STATUSES:
            raise BankError(f"status must be one of {ENTRY_STATUSES}")
        if until is not None and status != "disabled":
            raise BankError("an end time (until) applies to disabling only")
        until_at = validate_until(until)
        op = {"active": "add", "disabled": "disable", "withdrawn": "withdraw"}[status]
        with self.db.session() as s:
            b = self._bank(s, bank)
            q = select(Entry).where(Entry.bank_id == b.id)
            if entry_id is not None:
                q = q.where(Entry.id == entry_id)
            elif signal_type and value:
                st = get_signal_type(signal_type)
                q = q.where(Entry.signal_type == st.name, Entry.value_key == value_key(st.parse(value)))
            else:
                raise BankError("give an entry id or a signal type and value")
            entries = list(s.scalars(q))
            if not entries:
                raise NotFound("no such entry in bank " + repr(bank))
            now = utcnow()
            changed: list[int] = []
            for e in entries:
                if e.status == "disabled" and e.disabled_until is not None and as_utc(e.disabled_until) <= now:
                    e.status = "active"  # a timed disable that has run out
                    e.disabled_until = None
                if e.status != status or as_utc(e.disabled_until) != until_at:
                    e.status = status
                    e.disabled_until = until_at
                    e.updated_at = now
                    s.add(Change(op=op, bank_id=b.id, entry_id=e.id, signal_type=e.signal_type, at=now))
                    changed.append(e.id)
            s.flush()
            if changed:
                AuditLog(self.db).record("bank.entries", actor or "system", {
                    "bank": bank, "bank_id": b.id, "status": status, "entry_ids": changed[:50],
                    "count": len(changed), **({"until": until_at.isoformat()} if until_at else {})}, session=s)
            return [_entry_info(e, b.name) for e in entries]

    def withdraw(self, bank: str, **which: Any) -> list[EntryInfo]:
        return self.set_status(bank, "withdrawn", **which)

    def list_entries(
        self, bank: str, *, status: str | None = None, signal_type: str | None = None,
        after_id: int = 0, limit: int = 100,
    ) -> list[EntryInfo]:
        """Cursor pagination by entry id (pass the last id seen as ``after_id``)."""
        with self.db.session() as s:
            b = self._bank(s, bank)
            q = select(Entry).where(Entry.bank_id == b.id, Entry.id > after_id)
            ran_out = and_(Entry.status == "disabled", Entry.disabled_until.is_not(None),
                           Entry.disabled_until <= utcnow())
            if status == "active":
                q = q.where(or_(Entry.status == "active", ran_out))
            elif status == "disabled":
                q = q.where(ENTRY_NOT_ACTIVE, Entry.status == "disabled", not_(ran_out))
            elif status:
                q = q.where(ENTRY_NOT_ACTIVE, Entry.status == status)
            if signal_type:
                q = q.where(Entry.signal_type == signal_type)
            q = q.order_by(Entry.id).limit(max(1, min(limit, 10_000)))
            return [_entry_info(e, b.name) for e in s.scalars(q)]

    def iter_records(self, bank: str, *, include_withdrawn: bool = False,
                     as_exchanged: bool = True) -> Iterator[HashRecord]:
        """Stream a bank's entries as records for export (withdrawn ones as removes if asked).

        ``as_exchanged``: videos stored densely (every frame, issue 21) are written as standard
        one-per-second vPDQ, as other programs take them; False (Consentry's own format) keeps
        the frames as stored."""
        from consentry.signals.vpdq import frames_to_json, is_dense, parse_frames, standard_frames

        after = 0
        while True:
            page = self.list_entries(bank, after_id=after, limit=5000)
            if not page:
                return
            for e in page:
                after = e.id
                if e.status == "withdrawn" and not include_withdrawn:
                    continue
                if e.status == "disabled":
                    continue
                meta = dict(e.meta)
                if e.quality is not None:
                    meta["quality"] = e.quality
                value = e.value
                if as_exchanged and e.signal_type == "vpdq":
                    frames = parse_frames(value)
                    if is_dense(frames):
                        value = frames_to_json(standard_frames(frames))
                yield HashRecord(e.signal_type, value, "remove" if e.status == "withdrawn" else "add",
                                 e.external_ids, e.tags, e.category, e.source, meta, f"entry {e.id}")

    def expire_timed(self, now: datetime | None = None) -> int:
        """End timed disables that have run out: entries become ``active`` with an ``enable``
        change, banks lose their ``disabled_until`` with a ``bank`` change, so workers that were
        down and partner instances tailing the log follow. The matcher does not wait for this (it
        checks the time on every query). Safe to run from several workers at once: the UPDATE's
        condition lets one of them take each row. Returns how many entries and banks it ended."""
        now = now or utcnow()
        done = 0
        with self.db.session() as s:
            rows = s.execute(
                select(Entry.id, Entry.bank_id, Entry.signal_type)
                .where(ENTRY_NOT_ACTIVE, Entry.status == "disabled", Entry.disabled_until.is_not(None),
                       Entry.disabled_until <= now)
                .limit(5000)
            ).all()
            changes: list[dict[str, Any]] = []
            for entry_id, bank_id, st in rows:
                n = s.execute(
                    update(Entry).where(Entry.id == entry_id, Entry.status == "disabled",
                                        Entry.disabled_until.is_not(None), Entry.disabled_until <= now)
                    .values(status="active", disabled_until=None, updated_at=now)
                ).rowcount
                if n:
                    changes.append({"op": "enable", "bank_id": bank_id, "entry_id": entry_id,
                                    "signal_type": st, "at": now})
            banks = s.execute(select(Bank.id).where(Bank.disabled_until.is_not(None),
                                                    Bank.disabled_until <= now)).scalars().all()
            for bank_id in banks:
                n = s.execute(update(Bank).where(Bank.id == bank_id, Bank.disabled_until.is_not(None),
                                                 Bank.disabled_until <= now).values(disabled_until=None)).rowcount
                if n:
                    changes.append({"op": "bank", "bank_id": bank_id, "entry_id": None, "signal_type": None,
                                    "at": now})
            if changes:
                s.execute(Change.__table__.insert(), changes)
                AuditLog(self.db).record("bank.timed_enable", "system", {
                    "entry_ids": [c["entry_id"] for c in changes if c["entry_id"] is not None][:50],
                    "bank_ids": [c["bank_id"] for c in changes if c["entry_id"] is None][:50],
                    "count": len(changes)}, session=s)
            done = len(changes)
        return done

    # -------------------------------------------------------------- changes
    def change_cursor(self) -> int:
        with self.db.session() as s:
            return int(s.scalar(select(func.max(Change.id))) or 0)

    def changes_since(self, cursor: int, limit: int = 10_000,
                      bank_ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
        """Changes after ``cursor``; only those of ``bank_ids`` when given (published banks)."""
        with self.db.session() as s:
            q = select(Change.id, Change.op, Change.bank_id, Change.entry_id, Change.signal_type, Change.at)
            q = q.where(Change.id > cursor)
            if bank_ids is not None:
                q = q.where(or_(Change.bank_id.in_(list(bank_ids) or [-1]),
                                and_(Change.op == "bank_deleted", Change.published.is_(True))))
            rows = s.execute(q.order_by(Change.id).limit(limit))
            return [
                {"cursor": r.id, "op": r.op, "bank_id": r.bank_id, "entry_id": r.entry_id,
                 "signal_type": r.signal_type, "at": r.at.isoformat() if r.at else None}
                for r in rows
            ]
