"""Our own PDQ: compiled (numba) kernels bit-identical to ``pdqhash`` 0.2.8, hash and quality.

``pdqhash`` binds Meta's C++ reference (facebook/ThreatExchange ``pdq/cpp``, hashing/pdqhashing.cpp,
downscaling/downscaling.cpp, hashing/torben.cpp). This module repeats every float operation of that
pipeline in the same precision and the same order, so the result is the same bit for bit:

1. luma ``float32(R*0.299 + G*0.587 + B*0.114)`` computed in float64, as pdqhash's numpy wrapper does;
2. Jarosz filter: two rounds of the C++ ``box1DFloat`` along rows then along columns, window
   ``(dim + 127) // 128``, a float32 running sum (add the new sample, then subtract the old) divided
   by the current window length;
3. decimation at ``((i + 0.5) * dim) / 64``; a 64x64 input skips 2. (single hash only, as in C++);
4. quality from the 64x64 image-domain gradients (``int(((u - v) * 100) / 255)`` in float32);
5. ``B = D A D^T`` with the 16x64 float32 DCT matrix, each sum accumulated in the C++ order;
6. bit ``i*16+j`` set when ``B[i, j]`` > Torben's median; hex = 16-bit words 15..0;
7. the 8 dihedral variants from the one DCT, with the C++ sign flips and transpositions.

What differs is only the schedule (hence the speed): the luma is fused into the first row pass,
independent running sums of four rows are interleaved (the C++ waits on one sum at a time), the
divisions are vectorised over whole rows, the column passes run across a whole row at once (the C++
walks each column with a stride of a full row), the second round computes its row sums only as far
as needed to sample the 64 decimation columns, and the last column pass runs on those 64 columns.
Each individual sum still sees the same additions and subtractions in the same order.
``pdqhash`` stays the reference in tests (tests/test_pdq_own.py).
"""

from __future__ import annotations

import math

import numpy as np

from consentry.jit import cached_njit

__all__ = ["pdq_hash", "pdq_hash_dihedral", "pdq_float256", "warm_up", "MIN_HASHABLE_DIM"]

#: Images smaller than this along either side hash to all zeros with quality 0 (as in C++).
MIN_HASHABLE_DIM = 5
#: Rows whose running sums are interleaved in one loop.
_LANES = 4

_F0 = np.float32(0.0)
_F100 = np.float32(100.0)
_F255 = np.float32(255.0)
_F2 = np.float32(2.0)


def _dct_matrix() -> np.ndarray:
    """The C++ ``dct_matrix_64``: float scale times the double cosine, stored as float."""
    scale = float(np.float32(math.sqrt(2.0 / 64.0)))
    d = np.empty((16, 64), dtype=np.float32)
    for i in range(16):
        for j in range(64):
            d[i, j] = np.float32(scale * math.cos((math.pi / 2.0 / 64.0) * (i + 1) * (2 * j + 1)))
    return d


_DCT = _dct_matrix()
_DCT_T = np.ascontiguousarray(_DCT.T)

#: Whether the kernels are cached on disk (False only when numba found no writable cache dir).
CACHED = True


def _kernel(fn):
    """A compiled kernel with numba's disk cache (:func:`consentry.jit.cached_njit`); ``CACHED``
    turns False when the cache cannot be used (each process then compiles)."""
    global CACHED
    kernel, cached = cached_njit(fn)
    CACHED = CACHED and cached
    return kernel


# ---------------------------------------------------------------- box filter pieces


@_kernel
def _window_phases(n, w):
    """``box1DFloat``'s phase lengths for a vector of ``n`` and a window of ``w``."""
    half = (w + 2) // 2
    return half - 1, w - half + 1, n - w, half - 1


@_kernel
def _window_counts(n, w):
    """The divisor ``box1DFloat`` uses for each output index, as float32."""
    p1, p2, p3, p4 = _window_phases(n, w)
    cnt = np.empty(n, dtype=np.float32)
    o = 0
    c = p1
    for _ in range(p2):
        c += 1
        cnt[o] = c
        o += 1
    for _ in range(p3):
        cnt[o] = c
        o += 1
    for _ in range(p4):
        c -= 1
        cnt[o] = c
        o += 1
    return cnt


