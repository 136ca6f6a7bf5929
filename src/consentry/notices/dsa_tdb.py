"""A client for the DSA Transparency Database API (https://transparency.dsa.ec.europa.eu/page/api-documentation).

- ``POST /api/v1/statement``: one statement; ``201 Created`` with the stored statement (``uuid``).
- ``POST /api/v1/statements``: ``{"statements": [...]}``, at most 100; ``201`` with
  ``{"statements": [...]}``; on ``422`` *none* was created and ``errors`` is keyed
  ``statement_<i>``.
- A ``puid`` already in the database answers ``422`` with ``errors.puid`` and the ``existing``
  statement: treated as submitted (its uuid is kept), so a retry after a lost answer is safe.
- ``Authorization: Bearer <token>``, ``Accept`` and ``Content-Type: application/json``.

Configuration: ``CONSENTRY_DSA_TDB_URL`` (default the production base URL; the sandbox has its own)
and ``CONSENTRY_DSA_TDB_TOKEN``. Only an https URL is accepted, except ``http://127.0.0.1``/
``localhost`` (the test stand-in).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence
from urllib.parse import urlparse

import httpx

from consentry.errors import ConsentryError

PRODUCTION = "https://transparency.dsa.ec.europa.eu"
MAX_BATCH = 100


class TDBError(ConsentryError):
    code = "dsa_tdb_error"


class TDBAuthError(TDBError):
    """The token was refused: nothing can be sent until it is replaced (never counted per statement)."""


@dataclass
class SubmitResult:
    puid: str
    ok: bool
    uuid: str | None = None
    error: str | None = None
    existing: bool = False


class TDBClient:
    def __init__(self, base_url: str | None = None, token: str | None = None, *, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None):
        base = (base_url or os.environ.get("CONSENTRY_DSA_TDB_URL") or PRODUCTION).rstrip("/")
        u = urlparse(base)
        if u.scheme != "https" and not (u.scheme == "http" and u.hostname in ("127.0.0.1", "localhost", "::1")):
            raise TDBError("the Transparency Database URL must be https (http only for a local stand-in)")
        token = token or os.environ.get("CONSENTRY_DSA_TDB_TOKEN")
        if not token:
            raise TDBError("no API token: set CONSENTRY_DSA_TDB_TOKEN (generated in your Transparency Database profile)")
        self.base = base
        self._http = httpx.Client(timeout=timeout, transport=transport, follow_redirects=False,
                                  headers={"Authorization": f"Bearer {token}", "Accept": "application/json",
                                           "Content-Type": "application/json", "User-Agent": "consentry"})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "TDBClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        try:
            r = self._http.post(self.base + path, json=body)
        except httpx.HTTPError as exc:
            raise TDBError(f"cannot reach the Transparency Database: {exc}") from None
        if r.status_code == 401:
            raise TDBAuthError("the Transparency Database refused the API token (401): generate a new one")
        return r

    def submit(self, statement: dict[str, Any]) -> SubmitResult:
        r = self._post("/api/v1/statement", statement)
        return _result(statement.get("puid", ""), r.status_code, _json(r), None)

    def submit_many(self, statements: Sequence[dict[str, Any]]) -> list[SubmitResult]:
        """Submit in batches of 100. On a 422 for a batch (none created), each statement is retried
        alone so the valid ones go in and each failure keeps its own reason."""
        out: list[SubmitResult] = []
        for i in range(0, len(statements), MAX_BATCH):
            chunk = list(statements[i:i + MAX_BATCH])
            try:
                r = self._post("/api/v1/statements", {"statements": chunk})
            except TDBAuthError:
                raise
            except TDBError as exc:
                out += [SubmitResult(s.get("puid", ""), False, error=str(exc)) for s in chunk]
                continue
            data = _json(r)
            if r.status_code in (200, 201) and isinstance(data.get("statements"), list):
                made = {str(x.get("puid")): x for x in data["statements"] if isinstance(x, dict)}
                out += [SubmitResult(s.get("puid", ""), str(s.get("puid")) in made,
                                     uuid=made.get(str(s.get("puid")), {}).get("uuid"),
                                     error=None if str(s.get("puid")) in made else "not in the answer")
                        for s in chunk]
            elif r.status_code == 422 or len(chunk) > 1 and r.status_code < 500:
                for s in chunk:
                    try:
                        out.append(self.submit(s))
                    except TDBAuthError:
                        raise
                    except TDBError as exc:
                        out.append(SubmitResult(s.get("puid", ""), False, error=str(exc)))
            else:
                out += [SubmitResult(s.get("puid", ""), False, error=f"HTTP {r.status_code}") for s in chunk]
        return out


def _json(r: httpx.Response) -> dict[str, Any]:
    try:
        d = r.json()
    except ValueError:
        return {}
    return d if isinstance(d, dict) else {}


def _result(puid: str, status: int, data: dict[str, Any], _: Any) -> SubmitResult:
    if status in (200, 201):
        return SubmitResult(puid, True, uuid=data.get("uuid"))
    existing = data.get("existing")
    if status == 422 and isinstance(existing, dict) and existing.get("uuid"):
        return SubmitResult(puid, True, uuid=existing.get("uuid"), existing=True)
    errors = data.get("errors")
    msg = data.get("message") or f"HTTP {status}"
    if isinstance(errors, dict):
        msg += ": " + "; ".join(f"{k}: {' '.join(map(str, v)) if isinstance(v, list) else v}"
                                for k, v in list(errors.items())[:10])
    return SubmitResult(puid, False, error=msg[:2000])
