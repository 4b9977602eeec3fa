// Refreshes part of a staff page in place: every N seconds while its checkbox is ticked,
// the page is fetched again and the element with the same id is swapped in. Without
// JavaScript the page is simply reloaded by hand.
(function () {
  "use strict";
  function start(toggle) {
    var targetId = toggle.getAttribute("data-refresh-target");
    var seconds = Number(toggle.getAttribute("data-refresh-seconds")) || 5;
    var timer = null;
    function refresh() {
      fetch(window.location.href, { credentials: "same-origin", headers: { "X-Requested-With": "refresh" } })
        .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
        .then(function (html) {
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(targetId);
          var current = document.getElementById(targetId);
          if (fresh && current) { current.replaceWith(fresh); }
          // A finished job (an import that ended) stops the refreshing.
          if (fresh && fresh.hasAttribute("data-refresh-done")) {
            toggle.checked = false;
            schedule();
          }
          document.dispatchEvent(new CustomEvent("signalpost:refreshed", { detail: targetId }));
        })
        .catch(function () { /* try again at the next tick */ });
    }
    function schedule() {
      if (timer) { clearInterval(timer); timer = null; }
      if (toggle.checked) { timer = setInterval(refresh, seconds * 1000); }
    }
    toggle.addEventListener("change", schedule);
    schedule();
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh-target]").forEach(start);
  });
})();
