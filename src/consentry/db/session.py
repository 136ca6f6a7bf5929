"""Engine and session set-up for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys and a busy timeout."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:" and not u.database.startswith("file:"):
            from consentry.config import create_private_file, ensure_home

            # the home 0700 and the database 0600 (its -wal/-shm files inherit the mode)
            ensure_home(Path(u.database).parent)
            create_private_file(Path(u.database))
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - exercised by every test
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    if u.get_backend_name() == "postgresql" and u.drivername == "postgresql":
        u = u.set(drivername="postgresql+psycopg")
    return create_engine(u, pool_pre_ping=True)


class Database:
    """One engine plus a session factory; ``upgrade()`` applies the Alembic migrations."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.sessions() as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    def upgrade(self) -> None:
        from consentry.db.migrate import upgrade

        upgrade(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()


def ensure_pg_temp_table(conn, name: str, ddl: str) -> None:
    """Create the session's temporary table ``name`` with ``ddl`` unless it exists already.

    ``CREATE TEMP TABLE IF NOT EXISTS`` alone makes the server send a NOTICE ("relation already
    exists, skipping") on every batch after the first, which psycopg logs: one line of noise per
    batch of a long import."""
    if conn.exec_driver_sql(f"SELECT to_regclass('pg_temp.{name}')").scalar() is None:
        conn.exec_driver_sql(ddl)
