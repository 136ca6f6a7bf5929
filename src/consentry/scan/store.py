"""``scan.db``: one SQLite file per scan output folder, written as the scan goes.

WAL mode and one transaction per file: a ``kill -9`` loses at most the files in flight, and a
re-run with the same output folder skips every path already recorded with the same size and
mtime (and, for archive members, the same SHA-256). Plain SQLite through the standard library:
the file is an evidence artefact an examiner can open with any SQLite tool.

Tables: ``items`` (one row per file, archive member, archive, link or error; key = path),
``runs`` (one row per invocation), ``meta`` (scan-wide settings such as the case id).
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from consentry import fastjson
from consentry.scan.walk import WalkRecord
from consentry.scan.worker import FileResult

SCHEMA_VERSION = 1
#: errors that say nothing about the file (a crashed worker, a lost Ray task): retried on resume
RETRY_ERRORS = ("the worker process died", "worker failed", "Ray task failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at TEXT NOT NULL, finished_at TEXT, host TEXT, executor TEXT, workers INTEGER,
    inputs TEXT, scanned INTEGER DEFAULT 0, skipped INTEGER DEFAULT 0, errors INTEGER DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'running'
);
CREATE TABLE IF NOT EXISTS items (
    path TEXT PRIMARY KEY,
    kind TEXT NOT NULL,            -- file | member | archive | symlink | special | directory
    parent TEXT,                   -- the archive holding a member
    status TEXT NOT NULL,          -- ok | error | skipped
    size INTEGER, mtime_ns INTEGER,
    content_type TEXT, format TEXT,
    md5 TEXT, sha1 TEXT, sha256 TEXT,
    pdq TEXT, pdq_quality INTEGER, pdq_variants TEXT, vpdq TEXT,
    assessment TEXT, ai_verdict TEXT, evidence_error TEXT,
    matches TEXT, match_key TEXT,
    known_good INTEGER NOT NULL DEFAULT 0, known_good_by TEXT,
    thumbnail TEXT, error TEXT, note TEXT, members INTEGER, complete INTEGER NOT NULL DEFAULT 0,
    elapsed_ms REAL, run_id INTEGER, recorded_at TEXT,
    model TEXT, artefact TEXT, generation TEXT, pdq_extra TEXT, vpdq_extra TEXT
);
CREATE INDEX IF NOT EXISTS items_sha256 ON items (sha256);
CREATE INDEX IF NOT EXISTS items_parent ON items (parent);
"""

_JSON_COLS = ("pdq_variants", "vpdq", "assessment", "matches", "model", "artefact", "generation", "pdq_extra",
              "vpdq_extra")
#: columns added after schema version 1 (a scan.db from an older version is upgraded in place)
_ADDED_COLS = ("model", "artefact", "generation", "pdq_extra", "vpdq_extra")


def utcnow() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class DoneKey:
    kind: str
    size: int | None
    mtime_ns: int | None
    sha256: str | None
    complete: bool


class ScanStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(str(self.path), isolation_level=None, timeout=30)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA busy_timeout=30000")
        self.conn.executescript(_SCHEMA)
        have = {r[1] for r in self.conn.execute("PRAGMA table_info(items)")}
        for col in _ADDED_COLS:
            if col not in have:
                self.conn.execute(f"ALTER TABLE items ADD COLUMN {col} TEXT")
        if self.get_meta("schema_version") is None:
            self.set_meta("schema_version", SCHEMA_VERSION)
        self._done: dict[str, DoneKey] | None = None
        self._batch: tuple[int, float] | None = None  # (max rows, max seconds) while batching
        self._pending = 0  # rows written in the open batch transaction
        self._opened = 0.0  # when it was opened (monotonic)

    # ---------------------------------------------------------------- batching
    def start_batching(self, max_rows: int = 64, max_seconds: float = 0.25) -> None:
        """Group the scan's per-file rows into transactions of at most ``max_rows`` rows or
        ``max_seconds`` (one commit per file costs about as much as hashing a small picture).

        Crash safety: a ``kill -9`` loses the files in flight and at most the results of the last
        ``max_seconds`` (or ``max_rows``): rows are committed only whole, a lost row is scanned
        again on resume, and ``is_done`` never sees a row that was not committed."""
        self._batch = (max(1, max_rows), max(0.0, max_seconds))

    def stop_batching(self) -> None:
        self.flush()
        self._batch = None

    def flush(self) -> None:
        """Commit the open batch, if any."""
        if self._pending:
            self._pending = 0
            self.conn.execute("COMMIT")

    def tick(self) -> None:
        """Commit the open batch once it is ``max_seconds`` old (called as the next file starts)."""
        if self._pending and self._batch and time.monotonic() - self._opened >= self._batch[1]:
            self.flush()

    def close(self) -> None:
        self.flush()
        try:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self.conn.close()

    # ------------------------------------------------------------------ meta
    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_meta(self, key: str, value: Any) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    # ------------------------------------------------------------------ runs
    def start_run(self, host: str, executor: str, workers: int, inputs: list[str]) -> int:
        cur = self.conn.execute(
            "INSERT INTO runs (started_at, host, executor, workers, inputs) VALUES (?, ?, ?, ?, ?)",
            (utcnow(), host, executor, workers, json.dumps(inputs)))
        return int(cur.lastrowid)

    def finish_run(self, run_id: int, scanned: int, skipped: int, errors: int, status: str = "finished") -> None:
        self.conn.execute(
            "UPDATE runs SET finished_at = ?, scanned = ?, skipped = ?, errors = ?, status = ? WHERE id = ?",
            (utcnow(), scanned, skipped, errors, status, run_id))

    def runs(self) -> list[dict[str, Any]]:
        out = []
        for r in self.conn.execute("SELECT * FROM runs ORDER BY id"):
            d = dict(r)
            d["inputs"] = json.loads(d["inputs"] or "[]")
            out.append(d)
        return out

    # ---------------------------------------------------------------- resume
    def load_done(self) -> None:
        self._done = {}
        self._members: dict[str, int] = {}  # top-level archive -> its members (files inside, nested too)
        for r in self.conn.execute("SELECT path, kind, size, mtime_ns, sha256, complete, error FROM items"):
            if r[6] and r[6].startswith(RETRY_ERRORS):
                continue  # the worker died, not the file: try it again
            self._done[r[0]] = DoneKey(r[1], r[2], r[3], r[4], bool(r[5]))
            if r[1] == "member":
                top = r[0].split("!/", 1)[0]
                self._members[top] = self._members.get(top, 0) + 1

    def is_done(self, path: str, size: int, mtime_ns: int | None, sha256: str | None) -> int:
        """How many files a previous run finished under ``path`` (recorded with the same size,
        mtime and, when given, hash): 1 for a file, the member count for a complete archive, 0
        when it must be scanned."""
        if self._done is None:
            self.load_done()
        assert self._done is not None
        k = self._done.get(path)
        if k is None or k.size != size or k.mtime_ns != mtime_ns:
            return 0
        if k.kind == "archive":
            return max(1, self._members.get(path, 0)) if k.complete and sha256 is None else 0
        if sha256 is not None and k.sha256 != sha256:
            return 0
        return 1

    # ----------------------------------------------------------------- write
    def record_result(self, r: FileResult, run_id: int, *, matches: list[dict] | None, match_key: str | None) -> None:
        verdict = (r.assessment or {}).get("verdict") if r.assessment else None
        self._upsert({
            "path": r.path, "kind": r.kind, "parent": r.parent, "status": r.status, "size": r.size,
            "mtime_ns": r.mtime_ns, "content_type": r.content_type, "format": r.format, "md5": r.md5,
            "sha1": r.sha1, "sha256": r.sha256, "pdq": r.pdq, "pdq_quality": r.pdq_quality,
            "pdq_variants": r.pdq_variants, "vpdq": r.vpdq, "assessment": r.assessment,
            "ai_verdict": verdict, "evidence_error": r.evidence_error, "matches": matches,
            "match_key": match_key, "thumbnail": r.thumbnail, "error": r.error, "note": r.note,
            "elapsed_ms": r.elapsed_ms, "run_id": run_id,
            "model": r.model, "artefact": r.artefact, "generation": r.generation, "pdq_extra": r.pdq_extra,
            "vpdq_extra": r.vpdq_extra,
        })

    def record_walk(self, w: WalkRecord, run_id: int) -> None:
        self._upsert({
            "path": w.path, "kind": w.kind, "parent": w.parent, "status": w.status, "size": w.size,
            "mtime_ns": w.mtime_ns, "format": w.format, "md5": w.md5, "sha1": w.sha1, "sha256": w.sha256,
            "error": w.error, "note": w.note, "members": w.members, "run_id": run_id,
            "content_type": "archive" if w.kind == "archive" else None,
        })

    def _upsert(self, row: dict[str, Any]) -> None:
        row = {k: (fastjson.dumps(v) if k in _JSON_COLS and v is not None else v) for k, v in row.items()}
        row["recorded_at"] = utcnow()
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        sql = f"INSERT OR REPLACE INTO items ({cols}) VALUES ({marks})"
        if self._batch is None:  # one statement = one transaction (autocommit)
            self.conn.execute(sql, tuple(row.values()))
            return
        if not self._pending:
            self.conn.execute("BEGIN")
            self._opened = time.monotonic()
        self._pending += 1
        self.conn.execute(sql, tuple(row.values()))
        if self._pending >= self._batch[0] or time.monotonic() - self._opened >= self._batch[1]:
            self.flush()

    def mark_archives_complete(self, run_id: int) -> None:
        self.conn.execute("UPDATE items SET complete = 1 WHERE kind = 'archive' AND run_id = ?", (run_id,))

    def set_matches(self, path: str, matches: list[dict] | None, match_key: str | None) -> None:
        self.conn.execute("UPDATE items SET matches = ?, match_key = ? WHERE path = ?",
                          (json.dumps(matches) if matches is not None else None, match_key, path))

    def set_known_good(self, marks: dict[str, str]) -> None:
        """``path -> which list`` for known-good files; every other row is cleared."""
        with self.transaction():
            self.conn.execute("UPDATE items SET known_good = 0, known_good_by = NULL")
            self.conn.executemany("UPDATE items SET known_good = 1, known_good_by = ? WHERE path = ?",
                                  [(by, p) for p, by in marks.items()])

    def transaction(self):
        store = self

        class _Tx:
            def __enter__(self):
                store.flush()
                store.conn.execute("BEGIN")

            def __exit__(self, exc_type, *_):
                store.conn.execute("ROLLBACK" if exc_type else "COMMIT")

        return _Tx()

    # ------------------------------------------------------------------ read
    def items(self, *, with_thumbnails: bool = False) -> Iterator[dict[str, Any]]:
        cols = "*" if with_thumbnails else ", ".join(c for c in _ITEM_COLS if c != "thumbnail")
        for r in self.conn.execute(f"SELECT {cols} FROM items ORDER BY path"):
            d = dict(r)
            for k in _JSON_COLS:
                if d.get(k) is not None:
                    d[k] = fastjson.loads(d[k])
            yield d

    def thumbnails(self, paths: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for i in range(0, len(paths), 500):
            chunk = paths[i:i + 500]
            q = f"SELECT path, thumbnail FROM items WHERE path IN ({', '.join('?' for _ in chunk)})"
            for p, t in self.conn.execute(q, chunk):
                if t:
                    out[p] = t
        return out

    def count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM items").fetchone()[0])


_ITEM_COLS = (
    "path", "kind", "parent", "status", "size", "mtime_ns", "content_type", "format", "md5", "sha1",
    "sha256", "pdq", "pdq_quality", "pdq_variants", "vpdq", "assessment", "ai_verdict", "evidence_error",
    "matches", "match_key", "known_good", "known_good_by", "thumbnail", "error", "note", "members",
    "complete", "elapsed_ms", "run_id", "recorded_at", "model", "artefact", "generation", "pdq_extra",
    "vpdq_extra",
)
