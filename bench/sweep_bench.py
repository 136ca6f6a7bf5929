"""Content ledger and sweep figures (issue 14). Ratios against a baseline run in the same script.

    .venv/bin/python bench/sweep_bench.py                      # 10M ledger, 100k bank, 1M DB import
    .venv/bin/python bench/sweep_bench.py --ledger 1000000 --bank 20000 --import-rows 200000   # quick

1. Ledger index at N contents (PDQ rows built from arrays, as ``LedgerIndex`` holds them):
   build time, memory (index bytes and process RSS growth).
2. One new bank hash -> ledger matches (threshold 31): p50/p99 against a brute-force numpy scan of
   the same arrays (the baseline), with the results checked equal.
3. A bank of B entries re-swept against the index (the sweep's search step, batched by
   threshold as ``Sweeper.sweep_bank`` does): total seconds and entries/s.
4. Database import rate on SQLite, at ``--import-rows``: ``consentry content import``'s path (a
   JSONL file read and checked in a child process, written by ``LedgerService.import_jsonl``)
   against a plain ``executemany`` INSERT of the same rows into a fresh ledger table (the
   baseline: the table's indexes with no checks, idempotency or change log); then a re-import of
   the same file (idempotent: nothing written).
Hashes are random 256-bit values; a few planted near-duplicates make the lookups find something.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from typing import Any

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from consentry.index import PDQIndex, words_to_hex  # noqa: E402
from consentry.index.pdq_index import brute_force  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def flip(words: np.ndarray, bits: int, rng) -> np.ndarray:
    w = words.copy()
    for b in rng.choice(256, bits, replace=False):
        w[b // 64] ^= np.uint64(1) << np.uint64(b % 64)
    return w


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ledger", type=int, default=10_000_000)
    ap.add_argument("--bank", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--import-rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=14)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    out: dict = {"ledger": a.ledger, "bank": a.bank}

    # 1. the index ----------------------------------------------------------------------------
    rss0 = rss_mb()
    words = rng.integers(0, 2**64, size=(a.ledger, 4), dtype=np.uint64)
    ids = np.arange(a.ledger, dtype=np.int64) * 8  # content pk * 8 + variant 0 (LedgerIndex ids)
    t = time.perf_counter()
    index = PDQIndex.build(ids, words, threshold=31)
    out["index_build_s"] = round(time.perf_counter() - t, 2)
    out["index_mb"] = round(index.nbytes / 2**20, 1)
    out["rss_growth_mb"] = round(rss_mb() - rss0, 1)
    out["bytes_per_content"] = round(index.nbytes / a.ledger, 1)

    # 2. one new hash -> matches ----------------------------------------------------------------
    planted = rng.choice(a.ledger, a.queries, replace=False)
    queries = np.stack([flip(words[i], int(rng.integers(0, 20)), rng) for i in planted])
    lat, base_lat = [], []
    for k, q in enumerate(queries):
        t = time.perf_counter()
        hits = index.query(q, 31)
        lat.append(time.perf_counter() - t)
        if k < 20:  # the baseline is slow at 10M: 20 queries are enough for its median
            t = time.perf_counter()
            ref = brute_force(words, ids, q, 31)
            base_lat.append(time.perf_counter() - t)
            assert sorted(hits) == sorted(ref), "index and brute force disagree"
        assert any(i == ids[planted[k]] for i, _ in hits)
    p = lambda xs, q: round(float(np.percentile(np.array(xs) * 1000, q)), 3)  # noqa: E731
    out["lookup_ms_p50"], out["lookup_ms_p99"] = p(lat, 50), p(lat, 99)
    out["bruteforce_ms_p50"] = p(base_lat, 50)
    out["lookup_speedup_vs_bruteforce"] = round(out["bruteforce_ms_p50"] / max(out["lookup_ms_p50"], 1e-6), 1)

    # 3. a bank re-swept ----------------------------------------------------------------------
    bank = rng.integers(0, 2**64, size=(a.bank, 4), dtype=np.uint64)
    n_pl = min(100, a.bank, len(planted))
    bank[:n_pl] = [flip(words[i], 5, rng) for i in planted[:n_pl]]
    t = time.perf_counter()
    found = 0
    for i in range(0, a.bank, 5000):
        found += sum(len(h) for h in index.query_batch(bank[i:i + 5000], 31))
    sweep_s = time.perf_counter() - t
    out["bank_resweep_s"] = round(sweep_s, 1)
    out["bank_resweep_entries_per_s"] = round(a.bank / sweep_s)
    out["bank_resweep_hits"] = found
    del index, words

    # 4. the database import rate ---------------------------------------------------------------
    from consentry.db import Database
    from consentry.ledger.service import LedgerService

    with tempfile.TemporaryDirectory() as d:
        g = np.random.default_rng(a.seed + 1)
        src = os.path.join(d, "contents.jsonl")  # what `consentry content import` reads
        rows = []
        with open(src, "w") as fh:
            for i in range(a.import_rows):
                w = g.integers(0, 2**64, size=4, dtype=np.uint64)
                rec = {"content_id": f"post-{i}", "url": f"https://example.org/p/{i}", "uploader_id": f"u{i % 9973}",
                       "pdq": words_to_hex(w), "sha256": words_to_hex(w), "pdq_quality": 90}
                fh.write(json.dumps(rec) + "\n")
                rows.append(rec)

        # the baseline: a plain executemany INSERT of the same rows (no checks, no idempotency,
        # no change log) into a fresh ledger table with its indexes, 100,000 rows a commit
        import hashlib

        base = Database(f"sqlite:///{d}/base.db")
        base.upgrade()
        raw = base.engine.raw_connection()
        cols = ("content_id", "url", "url_key", "uploader_id", "pdq", "sha256", "pdq_quality", "status",
                "created_at", "updated_at")
        tuples = [(r["content_id"], r["url"], hashlib.sha256(r["url"].encode()).hexdigest(), r["uploader_id"],
                   r["pdq"], r["sha256"], r["pdq_quality"], "active", "2026-01-01 00:00:00.000000",
                   "2026-01-01 00:00:00.000000") for r in rows]
        del rows
        t = time.perf_counter()
        for i in range(0, len(tuples), 100_000):
            raw.cursor().executemany(f"INSERT INTO ledger_content ({', '.join(cols)}) VALUES "
                                     f"({', '.join('?' * len(cols))})", tuples[i:i + 100_000])
            raw.commit()
        s0 = time.perf_counter() - t
        raw.close()
        base.dispose()
        del tuples

        db = Database(f"sqlite:///{d}/ledger.db")
        db.upgrade()
        ledger = LedgerService(db)

        def timed_import() -> tuple[float, Any]:
            t = time.perf_counter()
            with open(src, "rb") as fh:  # as `consentry content import` reads it
                rep = ledger.import_jsonl(fh)
            return time.perf_counter() - t, rep

        s1, rep = timed_import()
        s2, rep2 = timed_import()
        out["import_rows"] = a.import_rows
        out["baseline_executemany_per_s"] = round(a.import_rows / s0)
        out["import_per_s"] = round(a.import_rows / s1)
        out["import_time_vs_baseline"] = round(s1 / s0, 2)
        out["reimport_per_s"] = round(a.import_rows / s2)
        out["reimport_written"] = rep2.written
        assert rep.written == a.import_rows and rep2.written == 0
        db.dispose()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
