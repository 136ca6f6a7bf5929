"""Policy: what to do about matches. Until declarative rules land, a fixed default policy.

Default: content on an allow bank is allowed; a match in a bank of kind ``csam``, ``ncii``,
``ai-abuse`` or ``terror`` blocks; a match only in ``custom`` banks goes to review.
"""

from __future__ import annotations

from typing import Any

BLOCKING_KINDS = ("csam", "ncii", "ai-abuse", "terror")


def default_verdict(outcome) -> dict[str, Any]:
    if outcome.allowed_by:
        return {"decision": "allow", "block": False,
                "reasons": [f"on allow bank {m.bank!r}" for m in outcome.allowed_by][:5]}
    if not outcome.matches:
        return {"decision": "no_match", "block": False, "reasons": []}
    blocking = [m for m in outcome.matches if m.bank_kind in BLOCKING_KINDS]
    if blocking:
        return {"decision": "block", "block": True,
                "reasons": sorted({f"matched {m.bank_kind} bank {m.bank!r}" for m in blocking})[:5]}
    return {"decision": "review", "block": False,
            "reasons": sorted({f"matched bank {m.bank!r}" for m in outcome.matches})[:5]}
