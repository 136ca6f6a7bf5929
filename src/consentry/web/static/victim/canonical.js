/*
 * Canonical PDQ variants of a photo, computed on the device (issue 21): the same extra hashes the
 * server stores for a bank photo (consentry/signals/canonical.py, `stored_extra_hashes`), so a
 * victim's picture is also found when it is re-posted with borders, cropped or slightly turned.
 *
 *   - "trimmed": the picture without letterbox / pillarbox borders (`trim_box`: grey working copy
 *     of long side <= 512 made like Pillow's convert("L") + resize(BOX), 3x3 smoothing, solid bars
 *     and blurred fills, refinement at full resolution), only when borders are found;
 *   - "crop95@x,y", "crop90@x,y", "crop80@x,y": centre and corner windows of 95, 90 and 80 % of
 *     each side (`subcrop_boxes`, with Python's round-half-to-even);
 *   - "rot-6" ... "rot+6": turned by a few degrees the way Pillow's rotate(deg, BICUBIC) does it
 *     (its affine matrix, its bicubic kernel in double precision, truncation to 8 bits, black
 *     outside) and cropped to the largest same-aspect rectangle (`rotated_variant`).
 *
 * Sub-crops and rotations are taken of the trimmed picture when it had borders. Every step follows
 * the server's integer / float32 / float64 semantics (numpy's float32 pairwise sums included), so
 * for the same pixels the hashes are identical (tests/test_victim_page.py checks it). Only hashes
 * come out of here; the pixels never leave the device. No network, no dependencies but pdq.js.
 */
