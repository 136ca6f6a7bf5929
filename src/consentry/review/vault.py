"""The evidence vault: media kept for review and legal preservation, encrypted at rest.

Off by default. It is on when ``CONSENTRY_VAULT_KEY`` (``Settings.vault_key``) holds a base64
encoding of 32 random bytes, or else when ``$CONSENTRY_HOME/vault.key`` holds one
(``consentry vault init`` writes it, mode 0600). Keep a copy of the key elsewhere: without it the
vault's items cannot be read.

- Each item is one file ``$CONSENTRY_HOME/vault/<id[:2]>/<id>`` named by a random id (never by the
  content hash), holding ``b"CSV1" + nonce(12) + AES-256-GCM(ciphertext + tag)``; a fresh nonce per
  blob, and the item id is the associated data, so a blob renamed to another id fails to decrypt.
- Metadata (sha256, size, reason, retention, legal hold) is in the ``vault_items`` table.
- ``purge_expired()`` deletes items past ``retain_until`` unless they are under a legal hold.
- ``get()`` decrypts; only code paths that have checked the caller may call it (the review
  console's authenticated reveal route). Media never leave the vault unencrypted otherwise.
- Every put, hold, release and purge is recorded in the audit log.
- Preservation holds (:mod:`consentry.cybertip.holds`, one year after a CyberTipline report)
  keep their items under legal hold: they cannot be lifted item by item, and ``purge_expired``
  releases the holds that have expired (audited) before it purges.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select

from consentry.db.models import utcnow
from consentry.db.models_audit import VaultItem
from consentry.db.session import Database
from consentry.errors import ConsentryError

MAGIC = b"CSV1"
NONCE_BYTES = 12
AAD_PREFIX = b"consentry-vault:v1:"


class VaultError(ConsentryError):
    code = "vault_error"


class VaultDisabled(VaultError):
    code = "vault_disabled"


class VaultItemNotFound(VaultError):
    code = "not_found"


def parse_key(raw: str) -> bytes:
    try:
        key = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise VaultError("CONSENTRY_VAULT_KEY must be base64 of 32 random bytes") from None
    if len(key) != 32:
        raise VaultError(f"CONSENTRY_VAULT_KEY must decode to 32 bytes, got {len(key)}")
    return key


@dataclass(frozen=True)
class VaultItemInfo:
    id: str
    sha256: str
    size: int
    content_type: str | None
    reason: str
    created_at: datetime
    retain_until: datetime | None
    legal_hold: bool
    hold_reason: str | None
    purged_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        iso = lambda d: d.isoformat() if d else None  # noqa: E731
        return {"id": self.id, "sha256": self.sha256, "size": self.size, "content_type": self.content_type,
                "reason": self.reason, "created_at": iso(self.created_at),
                "retain_until": iso(self.retain_until), "legal_hold": self.legal_hold,
                "hold_reason": self.hold_reason, "purged_at": iso(self.purged_at)}


def _info(v: VaultItem) -> VaultItemInfo:
    return VaultItemInfo(v.id, v.sha256, int(v.size), v.content_type, v.reason, v.created_at, v.retain_until,
                         bool(v.legal_hold), v.hold_reason, v.purged_at)


def _aware(d: datetime | None) -> datetime | None:
    from datetime import timezone

    return d.replace(tzinfo=timezone.utc) if d is not None and d.tzinfo is None else d


KEY_FILE = "vault.key"


def configured_key(settings: Any) -> str | None:
    """The vault key: ``CONSENTRY_VAULT_KEY``, else the contents of ``$CONSENTRY_HOME/vault.key``."""
    key = getattr(settings, "vault_key", None)
    if key:
        return key
    home = getattr(settings, "home", None)
    if home is None:
        return None
    path = Path(home) / KEY_FILE
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise VaultError(f"cannot read the vault key file {path}: {exc}") from None
    return text or None


def create_key_file(home: Path) -> Path:
    """Write a new random vault key to ``home/vault.key`` (0600); refuses to replace one."""
    from consentry.config import ensure_home

    ensure_home(home)  # 0700 when new
    path = home / KEY_FILE
    raw = base64.b64encode(secrets.token_bytes(32)).decode() + "\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise VaultError(f"{path} already exists: the vault is already set up (never replace its key: "
                         "the items stored under it could no longer be read)") from None
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(raw)
    return path


class Vault:
    def __init__(self, settings: Any, db: Database):
        key = configured_key(settings)
        if not key:
            raise VaultDisabled("the evidence vault is off: run 'consentry vault init' or set CONSENTRY_VAULT_KEY")
        self._aead = AESGCM(parse_key(key))
        self.db = db
        self.root = Path(settings.home) / "vault"
        self.retain_days = int(getattr(settings, "vault_retain_days", 90) or 90)
        limits = getattr(settings, "limits", None)
        self.max_bytes = max(getattr(settings, "max_upload_bytes", 0) or 0,
                             getattr(limits, "max_bytes", 0) or 0) or 200 * 1024 * 1024

    @classmethod
    def from_settings(cls, settings: Any, db: Database) -> "Vault | None":
        """The vault, or None when it is disabled (no key configured)."""
        if not configured_key(settings):
            return None
        return cls(settings, db)

    # ------------------------------------------------------------------ storage
    def _path(self, item_id: str) -> Path:
        if not item_id.isalnum() or len(item_id) > 40:
            raise VaultItemNotFound("no such vault item")
        return self.root / item_id[:2] / item_id

    def _audit(self, event_type: str, actor: str, data: dict[str, Any], session=None) -> None:
        from consentry.review.audit import AuditLog

        AuditLog(self.db).record(event_type, actor, data, session=session)

    def put(self, data: bytes, *, sha256: str | None = None, reason: str = "", retain_days: int | None = None,
            content_type: str | None = None, actor: str = "system") -> str:
        """Encrypt and store ``data``; returns the new item id."""
        if not isinstance(data, (bytes, bytearray)) or not data:
            raise VaultError("nothing to store")
        if len(data) > self.max_bytes:
            raise VaultError(f"the content is over the vault limit of {self.max_bytes} bytes")
        digest = hashlib.sha256(data).hexdigest()
        if sha256 is not None and sha256.lower() != digest:
            raise VaultError("the content does not match the given sha256")
        days = self.retain_days if retain_days is None else int(retain_days)
        if not 1 <= days <= 36500:
            raise VaultError("retention must be 1 to 36500 days")
        item_id = secrets.token_hex(16)
        nonce = os.urandom(NONCE_BYTES)
        blob = MAGIC + nonce + self._aead.encrypt(nonce, bytes(data), AAD_PREFIX + item_id.encode())
        path = self._path(item_id)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(blob)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        now = utcnow()
        try:
            with self.db.session() as s:
                s.add(VaultItem(id=item_id, sha256=digest, size=len(data), content_type=content_type,
                                reason=(reason or "")[:500], created_at=now,
                                retain_until=now + timedelta(days=days), legal_hold=False))
                s.flush()
                self._audit("vault.put", actor, {"item": item_id, "sha256": digest, "size": len(data),
                                                 "reason": (reason or "")[:200], "retain_days": days}, s)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return item_id

    def get(self, item_id: str) -> bytes:
        """Decrypt one item. Only for code paths that have authorised the caller."""
        info = self.info(item_id)
        if info.purged_at is not None:
            raise VaultItemNotFound(f"vault item {item_id} was purged")
        try:
            blob = self._path(item_id).read_bytes()
        except FileNotFoundError:
            raise VaultItemNotFound(f"the blob of vault item {item_id} is missing") from None
        if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + NONCE_BYTES + 16:
            raise VaultError(f"vault item {item_id} is not a vault blob")
        nonce = blob[len(MAGIC):len(MAGIC) + NONCE_BYTES]
        try:
            data = self._aead.decrypt(nonce, blob[len(MAGIC) + NONCE_BYTES:], AAD_PREFIX + item_id.encode())
        except InvalidTag:
            raise VaultError(f"vault item {item_id} does not decrypt: wrong key or tampered blob") from None
        if hashlib.sha256(data).hexdigest() != info.sha256:
            raise VaultError(f"vault item {item_id} does not match its recorded sha256")
        return data

    # ------------------------------------------------------------------ metadata
    def info(self, item_id: str) -> VaultItemInfo:
        with self.db.session() as s:
            v = s.get(VaultItem, item_id) if isinstance(item_id, str) else None
            if v is None:
                raise VaultItemNotFound(f"no vault item {item_id!r}")
            return _info(v)

    def list(self, *, include_purged: bool = False, limit: int = 1000) -> list[VaultItemInfo]:
        with self.db.session() as s:
            q = select(VaultItem)
            if not include_purged:
                q = q.where(VaultItem.purged_at.is_(None))
            return [_info(v) for v in s.scalars(q.order_by(VaultItem.created_at).limit(limit))]

    def set_hold(self, item_id: str, hold: bool, *, reason: str = "", actor: str = "system") -> VaultItemInfo:
        """Place (or lift) a legal hold: a held item is never purged, whatever its retention."""
        with self.db.session() as s:
            v = s.get(VaultItem, item_id)
            if v is None or v.purged_at is not None:
                raise VaultItemNotFound(f"no vault item {item_id!r}")
            if not hold:  # a preservation hold (CyberTipline report, issue 15) is not lifted item by item
                from consentry.cybertip.holds import active_hold_for_item

                held = active_hold_for_item(s, item_id)
                if held is not None:
                    raise VaultError(f"vault item {item_id} is under preservation hold {held.id} (case "
                                     f"{held.case_id}) until {_aware(held.expires_at):%Y-%m-%d}; only an "
                                     "administrator can end it early: consentry vault holds --release "
                                     f"{held.id} --reason ...")
            v.legal_hold = bool(hold)
            v.hold_reason = (reason or "")[:500] if hold else None
            s.flush()
            self._audit("vault.hold" if hold else "vault.release", actor,
                        {"item": item_id, "reason": (reason or "")[:200]}, s)
            return _info(v)

    def extend(self, item_id: str, retain_until: datetime, *, actor: str = "system") -> VaultItemInfo:
        with self.db.session() as s:
            v = s.get(VaultItem, item_id)
            if v is None or v.purged_at is not None:
                raise VaultItemNotFound(f"no vault item {item_id!r}")
            v.retain_until = retain_until
            s.flush()
            self._audit("vault.retain", actor, {"item": item_id, "retain_until": retain_until.isoformat()}, s)
            return _info(v)

    def purge_expired(self, now: datetime | None = None, *, actor: str = "system") -> list[str]:
        """Delete every item past its retention that is not under a legal hold; returns their ids.
        Preservation holds that have expired are released first (audited)."""
        now = now or utcnow()
        from consentry.cybertip.holds import HoldService

        HoldService(self.db).release_expired(now, actor=actor)
        purged: list[str] = []
        with self.db.session() as s:
            rows = list(s.scalars(select(VaultItem).where(
                VaultItem.purged_at.is_(None), VaultItem.legal_hold.is_(False),
                VaultItem.retain_until.is_not(None), VaultItem.retain_until < now)))
            for v in rows:
                if _aware(v.retain_until) >= now:  # SQLite compares text; check again
                    continue
                v.purged_at = now
                purged.append(v.id)
            if purged:
                s.flush()
                self._audit("vault.purge", actor, {"items": purged[:200], "count": len(purged)}, s)
        for item_id in purged:  # after the commit: a failed commit leaves every blob in place
            self._path(item_id).unlink(missing_ok=True)
        return purged
