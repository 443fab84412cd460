// The header's count of running tasks (#task-count) and the task log's rows (#task-log), kept
// current from the page's event stream: app.js dispatches each event as a "cumulo:event" on the
// document; a burst of events costs one fetch of /project/tasks/count (and of the rows) at most
// every DELAY ms, and nothing is fetched while no event comes.
"use strict";

(() => {
  const DELAY = 1500;
  const KINDS = new Set(["server", "volume", "snapshot", "backup", "image"]);
  const headers = {"X-Requested-With": "cumulo", "Accept": "application/json"};
  let timer = null;

  async function count() {
    const badge = document.getElementById("task-count");
    if (!badge) return;
    const r = await fetch("/project/tasks/count", {headers, credentials: "same-origin"});
    if (!r.ok) return;
    const n = (await r.json()).running || 0;
    badge.textContent = n ? String(n) : "";
    badge.classList.toggle("busy", n > 0);
    badge.title = n ? `${n} running` : "";
  }

  async function rows() {
    const table = document.getElementById("task-log");
    if (!table || !table.dataset.rows) return;
    const r = await fetch(table.dataset.rows, {headers, credentials: "same-origin"});
    if (!r.ok) return;
    const t = document.createElement("template");
    t.innerHTML = (await r.text()).trim();
    const fresh = t.content.querySelector("tbody");
    if (fresh && table.tBodies[0]) table.tBodies[0].replaceWith(fresh);
  }

  function soon() {
    if (timer) return;
    timer = setTimeout(() => { timer = null; count(); rows(); }, DELAY);
  }

  document.addEventListener("cumulo:event", (e) => { if (e.detail && KINDS.has(e.detail.kind)) soon(); });
  document.addEventListener("DOMContentLoaded", count);
})();
