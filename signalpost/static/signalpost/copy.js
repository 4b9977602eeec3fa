/* Copy buttons on staff pages: <button data-copy="ID" hidden> copies the text of the
   element ID. The buttons stay hidden without JavaScript; the text can be selected. */
(function () {
  "use strict";

  function said(id, text) {
    var status = document.querySelector('[data-copied-for="' + id + '"]');
    if (status) status.textContent = text;
  }

  function copy(event) {
    var id = event.currentTarget.getAttribute("data-copy");
    var source = document.getElementById(id);
    if (!source) return;
    var text = "value" in source ? source.value : source.textContent;
    function fallback() {
      source.focus();
      if (source.select) source.select();
      var done = false;
      try { done = document.execCommand("copy"); } catch (error) { done = false; }
      said(id, done ? "Copied." : "Selected: press Ctrl+C (⌘C) to copy.");
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { said(id, "Copied."); }, fallback);
    } else {
      fallback();
    }
  }

  function start() {
    var buttons = document.querySelectorAll("button[data-copy]");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].hidden = false;
      buttons[i].addEventListener("click", copy);
    }
    var hints = document.querySelectorAll(".signalpost-nojs-hint");
    for (var j = 0; j < hints.length; j++) hints[j].hidden = true;
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
