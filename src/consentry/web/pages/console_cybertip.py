"""The CyberTipline panel of the console's case page (issue 15): the report's draft, what will be
sent, its status and the preservation hold; forms to draft, approve, file and retract.

The panel (``console/_cybertip.html``) is included by ``console/case.html`` and reads its data
through the template global ``cybertip_panel``. Every form posts here with the session's CSRF
token; a console user needs the ``reporter`` permission (or the admin role) to act.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from consentry.errors import ConsentryError
from consentry.web.api.cybertipline import service
from consentry.web.deps import DbId
from consentry.web.pages import templates
from consentry.web.pages.console import REVIEWERS, ConsoleUser, _case_page, _check_csrf, _see, require_session
from consentry.web.problems import Problem, consentry_error_status

router = APIRouter(prefix="/console", include_in_schema=False)

MAX_DETAILS_FORM = 64 * 1024


def _may_report(user: ConsoleUser) -> bool:
    from consentry.cybertip.service import may_report

    return may_report(user.role, user.info.user.can_report)


def cybertip_panel(request: Request, case_id: int, user: ConsoleUser) -> dict[str, Any] | None:
    """What the case page's panel shows; None when the case is not reportable and has no report."""
    from consentry.cybertip.holds import HoldService

    svc = service(request)
    report = svc.get(case_id)
    why_not = svc.eligibility(case_id)
    if report is None and why_not:
        return None
    config = svc.describe()
    holds = HoldService(svc.db).list(include_released=True, case_id=case_id)
    status = report.status if report else None
    given = {k: v for k, v in (report.details if report else {}).items() if not k.startswith("_")}
    return {"report": report, "config": config, "holds": holds, "may_report": _may_report(user),
            "details_json": json.dumps(given, indent=1) if given else "",
            "can_draft": status in (None, "draft", "pending_approval", "approved", "failed", "retracted")
            and not (report and report.ncmec_report_id and status != "retracted"),
            "can_approve": status == "pending_approval" and report.drafted_by != user.username,
            "can_file": status in ("draft", "approved", "failed") and not (config["four_eyes"] and status == "draft"),
            "can_retract": status in ("draft", "pending_approval", "approved", "failed")}


templates.env.globals["cybertip_panel"] = cybertip_panel


def _act(request: Request, case_id: int, user: ConsoleUser, csrf_token: str, action) -> Response:
    _check_csrf(user, csrf_token)
    if not _may_report(user):
        raise Problem(403, "forbidden", "filing CyberTipline reports needs the reporter permission "
                                        "(an administrator grants it)")
    try:
        action(service(request))
    except ConsentryError as exc:
        status, _slug = consentry_error_status(exc)
        if exc.code == "cybertip_unavailable":
            status = 503
        return _case_page(request, user, case_id, error=str(exc), status=status)
    return _see(f"/console/cases/{case_id}#cybertip")


@router.post("/cases/{case_id}/cybertip/draft")
def draft(request: Request, case_id: DbId, csrf_token: str = Form("", max_length=200),
          details: str = Form("", max_length=MAX_DETAILS_FORM),
          user: ConsoleUser = Depends(require_session(*REVIEWERS))) -> Response:
    try:
        parsed = json.loads(details) if details.strip() else {}
    except ValueError as exc:
        _check_csrf(user, csrf_token)
        return _case_page(request, user, case_id, error=f"the platform details are not valid JSON: {exc}", status=422)
    return _act(request, case_id, user, csrf_token,
                lambda svc: svc.draft(case_id, parsed, actor=user.actor, permitted=True))


@router.post("/cases/{case_id}/cybertip/approve")
def approve(request: Request, case_id: DbId, csrf_token: str = Form("", max_length=200),
            user: ConsoleUser = Depends(require_session(*REVIEWERS))) -> Response:
    return _act(request, case_id, user, csrf_token, lambda svc: svc.approve(case_id, actor=user.actor, permitted=True))


@router.post("/cases/{case_id}/cybertip/file")
def file(request: Request, case_id: DbId, csrf_token: str = Form("", max_length=200),
         user: ConsoleUser = Depends(require_session(*REVIEWERS))) -> Response:
    return _act(request, case_id, user, csrf_token, lambda svc: svc.file(case_id, actor=user.actor, permitted=True))


@router.post("/cases/{case_id}/cybertip/retract")
def retract(request: Request, case_id: DbId, csrf_token: str = Form("", max_length=200),
            user: ConsoleUser = Depends(require_session(*REVIEWERS))) -> Response:
    return _act(request, case_id, user, csrf_token, lambda svc: svc.retract(case_id, actor=user.actor, permitted=True))
