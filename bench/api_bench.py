#!/usr/bin/env python3
"""HTTP overhead of matching: GET /v1/match by hash against a 1M-entry bank, 2 uvicorn workers on
loopback, vs the same lookups made in-process (Matcher.match), printed side by side.

The bank is random PDQ hashes (benign by construction) in a throw-away SQLite database; queries
are a mix of planted near-duplicates (distance 0-31) and misses. The HTTP client runs in
``--clients`` processes with one keep-alive connection each, on the same 2-core machine as the
server, so the HTTP figures include the client's own cost.

Issue 20 adds, in the same run: POST /v1/match/batch (``--batch`` signals a request) vs the
single-lookup route and vs in-process ``Matcher.match_many``; and the server's start-up, first from
the database (which writes the index snapshot under the home) then again from the snapshot, with
the time to /readyz and the workers' RSS and PSS (shared pages counted once) after each start.

Single lookups are timed in --repeat passes each way (in-process and over HTTP) and the best pass
of each is reported, with the CPU the server spent per lookup (clients not counted) beside the
in-process CPU per lookup: the "per core" comparison.

Usage: python bench/api_bench.py [--entries 1000000] [--queries 4000] [--clients 2] [--workers 2]
                                 [--batch 500] [--repeat 3]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def build_bank(url: str, n: int, rng: np.random.Generator) -> np.ndarray:
    from consentry.banks.formats.records import HashRecord
    from consentry.banks.service import BankService
    from consentry.db import Database

    db = Database(url)
    db.upgrade()
    svc = BankService(db)
    svc.create_bank("bench", "custom")
    raw = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    hexes = [r.tobytes().hex() for r in raw]
    t0 = time.perf_counter()
    svc.add_records("bench", (HashRecord("pdq", h) for h in hexes), batch_size=20_000)
    print(f"built bank of {n} entries in {time.perf_counter() - t0:.1f} s", flush=True)
    db.dispose()
    return raw


def make_queries(raw: np.ndarray, count: int, rng: np.random.Generator) -> list[str]:
    out = []
    for i in range(count):
        if i % 2 == 0:
            h = raw[int(rng.integers(0, len(raw)))].copy()
            bits = np.unpackbits(h)
            flip = rng.choice(256, size=int(rng.integers(0, 32)), replace=False)
            bits[flip] ^= 1
            out.append(np.packbits(bits).tobytes().hex())
        else:
            out.append(rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex())
    return out


def _client(args):
    """One keep-alive connection through the standard library's http.client: a light load
    generator (httpx cost the shared CPUs about as much per request as the server did)."""
    import http.client
    import json
    import socket
    from urllib.parse import urlsplit

    base, key, queries = args
    u = urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    headers = {"Authorization": f"Bearer {key}"}
    lat = []
    hits = 0
    for q in queries:
        t0 = time.perf_counter()
        conn.request("GET", f"/v1/match?signal_type=pdq&value={q}", headers=headers)
        r = conn.getresponse()
        body = r.read()
        lat.append(time.perf_counter() - t0)
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status}: {body[:200]!r}")
        hits += bool(json.loads(body)["matches"])
    conn.close()
    return lat, hits


def _batch_client(args):
    base, key, batches = args
    import httpx

    hits = 0
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120) as c:
        for b in batches:
            r = c.post("/v1/match/batch", json={"items": [{"signal_type": "pdq", "value": q} for q in b]})
            if r.status_code != 200:
                raise RuntimeError(f"HTTP {r.status_code}: {r.text[:200]}")
            hits += sum(bool(x.get("matches")) for x in r.json()["results"])
    return hits


def _descendants(pid: int) -> list[int]:
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def memory_mb(pid: int) -> tuple[float, float]:
    """(RSS, PSS) in MB summed over the server and its workers."""
    rss = pss = 0
    for p in _descendants(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            pass
    return rss / 1024, pss / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by the server and its workers."""
    total = 0
    for p in _descendants(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def wait_idle(pid: int, timeout: float = 180.0) -> float:
    """Wait until the server's workers are done with start-up work (writing the index snapshot,
    the first refresh): under 5 % of a core over a second. Returns the seconds waited."""
    t0 = time.monotonic()
    last = cpu_seconds(pid)
    while time.monotonic() - t0 < timeout:
        time.sleep(1.0)
        now = cpu_seconds(pid)
        if now - last < 0.05:
            break
        last = now
    return time.monotonic() - t0


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(env: dict, port: int, workers: int) -> tuple[subprocess.Popen, float, str]:
    """Start ``consentry serve``; (process, seconds until every worker answers /readyz 200, index source)."""
    import httpx

    t0 = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "consentry", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 900
    ready, first_ok, source = 0, None, "?"
    while time.monotonic() < deadline and ready < 20:
        try:
            r = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
            if r.status_code == 200:
                first_ok = first_ok or time.perf_counter()
                source = r.json().get("index_source", "?")
                ready += 1
            else:
                ready, first_ok = 0, None
        except httpx.HTTPError:
            ready, first_ok = 0, None
        time.sleep(0.02)
    return server, (first_ok or time.perf_counter()) - t0, source


def pct(xs, p):
    return float(np.percentile(np.asarray(xs) * 1000, p))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=4000)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3, help="passes over the queries; the best is reported")
    ap.add_argument("--batch", type=int, default=500, help="signals per POST /v1/match/batch (0: skip)")
    ap.add_argument("--default-rules", action="store_true",
                    help="serve with the shipped rules (every match in the custom bank opens a review "
                         "case); default: a rules file whose only rule blocks, so both sides do the same work")
    args = ap.parse_args()
    rng = np.random.default_rng(1)

    from consentry.banks.matcher import Matcher, QuerySignals
    from consentry.db import Database
    from consentry.keys import KeyStore

    with tempfile.TemporaryDirectory(prefix="consentry-apibench-") as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        raw = build_bank(url, args.entries, rng)
        queries = make_queries(raw, args.queries, rng)
        db = Database(url)
        key, _ = KeyStore(db).create("matcher", "bench")

        # in-process
        t0 = time.perf_counter()
        m = Matcher(db).load()
        print(f"in-process index load: {time.perf_counter() - t0:.1f} s", flush=True)
        in_total = in_cpu = float("inf")
        for _ in range(args.repeat):  # best of --repeat passes: the shared machine is noisy
            run_lat, hits_in = [], 0
            t0, c0 = time.perf_counter(), time.process_time()
            for q in queries:
                s = time.perf_counter()
                hits_in += bool(m.match(QuerySignals(pdq=[q])).matches)
                run_lat.append(time.perf_counter() - s)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            if wall < in_total:
                in_total, lat = wall, run_lat
            in_cpu = min(in_cpu, cpu)
        in_batch_total, hits_in_batch = 0.0, 0
        if args.batch:
            t0 = time.perf_counter()
            for i in range(0, len(queries), args.batch):
                outs = m.match_many([QuerySignals(pdq=[q]) for q in queries[i : i + args.batch]])
                hits_in_batch += sum(bool(o.matches) for o in outs)
            in_batch_total = time.perf_counter() - t0
        del m
        db.dispose()

        # over HTTP
        port = free_port()
        env = dict(os.environ, CONSENTRY_HOME=tmp, DATABASE_URL=url, CONSENTRY_MATCH_RATE_LIMIT="0")
        if not args.default_rules:
            rules = Path(tmp) / "rules.yaml"
            rules.write_text("version: 1\nrules:\n  - name: block-any-match\n    when: {matched: true}\n"
                             "    actions: [block]\n")
            env["CONSENTRY_RULES_PATH"] = str(rules)
        server, ready_db_s, source_db = start_server(env, port, args.workers)
        try:
            base = f"http://127.0.0.1:{port}"
            _client((base, key, queries[:50]))  # warm-up
            settled = wait_idle(server.pid)
            print(f"server idle {settled:.1f} s after /readyz (index snapshot written)", flush=True)
            chunks = [queries[i::args.clients] for i in range(args.clients)]
            with mp.get_context("spawn").Pool(args.clients) as pool:
                pool.map(time.sleep, [0.1] * args.clients)  # the clients' start-up is not timed
                http_total = http_cpu = float("inf")
                for _ in range(args.repeat):  # best of --repeat passes, as in-process
                    t0, c0 = time.perf_counter(), cpu_seconds(server.pid)
                    run = pool.map(_client, [(base, key, c) for c in chunks])
                    wall, cpu = time.perf_counter() - t0, cpu_seconds(server.pid) - c0
                    if wall < http_total:
                        http_total, results = wall, run
                    http_cpu = min(http_cpu, cpu)
            http_batch_total, hits_http_batch = 0.0, 0
            if args.batch:
                batches = [queries[i : i + args.batch] for i in range(0, len(queries), args.batch)]
                _batch_client((base, key, batches[:1]))  # warm-up
                t0 = time.perf_counter()
                with mp.get_context("spawn").Pool(args.clients) as pool:
                    hits_http_batch = sum(pool.map(_batch_client, [(base, key, batches[i::args.clients])
                                                                   for i in range(args.clients)]))
                http_batch_total = time.perf_counter() - t0
            mem_db = memory_mb(server.pid)
        finally:
            server.terminate()
            server.wait(30)
        # a restart: the workers map the snapshot the first start wrote
        port = free_port()
        server, ready_snap_s, source_snap = start_server(env, port, args.workers)
        try:
            _client((f"http://127.0.0.1:{port}", key, queries[:200]))
            mem_snap = memory_mb(server.pid)
        finally:
            server.terminate()
            server.wait(30)
        http_lat = [x for r in results for x in r[0]]
        hits_http = sum(r[1] for r in results)

    print(f"\n{args.entries:,} PDQ entries, {args.queries:,} queries (half planted at distance 0-31, half misses); "
          f"rules: {'shipped defaults (matches open review cases)' if args.default_rules else 'block only'}")
    print(f"{'':34s} {'lookups/s':>10s} {'p50 ms':>8s} {'p99 ms':>8s} {'matched':>8s}")
    print(f"{'in-process Matcher.match':34s} {len(queries) / in_total:10.0f} {pct(lat, 50):8.3f} "
          f"{pct(lat, 99):8.3f} {hits_in:8d}")
    print(f"{f'HTTP GET /v1/match ({args.workers} workers, {args.clients} clients)':34s} "
          f"{len(queries) / http_total:10.0f} {pct(http_lat, 50):8.3f} {pct(http_lat, 99):8.3f} {hits_http:8d}")
    print(f"HTTP overhead: throughput ratio in-process/HTTP = {(len(queries) / in_total) / (len(queries) / http_total):.1f}x, "
          f"p50 latency ratio HTTP/in-process = {pct(http_lat, 50) / max(pct(lat, 50), 1e-9):.1f}x")
    n = len(queries)
    print(f"per core: in-process {n / in_cpu:.0f} lookups per CPU second ({in_cpu / n * 1000:.3f} ms each); "
          f"HTTP {n / http_cpu:.0f} per server CPU second ({http_cpu / n * 1000:.3f} ms each, clients not "
          f"counted): HTTP/in-process = {in_cpu / http_cpu:.2f}")
    if args.batch:
        print(f"{'in-process Matcher.match_many':34s} {n / in_batch_total:10.0f} {'':>8s} {'':>8s} {hits_in_batch:8d}")
        print(f"{f'HTTP POST /v1/match/batch x{args.batch}':34s} {n / http_batch_total:10.0f} {'':>8s} {'':>8s} "
              f"{hits_http_batch:8d}")
        print(f"batch over HTTP: {(n / http_batch_total) / (n / http_total):.1f}x the single-lookup route's "
              f"lookups/s, {(n / http_batch_total) / (n / in_total):.2f}x in-process Matcher.match, "
              f"{(n / http_batch_total) / (n / in_batch_total):.2f}x in-process match_many")
        assert hits_in_batch == hits_in == hits_http_batch, "batch results differ"
    print(f"\nstart-up with {args.workers} workers: from the database {ready_db_s:.1f} s to /readyz "
          f"(index from {source_db}); restart {ready_snap_s:.1f} s (index from {source_snap}): "
          f"{ready_db_s / max(ready_snap_s, 1e-9):.1f}x faster")
    print(f"memory of server + workers: first start RSS {mem_db[0]:.0f} MB / PSS {mem_db[1]:.0f} MB; "
          f"restart RSS {mem_snap[0]:.0f} MB / PSS {mem_snap[1]:.0f} MB (PSS ratio "
          f"{mem_db[1] / max(mem_snap[1], 1e-9):.2f}x)")
    assert hits_in == hits_http, "HTTP and in-process results differ"


if __name__ == "__main__":
    main()
