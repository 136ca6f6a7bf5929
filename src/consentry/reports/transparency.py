"""The transparency report (issue 15): what this instance did in a period, as aggregate figures.

One core, :func:`compute`, reads the database and returns a :class:`TransparencyFigures`; the
command line (``consentry report transparency``) and any later HTTP route render that same object
as HTML (inline SVG charts, no script, no external resource), PDF (WeasyPrint) or CSV (one row per
figure: ``section, metric, dimension, value``).

Only counts, durations and names of regimes, bank kinds and exchanges leave the database: never a
case number, an uploader, a content id, a URL, a hash or a reviewer's name.

The period is a half-open interval of UTC instants ``[start, end)``; the command line turns
``--from 2026-01-01 --to 2026-06-30`` into ``[2026-01-01T00:00Z, 2026-07-01T00:00Z)`` (both days
included). Each record counts in the period of its own event time, listed per figure in
``docs/transparency.md``.

Percentiles (the median is the 50th) use linear interpolation between closest ranks (Hyndman and
Fan's definition 7, the default of NumPy, R and spreadsheet ``PERCENTILE.INC``): for sorted values
``x[0..n-1]`` the p-th percentile is at rank ``h = (n - 1) * p / 100``, i.e.
``x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)])``.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterable

from sqlalchemy import func, inspect, select

#: the removal deadline the "share within" figure is measured against (e.g. the US TAKE IT DOWN Act)
REMOVAL_DEADLINE_HOURS = 48
PERCENTILE_METHOD = "linear interpolation between closest ranks (Hyndman-Fan 7, NumPy default)"
#: the dimension name used for banks no exchange feeds
LOCAL_BANKS = "(local banks)"


class TransparencyError(ValueError):
    """A wrong period or format (the caller's mistake, not the database's)."""


# ----------------------------------------------------------------------------- statistics
def percentile(values: Iterable[float], p: float) -> float | None:
    """The p-th percentile (0..100) of ``values`` by linear interpolation (see the module
    docstring); ``None`` for no values."""
    xs = sorted(float(v) for v in values)
    if not xs:
        return None
    if not 0 <= p <= 100:
        raise ValueError("p must be within 0..100")
    h = (len(xs) - 1) * p / 100.0
    lo = math.floor(h)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (h - lo) * (xs[hi] - xs[lo])


@dataclass
class TimingStats:
    """Durations (hours) from a notice's clock start to the content's removal (or the decision)."""

    count: int = 0
    median_hours: float | None = None
    p95_hours: float | None = None
    within_deadline: int = 0  # removed within REMOVAL_DEADLINE_HOURS
    share_within_deadline: float | None = None  # within_deadline / count
    pending: int = 0  # valid notices of the period not yet acted on

    @classmethod
    def of(cls, hours: list[float], pending: int = 0) -> "TimingStats":
        within = sum(1 for h in hours if h <= REMOVAL_DEADLINE_HOURS)
        return cls(len(hours), percentile(hours, 50), percentile(hours, 95), within,
                   (within / len(hours)) if hours else None, pending)


@dataclass
class Figure:
    """One CSV row."""

    section: str
    metric: str
    dimension: str
    value: Any


@dataclass
class TransparencyFigures:
    """Every figure of the report for ``[start, end)``."""

    start: datetime
    end: datetime  # exclusive
    generated_at: datetime
    # notices (None: no notice table in this instance, see notices_source)
    notices_source: str = "none"
    notices_by_regime: dict[str, dict[str, int]] | None = None  # regime -> {valid, invalid, total}
    removal: TimingStats | None = None
    removal_by_regime: dict[str, TimingStats] = field(default_factory=dict)
    # DSA statements of reasons issued (None: no such table) by restriction and by source
    statements_by_restriction: dict[str, int] | None = None
    statements_by_source: dict[str, int] | None = None
    # sweeps of the content ledger
    sweep_hits: int = 0  # (content, bank entry) pairs found
    sweep_contents: int = 0  # distinct hosted contents found
    sweep_by_bank_kind: dict[str, int] = field(default_factory=dict)
    sweep_by_trigger: dict[str, int] = field(default_factory=dict)
    # matches
    api_match_requests: int = 0
    api_requests_with_match: int = 0
    api_match_results: int = 0
    review_matches_by_bank_kind: dict[str, int] = field(default_factory=dict)
    sweep_matches_by_exchange: dict[str, int] = field(default_factory=dict)
    review_matches_by_exchange: dict[str, int] = field(default_factory=dict)
    # reports and feedback
    cybertip_filed: int = 0  # to NCMEC's production service
    cybertip_filed_test: int = 0  # to NCMEC's test service
    cybertip_retracted: int = 0
    feedback_sent: dict[str, dict[str, int]] = field(default_factory=dict)  # exchange -> {status: n}
    # appeals (None: this instance records none, see appeals_source)
    appeals_source: str = "none"
    appeals: dict[str, int] | None = None  # outcome -> n

    @property
    def period_label(self) -> str:
        last = self.end - timedelta(microseconds=1)
        return f"{self.start.date().isoformat()} to {last.date().isoformat()}"

    @property
    def notices_total(self) -> int:
        return sum(c.get("total", 0) for c in (self.notices_by_regime or {}).values())

    @property
    def notices_valid(self) -> int:
        return sum(c.get("valid", 0) for c in (self.notices_by_regime or {}).values())

    @property
    def feedback_total(self) -> int:
        return sum(sum(v.values()) for v in self.feedback_sent.values())

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for k in ("start", "end", "generated_at"):
            out[k] = getattr(self, k).isoformat()
        return out

    def rows(self) -> list[Figure]:
        """The figures as CSV rows, in report order."""
        r: list[Figure] = []
        add = lambda s, m, d, v: r.append(Figure(s, m, d, v))  # noqa: E731
        add("period", "start", "", self.start.isoformat())
        add("period", "end_exclusive", "", self.end.isoformat())
        add("notices", "source", "", self.notices_source)
        for regime, c in sorted((self.notices_by_regime or {}).items()):
            for k in ("valid", "invalid", "total"):
                add("notices", k, regime, c.get(k, 0))
        for dim, t in ([("all", self.removal)] if self.removal else []) + sorted(self.removal_by_regime.items()):
            add("removal", "removed", dim, t.count)
            add("removal", "median_hours", dim, _round(t.median_hours))
            add("removal", "p95_hours", dim, _round(t.p95_hours))
            add("removal", f"within_{REMOVAL_DEADLINE_HOURS}h", dim, t.within_deadline)
            add("removal", f"share_within_{REMOVAL_DEADLINE_HOURS}h", dim, _round(t.share_within_deadline, 4))
            add("removal", "pending", dim, t.pending)
        for k, v in sorted((self.statements_by_restriction or {}).items()):
            add("statements", "by_restriction", k, v)
        for k, v in sorted((self.statements_by_source or {}).items()):
            add("statements", "by_source", k, v)
        add("sweeps", "hits", "", self.sweep_hits)
        add("sweeps", "contents_found", "", self.sweep_contents)
        for k, v in sorted(self.sweep_by_bank_kind.items()):
            add("sweeps", "hits_by_bank_kind", k, v)
        for k, v in sorted(self.sweep_by_trigger.items()):
            add("sweeps", "hits_by_trigger", k, v)
        add("matches", "api_requests", "", self.api_match_requests)
        add("matches", "api_requests_with_match", "", self.api_requests_with_match)
        add("matches", "api_results", "", self.api_match_results)
        for k, v in sorted(self.review_matches_by_bank_kind.items()):
            add("matches", "review_by_bank_kind", k, v)
        for k, v in sorted(self.sweep_by_bank_kind.items()):
            add("matches", "sweep_by_bank_kind", k, v)
        for k, v in sorted(self.review_matches_by_exchange.items()):
            add("matches", "review_by_exchange", k, v)
        for k, v in sorted(self.sweep_matches_by_exchange.items()):
            add("matches", "sweep_by_exchange", k, v)
        add("cybertipline", "filed", "production", self.cybertip_filed)
        add("cybertipline", "filed", "test", self.cybertip_filed_test)
        add("cybertipline", "retracted", "", self.cybertip_retracted)
        for ex, st in sorted(self.feedback_sent.items()):
            for k, v in sorted(st.items()):
                add("feedback", "sent", f"{ex}/{k}", v)
        add("appeals", "source", "", self.appeals_source)
        for k, v in sorted((self.appeals or {}).items()):
            add("appeals", "count", k, v)
        return r

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["section", "metric", "dimension", "value"])
        for f in self.rows():
            w.writerow([f.section, f.metric, f.dimension, "" if f.value is None else f.value])
        return buf.getvalue()


def _round(v: float | None, nd: int = 2) -> float | None:
    return None if v is None else round(v, nd)


# ----------------------------------------------------------------------------- period
def period(start_day: date, end_day: date) -> tuple[datetime, datetime]:
    """``[start_day 00:00 UTC, end_day + 1 day 00:00 UTC)``: both days included."""
    if end_day < start_day:
        raise TransparencyError("--to is before --from")
    if (end_day - start_day).days > 366 * 10:
        raise TransparencyError("the period is over ten years")
    s = datetime.combine(start_day, time(0), tzinfo=timezone.utc)
    return s, datetime.combine(end_day + timedelta(days=1), time(0), tzinfo=timezone.utc)


def parse_day(text: str, what: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except (ValueError, AttributeError):
        raise TransparencyError(f"{what} must be a date as YYYY-MM-DD, not {text!r}") from None


def _utc(dt: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive (they were stored as UTC)."""
    if dt is None:
        return None
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def _in(col, start: datetime, end: datetime):
    return (col >= start) & (col < end)


