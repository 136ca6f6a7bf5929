/*
 * The public pages' messages: the page embeds the catalog entries its scripts need as JSON
 * (<script type="application/json" id="messages">, rendered from consentry/i18n/messages), so
 * the scripts hold no text of their own. Plurals follow the page language (Intl.PluralRules).
 */
(function () {
  "use strict";
  var el = document.getElementById("messages");
  var msgs = {};
  try { msgs = JSON.parse(el ? el.textContent : "{}"); } catch (e) { msgs = {}; }
  var lang = document.documentElement.lang || "en";
  var rules = (typeof Intl !== "undefined" && Intl.PluralRules) ? new Intl.PluralRules(lang) : null;
  var numbers = (typeof Intl !== "undefined" && Intl.NumberFormat) ? new Intl.NumberFormat(lang) : null;

  function fill(text, vars) {
    return String(text).replace(/\{(\w+)\}/g, function (m, k) {
      if (!vars || !(k in vars)) return m;
      var v = vars[k];
      return typeof v === "number" && numbers ? numbers.format(v) : String(v);
    });
  }

  function t(key, vars) {
    var m = msgs[key];
    if (m == null) return key;
    if (typeof m === "object") {
      var n = vars && typeof vars.count === "number" ? vars.count : null;
      var cat = rules && n !== null ? rules.select(n) : "other";
      m = m[cat] || m.other;
    }
    return fill(m, vars);
  }

  function problem(body, fallback) {
    // an RFC 9457 problem from the service → a message in the page language
    var type = String(body && body.type || "").split("/").pop();
    if (type === "wrong-case-or-pin") return t("js.err_wrong");
    if (type === "rate-limited") return t("js.err_rate");
    return fallback || t("js.err_refused");
  }

  window.ConsentryI18n = { t: t, lang: lang, problem: problem };
})();
