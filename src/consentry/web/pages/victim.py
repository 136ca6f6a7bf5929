"""The victim pages: ``/submit`` (hash images in the browser, send only hashes) and ``/case``
(status and withdrawal with case number + PIN). Public by design; no login, no cookies.

Everything the pages need is served from ``/static/victim/`` (no CDN, no external resource), and
a strict Content-Security-Policy keeps it so: scripts, styles and requests go to this origin
only, images only from local ``blob:`` URLs (the thumbnails never leave the browser).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from consentry.i18n import translator_for
from consentry.i18n.instance import load_operator, support_for
from consentry.victims.cases import PIN_MAX, PIN_MIN
from consentry.victims.hub import minor_links
from consentry.web.api import victims as victims_api
from consentry.web.auth import public
from consentry.web.deps import state
from consentry.web.pages import templates

router = APIRouter(tags=["victim pages"])
router.include_router(victims_api.router)

_PUBLIC = public("the victim page is for people without an account; it sends hashes only")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; media-src blob:; "
       "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
           "X-Content-Type-Options": "nosniff", "Permissions-Policy": "camera=(), microphone=(), geolocation=()"}


def public_context(request: Request, path: str) -> dict[str, Any]:
    """What every public page's template needs: the translator ``_`` (language from ``?lang=``,
    then ``Accept-Language``), the page's path for the language switcher, and the operator's
    details. The chosen language travels in links only (these pages set no cookies)."""
    _ = translator_for(request.headers.get("accept-language"), request.query_params.get("lang"))
    settings = state(request).settings
    return {"_": _, "path": path, "op": load_operator(settings.home, _.lang)}


def _render(request: Request, name: str, path: str, title_key: str) -> HTMLResponse:
    s = state(request).settings
    context = public_context(request, path)
    _ = context["_"]
    headers = dict(HEADERS, **{"Content-Language": _.lang, "Vary": "Accept-Language"})
    if not s.victim_hub_bank:
        return HTMLResponse(f"<!doctype html><html lang=\"{_.lang}\" dir=\"{_.dir}\"><title>{_('common.not_found')}"
                            f"</title><p>{_('common.no_victim_service')}</p></html>", status_code=404, headers=headers)
    context.update(title=_(title_key), minor_text=s.victim_minor_text, minor_links=minor_links(s.victim_minor_links),
                   pin_min=PIN_MIN, pin_max=PIN_MAX, max_items=s.victim_max_hashes,
                   support=support_for(s.home, _.lang, request.query_params.get("country")))
    if name == "submit.html":
        context["canonical"] = canonical_config()
    return templates.TemplateResponse(request, f"victim/{name}", context, headers=headers)


def canonical_config() -> dict[str, Any]:
    """The sub-crop windows and turns of the server's stored canonical variants (issue 21), for
    the page's ``canonical.js`` to compute the same ones."""
    from consentry.signals.canonical import STORED_MAX_SIDE, STORED_ROTATIONS, SUBCROPS_CORNERS

    return {"windows": [[fraction, [list(a) for a in anchors]] for fraction, anchors in SUBCROPS_CORNERS],
            "rotations": list(STORED_ROTATIONS), "maxSide": STORED_MAX_SIDE}


@router.get("/submit", response_class=HTMLResponse, include_in_schema=False, dependencies=[Depends(_PUBLIC)])
def submit_page(request: Request) -> HTMLResponse:
    return _render(request, "submit.html", "/submit", "submit.page_title")


@router.get("/case", response_class=HTMLResponse, include_in_schema=False, dependencies=[Depends(_PUBLIC)])
def case_page(request: Request) -> HTMLResponse:
    return _render(request, "case.html", "/case", "case.page_title")
