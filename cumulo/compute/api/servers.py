"""/v2.1/servers: create (with min/max count), list, detail, show, delete.  Actions, metadata,
tags and the other server sub-resources follow."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import select, update
from starlette.requests import Request
from starlette.responses import Response

from cumulo.compute.api import at_least
from cumulo.compute.models import Server
from cumulo.compute.servers import ServerManager
from cumulo.core.http.app import JSON, Router, auth_of, json_body
from cumulo.core.http.faults import BadRequest, Conflict, Forbidden, NotFound

STATUS = {"building": "BUILD", "active": "ACTIVE", "error": "ERROR", "deleted": "DELETED", "stopped": "SHUTOFF",
          "paused": "PAUSED", "suspended": "SUSPENDED"}


def base(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}/v2.1"


def links(request: Request, kind: str, ident: str) -> list[dict[str, str]]:
    return [{"rel": "self", "href": f"{base(request)}/{kind}/{ident}"},
            {"rel": "bookmark", "href": f"{base(request)}/{kind}/{ident}"}]


def when(value: Any) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def router(manager: ServerManager, images: Any) -> Router:
    r = Router()
    compute = manager.compute

    def view(request: Request, s: Server, detail: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"id": s.id, "name": s.name, "links": links(request, "servers", s.id)}
        if not detail:
            return out
        admin = auth_of(request).is_admin()
        f = s.flavor
        flavor: dict[str, Any] = {"vcpus": f["vcpus"], "ram": f["ram"], "disk": f["disk"],
                                  "ephemeral": f["ephemeral"], "swap": f["swap"], "original_name": f["name"],
                                  "extra_specs": f.get("extra_specs") or {}} if at_least(request, 47) else {
            "id": f["id"], "links": links(request, "flavors", f["id"])}
        out.update({
            "status": STATUS.get(s.vm_state, s.vm_state.upper()), "tenant_id": s.project_id, "user_id": s.user_id,
            "metadata": s.meta or {}, "hostId": "", "flavor": flavor,
            "image": {"id": s.image_id, "links": links(request, "images", s.image_id)} if s.image_id else "",
            "created": when(s.created_at), "updated": when(s.updated_at), "addresses": {}, "accessIPv4": "",
            "accessIPv6": "", "key_name": s.key_name, "config_drive": "", "progress": 0,
            "OS-EXT-STS:vm_state": s.vm_state, "OS-EXT-STS:task_state": s.task_state,
            "OS-EXT-STS:power_state": s.power_state, "OS-EXT-AZ:availability_zone": s.availability_zone or "",
            "OS-SRV-USG:launched_at": s.launched_at.isoformat() if s.launched_at else None,
            "OS-SRV-USG:terminated_at": None, "security_groups": [], "os-extended-volumes:volumes_attached": []})
        if s.host:
            import hashlib

            out["hostId"] = hashlib.sha224((s.project_id + s.host).encode()).hexdigest()
        if admin:
            out.update({"OS-EXT-SRV-ATTR:host": s.host, "OS-EXT-SRV-ATTR:hypervisor_hostname": s.host,
                        "OS-EXT-SRV-ATTR:instance_name": f"instance-{s.id[:8]}"})
        if at_least(request, 9):
            out["locked"] = s.locked
        if at_least(request, 73):
            out["locked_reason"] = s.locked_reason
        if at_least(request, 19):
            out["description"] = None
        if at_least(request, 26):
            out["tags"] = []
        if s.vm_state == "error" and s.fault:
            out["fault"] = {"code": s.fault["code"], "created": s.fault.get("created"),
                            "message": s.fault["details"] if admin else s.fault["message"]}
            if admin:
                out["fault"]["details"] = s.fault["details"]
        return out

    async def visible(request: Request, server_id: str) -> Server:
        auth = auth_of(request)
        async with manager.db.session() as s:
            row = await s.get(Server, server_id)
        if row is None or row.deleted_at is not None or (row.project_id != auth.project_id and not auth.is_admin()):
            raise NotFound(f"Instance {server_id} could not be found.")
        return row

    async def listing(request: Request, detail: bool) -> Response:
        auth = auth_of(request)
        q = request.query_params
        stmt = select(Server).where(Server.deleted_at.is_(None)).order_by(Server.created_at.desc(), Server.id)
        if not (auth.is_admin() and q.get("all_tenants", "").lower() in ("1", "true", "yes", "")
                and "all_tenants" in q):
            stmt = stmt.where(Server.project_id == (auth.project_id or ""))
        if "name" in q:
            stmt = stmt.where(Server.name.like(f"%{q['name']}%"))
        if "status" in q:
            states = [k for k, v in STATUS.items() if v == q["status"].upper()]
            stmt = stmt.where(Server.vm_state.in_(states or ["-"]))
        async with manager.db.session() as s:
            rows = list((await s.execute(stmt)).scalars())
        return JSON({"servers": [view(request, x, detail) for x in rows]})

    @r.get("/v2.1/servers")
    async def list_servers(request: Request) -> Response:
        return await listing(request, False)

    @r.get("/v2.1/servers/detail")
    async def list_servers_detail(request: Request) -> Response:
        return await listing(request, True)

    @r.get("/v2.1/servers/{server_id}")
    async def show(request: Request) -> Response:
        return JSON({"server": view(request, await visible(request, request.path_params["server_id"]), True)})

    @r.delete("/v2.1/servers/{server_id}")
    async def delete(request: Request) -> Response:
        await manager.delete(await visible(request, request.path_params["server_id"]))
        return Response(status_code=204)

    # -- metadata -------------------------------------------------------------------------------
    def check_meta(items: Any, key_in_url: str | None = None) -> dict[str, str]:
        if not isinstance(items, dict):
            raise BadRequest("metadata must be an object of strings.")
        for key, value in items.items():
            if not isinstance(key, str) or not 0 < len(key) <= 255 or not isinstance(value, str) or len(value) > 255:
                raise BadRequest(f"Invalid metadata item {key!r}: keys and values are strings of 1-255 characters.")
        if key_in_url is not None and list(items) != [key_in_url]:
            raise BadRequest("The body must hold exactly the key named in the URL.")
        return items

    async def save_meta(server: Server, meta: dict[str, str]) -> None:
        limit = await compute.quota(server.project_id, "metadata_items")
        if limit is not None and len(meta) > limit:
            raise Forbidden(f"Quota exceeded for metadata_items: the limit is {limit}.")
        async with manager.db.session() as s:
            await s.execute(update(Server).where(Server.id == server.id).values(meta=meta))

    @r.route("/v2.1/servers/{server_id}/metadata", ["GET", "POST", "PUT"])
    async def metadata(request: Request) -> Response:
        server = await visible(request, request.path_params["server_id"])
        if request.method == "GET":
            return JSON({"metadata": server.meta or {}})
        body = await json_body(request)
        items = check_meta(body.get("metadata") if isinstance(body, dict) else None)
        meta = items if request.method == "PUT" else {**(server.meta or {}), **items}
        await save_meta(server, meta)
        return JSON({"metadata": meta})

    @r.route("/v2.1/servers/{server_id}/metadata/{key}", ["GET", "PUT", "DELETE"])
    async def metadata_item(request: Request) -> Response:
        server = await visible(request, request.path_params["server_id"])
        key = request.path_params["key"]
        meta = dict(server.meta or {})
        if request.method == "PUT":
            body = await json_body(request)
            meta.update(check_meta(body.get("meta") if isinstance(body, dict) else None, key))
            await save_meta(server, meta)
            return JSON({"meta": {key: meta[key]}})
        if key not in meta:
            raise NotFound(f"Metadata item was not found: {key}")
        if request.method == "GET":
            return JSON({"meta": {key: meta[key]}})
        meta.pop(key)
        await save_meta(server, meta)
        return Response(status_code=204)

    simple = {"os-stop": "stop", "os-start": "start", "pause": "pause", "unpause": "unpause",
              "suspend": "suspend", "resume": "resume"}

    @r.post("/v2.1/servers/{server_id}/action")
    async def action(request: Request) -> Response:
        server = await visible(request, request.path_params["server_id"])
        body = await json_body(request)
        if not isinstance(body, dict) or len(body) != 1:
            raise BadRequest("The body must name exactly one action.")
        name, arg = next(iter(body.items()))
        admin = auth_of(request).is_admin()
        if name in ("lock", "unlock"):
            reason = arg.get("locked_reason") if isinstance(arg, dict) and at_least(request, 73) else None
            if reason is not None and (not isinstance(reason, str) or len(reason) > 255):
                raise BadRequest("locked_reason must be a string of at most 255 characters.")
            await manager.set_locked(server, name == "lock", reason)
            return Response(status_code=202)
        if server.locked and not admin:
            raise Conflict(f"Instance {server.id} is locked")
        if name == "reboot":
            kind = arg.get("type") if isinstance(arg, dict) else None
            if kind not in ("SOFT", "HARD"):
                raise BadRequest("reboot needs {\"type\": \"SOFT\"} or {\"type\": \"HARD\"}.")
            await manager.act(server, f"reboot-{kind.lower()}")
        elif name in simple:
            await manager.act(server, simple[name])
        else:
            raise BadRequest(f"The action {name!r} is not supported yet.")
        return Response(status_code=202)

    @r.post("/v2.1/servers")
    async def create(request: Request) -> Response:
        auth = auth_of(request)
        body = await json_body(request)
        data = body.get("server") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise BadRequest("The request body needs a 'server' object.")
        name = data.get("name")
        if not isinstance(name, str) or not 0 < len(name.strip()) <= 255:
            raise BadRequest("Invalid input for field/attribute name: 1 to 255 characters.")
        flavor_ref = data.get("flavorRef")
        if not isinstance(flavor_ref, (str, int)) or not str(flavor_ref):
            raise BadRequest("Invalid input for field/attribute flavorRef.")
        try:
            flavor = await compute.flavor(str(flavor_ref).rsplit("/", 1)[-1], auth.project_id, auth.is_admin())
        except NotFound:
            raise BadRequest(f"Flavor {flavor_ref} could not be found.") from None
        image_ref = data.get("imageRef")
        image_id = None
        if image_ref:
            if not isinstance(image_ref, str):
                raise BadRequest("Invalid input for field/attribute imageRef.")
            image_id = image_ref.rsplit("/", 1)[-1]
            if images is not None:
                from cumulo.core.http.faults import NotFound as _NotFound
                from cumulo.image.service import Caller

                try:
                    image = await images.get(image_id, Caller.of(auth))
                except _NotFound:
                    raise BadRequest(f"Image {image_id} could not be found.") from None
                if image.status != "active":
                    raise BadRequest(f"Image {image_id} is not active.")
                if image.min_ram and flavor.ram < image.min_ram:
                    raise BadRequest(f"Flavor's memory is too small for requested image (min_ram {image.min_ram}).")
        elif not data.get("block_device_mapping_v2"):
            raise BadRequest("Missing imageRef attribute.")
        networks = data.get("networks")
        if at_least(request, 37) and networks is None:
            raise BadRequest("networks is required from microversion 2.37: use \"auto\", \"none\" or a list.")
        if isinstance(networks, list) and networks:
            raise BadRequest("Networks are not available yet in this cloud: use \"none\" or \"auto\".")
        if networks not in (None, "auto", "none") and not isinstance(networks, list):
            raise BadRequest(f"Invalid networks value {networks!r}.")
        low, high = data.get("min_count", 1), data.get("max_count", data.get("min_count", 1))
        for value in (low, high):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise BadRequest("min_count and max_count must be positive integers.")
        if low > high:
            raise BadRequest("min_count must be <= max_count.")
        key_name = data.get("key_name")
        if key_name is not None:
            try:
                await compute.keypair(auth.user_id, key_name)
            except NotFound:
                raise BadRequest(f"Invalid key_name provided: {key_name}.") from None
        metadata = data.get("metadata") or {}
        if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                     for k, v in metadata.items()):
            raise BadRequest("metadata must map strings to strings.")
        zone = data.get("availability_zone")
        if zone is not None and (not isinstance(zone, str) or not zone):
            raise BadRequest("Invalid availability_zone.")
        rows = await manager.create(project_id=auth.project_id or "", user_id=auth.user_id, name=name.strip(),
                                    flavor=flavor, image_id=image_id, count=high, zone=zone, key_name=key_name,
                                    metadata=metadata)
        first = rows[0]
        return JSON({"server": {"id": first.id, "links": links(request, "servers", first.id),
                                "OS-DCF:diskConfig": "MANUAL", "security_groups": [{"name": "default"}],
                                "adminPass": secrets.token_urlsafe(12)}}, status_code=202)

    return r
