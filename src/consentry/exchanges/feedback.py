"""The exchange feedback outbox: what review decided about content matching an exchange's hashes.

- A case opened on a match of an exchange's entry owes that exchange ``pending_review``; a
  reviewer's ``confirm`` owes ``blocked`` and a ``dismiss`` ``not_blocked`` (after the undo window;
  an undone decision cancels what it queued). A ``confirm`` into a bank a StopNCII exchange opted in
  (``--option submit_banks=``) also queues a submission of the items' PDQ/MD5.
- Rows hold only the hash, its signal type, the program's own id for the entry and the status:
  nothing about the uploader, the media, the case or the reviewer ever leaves.
- ``dedupe`` (exchange, kind, hash, status) is unique: the same feedback is never queued, so never
  sent, twice. Delivery takes a per-exchange lock, retries with back-off (honouring
  ``Retry-After``), gives up after :data:`MAX_ATTEMPTS` (state ``failed``, visible) and audits each
  batch sent.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from consentry.db.models import Bank, Entry, utcnow, value_key
from consentry.db.models_victims import ExchangeConfig, ExchangeOutbox
from consentry.errors import ConsentryError
from consentry.exchanges.base import ExchangeError, ExchangeStore
from consentry.review.audit import AuditLog

STATUSES = ("pending_review", "blocked", "not_blocked")
MAX_ATTEMPTS = 10
MAX_BACKOFF = 6 * 3600
BATCH = 500


@dataclass
class OutboxItem:
    id: int
    exchange: str
    kind: str
    signal_type: str
    value: str
    status: str
    external_id: str | None
    state: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime | None
    sent_at: datetime | None
    case_id: int | None = None
    decision_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        iso = (lambda d: d.replace(tzinfo=d.tzinfo or timezone.utc).isoformat() if d else None)
        return {"id": self.id, "exchange": self.exchange, "kind": self.kind, "signal_type": self.signal_type,
                "value": self.value, "status": self.status, "state": self.state, "attempts": self.attempts,
                "next_attempt_at": iso(self.next_attempt_at), "last_error": self.last_error,
                "created_at": iso(self.created_at), "sent_at": iso(self.sent_at), "case_id": self.case_id}


def _item(r: ExchangeOutbox, name: str) -> OutboxItem:
    return OutboxItem(r.id, name, r.kind, r.signal_type, r.value, r.status, r.external_id, r.state, r.attempts,
                      r.next_attempt_at, r.last_error, r.created_at, r.sent_at, r.case_id, r.decision_id)


def _accepts(type_: str, kind: str, status: str, signal_type: str) -> bool:
    if type_ == "consentry-hub":
        return kind == "feedback" and status in STATUSES
    from consentry.exchanges.programs import program_module

    if kind == "submit":
        return type_ == "stopncii" and signal_type in ("pdq", "md5")
    return program_module(type_).Client.feedback_for(status, signal_type)


def _external(type_: str, external_ids: Iterable[str]) -> str | None:
    ids = list(external_ids or [])
    if type_ == "ncmec":
        return next((e[len("ncmec:"):] for e in ids if e.startswith("ncmec:")), None)
    if type_ == "threatexchange":
        return ",".join(e for e in ids if e.startswith("te:"))[:300] or None
    return None


def enqueue(s: Session, x: ExchangeConfig, kind: str, signal_type: str, value: str, status: str, *,
            external_id: str | None = None, case_id: int | None = None, decision_id: int | None = None,
            delay: float = 0.0) -> bool:
    """Queue one item (False when the same one is already queued or sent)."""
    if status not in STATUSES or not _accepts(x.type, kind, status, signal_type):
        return False
    dedupe = hashlib.sha256(f"{x.id}|{kind}|{signal_type}|{value}|{status}".encode()).hexdigest()
    found = s.scalar(select(ExchangeOutbox).where(ExchangeOutbox.dedupe == dedupe))
    now = utcnow()
    if found is not None:
        if found.state != "cancelled":
            return False
        # an undone decision cancelled it; a new decision queues it again
        found.state, found.decision_id, found.case_id = "pending", decision_id, case_id
        found.next_attempt_at, found.attempts, found.last_error = now + timedelta(seconds=delay), 0, None
        return True
    try:
        with s.begin_nested():
            s.add(ExchangeOutbox(exchange_id=x.id, kind=kind, signal_type=signal_type, value=value, status=status,
                                 external_id=external_id, case_id=case_id, decision_id=decision_id, dedupe=dedupe,
                                 state="pending", attempts=0, next_attempt_at=now + timedelta(seconds=delay),
                                 created_at=now))
    except IntegrityError:  # queued by someone else meanwhile
        return False
    return True


def _exchange_entries(s: Session, matches: Iterable[dict[str, Any]]) -> list[tuple[ExchangeConfig, Entry]]:
    ids = {int(m["entry_id"]) for m in matches if isinstance(m, dict) and isinstance(m.get("entry_id"), int)}
    if not ids:
        return []
    exchanges = list(s.scalars(select(ExchangeConfig)))
    if not exchanges:
        return []
    by_name = {x.name: x for x in exchanges}
    by_bank: dict[str, list[ExchangeConfig]] = {}
    for x in exchanges:
        by_bank.setdefault(x.bank, []).append(x)
    out = []
    for e, bank_name in s.execute(select(Entry, Bank.name).join(Bank, Bank.id == Entry.bank_id)
                                  .where(Entry.id.in_(sorted(ids)))):
        src = e.source or ""
        if src.startswith("exchange:") and src[len("exchange:"):] in by_name:
            out.append((by_name[src[len("exchange:"):]], e))
        else:
            out += [(x, e) for x in by_bank.get(bank_name, [])]
    return out


def on_case_matches(s: Session, case_id: int, matches: Iterable[dict[str, Any]]) -> int:
    """A case was opened (or joined) on these matches: ``pending_review`` to each exchange."""
    n = 0
    for x, e in _exchange_entries(s, matches):
        n += enqueue(s, x, "feedback", e.signal_type, e.value, "pending_review",
                     external_id=_external(x.type, e.external_ids), case_id=case_id)
    return n


def on_decision(s: Session, case_id: int, decision_id: int, kind: str, bank: str | None,
                items: Iterable[Any], *, delay: float = 0.0) -> int:
    """A decision was applied: ``blocked`` (confirm) / ``not_blocked`` (dismiss) to each exchange
    whose entry the case's items matched; a confirm into an opted-in bank queues a submission."""
    status = {"confirm": "blocked", "dismiss": "not_blocked"}.get(kind)
    if status is None:
        return 0
    items = list(items)
    n = 0
    for x, e in _exchange_entries(s, [m for i in items for m in (i.matches or [])]):
        n += enqueue(s, x, "feedback", e.signal_type, e.value, status, external_id=_external(x.type, e.external_ids),
                     case_id=case_id, decision_id=decision_id, delay=delay)
    if kind == "confirm" and bank:
        for x in s.scalars(select(ExchangeConfig).where(ExchangeConfig.type == "stopncii")):
            banks = {b.strip() for b in str((x.options or {}).get("submit_banks") or "").split(",") if b.strip()}
            if bank not in banks:
                continue
            for i in items:
                for st, v in (("pdq", i.pdq), ("md5", i.md5 if i.content_type == "video" else None)):
                    if v:
                        n += enqueue(s, x, "submit", st, v, "blocked", case_id=case_id, decision_id=decision_id,
                                     delay=delay)
    return n


