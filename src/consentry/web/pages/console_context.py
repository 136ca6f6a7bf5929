"""Read-only views the review console puts around a case: queue filters and counts, the next
case to review, the uploader's history, related cases sharing a hash, what each match means,
and per-reviewer daily counts for a team lead (counts only, never content).

Everything here reads the review tables; writes go through :class:`consentry.review.cases.CaseService`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable
from urllib.parse import urlencode

from sqlalchemy import func, or_, select

from consentry.db.models import utcnow
from consentry.signals.vpdq import VPDQ_MATCH_PERCENT
from consentry.db.models_review import Case, CaseItem, Decision, Reveal
from consentry.review.cases import OPEN_STATUSES, SENIOR_ROLES, CaseInfo, _case_info

_RULE = re.compile(r"^rule\s+(\S+)", re.M)
AGES = {"": "any age", "1": "older than 1 h", "4": "older than 4 h", "24": "older than 1 day",
        "72": "older than 3 days"}


def _aware(dt: datetime | None) -> datetime | None:
    return dt.replace(tzinfo=timezone.utc) if dt is not None and dt.tzinfo is None else dt


@dataclass(frozen=True)
class QueueFilter:
    """What the reviewer narrowed the queue to. ``tag`` matches a line of the case note (rule
    names, ``surface: ...``, a notice regime once notices carry one): generic on purpose."""

    queue: str = ""
    kind: str = ""   # bank kind of a match (ncii, csam, ...)
    rule: str = ""   # the enqueueing rule
    tag: str = ""    # any text in the case note
    age: str = ""    # minimum age in hours
    mine: bool = False

    @classmethod
    def from_params(cls, params: Any) -> "QueueFilter":
        def get(name: str, n: int = 100) -> str:
            return str(params.get(name) or "").strip()[:n]
        age = get("age", 4)
        return cls(queue=get("queue"), kind=get("kind", 40), rule=get("rule"), tag=get("tag"),
                   age=age if age in AGES else "", mine=get("mine", 2) == "1")

    def query(self, **extra: Any) -> str:
        """The filter as a query string (empty fields left out)."""
        pairs = {"queue": self.queue, "kind": self.kind, "rule": self.rule, "tag": self.tag, "age": self.age,
                 "mine": "1" if self.mine else ""}
        pairs.update({k: v for k, v in extra.items()})
        return urlencode({k: v for k, v in pairs.items() if v})

    @property
    def active(self) -> bool:
        return bool(self.query())


@dataclass
class QueueRow:
    case: CaseInfo
    kinds: list[str] = field(default_factory=list)
    banks: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)
    holder: str | None = None


def _rules(note: str) -> list[str]:
    return sorted(set(_RULE.findall(note or "")))


def queue_rows(db, f: QueueFilter, reviewer: str, *, limit: int = 200, scan: int = 2000) -> list[QueueRow]:
    """Open cases in review order (priority, then SLA), narrowed by ``f``."""
    now = utcnow()
    with db.session() as s:
        counts = select(CaseItem.case_id, func.count().label("n")).group_by(CaseItem.case_id).subquery()
        q = (select(Case, func.coalesce(counts.c.n, 0)).outerjoin(counts, counts.c.case_id == Case.id)
             .where(Case.status.in_(list(OPEN_STATUSES))))
        if f.queue:
            q = q.where(Case.queue == f.queue)
        if f.mine:
            q = q.where(Case.claimed_by == reviewer, Case.claim_expires_at > now)
        if f.age:
            q = q.where(Case.created_at <= now - timedelta(hours=int(f.age)))
        if f.tag:
            q = q.where(Case.note.contains(f.tag))
        q = q.order_by(Case.priority.desc(), Case.sla_due_at, Case.id).limit(scan)
        found = [(_case_info(c, int(n))) for c, n in s.execute(q)]
        matches: dict[int, list] = {}
        ids = [c.id for c in found]
        for i in range(0, len(ids), 500):
            for cid, m in s.execute(select(CaseItem.case_id, CaseItem.matches)
                                    .where(CaseItem.case_id.in_(ids[i:i + 500]))):
                matches.setdefault(cid, []).extend(x for x in (m or []) if isinstance(x, dict))
    rows = []
    for c in found:
        ms = matches.get(c.id, [])
        row = QueueRow(c, sorted({str(m.get("bank_kind")) for m in ms if m.get("bank_kind")}),
                       sorted({str(m.get("bank")) for m in ms if m.get("bank")}), _rules(c.note), c.claim_holder(now))
        if f.kind and f.kind not in row.kinds:
            continue
        if f.rule and f.rule not in row.rules:
            continue
        rows.append(row)
        if len(rows) >= limit:
            break
    return rows


def next_case_id(db, f: QueueFilter, reviewer: str, role: str, *, skip: Iterable[int] = ()) -> int | None:
    """The first case of the (filtered) queue this reviewer can decide now: not held by someone
    else, not waiting for a second review, escalated only for curators and admins."""
    skip = set(skip)
    for row in queue_rows(db, f, reviewer, limit=50):
        c = row.case
        if c.id in skip or c.status == "pending_approval" or (row.holder and row.holder != reviewer):
            continue
        if c.status == "escalated" and role not in SENIOR_ROLES:
            continue
        return c.id
    return None


def queue_counts(db) -> dict[str, dict[str, int]]:
    """Per queue: open cases, overdue ones and those claimed right now."""
    now = utcnow()
    out: dict[str, dict[str, int]] = {}
    with db.session() as s:
        for name, due, exp in s.execute(select(Case.queue, Case.sla_due_at, Case.claim_expires_at)
                                        .where(Case.status.in_(list(OPEN_STATUSES)))):
            d = out.setdefault(name, {"open": 0, "overdue": 0, "claimed": 0})
            d["open"] += 1
            d["overdue"] += int(_aware(due) < now)
            d["claimed"] += int(exp is not None and _aware(exp) > now)
    return dict(sorted(out.items()))


def kinds_seen(rows: list[QueueRow]) -> list[str]:
    return sorted({k for r in rows for k in r.kinds})


# ------------------------------------------------------------------ around one case
def uploader_history(db, case: CaseInfo, limit: int = 20) -> list[dict[str, Any]]:
    """The same uploader's other cases (newest first) with their decisions."""
    if not case.uploader_id:
        return []
    with db.session() as s:
        cases = list(s.scalars(select(Case).where(Case.uploader_id == case.uploader_id, Case.id != case.id)
                               .order_by(Case.id.desc()).limit(limit)))
        ids = [c.id for c in cases]
        decisions: dict[int, list[Decision]] = {}
        if ids:
            for d in s.scalars(select(Decision).where(Decision.case_id.in_(ids)).order_by(Decision.id)):
                decisions.setdefault(d.case_id, []).append(d)
        n_items = dict(s.execute(select(CaseItem.case_id, func.count()).where(CaseItem.case_id.in_(ids))
                                 .group_by(CaseItem.case_id)).all()) if ids else {}
        return [{"id": c.id, "status": c.status, "queue": c.queue, "created_at": c.created_at,
                 "item_count": int(n_items.get(c.id, 0)),
                 "decisions": [{"kind": d.kind, "status": d.status, "bank": d.bank, "reviewer": d.reviewer,
                                "at": d.created_at} for d in decisions.get(c.id, [])]} for c in cases]