# ----------------------------------------------------------------------------- the core
def compute(db, start: datetime, end: datetime, *, now: datetime | None = None) -> TransparencyFigures:
    """Every figure for ``[start, end)`` from ``db`` (a :class:`consentry.db.Database`)."""
    if start.tzinfo is None or end.tzinfo is None:
        raise TransparencyError("the period bounds must be timezone-aware")
    if end <= start:
        raise TransparencyError("the period is empty")
    # the ORM classes must be imported so their tables exist on Base.metadata
    from consentry.db import models_cybertip, models_ledger, models_review, models_victims  # noqa: F401

    figs = TransparencyFigures(start=start, end=end, generated_at=now or datetime.now(timezone.utc))
    tables = set(inspect(db.engine).get_table_names())
    with db.session() as s:
        kinds, exchanges_of = _banks(s)
        _sweeps(s, figs, kinds, exchanges_of, tables)
        _matches(s, figs, exchanges_of)
        _cybertip(s, figs, tables)
        _feedback(s, figs)
        _notices(s, figs, tables)
    return figs


def _banks(s) -> tuple[dict[int, str], dict[str, list[str]]]:
    """bank id -> kind, and bank name -> the exchanges that feed it (``[LOCAL_BANKS]`` if none)."""
    from consentry.db.models import Bank
    from consentry.db.models_victims import ExchangeConfig

    kinds: dict[int, str] = {}
    names: dict[str, list[str]] = {}
    for bid, name, kind in s.execute(select(Bank.id, Bank.name, Bank.kind)):
        kinds[bid] = kind
        names[name] = []
    for ex_name, bank in s.execute(select(ExchangeConfig.name, ExchangeConfig.bank)):
        names.setdefault(bank, []).append(ex_name)
    return kinds, {b: (sorted(ex) or [LOCAL_BANKS]) for b, ex in names.items()}


