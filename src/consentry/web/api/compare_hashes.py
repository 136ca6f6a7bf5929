"""``GET /v1/compare/hashes``: the distance between two hashes of one signal type and whether it
is within the threshold (the signal type's default, or a bank's), as HMA's compare endpoint.

PDQ: Hamming distance (0-256) against the threshold (31 by default). MD5/SHA-1/SHA-256:
exact (distance 0 or 1, threshold 0). vPDQ: both match percentages (query frames found in the
other video, and the other way round) with frames compared at the frame threshold; a match when
either reaches 80 %. PDQ's dihedral variants cannot be derived from a hash (they come from the
image's DCT), so the comparison is of the two hashes as given: hash a rotated photo with
``POST /v1/match`` for that.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from consentry.errors import SignalValueError
from consentry.signals import get_signal_type
from consentry.signals.vpdq import VPDQ_MATCH_PERCENT, compare_frames, parse_frames
from consentry.web.api.matching import _published
from consentry.web.auth import MATCHERS, Principal, require
from consentry.web.deps import rate_limit, state
from consentry.web.problems import Problem

router = APIRouter(prefix="/v1", tags=["match"])

_VALUE = dict(max_length=2_000_000)
MAX_VPDQ_FRAMES = 3600


@router.get("/compare/hashes", summary="Compare two hashes: distance and whether it is within the threshold",
            description="`signal_type`: pdq, md5, sha1, sha256 or vpdq (values as in GET /v1/match). "
                        "`bank`: use that bank's threshold instead of the signal type's default.")
def compare_hashes(
    request: Request,
    signal_type: str = Query(..., description="pdq, md5, sha1, sha256 or vpdq"),
    a: str = Query(..., **_VALUE),
    b: str = Query(..., **_VALUE),
    bank: str | None = Query(None, max_length=200, description="Use this bank's threshold"),
    principal: Principal = Depends(require(*MATCHERS)),
) -> dict[str, Any]:
    st = state(request)
    rate_limit(st, principal.key_id, "match requests")
    try:
        stype = get_signal_type(signal_type)
    except KeyError as exc:
        raise Problem(422, "bad-signal-type", str(exc.args[0])) from None
    if stype.name == "photodna":
        raise Problem(422, "bad-signal-type", "PhotoDNA comparisons need an operator plug-in")
    try:
        va, vb = stype.parse(a), stype.parse(b)
    except SignalValueError as exc:
        raise Problem(422, "bad-signal-value", str(exc)) from None
    threshold: int | float = stype.default_threshold
    source = "default"
    if bank is not None:
        published = _published(st, principal)
        if published is not None and bank not in published:  # partners see published banks only
            raise Problem(404, "not-found", f"no bank named {bank!r}")
        info = st.banks.get_bank(bank)  # NotFound: a 404 problem
        threshold, source = info.threshold(stype.name), "bank"
    body: dict[str, Any] = {"signal_type": stype.name, "threshold": threshold, "threshold_source": source,
                            "bank": bank}
    if stype.name == "vpdq":
        fa, fb = parse_frames(va), parse_frames(vb)
        if max(len(fa), len(fb)) > MAX_VPDQ_FRAMES:  # the brute-force comparison is len(a) x len(b)
            raise Problem(422, "too-many-frames", f"vPDQ values of at most {MAX_VPDQ_FRAMES} frames each")
        m = compare_frames(fa, fb, int(threshold))
        qp, cp = float(m.query_match_percent), float(m.compared_match_percent)
        best = max(qp, cp)
        body.update(distance=round(100.0 - best, 2), match=bool(best >= VPDQ_MATCH_PERCENT),
                    query_match_percent=qp, compared_match_percent=cp,
                    match_percent_threshold=VPDQ_MATCH_PERCENT,
                    frames={"a": len(fa), "b": len(fb)})
        return body
    distance = stype.distance(va, vb)
    if stype.name == "pdq":
        body.update(a=va, b=vb, distance=int(distance), match=bool(distance <= threshold))
    else:  # exact hashes
        body.update(a=va, b=vb, distance=int(distance), threshold=0, match=bool(distance == 0))
    return body
