"""Audit log (read-only, for auditors) and the webhook delivery log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from consentry.review.audit import AuditLog
from consentry.web.auth import require
from consentry.web.deps import MAX_DB_INT

router = APIRouter(prefix="/v1", tags=["audit"])
AUDITORS = ("auditor",)


@router.get("/audit", summary="Audit events in chain order (cursor pagination by seq)")
def list_audit(
    request: Request,
    cursor: int = Query(0, ge=0, le=MAX_DB_INT, description="The next_cursor of the previous page"),
    limit: int = Query(100, ge=1, le=1000),
    event_type: str | None = Query(None, max_length=64),
    actor: str | None = Query(None, max_length=200),
    _p=Depends(require(*AUDITORS)),
) -> dict[str, Any]:
    events = AuditLog(request.app.state.policy.db).list(after_seq=cursor, limit=limit, event_type=event_type,
                                                       actor=actor)
    return {"events": [e.to_dict() for e in events],
            "next_cursor": events[-1].seq if len(events) == limit else None}


@router.get("/audit/verify", summary="Check the hash chain; names the first bad event")
def verify_audit(request: Request, _p=Depends(require(*AUDITORS))) -> dict[str, Any]:
    return AuditLog(request.app.state.policy.db).verify().to_dict()


@router.get("/webhooks/deliveries", summary="Webhook delivery log (attempts, status, last error)")
def list_deliveries(
    request: Request,
    sink: str | None = Query(None, max_length=100),
    status: str | None = Query(None, pattern="^(pending|sending|delivered|failed)$"),
    cursor: int = Query(0, ge=0, le=MAX_DB_INT),
    limit: int = Query(100, ge=1, le=1000),
    _p=Depends(require(*AUDITORS)),
) -> dict[str, Any]:
    rows = request.app.state.policy.webhooks.list(sink=sink, status=status, after_id=cursor, limit=limit)
    return {"deliveries": [r.to_dict() for r in rows], "next_cursor": rows[-1].id if len(rows) == limit else None}
