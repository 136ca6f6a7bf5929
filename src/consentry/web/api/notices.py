"""Notices and statements of reasons over HTTP (issue 14 points 3 and 4). See docs/notices.md.

- ``POST /v1/notices`` (``uploader``/``submitter``: a platform's own notice form): a TAKE IT DOWN
  or DSA Art. 16 notice as JSON (an image may come as ``image_base64``: hashed, kept only in the
  vault). 201 with the notice number; ``status: incomplete`` with ``missing`` and a
  ``completion_token`` when fields are missing (the clock has not started); 422 naming each bad
  field; 429 when the key sends too many.
- ``PATCH /v1/notices/{number}``: the contact step (what was missing).
- ``GET /v1/notices``, ``GET /v1/notices/{number}`` (moderator, curator, auditor): clock,
  case, decision, efforts, statements.
- ``POST /v1/notices/{number}/decision`` and ``/rejection`` (moderator, curator).
- ``POST /v1/statements`` (uploader, moderator, curator): a statement for the platform's own
  restriction; ``GET /v1/statements``, ``GET /v1/statements/{puid}`` (with the uploader's text),
  ``GET /v1/statements/export`` (JSON lines in the Transparency Database schema, no personal data).
"""

from __future__ import annotations

import base64
import binascii
import threading
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from consentry.limits_store import LimitStore
from consentry.notices import Ground, NoticeInput, NoticeInvalid, NoticeNotFound, NoticeService
from consentry.notices.statements import StatementError, write_jsonl
from consentry.web.auth import (NOTICE_READERS, NOTICE_REVIEWERS, NOTICE_SENDERS, STATEMENT_READERS,
                                STATEMENT_WRITERS, Principal, require)
from consentry.web.limits import RateLimiter
from consentry.web.problems import Problem

router = APIRouter(prefix="/v1", tags=["notices"])
_lock = threading.Lock()


def notices(request: Request) -> NoticeService:
    return request.app.state.notices


def limiter(request: Request, scope: str, per_hour: float) -> RateLimiter:
    """A per-client limiter kept on the app, shared by every worker through the database."""
    with _lock:
        cache = getattr(request.app.state, "notice_limiters", None)
        if cache is None:
            cache = request.app.state.notice_limiters = {}
        lim = cache.get(scope)
        if lim is None:
            per_hour = max(per_hour, 0.0)
            lim = cache[scope] = RateLimiter(per_hour / 3600.0, burst=max(1.0, min(per_hour, max(3.0, per_hour / 10))),
                                             store=LimitStore(request.app.state.consentry.banks.db), scope=scope)
    return lim


def check_rate(lim: RateLimiter, key: Any) -> None:
    wait = lim.check(key)
    if wait > 0:
        raise Problem(429, "rate-limited", "too many notices; please wait and try again",
                      headers={"Retry-After": str(max(1, int(wait + 0.999)))})


def invalid(exc: NoticeInvalid) -> Problem:
    return Problem(422, "invalid-notice", str(exc),
                   errors=[{"loc": [k], "msg": v} for k, v in exc.problems.items()])


class NoticeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    regime: Literal["take_it_down", "dsa_art16"]
    locations: list[str] = Field(default_factory=list, max_length=50,
                                 description="URLs or the platform's content ids of the depiction")
    category: Literal["ncii", "deepfake", "csam", "other"] = "ncii"
    signature: str | None = Field(None, max_length=300, description="TAKE IT DOWN: physical or electronic signature")
    notifier_name: str | None = Field(None, max_length=300)
    notifier_email: str | None = Field(None, max_length=320)
    notifier_contact: str | None = Field(None, max_length=500, description="another way to reach the notifier")
    explanation: str | None = Field(None, max_length=10_000, description="DSA: why the content is illegal")
    good_faith: bool = Field(False, description="good-faith (TAKE IT DOWN) / bona fide (DSA) statement")
    image_base64: str | None = Field(None, max_length=28_000_000, description="the image, if the notifier gave it")
    lang: str = Field("en", max_length=8)


class CompletionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    locations: list[str] = Field(default_factory=list, max_length=50)
    signature: str | None = Field(None, max_length=300)
    notifier_name: str | None = Field(None, max_length=300)
    notifier_email: str | None = Field(None, max_length=320)
    notifier_contact: str | None = Field(None, max_length=500)
    explanation: str | None = Field(None, max_length=10_000)
    good_faith: bool | None = None


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["remove", "disable", "no_action"]
    ground: Literal["legal", "policy"] | None = None
    reference: str | None = Field(None, max_length=500, description="the law or the terms clause relied on")
    explanation: str | None = Field(None, max_length=2000)
    reference_url: str | None = Field(None, max_length=500)
    automated: bool = Field(False, description="whether automated means were used to decide")
    note: str = Field("", max_length=2000)


class RejectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(..., min_length=1, max_length=4000)


class StatementIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    restriction: Literal["removal", "disable", "account_suspension", "account_termination"]
    ground: Literal["legal", "policy"]
    reference: str = Field(..., min_length=1, max_length=500)
    explanation: str | None = Field(None, max_length=2000)
    category: Literal["ncii", "deepfake", "csam", "other"] = "ncii"
    content_type: Literal["photo", "video"] = "photo"
    content_id: str | None = Field(None, max_length=200)
    uploader_id: str | None = Field(None, max_length=200)
    automated_detection: bool = True
    automated_decision: Literal["fully", "partially", "not_automated"] = "not_automated"
    case_id: int | None = Field(None, ge=0)


