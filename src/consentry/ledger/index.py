"""The ledger's in-memory index: PDQ (exact, with delta and tombstones) and vPDQ frames.

Built like the banks' (:class:`consentry.index.PDQIndex`, the same multi-index hashing), over
ids ``content_pk * 8 + variant``: a content registered with its 8 dihedral PDQ variants has 8
rows, so a bank entry finds a rotated or mirrored copy (variant 0 is the hash as given). MD5 and
SHA-256 are not held in memory: the database's B-tree indexes on ``ledger_content`` answer those
exactly and are always current (:meth:`consentry.ledger.service.LedgerService.by_digest`).

The index follows the ledger's change log (``ledger_changes``) from a cursor, so a content
registered or removed through any worker or host is seen at the next :meth:`LedgerIndex.refresh`.
Hits are candidates: the sweep re-reads their rows, so a removal is honoured even if an index
were behind.
"""

from __future__ import annotations

import threading
from typing import Any, Sequence

import numpy as np
from sqlalchemy import select

from consentry.banks.matcher import _VpdqStore
from consentry.db.models_ledger import LedgerContent
from consentry.index import PDQIndex, hex_to_words_many
from consentry.ledger.follow import ChangeFollower
from consentry.ledger.service import LedgerService
from consentry.signals import PDQ_MIN_QUALITY, PDQ_THRESHOLD
from consentry.signals.vpdq import VpdqFrame

VARIANTS = 8
#: the PDQ index accepts queries up to this distance through its bands (a bank may set a larger
#: threshold: the index then scans, still exactly)
INDEX_THRESHOLD = PDQ_THRESHOLD


def _pdq_rows(pk: int, pdq: str | None, quality: int | None, variants: str | None) -> list[tuple[int, str]]:
    if not pdq or (quality is not None and quality < PDQ_MIN_QUALITY):
        return []
    rows = [(pk * VARIANTS, pdq)]
    v = variants or ""
    rows += [(pk * VARIANTS + 1 + k, v[k * 64:(k + 1) * 64]) for k in range(min(7, len(v) // 64))]
    return rows


class LedgerIndex:
    def __init__(self, db, ledger: LedgerService | None = None):
        self.db = db
        self.ledger = ledger or LedgerService(db)
        self.pdq = PDQIndex(threshold=INDEX_THRESHOLD)
        self.vpdq = _VpdqStore()
        self._lock = threading.RLock()
        self.follower = ChangeFollower(self.ledger.changes_since)
        self.loaded = False

    # ------------------------------------------------------------------ loading
    def load(self) -> "LedgerIndex":
        """Build from every active content (streamed), then replay what changed meanwhile."""
        with self._lock:
            with self.db.session() as s:
                from sqlalchemy import func

                from consentry.db.models_ledger import LedgerChange

                start = int(s.scalar(select(func.max(LedgerChange.id))) or 0)
            ids: list[np.ndarray] = []
            words: list[np.ndarray] = []
            vpdq = _VpdqStore()
            chunk_ids: list[int] = []
            chunk_vals: list[str] = []
            q = (select(LedgerContent.id, LedgerContent.pdq, LedgerContent.pdq_quality, LedgerContent.pdq_variants,
                        LedgerContent.vpdq)
                 .where(LedgerContent.status == "active").order_by(LedgerContent.id))
            with self.db.engine.connect() as conn:
                for pk, pdq, quality, variants, vp in conn.execution_options(yield_per=50_000).execute(q):
                    for rid, value in _pdq_rows(pk, pdq, quality, variants):
                        chunk_ids.append(rid)
                        chunk_vals.append(value)
                    if vp:
                        vpdq.add(pk, vp)
                    if len(chunk_ids) >= 50_000:
                        ids.append(np.array(chunk_ids, dtype=np.int64))
                        words.append(hex_to_words_many(chunk_vals))
                        chunk_ids, chunk_vals = [], []
            if chunk_ids:
                ids.append(np.array(chunk_ids, dtype=np.int64))
                words.append(hex_to_words_many(chunk_vals))
            self.pdq = (PDQIndex.build(np.concatenate(ids), np.concatenate(words), threshold=INDEX_THRESHOLD)
                        if ids else PDQIndex(threshold=INDEX_THRESHOLD))
            self.vpdq = vpdq
            # changes from a little before the snapshot are replayed (idempotent: rows are re-read)
            self.follower = ChangeFollower(self.ledger.changes_since, max(0, start - 2000))
            self.loaded = True
        self.refresh()
        return self

    def refresh(self) -> int:
        """Apply ledger changes since the cursor; returns how many were applied."""
        if not self.loaded:
            self.load()
            return 0
        with self._lock:
            n = self.follower.drain(self._apply)
            if n:
                self.pdq.maybe_compact()
            return n

    def _apply(self, changes: list[dict[str, Any]]) -> None:
        pks = sorted({c["content_pk"] for c in changes})
        rows = self.ledger.by_pk(pks)
        for pk in pks:
            self._remove(pk)
            info = rows.get(pk)
            if info is None or info.status != "active":
                continue
            add = _pdq_rows(pk, info.pdq, info.pdq_quality, "".join(info.pdq_variants))
            if add:
                self.pdq.add(np.array([r for r, _ in add], dtype=np.int64), hex_to_words_many([v for _, v in add]))
            if info.vpdq:
                self.vpdq.add(pk, info.vpdq)

    def _remove(self, pk: int) -> None:
        self.pdq.remove(np.arange(pk * VARIANTS, pk * VARIANTS + VARIANTS, dtype=np.int64))
        self.vpdq.remove(pk)

    # ------------------------------------------------------------------ queries
    def search_pdq(self, hashes: Sequence[str], threshold: int | float) -> list[list[tuple[int, int, int]]]:
        """For each query hash: (content pk, distance, variant) of every content within
        ``threshold``, its best variant only, nearest first."""
        if not hashes:
            return []
        with self._lock:
            found = self.pdq.query_batch(hex_to_words_many(list(hashes)), int(threshold))
        out = []
        for hits in found:
            best: dict[int, tuple[int, int]] = {}
            for rid, d in hits:
                pk, v = divmod(int(rid), VARIANTS)
                if pk not in best or d < best[pk][0]:
                    best[pk] = (int(d), v)
            out.append(sorted(((pk, d, v) for pk, (d, v) in best.items()), key=lambda x: (x[1], x[0])))
        return out

    def search_vpdq(self, frames: Sequence[VpdqFrame], threshold: int) -> dict[int, dict[str, Any]]:
        """Content pk -> the two match percentages and matched times (as a bank video match)."""
        with self._lock:
            return self.vpdq.query(frames, threshold)

    def stats(self) -> dict[str, Any]:
        return {"cursor": self.follower.cursor, "pdq_rows": len(self.pdq),
                "vpdq_videos": len(self.vpdq.entry_frames), "bytes": self.pdq.nbytes}