def _sweeps(s, figs: TransparencyFigures, kinds, exchanges_of, tables) -> None:
    from consentry.db.models_ledger import SweepHit

    if "sweep_hits" not in tables:
        return
    contents: set[int] = set()
    by_kind: Counter[str] = Counter()
    by_trigger: Counter[str] = Counter()
    by_ex: Counter[str] = Counter()
    rows = s.execute(select(SweepHit.content_pk, SweepHit.bank_id, SweepHit.bank, SweepHit.trigger)
                     .where(_in(SweepHit.at, figs.start, figs.end)).execution_options(yield_per=5000))
    for content_pk, bank_id, bank, trigger in rows:
        figs.sweep_hits += 1
        contents.add(content_pk)
        by_kind[kinds.get(bank_id, "(deleted bank)")] += 1
        # "notice:42" names one notice: the report counts kinds of trigger, never ids
        by_trigger[(trigger or "change").split(":", 1)[0]] += 1
        for ex in exchanges_of.get(bank, [LOCAL_BANKS]):
            by_ex[ex] += 1
    figs.sweep_contents = len(contents)
    figs.sweep_by_bank_kind = dict(by_kind)
    figs.sweep_by_trigger = dict(by_trigger)
    figs.sweep_matches_by_exchange = dict(by_ex)


