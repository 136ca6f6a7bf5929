/* The case page: status and withdrawal with case number + PIN (the PIN goes in the body). */
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };

  function normalise(text) {
    var s = text.toUpperCase().replace(/[\s-]/g, "").replace(/O/g, "0").replace(/[IL]/g, "1");
    return s.length === 20 ? s.match(/.{4}/g).join("-") : null;
  }

  function show(st) {
    $("st-status").textContent = st.status === "withdrawn" ? "Withdrawn: partners have been told to delete your hashes"
      : "Active: partners are checking for copies";
    $("st-received").textContent = String(st.received);
    $("st-active").textContent = String(st.active);
    $("st-matched").textContent = String(st.matched);
    $("st-blocked").textContent = String(st.feedback.blocked || 0);
    $("st-pending").textContent = String(st.feedback.pending_review || 0);
    $("st-not-blocked").textContent = String(st.feedback.not_blocked || 0);
    $("case-status").hidden = false;
    $("case-status").dataset.status = st.status;
    $("case-status").focus();
  }

  function call(action) {
    var err = $("case-error");
    err.textContent = "";
    var number = normalise($("case").value);
    if (!number) { err.textContent = "A case number has 20 letters and digits (dashes optional)."; $("case").focus(); return; }
    var pin = $("case-pin").value;
    if (!pin) { err.textContent = "Please enter your PIN."; $("case-pin").focus(); return; }
    fetch("/v1/victim/cases/" + encodeURIComponent(number) + "/" + action, {
      method: "POST", credentials: "omit", referrerPolicy: "no-referrer", cache: "no-store",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify({ pin: pin })
    }).then(function (r) {
      return r.json().then(function (body) { return { ok: r.ok, status: r.status, body: body }; });
    }).then(function (res) {
      if (!res.ok) throw new Error(res.body && res.body.detail || "the service refused the request");
      show(res.body);
    }).catch(function (e) { err.textContent = e.message; });
  }

  document.addEventListener("DOMContentLoaded", function () {
    $("case-form").addEventListener("submit", function (ev) { ev.preventDefault(); call("status"); });
    $("withdraw").addEventListener("click", function () {
      if (!$("confirm-withdraw").checked) {
        $("case-error").textContent = "Tick the box to confirm you want to withdraw.";
        $("confirm-withdraw").focus();
        return;
      }
      call("withdraw");
    });
  });
})();
