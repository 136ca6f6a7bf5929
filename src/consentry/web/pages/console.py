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
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from consentry.db.models import ROLES
from consentry.errors import ConsentryError
from consentry.signals.pdq import PDQ_MIN_QUALITY
from consentry.review.audit import AuditLog
from consentry.review.cases import UNDO_SECONDS
from consentry.review.users import SessionInfo
from consentry.web.auth import public
from consentry.web.deps import DbId, MAX_DB_INT, state
from consentry.web.pages import console_context as ctx, templates
from consentry.web.pages.console_context import QueueFilter
from consentry.web.problems import Problem, consentry_error_status
from consentry.web.review_deps import review

router = APIRouter(prefix="/console", include_in_schema=False)

SESSION_COOKIE = "consentry_session"
LOGIN_CSRF_COOKIE = "consentry_login_csrf"
REVIEWERS = ("moderator", "curator")  # admin is always admitted
BANK_READERS = ("moderator", "curator", "auditor")
AUDITORS = ("auditor",)
REVEAL_SECONDS = 4
BREAK_COOKIE = "consentry_break_until"
MAX_BULK = 500  # items one bulk decision may split off
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
    "split": "Decision recorded for the selected items; the other items of the case still wait for one.",
    "assigned": "Case assigned.",
    "break": "The queue is paused: no case is handed out until your break ends.",
    "empty": "No case left that you can decide in this view.",
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
def queue_page(request: Request, done: str | None = Query(None, max_length=20),
               undo: int | None = Query(None, ge=1, le=MAX_DB_INT),
               user: ConsoleUser = Depends(require_session(*REVIEWERS))) -> Response:
    return _queue_page(request, user, message=_DONE.get(done or ""), undo=undo)


def _undo_offer(request: Request, user: ConsoleUser, undo: int | None) -> dict[str, Any] | None:
    """The decision just made, offered for undo while its window lasts (``u``)."""
    if undo is None:
        return None
    cases = review(request).cases
    left = cases.undoable(undo, user.username)
    d = cases.decision(undo) if left > 0 else None
    if d is None:
        return None
    what = _UNDO_WORDS.get(d.kind, d.kind) + f" case #{d.case_id}" + (f" into bank {d.bank}" if d.bank else "")
    if d.status == "pending_second_review":
        what += " (waiting for a second reviewer)"
    return {"id": d.id, "case_id": d.case_id, "seconds": int(left), "what": what}


def _on_break(request: Request, user: ConsoleUser) -> bool:
    """A break the reviewer took (or the exposure budget reached): the queue stops handing out cases."""
    try:
        until = float(request.cookies.get(BREAK_COOKIE) or 0)
    except ValueError:
        until = 0
    if until > time.time():
        return True
    return bool(review(request).exposure.today(user.actor).over_budget)


def _queue_page(request: Request, user: ConsoleUser, *, message: str | None = None,
                undo: int | None = None, error: str | None = None, status: int = 200) -> Response:
    rs = review(request)
    f = QueueFilter.from_params(request.query_params)
    rows = ctx.queue_rows(rs.cases.db, f, user.username)
    approvals = rs.cases.pending_approvals(exclude_reviewer=user.username)
    nxt = ctx.next_case_id(rs.cases.db, f, user.username, user.role)
    return _page(request, user, "console/queue.html", status, rows=rows, approvals=approvals, f=f,
                 queues=ctx.queue_counts(rs.cases.db), kinds=sorted(set(ctx.kinds_seen(rows)) | {f.kind} - {""}),
                 ages=ctx.AGES, counts=rs.cases.counts_by_status(), message=message,
                 undo=_undo_offer(request, user, undo), error=error, next_case=nxt,
                 on_break=_on_break(request, user), sla=ctx.sla_state,
                 reviewers=[u.username for u in rs.users.list() if u.role in REVIEWERS + ("admin",)
                            and not u.disabled] if user.role in ("curator", "admin") else [])


