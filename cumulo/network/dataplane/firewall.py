"""Security groups as iptables rules on the bridge ports of servers (br_netfilter + physdev).

Every bridged packet goes through the chain ``cumulo-sg``, which first jumps to the ingress
chain of the port the packet goes out to (``ci-<port>``: returns when a rule admits it, drops
otherwise), then drops what goes to a tap no port describes (the mark says an ingress chain
passed it), then to the egress chain of the port it came in from (``co-<port>``: the source
check ``cs-<port>`` — MAC and IP of the port and its allowed address pairs — then the rules;
accepts or drops).  Traffic between router, DHCP and external ends is not filtered.
Stateful groups admit replies through conntrack; each network's bridge has its own conntrack
zone (allocated by the agent, ``cumulo.network.dataplane.zones``), so overlapping addresses of
different networks never share an entry; a network without one (all zones held) drops traffic.

A rule whose remote is a group does not repeat the group's addresses in every port's chain
(which made the rules grow with the square of the group's ports): each group has a chain of its
members' addresses per direction — ``gs-<group>`` marks a packet from a member (the ingress
chain returns on the mark), ``gd-<group>`` accepts a packet to a member — and a port's rule
jumps there.  The rules grow with ports times rules plus members.

``rules(state)`` is a pure function: the agent applies its output with iptables-restore (and
ip6tables-restore), atomically, and only when it changed.  It carries the mangle table of QoS
(``cumulo.network.dataplane.qos``: egress bandwidth limits and DSCP marks) too.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from cumulo.network.dataplane import qos
from cumulo.network.dataplane.names import bridge, port_chains, tap_prefix

PASSED = "0x10000/0x10000"
MEMBER = "0x20000/0x20000"  # the packet came from a member of the remote group just checked
MARKS = "0x30000"  # the bits this module sets, cleared when a packet enters cumulo-sg
PROTOCOLS = {"tcp": "tcp", "udp": "udp", "icmp": "icmp", "sctp": "sctp", "udplite": "udplite",
             "ipv6-icmp": "ipv6-icmp", "icmpv6": "ipv6-icmp", "6": "tcp", "17": "udp", "1": "icmp",
             "58": "ipv6-icmp", "132": "sctp"}
WITH_PORTS = {"tcp", "udp", "sctp", "udplite"}


def server_ports(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in state.get("ports", []) if p.get("device_owner", "").startswith("compute:")]


def members(state: dict[str, Any]) -> dict[str, dict[int, list[str]]]:
    """Addresses of each security group's ports, by IP version (for remote-group rules)."""
    out: dict[str, dict[int, list[str]]] = {}
    for port in server_ports(state):
        for group in port.get("security_groups") or []:
            by_version = out.setdefault(group, {4: [], 6: []})
            for ip in port.get("ips", []):
                by_version[ipaddress.ip_address(ip["ip_address"]).version].append(ip["ip_address"])
    return out


def rule_matches(rule: dict[str, Any], version: int, remote: dict[str, dict[int, list[str]]],
                 direction: str) -> list[str]:
    """The iptables match strings of one security-group rule (one per remote address when the
    rule names a remote group; none when the rule cannot match this IP version)."""
    if (rule.get("ethertype") or "IPv4") != f"IPv{version}":
        return []
    parts: list[str] = []
    proto = rule.get("protocol")
    proto = None if proto in (None, "", "any", "0") else PROTOCOLS.get(str(proto).lower(), str(proto).lower())
    if proto == "icmp" and version == 6:
        proto = "ipv6-icmp"
    if proto:
        parts.append(f"-p {proto}")
        low, high = rule.get("port_range_min"), rule.get("port_range_max")
        if proto in WITH_PORTS and low is not None:
            if proto not in ("tcp", "udp"):
                parts.append(f"-m {proto}")
            parts.append(f"--dport {low}" if high in (None, low) else f"--dport {low}:{high}")
        elif proto in ("icmp", "ipv6-icmp") and low is not None:
            flag = "--icmp-type" if proto == "icmp" else "--icmpv6-type"
            parts.append(f"{flag} {low}" + (f"/{high}" if high is not None else ""))
    side = "-s" if direction == "ingress" else "-d"
    base = " ".join(parts)
    if rule.get("remote_group_id"):  # the group's chain of addresses decides (see group_chains)
        return [f"{base} -j {member_chain(rule['remote_group_id'], direction)}".strip()]
    prefix = rule.get("remote_ip_prefix")
    if prefix:
        net = ipaddress.ip_network(prefix, strict=False)
        if net.version != version:
            return []
        if net.prefixlen:
            return [f"{side} {net} {base}".strip()]
    return [base]


