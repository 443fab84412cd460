"""A server's network interfaces (os-interface: list, show, attach, detach) and its diagnostics."""

from __future__ import annotations

import re
import uuid
from typing import Any

from sqlalchemy import update
from starlette.requests import Request
from starlette.responses import Response

from cumulo.compute.api.common import at_least
from cumulo.compute.models import Server
from cumulo.compute.servers import ServerManager
from cumulo.core.http.app import JSON, Router, auth_of, json_body
from cumulo.core.http.authz import authorize
from cumulo.core.http.faults import BadRequest, Conflict, NotFound

TAG = re.compile(r"^[^,/]{0,60}$")


def is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return isinstance(value, str)


def router(manager: ServerManager) -> Router:
    r = Router()

    async def server_for(request: Request, rule: str) -> Server:
        auth = auth_of(request)
        server_id = request.path_params["server_id"]
        server = await manager.get(server_id) if len(server_id) <= 36 else None
        if server is None or server.deleted_at is not None or (
                server.project_id != auth.project_id and not auth.is_admin()):
            raise NotFound(f"Instance {server_id} could not be found.")
        authorize(request, rule, {"project_id": server.project_id, "user_id": server.user_id})
        return server

    def view(request: Request, server: Server, port: dict[str, Any]) -> dict[str, Any]:
        out = {"net_id": port["network_id"], "port_id": port["id"], "mac_addr": port["mac_address"],
               "port_state": port.get("status") or "DOWN",
               "fixed_ips": [{"subnet_id": ip["subnet_id"], "ip_address": ip["ip_address"]}
                             for ip in port.get("fixed_ips") or []]}
        if at_least(request, 70):
            out["tag"] = ((server.system_meta or {}).get("interface_tags") or {}).get(port["id"])
        return out

    @r.get("/v2.1/servers/{server_id}/os-interface")
    async def list_interfaces(request: Request) -> Response:
        server = await server_for(request, "os_compute_api:os-attach-interfaces:list")
        return JSON({"interfaceAttachments": [view(request, server, p) for p in await manager.ports_of(server.id)]})

    @r.get("/v2.1/servers/{server_id}/os-interface/{port_id}")
    async def show_interface(request: Request) -> Response:
        server = await server_for(request, "os_compute_api:os-attach-interfaces:show")
        port_id = request.path_params["port_id"]
        port = next((p for p in await manager.ports_of(server.id) if p["id"] == port_id), None)
        if port is None:
            raise NotFound(f"Instance {server.id} does not have a port with id {port_id}")
        return JSON({"interfaceAttachment": view(request, server, port)})

    @r.post("/v2.1/servers/{server_id}/os-interface")
    async def attach_interface(request: Request) -> Response:
        server = await server_for(request, "os_compute_api:os-attach-interfaces:create")
        body = await json_body(request) if await request.body() else {}
        if not isinstance(body, dict) or set(body) - {"interfaceAttachment"}:
            raise BadRequest("The body must be {\"interfaceAttachment\": {...}}.")
        attachment = body.get("interfaceAttachment") or {}
        if not isinstance(attachment, dict):
            raise BadRequest("interfaceAttachment must be an object.")
        known = {"net_id", "port_id", "fixed_ips"} | ({"tag"} if at_least(request, 49) else set())
        extra = set(attachment) - known
        if extra:
            raise BadRequest(f"Additional properties are not allowed ({', '.join(sorted(extra))} was unexpected)")
        net_id, port_id = attachment.get("net_id"), attachment.get("port_id")
        for name, value in (("net_id", net_id), ("port_id", port_id)):
            if value is not None and not is_uuid(value):
                raise BadRequest(f"Invalid input for field/attribute {name}: {value!r} is not a 'uuid'.")
        fixed_ip = None
        if "fixed_ips" in attachment:
            ips = attachment["fixed_ips"]
            if not isinstance(ips, list) or len(ips) > 1 or any(
                    not isinstance(i, dict) or set(i) != {"ip_address"} for i in ips):
                raise BadRequest("fixed_ips must be a list of at most one {\"ip_address\": ...}.")
            fixed_ip = ips[0]["ip_address"] if ips else None
            if fixed_ip is not None and not isinstance(fixed_ip, str):
                raise BadRequest("ip_address must be a string.")
        tag = attachment.get("tag")
        if tag is not None and (not isinstance(tag, str) or not TAG.match(tag)):
            raise BadRequest("tag must be a string of at most 60 characters without ',' or '/'.")
        if net_id and port_id:
            raise BadRequest("Must not input both network_id and port_id")
        if fixed_ip and not net_id:
            raise BadRequest("Must input network_id when request IP address")
        if server.locked and not auth_of(request).is_admin():
            raise Conflict(f"Instance {server.id} is locked")
        port = await manager.attach_interface(server, net_id, port_id, fixed_ip, auth_of(request).is_admin())
        if tag is not None:
            fresh = await manager.get(server.id)
            meta = dict((fresh.system_meta if fresh else None) or {})
            meta["interface_tags"] = {**(meta.get("interface_tags") or {}), port["id"]: tag}
            async with manager.db.session() as s:
                await s.execute(update(Server).where(Server.id == server.id).values(system_meta=meta))
            server.system_meta = meta
        return JSON({"interfaceAttachment": view(request, server, port)})

    @r.delete("/v2.1/servers/{server_id}/os-interface/{port_id}")
    async def detach_interface(request: Request) -> Response:
        server = await server_for(request, "os_compute_api:os-attach-interfaces:delete")
        if server.locked and not auth_of(request).is_admin():
            raise Conflict(f"Instance {server.id} is locked")
        await manager.detach_interface(server, request.path_params["port_id"])
        return Response(status_code=202)

    # -- diagnostics ------------------------------------------------------------------------------
    @r.get("/v2.1/servers/{server_id}/diagnostics")
    async def diagnostics(request: Request) -> Response:
        server = await server_for(request, "os_compute_api:os-server-diagnostics")
        found = await manager.diagnostics(server)
        return JSON(found["standard"] if at_least(request, 48) else found["flat"])

    return r
