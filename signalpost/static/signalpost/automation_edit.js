// The automation page: each step row shows only the fields of its kind. Without
// JavaScript every field is shown, grouped and titled by kind; the form works the same.
(function () {
  "use strict";
  function showKind(row) {
    var select = row.querySelector("select[name$='-kind']");
    if (!select) { return; }
    var kind = select.value;
    row.querySelectorAll(".automation-step-group").forEach(function (group) {
      var kinds = group.getAttribute("data-kinds").split(" ");
      var typed = Array.prototype.some.call(group.querySelectorAll("input[type=text], textarea"), function (field) { return field.value !== ""; });
      // Fields of another kind that hold something typed stay in sight: nothing is hidden away.
      group.hidden = kinds.indexOf(kind) === -1 && !typed;
    });
  }
  function start() {
    document.querySelectorAll(".automation-step").forEach(function (row) {
      showKind(row);
      row.addEventListener("change", function (event) {
        if (event.target.name && /-kind$/.test(event.target.name)) { showKind(row); }
      });
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
