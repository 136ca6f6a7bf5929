"""The review console under ``/console``: login, queue, case view, bank browser, audit view.

Server-rendered Jinja pages with a little vanilla JS (``static/console/console.js``). Sessions
are HttpOnly, SameSite=Strict cookies; every POST carries the session's CSRF token (a form field,
or the ``X-CSRF-Token`` header for the reveal log). Each route declares its roles with
:func:`require_session`, which exposes ``allowed_roles`` like :func:`consentry.web.auth.require`.

Exposure minimisation: media are blurred and greyscale by default; a reviewer reveals one item
at a time (press-and-hold, hover or focus + ``r``) only after the server has logged the reveal
(audit log + exposure counter); the reveal fades back after a few seconds. Bytes come from
:func:`item_media`, decrypted from the vault, never cached.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from consentry.db.models import ROLES
from consentry.errors import ConsentryError
from consentry.signals.pdq import PDQ_MIN_QUALITY
from consentry.review.audit import AuditLog
from consentry.review.cases import UNDO_SECONDS
from consentry.review.users import SessionInfo
from consentry.web.auth import public
from consentry.web.deps import DbId, MAX_DB_INT, state
from consentry.web.pages import templates
from consentry.web.problems import Problem, consentry_error_status
from consentry.web.review_deps import review

router = APIRouter(prefix="/console", include_in_schema=False)

SESSION_COOKIE = "consentry_session"
LOGIN_CSRF_COOKIE = "consentry_login_csrf"
REVIEWERS = ("moderator", "curator")  # admin is always admitted
BANK_READERS = ("moderator", "curator", "auditor")
AUDITORS = ("auditor",)
REVEAL_SECONDS = 4
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; media-src 'self'; script-src 'self'; "
                               "style-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                               "frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_DONE = {
    "confirmed": "Decision recorded: confirmed and added to the bank.",
    "pending": "Decision recorded: it waits for a second reviewer before the shared bank is changed.",
    "dismissed": "Decision recorded: dismissed.",
    "escalated": "Case escalated to curators.",
    "approved": "Second review recorded: the addition was applied.",
    "rejected": "Second review recorded: the addition was rejected and the case is back in the queue.",
    "released": "Case released back to the queue.",
    "undone": "Decision undone: the case is open again and any hashes it added were withdrawn from the bank.",
}
_UNDO_WORDS = {"confirm": "Confirmed", "dismiss": "Dismissed", "escalate": "Escalated"}


@dataclass(frozen=True)
class ConsoleUser:
    info: SessionInfo

    @property
    def username(self) -> str:
        return self.info.user.username

    @property
    def role(self) -> str:
        return self.info.user.role

    @property
    def csrf(self) -> str:
        return self.info.csrf_token

    @property
    def actor(self) -> str:
        """The name decisions, reveals and audit events carry (the username)."""
        return self.username


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def require_session(*roles: str):
    """A dependency admitting console users with the given roles (``admin`` always).

    Anonymous: HTML requests are sent to the login page (303), others get 401 problem+json.
    Wrong role: 403.
    """
    for r in roles:
        if r not in ROLES:
            raise ValueError(f"unknown role {r!r}")
    allowed = frozenset(roles) | {"admin"}

    def dependency(request: Request) -> ConsoleUser:
        info = review(request).users.session(request.cookies.get(SESSION_COOKIE))
        if info is None:
            if _wants_html(request) and request.method == "GET":
                target = "/console/login?next=" + quote(request.url.path, safe="/")
                raise Problem(303, "login-required", "log in to the console first", headers={"Location": target})
            raise Problem(401, "unauthenticated", "log in to the console first")
        if info.user.role not in allowed:
            raise Problem(403, "forbidden",
                          f"role {info.user.role!r} may not do this; allowed: {', '.join(sorted(allowed))}")
        return ConsoleUser(info)

    dependency.allowed_roles = allowed  # type: ignore[attr-defined]  (read by tests and docs)
    dependency.session_auth = True  # type: ignore[attr-defined]
    return dependency


def _check_csrf(user: ConsoleUser, token: str | None) -> None:
    if not user.info.csrf_ok(token):  # SHA-256 digests compared in constant time
        raise Problem(403, "csrf", "the form has expired or did not come from this console; reload the page")


def _render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    resp = templates.TemplateResponse(request, name, context, status_code=status)
    resp.headers.update(SECURITY_HEADERS)
    return resp


def _page(request: Request, user: ConsoleUser | None, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    rs = review(request)
    exposure = rs.exposure.today(user.actor) if user and user.role in REVIEWERS + ("admin",) else None
    return _render(request, name, {"user": user, "exposure": exposure, "reveal_seconds": REVEAL_SECONDS, **ctx},
                   status)


def _see(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/console") and not target.startswith("//") and "\\" not in target:
        return target[:300]
    return "/console"


# --------------------------------------------------------------------------- login / logout
_LOGIN_IS_PUBLIC = public("the console login form: anyone may try to log in (throttled, audited)")


@router.get("/login", response_class=HTMLResponse, dependencies=[Depends(_LOGIN_IS_PUBLIC)])
def login_form(request: Request, next: str = Query("/console", max_length=300)) -> Response:
    if review(request).users.session(request.cookies.get(SESSION_COOKIE)) is not None:
        return _see(_safe_next(next))
    token = secrets.token_urlsafe(32)
    resp = _render(request, "console/login.html", {"user": None, "csrf": token, "next": _safe_next(next),
                                                   "error": None, "username": ""})
    resp.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/console",
                    secure=request.url.scheme == "https", max_age=3600)
    return resp


@router.post("/login", response_class=HTMLResponse, dependencies=[Depends(_LOGIN_IS_PUBLIC)])
def login(
    request: Request,
    username: str = Form("", max_length=200),
    password: str = Form("", max_length=1024),
    csrf_token: str = Form("", max_length=200),
    next: str = Form("/console", max_length=300),
) -> Response:
    rs = review(request)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
    if not cookie or not csrf_token or not secrets.compare_digest(cookie, csrf_token):
        raise Problem(403, "csrf", "the login form has expired; reload the login page")
    client = request.client.host if request.client else None
    # same work for every attempt; locks on the user row; failures audited in aggregate (users.py)
    outcome = rs.users.login(username, password, rs.throttle, audit=AuditLog(rs.users.db), ip=client)
    user = outcome.user
    error = ("Too many failed attempts. Wait a few minutes and try again." if outcome.locked else
             "Unknown username or wrong password (or the account is disabled).")
    if user is None:
        # the username stays filled in (only the password is cleared)
        resp = _render(request, "console/login.html", {"user": None, "csrf": cookie, "next": _safe_next(next),
                                                       "error": error, "username": username[:100]}, status=401)
        return resp
    rs.throttle.succeeded(username)
    token, _info = rs.users.start_session(user)
    AuditLog(rs.users.db).record("login.ok", user.username, {"ip": client, "role": user.role})
    target = _safe_next(next)
    if target == "/console" and user.role == "auditor":
        target = "/console/audit"
    resp = _see(target)
    resp.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", path="/console",
                    secure=request.url.scheme == "https", max_age=int(rs.users.session_hours * 3600))
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path="/console")
    return resp


@router.post("/logout")
def logout(request: Request, csrf_token: str = Form("", max_length=200),
           user: ConsoleUser = Depends(require_session(*ROLES))) -> Response:
    _check_csrf(user, csrf_token)
    review(request).users.end_session(request.cookies.get(SESSION_COOKIE))
    AuditLog(review(request).users.db).record("logout", user.actor, {})
    resp = _see("/console/login")
    resp.delete_cookie(SESSION_COOKIE, path="/console")
    return resp


@router.get("", response_class=HTMLResponse)
def home(user: ConsoleUser = Depends(require_session(*REVIEWERS, *AUDITORS))) -> Response:
    if user.role in REVIEWERS + ("admin",):
        return _see("/console/queue")
    if user.role == "auditor":
        return _see("/console/audit")
    raise Problem(403, "forbidden", f"role {user.role!r} has no console pages")


# --------------------------------------------------------------------------- queue and cases
@router.get("/queue", response_class=HTMLResponse)
def queue_page(request: Request, queue: str | None = Query(None, max_length=100),
               done: str | None = Query(None, max_length=20),
               undo: int | None = Query(None, ge=1, le=MAX_DB_INT),
               user: ConsoleUser = Depends(require_session(*REVIEWERS))) -> Response:
    return _queue_page(request, user, queue=queue, message=_DONE.get(done or ""), undo=undo)


def _queue_page(request: Request, user: ConsoleUser, *, queue: str | None = None, message: str | None = None,
                undo: int | None = None, error: str | None = None, status: int = 200) -> Response:
    rs = review(request)
    cases = rs.cases.list_queue(queue=queue, limit=200)
    approvals = rs.cases.pending_approvals(exclude_reviewer=user.username)
    undo_offer = None
    if undo is not None:  # the decision just made: offered for undo while its window lasts
        left = rs.cases.undoable(undo, user.username)
        d = rs.cases.decision(undo) if left > 0 else None
        if d is not None:
            what = _UNDO_WORDS.get(d.kind, d.kind) + f" case #{d.case_id}" + (f" into bank {d.bank}" if d.bank else "")
            if d.status == "pending_second_review":
                what += " (waiting for a second reviewer)"
            undo_offer = {"id": d.id, "case_id": d.case_id, "seconds": int(left), "what": what}
    return _page(request, user, "console/queue.html", status, cases=cases, approvals=approvals, queue=queue,
                 counts=rs.cases.counts_by_status(), message=message, undo=undo_offer, error=error)


def _case_page(request: Request, user: ConsoleUser, case_id: int, *, error: str | None = None,
               status: int = 200, message: str | None = None) -> Response:
    rs = review(request)
    case = rs.cases.get(case_id)
    banks = state(request).banks.list_banks()
    confirm_banks = [b for b in banks if b.kind != "allow"]
    matched = _matched_banks(case, {b.name for b in confirm_banks})
    return _page(request, user, "console/case.html", status, case=case,
                 confirm_banks=confirm_banks,
                 allow_banks=[b for b in banks if b.kind == "allow"],
                 # confirm goes by default into the bank that matched (most matches first); with
                 # no match the reviewer must choose one: never a silent first-in-the-list bank
                 matched_banks=matched, default_bank=matched[0] if matched else None,
                 undo_seconds=UNDO_SECONDS, weak_pdq_quality=PDQ_MIN_QUALITY,
                 holder=case.claim_holder(), pending=case.pending_decision, error=error, message=message,
                 vault_on=rs.vault is not None)


def _matched_banks(case, eligible: set[str]) -> list[str]:
    """The confirmable banks the case's items matched, the most matched first (ties: first seen)."""
    counts: dict[str, int] = {}
    for it in case.items:
        for m in it.matches:
            name = m.get("bank") if isinstance(m, dict) else None
            if isinstance(name, str) and name in eligible:
                counts[name] = counts.get(name, 0) + 1
    order = list(counts)
    return sorted(order, key=lambda n: (-counts[n], order.index(n)))


