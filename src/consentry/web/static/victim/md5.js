/*
 * MD5 (RFC 1321) of bytes, incremental, in plain JavaScript: used on the file bytes so the
 * browser sends the same MD5 as `consentry hash`. No network, no dependencies.
 */
(function (root) {
  "use strict";
  var S = [7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
           5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20,
           4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
           6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21];
  var K = new Int32Array(64);
  for (var i = 0; i < 64; i++) K[i] = Math.floor(Math.abs(Math.sin(i + 1)) * 4294967296) | 0;

  function MD5() {
    this.h = new Int32Array([0x67452301, 0xefcdab89 | 0, 0x98badcfe | 0, 0x10325476]);
    this.buf = new Uint8Array(64);
    this.bufLen = 0;
    this.total = 0; // bytes
    this.M = new Int32Array(16);
  }

  MD5.prototype._block = function (bytes, off) {
    var M = this.M, h = this.h, j;
    for (j = 0; j < 16; j++) {
      var o = off + j * 4;
      M[j] = bytes[o] | (bytes[o + 1] << 8) | (bytes[o + 2] << 16) | (bytes[o + 3] << 24);
    }
    var a = h[0], b = h[1], c = h[2], d = h[3], F, g, t;
    for (j = 0; j < 64; j++) {
      if (j < 16) { F = (b & c) | (~b & d); g = j; }
      else if (j < 32) { F = (d & b) | (~d & c); g = (5 * j + 1) & 15; }
      else if (j < 48) { F = b ^ c ^ d; g = (3 * j + 5) & 15; }
      else { F = c ^ (b | ~d); g = (7 * j) & 15; }
      t = d; d = c; c = b;
      var x = (a + F + K[j] + M[g]) | 0;
      b = (b + ((x << S[j]) | (x >>> (32 - S[j])))) | 0;
      a = t;
    }
    h[0] = (h[0] + a) | 0; h[1] = (h[1] + b) | 0; h[2] = (h[2] + c) | 0; h[3] = (h[3] + d) | 0;
  };

  MD5.prototype.update = function (bytes) {
    var i = 0, n = bytes.length;
    this.total += n;
    if (this.bufLen) {
      while (i < n && this.bufLen < 64) this.buf[this.bufLen++] = bytes[i++];
      if (this.bufLen < 64) return this;
      this._block(this.buf, 0);
      this.bufLen = 0;
    }
    for (; i + 64 <= n; i += 64) this._block(bytes, i);
    while (i < n) this.buf[this.bufLen++] = bytes[i++];
    return this;
  };

  MD5.prototype.hex = function () {
    var bits = this.total * 8;
    var pad = new Uint8Array(((this.bufLen < 56) ? 56 : 120) - this.bufLen + 8);
    pad[0] = 0x80;
    var lo = bits >>> 0, hi = Math.floor(bits / 4294967296) >>> 0, p = pad.length - 8;
    for (var k = 0; k < 4; k++) { pad[p + k] = (lo >>> (8 * k)) & 255; pad[p + 4 + k] = (hi >>> (8 * k)) & 255; }
    var total = this.total;
    this.update(pad);
    this.total = total;
    var out = "";
    for (var w = 0; w < 4; w++) {
      for (var b = 0; b < 4; b++) out += ("0" + ((this.h[w] >>> (8 * b)) & 255).toString(16)).slice(-2);
    }
    return out;
  };

  function md5Hex(bytes) { return new MD5().update(bytes).hex(); }

  var api = { MD5: MD5, md5Hex: md5Hex };
  if (typeof module !== "undefined" && module.exports) module.exports = api;
  root.ConsentryMD5 = api;
})(typeof self !== "undefined" ? self : this);
