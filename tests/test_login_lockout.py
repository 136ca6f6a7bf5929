"""Console login hardening (issue 12.6, 12.8): account locks live on the user row and survive any
number of other names tried; every attempt runs exactly one argon2 verification; failed logins
reach the audit log aggregated (bounded); CSRF tokens are stored only as SHA-256."""

from __future__ import annotations

import hashlib

import pytest
from argon2.exceptions import VerifyMismatchError
from sqlalchemy import select, text

import consentry.review.users as users_mod
from consentry.db.models_review import ConsoleSession, User
from consentry.review.audit import AuditLog
from consentry.review.users import FailedLoginAudit, LoginThrottle, UserService

PASSWORD = "a long benign passphrase"


class CountingHasher:
    """Wraps the real PasswordHasher and counts verify calls. With ``fast_dummy`` a check against
    the dummy hash fails at once (it can never succeed anyway) so that big loops stay quick."""

    def __init__(self, real, fast_dummy: bool = False):
        self.real, self.fast_dummy, self.calls = real, fast_dummy, 0

    def verify(self, stored, password):
        self.calls += 1
        if self.fast_dummy and stored == users_mod._DUMMY_HASH:
            raise VerifyMismatchError()
        return self.real.verify(stored, password)

    def __getattr__(self, name):
        return getattr(self.real, name)


@pytest.fixture
def counting(monkeypatch):
    def make(fast_dummy: bool = False) -> CountingHasher:
        h = CountingHasher(users_mod._hasher, fast_dummy)
        monkeypatch.setattr(users_mod, "_hasher", h)
        return h
    return make


def test_locked_account_stays_locked_after_10001_filler_names(db, counting):
    svc = UserService(db)
    svc.create("alice", PASSWORD, "moderator")
    counting(fast_dummy=True)
    throttle = LoginThrottle(attempts=5, window=300)
    for _ in range(5):
        assert svc.login("alice", "wrong password", throttle).reason == "invalid"
    assert svc.login("alice", PASSWORD, throttle).locked  # the right password: still refused
    for i in range(10_001):  # the old throttle forgot everything past 10,000 names
        assert svc.login(f"filler-{i}", "", throttle).user is None
    assert throttle.tracked() <= throttle.max_tracked
    assert svc.login("alice", PASSWORD, throttle).locked
    # the lock is on the row: another worker (another throttle) sees it too
    assert svc.login("alice", PASSWORD, LoginThrottle()).locked
    with db.session() as s:
        assert s.scalar(select(User.locked_until).where(User.username == "alice")) is not None
    svc.unlock("alice")
    assert svc.login("alice", PASSWORD, throttle).user.username == "alice"


def test_unknown_names_get_the_same_lock_answer(db, counting):
    counting(fast_dummy=True)
    svc, throttle = UserService(db), LoginThrottle(attempts=3)
    reasons = [svc.login("nobody", "guess number one", throttle).reason for _ in range(4)]
    assert reasons == ["invalid", "invalid", "invalid", "locked"]


def test_every_attempt_runs_one_argon2_verification(db, counting):
    svc = UserService(db)
    svc.create("bob", PASSWORD, "moderator")
    svc.create("carol", PASSWORD, "curator")
    svc.set_disabled("carol")
    h = counting()
    throttle = LoginThrottle(attempts=4)  # bob's empty, oversized and wrong passwords all count
    attempts = [("bob", ""), ("", ""), ("nobody", ""), ("nobody", "some password"), ("x" * 150, "pw"),
                ("bob", "x" * 2000), ("carol", PASSWORD), ("bob", "wrong"), ("bob", "wrong"),
                ("bob", PASSWORD)]  # the last one: locked, verified against the dummy hash
    results = [svc.login(u, p, throttle) for u, p in attempts]
    assert h.calls == len(attempts)  # empty passwords used to return before hashing
    assert [r.reason for r in results][-4:] == ["disabled", "invalid", "invalid", "locked"]
    assert svc.authenticate("nobody", "") is None and h.calls == len(attempts) + 1


def test_failed_logins_reach_the_audit_log_bounded(db, counting):
    counting(fast_dummy=True)
    now = [1_000_000.0]
    audit = FailedLoginAudit(window_s=600, max_rows=3, clock=lambda: now[0])
    throttle = LoginThrottle(audit=audit)
    svc, log = UserService(db), AuditLog(db)
    for _ in range(200):
        svc.login("mallory", "guess", throttle, audit=log, ip="192.0.2.1")
    for i in range(50):
        svc.login(f"name-{i}", "guess", throttle, audit=log, ip="192.0.2.1")
    kinds = [e.event_type for e in log.list(limit=1000)]
    assert kinds == ["login.failed"] * 3  # mallory + 2 names; the rest only counted
    now[0] += 601
    svc.login("mallory", "guess", throttle, audit=log)  # the next window starts with a summary
    events = log.list(limit=1000)
    assert [e.event_type for e in events] == ["login.failed"] * 3 + ["login.failed.summary", "login.failed"]
    summary = events[3].data
    assert summary["failures"] == 250 and summary["repeats"] == {"mallory": 199}
    assert summary["failures_not_logged_by_name"] == 48
    assert log.verify().ok


def test_csrf_token_is_stored_only_as_a_digest(db):
    svc = UserService(db)
    user = svc.create("dave", PASSWORD, "moderator")
    token, info = svc.start_session(user)
    csrf = info.csrf_token
    with db.session() as s:
        row = s.scalar(select(ConsoleSession))
        raw = " ".join(str(v) for v in s.execute(text("SELECT * FROM console_sessions")).one())
    assert csrf not in raw and token not in raw
    assert row.csrf_token == hashlib.sha256(csrf.encode()).hexdigest()
    again = svc.session(token)
    assert again.csrf_token == csrf  # rendered into forms, derived from the session token
    assert again.csrf_ok(csrf) and not again.csrf_ok("wrong") and not again.csrf_ok(None)
    assert not again.csrf_ok(row.csrf_token)  # the stored digest is not itself a valid token
    with db.session() as s:  # a row from before digests (plain token) is no session any more
        s.execute(text("UPDATE console_sessions SET csrf_token = 'plain-old-token'"))
    assert svc.session(token) is None