@_kernel
def _row_sums4(x, rx, y, ry, n, w):
    """Running sums of ``box1DFloat`` along rows rx..rx+3 of ``x`` into rows ry..ry+3 of ``y``
    (undivided), the four independent sums interleaved."""
    p1, p2, p3, p4 = _window_phases(n, w)
    x0, x1, x2, x3 = x[rx], x[rx + 1], x[rx + 2], x[rx + 3]
    y0, y1, y2, y3 = y[ry], y[ry + 1], y[ry + 2], y[ry + 3]
    s0 = s1 = s2 = s3 = _F0
    ri = 0
    for _ in range(p1):
        s0 += x0[ri]
        s1 += x1[ri]
        s2 += x2[ri]
        s3 += x3[ri]
        ri += 1
    oi = 0
    for _ in range(p2):
        s0 += x0[ri]
        s1 += x1[ri]
        s2 += x2[ri]
        s3 += x3[ri]
        y0[oi] = s0
        y1[oi] = s1
        y2[oi] = s2
        y3[oi] = s3
        ri += 1
        oi += 1
    li = 0
    for _ in range(p3):
        s0 += x0[ri]
        s1 += x1[ri]
        s2 += x2[ri]
        s3 += x3[ri]
        s0 -= x0[li]
        s1 -= x1[li]
        s2 -= x2[li]
        s3 -= x3[li]
        y0[oi] = s0
        y1[oi] = s1
        y2[oi] = s2
        y3[oi] = s3
        ri += 1
        li += 1
        oi += 1
    for _ in range(p4):
        s0 -= x0[li]
        s1 -= x1[li]
        s2 -= x2[li]
        s3 -= x3[li]
        y0[oi] = s0
        y1[oi] = s1
        y2[oi] = s2
        y3[oi] = s3
        li += 1
        oi += 1


@_kernel
def _row_sums1(x0, y0, n, w):
    """One row of :func:`_row_sums4` (the rows left over)."""
    p1, p2, p3, p4 = _window_phases(n, w)
    s0 = _F0
    ri = 0
    for _ in range(p1):
        s0 += x0[ri]
        ri += 1
    oi = 0
    for _ in range(p2):
        s0 += x0[ri]
        y0[oi] = s0
        ri += 1
        oi += 1
    li = 0
    for _ in range(p3):
        s0 += x0[ri]
        s0 -= x0[li]
        y0[oi] = s0
        ri += 1
        li += 1
        oi += 1
    for _ in range(p4):
        s0 -= x0[li]
        y0[oi] = s0
        li += 1
        oi += 1


@_kernel
def _row_sums(x, y, k, n, w):
    """Running sums along the first ``k`` rows of ``x`` into ``y``."""
    r = 0
    while r + 4 <= k:
        _row_sums4(x, r, y, r, n, w)
        r += 4
    while r < k:
        _row_sums1(x[r], y[r], n, w)
        r += 1


@_kernel
def _col_step(s, add, sub, mode):
    """One step of ``box1DFloat`` along columns, all columns at once: mode 1 adds ``add``,
    mode 2 adds ``add`` then subtracts ``sub``, mode 3 subtracts ``sub``."""
    m = s.shape[0]
    if mode == 1:
        for c in range(m):
            s[c] += add[c]
    elif mode == 2:
        for c in range(m):
            s[c] = (s[c] + add[c]) - sub[c]
    else:
        for c in range(m):
            s[c] -= sub[c]


@_kernel
def _divide_row(s, d, out):
    for c in range(s.shape[0]):
        out[c] = s[c] / d


# ---------------------------------------------------------------- downsampling


@_kernel
def _luma_rows(rgb, r0, k, out):
    """pdqhash's luma: float64 ``R*0.299 + G*0.587 + B*0.114`` rounded to float32."""
    w = rgb.shape[1]
    for kk in range(k):
        src = rgb[r0 + kk]
        dst = out[kk]
        for c in range(w):
            dst[c] = np.float32(src[c, 0] * 0.299 + src[c, 1] * 0.587 + src[c, 2] * 0.114)


@_kernel
def _sample_index(i, dim):
    return int(((i + 0.5) * dim) / 64)


