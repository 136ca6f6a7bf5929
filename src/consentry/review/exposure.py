"""Reviewer exposure: every reveal of a media item is logged, counted per reviewer per UTC day
and recorded in the audit log. The console shows the count against a daily budget and a break
prompt once it is reached (see ``Settings.exposure_budget``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timezone

from sqlalchemy import func, select

from consentry.db.models import utcnow
from consentry.db.models_review import CaseItem, Reveal
from consentry.db.session import Database
from consentry.review.cases import CaseNotFound
from consentry.review.audit import AuditLog


@dataclass(frozen=True)
class Exposure:
    reviewer: str
    today: int
    budget: int

    @property
    def over_budget(self) -> bool:
        return self.budget > 0 and self.today >= self.budget

    def to_dict(self) -> dict:
        return {"reviewer": self.reviewer, "today": self.today, "budget": self.budget,
                "over_budget": self.over_budget}


def _day_start(now: datetime) -> datetime:
    return datetime.combine(now.astimezone(timezone.utc).date(), time(0), tzinfo=timezone.utc)


class ExposureLog:
    def __init__(self, db: Database, budget: int = 50):
        self.db = db
        self.budget = budget

    def record_reveal(self, reviewer: str, item_id: int) -> Exposure:
        """Log one reveal (reveal table + audit event, one transaction); returns today's count."""
        now = utcnow()
        with self.db.session() as s:
            item = s.get(CaseItem, item_id)
            if item is None:
                raise CaseNotFound(f"no case item {item_id}")
            s.add(Reveal(reviewer=reviewer, item_id=item_id, case_id=item.case_id, at=now))
            s.flush()
            today = self._count(s, reviewer, now)
            AuditLog(self.db).record("reveal", reviewer,
                         {"case_id": item.case_id, "item_id": item_id, "sha256": item.content_sha256,
                          "exposure_today": today}, session=s)
        return Exposure(reviewer, today, self.budget)

    def today(self, reviewer: str) -> Exposure:
        with self.db.session() as s:
            return Exposure(reviewer, self._count(s, reviewer, utcnow()), self.budget)

    def revealed_recently(self, reviewer: str, item_id: int, within_seconds: float) -> bool:
        """Whether ``reviewer`` logged a reveal of ``item_id`` in the last ``within_seconds``: the
        clear media are served only then, so no view escapes the reveal log."""
        from datetime import timedelta

        since = utcnow() - timedelta(seconds=within_seconds)
        with self.db.session() as s:
            return s.scalar(select(Reveal.id).where(Reveal.reviewer == reviewer, Reveal.item_id == item_id,
                                                    Reveal.at >= since).limit(1)) is not None

    def reveals_of_item(self, item_id: int) -> int:
        with self.db.session() as s:
            return int(s.scalar(select(func.count()).select_from(Reveal).where(Reveal.item_id == item_id)) or 0)

    @staticmethod
    def _count(s, reviewer: str, now: datetime) -> int:
        return int(s.scalar(select(func.count()).select_from(Reveal)
                            .where(Reveal.reviewer == reviewer, Reveal.at >= _day_start(now))) or 0)