def source_pairs(port: dict[str, Any]) -> list[tuple[str, str]]:
    """(address or prefix, MAC) a port may send from: its addresses and its allowed address pairs."""
    pairs = [(ip["ip_address"], port["mac"]) for ip in port.get("ips", [])]
    return pairs + [(p["ip_address"], p.get("mac_address") or port["mac"])
                    for p in port.get("allowed_address_pairs") or []]


def member_chain(group_id: str, direction: str) -> str:
    return f"{'gs' if direction == 'ingress' else 'gd'}-{group_id[:16]}"


def group_rules(groups: list[dict[str, Any]], direction: str, chain: str, target: str, version: int,
                remote: dict[str, dict[int, list[str]]]) -> list[str]:
    out = []
    for group in groups:
        for rule in group.get("rules", []):
            if rule.get("direction") != direction:
                continue
            for m in rule_matches(rule, version, remote, direction):
                if not rule.get("remote_group_id"):
                    out.append(f"-A {chain} {m} -j {target}".replace("  ", " "))
                elif direction == "ingress":  # the group's chain marks a member's packet
                    out += [f"-A {chain} {m}".replace("  ", " "), f"-A {chain} -m mark --mark {MEMBER} -j {target}"]
                else:  # the group's chain accepts a packet to a member
                    out.append(f"-A {chain} {m}".replace("  ", " "))
    return out


def group_chains(state: dict[str, Any], version: int, remote: dict[str, dict[int, list[str]]]) -> tuple[
        list[str], list[str]]:
    """The chains of the groups that rules name as their remote: declarations, then rules (one
    line per member address and direction)."""
    named = sorted({r["remote_group_id"] for g in state.get("security_groups", {}).values()
                    for r in g.get("rules", []) if r.get("remote_group_id")})
    heads, lines = [], []
    width = 32 if version == 4 else 128
    for group_id in named:
        src, dst = member_chain(group_id, "ingress"), member_chain(group_id, "egress")
        heads += [f":{src} - [0:0]", f":{dst} - [0:0]"]
        for address in sorted(set(remote.get(group_id, {}).get(version, []))):
            lines += [f"-A {src} -s {address}/{width} -j MARK --set-xmark {MEMBER}",
                      f"-A {dst} -d {address}/{width} -j ACCEPT"]
    return heads, lines


