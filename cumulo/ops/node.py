"""The hosts of a cloud: what ``cumulo node list`` shows and ``cumulo node remove`` removes, read
from the database on a controller, and the node side of ``cumulo node join`` (asking the
controller for the node's settings and writing them as the node's configuration).

A host is what its agents report: a compute service (os-services, os-hypervisors), network agents
(GET /v2.0/agents) and a volume pool (the block storage service's cinder-volume).  The tables are
read as plain tables (this module sits beside the services and imports none of their models).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import json
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import Boolean, String, column, delete, func, select, table, update

from cumulo.core.db import UTCDateTime, utcnow

JOIN_PATH = "/v3/OS-CUMULO/nodes/join"  # cumulo.identity.nodes.JOIN_PATH
NODE_FILE = "node.json"  # the roles and controller of a joined node (no secret)

COMPUTE_SERVICE = table("compute_service", column("id", String), column("host", String), column("binary", String),
                        column("disabled", Boolean), column("forced_down", Boolean),
                        column("last_seen_at", UTCDateTime))
COMPUTE_NODE = table("compute_node", column("id", String), column("host", String),
                     column("hypervisor_hostname", String))
SERVERS = table("compute_server", column("id", String), column("name", String), column("host", String),
                column("deleted_at", UTCDateTime))
NETWORK_AGENT = table("network_agent", column("id", String), column("host", String), column("agent_type", String),
                      column("admin_state_up", Boolean), column("heartbeat_at", UTCDateTime))
AGENT_BINDING = table("network_agent_binding", column("agent_id", String), column("resource_id", String))
VOLUME_POOL = table("volume_pool", column("host", String), column("disabled", Boolean),
                    column("reported_at", UTCDateTime))
VOLUMES = table("volume_volume", column("id", String), column("name", String), column("host", String),
                column("deleted", Boolean))
PROVIDER = table("placement_provider", column("uuid", String))
ALLOCATION = table("placement_allocation", column("provider_uuid", String))
PROVIDER_CHILDREN = [table(name, column("provider_uuid", String)) for name in (
    "placement_inventory", "placement_provider_trait", "placement_provider_aggregate")]


@dataclasses.dataclass
class Agent:
    role: str  # compute, network, volume
    name: str  # nova-compute, the network agent's type, cinder-volume
    up: bool
    disabled: bool
    last_seen: dt.datetime | None


@dataclasses.dataclass
class Host:
    name: str
    agents: list[Agent] = dataclasses.field(default_factory=list)

    @property
    def roles(self) -> list[str]:
        return [r for r in ("compute", "network", "volume") if any(a.role == r for a in self.agents)]

    @property
    def up(self) -> bool:
        return any(a.up for a in self.agents)


def _up(at: dt.datetime | None, down_time: float, now: dt.datetime) -> bool:
    return at is not None and (now - at).total_seconds() <= down_time


async def hosts(db: Any, cfg: Any) -> list[Host]:
    """Every host with an agent record, and each agent's state."""
    now, out = utcnow(), {}

    def host(name: str) -> Host:
        return out.setdefault(name, Host(name))

    async with db.reader() as s:
        for row in (await s.execute(select(COMPUTE_SERVICE))).all():
            up = not row.forced_down and _up(row.last_seen_at, cfg.compute.service_down_time, now)
            host(row.host).agents.append(Agent("compute", row.binary, up, bool(row.disabled), row.last_seen_at))
        for row in (await s.execute(select(NETWORK_AGENT).order_by(NETWORK_AGENT.c.agent_type))).all():
            up = _up(row.heartbeat_at, cfg.network.agent_down_time, now)  # as the Network API tells it
            host(row.host).agents.append(Agent("network", row.agent_type, up, not row.admin_state_up, row.heartbeat_at))
        for row in (await s.execute(select(VOLUME_POOL))).all():
            host(row.host).agents.append(Agent("volume", "cinder-volume",
                                               _up(row.reported_at, cfg.volume.service_down_time, now),
                                               bool(row.disabled), row.reported_at))
    return [out[name] for name in sorted(out)]


def render(found: list[Host]) -> str:
    if not found:
        return "no hosts: no agent has reported (join one with `cumulo node join`)"
    lines = [f"{'HOST':24s} {'ROLES':24s} {'AGENT':20s} {'STATE':14s} LAST REPORT"]
    for h in found:
        for i, a in enumerate(h.agents):
            state = ("up" if a.up else "down") + (", disabled" if a.disabled else "")
            seen = f"{a.last_seen:%Y-%m-%d %H:%M:%S}Z" if a.last_seen else "never"
            lines.append(f"{h.name if i == 0 else '':24s} {','.join(h.roles) if i == 0 else '':24s} "
                         f"{a.name:20s} {state:14s} {seen}")
    return "\n".join(lines)


