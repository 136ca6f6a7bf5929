"""Following an append-only change log whose ids may become visible out of order.

On PostgreSQL a change with a smaller id can commit after one with a larger id. A follower that
simply kept "the largest id seen" could step over it for good. :class:`ChangeFollower` keeps a
*watermark* instead: every id at or below it has been delivered (or given up as rolled back);
ids above it that were already delivered are remembered and not delivered again. The watermark is
what is stored as a durable cursor: a process that restarts from it re-reads (and re-delivers) at
most the changes above it, which its consumer must handle idempotently (the ledger index reads
current rows; the sweep records hits once).

A skipped id is given up as rolled back once a change *after* it is older than ``gap_seconds``
(judged by the ``at`` time stored with each change, so it holds across restarts), or once this
process has waited ``gap_seconds`` for it.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any, Callable

GAP_SECONDS = 600.0
MAX_GAPS = 200_000
PAGE = 10_000

Fetch = Callable[[int, int], list[dict[str, Any]]]  # (after id, limit) -> [{"cursor", "at", ...}]


def _age(at: Any, now: datetime) -> float:
    if at is None:
        return 0.0
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return (now - at).total_seconds()


class ChangeFollower:
    def __init__(self, fetch: Fetch, cursor: int = 0, *, gap_seconds: float = GAP_SECONDS):
        self.fetch = fetch
        self.cursor = int(cursor)  # the watermark
        self.gap_seconds = gap_seconds
        self._delivered: set[int] = set()  # ids above the watermark already delivered
        self._gaps: dict[int, float] = {}  # missing ids above the watermark -> first noticed

    def poll(self, limit: int = PAGE) -> list[dict[str, Any]]:
        """The next changes not delivered yet (in id order; a page of ``limit``, more only when
        a page held nothing new); advances the watermark over everything delivered or given up."""
        start, out = self.cursor, []
        while True:
            rows = self.fetch(start, limit)
            if not rows:
                break
            self._note(rows, start)
            new = [r for r in rows if r["cursor"] not in self._delivered]
            self._delivered.update(r["cursor"] for r in new)
            out.extend(new)
            if out or len(rows) < limit:
                break
            start = rows[-1]["cursor"]
        self._advance()
        return out

    def _note(self, rows: list[dict[str, Any]], start: int) -> None:
        """Remember ids skipped over in (start, last row) as gaps; give up old ones."""
        now_m, now = time.monotonic(), datetime.now(timezone.utc)
        seen = {r["cursor"] for r in rows}
        for gid in range(start + 1, rows[-1]["cursor"]):
            if gid not in seen and gid not in self._gaps and len(self._gaps) < MAX_GAPS:
                self._gaps[gid] = now_m
        for gid in seen:
            self._gaps.pop(gid, None)
        # a gap followed by a change older than gap_seconds will not fill any more
        old = [r["cursor"] for r in rows if _age(r.get("at"), now) > self.gap_seconds]
        newest_old = max(old) if old else 0
        for gid in [g for g, t in self._gaps.items() if g < newest_old or now_m - t > self.gap_seconds]:
            del self._gaps[gid]

    def _advance(self) -> None:
        top = max(self._delivered, default=self.cursor)
        limit = min(self._gaps) - 1 if self._gaps else top
        new = max(self.cursor, min(limit, top))
        if new != self.cursor:
            self.cursor = new
            self._delivered = {i for i in self._delivered if i > new}

    def drain(self, on_batch: Callable[[list[dict[str, Any]]], None], limit: int = PAGE) -> int:
        """Poll until nothing new is left, handing each batch to ``on_batch`` (which must finish
        before the next poll); returns how many changes were delivered."""
        n = 0
        while True:
            batch = self.poll(limit)
            if not batch:
                return n
            on_batch(batch)
            n += len(batch)
