"""Two real uvicorn processes on one real PostgreSQL: adds and withdrawals reach the other
worker within 1 second, through the change log (no snapshot reloads)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from conftest import _free_port, _fresh_postgres_db, wait_ready

PDQ_A = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


def _start(url: str, home, port: int) -> subprocess.Popen:
    env = dict(os.environ, DATABASE_URL=url, CONSENTRY_HOME=str(home), CONSENTRY_INDEX_REFRESH_SECONDS="0.1")
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "consentry.web.app:create_app", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )


def _until(predicate, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError(f"not true within {timeout} s")


@pytest.mark.slow
def test_add_and_withdraw_propagate_between_workers_within_a_second(postgres_server, tmp_path):
    from consentry.db import Database
    from consentry.keys import KeyStore

    url, drop = _fresh_postgres_db(postgres_server)
    procs = []
    try:
        db = Database(url)
        db.upgrade()
        key, _ = KeyStore(db).create("admin", "test")
        db.dispose()
        ports = [_free_port(), _free_port()]
        procs = [_start(url, tmp_path, p) for p in ports]
        a, b = (f"http://127.0.0.1:{p}" for p in ports)
        for base, proc in zip((a, b), procs):
            wait_ready(base, proc)
        h = {"Authorization": f"Bearer {key}"}
        assert httpx.post(a + "/v1/banks", json={"name": "hub", "kind": "ncii"}, headers=h).status_code == 201

        def matched(base: str) -> bool:
            r = httpx.get(base + "/v1/match", params={"signal_type": "pdq", "value": PDQ_A}, headers=h)
            assert r.status_code == 200, r.text
            return bool(r.json()["matches"])

        assert not matched(b)
        r = httpx.post(a + "/v1/banks/hub/entries", json={"signal_type": "pdq", "value": PDQ_A}, headers=h)
        entry_id = r.json()["entry"]["id"]
        add_latency = _until(lambda: matched(b), 1.0)
        r = httpx.post(f"{b}/v1/banks/hub/entries/{entry_id}/withdraw", headers=h)
        assert r.json()["status"] == "withdrawn"
        withdraw_latency = _until(lambda: not matched(a), 1.0)
        print(f"add->matchable on the other worker: {add_latency * 1000:.0f} ms; "
              f"withdraw->unmatchable: {withdraw_latency * 1000:.0f} ms")
        # and the index itself (not only the database re-check) caught up on both workers
        for base in (a, b):
            _until(lambda: httpx.get(base + "/readyz").json().get("pdq_entries") == 0, 1.0)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        drop()