def cancel_for_decision(s: Session, decision_id: int) -> int:
    res = s.execute(update(ExchangeOutbox).where(ExchangeOutbox.decision_id == decision_id,
                                                 ExchangeOutbox.state == "pending").values(state="cancelled"))
    return int(res.rowcount or 0)


# ------------------------------------------------------------------ manual
def queue_manual(store: ExchangeStore, name: str, status: str, hashes: list[tuple[str, str]]) -> int:
    """``consentry exchange feedback NAME --status ... --pdq ...``: queue feedback on given hashes."""
    if status not in STATUSES:
        raise ExchangeError(f"status must be one of {', '.join(STATUSES)}")
    with store.db.session() as s:
        x = s.scalar(select(ExchangeConfig).where(ExchangeConfig.name == name))
        if x is None:
            raise ExchangeError(f"no exchange named {name!r}")
        n = 0
        for st, v in hashes:
            external = None
            e = s.scalar(select(Entry).join(Bank, Bank.id == Entry.bank_id)
                         .where(Bank.name == x.bank, Entry.signal_type == st, Entry.value_key == value_key(v)))
            if e is not None:
                external = _external(x.type, e.external_ids)
            n += enqueue(s, x, "feedback", st, v, status, external_id=external)
        return n


def list_outbox(store: ExchangeStore, name: str | None = None, state: str | None = None, *,
                after_id: int = 0, limit: int = 100) -> list[OutboxItem]:
    with store.db.session() as s:
        q = (select(ExchangeOutbox, ExchangeConfig.name).join(ExchangeConfig, ExchangeConfig.id == ExchangeOutbox.exchange_id)
             .where(ExchangeOutbox.id > after_id).order_by(ExchangeOutbox.id).limit(limit))
        if name:
            q = q.where(ExchangeConfig.name == name)
        if state:
            q = q.where(ExchangeOutbox.state == state)
        return [_item(r, n) for r, n in s.execute(q)]


