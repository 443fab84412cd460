// A server's graphs: CPU %, memory, disk and network rates as SVG sparklines.
// Put <div id="graphs" data-server="SERVER_ID"></div> in a page and load this file: every PERIOD
// ms it reads /project/metrics/servers/SERVER_ID (one sample of Nova's diagnostics, taken with the
// user's token) and draws the last POINTS samples.  Rates are the counters' differences between
// two samples.  When the API refuses (Nova lets only administrators read diagnostics by default)
// the graphs say so in the API's words and stop asking.
"use strict";

(() => {
  const PERIOD = 5000, POINTS = 60, W = 240, H = 48;
  const SVG = "http://www.w3.org/2000/svg";
  const GRAPHS = [
    {key: "cpu", label: "CPU", unit: "%", max: () => 100},
    {key: "mem", label: "Memory", unit: "MiB", max: (s) => s.memory_max_mib || null},
    {key: "disk_r", label: "Disk read", unit: "B/s"},
    {key: "disk_w", label: "Disk write", unit: "B/s"},
    {key: "rx", label: "Network in", unit: "B/s"},
    {key: "tx", label: "Network out", unit: "B/s"},
  ];

  function human(v, unit) {
    if (unit !== "B/s") return `${v.toFixed(unit === "%" ? 1 : 0)} ${unit}`;
    const units = ["B/s", "KiB/s", "MiB/s", "GiB/s"];
    let i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return `${v.toFixed(i ? 1 : 0)} ${units[i]}`;
  }

  function el(name, attrs) {
    const e = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    return e;
  }

  function build(root) {
    const parts = {};
    for (const g of GRAPHS) {
      const fig = document.createElement("figure");
      fig.className = "graph";
      fig.dataset.graph = g.key;
      const svg = el("svg", {viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", "aria-label": g.label});
      svg.appendChild(el("rect", {x: 0, y: 0, width: W, height: H, fill: "#f4f6f8"}));
      const line = el("polyline", {fill: "none", stroke: "#2a7ab0", "stroke-width": 1.5, points: ""});
      svg.appendChild(line);
      const cap = document.createElement("figcaption");
      cap.textContent = `${g.label}: …`;
      fig.append(svg, cap);
      root.appendChild(fig);
      parts[g.key] = {line, cap, values: []};
    }
    return parts;
  }

  function draw(part, g, value, max) {
    part.values.push(value);
    if (part.values.length > POINTS) part.values.shift();
    const top = max || Math.max(1, ...part.values);
    const step = W / (POINTS - 1);
    const offset = W - step * (part.values.length - 1);
    part.line.setAttribute("points", part.values.map((v, i) =>
      `${(offset + i * step).toFixed(1)},${(H - 2 - (Math.min(v, top) / top) * (H - 4)).toFixed(1)}`).join(" "));
    part.cap.textContent = `${g.label}: ${human(value, g.unit)}`;
  }

  async function start(root) {
    const url = `/project/metrics/servers/${encodeURIComponent(root.dataset.server)}`;
    const parts = build(root);
    let last = null, timer = null;
    async function tick() {
      let r;
      try {
        r = await fetch(url, {headers: {"X-Requested-With": "cumulo", "Accept": "application/json"},
                              credentials: "same-origin"});
      } catch (e) { return; }
      if (!r.ok) {
        let words = `The cloud answered ${r.status}.`;
        try { words = (await r.json()).error || words; } catch (e) { /* not JSON */ }
        const p = document.createElement("p");
        p.className = r.status === 403 ? "muted" : "error";  // a policy that keeps diagnostics to admins is no fault
        p.textContent = `No graphs: ${words}`;
        root.replaceChildren(p);
        clearInterval(timer);
        return;
      }
      const s = await r.json();
      if (last) {
        const dt = Math.max(0.001, s.at - last.at);
        const rate = (k) => Math.max(0, (s[k] - last[k]) / dt);
        const values = {cpu: Math.min(100, rate("cpu_time_ns") / 1e9 / (s.cpus || 1) * 100), mem: s.memory_used_mib,
                        disk_r: rate("disk_read_bytes"), disk_w: rate("disk_write_bytes"),
                        rx: rate("rx_bytes"), tx: rate("tx_bytes")};
        for (const g of GRAPHS) draw(parts[g.key], g, values[g.key], g.max ? g.max(s) : null);
      }
      last = s;
    }
    await tick();
    timer = setInterval(tick, PERIOD);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const root = document.getElementById("graphs");
    if (root && root.dataset.server) start(root);
  });
})();
