"""Banks and entries: create, add, import, withdraw, list, export.

All writes go through here (CLI, API and exchanges alike), and each write that affects matching
appends to the ``changes`` log in the same transaction, so an index tailing the log can never
miss one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable, Iterator, Sequence

from sqlalchemy import Text, cast, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from consentry.banks.formats.records import HashRecord, RecordError
from consentry.db.models import BANK_KINDS, ENTRY_STATUSES, Bank, Change, Entry, utcnow, value_key
from consentry.db.session import Database
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

    def threshold(self, signal_type: str) -> int | float:
        t = self.thresholds.get(signal_type)
        return get_signal_type(signal_type).default_threshold if t is None else t

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "kind": self.kind, "description": self.description,
            "thresholds": self.thresholds, "source": self.source, "shared": self.shared,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "counts": self.counts,
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


def _bank_info(bank: Bank, counts: dict[str, int] | None = None) -> BankInfo:
    return BankInfo(bank.id, bank.name, bank.kind, bank.description or "", dict(bank.thresholds or {}),
                    bank.source, bool(bank.shared), bank.created_at, counts or {})


def _entry_info(e: Entry, bank_name: str) -> EntryInfo:
    return EntryInfo(e.id, bank_name, e.signal_type, e.value, e.quality, e.status, e.source,
                     list(e.external_ids or []), list(e.tags or []), e.category, dict(e.meta or {}),
                     e.added_by, e.added_at)


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


class BankService:
    def __init__(self, db: Database):
        self.db = db

    # ---------------------------------------------------------------- banks
    def create_bank(
        self, name: str, kind: str = "custom", description: str = "",
        thresholds: dict[str, Any] | None = None, source: str = "local", shared: bool = False,
        actor: str | None = None,
    ) -> BankInfo:
        if not _NAME.match(name or ""):
            raise BankError("bank name must be 1-100 characters: letters, digits, '.', '_', '-'")
        if kind not in BANK_KINDS:
            raise BankError(f"bank kind must be one of: {', '.join(BANK_KINDS)}")
        with self.db.session() as s:
            if s.scalar(select(Bank.id).where(Bank.name == name)) is not None:
                raise Conflict(f"a bank named {name!r} already exists")
            bank = Bank(name=name, kind=kind, description=description or "",
                        thresholds=validate_thresholds(thresholds), source=source, shared=shared)
            s.add(bank)
            s.flush()
            s.add(Change(op="bank", bank_id=bank.id))
            AuditLog(self.db).record("bank.create", actor or "system", {
                "bank": name, "bank_id": bank.id, "kind": kind, "thresholds": bank.thresholds,
                "shared": bool(shared), "source": source}, session=s)
            return _bank_info(bank)

    def _bank(self, s: Session, name: str) -> Bank:
        bank = s.scalar(select(Bank).where(Bank.name == name))
        if bank is None:
            raise NotFound(f"no bank named {name!r}")
        return bank

    def _counts(self, s: Session, bank_ids: Sequence[int]) -> dict[int, dict[str, int]]:
        out: dict[int, dict[str, int]] = {b: {st: 0 for st in ENTRY_STATUSES} for b in bank_ids}
        if bank_ids:
            rows = s.execute(
                select(Entry.bank_id, Entry.status, func.count())
                .where(Entry.bank_id.in_(bank_ids)).group_by(Entry.bank_id, Entry.status)
            )
            for bank_id, status, n in rows:
                out[bank_id][status] = n
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
        allowed = {"description", "thresholds", "kind", "shared", "new_name"}
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
            bank = self._bank(s, name)
            n = s.scalar(select(func.count()).select_from(Entry).where(Entry.bank_id == bank.id)) or 0
            s.execute(Entry.__table__.delete().where(Entry.bank_id == bank.id))
            s.delete(bank)
            s.add(Change(op="bank_deleted", bank_id=bank.id))
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
        self, bank: str, records: Iterable[HashRecord | RecordError], *, batch_size: int = 2000,
        added_by: str | None = None, progress: Callable[[int], None] | None = None,
    ) -> ImportReport:
        """Apply a stream of records (adds and removes), committing every ``batch_size``.

        Idempotent: a value already active in the bank is left alone, so importing the same file
        twice adds nothing. A crash loses at most the batch in flight.
        """
        report = ImportReport()
        with self.db.session() as s:
            bank_id = self._bank(s, bank).id
        batch: list[HashRecord] = []
        for rec in records:
            if isinstance(rec, HashRecord) and rec.op == "remove" and (rec.meta or {}).get("remove_by") == "external_id":
                # a tombstone naming the list's own entry id (NCMEC deletedImage): no hash in it
                if batch:
                    self._apply_batch(bank_id, batch, report, added_by)
                    if progress:
                        progress(len(batch))
                    batch = []
                report.records += 1
                self._remove_by_external_ids(bank_id, rec, report)
                if progress:
                    progress(1)
                continue
            if isinstance(rec, RecordError):
                report.records += 1
                report.errors.append(rec)
                if progress:
                    progress(1)
                continue
            batch.append(rec)
            if len(batch) >= batch_size:
                self._apply_batch(bank_id, batch, report, added_by)
                if progress:
                    progress(len(batch))
                batch = []
        if batch:
            self._apply_batch(bank_id, batch, report, added_by)
            if progress:
                progress(len(batch))
        return report

    def _apply_batch(self, bank_id: int, batch: list[HashRecord], report: ImportReport,
                     added_by: str | None) -> None:
        # canonicalise and collapse duplicates inside the batch (last op for a value wins)
        ops: dict[tuple[str, str], HashRecord] = {}
        for rec in batch:
            report.records += 1
            try:
                st = get_signal_type(rec.signal_type)
                rec.signal_type = st.name
                rec.value = st.parse(rec.value)
            except (KeyError, SignalValueError) as exc:
                msg = exc.args[0] if isinstance(exc, KeyError) else str(exc)
                report.errors.append(RecordError(rec.position or f"record {report.records}", str(msg)[:200]))
                continue
            key = (rec.signal_type, value_key(rec.value))
            if key in ops:
                report.unchanged += 1
            ops[key] = rec
        if not ops:
            return
        with self.db.session() as s:
            existing: dict[tuple[str, str], tuple[int, str]] = {}
            by_type: dict[str, list[str]] = {}
            for st_name, vkey in ops:
                by_type.setdefault(st_name, []).append(vkey)
            for st_name, keys in by_type.items():
                for i in range(0, len(keys), 500):
                    rows = s.execute(
                        select(Entry.id, Entry.value_key, Entry.status).where(
                            Entry.bank_id == bank_id, Entry.signal_type == st_name,
                            Entry.value_key.in_(keys[i : i + 500]),
                        )
                    )
                    for entry_id, vkey, status in rows:
                        existing[(st_name, vkey)] = (entry_id, status)
            now = utcnow()
            new_rows, revive, withdraw = [], [], []
            for key, rec in ops.items():
                found = existing.get(key)
                if rec.op == "remove":
                    if found is None:
                        report.remove_not_found += 1
                    elif found[1] == "withdrawn":
                        report.unchanged += 1
                    else:
                        withdraw.append(found[0])
                    continue
                if found is None:
                    quality = rec.meta.get("quality") if isinstance(rec.meta, dict) else None
                    new_rows.append({
                        "bank_id": bank_id, "signal_type": rec.signal_type, "value": rec.value,
                        "value_key": key[1], "quality": quality, "status": "active",
                        "source": rec.source, "external_ids": list(rec.external_ids),
                        "tags": list(rec.tags), "category": rec.category,
                        "meta": {k: v for k, v in (rec.meta or {}).items() if k != "quality"},
                        "added_by": added_by, "added_at": now, "updated_at": now,
                    })
                elif found[1] == "withdrawn":
                    revive.append(found[0])
                else:
                    report.unchanged += 1
            changes: list[dict[str, Any]] = []
            if new_rows:
                ins = (pg_insert if self.db.dialect == "postgresql" else sqlite_insert)(Entry.__table__)
                ins = ins.on_conflict_do_nothing(
                    index_elements=["bank_id", "signal_type", "value_key"]
                ).returning(Entry.__table__.c.id, Entry.__table__.c.signal_type)
                inserted = s.execute(ins, new_rows).all()
                report.added += len(inserted)
                report.unchanged += len(new_rows) - len(inserted)  # raced with another writer
                changes += [{"op": "add", "bank_id": bank_id, "entry_id": i, "signal_type": t, "at": now}
                            for i, t in inserted]
            if revive:
                s.execute(update(Entry).where(Entry.id.in_(revive)).values(status="active", updated_at=now))
                report.reactivated += len(revive)
                changes += [{"op": "add", "bank_id": bank_id, "entry_id": i, "at": now} for i in revive]
            if withdraw:
                s.execute(update(Entry).where(Entry.id.in_(withdraw)).values(status="withdrawn", updated_at=now))
                report.removed += len(withdraw)
                changes += [{"op": "withdraw", "bank_id": bank_id, "entry_id": i, "at": now} for i in withdraw]
            if changes:
                s.execute(Change.__table__.insert(), changes)
                AuditLog(self.db).record("bank.entries", added_by or "system", {
                    "bank_id": bank_id, "added": len(changes) - len(revive) - len(withdraw),
                    "reactivated": len(revive), "withdrawn": len(withdraw),
                    "entry_ids": [c["entry_id"] for c in changes][:50]}, session=s)

    def _remove_by_external_ids(self, bank_id: int, rec: HashRecord, report: ImportReport) -> None:
        ids = [str(x) for x in rec.external_ids if x]
        if not ids:
            report.errors.append(RecordError(rec.position or f"record {report.records}",
                                             "removal names no entry id"))
            return
        now = utcnow()
        with self.db.session() as s:
            hit: list[int] = []
            for ext in ids:
                pattern = "%" + json.dumps(ext).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
                rows = s.execute(
                    select(Entry.id, Entry.external_ids, Entry.status).where(
                        Entry.bank_id == bank_id, cast(Entry.external_ids, Text).like(pattern, escape="\\"))
                )
                for entry_id, ext_ids, status in rows:
                    if ext in (ext_ids or []) and status != "withdrawn":
                        hit.append(entry_id)
            if not hit:
                report.remove_not_found += 1
                return
            s.execute(update(Entry).where(Entry.id.in_(hit)).values(status="withdrawn", updated_at=now))
            s.execute(Change.__table__.insert(),
                      [{"op": "withdraw", "bank_id": bank_id, "entry_id": i, "at": now} for i in hit])
            AuditLog(self.db).record("bank.entries", "system", {
                "bank_id": bank_id, "withdrawn": len(hit), "entry_ids": hit[:50],
                "by_external_ids": ids[:20]}, session=s)
            report.removed += len(hit)

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
            row = s.execute(select(Entry, Bank.name).join(Bank).where(Entry.id == entry_id)).first()
            if row is None or (bank is not None and row[1] != bank):
                raise NotFound(f"no entry {entry_id}" + (f" in bank {bank!r}" if bank else ""))
            return _entry_info(row[0], row[1])

    def entries_by_id(self, ids: Iterable[int]) -> dict[int, tuple[EntryInfo, int]]:
        """Active or not, with their bank id (the matcher filters)."""
        ids = list(ids)
        out: dict[int, tuple[EntryInfo, int]] = {}
        with self.db.session() as s:
            for i in range(0, len(ids), 500):
                rows = s.execute(select(Entry, Bank.name).join(Bank).where(Entry.id.in_(ids[i : i + 500])))
                for e, bank_name in rows:
                    out[e.id] = (_entry_info(e, bank_name), e.bank_id)
        return out

    def set_status(
        self, bank: str, status: str, *, entry_id: int | None = None,
        signal_type: str | None = None, value: str | None = None, actor: str | None = None,
    ) -> list[EntryInfo]:
        """Withdraw, disable or re-enable entries picked by id or by value; takes effect at once."""
        if status not in ENTRY_STATUSES:
            raise BankError(f"status must be one of {ENTRY_STATUSES}")
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
                if e.status != status:
                    e.status = status
                    e.updated_at = now
                    s.add(Change(op=op, bank_id=b.id, entry_id=e.id, signal_type=e.signal_type, at=now))
                    changed.append(e.id)
            s.flush()
            if changed:
                AuditLog(self.db).record("bank.entries", actor or "system", {
                    "bank": bank, "bank_id": b.id, "status": status, "entry_ids": changed[:50],
                    "count": len(changed)}, session=s)
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
            if status:
                q = q.where(Entry.status == status)
            if signal_type:
                q = q.where(Entry.signal_type == signal_type)
            q = q.order_by(Entry.id).limit(max(1, min(limit, 10_000)))
            return [_entry_info(e, b.name) for e in s.scalars(q)]

    def iter_records(self, bank: str, *, include_withdrawn: bool = False) -> Iterator[HashRecord]:
        """Stream a bank's entries as records for export (withdrawn ones as removes if asked)."""
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
                yield HashRecord(e.signal_type, e.value, "remove" if e.status == "withdrawn" else "add",
                                 e.external_ids, e.tags, e.category, e.source, meta, f"entry {e.id}")

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
                q = q.where(Change.bank_id.in_(list(bank_ids) or [-1]))
            rows = s.execute(q.order_by(Change.id).limit(limit))
            return [
                {"cursor": r.id, "op": r.op, "bank_id": r.bank_id, "entry_id": r.entry_id,
                 "signal_type": r.signal_type, "at": r.at.isoformat() if r.at else None}
                for r in rows
            ]
