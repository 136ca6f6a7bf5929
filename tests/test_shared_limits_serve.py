"""Issue 23.1 with real servers: a key's limit holds for the instance as a whole (four workers of
one `consentry serve`; two `consentry serve` processes on one PostgreSQL), and a restart does not
forget the window (per key and per victim IP)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from conftest import _free_port, _fresh_postgres_db, make_key, wait_ready

PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
RATE = 20  # per second, and the burst
WORKERS = 4


def _serve(home, port: int, workers: int, url: str | None = None, **env_extra) -> subprocess.Popen:
    env = dict(os.environ, CONSENTRY_HOME=str(home), CONSENTRY_EXCHANGE_PULL_SECONDS="0", **env_extra)
    env.pop("DATABASE_URL", None)
    if url:
        env["DATABASE_URL"] = url
    log = open(home.parent / f"serve-{port}.log", "w")  # never a pipe nobody reads
    return subprocess.Popen([sys.executable, "-m", "consentry", "serve", "--host", "127.0.0.1", "--port", str(port),
                             "--workers", str(workers)], env=env, stdout=log, stderr=subprocess.STDOUT)


def _stop(procs) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()


def _flood(bases: list[str], key: str, n: int = 400) -> tuple[int, int, float]:
    """``n`` match requests with one key, spread over ``bases`` and many connections (so over the
    workers) as fast as this machine sends them: (passed the limiter, refused 429, seconds)."""
    h = {"Authorization": f"Bearer {key}"}
    clients = [httpx.Client(base_url=bases[i % len(bases)], headers=h, timeout=30) for i in range(32)]

    def one(i: int) -> int:
        return clients[i % len(clients)].get("/v1/match", params={"signal_type": "pdq", "value": PDQ}).status_code

    try:
        with ThreadPoolExecutor(32) as pool:
            for c in clients:  # connect first, so the window holds requests only
                c.get("/healthz")
            t0 = time.monotonic()
            codes = list(pool.map(one, range(n)))
            elapsed = time.monotonic() - t0
    finally:
        for c in clients:
            c.close()
    assert set(codes) <= {200, 429}, sorted(set(codes))
    return codes.count(200), codes.count(429), elapsed


def _bound(elapsed: float, workers: int) -> float:
    """What one instance-wide bucket lets through in ``elapsed`` seconds, plus the stated
    overshoot: one slice per worker (1 token at 20/s, see consentry.limits_store)."""
    return RATE + RATE * elapsed + workers * 1


def _warm(bases: list[str], procs) -> None:
    for base, proc in zip(bases, procs):
        wait_ready(base, proc, timeout=120)
    # every worker has loaded its index: 40 fresh connections in a row (the kernel spreads them
    # over the workers) answer /readyz with 200
    deadline, streak = time.monotonic() + 120, 0
    while streak < 40:
        assert time.monotonic() < deadline, "not every worker became ready"
        ok = all(httpx.get(base + "/readyz", timeout=5).status_code == 200 for base in bases)
        streak = streak + 1 if ok else 0
        if not ok:
            time.sleep(0.2)
    time.sleep(1.5)  # and the bucket is full again


@pytest.mark.slow
def test_four_workers_share_one_limit(tmp_path):
    key = make_key(tmp_path, "matcher")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _serve(tmp_path, port, WORKERS, CONSENTRY_MATCH_RATE_LIMIT=str(RATE),
                  CONSENTRY_MATCH_RATE_BURST=str(RATE))
    try:
        _warm([base], [proc])
        passed, refused, elapsed = _flood([base], key)
        print(f"4 workers, SQLite: {passed} of 400 passed in {elapsed:.2f} s (bound {_bound(elapsed, WORKERS):.0f})")
        assert RATE <= passed <= _bound(elapsed, WORKERS), (passed, elapsed)
        assert refused >= 400 - _bound(elapsed, WORKERS)
    finally:
        _stop([proc])


@pytest.mark.slow
def test_two_hosts_on_one_postgres_share_one_limit(postgres_server, tmp_path):
    from consentry.db import Database
    from consentry.keys import KeyStore

    url, drop = _fresh_postgres_db(postgres_server)
    procs = []
    try:
        db = Database(url)
        db.upgrade()
        key, _ = KeyStore(db).create("matcher", "test")
        db.dispose()
        ports = [_free_port(), _free_port()]
        bases = [f"http://127.0.0.1:{p}" for p in ports]
        # two "hosts": separate homes (nothing shared but the database), two workers each
        # (one after the other: two first starts at once race to create the demo bank)
        for i, p in enumerate(ports):
            procs.append(_serve(tmp_path / f"host{i}", p, 2, url, CONSENTRY_MATCH_RATE_LIMIT=str(RATE),
                                CONSENTRY_MATCH_RATE_BURST=str(RATE)))
            wait_ready(bases[i], procs[i], timeout=120)
        _warm(bases, procs)
        passed, refused, elapsed = _flood(bases, key)
        print(f"2 hosts x 2 workers, PostgreSQL: {passed} of 400 passed in {elapsed:.2f} s "
              f"(bound {_bound(elapsed, 4):.0f})")
        assert RATE <= passed <= _bound(elapsed, 4), (passed, elapsed)
    finally:
        _stop(procs)
        drop()


@pytest.mark.slow
def test_a_restart_does_not_forget_the_window(tmp_path):
    key = make_key(tmp_path, "matcher")
    env = {"CONSENTRY_MATCH_RATE_LIMIT": "0.01", "CONSENTRY_MATCH_RATE_BURST": "3",  # 3 now, then 1 per 100 s
           "CONSENTRY_VICTIM_LOOKUPS_PER_MINUTE": "0.5"}  # a burst of 1 per client IP, then 1 per 2 minutes
    h = {"Authorization": f"Bearer {key}"}

    def match(base: str) -> int:
        return httpx.get(base + "/v1/match", params={"signal_type": "pdq", "value": PDQ}, headers=h).status_code

    def lookup(base: str) -> int:
        return httpx.post(base + "/v1/victim/cases/0000-0000-0000-0000-0000/status",
                          json={"pin": "not-the-pin"}).status_code

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _serve(tmp_path, port, 1, **env)
    try:
        wait_ready(base, proc)
        assert [match(base) for _ in range(4)] == [200, 200, 200, 429]
        assert [lookup(base) for _ in range(2)] == [403, 429]
    finally:
        _stop([proc])
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _serve(tmp_path, port, 1, **env)
    try:
        wait_ready(base, proc)
        r = httpx.get(base + "/v1/match", params={"signal_type": "pdq", "value": PDQ}, headers=h)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) > 60
        assert lookup(base) == 429
        assert match(base) == 429  # answered locally now, still refused
    finally:
        _stop([proc])
