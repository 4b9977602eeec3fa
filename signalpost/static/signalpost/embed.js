/* Signalpost's embeddable subscribe form: submits each <form data-signalpost-subscribe>
   in place and shows the answer in its [data-signalpost-answer] element (whose
   data-failed text, in the snippet's language, says when it could not). No dependencies.
   Without this script (or without JavaScript) the form posts as any form does and the
   answer is a page on the Signalpost site. docs/subscribers.md#embedding */
(function () {
  "use strict";

  var FAILED = "The subscription could not be sent from this page. " +
    "Try again later, or subscribe on the newsletter's own page.";

  function answerOf(form) {
    var answer = form.querySelector("[data-signalpost-answer]");
    if (!answer) {
      answer = document.createElement("p");
      answer.setAttribute("data-signalpost-answer", "");
      answer.setAttribute("role", "status");
      answer.setAttribute("aria-live", "polite");
      form.appendChild(answer);
    }
    return answer;
  }

  function failed(form) {
    return answerOf(form).getAttribute("data-failed") || FAILED;
  }

  function show(form, text, ok) {
    var answer = answerOf(form);
    answer.textContent = text || failed(form);
    answer.setAttribute("data-state", ok ? "sent" : "error");
  }

  function messageOf(body) {
    if (body && typeof body.message === "string") return body.message;
    if (body && Array.isArray(body.errors) && body.errors.length) {
      return body.errors.map(function (error) { return String(error.message); }).join(" ");
    }
    return "";
  }

  function submit(event) {
    var form = event.currentTarget;
    if (!window.fetch || !window.FormData) return; // the plain form post goes ahead
    event.preventDefault();
    var button = form.querySelector("[type=submit]");
    if (button) button.disabled = true;
    window.fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      headers: { "Accept": "application/json" },
      credentials: "omit",
      mode: "cors"
    }).then(function (response) {
      return response.json().then(function (body) {
        show(form, messageOf(body), response.ok);
        if (response.ok) form.reset();
      }, function () { show(form, "", false); });
    }, function () {
      // A network failure, or this page's origin is not on the newsletter's list (CORS).
      show(form, "", false);
    }).then(function () {
      if (button) button.disabled = false;
    });
  }

  function start() {
    var forms = document.querySelectorAll("form[data-signalpost-subscribe]");
    for (var i = 0; i < forms.length; i++) forms[i].addEventListener("submit", submit);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