def _ground(kind: str | None, reference: str | None, explanation: str | None, url: str | None = None) -> Ground | None:
    if kind is None:
        return None
    try:
        return Ground(kind, reference or "", explanation or "", url)
    except StatementError as exc:
        raise Problem(422, "invalid-decision", str(exc)) from None


@router.post("/notices", status_code=201)
def submit_notice(body: NoticeIn, request: Request,
                  principal: Principal = Depends(require(*NOTICE_SENDERS))) -> dict[str, Any]:
    svc = notices(request)
    check_rate(limiter(request, "notice_api_key", svc.config.api_per_hour), principal.key_id)
    image = None
    if body.image_base64:
        try:
            image = base64.b64decode(body.image_base64, validate=True)
        except (binascii.Error, ValueError):
            raise Problem(422, "invalid-notice", "image_base64: not base64",
                          errors=[{"loc": ["image_base64"], "msg": "not base64"}]) from None
    inp = NoticeInput(body.regime, body.locations, body.category, body.signature, body.notifier_name,
                      body.notifier_email, body.notifier_contact, body.explanation, body.good_faith, image, body.lang)
    try:
        return svc.submit(inp, channel="api", submitted_by=f"key:{principal.key_id}").to_dict()
    except NoticeInvalid as exc:
        raise invalid(exc) from None


@router.patch("/notices/{number}")
def complete_notice(number: str, body: CompletionIn, request: Request,
                    principal: Principal = Depends(require(*NOTICE_SENDERS))) -> dict[str, Any]:
    try:
        return notices(request).complete(number, body.model_dump(exclude_none=True),
                                         actor=f"key:{principal.key_id}").to_dict()
    except NoticeInvalid as exc:
        raise invalid(exc) from None


@router.get("/notices")
def list_notices(request: Request, status: str | None = Query(None, max_length=20),
                 regime: str | None = Query(None, max_length=20), limit: int = Query(100, ge=1, le=1000),
                 offset: int = Query(0, ge=0, le=10**9),
                 _: Principal = Depends(require(*NOTICE_READERS))) -> dict[str, Any]:
    svc = notices(request)
    return {"notices": svc.list(status=status, regime=regime, limit=limit, offset=offset), "counts": svc.counts()}


@router.get("/notices/{number}")
def get_notice(number: str, request: Request, _: Principal = Depends(require(*NOTICE_READERS))) -> dict[str, Any]:
    return notices(request).get(number)


@router.post("/notices/{number}/decision")
def decide_notice(number: str, body: DecisionIn, request: Request,
                  principal: Principal = Depends(require(*NOTICE_REVIEWERS))) -> dict[str, Any]:
    ground = _ground(body.ground, body.reference, body.explanation, body.reference_url)
    return notices(request).decide(number, f"key:{principal.key_id}", body.decision, ground=ground,
                                   automated=body.automated, role=principal.role, note=body.note)


@router.post("/notices/{number}/rejection")
def reject_notice(number: str, body: RejectionIn, request: Request,
                  principal: Principal = Depends(require(*NOTICE_REVIEWERS))) -> dict[str, Any]:
    return notices(request).reject(number, f"key:{principal.key_id}", body.reason)


@router.post("/statements", status_code=201)
def create_statement(body: StatementIn, request: Request,
                     _: Principal = Depends(require(*STATEMENT_WRITERS))) -> dict[str, Any]:
    ground = _ground(body.ground, body.reference, body.explanation)
    st = notices(request).statements.own_initiative(
        restriction=body.restriction, ground=ground, category=body.category, content_type=body.content_type,
        content_id=body.content_id, uploader_id=body.uploader_id, automated_detection=body.automated_detection,
        automated_decision=body.automated_decision, case_id=body.case_id)
    return st.to_dict()


@router.get("/statements/export")
def export_statements(request: Request, status: str | None = Query(None, max_length=20),
                      _: Principal = Depends(require("curator", "auditor"))) -> StreamingResponse:
    """JSON lines, one Transparency Database submission each (no personal data)."""
    import io

    buf = io.StringIO()
    write_jsonl(notices(request).statements.export(status=status), buf)
    return StreamingResponse(iter([buf.getvalue()]), media_type="application/x-ndjson")


@router.get("/statements")
def list_statements(request: Request, notice: str | None = Query(None, max_length=24),
                    status: str | None = Query(None, max_length=20), cursor: int = Query(0, ge=0, le=2**63 - 1),
                    limit: int = Query(100, ge=1, le=1000),
                    _: Principal = Depends(require(*NOTICE_READERS))) -> dict[str, Any]:
    svc = notices(request)
    notice_id = None
    if notice:
        from sqlalchemy import select

        from consentry.db.models_notices import Notice

        with svc.db.session() as s:
            notice_id = s.scalar(select(Notice.id).where(Notice.number == notice.upper()))
        if notice_id is None:
            raise NoticeNotFound(f"no notice {notice}")
    rows = svc.statements.list(notice_id=notice_id, status=status, after_id=cursor, limit=limit)
    return {"statements": [r.to_dict() for r in rows], "next_cursor": rows[-1].id if len(rows) == limit else None}


@router.get("/statements/{puid}")
def get_statement(puid: str, request: Request, _: Principal = Depends(require(*STATEMENT_READERS))) -> dict[str, Any]:
    svc = notices(request).statements
    return {**svc.get(puid).to_dict(), "for_uploader": svc.for_uploader(puid)}

