"""An instance's consoles in the browser: the serial one (xterm.js) and the graphical one (noVNC).

Each page view asks Nova for a new remote console (``POST /servers/{id}/remote-consoles``,
microversion 2.6 and later): its URL carries a token that opens the console proxy once, so a
reload is a new session.  The page's own script (``static/console.js``, ``static/vnc.js``)
connects the browser to the proxy's websocket; the proxy takes the browser's ``Origin`` when its
host name is the one the proxy was reached by, which holds when the dashboard and the proxies
are served under one host name.  When the guest has no such console (a fake node's, or one
that is not running) the page shows Nova's words instead.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from starlette.requests import Request
from starlette.responses import Response

from cumulo.dashboard.app import Dashboard
from cumulo.dashboard.client import Api, ApiError
from cumulo.dashboard.session import Session

# xterm.js (5.x) sizes its rows with a <style> element it adds: the console page allows inline
# styles, every other page keeps style-src 'self' only
CONSOLE_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
               "connect-src 'self' ws: wss:; frame-ancestors 'self'")
KINDS = {"console": ("serial", "serial"), "vnc": ("vnc", "novnc")}


def websocket_of(url: str, console_type: str) -> str:
    """The websocket a console URL names: a serial URL is one; a noVNC page's is in its ``path``."""
    if console_type != "novnc":
        return url
    parts = urlsplit(url)
    path = unquote(parse_qs(parts.query).get("path", [""])[0])
    scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{scheme}://{parts.netloc}/{path.lstrip('/')}"


def views(d: Dashboard) -> dict[str, Any]:
    def console_view(page: str) -> Any:
        protocol, console_type = KINDS[page]

        async def show(request: Request, session: Session, api: Api) -> Response:
            server_id = request.path_params["server_id"]
            server = (await api.get("compute", f"/servers/{server_id}"))["server"]
            url, error = "", ""
            try:
                r = await api.post("compute", f"/servers/{server_id}/remote-consoles",
                                   {"remote_console": {"protocol": protocol, "type": console_type}})
                url = websocket_of(r.data["remote_console"]["url"], console_type)
            except ApiError as exc:
                if exc.status in (401, 404):
                    raise
                error = exc.message
            response = d.render(request, f"instance_{page}.html", title=f"{'Console' if page == 'console' else 'VNC'}: "
                                f"{server['name']}", server=server, url=url, error=error)
            response.headers["Content-Security-Policy"] = CONSOLE_CSP
            return response

        return show

    return {"console": console_view("console"), "vnc": console_view("vnc")}
