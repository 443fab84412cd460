"""The network service as other services see it: what Compute (and later Block Storage) may ask of
the network, answered in plain data (dataclasses, dicts, ids), never ORM rows or sessions.

Only this module (and, on a compute host, ``cumulo.network.dataplane.vif``) is public: the tables
and the modules behind them are the network's own, so any call here could become an RPC.  Every
change of a port's binding, of a port's groups or of a group's rules is announced on the bus as
``network.changed``, so the dataplane applies it.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Text, cast, delete, select, update

from cumulo.core.bus import Bus
from cumulo.core.db import Database
from cumulo.core.http.faults import BadRequest, Conflict, NotFound
from cumulo.core.watch import watch
from cumulo.network import quotas
from cumulo.network.ipam import Ipam
from cumulo.network.models import (
    DefaultSecurityGroup,
    FloatingIP,
    IPAllocation,
    Network,
    Port,
    SecurityGroup,
    SecurityGroupRule,
    Subnet,
)
from cumulo.network.models import Router as RouterRow
from cumulo.network.security_groups import SecurityGroups, check_rule

__all__ = ["FixedAddress", "FloatingIPInfo", "NetworkInfo", "NetworkService", "OverQuota", "PortClaim", "PortInfo",
           "SecurityGroupInfo", "SecurityGroupRuleInfo", "ServerAddresses"]
LOG = logging.getLogger(__name__)
SERVER_PORTS = "compute:%"  # the device owner of every port a server has ("compute:<zone>")


@dataclass(frozen=True)
class NetworkInfo:
    id: str
    name: str
    project_id: str
    external: bool
    shared: bool
    port_security_enabled: bool
    segment_id: int | None
    mtu: int


@dataclass(frozen=True)
class PortInfo:
    id: str
    network_id: str
    project_id: str
    mac_address: str
    device_id: str
    device_owner: str
    port_security_enabled: bool
    security_groups: tuple[str, ...]


@dataclass(frozen=True)
class SecurityGroupInfo:
    id: str
    name: str
    description: str
    project_id: str
    is_default: bool


@dataclass(frozen=True)
class SecurityGroupRuleInfo:
    id: str
    group_id: str
    project_id: str
    direction: str
    ethertype: str
    protocol: str | None
    port_range_min: int | None
    port_range_max: int | None
    remote_ip_prefix: str | None
    remote_group_id: str | None


@dataclass(frozen=True)
class FixedAddress:
    """One fixed address of one of a server's ports."""

    server_id: str
    port_id: str
    mac_address: str
    network_name: str
    ip_address: str


@dataclass(frozen=True)
class ServerAddresses:
    """Servers' fixed addresses (in port order) and the floating address of each port that has one."""

    fixed: list[FixedAddress]
    floating: dict[str, str]


@dataclass(frozen=True)
class PortClaim:
    """The ports a server got: all of them in order, and those made for it (the rest were given)."""

    ports: list[str]
    made: list[str]


class OverQuota(Exception):
    """A network quota (``resource``) has no room left; the caller words its own fault."""

    def __init__(self, resource: str) -> None:
        super().__init__(f"Quota exceeded for resources: ['{resource}'].")
        self.resource = resource


def _network(row: Network) -> NetworkInfo:
    return NetworkInfo(id=row.id, name=row.name, project_id=row.project_id, external=row.external,
                       shared=row.shared, port_security_enabled=row.port_security_enabled,
                       segment_id=row.segment_id, mtu=row.mtu)


def _port(row: Port) -> PortInfo:
    return PortInfo(id=row.id, network_id=row.network_id, project_id=row.project_id, mac_address=row.mac_address,
                    device_id=row.device_id, device_owner=row.device_owner,
                    port_security_enabled=row.port_security_enabled,
                    security_groups=tuple(row.security_groups or []))


