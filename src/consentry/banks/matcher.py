"""Match query signals against every bank, exactly, from in-memory indexes kept current.

The indexes hold only entry ids and hash values; after a lookup the candidate entries are read
from the database, which also re-checks their status (a withdrawn entry can never match, even if
an index were behind) and supplies bank, thresholds and provenance. Indexes are loaded once and
then follow the ``changes`` log (:meth:`Matcher.refresh`), so an add or a withdrawal is visible to
the next query without rebuilding anything.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from sqlalchemy import and_, or_, select

from consentry.banks.service import BankInfo, BankService
from consentry.db.models import Bank, Entry, EntryVariant, utcnow
from consentry.db.session import Database
from consentry.index import ExactIndex, PDQIndex, hex_to_words, hex_to_words_many
from consentry.signals import DIHEDRAL_TRANSFORMS, PDQ_MIN_QUALITY, PDQ_THRESHOLD
from consentry.signals.vpdq import (
    VPDQ_DISTANCE_THRESHOLD,
    VPDQ_MATCH_PERCENT,
    VPDQ_QUALITY_THRESHOLD,
    VpdqFrame,
    aligned_match,
    is_dense,
    parse_frames,
    spans,
    usable_unique_frames,
)

log = logging.getLogger("consentry.match")

EXACT_TYPES = ("md5", "sha1", "sha256", "photodna")
#: changes re-read behind the cursor, so ids committed out of order (PostgreSQL) are not missed
LOOKBACK = 2000
#: How long a skipped change id is waited for before it is taken as rolled back (seconds).
GAP_SECONDS = 600.0
MAX_GAPS = 200_000
#: PDQ indexes smaller than this are not snapshotted (rebuilt from the database in well under a second)
SNAPSHOT_MIN_ENTRIES = 20_000
#: a snapshot this many changes behind the database is rebuilt rather than replayed
SNAPSHOT_MAX_REPLAY = 2_000_000
#: how long a starting worker waits for another one building the snapshot (seconds)
SNAPSHOT_WAIT = 600.0
SNAPSHOT_NAME = "pdq"


@dataclass
class QuerySignals:
    """What one query offers: any of these may be missing."""

    exact: dict[str, str] = field(default_factory=dict)  # md5/sha1/sha256/photodna -> value
    pdq: list[str] = field(default_factory=list)  # [original, rotate90, ...] (1 or 8)
    pdq_quality: int | None = None
    vpdq: list[VpdqFrame] | None = None
    #: canonical PDQ hashes of the query picture (issue 21; :func:`consentry.signals.canonical.
    #: query_extra_hashes`): (kind, its 8 dihedral variants, quality) — the picture without its
    #: letterbox / pillarbox borders ("trimmed"), the photo inside a screenshot ("screenshot").
    #: Local signals: matched like the plain hash, never stored, logged or exchanged.
    pdq_extra: list[tuple[str, list[str], int]] = field(default_factory=list)
    #: the same for a video: (kind, frames) — its frames without letterbox / pillarbox bars
    #: ("trimmed", :func:`consentry.signals.vpdq.trimmed_frames`); local, like ``pdq_extra``
    vpdq_extra: list[tuple[str, list[VpdqFrame]]] = field(default_factory=list)
    #: what a bank's gradual rollout is decided on (same content, same answer): the content's
    #: SHA-256 for an upload, else the queried value (see :meth:`rollout_key`)
    content_key: str | None = None

    def rollout_key(self) -> str:
        if self.content_key:
            return self.content_key
        if self.exact.get("sha256"):
            return "sha256:" + self.exact["sha256"]
        for st in EXACT_TYPES:
            if self.exact.get(st):
                return f"{st}:{self.exact[st]}"
        if self.pdq:
            return "pdq:" + self.pdq[0]
        if self.vpdq:
            return "vpdq:" + ",".join(f.pdq_hex for f in self.vpdq)
        return ""

    def signal_types(self) -> list[str]:
        return list(self.exact) + (["pdq"] if self.pdq else []) + (["vpdq"] if self.vpdq else [])


@dataclass
class Match:
    bank: str
    bank_kind: str
    entry_id: int
    signal_type: str
    distance: int | float
    transform: str | None
    provenance: dict[str, Any]
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = {
            "bank": self.bank, "bank_kind": self.bank_kind, "entry_id": self.entry_id,
            "signal_type": self.signal_type, "distance": self.distance,
            "transform": self.transform, "provenance": self.provenance,
        }
        d.update(self.detail)
        return d


@dataclass
class MatchOutcome:
    matches: list[Match]
    suppressed: list[Match]  # matches hidden because the content is on an allow bank
    allowed_by: list[Match]  # the allow-bank matches that did it
    #: matches held back by their bank's gradual rollout (match_percent): not matches, counted
    rollout_skipped: list[Match] = field(default_factory=list)
    #: query signal types not matched because they are switched off on this instance
    disabled_types: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "matches": [m.to_dict() for m in self.matches],
            "suppressed": [m.to_dict() for m in self.suppressed],
            "allowed_by": [m.to_dict() for m in self.allowed_by],
            "rollout_skipped": [{"bank": m.bank, "entry_id": m.entry_id, "signal_type": m.signal_type}
                                for m in self.rollout_skipped],
        }


class _VpdqStore:
    """Frame-level PDQ index over every stored video, plus per-video frame lists.

    Sparse lists (one frame a second, as exchanged) match by frame-set overlap, as vPDQ does;
    dense lists (stored from the video itself, :func:`consentry.signals.vpdq.dense_frames`) by
    time-consistent alignment of the frame pairs (:func:`consentry.signals.vpdq.align`)."""

    def __init__(self) -> None:
        self.index = PDQIndex(threshold=VPDQ_DISTANCE_THRESHOLD)
        self.frame_owner: dict[int, tuple[int, int]] = {}  # frame id -> (entry id, frame no)
        #: entry -> frame ids, timestamps, and for a dense list the (start, end) spans
        self.entry_frames: dict[int, tuple[list[int], list[float], tuple[np.ndarray, np.ndarray] | None]] = {}
        self._next = 1

    def add(self, entry_id: int, value: str) -> None:
        if entry_id in self.entry_frames:
            self.remove(entry_id)
        frames = parse_frames(value)
        spans_of = None
        if is_dense(frames):
            frames = sorted(frames, key=lambda f: f.timestamp)
            start, end = spans(frames)
            keep = np.array([f.quality >= VPDQ_QUALITY_THRESHOLD for f in frames], dtype=bool)
            frames = [f for f, k in zip(frames, keep) if k]
            spans_of = (start[keep], end[keep])
        else:
            frames = usable_unique_frames(frames)
        if not frames:
            return
        ids = list(range(self._next, self._next + len(frames)))
        self._next += len(frames)
        self.index.add(np.array(ids, dtype=np.int64), hex_to_words_many([f.pdq_hex for f in frames]))
        for k, fid in enumerate(ids):
            self.frame_owner[fid] = (entry_id, k)
        self.entry_frames[entry_id] = (ids, [f.timestamp for f in frames], spans_of)

    def remove(self, entry_id: int) -> None:
        ids, _, _ = self.entry_frames.pop(entry_id, ([], [], None))
        if ids:
            self.index.remove(np.array(ids, dtype=np.int64))
            for fid in ids:
                self.frame_owner.pop(fid, None)

    def query(self, frames: Sequence[VpdqFrame], threshold: int) -> dict[int, dict[str, Any]]:
        usable = usable_unique_frames(frames)
        if not usable:
            return {}
        pairs: dict[int, list[tuple[int, int, int]]] = {}  # entry -> (query frame, stored frame, distance)
        for qi, f in enumerate(usable):
            for fid, d in self.index.query(hex_to_words(f.pdq_hex), threshold):
                owner = self.frame_owner.get(fid)
                if owner is not None:
                    pairs.setdefault(owner[0], []).append((qi, owner[1], int(d)))
        out = {}
        for entry_id, found in pairs.items():
            ids, times, spans_of = self.entry_frames.get(entry_id, ([], [], None))
            if not ids:
                continue
            if spans_of is not None:
                arr = np.array(found, dtype=np.int64)
                m = aligned_match(usable, arr[:, 0], arr[:, 1], arr[:, 2], *spans_of)
                if not m.query_matched_seconds:
                    continue
                out[entry_id] = {
                    "query_match_percent": m.query_match_percent,
                    "compared_match_percent": m.compared_match_percent,
                    "query_matched_seconds": m.query_matched_seconds,
                    "compared_matched_seconds": m.compared_matched_seconds,
                    "offset_seconds": m.offset_seconds, "speed": m.speed,
                }
                continue
            qs = {qi for qi, _, _ in found}
            ss = {k for _, k, _ in found}
            out[entry_id] = {
                "query_match_percent": round(100.0 * len(qs) / len(usable), 2),
                "compared_match_percent": round(100.0 * len(ss) / len(ids), 2),
                "query_matched_seconds": sorted(usable[i].timestamp for i in qs),
                "compared_matched_seconds": sorted(times[i] for i in ss),
            }
        return out


class _VariantStore:
    """The stored-side extra PDQ hashes of entries (issue 21, ``entry_variants``): crops,
    rotations and the picture without borders, each row owned by its entry."""

    def __init__(self, rows: Sequence[tuple[int, int, str, str]] = ()) -> None:
        rows = list(rows)  # (variant id, entry id, kind, PDQ hex)
        self.owner: dict[int, tuple[int, str]] = {vid: (eid, kind) for vid, eid, kind, _ in rows}
        self.of_entry: dict[int, list[int]] = {}
        for vid, eid, _kind, _pdq in rows:
            self.of_entry.setdefault(eid, []).append(vid)
        if rows:
            self.index = PDQIndex.build(np.array([r[0] for r in rows], dtype=np.int64),
                                        hex_to_words_many([r[3] for r in rows]), threshold=PDQ_THRESHOLD)
        else:
            self.index = PDQIndex(threshold=PDQ_THRESHOLD)

    def __len__(self) -> int:
        return len(self.owner)

    def set(self, entry_id: int, rows: Sequence[tuple[int, str, str]]) -> None:
        self.remove(entry_id)
        if not rows:
            return
        self.index.add(np.array([r[0] for r in rows], dtype=np.int64), hex_to_words_many([r[2] for r in rows]))
        for vid, kind, _pdq in rows:
            self.owner[vid] = (entry_id, kind)
        self.of_entry[entry_id] = [r[0] for r in rows]
        self.index.maybe_compact()

    def remove(self, entry_id: int) -> None:
        ids = self.of_entry.pop(entry_id, None)
        if ids:
            self.index.remove(np.array(ids, dtype=np.int64))
            for vid in ids:
                self.owner.pop(vid, None)

    def query(self, words: np.ndarray, threshold: int) -> dict[int, tuple[int, int, str]]:
        """Entry id -> (best distance, query variant index, the stored variant's kind)."""
        best: dict[int, tuple[int, int, str]] = {}
        for vid, d, v in self.index.query_variants(words, threshold):
            owner = self.owner.get(vid)
            if owner is not None and (owner[0] not in best or int(d) < best[owner[0]][0]):
                best[owner[0]] = (int(d), int(v), owner[1])
        return best


class Matcher:
    """In-memory indexes over all banks, refreshed from the change log."""

    def __init__(self, db: Database, default_signal_types: Sequence[str] | None = None,
                 snapshot_dir: str | Path | None = None):
        self.db = db
        #: where compacted PDQ indexes are persisted and shared by the processes of this host
        #: (:mod:`consentry.index.snapshot`); None: no snapshots
        self.snapshot_dir = Path(snapshot_dir) if snapshot_dir else None
        self._base_cursor = 0  # the change-log cursor the PDQ base covers
        #: where the PDQ index came from at the last load: "snapshot" (mapped) or "database"
        self.index_source: str | None = None
        self.banks = BankService(db)
        # signal types switched on (instance setting in the database; CONSENTRY_SIGNAL_TYPES
        # when none is stored); re-read on a ``settings`` change
        self.default_signal_types = tuple(default_signal_types) if default_signal_types else None
        self.enabled_types: frozenset[str] | None = None  # None: all
        self._lock = threading.RLock()
        self.pdq = PDQIndex(threshold=PDQ_THRESHOLD)
        self.exact: dict[str, ExactIndex] = {t: ExactIndex() for t in EXACT_TYPES}
        self.vpdq = _VpdqStore()
        self.variants = _VariantStore()
        self._pdq_added: list[int] = []
        self.cursor = 0
        self._applied: OrderedDict[int, None] = OrderedDict()
        self._gaps: dict[int, float] = {}  # change ids skipped over -> when first noticed
        self._compacting = False
        self._bank_cache: dict[int, BankInfo] = {}
        self.loaded = False

    # ------------------------------------------------------------ loading
    def load(self) -> "Matcher":
        """Build the indexes from every active entry (streamed in pages)."""
        with self._lock:
            cursor = self.banks.change_cursor()
            opened = self._open_snapshot(cursor)
            if opened is None and self.snapshot_dir is not None:
                # one process of the host builds the snapshot, the others wait for it and map it
                from consentry.index.snapshot import writer_lock

                with writer_lock(self.snapshot_dir, SNAPSHOT_NAME, wait=SNAPSHOT_WAIT) as held:
                    cursor = self.banks.change_cursor()
                    opened = self._open_snapshot(cursor)
                    if opened is None:
                        self._load_entries(cursor, None)
                        if held:
                            self._save_snapshot(self.pdq._base, cursor, reopen=True)
                        return self._loaded(cursor)
            self._load_entries(cursor, opened)
            return self._loaded(cursor if opened is None else opened[1].cursor)

    def _loaded(self, cursor: int) -> "Matcher":
        self.cursor = self._base_cursor = cursor
        self._applied.clear()
        self._gaps.clear()
        self._bank_cache = self.banks.banks_by_id()
        self._load_enabled_types()
        self.loaded = True
        # anything committed while we were reading is replayed (idempotently); after a snapshot,
        # every change since the cursor it covers
        self.refresh(lookback=LOOKBACK)
        return self

    def _load_entries(self, cursor: int, opened) -> None:
        """Read active entries into fresh indexes: all of them, or (``opened``: a PDQ index from
        a snapshot) all but PDQ."""
        pdq_ids: list[np.ndarray] = []
        pdq_words: list[np.ndarray] = []
        exact = {t: ExactIndex() for t in EXACT_TYPES}
        vpdq = _VpdqStore()
        # a bare connection (Core rows, no ORM loading): this reads every active entry
        with self.db.engine.connect() as conn:
            # timed-disabled entries are indexed too: the query-time status check keeps
            # them out until their time has passed, then they match with no new change
            q = (
                select(Entry.id, Entry.signal_type, Entry.value, Entry.quality)
                .where(or_(Entry.status == "active",
                           and_(Entry.status == "disabled", Entry.disabled_until.is_not(None))))
                .order_by(Entry.id)
            )
            if opened is None:
                rows = conn.execution_options(yield_per=50_000).execute(q)
            else:  # all but PDQ, bank by bank through the (bank, signal type, value) index: a
                # filter on the signal type alone would read every entry (10 s at 10M)
                q = q.where(Entry.signal_type.in_([*EXACT_TYPES, "vpdq"])).order_by(None)
                bank_ids = list(conn.execute(select(Bank.id).order_by(Bank.id)).scalars())
                rows = itertools.chain.from_iterable(
                    conn.execution_options(yield_per=50_000).execute(q.where(Entry.bank_id == b))
                    for b in bank_ids)
            chunk_ids: list[int] = []
            chunk_vals: list[str] = []
            for entry_id, st, value, quality in rows:
                if st == "pdq":
                    if quality is not None and quality < PDQ_MIN_QUALITY:
                        continue
                    chunk_ids.append(entry_id)
                    chunk_vals.append(value)
                    if len(chunk_ids) >= 50_000:
                        pdq_ids.append(np.array(chunk_ids, dtype=np.int64))
                        pdq_words.append(hex_to_words_many(chunk_vals))
                        chunk_ids, chunk_vals = [], []
                elif st in exact:
                    exact[st].add(value, entry_id)
                elif st == "vpdq":
                    vpdq.add(entry_id, value)
            if chunk_ids:
                pdq_ids.append(np.array(chunk_ids, dtype=np.int64))
                pdq_words.append(hex_to_words_many(chunk_vals))
        self.index_source = "database" if opened is None else "snapshot"
        if opened is not None:
            self.pdq = opened[0]
        elif pdq_ids:
            self.pdq = PDQIndex.build(np.concatenate(pdq_ids), np.concatenate(pdq_words),
                                      threshold=PDQ_THRESHOLD)
        else:
            self.pdq = PDQIndex(threshold=PDQ_THRESHOLD)
        self.exact, self.vpdq = exact, vpdq
        self.variants = _VariantStore(self._variant_rows())

    def _variant_rows(self) -> list[tuple[int, int, str, str]]:
        """Every stored extra hash of an indexed PDQ entry (few: only entries added with their
        picture have them)."""
        live = or_(Entry.status == "active", and_(Entry.status == "disabled", Entry.disabled_until.is_not(None)))
        q = (select(EntryVariant.id, EntryVariant.entry_id, EntryVariant.kind, EntryVariant.pdq)
             .join(Entry, Entry.id == EntryVariant.entry_id)
             .where(Entry.signal_type == "pdq", live,
                    or_(Entry.quality.is_(None), Entry.quality >= PDQ_MIN_QUALITY))
             .order_by(EntryVariant.id))
        with self.db.engine.connect() as conn:
            return [(int(a), int(b), c, d) for a, b, c, d in conn.execute(q)]

    # ---------------------------------------------------------- snapshots
    def _log_identity(self, cursor: int) -> dict[str, Any]:
        """What ties a snapshot to this database's change log: the change row at its cursor."""
        row = self.banks.changes_since(cursor - 1, limit=1) if cursor > 0 else []
        if not row or row[0]["cursor"] != cursor:
            return {"cursor": cursor, "row": None}
        r = row[0]
        return {"cursor": cursor, "row": [r["op"], r["bank_id"], r["entry_id"], r["signal_type"], r["at"]]}

    def _open_snapshot(self, db_cursor: int):
        """(PDQ index, snapshot) when a snapshot of this change log, not too far behind it, is
        on disk and verified; else None (rebuild)."""
        if self.snapshot_dir is None:
            return None
        from consentry.index.snapshot import open_pdq_index

        opened = open_pdq_index(self.snapshot_dir, SNAPSHOT_NAME, PDQ_THRESHOLD)
        if opened is None:
            return None
        snap = opened[1]
        why = None
        if snap.cursor > db_cursor:
            why = f"its cursor {snap.cursor} is ahead of the database's {db_cursor}"
        elif db_cursor - snap.cursor > SNAPSHOT_MAX_REPLAY:
            why = f"{db_cursor - snap.cursor} changes behind (over {SNAPSHOT_MAX_REPLAY})"
        elif snap.identity != self._log_identity(snap.cursor):
            why = "it was made from another change log (another database)"
        if why:
            log.warning("index snapshot %s not used: %s; rebuilding from the database", snap.path, why)
            return None
        log.info("index snapshot %s: %d PDQ entries at cursor %d", snap.path, len(opened[0]), snap.cursor)
        return opened

    def _save_snapshot(self, base, cursor: int, reopen: bool = False):
        """Write ``base`` (compacted) as the host's snapshot (the caller holds the writer lock);
        with ``reopen``, swap this process's base for the mapped one (shared by every worker).
        Returns the mapped base or None. A failure to write is logged, never fatal."""
        if self.snapshot_dir is None or len(base.ids) < SNAPSHOT_MIN_ENTRIES or base.dead.any():
            return None
        from consentry.index.pdq_index import _Base
        from consentry.index.snapshot import open_snapshot, save_pdq_base

        try:
            t0 = time.monotonic()
            path = save_pdq_base(self.snapshot_dir, SNAPSHOT_NAME, base, PDQ_THRESHOLD, cursor,
                                 self._log_identity(cursor))
            snap = open_snapshot(self.snapshot_dir, SNAPSHOT_NAME, {"cursor": cursor})
            log.info("index snapshot %s written: %d entries at cursor %d in %.1f s", path, len(base.ids), cursor,
                     time.monotonic() - t0)
        except OSError:
            log.exception("could not write the index snapshot")
            return None
        if snap is None:
            return None
        mapped = _Base.from_arrays(snap.arrays, snap.header["radius"], snap.header["design_threshold"])
        if reopen and self.pdq._base is base:
            mapped.dead[:] = base.dead
            self.pdq._base = mapped
        return mapped

    def _covered_cursor(self) -> int:
        """Every change up to this cursor is applied (ids skipped over may still commit)."""
        return min([self.cursor] + [g - 1 for g in self._gaps])

    def refresh(self, lookback: int = 0) -> int:
        """Apply changes since the cursor; returns how many were applied.

        Change ids come from a sequence, but on PostgreSQL transactions commit out of order: a
        change with a smaller id can become visible after a larger one.  Ids skipped over are
        remembered as *gaps* and re-read from the oldest open gap until they appear (or, after
        ``GAP_SECONDS``, are given up as rolled back), so a quiet change log costs one empty query
        per refresh, not a re-read of the last ``lookback`` changes.  ``lookback`` forces such a
        re-read (after a full load, to pick up what committed while the snapshot was read).
        """
        with self._lock:
            applied = 0
            now = time.monotonic()
            for gid in [g for g, t in self._gaps.items() if now - t > GAP_SECONDS]:
                del self._gaps[gid]
            start = self.cursor - lookback if lookback else self.cursor
            if self._gaps:
                start = min(start, min(self._gaps) - 1)
            start = max(0, start)
            while True:
                changes = self.banks.changes_since(start, limit=10_000)
                if not changes:
                    break
                todo = [c for c in changes if c["cursor"] not in self._applied]
                self._apply(todo)
                for c in todo:
                    self._applied[c["cursor"]] = None
                    self._gaps.pop(c["cursor"], None)
                applied += len(todo)
                # ids we jumped over beyond the old cursor may still commit
                newest = changes[-1]["cursor"]
                if newest > self.cursor:
                    seen = {c["cursor"] for c in changes if c["cursor"] > self.cursor}
                    for gid in range(self.cursor + 1, newest):
                        if gid not in seen and len(self._gaps) < MAX_GAPS:
                            self._gaps[gid] = now
                    self.cursor = newest
                start = newest
                if len(changes) < 10_000:
                    break
            # forget applied ids below anything we will read again
            floor = min([self.cursor - max(lookback, LOOKBACK)] + [g - 1 for g in self._gaps])
            while self._applied and next(iter(self._applied)) < floor:
                self._applied.popitem(last=False)
        if applied:
            self._compact_if_needed()
        return applied

    def _compact_if_needed(self) -> None:
        """Rebuild the PDQ base when its delta or tombstones have grown: the build (seconds at
        10M entries) runs without the lock, so matching, adds and withdrawals go on meanwhile."""
        with self._lock:
            if self._compacting or not self.pdq.needs_compaction():
                return
            self._compacting = True
            index = self.pdq
            job = index.begin_compaction()
            job_cursor = self._covered_cursor()
        try:
            job.build()
            if self.snapshot_dir is not None:
                # written by one process of the host at a time; the others keep their own build
                from consentry.index.snapshot import writer_lock

                with writer_lock(self.snapshot_dir, SNAPSHOT_NAME) as held:
                    mapped = self._save_snapshot(job.base, job_cursor) if held else None
                if mapped is not None:
                    job.base = mapped
            with self._lock:
                if self.pdq is index:  # not replaced by a full reload meanwhile
                    index.finish_compaction(job)
                    self._base_cursor = job_cursor
        except BaseException:
            with self._lock:
                index.abort_compaction()
            raise
        finally:
            self._compacting = False

    def _apply(self, changes: list[dict[str, Any]]) -> None:
        if any(c["op"] in ("bank", "bank_deleted") for c in changes):
            self._bank_cache = self.banks.banks_by_id()
        if any(c["op"] == "settings" for c in changes):
            self._load_enabled_types()
        entry_ids = [c["entry_id"] for c in changes if c["entry_id"] is not None]
        if not entry_ids:
            return
        rows = self.banks.entries_by_id(entry_ids)
        self._pdq_added: list[int] = []
        for c in changes:
            eid = c["entry_id"]
            if eid is None:
                continue
            found = rows.get(eid)
            if found is None:  # entry deleted with its bank
                self._remove(eid, c.get("signal_type"))
                continue
            entry, _bank_id = found
            # the entry's *current* status decides, so replaying old changes is harmless; a
            # timed-disabled entry stays indexed (checked at query time)
            if entry.status == "active" or (entry.status == "disabled" and entry.disabled_until is not None):
                self._add(eid, entry.signal_type, entry.value, entry.quality)
            else:
                self._remove(eid, entry.signal_type)
        if self._pdq_added and (len(self.variants) or self.banks.has_variants()):
            # their stored extra hashes, written with (or before) the change (none at all on an
            # instance whose entries all came as hashes: one cheap check instead of a read per id)
            found = self.banks.variants_for(self._pdq_added)
            for eid in self._pdq_added:
                self.variants.set(eid, found.get(eid, []))

    def _add(self, entry_id: int, signal_type: str, value: str, quality: int | None) -> None:
        if signal_type == "pdq":
            if quality is not None and quality < PDQ_MIN_QUALITY:
                return
            self.pdq.remove(np.array([entry_id], dtype=np.int64))
            self.pdq.add(np.array([entry_id], dtype=np.int64), hex_to_words(value).reshape(1, 4))
            self._pdq_added.append(entry_id)
        elif signal_type in self.exact:
            self.exact[signal_type].add(value, entry_id)
        elif signal_type == "vpdq":
            self.vpdq.add(entry_id, value)

    def _remove(self, entry_id: int, signal_type: str | None) -> None:
        if signal_type in (None, "pdq"):
            self.pdq.remove(np.array([entry_id], dtype=np.int64))
            self.variants.remove(entry_id)
        if signal_type is None or signal_type in self.exact:
            for idx in self.exact.values():
                idx.remove_id(entry_id)
        if signal_type in (None, "vpdq"):
            self.vpdq.remove(entry_id)

    def _load_enabled_types(self) -> None:
        from consentry.instance_settings import enabled_signal_types

        self.enabled_types = enabled_signal_types(self.db, self.default_signal_types)

    def _without_disabled(self, query: QuerySignals) -> tuple[QuerySignals, list[str]]:
        enabled = self.enabled_types
        if enabled is None:
            return query, []
        off = [t for t in query.signal_types() if t not in enabled]
        if not off:
            return query, []
        pdq_on = "pdq" in enabled
        q = QuerySignals(exact={k: v for k, v in query.exact.items() if k in enabled},
                         pdq=query.pdq if pdq_on else [], pdq_quality=query.pdq_quality,
                         vpdq=query.vpdq if "vpdq" in enabled else None,
                         vpdq_extra=query.vpdq_extra if "vpdq" in enabled else [],
                         pdq_extra=query.pdq_extra if pdq_on else [],  # canonical PDQ: off with PDQ
                         content_key=query.rollout_key())
        return q, off

    # ----------------------------------------------------------- matching
    def _max_threshold(self, signal_type: str, default: int) -> int:
        ts = [b.thresholds.get(signal_type) for b in self._bank_cache.values()]
        return int(max([default] + [t for t in ts if t is not None]))

    def match(self, query: QuerySignals, banks: Iterable[str] | None = None) -> MatchOutcome:
        """Every entry within its bank's threshold; allow banks suppress the rest.

        Signal types switched off on this instance are not matched (``disabled_types``); a bank
        under a timed disable matches nothing; a bank in gradual rollout matches only the share
        of contents its ``match_percent`` picks (the others are in ``rollout_skipped``)."""
        query, off = self._without_disabled(query)
        outcome = self._match(query, banks)
        outcome.disabled_types = off
        return outcome

    def match_many(self, queries: Sequence[QuerySignals], banks: Iterable[str] | None = None) -> list[MatchOutcome]:
        """:meth:`match` for many queries at once, answers in order (``POST /v1/match/batch``,
        ``consentry match --stdin``): the same rules per query, but one lock acquisition and one
        database read of the candidate entries for the whole batch."""
        banks = list(banks) if banks else None
        with self._lock:
            prepared = [self._without_disabled(q) for q in queries]
            cands = [self._candidates(q) for q, _off in prepared]
            wanted: set[int] = set()
            for c in cands:
                wanted.update(c)
            rows = self.banks.entries_by_id(wanted) if wanted else {}
            now = utcnow()
            out = []
            for (q, off), c in zip(prepared, cands):
                outcome = self._outcome(q, c, rows, banks, now)
                outcome.disabled_types = off
                out.append(outcome)
            return out

    def _match(self, query: QuerySignals, banks: Iterable[str] | None = None) -> MatchOutcome:
        with self._lock:
            cands = self._candidates(query)
            if not cands:
                return MatchOutcome([], [], [])
            return self._outcome(query, cands, self.banks.entries_by_id(cands), banks, utcnow())

    def _candidates(self, query: QuerySignals) -> dict[int, tuple[str, int | float, str | None, dict[str, Any]]]:
        """Candidate entry id -> (signal_type, distance, transform, detail), from the indexes
        (call under the lock)."""
        cands: dict[int, tuple[str, int | float, str | None, dict[str, Any]]] = {}
        for st, value in query.exact.items():
            if st in self.exact and value:
                for eid in self.exact[st].lookup(value):
                    cands[eid] = (st, 0, None, {})
        usable_pdq = query.pdq and (query.pdq_quality is None or query.pdq_quality >= PDQ_MIN_QUALITY)
        if usable_pdq:
            t = self._max_threshold("pdq", PDQ_THRESHOLD)
            words = hex_to_words_many(query.pdq)
            if len(query.pdq) == 1:
                hits = [(eid, d, 0) for eid, d in self.pdq.query(words[0], t)]
            else:  # the 8 dihedral variants, probed together in one pass (issue 20.3)
                hits = self.pdq.query_variants(words, t)
            for eid, d, v in hits:
                cands[eid] = ("pdq", int(d), DIHEDRAL_TRANSFORMS[v], {})
        for kind, variants, quality in query.pdq_extra:
            if quality < PDQ_MIN_QUALITY or not variants:
                continue
            t = self._max_threshold("pdq", PDQ_THRESHOLD)
            for eid, d, v in self.pdq.query_variants(hex_to_words_many(variants), t):
                old = cands.get(eid)
                if old is None or (old[0] == "pdq" and int(d) < old[1]):
                    # found (or found nearer) through the canonical hash: say which, for reviewers
                    cands[eid] = ("pdq", int(d), DIHEDRAL_TRANSFORMS[v], {"query_variant": kind})
        if len(self.variants):
            # the stored pictures' crops, rotations and borderless copies, as the entry itself
            t = self._max_threshold("pdq", PDQ_THRESHOLD)
            probes = [(None, query.pdq)] if usable_pdq else []
            probes += [(kind, v) for kind, v, quality in query.pdq_extra if quality >= PDQ_MIN_QUALITY and v]
            for qkind, hexes in probes:
                for eid, (d, v, skind) in self.variants.query(hex_to_words_many(hexes), t).items():
                    old = cands.get(eid)
                    if old is None or (old[0] == "pdq" and d < old[1]):
                        detail = {"stored_variant": skind}
                        if qkind:
                            detail["query_variant"] = qkind
                        cands[eid] = ("pdq", d, DIHEDRAL_TRANSFORMS[v], detail)
        if query.vpdq:
            t = self._max_threshold("vpdq", VPDQ_DISTANCE_THRESHOLD)
            for kind, frames in [(None, query.vpdq), *query.vpdq_extra]:
                for eid, det in self.vpdq.query(frames, t).items():
                    best = max(det["query_match_percent"], det["compared_match_percent"])
                    old = cands.get(eid)
                    if best >= VPDQ_MATCH_PERCENT and (old is None or round(100.0 - best, 2) < old[1]):
                        cands[eid] = ("vpdq", round(100.0 - best, 2), None,
                                      det if kind is None else {**det, "query_variant": kind})
        return cands

    def _outcome(self, query: QuerySignals, cands, rows, banks: Iterable[str] | None, now) -> MatchOutcome:
        """The matches among ``cands`` by the entries' current rows (``rows``: entries_by_id)."""
        if not cands:
            return MatchOutcome([], [], [])
        wanted = set(banks) if banks else None
        matches, allows, held = [], [], []
        content_key = query.rollout_key()
        for eid, (st, dist, transform, detail) in cands.items():
            found = rows.get(eid)
            if found is None:
                continue
            entry, bank_id = found
            if entry.status != "active":
                continue
            bank = self._bank_cache.get(bank_id)
            if bank is None:
                self._bank_cache = self.banks.banks_by_id()
                bank = self._bank_cache.get(bank_id)
                if bank is None:
                    continue
            if st == "pdq" and dist > bank.threshold("pdq"):
                continue
            if bank.disabled_at(now):
                continue
            if wanted is not None and bank.name not in wanted and bank.kind != "allow":
                continue
            m = Match(bank.name, bank.kind, eid, st, dist, transform, entry.provenance, detail)
            if bank.match_percent < 100 and not bank.in_rollout(content_key):
                held.append(m)
                continue
            if bank.kind == "allow":
                allows.append(m)
            else:
                matches.append(m)
        key = lambda m: (m.distance, m.bank, m.entry_id)  # noqa: E731
        matches.sort(key=key)
        allows.sort(key=key)
        held.sort(key=key)
        for m in held:
            log.info("match held back by rollout: bank=%s entry_id=%s signal_type=%s",
                     m.bank, m.entry_id, m.signal_type)
        if allows:
            return MatchOutcome([], matches, allows, held)
        return MatchOutcome(matches, [], [], held)

    def stats(self) -> dict[str, Any]:
        return {
            "cursor": self.cursor, "pdq_entries": len(self.pdq), "index_source": self.index_source,
            "exact_entries": {k: len(v) for k, v in self.exact.items()},
            "vpdq_videos": len(self.vpdq.entry_frames), "pdq_variants": len(self.variants),
        }


def query_from_content(content, canonical: bool | None = None) -> QuerySignals:
    """Signals of one file for matching: digests, the 8 PDQ variants or the vPDQ frames, and for
    a photo (``canonical``) the PDQ of the picture without its borders and of the photo inside a
    screenshot, when it has either (:func:`consentry.signals.canonical.query_extra_hashes`);
    ``canonical`` None: as the media limits say (``CONSENTRY_CANONICAL_QUERY``, on by default)."""
    from consentry.media.sniff import PHOTO, VIDEO
    from consentry.signals.pdq import PDQSignal
    from consentry.signals.vpdq import VPDQSignal

    q = QuerySignals(exact=dict(content.digests(("md5", "sha1", "sha256"))))  # SHA-1: NCMEC lists carry it
    if content.content_type == PHOTO:
        q.pdq, q.pdq_quality = PDQSignal.compute_dihedral(content)
        if canonical if canonical is not None else getattr(content.limits, "canonical_query", True):
            from consentry.signals.canonical import query_extra_hashes

            seen = set(q.pdq)
            for h in query_extra_hashes(content.image()):
                if h.variants and h.value not in seen:  # a screenshot region may be the trimmed picture
                    seen.add(h.value)
                    q.pdq_extra.append((h.kind, list(h.variants), h.quality))
    elif content.content_type == VIDEO:
        q.vpdq = VPDQSignal.compute_frames(content)
        if canonical if canonical is not None else getattr(content.limits, "canonical_query", True):
            from consentry.signals.vpdq import trimmed_frames

            trimmed = trimmed_frames(content)
            if trimmed:
                q.vpdq_extra.append(("trimmed", trimmed))
    return q


def query_from_hash_line(obj: dict[str, Any]) -> QuerySignals:
    """A ``consentry hash`` JSON line (or any dict with the same keys) -> query."""
    q = QuerySignals()
    for st in EXACT_TYPES:
        if obj.get(st):
            q.exact[st] = str(obj[st])
    if obj.get("pdq"):
        q.pdq = [str(obj["pdq"])]
        q.pdq_quality = obj.get("pdq_quality")
    if obj.get("vpdq"):
        q.vpdq = parse_frames(obj["vpdq"])
    return q
