"""The network agent: one per machine.  It never opens the database; it asks the controller for
the desired state (``network.dataplane_state`` on the bus) and converges the machine to it:

* a bridge per network in ``<prefix>-dp`` (server taps are plugged by the compute driver,
  ``cumulo.network.dataplane.vif``), with security groups as iptables rules on its ports;
* per network with DHCP, a namespace with the DHCP port, dnsmasq and the metadata proxy;
* per router, a namespace with its interfaces, gateway, static routes, SNAT and floating IPs;
* external networks reach ``<prefix>-ext``, the outside world by default (nothing touches a
  host interface);
* with a tunnel address (``[network] tunnel_address``, several hosts), only what this host needs
  (``cumulo.network.topology.for_host``), and per VXLAN network a ``vxlan-<vni>`` device on its
  bridge (UDP port 4789, learning off, one all-zeros FDB entry per peer host: head-end
  replication) whose underlay is the tunnel address: in ``<prefix>-dp`` when the address is there,
  else made in the root namespace (``local ADDR``; its socket stays there) and moved into
  ``<prefix>-dp``.  No interface but that address's is used, and none is changed.

``reconcile()`` is level-triggered and safe at any moment: it makes what is missing and removes
what nothing owns (after a restart it finds everything by name).  ``network.changed`` events
make it run at once; it also runs every ``interval`` seconds.  A heartbeat (every
``report_interval`` seconds and after each round) tells the controller the agent is alive on its
host and what it serves (the Network API's agents, ``cumulo.network.agents``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import shutil
import socket
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from prometheus_client import Counter

from cumulo.core.bus.interface import carrying, request_id
from cumulo.core.version import code_version
from cumulo.network.dataplane import firewall, metering
from cumulo.network.dataplane.dhcp import METADATA_IP, DhcpServer
from cumulo.network.dataplane.linux import (
    GONE_LINK,
    NETNS_DIR,
    CommandFailed,
    addresses,
    delete_ns,
    ensure_bridge,
    ensure_ns,
    links,
    namespaces,
    run,
)
from cumulo.network.dataplane.metadata_proxy import MetadataProxy
from cumulo.network.dataplane.names import (
    DP_SYSCTLS,
    Names,
    bridge,
    bridge_end,
    dhcp_end,
    ext_ends,
    router_end,
    vxlan,
)
from cumulo.network.dataplane.qos import Shaper
from cumulo.network.dataplane.zones import ConntrackZones

LOG = logging.getLogger(__name__)
MAX_KICKED_BY = 20  # requests named by one round's lines (a burst of changes is one round)
ROUTER_SYSCTLS = {"net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "1"}
RETRY = 5.0  # seconds before a round that left something undone is tried again
RULES_TIMEOUT = 120.0  # iptables-restore of thousands of ports may take a while on a loaded machine
REPORT_INTERVAL = 30.0  # seconds between heartbeats (Neutron's report_interval)
VXLAN_PORT = 4789  # IANA's VXLAN port (Neutron's linuxbridge agent's default udp_dstport is the kernel's)
ZERO_MAC = "00:00:00:00:00:00"  # the FDB entry that floods broadcast and unknown unicast to a peer
OURS = ("brq", "ve", "vx", "tap", "lo")  # the links of <prefix>-dp the dataplane makes
STEP_FAILURES = Counter("cumulo_network_reconcile_failures_total",
                        "Steps of the network agent's reconcile that failed (retried by the next round)", ["step"])


def with_prefix(ip: dict[str, str]) -> str:
    return f"{ip['ip_address']}/{ip.get('prefixlen', '32')}"


def owned_links(nets: dict[str, Any], routers: list[dict[str, Any]]) -> set[str]:
    """The links of ``<prefix>-dp`` the desired state owns: each network's bridge and VXLAN
    device, the bridge ends of DHCP ports, of router legs and of external networks."""
    out = {bridge(n) for n in nets}
    for net in nets.values():
        if net.get("tunnel"):
            out.add(vxlan(net["tunnel"]["vni"]))
        if net["external"]:
            out.add(ext_ends(net["id"])[0])
        port = net.get("dhcp_port")
        if port is not None and any(s.get("enable_dhcp") for s in net["subnets"]):
            out.add(bridge_end(port["id"]))
    for r in routers:
        for port in [*r["interfaces"], *([r["gateway"]] if r.get("gateway") else [])]:
            if port["network_id"] in nets:
                out.add(bridge_end(port["id"]))
    return out


class NetworkAgent:
    def __init__(self, bus: Any, prefix: str, state_dir: Path, metadata_url: str, metadata_secret: str,
                 interval: float = 30.0, host: str | None = None, report_interval: float = REPORT_INTERVAL,
                 tunnel_address: str = "") -> None:
        self.bus, self.names, self.interval = bus, Names(prefix), interval
        self.tunnel_address = tunnel_address  # '' : a single host, which builds everything
        self.host, self.report_interval = host or socket.gethostname(), report_interval
        self.started_at = time.time()
        self.hosting: dict[str, Any] = {}  # what the last round served (the heartbeat reports it)
        self._beat: asyncio.Task[None] | None = None
        self.dhcp_root = Path(state_dir) / "network" / "dhcp"
        self.zones = ConntrackZones(Path(state_dir) / "network" / "conntrack-zones.json")
        self.zones_unplaced = 0  # networks without a conntrack zone (all held)
        self._flush: set[int] = set()  # freed zones whose conntrack entries are still to flush
        self._failed: list[str] = []  # what this round left undone
        self._retry = False
        self.proxy = MetadataProxy(metadata_url, metadata_secret, self.instance_of)
        self.shaper = Shaper()  # the taps' bandwidth limits towards their servers
        self._addresses: dict[tuple[str, str], str] = {}
        self._applied: dict[str, str] = {}  # namespace+table -> the rules text last applied
        self._metered: set[tuple[str, ...]] = set()  # the metering series this round showed
        self._kick = asyncio.Event()
        self._kicked_by: set[str] = set()  # the requests whose changes the next round applies
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.last: dict[str, Any] = {}

    # -- running ----------------------------------------------------------------------------------
    async def start(self) -> None:
        async def changed(topic: str, event: dict[str, Any]) -> None:
            rid = request_id()
            if rid and len(self._kicked_by) < MAX_KICKED_BY:
                self._kicked_by.add(rid)
            self._kick.set()

        await self.bus.subscribe("network.changed", changed)
        self._kick.set()
        self._task = asyncio.get_running_loop().create_task(self._loop())
        self._beat = asyncio.get_running_loop().create_task(self._heartbeat())

    async def stop(self) -> None:
        for task in (self._task, self._beat):
            if task:
                task.cancel()
        await self.proxy.close()

    async def _heartbeat(self) -> None:
        while True:
            await self.report()
            await asyncio.sleep(self.report_interval)

    async def report(self) -> None:
        """Tell the controller this agent is alive and what it serves (the Network API's agents,
        ``cumulo.network.agents``); a controller that is away misses a beat, nothing more."""
        try:
            await self.bus.cast("network-agents", "report", {
                "host": self.host, "started_at": self.started_at, "report_interval": self.report_interval,
                "namespace_prefix": self.names.prefix, "version": code_version(),
                **({"tunnel_address": self.tunnel_address} if self.tunnel_address else {}), **self.hosting})
        except Exception as exc:  # noqa: BLE001 - the next beat tries again
            LOG.info("network agent heartbeat not sent: %s", exc or type(exc).__name__)

    async def _loop(self) -> None:
        while True:
            try:  # a round that left something undone is retried sooner
                await asyncio.wait_for(self._kick.wait(), min(self.interval, RETRY) if self._retry else self.interval)
            except TimeoutError:
                pass
            await asyncio.sleep(0.05)  # a burst of changes becomes one reconcile
            self._kick.clear()
            kicked, self._kicked_by = sorted(self._kicked_by), set()
            started = time.monotonic()
            try:  # the round one request's change caused is that request's work (its id on the lines)
                with carrying(kicked[0] if len(kicked) == 1 else None):
                    last = await self.reconcile()
                self._retry = bool(last.get("failed"))
                for rid in kicked:  # and each request whose change it applied hears when it was
                    with carrying(rid):
                        LOG.info("network reconcile applied this request's change (%d requests in the round): "
                                 "%s networks, %s ports, %s routers in %s s", len(kicked), last.get("networks"),
                                 last.get("ports"), last.get("routers"), last.get("seconds"))
            except asyncio.CancelledError:
                raise
            except Exception:  # the controller may be away for a while: the next round retries
                LOG.warning("network reconcile failed", exc_info=True)
                self._retry = True
            # under a burst of changes, rest as long as the round took: the agent (which shares
            # the controller's loop when embedded) never takes more than about half of it
            await asyncio.sleep(min(2.0, time.monotonic() - started))

    async def reconcile(self) -> dict[str, Any]:
        # several hosts: this host's part of the desired state
        mine = {"host": self.host, "tunnel_address": self.tunnel_address} if self.tunnel_address else {}
        state = await self.bus.call("network", "dataplane_state", mine, timeout=60)
        async with self._lock:
            started = time.monotonic()
            self._failed = []
            await self.converge(state)
            self.last = {"seconds": round(time.monotonic() - started, 3), "networks": len(state["networks"]),
                         "ports": len(state["ports"]), "routers": len(state["routers"]),
                         "failed": list(self._failed)}
            self.hosting = served(state)
        await self.report()
        if self._failed:
            LOG.warning("network reconcile left %d steps undone (retried in %ss): %s", len(self._failed),
                        min(self.interval, RETRY), "; ".join(self._failed[:5]))
        return self.last

    @contextlib.asynccontextmanager
    async def _step(self, what: str) -> AsyncIterator[None]:
        """One step of a round: when it fails, the failure is logged and counted and the round
        goes on with the others (a network whose dnsmasq cannot start must not keep another's
        security groups from being applied); the next round tries it again."""
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - recorded, counted and retried; never hidden
            self._failed.append(f"{what}: {exc}")
            STEP_FAILURES.labels(what.split(" ")[0]).inc()
            # a failed command was logged with its command line by run(); anything else is a bug
            LOG.warning("network reconcile: %s failed: %s", what, exc, exc_info=not isinstance(exc, CommandFailed))

    def instance_of(self, network_id: str, address: str) -> str | None:
        return self._addresses.get((network_id, address))

    # -- converging ---------------------------------------------------------------------------------
    async def converge(self, state: dict[str, Any]) -> None:
        nets = {n["id"]: n for n in state["networks"]}
        self._addresses = {(p["network_id"], ip["ip_address"]): p["device_id"] for p in state["ports"]
                           if p["device_owner"].startswith("compute:") for ip in p["ips"]}
        if not nets:
            await self.teardown()
            return
        dp = self.names.dp
        await ensure_ns(dp, DP_SYSCTLS)
        present = {link["name"]: link for link in await links(dp)}
        # what the desired state owns, named before any step runs: a step that fails must not
        # make its links look unowned (and removed) below
        wanted = owned_links(nets, state["routers"])
        for net in nets.values():
            br = bridge(net["id"])
            async with self._step(f"bridge {br}"):
                await ensure_bridge(dp, br, net["mtu"], present.get(br))
        if any(n.get("tunnel") for n in nets.values()):
            async with self._step("VXLAN tunnels"):
                await self._tunnels(nets, present)
        ports_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for port in state["ports"]:
            ports_of[port["network_id"]].append(port)
        async with self._step("external networks"):
            await self._externals(nets, present)
        await self._dhcp(nets, ports_of, present)
        await self._routers(state["routers"], nets, present)
        for name in list(present):  # bridges and ends nothing owns any more
            if name.startswith(("brq", "ve", "vx")) and name not in wanted:
                LOG.info("removing %s from %s: nothing owns it", name, dp)
                async with self._step(f"removing {name}"):
                    await run("ip", "-n", dp, "link", "del", name, ok_if=GONE_LINK)
        zones = None
        async with self._step("conntrack zones"):
            zones = await self._zones(nets)
        if zones is not None:
            for version, tool, table in ((4, "iptables-restore", "filter"), (6, "ip6tables-restore", "filter6")):
                async with self._step(f"security groups (IPv{version})"):
                    # computed in a worker thread: thousands of ports must not hold the event loop
                    text = await asyncio.to_thread(firewall.rules, state, version, zones)
                    await self._apply_rules(dp, tool, table, text)
        async with self._step("ARP protection"):
            arp = await asyncio.to_thread(firewall.arp_rules, state)
            await self._apply_rules(dp, "ebtables-restore", "ebtables", arp)
        async with self._step("QoS bandwidth limits (tc)"):
            await self.shaper.converge(dp, state)

    async def _tunnels(self, nets: dict[str, Any], present: dict[str, Any]) -> None:
        """Each VXLAN network's ``vxlan-<vni>`` on its bridge, with one FDB entry per peer host."""
        dp = self.names.dp
        if not self.tunnel_address:
            raise RuntimeError("VXLAN networks but no [network] tunnel_address")
        made = {item["ifname"]: (item.get("linkinfo") or {}).get("info_data") or {} for item in json.loads(
            await run("ip", "-n", dp, "-j", "-d", "link", "show", "type", "vxlan") or "[]")}
        underlay_in_dp: bool | None = None
        for net in nets.values():
            tunnel = net.get("tunnel")
            if not tunnel:
                continue
            name, br, vni = vxlan(tunnel["vni"]), bridge(net["id"]), int(tunnel["vni"])
            async with self._step(f"VXLAN {name} of network {net['id']}"):
                info = made.get(name)
                if info is not None and (info.get("id") != vni or info.get("local") != self.tunnel_address
                                         or info.get("port") != VXLAN_PORT):
                    LOG.info("%s in %s is not the tunnel it should be (%s): made again", name, dp, info)
                    await run("ip", "-n", dp, "link", "del", name, ok_if=GONE_LINK)
                    present.pop(name, None)
                    info = None
                if info is None or name not in present:
                    if underlay_in_dp is None:
                        underlay_in_dp = any(a.split("/")[0] == self.tunnel_address
                                             for addrs in (await addresses(dp)).values() for a in addrs)
                    await self._make_vxlan(name, vni, int(net["mtu"]), underlay_in_dp)
                    present[name] = {"name": name, "master": None, "up": False, "mtu": net["mtu"]}
                if present[name].get("mtu") != net["mtu"]:
                    await run("ip", "-n", dp, "link", "set", name, "mtu", str(net["mtu"]))
                if present[name].get("master") != br or not present[name].get("up"):
                    await run("ip", "-n", dp, "link", "set", name, "master", br, "up")
                await self._fdb(name, tunnel.get("peers") or [])

    async def _make_vxlan(self, name: str, vni: int, mtu: int, underlay_in_dp: bool) -> None:
        dp = self.names.dp
        spec = ["mtu", str(mtu), "type", "vxlan", "id", str(vni), "local", self.tunnel_address,
                "dstport", str(VXLAN_PORT), "nolearning"]
        if underlay_in_dp:  # the management interface was put in -dp (as the tests do)
            await run("ip", "-n", dp, "link", "add", name, *spec)
            return
        # made in the root namespace, whose socket it keeps, under a name no host device has; then
        # moved into -dp and named there
        temp = f"cvx{os.urandom(4).hex()}"
        await run("ip", "link", "add", temp, *spec)
        try:
            await run("ip", "link", "set", temp, "netns", dp)
        except BaseException:
            await run("ip", "link", "del", temp, check=False)
            raise
        await run("ip", "-n", dp, "link", "set", temp, "name", name)
        LOG.info("VXLAN %s (VNI %s) made on %s in the root namespace, moved into %s", name, vni,
                 self.tunnel_address, dp)

    async def _fdb(self, name: str, peers: list[str]) -> None:
        """The device floods to exactly ``peers`` (all-zeros entries, head-end replication)."""
        dp = self.names.dp
        have = {e.get("dst") for e in json.loads(await run("bridge", "-n", dp, "-j", "fdb", "show", "dev", name)
                                                 or "[]") if e.get("mac") == ZERO_MAC and e.get("dst")}
        for peer in sorted(have - set(peers)):
            await run("bridge", "-n", dp, "fdb", "del", ZERO_MAC, "dev", name, "dst", peer, ok_if=GONE_LINK)
        for peer in sorted(set(peers) - have):
            await run("bridge", "-n", dp, "fdb", "append", ZERO_MAC, "dev", name, "dst", peer)

    async def _zones(self, nets: dict[str, Any]) -> dict[str, int]:
        """Each network's conntrack zone (``cumulo.network.dataplane.zones``); the entries of the
        zones of networks that went are flushed."""
        dp = self.names.dp
        if not self.zones.loaded:
            text = ""
            if not self.zones.path.exists():  # the file was lost: the kernel's rules say what is in use
                text = await run("ip", "netns", "exec", dp, "iptables-save", "-t", "raw")
            self.zones.load(text)
        zones, freed, unplaced = self.zones.sync(nets)
        self.zones_unplaced = len(unplaced)
        self._flush.update(freed.values())
        self._flush -= set(zones.values())  # given again meanwhile: its entries are the new network's
        if self._flush and shutil.which("conntrack") is None:
            LOG.info("conntrack (the tool) is not installed: entries of freed zones stay until they time out")
            self._flush.clear()
        for zone in sorted(self._flush):
            async with self._step(f"flushing conntrack zone {zone}"):
                await run("ip", "netns", "exec", dp, "conntrack", "-D", "-w", str(zone),
                          ok_if=("0 flow entries have been deleted",))
                self._flush.discard(zone)
        return zones

    async def _veth(self, present: dict[str, Any], end: str, br: str, ns: str, inside: set[str], inner: str,
                    mtu: int, mac: str | None) -> None:
        """A veth from bridge ``br`` (end ``end`` in -dp) to ``inner`` in namespace ``ns``, whose
        links are ``inside`` (read once per namespace by the caller)."""
        dp = self.names.dp
        if end in present and inner not in inside:
            await run("ip", "-n", dp, "link", "del", end, ok_if=GONE_LINK)
            present.pop(end)
        if end not in present:
            if inner in inside:
                await run("ip", "-n", ns, "link", "del", inner, ok_if=GONE_LINK)
            await run("ip", "-n", dp, "link", "add", end, "mtu", str(mtu), "type", "veth", "peer", "name", inner,
                      "netns", ns)
            present[end] = {"name": end, "master": None, "up": False}
            inside.add(inner)
            cmds = [f"link set {inner} mtu {mtu}"] + ([f"link set {inner} address {mac}"] if mac else [])
            await run("ip", "-n", ns, "-batch", "-", input="\n".join([*cmds, f"link set {inner} up"]) + "\n")
        if present[end].get("master") != br or not present[end].get("up"):
            await run("ip", "-n", dp, "link", "set", end, "master", br, "up")

    async def _addresses_on(self, ns: str, device: str, wanted: list[str], seen: dict[str, list[str]]) -> None:
        """``device`` in ``ns`` holds exactly ``wanted``; ``seen`` is ``addresses(ns)`` read once."""
        have = set(seen.get(device, []))
        want = set()
        for item in wanted:
            iface = ipaddress.ip_interface(item)
            want.add(f"{iface.ip}/{iface.network.prefixlen}")
        cmds = [f"addr del {a} dev {device}" for a in sorted(have - want)]
        cmds += [f"addr add {a} dev {device}" for a in sorted(want - have)]
        if cmds:
            await run("ip", "-n", ns, "-batch", "-", input="\n".join(cmds) + "\n")

    async def _externals(self, nets: dict[str, Any], present: dict[str, Any]) -> None:
        external = [n for n in nets.values() if n["external"]]
        ext = self.names.ext
        if not external:
            await delete_ns(ext)
            return
        await ensure_ns(ext)
        inside, seen = {link["name"] for link in await links(ext)}, await addresses(ext)
        keep = set()
        for net in external:
            end, inner = ext_ends(net["id"])
            keep.add(inner)
            await self._veth(present, end, bridge(net["id"]), ext, inside, inner, net["mtu"], None)
            # the outside holds each external subnet's gateway address: it is the upstream router
            await self._addresses_on(ext, inner, [f"{s['gateway_ip']}/{ipaddress.ip_network(s['cidr']).prefixlen}"
                                                  for s in net["subnets"] if s.get("gateway_ip")], seen)
        for name in inside - keep:
            if name.startswith("ex-"):
                await run("ip", "-n", ext, "link", "del", name, ok_if=GONE_LINK)

    async def _dhcp(self, nets: dict[str, Any], ports_of: dict[str, list[dict[str, Any]]],
                    present: dict[str, Any]) -> None:
        keep = set()
        for net in nets.values():
            port = net.get("dhcp_port")
            if port is None or not any(s.get("enable_dhcp") for s in net["subnets"]):
                continue
            ns = self.names.dhcp(net["id"])
            keep.add(ns)
            async with self._step(f"DHCP of network {net['id']}"):
                await self._dhcp_of(net, port, ns, ports_of.get(net["id"], []), present)
        prefix = f"{self.names.prefix}-dhcp-"
        for ns in namespaces(self.names.prefix):
            if ns.startswith(prefix) and ns not in keep:
                network_id = ns[len(prefix):]
                LOG.info("removing DHCP of network %s: the network is gone or has no DHCP", network_id)
                async with self._step(f"removing DHCP of network {network_id}"):
                    await self.proxy.stop(network_id)
                    await DhcpServer(self.dhcp_root, network_id, ns).remove()
                    await delete_ns(ns)
        for network_id in self.proxy.serving() - {ns[len(prefix):] for ns in keep}:
            await self.proxy.stop(network_id)
        if self.dhcp_root.exists():  # files of networks whose namespace went missing
            for d in self.dhcp_root.iterdir():
                if f"{prefix}{d.name}" not in keep:
                    async with self._step(f"removing DHCP files of network {d.name}"):
                        await DhcpServer(self.dhcp_root, d.name, f"{prefix}{d.name}").remove()

    async def _dhcp_of(self, net: dict[str, Any], port: dict[str, Any], ns: str, ports: list[dict[str, Any]],
                       present: dict[str, Any]) -> None:
        await ensure_ns(ns)
        end, inner = bridge_end(port["id"]), dhcp_end(port["id"])
        await self._veth(present, end, bridge(net["id"]), ns, {link["name"] for link in await links(ns)}, inner,
                         net["mtu"], port["mac"])
        on_v4 = any(ipaddress.ip_address(ip["ip_address"]).version == 4 for ip in port["ips"])
        await self._addresses_on(ns, inner, [with_prefix(ip) for ip in port["ips"]]
                                 + ([f"{METADATA_IP}/32"] if on_v4 else []), await addresses(ns))
        dhcp_ips = {ip["subnet_id"]: ip["ip_address"] for ip in port["ips"]}
        await DhcpServer(self.dhcp_root, net["id"], ns).ensure(net, ports, inner, dhcp_ips)
        if on_v4:
            try:
                await self.proxy.serve(net["id"], ns)
            except OSError as exc:
                LOG.warning("metadata proxy for network %s could not listen: %s", net["id"], exc)

    async def _routers(self, routers: list[dict[str, Any]], nets: dict[str, Any], present: dict[str, Any]) -> None:
        keep = set()
        self._metered = set()
        for r in routers:
            ns = self.names.router(r["id"])
            keep.add(ns)
            async with self._step(f"router {r['id']}"):
                await self._router(r, ns, nets, present)
        metering.keep_only(self._metered)
        prefix = f"{self.names.prefix}-router-"
        for ns in namespaces(self.names.prefix):
            if ns.startswith(prefix) and ns not in keep:
                LOG.info("removing router namespace %s: the router is gone", ns)
                for table in ("nat", "filter4", "filter6"):
                    self._applied.pop(f"{ns}/{table}", None)
                async with self._step(f"removing router namespace {ns}"):
                    await delete_ns(ns)

    async def _router(self, r: dict[str, Any], ns: str, nets: dict[str, Any], present: dict[str, Any]) -> None:
        await ensure_ns(ns, ROUTER_SYSCTLS)
        inner_keep = set()
        inside, seen = {link["name"] for link in await links(ns)}, await addresses(ns)
        legs = [(p, False) for p in r["interfaces"]] + ([(r["gateway"], True)] if r.get("gateway") else [])
        for port, is_gateway in legs:
            net = nets.get(port["network_id"])
            if net is None:
                continue
            end, inner = bridge_end(port["id"]), router_end(port["id"], is_gateway)
            inner_keep.add(inner)
            await self._veth(present, end, bridge(net["id"]), ns, inside, inner, net["mtu"], port["mac"])
            addrs = [with_prefix(ip) for ip in port["ips"]]
            if is_gateway:
                addrs += [f"{f['floating_ip_address']}/32" for f in r["floating_ips"]]
            await self._addresses_on(ns, inner, addrs, seen)
        for name in inside - inner_keep:
            if name.startswith(("qr-", "qg-")):
                await run("ip", "-n", ns, "link", "del", name, ok_if=GONE_LINK)
        await self._routes(ns, r)
        await self._apply_rules(ns, "iptables-restore", "nat", nat_rules(r))
        await self._meter(r, ns)

    async def _meter(self, r: dict[str, Any], ns: str) -> None:
        """The router's metering labels as iptables counters on its gateway, and their counts."""
        labels = (r.get("metering") or []) if r.get("admin_state_up", True) else []
        qg = router_end(r["gateway"]["id"], True) if r.get("gateway") else None
        by_chain: dict[str, tuple[int, int]] = {}
        for version, tool in ((4, "iptables"), (6, "ip6tables")):
            await self._apply_rules(ns, f"{tool}-restore", f"filter{version}",
                                    metering.filter_rules(labels, qg, version))
            if labels and qg:
                for name, (packets, octets) in metering.counts(await run(
                        "ip", "netns", "exec", ns, f"{tool}-save", "-c", "-t", "filter")).items():
                    was = by_chain.get(name, (0, 0))
                    by_chain[name] = (was[0] + packets, was[1] + octets)
        if qg:
            self._metered |= metering.report(r["id"], labels, by_chain)

    async def _routes(self, ns: str, r: dict[str, Any]) -> None:
        wanted: dict[str, str] = {}
        gw = r.get("gateway")
        if gw:
            for sub in gw.get("subnets", []):
                if sub.get("gateway_ip") and ipaddress.ip_network(sub["cidr"]).version == 4:
                    wanted["default"] = sub["gateway_ip"]
                    break
        for route in r.get("routes") or []:
            wanted[str(ipaddress.ip_network(route["destination"], strict=False))] = route["nexthop"]
        have = {}
        for item in json.loads(await run("ip", "-n", ns, "-j", "route", "show", "proto", "static") or "[]"):
            have[item["dst"]] = item.get("gateway")
        cmds = [f"route del {dst}" for dst in have if dst not in wanted]
        cmds += [f"route replace {dst} via {via} proto static" for dst, via in wanted.items() if have.get(dst) != via]
        for cmd in cmds:  # one at a time: a nexthop that is not connected yet must not stop the others
            try:
                await run("ip", "-n", ns, *cmd.split())
            except CommandFailed as exc:
                LOG.warning("router %s: %s: %s", r["id"], cmd, exc)

    async def _apply_rules(self, ns: str, tool: str, table: str, text: str) -> None:
        key = f"{ns}/{table}"
        try:  # a namespace made again (removed behind the agent's back) has none of the rules
            made = os.stat(NETNS_DIR / ns).st_ino
        except FileNotFoundError:
            made = 0
        text_of_ns = f"{made}\n{text}"
        if self._applied.get(key) == text_of_ns:
            return
        await run("ip", "netns", "exec", ns, tool, input=text, timeout=RULES_TIMEOUT)
        self._applied[key] = text_of_ns

    async def teardown(self) -> None:
        """Remove every namespace, process and file of this prefix (no network is left)."""
        await self.proxy.close()
        self.proxy = MetadataProxy(self.proxy.upstream, self.proxy.secret, self.instance_of)
        for ns in namespaces(self.names.prefix):
            rest = ns[len(self.names.prefix) + 1:]
            if rest.startswith("dhcp-"):
                await DhcpServer(self.dhcp_root, rest[5:], ns).remove()
            if rest == "dp":
                found = await links(ns)
                foreign = [link["name"] for link in found if not link["name"].startswith(OURS)]
                if foreign:  # an interface it was given (the management one): -dp stays, ours go
                    LOG.info("%s holds %s, which the dataplane did not make: only its own links are removed",
                             ns, ", ".join(foreign))
                    for link in found:
                        if link["name"].startswith(("brq", "ve", "vx")):
                            await run("ip", "-n", ns, "link", "del", link["name"], ok_if=GONE_LINK)
                    continue
            if rest in ("dp", "ext") or rest.startswith(("dhcp-", "router-")):
                await delete_ns(ns)
        if self.dhcp_root.exists():
            for d in self.dhcp_root.iterdir():
                await DhcpServer(self.dhcp_root, d.name, "").remove()
        self._applied.clear()
        self.zones.clear()  # the zones lived in <prefix>-dp, gone with it
        self._flush.clear()


