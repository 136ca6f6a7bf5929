"""Start-up and set-up of `consentry serve` and the CLI (issues 11 and 12): the banner comes once
the service answers, a busy port is a clear error, one home found from any directory, private
file modes, forwarded addresses believed only from listed proxies, an access log without hashes,
uploader ids or anything about victims."""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from conftest import _free_port

DEMO_PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
BANNER = "is running at"


def _env(tmp_path: Path, **extra) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1", XDG_DATA_HOME=str(tmp_path / "xdg-data"),
               HOME=str(tmp_path / "user"), CONSENTRY_EXCHANGE_PULL_SECONDS="0")
    for name in ("DATABASE_URL", "CONSENTRY_HOME", "CONSENTRY_TRUSTED_PROXIES", "FORWARDED_ALLOW_IPS"):
        env.pop(name, None)
    env.update(extra)
    return env


class Served:
    """`consentry serve` in a subprocess; every output line (stdout and stderr) kept with its time."""

    def __init__(self, env: dict, port: int, cwd: Path | None = None):
        self.port, self.base = port, f"http://127.0.0.1:{port}"
        self.lines: list[tuple[float, str]] = []
        self.proc = subprocess.Popen([sys.executable, "-m", "consentry", "serve", "--port", str(port)],
                                     env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in iter(self.proc.stdout.readline, ""):
            self.lines.append((time.monotonic(), line))

    @property
    def output(self) -> str:
        return "".join(line for _, line in self.lines)

    def wait_for(self, text: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if self.proc.poll() is not None:
                self._reader.join(5)
                if text in self.output:
                    return
                raise AssertionError(f"exited {self.proc.returncode} before {text!r}:\n{self.output}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} within {timeout} s:\n{self.output}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._reader.join(5)


def _access(output: str) -> str:
    """The access-log lines of the output (the banner names /submit and the demo hash)."""
    return "\n".join(line for line in output.splitlines() if " HTTP/1.1\" " in line)


def _log_after(served: Served, marker: str, timeout: float = 10) -> str:
    """The access-log output once a line containing ``marker`` has been written."""
    served.wait_for(marker, timeout)
    return served.output


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One service on a fresh home (which does not exist yet), default settings."""
    tmp = tmp_path_factory.mktemp("serve")
    home = tmp / "new-home"
    s = Served(_env(tmp, CONSENTRY_HOME=str(home)), _free_port())
    s.home = home
    try:
        s.wait_for(BANNER)
        # the banner is printed only once the service answers: right now, not after a retry
        s.healthz_at_banner = httpx.get(s.base + "/healthz", timeout=1.0).status_code
        s.wait_for("    curl ")  # the whole first-start text
        s.key = re.search(r"(cst_[A-Za-z0-9_\-]{20,})", s.output).group(1)
        yield s
    finally:
        s.stop()


def test_banner_only_once_the_service_answers(served):
    assert served.healthz_at_banner == 200
    banner = [line for line in served.output.splitlines() if BANNER in line]
    assert len(banner) == 1
    assert str(served.home) in banner[0]  # the home in use is named


def test_busy_port_exits_with_a_clear_message_and_no_banner(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "consentry", "serve", "--port", str(port)],
                           env=_env(tmp_path, CONSENTRY_HOME=str(tmp_path / "home")),
                           capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert f"port {port}" in out and "already in use" in out
    assert "--port" in out and "make run PORT=" in out
    assert BANNER not in out and "Traceback" not in out
    # nothing was created unseen (the first admin key is printed once: it must not be made here)
    assert not (tmp_path / "home" / "consentry.db").exists()


def test_fresh_home_and_database_are_private(served):
    assert stat.S_IMODE(served.home.stat().st_mode) == 0o700
    for name in ("consentry.db", "consentry.db-wal", "consentry.db-shm"):
        path = served.home / name
        assert path.exists(), name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, name


def test_access_log_has_no_query_strings(served):
    r = httpx.get(served.base + "/v1/match", headers={"Authorization": f"Bearer {served.key}"},
                  params={"signal_type": "pdq", "value": DEMO_PDQ, "uploader_id": "uploader-4711"})
    assert r.status_code == 200
    out = _log_after(served, '"GET /v1/match HTTP/1.1" 200')
    access = _access(out)  # (the banner shows DEMO_PDQ in its curl example)
    assert "/v1/match" in access
    assert DEMO_PDQ not in access and "uploader-4711" not in out


def test_access_log_says_nothing_about_victims(served):
    for path in ("/submit", "/case", "/static/victim/victim.css", "/v1/victim/cases/CSN-0000-0000/status?x=1"):
        httpx.get(served.base + path, timeout=10)
    deadline = time.monotonic() + 10
    while _access(served.output).count("[victim page]") < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    access = _access(served.output)
    victim = [line for line in access.splitlines() if "[victim page]" in line]
    assert len(victim) == 4, access
    for line in victim:
        assert "127.0.0.1" not in line
    for leaked in ("/submit", "/case", "victim.css", "/v1/victim", "CSN-0000"):
        assert leaked not in access


def test_forwarded_for_is_ignored_without_trusted_proxies(served):
    httpx.get(served.base + "/readyz", headers={"X-Forwarded-For": "6.6.6.6"})
    out = _log_after(served, '"GET /readyz HTTP/1.1"')
    line = [ln for ln in out.splitlines() if "GET /readyz" in ln][-1]
    assert "127.0.0.1:" in line
    assert "6.6.6.6" not in out


def test_forwarded_for_is_used_from_a_trusted_proxy(tmp_path):
    s = Served(_env(tmp_path, CONSENTRY_HOME=str(tmp_path / "home"), CONSENTRY_TRUSTED_PROXIES="10.0.0.0/8, 127.0.0.1"),
               _free_port())
    try:
        s.wait_for(BANNER)
        httpx.get(s.base + "/readyz", headers={"X-Forwarded-For": "6.6.6.6"})
        out = _log_after(s, '"GET /readyz HTTP/1.1"')
        assert "6.6.6.6:" in [ln for ln in out.splitlines() if "GET /readyz" in ln][-1]
    finally:
        s.stop()


def test_bad_trusted_proxies_is_a_clear_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "consentry", "serve", "--port", str(_free_port())],
                       env=_env(tmp_path, CONSENTRY_HOME=str(tmp_path / "home"), CONSENTRY_TRUSTED_PROXIES="proxy.local"),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "CONSENTRY_TRUSTED_PROXIES" in r.stderr and "proxy.local" in r.stderr
    assert "Traceback" not in r.stderr and BANNER not in r.stdout


# ------------------------------------------------------------------------------------ one home
def _cli(tmp_path: Path, cwd: Path, *args: str, **env) -> subprocess.CompletedProcess:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run([sys.executable, "-m", "consentry", *args], cwd=cwd, env=_env(tmp_path, **env),
                          capture_output=True, text=True, timeout=120)


def test_default_home_is_the_user_data_dir_from_any_directory(tmp_path):
    home = tmp_path / "xdg-data" / "consentry"
    help_text = _cli(tmp_path, tmp_path / "a", "--help").stdout
    assert str(home) in "".join(help_text.split()) and "not created yet" in help_text
    first = _cli(tmp_path, tmp_path / "a", "db", "upgrade")
    assert first.returncode == 0, first.stderr
    assert str(home / "consentry.db") in first.stdout
    assert "created a new, empty Consentry home" in first.stderr and str(home) in first.stderr
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "consentry.db").stat().st_mode) == 0o600
    # another directory: the same home, no new one, no warning, nothing in the working directory
    second = _cli(tmp_path, tmp_path / "b" / "c", "db", "upgrade")
    assert str(home / "consentry.db") in second.stdout
    assert "created a new" not in second.stderr
    assert not (tmp_path / "a" / ".consentry").exists() and not (tmp_path / "b" / "c" / ".consentry").exists()


def test_a_project_home_is_found_from_sub_directories(tmp_path):
    project_home = tmp_path / "project" / ".consentry"
    project_home.mkdir(parents=True)
    deep = tmp_path / "project" / "src" / "deep"
    help_text = _cli(tmp_path, deep, "--help").stdout
    assert str(project_home) in "".join(help_text.split()) and "found .consentry" in " ".join(help_text.split())
    r = _cli(tmp_path, deep, "db", "upgrade")
    assert str(project_home / "consentry.db") in r.stdout
    assert "created a new" not in r.stderr
    assert not (tmp_path / "xdg-data" / "consentry").exists()


def test_consentry_home_overrides(tmp_path):
    chosen = tmp_path / "chosen"
    (tmp_path / "project" / ".consentry").mkdir(parents=True)
    r = _cli(tmp_path, tmp_path / "project", "db", "upgrade", CONSENTRY_HOME=str(chosen))
    assert str(chosen / "consentry.db") in r.stdout
    assert "created a new, empty Consentry home" in r.stderr
    assert not (tmp_path / "project" / ".consentry" / "consentry.db").exists()


def test_resolve_home_order(tmp_path, monkeypatch):
    from consentry.config import resolve_home

    monkeypatch.delenv("CONSENTRY_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert resolve_home(tmp_path / "x") == (tmp_path / "data" / "consentry", "user data directory")
    (tmp_path / ".consentry").mkdir()
    assert resolve_home(tmp_path / "x" / "y")[0] == tmp_path / ".consentry"
    monkeypatch.setenv("CONSENTRY_HOME", str(tmp_path / "env"))
    assert resolve_home(tmp_path / "x") == (tmp_path / "env", "CONSENTRY_HOME")


def test_access_log_filter_rules():
    import logging

    from consentry.web.accesslog import AccessLogFilter

    def logged(path: str) -> str:
        record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                                   ("10.1.2.3:5555", "GET", path, "1.1", 200), None)
        assert AccessLogFilter().filter(record)
        return record.getMessage()

    assert logged("/v1/match?signal_type=pdq&value=abc&uploader_id=u1") == '10.1.2.3:5555 - "GET /v1/match HTTP/1.1" 200'
    assert logged("/v1/banks/x/entries?value=abc") == '10.1.2.3:5555 - "GET /v1/banks/x/entries HTTP/1.1" 200'
    assert logged("/v1/cases?status=open") == '10.1.2.3:5555 - "GET /v1/cases HTTP/1.1" 200'  # not a victim route
    for path in ("/submit", "/case?n=1", "/static/victim/pdq.js", "/v1/victim/cases", "/v1/victim/cases/X/status"):
        assert logged(path) == '- - "GET [victim page] HTTP/1.1" 200'


def test_access_formatter_writes_uvicorns_line():
    """Our access formatter (no record copy, no colours) writes what uvicorn's plain one does."""
    import logging

    from uvicorn.logging import AccessFormatter as UvicornAccessFormatter

    from consentry.web.accesslog import AccessFormatter

    theirs = UvicornAccessFormatter(fmt='%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s',
                                    use_colors=False)
    for level, status in ((logging.INFO, 200), (logging.INFO, 404), (logging.WARNING, 503), (logging.INFO, 299)):
        record = logging.LogRecord("uvicorn.access", level, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                                   ("10.1.2.3:5555", "POST", "/v1/match", "1.1", status), None)
        assert AccessFormatter().format(record) == theirs.format(record)
    other = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, "plain %s", ("text",), None)
    assert AccessFormatter().format(other) == "plain text"