(function (root) {
  "use strict";
  var f = Math.fround;
  var PDQ = root.ConsentryPDQ || (typeof require === "function" ? require("./pdq.js") : null);

  var WORK_SIDE = 512;
  var SOLID_STD = 3.0;
  var FILL_DETAIL_MIN = 0.4;
  var FILL_DETAIL_RATIO = 0.5;
  var FILL_SYMMETRY = 0.03;
  var EDGE_STEP = 7.0;
  var EDGE_FRACTION = 0.5;
  var MIN_BORDER = 0.02;
  var MIN_KEEP = 0.25;
  // The server's defaults (SUBCROPS_CORNERS, STORED_ROTATIONS); the page passes the server's own
  // (data-canonical on #files), so the two cannot drift apart.
  var CORNER_ANCHORS = [[0.5, 0.5], [0, 0], [1, 0], [0, 1], [1, 1]];
  var SUBCROPS = [[0.95, CORNER_ANCHORS], [0.9, CORNER_ANCHORS], [0.8, CORNER_ANCHORS]];
  var ROTATIONS = [-6, -5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 6];
  var PRECISION_BITS = 22;  // Pillow's Resample.c, 8 bits per channel
  var STORED_MAX_SIDE = 1024;  // canonical.STORED_MAX_SIDE: variants are computed on a copy this size

  // Pillow's rotation matrix entries round(cos(a), 15), round(sin(a), 15), round(-sin(a), 15) with
  // a = -radians(deg % 360), and cos / sin of radians(|deg|) for the inscribed crop, as CPython
  // computes them: tabled so that no engine's Math.cos / Math.sin can differ in the last bit.
  var ROT_TABLE = {
    "-6": [0.994521895368273, 0.104528463267653, -0.104528463267653, 0.9945218953682733, 0.10452846326765347],
    "-5": [0.996194698091746, 0.087155742747658, -0.087155742747658, 0.9961946980917455, 0.08715574274765817],
    "-4": [0.997564050259824, 0.069756473744126, -0.069756473744126, 0.9975640502598242, 0.0697564737441253],
    "-3": [0.998629534754574, 0.052335956242944, -0.052335956242944, 0.9986295347545738, 0.052335956242943835],
    "-2": [0.999390827019096, 0.034899496702501, -0.034899496702501, 0.9993908270190958, 0.03489949670250097],
    "-1": [0.999847695156391, 0.017452406437284, -0.017452406437284, 0.9998476951563913, 0.01745240643728351],
    "1": [0.999847695156391, -0.017452406437284, 0.017452406437284, 0.9998476951563913, 0.01745240643728351],
    "2": [0.999390827019096, -0.034899496702501, 0.034899496702501, 0.9993908270190958, 0.03489949670250097],
    "3": [0.998629534754574, -0.052335956242944, 0.052335956242944, 0.9986295347545738, 0.052335956242943835],
    "4": [0.997564050259824, -0.069756473744125, 0.069756473744125, 0.9975640502598242, 0.0697564737441253],
    "5": [0.996194698091746, -0.087155742747658, 0.087155742747658, 0.9961946980917455, 0.08715574274765817],
    "6": [0.994521895368273, -0.104528463267653, 0.104528463267653, 0.9945218953682733, 0.10452846326765347]
  };

  /** Python's round(x) for a float: to the nearest integer, halves to even. */
  function pyRound(x) {
    var fl = Math.floor(x), d = x - fl;
    if (d > 0.5) return fl + 1;
    if (d < 0.5) return fl;
    return fl % 2 === 0 ? fl : fl + 1;
  }

  // ---------------------------------------------------------------- pictures
  // A picture is a window on RGBA bytes: {data, stride (pixels per row of data), ox, oy, width, height}.

  function view(data, width, height) {
    return { data: data, stride: width, ox: 0, oy: 0, width: width, height: height };
  }

  function sub(img, box) {
    return { data: img.data, stride: img.stride, ox: img.ox + box[0], oy: img.oy + box[1],
             width: box[2] - box[0], height: box[3] - box[1] };
  }

  /** Pillow's convert("L") of RGB: (R*19595 + G*38470 + B*7471 + 0x8000) >> 16. */
  function greyL(img) {
    var w = img.width, h = img.height, d = img.data, out = new Uint8Array(w * h);
    for (var y = 0; y < h; y++) {
      var o = ((img.oy + y) * img.stride + img.ox) * 4, p = y * w;
      for (var x = 0; x < w; x++, o += 4) {
        out[p + x] = (d[o] * 19595 + d[o + 1] * 38470 + d[o + 2] * 7471 + 0x8000) >> 16;
      }
    }
    return out;
  }

  /** PDQ luminance (as pdq.js's fromRGBA computes it) of a picture. */
  function pdqLuma(img) {
    var w = img.width, h = img.height, d = img.data, out = new Float32Array(w * h);
    for (var y = 0; y < h; y++) {
      var o = ((img.oy + y) * img.stride + img.ox) * 4, p = y * w;
      for (var x = 0; x < w; x++, o += 4) out[p + x] = d[o] * 0.299 + d[o + 1] * 0.587 + d[o + 2] * 0.114;
    }
    return out;
  }

  function lumaWindow(luma, width, box) {
    var w = box[2] - box[0], h = box[3] - box[1], out = new Float32Array(w * h);
    for (var y = 0; y < h; y++) {
      var s = (box[1] + y) * width + box[0];
      out.set(luma.subarray(s, s + w), y * w);
    }
    return out;
  }

  // ---------------------------------------------------------------- Pillow resize(BOX), mode L
  function boxCoeffs(inSize, outSize) {
    var scale = inSize / outSize, filterscale = scale < 1.0 ? 1.0 : scale;
    var support = 0.5 * filterscale;
    var ksize = Math.ceil(support) * 2 + 1;
    var inv = 1.0 / filterscale;
    var bounds = new Int32Array(outSize * 2), kk = new Int32Array(outSize * ksize);
    var k = new Float64Array(ksize);
    for (var xx = 0; xx < outSize; xx++) {
      var center = 0.0 + (xx + 0.5) * scale, ww = 0.0, x;
      var xmin = Math.trunc(center - support + 0.5);
      if (xmin < 0) xmin = 0;
      var xmax = Math.trunc(center + support + 0.5);
      if (xmax > inSize) xmax = inSize;
      xmax -= xmin;
      for (x = 0; x < ksize; x++) k[x] = 0;
      for (x = 0; x < xmax; x++) {
        var t = ((x + xmin) - center + 0.5) * inv;
        var wt = t > -0.5 && t <= 0.5 ? 1.0 : 0.0;
        k[x] = wt;
        ww += wt;
      }
      if (ww !== 0.0) for (x = 0; x < xmax; x++) k[x] /= ww;
      for (x = 0; x < ksize; x++) {
        var v = k[x] * (1 << PRECISION_BITS);
        kk[xx * ksize + x] = k[x] < 0 ? Math.trunc(-0.5 + v) : Math.trunc(0.5 + v);
      }
      bounds[xx * 2] = xmin;
      bounds[xx * 2 + 1] = xmax;
    }
    return { ksize: ksize, bounds: bounds, kk: kk };
  }

  function clip8(ss) {
    var v = ss >> PRECISION_BITS;
    return v < 0 ? 0 : v > 255 ? 255 : v;
  }

  function resizeBoxL(src, w, h, nw, nh) {
    var half = 1 << (PRECISION_BITS - 1), x, y, i, ss, c, mid = src, mw = w;
    if (nw !== w) {
      c = boxCoeffs(w, nw);
      mid = new Uint8Array(nw * h);
      mw = nw;
      for (y = 0; y < h; y++) {
        for (x = 0; x < nw; x++) {
          var xmin = c.bounds[x * 2], xmax = c.bounds[x * 2 + 1], ko = x * c.ksize, so = y * w + xmin;
          ss = half;
          for (i = 0; i < xmax; i++) ss += src[so + i] * c.kk[ko + i];
          mid[y * nw + x] = clip8(ss);
        }
      }
    }
    if (nh === h) return mid;
    c = boxCoeffs(h, nh);
    var out = new Uint8Array(mw * nh);
    for (y = 0; y < nh; y++) {
      var ymin = c.bounds[y * 2], ymax = c.bounds[y * 2 + 1], kb = y * c.ksize;
      for (x = 0; x < mw; x++) {
        ss = half;
        for (i = 0; i < ymax; i++) ss += mid[(ymin + i) * mw + x] * c.kk[kb + i];
        out[y * mw + x] = clip8(ss);
      }
    }
    return out;
  }

  /** `_grey`: float32 working copy with long side <= WORK_SIDE, and its scale. */
  function grey(L, w, h) {
    var scale = Math.min(1.0, WORK_SIDE / Math.max(w, h)), nw = w, nh = h, g = L;
    if (scale < 1.0) {
      nw = Math.max(1, pyRound(w * scale));
      nh = Math.max(1, pyRound(h * scale));
      if (nw !== w || nh !== h) g = resizeBoxL(L, w, h, nw, nh);
    }
    return { g: Float32Array.from(g), rows: nh, cols: nw, scale: w ? nw / w : 1.0 };
  }

  // ---------------------------------------------------------------- numpy float32 sums
  /** numpy's pairwise float32 sum of n values a[off], a[off + stride], ... */
  function pairwise(a, off, n, stride) {
    var i, res;
    if (n < 8) {
      res = 0;
      for (i = 0; i < n; i++) res = f(res + a[off + i * stride]);
      return res;
    }
    if (n <= 128) {
      var r0 = a[off], r1 = a[off + stride], r2 = a[off + 2 * stride], r3 = a[off + 3 * stride];
      var r4 = a[off + 4 * stride], r5 = a[off + 5 * stride], r6 = a[off + 6 * stride], r7 = a[off + 7 * stride];
      var end = n - (n % 8);
      for (i = 8; i < end; i += 8) {
        var p = off + i * stride;
        r0 = f(r0 + a[p]); r1 = f(r1 + a[p + stride]); r2 = f(r2 + a[p + 2 * stride]); r3 = f(r3 + a[p + 3 * stride]);
        r4 = f(r4 + a[p + 4 * stride]); r5 = f(r5 + a[p + 5 * stride]); r6 = f(r6 + a[p + 6 * stride]);
        r7 = f(r7 + a[p + 7 * stride]);
      }
      res = f(f(f(r0 + r1) + f(r2 + r3)) + f(f(r4 + r5) + f(r6 + r7)));
      for (; i < n; i++) res = f(res + a[off + i * stride]);
      return res;
    }
    var n2 = Math.floor(n / 2);
    n2 -= n2 % 8;
    return f(pairwise(a, off, n2, stride) + pairwise(a, off + n2 * stride, n - n2, stride));
  }

  function sequential(a, off, n, stride) {
    var res = 0;
    for (var i = 0; i < n; i++) res = f(res + a[off + i * stride]);
    return res;
  }

  // ---------------------------------------------------------------- borders (trim_box)
  // A matrix is {a: Float32Array (row-major, materialised in the orientation numpy sees),
  // rows, cols, seq}; `seq` when numpy reduces its rows sequentially (a transposed view, whose
  // rows are not contiguous) rather than pairwise (contiguous rows).

  function reversedRows(m) {
    var out = new Float32Array(m.a.length), c = m.cols;
    for (var i = 0; i < m.rows; i++) out.set(m.a.subarray((m.rows - 1 - i) * c, (m.rows - i) * c), i * c);
    return { a: out, rows: m.rows, cols: c, seq: m.seq };
  }

  /** `_smooth`: 3x3 box blur with edge padding (integer sums, then float32 / 9). */
  function smooth(m) {
    var R = m.rows, C = m.cols, a = m.a;
    if (Math.min(R, C) < 3) return m;
    var out = new Float32Array(R * C);
    for (var i = 0; i < R; i++) {
      for (var j = 0; j < C; j++) {
        var s = 0;
        for (var di = -1; di <= 1; di++) {
          var ii = i + di < 0 ? 0 : i + di >= R ? R - 1 : i + di;
          for (var dj = -1; dj <= 1; dj++) {
            var jj = j + dj < 0 ? 0 : j + dj >= C ? C - 1 : j + dj;
            s += a[ii * C + jj];
          }
        }
        out[i * C + j] = f(s / 9.0);
      }
    }
    return { a: out, rows: R, cols: C, seq: m.seq };
  }

  /** Mean |horizontal step| of each row (np.abs(np.diff(g, axis=1)).mean(axis=1)). */
  function rowDetail(m, i) {
    var C = m.cols, o = i * C, s = 0;
    for (var j = 1; j < C; j++) s += Math.abs(m.a[o + j] - m.a[o + j - 1]);  // integers: exact
    return f(s / (C - 1));
  }

  function solidRun(m) {
    var R = m.rows, C = m.cols, a = m.a, sq = new Float32Array(C), mean0 = 0;
    for (var i = 0; i < R; i++) {
      var o = i * C, s = 0, j;
      for (j = 0; j < C; j++) s += a[o + j];  // integer sum: exact in float32 too
      var mean = f(s / C);
      for (j = 0; j < C; j++) {
        var x = f(a[o + j] - mean);
        sq[j] = f(x * x);
      }
      var v = f((m.seq ? sequential(sq, 0, C, 1) : pairwise(sq, 0, C, 1)) / C);
      var std = f(Math.sqrt(v));
      if (i === 0) mean0 = mean;
      if (!(std < SOLID_STD && Math.abs(f(mean - mean0)) < SOLID_STD * 2)) return i;
    }
    return R;
  }

  function fillRun(m, level) {
    var R = m.rows, n = R, i;
    var detail = new Float64Array(R);
    for (i = 0; i < R; i++) detail[i] = rowDetail(m, i);
    for (i = 0; i < R; i++) if (!(detail[i] < level)) { n = i; break; }
    if (n + 4 > R) return 0;
    for (i = n; i < n + 4; i++) if (!(detail[i] >= level)) return 0;
    return n;
  }

  function sharp(sm, n) {
    var C = sm.cols, a = sm.a, count = 0;
    for (var j = 0; j < C; j++) if (Math.abs(f(a[n * C + j] - a[(n - 1) * C + j])) > EDGE_STEP) count++;
    return count / C >= EDGE_FRACTION;
  }

  function median(values) {
    var v = Float64Array.from(values).sort(), n = v.length;
    if (n % 2 === 1) return v[(n - 1) / 2];
    return f(f(v[n / 2 - 1] + v[n / 2]) / 2);
  }

  /** `_axis_borders`: border rows at the top and bottom of m. */
  function axisBorders(m, fills) {
    var h = m.rows;
    if (h < 16 || m.cols < 8) return [0, 0];
    var midLo = Math.trunc(h * 0.4), midHi = Math.min(h, Math.trunc(h * 0.6) + 1), mids = [];
    for (var i = midLo; i < midHi; i++) mids.push(rowDetail(m, i));
    var content = median(mids);
    var level = f(Math.max(FILL_DETAIL_MIN, FILL_DETAIL_RATIO * content));  // compared in float32
    var lo = Math.max(2, Math.trunc(h * MIN_BORDER)), hi = Math.trunc(h * (1 - MIN_KEEP) / 2);
    var sm = smooth(m);
    var sides = [[m, sm], [reversedRows(m), reversedRows(sm)]], out = [];
    for (var s = 0; s < 2; s++) {
      var side = sides[s][0], sside = sides[s][1];
      var solid = solidRun(side);
      if (lo <= solid && solid <= 2 * hi && solid < h && sharp(sside, solid)) {
        out.push([solid, true]);
        continue;
      }
      var fill = fills ? fillRun(side, level) : 0;
      out.push([lo <= fill && fill <= hi ? fill : 0, false]);
    }
    var t = out[0][0], b = out[1][0];
    if (!(t && b && Math.abs(t - b) <= FILL_SYMMETRY * h + 2)) {
      t = out[0][1] ? t : 0;
      b = out[1][1] ? b : 0;
    }
    if (h - t - b < MIN_KEEP * h) return [0, 0];
    return [t, b];
  }

  /** `_trim_work`: border sizes (top, bottom, left, right) in working-copy pixels. */
  function trimWork(g) {
    var tb = axisBorders(g, true), top = tb[0], bottom = tb[1];
    var R = g.rows - top - bottom, C = g.cols, tr = new Float32Array(R * C);
    for (var i = 0; i < R; i++) for (var j = 0; j < C; j++) tr[j * R + i] = g.a[(top + i) * C + j];
    var lr = axisBorders({ a: tr, rows: C, cols: R, seq: true }, !(top || bottom));
    return [top, bottom, lr[0], lr[1]];
  }

  function toImageBox(bw, hh, ww, scale, w, h) {
    var top = bw[0], bottom = bw[1], left = bw[2], right = bw[3];
    function inward(v, edge) { return v === 0 ? 0 : Math.min(edge, v + 1); }
    var x0 = left ? Math.ceil(inward(left, ww) / scale) : 0;
    var y0 = top ? Math.ceil(inward(top, hh) / scale) : 0;
    var x1 = right ? Math.floor((ww - inward(right, ww)) / scale) : w;
    var y1 = bottom ? Math.floor((hh - inward(bottom, hh)) / scale) : h;
    return [Math.max(0, x0), Math.max(0, y0), Math.min(w, x1), Math.min(h, y1)];
  }

  /** `_refine`: each trimmed edge moves to the strongest row / column step near it. */
  function refine(L, w, h, box, scale) {
    var r = Math.ceil(2.0 / scale) + 2, x0 = box[0], y0 = box[1], x1 = box[2], y1 = box[3];
    var buf = new Float32Array(Math.max(w, h));

    function best(stepAt, lo, hi, dflt) {
      lo = Math.max(1, lo);
      if (hi <= lo) return dflt;
      var bi = lo, bv = -Infinity;
      for (var i = lo; i < hi; i++) {
        var v = stepAt(i);
        if (v > bv) { bv = v; bi = i; }
      }
      return bi;
    }
    function rowStep(i) {
      var n = x1 - x0;
      for (var x = 0; x < n; x++) buf[x] = Math.abs(L[i * w + x0 + x] - L[(i - 1) * w + x0 + x]);
      return f(pairwise(buf, 0, n, 1) / n);
    }
    function colStep(i) {
      var n = y1 - y0;
      for (var y = 0; y < n; y++) buf[y] = Math.abs(L[(y0 + y) * w + i] - L[(y0 + y) * w + i - 1]);
      return f(pairwise(buf, 0, n, 1) / n);
    }
    if (y0 > 0) y0 = best(rowStep, y0 - r, Math.min(h, y0 + r), y0);
    if (y1 < h) y1 = best(rowStep, y1 - r, Math.min(h, y1 + r), y1);
    if (x0 > 0) x0 = best(colStep, x0 - r, Math.min(w, x0 + r), x0);
    if (x1 < w) x1 = best(colStep, x1 - r, Math.min(w, x1 + r), x1);
    return [x0, y0, x1, y1];
  }

  /** `trim_box`: [left, top, right, bottom] without letterbox / pillarbox borders, or null. */
  function trimBoxOf(img, L) {
    var w = img.width, h = img.height;
    if (!L) L = greyL(img);
    var gr = grey(L, w, h);
    var borders = trimWork({ a: gr.g, rows: gr.rows, cols: gr.cols, seq: false });
    if (!(borders[0] || borders[1] || borders[2] || borders[3])) return null;
    var box = refine(L, w, h, toImageBox(borders, gr.rows, gr.cols, gr.scale, w, h), gr.scale);
    if (box[2] - box[0] < MIN_KEEP * w || box[3] - box[1] < MIN_KEEP * h) return null;
    return box;
  }

  // ---------------------------------------------------------------- sub-crops
  /** `subcrop_boxes`: [[kind, [x0, y0, x1, y1]], ...] in the server's order. */
  function subcropBoxes(width, height, windows) {
    var out = [];
    (windows || SUBCROPS).forEach(function (win) {
      var fraction = win[0];
      var cw = Math.max(1, pyRound(width * fraction)), ch = Math.max(1, pyRound(height * fraction));
      win[1].forEach(function (an) {
        var x0 = pyRound((width - cw) * an[0]), y0 = pyRound((height - ch) * an[1]);
        out.push(["crop" + pyRound(fraction * 100) + "@" + an[0] + "," + an[1], [x0, y0, x0 + cw, y0 + ch]]);
      });
    });
    return out;
  }

  // ---------------------------------------------------------------- small rotations
  function rotationConstants(deg) {
    var t = ROT_TABLE[String(deg)];
    if (t) return t;
    var angle = ((deg % 360) + 360) % 360, a = -(angle * (Math.PI / 180)), r = Math.abs(deg) * (Math.PI / 180);
    var r15 = function (v) { return parseFloat(v.toFixed(15)); };
    return [r15(Math.cos(a)), r15(Math.sin(a)), r15(-Math.sin(a)), Math.cos(r), Math.sin(r)];
  }

  /** `inscribed_scale`. */
  function inscribedScale(width, height, deg) {
    var t = rotationConstants(deg), c = t[3], s = t[4];
    return Math.min(width / (width * c + height * s), height / (width * s + height * c));
  }

  function kind(deg) { return "rot" + (deg < 0 ? "-" : "+") + Math.abs(deg); }  // f"rot{deg:+g}"

  /**
   * `rotated_variant`, straight to PDQ luminance: Pillow's rotate(deg, BICUBIC, expand=False)
   * (Geometry.c: affine_transform, bicubic_filter32RGB) evaluated only on the kept rectangle.
   */
  function rotatedLuma(img, deg) {
    var w = img.width, h = img.height, d = img.data, stride4 = img.stride * 4, ox = img.ox, oy = img.oy;
    var t = rotationConstants(deg);
    var cx = w / 2, cy = h / 2;
    var a0 = t[0], a1 = t[1], a3 = t[2], a4 = t[0];
    var a2 = a0 * -cx + a1 * -cy + 0.0, a5 = a3 * -cx + a4 * -cy + 0.0;
    a2 += cx;
    a5 += cy;
    var k = inscribedScale(w, h, deg);
    var cw = Math.max(1, pyRound(w * k)), ch = Math.max(1, pyRound(h * k));
    var x0 = Math.floor((w - cw) / 2), y0 = Math.floor((h - ch) / 2);
    var out = new Float32Array(cw * ch), o = 0;
    for (var y = 0; y < ch; y++) {
      var yin = y0 + y + 0.5, by = a1 * yin, ey = a4 * yin;
      for (var x = 0; x < cw; x++, o++) {
        var xin = x0 + x + 0.5;
        var xx = a0 * xin + by + a2, yy = a3 * xin + ey + a5;  // (a0*x + a1*y) + a2, as affine_transform
        if (xx < 0.0 || xx >= w || yy < 0.0 || yy >= h) { out[o] = 0; continue; }  // fill: black
        var xi = xx - 0.5, yi = yy - 0.5;
        var ix = Math.floor(xi) | 0, iy = Math.floor(yi) | 0;
        var dx = xi - ix, dy = yi - iy;
        // the 4x4 neighbourhood, clamped at the edges (what Pillow's XCLIP / row checks amount to)
        var c0, c1, c2, c3, r0, r1, r2, r3;
        if (ix >= 1 && ix + 2 < w && iy >= 1 && iy + 2 < h) {
          c1 = (ox + ix) * 4; c0 = c1 - 4; c2 = c1 + 4; c3 = c1 + 8;
          r1 = (oy + iy) * stride4; r0 = r1 - stride4; r2 = r1 + stride4; r3 = r2 + stride4;
        } else {
          c0 = (ox + clamp(ix - 1, w)) * 4; c1 = (ox + clamp(ix, w)) * 4;
          c2 = (ox + clamp(ix + 1, w)) * 4; c3 = (ox + clamp(ix + 2, w)) * 4;
          r0 = (oy + clamp(iy - 1, h)) * stride4; r1 = (oy + clamp(iy, h)) * stride4;
          r2 = (oy + clamp(iy + 1, h)) * stride4; r3 = (oy + clamp(iy + 2, h)) * stride4;
        }
        // Pillow's BICUBIC macro per channel: along x on four rows (integer samples, so the
        // polynomial's coefficients are exact), then along y in double; clipped, truncated
        var lum = 0, p, q1, q2, q3, q4, v1, v2, v3, v4, v;
        for (var b = 0; b < 3; b++) {
          p = r0 + b; q1 = d[p + c0]; q2 = d[p + c1]; q3 = d[p + c2]; q4 = d[p + c3];
          v1 = q2 + dx * ((q3 - q1) + dx * ((2 * (q1 - q2) + q3 - q4) + dx * (q2 - q1 - q3 + q4)));
          p = r1 + b; q1 = d[p + c0]; q2 = d[p + c1]; q3 = d[p + c2]; q4 = d[p + c3];
          v2 = q2 + dx * ((q3 - q1) + dx * ((2 * (q1 - q2) + q3 - q4) + dx * (q2 - q1 - q3 + q4)));
          p = r2 + b; q1 = d[p + c0]; q2 = d[p + c1]; q3 = d[p + c2]; q4 = d[p + c3];
          v3 = q2 + dx * ((q3 - q1) + dx * ((2 * (q1 - q2) + q3 - q4) + dx * (q2 - q1 - q3 + q4)));
          p = r3 + b; q1 = d[p + c0]; q2 = d[p + c1]; q3 = d[p + c2]; q4 = d[p + c3];
          v4 = q2 + dx * ((q3 - q1) + dx * ((2 * (q1 - q2) + q3 - q4) + dx * (q2 - q1 - q3 + q4)));
          v = v2 + dy * ((-v1 + v3) + dy * ((2 * (v1 - v2) + v3 - v4) + dy * (-v1 + v2 - v3 + v4)));
          v = v <= 0.0 ? 0 : v >= 255.0 ? 255 : Math.floor(v);
          // pdq.js's luminance, R*0.299 + G*0.587 + B*0.114, added in the same order
          if (b === 0) lum = v * 0.299; else if (b === 1) lum += v * 0.587; else lum += v * 0.114;
        }
        out[o] = lum;
      }
    }
    return { luma: out, width: cw, height: ch };
  }

  function clamp(i, n) { return i < 0 ? 0 : i < n ? i : n - 1; }

  /** `stored_base`: RGB(A) copy with long side <= maxSide by Pillow's BOX resize, per channel. */
  function storedBase(img, maxSide) {
    var w = img.width, h = img.height, side = Math.max(w, h);
    if (side <= maxSide) return img;
    var k = maxSide / side, nw = Math.max(1, pyRound(w * k)), nh = Math.max(1, pyRound(h * k));
    var out = new Uint8ClampedArray(nw * nh * 4), ch = new Uint8Array(w * h), d = img.data;
    for (var c = 0; c < 3; c++) {
      for (var y = 0; y < h; y++) {
        var o = ((img.oy + y) * img.stride + img.ox) * 4 + c, p = y * w;
        for (var x = 0; x < w; x++, o += 4) ch[p + x] = d[o];
      }
      var r = resizeBoxL(ch, w, h, nw, nh);
      for (var i = 0; i < nw * nh; i++) out[i * 4 + c] = r[i];
    }
    for (var j = 0; j < nw * nh; j++) out[j * 4 + 3] = 255;
    return view(out, nw, nh);
  }

  // ---------------------------------------------------------------- the variants
  /**
   * The steps computing `stored_extra_hashes` of an RGBA picture (alpha ignored: composite first),
   * each returning {kind, hash, quality}; `trim` is run first and decides the base picture.
   */
  function plan(rgba, width, height, opts) {
    opts = opts || {};
    var windows = opts.windows || SUBCROPS, rotations = opts.rotations || ROTATIONS;
    var state = { base: storedBase(view(rgba, width, height), opts.maxSide || STORED_MAX_SIDE), luma: null };
    var steps = [];
    steps.push(function () {
      var box = trimBoxOf(state.base);
      if (!box) return null;
      state.base = sub(state.base, box);
      var r = PDQ.fromLuma(pdqLuma(state.base), state.base.height, state.base.width);
      return { kind: "trimmed", hash: r.hash, quality: r.quality };
    });
    var nCrops = windows.reduce(function (n, win) { return n + win[1].length; }, 0);
    for (var i = 0; i < nCrops; i++) {
      steps.push((function (i) {  // one step per window, on the (trimmed) picture's luminance
        return function () {
          var b = state.base;
          if (!state.luma) state.luma = pdqLuma(b);
          var kb = subcropBoxes(b.width, b.height, windows)[i], box = kb[1];
          var r = PDQ.fromLuma(lumaWindow(state.luma, b.width, box), box[3] - box[1], box[2] - box[0]);
          if (i === nCrops - 1) state.luma = null;
          return { kind: kb[0], hash: r.hash, quality: r.quality };
        };
      })(i));
    }
    rotations.forEach(function (deg) {
      steps.push(function () {
        var rl = rotatedLuma(state.base, deg);
        var r = PDQ.fromLuma(rl.luma, rl.height, rl.width);
        return { kind: kind(deg), hash: r.hash, quality: r.quality };
      });
    });
    return steps;
  }

  function collect(out, res) {
    if (res != null) out.push(res);
  }

  /**
   * All the variants at once: [{kind, hash, quality}, ...] in the server's order. `opts`:
   * {windows: [[fraction, [[x, y], ...]], ...], rotations: [degrees, ...]}, the server's defaults
   * when left out.
   */
  function storedVariants(rgba, width, height, opts) {
    var out = [];
    plan(rgba, width, height, opts).forEach(function (step) { collect(out, step()); });
    return out;
  }

  /** The same, giving the page a turn between steps (a Promise of the list). */
  function storedVariantsAsync(rgba, width, height, opts) {
    var steps = plan(rgba, width, height, opts), out = [];
    return steps.reduce(function (p, step) {
      return p.then(function () {
        return new Promise(function (resolve) { setTimeout(resolve, 0); });
      }).then(function () { collect(out, step()); });
    }, Promise.resolve()).then(function () { return out; });
  }

  /** trim_box of RGBA pixels ([left, top, right, bottom] or null), for tests. */
  function trimBox(rgba, width, height) { return trimBoxOf(view(rgba, width, height)); }

  var api = {
    storedVariants: storedVariants, storedVariantsAsync: storedVariantsAsync, trimBox: trimBox,
    subcropBoxes: subcropBoxes, inscribedScale: inscribedScale, WINDOWS: SUBCROPS, ROTATIONS: ROTATIONS,
    rotatedLuma: function (rgba, width, height, deg) { return rotatedLuma(view(rgba, width, height), deg); },
    _pyRound: pyRound
  };
  if (typeof module !== "undefined" && module.exports) module.exports = api;
  root.ConsentryCanonical = api;
})(typeof self !== "undefined" ? self : this);
