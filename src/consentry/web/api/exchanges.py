"""Exchanges (issue 13): status of each exchange and its feedback outbox, for curators and
auditors. Never credentials: those are write-only (CLI ``exchange add`` / ``rotate-credentials``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request

from consentry.errors import ConsentryError
from consentry.web.auth import require
from consentry.web.deps import MAX_DB_INT
from consentry.web.problems import Problem

router = APIRouter(prefix="/v1", tags=["exchanges"])
READERS = ("curator", "auditor")
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"


def _store(request: Request):
    from consentry.exchanges.base import ExchangeStore

    st = request.app.state.consentry
    return ExchangeStore(st.banks, st.settings)


@router.get("/exchanges", summary="Exchanges: checkpoint, last success, last pull's adds/removals, errors, staleness")
def list_exchanges(request: Request, _p=Depends(require(*READERS))) -> dict[str, Any]:
    from consentry.exchanges.programs import describe_all

    return {"exchanges": describe_all(_store(request))}


@router.get("/exchanges/{name}", summary="One exchange (never its credentials)")
def get_exchange(request: Request, name: str = Path(..., pattern=_NAME), _p=Depends(require(*READERS))) -> dict[str, Any]:
    from consentry.exchanges.programs import describe

    try:
        return describe(_store(request), name)
    except ConsentryError:
        raise Problem(404, "not-found", f"no exchange named {name!r}") from None


@router.get("/exchanges/{name}/feedback", summary="The exchange's feedback outbox (hashes and statuses only)")
def list_feedback(
    request: Request,
    name: str = Path(..., pattern=_NAME),
    state: str | None = Query(None, pattern="^(pending|sent|failed|cancelled)$"),
    cursor: int = Query(0, ge=0, le=MAX_DB_INT),
    limit: int = Query(100, ge=1, le=1000),
    _p=Depends(require(*READERS)),
) -> dict[str, Any]:
    from consentry.exchanges.feedback import list_outbox
    from consentry.exchanges.programs import describe

    store = _store(request)
    try:
        describe(store, name)
    except ConsentryError:
        raise Problem(404, "not-found", f"no exchange named {name!r}") from None
    items = list_outbox(store, name, state, after_id=cursor, limit=limit)
    return {"items": [i.to_dict() for i in items], "next_cursor": items[-1].id if len(items) == limit else None}
