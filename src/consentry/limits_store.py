"""Rate limits and strike counters that hold for the whole instance (issue 23).

Every worker process, on every host that shares the database, reads and writes the same
counters: the ``rate_limit_buckets`` table (UNLOGGED on PostgreSQL: it is not worth WAL, and a
crash only refills the buckets; on SQLite it lives in the instance database, which is one host).
A restart of ``consentry serve`` forgets nothing.

Token buckets (:class:`SharedRateLimiter`) are updated with one atomic upsert
(``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``): refill by the time elapsed, take up to
``lease`` tokens, return what was granted. The fast local path: a worker takes a *slice* of
``lease`` tokens at once and spends them without a round trip, and once the shared bucket is
empty it answers 429 locally until the bucket can hold a token again (tokens only come back with
time, so that wait is exact). Tokens are always debited from the shared bucket *before* they are
spent, so the only excess over a single, instance-wide bucket is the slices held by the workers
at the start of a window: in any window of ``T`` seconds at most
``burst + rate * T + workers * lease`` requests pass (``lease`` is 1% of a second's rate, at
least 1 and at most a tenth of the burst: 1 at 20/s, 20 at the default 2000/s). A slice not
spent within ``LEASE_SECONDS`` is dropped (those tokens are lost, never added back).

Strike counters (:meth:`LimitStore.strike`): failures of one name within a window; reaching
``attempts`` locks the name for ``lock_seconds`` (the console's counters for unknown usernames).

Keys are stored as SHA-256 digests (never the client address, case number or username), and a
row is deleted once its bucket has refilled (or its strike window passed), so the table holds
only the clients that are limited right now. If the table cannot be reached (the database is
away), each worker falls back to its own in-memory bucket and logs it: the limits still apply,
per worker, rather than failing every request.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger("consentry.limits")

TABLE = "rate_limit_buckets"
LEASE_SECONDS = 1.0  # an unspent slice is dropped after this long
SWEEP_SECONDS = 60.0  # how often a worker deletes rows of refilled buckets
MAX_LOCAL = 100_000  # local entries per limiter before expired ones are dropped


def _digest(scope: str, key: Any) -> str:
    return hashlib.sha256(f"consentry-limit\x00{scope}\x00{key}".encode("utf-8", "replace")).hexdigest()


def lease_size(rate: float, burst: float) -> int:
    """Tokens a worker takes from the shared bucket at once (see the module docstring)."""
    return int(max(1, min(math.ceil(rate * 0.01), math.floor(burst / 10))))


class LimitStore:
    """The shared counters of one database (:class:`consentry.db.Database`)."""

    def __init__(self, db):
        self.db = db
        pg = db.dialect == "postgresql"
        self.pg = pg
        now = "EXTRACT(EPOCH FROM clock_timestamp())::float8" if pg else ":now"
        least, greatest = ("LEAST", "GREATEST") if pg else ("MIN", "MAX")
        floor = (lambda x: f"FLOOR({x})") if pg else (lambda x: f"CAST({x} AS INTEGER)")
        refill = f"{least}(:burst, b.tokens + {greatest}(0.0, {now} - b.updated) * :rate)"
        grant = f"{least}(:n, {floor(refill)})"
        first = f"{least}(:n, {floor(':burst')})"
        # ``updated`` never moves back: a statement whose clock reading is older than the row's
        # (it waited for the lock) refills nothing, so no interval is counted twice
        self._take_sql = text(
            f"INSERT INTO {TABLE} AS b (scope, bucket, tokens, updated, granted, expires) "
            f"VALUES (:scope, :bucket, :burst - {first}, {now}, {first}, {now} + {first} / :rate) "
            f"ON CONFLICT (scope, bucket) DO UPDATE SET "
            f"granted = {grant}, tokens = {refill} - {grant}, updated = {greatest}(b.updated, {now}), "
            f"expires = {now} + (:burst - ({refill} - {grant})) / :rate "
            f"RETURNING granted, tokens")
        count = f"(CASE WHEN b.updated < {now} - :window THEN 1 ELSE b.tokens + 1 END)"
        self._strike_sql = text(
            f"INSERT INTO {TABLE} AS b (scope, bucket, tokens, updated, granted, expires) "
            f"VALUES (:scope, :bucket, CASE WHEN 1 >= :attempts THEN 0 ELSE 1 END, {now}, "
            f"CASE WHEN 1 >= :attempts THEN {now} + :lock ELSE 0 END, {now} + :window + :lock) "
            f"ON CONFLICT (scope, bucket) DO UPDATE SET "
            f"tokens = CASE WHEN {count} >= :attempts THEN 0 ELSE {count} END, "
            f"granted = CASE WHEN {count} >= :attempts THEN {now} + :lock ELSE b.granted END, "
            f"updated = {now}, expires = {now} + :window + :lock "
            f"RETURNING granted - {now}")
        self._locked_sql = text(f"SELECT granted - {now} FROM {TABLE} b WHERE scope = :scope AND bucket = :bucket")
        self._clear_sql = text(f"DELETE FROM {TABLE} WHERE scope = :scope AND bucket = :bucket")
        self._clear_scope_sql = text(f"DELETE FROM {TABLE} WHERE scope = :scope")
        self._sweep_sql = text(f"DELETE FROM {TABLE} WHERE expires < {now}")
        self._last_sweep = time.monotonic()
        self._sweep_lock = threading.Lock()
        self._warned = False

    def _run(self, stmt, params: dict[str, Any]):
        params = dict(params, now=time.time())
        with self.db.engine.begin() as conn:
            return conn.execute(stmt, params).first()

    def _maybe_sweep(self) -> None:
        now = time.monotonic()
        if now - self._last_sweep < SWEEP_SECONDS or not self._sweep_lock.acquire(blocking=False):
            return
        try:
            self._last_sweep = now
            with self.db.engine.begin() as conn:
                conn.execute(self._sweep_sql, {"now": time.time()})
        except SQLAlchemyError:
            log.warning("could not sweep the rate-limit table", exc_info=True)
        finally:
            self._sweep_lock.release()

    def _failed(self, what: str) -> None:
        if not self._warned:
            self._warned = True
            log.error("the shared rate-limit table is unavailable (%s): limits apply per worker "
                      "until it is back", what, exc_info=True)

    def take(self, scope: str, key: Any, rate: float, burst: float, n: int) -> tuple[int, float] | None:
        """Take up to ``n`` tokens: (granted, tokens left). None when the table is unavailable."""
        try:
            row = self._run(self._take_sql, {"scope": scope[:40], "bucket": _digest(scope, key), "rate": float(rate),
                                             "burst": float(burst), "n": float(n)})
        except SQLAlchemyError:
            self._failed("take")
            return None
        self._warned = False
        self._maybe_sweep()
        return int(row[0]), float(row[1])

    def strike(self, scope: str, key: Any, attempts: int, window: float, lock_seconds: float) -> bool | None:
        """Count one failure of ``key``; True when this (or an earlier failure) locked it."""
        try:
            row = self._run(self._strike_sql, {"scope": scope[:40], "bucket": _digest(scope, key),
                                               "attempts": int(attempts), "window": float(window),
                                               "lock": float(lock_seconds)})
        except SQLAlchemyError:
            self._failed("strike")
            return None
        self._maybe_sweep()
        return row is not None and row[0] is not None and float(row[0]) > 0

    def locked(self, scope: str, key: Any) -> bool | None:
        """True while ``key`` is locked by its strikes; None when the table is unavailable."""
        try:
            row = self._run(self._locked_sql, {"scope": scope[:40], "bucket": _digest(scope, key)})
        except SQLAlchemyError:
            self._failed("locked")
            return None
        return row is not None and row[0] is not None and float(row[0]) > 0

    def clear(self, scope: str, key: Any = None) -> None:
        """Forget ``key``'s counters in ``scope`` (every key of the scope when None)."""
        try:
            with self.db.engine.begin() as conn:
                if key is None:
                    conn.execute(self._clear_scope_sql, {"scope": scope[:40]})
                else:
                    conn.execute(self._clear_sql, {"scope": scope[:40], "bucket": _digest(scope, key)})
        except SQLAlchemyError:
            self._failed("clear")


