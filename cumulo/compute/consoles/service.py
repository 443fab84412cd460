"""Handing out console URLs: the server's node tells where the guest's console is (its agent
answers ``console_endpoint`` on the bus), a token is kept for it, and the URL names the proxy
that takes the token (``cumulo.compute.consoles.proxy``)."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from cumulo.compute.consoles.tokens import ConsoleTokens
from cumulo.core.http.faults import BadRequest, Conflict

LOG = logging.getLogger(__name__)
# the console types Cumulo's QEMU guests offer, and what each is on the node
KINDS = {"serial": "serial", "novnc": "vnc"}


class RemoteConsoles:
    def __init__(self, bus: Any, tokens: ConsoleTokens, base_urls: dict[str, str]) -> None:
        """``base_urls``: each console type's proxy URL as users reach it ("" when that proxy is off)."""
        self.bus, self.tokens, self.base_urls = bus, tokens, base_urls

    def offers(self, console_type: str) -> bool:
        return bool(self.base_urls.get(console_type))

    async def url(self, server: Any, console_type: str) -> str:
        """A URL that opens ``console_type`` of the running ``server`` once, for the token's TTL."""
        if not self.offers(console_type):
            raise BadRequest(f"Unavailable console type {console_type}.")
        if not server.host or server.vm_state not in ("active", "paused", "rescued"):
            raise Conflict(f"Instance {server.id} is not ready")
        if server.task_state in ("deleting", "migrating"):
            raise Conflict(f"Cannot 'get_{KINDS[console_type]}_console' instance {server.id} while it is in "
                           f"task_state {server.task_state}")
        try:
            endpoint = await self.bus.call(f"compute.{server.host}", "console_endpoint",
                                           {"server_id": server.id, "kind": KINDS[console_type]}, timeout=15)
        except Exception as exc:  # the guest is not running there, or the node does not answer
            LOG.info("no console of %s from node %s: %s", server.id, server.host, exc)
            raise Conflict(f"Instance {server.id} is not ready") from None
        if not endpoint.get("available"):
            raise BadRequest(f"Unavailable console type {console_type}.")
        token = await self.tokens.issue(server.id, console_type, server.host, endpoint["path"])
        return with_token(self.base_urls[console_type], console_type, token)


def with_token(base: str, console_type: str, token: str) -> str:
    """The access URL as Nova makes it: noVNC (1.1 and later) finds the token in its ``path``
    parameter, the websocket path it connects to; other clients in ``token``."""
    sep = "&" if "?" in base else "?"
    if console_type == "novnc":
        return f"{base}{sep}path={quote(f'?token={token}', safe='')}"
    return f"{base}{sep}token={token}"


def remote_consoles(cfg: Any, db: Any, bus: Any) -> RemoteConsoles:
    """The URL maker of this cloud's ``[compute]`` console settings."""
    c = cfg.compute
    bases = {"serial": c.serial_proxy_base_url or f"ws://{cfg.public_host}:{c.serial_proxy_port}/",
             "novnc": c.novnc_proxy_base_url or f"http://{cfg.public_host}:{c.novnc_proxy_port}/vnc_lite.html"}
    bases = {kind: url if (c.serial_proxy_port if kind == "serial" else c.novnc_proxy_port) else ""
             for kind, url in bases.items()}
    return RemoteConsoles(bus, ConsoleTokens(db, c.console_token_ttl), bases)
