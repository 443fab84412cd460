// Key pairs: a generated pair's private key comes back as the answer to the create form (a file,
// shown this once); this script saves it as a download and then reloads the list.  An import (or a
// refusal) comes back as a page, which replaces this one.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.querySelector("form[data-keypair-form]");
  if (!form) return;
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
    const r = await fetch(form.action, {method: "POST", body: new FormData(form), credentials: "same-origin",
      headers: {"X-CSRF-Token": csrf}});
    const disposition = r.headers.get("Content-Disposition") || "";
    if (r.ok && disposition.startsWith("attachment")) {
      const name = (disposition.match(/filename="([^"]+)"/) || [])[1] || "key.pem";
      const url = URL.createObjectURL(await r.blob());
      const a = document.createElement("a");
      a.href = url; a.download = name; document.body.append(a); a.click(); a.remove();
      setTimeout(() => { URL.revokeObjectURL(url); location.reload(); }, 500);
      return;
    }
    if (r.redirected) { location.href = r.url; return; }
    document.open(); document.write(await r.text()); document.close();
  });
});
