"""The desired state of the dataplane, built from the Network API's tables for the agents (which
never open the database): networks with their subnets and DHCP port, every port with its
addresses and security, security groups with rules, routers with interfaces, gateway, routes
and floating IPs.  One read of each table, so a reconcile costs the same few queries at any size.

Served on the bus as ``network.dataplane_state``.  A network with DHCP gets its DHCP port here,
when an agent first asks for it (as Neutron's DHCP agent makes its own).

An agent that names its host and tunnel address (several hosts) is given only what its host
needs (``for_host``): the networks of the ports bound there (``binding:host_id``) and of the DHCP
servers and routers scheduled there (``cumulo.network.agents.schedule``), the ports of those
networks, the routers scheduled there, the security groups those ports use; and for each VXLAN
network the VNI and the tunnel addresses of the other hosts that have it (head-end replication).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from collections import defaultdict
from typing import Any

from sqlalchemy import Text, select, type_coerce

from cumulo.core.db import Database
from cumulo.network.agents import DHCP, L3, schedule, tunnel_hosts
from cumulo.network.metering_models import MeteringLabel, MeteringLabelRule
from cumulo.network.models import (
    FloatingIP,
    IPAllocation,
    Network,
    Port,
    Router,
    SecurityGroup,
    SecurityGroupRule,
    Subnet,
)
from cumulo.network.qos import effective, port_rules

LOG = logging.getLogger(__name__)
DHCP_OWNER = "network:dhcp"


class Topology:
    def __init__(self, db: Database, network: Any) -> None:
        self.db, self.network = db, network  # network: the Ipam (addresses of DHCP ports)

    async def start(self, bus: Any) -> None:
        async def handle(method: str, args: dict[str, Any]) -> Any:
            if method == "dataplane_state":
                if args.get("host") and args.get("tunnel_address"):  # one of several hosts
                    return await self.state(host=str(args["host"]), tunnel_address=str(args["tunnel_address"]))
                return await self.state()
            raise ValueError(f"unknown network method {method}")

        await bus.serve("network", handle)

    async def state(self, ensure: bool = True, host: str | None = None,
                    tunnel_address: str | None = None) -> dict[str, Any]:
        """The whole desired state, or (``host`` and its ``tunnel_address`` given) that host's part."""
        if ensure:
            await self.ensure_dhcp_ports()
        async with self.db.session() as s:
            networks = list((await s.execute(select(Network))).scalars())
            subnets = list((await s.execute(select(Subnet))).scalars())
            # plain rows, not ORM objects, for the two tables that grow with every server; their
            # JSON as text, decoded with the rest of the assembly in a worker thread
            # ... read in partitions, so the loop serves others between them
            ports = await _rows(s, select(
                Port.id, Port.network_id, Port.mac_address, Port.device_owner, Port.device_id, Port.binding_host_id,
                Port.admin_state_up, Port.port_security_enabled, type_coerce(Port.security_groups, Text),
                Port.dns_name, type_coerce(Port.allowed_address_pairs, Text),
                type_coerce(Port.extra_dhcp_opts, Text)))
            allocations = await _rows(s, select(IPAllocation.port_id, IPAllocation.subnet_id, IPAllocation.ip_address))
            groups = list((await s.execute(select(SecurityGroup))).scalars())
            rules = list((await s.execute(select(SecurityGroupRule))).scalars())
            routers = list((await s.execute(select(Router))).scalars())
            fips = list((await s.execute(select(FloatingIP))).scalars())
            labels = list((await s.execute(select(MeteringLabel))).scalars())
            label_rules = list((await s.execute(select(MeteringLabelRule))).scalars())
        bindings, qos_rules = await port_rules(self.db)
        # thousands of ports: built off the event loop, which keeps serving the APIs meanwhile
        state = await asyncio.to_thread(_assemble, networks, subnets, ports, allocations, groups, rules, routers, fips)
        for port in state["ports"]:  # what cumulo.network.dataplane.qos enforces on it
            port["qos"] = effective(port, bindings, qos_rules)
        meters = metering_of(labels, label_rules)
        owners = {r.id: r.project_id for r in routers}
        for view in state["routers"]:  # a label meters its project's routers; a shared one every router
            view["metering"] = [m for m in meters if m["shared"] or m["project_id"] == owners.get(view["id"])]
        if host and tunnel_address:
            tunnels = await tunnel_hosts(self.db)
            tunnels[host] = tunnel_address  # before its first heartbeat is recorded
            placed = await schedule(self.db, tunnels)
            state = await asyncio.to_thread(for_host, state, host, tunnels, placed)
        return state

    async def ensure_dhcp_ports(self) -> None:
        """Each network with a DHCP subnet has one DHCP port with an address on each such subnet."""
        async with self.db.session() as s:
            subnets = list((await s.execute(select(Subnet).where(Subnet.enable_dhcp.is_(True)))).scalars())
            ports = {p.network_id: p for p in (await s.execute(select(Port).where(
                Port.device_owner == DHCP_OWNER))).scalars()}
            have = {(a.port_id, a.subnet_id) for a in (await s.execute(select(IPAllocation).where(
                IPAllocation.port_id.in_([p.id for p in ports.values()])))).scalars()} if ports else set()
        wanted: dict[str, list[Subnet]] = defaultdict(list)
        for sub in subnets:
            if sub.ip_version == 4 or sub.ipv6_address_mode in ("dhcpv6-stateful", "dhcpv6-stateless"):
                wanted[sub.network_id].append(sub)
        for network_id, subs in wanted.items():
            port = ports.get(network_id)
            try:
                if port is None:
                    async with self.db.session() as s:
                        net = await s.get(Network, network_id)
                    if net is None:
                        continue
                    await self.network.create_port(
                        {"network_id": network_id, "project_id": net.project_id, "device_owner": DHCP_OWNER,
                         "device_id": f"dhcp-{network_id}", "port_security_enabled": False, "status": "ACTIVE"},
                        [{"subnet_id": x.id} for x in subs], None, True)
                    continue
                for sub in subs:
                    if (port.id, sub.id) not in have:
                        await self.network._take(port, sub, None)
            except Exception as exc:  # noqa: BLE001 - a full pool: that network runs without DHCP for now
                LOG.warning("no DHCP port for network %s: %s", network_id, exc)


