"""The public notice form ``/report`` (issue 14): no account, plain language, no script, nothing
loaded from another site, no cookies; the victim pages' privacy rules (the access log keeps
neither the client address nor the path of ``/report``; the notice row never holds an address:
the per-address rate limit keeps only a SHA-256 digest, deleted once the bucket refills).

Texts come from the public pages' catalogs (``consentry.i18n``) plus the form's own
(``consentry/notices/messages/<lang>.yaml``, English filling gaps).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from consentry.i18n import DEFAULT, Translator, catalog, negotiate
from consentry.i18n.instance import load_operator
from consentry.db.models import utcnow
from consentry.notices import NoticeError, NoticeInput, NoticeInvalid, NoticeNotFound, Receipt
from consentry.web.api.notices import limiter, notices
from consentry.web.auth import public
from consentry.web.deps import state
from consentry.web.pages import templates

router = APIRouter(tags=["notice form"])

_PUBLIC = public("the notice form is for anyone, with no account (TAKE IT DOWN Act, DSA Art. 16)")
MESSAGES = Path(__file__).resolve().parents[2] / "notices" / "messages"
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; "
       "frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
           "X-Content-Type-Options": "nosniff", "Permissions-Policy": "camera=(), microphone=(), geolocation=()"}
MAX_FORM_BYTES = 21 * 1024 * 1024


@lru_cache(maxsize=None)
def notice_catalog(lang: str) -> dict[str, Any]:
    path = MESSAGES / f"{lang}.yaml"
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {k: v for k, v in data.items() if isinstance(v, str)}


class NoticeTranslator(Translator):
    """The public pages' translator with the form's messages (English filling gaps)."""

    def __post_init__(self) -> None:
        self._messages = {**catalog(self.lang), **notice_catalog(self.lang)}

    def _raw(self, key: str) -> Any:
        value = self._messages.get(key)
        if value is None:
            value = notice_catalog(DEFAULT).get(key) or catalog(DEFAULT).get(key)
        if value is None:
            raise KeyError(f"no message {key!r}")
        return value


def _translator(request: Request, lang: str | None = None) -> NoticeTranslator:
    requested = lang or request.query_params.get("lang")
    code = negotiate(request.headers.get("accept-language"), requested)
    chosen = bool(requested) and requested.strip().split("-")[0].lower() == code
    return NoticeTranslator(code, chosen=chosen)


def _render(request: Request, name: str, status: int = 200, lang: str | None = None, **context: Any) -> HTMLResponse:
    _ = _translator(request, lang)
    headers = dict(HEADERS, **{"Content-Language": _.lang, "Vary": "Accept-Language"})
    ctx = {"_": _, "path": "/report", "op": load_operator(state(request).settings.home, _.lang),
           "title": _("report.page_title"), "form": {}, "errors": {}, **context}
    return templates.TemplateResponse(request, f"notice/{name}", ctx, status_code=status, headers=headers)


@router.get("/report", response_class=HTMLResponse, include_in_schema=False, dependencies=[Depends(_PUBLIC)])
def report_page(request: Request) -> HTMLResponse:
    regime = request.query_params.get("regime")
    return _render(request, "report.html", form={"regime": regime if regime in ("take_it_down", "dsa_art16")
                                                  else "take_it_down", "category": "ncii"})


def _client(request: Request) -> str:
    return request.client.host if request.client else "-"


async def _form(request: Request) -> Any:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_FORM_BYTES:
        return None
    return await request.form(max_files=1, max_fields=30, max_part_size=MAX_FORM_BYTES)


def _text(form: Any, name: str) -> str | None:
    v = form.get(name)
    return v if isinstance(v, str) else None


@router.post("/report", response_class=HTMLResponse, include_in_schema=False, dependencies=[Depends(_PUBLIC)])
async def report_submit(request: Request) -> HTMLResponse:
    svc = notices(request)
    lim = limiter(request, "notice_form_ip", svc.config.form_per_hour)
    if lim.check(_client(request)) > 0:  # before the body is read
        return _render(request, "report.html", 429, form={}, errors={"_": "report.too_many"})
    form = await _form(request)
    lang = _text(form, "lang") if form is not None else None
    if form is None:
        return _render(request, "report.html", 413, lang, errors={"image": "too large"})
    image = None
    upload = form.get("image")
    if upload is not None and not isinstance(upload, str) and getattr(upload, "filename", ""):
        image = await upload.read(MAX_FORM_BYTES + 1)
        image = image or None
    values = {k: _text(form, k) for k in ("regime", "category", "locations", "explanation", "notifier_name",
                                          "notifier_email", "notifier_contact", "signature")}
    inp = NoticeInput(values["regime"] or "take_it_down", (values["locations"] or "").splitlines(),
                      values["category"] or "ncii", values["signature"], values["notifier_name"],
                      values["notifier_email"], values["notifier_contact"], values["explanation"],
                      form.get("good_faith") == "yes", image, (lang or "en"))
    try:
        receipt = svc.submit(inp, channel="form", submitted_by="public")
    except NoticeInvalid as exc:
        return _render(request, "report.html", 422, lang, form=values, errors=exc.problems)
    return _render(request, "received.html", 201, lang, receipt=receipt, regime=inp.regime)


@router.post("/report/complete", response_class=HTMLResponse, include_in_schema=False,
             dependencies=[Depends(_PUBLIC)])
async def report_complete(request: Request) -> HTMLResponse:
    svc = notices(request)
    # its own bucket (a notifier filling in a field or two), still limiting guesses of the code
    lim = limiter(request, "notice_complete_ip", max(60.0, svc.config.form_per_hour * 6))
    if lim.check(_client(request)) > 0:
        return _render(request, "report.html", 429, errors={"_": "report.too_many"})
    form = await _form(request)
    lang = _text(form, "lang") if form is not None else None
    if form is None:
        return _render(request, "report.html", 413, lang, errors={"image": "too large"})
    number, token = _text(form, "number") or "", _text(form, "token") or ""
    values: dict[str, Any] = {k: _text(form, k) for k in ("explanation", "notifier_name", "notifier_email",
                                                          "notifier_contact", "signature", "locations")}
    values = {k: v for k, v in values.items() if v}
    if form.get("good_faith") == "yes":
        values["good_faith"] = True
    try:
        receipt = svc.complete(number[:24], values, token=token[:100])
    except NoticeNotFound:
        return _render(request, "report.html", 404, lang, errors={"_": "report.not_found"})
    except NoticeInvalid as exc:
        return _render(request, "received.html", 422, lang, errors=exc.problems,
                       receipt=Receipt(number, "incomplete", list(exc.problems), utcnow(), None, token))
    except NoticeError:
        return _render(request, "report.html", 404, lang, errors={"_": "report.not_found"})
    if receipt.status == "incomplete":
        receipt.completion_token = token
    return _render(request, "received.html", 200, lang, receipt=receipt)
