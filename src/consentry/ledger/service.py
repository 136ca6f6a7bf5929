"""The content ledger: the platform's hosted content as hashes (issue 14).

Each content is kept under the platform's own ``content_id`` with its URL, uploader, surface and
signals (MD5, SHA-256, PDQ with its dihedral variants when known, vPDQ) — never the media. Writes
are idempotent by content id: registering the same content again changes nothing and logs no
change; a changed URL or signal updates the row and logs one ``add``; removal leaves a tombstone
(``status = deleted``) and logs a ``delete``. The ``ledger_changes`` log is what every ledger index
follows (:class:`consentry.ledger.index.LedgerIndex`).

Bulk writes (:meth:`LedgerService.write_many`, ``consentry content import``) are set-based: one
multi-row upsert per batch that returns only the rows it inserted or changed, then one insert of
their change rows, in one transaction.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from sqlalchemy import func, literal_column, select

from consentry import fastjson
from consentry.banks.bulk_gc import collector_paused
from consentry.banks.service import as_utc
from consentry.db.inorder import InOrder
from consentry.db.models import utcnow
from consentry.db.models_ledger import PREFIX, LedgerChange, LedgerContent, SweepHit
from consentry.db.session import Database, ensure_pg_temp_table
from consentry.ledger.records import (  # noqa: F401 - re-exported: the ledger's record types live there
    FIELDS,
    SIGNAL_FIELDS,
    ContentRecord,
    LedgerError,
    Parsed,
    line_chunks,
    one_per_content,
    parse_lines,
    parsed_in_child,
    read_csv,
    rows_of,
    url_key,
)

#: contents per transaction in imports: SQLite commits are costly (each writes again every index
#: page the batch touched), PostgreSQL's multi-row upserts less so
BATCH = {"sqlite": 100_000, "postgresql": 20_000}
_SQLITE_WRITE_CACHE = -256 * 1024  # KiB: 256 MiB of page cache while a batch is written


class ContentNotFound(LedgerError):
    code = "not_found"


def prefix_of(column: Any) -> Any:
    """The expression the ledger's digest indexes hold (``substr(column, 1, 16)``, migration 0016),
    with literal bounds: a database uses an expression index only for the same expression."""
    return func.substr(column, literal_column("1"), literal_column(str(PREFIX)))


def unpropagated(column: Any) -> Any:
    """``column`` for a full-value comparison beside :func:`prefix_of`. SQLite rewrites
    ``f(x) = ? AND x = ?`` into ``f(?) = ?`` (constant propagation), which no index holds, and then
    scans the table; ``x || ''`` is the same value but not a column, so it is left alone."""
    return column.concat(literal_column("''"))


@dataclass(frozen=True)
class ContentInfo:
    """One ledger row as the API, the CLI and the sweep show it."""

    pk: int
    content_id: str
    url: str | None
    uploader_id: str | None
    surface: str | None
    content_type: str | None
    md5: str | None
    sha256: str | None
    pdq: str | None
    pdq_quality: int | None
    pdq_variants: tuple[str, ...]
    vpdq: str | None
    status: str
    created_at: Any
    updated_at: Any

    @property
    def pdq_hashes(self) -> list[str]:
        """The PDQ hash and its dihedral variants when known (original first)."""
        return ([self.pdq] + list(self.pdq_variants)) if self.pdq else []

    def public(self) -> dict[str, Any]:
        """What a webhook or a notice needs: ids and where it is, no signals."""
        return {"content_id": self.content_id, "url": self.url, "uploader_id": self.uploader_id,
                "surface": self.surface}

    def to_dict(self) -> dict[str, Any]:
        iso = lambda d: as_utc(d).isoformat() if d else None  # noqa: E731  (UTC, with its offset)
        return {**self.public(), "content_type": self.content_type, "status": self.status,
                "md5": self.md5, "sha256": self.sha256, "pdq": self.pdq, "pdq_quality": self.pdq_quality,
                "pdq_variants": len(self.pdq_variants) or None,
                "vpdq_frames": len(json.loads(self.vpdq)) if self.vpdq else None,
                "created_at": iso(self.created_at), "updated_at": iso(self.updated_at)}


def _info(r: Any) -> ContentInfo:
    v = r.pdq_variants or ""
    return ContentInfo(r.id, r.content_id, r.url, r.uploader_id, r.surface, r.content_type, r.md5, r.sha256,
                       r.pdq, r.pdq_quality, tuple(v[i:i + 64] for i in range(0, len(v), 64)), r.vpdq,
                       r.status, r.created_at, r.updated_at)


@dataclass
class WriteReport:
    read: int = 0
    written: int = 0  # inserted, changed or revived (each logged one change)
    unchanged: int = 0
    deleted: int = 0
    errors: list[str] = field(default_factory=list)
    error_count: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"read": self.read, "written": self.written, "unchanged": self.unchanged,
                "deleted": self.deleted, "error_count": self.error_count, "errors": self.errors[:20]}


_COLS = ("content_id", "url", "url_key", "uploader_id", "surface", "content_type", "md5", "sha256", "pdq",
         "pdq_quality", "pdq_variants", "vpdq")
_WRITE_COLS = _COLS + ("status", "created_at", "updated_at")


_PG_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS ledger_stage (content_id text, url text, url_key text, uploader_id text, "
    "surface text, content_type text, md5 text, sha256 text, pdq text, pdq_quality integer, pdq_variants text, "
    "vpdq text, status text, created_at timestamptz, updated_at timestamptz) ON COMMIT DELETE ROWS")
_PG_UPSERT = (
    f"WITH up AS (INSERT INTO ledger_content ({', '.join(_WRITE_COLS)}) "
    f"SELECT {', '.join(_WRITE_COLS)} FROM ledger_stage ORDER BY content_id "
    "ON CONFLICT (content_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _COLS[1:] + ("status", "updated_at"))
    + ", deleted_at = NULL WHERE ledger_content.status <> 'active' OR "
    + " OR ".join(f"ledger_content.{c} IS DISTINCT FROM excluded.{c}" for c in _COLS[1:])
    + " RETURNING id) "
    "INSERT INTO ledger_changes (op, content_pk, at) SELECT 'add', id, %s FROM up ORDER BY id RETURNING content_pk")


_SQLITE_EXISTING = (f"SELECT id, status, {', '.join(_COLS)} FROM ledger_content "
                    "WHERE content_id IN (SELECT value FROM json_each(?))")
_SQLITE_IDS = "SELECT id FROM ledger_content WHERE content_id IN (SELECT value FROM json_each(?))"
_SQLITE_INSERT = (f"INSERT INTO ledger_content ({', '.join(_WRITE_COLS)}) "
                  f"VALUES ({', '.join('?' * len(_WRITE_COLS))})")
_SQLITE_UPDATE = ("UPDATE ledger_content SET " + ", ".join(f"{c} = ?" for c in _COLS[1:])
                  + ", status = 'active', updated_at = ?, deleted_at = NULL WHERE id = ?")


class LedgerService:
    def __init__(self, db: Database):
        self.db = db

    # ------------------------------------------------------------------ writes
    def write(self, record: ContentRecord) -> tuple[ContentInfo, bool]:
        """Register or update one content; returns it and whether anything changed."""
        report = self.write_many([record])
        return self.get(record.content_id), report.written > 0

    def write_many(self, records: Sequence[ContentRecord]) -> WriteReport:
        """Upsert a batch in one transaction; the last record of a repeated content id wins."""
        report = WriteReport(read=len(records))
        return self._write_rows(rows_of(records), report)

    def _write_rows(self, rows: list[tuple], report: WriteReport) -> WriteReport:
        """Write rows made by :func:`_rows` (imports make them on the reading thread)."""
        if not rows:
            return report
        now = utcnow()
        with self.db.engine.begin() as conn:
            if self.db.dialect == "sqlite":
                ids = self._sqlite_upsert(conn, rows, now)
            else:
                ids = self._pg_upsert(conn, rows, now)
        report.written += len(ids)
        report.unchanged += len(rows) - len(ids)
        return report

    @staticmethod
    def _pg_upsert(conn: Any, rows: list[tuple], now: Any) -> list[int]:
        """PostgreSQL: the batch ``COPY``'d into a temporary table, then one upsert from it that
        logs a change row for each content inserted or changed (an unchanged one is not touched).
        Returns the ids written (their count: the caller needs no more)."""
        ensure_pg_temp_table(conn, "ledger_stage", _PG_STAGE)
        cur = conn.connection.driver_connection.cursor()
        with cur.copy(f"COPY ledger_stage ({', '.join(_WRITE_COLS)}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row(r + ("active", now, now))
        cur.execute(_PG_UPSERT, (now,))
        return [row[0] for row in cur.fetchall()]

    @staticmethod
    def _sqlite_upsert(conn: Any, rows: list[tuple], now: Any) -> list[int]:
        """SQLite: the batch (in content id order: the unique index is filled in order) split into
        new contents, changed ones and unchanged ones by one read of the rows already there, then
        plain inserts and updates and their change rows, under ``BEGIN IMMEDIATE`` (no other writer
        between the read and the writes). A plain ``INSERT`` runs at twice the rate of a multi-row
        upsert that returns ids. A large page cache meanwhile, since each commit writes again every
        index page it touched and random hashes touch most of them."""
        raw = conn.connection.driver_connection
        bind = LedgerChange.__table__.c.at.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
        stamp = bind(now) if bind else now
        if not raw.in_transaction:
            raw.execute("BEGIN IMMEDIATE")
        cache = raw.execute("PRAGMA cache_size").fetchone()[0]
        raw.execute(f"PRAGMA cache_size = {_SQLITE_WRITE_CACHE}")
        try:
            existing: dict[str, tuple] = {}
            for i in range(0, len(rows), 50_000):
                keys = fastjson.dumps([r[0] for r in rows[i:i + 50_000]])
                existing.update((row[2], row) for row in raw.execute(_SQLITE_EXISTING, (keys,)))
            new: list[tuple] = []
            changed: list[tuple] = []
            for r in rows:
                old = existing.get(r[0])
                if old is None:
                    new.append(r + ("active", stamp, stamp))
                elif old[1] != "active" or old[3:] != r[1:]:
                    changed.append(r[1:] + (stamp, old[0]))
            ids = [c[-1] for c in changed]
            if changed:
                raw.executemany(_SQLITE_UPDATE, changed)
            if new:
                top = raw.execute("SELECT coalesce(max(id), 0) FROM ledger_content").fetchone()[0]
                raw.executemany(_SQLITE_INSERT, new)
                end = raw.execute("SELECT max(id) FROM ledger_content").fetchone()[0]
                if end - top == len(new):  # one writer: the rows took the next ids, in order
                    ids += range(top + 1, end + 1)
                else:
                    for i in range(0, len(new), 50_000):
                        keys = fastjson.dumps([r[0] for r in new[i:i + 50_000]])
                        ids += [row[0] for row in raw.execute(_SQLITE_IDS, (keys,))]
            ids.sort()
            raw.executemany("INSERT INTO ledger_changes (op, content_pk, at) VALUES ('add', ?, ?)",
                            [(i, stamp) for i in ids])
        finally:
            raw.execute(f"PRAGMA cache_size = {cache}")
        return ids

    def delete(self, content_id: str) -> ContentInfo:
        """Tombstone one content: it leaves every ledger index and is never swept again."""
        now = utcnow()
        with self.db.session() as s:
            row = s.scalar(select(LedgerContent).where(LedgerContent.content_id == content_id))
            if row is None:
                raise ContentNotFound(f"no content {content_id!r} in the ledger")
            if row.status != "deleted":
                row.status, row.deleted_at, row.updated_at = "deleted", now, now
                s.add(LedgerChange(op="delete", content_pk=row.id, at=now))
            s.flush()
            return _info(row)

    # ------------------------------------------------------------------ reads
    def get(self, content_id: str) -> ContentInfo:
        with self.db.session() as s:
            row = s.scalar(select(LedgerContent).where(LedgerContent.content_id == content_id))
            if row is None:
                raise ContentNotFound(f"no content {content_id!r} in the ledger")
            return _info(row)

    def resolve(self, location: str, *, include_deleted: bool = False) -> ContentInfo | None:
        """The content a notice or a person names: its content id, else its URL (as registered).
        None when neither is in the ledger (or only as a tombstone, unless asked)."""
        location = (location or "").strip()
        if not location:
            return None
        with self.db.session() as s:
            row = s.scalar(select(LedgerContent).where(LedgerContent.content_id == location[:200]))
            if row is None:
                key = url_key(location)
                row = s.scalars(select(LedgerContent).where(prefix_of(LedgerContent.url_key) == key[:PREFIX],
                                                            unpropagated(LedgerContent.url_key) == key,
                                                            LedgerContent.url == location)
                                .order_by(LedgerContent.status, LedgerContent.id.desc())).first()
            if row is None or (row.status != "active" and not include_deleted):
                return None
            return _info(row)

    def by_pk(self, pks: Iterable[int]) -> dict[int, ContentInfo]:
        pks = list(pks)
        out: dict[int, ContentInfo] = {}
        with self.db.session() as s:
            for i in range(0, len(pks), 500):
                for r in s.scalars(select(LedgerContent).where(LedgerContent.id.in_(pks[i:i + 500]))):
                    out[r.id] = _info(r)
        return out

    def by_digest(self, signal_type: str, values: Sequence[str]) -> dict[str, list[ContentInfo]]:
        """Active contents per MD5 or SHA-256 value (the database's indexes answer exactly)."""
        col = {"md5": LedgerContent.md5, "sha256": LedgerContent.sha256}[signal_type]
        out: dict[str, list[ContentInfo]] = {}
        values = sorted({v.lower() for v in values if v})
        with self.db.session() as s:
            for i in range(0, len(values), 500):
                part = values[i:i + 500]
                q = select(LedgerContent).where(prefix_of(col).in_(sorted({v[:PREFIX] for v in part})),
                                                unpropagated(col).in_(part), LedgerContent.status == "active")
                for r in s.scalars(q):
                    out.setdefault(getattr(r, signal_type), []).append(_info(r))
        return out

    def has_active(self) -> bool:
        """Whether any hosted content is on record (a sweep of an empty ledger has nothing to find)."""
        with self.db.session() as s:
            return s.scalar(select(LedgerContent.id).where(LedgerContent.status == "active").limit(1)) is not None

    def count(self) -> dict[str, int]:
        with self.db.session() as s:
            rows = s.execute(select(LedgerContent.status, func.count()).group_by(LedgerContent.status)).all()
        return {k: int(v) for k, v in rows}

    def changes_since(self, cursor: int, limit: int = 10_000) -> list[dict[str, Any]]:
        with self.db.session() as s:
            rows = s.execute(select(LedgerChange.id, LedgerChange.op, LedgerChange.content_pk, LedgerChange.at)
                             .where(LedgerChange.id > cursor).order_by(LedgerChange.id).limit(limit))
            return [{"cursor": r.id, "op": r.op, "content_pk": r.content_pk, "at": r.at} for r in rows]

    def hits(self, *, content_id: str | None = None, bank: str | None = None, entry_ids: Sequence[int] | None = None,
             after_id: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        """Recorded sweep hits, oldest first (cursor pagination by hit id)."""
        with self.db.session() as s:
            q = select(SweepHit).where(SweepHit.id > after_id)
            if content_id is not None:
                q = q.where(SweepHit.content_id == content_id)
            if bank is not None:
                q = q.where(SweepHit.bank == bank)
            if entry_ids is not None:
                q = q.where(SweepHit.entry_id.in_(list(entry_ids) or [-1]))
            q = q.order_by(SweepHit.id).limit(max(1, min(limit, 10_000)))
            return [hit_dict(h) for h in s.scalars(q)]

    # ------------------------------------------------------------------ import
    def import_stream(self, records: Iterable[dict[str, Any] | LedgerError], *, batch: int | None = None,
                      on_batch=None) -> WriteReport:
        """Write parsed records in batches (``consentry content import``; default :data:`BATCH`
        for the database); bad records are counted and named, not fatal. Re-importing the same
        file changes nothing. The cyclic garbage collector is held off meanwhile (bulk_gc)."""
        with collector_paused():
            return self._import_stream(records, batch or BATCH.get(self.db.dialect, 20_000), on_batch)

    def import_jsonl(self, stream: BinaryIO, *, batch: int | None = None, on_batch=None,
                     child: bool | None = None) -> WriteReport:
        """``consentry content import`` of JSON Lines from a binary stream; bad lines are counted
        and named (``line N``), not fatal; importing the same file again changes nothing.

        An input of more than one chunk (:data:`~consentry.ledger.records.CHUNK_BYTES`, 4 MB) is
        read and checked in a child process while this one writes (``child`` forces either way): one
        interpreter cannot do both at once, since an SQLite write takes the interpreter lock back
        for every row while the reader holds it most of the time (measured: a writer thread behind
        the reader ran no faster than the two one after the other)."""
        chunks = line_chunks(stream)
        head = list(itertools.islice(chunks, 2))
        rest = itertools.chain(head, chunks)
        use_child = child if child is not None else len(head) == 2
        parsed = parsed_in_child(rest) if use_child else (parse_lines(d, n) for d, n in rest)
        report = WriteReport()
        batch = batch or BATCH.get(self.db.dialect, 20_000)
        pending: list[tuple] = []
        with collector_paused():
            try:
                for part in parsed:
                    report.read += part.read
                    report.error_count += part.error_count
                    report.errors += part.errors[:max(0, 100 - len(report.errors))]
                    pending += part.rows
                    if len(pending) >= batch:
                        self._write_rows(one_per_content(pending), report)
                        pending = []
                        if on_batch:
                            on_batch(report)
                if pending:
                    self._write_rows(one_per_content(pending), report)
                    if on_batch:
                        on_batch(report)
            finally:
                if use_child:
                    parsed.close()  # the child stops (and is waited for) even when a write failed
        return report

    def _import_stream(self, records: Iterable[dict[str, Any] | LedgerError], batch: int, on_batch) -> WriteReport:
        """Batches are written on a writer thread while the next one is read and checked
        (:class:`consentry.db.inorder.InOrder`): at most two batches in memory, written in order."""
        report = WriteReport()
        buf: list[ContentRecord] = []
        writer = InOrder(self.db, "consentry-ledger-import")

        def write(rows: list[tuple]) -> None:
            self._write_rows(rows, report)
            if on_batch:
                on_batch(report)

        try:
            for n, item in enumerate(records, 1):
                report.read += 1
                try:
                    if isinstance(item, LedgerError):
                        raise item
                    buf.append(ContentRecord.from_dict(item, f"record {n}"))
                except LedgerError as exc:
                    report.error_count += 1
                    if len(report.errors) < 100:
                        report.errors.append(str(exc))
                    continue
                if len(buf) >= batch:
                    writer.submit(write, rows_of(buf))  # rows made here, while the last batch is written
                    buf = []
            if buf:
                writer.submit(write, rows_of(buf))
            writer.drain()
        finally:
            writer.close()
        return report


def hit_dict(h: SweepHit) -> dict[str, Any]:
    return {"id": h.id, "content_id": h.content_id, "entry_id": h.entry_id, "bank": h.bank,
            "signal_type": h.signal_type, "distance": h.distance, "transform": h.transform,
            "at": as_utc(h.at).isoformat() if h.at else None, "trigger": h.trigger, "action": h.action or {}}
