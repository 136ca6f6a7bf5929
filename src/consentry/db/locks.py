"""One cross-process, cross-host lock per name: background jobs that must run once at a time
(an exchange's pull, the ledger sweeper) take it without waiting.

PostgreSQL: a session advisory lock (``pg_try_advisory_lock``) on a 64-bit key derived from the
name, so every host sharing the database takes turns. SQLite (one host): ``flock`` on a file in the
instance's home.
"""

from __future__ import annotations

import fcntl
import hashlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import text

from consentry.db.session import Database


@contextmanager
def exclusive(db: Database, home: Path, kind: str, name: str) -> Iterator[bool]:
    """True while this process holds the lock ``kind:name`` (False: someone else does)."""
    if db.dialect == "postgresql":
        key = int.from_bytes(hashlib.sha256(f"{kind}:".encode() + name.encode()).digest()[:8], "big", signed=True)
        with db.engine.connect() as conn:
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
            try:
                yield got
            finally:
                if got:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()
        return
    from consentry.config import ensure_home

    ensure_home(home)  # 0700 when new
    path = Path(home) / f"{kind}-{hashlib.sha256(name.encode()).hexdigest()[:16]}.lock"
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