def _group(row: SecurityGroup) -> SecurityGroupInfo:
    return SecurityGroupInfo(id=row.id, name=row.name, description=row.description, project_id=row.project_id,
                             is_default=row.is_default)


def _rule(row: SecurityGroupRule) -> SecurityGroupRuleInfo:
    return SecurityGroupRuleInfo(id=row.id, group_id=row.group_id, project_id=row.project_id,
                                 direction=row.direction, ethertype=row.ethertype, protocol=row.protocol,
                                 port_range_min=row.port_range_min, port_range_max=row.port_range_max,
                                 remote_ip_prefix=row.remote_ip_prefix, remote_group_id=row.remote_group_id)


class NetworkService:
    def __init__(self, db: Database, bus: Bus) -> None:
        self.db, self.bus = db, bus
        # every committed write of these publishes resource.<kind>.* (cumulo.core.watch), with the
        # status the API shows
        watch(db, bus, Port, "port", lambda row: row["status"])
        watch(db, bus, Network, "network", lambda row: "ACTIVE", fields=())
        watch(db, bus, RouterRow, "router", lambda row: "ACTIVE", fields=())
        watch(db, bus, FloatingIP, "floatingip", lambda row: "ACTIVE" if row.get("port_id") else "DOWN",
              fields=("port_id",))
        self.ipam = Ipam(db)
        self.groups = SecurityGroups(db)

    async def _changed(self, **about: Any) -> None:
        await self.bus.publish("network.changed", about)  # the dataplane wires what changed

    # -- networks and ports ----------------------------------------------------------------------
    async def network(self, network_id: str, project: str | None, admin: bool) -> NetworkInfo:
        """A network the caller may see (404 NetworkNotFound otherwise)."""
        return _network(await self.ipam.network(network_id, project, admin))

    async def port(self, port_id: str, project: str | None, admin: bool) -> PortInfo:
        """A port the caller may see (404 PortNotFound otherwise)."""
        return _port(await self.ipam.port(port_id, project, admin))

    async def auto_network_candidates(self, project: str) -> list[str]:
        """The networks a server of ``project`` may get automatically: the project's own
        non-external networks, else the shared non-external ones of other projects."""
        async with self.db.session() as s:
            own = list((await s.execute(select(Network.id).where(
                Network.project_id == project, Network.external.is_(False)))).scalars())
            shared = list((await s.execute(select(Network.id).where(
                Network.shared.is_(True), Network.external.is_(False), Network.project_id != project))).scalars())
        return own or shared

    # -- a server's ports --------------------------------------------------------------------------
    async def allocate_ports(self, server_id: str, project: str, zone: str | None, networks: list[dict[str, Any]],
                             security_groups: list[str]) -> PortClaim:
        """Ports for a server's requested networks (``{"uuid", "fixed_ip"?}`` entries get a port made
        for the server, ``{"port"}`` entries hand it that port).  All or nothing: on a failure the
        ports made so far are deleted again."""
        owner = f"compute:{zone or 'nova'}"
        made: list[str] = []
        ports: list[str] = []
        groups = None
        try:
            for entry in networks:
                if entry.get("port"):
                    ports.append(entry["port"])
                    continue
                async with self.db.session() as s:
                    net = await s.get(Network, entry["uuid"])
                secure = net.port_security_enabled if net is not None else True
                if secure and groups is None:
                    groups = await self.security_group_ids(security_groups, project)
                fixed = [{"ip_address": entry["fixed_ip"]}] if entry.get("fixed_ip") else None
                port = await self.ipam.create_port(
                    {"network_id": entry["uuid"], "project_id": project, "device_id": server_id,
                     "device_owner": owner, "port_security_enabled": secure,
                     "security_groups": groups if secure else []}, fixed, project, True)
                made.append(port.id)
                ports.append(port.id)
            given = [p for p in ports if p not in made]
            if given:
                async with self.db.session() as s:
                    await s.execute(update(Port).where(Port.id.in_(given)).values(device_id=server_id,
                                                                                 device_owner=owner))
        except Exception:
            await self.drop_ports(server_id, made)
            raise
        return PortClaim(ports=ports, made=made)

    async def drop_ports(self, server_id: str, port_ids: list[str]) -> None:
        """Undo: delete ports made for a server; one that cannot go now stays (with the server's
        device_id, so the server's delete removes it)."""
        for port_id in port_ids:
            try:
                await self._drop_port(port_id)
            except Exception as exc:
                LOG.warning("port %s made for server %s stays for now: %s", port_id, server_id,
                            exc or type(exc).__name__)

    async def _drop_port(self, port_id: str) -> None:
        """Delete a port made for a server; only a port that is missing counts as done already."""
        try:
            port = await self.ipam.port(port_id, None, True)
        except NotFound:
            LOG.info("port %s was already gone", port_id)
            return
        await self.ipam.delete_port(port)

    async def bind_ports(self, server_id: str, host: str | None) -> None:
        """The server's ports are on ``host`` now (ACTIVE), or on no host (DOWN)."""
        async with self.db.session() as s:
            await s.execute(update(Port).where(Port.device_id == server_id, Port.device_owner.like(SERVER_PORTS))
                            .values(binding_host_id=host or "", status="ACTIVE" if host else "DOWN"))
        await self._changed(server_id=server_id)

    async def release_ports(self, server_id: str, given: set[str]) -> None:
        """The server is gone: the ports made for it are deleted, the ``given`` ones handed back."""
        async with self.db.session() as s:
            ports = list((await s.execute(select(Port.id).where(
                Port.device_id == server_id, Port.device_owner.like(SERVER_PORTS)))).scalars())
        for port_id in ports:
            if port_id not in given:
                await self._drop_port(port_id)
            else:
                async with self.db.session() as s:
                    await s.execute(update(Port).where(Port.id == port_id).values(
                        device_id="", device_owner="", binding_host_id="", status="DOWN"))
        if ports:
            await self._changed(server_id=server_id)

    async def server_ports(self, server_id: str) -> list[PortInfo]:
        """The server's ports, oldest first."""
        async with self.db.session() as s:
            rows = (await s.execute(select(Port).where(
                Port.device_id == server_id, Port.device_owner.like(SERVER_PORTS)).order_by(Port.created_at))).scalars()
            return [_port(p) for p in rows]

    async def ports_for_server(self, server_id: str) -> list[dict[str, Any]]:
        """What a compute host needs to plug the server's ports: id, mac_address, network_id,
        network_name, segment_id, mtu and fixed_ips of each, oldest first."""
        async with self.db.session() as s:
            rows = (await s.execute(select(Port, Network).join(Network, Network.id == Port.network_id).where(
                Port.device_id == server_id, Port.device_owner.like(SERVER_PORTS)).order_by(Port.created_at))).all()
        ips = await self.ipam.allocations([p.id for p, _ in rows])
        return [{"id": p.id, "mac_address": p.mac_address, "network_id": n.id, "network_name": n.name,
                 "segment_id": n.segment_id, "mtu": n.mtu, "fixed_ips": ips[p.id], "status": p.status}
                for p, n in rows]

    async def add_fixed_ip(self, server_id: str, network_id: str) -> str | None:
        """Nova's addFixedIp: one more address for the server's port on ``network_id``, from the
        first of the network's subnets with room; None when it has no port there or none has room."""
        async with self.db.session() as s:
            ports = list((await s.execute(select(Port).where(
                Port.device_id == server_id, Port.device_owner.like(SERVER_PORTS), Port.network_id == network_id)
                .order_by(Port.created_at))).scalars())
            subnets = list((await s.execute(select(Subnet).where(Subnet.network_id == network_id).order_by(
                Subnet.created_at))).scalars())
        for port in ports:
            for subnet in subnets:
                try:
                    address = await self.ipam._take(port, subnet, None)
                except Conflict:
                    continue
                await self._changed(server_id=server_id)
                return address
        return None

    async def remove_fixed_ip(self, server_id: str, address: str) -> bool:
        """Nova's removeFixedIp: the address leaves the server's port that holds it (False: none does)."""
        async with self.db.session() as s:
            row = (await s.execute(select(IPAllocation).join(Port, Port.id == IPAllocation.port_id).where(
                Port.device_id == server_id, Port.device_owner.like(SERVER_PORTS),
                IPAllocation.ip_address == address))).scalar()
        if row is None:
            return False
        await self.ipam.release(row.port_id, [(row.subnet_id, row.ip_address)])
        await self._changed(server_id=server_id)
        return True

    async def detach_port(self, server_id: str, port_id: str, keep: bool) -> None:
        """An interface detached from the server: a port made for it is deleted, one it was given
        (``keep``) handed back unbound."""
        if keep:
            async with self.db.session() as s:
                await s.execute(update(Port).where(Port.id == port_id, Port.device_id == server_id).values(
                    device_id="", device_owner="", binding_host_id="", status="DOWN"))
        else:
            await self._drop_port(port_id)
        await self._changed(server_id=server_id)

    async def server_addresses(self, server_ids: list[str]) -> ServerAddresses:
        """The fixed addresses of the servers' ports and the floating addresses bound to them."""
        async with self.db.session() as s:
            rows = (await s.execute(select(Port.device_id, Port.mac_address, Network.name, IPAllocation.ip_address,
                                           Port.id).join(Network, Network.id == Port.network_id).join(
                IPAllocation, IPAllocation.port_id == Port.id).where(
                Port.device_id.in_(server_ids), Port.device_owner.like(SERVER_PORTS)).order_by(Port.created_at))).all()
            fips = (await s.execute(select(FloatingIP.port_id, FloatingIP.floating_ip_address).where(
                FloatingIP.port_id.in_([r[4] for r in rows])))).all() if rows else []
        fixed = [FixedAddress(server_id=device, port_id=port_id, mac_address=mac, network_name=net_name,
                              ip_address=address) for device, mac, net_name, address, port_id in rows]
        return ServerAddresses(fixed=fixed, floating={port_id: address for port_id, address in fips})

    async def servers_with_address(self, pattern: str, version: int) -> list[str]:
        """The servers with an IPv``version`` address matching the regular expression ``pattern``."""
        regex = re.compile(pattern)
        async with self.db.session() as s:
            rows = (await s.execute(select(Port.device_id, IPAllocation.ip_address).join(
                IPAllocation, IPAllocation.port_id == Port.id).where(Port.device_owner.like(SERVER_PORTS)))).all()
        return sorted({d for d, a in rows if ipaddress.ip_address(a).version == version and regex.search(a)})

    async def addressed_ports(self, port_ids: list[str]) -> set[str]:
        """Which of these ports have at least one address."""
        async with self.db.session() as s:
            return set((await s.execute(select(IPAllocation.port_id).where(
                IPAllocation.port_id.in_(port_ids)))).scalars())

    async def add_security_group(self, server_id: str, port_ids: list[str], group_id: str) -> None:
        """Put the group on each of the server's ports that lacks it."""
        async with self.db.session() as s:
            for port_id in port_ids:
                row = await s.get(Port, port_id, with_for_update=True)
                if row is not None and group_id not in (row.security_groups or []):
                    row.security_groups = [*(row.security_groups or []), group_id]
                    row.revision_number += 1
        await self._changed(server_id=server_id)

    async def remove_security_group(self, server_id: str, port_ids: list[str], group_id: str) -> bool:
        """Take the group off the server's ports; False (and nothing announced) when none had it."""
        removed = False
        async with self.db.session() as s:
            for port_id in port_ids:
                row = await s.get(Port, port_id, with_for_update=True)
                if row is not None and group_id in (row.security_groups or []):
                    row.security_groups = [g for g in row.security_groups if g != group_id]
                    row.revision_number += 1
                    removed = True
        if removed:
            await self._changed(server_id=server_id)
        return removed

    # -- security groups ---------------------------------------------------------------------------
    async def default_security_group(self, project: str) -> str:
        """The id of the project's default group, made on first use."""
        return await self.groups.default(project)

    async def security_group_ids(self, names: list[str], project: str) -> list[str]:
        """The project's security groups by name (or id), as Nova resolves them; "default" is
        made on first use.  An unknown name is a 400, a name two groups share a 409."""
        out = []
        for name in names or ["default"]:
            if name == "default":
                out.append(await self.groups.default(project))
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

    async def security_groups_named(self, name: str, project: str) -> list[SecurityGroupInfo]:
        """The project's groups that ``name`` names: the one with that id, else those with that
        name ("default" is made on first use).  Empty when none; several when a name is shared."""
        async with self.db.session() as s:
            row = await s.get(SecurityGroup, name) if len(name) <= 36 else None
            if row is not None and row.project_id == project:
                return [_group(row)]
            found = [_group(g) for g in (await s.execute(select(SecurityGroup).where(
                SecurityGroup.project_id == project, SecurityGroup.name == name))).scalars()]
        if not found and name == "default":
            default_id = await self.groups.default(project)
            async with self.db.session() as s:
                found = [_group(g) for g in [await s.get(SecurityGroup, default_id)] if g is not None]
        return found

    async def security_group(self, group_id: str, project: str, admin: bool) -> SecurityGroupInfo:
        """A group the caller may see (404 SecurityGroupNotFound otherwise)."""
        return _group(await self.groups.get(group_id, project, admin))

    async def security_groups(self, project: str | None) -> list[SecurityGroupInfo]:
        """The groups of ``project`` (of every project when None), oldest first."""
        stmt = select(SecurityGroup).order_by(SecurityGroup.created_at)
        if project is not None:
            stmt = stmt.where(SecurityGroup.project_id == project)
        async with self.db.session() as s:
            return [_group(g) for g in (await s.execute(stmt)).scalars()]

    async def security_groups_by_id(self, group_ids: list[str] | set[str]) -> dict[str, SecurityGroupInfo]:
        if not group_ids:
            return {}
        async with self.db.session() as s:
            return {g.id: _group(g) for g in (await s.execute(select(SecurityGroup).where(
                SecurityGroup.id.in_(group_ids)))).scalars()}

    async def security_group_rules(self, group_ids: list[str]) -> dict[str, list[SecurityGroupRuleInfo]]:
        """Each group's rules, oldest first."""
        return {g: [_rule(r) for r in rules] for g, rules in (await self.groups.rules(group_ids)).items()}

    async def create_security_group(self, name: str, description: str, project: str) -> SecurityGroupInfo:
        """A group that allows all egress, as the Network API makes one (OverQuota when the
        project's ``security_group`` quota is full)."""
        async with quotas.turn(self.db, "security_group", project):  # the Network API's turn too
            await self._within_quota("security_group", project)
            group = SecurityGroup(id=str(uuid.uuid4()), name=name, description=description, project_id=project)
            async with self.db.session() as s:
                s.add(group)
                for ethertype in ("IPv4", "IPv6"):
                    s.add(SecurityGroupRule(id=str(uuid.uuid4()), group_id=group.id, project_id=project,
                                            direction="egress", ethertype=ethertype))
        return SecurityGroupInfo(id=group.id, name=name, description=description, project_id=project,
                                 is_default=False)

    async def rename_security_group(self, group_id: str, name: str, description: str) -> SecurityGroupInfo | None:
        """New name and description; None when the group is gone."""
        async with self.db.session() as s:
            row = await s.get(SecurityGroup, group_id)
            if row is None:
                return None
            row.name, row.description = name, description
            row.revision_number += 1
            return _group(row)

    async def security_group_in_use(self, group_id: str) -> bool:
        """Whether any port has the group."""
        async with self.db.session() as s:
            return (await s.execute(select(Port.id).where(
                cast(Port.security_groups, Text).contains(group_id)).limit(1))).first() is not None

    async def delete_security_group(self, group_id: str) -> None:
        """The group, its rules, and every rule that names it as the source (as Neutron cascades)."""
        async with self.db.session() as s:
            referring = set((await s.execute(select(SecurityGroupRule.group_id).where(
                SecurityGroupRule.remote_group_id == group_id, SecurityGroupRule.group_id != group_id))).scalars())
            await s.execute(delete(SecurityGroupRule).where(
                (SecurityGroupRule.group_id == group_id) | (SecurityGroupRule.remote_group_id == group_id)))
            await s.execute(delete(DefaultSecurityGroup).where(DefaultSecurityGroup.group_id == group_id))
            await s.execute(delete(SecurityGroup).where(SecurityGroup.id == group_id))
            if referring:
                await s.execute(update(SecurityGroup).where(SecurityGroup.id.in_(referring)).values(
                    revision_number=SecurityGroup.revision_number + 1))
        await self._changed(security_group_id=group_id)

    @staticmethod
    def check_rule(item: dict[str, Any]) -> dict[str, Any]:
        """A rule's fields checked as the Network API checks them (400 otherwise), normalised."""
        return check_rule(item)

    async def create_security_group_rule(self, group_id: str, project: str,
                                         values: dict[str, Any]) -> SecurityGroupRuleInfo:
        """A rule (``values`` as ``check_rule`` returns them) in the group of ``project`` (OverQuota
        when the project's ``security_group_rule`` quota is full)."""
        async with quotas.turn(self.db, "security_group_rule", project):
            await self._within_quota("security_group_rule", project)
            rule = SecurityGroupRule(id=str(uuid.uuid4()), group_id=group_id, project_id=project, **values)
            async with self.db.session() as s:
                s.add(rule)
                await s.execute(update(SecurityGroup).where(SecurityGroup.id == group_id).values(
                    revision_number=SecurityGroup.revision_number + 1))
            info = _rule(rule)
        await self._changed(security_group_id=group_id)
        return info

    async def security_group_rule(self, rule_id: str) -> SecurityGroupRuleInfo | None:
        async with self.db.session() as s:
            row = await s.get(SecurityGroupRule, rule_id)
        return _rule(row) if row is not None else None

    async def delete_security_group_rule(self, rule: SecurityGroupRuleInfo) -> None:
        async with self.db.session() as s:
            await s.execute(delete(SecurityGroupRule).where(SecurityGroupRule.id == rule.id))
            await s.execute(update(SecurityGroup).where(SecurityGroup.id == rule.group_id).values(
                revision_number=SecurityGroup.revision_number + 1))
        await self._changed(security_group_id=rule.group_id)

    async def _within_quota(self, resource: str, project: str) -> None:
        try:
            await quotas.check(self.db, resource, project)
        except Conflict:
            raise OverQuota(resource) from None

    # -- what Compute's deprecated network proxies show (os-tenant-networks, os-networks,
    # os-floating-ips, os-floating-ip-pools, addFloatingIp/removeFloatingIp) ----------------------
    async def visible_networks(self, project: str | None, admin: bool) -> list[NetworkInfo]:
        """The networks the caller sees (an admin every one; else its own and the shared ones),
        with the CIDR of each one's first IPv4 subnet."""
        stmt = select(Network).order_by(Network.created_at)
        if not admin:
            stmt = stmt.where((Network.project_id == (project or "")) | Network.shared.is_(True))
        async with self.db.session() as s:
            return [_network(n) for n in (await s.execute(stmt)).scalars()]

    async def network_cidrs(self, network_ids: list[str]) -> dict[str, str]:
        """Each network's first IPv4 subnet CIDR (the one Nova's proxies show)."""
        if not network_ids:
            return {}
        async with self.db.session() as s:
            rows = (await s.execute(select(Subnet.network_id, Subnet.cidr).where(
                Subnet.network_id.in_(network_ids), Subnet.ip_version == 4).order_by(Subnet.created_at))).all()
        out: dict[str, str] = {}
        for network_id, cidr in rows:
            out.setdefault(network_id, cidr)
        return out

    async def floating_pools(self) -> list[NetworkInfo]:
        """The external networks: where floating IPs come from."""
        async with self.db.session() as s:
            rows = (await s.execute(select(Network).where(Network.external.is_(True))
                                    .order_by(Network.created_at))).scalars()
            return [_network(n) for n in rows]

    async def _fip_infos(self, rows: list[FloatingIP]) -> list[FloatingIPInfo]:
        async with self.db.session() as s:
            nets = {n.id: n.name for n in (await s.execute(select(Network).where(
                Network.id.in_({r.floating_network_id for r in rows})))).scalars()} if rows else {}
            devices = dict((await s.execute(select(Port.id, Port.device_id).where(
                Port.id.in_({r.port_id for r in rows if r.port_id})))).all()) if rows else {}
        return [FloatingIPInfo(id=r.id, address=r.floating_ip_address, network_id=r.floating_network_id,
                               pool=nets.get(r.floating_network_id) or r.floating_network_id,
                               project_id=r.project_id, port_id=r.port_id, fixed_address=r.fixed_ip_address,
                               server_id=devices.get(r.port_id) if r.port_id else None) for r in rows]

    async def floating_ips(self, project: str) -> list[FloatingIPInfo]:
        """The project's floating IPs, oldest first."""
        async with self.db.session() as s:
            rows = list((await s.execute(select(FloatingIP).where(FloatingIP.project_id == project)
                                         .order_by(FloatingIP.created_at))).scalars())
        return await self._fip_infos(rows)

    async def floating_ip(self, key: str, project: str | None, admin: bool, by_address: bool = False
                          ) -> FloatingIPInfo:
        """A floating IP of the project's (any, for an admin) by id or address; 404 otherwise."""
        column = FloatingIP.floating_ip_address if by_address else FloatingIP.id
        async with self.db.session() as s:
            row = (await s.execute(select(FloatingIP).where(column == key))).scalars().first()
        if row is None or not (admin or row.project_id == project):
            raise NotFound(f"Floating IP {key} could not be found.", kind="FloatingIPNotFound")
        return (await self._fip_infos([row]))[0]

    async def allocate_floating_ip(self, project: str, pool: str | None) -> FloatingIPInfo:
        """A floating IP for the project from ``pool`` (an external network's name or id; when
        none is named, the only external network, or the one called "public").  404 when there
        is no such pool or no address left in it, OverQuota past the project's quota."""
        pools = await self.floating_pools()
        if pool is not None:
            chosen = [p for p in pools if pool in (p.id, p.name)]
        else:
            chosen = pools if len(pools) == 1 else [p for p in pools if p.name == "public"]
        if not chosen:
            raise NotFound(f"Floating IP pool not found: {pool}." if pool else "No floating IP pool available.",
                           kind="FloatingIpPoolNotFound")
        net = chosen[0]
        async with quotas.turn(self.db, "floatingip", project):
            await self._within_quota("floatingip", project)
            try:
                fport = await self.ipam.create_port({"network_id": net.id, "project_id": "", "device_owner":
                                                     "network:floatingip", "port_security_enabled": False},
                                                    None, project, True)
            except Conflict:
                raise NotFound(f"No more floating IPs in pool {net.name or net.id}.",
                               kind="NoMoreFloatingIps") from None
            addresses = [x["ip_address"] for x in (await self.ipam.allocations([fport.id]))[fport.id]]
            v4 = [a for a in addresses if ipaddress.ip_address(a).version == 4] or addresses
            if not v4:
                await self.ipam.delete_port(fport)
                raise NotFound(f"No more floating IPs in pool {net.name or net.id}.", kind="NoMoreFloatingIps")
            row = FloatingIP(id=str(uuid.uuid4()), project_id=project, floating_network_id=net.id,
                             floating_ip_address=v4[0], floating_port_id=fport.id, description="", tags=[])
            async with self.db.session() as s:
                s.add(row)
                await s.execute(update(Port).where(Port.id == fport.id).values(device_id=row.id))
        await self._changed(floating_ip_id=row.id)
        return (await self._fip_infos([row]))[0]

    async def release_floating_ip(self, fip: FloatingIPInfo) -> None:
        """The floating IP goes back to its pool (disassociated first)."""
        async with self.db.session() as s:
            row = await s.get(FloatingIP, fip.id)
            port = await s.get(Port, row.floating_port_id) if row is not None else None
            if row is not None:
                await s.delete(row)
        if port is not None:
            await self.ipam.delete_port(port)
        await self._changed(floating_ip_id=fip.id)

    async def associate_floating_ip(self, fip: FloatingIPInfo, server_id: str, fixed: str | None) -> FloatingIPInfo:
        """Bind the floating IP to the server's port holding ``fixed`` (its first IPv4 address when
        None), through a router with an interface on that port's subnet and its gateway on the
        floating IP's network.  400 when the server has no such address, the address already has
        a floating IP or no router reaches it."""
        ports = await self.server_ports(server_id)
        ips = await self.ipam.allocations([p.id for p in ports])
        choices = [(p, x) for p in ports for x in ips[p.id] if ipaddress.ip_address(x["ip_address"]).version == 4
                   and (fixed is None or x["ip_address"] == fixed)]
        if not choices:
            raise BadRequest(f"Server {server_id} has no fixed IPv4 address {fixed or ''}".strip() + ".")
        port, address = choices[0]
        async with self.db.session() as s:
            taken = (await s.execute(select(FloatingIP.floating_ip_address).where(
                FloatingIP.port_id == port.id, FloatingIP.fixed_ip_address == address["ip_address"],
                FloatingIP.id != fip.id))).scalars().first()
            routers = list((await s.execute(select(RouterRow.id).where(
                RouterRow.gateway_network_id == fip.network_id))).scalars())
            reaching = (await s.execute(select(Port.device_id).join(
                IPAllocation, IPAllocation.port_id == Port.id).where(
                Port.device_id.in_(routers), Port.device_owner == "network:router_interface",
                IPAllocation.subnet_id == address["subnet_id"]))).scalars().first() if routers else None
        if taken:
            raise BadRequest(f"Fixed IP {address['ip_address']} of server {server_id} already has floating IP "
                             f"{taken}.")
        if reaching is None:
            raise BadRequest(f"External network {fip.network_id} is not reachable from subnet "
                             f"{address['subnet_id']}: no router joins them.")
        async with self.db.session() as s:
            await s.execute(update(FloatingIP).where(FloatingIP.id == fip.id).values(
                port_id=port.id, fixed_ip_address=address["ip_address"], router_id=reaching,
                revision_number=FloatingIP.revision_number + 1))
        await self._changed(floating_ip_id=fip.id, server_id=server_id)
        return await self.floating_ip(fip.id, None, True)

    async def disassociate_floating_ip(self, fip: FloatingIPInfo) -> None:
        async with self.db.session() as s:
            await s.execute(update(FloatingIP).where(FloatingIP.id == fip.id).values(
                port_id=None, fixed_ip_address=None, router_id=None, revision_number=FloatingIP.revision_number + 1))
        await self._changed(floating_ip_id=fip.id)


@dataclass(frozen=True)
class FloatingIPInfo:
    id: str
    address: str
    network_id: str
    pool: str  # the floating network's name (its id when it has none)
    project_id: str
    port_id: str | None
    fixed_address: str | None
    server_id: str | None
