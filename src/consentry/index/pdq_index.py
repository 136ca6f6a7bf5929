"""Exact PDQ index: every stored hash within the threshold, for 10M+ entries on one core.

Layout (all plain numpy arrays, no pickles):

* the **base**: ``ids`` (int64, sorted), ``words`` (n x 4 uint64) and, per band, a CSR table
  (``offsets`` over all 2^width band values, ``postings`` = row numbers) built by counting sort;
* a **live delta**: rows added since the last compaction, scanned by brute force, so an add is
  matchable by the very next query;
* **tombstones**: a ``dead`` flag per base row, so a removal hides the row from the next query.

Bands are chosen from the size of the base (see :func:`band_layout`): for millions of rows,
11 bands of 23 bits probed to radius 2 (11 x 3 > 31); for hundreds of thousands, 16 bands of
16 bits probed to radius 1; below 20,000 rows a brute-force scan is faster than any table.
Pigeonhole makes the result exact: every row within the threshold shares at least one band with
the query to within the probe radius, so it is a candidate, and every candidate is verified
against the full 256-bit hash. Queries above the design threshold fall back to a full scan.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from consentry.index import _kernels as K

DIHEDRAL_TRANSFORMS = ("original", "rotate90", "rotate180", "rotate270", "flipx", "flipy",
                       "flip_plus1", "flip_minus1")

#: below this many base rows a brute-force scan beats probing tables
BRUTE_FORCE_MAX = 20_000
#: the delta is folded into the base by :meth:`PDQIndex.maybe_compact` past this many rows
DELTA_MAX = 100_000


def hex_to_words(hex64: str) -> np.ndarray:
    """64 hex characters -> 4 uint64 words (word 0 = first 16 characters)."""
    return np.frombuffer(bytes.fromhex(hex64), dtype=">u8").astype(np.uint64)


def hex_to_words_many(hexes: Iterable[str]) -> np.ndarray:
    hexes = list(hexes)
    if not hexes:
        return np.zeros((0, 4), dtype=np.uint64)
    return np.frombuffer(bytes.fromhex("".join(hexes)), dtype=">u8").astype(np.uint64).reshape(-1, 4)


def words_to_hex(words) -> str:
    return np.asarray(words, dtype=np.uint64).reshape(4).astype(">u8").tobytes().hex()


@dataclass(frozen=True)
class BandLayout:
    starts: np.ndarray  # int64, bit position of each band
    widths: np.ndarray  # int64
    radius: int
    design_threshold: int

    @property
    def bands(self) -> int:
        return len(self.widths)


def band_layout(n: int, threshold: int = 31) -> BandLayout | None:
    """The band layout for ``n`` rows (None: brute force). Bands may leave a few bits out:
    pigeonhole only needs distance-on-the-covered-bits <= total distance."""
    if n < BRUTE_FORCE_MAX:
        return None
    if n < 2_000_000:
        m, width = 16, 16  # 16 x 16 = 256 bits, radius 1: 16 x 2 = 32 > 31
    else:
        m, width = 11, 23  # 11 x 23 = 253 bits, radius 2: 11 x 3 = 33 > 31
    radius = threshold // m
    if radius > 2 or m * (radius + 1) <= threshold:
        return None  # a threshold this layout cannot cover exactly: scan
    starts = np.arange(m, dtype=np.int64) * width
    return BandLayout(starts, np.full(m, width, dtype=np.int64), radius, threshold)


class _Base:
    """The immutable part: sorted ids, hashes, band tables, plus the mutable tombstone flags."""

    def __init__(self, ids: np.ndarray, words: np.ndarray, threshold: int):
        order = np.argsort(ids, kind="stable")
        self.ids = np.ascontiguousarray(ids[order])
        self.words = np.ascontiguousarray(words[order])
        self.dead = np.zeros(len(self.ids), dtype=np.bool_)
        self.layout = band_layout(len(self.ids), threshold)
        n = len(self.ids)
        if self.layout is None:
            self.band_base = np.zeros(1, dtype=np.int64)
            self.offsets = np.zeros(1, dtype=np.uint32)
            self.postings = np.zeros(1, dtype=np.uint32)
            return
        sizes = [(1 << int(w)) + 1 for w in self.layout.widths]
        self.band_base = np.zeros(len(sizes), dtype=np.int64)
        self.band_base[1:] = np.cumsum(sizes)[:-1]
        self.offsets = np.empty(sum(sizes), dtype=np.uint32)
        self.postings = np.empty(n * self.layout.bands, dtype=np.uint32)
        for b, (start, width) in enumerate(zip(self.layout.starts, self.layout.widths)):
            offs, post = K.build_band(self.words, int(start), int(width), 1 << int(width))
            self.offsets[self.band_base[b] : self.band_base[b] + sizes[b]] = offs
            self.postings[b * n : (b + 1) * n] = post

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], radius: int | None, design_threshold: int) -> "_Base":
        """A base over arrays built before (e.g. memory-mapped from a snapshot), not copied;
        the tombstone flags are this process's own."""
        self = cls.__new__(cls)
        self.ids, self.words = arrays["ids"], arrays["words"]
        self.band_base, self.offsets, self.postings = arrays["band_base"], arrays["offsets"], arrays["postings"]
        self.dead = np.zeros(len(self.ids), dtype=np.bool_)
        self.layout = None if radius is None else BandLayout(
            np.asarray(arrays["starts"], dtype=np.int64), np.asarray(arrays["widths"], dtype=np.int64),
            int(radius), int(design_threshold))
        return self

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays :meth:`from_arrays` takes (for a snapshot)."""
        lay = self.layout
        empty = np.zeros(0, dtype=np.int64)
        return {"ids": self.ids, "words": self.words, "band_base": self.band_base, "offsets": self.offsets,
                "postings": self.postings, "starts": empty if lay is None else lay.starts,
                "widths": empty if lay is None else lay.widths}

    def position(self, entry_id: int) -> int:
        i = int(np.searchsorted(self.ids, entry_id))
        return i if i < len(self.ids) and self.ids[i] == entry_id else -1

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.ids, self.words, self.dead, self.offsets, self.postings,
                                      self.band_base))


class CompactionJob:
    """The rows of a snapshot and, once :meth:`build` has run (no lock needed), the new base."""

    def __init__(self, base: tuple[np.ndarray, np.ndarray, np.ndarray], delta: tuple[np.ndarray, np.ndarray],
                 threshold: int, delta_mark: int):
        self._base, self._delta, self.threshold, self.delta_mark = base, delta, threshold, delta_mark
        self.base: _Base | None = None

    def build(self) -> None:
        (ids, words, keep), (dids, dwords) = self._base, self._delta
        self.base = _Base(np.concatenate([ids[keep], dids]), np.concatenate([words[keep], dwords]),
                          self.threshold)
        self._base = self._delta = None  # type: ignore[assignment]


class PDQIndex:
    """Exact Hamming-radius search over PDQ hashes, with immediate adds and removals.

    Not thread-safe for writes; the owner (``Matcher``) serialises writers. Queries on one index
    may run from several threads at once (the kernels release the GIL).
    """

    def __init__(self, threshold: int = 31):
        self.threshold = int(threshold)
        self._base = _Base(np.zeros(0, dtype=np.int64), np.zeros((0, 4), dtype=np.uint64), self.threshold)
        self._live_base = 0
        self._delta_ids = np.zeros(0, dtype=np.int64)
        self._delta_words = np.zeros((0, 4), dtype=np.uint64)
        self._delta_dead = np.zeros(0, dtype=np.bool_)
        self._delta_n = 0
        self._delta_pos: dict[int, int] = {}
        self._lock = threading.Lock()
        # while a compaction job is out: ids removed since its snapshot (see begin_compaction)
        self._journal: list[int] | None = None

    # ----------------------------------------------------------------- build
    @classmethod
    def build(cls, ids, hashes, threshold: int = 31) -> "PDQIndex":
        """Bulk-build the base (ids must be unique)."""
        idx = cls(threshold)
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        words = np.asarray(hashes, dtype=np.uint64).reshape(-1, 4)
        if len(ids) != len(words):
            raise ValueError("ids and hashes differ in length")
        if len(np.unique(ids)) != len(ids):
            raise ValueError("duplicate ids")
        idx._base = _Base(ids, words, idx.threshold)
        idx._live_base = len(ids)
        return idx

    # ---------------------------------------------------------------- writes
    def add(self, ids, hashes) -> None:
        """Add rows to the live delta; an id already present is replaced (revived if removed)."""
        ids = np.atleast_1d(np.asarray(ids, dtype=np.int64))
        words = np.asarray(hashes, dtype=np.uint64).reshape(-1, 4)
        if len(ids) != len(words):
            raise ValueError("ids and hashes differ in length")
        self.remove(ids)
        need = self._delta_n + len(ids)
        if need > len(self._delta_ids):
            cap = max(need, 2 * len(self._delta_ids), 1024)
            self._delta_ids = np.resize(self._delta_ids, cap)
            self._delta_words = np.resize(self._delta_words, (cap, 4))
            grown = np.ones(cap, dtype=np.bool_)
            grown[: self._delta_n] = self._delta_dead[: self._delta_n]
            self._delta_dead = grown
        lo = self._delta_n
        self._delta_ids[lo:need] = ids
        self._delta_words[lo:need] = words
        self._delta_dead[lo:need] = False
        for k, i in enumerate(ids):
            self._delta_pos[int(i)] = lo + k
        self._delta_n = need

    def remove(self, ids) -> None:
        """Tombstone ids (unknown ids are ignored); effective for the next query."""
        for i in np.atleast_1d(np.asarray(ids, dtype=np.int64)):
            i = int(i)
            if self._journal is not None:
                self._journal.append(i)
            pos = self._base.position(i)
            if pos >= 0 and not self._base.dead[pos]:
                self._base.dead[pos] = True
                self._live_base -= 1
            dpos = self._delta_pos.pop(i, None)
            if dpos is not None:
                self._delta_dead[dpos] = True

    def compact(self) -> None:
        """Fold the delta into a rebuilt base and drop tombstoned rows."""
        keep = ~self._base.dead
        d = self._delta_n
        dkeep = ~self._delta_dead[:d]
        ids = np.concatenate([self._base.ids[keep], self._delta_ids[:d][dkeep]])
        words = np.concatenate([self._base.words[keep], self._delta_words[:d][dkeep]])
        base = _Base(ids, words, self.threshold)
        self._base, self._live_base = base, len(ids)
        self._delta_ids = np.zeros(0, dtype=np.int64)
        self._delta_words = np.zeros((0, 4), dtype=np.uint64)
        self._delta_dead = np.zeros(0, dtype=np.bool_)
        self._delta_n = 0
        self._delta_pos = {}

    def needs_compaction(self, delta_max: int = DELTA_MAX) -> bool:
        """The delta has grown past ``delta_max`` rows or a quarter of the base is dead, or the
        base has outgrown its layout (brute force -> bands)."""
        live_delta = len(self._delta_pos)
        dead = len(self._base.ids) - self._live_base
        outgrown = self._base.layout is None and self._live_base + live_delta >= BRUTE_FORCE_MAX
        return bool(live_delta > delta_max or dead > max(delta_max, len(self._base.ids) // 4) or (
            outgrown and live_delta > 0))

    def maybe_compact(self, delta_max: int = DELTA_MAX) -> bool:
        """Compact now (synchronously) when :meth:`needs_compaction` says so."""
        if self.needs_compaction(delta_max):
            self.compact()
            return True
        return False

    # Compaction in three steps, so that the owner can build the new base (seconds at 10M rows)
    # without holding its lock: queries, adds and removals go on meanwhile against the old base
    # and delta, and are carried over when the new base is installed.
    def begin_compaction(self) -> "CompactionJob":
        """Snapshot the live rows (call under the owner's write lock; cheap: array copies)."""
        if self._journal is not None:
            raise RuntimeError("a compaction is already in progress")
        d = self._delta_n
        dkeep = ~self._delta_dead[:d]
        # the base's id and hash arrays are never written after construction: share them; copy
        # only the tombstone flags (1 byte a row) and the small delta
        job = CompactionJob((self._base.ids, self._base.words, ~self._base.dead),
                            (self._delta_ids[:d][dkeep], self._delta_words[:d][dkeep]), self.threshold, d)
        self._journal = []
        return job

    def finish_compaction(self, job: "CompactionJob") -> None:
        """Install the base built by ``job.build()`` (call under the owner's write lock): rows
        removed since the snapshot are tombstoned in it, rows added since form the new delta."""
        if self._journal is None or job.base is None:
            raise RuntimeError("no built compaction to finish")
        removed, self._journal = self._journal, None
        d = self._delta_n
        fresh = ~self._delta_dead[job.delta_mark:d]
        new_ids = self._delta_ids[job.delta_mark:d][fresh].copy()
        new_words = self._delta_words[job.delta_mark:d][fresh].copy()
        self._base, self._live_base = job.base, len(job.base.ids)
        self._delta_ids = np.zeros(0, dtype=np.int64)
        self._delta_words = np.zeros((0, 4), dtype=np.uint64)
        self._delta_dead = np.zeros(0, dtype=np.bool_)
        self._delta_n = 0
        self._delta_pos = {}
        if removed:
            self.remove(np.array(removed, dtype=np.int64))
        if len(new_ids):
            self.add(new_ids, new_words)

    def abort_compaction(self) -> None:
        self._journal = None

    # --------------------------------------------------------------- queries
    @staticmethod
    def _run(kernel, args) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Call a ``*_multi`` kernel, growing the output arrays until every hit fits."""
        cap = 256
        while True:
            pos = np.empty(cap, dtype=np.int64)
            dist = np.empty(cap, dtype=np.int64)
            var = np.empty(cap, dtype=np.int32)
            found = kernel(*args, pos, dist, var)
            if found <= cap:
                return pos[:found], dist[:found], var[:found]
            cap = found

    def _hits(self, qs: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids, distances, variants) of every (live row, query) pair within ``t``, for the queries
        ``qs`` (V x 4), in one pass over the base and one over the delta; a row may repeat."""
        base = self._base
        if base.layout is not None and t <= base.layout.design_threshold:
            pos, dist, var = self._run(K.mih_query_multi, (
                base.words, base.dead, base.layout.starts, base.layout.widths, base.band_base, base.offsets,
                base.postings, base.layout.radius, qs, t))
        else:
            pos, dist, var = self._run(K.scan_multi, (base.words, base.dead, qs, t))
        ids = base.ids[pos]
        if self._delta_n:
            n = self._delta_n
            dpos, ddist, dvar = self._run(K.scan_multi, (self._delta_words[:n], self._delta_dead[:n], qs, t))
            ids = np.concatenate([ids, self._delta_ids[dpos]])
            dist, var = np.concatenate([dist, ddist]), np.concatenate([var, dvar])
        return ids, dist, var

    def _search(self, qs: np.ndarray, t: int) -> dict[int, tuple[int, int]]:
        """Every live row within ``t`` of any query in ``qs`` (V x 4): row id -> (best distance,
        first variant at that distance)."""
        ids, dist, var = self._hits(qs, t)
        best: dict[int, tuple[int, int]] = {}
        for i, d, v in zip(ids.tolist(), dist.tolist(), var.tolist()):
            old = best.get(i)
            if old is None or (d, v) < old:
                best[i] = (d, v)
        return best

    def query(self, hash_words, threshold: int | None = None) -> list[tuple[int, int]]:
        """(id, distance) of every live row within ``threshold``, nearest first."""
        t = self.threshold if threshold is None else int(threshold)
        q = np.ascontiguousarray(np.asarray(hash_words, dtype=np.uint64).reshape(1, 4))
        return sorted(((i, d) for i, (d, _v) in self._search(q, t).items()), key=lambda x: (x[1], x[0]))

    def query_variants(self, variants, threshold: int | None = None) -> list[tuple[int, int, int]]:
        """Several query hashes (e.g. the 8 dihedral variants), probed together in one pass:
        (id, best distance, index of the first variant at that distance)."""
        t = self.threshold if threshold is None else int(threshold)
        qs = np.ascontiguousarray(np.asarray(variants, dtype=np.uint64).reshape(-1, 4))
        if not len(qs):
            return []
        return sorted(((i, d, v) for i, (d, v) in self._search(qs, t).items()), key=lambda x: (x[1], x[0]))

    def query_ids(self, variants, threshold: int | None = None, unique: bool = True) -> np.ndarray:
        """The ids (sorted, each once) of every live row within ``threshold`` of any of the query
        hashes: :meth:`query_variants` without the distances, for callers that only need who.
        ``unique=False``: as found, a row once per query hash that reaches it."""
        t = self.threshold if threshold is None else int(threshold)
        qs = np.ascontiguousarray(np.asarray(variants, dtype=np.uint64).reshape(-1, 4))
        if not len(qs):
            return np.empty(0, dtype=np.int64)
        ids = self._hits(qs, t)[0]
        return np.unique(ids) if unique else ids

    def query_batch(self, queries, threshold: int | None = None, threads: int = 1) -> list[list[tuple[int, int]]]:
        qs = np.asarray(queries, dtype=np.uint64).reshape(-1, 4)
        if threads <= 1:
            return [self.query(q, threshold) for q in qs]
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(lambda q: self.query(q, threshold), qs))

    # ------------------------------------------------------------- describe
    def __len__(self) -> int:
        return self._live_base + len(self._delta_pos)

    @property
    def nbytes(self) -> int:
        return self._base.nbytes + self._delta_ids.nbytes + self._delta_words.nbytes + self._delta_dead.nbytes

    @property
    def delta_size(self) -> int:
        return len(self._delta_pos)

    def describe(self) -> dict:
        lay = self._base.layout
        return {"entries": len(self), "base": len(self._base.ids), "delta": self.delta_size,
                "bands": 0 if lay is None else lay.bands, "radius": None if lay is None else lay.radius,
                "bytes": self.nbytes}

    # ------------------------------------------------------------ persist
    def save(self, path: str | Path) -> None:
        """Plain arrays in an .npz (live rows only); never a pickle."""
        self.compact()
        np.savez(path, ids=self._base.ids, words=self._base.words, threshold=np.int64(self.threshold))

    @classmethod
    def load(cls, path: str | Path) -> "PDQIndex":
        with np.load(path, allow_pickle=False) as z:
            return cls.build(z["ids"], z["words"], int(z["threshold"]))


def brute_force(words: np.ndarray, ids: Sequence[int], q: np.ndarray, threshold: int) -> list[tuple[int, int]]:
    """Reference answer for tests and benchmarks (numpy, no index)."""
    d = np.bitwise_count(np.asarray(words, dtype=np.uint64) ^ np.asarray(q, dtype=np.uint64)).sum(axis=1)
    hit = np.flatnonzero(d <= threshold)
    return sorted(((int(ids[i]), int(d[i])) for i in hit), key=lambda x: (x[1], x[0]))
