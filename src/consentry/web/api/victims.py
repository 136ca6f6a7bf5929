"""Victim hub routes: public case submission/status/withdrawal, and partner feedback.

The three ``/v1/victim/...`` routes are public by design (a victim has no account): they take
hashes only, as JSON of at most :data:`MAX_BODY` bytes, are rate-limited per client IP and per
case (wrong PINs lock the case, see :mod:`consentry.victims.cases`), answer ``no-store``, and are
never logged with the client address or the case number (:class:`RedactVictimPaths`).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from consentry.limits_store import LimitStore
from consentry.victims.cases import (
    MAX_VARIANTS,
    WRONG,
    BadSubmission,
    CaseLocked,
    MinorRefused,
    SubmittedMedia,
    VictimCases,
    VictimError,
    WrongCredentials,
    case_key,
)
from consentry.victims.hub import FeedbackItem, minor_links, record_feedback
from consentry.web.auth import FEEDBACK, Principal, public, require
from consentry.web.deps import MAX_DB_INT, state
from consentry.web.limits import RateLimiter
from consentry.web.problems import Problem

router = APIRouter(prefix="/v1", tags=["victims"])
MAX_BODY = 4 * 1024 * 1024
_PUBLIC = public("victims have no account: hashes only, rate-limited per IP and per case, PIN-protected")
_NO_STORE = {"Cache-Control": "no-store"}


# ---------------------------------------------------------------- logging
class RedactVictimPaths(logging.Filter):
    """Access-log lines for victim routes lose the client address and the case number."""

    PREFIXES = ("/v1/victim/", "/submit", "/case")

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) \
                and args[2].startswith(self.PREFIXES):
            path = args[2]
            if path.startswith("/v1/victim/cases/"):
                tail = path.rsplit("/", 1)[-1]
                path = "/v1/victim/cases/-/" + (tail if tail in ("status", "withdraw") else "-")
            record.args = ("-", args[1], path.split("?", 1)[0]) + tuple(args[3:])
        return True


def install_log_redaction() -> None:
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactVictimPaths) for f in logger.filters):
        logger.addFilter(RedactVictimPaths())


install_log_redaction()


# ---------------------------------------------------------------- state
class _VictimState:
    def __init__(self, request: Request):
        st = state(request)
        s = st.settings
        self.cases = VictimCases(st.banks, s)
        # shared by every worker and host through the database, kept across restarts (issue 23)
        store = LimitStore(st.banks.db)
        per_hour = max(s.victim_submissions_per_hour, 0)
        self.submit_ip = RateLimiter(per_hour / 3600.0, burst=max(1.0, min(per_hour, max(5.0, per_hour / 4))),
                                     store=store, scope="victim_submit_ip")
        per_min = max(s.victim_lookups_per_minute, 0)
        self.lookup_ip = RateLimiter(per_min / 60.0, burst=max(1.0, min(per_min, max(10.0, per_min / 4))),
                                     store=store, scope="victim_lookup_ip")
        # per case number, whoever asks
        self.lookup_case = RateLimiter(10 / 60.0, burst=10.0, store=store, scope="victim_lookup_case")


_state_lock = threading.Lock()


def _victims(request: Request) -> _VictimState:
    app_state = request.app.state
    with _state_lock:
        vs = getattr(app_state, "victims", None)
        if vs is None:
            vs = app_state.victims = _VictimState(request)
    if not state(request).settings.victim_hub_bank:
        raise Problem(404, "not-found", "this instance does not accept victim submissions")
    return vs


def _check(limiter: RateLimiter, key: str, what: str) -> None:
    wait = limiter.check(key)  # local memory is bounded in the limiter
    if wait > 0:
        raise Problem(429, "rate-limited", f"too many {what}; please wait and try again",
                      headers={"Retry-After": str(max(1, int(wait + 0.999)))})


def _ip(request: Request) -> str:
    return request.client.host if request.client else "-"


async def _json_body(request: Request) -> bytes:
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY:
            raise Problem(413, "too-large", f"the request is over {MAX_BODY} bytes")
    return bytes(data)


def _parse(model: type[BaseModel], body: bytes) -> Any:
    try:
        return model.model_validate_json(body or b"{}")
    except ValidationError as exc:
        errors = [{"loc": [str(x) for x in e.get("loc", ())], "msg": str(e.get("msg", ""))[:200]}
                  for e in exc.errors()[:20]]
        raise Problem(422, "validation", "the request is not valid", errors=errors) from None


def _refresh(request: Request) -> None:
    m = state(request).matcher
    if m.loaded:
        m.refresh()


def _victim_problem(exc: VictimError, request: Request) -> Problem:
    if isinstance(exc, MinorRefused):
        s = state(request).settings
        return Problem(422, "under-18", str(exc),
                       guidance={"text": s.victim_minor_text, "links": minor_links(s.victim_minor_links)})
    if isinstance(exc, (WrongCredentials, CaseLocked)):  # a locked case must look like an unknown one
        return Problem(403, "wrong-case-or-pin", WRONG)
    if isinstance(exc, BadSubmission):
        return Problem(422, "bad-submission", str(exc))
    return Problem(422, "victim-error", str(exc))


# ---------------------------------------------------------------- bodies
class VictimVariant(BaseModel):
    """One canonical PDQ variant of a picture, computed on the device (issue 21); the kinds are
    checked in :meth:`consentry.victims.cases.SubmittedMedia.variants`."""

    model_config = ConfigDict(extra="forbid")
    kind: str = Field(max_length=32)
    pdq: str = Field(max_length=80)
    quality: int = Field(ge=0, le=100)


class VictimItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["photo", "video"] | None = None
    md5: str | None = Field(None, max_length=64)
    pdq: str | None = Field(None, max_length=80)
    pdq_quality: int | None = Field(None, ge=0, le=100)
    vpdq: list[str] | None = Field(None, max_length=20_000)
    pdq_variants: list[VictimVariant] | None = Field(None, max_length=MAX_VARIANTS)


class CaseSubmission(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = 1
    items: list[VictimItem] = Field(max_length=1000)
    pin: str = Field(max_length=64)
    depicted_adult: bool | None = None


class CaseAccess(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pin: str = Field(max_length=64)


class FeedbackBodyItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["pending_review", "blocked", "not_blocked"]
    signal_type: str | None = Field(None, max_length=32)
    value: str | None = Field(None, max_length=200_000)
    entry_id: int | None = Field(None, ge=0, le=MAX_DB_INT)


class FeedbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[FeedbackBodyItem] = Field(max_length=1000)


# ---------------------------------------------------------------- routes
@router.post("/victim/cases", status_code=201, summary="Submit a victim case (hashes only; public)",
             dependencies=[Depends(_PUBLIC)])
async def submit_case(request: Request) -> JSONResponse:
    vs = _victims(request)
    _check(vs.submit_ip, _ip(request), "submissions from this network")
    body = _parse(CaseSubmission, await _json_body(request))
    media = [SubmittedMedia(i.md5, i.pdq, i.pdq_quality, i.vpdq,
                            None if i.pdq_variants is None else [v.model_dump() for v in i.pdq_variants])
             for i in body.items]
    try:
        result = await run_in_threadpool(vs.cases.submit, media, body.pin, depicted_adult=body.depicted_adult)
    except VictimError as exc:
        raise _victim_problem(exc, request) from None
    _refresh(request)
    out = result.to_dict()
    out["warnings"] = _quality_warnings(body.items)
    return JSONResponse(out, status_code=201, headers=_NO_STORE)


def _quality_warnings(items: list[VictimItem]) -> list[dict[str, str]]:
    """Weak hashes in a submission (as on the other routes: ``{code, message}``), numbered by item."""
    from consentry.web.api.quality import pdq_warnings, vpdq_warnings

    out: list[dict[str, str]] = []
    for n, item in enumerate(items, 1):
        found = (pdq_warnings(item.pdq_quality, "stored") if item.pdq else []) + \
            (vpdq_warnings(item.vpdq, "stored") if item.vpdq else [])
        out += [{"code": w["code"], "message": f"item {n}: {w['message']}"} for w in found]
    return out[:100]


async def _case_call(request: Request, case: str, action: str) -> JSONResponse:
    vs = _victims(request)
    _check(vs.lookup_ip, _ip(request), "requests from this network")
    _check(vs.lookup_case, case_key(case), "requests for this case")  # O/I/L, case, dashes: one key
    body = _parse(CaseAccess, await _json_body(request))
    fn = vs.cases.status if action == "status" else vs.cases.withdraw
    try:
        status = await run_in_threadpool(fn, case, body.pin)
    except VictimError as exc:
        raise _victim_problem(exc, request) from None
    if action == "withdraw":
        _refresh(request)
    return JSONResponse(status.to_dict(), headers=_NO_STORE)


@router.post("/victim/cases/{case}/status", summary="A case's status (PIN in the body; public)",
             dependencies=[Depends(_PUBLIC)])
async def case_status(request: Request, case: str) -> JSONResponse:
    return await _case_call(request, case, "status")


@router.post("/victim/cases/{case}/withdraw", summary="Withdraw a case (PIN in the body; public)",
             dependencies=[Depends(_PUBLIC)])
async def withdraw_case(request: Request, case: str) -> JSONResponse:
    return await _case_call(request, case, "withdraw")


@router.post("/feedback", summary="Partner feedback per hash: pending_review, blocked, not_blocked")
def feedback(request: Request, body: FeedbackBody, p: Principal = Depends(require(*FEEDBACK))) -> dict:
    items = [FeedbackItem(i.status, i.signal_type, i.value, i.entry_id) for i in body.items]
    try:
        report = record_feedback(state(request).banks, p.key_id, items)
    except BadSubmission as exc:
        raise Problem(422, "bad-submission", str(exc)) from None
    return report.to_dict()
