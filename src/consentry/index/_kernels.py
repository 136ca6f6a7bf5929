"""Compiled inner loops (numba) for the exact PDQ index.

Hashes are 4 x uint64 words, word 0 holding the first 16 hex characters (bit 0 = most significant
bit of word 0). A *band* is a run of ``width`` (<= 32) consecutive bits starting at ``start``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, uint64


@njit(cache=True, nogil=True, inline="always")
def popcount64(x):
    x = x - ((x >> uint64(1)) & uint64(0x5555555555555555))
    x = (x & uint64(0x3333333333333333)) + ((x >> uint64(2)) & uint64(0x3333333333333333))
    x = (x + (x >> uint64(4))) & uint64(0x0F0F0F0F0F0F0F0F)
    return (x * uint64(0x0101010101010101)) >> uint64(56)


@njit(cache=True, nogil=True, inline="always")
def hamming(a0, a1, a2, a3, b0, b1, b2, b3):
    return (popcount64(a0 ^ b0) + popcount64(a1 ^ b1) + popcount64(a2 ^ b2) + popcount64(a3 ^ b3))


@njit(cache=True, nogil=True, inline="always")
def band_key(w0, w1, w2, w3, start, width):
    """Bits [start, start+width) of the 256-bit big-endian value, as an integer."""
    j = start // 64
    o = start % 64
    if j == 0:
        hi, lo = w0, w1
    elif j == 1:
        hi, lo = w1, w2
    elif j == 2:
        hi, lo = w2, w3
    else:
        hi, lo = w3, uint64(0)
    mask = (uint64(1) << uint64(width)) - uint64(1)
    if o + width <= 64:
        return (hi >> uint64(64 - o - width)) & mask
    spill = o + width - 64  # bits taken from the next word
    top = hi & ((uint64(1) << uint64(64 - o)) - uint64(1))
    return ((top << uint64(spill)) | (lo >> uint64(64 - spill))) & mask


@njit(cache=True, nogil=True)
def build_band(words, start, width, nbuckets):
    """Counting sort of all rows by one band: (offsets[nbuckets+1], postings[n])."""
    n = words.shape[0]
    keys = np.empty(n, dtype=np.uint32)
    counts = np.zeros(nbuckets + 1, dtype=np.uint32)
    for i in range(n):
        k = band_key(words[i, 0], words[i, 1], words[i, 2], words[i, 3], start, width)
        keys[i] = np.uint32(k)
        counts[np.int64(k) + 1] += 1
    for b in range(nbuckets):
        counts[b + 1] += counts[b]
    fill = counts[:-1].copy()
    postings = np.empty(n, dtype=np.uint32)
    for i in range(n):
        k = np.int64(keys[i])
        postings[fill[k]] = np.uint32(i)
        fill[k] += 1
    return counts, postings


@njit(cache=True, nogil=True)
def scan(words, dead, q0, q1, q2, q3, threshold, out_pos, out_dist):
    """Brute force over every live row; returns the number of hits written."""
    found = 0
    for i in range(words.shape[0]):
        if dead[i]:
            continue
        d = hamming(words[i, 0], words[i, 1], words[i, 2], words[i, 3], q0, q1, q2, q3)
        if d <= threshold:
            if found < out_pos.shape[0]:
                out_pos[found] = i
                out_dist[found] = d
            found += 1
    return found


@njit(cache=True, nogil=True, inline="always")
def _probe(bucket, band, offsets, postings, band_base, n, words, dead, q0, q1, q2, q3, threshold,
           out_pos, out_dist, found):
    base = band_base[band]
    lo = offsets[base + bucket]
    hi = offsets[base + bucket + 1]
    pbase = np.int64(band) * n
    for p in range(lo, hi):
        i = postings[pbase + p]
        if dead[i]:
            continue
        d = hamming(words[i, 0], words[i, 1], words[i, 2], words[i, 3], q0, q1, q2, q3)
        if d <= threshold:
            if found < out_pos.shape[0]:
                out_pos[found] = i
                out_dist[found] = d
            found += 1
    return found


@njit(cache=True, nogil=True)
def mih_query(words, dead, starts, widths, band_base, offsets, postings, radius, q0, q1, q2, q3,
              threshold, out_pos, out_dist):
    """Multi-index hashing: probe every band within ``radius`` bits of the query's band key.

    With m bands and radius r = floor(T / m), any row within T of the query agrees with it to
    within r bits on at least one band (pigeonhole), so every match is a candidate: exact by
    construction. Hits may repeat (once per band that finds them); the caller de-duplicates.
    """
    n = words.shape[0]
    found = 0
    for b in range(starts.shape[0]):
        w = widths[b]
        key = band_key(q0, q1, q2, q3, starts[b], w)
        found = _probe(np.int64(key), b, offsets, postings, band_base, n, words, dead, q0, q1, q2, q3,
                       threshold, out_pos, out_dist, found)
        if radius >= 1:
            for x in range(w):
                k1 = key ^ (uint64(1) << uint64(x))
                found = _probe(np.int64(k1), b, offsets, postings, band_base, n, words, dead, q0, q1, q2,
                               q3, threshold, out_pos, out_dist, found)
                if radius >= 2:
                    for y in range(x + 1, w):
                        k2 = k1 ^ (uint64(1) << uint64(y))
                        found = _probe(np.int64(k2), b, offsets, postings, band_base, n, words, dead, q0,
                                       q1, q2, q3, threshold, out_pos, out_dist, found)
    return found