def _matches(s, figs: TransparencyFigures, exchanges_of) -> None:
    """API match requests (the match log: counts only, it names no bank) and the bank matches of
    items put before reviewers (case items: one per item and bank)."""
    from consentry.db.models import MatchLog
    from consentry.db.models_review import CaseItem

    n, with_match, results = s.execute(
        select(func.count(MatchLog.id),
               func.coalesce(func.sum((MatchLog.result_count > 0).cast(_int())), 0),
               func.coalesce(func.sum(MatchLog.result_count), 0))
        .where(_in(MatchLog.at, figs.start, figs.end))).one()
    figs.api_match_requests, figs.api_requests_with_match, figs.api_match_results = int(n), int(with_match), \
        int(results)
    by_kind: Counter[str] = Counter()
    by_ex: Counter[str] = Counter()
    q = select(CaseItem.matches).where(_in(CaseItem.added_at, figs.start, figs.end)).execution_options(yield_per=5000)
    for (matches,) in s.execute(q):
        seen: set[tuple[str, str]] = set()
        for m in matches if isinstance(matches, list) else []:
            if not isinstance(m, dict) or not m.get("bank"):
                continue
            key = (str(m["bank"]), str(m.get("bank_kind") or "(unknown)"))
            if key in seen:
                continue
            seen.add(key)
            by_kind[key[1]] += 1
            for ex in exchanges_of.get(key[0], [LOCAL_BANKS]):
                by_ex[ex] += 1
    figs.review_matches_by_bank_kind = dict(by_kind)
    figs.review_matches_by_exchange = dict(by_ex)


def _int():
    from sqlalchemy import Integer

    return Integer


def _cybertip(s, figs: TransparencyFigures, tables) -> None:
    from consentry.db.models_cybertip import CybertipReport

    if "cybertip_reports" not in tables:
        return
    q = select(CybertipReport.environment, func.count()).where(
        CybertipReport.ncmec_report_id.is_not(None), _in(CybertipReport.filed_at, figs.start, figs.end)
    ).group_by(CybertipReport.environment)
    for env, n in s.execute(q):
        if env == "production":
            figs.cybertip_filed += int(n)
        else:
            figs.cybertip_filed_test += int(n)
    figs.cybertip_retracted = int(s.execute(select(func.count()).where(
        _in(CybertipReport.retracted_at, figs.start, figs.end))).scalar_one())


def _feedback(s, figs: TransparencyFigures) -> None:
    from consentry.db.models_victims import ExchangeConfig, ExchangeOutbox

    q = (select(ExchangeConfig.name, ExchangeOutbox.status, func.count())
         .join(ExchangeConfig, ExchangeConfig.id == ExchangeOutbox.exchange_id)
         .where(ExchangeOutbox.kind == "feedback", ExchangeOutbox.state == "sent",
                _in(ExchangeOutbox.sent_at, figs.start, figs.end))
         .group_by(ExchangeConfig.name, ExchangeOutbox.status))
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for name, status, n in s.execute(q):
        out[name][status] = int(n)
    figs.feedback_sent = dict(out)


def _notices(s, figs: TransparencyFigures, tables) -> None:
    """Notices, time to removal and appeals, from the notices tables when this instance has them."""
    try:
        from consentry.reports import transparency_notices
    except ImportError:  # pragma: no cover - shipped together
        return
    transparency_notices.fill(s, figs, tables)
