"""Review cases over HTTP: manual submissions (platforms, moderators) and reading the queue.

Roles: ``matcher`` (a platform's upload path), ``moderator`` and ``curator`` may submit;
``moderator``, ``curator`` and ``auditor`` may read. Media bytes never come back from this API:
an uploaded file is hashed and, only when the evidence vault is on, kept encrypted for review.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile

from consentry.banks.matcher import QuerySignals, query_from_content
from consentry.errors import ConsentryError
from consentry.review.cases import OPEN_STATUSES, ItemInput
from consentry.web.auth import Principal, require
from consentry.web.deps import DbId, MAX_DB_INT, read_upload, state
from consentry.web.problems import Problem
from consentry.web.review_deps import review

router = APIRouter(prefix="/v1", tags=["cases"])

SUBMIT_CASES = ("matcher", "moderator", "curator")
READ_CASES = ("moderator", "curator", "auditor")
_STATUSES = ("open", "claimed", "pending_approval", "escalated", "decided")


def _who(p: Principal) -> str:
    return f"key:{p.key_id}" + (f" ({p.key.name})" if p.key.name else "")


def _matches(request: Request, signals: QuerySignals) -> list[dict[str, Any]]:
    """What the content matches now (shown to the reviewer); empty while the index loads."""
    matcher = state(request).matcher
    if not matcher.loaded:
        return []
    try:
        return [m for m in matcher.match(signals, None).to_dict().get("matches", [])][:200]
    except ConsentryError:
        return []


@router.post("/cases", status_code=201, summary="Submit content or hashes for human review")
def submit_case(
    request: Request,
    file: UploadFile | None = File(None, description="The media (kept only in the encrypted vault, if on)"),
    sha256: str | None = Form(None, max_length=64),
    md5: str | None = Form(None, max_length=32),
    pdq: str | None = Form(None, max_length=64),
    pdq_quality: int | None = Form(None, ge=0, le=100),
    queue: str = Form("manual", max_length=100),
    priority: int = Form(50, ge=0, le=100),
    uploader_id: str | None = Form(None, max_length=200),
    note: str = Form("", max_length=4000),
    principal: Principal = Depends(require(*SUBMIT_CASES)),
) -> dict[str, Any]:
    st = state(request)
    item = ItemInput(sha256=sha256, md5=md5, pdq=pdq, pdq_quality=pdq_quality)
    if file is not None and file.filename is not None:
        content = read_upload(file, st.settings)
        item.media = content.data if content.data is not None else b""
        signals = query_from_content(content)
    else:
        signals = QuerySignals(exact={k: v.strip().lower() for k, v in (("sha256", sha256), ("md5", md5)) if v})
        if pdq:
            signals.pdq = [pdq.strip().lower()]
    try:
        item.matches = _matches(request, signals)
    except (ValueError, KeyError):  # a malformed hash: the service below says what is wrong
        item.matches = []
    case = review(request).cases.submit(item, queue=queue, priority=priority, uploader_id=uploader_id,
                                        note=note, submitted_by=_who(principal))
    return case.to_dict(items=True)


@router.get("/cases", summary="List cases (queue order: priority, then SLA)")
def list_cases(
    request: Request,
    queue: str | None = Query(None, max_length=100),
    status: list[str] | None = Query(None, description="open, claimed, pending_approval, escalated, decided"),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_DB_INT),
    _p: Principal = Depends(require(*READ_CASES)),
) -> dict[str, Any]:
    statuses = status or list(OPEN_STATUSES)
    bad = [s for s in statuses if s not in _STATUSES]
    if bad:
        raise Problem(422, "validation", f"unknown status {bad[0]!r}; use one of {', '.join(_STATUSES)}")
    cases = review(request).cases.list_queue(queue=queue, statuses=statuses, limit=limit, offset=offset)
    return {"cases": [c.to_dict() for c in cases]}


@router.get("/cases/{case_id}", summary="Get a case with its items (hashes, matches, evidence) and decisions")
def get_case(request: Request, case_id: DbId, _p: Principal = Depends(require(*READ_CASES))) -> dict[str, Any]:
    return review(request).cases.get(case_id).to_dict(items=True)
