#!/usr/bin/env python3
"""Exact PDQ index at 1M and 10M entries vs FAISS, in one run (a benchmark, not a test).

For each size and each distribution (uniform random hashes; clustered: families of
near-duplicates plus a hot bucket of hashes sharing their first 64 bits, as real lists have),
with planted queries at every distance 0-31 and as many random misses, it prints: build time,
peak RSS, index bytes per entry, p50/p99 latency per query on one thread (plain, and 8 dihedral
variants), batch throughput on 2 threads, recall vs brute force, time from add to matchable and
from remove to unmatchable; then the same queries on FAISS IndexBinaryFlat and
IndexBinaryMultiHash(256, 16, 16) with nflip=1 (range_search, radius 32 = distance <= 31), with
the ratios. All data is random bits (benign by construction).

Usage: python bench/index_bench.py [--sizes 1000000,10000000] [--queries 1024] [--faiss-queries 256]
       python bench/index_bench.py --quick        (100k entries, a smoke run)
       python bench/index_bench.py --issue21 [--sizes 10000000] [--media-share 0.02] [--per-photo 27]
           issue 21: plain index vs plain + stored-variant index, same dihedral queries
       python bench/index_bench.py --issue20 [--sizes 1000000]
           issue 20: the one-pass dihedral probe vs 8 searches in sequence (the baseline, same
           index, same queries, results compared), and snapshots: write/open times vs a build, and
           4 worker processes mapping one snapshot vs each building its own copy (RSS and PSS).
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from consentry.index.pdq_index import PDQIndex  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def flip_bits(words: np.ndarray, count: int, rng) -> np.ndarray:
    out = words.copy()
    for b in rng.choice(256, size=count, replace=False):
        out[b // 64] ^= np.uint64(1) << np.uint64(63 - b % 64)
    return out


def make_data(n: int, kind: str, rng) -> np.ndarray:
    words = rng.integers(0, 2**64, size=(n, 4), dtype=np.uint64)
    if kind == "clustered":
        # 60% of rows in families of ~10 near-duplicates (0-24 bits from their seed) ...
        fam = int(n * 0.6)
        seeds = words[rng.integers(0, n, size=fam // 10)]
        owner = rng.integers(0, len(seeds), size=fam)
        noise = np.zeros((fam, 4), dtype=np.uint64)
        for k in range(24):  # each bit flipped with probability ~ k-th trial
            pos = rng.integers(0, 256, size=fam)
            keep = rng.random(fam) < 0.5
            noise[np.arange(fam)[keep], pos[keep] // 64] ^= np.uint64(1) << (63 - (pos[keep] % 64)).astype(np.uint64)
        words[:fam] = seeds[owner] ^ noise
        # ... and a hot bucket: 0.2% of rows share their first 64 bits (a flat image region)
        hot = max(1, n // 500)
        words[fam : fam + hot, 0] = np.uint64(0x00FF00FF00FF00FF)
    return words


def brute(words: np.ndarray, q: np.ndarray, t: int = 31) -> set[int]:
    d = np.bitwise_count(words ^ q).sum(axis=1, dtype=np.int32)
    return set(np.flatnonzero(d <= t).tolist())


def time_queries(fn, queries) -> tuple[np.ndarray, list]:
    lat, out = [], []
    for q in queries:
        t0 = time.perf_counter()
        out.append(fn(q))
        lat.append(time.perf_counter() - t0)
    return np.array(lat) * 1000, out


def pct(a, p):
    return float(np.percentile(a, p))


def run(n: int, kind: str, nq: int, nfaiss: int, rng) -> dict:
    print(f"\n=== {n:,} entries, {kind} ===", flush=True)
    words = make_data(n, kind, rng)
    ids = np.arange(n, dtype=np.int64)
    # planted: every distance 0..31 evenly, from random stored rows; plus as many random misses
    planted, truth = [], []
    for i in range(nq // 2):
        d = i % 32
        row = int(rng.integers(0, n))
        planted.append(flip_bits(words[row], d, rng))
        truth.append((row, d))
    misses = [rng.integers(0, 2**64, size=4, dtype=np.uint64) for _ in range(nq - nq // 2)]
    queries = planted + misses
    variants = [np.stack([q] + [rng.integers(0, 2**64, size=4, dtype=np.uint64) for _ in range(7)])
                for q in queries[: nq // 4]]

    gc.collect()
    rss0 = peak_rss_mb()
    t0 = time.perf_counter()
    idx = PDQIndex.build(ids, words)
    build_s = time.perf_counter() - t0
    rss1 = peak_rss_mb()
    r: dict = {"n": n, "kind": kind, "build_s": build_s, "bytes_per_entry": idx.nbytes / n,
               "index_mb": idx.nbytes / 2**20, "peak_rss_mb": rss1, "layout": idx.describe()}
    idx.query(queries[0])  # compile/warm
    lat, res = time_queries(lambda q: idx.query(q, 31), queries)
    r["p50_ms"], r["p99_ms"], r["mean_ms"] = pct(lat, 50), pct(lat, 99), float(lat.mean())
    found = sum(1 for (row, d), hits in zip(truth, res[: len(truth)]) if (row, d) in hits)
    r["planted_found"] = f"{found}/{len(truth)}"
    sample = list(range(0, len(queries), max(1, len(queries) // 48)))
    exact = all({i for i, _ in res[k]} == brute(words, queries[k]) for k in sample)
    r["recall_vs_brute_force"] = "100%" if exact and found == len(truth) else "MISSED"
    lat8, _ = time_queries(lambda v: idx.query_variants(v, 31), variants)
    r["dihedral_p50_ms"], r["dihedral_p99_ms"] = pct(lat8, 50), pct(lat8, 99)
    t0 = time.perf_counter()
    idx.query_batch(np.stack(queries), 31, threads=2)
    r["batch_2threads_qps"] = len(queries) / (time.perf_counter() - t0)
    # add -> matchable, remove -> unmatchable
    new = rng.integers(0, 2**64, size=4, dtype=np.uint64)
    t0 = time.perf_counter()
    idx.add(n + 1, new)
    ok_add = idx.query(new, 0) == [(n + 1, 0)]
    r["add_to_match_ms"] = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    idx.remove(n + 1)
    ok_rm = idx.query(new, 0) == []
    r["remove_to_unmatch_ms"] = (time.perf_counter() - t0) * 1000
    assert ok_add and ok_rm
    print(f"ours: build {build_s:.1f} s, index {r['index_mb']:.0f} MB ({r['bytes_per_entry']:.0f} B/entry), "
          f"peak RSS {rss1:.0f} MB (was {rss0:.0f}), layout {r['layout']['bands']} bands r={r['layout']['radius']}",
          flush=True)
    print(f"ours: p50 {r['p50_ms']:.3f} ms, p99 {r['p99_ms']:.3f} ms; dihedral p50 {r['dihedral_p50_ms']:.3f} "
          f"p99 {r['dihedral_p99_ms']:.3f} ms; 2-thread batch {r['batch_2threads_qps']:.0f} q/s; "
          f"recall {r['recall_vs_brute_force']} (planted {r['planted_found']}); add->match "
          f"{r['add_to_match_ms']:.3f} ms, remove->unmatch {r['remove_to_unmatch_ms']:.3f} ms", flush=True)
    del idx
    gc.collect()

    try:
        import faiss
    except ImportError:
        print("faiss not installed: pip install faiss-cpu")
        return r
    faiss.omp_set_num_threads(1)
    codes = words.astype(">u8").view(np.uint8).reshape(n, 32)
    fq = [np.ascontiguousarray(q.astype(">u8").view(np.uint8).reshape(1, 32)) for q in queries[:nfaiss]]
    for name, make in (("IndexBinaryFlat", lambda: faiss.IndexBinaryFlat(256)),
                       ("IndexBinaryMultiHash(256,16,16) nflip=1", lambda: faiss.IndexBinaryMultiHash(256, 16, 16))):
        t0 = time.perf_counter()
        fi = make()
        if hasattr(fi, "nflip"):
            fi.nflip = 1
        fi.add(codes)
        fb = time.perf_counter() - t0
        fi.range_search(fq[0], 32)
        flat, fres = time_queries(lambda q: fi.range_search(q, 32), fq)
        agree = all(set(I.tolist()) == {i for i, _ in res[k]} for k, (_lims, _D, I) in enumerate(fres))
        key = "flat" if "Flat" in name else "mih"
        r[f"faiss_{key}_p50_ms"], r[f"faiss_{key}_p99_ms"] = pct(flat, 50), pct(flat, 99)
        r[f"faiss_{key}_build_s"] = fb
        print(f"FAISS {name}: build {fb:.1f} s, p50 {pct(flat, 50):.3f} ms, p99 {pct(flat, 99):.3f} ms over "
              f"{len(fq)} queries; same results as ours: {agree}; ours is {pct(flat, 50) / r['p50_ms']:.0f}x "
              f"faster at p50, {pct(flat, 99) / r['p99_ms']:.0f}x at p99", flush=True)
        del fi
        gc.collect()
    return r


def _sequential(idx, variants, t=31):
    """The baseline: one search per variant in turn (the pre-issue-20 query_variants)."""
    best: dict[int, tuple[int, int]] = {}
    for v, q in enumerate(variants):
        for i, d in idx.query(q, t):
            if i not in best or d < best[i][0]:
                best[i] = (d, v)
    return sorted(((i, d, v) for i, (d, v) in best.items()), key=lambda x: (x[1], x[0]))


def _mem_kb() -> tuple[int, int]:
    rss = pss = 0
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("Rss:"):
            rss = int(line.split()[1])
        elif line.startswith("Pss:"):
            pss = int(line.split()[1])
    return rss, pss


def _worker(args):
    """One 'worker': get an index (map the snapshot, or build a private copy), query, report memory."""
    mode, directory, words_path, nq = args
    import numpy as np

    from consentry.index.pdq_index import PDQIndex
    from consentry.index.snapshot import open_pdq_index

    t0 = time.perf_counter()
    if mode == "snapshot":
        idx, _snap = open_pdq_index(Path(directory), "pdq", 31)
    else:
        words = np.load(words_path)
        idx = PDQIndex.build(np.arange(len(words)), words)
        del words
    ready = time.perf_counter() - t0
    rng = np.random.default_rng(7)
    for q in rng.integers(0, 2**64, size=(nq, 4), dtype=np.uint64):
        idx.query(q, 31)
    time.sleep(1.0)  # all four alive at once when measured
    return ready, _mem_kb()


def issue20(n: int, nq: int, rng) -> None:
    import multiprocessing as mp
    import tempfile

    from consentry.index.snapshot import open_pdq_index, save_pdq_base

    print(f"\n=== issue 20 at {n:,} entries (uniform) ===", flush=True)
    words = make_data(n, "uniform", rng)
    t0 = time.perf_counter()
    idx = PDQIndex.build(np.arange(n), words)
    build_s = time.perf_counter() - t0
    variants = []
    for i in range(nq):
        v = rng.integers(0, 2**64, size=(8, 4), dtype=np.uint64)
        if i % 2 == 0:  # half the queries have a stored row near one of their variants
            v[int(rng.integers(0, 8))] = flip_bits(words[int(rng.integers(0, n))], int(rng.integers(0, 32)), rng)
        variants.append(v)
    idx.query_variants(variants[0], 31)
    _sequential(idx, variants[0])
    lat_seq, res_seq = time_queries(lambda v: _sequential(idx, v), variants)
    lat_one, res_one = time_queries(lambda v: idx.query_variants(v, 31), variants)
    same = res_seq == res_one
    print(f"dihedral (8 variants), {nq} queries: baseline 8 sequential searches p50 {pct(lat_seq, 50):.3f} ms "
          f"p99 {pct(lat_seq, 99):.3f} ms; one pass p50 {pct(lat_one, 50):.3f} ms p99 {pct(lat_one, 99):.3f} ms; "
          f"ratio p99 {pct(lat_seq, 99) / pct(lat_one, 99):.2f}x, p50 {pct(lat_seq, 50) / pct(lat_one, 50):.2f}x; "
          f"identical results: {same}", flush=True)
    with tempfile.TemporaryDirectory(prefix="consentry-snapbench-") as tmp:
        t0 = time.perf_counter()
        save_pdq_base(Path(tmp), "pdq", idx._base, 31, cursor=1, identity={"cursor": 1, "row": None})
        save_s = time.perf_counter() - t0
        Path(tmp, "pdq.snap.verified").unlink()  # measure the first open's full checksum
        t0 = time.perf_counter()
        open_pdq_index(Path(tmp), "pdq", 31)
        first_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        opened, _snap = open_pdq_index(Path(tmp), "pdq", 31)
        stamped_s = time.perf_counter() - t0
        assert all(opened.query(q, 31) == idx.query(q, 31) for q in words[:20])
        print(f"snapshot: {Path(tmp, 'pdq.snap').stat().st_size / 2**20:.0f} MB written in {save_s:.2f} s; "
              f"open with full checksum {first_s:.2f} s, later opens {stamped_s * 1000:.1f} ms; baseline build "
              f"from arrays {build_s:.2f} s (the database read before it not counted): "
              f"{build_s / max(stamped_s, 1e-9):.0f}x", flush=True)
        np.save(Path(tmp, "words.npy"), words)
        del idx, opened
        gc.collect()
        out = {}
        for mode in ("private", "snapshot"):
            with mp.get_context("spawn").Pool(4) as pool:
                out[mode] = pool.map(_worker, [(mode, tmp, str(Path(tmp, "words.npy")), 200)] * 4)
        for mode, rows in out.items():
            print(f"4 workers, {mode:8s}: ready in {max(r[0] for r in rows):.2f} s (slowest), RSS total "
                  f"{sum(r[1][0] for r in rows) / 1024:.0f} MB, PSS total {sum(r[1][1] for r in rows) / 1024:.0f} MB",
                  flush=True)
        p_priv = sum(r[1][1] for r in out["private"])
        p_snap = sum(r[1][1] for r in out["snapshot"])
        print(f"memory ratio (PSS, private copies / shared snapshot): {p_priv / max(p_snap, 1):.2f}x", flush=True)


def issue21(n: int, nq: int, media_share: float, per_photo: int, rng) -> None:
    """Lookup cost of the stored-side canonical hashes (issue 21) at ``n`` plain entries: a share
    of the entries came with their picture and carry ``per_photo`` variants each, in the
    matcher's second index (``_VariantStore``); a query probes both with its 8 dihedral variants.
    Baseline: the plain index alone, same queries, same run."""
    from consentry.banks.matcher import _VariantStore

    with_media = int(n * media_share)
    nv = with_media * per_photo
    print(f"\n=== issue 21 at {n:,} entries, {with_media:,} with their picture x {per_photo} variants "
          f"= {nv:,} variant rows ===", flush=True)
    words = make_data(n, "uniform", rng)
    idx = PDQIndex.build(np.arange(n), words)
    owners = rng.choice(n, size=with_media, replace=False)
    # a crop or rotation is 60-130 bits from its entry's plain hash: as good as independent bits
    vwords = make_data(nv, "uniform", rng)
    t0 = time.perf_counter()
    store = _VariantStore([])
    store.index = PDQIndex.build(np.arange(nv), vwords)
    store.owner = {int(v): (int(owners[v // per_photo]), "crop") for v in range(nv)}
    vbuild = time.perf_counter() - t0
    queries = []
    for i in range(nq):
        v = rng.integers(0, 2**64, size=(8, 4), dtype=np.uint64)
        if i % 2 == 0:  # half the queries are near a stored variant (a cropped re-upload)
            v[int(rng.integers(0, 8))] = flip_bits(vwords[int(rng.integers(0, nv))], int(rng.integers(0, 32)), rng)
        queries.append(v)
    idx.query_variants(queries[0], 31)
    store.query(queries[0], 31)
    lat_plain, _ = time_queries(lambda v: idx.query_variants(v, 31), queries)
    lat_both, found = time_queries(lambda v: (idx.query_variants(v, 31), store.query(v, 31)), queries)
    hits = sum(1 for _plain, var in found if var)
    print(f"variant index built in {vbuild:.1f} s, {store.index.nbytes / 2**20:.0f} MB "
          f"(+{store.index.nbytes / max(idx.nbytes, 1) * 100:.0f} % of the plain index's {idx.nbytes / 2**20:.0f} MB)")
    print(f"dihedral query, {nq} queries: plain index only p50 {pct(lat_plain, 50):.3f} ms p99 "
          f"{pct(lat_plain, 99):.3f} ms; plain + variants p50 {pct(lat_both, 50):.3f} ms p99 {pct(lat_both, 99):.3f} ms "
          f"({pct(lat_both, 99) / pct(lat_plain, 99):.2f}x); planted variant hits found {hits} of {nq // 2 + nq % 2}",
          flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000000,10000000")
    ap.add_argument("--kinds", default="uniform,clustered")
    ap.add_argument("--queries", type=int, default=1024)
    ap.add_argument("--faiss-queries", type=int, default=256)
    ap.add_argument("--quick", action="store_true", help="100k entries, fewer queries")
    ap.add_argument("--issue20", action="store_true", help="dihedral one-pass and snapshot figures only")
    ap.add_argument("--issue21", action="store_true",
                    help="lookup cost of stored-side canonical variants (see --media-share, --per-photo)")
    ap.add_argument("--media-share", type=float, default=0.02,
                    help="--issue21: share of entries added with their picture (default 0.02)")
    ap.add_argument("--per-photo", type=int, default=27, help="--issue21: variants per such entry (default 27)")
    args = ap.parse_args()
    if args.issue21:
        for n in args.sizes.split(","):
            issue21(int(n), min(args.queries, 1000), args.media_share, args.per_photo, np.random.default_rng(21))
        return
    if args.issue20:
        for n in args.sizes.split(","):
            issue20(int(n), min(args.queries, 1000), np.random.default_rng(12345))
        return
    if args.quick:
        args.sizes, args.queries, args.faiss_queries = "100000", 256, 64
    rng = np.random.default_rng(12345)
    rows = [run(int(n), kind, args.queries, args.faiss_queries, rng)
            for n in args.sizes.split(",") for kind in args.kinds.split(",")]
    print("\n| entries | data | build s | index MB | B/entry | p50 ms | p99 ms | dihedral p99 ms | 2-thread q/s "
          "| recall | FAISS flat p50/p99 ms | FAISS MIH p50/p99 ms | speed-up p99 vs flat / MIH |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        fl = f"{r.get('faiss_flat_p50_ms', float('nan')):.2f} / {r.get('faiss_flat_p99_ms', float('nan')):.2f}"
        mi = f"{r.get('faiss_mih_p50_ms', float('nan')):.2f} / {r.get('faiss_mih_p99_ms', float('nan')):.2f}"
        sp = (f"{r.get('faiss_flat_p99_ms', float('nan')) / r['p99_ms']:.0f}x / "
              f"{r.get('faiss_mih_p99_ms', float('nan')) / r['p99_ms']:.0f}x")
        print(f"| {r['n']:,} | {r['kind']} | {r['build_s']:.1f} | {r['index_mb']:.0f} | {r['bytes_per_entry']:.0f} | "
              f"{r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['dihedral_p99_ms']:.3f} | {r['batch_2threads_qps']:.0f} | "
              f"{r['recall_vs_brute_force']} | {fl} | {mi} | {sp} |")
    print(f"\npeak RSS of the whole run: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
