from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Body, Depends, File, Query, Request, Response, UploadFile
from pydantic import BaseModel, Field

from consentry.banks.matcher import Match, MatchOutcome, QuerySignals, query_from_content
from consentry.errors import ConsentryError, UnsupportedMedia
from consentry.media.sniff import PHOTO, VIDEO
from consentry.signals import get_signal_type
from consentry.web.api.quality import disabled_warnings, hash_warnings, merge
from consentry.web.api.schemas import MatchItem, MatchResponse, Provenance
from consentry.web.auth import MATCHERS, PUBLISHED_ONLY, Principal, require
from consentry.web.deps import AppState, rate_limit, read_upload, require_ready, state
from consentry.web.problems import Problem, consentry_error_status

router = APIRouter(prefix="/v1", tags=["match"])
#: roles shown ``rollout_skipped`` (matches held back by a bank's gradual rollout)
ROLLOUT_VIEWERS = ("curator", "admin")


def _limit(st: AppState, principal: Principal) -> None:
    rate_limit(st, principal.key_id, "match requests")


def _published(st: AppState, principal: Principal) -> set[str] | None:
    """For a ``partner`` key, the names of the banks published to partners (read from the
    database, so un-publishing takes effect at once); None for every other role."""
    if principal.role not in PUBLISHED_ONLY:
        return None
    return {b.name for b in st.banks.banks_by_id().values() if b.shared}


def _banks(st: AppState, banks: list[str] | None, published: set[str] | None = None) -> list[str] | None:
    if not banks:
        return None
    if published is not None:  # a partner: unpublished banks do not exist for it
        unknown = [b for b in banks if b not in published]
        if unknown:
            raise Problem(404, "not-found", f"no bank named {unknown[0]!r}")
        return banks
    known = {b.name for b in st.matcher._bank_cache.values()}
    unknown = [b for b in banks if b not in known]
    if unknown:
        known_now = {b.name for b in st.banks.list_banks()}
        unknown = [b for b in unknown if b not in known_now]
        if unknown:
            raise Problem(404, "not-found", f"no bank named {unknown[0]!r}")
    return banks


def _partner_view(outcome: MatchOutcome, published: set[str]) -> MatchOutcome:
    """What a partner may see: entries of published banks only, as the hub publishes them in
    ``GET /v1/changes`` (bank name, entry id, signal type, value) — without the internal
    provenance (source, external ids, tags, category, added_by/at). Allow banks that are not
    published neither show nor suppress anything."""
    def public(m: Match) -> Match:
        return Match(m.bank, m.bank_kind, m.entry_id, m.signal_type, m.distance, m.transform, {}, m.detail)

    found = [public(m) for m in outcome.matches + outcome.suppressed if m.bank in published]
    allows = [public(m) for m in outcome.allowed_by if m.bank in published]
    found.sort(key=lambda m: (m.distance, m.bank, m.entry_id))
    if allows:
        return MatchOutcome([], found, allows)
    return MatchOutcome(found, [], [])


def _content_query(content: Any, label: dict[str, Any]) -> tuple[QuerySignals, dict[str, Any]]:
    """The signals of an uploaded or fetched file and the ``query`` echoed in the answer (``label``
    first: its filename or URL). Anything but a photo or video is a 422, as POST /v1/hash."""
    if content.content_type not in (PHOTO, VIDEO):
        raise UnsupportedMedia("unrecognised or unsupported file format")
    q = query_from_content(content)  # undecodable or over-limit media raise: a 422 problem
    return q, {**label, "content_type": content.content_type, "size": content.size,
               "sha256": q.exact.get("sha256"), "pdq": q.pdq[0] if q.pdq else None, "pdq_quality": q.pdq_quality}


