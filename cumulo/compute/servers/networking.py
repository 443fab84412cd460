"""The glue to the network service: the networks a create asks for, the server's ports (made,
bound to its host, released) and its addresses, all asked of cumulo.network.service."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from sqlalchemy import update

from cumulo.compute.models import Server
from cumulo.core.http.faults import BadRequest, Conflict, Forbidden, NotFound
from cumulo.network.service import NetworkService


class Networking:
    network: NetworkService | None  # given by the wiring (cumulo/server.py) when this cloud runs one

    async def requested_networks(self, networks: list[Any], project: str, admin: bool) -> list[dict[str, Any]]:
        """Check a create's list of networks and ports against the Network API (400/409 at once)."""
        out = []
        for entry in networks:
            if not isinstance(entry, dict):
                raise BadRequest("Each entry of networks must be an object.")
            if self.network is None:
                ident = entry.get("uuid") or entry.get("port")
                raise BadRequest(f"Network {ident} could not be found: this cloud runs no network service (use "
                                 "\"none\" or \"auto\").")
            if entry.get("port"):
                try:
                    port = await self.network.port(str(entry["port"]), project, admin)
                except NotFound:
                    raise BadRequest(f"Port {entry['port']} not found.") from None
                if port.device_id:
                    raise Conflict(f"Port {port.id} is still in use.")
                out.append({"port": port.id, **({"tag": entry["tag"]} if entry.get("tag") else {})})
                continue
            try:
                net = await self.network.network(str(entry.get("uuid", "")), project, admin)
            except NotFound:
                raise BadRequest(f"Network {entry.get('uuid')} could not be found.") from None
            if net.external and not admin:
                raise Forbidden(f"Network {net.id} is external: servers attach to it only by an admin.")
            item: dict[str, Any] = {"uuid": net.id}
            if entry.get("fixed_ip"):
                item["fixed_ip"] = str(entry["fixed_ip"])
            if entry.get("tag"):
                item["tag"] = entry["tag"]
            out.append(item)
        return out

    async def auto_network(self, project: str, required: bool = True) -> list[dict[str, Any]] | str:
        """networks "auto": the project's one network, else the one shared network; none is an error
        (there is no automatic topology here), several is ambiguous."""
        assert self.network is not None
        choice = await self.network.auto_network_candidates(project)
        if not choice and not required:
            return "none"
        if not choice:
            raise BadRequest("Unable to automatically allocate a network for the project: create a network (and "
                             "subnet) or boot with networks \"none\".")
        if len(choice) > 1:
            raise Conflict("Multiple possible networks found, use a Network ID to be more specific.")
        return [{"uuid": choice[0]}]

    async def security_group_ids(self, names: list[str], project: str) -> list[str]:
        """The project's security groups by name (or id), as Nova resolves them; "default" is
        made on first use.  An unknown name is a 400."""
        assert self.network is not None
        return await self.network.security_group_ids(names, project)

    async def allocate_ports(self, server: Server) -> None:
        """Ports for the server's requested networks (made here, removed with the server) or the
        ports it was given (handed back on delete)."""
        request = dict(server.request or {})
        wanted = request.get("networks")
        if self.network is None or not isinstance(wanted, list) or request.get("ports"):
            return
        claim = await self.network.allocate_ports(server.id, server.project_id, server.availability_zone, wanted,
                                                  request.get("security_groups") or ["default"])
        try:
            async with self.db.session() as s:
                # device tags (2.32, 2.42+): each tagged entry's port, for the metadata's devices
                tags = {port: e["tag"] for e, port in zip(wanted, claim.ports, strict=False)
                        if isinstance(e, dict) and e.get("tag")}
                await s.execute(update(Server).where(Server.id == server.id).values(
                    request={**request, "ports": claim.ports, **({"port_tags": tags} if tags else {})}))
        except Exception:
            await self.network.drop_ports(server.id, claim.made)
            raise

    async def bind_ports(self, server_id: str, host: str | None) -> None:
        if self.network is None:
            return
        await self.network.bind_ports(server_id, host)

    async def release_ports(self, server_id: str) -> None:
        """Delete: the ports made for the server go, the ones it was given are handed back."""
        if self.network is None:
            return
        server = await self.get(server_id)
        # the ports a create named are handed back; every other port of the server was made for it
        # (decided from the create's request, so a delete racing the build still finds them)
        wanted = (server.request or {}).get("networks") if server else None
        given = {str(e["port"]) for e in wanted if isinstance(e, dict) and e.get("port")} \
            if isinstance(wanted, list) else set()
        await self.network.release_ports(server_id, given)

    async def ports_of(self, server_id: str) -> list[dict[str, Any]]:
        if self.network is None:
            return []
        return await self.network.ports_for_server(server_id)

    async def addresses(self, server_ids: list[str], order: dict[str, list[str]] | None = None
                        ) -> dict[str, dict[str, list[dict[str, Any]]]]:
        """Nova's "addresses": per network name, the fixed and floating addresses of each port;
        ``order`` (server -> its port ids in the order the create asked for the networks) puts
        the networks in that order, whatever the ports' creation times say (ports attached later
        come after, oldest first)."""
        if self.network is None or not server_ids:
            return {}
        found = await self.network.server_addresses(server_ids)
        floating = dict(found.floating)
        out: dict[str, dict[str, list[dict[str, Any]]]] = {}
        rank = {port: i for ports in (order or {}).values() for i, port in enumerate(ports or [])}
        for a in sorted(found.fixed, key=lambda a: rank.get(a.port_id, len(rank))):
            entries = out.setdefault(a.server_id, {}).setdefault(a.network_name or "network", [])
            version = ipaddress.ip_address(a.ip_address).version
            entries.append({"version": version, "addr": a.ip_address, "OS-EXT-IPS:type": "fixed",
                            "OS-EXT-IPS-MAC:mac_addr": a.mac_address})
            if a.port_id in floating and version == 4:
                entries.append({"version": 4, "addr": floating.pop(a.port_id), "OS-EXT-IPS:type": "floating",
                                "OS-EXT-IPS-MAC:mac_addr": a.mac_address})
        return out

    async def servers_with_ip(self, pattern: str, version: int) -> list[str]:
        """The ``ip``/``ip6`` list filters: servers with an address matching the regular expression."""
        if self.network is None:
            return []
        try:
            re.compile(pattern)
        except re.error:
            raise BadRequest(f"Invalid ip filter {pattern!r}: not a regular expression.") from None
        return await self.network.servers_with_address(pattern, version)
