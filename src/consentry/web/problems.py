"""RFC 9457 problem+json for every error; never a stack trace."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from consentry.errors import ConsentryError, CorruptMedia, MediaTooLarge, SignalValueError, UnsupportedMedia

log = logging.getLogger("consentry.web")
PROBLEM_BASE = "https://consentry.dev/problems/"
MEDIA_TYPE = "application/problem+json"

_TITLES = {
    400: "Bad request", 401: "Authentication required", 403: "Forbidden", 404: "Not found",
    405: "Method not allowed", 409: "Conflict", 413: "Content too large", 415: "Unsupported media type",
    422: "Unprocessable content", 429: "Too many requests", 500: "Internal server error",
    503: "Service unavailable", 504: "Gateway timeout",
}


class Problem(Exception):
    """Raise anywhere in a request to answer with a problem document."""

    def __init__(self, status: int, type_: str, detail: str, headers: dict[str, str] | None = None,
                 **extra: Any):
        super().__init__(detail)
        self.status, self.type, self.detail, self.headers, self.extra = status, type_, detail, headers, extra


def problem_response(status: int, type_: str, detail: str, instance: str | None = None,
                     headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body = {"type": PROBLEM_BASE + type_, "title": _TITLES.get(status, "Error"), "status": status,
            "detail": detail}
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


_SLUG = {400: "bad-request", 401: "unauthenticated", 403: "forbidden", 404: "not-found",
         405: "method-not-allowed", 409: "conflict", 413: "too-large", 415: "unsupported-media",
         422: "unprocessable", 429: "rate-limited", 503: "unavailable", 504: "timeout"}


def consentry_error_status(exc: ConsentryError) -> tuple[int, str]:
    from consentry.banks.service import BankError, Conflict, NotFound

    if isinstance(exc, NotFound):
        return 404, "not-found"
    if isinstance(exc, Conflict):
        return 409, "conflict"
    if isinstance(exc, MediaTooLarge):
        return 422, "media-too-large"
    if isinstance(exc, (CorruptMedia, UnsupportedMedia)):
        return 422, "bad-media"
    if isinstance(exc, SignalValueError):
        return 422, "bad-signal-value"
    if isinstance(exc, BankError):
        return 422, "bad-request"
    return 422, exc.code.replace("_", "-")


def error_response(exc: Exception, path: str, method: str = "") -> JSONResponse:
    """The problem document for an exception raised while answering ``path`` (a ``Problem``, a
    ``ConsentryError``, or anything else: a logged 500)."""
    if isinstance(exc, Problem):
        return problem_response(exc.status, exc.type, exc.detail, path, exc.headers, **exc.extra)
    if isinstance(exc, ConsentryError):
        status, slug = consentry_error_status(exc)
        return problem_response(status, slug, str(exc), path)
    log.error("unhandled error on %s %s", method, path, exc_info=exc)
    return problem_response(500, "internal", "an internal error occurred; it has been logged", path)


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem):
        return error_response(exc, request.url.path)

    @app.exception_handler(ConsentryError)
    async def _consentry(request: Request, exc: ConsentryError):
        return error_response(exc, request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "Error")
        return problem_response(exc.status_code, _SLUG.get(exc.status_code, "error"), detail,
                                request.url.path, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        errors = [{"loc": [str(x) for x in e.get("loc", ())], "msg": str(e.get("msg", ""))[:200]}
                  for e in exc.errors()[:20]]
        return problem_response(422, "validation", "the request is not valid", request.url.path,
                                errors=errors)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        return error_response(exc, request.url.path, request.method)
