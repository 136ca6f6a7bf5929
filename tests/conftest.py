from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Without CONSENTRY_HOME the default home is the user data directory (config.resolve_home): the
# suite and the processes it starts must never create or use the real one.
os.environ["XDG_DATA_HOME"] = __import__("tempfile").mkdtemp(prefix="consentry-test-data-")
TESTVECTORS = Path(os.environ.get("CONSENTRY_TESTVECTORS", REPO.parent / "shared" / "testvectors"))


@pytest.fixture(scope="session")
def testvectors() -> Path:
    if not (TESTVECTORS / "pdq").is_dir():
        pytest.fail(f"Meta test vectors not found at {TESTVECTORS} (set CONSENTRY_TESTVECTORS)")
    return TESTVECTORS


@pytest.fixture
def limits():
    from consentry.config import MediaLimits

    return MediaLimits()


# --------------------------------------------------------------------------- databases
import glob  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import uuid  # noqa: E402


def _pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server for the session (Debian's binaries, a throw-away cluster).

    ``CONSENTRY_TEST_POSTGRES_URL`` points the suite at an existing server instead;
    ``CONSENTRY_SKIP_POSTGRES=1`` skips PostgreSQL tests (never set in CI).
    """
    url = os.environ.get("CONSENTRY_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    if os.environ.get("CONSENTRY_SKIP_POSTGRES"):
        pytest.skip("CONSENTRY_SKIP_POSTGRES is set")
    bindir = _pg_bindir()
    if bindir is None:
        pytest.fail("PostgreSQL is not installed: apt-get install postgresql (scripts/system-deps.sh --test)")
    root = os.geteuid() == 0
    base = Path(tempfile.mkdtemp(prefix="consentry-pg-"))
    data, sock, log = base / "data", base / "sock", base / "server.log"
    sock.mkdir()
    prefix: list[str] = []
    if root:  # the server refuses to run as root: use Debian's postgres user
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    subprocess.run(prefix + [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                             "-E", "UTF8", "--no-sync", "--locale=C"],
                   check=True, capture_output=True)
    opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off " \
           f"-c full_page_writes=off -c max_connections=200"
    subprocess.run(prefix + [str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(log), "-w",
                             "-t", "60", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(prefix + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def _fresh_postgres_db(server_url: str) -> tuple[str, callable]:
    import psycopg
    from sqlalchemy.engine import make_url

    name = "t_" + uuid.uuid4().hex[:12]
    u = make_url(server_url)
    dsn = f"host={u.host} port={u.port} user={u.username} dbname={u.database}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop():
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return u.set(database=name).render_as_string(hide_password=False), drop


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh, empty database URL: SQLite file, then a real PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'consentry.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    url, drop = _fresh_postgres_db(server)
    try:
        yield url
    finally:
        drop()


@pytest.fixture
def db(db_url):
    from consentry.db import Database

    database = Database(db_url)
    database.upgrade()
    try:
        yield database
    finally:
        database.dispose()


# ---------------------------------------------------------------- shared helpers for server tests
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync"]

#: Browser tests: skipped on a developer machine without Debian's chromium, a failure under CI
#: (where `.ci/run` installs it), so a missing browser can never turn the suite silently green.
needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not os.environ.get("CI"), reason="Debian's chromium is not installed")


def wait_ready(base: str, proc=None, timeout: float = 60) -> None:
    """Poll ``base``/readyz until it answers 200; fail early if ``proc`` exits."""
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else b""
            out = out.decode(errors="replace") if isinstance(out, bytes) else (out or "")
            raise AssertionError(f"server exited: {out[-2000:]}")
        try:
            if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{base} not ready")


def make_key(home: Path, role: str) -> str:
    """An API key of ``role`` in the SQLite database under ``home`` (created and migrated)."""
    from consentry.db import Database
    from consentry.keys import KeyStore

    home.mkdir(parents=True, exist_ok=True)
    db = Database(f"sqlite:///{home / 'consentry.db'}")
    db.upgrade()
    secret, _ = KeyStore(db).create(role, f"test {role}")
    db.dispose()
    return secret
