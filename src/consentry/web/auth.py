"""Bearer API-key authentication and per-route role checks."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Depends, Request

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


def _authenticate(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(401, "unauthenticated", "send an API key as 'Authorization: Bearer <key>'",
                      headers={"WWW-Authenticate": 'Bearer realm="consentry"'})
    info = request.app.state.keys.verify(token.strip())
    if info is None:
        raise Problem(401, "unauthenticated", "unknown or revoked API key",
                      headers={"WWW-Authenticate": 'Bearer realm="consentry", error="invalid_token"'})
    return Principal(info)


def require(*roles: str):
    """A dependency that admits the given roles (``admin`` is always admitted)."""
    for r in roles:
        if r not in ROLES:
            raise ValueError(f"unknown role {r!r}")
    allowed = frozenset(roles) | {"admin"}

    def dependency(principal: Principal = Depends(_authenticate)) -> Principal:
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

    def dependency() -> None:
        return None

    dependency.public_reason = reason  # type: ignore[attr-defined]
    return dependency


# Role sets used by the routers (one place to read who may do what).
READ_BANKS = ("curator", "moderator", "auditor")
WRITE_BANKS = ("curator",)
MATCHERS = ("matcher", "curator", "moderator")
HASHERS = ("matcher", "curator", "moderator", "submitter")
CHANGES = ("curator", "matcher")  # matchers (partner platforms) see published banks only
