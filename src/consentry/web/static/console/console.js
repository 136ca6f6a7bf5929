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

  // Bulk decisions: the items ticked in a grouped case go with whichever decision is sent;
  // "stay on this case" (`s`) keeps the reviewer here instead of opening the next case.
  var stay = document.getElementById("stay");
  function selected() {
    return Array.prototype.slice.call(document.querySelectorAll(".item-select:checked"))
      .map(function (b) { return b.value; });
  }
  function prepare(form) {
    if (!form.classList.contains("decision")) return;
    form.querySelectorAll("input.sel-item").forEach(function (n) { n.remove(); });
    selected().forEach(function (v) {
      var i = document.createElement("input");
      i.type = "hidden"; i.name = "items"; i.value = v; i.className = "sel-item";
      form.appendChild(i);
    });
    form.querySelectorAll("input.advance").forEach(function (n) {
      n.value = stay && stay.checked ? "0" : (n.getAttribute("data-default") || "1");
    });
  }
  function updateScope() {
    var scope = document.getElementById("decide-scope");
    var count = document.getElementById("confirm-step-count");
    var n = selected().length, all = document.querySelectorAll(".item-select").length;
    var words = n ? n + " selected item" + (n === 1 ? "" : "s") + " of " + all
                  : "the whole case (" + (all || 1) + " item" + ((all || 1) === 1 ? "" : "s") + ")";
    if (scope) scope.textContent = words;
    if (count) count.textContent = n ? n + " selected item" + (n === 1 ? "" : "s") : (all || 1) + " item" + ((all || 1) === 1 ? "" : "s");
    document.querySelectorAll(".item-select").forEach(function (b) {
      var card = b.closest(".item"); if (card) card.classList.toggle("selected", b.checked);
    });
  }
  document.querySelectorAll(".item-select").forEach(function (b) { b.addEventListener("change", updateScope); });
  document.querySelectorAll("form.decision").forEach(function (f) {
    f.addEventListener("submit", function () { prepare(f); });
  });

  function submit(id) {
    var form = document.getElementById(id);
    if (!form) return;
    prepare(form);
    if (form.requestSubmit) { form.requestSubmit(); } else { form.submit(); }
  }

  // Confirm is two steps: the first (button, Enter in the note or `c`) shows the target bank;
  // the second (Enter, `c` again or the button in the step) adds the hashes.
  var confirmForm = document.getElementById("confirm-form");
  var step = document.getElementById("confirm-step");
  var committing = false;
  function stepOpen() { return step && !step.hidden; }
  function openStep() {
    var sel = document.getElementById("confirm-bank");
    var need = document.getElementById("confirm-need-bank");
    if (!sel || !sel.value) {
      if (need) need.hidden = false;
      if (sel) sel.focus();
      return;
    }
    if (need) need.hidden = true;
    var opt = sel.options[sel.selectedIndex];
    document.getElementById("confirm-step-bank").textContent = sel.value;
    document.getElementById("confirm-commit-bank").textContent = sel.value;
    document.getElementById("confirm-step-shared").textContent =
      opt && opt.getAttribute("data-shared") === "yes" ? "(shared bank: a second reviewer must approve)" : "";
    step.hidden = false;
    document.getElementById("confirm-commit").focus();
  }
  function closeStep() { if (step) { step.hidden = true; } }
  function commit() {
    if (committing || !confirmForm) return;
    committing = true;
    confirmForm.setAttribute("data-confirmed", "1");
    prepare(confirmForm);
    confirmForm.submit();  // not requestSubmit: that would open the step again
  }
  if (confirmForm && step) {
    confirmForm.addEventListener("submit", function (ev) {
      if (confirmForm.getAttribute("data-confirmed") === "1") return;
      ev.preventDefault();
      openStep();
    });
    document.getElementById("confirm-commit").addEventListener("click", commit);
    document.getElementById("confirm-cancel").addEventListener("click", function () {
      closeStep(); document.getElementById("confirm").focus();
    });
    var sel = document.getElementById("confirm-bank");
    if (sel) sel.addEventListener("change", function () {
      var need = document.getElementById("confirm-need-bank");
      if (need && sel.value) need.hidden = true;
      if (stepOpen()) openStep();
    });
  }

  // After a decision the queue offers an undo for a short while (`u` or the button).
  var undoForm = document.getElementById("undo-form");
  if (undoForm) {
    var left = parseInt(undoForm.getAttribute("data-undo-seconds"), 10) || 0;
    var shown = document.getElementById("undo-seconds");
    var tick = setInterval(function () {
      left -= 1;
      if (shown) shown.textContent = String(Math.max(0, left));
      if (left <= 0) { clearInterval(tick); undoForm.hidden = true; undoForm.remove(); }
    }, 1000);
  }

  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    var key = ev.key.toLowerCase();
    if (stepOpen()) {  // the confirm step has the keyboard: Enter/c commit, Esc cancels
      if (key === "enter" || key === "c") { ev.preventDefault(); commit(); }
      else if (key === "escape") { ev.preventDefault(); closeStep(); document.getElementById("confirm").focus(); }
      return;
    }
    if (typing(document.activeElement)) return;
    if (key === "u" && document.getElementById("undo-form")) { ev.preventDefault(); submit("undo-form"); return; }
    var nextLink = document.getElementById("next-case");
    if (nextLink && (key === "n" || (key === "enter" && document.activeElement === document.body))) {
      ev.preventDefault(); window.location.href = nextLink.getAttribute("href"); return;
    }
    if (key === "b" && document.getElementById("break-form")) { ev.preventDefault(); submit("break-form"); return; }
    if (key === "q" && document.getElementById("decide")) {
      ev.preventDefault(); window.location.href = "/console/queue"; return;
    }
    if (key === "s" && stay) { ev.preventDefault(); stay.checked = !stay.checked; return; }
    if ((key === "x" || key === "a") && document.querySelector(".item-select")) {
      ev.preventDefault();
      if (key === "a") {
        var boxes = document.querySelectorAll(".item-select"), all = selected().length === boxes.length;
        boxes.forEach(function (b) { b.checked = !all; });
      } else {
        var card = document.activeElement && document.activeElement.closest && document.activeElement.closest(".item");
        var box = card ? card.querySelector(".item-select") : document.querySelector(".item-select");
        if (box) box.checked = !box.checked;
      }
      updateScope(); return;
    }
    if (key === "r") {
      var focused = document.activeElement;
      var frame = focused && focused.classList && focused.classList.contains("media-frame")
        ? focused : document.querySelector(".media-frame");
      if (frame) { ev.preventDefault(); frame.focus(); reveal(frame); }
    } else if (key === "c") { ev.preventDefault(); if (confirmForm && step) { openStep(); } else { submit("confirm-form"); } }
    else if (key === "d") { ev.preventDefault(); submit("dismiss-form"); }
    else if (key === "e") { ev.preventDefault(); submit("escalate-form"); }
  });
})();
