"""The exact PDQ index equals brute force: reference vectors, planted distances, properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import consentry.index.pdq_index as P
from consentry.index import PDQIndex, hex_to_words, hex_to_words_many, words_to_hex
from consentry.index.pdq_index import BandLayout, brute_force


def _layout(kind):
    """Force a layout regardless of size, so small tests exercise every code path."""
    if kind == "scan":
        return lambda n, threshold=31: None
    m, w = {"16x16": (16, 16), "11x23": (11, 23)}[kind]
    return lambda n, threshold=31: BandLayout(np.arange(m, dtype=np.int64) * w, np.full(m, w, dtype=np.int64),
                                              threshold // m, threshold)


LAYOUTS = ["scan", "16x16", "11x23"]


@pytest.fixture(params=LAYOUTS)
def layout(request, monkeypatch):
    monkeypatch.setattr(P, "band_layout", _layout(request.param))
    return request.param


def _flip(words: np.ndarray, bits) -> np.ndarray:
    out = words.copy()
    for b in bits:
        b = int(b)
        out[b // 64] ^= np.uint64(1) << np.uint64(63 - b % 64)
    return out


def test_hex_words_roundtrip():
    h = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
    w = hex_to_words(h)
    assert w.dtype == np.uint64 and w[0] == np.uint64(0xF8F8F0CEE0F4A84F)
    assert words_to_hex(w) == h
    assert (hex_to_words_many([h, h]) == w).all()


def test_needles_vs_haystack(testvectors, layout):
    reg = testvectors / "pdq" / "reg-test-input"
    hay = hex_to_words_many(reg.joinpath("haystack.txt").read_text().split())
    needles = hex_to_words_many(reg.joinpath("needles.txt").read_text().split())
    idx = PDQIndex.build(np.arange(1, len(hay) + 1), hay)
    got = {(n, i, d) for n, q in enumerate(needles, 1) for i, d in idx.query(q, 31)}
    want = set()
    for line in (testvectors / "pdq" / "DERIVED-needles-vs-haystack-d31.tsv").read_text().splitlines():
        if line and not line.startswith("#"):
            want.add(tuple(map(int, line.split("\t"))))
    assert len(want) == 250 and got == want


def test_planted_queries_at_every_distance(layout):
    rng = np.random.default_rng(3)
    words = rng.integers(0, 2**64, size=(3000, 4), dtype=np.uint64)
    idx = PDQIndex.build(np.arange(3000), words)
    target = words[1234]
    for d in range(0, 41):
        q = _flip(target, rng.choice(256, size=d, replace=False))
        hits = dict(idx.query(q, 31))
        if d <= 31:
            assert hits.get(1234) == d, d
        else:
            assert 1234 not in hits
        assert idx.query(q, 31) == brute_force(words, np.arange(3000), q, 31)


def test_dihedral_variants_report_the_transform(testvectors):
    from PIL import Image
    import pdqhash

    dih = testvectors / "pdq" / "reg-test-input" / "dih"

    def variants(path):
        vs, _q = pdqhash.compute_dihedral(np.asarray(Image.open(path).convert("RGB")))
        return np.stack([np.packbits(v.astype(np.uint8)).view(">u8").astype(np.uint64) for v in vs])

    orig = variants(dih / "bridge-1-original.jpg")
    idx = PDQIndex.build(np.array([42]), orig[:1])
    seen = set()
    for p in sorted(dih.glob("bridge-*.jpg")):
        (hit,) = idx.query_variants(variants(p), 31)
        assert hit[0] == 42 and hit[1] <= 31
        seen.add(P.DIHEDRAL_TRANSFORMS[hit[2]])
    assert len(seen) == 8


def test_add_remove_readd_and_compaction_are_immediate(layout):
    rng = np.random.default_rng(5)
    words = rng.integers(0, 2**64, size=(500, 4), dtype=np.uint64)
    idx = PDQIndex.build(np.arange(500), words)
    q = words[7]
    assert idx.query(q, 0) == [(7, 0)]
    idx.remove(7)
    assert idx.query(q, 0) == [] and len(idx) == 499
    idx.add(7, words[8])  # re-added under a new hash
    assert idx.query(q, 0) == [] and (7, 0) in idx.query(words[8], 0)
    idx.add(1000, q)
    assert idx.query(q, 0) == [(1000, 0)]
    idx.remove([1000, 99999])  # unknown ids are ignored
    assert idx.query(q, 0) == []
    idx.compact()
    assert idx.query(q, 0) == [] and (7, 0) in idx.query(words[8], 0) and len(idx) == 500
    assert idx.query(words[9], 40) == brute_force(
        np.concatenate([words[:7], words[8:9], words[8:]]), [*range(7), 7, *range(8, 500)], words[9], 40)


def test_save_and_load_plain_arrays(tmp_path):
    rng = np.random.default_rng(1)
    words = rng.integers(0, 2**64, size=(100, 4), dtype=np.uint64)
    idx = PDQIndex.build(np.arange(100), words)
    idx.remove(3)
    idx.save(tmp_path / "i.npz")
    back = PDQIndex.load(tmp_path / "i.npz")
    assert len(back) == 99 and back.query(words[5], 0) == [(5, 0)] and back.query(words[3], 0) == []


def test_batch_queries_from_two_threads():
    rng = np.random.default_rng(2)
    words = rng.integers(0, 2**64, size=(30_000, 4), dtype=np.uint64)
    idx = PDQIndex.build(np.arange(30_000), words)
    qs = words[:200]
    assert idx.query_batch(qs, threads=2) == [idx.query(q) for q in qs]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(LAYOUTS), t=st.integers(0, 35))
def test_index_equals_brute_force_with_interleaved_changes(seed, kind, t):
    rng = np.random.default_rng(seed)
    orig = P.band_layout
    P.band_layout = _layout(kind)
    try:
        seeds = rng.integers(0, 2**64, size=(4, 4), dtype=np.uint64)

        def family(k):  # clustered near-duplicates: one hot bucket per seed
            s = seeds[int(rng.integers(0, 4))]
            return np.stack([_flip(s, rng.choice(256, size=int(rng.integers(0, 41)), replace=False))
                             for _ in range(k)])

        live: dict[int, np.ndarray] = {}
        n0 = int(rng.integers(0, 300))
        w0 = family(n0) if n0 else np.zeros((0, 4), dtype=np.uint64)
        idx = PDQIndex.build(np.arange(n0), w0)
        live.update({i: w0[i] for i in range(n0)})
        next_id = n0
        removed: list[int] = []
        job = None  # a compaction whose base is built "in the background" over several steps

        def check():
            ids = np.array(sorted(live), dtype=np.int64)
            words = np.stack([live[i] for i in ids]) if len(ids) else np.zeros((0, 4), dtype=np.uint64)
            for q in family(5):
                assert idx.query(q, t) == brute_force(words, ids, q, t)
            assert len(idx) == len(live)

        for _step in range(6):
            k = int(rng.integers(0, 30))
            if k:
                new = family(k)
                idx.add(np.arange(next_id, next_id + k), new)
                live.update({next_id + j: new[j] for j in range(k)})
                next_id += k
            for victim in list(live)[: int(rng.integers(0, 10))]:
                idx.remove(victim)
                del live[victim]
                removed.append(victim)
            if removed and rng.random() < 0.5:  # a withdrawn entry comes back under a new hash
                back = removed.pop(int(rng.integers(0, len(removed))))
                w = family(1)[0]
                idx.add(back, w)
                live[back] = w
            r = rng.random()
            if job is None and r < 0.3:
                job = idx.begin_compaction()
            elif job is not None and r < 0.7:
                job.build()
                idx.finish_compaction(job)
                job = None
            elif job is None and r < 0.45:
                idx.compact()
            check()
        if job is not None:
            job.build()
            idx.finish_compaction(job)
            check()
    finally:
        P.band_layout = orig


def _sequential_variants(idx, variants, t):
    """The pre-issue-20 answer: one search per variant in turn, keeping each row's smallest
    distance (ties: the earlier variant)."""
    best: dict[int, tuple[int, int]] = {}
    for v, q in enumerate(variants):
        for i, d in idx.query(q, t):
            if i not in best or d < best[i][0]:
                best[i] = (d, v)
    return sorted(((i, d, v) for i, (d, v) in best.items()), key=lambda x: (x[1], x[0]))


def _brute_variants(words, ids, variants, t):
    best: dict[int, tuple[int, int]] = {}
    for v, q in enumerate(variants):
        for i, d in brute_force(words, ids, q, t):
            if i not in best or d < best[i][0]:
                best[i] = (d, v)
    return sorted(((i, d, v) for i, (d, v) in best.items()), key=lambda x: (x[1], x[0]))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(["scan", "16x16"]), t=st.integers(0, 40))
def test_one_pass_dihedral_probe_equals_eight_sequential_searches(seed, kind, t):
    """Issue 20.3: all 8 variants probed together return exactly what 8 searches in sequence
    return (ids, best distances and the transform), over base, tombstones and the live delta."""
    _check_one_pass(seed, kind, (t,))


def test_one_pass_dihedral_probe_radius_two_layout():
    """The same with the 11 x 23 bands probed to radius 2 (one build: this layout allocates its
    8M-bucket tables, seconds even for a few rows), at several thresholds."""
    _check_one_pass(1017, "11x23", (0, 17, 22, 31, 34))


def _check_one_pass(seed, kind, ts):
    rng = np.random.default_rng(seed)
    orig = P.band_layout
    P.band_layout = _layout(kind)
    try:
        seeds = rng.integers(0, 2**64, size=(3, 4), dtype=np.uint64)
        n = int(rng.integers(0, 400))
        # clustered near-duplicates, so that several variants hit the same rows at different distances
        words = np.stack([_flip(seeds[int(rng.integers(0, 3))], rng.choice(256, size=int(rng.integers(0, 45)),
                                                                              replace=False))
                          for _ in range(n)]) if n else np.zeros((0, 4), dtype=np.uint64)
        idx = PDQIndex.build(np.arange(n), words)
        live = {i: words[i] for i in range(n)}
        for victim in list(live)[: int(rng.integers(0, 20))]:  # tombstones
            idx.remove(victim)
            del live[victim]
        extra = np.stack([_flip(seeds[0], rng.choice(256, size=int(rng.integers(0, 40)), replace=False))
                          for _ in range(15)])
        idx.add(np.arange(10_000, 10_015), extra)  # the live delta
        live.update({10_000 + j: extra[j] for j in range(15)})
        ids = np.array(sorted(live), dtype=np.int64)
        ref_words = np.stack([live[i] for i in ids])
        for _ in range(4):
            # 8 variants: some near a seed (hits), one a duplicate of another (ties), others random
            variants = np.stack([_flip(seeds[int(rng.integers(0, 3))], rng.choice(256, size=int(rng.integers(0, 40)),
                                                                                   replace=False))
                                 for _ in range(6)] + [rng.integers(0, 2**64, size=4, dtype=np.uint64)])
            variants = np.concatenate([variants, variants[int(rng.integers(0, 7))][None]])
            for t in ts:
                got = idx.query_variants(variants, t)
                assert got == _sequential_variants(idx, variants, t)
                assert got == _brute_variants(ref_words, ids, variants, t)
                assert idx.query_ids(variants, t).tolist() == sorted(i for i, _d, _v in got)
                assert set(idx.query_ids(variants, t, unique=False).tolist()) == {i for i, _d, _v in got}
    finally:
        P.band_layout = orig


def test_one_pass_dihedral_probe_at_scale():
    """The real band layout (16 x 16 at this size) against brute force, with hits planted for
    several variants of the same row."""
    rng = np.random.default_rng(11)
    words = rng.integers(0, 2**64, size=(60_000, 4), dtype=np.uint64)
    idx = PDQIndex.build(np.arange(60_000), words)
    assert idx.describe()["bands"] == 16
    for k in range(20):
        variants = rng.integers(0, 2**64, size=(8, 4), dtype=np.uint64)
        for v in rng.choice(8, size=3, replace=False):
            variants[v] = _flip(words[k * 100], rng.choice(256, size=int(rng.integers(0, 32)), replace=False))
        got = idx.query_variants(variants, 31)
        assert got == _sequential_variants(idx, variants, 31) == _brute_variants(words, np.arange(60_000),
                                                                                   variants, 31)
        assert any(i == k * 100 for i, _d, _v in got)