# ------------------------------------------------------------------ delivery
class _HubSender:
    def __init__(self, store: ExchangeStore, name: str):
        from consentry.exchanges.base import client_for

        self.client = client_for(store, store.get(name))

    def send(self, items: list[OutboxItem]) -> dict[int, str | None]:
        self.client.feedback([{"signal_type": i.signal_type, "value": i.value, "status": i.status} for i in items])
        return {i.id: None for i in items}


def _sender(store: ExchangeStore, name: str, type_: str):
    if type_ == "consentry-hub":
        return _HubSender(store, name)
    from consentry.exchanges.programs import client_for_program

    return client_for_program(store, name)


def deliver(store: ExchangeStore, name: str | None = None, *, sender=None, now: datetime | None = None) -> list[dict[str, Any]]:
    """Send what is due, per exchange; one report per exchange with something due."""
    from consentry.exchanges._http import RetryLater

    now = now or utcnow()
    reports = []
    with store.db.session() as s:
        q = select(ExchangeConfig.name, ExchangeConfig.type, ExchangeConfig.id)
        if name:
            q = q.where(ExchangeConfig.name == name)
        exchanges = list(s.execute(q))
    if name and not exchanges:
        raise ExchangeError(f"no exchange named {name!r}")
    for xname, xtype, xid in exchanges:
        with store.db.session() as s:
            due = [_item(r, xname) for r in s.scalars(
                select(ExchangeOutbox).where(ExchangeOutbox.exchange_id == xid, ExchangeOutbox.state == "pending",
                                             ExchangeOutbox.next_attempt_at <= now)
                .order_by(ExchangeOutbox.id).limit(BATCH))]
        if not due:
            continue
        report = {"exchange": xname, "due": len(due), "sent": 0, "retry": 0, "failed": 0, "busy": False}
        with store.exclusive("outbox:" + xname) as mine:
            if not mine:
                report["busy"] = True
                reports.append(report)
                continue
            results: dict[int, str | None] = {}
            wait: float | None = None
            batch_error: str | None = None
            client = None
            try:
                client = sender or _sender(store, xname, xtype)
                results = client.send(due)
            except RetryLater as exc:
                batch_error, wait = str(exc), exc.retry_after
            except ConsentryError as exc:
                batch_error = str(exc)
            finally:
                if client is not None and client is not sender and hasattr(client, "close"):
                    client.close()
            sent_ids: list[int] = []
            with store.db.session() as s:
                for it in due:
                    row = s.get(ExchangeOutbox, it.id)
                    if row is None or row.state != "pending":
                        continue
                    err = batch_error if batch_error is not None else results.get(it.id, "not sent")
                    if err is None:
                        row.state, row.sent_at, row.last_error = "sent", utcnow(), None
                        row.attempts += 1
                        sent_ids.append(it.id)
                        continue
                    row.attempts += 1
                    row.last_error = err[:500]
                    if row.attempts >= MAX_ATTEMPTS:
                        row.state = "failed"
                        report["failed"] += 1
                    else:
                        delay = wait if wait is not None else min(MAX_BACKOFF, 60 * 2 ** (row.attempts - 1))
                        row.next_attempt_at = utcnow() + timedelta(seconds=delay)
                        report["retry"] += 1
                report["sent"] = len(sent_ids)
                if sent_ids:
                    AuditLog(store.db).record("exchange.feedback_sent", "system", {
                        "exchange": xname, "count": len(sent_ids), "outbox_ids": sent_ids[:100]}, session=s)
            if batch_error:
                report["error"] = batch_error
        reports.append(report)
    return reports


def review_hook(s: Session, what: str, *args: Any, **kw: Any) -> None:
    """Called by the review service inside its transaction; a failure here is logged and never
    undoes the review action (the hook runs in a savepoint)."""
    import logging

    fn = {"case": on_case_matches, "decision": on_decision, "undo": cancel_for_decision}[what]
    try:
        with s.begin_nested():
            fn(s, *args, **kw)
    except Exception:  # noqa: BLE001 - feedback must not block review
        logging.getLogger("consentry.exchanges").exception("could not queue exchange feedback (%s)", what)
