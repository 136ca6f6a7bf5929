"""The hub side of hub-to-platform sharing: what partners may read and the feedback they send.

A bank is *published* to partners when its ``shared`` flag is set (the victim hub bank is created
published). Partners hold ``partner`` keys on the hub (older ``matcher`` keys still work here):
they tail ``GET /v1/changes``, which for them only carries changes of published banks, and post
per-hash feedback here. Feedback is kept as the latest status per (entry, partner key) and shown
to victims only as counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from sqlalchemy import select

from consentry.banks.service import BankService
from consentry.db.models import Entry, utcnow, value_key
from consentry.db.models_victims import FEEDBACK_STATUSES, PartnerFeedback
from consentry.errors import SignalValueError
from consentry.signals import get_signal_type
from consentry.victims.cases import BadSubmission

MAX_FEEDBACK_ITEMS = 1000


def published_bank_ids(banks: BankService) -> list[int]:
    return sorted(b.id for b in banks.banks_by_id().values() if b.shared)


@dataclass
class FeedbackItem:
    status: str
    signal_type: str | None = None
    value: str | None = None
    entry_id: int | None = None


@dataclass
class FeedbackReport:
    accepted: int = 0
    unknown: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "unknown": self.unknown}


def record_feedback(banks: BankService, key_id: int, items: Sequence[FeedbackItem]) -> FeedbackReport:
    """Store one partner's feedback on hashes of published banks (by value or by hub entry id).

    Hashes the hub does not publish count as ``unknown``: feedback never tells a partner whether
    some other, unpublished bank holds a value.
    """
    if len(items) > MAX_FEEDBACK_ITEMS:
        raise BadSubmission(f"at most {MAX_FEEDBACK_ITEMS} feedback items per request")
    published = published_bank_ids(banks)
    report = FeedbackReport()
    now = utcnow()
    with banks.db.session() as s:
        for item in items:
            if item.status not in FEEDBACK_STATUSES:
                raise BadSubmission(f"status must be one of: {', '.join(FEEDBACK_STATUSES)}")
            q = select(Entry.id).where(Entry.bank_id.in_(published or [-1]))
            if item.entry_id is not None:
                q = q.where(Entry.id == item.entry_id)
            elif item.signal_type and item.value:
                try:
                    st = get_signal_type(item.signal_type)
                    q = q.where(Entry.signal_type == st.name, Entry.value_key == value_key(st.parse(item.value)))
                except (KeyError, SignalValueError) as exc:
                    raise BadSubmission(f"bad hash in feedback: {str(exc)[:200]}") from None
            else:
                raise BadSubmission("each feedback item needs an entry_id or a signal_type and value")
            ids = list(s.scalars(q))
            if not ids:
                report.unknown += 1
                continue
            for entry_id in ids:
                row = s.scalar(select(PartnerFeedback).where(PartnerFeedback.entry_id == entry_id,
                                                             PartnerFeedback.key_id == key_id))
                if row is None:
                    s.add(PartnerFeedback(entry_id=entry_id, key_id=key_id, status=item.status, at=now))
                else:
                    row.status, row.at = item.status, now
            report.accepted += 1
    return report


def minor_links(spec: str) -> list[dict[str, str]]:
    """``"Title|https://url;Title|https://url"`` -> [{"title", "url"}] (only http(s) links)."""
    out = []
    for part in (spec or "").split(";"):
        title, _, url = part.partition("|")
        title, url = title.strip(), url.strip()
        if title and url.lower().startswith(("https://", "http://")):
            out.append({"title": title, "url": url})
    return out


__all__ = ["FeedbackItem", "FeedbackReport", "minor_links", "published_bank_ids", "record_feedback"]