@_kernel
def _downsample64(rgb):
    """Luma, two Jarosz rounds (rows then columns) and decimation to 64x64, as the C++."""
    nrows, ncols = rgb.shape[0], rgb.shape[1]
    w_rows = (ncols + 127) // 128  # window along each row
    w_cols = (nrows + 127) // 128  # window along each column
    cnt_r = _window_counts(ncols, w_rows)
    cnt_c = _window_counts(nrows, w_cols)
    colidx = np.empty(64, dtype=np.int64)
    rowidx = np.empty(64, dtype=np.int64)
    for i in range(64):
        colidx[i] = _sample_index(i, ncols)
        rowidx[i] = _sample_index(i, nrows)

    # Round 1, rows: luma then the row box, four rows at a time, into ``buf``.
    buf = np.empty((nrows, ncols), dtype=np.float32)
    lum = np.empty((_LANES, ncols), dtype=np.float32)
    r = 0
    while r < nrows:
        k = min(_LANES, nrows - r)
        _luma_rows(rgb, r, k, lum)
        _row_sums(lum, buf[r:r + k], k, ncols, w_rows)
        for kk in range(k):
            row = buf[r + kk]
            for c in range(ncols):
                row[c] = row[c] / cnt_r[c]
        r += k

    # Round 1, columns, emitting one output row per step; round 2, rows, on each group of
    # emitted rows, kept only at the 64 sampled columns (divided there only).
    acc = np.zeros(ncols, dtype=np.float32)
    emitted = np.empty((_LANES, ncols), dtype=np.float32)
    sums = np.empty((_LANES, ncols), dtype=np.float32)
    sampled = np.empty((nrows, 64), dtype=np.float32)
    p1, p2, p3, p4 = _window_phases(nrows, w_cols)
    ri = 0
    li = 0
    oi = 0
    k = 0
    for step in range(p1 + p2 + p3 + p4):
        if step < p1:
            _col_step(acc, buf[ri], buf[ri], 1)
            ri += 1
            continue
        if step < p1 + p2:
            _col_step(acc, buf[ri], buf[ri], 1)
            ri += 1
        elif step < p1 + p2 + p3:
            _col_step(acc, buf[ri], buf[li], 2)
            ri += 1
            li += 1
        else:
            _col_step(acc, buf[li], buf[li], 3)
            li += 1
        _divide_row(acc, cnt_c[oi], emitted[k])
        oi += 1
        k += 1
        if k == _LANES or oi == nrows:
            _row_sums(emitted, sums, k, ncols, w_rows)
            for kk in range(k):
                for j in range(64):
                    c = colidx[j]
                    sampled[oi - k + kk, j] = sums[kk, c] / cnt_r[c]
            k = 0

    # Round 2, columns, on the 64 sampled columns, kept at the 64 sampled rows.
    out = np.empty((64, 64), dtype=np.float32)
    acc64 = np.zeros(64, dtype=np.float32)
    ri = 0
    li = 0
    oi = 0
    nxt = 0  # next sampled row to fill
    for step in range(p1 + p2 + p3 + p4):
        if step < p1:
            _col_step(acc64, sampled[ri], sampled[ri], 1)
            ri += 1
            continue
        if step < p1 + p2:
            _col_step(acc64, sampled[ri], sampled[ri], 1)
            ri += 1
        elif step < p1 + p2 + p3:
            _col_step(acc64, sampled[ri], sampled[li], 2)
            ri += 1
            li += 1
        else:
            _col_step(acc64, sampled[li], sampled[li], 3)
            li += 1
        while nxt < 64 and rowidx[nxt] == oi:
            _divide_row(acc64, cnt_c[oi], out[nxt])
            nxt += 1
        oi += 1
    return out


# ---------------------------------------------------------------- quality, DCT, bits


@_kernel
def _quality(a):
    """``pdqImageDomainQualityMetric``."""
    g = 0
    for i in range(63):
        for j in range(64):
            d = int(((a[i, j] - a[i + 1, j]) * _F100) / _F255)
            g += abs(d)
    for i in range(64):
        for j in range(63):
            d = int(((a[i, j] - a[i, j + 1]) * _F100) / _F255)
            g += abs(d)
    q = g // 90
    return 100 if q > 100 else q


@_kernel
def _dct64to16(a, dct, dct_t):
    """``dct64To16``: T = D A then B = T D^T, every sum over k in order, in float32."""
    t = np.zeros((16, 64), dtype=np.float32)
    for i in range(16):
        ti = t[i]
        for k in range(64):
            dik = dct[i, k]
            ak = a[k]
            for j in range(64):
                ti[j] += dik * ak[j]
    b = np.zeros((16, 16), dtype=np.float32)
    for i in range(16):
        bi = b[i]
        for k in range(64):
            tik = t[i, k]
            dk = dct_t[k]
            for j in range(16):
                bi[j] += tik * dk[j]
    return b


@_kernel
def _torben(m):
    """Torben's median of the 256 floats, as hashing/torben.cpp (for n = 256)."""
    n = m.shape[0]
    half = (n + 1) // 2
    lo = m[0]
    hi = m[0]
    for i in range(1, n):
        if m[i] < lo:
            lo = m[i]
        if m[i] > hi:
            hi = m[i]
    while True:
        guess = (lo + hi) / _F2
        less = 0
        greater = 0
        equal = 0
        maxlt = lo
        mingt = hi
        for i in range(n):
            v = m[i]
            if v < guess:
                less += 1
                if v > maxlt:
                    maxlt = v
            elif v > guess:
                greater += 1
                if v < mingt:
                    mingt = v
            else:
                equal += 1
        if less <= half and greater <= half:
            break
        elif less > greater:
            hi = maxlt
        else:
            lo = mingt
    if less >= half:
        return maxlt
    elif less + equal >= half:
        return guess
    return mingt