async def _rows(session: Any, stmt: Any, size: int = 5000) -> list[Any]:
    out: list[Any] = []
    result = await session.stream(stmt.execution_options(yield_per=size))
    async for part in result.partitions(size):
        out += part
        await asyncio.sleep(0)
    return out


def _json(text: str | None) -> Any:
    return json.loads(text) if text else []


def _assemble(networks: list[Network], subnets: list[Subnet], ports: Any, allocations: Any,
              groups: list[SecurityGroup], rules: list[SecurityGroupRule], routers: list[Router],
              fips: list[FloatingIP]) -> dict[str, Any]:
    """The desired state from the tables' rows (a pure function, run in a worker thread)."""
    by_net: dict[str, list[Subnet]] = defaultdict(list)
    cidrs = {}
    for sub in subnets:
        by_net[sub.network_id].append(sub)
        cidrs[sub.id] = sub.cidr
    prefixes = {sid: str(ipaddress.ip_network(cidr).prefixlen) for sid, cidr in cidrs.items()}
    ips: dict[str, list[dict[str, str]]] = defaultdict(list)
    for port_id, subnet_id, address in allocations:
        ips[port_id].append({"subnet_id": subnet_id, "ip_address": address,
                             "prefixlen": prefixes.get(subnet_id, "32")})
    port_views = [{"id": p.id, "network_id": p.network_id, "mac": p.mac_address, "ips": ips.get(p.id, []),
                   "device_owner": p.device_owner, "device_id": p.device_id, "host": p.binding_host_id,
                   "admin_state_up": p.admin_state_up, "port_security": p.port_security_enabled,
                   "security_groups": _json(p[8]), "dns_name": p.dns_name or "",
                   "allowed_address_pairs": _json(p[10]), "extra_dhcp_opts": _json(p[11])} for p in ports]
    dhcp_port = {p["network_id"]: p for p in port_views if p["device_owner"] == DHCP_OWNER}
    rules_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rules:
        rules_of[r.group_id].append({"id": r.id, "direction": r.direction, "ethertype": r.ethertype,
                                     "protocol": r.protocol, "port_range_min": r.port_range_min,
                                     "port_range_max": r.port_range_max, "remote_ip_prefix": r.remote_ip_prefix,
                                     "remote_group_id": r.remote_group_id})
    by_id = {p["id"]: p for p in port_views}
    interfaces_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for p in port_views:
        if p["device_owner"] == "network:router_interface":
            interfaces_of[p["device_id"]].append(p)
    router_views = []
    for r in routers:
        interfaces = interfaces_of.get(r.id, [])
        gateway = by_id.get(r.gateway_port_id or "")
        if gateway is not None:
            gateway = {**gateway, "subnets": [{"id": x.id, "cidr": x.cidr, "gateway_ip": x.gateway_ip}
                                              for x in by_net.get(gateway["network_id"], [])]}
        router_views.append({
            "id": r.id, "admin_state_up": r.admin_state_up, "enable_snat": r.enable_snat,
            "routes": r.routes or [], "interfaces": interfaces, "gateway": gateway,
            "floating_ips": [{"id": f.id, "floating_ip_address": f.floating_ip_address,
                              "fixed_ip_address": f.fixed_ip_address, "port_id": f.port_id}
                             for f in fips if f.router_id == r.id and f.port_id and f.fixed_ip_address]})
    return {
        "networks": [{"id": n.id, "mtu": n.mtu, "segment_id": n.segment_id, "external": n.external,
                      "network_type": n.network_type,
                      "admin_state_up": n.admin_state_up,
                      "subnets": [{"id": x.id, "cidr": x.cidr, "ip_version": x.ip_version,
                                   "gateway_ip": x.gateway_ip, "enable_dhcp": x.enable_dhcp,
                                   "dns_nameservers": x.dns_nameservers or [], "host_routes": x.host_routes or [],
                                   "ipv6_address_mode": x.ipv6_address_mode, "ipv6_ra_mode": x.ipv6_ra_mode}
                                  for x in by_net.get(n.id, [])],
                      "dhcp_port": dhcp_port.get(n.id)} for n in networks],
        "ports": port_views,
        "security_groups": {g.id: {"stateful": g.stateful, "rules": rules_of.get(g.id, [])} for g in groups},
        "routers": router_views,
    }


