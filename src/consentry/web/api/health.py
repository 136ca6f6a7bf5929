from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from consentry import __version__
from consentry.web.deps import state

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness")
def healthz() -> dict:
    return {"status": "ok", "version": __version__}


@router.get("/readyz", summary="Readiness: the index is loaded and current")
def readyz(request: Request):
    st = state(request)
    m = st.matcher
    if not m.loaded:
        return JSONResponse({"status": "loading"}, status_code=503)
    m.refresh()
    db_cursor = st.banks.change_cursor()
    lag = max(0, db_cursor - m.cursor)
    body = {"status": "ok" if lag == 0 else "catching_up", "cursor": m.cursor, "lag": lag, **m.stats()}
    return JSONResponse(body, status_code=200 if lag == 0 else 503)