@_kernel
def _bits_to_bytes(b, out):
    """Bit ``i*16+j`` = ``b[i, j]`` > median, written as pytx's hex order (words 15..0)."""
    med = _torben(b.reshape(256))
    for i in range(16):
        word = 0
        for j in range(16):
            if b[i, j] > med:
                word |= 1 << j
        out[30 - 2 * i] = word >> 8
        out[31 - 2 * i] = word & 0xFF


@_kernel
def _dihedral(b, v):
    """Variant ``v`` (pdqhash's order) of the 16x16 DCT, as the C++ ``dct16OriginalTo*``."""
    if v == 0:
        return b
    out = np.empty((16, 16), dtype=np.float32)
    for i in range(16):
        for j in range(16):
            x = b[i, j]
            if v == 1:  # rotate 90: transpose, negate even columns
                out[j, i] = x if j & 1 else -x
            elif v == 2:  # rotate 180
                out[i, j] = -x if (i + j) & 1 else x
            elif v == 3:  # rotate 270: transpose, negate even rows
                out[j, i] = x if i & 1 else -x
            elif v == 4:  # flip x
                out[i, j] = x if i & 1 else -x
            elif v == 5:  # flip y
                out[i, j] = x if j & 1 else -x
            elif v == 6:  # flip +1: transpose
                out[j, i] = x
            else:  # flip -1
                out[j, i] = -x if (i + j) & 1 else x
    return out


@_kernel
def _pdq_float(rgb, dct, dct_t):
    """The single-hash path up to the 16x16 DCT (``pdqFloat256FromFloatLuma``) and the quality."""
    if rgb.shape[0] == 64 and rgb.shape[1] == 64:
        a = np.empty((64, 64), dtype=np.float32)
        _luma_rows(rgb, 0, 64, a)
    else:
        a = _downsample64(rgb)
    return _dct64to16(a, dct, dct_t), _quality(a)


@_kernel
def _pdq(rgb, nvariants, dct, dct_t):
    """(nvariants x 32 hash bytes, quality) for an (H, W, 3) uint8 image."""
    out = np.zeros((nvariants, 32), dtype=np.uint8)
    nrows, ncols = rgb.shape[0], rgb.shape[1]
    if nrows < MIN_HASHABLE_DIM or ncols < MIN_HASHABLE_DIM:
        return out, 0
    if nrows == 64 and ncols == 64 and nvariants == 1:
        a = np.empty((64, 64), dtype=np.float32)
        _luma_rows(rgb, 0, 64, a)
    else:
        a = _downsample64(rgb)
    quality = _quality(a)
    b = _dct64to16(a, dct, dct_t)
    for v in range(nvariants):
        _bits_to_bytes(_dihedral(b, v), out[v])
    return out, quality


# ---------------------------------------------------------------- Python API


def _rgb(pixels: np.ndarray) -> np.ndarray:
    arr = np.asarray(pixels)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError("PDQ needs an 8-bit RGB image (H, W, 3)")
    return np.ascontiguousarray(arr)


def pdq_hash(pixels: np.ndarray) -> tuple[str, int]:
    """PDQ of an (H, W, 3) uint8 RGB array: (64 lowercase hex, quality), as pdqhash.compute."""
    out, quality = _pdq(_rgb(pixels), 1, _DCT, _DCT_T)
    return out[0].tobytes().hex(), int(quality)


def pdq_hash_dihedral(pixels: np.ndarray) -> tuple[list[str], int]:
    """The 8 dihedral variants (pdqhash.compute_dihedral's order) and the quality."""
    out, quality = _pdq(_rgb(pixels), 8, _DCT, _DCT_T)
    return [row.tobytes().hex() for row in out], int(quality)


def pdq_float256(pixels: np.ndarray) -> tuple[np.ndarray, int]:
    """The 16x16 float32 DCT the single hash thresholds, and the quality (images of at least
    5x5): the same values as ``pdqhash.compute_float`` (which returns them flattened, reversed)."""
    rgb = _rgb(pixels)
    if rgb.shape[0] < MIN_HASHABLE_DIM or rgb.shape[1] < MIN_HASHABLE_DIM:
        raise ValueError(f"PDQ needs at least {MIN_HASHABLE_DIM}x{MIN_HASHABLE_DIM} pixels")
    b, quality = _pdq_float(rgb, _DCT, _DCT_T)
    return b, int(quality)


def warm_up() -> None:
    """Compile (or load from numba's cache) every kernel now rather than on the first image."""
    pdq_hash_dihedral(np.zeros((70, 9, 3), dtype=np.uint8))
    pdq_hash(np.zeros((64, 64, 3), dtype=np.uint8))
