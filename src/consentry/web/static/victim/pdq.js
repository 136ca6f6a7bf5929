/*
 * PDQ perceptual hash in plain JavaScript, following Meta's reference implementation
 * (facebook/ThreatExchange pdq/cpp/hashing/pdqhashing.cpp and downscaling.cpp) step by step:
 *
 *   1. luminance Y = 0.299 R + 0.587 G + 0.114 B (in double, stored as float32, as pdqhash does);
 *   2. Jarosz filter: two passes of a box filter along rows then columns, window
 *      floor((dim + 2*64 - 1) / (2*64)) per axis, float32 arithmetic like the C++;
 *   3. decimation to 64x64 at the reference sample positions floor((i + 0.5) * dim / 64);
 *   4. quality from the 64x64 image-domain gradient sum (the reference heuristic);
 *   5. 16x16 DCT (rows 1..16 of the 64-point DCT-II matrix) as B = D A D^T;
 *   6. bit i*16+j set when coefficient (i, j) > the median (Torben: the 128th smallest);
 *   7. hex in the reference's order: 16-bit words 15..0, each as 4 hex digits.
 *
 * Every float operation is rounded to float32 (Math.fround) where the C++ uses float, so for the
 * same pixels the hash is bit-identical to pdqhash (tests/test_victim_page.py checks it).
 * No network, no dependencies.
 */
(function (root) {
  "use strict";
  var f = Math.fround;
  var MIN_HASHABLE_DIM = 5;

  var DCT = (function () {
    var m = new Float32Array(16 * 64);
    var scale = f(Math.sqrt(2.0 / 64.0));
    for (var i = 0; i < 16; i++) {
      for (var j = 0; j < 64; j++) {
        m[i * 64 + j] = scale * Math.cos((Math.PI / 2.0 / 64.0) * (i + 1) * (2 * j + 1));
      }
    }
    return m;
  })();

  function windowSize(oldDim, newDim) {
    return Math.floor((oldDim + 2 * newDim - 1) / (2 * newDim));
  }

  function box1D(inv, inOff, outv, outOff, len, stride, win) {
    var half = Math.floor((win + 2) / 2);
    var p1 = half - 1, p2 = win - half + 1, p3 = len - win, p4 = half - 1;
    var li = inOff, ri = inOff, oi = outOff, sum = 0, cur = 0, i;
    for (i = 0; i < p1; i++) { sum = f(sum + inv[ri]); cur++; ri += stride; }
    for (i = 0; i < p2; i++) { sum = f(sum + inv[ri]); cur++; outv[oi] = sum / cur; ri += stride; oi += stride; }
    for (i = 0; i < p3; i++) {
      sum = f(sum + inv[ri]); sum = f(sum - inv[li]);
      outv[oi] = sum / cur; li += stride; ri += stride; oi += stride;
    }
    for (i = 0; i < p4; i++) { sum = f(sum - inv[li]); cur--; outv[oi] = sum / cur; li += stride; oi += stride; }
  }

  function jarosz(buf1, buf2, rows, cols, winRows, winCols, passes) {
    for (var p = 0; p < passes; p++) {
      for (var r = 0; r < rows; r++) box1D(buf1, r * cols, buf2, r * cols, cols, 1, winRows);
      for (var c = 0; c < cols; c++) box1D(buf2, c, buf1, c, rows, cols, winCols);
    }
  }

  function decimate(buf, rows, cols, out) {
    for (var i = 0; i < 64; i++) {
      var ini = Math.trunc(((i + 0.5) * rows) / 64);
      for (var j = 0; j < 64; j++) {
        var inj = Math.trunc(((j + 0.5) * cols) / 64);
        out[i * 64 + j] = buf[ini * cols + inj];
      }
    }
  }

  function quality(b) {
    var g = 0, i, j, d;
    for (i = 0; i < 63; i++) {
      for (j = 0; j < 64; j++) {
        d = Math.trunc(f(f(f(b[i * 64 + j] - b[(i + 1) * 64 + j]) * 100) / 255));
        g += Math.abs(d);
      }
    }
    for (i = 0; i < 64; i++) {
      for (j = 0; j < 63; j++) {
        d = Math.trunc(f(f(f(b[i * 64 + j] - b[i * 64 + j + 1]) * 100) / 255));
        g += Math.abs(d);
      }
    }
    return Math.min(100, Math.trunc(g / 90));
  }

  function dct64To16(A) {
    var T = new Float32Array(16 * 64), B = new Float32Array(256), i, j, k, s;
    for (i = 0; i < 16; i++) {
      for (j = 0; j < 64; j++) {
        s = 0;
        for (k = 0; k < 64; k++) s = f(s + f(DCT[i * 64 + k] * A[k * 64 + j]));
        T[i * 64 + j] = s;
      }
    }
    for (i = 0; i < 16; i++) {
      for (j = 0; j < 16; j++) {
        s = 0;
        for (k = 0; k < 64; k++) s = f(s + f(T[i * 64 + k] * DCT[j * 64 + k]));
        B[i * 16 + j] = s;
      }
    }
    return B;
  }

  function toHex(B) {
    var sorted = Float32Array.from(B).sort();
    var median = sorted[127]; // Torben's median of 256 values: the 128th smallest
    var words = new Array(16).fill(0);
    for (var k = 0; k < 256; k++) if (B[k] > median) words[k >> 4] |= 1 << (k & 15);
    var hex = "";
    for (var w = 15; w >= 0; w--) hex += ("0000" + words[w].toString(16)).slice(-4);
    return hex;
  }

  /** PDQ of float32 luminance (rows x cols, row-major); the buffer is overwritten. */
  function fromLuma(luma, rows, cols) {
    if (rows < MIN_HASHABLE_DIM || cols < MIN_HASHABLE_DIM) {
      return { hash: "0".repeat(64), quality: 0 };
    }
    var b64 = new Float32Array(64 * 64);
    if (rows === 64 && cols === 64) {
      b64.set(luma);
    } else {
      var tmp = new Float32Array(rows * cols);
      jarosz(luma, tmp, rows, cols, windowSize(cols, 64), windowSize(rows, 64), 2);
      decimate(luma, rows, cols, b64);
    }
    var q = quality(b64);
    return { hash: toHex(dct64To16(b64)), quality: q };
  }

  /** PDQ of RGBA pixels (canvas ImageData layout); alpha is ignored (composite first). */
  function fromRGBA(data, width, height) {
    var n = width * height, luma = new Float32Array(n);
    for (var p = 0, o = 0; p < n; p++, o += 4) {
      luma[p] = data[o] * 0.299 + data[o + 1] * 0.587 + data[o + 2] * 0.114;
    }
    return fromLuma(luma, height, width);
  }

  var api = { fromRGBA: fromRGBA, fromLuma: fromLuma, windowSize: windowSize };
  if (typeof module !== "undefined" && module.exports) module.exports = api;
  root.ConsentryPDQ = api;
})(typeof self !== "undefined" ? self : this);
