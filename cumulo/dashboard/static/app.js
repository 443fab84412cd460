// Cumulo's dashboard: live fragments over the event stream, and forms that keep the CSRF token.
// The server renders every page; this script only swaps a fragment (a table row, a panel) when
// the stream says its resource changed, so no page polls.  It is all of the page's own script:
// a page that needs more (the serial console) loads its own file.
"use strict";

const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

async function fetchFragment(url) {
  const r = await fetch(url, {headers: {"X-Requested-With": "cumulo"}, credentials: "same-origin"});
  if (r.status === 401) { location.href = "/auth/login?expired=1&next=" + encodeURIComponent(location.pathname); return null; }
  if (r.status === 404) return "";
  if (!r.ok) return null;
  return await r.text();
}

function replaceWith(el, html) {
  if (html === "") { el.remove(); return; }
  const t = document.createElement("template");
  t.innerHTML = html.trim();
  const fresh = t.content.firstElementChild;
  if (fresh) { el.replaceWith(fresh); fresh.classList.add("changed"); setTimeout(() => fresh.classList.remove("changed"), 1200); }
}

// The fragments of a resource: elements with data-kind, data-id and data-fragment; a list of that
// kind (data-live-kind with data-fragment-template) takes a row for a resource it has not shown.
// Two events of one resource close together (a stop: powering-off, then SHUTOFF) fetch its fragment
// twice at once; the answers may come back in either order, and only the newest fetch's is shown.
const newest = new Map();
async function refresh(ev) {
  const key = ev.kind + " " + ev.id, n = (newest.get(key) || 0) + 1;
  newest.set(key, n);
  const els = document.querySelectorAll(`[data-kind="${CSS.escape(ev.kind)}"][data-id="${CSS.escape(ev.id)}"][data-fragment]`);
  for (const el of els) {
    const html = await fetchFragment(el.dataset.fragment);
    if (newest.get(key) !== n) return;  // a later event's fetch is under way: its answer is newer
    if (html !== null) replaceWith(el, html);
  }
  if (!els.length && ev.action === "create") {
    for (const list of document.querySelectorAll(`[data-live-kind="${CSS.escape(ev.kind)}"][data-fragment-template]`)) {
      const html = await fetchFragment(list.dataset.fragmentTemplate.replace("{id}", encodeURIComponent(ev.id)));
      if (!html) continue;
      const body = list.tBodies[0] || list;
      const empty = body.querySelector("tr.empty");
      if (empty) empty.remove();
      const t = document.createElement("template");
      t.innerHTML = html.trim();
      if (t.content.firstElementChild) body.prepend(t.content.firstElementChild);
    }
    // the resource changed again while its new row was on the way: that change's fetch found no row
    if (newest.get(key) !== n) refresh({kind: ev.kind, id: ev.id, action: "update"});
  }
}

function listen() {
  if (!document.body.dataset.live || !window.EventSource) return;
  // since: when this page's request began; the stream first sends what changed after that
  const since = document.body.dataset.eventsSince;
  const source = new EventSource("/events" + (since ? "?since=" + encodeURIComponent(since) : ""));
  source.onmessage = (m) => {
    let ev;
    try { ev = JSON.parse(m.data); } catch (e) { return; }
    document.dispatchEvent(new CustomEvent("cumulo:event", {detail: ev}));
    refresh(ev);
  };
  window.cumuloEvents = source;
}

// every form posted by script, and every fetch that writes, carries the CSRF token in a header
window.cumuloPost = async (url, data) => fetch(url, {
  method: "POST", credentials: "same-origin", body: data,
  headers: {"X-CSRF-Token": csrf(), "X-Requested-With": "cumulo"}});

document.addEventListener("DOMContentLoaded", () => {
  listen();
});
// a form that asks first (data-confirm): also one in a fragment swapped in after the page loaded
document.addEventListener("submit", (e) => {
  const form = e.target.closest ? e.target.closest("[data-confirm]") : null;
  if (form && !confirm(form.dataset.confirm)) e.preventDefault();
}, true);