@router.get("/cases/{case_id}", response_class=HTMLResponse)
def case_page(request: Request, case_id: DbId, done: str | None = Query(None, max_length=20),
              user: ConsoleUser = Depends(require_session(*REVIEWERS))) -> Response:
    rs = review(request)
    case = rs.cases.get(case_id)
    error = None
    if case.status in ("open", "claimed") or (case.status == "escalated" and user.role in ("curator", "admin")):
        try:  # opening a case claims it, so two reviewers do not look at the same material
            rs.cases.claim(case_id, user.username)
        except ConsentryError as exc:
            error = str(exc)
    return _case_page(request, user, case_id, error=error, message=_DONE.get(done or ""))


def _form_error(request: Request, user: ConsoleUser, case_id: int, exc: ConsentryError) -> Response:
    status, _slug = consentry_error_status(exc)
    return _case_page(request, user, case_id, error=str(exc), status=status)


@router.post("/cases/{case_id}/claim")
def claim_case(request: Request, case_id: DbId, csrf_token: str = Form("", max_length=200),
               user: ConsoleUser = Depends(require_session(*REVIEWERS))) -> Response:
    _check_csrf(user, csrf_token)
    try:
        review(request).cases.claim(case_id, user.username)
    except ConsentryError as exc:
        return _form_error(request, user, case_id, exc)
    return _see(f"/console/cases/{case_id}")


