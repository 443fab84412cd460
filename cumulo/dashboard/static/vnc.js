// The VNC console page: noVNC's RFB client on the websocket of the noVNC proxy.  The URL (in
// #screen's data-url) carries a one-time token the page got from Nova.
import RFB from "/vendor/@novnc/novnc/core/rfb.js";

const screen = document.getElementById("screen");
const state = document.getElementById("vnc-state");
const say = (words) => { if (state) state.textContent = words; };

if (screen && screen.dataset.url) {
  const rfb = new RFB(screen, screen.dataset.url, {wsProtocols: ["binary"]});
  rfb.scaleViewport = true;
  rfb.resizeSession = false;
  rfb.addEventListener("connect", () => say("connected"));
  rfb.addEventListener("disconnect", (e) => say(e.detail.clean ? "closed: reload for a new session"
    : "closed: the proxy refused or lost the console"));
  rfb.addEventListener("securityfailure", (e) => say("refused: " + (e.detail.reason || "security failure")));
  rfb.addEventListener("desktopname", (e) => { document.title = e.detail.name + " · Cumulo"; });
  const cad = document.getElementById("vnc-cad");
  if (cad) cad.addEventListener("click", () => rfb.sendCtrlAltDel());
  window.cumuloVnc = rfb;
}
