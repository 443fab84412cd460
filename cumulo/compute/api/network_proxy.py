"""Nova's deprecated network proxies, answered from the Network API's data as Nova answers them with
Neutron: os-tenant-networks and os-networks (a project's, an admin's every network),
os-floating-ip-pools (the external networks) and os-floating-ips (list, show, allocate, release),
all removed at microversion 2.36; and the server actions addFloatingIp and removeFloatingIp
(removed at 2.44), whose handlers ``actions`` gives server_actions."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cumulo.compute.api.common import at_least
from cumulo.compute.servers import ServerManager
from cumulo.core.http.app import JSON, Router, auth_of, json_body
from cumulo.core.http.authz import authorize
from cumulo.core.http.faults import BadRequest, Conflict, Forbidden, NotFound
from cumulo.network.service import FloatingIPInfo, NetworkInfo, NetworkService, OverQuota

# the nova-network fields os-networks shows, all empty with Neutron (an admin sees more of them)
NETWORK_FIELDS = ("cidr", "netmask", "gateway", "broadcast", "dns1", "dns2", "cidr_v6", "gateway_v6", "netmask_v6")
ADMIN_FIELDS = ("created_at", "updated_at", "deleted_at", "deleted", "injected", "bridge", "vlan",
                "vpn_public_address", "vpn_public_port", "vpn_private_address", "dhcp_start", "project_id", "host",
                "bridge_interface", "multi_host", "priority", "rxtx_base", "mtu", "dhcp_server", "enable_dhcp",
                "share_address")


def proxy_gone(request: Request) -> None:
    if at_least(request, 36):
        raise NotFound("The network proxy APIs were removed in microversion 2.36: use the Network API.")


def fip_view(f: FloatingIPInfo) -> dict[str, Any]:
    return {"id": f.id, "ip": f.address, "fixed_ip": f.fixed_address, "instance_id": f.server_id, "pool": f.pool}


def router(manager: ServerManager | None = None) -> Router:
    r = Router()
    network: NetworkService | None = manager.network if manager is not None else None

    def net() -> NetworkService:
        if network is None:
            raise NotFound("This cloud runs no network service.")
        return network

    async def visible(request: Request) -> list[NetworkInfo]:
        auth = auth_of(request)
        return await net().visible_networks(auth.project_id, auth.is_admin())

    # -- os-tenant-networks ---------------------------------------------------------------------
    async def tenant_view(rows: list[NetworkInfo]) -> list[dict[str, Any]]:
        cidrs = await net().network_cidrs([n.id for n in rows])
        return [{"id": n.id, "label": n.name, "cidr": cidrs.get(n.id, "None")} for n in rows]

    @r.get("/v2.1/os-tenant-networks")
    async def tenant_networks(request: Request) -> Response:
        proxy_gone(request)
        authorize(request, "os_compute_api:os-tenant-networks:list")
        return JSON({"networks": await tenant_view(await visible(request))})

    @r.get("/v2.1/os-tenant-networks/{network_id}")
    async def tenant_network(request: Request) -> Response:
        proxy_gone(request)
        authorize(request, "os_compute_api:os-tenant-networks:show")
        wanted = request.path_params["network_id"]
        found = [n for n in await visible(request) if n.id == wanted]
        if not found:
            raise NotFound("Network not found")
        return JSON({"network": (await tenant_view(found))[0]})

    # -- os-networks ----------------------------------------------------------------------------
    def network_view(request: Request, n: NetworkInfo) -> dict[str, Any]:
        fields = NETWORK_FIELDS + (ADMIN_FIELDS if auth_of(request).is_admin() else ())
        return {"id": n.id, "label": n.name, **dict.fromkeys(fields)}

    @r.get("/v2.1/os-networks")
    async def networks(request: Request) -> Response:
        proxy_gone(request)
        authorize(request, "os_compute_api:os-networks:list")
        if network is None:
            return JSON({"networks": []})
        return JSON({"networks": [network_view(request, n) for n in await visible(request)]})

    @r.get("/v2.1/os-networks/{network_id}")
    async def show_network(request: Request) -> Response:
        proxy_gone(request)
        authorize(request, "os_compute_api:os-networks:show")
        wanted = request.path_params["network_id"]
        found = [n for n in await visible(request) if n.id == wanted] if network is not None else []
        if not found:
            raise NotFound("Network not found")
        return JSON({"network": network_view(request, found[0])})

    # -- os-floating-ip-pools and os-floating-ips -----------------------------------------------
    @r.get("/v2.1/os-floating-ip-pools")
    async def pools(request: Request) -> Response:
        proxy_gone(request)
        authorize(request, "os_compute_api:os-floating-ip-pools")
        return JSON({"floating_ip_pools": [{"name": p.name or p.id} for p in await net().floating_pools()]})

    @r.route("/v2.1/os-floating-ips", ["GET", "POST"])
    async def floating_ips(request: Request) -> Response:
        proxy_gone(request)
        auth = auth_of(request)
        if request.method in ("GET", "HEAD"):
            authorize(request, "os_compute_api:os-floating-ips:list", {"project_id": auth.project_id})
            return JSON({"floating_ips": [fip_view(f) for f in await net().floating_ips(auth.project_id or "")]})
        authorize(request, "os_compute_api:os-floating-ips:create", {"project_id": auth.project_id})
        body = await json_body(request) if await request.body() else None
        if body is not None and not isinstance(body, dict):
            raise BadRequest("The request body must be an object: {\"pool\": NAME} or empty.")
        pool = (body or {}).get("pool")
        if pool is not None and (not isinstance(pool, str) or not 0 < len(pool) <= 255):
            raise BadRequest("Invalid input for field/attribute pool: a string of 1 to 255 characters.")
        try:
            fip = await net().allocate_floating_ip(auth.project_id or "", pool)
        except OverQuota:
            raise Forbidden(f"IP allocation over quota in pool {pool}." if pool else "IP allocation over quota.") \
                from None
        return JSON({"floating_ip": fip_view(fip)})

    async def owned(request: Request, rule: str) -> FloatingIPInfo:
        proxy_gone(request)
        auth = auth_of(request)
        authorize(request, rule, {"project_id": auth.project_id})
        fip_id = request.path_params["fip_id"]
        try:
            return await net().floating_ip(fip_id, auth.project_id, False)
        except NotFound:
            raise NotFound(f"Floating IP not found for ID {fip_id}") from None

    @r.get("/v2.1/os-floating-ips/{fip_id}")
    async def floating_ip(request: Request) -> Response:
        return JSON({"floating_ip": fip_view(await owned(request, "os_compute_api:os-floating-ips:show"))})

    @r.delete("/v2.1/os-floating-ips/{fip_id}")
    async def release(request: Request) -> Response:
        fip = await owned(request, "os_compute_api:os-floating-ips:delete")
        await net().release_floating_ip(fip)
        return Response(status_code=202)

    return r


def actions(manager: ServerManager) -> dict[str, Any]:
    """The server actions addFloatingIp and removeFloatingIp (until 2.43), for server_actions
    (which has checked the policy on the server)."""

    def network() -> NetworkService:
        if manager.network is None:
            raise NotFound("This cloud runs no network service.")
        return manager.network

    async def fip_of(request: Request, action: str, args: Any) -> FloatingIPInfo:
        if at_least(request, 44):
            raise NotFound(f"The {action} action was removed in microversion 2.44: use the Network API.")
        if not isinstance(args, dict) or not isinstance(args.get("address"), str) or not args["address"]:
            raise BadRequest(f"Invalid input for field/attribute {action}: it needs an 'address'.")
        auth = auth_of(request)
        try:
            return await network().floating_ip(args["address"], auth.project_id, auth.is_admin(), by_address=True)
        except NotFound:
            raise NotFound("floating IP not found") from None

    async def add(request: Request, server: Any, args: Any) -> Response:
        fip = await fip_of(request, "addFloatingIp", args)
        fixed = args.get("fixed_address")
        if fixed is not None and not isinstance(fixed, str):
            raise BadRequest("fixed_address must be an IP address.")
        await network().associate_floating_ip(fip, server.id, fixed)
        return Response(status_code=202)

    async def remove(request: Request, server: Any, args: Any) -> Response:
        fip = await fip_of(request, "removeFloatingIp", args)
        if fip.server_id != server.id:
            raise Conflict(f"Floating IP {fip.address} is not associated with instance {server.id}.")
        await network().disassociate_floating_ip(fip)
        return Response(status_code=202)

    return {"addFloatingIp": add, "removeFloatingIp": remove}