def rules(state: dict[str, Any], version: int, zones: dict[str, int]) -> str:
    """iptables-restore input (filter and raw tables) for the machine's bridge namespace;
    ``zones`` is each network's conntrack zone."""
    groups: dict[str, Any] = state.get("security_groups", {})
    remote = members(state)
    filt = [":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", ":cumulo-sg - [0:0]"]
    heads, chains = group_chains(state, version, remote)
    filt += heads
    jumps_in, jumps_out = [], []
    for port in sorted(server_ports(state), key=lambda p: p["id"]):
        ci, co, cs = port_chains(port["id"])
        tap = tap_prefix(port["id"])
        filt += [f":{ci} - [0:0]", f":{co} - [0:0]", f":{cs} - [0:0]"]
        jumps_in.append(f"-A cumulo-sg -m physdev --physdev-out {tap} --physdev-is-bridged "
                        f"-j MARK --set-xmark {PASSED}")
        jumps_in.append(f"-A cumulo-sg -m physdev --physdev-out {tap} --physdev-is-bridged -j {ci}")
        jumps_out.append(f"-A cumulo-sg -m physdev --physdev-in {tap} --physdev-is-bridged -j {co}")
        if not port.get("port_security", True):
            chains += [f"-A {ci} -j RETURN", f"-A {co} -j ACCEPT", f"-A {cs} -j RETURN"]
            continue
        own = [groups[g] for g in port.get("security_groups") or [] if g in groups]
        stateful = any(g.get("stateful", True) for g in own)
        # into the server
        if stateful:
            chains += [f"-A {ci} -m state --state RELATED,ESTABLISHED -j RETURN",
                       f"-A {ci} -m state --state INVALID -j DROP"]
        if version == 4:
            chains.append(f"-A {ci} -p udp -m udp --sport 67 --dport 68 -j RETURN")
        else:
            for icmp in (130, 131, 132, 134, 135, 136):  # MLD, router advertisements, neighbour discovery
                chains.append(f"-A {ci} -p ipv6-icmp -m icmp6 --icmpv6-type {icmp} -j RETURN")
            chains.append(f"-A {ci} -p udp -m udp --sport 547 --dport 546 -j RETURN")
        chains += group_rules(own, "ingress", ci, "RETURN", version, remote)
        chains.append(f"-A {ci} -j DROP")
        # out of the server: DHCP requests, the source check, then the rules
        if version == 4:
            chains.append(f"-A {co} -s 0.0.0.0/32 -d 255.255.255.255/32 -p udp -m udp --sport 68 --dport 67 "
                          "-j ACCEPT")
        else:
            for icmp in (131, 133, 135, 136):
                chains.append(f"-A {co} -p ipv6-icmp -m icmp6 --icmpv6-type {icmp} -j ACCEPT")
        chains.append(f"-A {co} -j {cs}")
        pairs = source_pairs(port)
        if version == 6:
            pairs.append((str(link_local(port["mac"])), port["mac"]))
        for address, mac in pairs:
            net = ipaddress.ip_network(address, strict=False)
            if net.version == version:
                chains.append(f"-A {cs} -s {net} -m mac --mac-source {mac} -j RETURN")
        chains.append(f"-A {cs} -j DROP")
        if version == 4:
            chains.append(f"-A {co} -p udp -m udp --sport 67 --dport 68 -j DROP")  # no DHCP servers on ports
        else:
            chains.append(f"-A {co} -p ipv6-icmp -m icmp6 --icmpv6-type 134 -j DROP")  # nor routers
            chains.append(f"-A {co} -p udp -m udp --sport 547 --dport 546 -j DROP")
        if stateful:
            chains += [f"-A {co} -m state --state RELATED,ESTABLISHED -j ACCEPT",
                       f"-A {co} -m state --state INVALID -j DROP"]
        chains += group_rules(own, "egress", co, "ACCEPT", version, remote)
        chains.append(f"-A {co} -j DROP")
    body = ["*filter", *filt, "-A FORWARD -m physdev --physdev-is-bridged -j cumulo-sg",
            f"-A cumulo-sg -j MARK --set-xmark 0x0/{MARKS}", *jumps_in,
            # a tap no port describes (yet) gets nothing
            f"-A cumulo-sg -m physdev --physdev-out tap+ --physdev-is-bridged -m mark ! --mark {PASSED} -j DROP",
            *jumps_out,
            "-A cumulo-sg -m physdev --physdev-in tap+ --physdev-is-bridged -j DROP",
            *chains, "COMMIT"]
    raw = ["*raw", ":PREROUTING ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
    for network in sorted(state.get("networks", []), key=lambda n: n["id"]):
        zone = zones.get(network["id"])
        if zone is None:  # fail closed: without a zone of its own it would share the default one
            raw.append(f"-A PREROUTING -i {bridge(network['id'])} -j DROP")
        else:
            raw.append(f"-A PREROUTING -i {bridge(network['id'])} -j CT --zone {zone}")
    raw.append("COMMIT")
    return "\n".join(body + raw) + "\n" + qos.mangle(state, version)  # bandwidth limits and DSCP marks


def link_local(mac: str) -> ipaddress.IPv6Address:
    """The EUI-64 link-local address of a MAC (what a guest uses before it has an address)."""
    parts = [int(x, 16) for x in mac.split(":")]
    parts[0] ^= 0x02
    eui = parts[:3] + [0xFF, 0xFE] + parts[3:]
    return ipaddress.IPv6Address(bytes([0xFE, 0x80] + [0] * 6 + eui))


def arp_rules(state: dict[str, Any]) -> str:
    """ebtables-restore input: a server may only answer ARP for its own addresses (and allowed
    address pairs) from its own MACs, and send frames only from those MACs."""
    lines = ["*filter", ":INPUT ACCEPT", ":FORWARD ACCEPT", ":OUTPUT ACCEPT"]
    chains: list[str] = []
    for port in sorted(server_ports(state), key=lambda p: p["id"]):
        if not port.get("port_security", True):
            continue
        tap = tap_prefix(port["id"])
        arp, mac = f"ca-{port['id'][:10]}", f"cm-{port['id'][:10]}"
        lines += [f":{arp} RETURN", f":{mac} RETURN"]
        chains += [f"-A FORWARD -p ARP -i {tap} -j {arp}", f"-A FORWARD -i {tap} -j {mac}"]
        # address probes (RFC 5227) come from 0.0.0.0 before the guest has an address
        for address, owner in [("0.0.0.0", port["mac"]), *source_pairs(port)]:
            net = ipaddress.ip_network(address, strict=False)
            if net.version == 4:
                chains.append(f"-A {arp} -p ARP --arp-ip-src {net} --arp-mac-src {owner} -j RETURN")
        chains.append(f"-A {arp} -j DROP")
        for owner in sorted({port["mac"], *(p.get("mac_address") or port["mac"]
                                            for p in port.get("allowed_address_pairs") or [])}):
            chains.append(f"-A {mac} -s {owner} -j RETURN")
        chains.append(f"-A {mac} -j DROP")
    return "\n".join(lines + chains + ["COMMIT"]) + "\n"