def related_cases(db, case: CaseInfo, limit: int = 20) -> list[dict[str, Any]]:
    """Other cases holding an item with the same SHA-256, MD5 or PDQ as one of this case's items."""
    sha = {i.sha256 for i in case.items if i.sha256}
    md5 = {i.md5 for i in case.items if i.md5}
    pdq = {i.pdq for i in case.items if i.pdq}
    conds = []
    if sha:
        conds.append(CaseItem.content_sha256.in_(sha))
    if md5:
        conds.append(CaseItem.md5.in_(md5))
    if pdq:
        conds.append(CaseItem.pdq.in_(pdq))
    if not conds:
        return []
    out: dict[int, dict[str, Any]] = {}
    with db.session() as s:
        q = (select(CaseItem, Case).join(Case, Case.id == CaseItem.case_id)
             .where(or_(*conds), CaseItem.case_id != case.id).order_by(Case.id.desc()).limit(limit * 5))
        for it, c in s.execute(q):
            r = out.setdefault(c.id, {"id": c.id, "status": c.status, "uploader_id": c.uploader_id,
                                      "queue": c.queue, "shared": set()})
            if it.content_sha256 in sha:
                r["shared"].add("SHA-256")
            if it.md5 in md5:
                r["shared"].add("MD5")
            if it.pdq in pdq:
                r["shared"].add("PDQ")
    rows = list(out.values())[:limit]
    for r in rows:
        r["shared"] = sorted(r["shared"])
    return rows


