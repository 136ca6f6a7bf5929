"""The transparency report over HTTP (issue 15): ``GET /v1/reports/transparency``.

The same core as ``consentry report transparency`` (:func:`consentry.reports.transparency.compute`),
for ``auditor`` keys (and ``admin``). Aggregate figures only; the PDF is made by the command line.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from consentry.reports.transparency import TransparencyError, compute, parse_day, period
from consentry.web.auth import Principal, require
from consentry.web.deps import state
from consentry.web.problems import Problem

router = APIRouter(prefix="/v1", tags=["reports"])


@router.get("/reports/transparency", summary="Transparency report of a period: JSON, CSV or HTML",
            response_model=None)
def transparency(request: Request,
                 from_: str = Query(..., alias="from", max_length=10, description="First day, YYYY-MM-DD (UTC)"),
                 to: str = Query(..., max_length=10, description="Last day, YYYY-MM-DD (UTC, included)"),
                 format: Literal["json", "csv", "html"] = Query("json"),
                 _p: Principal = Depends(require("auditor"))) -> Response:
    try:
        start, end = period(parse_day(from_, "from"), parse_day(to, "to"))
    except TransparencyError as exc:
        raise Problem(422, "invalid-period", str(exc)) from None
    figs = compute(state(request).banks.db, start, end)
    if format == "csv":
        return Response(figs.to_csv(), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="transparency.csv"'})
    if format == "html":
        from consentry import __version__
        from consentry.reports.transparency_render import render_html

        return HTMLResponse(render_html(figs, version=__version__), headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})
    return JSONResponse(figs.to_dict())
