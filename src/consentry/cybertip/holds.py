"""Preservation holds: what the REPORT Act (2024) requires after a CyberTipline report.

Filing a report places a hold on the case for :data:`HOLD_DAYS` (one year): every vault item of
the case is put under legal hold (never purged, retention extended to the hold's end), and the
hold records the case's items and the audit log's head at that moment (audit events are
append-only and hash-chained: the hold states which of them it covers). A hold

- cannot be lifted item by item (``Vault.set_hold(..., False)`` is refused) and its items are
  skipped by ``vault purge``;
- is released when it expires (:meth:`HoldService.release_expired`, run by ``consentry vault
  purge`` and ``consentry vault holds --release-expired``), and the release is audited;
- can be released early only by an administrator, with a recorded reason
  (:meth:`HoldService.release_early`, audited as ``hold.released_early``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from consentry.banks.service import NotFound
from consentry.db.models import utcnow
from consentry.db.models_audit import VaultItem
from consentry.db.models_cybertip import PreservationHold
from consentry.db.models_review import CaseItem
from consentry.db.session import Database
from consentry.errors import ConsentryError
from consentry.review.cases import _aware, _iso

HOLD_DAYS = 365
MIN_REASON = 10


class HoldError(ConsentryError):
    code = "hold_error"


class HoldNotFound(NotFound):
    code = "not_found"


@dataclass(frozen=True)
class HoldInfo:
    id: int
    case_id: int
    report_id: int | None
    reason: str
    placed_by: str
    placed_at: datetime
    expires_at: datetime
    scope: dict[str, Any]
    released_at: datetime | None
    released_by: str | None
    release_reason: str | None

    @property
    def active(self) -> bool:
        return self.released_at is None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "case_id": self.case_id, "report_id": self.report_id, "reason": self.reason,
                "placed_by": self.placed_by, "placed_at": _iso(self.placed_at), "expires_at": _iso(self.expires_at),
                "active": self.active, "vault_items": list(self.scope.get("vault_items", [])),
                "case_items": list(self.scope.get("case_items", [])),
                "audit_through_seq": self.scope.get("audit_through_seq"),
                "released_at": _iso(self.released_at), "released_by": self.released_by,
                "release_reason": self.release_reason}


def _info(h: PreservationHold) -> HoldInfo:
    return HoldInfo(h.id, h.case_id, h.report_id, h.reason, h.placed_by, _aware(h.placed_at), _aware(h.expires_at),
                    dict(h.scope or {}), _aware(h.released_at), h.released_by, h.release_reason)


def active_hold_for_item(s: Session, item_id: str) -> PreservationHold | None:
    """The active hold covering vault item ``item_id``, if any (checked by ``Vault.set_hold``)."""
    for h in s.scalars(select(PreservationHold).where(PreservationHold.released_at.is_(None))):
        if item_id in (h.scope or {}).get("vault_items", []):
            return h
    return None


class HoldService:
    def __init__(self, db: Database):
        self.db = db

    def _audit(self, event_type: str, actor: str, data: dict[str, Any], s: Session) -> Any:
        from consentry.review.audit import AuditLog

        return AuditLog(self.db).record(event_type, actor, data, session=s)

    def place(self, s: Session, case_id: int, *, report_id: int | None, reason: str, actor: str,
              days: int = HOLD_DAYS, now: datetime | None = None) -> PreservationHold:
        """Hold case ``case_id`` for ``days`` from ``now``, inside the caller's transaction."""
        now = now or utcnow()
        expires = now + timedelta(days=days)
        items = list(s.scalars(select(CaseItem).where(CaseItem.case_id == case_id).order_by(CaseItem.id)))
        vault_ids = [i.vault_item_id for i in items if i.vault_item_id]
        h = PreservationHold(case_id=case_id, report_id=report_id, reason=reason[:500], placed_by=actor[:200],
                             placed_at=now, expires_at=expires,
                             scope={"vault_items": vault_ids, "case_items": [i.id for i in items]})
        s.add(h)
        for v in s.scalars(select(VaultItem).where(VaultItem.id.in_(vault_ids))) if vault_ids else []:
            v.legal_hold = True
            v.hold_reason = f"preservation hold (case {case_id}) until {expires:%Y-%m-%d}: {reason}"[:500]
            if v.retain_until is None or _aware(v.retain_until) < expires:
                v.retain_until = expires
        s.flush()
        rec = self._audit("hold.placed", actor, {"hold_id": h.id, "case_id": case_id, "report_id": report_id,
                                                 "expires_at": expires.isoformat(), "vault_items": vault_ids,
                                                 "reason": reason[:200]}, s)
        self.cover_through(h, rec.seq)
        return h

    @staticmethod
    def cover_through(h: PreservationHold, seq: int) -> None:
        """The hold covers the audit events up to ``seq`` (those of the case included)."""
        h.scope = {**(h.scope or {}), "audit_through_seq": int(seq)}

    def list(self, *, include_released: bool = False, case_id: int | None = None) -> list[HoldInfo]:
        with self.db.session() as s:
            q = select(PreservationHold)
            if not include_released:
                q = q.where(PreservationHold.released_at.is_(None))
            if case_id is not None:
                q = q.where(PreservationHold.case_id == case_id)
            return [_info(h) for h in s.scalars(q.order_by(PreservationHold.expires_at, PreservationHold.id))]

    def get(self, hold_id: int) -> HoldInfo:
        with self.db.session() as s:
            h = s.get(PreservationHold, hold_id)
            if h is None:
                raise HoldNotFound(f"no hold {hold_id}")
            return _info(h)

    def _release(self, s: Session, h: PreservationHold, now: datetime, actor: str, reason: str) -> list[str]:
        h.released_at, h.released_by, h.release_reason = now, actor[:200], reason[:1000]
        s.flush()
        still_held = set()
        for other in s.scalars(select(PreservationHold).where(PreservationHold.released_at.is_(None),
                                                             PreservationHold.id != h.id)):
            still_held.update((other.scope or {}).get("vault_items", []))
        lifted = []
        ids = [i for i in (h.scope or {}).get("vault_items", []) if i not in still_held]
        for v in s.scalars(select(VaultItem).where(VaultItem.id.in_(ids))) if ids else []:
            v.legal_hold, v.hold_reason = False, None
            lifted.append(v.id)
        s.flush()
        return lifted

    def release_expired(self, now: datetime | None = None, *, actor: str = "system") -> list[HoldInfo]:
        """Release every hold past its end; each release is audited (``hold.released``)."""
        now = now or utcnow()
        out = []
        with self.db.session() as s:
            rows = list(s.scalars(select(PreservationHold).where(PreservationHold.released_at.is_(None),
                                                                 PreservationHold.expires_at <= now)))
            for h in rows:
                if _aware(h.expires_at) > now:  # SQLite compares text; check again
                    continue
                lifted = self._release(s, h, now, actor, "expired")
                self._audit("hold.released", actor, {"hold_id": h.id, "case_id": h.case_id, "report_id": h.report_id,
                                                     "expired_at": _iso(h.expires_at), "vault_items": lifted}, s)
                out.append(_info(h))
        return out

    def release_early(self, hold_id: int, *, actor: str, role: str, reason: str,
                      now: datetime | None = None) -> HoldInfo:
        """An administrator ends a hold before its time, giving the reason (audited)."""
        if role != "admin":
            raise HoldError("only an administrator may release a preservation hold before it expires")
        reason = (reason or "").strip()
        if len(reason) < MIN_REASON:
            raise HoldError(f"give the reason for releasing the hold early (at least {MIN_REASON} characters): "
                            "it is kept in the audit log")
        now = now or utcnow()
        with self.db.session() as s:
            h = s.get(PreservationHold, hold_id)
            if h is None:
                raise HoldNotFound(f"no hold {hold_id}")
            if h.released_at is not None:
                raise HoldError(f"hold {hold_id} was already released on {_aware(h.released_at):%Y-%m-%d}")
            lifted = self._release(s, h, now, actor, reason)
            self._audit("hold.released_early", actor, {"hold_id": h.id, "case_id": h.case_id,
                                                       "report_id": h.report_id, "expires_at": _iso(h.expires_at),
                                                       "reason": reason[:1000], "vault_items": lifted}, s)
            return _info(h)

    def count_active(self) -> int:
        with self.db.session() as s:
            return int(s.scalar(select(func.count()).select_from(PreservationHold)
                                .where(PreservationHold.released_at.is_(None))) or 0)