def distance_words(signal_type: str, distance: Any, threshold: Any) -> str:
    """What a match distance means, in plain words."""
    try:
        d = float(distance)
    except (TypeError, ValueError):
        return "distance not reported"
    if signal_type == "vpdq":  # the distance is 100 minus the better of the two match percentages
        found = max(0.0, 100.0 - d)
        return (f"same video frames: {found:.4g} % of the sampled frames found, in order where the stored "
                f"video keeps every frame (a video matches from {VPDQ_MATCH_PERCENT:g} %)")
    if signal_type in ("md5", "sha256") or d == 0:
        return "identical file" if signal_type in ("md5", "sha256") else "identical picture (distance 0)"
    if signal_type == "pdq":
        words = ("near-identical (re-saved, resized or lightly edited)" if d <= 16 else
                 "very similar (cropped, filtered or re-encoded)" if d <= 31 else
                 "loosely similar: check by eye")
        limit = f"; this bank matches up to {threshold}" if threshold is not None else ""
        return f"{words}: {int(d)} of 256 bits differ{limit}"
    return f"distance {distance}"


def describe_matches(banks_service, matches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Matches (as ``Match.to_dict``) with their entries' provenance and what each distance means."""

    @dataclass
    class _One:
        id: int
        matches: list
    return match_details(banks_service, [_One(0, matches)]).get(0, [])


def match_details(banks_service, items: list) -> dict[int, list[dict[str, Any]]]:
    """Per item id: its matches with the entry's provenance and the bank's kind and description."""
    entry_ids = [m.get("entry_id") for it in items for m in it.matches
                 if isinstance(m, dict) and isinstance(m.get("entry_id"), int)]
    try:
        entries = banks_service.entries_by_id(entry_ids) if entry_ids else {}
    except Exception:  # noqa: BLE001 - context is best effort; the raw match still shows
        entries = {}
    bank_info: dict[str, Any] = {}
    for b in banks_service.list_banks():
        bank_info[b.name] = b
    out: dict[int, list[dict[str, Any]]] = {}
    for it in items:
        rows = []
        for m in it.matches:
            if not isinstance(m, dict):
                continue
            e = entries.get(m.get("entry_id"))
            e = e[0] if isinstance(e, tuple) else e
            b = bank_info.get(m.get("bank"))
            st = str(m.get("signal_type") or "")
            threshold = None
            if b is not None:
                try:
                    threshold = b.threshold(st)
                except Exception:  # noqa: BLE001
                    threshold = None
            rows.append({
                "bank": m.get("bank"), "kind": m.get("bank_kind") or (b.kind if b else None),
                "description": b.description if b else None, "signal_type": st, "distance": m.get("distance"),
                "meaning": distance_words(st, m.get("distance"), threshold), "entry_id": m.get("entry_id"),
                "via": _VIA.get((st, str(m.get("query_variant") or ""))) or _VIA.get(str(m.get("query_variant") or "")),
                "when": video_offset_words(m.get("offset_seconds"), m.get("speed")),
                "stored_as": stored_variant_words(m.get("stored_variant")),
                "source": e.source if e else None, "tags": list(e.tags) if e else [],
                "category": e.category if e else None, "added_by": e.added_by if e else None,
                "added_at": e.added_at if e else None, "entry_status": e.status if e else None})
        out[it.id] = rows
    return out


#: how a PDQ match was reached when not through the picture's plain hash (issue 21)
_VIA = {"trimmed": "matched once the borders (letterbox or pillarbox bars) of the submitted picture were removed",
        "screenshot": "matched through the photo found inside the submitted screenshot",
        ("vpdq", "trimmed"): "matched once the bars (letterbox or pillarbox) around the submitted video were removed"}


def stored_variant_words(kind: Any) -> str | None:
    """Which local variant of the banked picture a match met (issue 21), in words."""
    if not isinstance(kind, str) or not kind:
        return None
    if kind == "trimmed":
        return "it matches the banked picture without its borders"
    m = re.fullmatch(r"crop(\d+)@([\d.]+),([\d.]+)", kind)
    if m:
        where = {(0.5, 0.5): "the centre", (0.0, 0.0): "the top-left corner", (1.0, 0.0): "the top-right corner",
                 (0.0, 1.0): "the bottom-left corner", (1.0, 1.0): "the bottom-right corner"}.get(
                     (float(m.group(2)), float(m.group(3))), "part")
        return f"it matches {where} of the banked picture ({m.group(1)} % of each side): a cropped copy"
    m = re.fullmatch(r"rot([+-][\d.]+)", kind)
    if m:
        return f"it matches the banked picture turned {abs(float(m.group(1))):g}\u00b0: a straightened or tilted copy"
    return f"it matches a variant of the banked picture ({kind})"


def video_offset_words(offset: Any, speed: Any) -> str | None:
    """Where a matched clip sits in the stored video (dense vPDQ alignment), in words."""
    if not isinstance(offset, (int, float)):
        return None
    if offset >= 0:
        words = f"the submitted clip starts {offset:.1f} s into the stored video"
    else:
        words = f"the stored video starts {-offset:.1f} s into the submitted clip"
    if isinstance(speed, (int, float)) and abs(speed - 1.0) >= 0.03:
        words += f", played {speed:.2f}\u00d7 as fast"
    return words

_STRENGTH = {"strong": "strong sign", "moderate": "some sign", "weak": "weak hint", "none": "no sign"}


def evidence_words(e: dict[str, Any]) -> str:
    """One assessment finding as a plain sentence."""
    if e.get("kind") == "notice":
        where = e.get("url") or e.get("content_id") or "a location"
        return f"Named in notice {e.get('notice')}: {where} (content {e.get('content_id') or '?'})."
    if e.get("kind") == "notice-image":
        return f"The picture the notifier attached to notice {e.get('notice')} (hashed)."
    sentence = str(e.get("sentence") or "").strip()
    claim = str(e.get("claim") or "finding").replace("_", " ")
    strength = _STRENGTH.get(str(e.get("strength") or ""), str(e.get("strength") or "unknown strength"))
    source = str(e.get("source") or "").replace("_", " ")
    base = sentence or f"The {source or 'check'} reports: {claim}."
    return f"{base} ({strength}{', from ' + source if source else ''})"


# ------------------------------------------------------------------ for team leads
def daily_summary(db, day: datetime | None = None) -> dict[str, Any]:
    """Per reviewer for one UTC day: decisions by kind, second reviews, undos and reveals. Counts only."""
    day = (day or utcnow()).astimezone(timezone.utc)
    start = day.replace(hour=0, minute=0, second=0, microsecond=0)
    end = start + timedelta(days=1)
    people: dict[str, dict[str, int]] = {}

    def bump(who: str | None, key: str, n: int = 1) -> None:
        if who:
            d = people.setdefault(who, {"confirm": 0, "dismiss": 0, "escalate": 0, "second_reviews": 0,
                                        "undone": 0, "reveals": 0, "cases": 0})
            d[key] += n
    with db.session() as s:
        for who, kind, status, n in s.execute(
                select(Decision.reviewer, Decision.kind, Decision.status, func.count())
                .where(Decision.created_at >= start, Decision.created_at < end)
                .group_by(Decision.reviewer, Decision.kind, Decision.status)):
            bump(who, "undone" if status == "undone" else kind, int(n))
        for who, n in s.execute(select(Decision.second_reviewer, func.count())
                                .where(Decision.reviewed_at >= start, Decision.reviewed_at < end,
                                       Decision.second_reviewer.is_not(None))
                                .group_by(Decision.second_reviewer)):
            bump(who, "second_reviews", int(n))
        for who, n, cases in s.execute(select(Reveal.reviewer, func.count(), func.count(func.distinct(Reveal.case_id)))
                                       .where(Reveal.at >= start, Reveal.at < end).group_by(Reveal.reviewer)):
            bump(who, "reveals", int(n))
            bump(who, "cases", int(cases))
    return {"day": start.date().isoformat(), "reviewers": dict(sorted(people.items()))}


def sla_state(due: datetime, now: datetime | None = None) -> tuple[str, str]:
    """(``"in 3 h 20 min"`` / ``"overdue 5 min"``, css class ok|soon|overdue) for an SLA deadline."""
    now = now or utcnow()
    left = int((_aware(due) - now).total_seconds())
    span = abs(left)
    words = (f"{span // 86400} d {span % 86400 // 3600} h" if span >= 86400 else
             f"{span // 3600} h {span % 3600 // 60:02d} min" if span >= 3600 else f"{span // 60} min")
    if left < 0:
        return f"overdue {words}", "overdue"
    return f"in {words}", "soon" if left < 3600 else "ok"


# ------------------------------------------------------------------ audit view
@dataclass(frozen=True)
class AuditFilter:
    """What an auditor narrowed the audit log to: event type, actor and a UTC time window."""

    event_type: str = ""
    actor: str = ""
    since: str = ""  # YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)
    until: str = ""

    @classmethod
    def from_params(cls, params: Any) -> "AuditFilter":
        def get(name: str, n: int) -> str:
            return str(params.get(name) or "").strip()[:n]
        since, until = get("since", 16), get("until", 16)
        return cls(event_type=get("event_type", 64), actor=get("actor", 200),
                   since=since if _when(since) else "", until=until if _when(until) else "")

    def query(self, **extra: Any) -> str:
        pairs = {"event_type": self.event_type, "actor": self.actor, "since": self.since, "until": self.until}
        pairs.update(extra)
        return urlencode({k: v for k, v in pairs.items() if v not in ("", None)})


def _when(text: str) -> datetime | None:
    """A UTC time typed by a person (date, or date and time); None when it is not one."""
    for fmt in ("%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    return None


def audit_events(db, f: AuditFilter, *, before: int = 0, limit: int = 100) -> list:
    """Audit events newest first (cursor: ``before`` a sequence number), narrowed by ``f``."""
    from consentry.db.models_audit import AuditEvent
    from consentry.review.audit import _record

    limit = max(1, min(int(limit), 50_000))
    with db.session() as s:
        q = select(AuditEvent)
        if before:
            q = q.where(AuditEvent.seq < before)
        if f.event_type:
            q = q.where(AuditEvent.event_type == f.event_type)
        if f.actor:
            q = q.where(AuditEvent.actor == f.actor)
        if f.since:
            q = q.where(AuditEvent.at >= _when(f.since))
        if f.until:
            until = _when(f.until)
            q = q.where(AuditEvent.at < (until + timedelta(days=1) if len(f.until) == 10 else until))
        return [_record(e) for e in s.scalars(q.order_by(AuditEvent.seq.desc()).limit(limit))]


def audit_choices(db) -> tuple[list[str], list[str]]:
    """The event types and actors present, for the filter menus."""
    from consentry.db.models_audit import AuditEvent

    with db.session() as s:
        types = sorted(t for (t,) in s.execute(select(AuditEvent.event_type).distinct().limit(500)))
        actors = sorted(a for (a,) in s.execute(select(AuditEvent.actor).distinct().limit(500)))
    return types, actors