def served(state: dict[str, Any]) -> dict[str, Any]:
    """What a round converged, as the heartbeat reports it: the networks given DHCP, the routers,
    and the counts Neutron's agents put in their ``configurations``."""
    dhcp = [n for n in state["networks"] if n.get("dhcp_port") is not None
            and any(s.get("enable_dhcp") for s in n["subnets"])]
    routers = state["routers"]
    return {"dhcp_networks": sorted(n["id"] for n in dhcp), "routers": sorted(r["id"] for r in routers),
            "counts": {"networks": len(dhcp), "subnets": sum(len(n["subnets"]) for n in dhcp),
                       "tunnels": sum(1 for n in state["networks"] if n.get("tunnel")),
                       "ports": len(state["ports"]), "bridges": len(state["networks"]),
                       "router_count": len(routers),
                       "floating_ips": sum(len(r.get("floating_ips") or []) for r in routers),
                       "interfaces": sum(len(r.get("interfaces") or []) for r in routers),
                       "gateways": sum(1 for r in routers if r.get("gateway"))}}


def nat_rules(r: dict[str, Any]) -> str:
    """The router's NAT: floating IPs (DNAT in, SNAT out) and, with SNAT on, the internal subnets
    leave with the gateway's address.  Traffic between internal subnets is never translated."""
    lines = ["*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
             ":POSTROUTING ACCEPT [0:0]"]
    gw = r.get("gateway")
    if gw:
        qg = router_end(gw["id"], True)
        for f in sorted(r["floating_ips"], key=lambda f: f["floating_ip_address"]):
            if ipaddress.ip_address(f["fixed_ip_address"]).version != 4:
                continue
            lines += [f"-A PREROUTING -d {f['floating_ip_address']}/32 -j DNAT --to-destination "
                      f"{f['fixed_ip_address']}",
                      f"-A OUTPUT -d {f['floating_ip_address']}/32 -j DNAT --to-destination {f['fixed_ip_address']}",
                      f"-A POSTROUTING -s {f['fixed_ip_address']}/32 -o {qg} -j SNAT --to-source "
                      f"{f['floating_ip_address']}"]
        v4 = [ip["ip_address"] for ip in gw["ips"] if ipaddress.ip_address(ip["ip_address"]).version == 4]
        if r.get("enable_snat", True) and v4:
            for port in r["interfaces"]:
                for ip in port["ips"]:
                    if ipaddress.ip_address(ip["ip_address"]).version == 4:
                        net = ipaddress.ip_interface(with_prefix(ip)).network
                        lines.append(f"-A POSTROUTING -s {net} -o {qg} -j SNAT --to-source {v4[0]}")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"
