"""The network agents as the Network API shows them (Neutron's ``agent``, ``dhcp_agent_scheduler``
and ``l3_agent_scheduler``): each machine's network agent (``cumulo.network.agent``) does the work
of Neutron's four, so it is listed as four agents on its host: the DHCP agent (dnsmasq per
network), the L3 agent (a namespace per router), the metadata agent (the metadata proxy) and the
Linux bridge agent (a bridge per network, security groups as iptables rules).

A single host (agents without a tunnel address, ``[network] tunnel_address`` empty):

The agent's heartbeat (a cast to ``network-agents`` every ``report_interval`` seconds and after
every reconcile round) carries what it serves; the leader's ``Registry`` records it here: the
agents' rows (``alive`` while a beat came within ``AGENT_DOWN_TIME`` seconds) and which networks
each DHCP agent and which routers each L3 agent host.  Every agent converges the whole desired
state, a live DHCP agent hosts every network with a DHCP subnet and a live L3 agent every router
(at once, as Neutron schedules them when the subnet or router is made; the dataplane follows
within a round), besides what its heartbeats reported.  An admin may schedule another network or
router on an agent (``POST``; 409 when it is hosted already), which stays until the admin
removes it (``DELETE``; 409 when it is not hosted, or hosted because every agent serves it).

Several hosts: an agent that reports a tunnel address (its Linux bridge agent shows it as
``configurations.tunneling_ip``, Neutron's linuxbridge agent's ``[vxlan] local_ip``) builds only
what its host needs (``cumulo.network.topology.for_host``), and each network with DHCP and each
router is scheduled (``schedule``) on one such agent, as Neutron's schedulers do with
``dhcp_agents_per_network`` = 1: the live agent (admin_state_up) hosting the fewest, the
binding kept as an admin's is.  A resource none of whose agents is alive any more is rescheduled
on a live one (and taken off the dead one), as Neutron's ``allow_automatic_dhcp_failover`` and
``allow_automatic_l3agent_failover`` do.  An admin may add an agent (``POST``) or remove one
(``DELETE``; the next round schedules it again when no live agent is left).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import delete, or_, select
from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.db import Database, IntegrityError, is_duplicate, utcnow
from cumulo.core.http.app import JSON, Router, json_body
from cumulo.core.http.authz import allowed, authorize
from cumulo.core.http.faults import BadRequest, Conflict, NotFound
from cumulo.network.models import Network, Subnet
from cumulo.network.models import Router as RouterRow
from cumulo.network.rbac_models import AgentBinding, NetworkAgent
from cumulo.network.requests import body
from cumulo.network.views import shape, shape_one

LOG = logging.getLogger(__name__)
AGENT_DOWN_TIME = 75.0  # seconds without a heartbeat before an agent is not alive (Neutron's default)
ZONE = "nova"
DHCP, L3, METADATA, BRIDGE = "DHCP agent", "L3 agent", "Metadata agent", "Linux bridge agent"
# agent_type -> (binary, topic, availability zone)
DHCP_AGENTS_PER_NETWORK = 1  # Neutron's default: one DHCP agent per network (and one L3 agent per router)
KINDS = {DHCP: ("neutron-dhcp-agent", "dhcp_agent", ZONE), L3: ("neutron-l3-agent", "l3_agent", ZONE),
         METADATA: ("neutron-metadata-agent", "N/A", None), BRIDGE: ("neutron-linuxbridge-agent", "N/A", None)}


def without(request: Request, keys: tuple[str, ...]) -> Request:
    scope = dict(request.scope)
    scope["query_string"] = urlencode([(k, v) for k, v in request.query_params.multi_items()
                                       if k not in keys]).encode()
    return Request(scope)


def configure(down_time: float) -> None:
    """Seconds without a heartbeat before an agent is not alive (``[network] agent_down_time``)."""
    global AGENT_DOWN_TIME
    AGENT_DOWN_TIME = float(down_time)


def when(value: dt.datetime | None) -> str | None:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else None


def alive(row: NetworkAgent, now: dt.datetime | None = None) -> bool:
    return ((now or utcnow()) - row.heartbeat_at).total_seconds() <= AGENT_DOWN_TIME


def agent_view(row: NetworkAgent) -> dict[str, Any]:
    return {"id": row.id, "agent_type": row.agent_type, "binary": row.binary, "topic": row.topic, "host": row.host,
            "availability_zone": row.availability_zone, "admin_state_up": row.admin_state_up,
            "description": row.description or None, "configurations": row.configurations or {},
            "alive": alive(row), "heartbeat_timestamp": when(row.heartbeat_at), "started_at": when(row.started_at),
            "created_at": when(row.created_at), "resources_synced": None}


def configurations(kind: str, report: dict[str, Any]) -> dict[str, Any]:
    """What Neutron's agent of ``kind`` tells in its ``configurations``, from the report's counts."""
    counts = report.get("counts") or {}
    if kind == DHCP:
        return {"dhcp_driver": "dnsmasq", "networks": counts.get("networks", 0), "subnets": counts.get("subnets", 0),
                "ports": counts.get("ports", 0), "notifies_port_ready": True, "log_agent_heartbeats": False,
                "report_interval": report.get("report_interval")}
    if kind == L3:
        return {"agent_mode": "legacy", "routers": counts.get("router_count", 0),
                "floating_ips": counts.get("floating_ips", 0), "interfaces": counts.get("interfaces", 0),
                "ex_gw_ports": counts.get("gateways", 0), "interface_driver": "linuxbridge",
                "handle_internal_only_routers": True, "log_agent_heartbeats": False,
                "report_interval": report.get("report_interval")}
    if kind == METADATA:
        return {"metadata_proxy_socket": "namespaces", "nova_metadata_host": "127.0.0.1",
                "log_agent_heartbeats": False, "report_interval": report.get("report_interval")}
    out = {"devices": counts.get("ports", 0), "bridges": counts.get("bridges", 0),
           "interface_mappings": {}, "bridge_mappings": {}, "tunnel_types": ["vxlan"],
           "namespace_prefix": report.get("namespace_prefix"), "l2_population": False,
           "extensions": [], "firewall": "iptables", "log_agent_heartbeats": False,
           "report_interval": report.get("report_interval")}
    if report.get("tunnel_address"):  # this host carries VXLAN to the others from that address
        out["tunneling_ip"] = str(report["tunnel_address"])[:64]
        out["tunnels"] = counts.get("tunnels", 0)
    return out


def tunnel_of(row: NetworkAgent) -> str:
    """The tunnel address a Linux bridge agent reported ('' for a single host's agent)."""
    return str((row.configurations or {}).get("tunneling_ip") or "") if row.agent_type == BRIDGE else ""


async def tunnel_hosts(db: Database) -> dict[str, str]:
    """Host -> tunnel address, of every host whose agent reported one (alive or not: its
    servers may still run while its agent is away)."""
    async with db.session() as s:
        rows = (await s.execute(select(NetworkAgent).where(NetworkAgent.agent_type == BRIDGE))).scalars()
        return {r.host: ip for r in rows if (ip := tunnel_of(r))}


def dhcp_networks_stmt() -> Any:
    """The networks a DHCP agent serves: each with a subnet it gives addresses to."""
    return select(Subnet.network_id).where(Subnet.enable_dhcp.is_(True), or_(
        Subnet.ip_version == 4, Subnet.ipv6_address_mode.in_(("dhcpv6-stateful", "dhcpv6-stateless"))))


async def schedule(db: Database, tunnels: dict[str, str]) -> dict[str, dict[str, set[str]]]:
    """Each network with DHCP and each router on a live agent of a host with a tunnel address
    (``tunnels``), rescheduled off agents that are not alive; returns, per kind, the hosts each
    resource is bound to (after this round's changes)."""
    now = utcnow()
    async with db.session() as s:
        agents = list((await s.execute(select(NetworkAgent).where(
            NetworkAgent.agent_type.in_((DHCP, L3))))).scalars())
        wanted = {DHCP: list(dict.fromkeys((await s.execute(dhcp_networks_stmt())).scalars())),
                  L3: list((await s.execute(select(RouterRow.id))).scalars())}
        bindings = list((await s.execute(select(AgentBinding).where(AgentBinding.manual.is_(True)))).scalars())
    out: dict[str, dict[str, set[str]]] = {}
    add: list[tuple[str, str]] = []
    drop: list[tuple[str, str]] = []
    for kind, ids in wanted.items():
        pool = {a.id: a for a in agents if a.agent_type == kind and a.host in tunnels}
        bound: dict[str, list[NetworkAgent]] = defaultdict(list)
        load: Counter[str] = Counter()
        for b in bindings:
            if b.agent_id in pool:
                bound[b.resource_id].append(pool[b.agent_id])
                load[b.agent_id] += 1
        live = [a for a in pool.values() if a.admin_state_up and alive(a, now)]
        for rid in ids:
            have = bound.get(rid, [])
            if sum(1 for a in have if alive(a, now)) >= DHCP_AGENTS_PER_NETWORK or not live:
                continue
            choice = min((a for a in live if a not in have), key=lambda a: (load[a.id], a.host), default=None)
            if choice is None:
                continue
            dead = [a for a in have if not alive(a, now)]
            if dead:
                LOG.warning("%s %s: its %s on %s is not alive; rescheduled on %s", "network" if kind == DHCP
                            else "router", rid, kind, ", ".join(a.host for a in dead), choice.host)
            drop += [(a.id, rid) for a in dead]
            add.append((choice.id, rid))
            load[choice.id] += 1
            bound[rid] = [a for a in have if a not in dead] + [choice]
        out[kind] = {rid: {a.host for a in bound.get(rid, [])} for rid in ids}
    if add or drop:
        async with db.session() as s:
            for agent_id, rid in drop:
                await s.execute(delete(AgentBinding).where(AgentBinding.agent_id == agent_id,
                                                           AgentBinding.resource_id == rid))
            for agent_id, rid in add:  # a report may have recorded it meanwhile: made a binding
                await s.execute(delete(AgentBinding).where(AgentBinding.agent_id == agent_id,
                                                           AgentBinding.resource_id == rid))
                s.add(AgentBinding(agent_id=agent_id, resource_id=rid, manual=True))
    return out


class Registry:
    """The leader's record of the agents' heartbeats (served on the bus as ``network-agents``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def start(self, bus: Any) -> None:
        async def handle(method: str, args: dict[str, Any]) -> Any:
            if method == "report":
                await self.report(args)
                return None
            raise ValueError(f"unknown network-agents method {method}")

        await bus.serve("network-agents", handle)

    async def report(self, report: dict[str, Any]) -> None:
        host = str(report.get("host") or "")[:255]
        if not host:
            return
        now = utcnow()
        started = dt.datetime.fromtimestamp(float(report.get("started_at") or now.timestamp()), dt.UTC)
        started = started.replace(tzinfo=None)
        hosted = {DHCP: report.get("dhcp_networks"), L3: report.get("routers")}
        for kind, (binary, topic, zone) in KINDS.items():
            for _ in range(2):  # two controllers' first reports may race to make the row
                try:
                    async with self.db.session() as s:
                        row = (await s.execute(select(NetworkAgent).where(
                            NetworkAgent.agent_type == kind, NetworkAgent.host == host))).scalar()
                        if row is None:
                            row = NetworkAgent(id=str(uuid.uuid4()), agent_type=kind, binary=binary, topic=topic,
                                               host=host, availability_zone=zone, created_at=now)
                            s.add(row)
                        row.heartbeat_at, row.started_at = now, started
                        row.configurations = configurations(kind, report)
                        version = report.get("version")  # an older agent sends none
                        row.version = str(version)[:32] if version else None
                        ids = hosted.get(kind)
                        if ids is not None:  # what it hosts now, besides what an admin scheduled
                            await s.flush()
                            await s.execute(delete(AgentBinding).where(AgentBinding.agent_id == row.id,
                                                                       AgentBinding.manual.is_(False)))
                            manual = set((await s.execute(select(AgentBinding.resource_id).where(
                                AgentBinding.agent_id == row.id))).scalars())
                            s.add_all(AgentBinding(agent_id=row.id, resource_id=str(i), manual=False)
                                      for i in dict.fromkeys(ids) if str(i) not in manual)
                    break
                except IntegrityError as exc:
                    if not is_duplicate(exc):
                        raise


def router(db: Database, network_views: Callable[[list[Network]], Awaitable[list[dict[str, Any]]]],
           router_views: Callable[[list[RouterRow]], Awaitable[list[dict[str, Any]]]]) -> Router:
    """The agents API; ``network_views`` and ``router_views`` show networks and routers as their
    own APIs do (for the hosted-resource lists)."""
    r = Router()

    async def get(agent_id: str) -> NetworkAgent:
        async with db.session() as s:
            row = await s.get(NetworkAgent, agent_id)
        if row is None:
            raise NotFound(f"Agent {agent_id} could not be found.", kind="AgentNotFound")
        return row

    async def due(kind: str, resource_id: str | None = None) -> list[str]:
        """What every live agent of ``kind`` is to host, as it converges the whole desired state:
        each network with a subnet it gives addresses to (DHCP), each router (L3)."""
        if kind == DHCP:
            stmt = dhcp_networks_stmt()
            if resource_id is not None:
                stmt = stmt.where(Subnet.network_id == resource_id)
        else:
            stmt = select(RouterRow.id)
            if resource_id is not None:
                stmt = stmt.where(RouterRow.id == resource_id)
        async with db.session() as s:
            return list(dict.fromkeys((await s.execute(stmt)).scalars()))

    async def everything(agent: NetworkAgent) -> bool:
        """Whether the agent serves the whole desired state: it is alive on a single host (no
        tunnel address); an agent of several hosts serves what it is scheduled."""
        return alive(agent) and agent.host not in await tunnel_hosts(db)

    async def hosted(agent: NetworkAgent) -> list[str]:
        """What the agent hosts: what its heartbeats reported or an admin or the scheduler bound,
        and (while it is alive on a single host) what it is due to host, which it serves within a
        round."""
        async with db.session() as s:
            ids = list((await s.execute(select(AgentBinding.resource_id).where(
                AgentBinding.agent_id == agent.id))).scalars())
        if await everything(agent):
            ids += await due(agent.agent_type)
        return list(dict.fromkeys(ids))

    async def hosts(resource_id: str, kind: str) -> list[NetworkAgent]:
        async with db.session() as s:
            rows = {a.id: a for a in (await s.execute(select(NetworkAgent).join(
                AgentBinding, AgentBinding.agent_id == NetworkAgent.id).where(
                AgentBinding.resource_id == resource_id, NetworkAgent.agent_type == kind))).scalars()}
            if await due(kind, resource_id):
                tunnels = await tunnel_hosts(db)
                rows.update({a.id: a for a in (await s.execute(select(NetworkAgent).where(
                    NetworkAgent.agent_type == kind))).scalars() if alive(a) and a.host not in tunnels})
        return sorted(rows.values(), key=lambda a: a.host)

    async def of_kind(agent_id: str, kind: str) -> NetworkAgent:
        row = await get(agent_id)
        if row.agent_type != kind:
            what = "DHCP" if kind == DHCP else "L3"
            raise NotFound(f"Agent {agent_id} is not a valid {what} Agent or has been disabled",
                           kind=f"Invalid{'DHCP' if kind == DHCP else 'L3'}Agent")
        return row

    async def bind(agent: NetworkAgent, resource_id: str, what: str) -> None:
        if await everything(agent) and await due(agent.agent_type, resource_id):
            raise Conflict(f"The {what} {resource_id} has been already hosted by the "
                           f"{'DHCP' if what == 'network' else 'L3'} Agent {agent.id}.",
                           kind="NetworkHostedByDHCPAgent" if what == "network" else "RouterHostedByL3Agent")
        try:
            async with db.session() as s:
                s.add(AgentBinding(agent_id=agent.id, resource_id=resource_id, manual=True))
        except IntegrityError as exc:
            if not is_duplicate(exc):
                raise
            kind = "NetworkHostedByDHCPAgent" if what == "network" else "RouterHostedByL3Agent"
            raise Conflict(f"The {what} {resource_id} has been already hosted by the "
                           f"{'DHCP' if what == 'network' else 'L3'} Agent {agent.id}.", kind=kind) from None

    async def unbind(agent: NetworkAgent, resource_id: str, what: str) -> None:
        if await everything(agent) and await due(agent.agent_type, resource_id):
            raise Conflict(f"The {what} {resource_id} stays on the {agent.agent_type} {agent.id}: every agent "
                           f"serves every {'network with DHCP' if what == 'network' else 'router'}.",
                           kind="NetworkHostedByDHCPAgent" if what == "network" else "RouterHostedByL3Agent")
        async with db.session() as s:
            gone = (await s.execute(delete(AgentBinding).where(
                AgentBinding.agent_id == agent.id, AgentBinding.resource_id == resource_id))).rowcount
        if not gone:
            agent_name = "DHCP agent" if what == "network" else "L3 agent"
            raise Conflict(f"The {what} {resource_id} is not hosted by the {agent_name} {agent.id}.",
                           kind="NetworkNotHostedByDhcpAgent" if what == "network" else "RouterNotHostedByL3Agent")

    async def resource_id(request: Request, key: str, model: Any, label: str) -> str:
        data = await json_body(request)
        value = data.get(key) if isinstance(data, dict) else None
        if not isinstance(value, str):
            raise BadRequest(f"Invalid input for operation: '{key}' is required.")
        async with db.session() as s:
            if await s.get(model, value) is None:
                raise NotFound(f"{label} {value} could not be found.", kind=f"{label}NotFound")
        return value

    @r.get("/v2.0/agents")
    async def agents(request: Request) -> Response:
        if not allowed(request, "get_agent"):  # Neutron shows an empty list to those it may not show any
            return JSON(shape(request, [], "agents"))
        async with db.session() as s:
            rows = list((await s.execute(select(NetworkAgent).order_by(NetworkAgent.host, NetworkAgent.agent_type)))
                        .scalars())
        q = request.query_params
        for key in ("agent_type", "host", "binary"):  # regardless of case, as Neutron on MySQL matches them
            if key in q:  # (tempest asks for agent_type "DHCP Agent")
                wanted = {w.lower() for w in q.getlist(key)}
                rows = [a for a in rows if getattr(a, key).lower() in wanted]
        request = without(request, ("agent_type", "host", "binary"))
        return JSON(shape(request, [agent_view(a) for a in rows], "agents"))

    @r.route("/v2.0/agents/{agent_id}", ["GET", "PUT", "DELETE"])
    async def agent(request: Request) -> Response:
        rule = {"PUT": "update_agent", "DELETE": "delete_agent"}.get(request.method, "get_agent")
        authorize(request, rule)
        row = await get(request.path_params["agent_id"])
        if request.method == "DELETE":
            async with db.session() as s:
                await s.execute(delete(AgentBinding).where(AgentBinding.agent_id == row.id))
                await s.execute(delete(NetworkAgent).where(NetworkAgent.id == row.id))
            return Response(status_code=204)
        if request.method == "PUT":
            item = await body(request, "agent")
            values: dict[str, Any] = {}
            for key in item:
                if key not in ("admin_state_up", "description"):
                    raise BadRequest(f"Cannot update read-only attribute {key}")
            if "admin_state_up" in item:
                if not isinstance(item["admin_state_up"], bool):
                    raise BadRequest(f"Invalid input for admin_state_up. Reason: '{item['admin_state_up']}' is not "
                                     "a valid boolean value.")
                values["admin_state_up"] = item["admin_state_up"]
            if "description" in item:
                text = item["description"]
                if text is not None and (not isinstance(text, str) or len(text) > 255):
                    raise BadRequest("Invalid input for description. Reason: a string of at most 255 characters "
                                     "is required.")
                values["description"] = text or ""
            async with db.session() as s:
                live = await s.get(NetworkAgent, row.id)
                if live is None:
                    raise NotFound(f"Agent {row.id} could not be found.", kind="AgentNotFound")
                for k, v in values.items():
                    setattr(live, k, v)
                row = live
        return JSON(shape_one(request, agent_view(row), "agent"))

    def scheduling(kind: str, hosted_path: str, owner_path: str, model: Any, what: str, label: str,
                   views: Callable[[list[Any]], Awaitable[list[dict[str, Any]]]], missing: str,
                   rules: tuple[str, str, str, str], extra: dict[str, Any]) -> None:
        """An agent's hosted networks or routers (list, schedule one, remove one) and the agents
        hosting one of them; ``rules`` are the create, list, delete and agents-list rules."""
        create_rule, list_rule, delete_rule, agents_rule = rules
        key = f"{what}_id"

        @r.route(f"/v2.0/agents/{{agent_id}}/{hosted_path}", ["GET", "POST"])
        async def hosted_list(request: Request) -> Response:
            if request.method == "POST":
                authorize(request, create_rule)
                agent = await of_kind(request.path_params["agent_id"], kind)
                await bind(agent, await resource_id(request, key, model, label), what)
                return Response(b"null", status_code=201, media_type="application/json")
            authorize(request, list_rule)
            ids = await hosted(await of_kind(request.path_params["agent_id"], kind))
            async with db.session() as s:
                rows = list((await s.execute(select(model).where(model.id.in_(ids)).order_by(
                    model.created_at))).scalars()) if ids else []
            return JSON(shape(request, await views(rows), f"{what}s"))

        @r.delete(f"/v2.0/agents/{{agent_id}}/{hosted_path}/{{{key}}}")
        async def hosted_one(request: Request) -> Response:
            authorize(request, delete_rule)
            agent = await of_kind(request.path_params["agent_id"], kind)
            await unbind(agent, request.path_params[key], what)
            return Response(status_code=204)

        @r.get(f"/v2.0/{what}s/{{{key}}}/{owner_path}")
        async def hosting_agents(request: Request) -> Response:
            authorize(request, agents_rule)
            async with db.session() as s:
                if await s.get(model, request.path_params[key]) is None:
                    raise NotFound(missing.format(request.path_params[key]), kind=f"{label}NotFound")
            rows = await hosts(request.path_params[key], kind)
            return JSON(shape(request, [{**agent_view(a), **extra} for a in rows], "agents"))

    # Neutron's texts differ by a full stop
    scheduling(DHCP, "dhcp-networks", "dhcp-agents", Network, "network", "Network", network_views,
               "Network {} could not be found.",
               ("create_dhcp-network", "get_dhcp-networks", "delete_dhcp-network", "get_dhcp-agents"), {})
    scheduling(L3, "l3-routers", "l3-agents", RouterRow, "router", "Router", router_views,
               "Router {} could not be found",
               ("create_l3-router", "get_l3-routers", "delete_l3-router", "get_l3-agents"), {"ha_state": None})

    return r
