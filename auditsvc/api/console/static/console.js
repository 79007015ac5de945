// auditsvc console: the few things a server-rendered page cannot do alone.
// Served from /static (script-src 'self'); no inline script anywhere.
"use strict";

(function () {
  // Times: <time datetime="...Z"> shows UTC from the server; show it in the
  // user's zone, with the UTC value on hover (title) and for screen readers.
  function localTimes(root) {
    var times = root.querySelectorAll("time[datetime]");
    var withSeconds = { year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short" };
    var dateOnly = { year: "numeric", month: "short", day: "2-digit" };
    for (var i = 0; i < times.length; i++) {
      var el = times[i];
      var when = new Date(el.getAttribute("datetime"));
      if (isNaN(when.getTime())) { continue; }
      var utc = el.textContent;
      if (el.getAttribute("data-kind") === "date") {
        el.title = utc + " (UTC)";
        continue;
      }
      el.textContent = when.toLocaleString(undefined, withSeconds);
      el.title = utc;
      el.setAttribute("tabindex", "0");
    }
  }

  // Automatic logoff: warn a minute before the server's idle limit, then
  // sign out (the server ends the session on its own too; this makes the
  // screen stop showing PHI at the same moment).
  function idleLogoff() {
    var limit = parseInt(document.body.getAttribute("data-idle-seconds") || "0", 10);
    var form = document.getElementById("signout-form");
    if (!limit || !form) { return; }
    var warning = document.getElementById("idle-warning");
    var countdown = document.getElementById("idle-countdown");
    var stay = document.getElementById("idle-stay");
    // Sign out a little before the server would, so the sign-out is recorded as idle.
    var logoffAt = Math.max(limit - 2, 1) * 1000;
    var warnBefore = Math.min(60, Math.floor(limit / 2)) * 1000;
    var started = Date.now();
    var timer = null;

    function tick() {
      var left = logoffAt - (Date.now() - started);
      if (left <= 0) {
        document.getElementById("signout-reason").value = "idle";
        form.submit();
        return;
      }
      if (left <= warnBefore) {
        warning.hidden = false;
        countdown.textContent = String(Math.ceil(left / 1000));
      }
      timer = window.setTimeout(tick, Math.min(1000, left));
    }
    stay.addEventListener("click", function () {
      // Any request to the server counts as activity.
      fetch("/session/ping", { method: "GET", credentials: "same-origin", cache: "no-store" }).then(function (r) {
        if (r.redirected || !r.ok) { window.location.assign("/signin?ended=idle"); return; }
        started = Date.now();
        warning.hidden = true;
      });
    });
    tick();
  }

  // Forms and buttons that ask before acting (data-confirm="question").
  function confirmations(root) {
    var forms = root.querySelectorAll("form[data-confirm]");
    for (var i = 0; i < forms.length; i++) {
      forms[i].addEventListener("submit", function (event) {
        if (!window.confirm(this.getAttribute("data-confirm"))) { event.preventDefault(); }
      });
    }
  }

  // Filter forms: drop empty fields so addresses stay short.
  function tidyGetForms(root) {
    var forms = root.querySelectorAll("form[method=get]");
    for (var i = 0; i < forms.length; i++) {
      forms[i].addEventListener("submit", function () {
        var inputs = this.querySelectorAll("input, select");
        for (var j = 0; j < inputs.length; j++) {
          var el = inputs[j];
          if (el.name && el.value === "" && el.type !== "checkbox") { el.disabled = true; }
        }
      });
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    confirmations(document);
    tidyGetForms(document);
    idleLogoff();
  });
})();
