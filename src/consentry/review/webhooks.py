"""Webhooks: signed JSON payloads to named sinks, retried with exponential back-off.

Sinks are declared in the rules file (``sinks:``, see :class:`consentry.policy.rules.Sink`); the
secret of each is read from the environment variable the sink names.

Each payload is signed per attempt::

    Consentry-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{body}")>

A receiver recomputes the HMAC over ``t``, a dot and the raw request body, compares in constant
time, rejects timestamps older than its tolerance (replays) and de-duplicates on the
``Consentry-Delivery`` header (the same for every retry of one payload).
:func:`verify_signature` does the first three.

:meth:`WebhookDispatcher.enqueue` only puts the payload on an in-memory queue; a background thread
writes it to ``webhook_deliveries`` and delivers it, so a slow or dead sink never blocks or fails
the request that caused it. Rows are claimed with a conditional UPDATE, so several API workers can
share the table.

Event types (the ``type`` field and the ``Consentry-Event`` header): ``match.decision``,
``case.decision``, ``content.matched`` (the ledger sweep, :mod:`consentry.ledger.sweep`) and ``audit.checkpoint`` (a signed head of the audit chain, see
:mod:`consentry.review.checkpoints`; its ``data`` is the checkpoint document, which also carries
its own Ed25519 signature for keeping and re-checking later).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import random
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import httpx
from sqlalchemy import or_, select, update

from consentry import __version__
from consentry.db.models import utcnow
from consentry.db.models_audit import WebhookDelivery
from consentry.db.session import Database
from consentry.policy.rules import Sink

log = logging.getLogger("consentry.webhooks")

SIGNATURE_HEADER = "Consentry-Signature"
DELIVERY_HEADER = "Consentry-Delivery"
EVENT_HEADER = "Consentry-Event"
MAX_BODY_BYTES = 256 * 1024
MAX_LOG_ENTRIES = 50
EVENT_TYPES = ("match.decision", "case.decision", "content.matched", "audit.checkpoint")


# ---------------------------------------------------------------------------- signatures


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``Consentry-Signature`` header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode("utf-8"), f"{int(timestamp)}.".encode() + body, hashlib.sha256)
    return f"t={int(timestamp)},v1={mac.hexdigest()}"


def verify_signature(secret: str, header: str | None, body: bytes, tolerance_s: float = 300.0,
                     now: float | None = None) -> bool:
    """True when ``header`` is a valid signature of ``body`` made within ``tolerance_s`` seconds.

    Several ``v1=`` values are accepted (for secret rotation); the timestamp must be no older and
    no further in the future than the tolerance.
    """
    if not header or not secret or len(header) > 2000:
        return False
    ts: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                ts = int(value)
            except ValueError:
                return False
        elif key == "v1":
            candidates.append(value)
    if ts is None or not candidates:
        return False
    now = time.time() if now is None else now
    if abs(now - ts) > tolerance_s:
        return False
    expected = sign(secret, body, ts).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected, c) for c in candidates)


# ---------------------------------------------------------------------------- deliveries


@dataclass(frozen=True)
class DeliveryInfo:
    id: int
    sink: str
    event_type: str
    status: str
    attempts: int
    max_attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    log: list[dict[str, Any]]
    body: str

    def to_dict(self, with_body: bool = False) -> dict[str, Any]:
        iso = lambda d: _aware(d).isoformat() if d else None  # noqa: E731
        d = {"id": self.id, "sink": self.sink, "event_type": self.event_type, "status": self.status,
             "attempts": self.attempts, "max_attempts": self.max_attempts, "created_at": iso(self.created_at),
             "next_attempt_at": iso(self.next_attempt_at) if self.status in ("pending", "sending") else None,
             "last_attempt_at": iso(self.last_attempt_at), "delivered_at": iso(self.delivered_at),
             "last_status_code": self.last_status_code, "last_error": self.last_error, "log": self.log}
        if with_body:
            d["body"] = self.body
        return d


def _aware(d: datetime | None) -> datetime | None:
    return d.replace(tzinfo=timezone.utc) if d is not None and d.tzinfo is None else d


def _info(r: WebhookDelivery) -> DeliveryInfo:
    return DeliveryInfo(r.id, r.sink, r.event_type, r.status, r.attempts, r.max_attempts, r.created_at,
                        r.next_attempt_at, r.last_attempt_at, r.delivered_at, r.last_status_code, r.last_error,
                        list(r.log or []), r.body)


def backoff_seconds(sink: Sink, attempts: int) -> float:
    """Delay before the next attempt after ``attempts`` failed ones: base * 2^(n-1), capped, +0-10%."""
    delay = min(sink.backoff_s * (2 ** max(0, attempts - 1)), sink.max_backoff_s)
    return delay * (1.0 + random.random() * 0.1)


class WebhookDispatcher:
    """Stores and delivers webhook payloads from one background thread per process."""

    def __init__(self, db: Database, sinks: Callable[[], dict[str, Sink]], *, poll_seconds: float = 1.0,
                 client: httpx.Client | None = None):
        self.db = db
        self.sinks = sinks
        self.poll_seconds = poll_seconds
        self._client = client or httpx.Client(follow_redirects=False,
                                              headers={"User-Agent": f"consentry-webhooks/{__version__}"})
        self._q: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=100_000)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ producing
    def build(self, sink: str, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
        event_id = uuid.uuid4().hex
        body = json.dumps({"id": event_id, "type": event_type, "created_at": utcnow().isoformat(),
                           "sink": sink, "data": data}, sort_keys=True, separators=(",", ":"), default=str)
        if len(body.encode("utf-8")) > MAX_BODY_BYTES:
            raise ValueError(f"webhook payload over {MAX_BODY_BYTES} bytes")
        return {"sink": sink, "event_type": event_type[:64], "body": body}

    def enqueue(self, sink: str, event_type: str, data: dict[str, Any]) -> bool:
        """Queue a payload for ``sink``; never blocks, never raises. False if it was dropped."""
        try:
            self._q.put_nowait(self.build(sink, event_type, data))
        except Exception:  # noqa: BLE001 - queue full or an unserialisable payload: say so, go on
            log.exception("webhook for sink %r dropped", sink)
            return False
        self._wake.set()
        return True

    def store(self, sink: str, event_type: str, data: dict[str, Any]) -> int:
        """Write one payload to the delivery log now; returns its delivery id."""
        return self._store([self.build(sink, event_type, data)])[0]

    def _store(self, items: list[dict[str, Any]]) -> list[int]:
        sinks = self.sinks()
        now = utcnow()
        ids: list[int] = []
        with self.db.session() as s:
            for it in items:
                sink = sinks.get(it["sink"])
                row = WebhookDelivery(sink=it["sink"], event_type=it["event_type"], body=it["body"],
                                      status="pending", attempts=0,
                                      max_attempts=sink.max_attempts if sink else 1, created_at=now,
                                      next_attempt_at=now, log=[])
                s.add(row)
                s.flush()
                ids.append(row.id)
        return ids

    def _drain(self) -> None:
        items: list[dict[str, Any]] = []
        while len(items) < 5000:
            try:
                items.append(self._q.get_nowait())
            except queue.Empty:
                break
        if items:
            try:
                self._store(items)
            except Exception:  # noqa: BLE001 - the database may be away: keep them for next time
                log.exception("could not store %d webhook payload(s); retrying", len(items))
                for it in items:
                    try:
                        self._q.put_nowait(it)
                    except queue.Full:
                        log.error("webhook queue full: dropping a payload for %r", it["sink"])

    # ------------------------------------------------------------------ delivering
    def _claim(self, delivery_id: int, lease_until: datetime, now: datetime) -> bool:
        with self.db.session() as s:
            res = s.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery_id,
                       WebhookDelivery.status.in_(("pending", "sending")),
                       WebhookDelivery.next_attempt_at <= now)
                .values(status="sending", next_attempt_at=lease_until)
                .execution_options(synchronize_session=False)
            )
            return res.rowcount == 1

    def due(self, limit: int = 100) -> list[int]:
        now = utcnow()
        with self.db.session() as s:
            return list(s.scalars(
                select(WebhookDelivery.id)
                .where(or_(WebhookDelivery.status == "pending", WebhookDelivery.status == "sending"),
                       WebhookDelivery.next_attempt_at <= now)
                .order_by(WebhookDelivery.next_attempt_at).limit(limit)))

    def run_once(self) -> int:
        """Store queued payloads and make every due attempt; returns how many attempts were made."""
        self._drain()
        made = 0
        for delivery_id in self.due():
            if self._stop.is_set():
                break
            if self.attempt(delivery_id):
                made += 1
        return made

    def attempt(self, delivery_id: int) -> bool:
        """One delivery attempt of one row (if it is due and this process claims it)."""
        now = utcnow()
        with self.db.session() as s:
            row = s.get(WebhookDelivery, delivery_id)
            if row is None:
                return False
            sink_name, body, attempts, max_attempts = row.sink, row.body, row.attempts, row.max_attempts
        sink = self.sinks().get(sink_name)
        timeout = sink.timeout_s if sink else 1.0
        if not self._claim(delivery_id, now + timedelta(seconds=timeout + 60), now):
            return False
        started = time.monotonic()
        status_code: int | None = None
        error: str | None = None
        if sink is None:
            error = f"no sink named {sink_name!r} in the rules file"
        elif not sink.secret():
            error = f"the secret variable {sink.secret_env} is not set"
        else:
            raw = body.encode("utf-8")
            payload_id = json.loads(body).get("id", "")
            headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(sink.secret(), raw, int(time.time())),
                       DELIVERY_HEADER: str(payload_id), EVENT_HEADER: json.loads(body).get("type", "")}
            try:
                resp = self._client.post(sink.url, content=raw, headers=headers, timeout=sink.timeout_s)
                status_code = resp.status_code
                if not 200 <= resp.status_code < 300:
                    error = f"HTTP {resp.status_code}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {str(exc)[:200]}"
        attempts += 1
        finished = utcnow()
        entry = {"attempt": attempts, "at": finished.isoformat(), "status_code": status_code, "error": error,
                 "seconds": round(time.monotonic() - started, 3)}
        with self.db.session() as s:
            row = s.get(WebhookDelivery, delivery_id)
            if row is None:
                return True
            row.attempts = attempts
            row.last_attempt_at = finished
            row.last_status_code = status_code
            row.last_error = error
            row.log = (list(row.log or []) + [entry])[-MAX_LOG_ENTRIES:]
            if error is None:
                row.status, row.delivered_at = "delivered", finished
            elif attempts >= max_attempts or sink is None:
                row.status = "failed"
            else:
                row.status = "pending"
                row.next_attempt_at = finished + timedelta(seconds=backoff_seconds(sink, attempts))
        if error:
            log.warning("webhook %d to %r failed (attempt %d of %d): %s", delivery_id, sink_name, attempts,
                        max_attempts, error)
        return True

    def _next_wait(self) -> float:
        with self.db.session() as s:
            nxt = s.scalar(select(WebhookDelivery.next_attempt_at)
                           .where(WebhookDelivery.status.in_(("pending", "sending")))
                           .order_by(WebhookDelivery.next_attempt_at).limit(1))
        if nxt is None:
            return self.poll_seconds
        return max(0.0, min(self.poll_seconds, (_aware(nxt) - utcnow()).total_seconds()))

    def _run(self) -> None:
        while not self._stop.is_set():
            wait = self.poll_seconds
            try:
                self.run_once()
                wait = self._next_wait()
            except Exception:  # noqa: BLE001 - keep the worker alive
                log.exception("webhook worker error")
            if self._wake.wait(wait):
                self._wake.clear()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None
        try:
            self._drain()  # what was queued is kept for the next start
        except Exception:  # noqa: BLE001
            log.exception("could not store queued webhooks at shutdown")
        self._client.close()

    # ------------------------------------------------------------------ reading
    def get(self, delivery_id: int) -> DeliveryInfo | None:
        with self.db.session() as s:
            row = s.get(WebhookDelivery, delivery_id)
            return _info(row) if row else None

    def list(self, *, sink: str | None = None, status: str | None = None, after_id: int = 0,
             limit: int = 100) -> list[DeliveryInfo]:
        with self.db.session() as s:
            q = select(WebhookDelivery).where(WebhookDelivery.id > after_id)
            if sink:
                q = q.where(WebhookDelivery.sink == sink)
            if status:
                q = q.where(WebhookDelivery.status == status)
            q = q.order_by(WebhookDelivery.id).limit(max(1, min(limit, 1000)))
            return [_info(r) for r in s.scalars(q)]