def _respond(st: AppState, principal: Principal, route: str, query: dict[str, Any], signals: QuerySignals,
             banks: list[str] | None, request: Request | None = None, context: dict[str, Any] | None = None,
             content: Any = None, published: set[str] | None = None,
             outcome: MatchOutcome | None = None) -> dict[str, Any]:
    """Match (unless ``outcome`` was computed already, by a batch), log, decide and act: one query."""
    if outcome is None:
        outcome = st.matcher.match(signals, banks)
    if published is not None:
        outcome = _partner_view(outcome, published)
    types = list(signals.exact) + (["pdq"] if signals.pdq else []) + (["vpdq"] if signals.vpdq else [])
    st.match_log.record(principal.key_id, route, types, len(outcome.matches))
    body = outcome.to_dict()
    body["query"] = query
    body["warnings"] = merge(hash_warnings(signals.pdq, signals.pdq_quality, signals.vpdq, "query"),
                             disabled_warnings(st.matcher.enabled_types, types=outcome.disabled_types))
    # matches held back by a bank's gradual rollout: curators see which (to judge the new list)
    if principal.role not in ROLLOUT_VIEWERS:
        body["rollout_skipped"] = None
    # the policy rules (policy/rules.py) decide the verdict and their actions run here
    policy = request.app.state.policy
    decision, ctx = policy.decide(body, **(context or {}))  # the serialised matches, made once
    body["verdict"] = decision.verdict()
    if published is not None:
        # A partner's lookup is another organisation's content: the hub's own actions (review
        # cases, the vault, webhooks) never run on it, and its rule names stay internal.
        body["verdict"]["rules"] = []
        body["verdict"]["reasons"] = sorted({f"matched {m['bank_kind']} bank {m['bank']!r}"
                                             for m in body["matches"]})[:10]
        return body
    policy.apply(decision, ctx, query=query, content=getattr(content, "data", None),
                 content_type=getattr(content, "content_type", None))
    return body


_UPLOADER = Query(None, max_length=200, description="The platform's id of the uploader (for the rules)")
_SURFACE = Query(None, max_length=100, description="Where the content was posted, e.g. 'profile-photo'")


@router.get("/match", response_model=MatchResponse, summary="Look up one hash in the banks")
def match_value(
    request: Request,
    signal_type: str = Query(..., description="md5, sha1, sha256, pdq or vpdq"),
    value: str = Query(..., max_length=2_000_000),
    bank: list[str] | None = Query(None, description="Only these banks (repeatable)"),
    uploader_id: str | None = _UPLOADER,
    surface: str | None = _SURFACE,
    principal: Principal = Depends(require(*MATCHERS)),
) -> dict[str, Any]:
    return lookup_value(request, principal, signal_type, value, bank, uploader_id, surface)


def lookup_value(request: Request, principal: Principal, signal_type: str, value: str, bank: list[str] | None,
                 uploader_id: str | None, surface: str | None) -> dict[str, Any]:
    """``GET /v1/match``'s work once the key is known: the route above and its fast path
    (web/fastpath.py) both call this."""
    st = state(request)
    _limit(st, principal)
    require_ready(st)
    q = QuerySignals()
    echo = _typed_value(q, signal_type, value)
    published = _published(st, principal)
    return _respond(st, principal, "GET /v1/match", echo, q,
                    _banks(st, bank, published), request, {"uploader_id": uploader_id, "surface": surface},
                    published=published)


@router.post("/match", response_model=MatchResponse, summary="Match an uploaded file against the banks")
def match_upload(
    request: Request,
    file: UploadFile = File(...),
    bank: list[str] | None = Query(None, description="Only these banks (repeatable)"),
    uploader_id: str | None = _UPLOADER,
    surface: str | None = _SURFACE,
    analyze: bool = Query(False, description="Also assess the file for AI generation or editing (as "
                          "POST /v1/analyze); the assessment is returned and the rules can use its evidence"),
    principal: Principal = Depends(require(*MATCHERS)),
) -> dict[str, Any]:
    st = state(request)
    _limit(st, principal)
    require_ready(st)
    published = _published(st, principal)
    banks = _banks(st, bank, published)
    content = read_upload(file, st.settings)
    q, query = _content_query(content, {"filename": file.filename})
    assessment = None
    if analyze:
        from consentry.evidence.assess import assess_content

        assessment = assess_content(content, file.filename or "-").to_dict()
    body = _respond(st, principal, "POST /v1/match", query, q, banks, request,
                    {"uploader_id": uploader_id, "surface": surface, "assessment": assessment}, content,
                    published=published)
    if assessment is not None:
        body["assessment"] = assessment
    return body


