"""Database writes handed to one thread, in order, while the caller prepares the next.

Bulk work (exchange pulls, ledger imports) alternates between Python work that holds the GIL
(reading and checking records) and database work that does not (SQLite and psycopg let go of it
while a statement runs); doing the next batch's Python work while this batch is written overlaps
the two. At most one write is in flight, and writes run in the order given. After a write fails no
later one runs (a checkpoint or count saved by a later write must not pass records that did not
land); the failure is raised by the next :meth:`InOrder.submit` or :meth:`InOrder.drain`.
Where connections cannot cross threads (in-memory SQLite) writes run inline.
"""

from __future__ import annotations

from typing import Any, Callable


class InOrder:
    def __init__(self, db: Any, name: str = "consentry-writer") -> None:
        from sqlalchemy.pool import SingletonThreadPool, StaticPool

        self._threaded = not isinstance(db.engine.pool, (SingletonThreadPool, StaticPool))
        self._name = name
        self._pool: Any = None
        self._pending: Any = None
        self._failed: BaseException | None = None

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self.drain()
        if not self._threaded:
            fn(*args)
            return
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(1, thread_name_prefix=self._name)
        self._pending = self._pool.submit(fn, *args)

    def drain(self) -> None:
        """Wait for the write in flight; raise its failure (or an earlier one)."""
        if self._failed is not None:
            raise self._failed
        pending, self._pending = self._pending, None
        if pending is not None:
            try:
                pending.result()
            except BaseException as exc:
                self._failed = exc
                raise

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)  # a write in flight finishes (or fails) on its own
