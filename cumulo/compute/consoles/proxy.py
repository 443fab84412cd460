"""The console proxies: websockets in front of guests' consoles, as nova-serialproxy and
nova-novncproxy are.

* ``[compute] serial_proxy_port`` (6083, as Nova's): ``ws://HOST:6083/?token=...`` joins the
  websocket to the guest's serial port (the unix socket QEMU serves it on, ``tty.sock`` in
  the instance's directory): bytes both ways, binary frames.
* ``[compute] novnc_proxy_port`` (6080): the websocket at ``/?token=...`` carries RFB between a
  noVNC client and the guest's VNC server (QEMU's, on ``vnc.sock``); the other paths serve noVNC's
  web client from ``[compute] novnc_web`` (Debian's ``novnc`` package: /usr/share/novnc), so the URL
  the API hands out (``/vnc_lite.html?path=%3Ftoken%3D...``) opens in a browser.

A token opens one connection: the proxy consumes it (``cumulo.compute.consoles.tokens``) before
it connects, so a second use, an expired token, a token of the other proxy or none is answered
with 403 and nothing else.  A browser's ``Origin`` must name the host it connected to (as Nova
checks it), so that another site's page cannot use a URL it learned.  Every API worker serves
these ports, and any of them can take any token: tokens are in the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import mimetypes
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from cumulo.compute.consoles.tokens import Console, ConsoleTokens

LOG = logging.getLogger(__name__)
CHUNK = 65536
CONNECT_TIMEOUT = 5.0


def token_of(scope: Scope) -> str:
    """The token in the query (``?token=``), or in a ``token`` cookie as older noVNC sends it."""
    token = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [""])[-1]
    if token:
        return token
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            cookie: SimpleCookie = SimpleCookie()
            try:
                cookie.load(value.decode("latin-1"))
            except CookieError:
                continue
            if "token" in cookie:
                return cookie["token"].value
    return ""


def origin_allowed(scope: Scope) -> bool:
    """No Origin (not a browser), or one whose host name is the one the client connected to."""
    headers = {name: value.decode("latin-1") for name, value in scope.get("headers", ())}
    origin = headers.get(b"origin")
    if origin is None:
        return True
    host = urlsplit(f"//{headers.get(b'host', '')}").hostname
    parsed = urlsplit(origin)
    return bool(parsed.scheme and parsed.hostname) and parsed.hostname == host


class ConsoleProxy:
    """One proxy's ASGI app: ``console_type`` is ``serial`` or ``novnc``."""

    def __init__(self, tokens: ConsoleTokens, console_type: str, web: str | Path | None = None) -> None:
        self.tokens, self.console_type = tokens, console_type
        self.web = Path(web) if web else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self.websocket(WebSocket(scope, receive, send))
        elif scope["type"] == "http":
            await self.page(scope, send)

    async def websocket(self, ws: WebSocket) -> None:
        if not origin_allowed(ws.scope):
            LOG.info("%s console refused: Origin does not match the host", self.console_type)
            await ws.close(1008)
            return
        console = await self.tokens.consume(token_of(ws.scope), self.console_type)
        if console is None:
            LOG.info("%s console refused: the token is invalid, used or expired", self.console_type)
            await ws.close(1008)
            return
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(console.path), CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            LOG.warning("%s console of %s on %s: cannot reach %s: %s", self.console_type, console.instance_uuid,
                        console.host, console.path, exc)
            await ws.close(1011)
            return
        offered = ws.scope.get("subprotocols") or []
        await ws.accept(subprotocol="binary" if "binary" in offered else None)
        LOG.info("%s console of %s opened", self.console_type, console.instance_uuid)
        try:
            await self.pump(ws, reader, writer, console)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            LOG.info("%s console of %s closed", self.console_type, console.instance_uuid)

    async def pump(self, ws: WebSocket, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   console: Console) -> None:
        """Bytes both ways until either side ends; then the other is closed."""

        async def to_guest() -> None:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                data = message.get("bytes")
                if data is None:
                    data = (message.get("text") or "").encode()
                writer.write(data)
                await writer.drain()

        async def to_client() -> None:
            while data := await reader.read(CHUNK):
                await ws.send_bytes(data)

        tasks = [asyncio.create_task(to_guest()), asyncio.create_task(to_client())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.exception() is not None and not isinstance(task.exception(),
                                                                   (WebSocketDisconnect, OSError)):
                    LOG.warning("%s console of %s: %s", self.console_type, console.instance_uuid, task.exception())
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await ws.close()

    async def page(self, scope: Scope, send: Send) -> None:
        """The noVNC web client's files (GET and HEAD), or a page that says what is missing."""
        if scope["method"] not in ("GET", "HEAD"):
            await respond(send, 405, b"", "text/plain", scope)
            return
        if self.console_type != "novnc":
            await respond(send, 400, b"This is the serial console proxy: connect a websocket client with the "
                          b"URL the Compute API gave.\n", "text/plain", scope)
            return
        rel = scope["path"].lstrip("/") or "vnc_lite.html"
        if self.web is not None and self.web.is_dir():
            root = self.web.resolve()
            target = (root / rel).resolve()
            if target.is_relative_to(root) and target.is_file():
                kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
                await respond(send, 200, await asyncio.to_thread(target.read_bytes), kind, scope)
                return
            await respond(send, 404, b"Not found\n", "text/plain", scope)
            return
        where = html.escape(str(self.web or "[compute] novnc_web"))
        body = ("<!DOCTYPE html>\n<html><head><title>Cumulo console proxy</title></head><body>\n"
                f"<p>The noVNC web client is not installed on this controller (looked in {where}): "
                "install Debian's <code>novnc</code> package there, or connect any websocket VNC client to "
                "this URL's <code>path</code>.</p>\n</body></html>\n")
        await respond(send, 200, body.encode(), "text/html; charset=utf-8", scope)


async def respond(send: Send, status: int, body: bytes, content_type: str, scope: Scope) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