# ------------------------------------------------------------------ batches (issue 20.4)
#: most signals in one POST /v1/match/batch
MAX_BATCH = 1000
_HASH_FIELDS = ("md5", "sha1", "sha256", "pdq")


class BatchSignal(BaseModel):
    """One signal of a batch: ``signal_type`` + ``value`` (as GET /v1/match), or the hashes of
    one content (as a ``consentry hash`` line: md5, sha1, sha256, pdq with pdq_quality, vpdq),
    with the platform's ``id`` for the content, echoed in the answer."""

    id: str | None = Field(None, max_length=200, description="The platform's id for this content (echoed)")
    signal_type: str | None = Field(None, max_length=20)
    value: str | None = Field(None, max_length=2_000_000)
    md5: str | None = Field(None, max_length=200)
    sha1: str | None = Field(None, max_length=200)
    sha256: str | None = Field(None, max_length=200)
    pdq: str | None = Field(None, max_length=200)
    pdq_quality: int | None = Field(None, ge=0, le=100)
    vpdq: str | None = Field(None, max_length=2_000_000)
    uploader_id: str | None = Field(None, max_length=200, description="For the rules (overrides the batch's)")
    surface: str | None = Field(None, max_length=100)


class BatchRequest(BaseModel):
    items: list[BatchSignal] = Field(..., min_length=1, max_length=MAX_BATCH)
    bank: list[str] | None = Field(None, max_length=100, description="Only these banks")
    uploader_id: str | None = Field(None, max_length=200)
    surface: str | None = Field(None, max_length=100)


class BatchResponse(BaseModel):
    results: list[dict[str, Any]] = Field(description="One per item, in order: the body GET /v1/match "
                                          "answers (with the item's id), or {query, error} for an item "
                                          "that was refused (bad value, rate-limited)")
    count: int
    errors: int


def _typed_value(q: QuerySignals, signal_type: str, value: str) -> dict[str, Any]:
    """Put one ``signal_type``/``value`` query into ``q`` (parsed and canonical; a bad value raises
    ConsentryError) and return what the response echoes of it (vPDQ as its frame count)."""
    from consentry.signals.vpdq import parse_frames

    try:
        stype = get_signal_type(signal_type)
    except KeyError as exc:
        raise Problem(422, "bad-signal-type", str(exc.args[0])) from None
    if stype.name == "photodna":
        raise Problem(422, "bad-signal-type", "PhotoDNA lookups need an operator plug-in")
    canonical = stype.parse(value)
    if stype.name == "pdq":
        q.pdq = [canonical]
    elif stype.name == "vpdq":
        q.vpdq = parse_frames(canonical)
    else:
        q.exact[stype.name] = canonical
    return {"signal_type": stype.name, "value": canonical if stype.name != "vpdq" else f"{len(q.vpdq or [])} frames"}


def _item_signals(item: BatchSignal) -> tuple[QuerySignals, dict[str, Any]]:
    """The query of one batch item and what is echoed of it; a bad value raises ConsentryError."""
    from consentry.signals.vpdq import parse_frames

    q = QuerySignals()
    shown: dict[str, Any] = {"id": item.id} if item.id is not None else {}
    if item.signal_type is not None or item.value is not None:
        if item.signal_type is None or item.value is None:
            raise Problem(422, "bad-request", "give signal_type and value together")
        shown.update(_typed_value(q, item.signal_type, item.value))
    for name in _HASH_FIELDS:
        raw = getattr(item, name)
        if raw is None:
            continue
        canonical = get_signal_type(name).parse(raw)
        if name == "pdq":
            q.pdq = [canonical]
            q.pdq_quality = item.pdq_quality
        else:
            q.exact[name] = canonical
        shown[name] = canonical
    if item.vpdq is not None:
        q.vpdq = parse_frames(get_signal_type("vpdq").parse(item.vpdq))
        shown["vpdq"] = f"{len(q.vpdq)} frames"
    if not (q.exact or q.pdq or q.vpdq):
        raise Problem(422, "bad-request", "an item needs signal_type and value, or at least one hash")
    if q.pdq_quality is not None:
        shown["pdq_quality"] = q.pdq_quality
    return q, shown


