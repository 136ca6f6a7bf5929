"""Console users (argon2 password hashes) and login sessions.

A session token is a 256-bit random value given to the browser once (HttpOnly cookie) and stored
as its SHA-256; each session has its own CSRF token (an HMAC of the session token, so it can be
rendered into every page without being stored), which every POST form must echo. The database
keeps only the CSRF token's SHA-256, compared in constant time.

Logins do the same work for every attempt: exactly one argon2 verification, against a dummy hash
for unknown users, empty passwords and locked accounts. Failures lock an account for a while; the
lock lives on the user's row (``failed_logins``, ``locked_until``), so it holds across workers and
is never forgotten, however many other names are tried. Unknown names are counted in a bounded
LRU (:class:`LoginThrottle`), so they get the same "too many attempts" answer without revealing
which names exist. Failed logins reach the audit log aggregated (:class:`FailedLoginAudit`): at
most ``max_rows`` ``login.failed`` rows per window plus one ``login.failed.summary``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import case, delete, or_, select, update

from consentry.banks.service import Conflict, NotFound
from consentry.db.models import ROLES, utcnow
from consentry.db.models_review import ConsoleSession, User
from consentry.db.session import Database
from consentry.errors import ConsentryError

_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@\-]{0,99}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not a real password, only here to spend the same time")
_EMPTY_STANDIN = "\x00 an empty password is verified as this, against the dummy hash"
_CSRF_LABEL = b"consentry console csrf v1"


class UserError(ConsentryError):
    code = "user_error"


class UserNotFound(NotFound):
    code = "not_found"


class UserExists(Conflict):
    code = "conflict"


@dataclass(frozen=True)
class UserInfo:
    id: int
    username: str
    role: str
    disabled: bool
    created_at: datetime
    last_login_at: datetime | None
    can_report: bool = False  # the ``reporter`` permission: may file CyberTipline reports (issue 15)

    def to_dict(self) -> dict:
        return {"id": self.id, "username": self.username, "role": self.role, "disabled": self.disabled,
                "created_at": self.created_at.isoformat() if self.created_at else None,
                "last_login_at": self.last_login_at.isoformat() if self.last_login_at else None,
                "reporter": self.can_report}


@dataclass(frozen=True)
class SessionInfo:
    user: UserInfo
    csrf_token: str  # the token to render into forms (never stored: the database keeps its SHA-256)
    expires_at: datetime
    csrf_digest: str = ""

    def csrf_ok(self, token: str | None) -> bool:
        """True when ``token`` is this session's CSRF token (digests compared in constant time)."""
        if not token or len(token) > 200 or not self.csrf_digest:
            return False
        return hmac.compare_digest(_digest(token), self.csrf_digest)


@dataclass(frozen=True)
class LoginResult:
    """What one login attempt came to. ``reason``: ok, locked, invalid (unknown user or wrong
    password; the two are never told apart) or disabled."""

    user: UserInfo | None
    reason: str

    @property
    def locked(self) -> bool:
        return self.reason == "locked"


