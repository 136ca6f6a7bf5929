"""Hash, match and add by URL (issue 22): the platform passes the URL of stored media instead of
the bytes. Only for keys created with ``--allow-url``, only hosts or URL prefixes in
``CONSENTRY_URL_ALLOWLIST``; see :mod:`consentry.media.fetch` for the network rules."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from consentry.hashing import hash_content
from consentry.media.content import Content
from consentry.media.fetch import FetchPolicy, UrlFetchFailed, UrlRefused, UrlTooLarge, UrlTooSlow, fetch_url
from consentry.web.api.banks import add_hashed
from consentry.web.api.hashing import hash_response
from consentry.web.api.matching import _SURFACE, _UPLOADER, _banks, _content_query, _limit, _published, _respond
from consentry.web.auth import HASHERS, MATCHERS, WRITE_BANKS, Principal, require
from consentry.web.deps import AppState, rate_limit, require_ready, state
from consentry.web.problems import Problem

router = APIRouter(prefix="/v1", tags=["by URL"])


class UrlBody(BaseModel):
    url: str = Field(max_length=4096, description="http(s) URL of the stored media (host on the allow list)")


class UrlEntryBody(UrlBody):
    tags: list[str] = []
    category: str | None = Field(None, max_length=200)


def _fetch(st: AppState, principal: Principal, url: str) -> tuple[Content, str]:
    if not principal.key.allow_url:
        raise Problem(403, "forbidden", "this key may not fetch by URL (create one with `consentry keys create "
                                        "--allow-url`)")
    try:
        data, final = fetch_url(url, FetchPolicy.from_settings(st.settings))
    except UrlRefused as exc:
        raise Problem(422, "url-refused", str(exc)) from None
    except UrlTooLarge as exc:
        raise Problem(413, "too-large", str(exc)) from None
    except UrlTooSlow as exc:
        raise Problem(504, "url-fetch-timeout", str(exc)) from None
    except UrlFetchFailed as exc:
        raise Problem(502, "url-fetch-failed", str(exc)) from None
    if not data:
        raise Problem(422, "bad-media", "the URL's body is empty")
    return Content.from_bytes(data, st.settings.limits), final


def _name(url: str) -> str:
    return url.rsplit("/", 1)[-1].split("?", 1)[0][:200] or "-"


@router.post("/hash/url", summary="Hash the media at a URL (as POST /v1/hash)")
def hash_url(request: Request, body: UrlBody, p: Principal = Depends(require(*HASHERS))) -> dict:
    st = state(request)
    rate_limit(st, p.key_id, "hash requests")
    content, final = _fetch(st, p, body.url)
    out = hash_response(st, content, _name(final))
    out["url"] = final
    return out


@router.post("/match/url", summary="Match the media at a URL against the banks (as POST /v1/match)")
def match_url(
    request: Request, body: UrlBody,
    bank: list[str] | None = Query(None, description="Only these banks (repeatable)"),
    uploader_id: str | None = _UPLOADER,
    surface: str | None = _SURFACE,
    principal: Principal = Depends(require(*MATCHERS)),
) -> dict[str, Any]:
    st = state(request)
    _limit(st, principal)
    require_ready(st)
    published = _published(st, principal)
    banks = _banks(st, bank, published)
    content, final = _fetch(st, principal, body.url)
    q, query = _content_query(content, {"url": final})
    return _respond(st, principal, "POST /v1/match/url", query, q, banks, request,
                    {"uploader_id": uploader_id, "surface": surface}, content, published=published)


@router.post("/banks/{name}/entries/url", status_code=201, summary="Hash the media at a URL and add its signals")
def add_entry_url(request: Request, name: str, body: UrlEntryBody,
                  p: Principal = Depends(require(*WRITE_BANKS))) -> dict:
    st = state(request)
    st.banks.get_bank(name)
    content, final = _fetch(st, p, body.url)
    result = hash_content(content, _name(final), strict=True, dense_video=True)
    tags = [t for t in dict.fromkeys(str(t).strip() for t in body.tags) if t]
    out = add_hashed(request, name, result, tags, body.category, "api-url", p, content)
    out["url"] = final
    return out