class Refused(Exception):
    """The host cannot be removed now; the message names what holds it and the fix."""


async def remove(db: Any, cfg: Any, name: str, force: bool = False) -> list[str]:
    """Disable, then delete the host's compute service and node, network agents and volume pool
    (with the placement provider of each node that has no allocation left).  Refused while
    servers, volumes or routers are on it, or its agents still report, unless ``force``."""
    found = {h.name: h for h in await hosts(db, cfg)}
    if name not in found:
        raise Refused(f"no host {name!r}: `cumulo node list` shows the hosts")
    h = found[name]
    pool = f"{name}@%"
    async with db.reader() as s:
        servers = (await s.execute(select(SERVERS.c.id, SERVERS.c.name).where(
            SERVERS.c.host == name, SERVERS.c.deleted_at.is_(None)).limit(6))).all()
        volumes = (await s.execute(select(VOLUMES.c.id, VOLUMES.c.name).where(
            (VOLUMES.c.host == name) | VOLUMES.c.host.like(pool), VOLUMES.c.deleted.is_(False)).limit(6))).all()
        l3 = select(NETWORK_AGENT.c.id).where(NETWORK_AGENT.c.host == name, NETWORK_AGENT.c.agent_type == "L3 agent")
        routers = (await s.execute(select(func.count()).select_from(AGENT_BINDING).where(
            AGENT_BINDING.c.agent_id.in_(l3)))).scalar() or 0
    held = []
    if servers:
        held.append(f"servers {', '.join(r.name or r.id for r in servers[:5])}{' ...' if len(servers) > 5 else ''} "
                    "(migrate them away: openstack server migrate --live-migration / evacuate, or delete them)")
    if volumes:
        held.append(f"volumes {', '.join(r.name or r.id for r in volumes[:5])}{' ...' if len(volumes) > 5 else ''} "
                    "(delete them, or retype/migrate them to another storage node)")
    if routers:
        held.append(f"{routers} routers (move them: openstack network agent remove router --l3 / add router)")
    if held and not force:
        raise Refused(f"host {name} still holds " + "; ".join(held) + "; or remove it anyway with --force")
    if h.up and not force:
        raise Refused(f"the agents of host {name} still report ({', '.join(a.name for a in h.agents if a.up)}): "
                      f"stop `cumulo node join` on {name} first (its agents would register again), "
                      "or remove it anyway with --force")
    done = []
    async with db.session() as s:
        await s.execute(update(COMPUTE_SERVICE).where(COMPUTE_SERVICE.c.host == name).values(disabled=True))
        await s.execute(update(VOLUME_POOL).where(VOLUME_POOL.c.host == name).values(disabled=True))
        await s.execute(update(NETWORK_AGENT).where(NETWORK_AGENT.c.host == name).values(admin_state_up=False))
    async with db.session() as s:
        nodes = [r.id for r in (await s.execute(select(COMPUTE_NODE.c.id).where(COMPUTE_NODE.c.host == name))).all()]
        n = (await s.execute(delete(COMPUTE_SERVICE).where(COMPUTE_SERVICE.c.host == name))).rowcount
        await s.execute(delete(COMPUTE_NODE).where(COMPUTE_NODE.c.host == name))
        if n:
            done.append(f"compute service and {len(nodes)} hypervisors")
        for uuid in nodes:
            if (await s.execute(select(func.count()).select_from(ALLOCATION).where(
                    ALLOCATION.c.provider_uuid == uuid))).scalar():
                continue  # a forced removal with servers: their allocations keep the provider
            for child in PROVIDER_CHILDREN:
                await s.execute(delete(child).where(child.c.provider_uuid == uuid))
            await s.execute(delete(PROVIDER).where(PROVIDER.c.uuid == uuid))
        agents = [r.id for r in (await s.execute(select(NETWORK_AGENT.c.id).where(
            NETWORK_AGENT.c.host == name))).all()]
        if agents:
            await s.execute(delete(AGENT_BINDING).where(AGENT_BINDING.c.agent_id.in_(agents)))
            await s.execute(delete(NETWORK_AGENT).where(NETWORK_AGENT.c.id.in_(agents)))
            done.append(f"{len(agents)} network agents")
        if (await s.execute(delete(VOLUME_POOL).where(VOLUME_POOL.c.host == name))).rowcount:
            done.append("volume service")
    return done