@router.post("/cases/{case_id}/release")
def release_case(request: Request, case_id: DbId, csrf_token: str = Form("", max_length=200),
                 user: ConsoleUser = Depends(require_session(*REVIEWERS))) -> Response:
    _check_csrf(user, csrf_token)
    try:
        review(request).cases.release(case_id, user.username)
    except ConsentryError as exc:
        return _form_error(request, user, case_id, exc)
    return _see("/console/queue?done=released")


@router.post("/cases/{case_id}/decide")
def decide_case(
    request: Request, case_id: DbId,
    kind: str = Form(..., max_length=20),
    bank: str = Form("", max_length=200),
    note: str = Form("", max_length=4000),
    csrf_token: str = Form("", max_length=200),
    user: ConsoleUser = Depends(require_session(*REVIEWERS)),
) -> Response:
    _check_csrf(user, csrf_token)
    try:
        d = review(request).cases.decide(case_id, user.username, kind, bank=bank or None, note=note,
                                         role=user.role)
    except ConsentryError as exc:
        return _form_error(request, user, case_id, exc)
    _refresh_index(request)
    _notify_decided(request, d)
    done = {"confirm": "confirmed", "dismiss": "dismissed", "escalate": "escalated"}[d.kind]
    done = "pending" if d.status == "pending_second_review" else done
    return _see(f"/console/queue?done={done}&undo={d.id}")  # the queue offers an undo for a while


