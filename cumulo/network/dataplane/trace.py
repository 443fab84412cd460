"""``cumulo network trace SERVER|PORT``: the path of a port through the dataplane, assembled the
way an operator would by hand with ``ip``, ``iptables`` and the DHCP leases (Operations Guide,
"Network Troubleshooting"): the tap and its bridge, the bridge's other ports, the DHCP namespace
and lease, the security-group chains with their hit counters, the router with its routes and
NAT rules (with counters), and the floating IP.  Counters count since the rules last changed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from cumulo.network.dataplane.dhcp import DhcpServer
from cumulo.network.dataplane.linux import addresses, links, ns_exists, run
from cumulo.network.dataplane.names import Names, bridge, bridge_end, port_chains, router_end, taps
from cumulo.network.dataplane.qos import trace_lines as qos_lines


async def counted_rules(ns: str, tool: str, table: str, chains: set[str] | None = None,
                        matching: str | None = None) -> list[str]:
    """``[packets:bytes] -A CHAIN ...`` lines of a table, for some chains or lines matching text."""
    if not ns_exists(ns):
        return []
    out = []
    text = await run("ip", "netns", "exec", ns, tool, "-c", "-t", table, check=False)
    for line in text.splitlines():
        m = re.match(r"^\[(\d+):(\d+)\] -A (\S+) (.*)$", line)
        if not m:
            continue
        if (chains is not None and m.group(3) in chains) or (matching and matching in line):
            out.append(f"{m.group(1):>8} pkts  {m.group(3)} {m.group(4)}")
    return out


def find_ports(state: dict[str, Any], what: str) -> list[dict[str, Any]]:
    """Ports of a server (by id or name) or the port itself (by id or an id prefix)."""
    ports = state["ports"]
    exact = [p for p in ports if p["id"] == what or p["device_id"] == what]
    return exact or [p for p in ports if p["id"].startswith(what) and len(what) >= 8]


async def trace(state: dict[str, Any], what: str, prefix: str, state_dir: Path,
                servers: dict[str, str] | None = None) -> list[str]:
    """The lines of the trace; ``servers`` maps server names to ids for lookups by name."""
    names = Names(prefix)
    wanted = (servers or {}).get(what, what)
    ports = find_ports(state, wanted)
    if not ports:
        return [f"no port or server {what!r} is known (give a server's name or id, or a port id)"]
    nets = {n["id"]: n for n in state["networks"]}
    dp_links = {link["name"]: link for link in await links(names.dp)}
    lines: list[str] = []
    for port in ports:
        net = nets.get(port["network_id"], {"id": port["network_id"], "subnets": [], "dhcp_port": None})
        ips = ", ".join(ip["ip_address"] for ip in port["ips"]) or "no address"
        lines.append(f"port {port['id']}  {port['mac']}  {ips}")
        lines.append(f"  owner     {port['device_owner'] or '-'} {port['device_id'] or ''}  host "
                     f"{port['host'] or '(unbound)'}  port security {'on' if port['port_security'] else 'off'}")
        br = bridge(net["id"])
        lines.append(f"  network   {net['id']}  segment {net.get('segment_id')}  mtu {net.get('mtu')}  bridge {br} "
                     f"in {names.dp}" + ("" if br in dp_links else "  MISSING"))
        found = [t for t in taps(port["id"]) if t in dp_links]
        for t in found:
            link = dp_links[t]
            lines.append(f"  tap       {t}: {'up' if link['up'] else 'DOWN'}, master {link['master']}, "
                         f"mtu {link['mtu']}")
        if not found and port["device_owner"].startswith("compute:"):
            lines.append("  tap       none on this machine (the server is stopped, elsewhere, or has no NIC)")
        members = sorted(name for name, link in dp_links.items() if link.get("master") == br)
        lines.append(f"  bridge    {br} ports: {', '.join(members) or 'none'}")
        dhcp = net.get("dhcp_port")
        if dhcp:
            ns = names.dhcp(net["id"])
            server = DhcpServer(state_dir / "network" / "dhcp", net["id"], ns)
            pid = server.pid()
            lines.append(f"  dhcp      {ns}: {bridge_end(dhcp['id'])} -> "
                         f"{', '.join(ip['ip_address'] for ip in dhcp['ips'])}, dnsmasq "
                         f"{'pid ' + str(pid) if pid else 'NOT RUNNING'}")
            leases = [x for x in server.leases() if x["mac"] == port["mac"]]
            for lease in leases:
                lines.append(f"  lease     {lease['ip']} {lease['mac']} {lease['hostname']} "
                             f"(expires {lease['expires']})")
            if not leases and port["device_owner"].startswith("compute:"):
                lines.append("  lease     none yet (the guest has not asked, or its DHCP did not get through)")
            lines.append(f"  metadata  169.254.169.254:80 in {ns}")
        if port["device_owner"].startswith("compute:"):
            ci, co, cs = port_chains(port["id"])
            groups = ", ".join(port["security_groups"]) or "none"
            lines.append(f"  security  groups {groups}; chains {ci} (in), {co} (out), {cs} (source check)")
            for rule in await counted_rules(names.dp, "iptables-save", "filter", {ci, co, cs}):
                lines.append(f"            {rule}")
            lines += await qos_lines(names.dp, port, found)
        for r in state["routers"]:
            legs = [p for p in r["interfaces"] if p["network_id"] == net["id"]]
            if not legs:
                continue
            ns = names.router(r["id"])
            addrs = await addresses(ns)
            lines.append(f"  router    {r['id']} in {ns}" + ("" if ns_exists(ns) else "  MISSING"))
            for leg in legs:
                inner = router_end(leg["id"])
                lines.append(f"            {inner}: {', '.join(addrs.get(inner, [])) or 'no address'}")
            gw = r.get("gateway")
            if gw:
                qg = router_end(gw["id"], True)
                lines.append(f"            gateway {qg}: {', '.join(addrs.get(qg, [])) or 'no address'}  "
                             f"SNAT {'on' if r['enable_snat'] else 'off'}")
            routes = await run("ip", "-n", ns, "route", "show", check=False) if ns_exists(ns) else ""
            for route in routes.strip().splitlines():
                lines.append(f"            route {route}")
            for fip in r["floating_ips"]:
                if fip["port_id"] == port["id"]:
                    lines.append(f"  floating  {fip['floating_ip_address']} -> {fip['fixed_ip_address']}")
            cidrs = {s["id"]: s["cidr"] for s in net["subnets"]}
            for text in [ip["ip_address"] + "/32" for ip in port["ips"]] + [
                    cidrs[ip["subnet_id"]] for ip in port["ips"] if ip["subnet_id"] in cidrs]:
                for rule in await counted_rules(ns, "iptables-save", "nat", matching=f"-s {text} "):
                    lines.append(f"            {rule}")
            for fip in r["floating_ips"]:
                if fip["port_id"] == port["id"]:
                    for rule in await counted_rules(ns, "iptables-save", "nat",
                                                    matching=f"-d {fip['floating_ip_address']}/32 "):
                        lines.append(f"            {rule}")
        lines.append("")
    return lines
