"""The content ledger over HTTP (issue 14): the platform registers what it hosts, as hashes.

- ``POST /v1/content`` (JSON: content id, URL, uploader id, surface and signals) and
  ``POST /v1/content/upload`` (multipart: the same fields and the file, hashed here, never kept);
  ``?match=true`` also matches the content against the banks and returns the match response
  (as ``/v1/match``), so the upload path makes one call.
- ``DELETE /v1/content/{content_id}``: the platform removed it; it is never swept again.
- ``GET /v1/content/{content_id}``: the ledger row and its sweep hits.
- ``GET /v1/sweep/hits``: recorded sweep hits (``bank``, ``cursor``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from pydantic import BaseModel, ConfigDict, Field

from consentry.ledger.service import ContentNotFound, ContentRecord, LedgerError, LedgerService
from consentry.web.auth import CONTENT_READERS, CONTENT_WRITERS, Principal, require
from consentry.web.deps import AppState, rate_limit, read_upload, require_ready, state
from consentry.web.problems import Problem

router = APIRouter(prefix="/v1", tags=["content"])


class ContentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content_id: str = Field(..., min_length=1, max_length=200, description="The platform's id of the content")
    url: str | None = Field(None, max_length=4000, description="Where it is hosted")
    uploader_id: str | None = Field(None, max_length=200)
    surface: str | None = Field(None, max_length=100, description="Where it was posted, e.g. 'profile-photo'")
    content_type: str | None = Field(None, max_length=16, description="photo or video")
    md5: str | None = None
    sha256: str | None = None
    pdq: str | None = None
    pdq_quality: int | None = Field(None, ge=0, le=100)
    pdq_variants: list[str] | None = Field(None, max_length=8, description="The 7 other dihedral PDQ variants "
                                           "(rotate90 … flip_minus1), or all 8, when the platform computes them")
    vpdq: str | list[str] | None = None


def _ledger(request: Request) -> LedgerService:
    return request.app.state.ledger


def _record(data: dict[str, Any]) -> ContentRecord:
    try:
        return ContentRecord.from_dict({k: v for k, v in data.items() if v is not None}, "content")
    except LedgerError as exc:
        raise Problem(422, "bad-content", str(exc)) from None


def _written(request: Request, st: AppState, principal: Principal, rec: ContentRecord, match: bool,
             signals=None, query: dict[str, Any] | None = None, content: Any = None) -> dict[str, Any]:
    info, changed = _ledger(request).write(rec)
    body: dict[str, Any] = {"content": info.to_dict(), "changed": changed}
    if match:
        from consentry.banks.matcher import query_from_hash_line
        from consentry.web.api.matching import _respond

        require_ready(st)
        if signals is None:
            signals = query_from_hash_line({"md5": rec.md5, "sha256": rec.sha256, "pdq": rec.pdq,
                                            "pdq_quality": rec.pdq_quality, "vpdq": rec.vpdq})
            if rec.pdq and rec.pdq_variants:
                signals.pdq = [rec.pdq] + list(rec.pdq_variants)
            query = {"content_id": rec.content_id, "sha256": rec.sha256, "pdq": rec.pdq}
        body["match"] = _respond(st, principal, "POST /v1/content", query or {}, signals, None, request,
                                 {"uploader_id": rec.uploader_id, "surface": rec.surface}, content)
    return body


@router.post("/content", summary="Register hosted content in the ledger (hashes only); optionally match it")
def register_content(
    request: Request, item: ContentIn,
    match: bool = Query(False, description="Also match the content against the banks (as /v1/match)"),
    principal: Principal = Depends(require(*CONTENT_WRITERS)),
) -> dict[str, Any]:
    st = state(request)
    rate_limit(st, principal.key_id, "content requests")
    return _written(request, st, principal, _record(item.model_dump()), match)


@router.post("/content/upload", summary="Register hosted content from its file (hashed here, never kept)")
def register_upload(
    request: Request,
    file: UploadFile = File(...),
    content_id: str = Form(..., min_length=1, max_length=200),
    url: str | None = Form(None, max_length=4000),
    uploader_id: str | None = Form(None, max_length=200),
    surface: str | None = Form(None, max_length=100),
    match: bool = Query(False, description="Also match the file against the banks (as POST /v1/match)"),
    principal: Principal = Depends(require(*CONTENT_WRITERS)),
) -> dict[str, Any]:
    st = state(request)
    rate_limit(st, principal.key_id, "content requests")
    content = read_upload(file, st.settings)
    from consentry.web.api.matching import _content_query

    signals, query = _content_query(content, {"filename": file.filename})  # 422 for other media
    try:
        rec = ContentRecord.from_signals(signals, content.content_type, content_id=content_id, url=url,
                                         uploader_id=uploader_id, surface=surface)
    except LedgerError as exc:
        raise Problem(422, "bad-content", str(exc)) from None
    return _written(request, st, principal, rec, match, signals, {**query, "content_id": content_id}, content)


@router.delete("/content/{content_id}", summary="The platform removed this content: drop it from future sweeps")
def delete_content(request: Request, content_id: str,
                   principal: Principal = Depends(require(*CONTENT_WRITERS))) -> dict[str, Any]:
    try:
        info = _ledger(request).delete(content_id)
    except ContentNotFound as exc:
        raise Problem(404, "not-found", str(exc)) from None
    return {"content_id": info.content_id, "status": info.status}


@router.get("/content/{content_id}", summary="A ledger entry and its sweep hits")
def get_content(request: Request, content_id: str,
                principal: Principal = Depends(require(*CONTENT_READERS))) -> dict[str, Any]:
    ledger = _ledger(request)
    try:
        info = ledger.get(content_id)
    except ContentNotFound as exc:
        raise Problem(404, "not-found", str(exc)) from None
    return {"content": info.to_dict(), "hits": ledger.hits(content_id=content_id, limit=1000)}


@router.get("/sweep/hits", summary="Copies found online by the sweep (cursor pagination)")
def sweep_hits(
    request: Request,
    bank: str | None = Query(None, max_length=200),
    cursor: int = Query(0, ge=0, le=2**63 - 1, description="The last hit id seen"),
    limit: int = Query(100, ge=1, le=1000),
    principal: Principal = Depends(require("curator", "moderator", "auditor")),
) -> dict[str, Any]:
    hits = _ledger(request).hits(bank=bank, after_id=cursor, limit=limit)
    return {"hits": hits, "next_cursor": hits[-1]["id"] if hits else cursor}
