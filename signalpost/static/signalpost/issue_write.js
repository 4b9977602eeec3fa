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
  var previewText = document.getElementById("preview-text");
  var url = form.dataset.previewUrl;
  var timer = null;
  var sent = 0;
  var shown = 0;

  function showErrors(errors) {
    ["subject", "preview_text", "body_markdown"].forEach(function (field) {
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
        previewText.textContent = answer.data.preview_text;
        status.textContent = "Up to date.";
      } else {
        status.textContent = "Not updated: see the errors beside the text.";
      }
    }).catch(function () {
      status.textContent = "Could not reach the server; the preview shows an earlier version.";
    });
  }

  form.addEventListener("input", function (event) {
    if (event.target.type === "file" || event.target.name === "alt") return;
    clearTimeout(timer);
    timer = setTimeout(preview, 400);
  });

  // An image chosen is uploaded at once and its Markdown goes where the cursor is.
  var image = form.elements.image;
  var body = form.elements.body_markdown;
  function imageError(message) {
    var box = document.getElementById("image-errors");
    box.textContent = "";
    box.parentNode.classList.toggle("errors", Boolean(message));
    if (!message) return;
    var ul = document.createElement("ul");
    ul.className = "errorlist";
    var li = document.createElement("li");
    li.textContent = message;
    ul.appendChild(li);
    box.appendChild(ul);
  }
  if (image && body) {
    image.addEventListener("change", function () {
      if (!image.files.length) return;
      var data = new FormData();
      data.append("image", image.files[0]);
      data.append("alt", form.elements.alt.value);
      imageError("");
      status.textContent = "Uploading the image…";
      fetch(form.dataset.imageUrl, {
        method: "POST",
        body: data,
        credentials: "same-origin",
        headers: {"X-CSRFToken": form.elements.csrfmiddlewaretoken.value},
      }).then(function (response) {
        return response.json().then(function (data) { return {ok: response.ok, data: data}; });
      }).then(function (answer) {
        image.value = "";
        if (!answer.ok) {
          var errors = (answer.data.errors && answer.data.errors.image) || [{message: "The image was refused."}];
          imageError(errors[0].message);
          status.textContent = "The image was not added.";
          return;
        }
        var at = body.selectionStart || body.value.length;
        var before = body.value.slice(0, at);
        var insert = (before && !/\n\n$/.test(before) ? "\n\n" : "") + answer.data.markdown + "\n";
        body.value = before + insert + body.value.slice(at);
        body.selectionStart = body.selectionEnd = at + insert.length;
        form.elements.alt.value = "";
        preview();
      }).catch(function () {
        imageError("Could not upload the image; try again.");
      });
    });
  }
})();
