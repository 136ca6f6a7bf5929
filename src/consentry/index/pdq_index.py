"""PDQ index (interim brute-force implementation with the final API)."""

from __future__ import annotations

import numpy as np

DIHEDRAL_TRANSFORMS = ("original", "rotate90", "rotate180", "rotate270", "flipx", "flipy",
                       "flip_plus1", "flip_minus1")


def hex_to_words(hex64: str) -> np.ndarray:
    return np.frombuffer(bytes.fromhex(hex64), dtype=">u8").astype(np.uint64)


def hex_to_words_many(hexes) -> np.ndarray:
    hexes = list(hexes)
    if not hexes:
        return np.zeros((0, 4), dtype=np.uint64)
    return np.frombuffer(bytes.fromhex("".join(hexes)), dtype=">u8").astype(np.uint64).reshape(-1, 4)


def words_to_hex(words) -> str:
    return np.asarray(words, dtype=np.uint64).astype(">u8").tobytes().hex()


class PDQIndex:
    def __init__(self, threshold: int = 31):
        self.threshold = threshold
        self._rows: dict[int, np.ndarray] = {}
        self._ids = np.zeros(0, dtype=np.int64)
        self._words = np.zeros((0, 4), dtype=np.uint64)
        self._dirty = False

    @classmethod
    def build(cls, ids, hashes, threshold: int = 31) -> "PDQIndex":
        idx = cls(threshold)
        idx.add(ids, hashes)
        return idx

    def add(self, ids, hashes) -> None:
        ids = np.atleast_1d(np.asarray(ids, dtype=np.int64))
        hashes = np.asarray(hashes, dtype=np.uint64).reshape(-1, 4)
        for i, h in zip(ids, hashes):
            self._rows[int(i)] = h
        self._dirty = True

    def remove(self, ids) -> None:
        for i in np.atleast_1d(np.asarray(ids, dtype=np.int64)):
            self._rows.pop(int(i), None)
        self._dirty = True

    def _arrays(self):
        if self._dirty:
            self._ids = np.fromiter(self._rows.keys(), dtype=np.int64, count=len(self._rows))
            self._words = np.array(list(self._rows.values()), dtype=np.uint64).reshape(-1, 4)
            self._dirty = False
        return self._ids, self._words

    def query(self, hash_words, threshold=None):
        t = self.threshold if threshold is None else threshold
        ids, words = self._arrays()
        q = np.asarray(hash_words, dtype=np.uint64).reshape(4)
        d = np.bitwise_count(words ^ q).sum(axis=1) if len(ids) else np.zeros(0, dtype=np.int64)
        hit = np.flatnonzero(d <= t)
        return sorted(((int(ids[i]), int(d[i])) for i in hit), key=lambda x: (x[1], x[0]))

    def query_variants(self, variants, threshold=None):
        best: dict[int, tuple[int, int]] = {}
        for v, q in enumerate(np.asarray(variants, dtype=np.uint64).reshape(-1, 4)):
            for i, d in self.query(q, threshold):
                if i not in best or d < best[i][0]:
                    best[i] = (d, v)
        return sorted(((i, d, v) for i, (d, v) in best.items()), key=lambda x: (x[1], x[0]))

    def __len__(self) -> int:
        return len(self._rows)
