"""API keys: random 256-bit tokens shown once, stored as SHA-256, each with one role.

A SHA-256 is the right store for high-entropy random tokens (a slow KDF protects guessable
secrets such as PINs and passwords, not 256-bit keys) and keeps per-request checks cheap.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from consentry.db.models import ROLES, ApiKey, utcnow
from consentry.db.session import Database
from consentry.errors import ConsentryError

KEY_PREFIX = "cst_"


class KeyError_(ConsentryError):
    code = "key_error"


@dataclass(frozen=True)
class KeyInfo:
    id: int
    name: str
    role: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    allow_url: bool = False  # may hash, match and add media by URL (issue 22)

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "role": self.role, "prefix": self.prefix,
                "created_at": self.created_at.isoformat() if self.created_at else None,
                "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
                "allow_url": self.allow_url}


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _info(k: ApiKey) -> KeyInfo:
    return KeyInfo(k.id, k.name, k.role, k.prefix, k.created_at, k.revoked_at, bool(k.allow_url))


class KeyStore:
    def __init__(self, db: Database, cache_seconds: float = 2.0):
        self.db = db
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, KeyInfo | None]] = {}
        self._lock = threading.Lock()

    def create(self, role: str, name: str = "", actor: str | None = None,
               allow_url: bool = False) -> tuple[str, KeyInfo]:
        """Create a key; returns (secret, info). The secret is never stored or shown again."""
        if role not in ROLES:
            raise KeyError_(f"role must be one of: {', '.join(ROLES)}")
        token = KEY_PREFIX + secrets.token_urlsafe(32)
        with self.db.session() as s:
            k = ApiKey(name=name or "", role=role, prefix=token[:12], key_hash=_digest(token),
                       allow_url=bool(allow_url))
            s.add(k)
            s.flush()
            from consentry.review.audit import AuditLog

            AuditLog(self.db).record("key.create", actor or "system",
                                     {"key_id": k.id, "role": role, "name": k.name, "prefix": k.prefix,
                                      "allow_url": bool(allow_url)}, session=s)
            return token, _info(k)

    def list(self) -> list[KeyInfo]:
        with self.db.session() as s:
            return [_info(k) for k in s.scalars(select(ApiKey).order_by(ApiKey.id))]

    def count_active(self) -> int:
        with self.db.session() as s:
            return int(s.scalar(select(func.count()).select_from(ApiKey).where(ApiKey.revoked_at.is_(None))) or 0)

    def revoke(self, key_id: int, actor: str | None = None) -> KeyInfo:
        with self.db.session() as s:
            k = s.get(ApiKey, key_id)
            if k is None:
                raise KeyError_(f"no key with id {key_id}")
            if k.revoked_at is None:
                k.revoked_at = utcnow()
                from consentry.review.audit import AuditLog

                AuditLog(self.db).record("key.revoke", actor or "system",
                                         {"key_id": k.id, "role": k.role, "name": k.name, "prefix": k.prefix},
                                         session=s)
            s.flush()
            info = _info(k)
        with self._lock:
            self._cache.clear()
        return info

    def cached(self, token: str) -> tuple[bool, KeyInfo | None]:
        """``(True, info)`` when ``token``'s answer is known without the database (malformed, or
        looked up within ``cache_seconds``); ``(False, None)`` when :meth:`verify` must read it.
        Cheap enough for the event loop: the HTTP layer asks this first and only goes to a thread
        for a lookup."""
        if not token or not token.startswith(KEY_PREFIX) or len(token) > 200:
            return True, None
        with self._lock:
            hit = self._cache.get(_digest(token))
        if hit and time.monotonic() - hit[0] < self.cache_seconds:
            return True, hit[1]
        return False, None

    def verify(self, token: str) -> KeyInfo | None:
        """The active key for ``token``, or None. Results are cached for a couple of seconds, so
        a revocation takes effect on every worker within ``cache_seconds``."""
        found, info = self.cached(token)
        if found:
            return info
        digest = _digest(token)
        now = time.monotonic()
        with self.db.session() as s:
            k = s.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
            info = _info(k) if k is not None and k.revoked_at is None else None
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now, info)
        return info
