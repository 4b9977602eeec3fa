// The segment form's live count: whenever a field changes, the filter as it stands is
// sent to the count view and the number of matching subscribers shown. Without
// JavaScript the count is shown once the segment is saved.
(function () {
  "use strict";
  function start() {
    var live = document.querySelector("[data-count-url]");
    var form = live && live.closest("form");
    var output = document.getElementById("segment-count");
    if (!live || !form || !output) { return; }
    var pending = null;
    function count() {
      var query = new URLSearchParams(new FormData(form));
      query.delete("csrfmiddlewaretoken");
      fetch(live.getAttribute("data-count-url") + "?" + query.toString(), { credentials: "same-origin" })
        .then(function (response) { return response.json(); })
        .then(function (answer) {
          output.textContent = answer.errors
            ? answer.errors.join(" ")
            : answer.count.toLocaleString() + " of " + answer.of.toLocaleString() + " active subscribers";
        })
        .catch(function () { output.textContent = "could not count just now"; });
    }
    function later() {
      if (pending) { clearTimeout(pending); }
      pending = setTimeout(count, 300);
    }
    form.addEventListener("input", later);
    form.addEventListener("change", later);
    count();
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
