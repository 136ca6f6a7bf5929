"""Signed audit checkpoints: the head of the hash chain, kept off the database and off the machine.

The hash chain shows that no event was edited, reordered or removed *before* the head; it cannot
show that the head itself was moved back (the last events deleted) or that the whole log was
deleted. A checkpoint records ``seq`` and ``hash`` of the head at one moment, signed with the
instance's Ed25519 key (``$CONSENTRY_HOME/audit-checkpoint.key``, created on first use, mode
0600). Checkpoints are

- appended to ``$CONSENTRY_HOME/audit-checkpoints.jsonl`` (``consentry audit verify`` checks the
  chain still contains the latest one);
- sent as ``audit.checkpoint`` webhooks to the sinks named in ``CONSENTRY_AUDIT_CHECKPOINT_SINKS``
  (comma-separated names of sinks in the rules file), so the head also lives on another machine.

They are written every ``CONSENTRY_AUDIT_CHECKPOINT_EVENTS`` events (default 1000) or, when events
were added, after ``CONSENTRY_AUDIT_CHECKPOINT_SECONDS`` (default 3600), by the service, and on
``consentry audit checkpoint``.

A checkpoint document::

    {"type": "consentry.audit.checkpoint", "version": 1, "seq": 42, "hash": "<64 hex>",
     "at": "2025-01-01T00:00:00.000000Z", "reason": "events|interval|manual", "events": 42,
     "key_id": "<16 hex>", "public_key": "ed25519:<base64>", "signature": "<base64>"}

``signature`` is Ed25519 over the canonical JSON (sorted keys, no spaces) of every other field.
:func:`verify_checkpoint` checks one; pin the public key (``consentry audit checkpoint
--public-key``) rather than trusting the one a document carries.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from consentry.db.models import utcnow
from consentry.db.session import Database
from consentry.errors import ConsentryError
from consentry.review.audit import AuditLog, ExpectedHead, canonical_json, format_at

log = logging.getLogger("consentry.audit")

CHECKPOINT_TYPE = "consentry.audit.checkpoint"
CHECKPOINT_EVENT = "audit.checkpoint"  # the webhook event type
KEY_FILE = "audit-checkpoint.key"
LOG_FILE = "audit-checkpoints.jsonl"
TAIL_BYTES = 256 * 1024  # the latest checkpoint is looked for in this much of the file's end
_HEX = set("0123456789abcdef")


class CheckpointError(ConsentryError):
    code = "checkpoint_error"


# ------------------------------------------------------------------------------------- keys


def load_or_create_key(home: Path) -> Ed25519PrivateKey:
    """The instance's checkpoint signing key; created (mode 0600) when missing."""
    path = Path(home) / KEY_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        Path(home).mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another worker made it first
            return load_or_create_key(home)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        return key
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: not a PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CheckpointError(f"{path}: not an Ed25519 key")
    return key


