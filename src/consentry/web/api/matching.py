from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile

from consentry.banks.matcher import Match, MatchOutcome, QuerySignals, query_from_content
from consentry.errors import UnsupportedMedia
from consentry.media.sniff import PHOTO, VIDEO
from consentry.signals import get_signal_type
from consentry.web.api.quality import disabled_warnings, hash_warnings, merge
from consentry.web.api.schemas import MatchResponse
from consentry.web.auth import MATCHERS, PUBLISHED_ONLY, Principal, require
from consentry.web.deps import AppState, rate_limit, read_upload, require_ready, state
from consentry.web.problems import Problem

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
             content: Any = None, published: set[str] | None = None) -> dict[str, Any]:
    outcome: MatchOutcome = st.matcher.match(signals, banks)
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
    st = state(request)
    _limit(st, principal)
    require_ready(st)
    try:
        stype = get_signal_type(signal_type)
    except KeyError as exc:
        raise Problem(422, "bad-signal-type", str(exc.args[0])) from None
    if stype.name == "photodna":
        raise Problem(422, "bad-signal-type", "PhotoDNA lookups need an operator plug-in")
    canonical = stype.parse(value)
    q = QuerySignals()
    if stype.name == "pdq":
        q.pdq = [canonical]
    elif stype.name == "vpdq":
        from consentry.signals.vpdq import parse_frames

        q.vpdq = parse_frames(canonical)
    else:
        q.exact[stype.name] = canonical
    shown = canonical if stype.name != "vpdq" else f"{len(q.vpdq or [])} frames"
    published = _published(st, principal)
    return _respond(st, principal, "GET /v1/match", {"signal_type": stype.name, "value": shown}, q,
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
