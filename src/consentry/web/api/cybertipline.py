"""NCMEC CyberTipline reports and preservation holds over HTTP (issue 15).

Reading a case's report (the draft, what will be sent, its status) is open to the review roles;
drafting, approving, filing and retracting take an ``admin`` key (in the console, a user with the
``reporter`` permission does it). The report list and the holds are for auditors (the
transparency report reads them). Media never come back from these routes.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request

from consentry.cybertip.client import IspwsUnavailable
from consentry.cybertip.holds import HoldService
from consentry.cybertip.service import CybertipService
from consentry.web.auth import Principal, require
from consentry.web.deps import DbId, state
from consentry.web.problems import Problem
from consentry.web.review_deps import review

router = APIRouter(prefix="/v1", tags=["cybertipline"])

READ_REPORTS = ("moderator", "curator", "auditor")
AUDITORS = ("auditor",)
FILERS: tuple[str, ...] = ()  # admin only over the API


def service(request: Request) -> CybertipService:
    st = state(request)
    return CybertipService(st.banks.db, st.settings, vault=review(request).vault, banks=st.banks)


def _who(p: Principal) -> str:
    return f"key:{p.key_id}" + (f" ({p.key.name})" if p.key.name else "")


def _report(request: Request, case_id: int) -> dict[str, Any]:
    info = service(request).get(case_id)
    if info is None:
        raise Problem(404, "not-found", f"case {case_id} has no CyberTipline report")
    return info.to_dict()


@router.get("/cases/{case_id}/cybertip", summary="A case's CyberTipline report: draft XML, status, NCMEC id")
def get_report(request: Request, case_id: DbId, _p: Principal = Depends(require(*READ_REPORTS))) -> dict[str, Any]:
    return _report(request, case_id)


@router.post("/cases/{case_id}/cybertip/draft", status_code=201,
             summary="Build and validate the report of a confirmed CSAM case (nothing is sent)")
def draft_report(request: Request, case_id: DbId,
                 details: dict[str, Any] = Body(default_factory=dict, description=(
                     "What the platform knows: incident_time, incident_type, reported_user {esp_identifier, "
                     "screen_name, display_name, profile_url, emails, ips [{ip, event, at}]}, files {sha256: "
                     "{original_file_name, location, publicly_available, upload_ip}}, urls, additional_info")),
                 principal: Principal = Depends(require(*FILERS))) -> dict[str, Any]:
    return service(request).draft(case_id, details, actor=_who(principal), permitted=True).to_dict()


@router.post("/cases/{case_id}/cybertip/approve", summary="Four-eyes: approve a draft another reporter made")
def approve_report(request: Request, case_id: DbId, principal: Principal = Depends(require(*FILERS))) -> dict[str, Any]:
    return service(request).approve(case_id, actor=_who(principal), permitted=True).to_dict()


@router.post("/cases/{case_id}/cybertip/file",
             summary="File the report with NCMEC (submit, upload, fileinfo, finish); holds the case one year")
def file_report(request: Request, case_id: DbId, principal: Principal = Depends(require(*FILERS))) -> dict[str, Any]:
    try:
        return service(request).file(case_id, actor=_who(principal), permitted=True).to_dict()
    except IspwsUnavailable as exc:
        raise Problem(503, "cybertip-unavailable", f"{exc}; the report resumes where it stopped when filed again",
                      headers={"Retry-After": "60"}) from None


@router.post("/cases/{case_id}/cybertip/retract", summary="Cancel a report NCMEC has not finished")
def retract_report(request: Request, case_id: DbId, principal: Principal = Depends(require(*FILERS))) -> dict[str, Any]:
    return service(request).retract(case_id, actor=_who(principal), permitted=True).to_dict()


@router.get("/cybertip/reports", summary="Every CyberTipline report (status, NCMEC id, times; no XML)")
def list_reports(request: Request, status: str | None = Query(None, max_length=20),
                 _p: Principal = Depends(require(*AUDITORS))) -> dict[str, Any]:
    return {"reports": [r.to_dict(xml=False) for r in service(request).list(status=status)]}


@router.get("/holds", summary="Preservation holds (one year after a CyberTipline report)")
def list_holds(request: Request, include_released: bool = Query(False),
               _p: Principal = Depends(require(*AUDITORS))) -> dict[str, Any]:
    return {"holds": [h.to_dict() for h in HoldService(state(request).banks.db).list(include_released=include_released)]}
