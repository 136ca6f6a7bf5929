// Consentry review console: logged, time-limited reveals and keyboard shortcuts. No framework.
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute("content") : "";
  var FADE_MS = 4000, HOVER_DWELL_MS = 600;
  var active = null, fadeTimer = null, hoverTimer = null, pending = false;

  // Swap the clear media in (after the server logged the reveal) and out again.
  function showClear(frame) {
    var m = frame.querySelector(".media");
    if (m && m.getAttribute("data-full-src")) { m.src = m.getAttribute("data-full-src"); }
  }
  function showPreview(frame) {
    var m = frame.querySelector(".media");
    if (!m) return;
    if (m.tagName === "VIDEO") { m.pause(); m.removeAttribute("src"); m.load(); }
    else if (m.getAttribute("data-preview-src")) { m.src = m.getAttribute("data-preview-src"); }
  }

  function hide(frame) {
    if (!frame) return;
    showPreview(frame);
    frame.classList.remove("revealed");
    frame.setAttribute("aria-pressed", "false");
    if (active === frame) { active = null; }
  }

  function updateExposure(body) {
    var count = document.getElementById("exposure-count");
    if (count && typeof body.today === "number") { count.textContent = String(body.today); }
    var prompt = document.getElementById("break-prompt");
    if (prompt && body.over_budget) { prompt.hidden = false; }
  }

  // The server logs the reveal first (audit log + exposure counter); only then is the item shown.
  function reveal(frame) {
    if (!frame || pending) return;
    if (active === frame) { schedule(frame); return; }
    if (active) hide(active);
    pending = true;
    fetch(frame.getAttribute("data-reveal-url"), {
      method: "POST", credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf, "Accept": "application/json" }
    }).then(function (r) {
      if (!r.ok) throw new Error("reveal not logged (" + r.status + ")");
      return r.json();
    }).then(function (body) {
      updateExposure(body);
      if (active) hide(active);
      active = frame;
      showClear(frame);
      frame.classList.add("revealed");
      frame.setAttribute("aria-pressed", "true");
      schedule(frame);
    }).catch(function (err) {
      window.console && console.warn(err);
    }).then(function () { pending = false; });
  }

  function schedule(frame) {
    clearTimeout(fadeTimer);
    fadeTimer = setTimeout(function () { hide(frame); }, FADE_MS);
  }

  document.querySelectorAll(".media-frame").forEach(function (frame) {
    frame.setAttribute("aria-pressed", "false");
    frame.addEventListener("pointerdown", function (ev) { ev.preventDefault(); reveal(frame); });
    frame.addEventListener("pointerup", function () { hide(frame); });
    frame.addEventListener("mouseenter", function () {
      clearTimeout(hoverTimer);
      hoverTimer = setTimeout(function () { reveal(frame); }, HOVER_DWELL_MS);
    });
    frame.addEventListener("mouseleave", function () { clearTimeout(hoverTimer); hide(frame); });
    frame.addEventListener("blur", function () { hide(frame); });
  });

  function typing(el) {
    return el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT" || el.isContentEditable);
  }

  function submit(id) {
    var form = document.getElementById(id);
    if (!form) return;
    if (form.requestSubmit) { form.requestSubmit(); } else { form.submit(); }
  }

  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || typing(document.activeElement)) return;
    var key = ev.key.toLowerCase();
    if (key === "r") {
      var focused = document.activeElement;
      var frame = focused && focused.classList && focused.classList.contains("media-frame")
        ? focused : document.querySelector(".media-frame");
      if (frame) { ev.preventDefault(); frame.focus(); reveal(frame); }
    } else if (key === "c") { ev.preventDefault(); submit("confirm-form"); }
    else if (key === "d") { ev.preventDefault(); submit("dismiss-form"); }
    else if (key === "e") { ev.preventDefault(); submit("escalate-form"); }
  });
})();