def _item_fields(model) -> list[tuple[str, Any]]:
    return [(name, f.get_default(call_default_factory=True)) for name, f in model.model_fields.items()]


_MATCH_FIELDS = _item_fields(MatchItem)
_PROVENANCE_FIELDS = _item_fields(Provenance)


def _shaped(body: dict[str, Any]) -> dict[str, Any]:
    """A batch item's answer in the exact shape GET /v1/match answers (its response model adds
    the optional fields as null), without a pydantic pass per item."""
    for k in ("matches", "suppressed", "allowed_by"):
        shaped = []
        for m in body[k]:
            item = {name: m.get(name, default) for name, default in _MATCH_FIELDS}
            prov = m.get("provenance") or {}
            item["provenance"] = {name: prov.get(name, default) for name, default in _PROVENANCE_FIELDS}
            shaped.append(item)
        body[k] = shaped
    body.setdefault("assessment", None)
    return body


def _item_error(query: dict[str, Any], status: int, type_: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"query": query, "error": {"status": status, "type": type_, "detail": detail, **extra}}


@router.post("/match/batch", response_model=BatchResponse,
             summary="Look up many signals at once (up to 1,000), answered per item in order")
def match_batch(
    request: Request,
    body: BatchRequest = Body(...),
    principal: Principal = Depends(require(*MATCHERS)),
) -> Response:
    """Each item is matched, logged, rate-counted and put through the rules exactly as one
    GET /v1/match would be; an item that cannot be (a bad value, the key's rate limit reached
    part-way) gets an ``error`` in its place and the others go on. Only when the key has no
    token left for even the first item is the whole request a 429."""
    st = state(request)
    require_ready(st)
    published = _published(st, principal)
    banks = _banks(st, body.bank, published)
    results: list[dict[str, Any] | None] = [None] * len(body.items)
    todo: list[tuple[int, QuerySignals, dict[str, Any]]] = []
    for n, item in enumerate(body.items):
        shown: dict[str, Any] = {"id": item.id} if item.id is not None else {}
        wait = st.rate_limiter.check(principal.key_id)  # one token per item, as one request each
        if wait > 0:
            if n == 0:
                _limit(st, principal)  # the 429 problem with Retry-After (no token: nothing was done)
            results[n] = _item_error(shown, 429, "rate-limited", "too many match requests for this key",
                                     retry_after=max(1, int(wait + 0.999)))
            continue
        try:
            q, shown = _item_signals(item)
        except Problem as exc:
            results[n] = _item_error(shown, exc.status, exc.type, exc.detail)
            continue
        except ConsentryError as exc:
            status, type_ = consentry_error_status(exc)
            results[n] = _item_error(shown, status, type_, str(exc))
            continue
        todo.append((n, q, shown))
    outcomes = st.matcher.match_many([q for _n, q, _s in todo], banks) if todo else []
    for (n, q, shown), outcome in zip(todo, outcomes):
        item = body.items[n]
        context = {"uploader_id": item.uploader_id or body.uploader_id, "surface": item.surface or body.surface}
        results[n] = _shaped(_respond(st, principal, "POST /v1/match/batch", shown, q, banks, request, context,
                                      published=published, outcome=outcome))
    errors = sum(1 for r in results if r is not None and "error" in r)
    # serialised here, once (a response_model pass over 1,000 answers costs more than the lookups)
    return Response(json.dumps({"results": results, "count": len(results), "errors": errors},
                               separators=(",", ":"), default=str), media_type="application/json")
