/*
 * The victim page: hash chosen images/videos on this device (PDQ + MD5, and for photos the PDQ of
 * their canonical variants: borders trimmed, crops, small turns; canonical.js), show thumbnails
 * locally (blurred until revealed), ask the age question, and send ONLY the hashes (plus the age
 * answer and the PIN). Nothing else leaves the page: no image bytes, thumbnails, file names or
 * metadata. Every text shown comes from the page's catalog (i18n.js).
 */
(function () {
  "use strict";
  var MAX_PIXELS = 100000000;
  var MAX_VIDEO_FRAMES = 7200;
  var WEAK_QUALITY = 50;  // PDQ quality below this: too little detail for a reliable fingerprint
  var MAX_VARIANT_PIXELS = 40000000;  // larger pictures: their own hashes only (variants take long)
  var CHUNK = 4 * 1024 * 1024;
  var $ = function (id) { return document.getElementById(id); };
  var items = [];   // what is sent: {kind, md5, pdq, pdq_quality, pdq_variants, vpdq}
  var pending = 0;
  var maxItems = 100;
  var canonicalConfig = null;  // the server's sub-crop windows and turns (data-canonical)

  function fileMd5(file) {
    var md5 = new ConsentryMD5.MD5(), off = 0;
    function next() {
      if (off >= file.size) return Promise.resolve(md5.hex());
      var part = file.slice(off, off + CHUNK);
      off += CHUNK;
      return part.arrayBuffer().then(function (buf) { md5.update(new Uint8Array(buf)); return next(); });
    }
    return next();
  }

  function pixelsOf(source, width, height) {
    if (width * height > MAX_PIXELS) throw new Error("js.err_too_large");
    var canvas = document.createElement("canvas");
    canvas.width = width; canvas.height = height;
    var ctx = canvas.getContext("2d", { willReadFrequently: true });
    ctx.fillStyle = "#ffffff";  // transparent areas count as white, as in `consentry hash`
    ctx.fillRect(0, 0, width, height);
    ctx.drawImage(source, 0, 0, width, height);
    return ctx.getImageData(0, 0, width, height).data;
  }

  function hashImage(file) {
    // EXIF orientation applied like Pillow's exif_transpose; no colour conversion (like Pillow).
    return createImageBitmap(file, { imageOrientation: "from-image", colorSpaceConversion: "none",
                                     premultiplyAlpha: "none" })
      .then(function (bmp) {
        var w = bmp.width, h = bmp.height, px = pixelsOf(bmp, w, h);
        bmp.close();
        var r = ConsentryPDQ.fromRGBA(px, w, h);
        var out = { pdq: r.hash, pdq_quality: r.quality };
        return variantsOf(px, w, h, r).then(function (vs) {
          if (vs.length) out.pdq_variants = vs;
          return out;
        });
      });
  }

  // The PDQ of the picture's canonical variants (canonical.js: without borders, centre and corner
  // crops, small turns), the same the server stores for a bank photo, so cropped, bordered or
  // slightly turned copies are found too. Only for a usable PDQ, like the server; a variant with
  // too little detail is left out (the server would drop it). A failure here leaves the picture's
  // own hashes as they are.
  function variantsOf(px, w, h, r) {
    if (r.quality < WEAK_QUALITY || w * h > MAX_VARIANT_PIXELS || typeof ConsentryCanonical === "undefined") {
      return Promise.resolve([]);
    }
    return ConsentryCanonical.storedVariantsAsync(px, w, h, canonicalConfig).then(function (vs) {
      return vs.filter(function (v) { return v.quality >= WEAK_QUALITY && v.hash !== r.hash; })
        .map(function (v) { return { kind: v.kind, pdq: v.hash, quality: v.quality }; });
    }, function () { return []; });
  }

  function hashVideo(url) {
    // One PDQ per second of video, from frames drawn onto a local canvas.
    return new Promise(function (resolve, reject) {
      var v = document.createElement("video");
      v.muted = true; v.preload = "auto"; v.src = url;
      var frames = [], t = 0;
      v.onerror = function () { reject(new Error("js.err_video")); };
      v.onloadeddata = function () {
        var dur = isFinite(v.duration) ? v.duration : 0;
        function step() {
          if (t > dur || frames.length >= MAX_VIDEO_FRAMES) { resolve({ vpdq: frames }); return; }
          v.currentTime = Math.min(t, Math.max(0, dur - 0.001));
        }
        v.onseeked = function () {
          try {
            var r = ConsentryPDQ.fromRGBA(pixelsOf(v, v.videoWidth, v.videoHeight), v.videoWidth, v.videoHeight);
            frames.push(r.hash + "," + r.quality + "," + Math.round(t * 1000) / 1000);
          } catch (e) { reject(e); return; }
          t += 1;
          step();
        };
        step();
      };
    });
  }

  var T = function (key, vars) { return ConsentryI18n.t(key, vars); };

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  function bytesAt(file, start, end) {
    return file.slice(Math.max(0, start), end).arrayBuffer().then(function (b) { return new Uint8Array(b); });
  }

  function startsWith(b, sig, at) {
    for (var i = 0; i < sig.length; i++) if (b[(at || 0) + i] !== sig[i]) return false;
    return true;
  }

  function hasPair(b, x, y) {
    for (var i = b.length - 2; i >= 0; i--) if (b[i] === x && b[i + 1] === y) return true;
    return false;
  }

  function ascii(b, from, to) { return String.fromCharCode.apply(null, Array.prototype.slice.call(b, from, to)); }

  // What the file really is (by its first bytes, not its name or the browser's guess), and
  // whether an image file is complete: a JPEG ends with its end marker (FF D9; in the coded data
  // FF is always followed by 00 or a restart marker, so a cut-off file lacks it), a PNG with IEND.
  function inspect(file) {
    var tail = Math.min(file.size, 4096);
    return Promise.all([bytesAt(file, 0, 32), bytesAt(file, file.size - tail, file.size)]).then(function (r) {
      var head = r[0], end = r[1], type = file.type || "";
      if (startsWith(head, [0xff, 0xd8, 0xff])) return { kind: "photo", complete: hasPair(end, 0xff, 0xd9) };
      if (startsWith(head, [0x89, 0x50, 0x4e, 0x47])) return { kind: "photo", complete: ascii(end, Math.max(0, end.length - 64)).indexOf("IEND") >= 0 };
      if (ascii(head, 0, 4) === "GIF8" || ascii(head, 0, 2) === "BM") return { kind: "photo", complete: true };
      if (ascii(head, 0, 4) === "RIFF" && ascii(head, 8, 12) === "WEBP") {
        var size = head[4] | (head[5] << 8) | (head[6] << 16) | (head[7] << 24);
        return { kind: "photo", complete: size + 8 <= file.size };
      }
      if (ascii(head, 4, 8) === "ftyp") {  // MP4/MOV/3GP, or AVIF/HEIC pictures
        var brand = ascii(head, 8, 12);
        return { kind: /^(avif|avis|heic|heix|mif1|msf1)$/.test(brand) ? "photo" : "video", complete: true };
      }
      if (startsWith(head, [0x1a, 0x45, 0xdf, 0xa3])) return { kind: "video", complete: true };  // WebM/Matroska
      if (type.indexOf("video/") === 0) return { kind: "video", complete: true };
      return { kind: null, complete: false };
    });
  }

  function addRow(index) {
    var li = el("li", "item");
    li.dataset.index = String(index);
    var fig = el("div", "thumb");
    var body = el("div", "item-body");
    var title = el("p", "item-title", T("js.item_file", { n: index + 1 }));
    var status = el("p", "item-status", T("js.working"));
    body.appendChild(title); body.appendChild(status);
    li.appendChild(fig); li.appendChild(body);
    $("items").appendChild(li);
    $("items-box").hidden = false;
    return { li: li, fig: fig, body: body, title: title, status: status };
  }

  function showThumb(row, file, kind, index) {
    var url = URL.createObjectURL(file);
    var thumb = document.createElement(kind === "video" ? "video" : "img");
    thumb.src = url;
    if (kind === "video") { thumb.muted = true; thumb.setAttribute("aria-label", T("js.thumb_video", { n: index + 1 })); }
    else thumb.alt = T("js.thumb_alt", { n: index + 1 });
    row.fig.appendChild(thumb);
    row.title.textContent = T(kind === "video" ? "js.item_video" : "js.item_photo", { n: index + 1 });
    return url;
  }

  function note(row, cls, id, text) {
    var p = el("p", cls, text);
    p.id = id;
    row.body.appendChild(p);
  }

  function detail(row, item) {
    var d = el("details", "hashes");
    d.appendChild(el("summary", null, T("js.hashes")));
    var pre = el("pre");
    pre.dir = "ltr";
    pre.textContent = (item.pdq ? "PDQ " + item.pdq + "\n" + T("js.quality", { q: item.pdq_quality }) + "\n" : "") +
      (item.pdq_variants ? "PDQ (" + item.pdq_variants.map(function (v) { return v.kind; }).join(" ") + ") × " +
        item.pdq_variants.length + "\n" : "") +
      (item.vpdq ? "vPDQ × " + item.vpdq.length + "\n" : "") + "MD5 " + item.md5;
    d.appendChild(pre);
    row.body.appendChild(d);
  }

  function isWeak(x) { return !!(x && x.pdq && x.pdq_quality > 0 && x.pdq_quality < WEAK_QUALITY); }
  function isPlain(x) { return !!(x && x.pdq && x.pdq_quality === 0); }

  function ok(x) { return x && !x.error && x.md5; }

  function progress() {
    var ready = items.filter(ok).length;
    var errors = items.filter(function (x) { return x && x.error; }).length;
    var plain = items.filter(isPlain).length;
    var parts = [];
    if (pending) parts.push(T("js.progress_busy", { done: items.length - pending, total: items.length }));
    else if (items.length) {
      parts.push(ready ? T("js.progress_done", { count: ready }) : T("js.progress_none"));
      if (errors) parts.push(T("js.progress_errors", { count: errors }));
      if (plain) parts.push(T("js.progress_plain", { count: plain }));
    }
    $("hash-progress").textContent = parts.join(" ");
    document.body.dataset.hashing = pending ? "busy" : "done";
    updatePreview();
  }

  function sendable() { return items.filter(ok); }

  function payload(pinShown) {
    return {
      version: 1,
      items: sendable().map(function (x) {
        var o = { kind: x.kind, md5: x.md5 };
        // a plain picture's PDQ says nothing about it (and would match every plain picture):
        // only its exact-file hash is sent
        if (x.pdq && !isPlain(x)) {
          o.pdq = x.pdq; o.pdq_quality = x.pdq_quality;
          if (x.pdq_variants && x.pdq_variants.length) o.pdq_variants = x.pdq_variants;
        }
        if (x.vpdq) o.vpdq = x.vpdq;
        return o;
      }),
      depicted_adult: true,
      pin: pinShown
    };
  }

  function age() {
    var e = document.querySelector("input[name=age]:checked");
    return e ? e.value : null;
  }

  function setStep(name) {
    Array.prototype.forEach.call(document.querySelectorAll("#steps li"), function (li) {
      if (li.dataset.step === name) li.setAttribute("aria-current", "step"); else li.removeAttribute("aria-current");
    });
  }

  function updatePreview() {
    var n = sendable().length, a = age();
    $("payload-preview").textContent = n ? JSON.stringify(payload(T("js.pin_placeholder")), null, 2) : T("js.preview_empty");
    var why = !n && !pending ? "js.why_files" : pending ? "js.why_wait" : a === "minor" || a === "unsure" ? "js.why_minor"
      : a !== "adult" ? "js.why_age" : "js.why_ready";
    $("send-why").textContent = T(why);
    $("send").disabled = why !== "js.why_ready";
    setStep(!n || pending ? "choose" : a !== "adult" ? "check" : "send");
  }

  function reason(err) {
    var m = String(err && err.message || err);
    return T(/^js\./.test(m) ? m : "js.err_decode");
  }

  function hashOne(file, i, row, item) {
    return inspect(file).then(function (info) {
      if (!info.kind) throw new Error("js.err_not_media");
      if (!info.complete) throw new Error("js.err_damaged");
      item.kind = info.kind;
      var url = showThumb(row, file, info.kind, i);
      return Promise.all([fileMd5(file), info.kind === "video" ? hashVideo(url) : hashImage(file)]);
    }).then(function (res) {
      item.md5 = res[0];
      Object.keys(res[1]).forEach(function (k) { item[k] = res[1][k]; });
      row.status.textContent = item.vpdq ? T("js.frames", { count: item.vpdq.length }) : T("js.ready");
      if (isPlain(item)) note(row, "plain", "plain-" + i, T("js.plain"));
      else if (isWeak(item)) note(row, "weak", "weak-" + i, T("js.weak"));
      detail(row, item);
      row.li.dataset.kind = item.kind;
      row.li.dataset.md5 = item.md5;
      row.li.dataset.pdq = item.pdq || "";
      row.li.dataset.quality = item.pdq_quality == null ? "" : String(item.pdq_quality);
      row.li.dataset.variants = item.pdq_variants ? String(item.pdq_variants.length) : "";
      row.li.dataset.frames = item.vpdq ? String(item.vpdq.length) : "";
      if (isWeak(item)) row.li.dataset.weak = "1";
      if (isPlain(item)) row.li.dataset.plain = "1";
    }).catch(function (err) {
      item.error = reason(err);
      delete item.md5;
      row.li.classList.add("failed");
      row.status.textContent = T("js.left_out", { reason: item.error });
      row.li.dataset.error = item.error;
    });
  }

  function onFiles() {
    var files = Array.prototype.slice.call($("files").files || []);
    var chosen = $("files-chosen");
    if (!chosen.dataset.none) chosen.dataset.none = chosen.textContent;  // "no files chosen yet", as rendered
    chosen.textContent = files.length ? T("js.files_chosen", { count: files.length }) : chosen.dataset.none;
    items = []; pending = 0;
    $("items").textContent = "";
    $("form-error").textContent = "";
    $("items-box").hidden = true;
    if (files.length > maxItems) {
      $("form-error").textContent = T("js.too_many", { max: maxItems });
      files = files.slice(0, maxItems);
    }
    files.forEach(function (file, i) {
      var row = addRow(i);
      var item = {};
      items.push(item);
      pending++;
      hashOne(file, i, row, item).then(function () { pending--; progress(); });
    });
    progress();
  }

  function onReveal() {
    var shown = $("reveal").getAttribute("aria-pressed") !== "true";
    $("reveal").setAttribute("aria-pressed", shown ? "true" : "false");
    $("reveal").textContent = T(shown ? "js.hide" : "js.reveal");
    $("items").classList.toggle("revealed", shown);
  }

  function onAge() {
    var a = age();
    var minor = a === "minor" || a === "unsure";
    $("form-error").textContent = "";  // an earlier PIN or send error no longer applies
    $("minor-help").hidden = !minor;
    $("pin-section").hidden = minor;
    if (minor) $("minor-help").focus();
    updatePreview();
  }

  function onSubmit(ev) {
    ev.preventDefault();
    var err = $("form-error");
    err.textContent = "";
    if (age() !== "adult") { err.textContent = T("js.err_age"); return; }
    if (pending || !sendable().length) { err.textContent = T("js.err_files"); return; }
    var pin = $("pin").value, pin2 = $("pin2").value;
    var min = Number($("pin").getAttribute("minlength")) || 6;
    if (pin.length < min) { err.textContent = T("js.err_pin_short", { min: min }); $("pin").focus(); return; }
    if (pin !== pin2) { err.textContent = T("js.err_pin_mismatch"); $("pin2").focus(); return; }
    $("send").disabled = true;
    fetch("/v1/victim/cases", {
      method: "POST", credentials: "omit", referrerPolicy: "no-referrer", cache: "no-store",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(payload(pin))
    }).then(function (r) {
      return r.json().then(function (body) { return { ok: r.ok, body: body }; });
    }, function () { throw new Error(T("js.err_network")); }).then(function (res) {
      if (!res.ok) throw new Error(ConsentryI18n.problem(res.body));
      $("pin").value = ""; $("pin2").value = "";
      $("case-number").textContent = res.body.case_number;
      $("submit-form").hidden = true;
      $("result").hidden = false;
      setStep("keep");
      $("result").focus();
    }).catch(function (e) {
      err.textContent = T("js.err_send", { reason: e.message });
      updatePreview();
    });
  }

  function copyNumber() {
    var text = $("case-number").textContent.trim();
    function fallback() {
      var range = document.createRange();
      range.selectNodeContents($("case-number"));
      var sel = window.getSelection();
      sel.removeAllRanges(); sel.addRange(range);
      var done = false;
      try { done = document.execCommand("copy"); } catch (e) { done = false; }
      $("copy-status").textContent = T(done ? "js.copied" : "js.copy_failed");
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { $("copy-status").textContent = T("js.copied"); }, fallback);
    } else fallback();
  }

  document.addEventListener("DOMContentLoaded", function () {
    maxItems = Number($("files").dataset.max) || 100;
    try { canonicalConfig = JSON.parse($("files").dataset.canonical || "null"); } catch (e) { canonicalConfig = null; }
    $("files").addEventListener("change", onFiles);
    $("reveal").addEventListener("click", onReveal);
    $("copy-number").addEventListener("click", copyNumber);
    $("print-number").addEventListener("click", function () { window.print(); });
    ["pin", "pin2"].forEach(function (id) { $(id).addEventListener("input", function () { $("form-error").textContent = ""; }); });
    Array.prototype.forEach.call(document.querySelectorAll("input[name=age]"), function (r) {
      r.addEventListener("change", onAge);
    });
    $("submit-form").addEventListener("submit", onSubmit);
    document.body.dataset.hashing = "idle";
    updatePreview();
  });
})();
