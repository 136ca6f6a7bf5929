"""Bearer API-key authentication and per-route role checks."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from consentry.db.models import ROLES
from consentry.keys import KeyInfo
from consentry.web.problems import Problem


@dataclass(frozen=True)
class Principal:
    key: KeyInfo

    @property
    def role(self) -> str:
        return self.key.role

    @property
    def key_id(self) -> int:
        return self.key.id


#: Declares the scheme in the OpenAPI document (components.securitySchemes and ``security`` on every
#: authenticated operation), so /docs can send a key; the checks below stay ours (problem+json).
_BEARER = HTTPBearer(auto_error=False, scheme_name="bearer",
                     description="An API key: `Authorization: Bearer cst_...` (`consentry keys create ROLE`)")


async def _authenticate(request: Request,
                        _declared: HTTPAuthorizationCredentials | None = Depends(_BEARER)) -> Principal:
    # async, as every dependency on the lookup path: a sync one costs a hop to the thread pool
    # per request (issue 20.5); the database is only read, in a thread, for a key not cached
    header = request.headers.get("authorization", "")
    cached = request.scope.get("state", {}).get(_VERIFIED)
    if cached is not None and cached[0] == header:  # verified by AuthFirstMiddleware
        return Principal(cached[1])
    token = _bearer_token(header)
    if token is None:
        raise Problem(401, "unauthenticated", _NO_KEY, headers={"WWW-Authenticate": _CHALLENGE})
    info = await _verify(request.app.state.keys, token)
    if info is None:
        raise Problem(401, "unauthenticated", _BAD_KEY, headers={"WWW-Authenticate": _CHALLENGE_INVALID})
    return Principal(info)


_VERIFIED = "consentry_verified_key"  # scope["state"] key: (Authorization header, KeyInfo)
_NO_KEY = "send an API key as 'Authorization: Bearer <key>'"
_BAD_KEY = "unknown or revoked API key"
_CHALLENGE = 'Bearer realm="consentry"'
_CHALLENGE_INVALID = 'Bearer realm="consentry", error="invalid_token"'


async def _verify(keys, token: str):
    """``keys.verify(token)``, from the cache in the event loop or else in a worker thread."""
    found, info = keys.cached(token)
    if found:
        return info
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(keys.verify, token)


def _bearer_token(header: str) -> str | None:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class AuthFirstMiddleware:
    """Authenticate API requests *before* their body is received.

    FastAPI parses form bodies (multipart uploads of up to ``max_upload_bytes``) before it runs
    any dependency, so an anonymous client could make the server receive and spool a large upload
    only to be told 401. For every ``/v1/...`` route that is not public by design (see
    :func:`public`), this checks the Authorization header's key and answers 401 problem+json
    without reading the body. A verified key is kept in ``scope["state"]`` so the route's
    dependency does not verify it again; the per-route role check (403) is unchanged.
    """

    PREFIX = "/v1/"

    def __init__(self, app):
        self.app = app
        self._public = None  # compiled path patterns of public routes, built on first use

    def _public_patterns(self, app) -> list:
        if self._public is None:
            from consentry.web.app import iter_api_routes

            patterns = []
            for route in iter_api_routes(getattr(app, "routes", [])):
                if any(getattr(dep.call, "public_reason", None) for dep in route.dependant.dependencies):
                    patterns.append(route.path_regex)
            self._public = patterns
        return self._public

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith(self.PREFIX) or scope.get("method") == "OPTIONS":
            return await self.app(scope, receive, send)
        if any(p.match(path) for p in self._public_patterns(scope.get("app") or self.app)):
            return await self.app(scope, receive, send)
        from consentry.web.problems import problem_response

        header = ""
        for name, value in scope.get("headers") or []:
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        token = _bearer_token(header)
        if token is None:
            return await problem_response(401, "unauthenticated", _NO_KEY, path,
                                          {"WWW-Authenticate": _CHALLENGE})(scope, receive, send)
        keys = scope["app"].state.keys
        info = await _verify(keys, token)
        if info is None:
            return await problem_response(401, "unauthenticated", _BAD_KEY, path,
                                          {"WWW-Authenticate": _CHALLENGE_INVALID})(scope, receive, send)
        scope.setdefault("state", {})[_VERIFIED] = (header, info)
        return await self.app(scope, receive, send)


def require(*roles: str):
    """A dependency that admits the given roles (``admin`` is always admitted)."""
    for r in roles:
        if r not in ROLES:
            raise ValueError(f"unknown role {r!r}")
    allowed = frozenset(roles) | {"admin"}

    async def dependency(principal: Principal = Depends(_authenticate)) -> Principal:
        if principal.role not in allowed:
            raise Problem(403, "forbidden",
                          f"role {principal.role!r} may not do this; allowed: {', '.join(sorted(allowed))}")
        return principal

    dependency.allowed_roles = allowed  # type: ignore[attr-defined]  (read by tests and docs)
    return dependency


def public(reason: str):
    """A dependency marking a route as deliberately open to anonymous callers (the victim page and
    its API). ``reason`` is read by the route-enumeration test and the docs."""
    if not reason:
        raise ValueError("a public route must say why it is public")

    async def dependency() -> None:
        return None

    dependency.public_reason = reason  # type: ignore[attr-defined]
    return dependency


# Role sets used by the routers (one place to read who may do what).
READ_BANKS = ("curator", "moderator", "auditor")
WRITE_BANKS = ("curator",)
#: ``partner`` keys match against published banks only and see no internal provenance
#: (web/api/matching.py); ``matcher`` is the platform's own upload path and sees every bank.
MATCHERS = ("matcher", "curator", "moderator", "partner", "uploader")
HASHERS = ("matcher", "curator", "moderator", "submitter", "uploader")  # not partner: no hashing of others' data
#: The change log and feedback: ``partner`` keys (subscribed instances) and, for keys issued before
#: the partner role existed, ``matcher`` keys; both see published banks only.
CHANGES = ("curator", "partner", "matcher")
FEEDBACK = ("curator", "partner", "matcher")
#: The content ledger (issue 14): ``uploader`` is the platform's upload path (it also hashes and
#: matches); reviewers and auditors read ledger entries and sweep hits.
CONTENT_WRITERS = ("uploader",)
CONTENT_READERS = ("uploader", "curator", "moderator", "auditor")
#: Notices (issue 14 points 3-4): a platform's own notice form sends them with its ``uploader`` key
#: (a victim hub with its ``submitter`` key); moderators and curators decide; auditors read.
NOTICE_SENDERS = ("uploader", "submitter")
NOTICE_REVIEWERS = ("moderator", "curator")
NOTICE_READERS = ("moderator", "curator", "auditor")
#: Statements of reasons: the platform records its own restrictions and reads the uploader's text.
STATEMENT_WRITERS = ("uploader", "moderator", "curator")
STATEMENT_READERS = ("uploader", "moderator", "curator", "auditor")
#: Roles limited to what the hub publishes.
PUBLISHED_ONLY = ("partner",)
