"""The metadata proxy: guests reach 169.254.169.254:80, an address of their network's DHCP
namespace.  The agent listens there with a socket made inside that namespace and served by its
own event loop; it knows the instance by the request's source address on that network, and
forwards to the metadata API with ``X-Instance-ID`` signed by the shared secret (HMAC-SHA256),
the way Neutron's proxy talks to Nova's metadata service.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import httpx

from cumulo.core.instance_signature import sign
from cumulo.network.dataplane.linux import listen_in

LOG = logging.getLogger(__name__)
MAX_HEAD = 16384


class MetadataProxy:
    def __init__(self, upstream: str, secret: str, instance_of: Callable[[str, str], str | None]) -> None:
        """``instance_of(network_id, address)`` names the instance whose port has that address."""
        self.upstream, self.secret, self.instance_of = upstream.rstrip("/"), secret, instance_of
        self.servers: dict[str, asyncio.Server] = {}
        self._client: httpx.AsyncClient | None = None

    def serving(self) -> set[str]:
        return set(self.servers)

    async def serve(self, network_id: str, namespace: str, address: str = "169.254.169.254", port: int = 80) -> None:
        if network_id in self.servers:
            return
        sock = await asyncio.to_thread(listen_in, namespace, address, port)
        self.servers[network_id] = await asyncio.start_server(
            lambda r, w: self._handle(network_id, r, w), sock=sock)

    async def stop(self, network_id: str) -> None:
        server = self.servers.pop(network_id, None)
        if server is not None:
            server.close()

    async def close(self) -> None:
        for network_id in list(self.servers):
            await self.stop(network_id)
        if self._client is not None:
            await self._client.aclose()

    async def _handle(self, network_id: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            if len(head) > MAX_HEAD:
                raise ValueError("request head too large")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            body = b""
            if int(headers.get("content-length") or 0):
                body = await reader.readexactly(min(int(headers["content-length"]), 65536))
            peer = writer.get_extra_info("peername")[0]
            status, ctype, payload = await self.forward(network_id, peer, method, path, body)
        except (ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            status, ctype, payload = 400, "text/plain", b"Bad request\n"
        except Exception:  # noqa: BLE001 - a guest's request never takes the agent down
            LOG.warning("metadata proxy request failed", exc_info=True)
            status, ctype, payload = 500, "text/plain", b"Metadata proxy error\n"
        reason = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found"}.get(status, "Error")
        writer.write(f"HTTP/1.0 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len(payload)}\r\n"
                     f"Connection: close\r\n\r\n".encode() + payload)
        try:
            await writer.drain()
        finally:
            writer.close()

    async def forward(self, network_id: str, peer: str, method: str, path: str,
                      body: bytes) -> tuple[int, str, bytes]:
        instance = self.instance_of(network_id, peer)
        if instance is None:
            LOG.info("metadata request from %s on network %s: no instance has that address", peer, network_id)
            return 404, "text/plain", b"No instance has this address on this network.\n"
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=15)
        signature = sign(self.secret, instance)
        r = await self._client.request(method if method in ("GET", "HEAD", "POST") else "GET",
                                       f"{self.upstream}{path}", content=body or None,
                                       headers={"X-Instance-ID": instance, "X-Instance-ID-Signature": signature,
                                                "X-Forwarded-For": peer})
        return r.status_code, r.headers.get("content-type", "text/plain"), r.content
