"""Read-only views of what the network has: IP availability per network and subnet (Neutron's
``network-ip-availability``, for admins), the availability zones networks and routers live in
(``availability_zone``: one zone, ``nova``, as the agents run without zones), and the service
providers of the advanced services (``service-type``: Cumulo's own L3 router, which openstacksdk's
project cleanup asks about).
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.db import Database
from cumulo.core.http.app import JSON, Router
from cumulo.core.http.authz import authorize
from cumulo.core.http.faults import BadRequest, NotFound
from cumulo.network.models import IPAllocation, Network, Subnet
from cumulo.network.views import shape, shape_one

ZONE = "nova"
SERVICE_PROVIDERS = [{"service_type": "L3_ROUTER_NAT", "name": "cumulo", "default": True}]


def _span(start: str, end: str) -> int:
    return int(ipaddress.ip_address(end)) - int(ipaddress.ip_address(start)) + 1


def _in_pools(address: str, pools: list[dict[str, str]]) -> bool:
    ip = int(ipaddress.ip_address(address))
    return any(int(ipaddress.ip_address(p["start"])) <= ip <= int(ipaddress.ip_address(p["end"])) for p in pools)


def subnet_availability(sub: Subnet, used: list[str]) -> dict[str, Any]:
    """Totals of one subnet: ``total_ips`` counts its allocation pools, ``used_ips`` every address
    handed out on it (the details say how many of each lie in the pools and in the CIDR)."""
    net = ipaddress.ip_network(sub.cidr)
    pools = sub.allocation_pools or []
    in_pools = sum(_span(p["start"], p["end"]) for p in pools)
    in_subnet = net.num_addresses - (2 if net.version == 4 and net.prefixlen < 31 else 0)
    used_in_pools = sum(1 for a in used if _in_pools(a, pools))
    return {"subnet_id": sub.id, "subnet_name": sub.name, "cidr": sub.cidr, "ip_version": sub.ip_version,
            "total_ips": in_pools, "used_ips": len(used),
            "ip_availability_details": {"total_ips_in_subnet": in_subnet, "total_ips_in_allocation_pool": in_pools,
                                        "used_ips_in_subnet": len(used),
                                        "used_ips_in_allocation_pool": used_in_pools}}


def network_availability(net: Network, subnets: list[dict[str, Any]]) -> dict[str, Any]:
    details = {k: sum(s["ip_availability_details"][k] for s in subnets) for k in (
        "total_ips_in_subnet", "total_ips_in_allocation_pool", "used_ips_in_subnet", "used_ips_in_allocation_pool")}
    return {"network_id": net.id, "network_name": net.name, "tenant_id": net.project_id, "project_id": net.project_id,
            "total_ips": sum(s["total_ips"] for s in subnets), "used_ips": sum(s["used_ips"] for s in subnets),
            "subnet_ip_availability": subnets, "ip_availability_details": details}


def router(db: Database) -> Router:
    r = Router()

    async def availabilities(network_ids: list[str] | None, version: int | None) -> list[dict[str, Any]]:
        async with db.session() as s:
            stmt = select(Network).order_by(Network.created_at, Network.id)
            if network_ids is not None:
                stmt = stmt.where(Network.id.in_(network_ids))
            nets = list((await s.execute(stmt)).scalars())
            ids = [n.id for n in nets]
            subs = select(Subnet).where(Subnet.network_id.in_(ids)).order_by(Subnet.created_at)
            if version is not None:
                subs = subs.where(Subnet.ip_version == version)
            subnets = list((await s.execute(subs)).scalars()) if ids else []
            used: dict[str, list[str]] = defaultdict(list)
            if subnets:
                for subnet_id, address in (await s.execute(select(IPAllocation.subnet_id, IPAllocation.ip_address)
                                                           .where(IPAllocation.network_id.in_(ids)))).all():
                    used[subnet_id].append(address)
        per_net: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for sub in subnets:
            per_net[sub.network_id].append(subnet_availability(sub, used[sub.id]))
        return [network_availability(n, per_net[n.id]) for n in nets if version is None or per_net[n.id]]

    @r.get("/v2.0/network-ip-availabilities")
    async def ip_availabilities(request: Request) -> Response:
        authorize(request, "get_network_ip_availability")
        version = None
        if "ip_version" in request.query_params:
            if request.query_params["ip_version"] not in ("4", "6"):
                raise BadRequest(f"Invalid input for ip_version. Reason: '{request.query_params['ip_version']}' is "
                                 "not in [4, 6].")
            version = int(request.query_params["ip_version"])
        items = await availabilities(None, version)
        scope = dict(request.scope)
        scope["query_string"] = "&".join(p for p in request.url.query.split("&")
                                         if not p.startswith("ip_version=")).encode()
        return JSON(shape(Request(scope), items, "network_ip_availabilities"))

    @r.get("/v2.0/network-ip-availabilities/{network_id}")
    async def ip_availability(request: Request) -> Response:
        authorize(request, "get_network_ip_availability")
        items = await availabilities([request.path_params["network_id"]], None)
        if not items:
            raise NotFound(f"Network {request.path_params['network_id']} could not be found.",
                           kind="NetworkNotFound")
        return JSON(shape_one(request, items[0], "network_ip_availability"))

    @r.get("/v2.0/availability_zones")
    async def zones(request: Request) -> Response:
        authorize(request, "get_availability_zone")
        items = [{"name": ZONE, "resource": kind, "state": "available"} for kind in ("network", "router")]
        return JSON(shape(request, items, "availability_zones"))

    @r.get("/v2.0/service-providers")
    async def service_providers(request: Request) -> Response:
        authorize(request, "get_service_provider")
        return JSON(shape(request, [dict(p) for p in SERVICE_PROVIDERS], "service_providers"))

    return r