class LocalBucket:
    """A token bucket per key in this process only (the fallback, and tests without a store)."""

    def __init__(self, rate: float, burst: float):
        self.rate, self.burst = rate, burst
        self._buckets: dict[Any, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, key: Any) -> float:
        now = time.monotonic()
        with self._lock:
            if len(self._buckets) > MAX_LOCAL:  # bounded memory under a flood of keys
                self._buckets.clear()
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def clear(self) -> None:
        with self._lock:
            self._buckets.clear()


class SharedRateLimiter:
    """Token bucket per key for the whole instance: ``rate`` per second, bursts of ``burst``.

    ``check(key)`` answers 0 when the request may go ahead, else the seconds to wait. Without a
    ``store`` (or while it is unavailable) the bucket is this process's own.
    """

    def __init__(self, rate: float, burst: float | None = None, *, store: LimitStore | None = None,
                 scope: str = "default", lease: int | None = None):
        self.rate = float(rate)
        self.burst = float(burst) if burst is not None and burst > 0 else max(1.0, self.rate * 2)
        self.store, self.scope = store, scope
        self.lease = lease if lease is not None else lease_size(self.rate, self.burst)
        self._local = LocalBucket(self.rate, self.burst)
        self._slices: dict[Any, list[float]] = {}  # key -> [tokens, expires (monotonic)]
        self._denied: dict[Any, float] = {}  # key -> monotonic time a token is back
        self._lock = threading.Lock()

    def check(self, key: Any) -> float:
        if self.rate <= 0:
            return 0.0
        if self.store is None:
            return self._local.check(key)
        now = time.monotonic()
        with self._lock:
            sl = self._slices.get(key)
            if sl is not None:
                if sl[1] > now and sl[0] >= 1.0:
                    sl[0] -= 1.0
                    return 0.0
                del self._slices[key]
            until = self._denied.get(key)
            if until is not None:
                if until > now:
                    return until - now
                del self._denied[key]
        got = self.store.take(self.scope, key, self.rate, self.burst, self.lease)
        if got is None:
            return self._local.check(key)
        granted, left = got
        now = time.monotonic()
        with self._lock:
            if len(self._slices) + len(self._denied) > MAX_LOCAL:
                self._slices = {k: v for k, v in self._slices.items() if v[1] > now}
                self._denied = {k: v for k, v in self._denied.items() if v > now}
                if len(self._slices) + len(self._denied) > MAX_LOCAL:
                    self._slices.clear()
                    self._denied.clear()
            if granted >= 1:
                sl = self._slices.get(key)
                spare = granted - 1 + (sl[0] if sl is not None and sl[1] > now else 0.0)
                if spare > 0:
                    self._slices[key] = [float(spare), now + LEASE_SECONDS]
                return 0.0
            wait = max(1.0 - left, 0.0) / self.rate
            self._denied[key] = now + wait
            return wait

    def reset(self, key: Any = None) -> None:
        """Forget ``key`` (every key when None) here and in the shared store."""
        with self._lock:
            if key is None:
                self._slices.clear()
                self._denied.clear()
            else:
                self._slices.pop(key, None)
                self._denied.pop(key, None)
        self._local.clear()
        if self.store is not None:
            self.store.clear(self.scope, key)