def _case_page(request: Request, user: ConsoleUser, case_id: int, *, error: str | None = None,
               status: int = 200, message: str | None = None, undo: int | None = None) -> Response:
    rs = review(request)
    case = rs.cases.get(case_id)
    banks_svc = state(request).banks
    banks = banks_svc.list_banks()
    confirm_banks = [b for b in banks if b.kind != "allow"]
    matched = _matched_banks(case, {b.name for b in confirm_banks})
    f = QueueFilter.from_params(request.query_params)
    return _page(request, user, "console/case.html", status, case=case,
                 confirm_banks=confirm_banks,
                 allow_banks=[b for b in banks if b.kind == "allow"],
                 # confirm goes by default into the bank that matched (most matches first); with
                 # no match the reviewer must choose one: never a silent first-in-the-list bank
                 matched_banks=matched, default_bank=matched[0] if matched else None,
                 undo_seconds=UNDO_SECONDS, weak_pdq_quality=PDQ_MIN_QUALITY,
                 holder=case.claim_holder(), pending=case.pending_decision, error=error, message=message,
                 vault_on=rs.vault is not None, undo=_undo_offer(request, user, undo), fq=f.query(),
                 details=ctx.match_details(banks_svc, case.items), evidence_words=ctx.evidence_words,
                 history=ctx.uploader_history(rs.cases.db, case), related=ctx.related_cases(rs.cases.db, case),
                 sla=ctx.sla_state)


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
              undo: int | None = Query(None, ge=1, le=MAX_DB_INT),
              user: ConsoleUser = Depends(require_session(*REVIEWERS))) -> Response:
    rs = review(request)
    case = rs.cases.get(case_id)
    error = None
    if case.status in ("open", "claimed") or (case.status == "escalated" and user.role in ("curator", "admin")):
        try:  # opening a case claims it, so two reviewers do not look at the same material
            rs.cases.claim(case_id, user.username)
        except ConsentryError as exc:
            error = str(exc)
    return _case_page(request, user, case_id, error=error, message=_DONE.get(done or ""), undo=undo)


@router.get("/next")
def next_case(request: Request, user: ConsoleUser = Depends(require_session(*REVIEWERS))) -> Response:
    """Open the first case of the (filtered) queue this reviewer can decide, unless on a break."""
    f = QueueFilter.from_params(request.query_params)
    if _on_break(request, user):
        return _see("/console/queue?" + f.query(done="break"))
    nxt = ctx.next_case_id(review(request).cases.db, f, user.username, user.role)
    if nxt is None:
        return _see("/console/queue?" + f.query(done="empty"))
    return _see(f"/console/cases/{nxt}" + (("?" + f.query()) if f.active else ""))


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


@router.post("/cases/{case_id}/assign")
def assign_case(request: Request, case_id: DbId, assignee: str = Form(..., max_length=100),
                csrf_token: str = Form("", max_length=200), fq: str = Form("", max_length=600),
                user: ConsoleUser = Depends(require_session("curator"))) -> Response:
    """A curator (or admin) hands a case to a reviewer: it becomes that reviewer's claim."""
    _check_csrf(user, csrf_token)
    rs = review(request)
    try:
        target = rs.users.get(assignee)
    except ConsentryError:
        target = None
    if target is None or target.disabled or target.role not in REVIEWERS + ("admin",):
        return _queue_page(request, user, error=f"{assignee!r} is not an active reviewer", status=422)
    try:
        rs.cases.release(case_id, user.username, force=True)
        rs.cases.claim(case_id, assignee)
    except ConsentryError as exc:
        status, _slug = consentry_error_status(exc)
        return _queue_page(request, user, error=str(exc), status=status)
    AuditLog(rs.cases.db).record("case.assigned", user.actor, {"case_id": case_id, "assignee": assignee})
    return _see("/console/queue?" + QueueFilter.from_params(_parse_fq(fq)).query(done="assigned"))


def _parse_fq(fq: str) -> dict[str, str]:
    """The queue view a form came from (its filters); anything malformed is the unfiltered queue."""
    try:
        return {k: v[0] for k, v in parse_qs(fq or "", max_num_fields=10).items() if v}
    except ValueError:
        return {}


