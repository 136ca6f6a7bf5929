"""The notice clock: when a valid notice must be decided, and when to escalate before that.

A regime's clock (:class:`ClockSpec`) runs either

- ``continuous``: ``hours`` of elapsed time (TAKE IT DOWN Act: 48 hours from a valid request).
  Elapsed time is counted in UTC, so a daylight-saving change in the regime's time zone neither
  adds nor removes an hour: the due time is shown in local time and may read 47 or 49 wall-clock
  hours later across a change, which is correct;
- ``business``: ``hours`` of *working time*, counted only on the working days (Monday–Friday
  unless configured) between ``day_start`` and ``day_end`` local wall-clock time in ``tz``. Local
  wall-clock boundaries come from :mod:`zoneinfo`, so a working day on which the clocks change
  still has its configured working hours (a 09:00–17:00 day is 8 hours on either side of a change).

``escalate_before_hours`` is how long before the due time the case is escalated (priority raised,
``notice.escalated`` audited) if no decision has been recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

CALENDARS = ("continuous", "business")


class ClockError(ValueError):
    pass


@dataclass(frozen=True)
class ClockSpec:
    hours: float = 48.0
    calendar: str = "continuous"
    tz: str = "UTC"
    escalate_before_hours: float = 12.0
    workdays: tuple[int, ...] = (0, 1, 2, 3, 4)  # Monday = 0
    day_start: time = time(9, 0)
    day_end: time = time(17, 0)

    def __post_init__(self) -> None:
        if self.calendar not in CALENDARS:
            raise ClockError(f"calendar must be one of {', '.join(CALENDARS)}")
        if not 0 < self.hours <= 24 * 365:
            raise ClockError("hours must be more than 0 and at most a year")
        if not 0 <= self.escalate_before_hours < self.hours:
            raise ClockError("escalate_before_hours must be at least 0 and less than hours")
        if self.calendar == "business" and (not self.workdays or self.day_end <= self.day_start):
            raise ClockError("a business calendar needs working days and day_end after day_start")
        try:
            ZoneInfo(self.tz)
        except Exception:  # noqa: BLE001 - unknown zone names raise several kinds of error
            raise ClockError(f"unknown time zone {self.tz!r}") from None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    # ----------------------------------------------------------------- arithmetic
    def add(self, start: datetime, hours: float) -> datetime:
        """``start`` plus ``hours`` of clock time (aware UTC result)."""
        start = _utc(start)
        if self.calendar == "continuous":
            return start + timedelta(hours=hours)
        left = timedelta(hours=hours)
        zone = self.zone
        day = start.astimezone(zone).date()
        for _ in range(3700):  # at most ten years of days
            if day.weekday() in self.workdays:
                opens = datetime.combine(day, self.day_start, zone).astimezone(timezone.utc)
                closes = datetime.combine(day, self.day_end, zone).astimezone(timezone.utc)
                begin = max(opens, start)
                if begin < closes:
                    span = closes - begin
                    if left <= span:
                        return begin + left
                    left -= span
            day += timedelta(days=1)
        raise ClockError("the clock does not end within ten years")

    def elapsed(self, start: datetime, end: datetime) -> float:
        """Clock hours between ``start`` and ``end`` (0 when ``end`` is before ``start``)."""
        start, end = _utc(start), _utc(end)
        if end <= start:
            return 0.0
        if self.calendar == "continuous":
            return (end - start).total_seconds() / 3600.0
        zone = self.zone
        total = timedelta()
        day = start.astimezone(zone).date()
        last = end.astimezone(zone).date()
        while day <= last:
            if day.weekday() in self.workdays:
                opens = datetime.combine(day, self.day_start, zone).astimezone(timezone.utc)
                closes = datetime.combine(day, self.day_end, zone).astimezone(timezone.utc)
                a, b = max(opens, start), min(closes, end)
                if b > a:
                    total += b - a
            day += timedelta(days=1)
        return total.total_seconds() / 3600.0

    def due(self, start: datetime) -> datetime:
        return self.add(start, self.hours)

    def escalate_at(self, start: datetime) -> datetime:
        return self.add(start, self.hours - self.escalate_before_hours)

    def state(self, start: datetime | None, now: datetime, *, decided_at: datetime | None = None) -> dict:
        """What the console shows: due time (UTC and local), hours left, SLA colour."""
        if start is None:
            return {"running": False, "colour": "grey", "due_at": None, "due_local": None, "hours_left": None}
        due, esc = self.due(start), self.escalate_at(start)
        at = _utc(decided_at) if decided_at else _utc(now)
        left = (self.hours - self.elapsed(start, at)) if at < due else -self.elapsed(due, at) if \
            self.calendar == "business" else -(at - due).total_seconds() / 3600.0
        colour = ("done" if decided_at and at <= due else "breached" if at > due
                  else "red" if at >= esc else "amber" if left <= self.hours / 2 else "green")
        return {"running": decided_at is None, "colour": colour, "due_at": due.isoformat(),
                "due_local": due.astimezone(self.zone).isoformat(), "tz": self.tz,
                "escalate_at": esc.isoformat(), "hours_left": round(left, 2)}


def _utc(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def parse_time(value: str) -> time:
    try:
        h, m = str(value).split(":")
        return time(int(h), int(m))
    except (ValueError, TypeError):
        raise ClockError(f"expected HH:MM, got {value!r}") from None
