// The admin pages' script: a button with data-confirm asks before it posts (deletes, evacuations).
"use strict";
document.addEventListener("submit", (ev) => {
  const button = ev.submitter || ev.target.querySelector("button[data-confirm]");
  const words = button && button.dataset ? button.dataset.confirm : "";
  if (words && !window.confirm(words)) ev.preventDefault();
});
