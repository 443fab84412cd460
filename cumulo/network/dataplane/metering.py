"""L3 metering in a router's namespace, as Neutron's iptables metering driver does it: the traffic
through the router's gateway (``qg-``) that a label's rules match is counted by iptables.  Ingress
is what comes in on the gateway, egress what leaves by it; a rule's ``remote_ip_prefix`` is the
source of ingress and the destination of egress traffic, ``source_ip_prefix`` and
``destination_ip_prefix`` match as named.  Per label and direction one chain: its ``excluded``
rules first (they return uncounted), then its counting rules (each returns once it counted, so
a packet counts once per label and direction).  The counts are the counters of the counting rules,
read after each round of the agent and shown as ``openstack_neutron_metering_bytes`` and
``..._packets`` (a change of a router's rules starts its counters anew, as iptables-restore does).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from prometheus_client import Gauge

BYTES = Gauge("openstack_neutron_metering_bytes", "Bytes through a router's gateway counted by a metering label",
              ["label_id", "router_id", "direction"])
PACKETS = Gauge("openstack_neutron_metering_packets",
                "Packets through a router's gateway counted by a metering label", ["label_id", "router_id",
                                                                                   "direction"])
COUNTED = "cumulo-metering"  # the comment on counting rules
DIRECTIONS = {"ingress": ("i", "-i"), "egress": ("o", "-o")}
SAVED = re.compile(r"^\[(\d+):(\d+)\] -A (ml-[0-9a-f]+-[io]) .*--comment " + COUNTED)


def chain(label_id: str, direction: str) -> str:
    return f"ml-{label_id.replace('-', '')[:20]}-{DIRECTIONS[direction][0]}"


def version_of(rule: dict[str, Any]) -> int | None:
    """The IP version of a rule's prefixes; None when they mix versions (nothing matches)."""
    versions = {ipaddress.ip_network(rule[key]).version for key in
                ("remote_ip_prefix", "source_ip_prefix", "destination_ip_prefix") if rule.get(key)}
    return versions.pop() if len(versions) == 1 else None


def match(rule: dict[str, Any]) -> str:
    if rule.get("remote_ip_prefix"):
        return f"{'-s' if rule['direction'] == 'ingress' else '-d'} {rule['remote_ip_prefix']}"
    parts = []
    if rule.get("source_ip_prefix"):
        parts.append(f"-s {rule['source_ip_prefix']}")
    if rule.get("destination_ip_prefix"):
        parts.append(f"-d {rule['destination_ip_prefix']}")
    return " ".join(parts)


def filter_rules(labels: list[dict[str, Any]], gateway_device: str | None, version: int) -> str:
    """The router's filter table for IP ``version``: its labels' chains on the gateway device."""
    lines = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
    body: list[str] = []
    if gateway_device:
        for label in labels:
            for direction, (_, flag) in DIRECTIONS.items():
                name = chain(label["id"], direction)
                lines.append(f":{name} - [0:0]")
                body.append(f"-A FORWARD {flag} {gateway_device} -j {name}")
                mine = [r for r in label["rules"] if r["direction"] == direction and version_of(r) == version]
                for r in sorted(mine, key=lambda r: not r["excluded"]):
                    if r["excluded"]:
                        body.append(f"-A {name} {match(r)} -j RETURN")
                    else:
                        body.append(f"-A {name} {match(r)} -m comment --comment {COUNTED} -j RETURN")
    return "\n".join(lines + body + ["COMMIT"]) + "\n"


def counts(saved: str) -> dict[str, tuple[int, int]]:
    """Packets and bytes per chain, from ``iptables-save -c -t filter``."""
    out: dict[str, tuple[int, int]] = {}
    for line in saved.splitlines():
        m = SAVED.match(line)
        if m:
            packets, octets = out.get(m.group(3), (0, 0))
            out[m.group(3)] = (packets + int(m.group(1)), octets + int(m.group(2)))
    return out


SHOWN: set[tuple[str, ...]] = set()  # the series this process shows


def report(router_id: str, labels: list[dict[str, Any]], by_chain: dict[str, tuple[int, int]]) -> set[tuple[str, ...]]:
    """Shows a router's counts; returns the series it set."""
    out: set[tuple[str, ...]] = set()
    for label in labels:
        for direction in DIRECTIONS:
            packets, octets = by_chain.get(chain(label["id"], direction), (0, 0))
            BYTES.labels(label["id"], router_id, direction).set(octets)
            PACKETS.labels(label["id"], router_id, direction).set(packets)
            out.add((label["id"], router_id, direction))
    return out


def keep_only(series: set[tuple[str, ...]]) -> None:
    """After a round: the series of labels and routers that are gone are no longer shown."""
    for key in SHOWN - series:
        for gauge in (BYTES, PACKETS):
            try:
                gauge.remove(*key)
            except KeyError:
                pass
    SHOWN.clear()
    SHOWN.update(series)
