/*
 * The victim page: hash chosen images/videos on this device (PDQ + MD5), show thumbnails
 * locally, ask the age question, and send ONLY the hashes (plus the age answer and the PIN).
 * Nothing else leaves the page: no image bytes, thumbnails, file names or metadata.
 */
(function () {
  "use strict";
  var MAX_PIXELS = 100000000;
  var MAX_VIDEO_FRAMES = 7200;
  var WEAK_QUALITY = 50;  // PDQ quality below this: too little detail for a reliable fingerprint
  var CHUNK = 4 * 1024 * 1024;
  var $ = function (id) { return document.getElementById(id); };
  var items = [];   // what is sent: {kind, md5, pdq, pdq_quality, vpdq}
  var pending = 0;
  var maxItems = 100;

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
    if (width * height > MAX_PIXELS) throw new Error("the picture is too large to hash here");
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
        var r = ConsentryPDQ.fromRGBA(pixelsOf(bmp, bmp.width, bmp.height), bmp.width, bmp.height);
        bmp.close();
        return { pdq: r.hash, pdq_quality: r.quality };
      });
  }

  function hashVideo(url) {
    // One PDQ per second of video, from frames drawn onto a local canvas.
    return new Promise(function (resolve, reject) {
      var v = document.createElement("video");
      v.muted = true; v.preload = "auto"; v.src = url;
      var frames = [], t = 0;
      v.onerror = function () { reject(new Error("this browser cannot play the video")); };
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

  function cell(row, content) {
    var td = document.createElement("td");
    if (typeof content === "string") td.textContent = content; else td.appendChild(content);
    row.appendChild(td);
    return td;
  }

  function code(text) { var c = document.createElement("code"); c.textContent = text; return c; }

  function addRow(index, file, kind) {
    var tbody = $("items").querySelector("tbody");
    var tr = document.createElement("tr");
    tr.dataset.index = String(index);
    var url = URL.createObjectURL(file);
    var thumb = document.createElement(kind === "video" ? "video" : "img");
    thumb.src = url;
    if (kind === "video") { thumb.muted = true; thumb.setAttribute("aria-label", "Your video " + (index + 1) + " (stays on this device)"); }
    else thumb.alt = "Your image " + (index + 1) + " (stays on this device)";
    cell(tr, thumb);
    cell(tr, kind);
    cell(tr, "hashing…"); cell(tr, ""); cell(tr, "");
    tbody.appendChild(tr);
    $("items").hidden = false;
    return { tr: tr, url: url };
  }

  function isWeak(x) { return !!(x && x.pdq && x.pdq_quality < WEAK_QUALITY); }

  function weakNote(tr, index) {
    // a calm note in its own full-width row under the picture's row; the picture can still be sent
    var note = document.createElement("tr");
    note.className = "weak-row";
    var td = document.createElement("td");
    td.colSpan = 5;
    var p = document.createElement("p");
    p.className = "weak";
    p.id = "weak-" + index;
    p.textContent = "Picture " + (index + 1) + ": this picture has little detail, so its fingerprint is " +
      "weak and may not find copies. You can still send it.";
    td.appendChild(p);
    note.appendChild(td);
    tr.parentNode.insertBefore(note, tr.nextSibling);
    tr.dataset.weak = "1";
  }

  function progress() {
    var done = items.filter(function (x) { return x && (x.pdq || x.vpdq || x.error); }).length;
    var weak = items.filter(isWeak).length;
    $("hash-progress").textContent = pending ? "Hashing on this device: " + done + " of " + items.length + " done…"
      : items.length ? "Done: " + items.length + " file(s) hashed on this device. Nothing has been sent." +
        (weak ? " " + (weak === 1 ? "1 picture has" : weak + " pictures have") +
          " little detail and a weak fingerprint (see the note in the list). You can still send " +
          (weak === 1 ? "it." : "them.") : "") : "";
    document.body.dataset.hashing = pending ? "busy" : "done";
    updatePreview();
  }

  function sendable() { return items.filter(function (x) { return x && !x.error && x.md5; }); }

  function payload(pinShown) {
    return {
      version: 1,
      items: sendable().map(function (x) {
        var o = { kind: x.kind, md5: x.md5 };
        if (x.pdq) { o.pdq = x.pdq; o.pdq_quality = x.pdq_quality; }
        if (x.vpdq) o.vpdq = x.vpdq;
        return o;
      }),
      depicted_adult: true,
      pin: pinShown
    };
  }

  function age() {
    var el = document.querySelector("input[name=age]:checked");
    return el ? el.value : null;
  }

  function updatePreview() {
    var n = sendable().length;
    $("payload-preview").textContent = n ? JSON.stringify(payload("(the PIN you choose)"), null, 2)
      : "Nothing yet: choose files first.";
    $("send").disabled = !(n && !pending && age() === "adult");
  }

  function onFiles() {
    var files = Array.prototype.slice.call($("files").files || []);
    items = []; pending = 0;
    $("items").querySelector("tbody").textContent = "";
    $("form-error").textContent = "";
    if (files.length > maxItems) {
      $("form-error").textContent = "Please choose at most " + maxItems + " files at a time.";
      files = files.slice(0, maxItems);
    }
    files.forEach(function (file, i) {
      var kind = (file.type || "").indexOf("video/") === 0 ? "video" : "photo";
      var row = addRow(i, file, kind);
      var item = { kind: kind };
      items.push(item);
      pending++;
      var work = Promise.all([fileMd5(file), kind === "video" ? hashVideo(row.url) : hashImage(file)]);
      work.then(function (res) {
        item.md5 = res[0];
        Object.keys(res[1]).forEach(function (k) { item[k] = res[1][k]; });
        var tds = row.tr.children;
        if (item.pdq) {
          tds[2].textContent = ""; tds[2].appendChild(code(item.pdq));
          tds[3].textContent = String(item.pdq_quality);
          if (isWeak(item)) weakNote(row.tr, i);
        } else {
          tds[2].textContent = item.vpdq.length + " frame hashes"; tds[3].textContent = "";
        }
        tds[4].textContent = ""; tds[4].appendChild(code(item.md5));
        row.tr.dataset.md5 = item.md5;
        row.tr.dataset.pdq = item.pdq || "";
        row.tr.dataset.quality = item.pdq_quality == null ? "" : String(item.pdq_quality);
        row.tr.dataset.frames = item.vpdq ? String(item.vpdq.length) : "";
      }).catch(function (err) {
        item.error = String(err && err.message || err);
        row.tr.children[2].textContent = "Could not hash this file: " + item.error;
        row.tr.dataset.error = item.error;
      }).then(function () { pending--; progress(); });
    });
    progress();
  }

  function onAge() {
    var a = age();
    var minor = a === "minor" || a === "unsure";
    $("minor-help").hidden = !minor;
    $("pin-section").hidden = minor;
    if (minor) $("minor-help").focus();
    updatePreview();
  }

  function onSubmit(ev) {
    ev.preventDefault();
    var err = $("form-error");
    err.textContent = "";
    if (age() !== "adult") { err.textContent = "Please answer the age question first."; return; }
    if (pending || !sendable().length) { err.textContent = "Please choose files and wait until they are hashed."; return; }
    var pin = $("pin").value, pin2 = $("pin2").value;
    var min = Number($("pin").getAttribute("minlength")) || 6;
    if (pin.length < min) { err.textContent = "Please choose a PIN of at least " + min + " characters."; $("pin").focus(); return; }
    if (pin !== pin2) { err.textContent = "The two PINs are not the same."; $("pin2").focus(); return; }
    $("send").disabled = true;
    fetch("/v1/victim/cases", {
      method: "POST", credentials: "omit", referrerPolicy: "no-referrer", cache: "no-store",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(payload(pin))
    }).then(function (r) {
      return r.json().then(function (body) { return { ok: r.ok, body: body }; });
    }).then(function (res) {
      if (!res.ok) throw new Error(res.body && res.body.detail || "the service refused the request");
      $("pin").value = ""; $("pin2").value = "";
      $("case-number").textContent = res.body.case_number;
      $("submit-form").hidden = true;
      $("result").hidden = false;
      $("result").focus();
    }).catch(function (e) {
      err.textContent = "Sending failed: " + e.message + ". Your files were not sent; you can try again.";
      $("send").disabled = false;
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    maxItems = Number($("files").dataset.max) || 100;
    $("files").addEventListener("change", onFiles);
    Array.prototype.forEach.call(document.querySelectorAll("input[name=age]"), function (r) {
      r.addEventListener("change", onAge);
    });
    $("submit-form").addEventListener("submit", onSubmit);
    document.body.dataset.hashing = "idle";
  });
})();
