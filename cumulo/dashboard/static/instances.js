// The instance list: a row's Actions button becomes that row's action form (one <template> on the
// page, cloned on demand), so a page of 1,000 rows is not 1,000 forms of options.
"use strict";

document.addEventListener("click", (e) => {
  const button = e.target.closest ? e.target.closest("button.row-menu") : null;
  const template = document.getElementById("row-actions");
  if (!button || !template) return;
  const form = template.content.firstElementChild.cloneNode(true);
  form.action = button.dataset.action;
  const select = form.querySelector("select");
  select.setAttribute("aria-label", button.getAttribute("aria-label") || "action");
  button.replaceWith(form);
  select.focus();
});