def _info(u: User) -> UserInfo:
    return UserInfo(u.id, u.username, u.role, bool(u.disabled), u.created_at, u.last_login_at,
                    bool(u.can_report))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _csrf_for(session_token: str) -> str:
    """The CSRF token of a session: HMAC-SHA256 keyed with the (secret, random) session token."""
    mac = hmac.new(session_token.encode("utf-8"), _CSRF_LABEL, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")


def _aware(dt: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


class LoginThrottle:
    """Per-process login bookkeeping that is not on a user row.

    - Failure counters for usernames that do not exist, in an LRU of at most ``max_tracked``
      names: a flood of names can only evict other unknown names (whose "lock" is cosmetic: it
      keeps the answer the same as for a real locked account). Real accounts are locked on their
      row (``UserService.login``) and are never evicted from anything.
    - ``audit``: the aggregation of failed-login audit events (:class:`FailedLoginAudit`).

    ``attempts`` failures within ``window`` seconds lock a name for ``lock_seconds``.

    With a ``store`` (:class:`consentry.limits_store.LimitStore`, as ``consentry serve`` builds
    it) the unknown names' counters are kept in the database, so every worker and host sees the
    same lock and a restart forgets nothing (issue 23); the LRU is then only the fallback for a
    moment when the database cannot be reached.
    """

    SCOPE = "login_unknown_name"

    def __init__(self, attempts: int = 5, window: float = 300.0, *, lock_seconds: float | None = None,
                 max_tracked: int = 10_000, audit: "FailedLoginAudit | None" = None, store: Any = None):
        self.attempts, self.window = attempts, window
        self.lock_seconds = window if lock_seconds is None else lock_seconds
        self.max_tracked = max_tracked
        self._fails: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()
        self.audit = audit or FailedLoginAudit()
        self.store = store

    def blocked(self, username: str) -> bool:
        key = username.lower()
        if self.store is not None:
            shared = self.store.locked(self.SCOPE, key)
            if shared is not None:
                return shared
        now = time.monotonic()
        with self._lock:
            times = self._fails.get(key)
            if times is None:
                return False
            recent = [t for t in times if now - t < max(self.window, self.lock_seconds)]
            if not recent:
                del self._fails[key]
                return False
            self._fails[key] = recent
            return len(recent) >= self.attempts and now - recent[-1] < self.lock_seconds

    def failed(self, username: str) -> None:
        key = username.lower()
        if self.store is not None and self.store.strike(self.SCOPE, key, self.attempts, self.window,
                                                        self.lock_seconds) is not None:
            return
        now = time.monotonic()
        with self._lock:
            times = [t for t in self._fails.pop(key, []) if now - t < max(self.window, self.lock_seconds)]
            times.append(now)
            self._fails[key] = times[-self.attempts:]  # most recently used last
            while len(self._fails) > self.max_tracked:
                self._fails.popitem(last=False)

    def succeeded(self, username: str) -> None:
        if self.store is not None:
            self.store.clear(self.SCOPE, username.lower())
        with self._lock:
            self._fails.pop(username.lower(), None)

    def tracked(self) -> int:
        with self._lock:
            return len(self._fails)


class FailedLoginAudit:
    """Failed logins reach the audit log aggregated, so anonymous clients cannot grow it at will.

    Within one window (``window_s``, default 10 minutes, per process) the first failure of a
    username writes one ``login.failed`` event, for at most ``max_rows`` usernames; every further
    failure only bumps an in-memory count. When the window has passed, the next login attempt
    writes one ``login.failed.summary`` event (actor ``system``) with the repeat counts per
    username and the number of failures beyond ``max_rows``. Every event is an ordinary append,
    so the hash chain stays verifiable; the log grows by at most ``max_rows + 1`` events per
    window per worker, whatever the rate of attempts. ``flush`` writes the summary at once.
    """

    def __init__(self, window_s: float = 600.0, max_rows: int = 100, clock: Callable[[], float] = time.time):
        self.window_s, self.max_rows, self.clock = window_s, max_rows, clock
        self._lock = threading.Lock()
        self._start: float | None = None
        self._seen: dict[str, list[Any]] = {}  # name (lower) -> [username as typed, repeats]
        self._overflow = 0
        self._total = 0

    def record(self, log: Any, username: str, data: dict[str, Any]) -> None:
        """Account for one failure of ``username`` (``log``: an :class:`AuditLog`)."""
        with self._lock:
            now = self.clock()
            self._roll(log, now, force=False)
            if self._start is None:
                self._start = now
            self._total += 1
            key = username.lower()
            seen = self._seen.get(key)
            if seen is not None:
                seen[1] += 1
                return
            if len(self._seen) >= self.max_rows:
                self._overflow += 1
                return
            self._seen[key] = [username, 0]
            log.record("login.failed", username or "-",
                       {**data, "aggregated": f"further failures of this name within {int(self.window_s)} s "
                                             "are counted in the next login.failed.summary"})

    def tick(self, log: Any) -> None:
        """Write the summary of a window that has passed (called on every login attempt)."""
        with self._lock:
            self._roll(log, self.clock(), force=False)

    def flush(self, log: Any) -> None:
        with self._lock:
            self._roll(log, self.clock(), force=True)

    def _roll(self, log: Any, now: float, *, force: bool) -> None:
        if self._start is None or (not force and now - self._start < self.window_s):
            return
        repeats = {name: n for name, n in self._seen.values() if n}
        if repeats or self._overflow:
            fmt = lambda t: datetime.fromtimestamp(t, timezone.utc).isoformat()  # noqa: E731
            log.record("login.failed.summary", "system", {
                "window_start": fmt(self._start), "window_end": fmt(min(now, self._start + self.window_s)),
                "failures": self._total, "usernames_logged": len(self._seen), "repeats": repeats,
                "failures_not_logged_by_name": self._overflow})
        self._start, self._seen, self._overflow, self._total = None, {}, 0, 0


class UserService:
    def __init__(self, db: Database, session_hours: float = 8.0):
        self.db = db
        self.session_hours = session_hours

    # ------------------------------------------------------------------ users
    def create(self, username: str, password: str, role: str) -> UserInfo:
        if not _USERNAME.match(username or ""):
            raise UserError("username must be 1-100 characters: letters, digits, '.', '_', '-', '@'")
        if role not in ROLES:
            raise UserError(f"role must be one of: {', '.join(ROLES)}")
        if not (MIN_PASSWORD <= len(password or "") <= MAX_PASSWORD):
            raise UserError(f"password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters")
        with self.db.session() as s:
            if s.scalar(select(User.id).where(User.username == username)) is not None:
                raise UserExists(f"a user named {username!r} already exists")
            u = User(username=username, password_hash=_hasher.hash(password), role=role, disabled=False)
            s.add(u)
            s.flush()
            return _info(u)

    def list(self) -> list[UserInfo]:
        with self.db.session() as s:
            return [_info(u) for u in s.scalars(select(User).order_by(User.username))]

    def get(self, username: str) -> UserInfo:
        with self.db.session() as s:
            u = s.scalar(select(User).where(User.username == username))
            if u is None:
                raise UserNotFound(f"no user named {username!r}")
            return _info(u)

    def set_disabled(self, username: str, disabled: bool = True) -> UserInfo:
        """Disable (or re-enable) a user; disabling also ends all their sessions."""
        with self.db.session() as s:
            u = s.scalar(select(User).where(User.username == username))
            if u is None:
                raise UserNotFound(f"no user named {username!r}")
            u.disabled = disabled
            if disabled:
                s.execute(delete(ConsoleSession).where(ConsoleSession.user_id == u.id))
            s.flush()
            return _info(u)

    def set_reporter(self, username: str, grant: bool = True, *, actor: str = "admin") -> UserInfo:
        """Grant (or revoke) the ``reporter`` permission: filing NCMEC CyberTipline reports
        (issue 15). An administrator's action, recorded in the audit log."""
        from consentry.review.audit import AuditLog

        with self.db.session() as s:
            u = s.scalar(select(User).where(User.username == username))
            if u is None:
                raise UserNotFound(f"no user named {username!r}")
            u.can_report = bool(grant)
            s.flush()
            AuditLog(self.db).record("user.reporter.grant" if grant else "user.reporter.revoke", actor,
                                     {"username": username}, session=s)
            return _info(u)

    def authenticate(self, username: str, password: str) -> UserInfo | None:
        """The active user for these credentials, or None (same work either way). No lock-out:
        the console logs in through :meth:`login`."""
        return self.login(username, password).user

    def login(self, username: str, password: str, throttle: LoginThrottle | None = None, *,
              audit: Any = None, ip: str | None = None) -> LoginResult:
        """One console login attempt, with lock-out when ``throttle`` is given.

        Always exactly one argon2 verification (a dummy hash for unknown names, empty or
        oversized passwords and locked accounts), so the time taken says nothing. A locked
        account is refused even with the right password. ``audit`` (an ``AuditLog``) receives
        aggregated failures (``throttle.audit``) and ``login.locked`` when an account locks.
        """
        username = username or ""
        password = password or ""
        name_ok = 0 < len(username) <= 100
        pw_ok = 0 < len(password) <= MAX_PASSWORD
        now = utcnow()
        with self.db.session() as s:
            u = s.scalar(select(User).where(User.username == username)) if name_ok else None
            locked = False
            if throttle is not None:
                if u is not None:
                    locked = u.locked_until is not None and _aware(u.locked_until) > now
                else:
                    locked = throttle.blocked(username)
            use_real = u is not None and pw_ok and not locked
            try:
                _hasher.verify(u.password_hash if use_real else _DUMMY_HASH,
                               password[:MAX_PASSWORD] if pw_ok else _EMPTY_STANDIN)
                ok = use_real
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                ok = False
            if ok and not u.disabled:
                if _hasher.check_needs_rehash(u.password_hash):
                    u.password_hash = _hasher.hash(password)
                u.last_login_at = now
                u.failed_logins, u.last_failed_at, u.locked_until = 0, None, None
                s.flush()
                result = LoginResult(_info(u), "ok")
            elif locked:
                result = LoginResult(None, "locked")
            elif ok:
                result = LoginResult(None, "disabled")
            else:
                result = LoginResult(None, "invalid")
                if throttle is not None and u is not None:
                    if self._count_failure(s, u.id, throttle, now) and audit is not None:
                        audit.record("login.locked", username, {
                            "ip": ip, "failures": throttle.attempts,
                            "locked_until": (now + timedelta(seconds=throttle.lock_seconds)).isoformat()},
                            session=s)
        if throttle is not None:
            if result.user is not None:
                throttle.succeeded(username)
            elif u is None and result.reason == "invalid":
                throttle.failed(username)
            if audit is not None:
                if result.user is None:
                    throttle.audit.record(audit, username[:100], {"ip": ip, "reason": result.reason})
                else:
                    throttle.audit.tick(audit)
        return result

    @staticmethod
    def _count_failure(s, user_id: int, throttle: LoginThrottle, now: datetime) -> bool:
        """Count one failure on the user's row (one atomic UPDATE); lock the account when it
        reaches ``throttle.attempts`` within ``throttle.window``. True when this locked it."""
        cutoff = now - timedelta(seconds=throttle.window)
        s.execute(update(User).where(User.id == user_id).values(
            failed_logins=case((or_(User.last_failed_at.is_(None), User.last_failed_at < cutoff), 1),
                               else_=User.failed_logins + 1),
            last_failed_at=now).execution_options(synchronize_session=False))
        count = s.scalar(select(User.failed_logins).where(User.id == user_id))
        if count is not None and count >= throttle.attempts:
            s.execute(update(User).where(User.id == user_id, User.failed_logins >= throttle.attempts).values(
                failed_logins=0, locked_until=now + timedelta(seconds=throttle.lock_seconds))
                .execution_options(synchronize_session=False))
            return True
        return False

    def unlock(self, username: str) -> UserInfo:
        """Lift a login lock-out at once (an administrator's action)."""
        with self.db.session() as s:
            u = s.scalar(select(User).where(User.username == username))
            if u is None:
                raise UserNotFound(f"no user named {username!r}")
            u.failed_logins, u.last_failed_at, u.locked_until = 0, None, None
            s.flush()
            return _info(u)

    # --------------------------------------------------------------- sessions
    def start_session(self, user: UserInfo) -> tuple[str, SessionInfo]:
        """A new session: (token for the cookie, info). Expired sessions are swept here."""
        token = secrets.token_urlsafe(32)
        csrf = _csrf_for(token)
        now = utcnow()
        expires = now + timedelta(hours=self.session_hours)
        with self.db.session() as s:
            s.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))
            s.add(ConsoleSession(token_hash=_digest(token), user_id=user.id, csrf_token=_digest(csrf),
                                 created_at=now, expires_at=expires))
        return token, SessionInfo(user, csrf, expires, _digest(csrf))

    def session(self, token: str | None) -> SessionInfo | None:
        """The live session for a cookie value, or None (unknown, expired or user disabled)."""
        if not token or len(token) > 200:
            return None
        with self.db.session() as s:
            row = s.execute(select(ConsoleSession, User).join(User, User.id == ConsoleSession.user_id)
                            .where(ConsoleSession.token_hash == _digest(token))).first()
            if row is None:
                return None
            sess, user = row
            if user.disabled or _aware(sess.expires_at) <= utcnow():
                return None
            csrf = _csrf_for(token)
            if not hmac.compare_digest(_digest(csrf), sess.csrf_token or ""):
                return None  # a session from before CSRF digests (or a tampered row): log in again
            return SessionInfo(_info(user), csrf, _aware(sess.expires_at), sess.csrf_token)

    def end_session(self, token: str | None) -> None:
        if not token or len(token) > 200:
            return
        with self.db.session() as s:
            s.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == _digest(token)))