@router.post("/decisions/{decision_id}/undo")
def undo_decision(request: Request, decision_id: DbId, csrf_token: str = Form("", max_length=200),
                  user: ConsoleUser = Depends(require_session(*REVIEWERS))) -> Response:
    """Take back one's own decision within the undo window: withdraws what it added, reopens the case."""
    _check_csrf(user, csrf_token)
    try:
        d = review(request).cases.undo(decision_id, user.username)
    except ConsentryError as exc:
        status, _slug = consentry_error_status(exc)
        return _queue_page(request, user, error=str(exc), status=status)
    _refresh_index(request)
    return _see(f"/console/cases/{d.case_id}?done=undone")


@router.post("/decisions/{decision_id}/approve")
def approve_decision(request: Request, decision_id: DbId, csrf_token: str = Form("", max_length=200),
                     user: ConsoleUser = Depends(require_session(*REVIEWERS))) -> Response:
    return _second_review(request, decision_id, csrf_token, user, approve=True)


@router.post("/decisions/{decision_id}/reject")
def reject_decision(request: Request, decision_id: DbId, csrf_token: str = Form("", max_length=200),
                    note: str = Form("", max_length=2000),
                    user: ConsoleUser = Depends(require_session(*REVIEWERS))) -> Response:
    return _second_review(request, decision_id, csrf_token, user, approve=False, note=note)


def _second_review(request: Request, decision_id: int, csrf_token: str, user: ConsoleUser, *, approve: bool,
                   note: str = "") -> Response:
    _check_csrf(user, csrf_token)
    cases = review(request).cases
    try:
        d = cases.approve(decision_id, user.username) if approve else cases.reject(decision_id, user.username, note)
    except ConsentryError as exc:
        pending = next((p for p in cases.pending_approvals() if p.id == decision_id), None)
        if pending is None:
            raise
        return _form_error(request, user, pending.case_id, exc)
    _refresh_index(request)
    if d is not None and approve:
        _notify_decided(request, d)
    return _see(f"/console/queue?done={'approved' if approve else 'rejected'}") if d else _see("/console/queue")


