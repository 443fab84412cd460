"""Routers (external gateway with SNAT on/off, interfaces, static routes) and floating IPs, as the
API sees them; the dataplane agent turns them into router namespaces with NAT.

Gateway, interface and floating-IP addresses are ports like any other (device owners
``network:router_gateway``, ``network:router_interface``, ``network:floatingip``), so the same
IPAM rules hold: no address is ever handed out twice.

``distributed`` (the ``dvr`` extension) and ``ha`` are Neutron's admin-only router attributes: only
an admin may give them (a member's attempt is 403) and only an admin sees them.  Every router here
is centralized and single: the dataplane runs it in one namespace on the network node and does not
distribute it to compute hosts, nor keep standby copies, so ``true`` for either is refused (400)
rather than stored as a promise the dataplane would not keep.
"""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any

from sqlalchemy import select, update
from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.http.app import JSON, Router, json_body
from cumulo.core.http.authz import allowed, authorize
from cumulo.core.http.faults import BadRequest, Conflict, NotFound
from cumulo.network import tags
from cumulo.network.ipam import Ipam
from cumulo.network.models import FloatingIP, IPAllocation, Port, Subnet
from cumulo.network.models import Router as RouterRow
from cumulo.network.policies import VERB
from cumulo.network.requests import body, who
from cumulo.network.views import shape, shape_one


def stamp(value: Any) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


async def show_router(svc: Ipam, row: RouterRow) -> dict[str, Any]:
    """A router as the API shows it."""
    gateway = None
    if row.gateway_network_id:
        ips = (await svc.allocations([row.gateway_port_id]))[row.gateway_port_id] if row.gateway_port_id else []
        gateway = {"network_id": row.gateway_network_id, "enable_snat": row.enable_snat,
                   "external_fixed_ips": ips}
    return {"id": row.id, "name": row.name, "admin_state_up": row.admin_state_up, "status": "ACTIVE",
            "external_gateway_info": gateway, "routes": row.routes or [], "distributed": False, "ha": False,
            "availability_zone_hints": [], "availability_zones": ["nova"], "flavor_id": None,
            "description": row.description, "tags": row.tags or [], "revision_number": row.revision_number,
            "created_at": stamp(row.created_at), "updated_at": stamp(row.updated_at),
            "tenant_id": row.project_id, "project_id": row.project_id}


# the admin-only attributes (policies create_/get_/update_router:<name>) and what this cloud cannot do
ADMIN_ATTRIBUTES = {"distributed": "distributed (DVR) routers: the dataplane runs every router centralized",
                    "ha": "HA routers: the dataplane runs one copy of every router"}
ATTRIBUTE_RULES = {"distributed": {"create": "create_router:distributed", "update": "update_router:distributed",
                                   "get": "get_router:distributed"},
                   "ha": {"create": "create_router:ha", "update": "update_router:ha", "get": "get_router:ha"}}


def admin_attributes(request: Request, item: dict[str, Any], verb: str, owner: str) -> None:
    """Check ``distributed`` and ``ha`` in a create or update body: 403 unless the policy lets the
    caller give them at all (as Neutron, even ``false``), 400 for a non-boolean or ``true``."""
    for key, missing in ADMIN_ATTRIBUTES.items():
        if key not in item:
            continue
        authorize(request, ATTRIBUTE_RULES[key][verb], {"project_id": owner})
        if not isinstance(item[key], bool):
            raise BadRequest(f"Invalid input for {key}. Reason: '{item[key]}' is not a valid boolean value.")
        if item[key]:
            raise BadRequest(f"Bad router request: {key}=true is not supported here; this cloud has no {missing}.")


def visible(request: Request, view: dict[str, Any]) -> dict[str, Any]:
    """The router view without the admin-only attributes the caller may not see."""
    return {k: v for k, v in view.items() if k not in ADMIN_ATTRIBUTES
            or allowed(request, ATTRIBUTE_RULES[k]["get"], {"project_id": view["project_id"]})}