def for_host(state: dict[str, Any], host: str, tunnels: dict[str, str],
             placed: dict[str, dict[str, set[str]]]) -> dict[str, Any]:
    """What ``host`` builds of the desired ``state``: the networks that have a port bound there or
    a DHCP server or router scheduled there (``placed``: kind -> resource -> hosts), their ports,
    its routers, its ports' security groups; a VXLAN network carries ``tunnel``: its VNI, this
    host's address and the other hosts' that have the network (``tunnels``: host -> address)."""
    dhcp_on, routers_on = placed.get(DHCP, {}), placed.get(L3, {})
    hosts_of: dict[str, set[str]] = defaultdict(set)
    for p in state["ports"]:
        if p.get("host"):
            hosts_of[p["network_id"]].add(p["host"])
    for network_id, where in dhcp_on.items():
        hosts_of[network_id] |= where
    for r in state["routers"]:
        where = routers_on.get(r["id"], set())
        for port in [*r["interfaces"], *([r["gateway"]] if r.get("gateway") else [])]:
            hosts_of[port["network_id"]] |= where
    mine = {n for n, where in hosts_of.items() if host in where}
    local = tunnels.get(host, "")
    networks = []
    for net in state["networks"]:
        if net["id"] not in mine:
            continue
        net = dict(net)
        if host not in dhcp_on.get(net["id"], ()):
            net["dhcp_port"] = None  # its DHCP runs on another host
        if net.get("network_type") == "vxlan" and net.get("segment_id"):
            peers = {tunnels[h] for h in hosts_of[net["id"]] if h != host and h in tunnels} - {local}
            net["tunnel"] = {"vni": net["segment_id"], "local": local, "peers": sorted(peers)}
        networks.append(net)
    ports = [p for p in state["ports"] if p["network_id"] in mine]
    groups = state["security_groups"]
    used = {g for p in ports for g in p.get("security_groups") or []}
    used |= {r["remote_group_id"] for g in list(used) for r in groups.get(g, {}).get("rules", [])
             if r.get("remote_group_id")}
    return {**state, "networks": networks, "ports": ports,
            "routers": [r for r in state["routers"] if host in routers_on.get(r["id"], ())],
            "security_groups": {g: v for g, v in groups.items() if g in used}}


def metering_of(labels: list[MeteringLabel], rules: list[MeteringLabelRule]) -> list[dict[str, Any]]:
    """Each metering label with its rules, as the agent counts them on a router's gateway."""
    rules_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rules:
        rules_of[r.label_id].append({"id": r.id, "direction": r.direction, "excluded": r.excluded,
                                     "remote_ip_prefix": r.remote_ip_prefix, "source_ip_prefix": r.source_ip_prefix,
                                     "destination_ip_prefix": r.destination_ip_prefix})
    return [{"id": m.id, "project_id": m.project_id, "shared": m.shared,
             "rules": sorted(rules_of.get(m.id, []), key=lambda r: r["id"])} for m in labels]


def notifying(app: Any, bus: Any) -> Any:
    """Wraps the Network API: after a successful write, ``network.changed`` on the bus, so the
    agents reconcile at once instead of at their next round."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await app(scope, receive, send)
            return
        status = {}

        async def watch(message: Any) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        await app(scope, receive, watch)
        if status.get("code", 500) < 400:
            await bus.publish("network.changed", {"path": scope["path"]})

    wrapped.app = app  # type: ignore[attr-defined]  # what it wraps (its OpenAPI document)
    return wrapped