def public_key_text(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + base64.b64encode(raw).decode("ascii")


def _parse_public_key(text_: str) -> Ed25519PublicKey:
    body = text_.strip()
    if body.startswith("ed25519:"):
        body = body[len("ed25519:"):]
    try:
        raw = base64.b64decode(body, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, TypeError):
        raise CheckpointError("a public key is 'ed25519:' followed by base64 of 32 bytes "
                              "(as printed by 'consentry audit checkpoint --public-key')") from None


def _key_id(public_text: str) -> str:
    return hashlib.sha256(public_text.encode("ascii")).hexdigest()[:16]


# ------------------------------------------------------------------------------ documents


def sign_checkpoint(key: Ed25519PrivateKey, seq: int, digest: str, *, reason: str = "manual",
                    at: str | None = None) -> dict[str, Any]:
    pub = public_key_text(key)
    doc = {"type": CHECKPOINT_TYPE, "version": 1, "seq": int(seq), "hash": digest, "events": int(seq),
           "at": at or format_at(utcnow()), "reason": reason, "key_id": _key_id(pub), "public_key": pub}
    doc["signature"] = base64.b64encode(key.sign(canonical_json(doc).encode("utf-8"))).decode("ascii")
    return doc


def verify_checkpoint(doc: Any, public_key: str | None = None) -> ExpectedHead:
    """Check a checkpoint document's form and signature; returns the head it records.

    With ``public_key`` (pinned: ``ed25519:<base64>``) the document must be signed by that key;
    without, by the key it carries (which shows integrity, not who made it). Raises
    :class:`CheckpointError` saying what is wrong.
    """
    if not isinstance(doc, dict) or doc.get("type") != CHECKPOINT_TYPE:
        raise CheckpointError(f"not an audit checkpoint (expected \"type\": \"{CHECKPOINT_TYPE}\")")
    seq, digest, sig = doc.get("seq"), doc.get("hash"), doc.get("signature")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise CheckpointError("checkpoint: \"seq\" must be a non-negative integer")
    if not isinstance(digest, str) or len(digest) != 64 or set(digest) - _HEX:
        raise CheckpointError("checkpoint: \"hash\" must be 64 lower-case hex digits")
    if not isinstance(sig, str):
        raise CheckpointError("checkpoint: no signature")
    carried = doc.get("public_key")
    if public_key is not None:
        pinned = _parse_public_key(public_key)
        if isinstance(carried, str) and carried.strip() != public_key_text(pinned):
            raise CheckpointError("checkpoint: signed by another key than the pinned public key")
        pub = pinned
    elif isinstance(carried, str):
        pub = _parse_public_key(carried)
    else:
        raise CheckpointError("checkpoint: no public key (pass the instance's public key)")
    body = {k: v for k, v in doc.items() if k != "signature"}
    try:
        pub.verify(base64.b64decode(sig, validate=True), canonical_json(body).encode("utf-8"))
    except (InvalidSignature, ValueError, TypeError):
        raise CheckpointError(f"checkpoint #{seq}: the signature does not match (edited or forged)") from None
    return ExpectedHead(seq, digest, f"checkpoint #{seq} of {doc.get('at', '?')}")


# ---------------------------------------------------------------------------- checkpointer


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return max(0, int(raw))
    except ValueError:
        raise CheckpointError(f"{name} must be an integer, got {raw!r}") from None


class Checkpointer:
    """Writes signed checkpoints of one database's audit head (see the module docstring).

    ``sinks``: webhook sink names; ``dispatcher``: a :class:`~consentry.review.webhooks.WebhookDispatcher`
    that delivers them (none: checkpoints stay local). ``every_events``/``every_seconds`` of 0
    turn that trigger off.
    """

    def __init__(self, db: Database, home: Path, *, every_events: int = 1000, every_seconds: float = 3600.0,
                 sinks: Iterable[str] = (), dispatcher: Any = None, clock: Callable[[], float] = time.time):
        self.db = db
        self.home = Path(home)
        self.every_events, self.every_seconds = every_events, every_seconds
        self.sinks = [s for s in sinks if s]
        self.dispatcher = dispatcher
        self.clock = clock
        self._lock = threading.Lock()
        self._key: Ed25519PrivateKey | None = None
        latest = None
        try:
            latest = self.latest()
        except CheckpointError:
            pass
        self._last_seq = latest["seq"] if latest else 0
        self._last_time = clock()

    @classmethod
    def from_settings(cls, settings: Any, db: Database, dispatcher: Any = None) -> "Checkpointer":
        sinks = [s.strip() for s in os.environ.get("CONSENTRY_AUDIT_CHECKPOINT_SINKS", "").split(",") if s.strip()]
        return cls(db, settings.home, every_events=_env_int("CONSENTRY_AUDIT_CHECKPOINT_EVENTS", 1000),
                   every_seconds=float(_env_int("CONSENTRY_AUDIT_CHECKPOINT_SECONDS", 3600)),
                   sinks=sinks, dispatcher=dispatcher)

    @property
    def path(self) -> Path:
        return self.home / LOG_FILE

    def key(self, create: bool = True) -> Ed25519PrivateKey:
        if self._key is None:
            if not create and not (self.home / KEY_FILE).exists():
                raise CheckpointError(f"the checkpoint signing key {self.home / KEY_FILE} is missing")
            self._key = load_or_create_key(self.home)
        return self._key

    def has_key(self) -> bool:
        return self._key is not None or (self.home / KEY_FILE).exists()

    def public_key(self, create: bool = True) -> str:
        return public_key_text(self.key(create))

    # ---------------------------------------------------------------- reading
    def latest(self) -> dict[str, Any] | None:
        """The checkpoint with the highest seq among the last ones in the local file (None if
        there is none). Lines that are not JSON are skipped (a torn last write)."""
        try:
            with open(self.path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - TAIL_BYTES))
                tail = f.read()
        except FileNotFoundError:
            return None
        best = None
        for line in tail.splitlines():
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict) and isinstance(doc.get("seq"), int):
                if best is None or doc["seq"] >= best["seq"]:
                    best = doc
        return best

    def expected_head(self) -> ExpectedHead | None:
        """The head of the latest local checkpoint, its signature checked against this
        instance's key (raises :class:`CheckpointError` when it does not verify)."""
        doc = self.latest()
        if doc is None:
            return None
        head = verify_checkpoint(doc, self.public_key(create=False))
        return ExpectedHead(head.seq, head.hash, f"the local checkpoint ({self.path.name}, {doc.get('at', '?')})")

    # ---------------------------------------------------------------- writing
    def checkpoint(self, reason: str = "manual", *, deliver_now: bool = False) -> dict[str, Any]:
        """Sign the current head, append it to the local file and send it to the sinks.

        ``deliver_now`` (the CLI): write the deliveries and attempt each once at once (failures
        are retried by the service's webhook worker); otherwise they are queued. The returned
        document carries ``deliveries`` (not signed) when sinks were used.
        """
        with self._lock:
            return self._checkpoint(reason, deliver_now)

    def _checkpoint(self, reason: str, deliver_now: bool) -> dict[str, Any]:
        seq, digest = AuditLog(self.db).head()
        doc = sign_checkpoint(self.key(), seq, digest, reason=reason)
        self.home.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._last_seq, self._last_time = seq, self.clock()
        out = dict(doc)
        if self.sinks and self.dispatcher is not None:
            out["deliveries"] = self._send(doc, deliver_now)
        return out

    def _send(self, doc: dict[str, Any], deliver_now: bool) -> list[dict[str, Any]]:
        results = []
        for sink in self.sinks:
            try:
                if deliver_now:
                    delivery_id = self.dispatcher.store(sink, CHECKPOINT_EVENT, doc)
                    self.dispatcher.attempt(delivery_id)
                    info = self.dispatcher.get(delivery_id)
                    results.append({"sink": sink, "delivery": delivery_id, "status": info.status if info else None,
                                    "error": info.last_error if info else None})
                else:
                    self.dispatcher.start()
                    queued = self.dispatcher.enqueue(sink, CHECKPOINT_EVENT, doc)
                    results.append({"sink": sink, "status": "queued" if queued else "dropped"})
            except Exception as exc:  # noqa: BLE001 - the local copy is written; say what failed
                log.exception("audit checkpoint to sink %r failed", sink)
                results.append({"sink": sink, "status": "failed", "error": f"{type(exc).__name__}: {exc}"[:300]})
        return results

    def maybe_checkpoint(self, seq: int | None = None) -> dict[str, Any] | None:
        """Write a checkpoint when ``every_events`` events were added since the last one, or
        any were and ``every_seconds`` have passed. Cheap when not due; never blocks on another
        thread's checkpoint."""
        if seq is None:
            seq = AuditLog(self.db).head()[0]
        if seq <= self._last_seq:
            return None
        by_events = self.every_events > 0 and seq - self._last_seq >= self.every_events
        by_time = self.every_seconds > 0 and self.clock() - self._last_time >= self.every_seconds
        if not (by_events or by_time):
            return None
        if not self._lock.acquire(blocking=False):
            return None
        try:
            return self._checkpoint("events" if by_events else "interval", False)
        finally:
            self._lock.release()