def _notify_decided(request: Request, d) -> None:
    """Run the rules' actions for a decision that took effect (not one awaiting a second review)."""
    if d.status == "pending_second_review":
        return
    case = review(request).cases.get(d.case_id)
    summary = {"id": case.id, "queue": case.queue, "uploader_id": case.uploader_id, "status": case.status,
               "items": [{"sha256": i.sha256, "md5": i.md5, "pdq": i.pdq} for i in case.items]}
    request.app.state.policy.decided(d.to_dict(), summary)


def _refresh_index(request: Request) -> None:
    """This worker's index sees a bank addition at once (others tail the change log)."""
    m = state(request).matcher
    if m.loaded:
        m.refresh()


# --------------------------------------------------------------------------- media and reveals
_MEDIA_HEADERS = {
    "Cache-Control": "no-store, private", "Pragma": "no-cache", "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox", "Content-Disposition": "inline",
    "Cross-Origin-Resource-Policy": "same-origin"}
#: The clear media of an item are served only this long after the reviewer's logged reveal.
REVEAL_GRANT_SECONDS = 60


@router.get("/items/{item_id}/preview")
def item_preview(request: Request, item_id: DbId,
                 user: ConsoleUser = Depends(require_session(*REVIEWERS))) -> Response:
    """The blurred, greyscale stand-in shown until a reveal (made on the server)."""
    try:
        data = review(request).cases.preview(item_id)
    except ConsentryError as exc:
        raise Problem(404, "not-found", str(exc)) from None
    return Response(data, media_type="image/jpeg", headers=_MEDIA_HEADERS)


@router.get("/items/{item_id}/media")
def item_media(request: Request, item_id: DbId,
               user: ConsoleUser = Depends(require_session(*REVIEWERS))) -> Response:
    """The clear media: only after this reviewer's logged reveal of this item (POST .../reveal)."""
    rv = review(request)
    if not rv.exposure.revealed_recently(user.actor, item_id, REVEAL_GRANT_SECONDS):
        raise Problem(403, "reveal-first", "reveal the item first: every view of the media is logged")
    data, mime = rv.cases.media(item_id)
    return Response(data, media_type=mime, headers=_MEDIA_HEADERS)


@router.post("/items/{item_id}/reveal")
def reveal_item(request: Request, item_id: DbId,
                user: ConsoleUser = Depends(require_session(*REVIEWERS))) -> JSONResponse:
    _check_csrf(user, request.headers.get("x-csrf-token"))
    exposure = review(request).exposure.record_reveal(user.actor, item_id)
    return JSONResponse({**exposure.to_dict(), "item_id": item_id, "fade_seconds": REVEAL_SECONDS},
                        headers={"Cache-Control": "no-store"})


# --------------------------------------------------------------------------- banks and audit
@router.get("/banks", response_class=HTMLResponse)
def banks_page(request: Request, user: ConsoleUser = Depends(require_session(*BANK_READERS))) -> Response:
    return _page(request, user, "console/banks.html", banks=state(request).banks.list_banks())


@router.get("/banks/{name}", response_class=HTMLResponse)
def bank_page(request: Request, name: str, after: int = Query(0, ge=0, le=MAX_DB_INT), status: str | None = Query(None),
              user: ConsoleUser = Depends(require_session(*BANK_READERS))) -> Response:
    svc = state(request).banks
    bank = svc.get_bank(name)
    if status not in (None, "", "active", "disabled", "withdrawn"):
        status = None
    entries = svc.list_entries(name, status=status or None, after_id=after, limit=100)
    # ``entry_status``, not ``status``: _page's ``status`` is the HTTP status code
    return _page(request, user, "console/bank.html", bank=bank, entries=entries, entry_status=status or "",
                 next_after=entries[-1].id if len(entries) == 100 else None)


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, after: int = Query(0, ge=0, le=MAX_DB_INT), event_type: str | None = Query(None, max_length=64),
               user: ConsoleUser = Depends(require_session(*AUDITORS))) -> Response:
    log = AuditLog(state(request).banks.db)
    events = log.list(after_seq=after, limit=100, event_type=event_type or None)
    verify = log.verify() if request.query_params.get("verify") else None
    return _page(request, user, "console/audit.html", events=events, event_type=event_type or "",
                 verify=verify, next_after=events[-1].seq if len(events) == 100 else None)