@router.post("/cases/{case_id}/decide")
def decide_case(
    request: Request, case_id: DbId,
    kind: str = Form(..., max_length=20),
    bank: str = Form("", max_length=200),
    note: str = Form("", max_length=4000),
    csrf_token: str = Form("", max_length=200),
    advance: str = Form("1", max_length=1),
    fq: str = Form("", max_length=600),
    items: list[int] = Form([]),
    user: ConsoleUser = Depends(require_session(*REVIEWERS)),
) -> Response:
    """Decide the case, or (``items``) only the selected items of a grouped case: those are split
    off into a case of their own and decided there. Then the next case of the same view opens
    (``advance=1``, the default), the reviewer stays on this one (``advance=0``) or goes back to
    the queue (``advance=q``)."""
    _check_csrf(user, csrf_token)
    rs = review(request)
    f = QueueFilter.from_params(_parse_fq(fq))
    target = case_id
    try:
        if items:
            all_ids = {i.id for i in rs.cases.get(case_id).items}
            if set(items) != all_ids:
                target = rs.cases.split(case_id, items[:MAX_BULK], user.username).id
        d = rs.cases.decide(target, user.username, kind, bank=bank or None, note=note, role=user.role)
    except ConsentryError as exc:
        return _form_error(request, user, case_id, exc)
    _refresh_index(request)
    _notify_decided(request, d)
    done = {"confirm": "confirmed", "dismiss": "dismissed", "escalate": "escalated"}[d.kind]
    done = "pending" if d.status == "pending_second_review" else done
    tail = f.query(done=done, undo=d.id)
    if target != case_id:  # the rest of the grouped case still waits for a decision
        return _see(f"/console/cases/{case_id}?{f.query(done='split', undo=d.id)}")
    if advance == "0":
        return _see(f"/console/cases/{case_id}?{tail}")
    if advance == "q":  # back to the queue (the console's flow before auto-advance)
        return _see(f"/console/queue?{tail}")
    if _on_break(request, user):  # the queue is paused: it says so, and the decision is still undoable
        return _see(f"/console/queue?{tail}")
    nxt = ctx.next_case_id(rs.cases.db, f, user.username, user.role, skip={case_id})
    if nxt is None:
        return _see(f"/console/queue?{tail}")  # the queue offers an undo for a while
    return _see(f"/console/cases/{nxt}?{tail}")  # so does the next case


@router.post("/break")
def take_break(request: Request, minutes: int = Form(10, ge=1, le=120), csrf_token: str = Form("", max_length=200),
               user: ConsoleUser = Depends(require_session(*REVIEWERS))) -> Response:
    """Pause the queue for a while: no case is handed out until the break ends (or is ended)."""
    _check_csrf(user, csrf_token)
    resp = _see("/console/queue?done=break")
    if minutes:
        resp.set_cookie(BREAK_COOKIE, str(int(time.time() + minutes * 60)), httponly=True, samesite="strict",
                        path="/console", secure=request.url.scheme == "https", max_age=minutes * 60)
    AuditLog(review(request).users.db).record("break", user.actor, {"minutes": minutes})
    return resp


@router.post("/break/end")
def end_break(request: Request, csrf_token: str = Form("", max_length=200),
              user: ConsoleUser = Depends(require_session(*REVIEWERS))) -> Response:
    _check_csrf(user, csrf_token)
    resp = _see("/console/queue")
    resp.delete_cookie(BREAK_COOKIE, path="/console")
    return resp


@router.post("/decisions/{decision_id}/undo")
def undo_decision(request: Request, decision_id: DbId, csrf_token: str = Form("", max_length=200),
                  fq: str = Form("", max_length=600),
                  user: ConsoleUser = Depends(require_session(*REVIEWERS))) -> Response:
    """Take back one's own decision within the undo window: withdraws what it added, reopens the case."""
    _check_csrf(user, csrf_token)
    try:
        d = review(request).cases.undo(decision_id, user.username)
    except ConsentryError as exc:
        status, _slug = consentry_error_status(exc)
        return _queue_page(request, user, error=str(exc), status=status)
    _refresh_index(request)
    if d.result.get("status_before_undo") == "applied":
        _notify_decided(request, d)  # the sinks told of the decision hear it was taken back
    q = QueueFilter.from_params(_parse_fq(fq)).query(done="undone")
    return _see(f"/console/cases/{d.case_id}?{q}")


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
    """Run the rules' actions for a decision that took effect (not one awaiting a second review),
    or that was undone after it took effect (``decision.status == "undone"``)."""
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
BANK_WRITERS = ("curator",)  # as the API's WRITE_BANKS (admin always)
LIST_FORMATS = ("te", "stopncii", "ncmec", "vics", "csv")


def _exchanges(request: Request) -> list[dict[str, Any]]:
    """Each exchange's status (never its credentials); empty when exchanges are not set up."""
    try:
        from consentry.exchanges.base import ExchangeStore
        from consentry.exchanges.programs import describe_all

        st = state(request)
        return describe_all(ExchangeStore(st.banks, st.settings))
    except Exception:  # noqa: BLE001 - a status panel must not take the bank list down
        return []


def _banks_page(request: Request, user: ConsoleUser, *, message: str | None = None, error: str | None = None,
                status: int = 200, test: dict[str, Any] | None = None) -> Response:
    writer = user.role in BANK_WRITERS + ("admin",)
    return _page(request, user, "console/banks.html", status, banks=state(request).banks.list_banks(),
                 exchanges=_exchanges(request) if user.role in ("curator", "auditor", "admin") else [],
                 writer=writer, kinds=_bank_kinds(), message=message, error=error, test=test)


