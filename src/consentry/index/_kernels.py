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


@njit(cache=True, nogil=True)
def scan_multi(words, dead, qs, threshold, out_pos, out_dist, out_var):
    """Brute force of several queries (``qs``: V x 4) in one pass over the rows: every (row,
    variant) within ``threshold``. Returns the number of hits (writes at most len(out_pos))."""
    found = 0
    nv = qs.shape[0]
    for i in range(words.shape[0]):
        if dead[i]:
            continue
        w0, w1, w2, w3 = words[i, 0], words[i, 1], words[i, 2], words[i, 3]
        for v in range(nv):
            d = hamming(w0, w1, w2, w3, qs[v, 0], qs[v, 1], qs[v, 2], qs[v, 3])
            if d <= threshold:
                if found < out_pos.shape[0]:
                    out_pos[found] = i
                    out_dist[found] = d
                    out_var[found] = v
                found += 1
    return found


@njit(cache=True, nogil=True)
def mih_query_multi(words, dead, starts, widths, band_base, offsets, postings, radius, qs, threshold,
                    out_pos, out_dist, out_var):
    """Multi-index hashing for several queries at once (e.g. the 8 dihedral variants; one query
    is a batch of one).

    With m bands and radius r = floor(T / m), any row within T of a query
    agrees with it to within r bits on at least one band (pigeonhole), so every match is a
    candidate: exact by construction. The probes run in phases over *all* variants, so
    that the random memory reads of each phase are independent of each other (the CPU overlaps
    them) instead of one dependent chain per probe: 1. every probe's bucket key (variant, band,
    key within ``radius`` bits); 2. each bucket's posting range; 3. the candidate rows; 4. their
    full 256-bit distance to the variant that found them. A row within ``threshold`` of variant v
    is a candidate of v's probes, so checking each candidate against its own variant is exact.
    Hits may repeat (once per band/variant); the caller keeps the best per row.
    """
    n = words.shape[0]
    nv = qs.shape[0]
    m = starts.shape[0]
    per_band = np.empty(m, dtype=np.int64)
    total = 0
    for b in range(m):
        w = widths[b]
        c = 1
        if radius >= 1:
            c += w
        if radius >= 2:
            c += w * (w - 1) // 2
        per_band[b] = c
        total += c
    nprobe = total * nv
    slot = np.empty(nprobe, dtype=np.int64)  # index into offsets
    pvar = np.empty(nprobe, dtype=np.int32)
    pband = np.empty(nprobe, dtype=np.int32)
    k = 0
    for v in range(nv):
        q0, q1, q2, q3 = qs[v, 0], qs[v, 1], qs[v, 2], qs[v, 3]
        for b in range(m):
            w = widths[b]
            base = band_base[b]
            key = band_key(q0, q1, q2, q3, starts[b], w)
            slot[k] = base + np.int64(key)
            pvar[k] = v
            pband[k] = b
            k += 1
            if radius >= 1:
                for x in range(w):
                    k1 = key ^ (uint64(1) << uint64(x))
                    slot[k] = base + np.int64(k1)
                    pvar[k] = v
                    pband[k] = b
                    k += 1
                    if radius >= 2:
                        for y in range(x + 1, w):
                            slot[k] = base + np.int64(k1 ^ (uint64(1) << uint64(y)))
                            pvar[k] = v
                            pband[k] = b
                            k += 1
    # 2. posting ranges (independent gathers)
    lo = np.empty(nprobe, dtype=np.int64)
    cnt = np.empty(nprobe, dtype=np.int64)
    ncand = 0
    for k in range(nprobe):
        s = slot[k]
        a = np.int64(offsets[s])
        lo[k] = a
        c = np.int64(offsets[s + 1]) - a
        cnt[k] = c
        ncand += c
    # 3. candidate rows
    cand = np.empty(ncand, dtype=np.int64)
    cvar = np.empty(ncand, dtype=np.int32)
    j = 0
    for k in range(nprobe):
        pbase = np.int64(pband[k]) * n + lo[k]
        v = pvar[k]
        for p in range(cnt[k]):
            cand[j] = postings[pbase + p]
            cvar[j] = v
            j += 1
    # 4. verify (dead rows are checked only for hits: one random read fewer per candidate)
    found = 0
    for j in range(ncand):
        i = cand[j]
        v = cvar[j]
        d = hamming(words[i, 0], words[i, 1], words[i, 2], words[i, 3], qs[v, 0], qs[v, 1], qs[v, 2], qs[v, 3])
        if d <= threshold and not dead[i]:
            if found < out_pos.shape[0]:
                out_pos[found] = i
                out_dist[found] = d
                out_var[found] = v
            found += 1
    return found

