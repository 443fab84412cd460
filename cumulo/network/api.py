"""The Network API v2.0 (Neutron's twin): versions, extensions, networks, subnets and ports with
IP address management, each made one at a time or in bulk (all or none); filters on any attribute
and on tags, ``fields``, sorting and paging (the port list does its filters on columns and
fixed addresses, sorts, markers and limits in SQL and reads the page's addresses only; other
filters are applied to the views).  Security groups, routers, subnet pools, quotas and
tags have modules of their own, included by ``build_app``."""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import and_, false, or_, select
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from cumulo.core.http.app import JSON, Router, create_app, json_body
from cumulo.core.http.authz import ServicePolicy, allowed, authorize
from cumulo.core.http.faults import BadRequest, Conflict, Forbidden, NotFound
from cumulo.identity.service import IdentityService
from cumulo.network import (
    access,
    address_scopes,
    agents,
    inventory,
    metering,
    policies,
    quotas,
    rbac,
    routers,
    security_groups,
    subnetpools,
    tags,
)
from cumulo.network.ipam import Ipam, many, pools_of
from cumulo.network.models import IPAllocation, Network, Port, Subnet
from cumulo.network.policies import VERB, network_target, port_target, subnet_target
from cumulo.network.qos import bind_policy, default_policy, unbind_policies, wanted_policy, with_policies
from cumulo.network.qos import router as qos_router
from cumulo.network.requests import body_of, who
from cumulo.network.schemas import SCHEMAS
from cumulo.network.security_groups import SecurityGroups
from cumulo.network.trunks import check_port_deletable, with_trunk_details
from cumulo.network.trunks import router as trunk_router
from cumulo.network.views import shape, shape_one

EXTENSIONS = [("network", "Network", "Networks, subnets and ports"), ("external-net", "Neutron external network",
              "router:external on networks"), ("provider", "Provider Network", "Provider network attributes"),
              ("port-security", "Port Security", "port_security_enabled on networks and ports"),
              ("standard-attr-description", "standard-attr-description", "description on resources"),
              ("standard-attr-revisions", "Resource revision numbers", "revision_number on resources"),
              ("standard-attr-timestamp", "Resource timestamps", "created_at and updated_at"),
              ("binding", "Port Binding", "binding:host_id on ports"),
              ("allowed-address-pairs", "Allowed Address Pairs", "allowed_address_pairs on ports"),
              ("extra_dhcp_opt", "Neutron Extra DHCP options", "extra_dhcp_opts on ports"),
              ("net-mtu", "Network MTU", "mtu on networks"), ("quotas", "Quota management support", "quotas"),
              ("sorting", "Sorting", "sort_key/sort_dir"), ("pagination", "Pagination", "limit/marker"),
              ("project-id", "project_id field enabled", "project_id beside tenant_id"),
              ("security-group", "security-group", "Security groups and their rules"),
              ("router", "Neutron L3 Router", "Routers, interfaces and floating IPs"),
              ("ext-gw-mode", "Neutron L3 Configurable external gateway mode", "enable_snat on gateways"),
              ("extraroute", "Neutron Extra Route", "Static routes on routers"),
              ("dvr", "Distributed Virtual Router", "distributed on routers (admin only; every router here is "
               "centralized, so it is false)"),
              ("extraroute-atomic", "Atomically add/remove extra routes", "add_extraroutes/remove_extraroutes"),
              ("quota_details", "Quota details management support", "Used, limit and reserved per resource"),
              ("quota-check-limit", "Quota engine limit check", "check_limit when quotas are set"),
              ("standard-attr-tag", "Tag support for resources with standard attribute", "tags on resources"),
              ("tag", "Tag support", "tags on networks"),
              ("tag-ext", "Tag support for resources", "tags on subnets, ports, routers and subnet pools"),
              ("subnet_allocation", "Subnet Allocation", "Subnet pools and subnets allocated from them"),
              ("qos", "Quality of Service", "QoS policies and their rules on networks and ports"),
              ("qos-bw-limit-direction", "Direction for QoS bandwidth limit rule",
               "direction (ingress or egress) on bandwidth limit rules"),
              ("qos-default", "QoS default policy", "is_default on QoS policies: a project's new networks get it"),
              ("qos-rule-type-details", "Details of QoS rule types", "The parameters each QoS rule type takes"),
              ("trunk", "Trunk Extension", "Trunks: a parent port carrying subports told apart by VLAN ids"),
              ("trunk-details", "Trunk port details", "trunk_details on the parent port of a trunk"),
              ("default-subnetpools", "Default Subnetpools", "use_default_subnetpool on subnets"),
              ("rbac-policies", "RBAC Policies", "Networks shared with one project or every project"),
              ("address-scope", "Address scope", "Address scopes of subnet pools"),
              ("network-ip-availability", "Network IP Availability", "Used and total addresses per network"),
              ("network-ip-availability-details", "Network IP Availability Details",
               "Addresses in the subnets and in their allocation pools"),
              ("availability_zone", "Availability Zone", "The availability zones of networks and routers"),
              ("network_availability_zone", "Network Availability Zone", "availability_zones on networks"),
              ("router_availability_zone", "Router Availability Zone", "availability_zones on routers"),
              ("service-type", "Neutron Service Type Management", "Service providers of advanced services"),
              ("agent", "agent", "The network agents"),
              ("dhcp_agent_scheduler", "DHCP Agent Scheduler", "The networks each DHCP agent hosts"),
              ("l3_agent_scheduler", "L3 Agent Scheduler", "The routers each L3 agent hosts"),
              ("metering", "Neutron Metering", "L3 metering labels and their rules"),
              ("metering_source_and_destination_fields", "Neutron Metering source and destination filters",
               "source_ip_prefix and destination_ip_prefix on metering label rules")]
