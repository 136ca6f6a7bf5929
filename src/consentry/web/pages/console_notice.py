"""The notice panel of the console's case page (issue 14): for a case opened by a TAKE IT DOWN Act
or DSA Art. 16 notice, its clock (SLA colour and due time), the locations, the decision with its
legal or policy ground, the identical-copy sweep's record of reasonable efforts and the statements
of reasons; forms to decide (remove, disable, no action) and to reject the notice with a reason.

The panel (``console/_notice.html``) is included by ``console/case.html`` and reads its data
through the template global ``notice_panel``. The generic confirm/dismiss buttons record no ground;
a notice case is decided here, which also decides its case.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from consentry.errors import ConsentryError
from consentry.web.deps import DbId
from consentry.web.pages import templates
from consentry.web.pages.console import REVIEWERS, ConsoleUser, _case_page, _check_csrf, _see, require_session
from consentry.web.problems import consentry_error_status

router = APIRouter(prefix="/console", include_in_schema=False)


def _notices(request: Request):
    return getattr(request.app.state, "notices", None)


def notice_panel(request: Request, case_id: int) -> dict[str, Any] | None:
    """What the case page's notice panel shows; None when the case did not come from a notice."""
    svc = _notices(request)
    return svc.summary_for_case(case_id) if svc is not None else None


templates.env.globals["notice_panel"] = notice_panel


def _act(request: Request, case_id: int, user: ConsoleUser, csrf_token: str, action) -> Response:
    _check_csrf(user, csrf_token)
    svc = _notices(request)
    try:
        if svc is None:
            raise ConsentryError("notices are not available on this instance")
        action(svc)
    except (ConsentryError, ValueError) as exc:
        status = consentry_error_status(exc)[0] if isinstance(exc, ConsentryError) else 422
        return _case_page(request, user, case_id, error=str(exc), status=status)
    return _see(f"/console/cases/{case_id}#notice")


@router.post("/cases/{case_id}/notice/decide")
def decide(request: Request, case_id: DbId, csrf_token: str = Form("", max_length=200),
           number: str = Form(..., max_length=40), decision: str = Form(..., max_length=20),
           ground: str = Form("", max_length=20), reference: str = Form("", max_length=500),
           explanation: str = Form("", max_length=4000), automated: bool = Form(False),
           user: ConsoleUser = Depends(require_session(*REVIEWERS))) -> Response:
    from consentry.notices import Ground

    def run(svc) -> None:
        g = Ground(ground, reference, explanation) if decision != "no_action" or ground else None
        svc.decide(number, user.actor, decision, ground=g, automated=automated, role=user.role)

    return _act(request, case_id, user, csrf_token, run)


@router.post("/cases/{case_id}/notice/reject")
def reject(request: Request, case_id: DbId, csrf_token: str = Form("", max_length=200),
           number: str = Form(..., max_length=40), reason: str = Form(..., min_length=1, max_length=4000),
           user: ConsoleUser = Depends(require_session(*REVIEWERS))) -> Response:
    return _act(request, case_id, user, csrf_token, lambda svc: svc.reject(number, user.actor, reason))
