"""The audit log: an append-only table, each event hash-chained to the previous one.

``hash = sha256(canonical_json({"seq", "at", "event_type", "actor", "data"}) + prev_hash)`` with
``prev_hash`` of the first event = 64 zeros. Editing, deleting or reordering any stored event
breaks the chain; :meth:`AuditLog.verify` walks it and names the first bad ``seq`` and what went
wrong (``edited``, ``deleted`` or ``reordered``).

Appends are serialised: every writer first locks the one-row ``audit_head`` table (PostgreSQL:
``SELECT … FOR UPDATE``; SQLite: a write to it, which takes the database's single write lock),
reads the head, inserts the next event and moves the head, all in one transaction. Two writers
can therefore never fork the chain; ``seq`` and ``hash`` are also unique in the schema.

Anchoring: the chain alone cannot show that its *end* was cut off (delete the last events and move
``audit_head`` back) or that everything was deleted. ``verify`` therefore reports the head
(``seq:hash``), checks heads recorded elsewhere (``expect``: a head an auditor kept, a signed
checkpoint received by a webhook sink) and, when a :class:`consentry.review.checkpoints.Checkpointer`
is registered for the database (:func:`set_checkpointer`), the latest signed checkpoint kept under
``CONSENTRY_HOME``; the checkpointer also writes a new checkpoint every N events / hour.

Event types used across the project (free-form, dotted): ``login.ok``, ``login.failed``,
``media.reveal``, ``case.decision``, ``case.approval``, ``bank.create``, ``bank.update``,
``bank.delete``, ``bank.entries``, ``key.create``, ``key.revoke``, ``vault.put``, ``vault.hold``,
``vault.purge``, ``audit.export``, ``rules.reload``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterator

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from consentry.db.models import utcnow
from consentry.db.models_audit import AuditEvent, AuditHead
from consentry.db.session import Database
from consentry.errors import ConsentryError

log = logging.getLogger("consentry.audit")

GENESIS = "0" * 64
MAX_DATA_BYTES = 64 * 1024
#: how far ``verify`` looks for the seq an event was originally written with (to tell a moved
#: event from an edited one)
REORDER_WINDOW = 1000


class AuditError(ConsentryError):
    code = "audit_error"


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 text: the one serialisation the hashes are computed over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def format_at(at: datetime) -> str:
    """UTC, microseconds, ``Z``; naive datetimes (SQLite gives those back) are taken as UTC."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(seq: int, at: datetime, event_type: str, actor: str, data: dict[str, Any], prev_hash: str) -> str:
    body = canonical_json({"seq": int(seq), "at": format_at(at), "event_type": event_type,
                           "actor": actor, "data": data})
    return hashlib.sha256((body + prev_hash).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class AuditRecord:
    """One stored event, as shown to auditors."""

    seq: int
    at: datetime
    event_type: str
    actor: str
    data: dict[str, Any]
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": format_at(self.at), "event_type": self.event_type,
                "actor": self.actor, "data": self.data, "prev_hash": self.prev_hash, "hash": self.hash}


def _record(e: AuditEvent) -> AuditRecord:
    return AuditRecord(int(e.seq), e.at, e.event_type, e.actor, dict(e.data or {}), e.prev_hash, e.hash)


@dataclass
class VerifyResult:
    ok: bool
    checked: int = 0
    head_seq: int = 0
    first_bad_seq: int | None = None
    # edited | deleted | reordered | truncated (shorter than a recorded head) | diverged (a recorded
    # head's event has another hash) | checkpoint (the local checkpoint file fails its signature)
    problem: str | None = None
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    head_hash: str = GENESIS
    anchors: list[dict[str, Any]] = field(default_factory=list)  # the recorded heads checked

    @property
    def head(self) -> str:
        """``seq:hash`` of the last event: keep it somewhere else and pass it back to ``verify``."""
        return f"{self.head_seq}:{self.head_hash}"

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "head_seq": self.head_seq, "head_hash": self.head_hash,
                "head": self.head, "first_bad_seq": self.first_bad_seq, "problem": self.problem,
                "message": self.message, "details": self.details, "anchors": self.anchors}


@dataclass(frozen=True)
class ExpectedHead:
    """A head recorded outside the database: the chain must still contain event ``seq`` with
    ``hash`` (``source`` says where it came from, for messages)."""

    seq: int
    hash: str
    source: str = "--expect-head"


_HEAD = re.compile(r"^\s*(\d{1,18})\s*:\s*([0-9a-fA-F]{64})\s*$")


def parse_head(text_: str, source: str = "--expect-head") -> ExpectedHead:
    """``SEQ:HASH`` (as printed by ``consentry audit verify``) -> :class:`ExpectedHead`."""
    m = _HEAD.match(text_ or "")
    if not m:
        raise AuditError(f"{source}: expected SEQ:HASH (a number, a colon and 64 hex digits, as printed by "
                         f"'consentry audit verify'), got {str(text_)[:100]!r}")
    return ExpectedHead(int(m.group(1)), m.group(2).lower(), source)