def router(svc: Ipam) -> Router:
    r = Router()
    db = svc.db

    async def get_router(router_id: str, project: str, admin: bool, request: Request | None = None,
                         rule: str = "") -> RouterRow:
        """The router (another project's is a 404), once ``rule`` allows ``request`` on it."""
        async with db.session() as s:
            row = await s.get(RouterRow, router_id)
        if row is None or not (admin or row.project_id == project):
            raise NotFound(f"Router {router_id} could not be found", kind="RouterNotFound")
        if request is not None:
            authorize(request, rule, {"project_id": row.project_id})
        return row

    async def router_view(row: RouterRow, request: Request) -> dict[str, Any]:
        return visible(request, await show_router(svc, row))

    async def interface_subnets(router_id: str) -> list[Subnet]:
        async with db.session() as s:
            return list((await s.execute(select(Subnet).join(IPAllocation, IPAllocation.subnet_id == Subnet.id).join(
                Port, Port.id == IPAllocation.port_id).where(
                Port.device_id == router_id, Port.device_owner == "network:router_interface"))).scalars())

    async def set_gateway(row: RouterRow, info: dict[str, Any] | None, project: str, admin: bool) -> None:
        # the new gateway is checked before the old one goes: a refused request changes nothing
        net = None
        if info:
            if not isinstance(info, dict) or "network_id" not in info:
                raise BadRequest("Invalid input for external_gateway_info: a network_id is required.")
            net = await svc.network(str(info["network_id"]), project, admin)
            if not net.external:
                raise BadRequest(f"Bad router request: External network {net.id} is not reachable from subnet of "
                                 f"this router: network {net.id} is not external (router:external).")
            if "enable_snat" in info and not isinstance(info["enable_snat"], bool):
                raise BadRequest("Invalid input for enable_snat: a boolean.")
        values: dict[str, Any] = {"gateway_network_id": None, "gateway_port_id": None, "enable_snat": True}
        if row.gateway_port_id:
            old = await svc.port(row.gateway_port_id, project, True)
            await svc.delete_port(old)
            async with db.session() as s:  # never a router that names a port that is gone
                await s.execute(update(RouterRow).where(RouterRow.id == row.id).values(**values))
        if info and net is not None:
            port = await svc.create_port({"network_id": net.id, "project_id": "", "device_id": row.id,
                                          "device_owner": "network:router_gateway", "port_security_enabled": False},
                                         info.get("external_fixed_ips"), project, True)
            values.update(gateway_network_id=net.id, gateway_port_id=port.id,
                          enable_snat=info.get("enable_snat", True))
        async with db.session() as s:
            await s.execute(update(RouterRow).where(RouterRow.id == row.id).values(**values))

    async def check_routes(row: RouterRow, routes: Any) -> list[dict[str, str]]:
        """Neutron's static routes: each nexthop on a subnet of the router's interfaces; ``None``
        (as tempest's cleanups send it) and ``[]`` both mean none."""
        if routes is None:
            return []
        if not isinstance(routes, list):
            raise BadRequest("Invalid input for routes: a list of {destination, nexthop}.")
        subnets = await interface_subnets(row.id)
        nets = [ipaddress.ip_network(x.cidr) for x in subnets]
        out = []
        for route in routes:
            try:
                dest = ipaddress.ip_network(route["destination"])
                hop = ipaddress.ip_address(route["nexthop"])
            except (ValueError, TypeError, KeyError):
                raise BadRequest("Invalid input for routes: destination (CIDR) and nexthop (address).") from None
            if not any(hop in n for n in nets):
                raise BadRequest(f"Invalid format for routes: {route}, the nexthop is not connected with router",
                                 kind="InvalidRoutes")
            if dest.version != hop.version:
                raise BadRequest(f"Invalid format for routes: {route}, destination and nexthop are of different IP "
                                 "versions", kind="InvalidRoutes")
            entry = {"destination": str(dest), "nexthop": str(hop)}
            if entry not in out:
                out.append(entry)
        return out

    async def set_routes(row: RouterRow, routes: list[dict[str, str]]) -> None:
        async with db.session() as s:
            await s.execute(update(RouterRow).where(RouterRow.id == row.id).values(
                routes=routes, revision_number=RouterRow.revision_number + 1))

    async def bump(router_id: str) -> None:
        async with db.session() as s:
            await s.execute(update(RouterRow).where(RouterRow.id == router_id).values(
                revision_number=RouterRow.revision_number + 1))

    @r.route("/v2.0/routers", ["GET", "POST"])
    async def routers(request: Request) -> Response:
        project, admin = who(request)
        if request.method == "POST":
            item = await body(request, "router")
            owner = item.get("project_id") or item.get("tenant_id") or project
            if owner != project and not admin:
                raise BadRequest("Only an admin may create routers for another project.")
            authorize(request, "create_router", {"project_id": owner})
            admin_attributes(request, item, "create", owner)
            await svc.check_quota("router", owner)
            name = item.get("name", "")
            if not isinstance(name, str) or len(name) > 255:
                raise BadRequest("Invalid input for name: a string of at most 255 characters.")
            if not isinstance(item.get("admin_state_up", True), bool):
                raise BadRequest(f"Invalid input for admin_state_up. Reason: '{item['admin_state_up']}' is not a "
                                 "valid boolean value.")
            row = RouterRow(id=str(uuid.uuid4()), name=name, project_id=owner,
                            admin_state_up=item.get("admin_state_up", True),
                            description=str(item.get("description") or ""),
                            tags=tags.check_tags(item["tags"]) if "tags" in item else [])
            async with db.session() as s:
                s.add(row)
            try:
                await set_gateway(row, item.get("external_gateway_info"), project, admin)
            except Exception:
                async with db.session() as s:
                    await s.delete(await s.get(RouterRow, row.id))
                raise
            made = await get_router(row.id, project, True)
            return JSON({"router": await router_view(made, request)}, status_code=201)
        authorize(request, "get_router")
        stmt = select(RouterRow).order_by(RouterRow.created_at)
        if not admin:
            stmt = stmt.where(RouterRow.project_id == project)
        async with db.session() as s:
            rows = list((await s.execute(stmt)).scalars())
        return JSON(shape(request, [await router_view(x, request) for x in rows], "routers"))

    @r.route("/v2.0/routers/{router_id}", ["GET", "PUT", "DELETE"])
    async def one(request: Request) -> Response:
        project, admin = who(request)
        row = await get_router(request.path_params["router_id"], project, admin, request,
                               f"{VERB[request.method]}_router")
        if request.method == "DELETE":
            if await interface_subnets(row.id):
                raise Conflict(f"Router {row.id} still has ports", kind="RouterInUse")
            await set_gateway(row, None, project, admin)
            async with db.session() as s:
                await s.execute(update(FloatingIP).where(FloatingIP.router_id == row.id).values(
                    router_id=None, port_id=None, fixed_ip_address=None))
                await s.delete(await s.get(RouterRow, row.id))
            return Response(status_code=204)
        if request.method == "PUT":
            item = await body(request, "router")
            admin_attributes(request, item, "update", row.project_id)
            values: dict[str, Any] = {}
            if "routes" in item:
                values["routes"] = await check_routes(row, item["routes"])
            for key in ("name", "description"):
                if key in item:
                    if not isinstance(item[key], str) or len(item[key]) > 255:
                        raise BadRequest(f"Invalid input for {key}: a string of at most 255 characters.")
                    values[key] = item[key]
            if "admin_state_up" in item:
                if not isinstance(item["admin_state_up"], bool):
                    raise BadRequest(f"Invalid input for admin_state_up. Reason: '{item['admin_state_up']}' is not a "
                                     "valid boolean value.")
                values["admin_state_up"] = item["admin_state_up"]
            if "external_gateway_info" in item:
                await set_gateway(row, item["external_gateway_info"] or None, project, admin)
            async with db.session() as s:
                await s.execute(update(RouterRow).where(RouterRow.id == row.id).values(
                    revision_number=RouterRow.revision_number + 1, **values))
            row = await get_router(row.id, project, True)
        return JSON(shape_one(request, await router_view(row, request), "router"))

    @r.put("/v2.0/routers/{router_id}/add_extraroutes")
    async def add_extraroutes(request: Request) -> Response:
        """extraroute-atomic: add routes to the ones the router has (those it has already stay once)."""
        project, admin = who(request)
        row = await get_router(request.path_params["router_id"], project, admin, request, "add_extraroutes")
        wanted = await check_routes(row, (await body(request, "router")).get("routes"))
        routes = list(row.routes or [])
        await set_routes(row, routes + [x for x in wanted if x not in routes])
        return JSON({"router": await router_view(await get_router(row.id, project, True), request)})

    @r.put("/v2.0/routers/{router_id}/remove_extraroutes")
    async def remove_extraroutes(request: Request) -> Response:
        """extraroute-atomic: remove the given routes (ones the router does not have are ignored)."""
        project, admin = who(request)
        row = await get_router(request.path_params["router_id"], project, admin, request, "remove_extraroutes")
        routes = (await body(request, "router")).get("routes")
        if not isinstance(routes, list) or not all(isinstance(x, dict) for x in routes):
            raise BadRequest("Invalid input for routes: a list of {destination, nexthop}.")
        try:
            gone = [{"destination": str(ipaddress.ip_network(x["destination"])),
                     "nexthop": str(ipaddress.ip_address(x["nexthop"]))} for x in routes]
        except (ValueError, TypeError, KeyError):
            raise BadRequest("Invalid input for routes: destination (CIDR) and nexthop (address).") from None
        await set_routes(row, [x for x in row.routes or [] if x not in gone])
        return JSON({"router": await router_view(await get_router(row.id, project, True), request)})

    @r.put("/v2.0/routers/{router_id}/add_router_interface")
    async def add_interface(request: Request) -> Response:
        project, admin = who(request)
        row = await get_router(request.path_params["router_id"], project, admin, request, "add_router_interface")
        item = await json_body(request)
        if not isinstance(item, dict) or ("subnet_id" in item) == ("port_id" in item):
            raise BadRequest("Bad router request: Either subnet_id or port_id must be specified.")
        existing = await interface_subnets(row.id)
        if "subnet_id" in item:
            subnet = await svc.subnet(str(item["subnet_id"]), project, admin)
            if not subnet.gateway_ip:
                raise BadRequest(f"Bad router request: Subnet {subnet.id} does not have a gateway IP.")
            wanted = [subnet]
        else:
            port = await svc.port(str(item["port_id"]), project, admin)
            if port.device_owner or port.device_id:
                raise Conflict(f"Port {port.id} is in use by {port.device_owner or port.device_id}.", kind="PortInUse")
            ips = (await svc.allocations([port.id]))[port.id]
            if not ips:
                raise BadRequest(f"Bad router request: Router port must have at least one fixed IP: port {port.id}.")
            wanted = [await svc.subnet(x["subnet_id"], project, True) for x in ips]
        for subnet in wanted:
            cidr = ipaddress.ip_network(subnet.cidr)
            for other in existing:
                if ipaddress.ip_network(other.cidr).overlaps(cidr):
                    raise BadRequest(f"Bad router request: Cidr {cidr} of subnet {subnet.id} overlaps with cidr "
                                     f"{other.cidr} of subnet {other.id}.")
        if "subnet_id" in item:
            subnet = wanted[0]
            port = await svc.create_port({"network_id": subnet.network_id, "project_id": row.project_id,
                                          "device_id": row.id, "device_owner": "network:router_interface",
                                          "port_security_enabled": False},
                                         [{"subnet_id": subnet.id, "ip_address": subnet.gateway_ip}], project, True)
        else:
            async with db.session() as s:
                await s.execute(update(Port).where(Port.id == port.id).values(
                    device_id=row.id, device_owner="network:router_interface", security_groups=[]))
        await bump(row.id)
        return JSON({"id": row.id, "subnet_id": wanted[0].id, "subnet_ids": [x.id for x in wanted],
                     "port_id": port.id, "network_id": wanted[0].network_id, "tenant_id": row.project_id,
                     "project_id": row.project_id})

    @r.put("/v2.0/routers/{router_id}/remove_router_interface")
    async def remove_interface(request: Request) -> Response:
        project, admin = who(request)
        row = await get_router(request.path_params["router_id"], project, admin, request, "remove_router_interface")
        item = await json_body(request)
        if not isinstance(item, dict) or not ({"subnet_id", "port_id"} & set(item)):
            raise BadRequest("Bad router request: Either subnet_id or port_id must be specified.")
        async with db.session() as s:
            ports = list((await s.execute(select(Port).where(
                Port.device_id == row.id, Port.device_owner == "network:router_interface"))).scalars())
        ips = await svc.allocations([p.id for p in ports])
        match = [p for p in ports if p.id == item.get("port_id")
                 or any(x["subnet_id"] == item.get("subnet_id") for x in ips[p.id])]
        if not match:
            which = item.get("subnet_id") or item.get("port_id")
            raise NotFound(f"Router {row.id} does not have an interface with id {which}",
                           kind="RouterInterfaceNotFound")
        port = match[0]
        for x in ips[port.id]:
            cidr = ipaddress.ip_network((await svc.subnet(x["subnet_id"], project, True)).cidr)
            others = await interface_subnets(row.id)
            remaining = [ipaddress.ip_network(o.cidr) for o in others if o.id != x["subnet_id"]]
            for route in row.routes or []:
                hop = ipaddress.ip_address(route["nexthop"])
                if hop in cidr and not any(hop in n for n in remaining):
                    raise Conflict(f"Router interface for subnet {x['subnet_id']} on router {row.id} cannot be "
                                   "deleted, as it is required by one or more routes.",
                                   kind="RouterInterfaceInUseByRoute")
        await svc.delete_port(port)
        await bump(row.id)
        return JSON({"id": row.id, "subnet_id": ips[port.id][0]["subnet_id"] if ips[port.id] else None,
                     "subnet_ids": [x["subnet_id"] for x in ips[port.id]], "port_id": port.id,
                     "network_id": port.network_id, "tenant_id": row.project_id, "project_id": row.project_id})

    # -- floating IPs ----------------------------------------------------------------------------------
    def fip_view(f: FloatingIP) -> dict[str, Any]:
        return {"id": f.id, "floating_ip_address": f.floating_ip_address, "floating_network_id": f.floating_network_id,
                "port_id": f.port_id, "fixed_ip_address": f.fixed_ip_address, "router_id": f.router_id,
                "status": "ACTIVE" if f.port_id else "DOWN", "description": f.description, "tags": f.tags or [],
                "port_details": None, "dns_domain": "", "dns_name": "", "port_forwardings": [],
                "revision_number": f.revision_number, "created_at": stamp(f.created_at),
                "updated_at": stamp(f.updated_at), "tenant_id": f.project_id, "project_id": f.project_id}

    async def associate(fip: FloatingIP, port_id: str | None, fixed: str | None, project: str,
                        admin: bool) -> dict[str, Any]:
        if port_id is None:
            return {"port_id": None, "fixed_ip_address": None, "router_id": None}
        port = await svc.port(port_id, project, admin)
        ips = [x for x in (await svc.allocations([port.id]))[port.id] if ipaddress.ip_address(x["ip_address"]).version
               == 4]
        if fixed is not None:
            ips = [x for x in ips if x["ip_address"] == fixed]
            if not ips:
                raise BadRequest(f"Port {port.id} does not have fixed ip {fixed}")
        if not ips:
            raise BadRequest(f"Bad floatingip request: Port {port.id} does not have any IPv4 fixed IP.")
        # a router that has this port's subnet as an interface and its gateway on the floating network
        async with db.session() as s:
            candidates = list((await s.execute(select(RouterRow).where(
                RouterRow.gateway_network_id == fip.floating_network_id))).scalars())
            taken = (await s.execute(select(FloatingIP.id).where(
                FloatingIP.port_id == port.id, FloatingIP.fixed_ip_address == ips[0]["ip_address"],
                FloatingIP.id != fip.id))).first()
        if taken:
            raise Conflict(f"Cannot associate floating IP {fip.floating_ip_address} with port {port.id} using fixed "
                           f"IP {ips[0]['ip_address']}, as that fixed IP already has a floating IP.",
                           kind="FloatingIPPortAlreadyAssociated")
        for candidate in candidates:
            if ips[0]["subnet_id"] in {x.id for x in await interface_subnets(candidate.id)}:
                return {"port_id": port.id, "fixed_ip_address": ips[0]["ip_address"], "router_id": candidate.id}
        raise NotFound(f"External network {fip.floating_network_id} is not reachable from subnet "
                       f"{ips[0]['subnet_id']}. Therefore, cannot associate Port {port.id} with a Floating IP.",
                       kind="ExternalGatewayForFloatingIPNotFound")

    @r.route("/v2.0/floatingips", ["GET", "POST"])
    async def floatingips(request: Request) -> Response:
        project, admin = who(request)
        if request.method == "POST":
            item = await body(request, "floatingip")
            net = await svc.network(str(item.get("floating_network_id", "")), project, admin)
            if not net.external:
                raise BadRequest(f"Bad floatingip request: Network {net.id} is not a valid external network.")
            owner = item.get("project_id") or item.get("tenant_id") or project
            if owner != project and not admin:
                raise BadRequest("Only an admin may create floating IPs for another project.")
            authorize(request, "create_floatingip", {"project_id": owner})
            await svc.check_quota("floatingip", owner)
            fip_tags = tags.check_tags(item["tags"]) if "tags" in item else []
            for key in ("floating_ip_address", "fixed_ip_address"):
                if item.get(key) is not None:
                    try:
                        ipaddress.ip_address(item[key] if isinstance(item[key], str) else "-")
                    except ValueError:
                        raise BadRequest(f"Invalid input for {key}. Reason: '{item[key]}' is not a valid IP address."
                                         ) from None
            wanted = [{"ip_address": item["floating_ip_address"]}] if item.get("floating_ip_address") else None
            fport = await svc.create_port({"network_id": net.id, "project_id": "", "device_owner":
                                           "network:floatingip", "port_security_enabled": False}, wanted, project, True)
            addresses = [x for x in (await svc.allocations([fport.id]))[fport.id]
                         if ipaddress.ip_address(x["ip_address"]).version == 4] or \
                (await svc.allocations([fport.id]))[fport.id]
            if not addresses:
                await svc.delete_port(fport)
                raise BadRequest(f"Unable to find any IP address on external network {net.id}.",
                                 kind="ExternalIpAddressExhausted")
            fip = FloatingIP(id=str(uuid.uuid4()), project_id=owner, floating_network_id=net.id,
                             floating_ip_address=addresses[0]["ip_address"], floating_port_id=fport.id,
                             description=str(item.get("description") or ""), tags=fip_tags)
            try:
                values = await associate(fip, item.get("port_id"), item.get("fixed_ip_address"), project, admin)
            except Exception:
                await svc.delete_port(fport)
                raise
            for k, v in values.items():
                setattr(fip, k, v)
            async with db.session() as s:
                s.add(fip)
                await s.execute(update(Port).where(Port.id == fport.id).values(device_id=fip.id))
            return JSON({"floatingip": fip_view(fip)}, status_code=201)
        authorize(request, "get_floatingip")
        stmt = select(FloatingIP).order_by(FloatingIP.created_at)
        if not admin:
            stmt = stmt.where(FloatingIP.project_id == project)
        async with db.session() as s:
            rows = list((await s.execute(stmt)).scalars())
        return JSON(shape(request, [fip_view(x) for x in rows], "floatingips"))

    @r.route("/v2.0/floatingips/{fip_id}", ["GET", "PUT", "DELETE"])
    async def floatingip(request: Request) -> Response:
        project, admin = who(request)
        async with db.session() as s:
            fip = await s.get(FloatingIP, request.path_params["fip_id"])
        if fip is None or not (admin or fip.project_id == project):
            raise NotFound(f"Floating IP {request.path_params['fip_id']} could not be found",
                           kind="FloatingIPNotFound")
        authorize(request, f"{VERB[request.method]}_floatingip", {"project_id": fip.project_id})
        if request.method == "DELETE":
            async with db.session() as s:
                await s.delete(await s.get(FloatingIP, fip.id))
            await svc.delete_port(await svc.port(fip.floating_port_id, project, True))
            return Response(status_code=204)
        if request.method == "PUT":
            item = await body(request, "floatingip")
            values: dict[str, Any] = {}
            if "port_id" in item:
                values = await associate(fip, item["port_id"], item.get("fixed_ip_address"), project, admin)
            if "description" in item:
                values["description"] = str(item["description"] or "")
            async with db.session() as s:
                await s.execute(update(FloatingIP).where(FloatingIP.id == fip.id).values(
                    revision_number=FloatingIP.revision_number + 1, **values))
                fip = await s.get(FloatingIP, fip.id)
        return JSON(shape_one(request, fip_view(fip), "floatingip"))

    return r

