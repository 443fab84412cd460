// Uploads with a progress bar: an image (create the record, then send its file) or an object.
// A form with data-upload-form and a file input data-upload-file is sent by this script:
//  * without data-upload-url (the image create form): its fields go first to the form's action
//    (answer: JSON {upload, done}), then the file to `upload`;
//  * with data-upload-url: the file goes straight there; with data-upload-prefix too (object
//    uploads), the URL ends with "name=" and gets the prefix and the file's name, and the file's
//    own type is sent.
// The file is the request's whole body (not multipart), so the dashboard streams it on to the
// service as it arrives; XMLHttpRequest's upload events draw the bar.
"use strict";

(() => {
  const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  function showErrors(form, errors) {
    for (const el of document.querySelectorAll("[data-field]")) { el.hidden = true; el.textContent = ""; }
    for (const [field, words] of Object.entries(errors || {})) {
      const el = form.querySelector(`[data-field="${CSS.escape(field)}"]`) || document.querySelector('[data-field="form"]')
        || form.querySelector('[data-field="file"]');
      if (el) { el.textContent = words; el.hidden = false; }
    }
  }

  function send(url, file, bar, type) {
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", url);
      xhr.setRequestHeader("X-CSRF-Token", csrf());
      xhr.setRequestHeader("X-Requested-With", "cumulo");
      xhr.setRequestHeader("Content-Type", type);
      const fill = bar.querySelector(".bar"), words = bar.querySelector(".words");
      bar.hidden = false; bar.classList.remove("failed");
      xhr.upload.addEventListener("progress", (e) => {
        if (!e.lengthComputable) { words.textContent = `${(e.loaded / 1048576).toFixed(1)} MiB sent`; return; }
        const pct = Math.floor(100 * e.loaded / e.total);
        fill.style.width = pct + "%";
        words.textContent = `${pct}% (${(e.loaded / 1048576).toFixed(1)} of ${(e.total / 1048576).toFixed(1)} MiB)`;
      });
      xhr.upload.addEventListener("load", () => { fill.style.width = "100%"; words.textContent = "sent: the service is storing it…"; });
      xhr.addEventListener("load", () => {
        let body = {};
        try { body = JSON.parse(xhr.responseText); } catch (e) { body = {error: xhr.responseText.slice(0, 300)}; }
        if (xhr.status === 401) { location.href = "/auth/login?expired=1"; return; }
        resolve({ok: xhr.status < 300, body});
      });
      xhr.addEventListener("error", () => resolve({ok: false, body: {error: "The upload was cut off."}}));
      xhr.send(file);
    });
  }

  async function submit(form, e) {
    const input = form.querySelector("[data-upload-file]");
    const file = input && input.files && input.files[0];
    const bar = form.querySelector("[data-upload-progress]");
    if (!file || !bar) return;  // nothing to send: the plain form does its job
    e.preventDefault();
    const button = form.querySelector('button[type="submit"]');
    if (button) button.disabled = true;
    let target = form.dataset.uploadUrl, done = location.href;
    if (!target) {
      const fields = new FormData(form);
      fields.delete("file");
      const r = await fetch(form.action, {method: "POST", body: fields, credentials: "same-origin",
        headers: {"X-CSRF-Token": csrf(), "X-Requested-With": "cumulo"}});
      let body = {};
      try { body = await r.json(); } catch (err) { body = {errors: {form: `The dashboard answered ${r.status}.`}}; }
      if (!r.ok) { showErrors(form, body.errors); if (button) button.disabled = false; return; }
      target = body.upload; done = body.done;
    } else if (form.dataset.uploadPrefix !== undefined) {
      target += encodeURIComponent(form.dataset.uploadPrefix + file.name);
    }
    const type = form.dataset.uploadPrefix !== undefined && file.type ? file.type : "application/octet-stream";
    const result = await send(target, file, bar, type);
    if (result.ok) { location.href = result.body.done || done; return; }
    bar.classList.add("failed");
    showErrors(form, {file: result.body.error || "The upload failed."});
    if (button) button.disabled = false;
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const form of document.querySelectorAll("form[data-upload-form]")) {
      form.addEventListener("submit", (e) => submit(form, e));
    }
  });
})();