#: checkpointers registered per database (see :mod:`consentry.review.checkpoints`)
_checkpointers: "weakref.WeakKeyDictionary[Database, Any]" = weakref.WeakKeyDictionary()


def set_checkpointer(db: Database, checkpointer: Any | None) -> None:
    """Register (or with None remove) the checkpointer of ``db``: it is told about every event
    appended in its own transaction (``maybe_checkpoint``) and gives ``verify`` its latest head."""
    if checkpointer is None:
        _checkpointers.pop(db, None)
    else:
        _checkpointers[db] = checkpointer


def get_checkpointer(db: Database) -> Any | None:
    return _checkpointers.get(db)


def _clean(data: dict[str, Any] | None) -> dict[str, Any]:
    """A JSON round trip, so what is hashed is exactly what the database gives back."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise AuditError("audit event data must be a JSON object")
    try:
        text_ = canonical_json(data)
    except (TypeError, ValueError):
        text_ = json.dumps(data, sort_keys=True, default=str, allow_nan=False)
    if len(text_.encode("utf-8")) > MAX_DATA_BYTES:
        raise AuditError(f"audit event data is over {MAX_DATA_BYTES} bytes")
    return json.loads(text_)


class AuditLog:
    def __init__(self, db: Database):
        self.db = db

    # ------------------------------------------------------------------ writing
    def record(self, event_type: str, actor: str | None, data: dict[str, Any] | None = None, *,
               session: Session | None = None) -> AuditRecord:
        """Append one event. Pass the caller's SQLAlchemy ``session`` to commit the event together
        with the change it describes; without one the event is committed on its own."""
        event_type = str(event_type)[:64]
        actor = str(actor or "system")[:200]
        data = _clean(data)
        if not event_type:
            raise AuditError("an audit event needs a type")
        if session is not None:
            return self._append(session, event_type, actor, data)
        with self.db.session() as s:
            rec = self._append(s, event_type, actor, data)
        cp = _checkpointers.get(self.db)
        if cp is not None:  # after the commit: a checkpoint only ever names a head that exists
            try:
                cp.maybe_checkpoint(rec.seq)
            except Exception:  # noqa: BLE001 - an anchor failure must never fail the audited action
                log.exception("audit checkpoint failed")
        return rec

    def _lock_head(self, s: Session) -> AuditHead:
        head_table = AuditHead.__table__
        if self.db.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert

            s.execute(insert(head_table).values(id=1, seq=0, hash=GENESIS).on_conflict_do_nothing())
            head = s.scalar(select(AuditHead).where(AuditHead.id == 1).with_for_update())
        else:
            # a write takes SQLite's single write lock for the rest of the transaction
            s.execute(text("INSERT OR IGNORE INTO audit_head (id, seq, hash) VALUES (1, 0, :g)"), {"g": GENESIS})
            s.execute(text("UPDATE audit_head SET seq = seq WHERE id = 1"))
            head = s.get(AuditHead, 1, populate_existing=True)
        assert head is not None
        return head

    def _append(self, s: Session, event_type: str, actor: str, data: dict[str, Any]) -> AuditRecord:
        head = self._lock_head(s)
        seq = int(head.seq) + 1
        at = utcnow()
        digest = event_hash(seq, at, event_type, actor, data, head.hash)
        ev = AuditEvent(seq=seq, at=at, event_type=event_type, actor=actor, data=data,
                        prev_hash=head.hash, hash=digest)
        s.add(ev)
        head.seq, head.hash = seq, digest
        s.flush()
        return AuditRecord(seq, at, event_type, actor, data, ev.prev_hash, digest)

    # ------------------------------------------------------------------ reading
    def head(self) -> tuple[int, str]:
        with self.db.session() as s:
            h = s.get(AuditHead, 1)
            return (int(h.seq), h.hash) if h else (0, GENESIS)

    def list(self, *, after_seq: int = 0, limit: int = 100, event_type: str | None = None,
             actor: str | None = None) -> list[AuditRecord]:
        """Events after ``after_seq`` in chain order (cursor pagination by seq)."""
        limit = max(1, min(int(limit), 1000))
        with self.db.session() as s:
            q = select(AuditEvent).where(AuditEvent.seq > after_seq)
            if event_type:
                q = q.where(AuditEvent.event_type == event_type)
            if actor:
                q = q.where(AuditEvent.actor == actor)
            return [_record(e) for e in s.scalars(q.order_by(AuditEvent.seq).limit(limit))]

    def iter_all(self, page: int = 2000) -> Iterator[AuditRecord]:
        after = 0
        while True:
            rows = self.list(after_seq=after, limit=min(page, 1000))
            if not rows:
                return
            yield from rows
            after = rows[-1].seq

    def count(self) -> int:
        with self.db.session() as s:
            return int(s.scalar(select(func.count()).select_from(AuditEvent)) or 0)

    # ----------------------------------------------------------------- verifying
    def _original_seq(self, r: AuditRecord) -> int | None:
        """The seq this event's hash was computed with, if it is not its current one."""
        for d in range(1, REORDER_WINDOW + 1):
            for cand in (r.seq + d, r.seq - d):
                if cand >= 1 and event_hash(cand, r.at, r.event_type, r.actor, r.data, r.prev_hash) == r.hash:
                    return cand
        return None

    def _seq_of_hash(self, digest: str) -> int | None:
        if digest == GENESIS:
            return 0
        with self.db.session() as s:
            found = s.scalar(select(AuditEvent.seq).where(AuditEvent.hash == digest))
            return None if found is None else int(found)

    def hash_at(self, seq: int) -> str | None:
        if seq == 0:
            return GENESIS
        with self.db.session() as s:
            return s.scalar(select(AuditEvent.hash).where(AuditEvent.seq == seq))

    def verify(self, expect: list[ExpectedHead] | None = None, *, checkpoints: bool = True) -> VerifyResult:
        """Walk the chain in seq order; stop at the first problem and say where and what.

        Then check every head in ``expect`` and, with ``checkpoints``, the latest checkpoint of
        the registered checkpointer: the chain must still reach each and hold the same hash there.
        """
        heads = list(expect or [])
        cp = _checkpointers.get(self.db) if checkpoints else None
        head_seq, head_hash = self.head()
        res = VerifyResult(ok=True, head_seq=head_seq, head_hash=head_hash)
        expected, prev_hash, prev_seq = 1, GENESIS, 0

        def bad(seq: int, problem: str, message: str, **details: Any) -> VerifyResult:
            res.ok, res.first_bad_seq, res.problem, res.message = False, seq, problem, message
            res.details = details
            return res

        for r in self.iter_all():
            self_ok = event_hash(r.seq, r.at, r.event_type, r.actor, r.data, r.prev_hash) == r.hash
            if not self_ok:
                original = self._original_seq(r)
                if original is not None:
                    pred = self._seq_of_hash(r.prev_hash)
                    if pred is not None:
                        return bad(r.seq, "reordered",
                                   f"event #{r.seq} was written as #{original}: events were reordered",
                                   written_as=original)
                    if original > r.seq:
                        return bad(r.seq, "deleted",
                                   f"event #{r.seq} was written as #{original}: the event(s) before it "
                                   "were deleted and the rest renumbered", written_as=original)
                return bad(r.seq, "edited", f"event #{r.seq} was edited: its content does not match its hash")
            if r.seq != expected:
                missing = list(range(expected, r.seq))
                return bad(expected, "deleted",
                           f"event #{expected} is missing" if len(missing) == 1 else
                           f"events #{expected}-#{r.seq - 1} are missing", missing=missing[:100])
            if r.prev_hash != prev_hash:
                pred = self._seq_of_hash(r.prev_hash)
                if pred is None and prev_seq:
                    return bad(prev_seq, "edited",
                               f"event #{prev_seq} was rewritten (event #{r.seq} was chained to a "
                               "different predecessor)")
                return bad(r.seq, "reordered", f"event #{r.seq} is chained to event #{pred}, not to "
                                               f"#{prev_seq}: events were reordered", chained_to=pred)
            res.checked += 1
            expected, prev_hash, prev_seq = r.seq + 1, r.hash, r.seq
        if head_seq > prev_seq:
            missing = list(range(prev_seq + 1, head_seq + 1))
            return bad(prev_seq + 1, "deleted",
                       f"the last {len(missing)} event(s) (#{prev_seq + 1}-#{head_seq}) were deleted",
                       missing=missing[:100])
        if head_seq and head_hash != prev_hash:
            return bad(prev_seq, "edited", f"event #{prev_seq} does not match the recorded head of the chain")
        if head_seq < prev_seq:
            return bad(head_seq + 1, "edited",
                       f"events after #{head_seq} were added without going through the log")
        if cp is not None:
            try:
                anchor = cp.expected_head()
            except ConsentryError as exc:
                return bad(prev_seq, "checkpoint", f"the local checkpoint cannot be trusted: {exc}")
            if anchor is not None:
                heads.append(anchor)
        for exp in heads:
            res.anchors.append({"seq": exp.seq, "hash": exp.hash, "source": exp.source})
            if exp.seq > prev_seq:
                what = ("the log is empty" if prev_seq == 0 else f"the log ends at event #{prev_seq}")
                return bad(prev_seq + 1, "truncated",
                           f"{what}, but {exp.source} recorded event #{exp.seq}: events #{prev_seq + 1}-#{exp.seq} "
                           f"(at least) were deleted" + (" (the whole log was wiped)" if prev_seq == 0 else
                                                         " and the head moved back"),
                           expected_seq=exp.seq, expected_hash=exp.hash, source=exp.source)
            found = self.hash_at(exp.seq)
            if found != exp.hash:
                return bad(exp.seq, "diverged",
                           f"event #{exp.seq} does not have the hash {exp.source} recorded: the log was "
                           f"rewritten at or before #{exp.seq}", expected_hash=exp.hash, found_hash=found,
                           source=exp.source)
        res.message = f"{res.checked} event(s) verified; the chain is intact"
        if res.anchors:
            res.message += f" and contains {len(res.anchors)} recorded head(s)"
        return res