CORE_RESOURCES = [("network", "networks"), ("subnet", "subnets"), ("subnetpool", "subnetpools"), ("port", "ports")]
MAC = re.compile(r"^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$")


def stamp(value: Any) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def standard(row: Any) -> dict[str, Any]:
    return {"description": row.description, "tags": row.tags or [], "revision_number": row.revision_number,
            "created_at": stamp(row.created_at), "updated_at": stamp(row.updated_at),
            "tenant_id": row.project_id, "project_id": row.project_id}


def network_view(n: Network, subnets: list[str], shared: bool | None = None,
                 scopes: dict[str, str | None] | None = None) -> dict[str, Any]:
    """``shared`` as the caller sees it (an RBAC entry may share the network with its project alone),
    ``scopes`` the address scopes of its subnets' pools by IP version."""
    scopes = scopes or {}
    return {"id": n.id, "name": n.name, "admin_state_up": n.admin_state_up, "status": "ACTIVE",
            "shared": n.shared if shared is None else shared,
            "router:external": n.external, "mtu": n.mtu, "port_security_enabled": n.port_security_enabled,
            "subnets": subnets, "provider:network_type": n.network_type,
            "provider:physical_network": n.physical_network, "provider:segmentation_id": n.segment_id,
            "availability_zone_hints": n.availability_zone_hints or [], "availability_zones": ["nova"],
            "ipv4_address_scope": scopes.get("4"), "ipv6_address_scope": scopes.get("6"), "is_default": False,
            **standard(n)}


def subnet_view(s: Subnet) -> dict[str, Any]:
    return {"id": s.id, "name": s.name, "network_id": s.network_id, "ip_version": s.ip_version, "cidr": s.cidr,
            "gateway_ip": s.gateway_ip, "enable_dhcp": s.enable_dhcp, "allocation_pools": s.allocation_pools or [],
            "dns_nameservers": s.dns_nameservers or [], "host_routes": s.host_routes or [],
            "ipv6_ra_mode": s.ipv6_ra_mode, "ipv6_address_mode": s.ipv6_address_mode, "subnetpool_id": s.subnetpool_id,
            "service_types": [], **standard(s)}


def port_view(p: Port, fixed_ips: list[dict[str, str]]) -> dict[str, Any]:
    return {"id": p.id, "name": p.name, "network_id": p.network_id, "mac_address": p.mac_address,
            "admin_state_up": p.admin_state_up, "status": p.status, "device_owner": p.device_owner,
            "device_id": p.device_id, "fixed_ips": fixed_ips, "binding:host_id": p.binding_host_id,
            "binding:vif_type": "tap" if p.binding_host_id else "unbound", "binding:vnic_type": "normal",
            "binding:vif_details": {}, "binding:profile": {}, "port_security_enabled": p.port_security_enabled,
            "security_groups": p.security_groups or [], "allowed_address_pairs": p.allowed_address_pairs or [],
            "extra_dhcp_opts": p.extra_dhcp_opts or [], "dns_name": p.dns_name or "", **standard(p)}


