"""Shared request helpers: app state access and reading uploads within limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Path as PathParam
from fastapi import Request, UploadFile

from consentry.banks.matcher import Matcher
from consentry.banks.service import BankService
from consentry.config import Settings
from consentry.keys import KeyStore
from consentry.media.content import Content
from consentry.web.limits import MatchLogWriter, RateLimiter
from consentry.web.problems import Problem


@dataclass
class AppState:
    settings: Settings
    banks: BankService
    matcher: Matcher
    keys: KeyStore
    match_log: MatchLogWriter
    rate_limiter: RateLimiter


def state(request: Request) -> AppState:
    return request.app.state.consentry


def read_upload(file: UploadFile, settings: Settings) -> Content:
    """The uploaded file as ``Content`` (never stored beyond the request)."""
    limit = settings.max_upload_bytes
    data = file.file.read(limit + 1)
    if len(data) > limit:
        raise Problem(413, "too-large", f"upload is over the limit of {limit} bytes")
    if not data:
        raise Problem(422, "bad-media", "the uploaded file is empty")
    return Content.from_bytes(data, settings.limits)


def rate_limit(st: AppState, key_id: int, what: str = "requests") -> None:
    """The per-key limit (``CONSENTRY_MATCH_RATE_LIMIT``) shared by the match, hash and analyze
    routes: 429 with ``Retry-After`` when the key's bucket is empty."""
    wait = st.rate_limiter.check(key_id)
    if wait > 0:
        raise Problem(429, "rate-limited", f"too many {what} for this key",
                      headers={"Retry-After": str(max(1, int(wait + 0.999)))})


def require_ready(st: AppState) -> None:
    if not st.matcher.loaded:
        raise Problem(503, "unavailable", "the index is still loading; retry shortly",
                      headers={"Retry-After": "2"})


#: Ids and cursors are 64-bit database integers: larger values are refused with a 422 up front
#: (SQLite cannot even bind them).
MAX_DB_INT = 2**63 - 1
DbId = Annotated[int, PathParam(ge=0, le=MAX_DB_INT, description="A database id")]
