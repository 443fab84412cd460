"""The network topology picture: a project's networks, routers, servers and loose ports laid out
for an SVG that the server renders (no script draws it).

Each network is a vertical bar (external ones first, on the left); each router, server or port
is a box on a row, with a line to every network it has an address on, labelled with that
address.  A box sits just right of its leftmost network, and boxes share a row where their
spans do not overlap, so a project of a few networks and many servers stays compact.  Every
node links to its own page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

COLUMN = 300  # between two network bars
LEFT = 30
TOP = 56  # where the bars start (their labels above)
ROW = 54
BOX_W, BOX_H = 116, 34
GAP = 96  # from a bar to the box right of it: room for an address
MAX_DEVICES = 400
# ports a router or nothing at all stands for (their device is drawn, or there is none to draw)
NOT_DRAWN = ("network:dhcp", "network:router_gateway", "network:router_interface", "network:floatingip",
             "network:router_interface_distributed", "network:router_ha_interface")


@dataclass
class Bar:
    id: str
    name: str
    cidrs: list[str]
    external: bool
    x: float = 0
    href: str = ""


@dataclass
class Link:
    x1: float
    x2: float
    y: float
    bar_x: float
    label: str  # the first address (and how many more)
    addresses: str  # all of them, for the tooltip


@dataclass
class Box:
    kind: str  # router, server, port
    id: str
    name: str
    href: str
    nets: dict[str, list[str]]  # network id -> its addresses there
    x: float = 0
    y: float = 0
    links: list[Link] = field(default_factory=list)


@dataclass
class Picture:
    bars: list[Bar]
    boxes: list[Box]
    width: float
    height: float
    bar_height: float
    left_out: int = 0
    box_w: int = BOX_W
    box_h: int = BOX_H


def short(name: str, n: int = 20) -> str:
    return name if len(name) <= n else name[:n - 1] + "…"


def draw(project: str, networks: list[dict[str, Any]], subnets: list[dict[str, Any]],
         routers: list[dict[str, Any]], ports: list[dict[str, Any]], servers: list[dict[str, Any]]) -> Picture:
    """The picture of ``project``'s part of the cloud: its networks, the external ones and any other
    (shared) network one of its routers or ports is on."""
    server_names = {s["id"]: s.get("name") or s["id"][:8] for s in servers}
    boxes: list[Box] = []
    for r in routers:
        nets: dict[str, list[str]] = {}
        gateway = r.get("external_gateway_info") or {}
        if gateway.get("network_id"):
            nets[gateway["network_id"]] = [ip["ip_address"] for ip in gateway.get("external_fixed_ips") or []]
        boxes.append(Box("router", r["id"], r.get("name") or r["id"][:8], f"/project/routers/{r['id']}", nets))
    routers_at = {b.id: b for b in boxes}
    servers_at: dict[str, Box] = {}
    for p in ports:
        owner, device = p.get("device_owner") or "", p.get("device_id") or ""
        addresses = [ip["ip_address"] for ip in p.get("fixed_ips") or []]
        if owner == "network:router_interface" and device in routers_at:
            routers_at[device].nets.setdefault(p["network_id"], []).extend(addresses)
        elif owner.startswith("compute:") and device:
            box = servers_at.get(device)
            if box is None:
                box = servers_at[device] = Box("server", device, server_names.get(device, device[:8]),
                                               f"/project/instances/{device}", {})
            box.nets.setdefault(p["network_id"], []).extend(addresses)
        elif owner not in NOT_DRAWN and not device:
            boxes.append(Box("port", p["id"], p.get("name") or f"port {p['id'][:8]}",
                             f"/project/networks/{p['network_id']}", {p["network_id"]: addresses}))
    boxes += sorted(servers_at.values(), key=lambda b: b.name)
    used = {n for b in boxes for n in b.nets}
    shown = [n for n in networks if n.get("router:external") or n.get("project_id") == project or n["id"] in used]
    shown.sort(key=lambda n: (not n.get("router:external"), n.get("name") or "", n["id"]))
    cidrs: dict[str, list[str]] = {}
    for s in subnets:
        cidrs.setdefault(s["network_id"], []).append(s["cidr"])
    bars = [Bar(n["id"], n.get("name") or n["id"][:8], cidrs.get(n["id"], []), bool(n.get("router:external")),
                LEFT + 60 + i * COLUMN, f"/project/networks/{n['id']}") for i, n in enumerate(shown)]
    column = {b.id: b for b in bars}
    drawn = [b for b in boxes if any(n in column for n in b.nets) or b.kind == "router"][:MAX_DEVICES]
    left_out = len([b for b in boxes if any(n in column for n in b.nets) or b.kind == "router"]) - len(drawn)
    rows: list[list[tuple[float, float]]] = []
    right = LEFT + 60 + max(len(bars) - 1, 0) * COLUMN
    for box in drawn:
        xs = sorted(column[n].x for n in box.nets if n in column)
        box.x = (xs[0] + GAP) if xs else LEFT + 60 + len(bars) * COLUMN
        span = (min(xs[0] if xs else box.x, box.x), max(xs[-1] if xs else 0, box.x + BOX_W) + 8)
        free = [i for i, row in enumerate(rows) if all(span[1] < a or span[0] > b for a, b in row)]
        if not free:
            rows.append([])
        at = free[0] if free else len(rows) - 1
        rows[at].append(span)
        box.y = TOP + 30 + at * ROW
        right = max(right, box.x + BOX_W)
        mid = box.y + BOX_H / 2
        for net_id, addresses in box.nets.items():
            if net_id not in column:
                continue
            bx = column[net_id].x
            label = (addresses[0] + (f" +{len(addresses) - 1}" if len(addresses) > 1 else "")) if addresses else ""
            if bx < box.x:
                box.links.append(Link(bx, box.x, mid, bx, label, ", ".join(addresses)))
            else:
                box.links.append(Link(box.x + BOX_W, bx, mid, bx, label, ", ".join(addresses)))
    bar_height = 30 + max(len(rows), 1) * ROW + 10
    return Picture(bars, drawn, right + LEFT + 40, TOP + bar_height + 20, bar_height, left_out)
