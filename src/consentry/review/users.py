"""Console users (argon2 password hashes) and login sessions.

A session token is a 256-bit random value given to the browser once (HttpOnly cookie) and stored
as its SHA-256; each session has its own CSRF token, which every POST form must echo.
Login failures take the same time whether or not the user exists (a dummy hash is verified).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, select

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

    def to_dict(self) -> dict:
        return {"id": self.id, "username": self.username, "role": self.role, "disabled": self.disabled,
                "created_at": self.created_at.isoformat() if self.created_at else None,
                "last_login_at": self.last_login_at.isoformat() if self.last_login_at else None}


@dataclass(frozen=True)
class SessionInfo:
    user: UserInfo
    csrf_token: str
    expires_at: datetime


def _info(u: User) -> UserInfo:
    return UserInfo(u.id, u.username, u.role, bool(u.disabled), u.created_at, u.last_login_at)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _aware(dt: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    from datetime import timezone

    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


class LoginThrottle:
    """At most ``attempts`` failed logins per username per ``window`` seconds (per process)."""

    def __init__(self, attempts: int = 5, window: float = 300.0):
        self.attempts, self.window = attempts, window
        self._fails: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def blocked(self, username: str) -> bool:
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._fails.get(username.lower(), []) if now - t < self.window]
            self._fails[username.lower()] = recent
            return len(recent) >= self.attempts

    def failed(self, username: str) -> None:
        with self._lock:
            if len(self._fails) > 10_000:
                self._fails.clear()
            self._fails.setdefault(username.lower(), []).append(time.monotonic())

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._fails.pop(username.lower(), None)


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

    def authenticate(self, username: str, password: str) -> UserInfo | None:
        """The active user for these credentials, or None (same work either way)."""
        if not username or len(username) > 100 or not password or len(password) > MAX_PASSWORD:
            return None
        with self.db.session() as s:
            u = s.scalar(select(User).where(User.username == username))
            stored = u.password_hash if u is not None else _DUMMY_HASH
            try:
                _hasher.verify(stored, password)
                ok = u is not None
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                ok = False
            if not ok or u.disabled:
                return None
            if _hasher.check_needs_rehash(u.password_hash):
                u.password_hash = _hasher.hash(password)
            u.last_login_at = utcnow()
            s.flush()
            return _info(u)

    # --------------------------------------------------------------- sessions
    def start_session(self, user: UserInfo) -> tuple[str, SessionInfo]:
        """A new session: (token for the cookie, info). Expired sessions are swept here."""
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = utcnow()
        expires = now + timedelta(hours=self.session_hours)
        with self.db.session() as s:
            s.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))
            s.add(ConsoleSession(token_hash=_digest(token), user_id=user.id, csrf_token=csrf,
                                 created_at=now, expires_at=expires))
        return token, SessionInfo(user, csrf, expires)

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
            return SessionInfo(_info(user), sess.csrf_token, _aware(sess.expires_at))

    def end_session(self, token: str | None) -> None:
        if not token or len(token) > 200:
            return
        with self.db.session() as s:
            s.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == _digest(token)))
