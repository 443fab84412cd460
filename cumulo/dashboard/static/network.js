// The network pages' own script: a subnet form shows the IPv6 address mode only for IPv6.
"use strict";

function followVersion(form) {
  const version = form.querySelector('select[name="ip_version"]');
  if (!version) return;
  const sync = () => form.classList.toggle("v4", version.value !== "6");
  version.addEventListener("change", sync);
  sync();
}

document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("#network-form, #subnet-form")) followVersion(form);
});
