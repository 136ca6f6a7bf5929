"""``/``: a small public page saying what this instance is, with links to its doors (the review
console, the victim page, the API reference, the health check). Nothing about the instance's
banks, keys or users is shown, and like the victim page it loads nothing from any other site."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from consentry import __version__
from consentry.web.auth import public
from consentry.web.deps import state
from consentry.web.pages import templates
from consentry.web.pages.victim import public_context

router = APIRouter(tags=["landing page"])

CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'none'; base-uri 'none'; "
       "frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"}


@router.get("/", response_class=HTMLResponse, include_in_schema=False,
            dependencies=[Depends(public("the landing page only names the service and links to its doors"))])
def landing_page(request: Request) -> HTMLResponse:
    settings = state(request).settings
    context = public_context(request, "/")
    context.update(version=__version__, victim_page=bool(settings.victim_hub_bank))
    return templates.TemplateResponse(request, "landing/index.html", context, headers=dict(
        HEADERS, **{"Content-Language": context["_"].lang, "Vary": "Accept-Language"}))
