"""QoS on server ports (``cumulo.network.qos`` says what applies to which port; each port of the
desired state carries it as ``qos``).  Directions are the server's, as in Neutron:

* ``ingress`` (towards the server): a token bucket filter (``tc qdisc ... root tbf``) on the
  port's tap in ``<prefix>-dp``: what the tap sends to the guest is shaped to ``max_kbps``, with
  a bucket of ``max_burst_kbps`` (80 % of a second's worth when 0, as Neutron's default; at
  least a few full frames).  Removed (back to the tap's default qdisc) when no rule asks for it.
* ``egress`` (from the server): a policer in the mangle table of the bridge namespace — what
  the port's tap receives from the guest beyond ``max_kbps`` is dropped (``hashlimit`` in byte
  mode, one bucket per port; its burst is at least one second's worth, a limit of the match).
  Neutron's Linux bridge agent polices this direction with a tc ingress qdisc and a ``police``
  action, but these machines' kernels have neither tc actions nor loadable modules (``tc
  filter ... police`` is refused), so the firewall layer does it.  IPv4 and IPv6 are policed
  separately, each to the limit.
* DSCP marking: ``-j DSCP --set-dscp`` on what the server sends, in the same table, after the
  policer.

``mangle(state, version)`` is a pure function whose text the agent hands to iptables-restore
with the security groups; ``Shaper.converge`` makes each tap's root qdisc what its port wants.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from cumulo.network.dataplane.linux import links, run
from cumulo.network.dataplane.names import tap_prefix, taps

LOG = logging.getLogger(__name__)
LATENCY = "50ms"  # how long a packet may wait in the bucket (Neutron's tbf default)
MIN_BURST = 16 * 1514  # bytes: a bucket smaller than a few full frames stalls the link
MAX_BYTES = 1_000_000_000  # bytes per second: hashlimit refuses rates far above this (8 Gbit/s: no limit)


def _limit(port: dict[str, Any], direction: str) -> dict[str, int] | None:
    rule = ((port.get("qos") or {}).get("bandwidth_limit") or {}).get(direction)
    return rule if rule and rule.get("max_kbps") else None


def burst_bytes(max_kbps: int, max_burst_kbps: int) -> int:
    kbits = max_burst_kbps or int(max_kbps * 0.8)
    return max(MIN_BURST, kbits * 125)


def tbf_of(port: dict[str, Any]) -> tuple[int, int] | None:
    """(rate in kbit/s, bucket in bytes) of the port's ingress limit, or None."""
    rule = _limit(port, "ingress")
    if rule is None:
        return None
    return rule["max_kbps"], burst_bytes(rule["max_kbps"], rule.get("max_burst_kbps") or 0)


def police_of(port: dict[str, Any]) -> tuple[int, int] | None:
    """(rate, burst) in bytes of the port's egress limit, or None (no limit, or above what
    hashlimit can count)."""
    rule = _limit(port, "egress")
    if rule is None:
        return None
    rate = rule["max_kbps"] * 125
    if rate > MAX_BYTES:
        return None
    return rate, max(rate, burst_bytes(rule["max_kbps"], rule.get("max_burst_kbps") or 0))


def server_ports(state: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted((p for p in state.get("ports", []) if p.get("device_owner", "").startswith("compute:")),
                  key=lambda p: p["id"])


def mangle(state: dict[str, Any], version: int) -> str:
    """iptables-restore input for the mangle table of ``<prefix>-dp``: the egress policers and
    DSCP marks of server ports (an empty table when none has any)."""
    lines = ["*mangle", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]",
             ":OUTPUT ACCEPT [0:0]", ":POSTROUTING ACCEPT [0:0]", ":cumulo-qos - [0:0]",
             "-A FORWARD -m physdev --physdev-is-bridged -j cumulo-qos"]
    for port in server_ports(state):
        sent = f"-A cumulo-qos -m physdev --physdev-in {tap_prefix(port['id'])} --physdev-is-bridged"
        police = police_of(port)
        if police is not None:
            rate, burst = police
            lines.append(f"{sent} -m hashlimit --hashlimit-above {rate}b/s --hashlimit-burst {burst}b "
                         f"--hashlimit-name q{port['id'][:10]} -j DROP")
        mark = (port.get("qos") or {}).get("dscp_mark")
        if mark is not None:
            lines.append(f"{sent} -j DSCP --set-dscp {int(mark)}")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


class Shaper:
    """Each server tap's root qdisc in ``<prefix>-dp``: tbf where its port has an ingress limit,
    the default elsewhere.  What it set is remembered, so a round that changes nothing lists the
    links and qdiscs and does nothing else; a tap whose tbf went away (a tap made again) gets it
    back."""

    def __init__(self) -> None:
        self.applied: dict[str, tuple[int, int]] = {}  # tap -> (kbit/s, bytes) last set

    async def converge(self, ns: str, state: dict[str, Any]) -> None:
        present = {link["name"] for link in await links(ns)}
        roots: dict[str, str] = {}  # devices with their default qdisc (noqueue) are not listed
        for q in json.loads(await run("ip", "netns", "exec", ns, "tc", "-j", "qdisc", "show") or "[]"):
            if q.get("root"):
                roots[q.get("dev", "")] = q.get("kind", "")
        wanted: dict[str, tuple[int, int] | None] = {}
        for port in server_ports(state):
            for tap in taps(port["id"]):
                if tap in present:
                    wanted[tap] = tbf_of(port)
        for tap, spec in wanted.items():
            if spec is None:
                if roots.get(tap) == "tbf":
                    LOG.info("QoS: removing the bandwidth limit of %s", tap)
                    await run("ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", tap, "root",
                              ok_if=("Cannot find device", "handle of zero", "Invalid handle"))
                self.applied.pop(tap, None)
            elif roots.get(tap) != "tbf" or self.applied.get(tap) != spec:
                kbit, burst = spec
                LOG.info("QoS: %s limited to %s kbit/s towards the server (bucket %s bytes)", tap, kbit, burst)
                await run("ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", tap, "root", "tbf",
                          "rate", f"{kbit}kbit", "burst", str(burst), "latency", LATENCY)
                self.applied[tap] = spec
        for tap in set(self.applied) - set(wanted):  # taps that went away
            self.applied.pop(tap, None)


async def trace_lines(ns: str, port: dict[str, Any], found: list[str]) -> list[str]:
    """What ``cumulo network trace`` shows of a server port's QoS: the rules that reach it, each
    tap's root qdisc, and the port's mangle rules with their packet counters."""
    qos = port.get("qos") or {}
    if not qos:
        return []
    wanted = [f"{direction} {r['max_kbps']} kbit/s" for direction, r in sorted(qos.get("bandwidth_limit", {}).items())]
    if qos.get("dscp_mark") is not None:
        wanted.append(f"DSCP mark {qos['dscp_mark']}")
    lines = [f"  qos       {', '.join(wanted)}"]
    for tap in found:
        shown = await run("ip", "netns", "exec", ns, "tc", "qdisc", "show", "dev", tap, "root", check=False)
        lines.append(f"            {tap} root qdisc: {shown.strip() or 'none'}")
    rules = await run("ip", "netns", "exec", ns, "iptables-save", "-c", "-t", "mangle", check=False)
    for line in rules.splitlines():
        if f"--physdev-in {tap_prefix(port['id'])} " in line:
            counters, _, rule = line.partition(" ")
            lines.append(f"            {counters.strip('[]').split(':')[0]:>8} pkts  {rule[3:]}")
    return lines
