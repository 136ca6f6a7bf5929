"""Issue 23.1, in process: the rate limits and the console's unknown-name counters are kept in the
database, so several limiters (workers, hosts) on one database share one budget; SQLite and
PostgreSQL (the ``db`` fixture runs both)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from consentry.limits_store import LimitStore, SharedRateLimiter, lease_size
from consentry.review.users import LoginThrottle


def test_workers_share_one_bucket(db):
    store = LimitStore(db)
    # four "workers" taking 5 tokens at a time from a bucket of 20 that refills very slowly
    workers = [SharedRateLimiter(0.001, 20, store=store, scope="t", lease=5) for _ in range(4)]
    passed = sum(workers[i % 4].check("key-1") == 0 for i in range(200))
    assert passed == 20  # every token is debited from the shared bucket before it is spent
    # another key has its own bucket; a fresh limiter (a restarted worker) still sees key-1 empty
    assert workers[0].check("key-2") == 0
    assert SharedRateLimiter(0.001, 20, store=LimitStore(db), scope="t").check("key-1") > 0
    # and another scope is another bucket
    assert SharedRateLimiter(0.001, 20, store=store, scope="u").check("key-1") == 0


def test_refill_and_wait(db):
    limiter = SharedRateLimiter(10, 2, store=LimitStore(db), scope="r")
    assert [limiter.check(7) for _ in range(2)] == [0, 0]
    wait = limiter.check(7)
    assert 0 < wait <= 0.11
    import time

    time.sleep(wait + 0.05)
    assert limiter.check(7) == 0


def test_denials_are_answered_locally(db):
    store = LimitStore(db)
    calls = {"n": 0}
    real = store.take

    def counting(*a, **k):
        calls["n"] += 1
        return real(*a, **k)

    store.take = counting  # type: ignore[method-assign]
    limiter = SharedRateLimiter(0.01, 3, store=store, scope="d")
    results = [limiter.check("k") for _ in range(1000)]
    assert sum(r == 0 for r in results) == 3
    assert calls["n"] == 4  # three grants, one denial; the other 996 never reached the database


def test_lease_size_is_bounded():
    assert lease_size(20, 20) == 1
    assert lease_size(2000, 4000) == 20
    assert lease_size(2000, 50) == 5  # never more than a tenth of the burst
    assert lease_size(0.01, 1) == 1


def test_keys_are_stored_as_digests_and_full_buckets_are_swept(db):
    store = LimitStore(db)
    SharedRateLimiter(1000, 2000, store=store, scope="ip").check("192.0.2.77")
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT scope, bucket FROM rate_limit_buckets")).all()
        assert rows and all("192.0.2.77" not in r.bucket for r in rows)
        conn.execute(text("UPDATE rate_limit_buckets SET expires = 0"))
        conn.commit()
    store._last_sweep = 0
    store._maybe_sweep()
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM rate_limit_buckets")).scalar() == 0


def test_unknown_login_names_lock_for_every_worker(db):
    a, b = (LoginThrottle(attempts=3, window=300, store=LimitStore(db)) for _ in range(2))
    a.failed("nobody")
    b.failed("Nobody")
    assert not a.blocked("nobody") and not b.blocked("nobody")
    a.failed("NOBODY")
    assert a.blocked("nobody") and b.blocked("nobody")
    restarted = LoginThrottle(attempts=3, store=LimitStore(db))
    assert restarted.blocked("nobody") and not restarted.blocked("somebody")
    b.succeeded("nobody")
    assert not a.blocked("nobody")


def test_unknown_name_lock_expires(db):
    t = LoginThrottle(attempts=2, window=300, lock_seconds=0.3, store=LimitStore(db))
    t.failed("x")
    t.failed("x")
    assert t.blocked("x")
    import time

    time.sleep(0.4)
    assert not t.blocked("x")
    t.failed("x")  # the count started again
    assert not t.blocked("x")


def test_without_the_table_limits_still_apply_per_worker(tmp_path, caplog):
    from consentry.db import Database

    bare = Database(f"sqlite:///{tmp_path / 'bare.db'}")  # never migrated: no table
    try:
        limiter = SharedRateLimiter(0.01, 2, store=LimitStore(bare), scope="x")
        assert [limiter.check("k") == 0 for _ in range(4)] == [True, True, False, False]
        assert "rate-limit table is unavailable" in caplog.text
        throttle = LoginThrottle(attempts=2, store=LimitStore(bare))
        throttle.failed("n")
        throttle.failed("n")
        assert throttle.blocked("n")  # the in-memory fallback
    finally:
        bare.dispose()


@pytest.mark.parametrize("rate", [0, -1])
def test_rate_zero_is_off(db, rate):
    limiter = SharedRateLimiter(rate, 1, store=LimitStore(db), scope="z")
    assert all(limiter.check("k") == 0 for _ in range(50))