def _bank_kinds() -> tuple[str, ...]:
    from consentry.banks.service import BANK_KINDS

    return tuple(BANK_KINDS)


@router.get("/banks", response_class=HTMLResponse)
def banks_page(request: Request, done: str | None = Query(None, max_length=40),
               user: ConsoleUser = Depends(require_session(*BANK_READERS))) -> Response:
    return _banks_page(request, user, message={"created": "Bank created."}.get(done or ""))


@router.post("/banks")
def create_bank_form(request: Request, name: str = Form(..., max_length=100), kind: str = Form("custom", max_length=40),
                     description: str = Form("", max_length=2000), shared: str = Form("", max_length=3),
                     csrf_token: str = Form("", max_length=200),
                     user: ConsoleUser = Depends(require_session(*BANK_WRITERS))) -> Response:
    """Create a bank (curators, as ``POST /v1/banks``)."""
    _check_csrf(user, csrf_token)
    try:
        state(request).banks.create_bank(name.strip(), kind, description, shared=shared == "1",
                                         actor=f"console:{user.actor}")
    except ConsentryError as exc:
        status, _slug = consentry_error_status(exc)
        return _banks_page(request, user, error=str(exc), status=status)
    _refresh_index(request)
    return _see(f"/console/banks/{quote(name.strip(), safe='')}?done=created")


@router.post("/banks/test-match", response_class=HTMLResponse)
def test_match(request: Request, file: UploadFile = File(...), csrf_token: str = Form("", max_length=200),
               user: ConsoleUser = Depends(require_session(*BANK_WRITERS))) -> Response:
    """Hash an uploaded file and show which bank entries it matches (nothing is stored)."""
    from consentry.web.api.matching import _content_query
    from consentry.web.deps import read_upload, require_ready

    _check_csrf(user, csrf_token)
    st = state(request)
    try:
        content = read_upload(file, st.settings)
        q, query = _content_query(content, {"filename": (file.filename or "")[:200]})
        require_ready(st)  # 503 while the index is still loading
        _refresh_index(request)  # a curator testing a list just imported sees it at once
        outcome = st.matcher.match(q)
    except Problem:
        raise
    except ConsentryError as exc:
        status, _slug = consentry_error_status(exc)
        return _banks_page(request, user, error=f"could not test this file: {exc}", status=status)
    details = ctx.describe_matches(st.banks, [m.to_dict() for m in outcome.matches])
    return _banks_page(request, user, test={"query": query, "matches": details,
                                            "suppressed": len(outcome.suppressed)})


@router.get("/banks/{name}", response_class=HTMLResponse)
def bank_page(request: Request, name: str, after: int = Query(0, ge=0, le=MAX_DB_INT), status: str | None = Query(None),
              done: str | None = Query(None, max_length=40),
              user: ConsoleUser = Depends(require_session(*BANK_READERS))) -> Response:
    return _bank_page(request, user, name, after=after, entry_status=status,
                      message={"created": "Bank created.", "withdrawn": "Entry withdrawn: it stopped matching at once.",
                               }.get(done or ""))


def _bank_page(request: Request, user: ConsoleUser, name: str, *, after: int = 0, entry_status: str | None = None,
               message: str | None = None, error: str | None = None, code: int = 200,
               report: dict[str, Any] | None = None) -> Response:
    svc = state(request).banks
    bank = svc.get_bank(name)
    if entry_status not in (None, "", "active", "disabled", "withdrawn"):
        entry_status = None
    entries = svc.list_entries(name, status=entry_status or None, after_id=after, limit=100)
    # ``entry_status``, not ``status``: _page's ``status`` is the HTTP status code
    return _page(request, user, "console/bank.html", code, bank=bank, entries=entries, entry_status=entry_status or "",
                 next_after=entries[-1].id if len(entries) == 100 else None,
                 writer=user.role in BANK_WRITERS + ("admin",), formats=LIST_FORMATS, message=message, error=error,
                 report=report)


@router.post("/banks/{name}/import", response_class=HTMLResponse)
def import_list_form(request: Request, name: str, file: UploadFile = File(...), format: str = Form(..., max_length=10),
                     csrf_token: str = Form("", max_length=200),
                     user: ConsoleUser = Depends(require_session(*BANK_WRITERS))) -> Response:
    """Import a hash list file into the bank (as ``POST /v1/banks/{name}/import``)."""
    from consentry.banks.formats import get_format

    _check_csrf(user, csrf_token)
    if format not in LIST_FORMATS:
        return _bank_page(request, user, name, error=f"format must be one of: {', '.join(LIST_FORMATS)}", code=422)
    st = state(request)
    st.banks.get_bank(name)
    try:
        file.file.seek(0)
        report = st.banks.add_records(name, get_format(format).read(file.file, source_name=file.filename),
                                      added_by=f"console:{user.actor}")
    except ConsentryError as exc:
        status, _slug = consentry_error_status(exc)
        return _bank_page(request, user, name, error=f"the list could not be read: {exc}", code=status)
    _refresh_index(request)
    body = report.to_dict()
    body["error_records"] = [{"position": e.position, "error": e.message} for e in report.errors[:20]]
    return _bank_page(request, user, name, message="List imported.", report=body)


