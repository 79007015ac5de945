// The auditor page: while a verification runs, poll its status (same-origin
// fetch with the session cookie) and show the progress; reload once it ends
// so the result and the history table are the server's.
"use strict";

(function () {
  function poll(box) {
    var url = box.getAttribute("data-status-url");
    var progress = document.getElementById("run-progress");
    var counts = document.getElementById("run-counts");
    var label = document.getElementById("run-status");
    function tick() {
      fetch(url, { credentials: "same-origin", cache: "no-store", headers: { "Accept": "application/json" } })
        .then(function (r) {
          if (r.redirected || !r.ok) { throw new Error("status " + r.status); }
          return r.json();
        })
        .then(function (body) {
          var run = body.run;
          if (!run) { return; }
          progress.value = run.percent;
          progress.textContent = run.percent + "%";
          counts.textContent = run.checked_rows.toLocaleString() + " of " + run.total_rows.toLocaleString() + " events checked";
          label.textContent = run.status.toUpperCase();
          if (run.status === "running") {
            window.setTimeout(tick, 500);
          } else {
            window.location.replace("/auditor#verification");
            window.location.reload();
          }
        })
        .catch(function () {
          label.textContent = "STATUS UNAVAILABLE";
          window.setTimeout(tick, 3000);
        });
    }
    tick();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var box = document.getElementById("verification-status");
    if (box && box.getAttribute("data-running") === "true") { poll(box); }
  });
})();
