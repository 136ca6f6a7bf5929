"""The sweep: when an entry becomes active in a bank, find the copies already online.

Entries become active in many places (victim submissions, exchange pulls, console confirms,
notice decisions, imports); all of them write an ``add`` (or ``enable``) row to the bank change
log. The :class:`Sweeper` follows that log from its own durable cursor (``sweep_cursors``), so
no door needs a hook:

1. new changes are read (:class:`~consentry.ledger.follow.ChangeFollower`: out-of-order commits
   on PostgreSQL are waited for, never skipped);
2. each entry that is active now is searched in the ledger with its bank's threshold — PDQ
   against every dihedral variant the ledger holds (a rotated or mirrored copy), MD5/SHA-256
   exactly, vPDQ with the video rule — skipping allow banks, banks under a timed disable and
   contents outside a bank's gradual rollout;
3. hits are recorded in ``sweep_hits`` (unique per content and entry) and, for the hits that are
   new, the rules decide per content (as for an upload: its uploader and surface are the
   context); ``{webhook: SINK}`` actions store a ``content.matched`` delivery. Hits, deliveries
   and the advanced cursor are written in **one transaction**: after a crash the sweep resumes at
   the cursor and re-finds the same hits, which are then not new — nobody is notified twice and no
   change is skipped;
4. after the commit, ``enqueue`` actions open review cases, and registered callbacks
   (:meth:`Sweeper.on_hits`, e.g. the notice that asked) are told.

One sweeper runs at a time across workers and hosts (:func:`consentry.db.locks.exclusive`); a
whole bank is re-swept with :meth:`Sweeper.sweep_bank` (``consentry sweep --bank``).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from sqlalchemy import select

from consentry.banks.service import BankInfo, BankService, EntryInfo
from consentry.db.models import utcnow
from consentry.db.models_audit import WebhookDelivery
from consentry.db.models_ledger import SweepCursor, SweepHit
from consentry.db.session import Database
from consentry.index import DIHEDRAL_TRANSFORMS
from consentry.ledger.follow import ChangeFollower
from consentry.ledger.index import LedgerIndex
from consentry.ledger.service import ContentInfo, LedgerService
from consentry.signals import PDQ_MIN_QUALITY, PDQ_THRESHOLD
from consentry.signals.vpdq import VPDQ_DISTANCE_THRESHOLD, VPDQ_MATCH_PERCENT, compare_frames, is_dense, parse_frames

log = logging.getLogger("consentry.sweep")

EVENT = "content.matched"
CURSOR_NAME = "bank-changes"
LOCK = ("ledger", "sweep")
#: entries swept per step of a bank re-sweep / change batch
STEP = 5000
#: contents per content.matched payload (more are sent as several payloads)
PAYLOAD_CONTENTS = 100
ACTIVATING_OPS = ("add", "enable")


@dataclass
class LedgerHit:
    """One hosted content found for one bank entry."""

    content: ContentInfo
    entry_id: int
    bank: str
    bank_id: int
    bank_kind: str
    signal_type: str
    distance: int | float
    transform: str | None
    tags: list[str] = field(default_factory=list)
    category: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    new: bool = False  # recorded by this sweep (False: found before, already acted on)
    action: dict[str, Any] = field(default_factory=dict)

    def match_dict(self) -> dict[str, Any]:
        """The match as the rules and a webhook see it (as a match response's ``matches``)."""
        return {"bank": self.bank, "bank_kind": self.bank_kind, "entry_id": self.entry_id,
                "signal_type": self.signal_type, "distance": self.distance, "transform": self.transform,
                "provenance": {"tags": self.tags, "category": self.category}, **self.detail}

    def to_dict(self) -> dict[str, Any]:
        d = {**self.content.public(), **self.match_dict(), "new": self.new}
        d.pop("provenance")
        if self.action:
            d["action"] = self.action
        return d


@dataclass
class SweepReport:
    trigger: str
    entries: int = 0  # active entries searched
    hits: list[LedgerHit] = field(default_factory=list)
    webhooks: int = 0  # content.matched deliveries stored
    cases: int = 0
    cursor: int | None = None  # the sweeper's durable cursor afterwards (change-log sweeps)
    changes: int = 0
    busy: bool = False  # another process holds the sweep lock
    seconds: float = 0.0

    @property
    def new_hits(self) -> list[LedgerHit]:
        return [h for h in self.hits if h.new]

    def to_dict(self, hits: int = 1000) -> dict[str, Any]:
        return {"trigger": self.trigger, "entries": self.entries, "changes": self.changes,
                "hits": len(self.hits), "new_hits": len(self.new_hits), "webhooks": self.webhooks,
                "cases": self.cases, "cursor": self.cursor, "busy": self.busy, "seconds": round(self.seconds, 3),
                "found": [h.to_dict() for h in self.hits[:hits]]}


@dataclass
class Copy:
    """A hosted content found for a set of hashes (:meth:`Sweeper.find_copies`)."""

    content: ContentInfo
    signal_type: str
    distance: int | float
    transform: str | None

    def to_dict(self) -> dict[str, Any]:
        return {**self.content.public(), "signal_type": self.signal_type, "distance": self.distance,
                "transform": self.transform}


class Sweeper:
    """Searches the ledger for bank entries, records what it finds and acts through the rules.

    ``rules`` is a callable returning the current :class:`~consentry.policy.rules.RuleSet` (e.g.
    ``PolicyRuntime.rules.current``); ``webhooks`` a
    :class:`~consentry.review.webhooks.WebhookDispatcher` (its ``build`` signs nothing, it only
    shapes the stored payload); ``open_case`` the review queue's enqueue handler. Without rules no
    action is taken (hits are still recorded).
    """

    def __init__(self, db: Database, *, home: Path | None = None, rules: Callable[[], Any] | None = None,
                 webhooks: Any = None, open_case: Callable[[Any], Any] | None = None,
                 index: LedgerIndex | None = None, banks: BankService | None = None):
        self.db = db
        self.home = Path(home) if home else None
        self.banks = banks or BankService(db)
        self.ledger = LedgerService(db)
        self.index = index or LedgerIndex(db, self.ledger)
        self.rules = rules
        self.webhooks = webhooks
        self.open_case = open_case
        self._callbacks: list[Callable[[SweepReport], Any]] = []
        self._follower: ChangeFollower | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_policy(cls, db: Database, policy: Any, settings: Any, open_case=None, **kw: Any) -> "Sweeper":
        """A sweeper acting through a :class:`~consentry.policy.runtime.PolicyRuntime`."""
        return cls(db, home=settings.home, rules=policy.rules.current, webhooks=policy.webhooks,
                   open_case=open_case, **kw)

    def on_hits(self, callback: Callable[[SweepReport], Any]) -> None:
        """Call ``callback(report)`` after every sweep that recorded new hits (never raises into
        the sweep: errors are logged)."""
        self._callbacks.append(callback)

    # ------------------------------------------------------------ the change log
    def cursor(self) -> int:
        with self.db.session() as s:
            return int(s.scalar(select(SweepCursor.cursor).where(SweepCursor.name == CURSOR_NAME)) or 0)

    def follow(self) -> SweepReport:
        """Sweep every entry activated since the durable cursor (one sweeper across processes:
        ``busy`` when another holds the lock)."""
        report = SweepReport("change")
        t0 = time.monotonic()
        with self._exclusive() as mine, self._lock:
            if not mine:
                report.busy = True
                return report
            self.index.refresh()
            durable = self.cursor()
            if self._follower is None or self._follower.cursor < durable:
                self._follower = ChangeFollower(self.banks.changes_since, durable)
            follower = self._follower

            def on_batch(batch: list[dict[str, Any]]) -> None:
                report.changes += len(batch)
                ids = [c["entry_id"] for c in batch if c["op"] in ACTIVATING_OPS and c["entry_id"] is not None]
                self._sweep(list(dict.fromkeys(ids)), report, cursor=follower.cursor)

            try:
                follower.drain(on_batch, limit=STEP)
            except BaseException:
                self._follower = None  # what was read but not committed is read again
                raise
            report.cursor = follower.cursor
        report.seconds = time.monotonic() - t0
        self._after(report)
        return report

    def _exclusive(self):
        from contextlib import nullcontext

        from consentry.db.locks import exclusive

        if self.home is None:
            return nullcontext(True)
        return exclusive(self.db, self.home, *LOCK)

    # ------------------------------------------------------------ on demand
    def sweep_bank(self, bank: str, *, on_progress: Callable[[SweepReport], Any] | None = None) -> SweepReport:
        """Re-sweep every active entry of ``bank`` (hits found before are not acted on again)."""
        info = self.banks.get_bank(bank)  # NotFound for an unknown bank
        report = SweepReport(f"bank-sweep:{info.name}")
        t0 = time.monotonic()
        self.index.refresh()
        after = 0
        while True:
            page = self.banks.list_entries(bank, status="active", after_id=after, limit=STEP)
            if not page:
                break
            after = page[-1].id
            self._sweep([e.id for e in page], report, entries={e.id: e for e in page})
            if on_progress:
                on_progress(report)
        report.seconds = time.monotonic() - t0
        self._after(report)
        return report

    def sweep_entries(self, entry_ids: Sequence[int], *, trigger: str = "api") -> SweepReport:
        """Sweep these entries now (e.g. a notice's hashes just added to a bank): hits are
        recorded and acted on as for the change log, and returned — old ones too (``new`` False)."""
        report = SweepReport(trigger)
        t0 = time.monotonic()
        self.index.refresh()
        for i in range(0, len(entry_ids), STEP):
            self._sweep(list(entry_ids[i:i + STEP]), report)
        report.seconds = time.monotonic() - t0
        self._after(report)
        return report

    def find_copies(self, *, md5: Iterable[str] = (), sha256: Iterable[str] = (), pdq: Iterable[str] = (),
                    pdq_threshold: int = PDQ_THRESHOLD, vpdq: str | None = None,
                    vpdq_threshold: int = VPDQ_DISTANCE_THRESHOLD) -> list[Copy]:
        """The hosted copies of these hashes, found now, recorded nowhere and acted on by no rule
        (``pdq_threshold=0`` for identical copies only)."""
        self.index.refresh()
        found: dict[int, tuple[str, int | float, str | None]] = {}
        pdq = list(pdq)
        for hits in self.index.search_pdq(pdq, pdq_threshold):
            for pk, d, v in hits:
                if pk not in found or d < found[pk][1]:
                    found[pk] = ("pdq", d, DIHEDRAL_TRANSFORMS[v])
        for st, values in (("md5", list(md5)), ("sha256", list(sha256))):
            for infos in self.ledger.by_digest(st, values).values():
                for c in infos:
                    found[c.pk] = (st, 0, None)
        if vpdq:
            for pk, det in self._video_hits(parse_frames(vpdq), vpdq_threshold).items():
                best = max(det["query_match_percent"], det["compared_match_percent"])
                if pk not in found:
                    found[pk] = ("vpdq", round(100.0 - best, 2), None)
        rows = self.ledger.by_pk(found)
        out = [Copy(rows[pk], *found[pk]) for pk in found if pk in rows and rows[pk].status == "active"]
        return sorted(out, key=lambda c: (c.distance, c.content.content_id))

    def _video_hits(self, frames: list, threshold: int) -> dict[int, dict[str, Any]]:
        """Hosted videos that match a bank video's frames: content pk -> the match figures, as
        a bank video match (query = the bank's video, compared = the hosted copy).

        A bank video stored with every frame (issue 21) is compared the other way round: the
        hosted copy, hashed one frame a second, is aligned against the bank's frames
        (:func:`consentry.signals.vpdq.compare_frames`), so a copy re-cut at any offset is found;
        ``offset_seconds`` is where the hosted copy starts in the bank's video."""
        found = self.index.search_vpdq(frames, threshold)
        if not is_dense(frames):
            return {pk: det for pk, det in found.items()
                    if max(det["query_match_percent"], det["compared_match_percent"]) >= VPDQ_MATCH_PERCENT}
        out: dict[int, dict[str, Any]] = {}
        for pk, c in self.ledger.by_pk(found).items():
            if not c.vpdq:
                continue
            m = compare_frames(parse_frames(c.vpdq), frames, threshold)
            if m.matched:
                out[pk] = {"query_match_percent": m.compared_match_percent,
                           "compared_match_percent": m.query_match_percent,
                           "query_matched_seconds": m.compared_matched_seconds,
                           "compared_matched_seconds": m.query_matched_seconds,
                           "offset_seconds": m.offset_seconds, "speed": m.speed}
        return out

    # ------------------------------------------------------------ the core
    def _sweep(self, entry_ids: list[int], report: SweepReport, *, cursor: int | None = None,
               entries: dict[int, EntryInfo] | None = None) -> None:
        hits = self._find(entry_ids, report, entries)
        self._record(hits, report, cursor)

    def _find(self, entry_ids: list[int], report: SweepReport,
              entries: dict[int, EntryInfo] | None) -> list[LedgerHit]:
        if not entry_ids or not self.ledger.has_active():
            # nothing hosted on record: no entry can meet a copy, so none is loaded (a service
            # started on a freshly imported million-entry bank would otherwise read them all)
            return []
        banks = self.banks.banks_by_id()
        if entries is None:
            rows = self.banks.entries_by_id(entry_ids)
            picked = [(rows[i][0], banks.get(rows[i][1])) for i in entry_ids if i in rows]
        else:
            by_name = {b.name: b for b in banks.values()}
            picked = [(entries[i], by_name.get(entries[i].bank)) for i in entry_ids if i in entries]
        now = utcnow()
        live = [(e, b) for e, b in picked
                if b is not None and e.status == "active" and b.kind != "allow" and not b.disabled_at(now)]
        report.entries += len(live)
        cands: list[tuple[int, EntryInfo, BankInfo, str, int | float, str | None, dict[str, Any]]] = []
        by_t: dict[float, list[tuple[EntryInfo, BankInfo]]] = {}
        for e, b in live:
            if e.signal_type == "pdq" and (e.quality is None or e.quality >= PDQ_MIN_QUALITY):
                by_t.setdefault(b.threshold("pdq"), []).append((e, b))
        for t, group in by_t.items():
            # each entry's plain PDQ and its stored-side variants (crops, rotations, borderless:
            # issue 21), the nearest of them per hosted content
            variants = self.banks.variants_for([e.id for e, _ in group]) if self.banks.has_variants() else {}
            probes = [(e, b, e.value, None) for e, b in group]
            probes += [(e, b, pdq, kind) for e, b in group for _vid, kind, pdq in variants.get(e.id, [])]
            nearest: dict[tuple[int, int], tuple] = {}
            for (e, b, _value, kind), hits in zip(probes, self.index.search_pdq([p[2] for p in probes], t)):
                for pk, d, v in hits:
                    key = (pk, e.id)
                    if key not in nearest or d < nearest[key][3]:
                        nearest[key] = (e, b, kind, d, v)
            cands += [(pk, e, b, "pdq", d, DIHEDRAL_TRANSFORMS[v], {"stored_variant": kind} if kind else {})
                      for (pk, _eid), (e, b, kind, d, v) in nearest.items()]
        for st in ("md5", "sha256"):
            group = [(e, b) for e, b in live if e.signal_type == st]
            if group:
                found = self.ledger.by_digest(st, [e.value for e, _ in group])
                for e, b in group:
                    cands += [(c.pk, e, b, st, 0, None, {}) for c in found.get(e.value.lower(), [])]
        for e, b in live:
            if e.signal_type != "vpdq":
                continue
            for pk, det in self._video_hits(parse_frames(e.value), int(b.threshold("vpdq"))).items():
                best = max(det["query_match_percent"], det["compared_match_percent"])
                cands.append((pk, e, b, "vpdq", round(100.0 - best, 2), None, det))
        if not cands:
            return []
        contents = self.ledger.by_pk({c[0] for c in cands})
        out = []
        for pk, e, b, st, d, transform, detail in cands:
            c = contents.get(pk)
            if c is None or c.status != "active":
                continue
            if b.match_percent < 100 and not b.in_rollout(("sha256:" + c.sha256) if c.sha256 else c.content_id):
                continue
            out.append(LedgerHit(c, e.id, b.name, b.id, b.kind, st, d, transform, list(e.tags or []),
                                 e.category, detail))
        return out

    def _record(self, hits: list[LedgerHit], report: SweepReport, cursor: int | None) -> None:
        """Record hits; act on the new ones; save the cursor — all in one transaction."""
        report.hits.extend(hits)
        if not hits and cursor is None:
            return
        with self.db.session() as s:
            known: set[tuple[int, int]] = set()
            entry_ids = sorted({h.entry_id for h in hits})
            for i in range(0, len(entry_ids), 500):
                known |= {(int(a), int(b)) for a, b in s.execute(
                    select(SweepHit.content_pk, SweepHit.entry_id).where(SweepHit.entry_id.in_(entry_ids[i:i + 500])))}
            fresh = [h for h in hits if (h.content.pk, h.entry_id) not in known]
            fresh = list({(h.content.pk, h.entry_id): h for h in fresh}.values())
            per_content: dict[int, list[LedgerHit]] = {}
            for h in fresh:
                per_content.setdefault(h.content.pk, []).append(h)
            decisions = {pk: self._decide(hs) for pk, hs in per_content.items()}
            now = utcnow()
            inserted = self._insert_hits(s, fresh, decisions, report.trigger, now)
            payloads: dict[str, list[dict[str, Any]]] = {}
            for pk, hs in per_content.items():
                mine = [h for h in hs if (pk, h.entry_id) in inserted]
                if not mine:
                    continue
                for h in mine:
                    h.new, h.action = True, decisions[pk][1]
                decision = decisions[pk][0]
                for w in (decision.webhooks if decision else []):
                    payloads.setdefault(w.sink, []).append(
                        {**mine[0].content.public(), "decision": decision.verdict(), "rule": w.rule,
                         "matches": [_summary(h) for h in mine][:100]})
            report.webhooks += self._store_webhooks(s, payloads, report.trigger, now)
            if cursor is not None:
                row = s.get(SweepCursor, CURSOR_NAME)
                if row is None:
                    s.add(SweepCursor(name=CURSOR_NAME, cursor=cursor, updated_at=now))
                elif cursor > row.cursor:
                    row.cursor, row.updated_at = cursor, now
        if report.webhooks and self.webhooks is not None:
            self.webhooks.start()
        self._open_cases([h for h in fresh if h.new], decisions, report)

    def _decide(self, hits: list[LedgerHit]) -> tuple[Any, dict[str, Any]]:
        if self.rules is None:
            return None, {}
        from consentry.policy.rules import RuleContext

        c = hits[0].content
        decision = self.rules().evaluate(RuleContext([h.match_dict() for h in hits], [], None,
                                                     c.uploader_id, c.surface))
        return decision, {"decision": decision.decision, "block": decision.block, "rules": decision.fired,
                          "webhooks": [w.sink for w in decision.webhooks],
                          "enqueue": [e.queue for e in decision.enqueue]}

    def _insert_hits(self, s, fresh: list[LedgerHit], decisions, trigger: str, now) -> set[tuple[int, int]]:
        if not fresh:
            return set()
        if self.db.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        rows = [{"content_pk": h.content.pk, "content_id": h.content.content_id, "entry_id": h.entry_id,
                 "bank_id": h.bank_id, "bank": h.bank, "signal_type": h.signal_type, "distance": float(h.distance),
                 "transform": h.transform, "at": now, "trigger": trigger[:64],
                 "action": decisions[h.content.pk][1]} for h in fresh]
        stmt = insert(SweepHit.__table__).on_conflict_do_nothing(
            index_elements=["content_pk", "entry_id"]).returning(SweepHit.content_pk, SweepHit.entry_id)
        return {(int(a), int(b)) for a, b in s.execute(stmt, rows)}

    def _store_webhooks(self, s, payloads: dict[str, list[dict[str, Any]]], trigger: str, now) -> int:
        """``content.matched`` deliveries, stored in the sweep's own transaction."""
        if not payloads or self.webhooks is None:
            return 0
        sinks = self.rules().sinks if self.rules else {}
        n = 0
        for sink, contents in payloads.items():
            for i in range(0, len(contents), PAYLOAD_CONTENTS):
                item = self.webhooks.build(sink, EVENT, {"trigger": trigger,
                                                         "contents": contents[i:i + PAYLOAD_CONTENTS]})
                spec = sinks.get(sink)
                s.add(WebhookDelivery(sink=sink, event_type=EVENT, body=item["body"], status="pending", attempts=0,
                                      max_attempts=spec.max_attempts if spec else 1, created_at=now,
                                      next_attempt_at=now, log=[]))
                n += 1
        return n

    def _open_cases(self, fresh: list[LedgerHit], decisions, report: SweepReport) -> None:
        if self.open_case is None:
            return
        from consentry.policy.runtime import EnqueueRequest

        per_content: dict[int, list[LedgerHit]] = {}
        for h in fresh:
            per_content.setdefault(h.content.pk, []).append(h)
        for pk, hs in per_content.items():
            decision = decisions[pk][0]
            if decision is None:
                continue
            c = hs[0].content
            query = {"sha256": c.sha256, "md5": c.md5, "pdq": c.pdq, "pdq_quality": c.pdq_quality,
                     "content_type": c.content_type if c.content_type in ("photo", "video") else "photo",
                     "content_id": c.content_id, "url": c.url}
            for e in decision.enqueue:
                try:
                    case = self.open_case(EnqueueRequest(e.queue, e.priority, e.rule, decision.verdict(), query,
                                                         [h.match_dict() for h in hs], [], c.uploader_id, c.surface))
                    report.cases += 1
                    case_id = getattr(case, "id", None)
                    if case_id is not None:
                        self._note_case(hs, case_id)
                except Exception:  # noqa: BLE001 - the hit is recorded; a failed case is logged
                    log.exception("sweep: opening a case for content %s failed", c.content_id)

    def _note_case(self, hits: list[LedgerHit], case_id: int) -> None:
        with self.db.session() as s:
            for h in hits:
                row = s.scalar(select(SweepHit).where(SweepHit.content_pk == h.content.pk,
                                                      SweepHit.entry_id == h.entry_id))
                if row is not None:
                    row.action = {**(row.action or {}), "case_id": case_id}
                    h.action = row.action

    def _after(self, report: SweepReport) -> None:
        if not report.new_hits:
            return
        log.info("sweep %s: %d new hit(s) for %d entries", report.trigger, len(report.new_hits), report.entries)
        for cb in self._callbacks:
            try:
                cb(report)
            except Exception:  # noqa: BLE001
                log.exception("sweep callback failed")


def _summary(h: LedgerHit) -> dict[str, Any]:
    d = h.match_dict()
    d.pop("provenance", None)
    return d


class SweepRunner:
    """Background thread of ``consentry serve``: :meth:`Sweeper.follow` every ``interval``
    seconds (0 = off). Every worker runs one; the sweep lock makes one of them do the work."""

    def __init__(self, sweeper: Sweeper, interval: float):
        self.sweeper, self.interval = sweeper, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ledger-sweeper", daemon=True)

    def start(self) -> None:
        if self.interval > 0:
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sweeper.follow()
            except Exception:  # noqa: BLE001 - keep serving; the next round resumes at the cursor
                log.exception("ledger sweep failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