@router.post("/banks/{name}/entries/{entry_id}/withdraw")
def withdraw_entry_form(request: Request, name: str, entry_id: DbId, csrf_token: str = Form("", max_length=200),
                        user: ConsoleUser = Depends(require_session(*BANK_WRITERS))) -> Response:
    """Withdraw one entry: it stops matching at once (as the API's withdraw)."""
    _check_csrf(user, csrf_token)
    try:
        state(request).banks.set_status(name, "withdrawn", entry_id=entry_id, actor=f"console:{user.actor}")
    except ConsentryError as exc:
        status, _slug = consentry_error_status(exc)
        return _bank_page(request, user, name, error=str(exc), code=status)
    _refresh_index(request)
    return _see(f"/console/banks/{quote(name, safe='')}?done=withdrawn")


AUDIT_EXPORT_MAX = 50_000  # events one export may hold
AUDIT_AUTO_VERIFY = 20_000  # the chain is verified on every visit up to this many events


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, before: int = Query(0, ge=0, le=MAX_DB_INT),
               user: ConsoleUser = Depends(require_session(*AUDITORS))) -> Response:
    """The audit log newest first, filtered by event type, actor and time; the chain status on top."""
    db = state(request).banks.db
    log = AuditLog(db)
    f = ctx.AuditFilter.from_params(request.query_params)
    events = ctx.audit_events(db, f, before=before, limit=100)
    total = log.count()
    verify = log.verify() if request.query_params.get("verify") or total <= AUDIT_AUTO_VERIFY else None
    head_seq, head_hash = log.head()
    types, actors = ctx.audit_choices(db)
    return _page(request, user, "console/audit.html", events=events, af=f, event_type=f.event_type,
                 verify=verify, total=total, head_seq=head_seq, head_hash=head_hash, types=types, actors=actors,
                 next_before=events[-1].seq if len(events) == 100 else None)


@router.get("/audit/export")
def audit_export(request: Request, format: str = Query("csv", pattern="^(csv|json)$"),
                 user: ConsoleUser = Depends(require_session(*AUDITORS))) -> Response:
    """The filtered audit log (newest first, at most ``AUDIT_EXPORT_MAX`` events) as CSV or JSON."""
    import csv
    import io
    import json

    db = state(request).banks.db
    f = ctx.AuditFilter.from_params(request.query_params)
    events = ctx.audit_events(db, f, limit=AUDIT_EXPORT_MAX)
    AuditLog(db).record("audit.exported", user.actor, {"format": format, "events": len(events),
                                                        "filter": f.query()})
    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
               "Content-Disposition": f'attachment; filename="consentry-audit.{format}"'}
    if format == "json":
        return Response(json.dumps([e.to_dict() for e in events], indent=1), media_type="application/json",
                        headers=headers)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["seq", "at", "event_type", "actor", "data", "prev_hash", "hash"])

    def cell(v: str) -> str:  # no formula injection when opened in a spreadsheet
        return "'" + v if v[:1] in ("=", "+", "-", "@", "\t", "\r") else v
    for e in events:
        d = e.to_dict()
        w.writerow([d["seq"], d["at"], cell(d["event_type"]), cell(d["actor"]),
                    cell(json.dumps(d["data"], sort_keys=True)), d["prev_hash"], d["hash"]])
    return Response(buf.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)


# --------------------------------------------------------------------------- team leads
@router.get("/team", response_class=HTMLResponse)
def team_page(request: Request, day: str = Query("", max_length=10),
              user: ConsoleUser = Depends(require_session("curator"))) -> Response:
    """Per-reviewer daily summaries for a team lead (curator/admin): counts only, never content."""
    from datetime import datetime, timezone

    try:
        when = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=timezone.utc) if day else None
    except ValueError:
        when = None
    summary = ctx.daily_summary(review(request).cases.db, when)
    budget = review(request).exposure.today(user.actor).budget
    return _page(request, user, "console/team.html", summary=summary, budget=budget)
