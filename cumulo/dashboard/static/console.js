// The serial console page: xterm.js on the websocket of the console proxy, bytes both ways.
// The URL (in #terminal's data-url) carries a one-time token the page got from Nova; once the
// session ends, a reload of the page asks for a new one.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const box = document.getElementById("terminal");
  const state = document.getElementById("console-state");
  if (!box || !window.Terminal) return;
  const say = (words) => { if (state) state.textContent = words; };
  const term = new window.Terminal({cursorBlink: true, scrollback: 5000, fontSize: 14});
  const fit = window.FitAddon ? new window.FitAddon.FitAddon() : null;
  if (fit) term.loadAddon(fit);
  term.open(box);
  if (fit) { fit.fit(); window.addEventListener("resize", () => fit.fit()); }

  const ws = new WebSocket(box.dataset.url, ["binary"]);
  ws.binaryType = "arraybuffer";
  const encoder = new TextEncoder();
  ws.onopen = () => { say("connected"); term.focus(); ws.send(encoder.encode("\r")); };
  ws.onmessage = (m) => term.write(typeof m.data === "string" ? m.data : new Uint8Array(m.data));
  ws.onclose = (e) => {
    say(e.code === 1000 || e.wasClean ? "closed" : "closed: the proxy refused or lost the console (code " + e.code + ")");
    term.write("\r\n[the console session ended: reload the page for a new one]\r\n");
  };
  ws.onerror = () => say("the console proxy did not answer");
  const send = (data) => { if (ws.readyState === WebSocket.OPEN) ws.send(data); };
  term.onData((data) => send(encoder.encode(data)));
  term.onBinary((data) => send(Uint8Array.from(data, (c) => c.charCodeAt(0) & 0xff)));
  window.cumuloConsole = {term, ws};
});