async def port_extras(db: Any, views: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Port views with their QoS policy and, on a trunk's parent, ``trunk_details``."""
    return await with_trunk_details(db, await with_policies(db, views))




def check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise BadRequest(f"Invalid input for {name}. Reason: '{value}' is not a valid boolean value.")
    return value


def check_str(value: Any, name: str, limit: int = 255) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise BadRequest(f"Invalid input for {name}. Reason: a string of at most {limit} characters is required.")
    return value


def router(svc: Ipam, groups: SecurityGroups) -> Router:
    r = Router()

    def owner_of(request: Request, item: dict[str, Any]) -> str:
        project, admin = who(request)
        wanted = item.get("project_id") or item.get("tenant_id") or project
        if wanted != project and not admin:
            raise Forbidden("Only an admin may create resources for another project.")
        return str(wanted)

    @r.get("/", auth=False)
    async def versions(request: Request) -> Response:
        base = f"{request.url.scheme}://{request.url.netloc}/v2.0/"
        return JSON({"versions": [{"id": "v2.0", "status": "CURRENT", "links": [{"rel": "self", "href": base}]}]})

    @r.get("/v2.0/")
    async def version_details(request: Request) -> Response:
        """The v2.0 document: Neutron's core resources, each with its collection's link."""
        authorize(request, "get_api_resources")
        base = f"{request.url.scheme}://{request.url.netloc}/v2.0/"
        return JSON({"resources": [{"name": name, "collection": collection,
                                    "links": [{"rel": "self", "href": base + collection}]}
                                   for name, collection in CORE_RESOURCES]})

    @r.get("/v2.0/extensions")
    async def extensions(request: Request) -> Response:
        authorize(request, "get_extension")
        return JSON({"extensions": [{"alias": a, "name": n, "description": d, "updated": "2024-01-01T00:00:00Z",
                                     "links": []} for a, n, d in EXTENSIONS]})

    @r.get("/v2.0/extensions/{alias}")
    async def extension(request: Request) -> Response:
        authorize(request, "get_extension")
        for a, n, d in EXTENSIONS:
            if a == request.path_params["alias"]:
                return JSON({"extension": {"alias": a, "name": n, "description": d,
                                           "updated": "2024-01-01T00:00:00Z", "links": []}})
        raise NotFound(f"Extension with alias {request.path_params['alias']} does not exist")

    # -- networks ------------------------------------------------------------------------------
    async def net_subnets(ids: list[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {i: [] for i in ids}
        async with svc.db.session() as s:
            for sid, nid in (await s.execute(select(Subnet.id, Subnet.network_id).where(
                    Subnet.network_id.in_(ids)))).all():
                out[nid].append(sid)
        return out

    def network_values(request: Request, item: dict[str, Any], create: bool) -> dict[str, Any]:
        verb = "create" if create else "update"
        values: dict[str, Any] = {}
        for key, column, check in (("name", "name", check_str), ("description", "description", check_str),
                                   ("admin_state_up", "admin_state_up", check_bool),
                                   ("port_security_enabled", "port_security_enabled", check_bool)):
            if key in item:
                values[column] = check(item[key], key)
        if "mtu" in item:
            if not isinstance(item["mtu"], int) or not 68 <= item["mtu"] <= 9000:
                raise BadRequest("Invalid input for mtu. Reason: an integer from 68 to 9000 is required.")
            values["mtu"] = item["mtu"]
        for key, column in (("shared", "shared"), ("router:external", "external")):
            if key in item:
                if item[key] and not allowed(request, f"{verb}_network:{key}"):
                    raise Forbidden(f"(rule:{verb}_network:{key}) is disallowed by policy")
                values[column] = check_bool(item[key], key)
        if "provider:network_type" in item or "provider:segmentation_id" in item:
            if not allowed(request, f"{verb}_network:provider:network_type"):
                raise Forbidden(f"(rule:{verb}_network:provider:network_type) is disallowed by policy")
            kind = item.get("provider:network_type", "vxlan")
            if kind not in ("vxlan", "flat", "local"):
                raise BadRequest(f"Invalid input for operation: network type {kind} is not supported here "
                                 "(vxlan, flat, local).")
            values["network_type"] = kind
            physical = item.get("provider:physical_network")
            if physical is not None and (not isinstance(physical, str) or len(physical) > 64):
                raise BadRequest(f"Invalid input for provider:physical_network. Reason: '{physical}' is not a name of "
                                 "at most 64 characters.")
            values["physical_network"] = physical
            if item.get("provider:segmentation_id") is not None:
                segment = item["provider:segmentation_id"]
                if isinstance(segment, str) and segment.isdigit():
                    segment = int(segment)
                if not isinstance(segment, int) or isinstance(segment, bool) or not 1 <= segment <= 16_777_215:
                    raise BadRequest(f"Invalid input for provider:segmentation_id. Reason: '{segment}' is not a "
                                     "segment id from 1 to 16777215.")
                values["segment_id"] = segment
        if "availability_zone_hints" in item:
            hints = item["availability_zone_hints"]
            if not isinstance(hints, list) or not all(isinstance(h, str) for h in hints):
                raise BadRequest("Invalid input for availability_zone_hints. Reason: a list of zone names is required.")
            values["availability_zone_hints"] = hints
        if create and "tags" in item:
            values["tags"] = tags.check_tags(item["tags"])
        return values

    async def create(request: Request, kind: str, make: Any, undo: Any) -> Response:
        """One resource (``{kind: {...}}``) or, in bulk, a list (``{kinds: [...]}``): all or none."""
        data = await json_body(request)
        plural = f"{kind}s"
        if isinstance(data, dict) and plural in data and kind not in data:
            items = data[plural]
            if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
                raise BadRequest(f"Resource body required: '{plural}' must be a non-empty list of '{kind}' objects.")
            made: list[tuple[Any, dict[str, Any]]] = []
            try:
                for item in items:
                    made.append(await make(request, item))
            except BaseException:
                for row, _ in reversed(made):
                    await undo(row)
                raise
            return JSON({plural: [view for _, view in made]}, status_code=201)
        _, view = await make(request, body_of(data, kind))
        return JSON({kind: view}, status_code=201)

    async def within_quota(resource: str, row: Any, undo: Any) -> None:
        """After a create: racing creates that together went past the limit undo themselves."""
        if await quotas.over(svc.db, resource, row.project_id):
            await undo(row)
            raise Conflict(f"Quota exceeded for resources: ['{resource}'].", kind="OverQuota")

    async def make_network(request: Request, item: dict[str, Any]) -> tuple[Network, dict[str, Any]]:
        owner = owner_of(request, item)
        authorize(request, "create_network", {"project_id": owner})
        values = network_values(request, item, True)
        values["project_id"] = owner
        # the policy named (None: none), else the project's default one (qos-default)
        policy = (await wanted_policy(svc.db, item, *who(request)) if "qos_policy_id" in item
                  else await default_policy(svc.db, owner))
        async with svc.quota_turn("network", values["project_id"]):
            await svc.check_quota("network", values["project_id"])
            row = await svc.create_network(values)
            await within_quota("network", row, svc.delete_network)
        if policy is not None:
            await bind_policy(svc.db, "network", row.id, policy)
        return row, (await with_policies(svc.db, [network_view(row, [])]))[0]

    @r.route("/v2.0/networks", ["GET", "POST"])
    async def networks(request: Request) -> Response:
        project, admin = who(request)
        if request.method == "POST":
            return await create(request, "network", make_network, svc.delete_network)
        authorize(request, "get_network")
        stmt = select(Network)
        if not admin:
            stmt = stmt.where(access.reaches(project))
        async with svc.db.session() as s:
            rows = list((await s.execute(stmt.order_by(Network.created_at))).scalars())
        subs = await net_subnets([n.id for n in rows])
        shared = await access.shared_with(svc.db, [n.id for n in rows if not n.shared], project)
        scopes = await address_scopes.of_networks(svc.db, [n.id for n in rows])
        return JSON(shape(request, await with_policies(svc.db, [
            network_view(n, subs[n.id], n.shared or n.id in shared, scopes.get(n.id)) for n in rows]), "networks"))

    @r.route("/v2.0/networks/{network_id}", ["GET", "PUT", "DELETE"])
    async def network(request: Request) -> Response:
        project, admin = who(request)
        row = await svc.network(request.path_params["network_id"], project, admin)
        if request.method != "GET" and row.project_id != project and not admin:
            raise NotFound(f"Network {row.id} could not be found.", kind="NetworkNotFound")
        authorize(request, f"{VERB[request.method]}_network", network_target(row))
        if request.method == "DELETE":
            await svc.delete_network(row)
            await unbind_policies(svc.db, [row.id])
            return Response(status_code=204)
        if request.method == "PUT":
            item = body_of(await json_body(request), "network")
            values = network_values(request, item, False)
            values.pop("segment_id", None)
            if "qos_policy_id" in item:
                await bind_policy(svc.db, "network", row.id, await wanted_policy(svc.db, item, project, admin))
            async with svc.db.session() as s:
                row = await s.get(Network, row.id)
                await access.set_flags(s, row, values)
                for k, v in values.items():
                    setattr(row, k, v)
                row.revision_number += 1
        subs = await net_subnets([row.id])
        scopes = await address_scopes.of_networks(svc.db, [row.id])
        view = network_view(row, subs[row.id], row.shared, scopes.get(row.id))
        return JSON(shape_one(request, (await with_policies(svc.db, [view]))[0], "network"))

    # -- subnets ---------------------------------------------------------------------------------
    def subnet_values(item: dict[str, Any], cidr: Any) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for key in ("name", "description"):
            if key in item:
                values[key] = check_str(item[key], key)
        if "enable_dhcp" in item:
            values["enable_dhcp"] = check_bool(item["enable_dhcp"], "enable_dhcp")
        if "dns_nameservers" in item:
            servers = item["dns_nameservers"]
            if not isinstance(servers, list):
                raise BadRequest("Invalid input for dns_nameservers. Reason: a list of addresses is required.")
            for a in servers:
                try:
                    ipaddress.ip_address(a)
                except (ValueError, TypeError):
                    raise BadRequest(f"Invalid input for dns_nameservers. Reason: '{a}' is not a valid nameserver."
                                     ) from None
            values["dns_nameservers"] = servers
        if "host_routes" in item:
            routes = item["host_routes"]
            try:
                for route in routes:
                    ipaddress.ip_network(route["destination"])
                    ipaddress.ip_address(route["nexthop"])
            except (ValueError, TypeError, KeyError):
                raise BadRequest("Invalid input for host_routes. Reason: destination (CIDR) and nexthop (address) "
                                 "are required.") from None
            values["host_routes"] = routes
        if "gateway_ip" in item and cidr is not None:
            gw = item["gateway_ip"]
            if gw is not None:
                try:
                    ip = ipaddress.ip_address(gw)
                except (ValueError, TypeError):
                    raise BadRequest(f"Invalid input for gateway_ip. Reason: '{gw}' is not a valid IP address."
                                     ) from None
                if ip not in cidr or (cidr.version == 4 and ip in (cidr.network_address, cidr.broadcast_address)):
                    raise BadRequest(f"Invalid input for operation: Gateway is not valid on subnet: {gw} is not a "
                                     f"host address of {cidr}.")
            values["gateway_ip"] = gw
        return values

    def subnet_layout(item: dict[str, Any], cidr: Any, version: int) -> dict[str, Any]:
        """The values of a new subnet on ``cidr``: gateway, allocation pools, IPv6 modes."""
        values = subnet_values(item, cidr)
        if "tags" in item:
            values["tags"] = tags.check_tags(item["tags"])
        values.setdefault("gateway_ip", str(cidr.network_address + 1) if cidr.num_addresses > 2 else None)
        pools = item.get("allocation_pools")
        if pools is None:
            pools = pools_of(cidr, values["gateway_ip"])
        else:
            try:
                spans = [(ipaddress.ip_address(p["start"]), ipaddress.ip_address(p["end"])) for p in pools]
            except (ValueError, TypeError, KeyError):
                raise BadRequest("Invalid input for allocation_pools: start and end addresses are required."
                                 ) from None
            gw = ipaddress.ip_address(values["gateway_ip"]) if values["gateway_ip"] else None
            for a, b in spans:
                if a not in cidr or b not in cidr or a > b:
                    raise BadRequest(f"The allocation pool {a}-{b} spans beyond the subnet cidr {cidr}.")
                if gw is not None and a <= gw <= b:
                    raise BadRequest(f"Gateway ip {gw} conflicts with allocation pool {a}-{b}.")
            pools = [{"start": str(a), "end": str(b)} for a, b in spans]
        for key in ("ipv6_ra_mode", "ipv6_address_mode"):
            mode = item.get(key)
            if mode is not None:
                if version != 6 or mode not in ("slaac", "dhcpv6-stateful", "dhcpv6-stateless"):
                    raise BadRequest(f"Invalid input for {key}: slaac, dhcpv6-stateful or dhcpv6-stateless on "
                                     "IPv6 subnets.")
                values[key] = mode
        if values.get("ipv6_address_mode") in ("slaac", "dhcpv6-stateless") and cidr.prefixlen != 64:
            raise BadRequest(f"Invalid CIDR {cidr} for IPv6 address mode {values['ipv6_address_mode']}. OpenStack "
                             "uses the EUI-64 address format, which requires the prefix to be /64.")
        ra, mode = values.get("ipv6_ra_mode"), values.get("ipv6_address_mode")
        if ra and mode and ra != mode:
            raise BadRequest(f"Invalid input for operation: ipv6_ra_mode set to '{ra}' with ipv6_address_mode set to "
                             f"'{mode}' is not valid. If both attributes are set, they must be the same value.")
        values.update(ip_version=version, cidr=str(cidr), allocation_pools=pools)
        return values

    def cidr_of(item: dict[str, Any]) -> Any:
        if item.get("cidr") is None:
            raise BadRequest("Bad subnets request: a cidr must be given unless the subnet comes from a subnet pool "
                             "(subnetpool_id or use_default_subnetpool).")
        try:
            cidr = ipaddress.ip_network(str(item.get("cidr")), strict=False)
        except ValueError:
            raise BadRequest(f"Invalid input for cidr. Reason: '{item.get('cidr')}' is not a valid IP subnet."
                             ) from None
        if str(cidr) != str(item.get("cidr")) and "/" in str(item.get("cidr")):
            raise BadRequest(f"Invalid input for cidr. Reason: '{item.get('cidr')}' isn't a recommended CIDR, "
                             f"use '{cidr}'.")
        version = item.get("ip_version", cidr.version)
        if version not in (4, 6) or version != cidr.version:
            raise BadRequest(f"Invalid input for operation: cidr {cidr} does not match ip_version {version}.")
        return cidr

    async def make_subnet(request: Request, item: dict[str, Any]) -> tuple[Subnet, dict[str, Any]]:
        project, admin = who(request)
        net = await svc.network(str(item.get("network_id", "")), project, admin)
        if net.project_id != project and not admin:
            raise Forbidden(f"(rule:create_subnet) is disallowed by policy: network {net.id} belongs to another "
                            "project.")
        authorize(request, "create_subnet", subnet_target(net, owner_of(request, item)))
        if "prefixlen" in item and item.get("subnetpool_id") is None and not item.get("use_default_subnetpool"):
            raise BadRequest("Bad subnets request: prefixlen is only allowed with a subnet pool.")
        pool = await subnetpools.pool_for(svc.db, item, project, admin)
        owner = owner_of(request, item)
        for _ in range(10):
            cidr = await subnetpools.carve(svc.db, pool, item) if pool is not None else cidr_of(item)
            values = subnet_layout(item, cidr, cidr.version)
            values.update(project_id=owner, subnetpool_id=pool.id if pool is not None else None)
            await svc.check_quota("subnet", owner)
            row = await svc.create_subnet(net, values)
            await within_quota("subnet", row, svc.delete_subnet)
            if pool is None or not await subnetpools.lost_race(svc.db, row):
                return row, subnet_view(row)
            await svc.delete_subnet(row)  # a racing request took that block first
            if item.get("cidr") is not None:
                raise Conflict(f"Failed to allocate subnet: {cidr} was allocated from subnet pool {pool.id} "
                               "meanwhile.", kind="SubnetAllocationError")
        raise Conflict(f"Failed to allocate subnet from subnet pool {pool.id if pool else ''}: too many concurrent "
                       "allocations, try again.", kind="SubnetAllocationError")

    @r.route("/v2.0/subnets", ["GET", "POST"])
    async def subnets(request: Request) -> Response:
        project, admin = who(request)
        if request.method == "POST":
            return await create(request, "subnet", make_subnet, svc.delete_subnet)
        authorize(request, "get_subnet")
        async with svc.db.session() as s:
            rows = list((await s.execute(select(Subnet).order_by(Subnet.created_at))).scalars())
            # an external network's subnets stay the admin's unless it is shared (Neutron without
            # the subnet-external-network extension)
            visible_nets = None if admin else set((await s.execute(select(Network.id).where(
                (Network.project_id == project) | Network.shared.is_(True) | access.shared_here(project)))).scalars())
        rows = [x for x in rows if visible_nets is None or x.network_id in visible_nets]
        return JSON(shape(request, [subnet_view(x) for x in rows], "subnets"))

    @r.route("/v2.0/subnets/{subnet_id}", ["GET", "PUT", "DELETE"])
    async def subnet(request: Request) -> Response:
        project, admin = who(request)
        row = await svc.subnet(request.path_params["subnet_id"], project, admin)
        if request.method != "GET" and row.project_id != project and not admin:
            raise NotFound(f"Subnet {row.id} could not be found.", kind="SubnetNotFound")
        authorize(request, f"{VERB[request.method]}_subnet",
                  subnet_target(await svc.network(row.network_id, None, True), row.project_id))
        if request.method == "DELETE":
            await svc.delete_subnet(row)
            return Response(status_code=204)
        if request.method == "PUT":
            item = body_of(await json_body(request), "subnet")
            for fixed in ("cidr", "ip_version", "network_id"):
                if fixed in item:
                    raise BadRequest(f"Cannot update read-only attribute {fixed}")
            values = subnet_values(item, ipaddress.ip_network(row.cidr))
            async with svc.db.session() as s:
                row = await s.get(Subnet, row.id)
                for k, v in values.items():
                    setattr(row, k, v)
                row.revision_number += 1
        return JSON(shape_one(request, subnet_view(row), "subnet"))

    # -- ports -----------------------------------------------------------------------------------
    def port_values(request: Request, item: dict[str, Any], create: bool) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for key in ("name", "description", "device_owner", "device_id", "dns_name"):
            if key in item:
                values[key] = check_str(item[key], key)
        for key in ("admin_state_up", "port_security_enabled"):
            if key in item:
                values[key] = check_bool(item[key], key)
        if "binding:host_id" in item:
            rule = "create_port:binding:host_id" if create else "update_port:binding:host_id"
            if not allowed(request, rule):
                raise Forbidden(f"(rule:{rule}) is disallowed by policy")
            values["binding_host_id"] = check_str(item["binding:host_id"], "binding:host_id")
        if "allowed_address_pairs" in item:
            pairs = item["allowed_address_pairs"]
            try:
                for p in pairs:
                    ipaddress.ip_network(p["ip_address"], strict=False)
                    if "mac_address" in p and not MAC.match(p["mac_address"]):
                        raise ValueError
            except (ValueError, TypeError, KeyError):
                raise BadRequest("Invalid input for allowed_address_pairs: ip_address (and optional mac_address) "
                                 "per pair.") from None
            values["allowed_address_pairs"] = pairs
        if "extra_dhcp_opts" in item:
            opts = item["extra_dhcp_opts"]
            if not isinstance(opts, list) or not all(isinstance(o, dict) and "opt_name" in o for o in opts):
                raise BadRequest("Invalid input for extra_dhcp_opts: a list of {opt_name, opt_value}.")
            values["extra_dhcp_opts"] = opts
        if "security_groups" in item:
            groups = item["security_groups"]
            if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
                raise BadRequest("Invalid input for security_groups: a list of ids.")
            values["security_groups"] = groups
        return values

    def fixed_ips_of(item: dict[str, Any]) -> list[dict[str, Any]] | None:
        fixed = item.get("fixed_ips")
        if fixed is None:
            return None
        if not isinstance(fixed, list) or not all(isinstance(f, dict) for f in fixed):
            raise BadRequest("Invalid input for fixed_ips: a list of {subnet_id, ip_address}.")
        for f in fixed:
            if f.get("ip_address") is not None:
                try:
                    ipaddress.ip_address(str(f["ip_address"]))
                except ValueError:
                    raise BadRequest(f"Invalid input for fixed_ips. Reason: '{f['ip_address']}' is not a valid IP "
                                     "address.", kind="InvalidInput") from None
        return fixed

    async def make_port(request: Request, item: dict[str, Any]) -> tuple[Port, dict[str, Any]]:
        project, admin = who(request)
        net = await svc.network(str(item.get("network_id", "")), project, admin)
        if net.project_id != project and not admin and not net.shared:
            raise Forbidden(f"(rule:create_port) is disallowed by policy: network {net.id} belongs to another "
                            "project.")
        authorize(request, "create_port", port_target(net, owner_of(request, item)))
        values = port_values(request, item, True)
        policy = await wanted_policy(svc.db, item, project, admin)
        if "tags" in item:
            values["tags"] = tags.check_tags(item["tags"])
        if "mac_address" in item:
            if not isinstance(item["mac_address"], str) or not MAC.match(item["mac_address"]):
                raise BadRequest(f"Invalid input for mac_address. Reason: '{item['mac_address']}' is not a valid "
                                 "MAC address.")
            values["mac_address"] = item["mac_address"].lower()
        values.setdefault("port_security_enabled", net.port_security_enabled)
        values.update(project_id=owner_of(request, item), network_id=net.id)
        if "security_groups" in values:
            for group_id in values["security_groups"]:
                await groups.get(group_id, values["project_id"], admin)
        elif values["port_security_enabled"]:
            values["security_groups"] = [await groups.default(values["project_id"])]
        if values.get("security_groups") and not values["port_security_enabled"]:
            raise BadRequest("Port has security group associated. Cannot disable port security or ip address "
                             "until security group is removed", kind="PortSecurityAndIPRequiredForSecurityGroups")
        async with svc.quota_turn("port", values["project_id"]):
            await svc.check_quota("port", values["project_id"])
            row = await svc.create_port(values, fixed_ips_of(item), project, admin)
            await within_quota("port", row, svc.delete_port)
        if policy is not None:
            await bind_policy(svc.db, "port", row.id, policy)
        ips = await svc.allocations([row.id])
        return row, (await port_extras(svc.db, [port_view(row, ips[row.id])]))[0]

    @r.route("/v2.0/ports", ["GET", "POST"])
    async def ports(request: Request) -> Response:
        project, admin = who(request)
        if request.method == "POST":
            return await create(request, "port", make_port, svc.delete_port)
        authorize(request, "get_port")
        stmt = select(Port).order_by(Port.created_at)
        if not admin:
            stmt = stmt.where(Port.project_id == project)
        if "fixed_ips" in request.query_params:  # in SQL on either path below
            stmt = stmt.where(*fixed_ip_filters(request.query_params.getlist("fixed_ips")))
        fast = await list_ports(svc, request, stmt.order_by(None))
        if fast is not None:
            return JSON(fast)
        async with svc.db.session() as s:
            rows = list((await s.execute(stmt)).scalars())
        ips = await svc.allocations([p.id for p in rows])
        items = await port_extras(svc.db, [port_view(p, ips[p.id]) for p in rows])
        return JSON(shape(_without(request, "fixed_ips"), items, "ports"))

    @r.route("/v2.0/ports/{port_id}", ["GET", "PUT", "DELETE"])
    async def port(request: Request) -> Response:
        project, admin = who(request)
        row = await svc.port(request.path_params["port_id"], project, admin)
        authorize(request, f"{VERB[request.method]}_port",
                  port_target(await svc.network(row.network_id, None, True), row.project_id))
        if request.method == "DELETE":
            await check_port_deletable(svc.db, row.id)
            await svc.delete_port(row)
            await unbind_policies(svc.db, [row.id])
            return Response(status_code=204)
        if request.method == "PUT":
            item = body_of(await json_body(request), "port")
            for fixed in ("network_id", "mac_address") if not admin else ("network_id",):
                if fixed in item:
                    raise BadRequest(f"Cannot update read-only attribute {fixed}")
            values = port_values(request, item, False)
            if "qos_policy_id" in item:
                await bind_policy(svc.db, "port", row.id, await wanted_policy(svc.db, item, project, admin))
            fixed_ips = fixed_ips_of(item)
            if fixed_ips is not None:
                old = await svc.allocations([row.id])
                await svc.release(row.id)
                try:
                    await svc.assign(row, fixed_ips, project, admin)
                except Exception:
                    await svc.assign(row, [dict(x) for x in old[row.id]], project, True)  # put them back
                    raise
            async with svc.db.session() as s:
                row = await s.get(Port, row.id)
                for k, v in values.items():
                    setattr(row, k, v)
                row.revision_number += 1
        ips = await svc.allocations([row.id])
        return JSON(shape_one(request, (await port_extras(svc.db, [port_view(row, ips[row.id])]))[0], "port"))

    return r



# Port attributes a list filters and sorts on in SQL (the rest are filtered from the views)
PORT_COLUMNS = {"id": Port.id, "name": Port.name, "network_id": Port.network_id, "mac_address": Port.mac_address,
                "admin_state_up": Port.admin_state_up, "status": Port.status, "device_owner": Port.device_owner,
                "device_id": Port.device_id, "binding:host_id": Port.binding_host_id,
                "port_security_enabled": Port.port_security_enabled, "project_id": Port.project_id,
                "tenant_id": Port.project_id, "description": Port.description, "dns_name": Port.dns_name}
PORT_SORTS = {**PORT_COLUMNS, "created_at": Port.created_at, "updated_at": Port.updated_at}
BOOLEAN = {"admin_state_up", "port_security_enabled"}


async def list_ports(svc: Ipam, request: Request, stmt: Any) -> dict[str, Any] | None:
    """A port listing filtered, sorted and paged by the database, with the addresses of the page's
    ports only; None when the query asks for something only the views can answer (a filter or
    sort key on another attribute, tag filters), which the caller then does the old way."""
    q = request.query_params
    reserved = {"fields", "sort_key", "sort_dir", "limit", "marker", "page_reverse"}
    if any(k in q for k in tags.FILTERS) or any(k not in reserved and k not in PORT_COLUMNS and k != "fixed_ips"
                                                  for k in q):
        return None
    keys = q.getlist("sort_key")
    if any(k not in PORT_SORTS for k in keys):
        return None
    for key in {k for k in q if k in PORT_COLUMNS}:
        column, wanted = PORT_COLUMNS[key], q.getlist(key)
        if key in BOOLEAN:
            truth = {w.lower() for w in wanted}
            stmt = stmt.where(or_(false(), *([column.is_(True)] if "true" in truth else []),
                                  *([column.is_(False)] if "false" in truth else [])))
        else:
            stmt = stmt.where(column.in_(many(wanted)))
    dirs = q.getlist("sort_dir")
    order = [(PORT_SORTS[k], (dirs[n] if n < len(dirs) else "asc") == "desc") for n, k in enumerate(keys)]
    order += [(Port.created_at, False), (Port.id, False)]
    limit = None
    if "limit" in q:
        try:
            limit = int(q["limit"])
        except ValueError:
            raise BadRequest(f"Bad limit request: limit must be an integer, not {q['limit']!r}.") from None
        limit = limit if limit > 0 else None
    async with svc.db.session() as s:
        if "marker" in q:
            row = (await s.execute(stmt.where(Port.id == q["marker"]))).scalar()
            if row is None:
                raise NotFound(f"Marker {q['marker']} could not be found.")
            clauses = []
            for i, (column, desc) in enumerate(order):
                value = getattr(row, column.key)
                prefix = [c == getattr(row, c.key) for c, _ in order[:i]]
                clauses.append(and_(*prefix, column < value if desc else column > value))
            stmt = stmt.where(or_(*clauses))
        stmt = stmt.order_by(*(c.desc() if desc else c.asc() for c, desc in order))
        rows = list((await s.execute(stmt.limit(limit + 1) if limit else stmt)).scalars())
    body: dict[str, Any] = {}
    if limit and len(rows) > limit:
        rows = rows[:limit]
        body["ports_links"] = [{"rel": "next", "href": f"{request.url.remove_query_params('marker')}"
                                                        f"&marker={rows[-1].id}"}]
    ips = await svc.allocations([p.id for p in rows])
    items = await port_extras(svc.db, [port_view(p, ips[p.id]) for p in rows])
    fields = q.getlist("fields")
    if fields:
        items = [{k: v for k, v in i.items() if k in fields} for i in items]
    body["ports"] = items
    return body


FIXED_IP_KEYS = ("ip_address", "subnet_id", "ip_address_substr")


def fixed_ip_filters(parts: list[str]) -> list[Any]:
    """The SQL conditions of ``fixed_ips=KEY=VALUE`` filters, as Neutron reads them: each key
    given (repeated: any of its values) must hold for some address of the port, not necessarily
    the same one; ``ip_address_substr`` matches part of an address (``10.0.0.1`` finds 10.0.0.1x)."""
    wanted: dict[str, list[str]] = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep or key not in FIXED_IP_KEYS or len(value) > 255:
            raise BadRequest(f"Invalid input for fixed_ips. Reason: '{part}' is not KEY=VALUE with KEY one of "
                             f"{', '.join(FIXED_IP_KEYS)}.", kind="InvalidInput")
        wanted.setdefault(key, []).append(value)
    conditions = []
    for key, values in wanted.items():
        if key == "ip_address_substr":  # addresses are stored in lower case; % and _ are literal here
            match = or_(*(IPAllocation.ip_address.contains(v.lower(), autoescape=True) for v in values))
        else:
            match = getattr(IPAllocation, key).in_(many(values))
        conditions.append(select(IPAllocation.port_id).where(IPAllocation.port_id == Port.id, match).exists())
    return conditions


def _without(request: Request, key: str) -> Request:
    scope = dict(request.scope)
    scope["query_string"] = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != key]).encode()
    return Request(scope)


async def networks_shown(svc: Ipam, nets: list[Network]) -> list[dict[str, Any]]:
    """Networks as an admin sees them (for the lists of another API, as the agents')."""
    ids = [n.id for n in nets]
    out: dict[str, list[str]] = {i: [] for i in ids}
    if ids:
        async with svc.db.session() as s:
            for sid, nid in (await s.execute(select(Subnet.id, Subnet.network_id).where(
                    Subnet.network_id.in_(ids)))).all():
                out[nid].append(sid)
    scopes = await address_scopes.of_networks(svc.db, ids)
    return [network_view(n, out[n.id], None, scopes.get(n.id)) for n in nets]


async def routers_shown(svc: Ipam, rows: list[Any]) -> list[dict[str, Any]]:
    return [await routers.show_router(svc, row) for row in rows]


def build_app(svc: Ipam, identity: IdentityService, max_body: int) -> ASGIApp:
    groups = SecurityGroups(svc.db)
    r = router(svc, groups)
    r.include(security_groups.router(groups))
    r.include(routers.router(svc))
    r.include(subnetpools.router(svc.db))
    r.include(quotas.router(svc.db))
    r.include(rbac.router(svc.db))
    r.include(address_scopes.router(svc.db))
    r.include(inventory.router(svc.db))
    r.include(agents.router(svc.db, lambda nets: networks_shown(svc, nets),
                            lambda rows: routers_shown(svc, rows)))
    r.include(qos_router(svc.db))
    r.include(trunk_router(svc.db))
    r.include(metering.router(svc.db))
    r.include(tags.router(svc.db))  # last: its paths are patterns over every collection
    policy = ServicePolicy.build("network", policies.RULES, identity.cfg.policy.file, policies.MESSAGE)
    return policy.bind(create_app("network", r, identity, max_body=max_body, schemas=SCHEMAS))

