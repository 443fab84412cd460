"""The glue to the Network API: the networks a create asks for, the server's ports (made,
bound to its host, released) and its addresses."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select, update

from cumulo.compute.models import Server
from cumulo.core.http.faults import BadRequest, Conflict, Forbidden, NotFound

LOG = logging.getLogger(__name__)


class Networking:
    async def requested_networks(self, networks: list[Any], project: str, admin: bool) -> list[dict[str, Any]]:
        """Check a create's list of networks and ports against the Network API (400/409 at once)."""
        from cumulo.core.http.faults import NotFound as Missing

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
                except Missing:
                    raise BadRequest(f"Port {entry['port']} not found.") from None
                if port.device_id:
                    raise Conflict(f"Port {port.id} is still in use.")
                out.append({"port": port.id})
                continue
            try:
                net = await self.network.network(str(entry.get("uuid", "")), project, admin)
            except Missing:
                raise BadRequest(f"Network {entry.get('uuid')} could not be found.") from None
            if net.external and not admin:
                raise Forbidden(f"Network {net.id} is external: servers attach to it only by an admin.")
            item: dict[str, Any] = {"uuid": net.id}
            if entry.get("fixed_ip"):
                item["fixed_ip"] = str(entry["fixed_ip"])
            out.append(item)
        return out

    async def auto_network(self, project: str, required: bool = True) -> list[dict[str, Any]] | str:
        """networks "auto": the project's one network, else the one shared network; none is an error
        (there is no automatic topology here), several is ambiguous."""
        from sqlalchemy import or_

        from cumulo.network.models import Network

        async with self.db.session() as s:
            own = list((await s.execute(select(Network.id).where(
                Network.project_id == project, Network.external.is_(False)))).scalars())
            shared = list((await s.execute(select(Network.id).where(
                Network.shared.is_(True), Network.external.is_(False), or_(Network.project_id != project)))).scalars())
        choice = own or shared
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
        from cumulo.network.models import SecurityGroup
        from cumulo.network.security_groups import SecurityGroups

        out = []
        for name in names or ["default"]:
            if name == "default":
                out.append(await SecurityGroups(self.db).default(project))
                continue
            async with self.db.session() as s:
                found = list((await s.execute(select(SecurityGroup.id).where(
                    SecurityGroup.project_id == project,
                    (SecurityGroup.name == name) | (SecurityGroup.id == name)))).scalars())
            if not found:
                raise BadRequest(f"Security group {name} not found for project {project}.")
            if len(found) > 1:
                raise Conflict(f"Multiple security groups named {name} in project {project}: use its id.")
            out.append(found[0])
        return list(dict.fromkeys(out))

    async def allocate_ports(self, server: Server) -> None:
        """Ports for the server's requested networks (made here, removed with the server) or the
        ports it was given (handed back on delete)."""
        request = dict(server.request or {})
        wanted = request.get("networks")
        if self.network is None or not isinstance(wanted, list) or request.get("ports"):
            return
        made, ports = [], []
        groups = None
        try:
            for entry in wanted:
                if entry.get("port"):
                    ports.append(entry["port"])
                    continue
                from cumulo.network.models import Network

                async with self.db.session() as s:
                    net = await s.get(Network, entry["uuid"])
                secure = net.port_security_enabled if net is not None else True
                if secure and groups is None:
                    groups = await self.security_group_ids(request.get("security_groups") or ["default"],
                                                           server.project_id)
                fixed = [{"ip_address": entry["fixed_ip"]}] if entry.get("fixed_ip") else None
                port = await self.network.create_port(
                    {"network_id": entry["uuid"], "project_id": server.project_id, "device_id": server.id,
                     "device_owner": f"compute:{server.availability_zone or 'nova'}", "port_security_enabled": secure,
                     "security_groups": groups if secure else []}, fixed, server.project_id, True)
                made.append(port.id)
                ports.append(port.id)
            from cumulo.network.models import Port

            async with self.db.session() as s:
                given = [p for p in ports if p not in made]
                if given:
                    await s.execute(update(Port).where(Port.id.in_(given)).values(
                        device_id=server.id, device_owner=f"compute:{server.availability_zone or 'nova'}"))
                await s.execute(update(Server).where(Server.id == server.id).values(
                    request={**request, "ports": ports}))
        except Exception:
            for port_id in made:
                try:
                    await self._drop_port(port_id)
                except Exception as exc:  # it keeps the server's device_id: the server's delete removes it
                    LOG.warning("port %s made for server %s stays for now: %s", port_id, server.id,
                                exc or type(exc).__name__)
            raise

    async def _drop_port(self, port_id: str) -> None:
        """Delete a port made for a server; only a port that is missing counts as done already."""
        try:
            port = await self.network.port(port_id, None, True)
        except NotFound:
            LOG.info("port %s was already gone", port_id)
            return
        await self.network.delete_port(port)

    async def bind_ports(self, server_id: str, host: str | None) -> None:
        if self.network is None:
            return
        from cumulo.network.models import Port

        async with self.db.session() as s:
            await s.execute(update(Port).where(Port.device_id == server_id, Port.device_owner.like("compute:%"))
                            .values(binding_host_id=host or "", status="ACTIVE" if host else "DOWN"))
        await self.bus.publish("network.changed", {"server_id": server_id})  # the dataplane wires them

    async def release_ports(self, server_id: str) -> None:
        """Delete: the ports made for the server go, the ones it was given are handed back."""
        if self.network is None:
            return
        from cumulo.network.models import Port

        server = await self.get(server_id)
        # the ports a create named are handed back; every other port of the server was made for it
        # (decided from the create's request, so a delete racing the build still finds them)
        wanted = (server.request or {}).get("networks") if server else None
        given = {str(e["port"]) for e in wanted if isinstance(e, dict) and e.get("port")} \
            if isinstance(wanted, list) else set()
        async with self.db.session() as s:
            ports = list((await s.execute(select(Port.id).where(
                Port.device_id == server_id, Port.device_owner.like("compute:%")))).scalars())
        for port_id in ports:
            if port_id not in given:
                await self._drop_port(port_id)
            else:
                async with self.db.session() as s:
                    await s.execute(update(Port).where(Port.id == port_id).values(
                        device_id="", device_owner="", binding_host_id="", status="DOWN"))
        if ports:
            await self.bus.publish("network.changed", {"server_id": server_id})

    async def ports_of(self, server_id: str) -> list[dict[str, Any]]:
        if self.network is None:
            return []
        from cumulo.network.models import Network, Port

        async with self.db.session() as s:
            rows = (await s.execute(select(Port, Network).join(Network, Network.id == Port.network_id).where(
                Port.device_id == server_id, Port.device_owner.like("compute:%")).order_by(Port.created_at))).all()
        ips = await self.network.allocations([p.id for p, _ in rows])
        return [{"id": p.id, "mac_address": p.mac_address, "network_id": n.id, "network_name": n.name,
                 "segment_id": n.segment_id, "mtu": n.mtu, "fixed_ips": ips[p.id]} for p, n in rows]

    async def addresses(self, server_ids: list[str]) -> dict[str, dict[str, list[dict[str, Any]]]]:
        """Nova's "addresses": per network name, the fixed and floating addresses of each port."""
        if self.network is None or not server_ids:
            return {}
        import ipaddress

        from cumulo.network.models import FloatingIP, IPAllocation, Network, Port

        async with self.db.session() as s:
            rows = (await s.execute(select(Port.device_id, Port.mac_address, Network.name, IPAllocation.ip_address,
                                           Port.id).join(Network, Network.id == Port.network_id).join(
                IPAllocation, IPAllocation.port_id == Port.id).where(
                Port.device_id.in_(server_ids), Port.device_owner.like("compute:%")).order_by(Port.created_at))).all()
            fips = (await s.execute(select(FloatingIP.port_id, FloatingIP.floating_ip_address).where(
                FloatingIP.port_id.in_([r[4] for r in rows])))).all() if rows else []
        floating = {port_id: address for port_id, address in fips}
        out: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for device, mac, net_name, address, port_id in rows:
            entries = out.setdefault(device, {}).setdefault(net_name or "network", [])
            entries.append({"version": ipaddress.ip_address(address).version, "addr": address,
                            "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": mac})
            if port_id in floating and ipaddress.ip_address(address).version == 4:
                entries.append({"version": 4, "addr": floating.pop(port_id), "OS-EXT-IPS:type": "floating",
                                "OS-EXT-IPS-MAC:mac_addr": mac})
        return out

    async def servers_with_ip(self, pattern: str, version: int) -> list[str]:
        """The ``ip``/``ip6`` list filters: servers with an address matching the regular expression."""
        if self.network is None:
            return []
        import ipaddress
        import re

        from cumulo.network.models import IPAllocation, Port

        try:
            regex = re.compile(pattern)
        except re.error:
            raise BadRequest(f"Invalid ip filter {pattern!r}: not a regular expression.") from None
        async with self.db.session() as s:
            rows = (await s.execute(select(Port.device_id, IPAllocation.ip_address).join(
                IPAllocation, IPAllocation.port_id == Port.id).where(Port.device_owner.like("compute:%")))).all()
        return sorted({d for d, a in rows if ipaddress.ip_address(a).version == version and regex.search(a)})
