/* The case page: status and withdrawal with case number + PIN (the PIN goes in the body). */
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var T = function (key, vars) { return ConsentryI18n.t(key, vars); };

  function normalise(text) {
    var s = text.toUpperCase().replace(/[\s-]/g, "").replace(/O/g, "0").replace(/[IL]/g, "1");
    return s.length === 20 ? s.match(/.{4}/g).join("-") : null;
  }

  function items(st) {
    // pictures and videos, not hashes: an image gives two hashes (older servers: hashes only)
    var parts = [];
    if (st.photos != null) {
      if (st.photos || !st.videos) parts.push(T("js.photos", { count: st.photos }));
      if (st.videos) parts.push(T("js.videos", { count: st.videos }));
    }
    return parts.join(T("js.list_sep"));
  }

  function show(st) {
    var withdrawn = st.status === "withdrawn";
    $("st-status").textContent = T(withdrawn ? "js.status_withdrawn" : "js.status_active");
    $("st-items").textContent = items(st);
    $("st-received").textContent = String(st.received);
    $("st-active").textContent = String(st.active);
    $("st-matched").textContent = String(st.matched);
    $("st-blocked").textContent = String(st.feedback.blocked || 0);
    $("st-pending").textContent = String(st.feedback.pending_review || 0);
    $("st-not-blocked").textContent = String(st.feedback.not_blocked || 0);
    $("st-created").textContent = st.created_on || "";
    // a withdrawn case whose hashes stay active: another case holds the same pictures
    var shared = withdrawn && st.active > 0;
    $("st-shared").hidden = !shared;
    $("st-shared").textContent = shared ? T("js.shared_active", { count: st.active }) : "";
    $("case-status").hidden = false;
    $("case-status").dataset.status = st.status;
    $("withdraw-section").hidden = withdrawn;
    $("case-status").focus();
  }

  function call(action, errBox) {
    $("case-error").textContent = "";
    $("withdraw-error").textContent = "";
    var err = $(errBox);
    var number = normalise($("case").value);
    if (!number) { err.textContent = T("js.err_number"); $("case").focus(); return; }
    var pin = $("case-pin").value;
    if (!pin) { err.textContent = T("js.err_pin"); $("case-pin").focus(); return; }
    fetch("/v1/victim/cases/" + encodeURIComponent(number) + "/" + action, {
      method: "POST", credentials: "omit", referrerPolicy: "no-referrer", cache: "no-store",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify({ pin: pin })
    }).then(function (r) {
      return r.json().then(function (body) { return { ok: r.ok, status: r.status, body: body }; });
    }, function () { throw new Error(T("js.err_network")); }).then(function (res) {
      if (!res.ok) throw new Error(ConsentryI18n.problem(res.body));
      show(res.body);
    }).catch(function (e) { err.textContent = e.message; });
  }

  document.addEventListener("DOMContentLoaded", function () {
    $("case-form").addEventListener("submit", function (ev) { ev.preventDefault(); call("status", "case-error"); });
    $("withdraw").addEventListener("click", function () {
      if (!$("confirm-withdraw").checked) {
        $("withdraw-error").textContent = T("js.err_tick");
        $("confirm-withdraw").focus();
        return;
      }
      call("withdraw", "withdraw-error");
    });
  });
})();
