"""The notices part of the transparency report: notices per regime, time to removal, appeals.

Read from the ``notices`` table (:mod:`consentry.db.models_notices`, documented in
``docs/notices.md``) when this instance has it; otherwise the report says it has no notice data
(``notices_source = "none"``) rather than showing zeros that look like a measured result.

- A notice counts in the period of its ``received_at``.
- *valid*: it became complete (``valid_at`` set: the clock started) and was not rejected;
  *invalid*: rejected (``status = rejected`` or ``decision = reject``); *incomplete*: still
  waiting for the notifier's missing details; *duplicate*: merged into an earlier notice.
- *Time to removal*: ``decided_at - valid_at`` (elapsed hours, whatever the regime's calendar)
  for valid notices decided ``remove`` or ``disable``; *pending*: valid notices not decided yet.
- Statements of reasons (DSA Art. 17) issued, by ``created_at``: by restriction and by source.
- Appeals: no table of this instance records appeals yet; ``appeals_source`` stays ``"none"``
  unless a table ``appeals`` appears (see :func:`_appeals`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timezone

from sqlalchemy import select

REMOVAL_DECISIONS = ("remove", "disable")


def _utc(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def fill(s, figs, tables: set[str]) -> None:
    """Set the notice, removal and appeal figures of ``figs`` (a ``TransparencyFigures``)."""
    from consentry.reports.transparency import TimingStats, _in

    if "notices" in tables:
        try:
            from consentry.db.models_notices import Notice
        except ImportError:  # pragma: no cover - the table exists but its model does not
            Notice = None
        if Notice is not None:
            counts: dict[str, Counter[str]] = defaultdict(Counter)
            hours: dict[str, list[float]] = defaultdict(list)
            pending: Counter[str] = Counter()
            q = select(Notice.regime, Notice.status, Notice.decision, Notice.valid_at, Notice.decided_at) \
                .where(_in(Notice.received_at, figs.start, figs.end))
            for regime, status, decision, valid_at, decided_at in s.execute(q):
                c = counts[regime]
                c["total"] += 1
                if status == "rejected" or decision == "reject":
                    c["invalid"] += 1
                elif status == "duplicate":
                    c["duplicate"] += 1
                elif valid_at is None:
                    c["incomplete"] += 1
                else:
                    c["valid"] += 1
                    if decision in REMOVAL_DECISIONS and decided_at is not None:
                        c["removed"] += 1
                        # a decision recorded before the clock started (an imported record) counts as 0 h
                        hours[regime].append(max(0.0, (_utc(decided_at) - _utc(valid_at)).total_seconds() / 3600.0))
                    elif decision is None:
                        pending[regime] += 1
                    else:
                        c["no_action"] += 1
            keys = ("valid", "invalid", "incomplete", "duplicate", "removed", "no_action", "total")
            figs.notices_source = "notices"
            figs.notices_by_regime = {r: {k: int(c.get(k, 0)) for k in keys} for r, c in counts.items()}
            figs.removal_by_regime = {r: TimingStats.of(hours.get(r, []), pending.get(r, 0)) for r in counts}
            figs.removal = TimingStats.of([h for r in counts for h in hours.get(r, [])], sum(pending.values()))
    if "statements_of_reasons" in tables:
        _statements(s, figs)
    _appeals(s, figs, tables)


def _statements(s, figs) -> None:
    """DSA statements of reasons issued in the period (``created_at``), by restriction and source."""
    from sqlalchemy import func

    from consentry.db.models_notices import StatementOfReasons as S
    from consentry.reports.transparency import _in

    by_r: Counter[str] = Counter()
    by_s: Counter[str] = Counter()
    q = select(S.restriction, S.source, func.count()).where(_in(S.created_at, figs.start, figs.end)) \
        .group_by(S.restriction, S.source)
    for restriction, source, n in s.execute(q):
        by_r[restriction] += int(n)
        by_s[source] += int(n)
    figs.statements_by_restriction, figs.statements_by_source = dict(by_r), dict(by_s)


def _appeals(s, figs, tables: set[str]) -> None:
    """Appeals (complaints against a decision) by outcome, from a table ``appeals`` with
    ``created_at`` and ``status`` columns if this instance has one; otherwise left as none."""
    if "appeals" not in tables:
        return
    from sqlalchemy import MetaData, Table, func

    t = Table("appeals", MetaData(), autoload_with=s.get_bind())
    if "created_at" not in t.c or "status" not in t.c:
        return
    q = select(t.c.status, func.count()).where(t.c.created_at >= figs.start, t.c.created_at < figs.end) \
        .group_by(t.c.status)
    figs.appeals = {str(st): int(n) for st, n in s.execute(q)}
    figs.appeals_source = "appeals"
