// The writing page: preview the email as you type. The server renders it (the newsletter's
// template, the sanitised Markdown, a sample reader) at most every 400 ms; the answer lands
// in the sandboxed iframe's srcdoc. Without this script, Save shows the saved preview.
(function () {
  "use strict";
  var form = document.getElementById("write-form");
  var frame = document.getElementById("preview-frame");
  if (!form || !frame || !window.fetch || !window.FormData) return;
  var status = document.getElementById("preview-status");
  var subject = document.getElementById("preview-subject");
  var url = form.dataset.previewUrl;
  var timer = null;
  var sent = 0;
  var shown = 0;

  function showErrors(errors) {
    ["subject", "body_markdown"].forEach(function (field) {
      var box = document.getElementById(field + "-errors");
      var input = form.elements[field];
      if (!box || !input) return;
      box.textContent = "";
      var list = errors[field] || [];
      input.setAttribute("aria-invalid", list.length ? "true" : "false");
      box.parentNode.classList.toggle("errors", list.length > 0);
      if (!list.length) return;
      var ul = document.createElement("ul");
      ul.className = "errorlist";
      list.forEach(function (error) {
        var li = document.createElement("li");
        li.textContent = error.message;
        ul.appendChild(li);
      });
      box.appendChild(ul);
    });
  }

  function preview() {
    var number = ++sent;
    status.textContent = "Updating…";
    fetch(url, {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin",
      headers: {"X-CSRFToken": form.elements.csrfmiddlewaretoken.value},
    }).then(function (response) {
      return response.json().then(function (data) { return {ok: response.ok, data: data}; });
    }).then(function (answer) {
      if (number < shown) return;  // an older request answered late
      shown = number;
      showErrors(answer.data.errors || {});
      if (answer.ok) {
        frame.srcdoc = answer.data.html;
        subject.textContent = answer.data.subject;
        status.textContent = "Up to date.";
      } else {
        status.textContent = "Not updated: see the errors beside the text.";
      }
    }).catch(function () {
      status.textContent = "Could not reach the server; the preview shows an earlier version.";
    });
  }

  form.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(preview, 400);
  });
})();