# ---- the node's side of `cumulo node join` ----------------------------------------------------

class JoinError(Exception):
    """The controller refused the join or could not be reached; the message says why."""


def _loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def ask(controller: str, token: str, host: str, roles: list[str], timeout: float = 30) -> dict[str, Any]:
    """POST the join token to the controller's identity API; the node's settings, once."""
    base = controller.rstrip("/").removesuffix("/v3")
    body = json.dumps({"join": {"token": token, "host": host, "roles": roles}}).encode()
    req = urllib.request.Request(base + JOIN_PATH, data=body, method="POST",
                                 headers={"Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (the operator's URL)
            data = json.loads(resp.read(1 << 20))
    except urllib.error.HTTPError as exc:
        try:
            message = next(iter(json.loads(exc.read(1 << 16)).values()))["message"]
        except (ValueError, TypeError, KeyError, StopIteration, AttributeError):
            message = exc.reason
        raise JoinError(f"the controller refused the join ({exc.code}): {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise JoinError(f"the controller at {base} could not be reached: {getattr(exc, 'reason', exc)}") from None
    except ValueError:
        raise JoinError(f"{base}{JOIN_PATH} did not answer JSON: is {base} a Cumulo identity URL?") from None
    if not isinstance(data, dict) or not isinstance(data.get("node"), dict):
        raise JoinError(f"{base}{JOIN_PATH} answered no node settings: is {base} a Cumulo identity URL?")
    return dict(data["node"])


def reachable(settings: dict[str, Any], controller: str) -> tuple[str, str, list[str]]:
    """The bus URL and public host as this node should use them: a controller whose settings name
    a loopback address (one machine so far) is reached at the host of ``controller`` instead."""
    notes = []
    via = urlsplit(controller).hostname or ""
    bus = settings["bus"]["url"]
    public = settings.get("public_host") or ""
    if not _loopback(via):
        parts = urlsplit(bus)
        if _loopback(parts.hostname or ""):
            netloc = parts.netloc.rsplit("@", 1)
            hostport = netloc[-1].replace(parts.hostname or "", via, 1)
            bus = urlunsplit(parts._replace(netloc="@".join([*netloc[:-1], hostport])))
            notes.append(f"the controller's bus is on a loopback address: using {via} instead")
        if _loopback(public):
            public = via
            notes.append(f"the controller's public host is a loopback address: using {via} instead")
    return bus, public or via, notes


def node_config(settings: dict[str, Any], controller: str, state_dir: Path, management_address: str
                ) -> tuple[dict[str, Any], list[str]]:
    """The node's cumulo.toml (as a dict) from the controller's answer."""
    bus, public, notes = reachable(settings, controller)
    host, ports = settings["host"], settings.get("ports", {})
    compute, network, volume = (settings.get(k, {}) for k in ("compute", "network", "volume"))
    data: dict[str, Any] = {
        "state_dir": str(state_dir),
        "services": list(settings["roles"]),
        "bus": {"url": bus, "prefix": settings["bus"]["prefix"],
                "rpc_timeout": float(settings["bus"].get("rpc_timeout", 30.0))},
        "api": {"public_host": public, "region": settings.get("region", "RegionOne")},
        "identity": {"port": int(ports.get("identity", 5000))},
        "image": {"port": int(ports.get("image", 9292))},
        "compute": {"host": host, "metadata_secret": settings.get("metadata_secret", ""),
                    "metadata_port": int(ports.get("metadata", 8775)), "local_node": False,
                    **{k: compute[k] for k in ("report_interval", "service_down_time", "volume_transport")
                       if k in compute}},
        "network": {"namespace_prefix": network.get("namespace_prefix", "cumulo"),
                    "tunnel_address": management_address, "bootstrap": False,
                    **{k: network[k] for k in ("reconcile_interval",) if k in network}},
        "volume": {"host": host, "local_node": False,
                   **({"export_host": management_address} if management_address else {}),
                   **{k: volume[k] for k in ("report_interval", "service_down_time", "backups_path")
                      if volume.get(k) not in (None, "")}},
        "logging": {"file": str(state_dir / "cumulo-node.log")},
    }
    return data, notes


def write_private(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def default_host() -> str:
    return socket.gethostname().split(".")[0]
