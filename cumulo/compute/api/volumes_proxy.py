"""Nova's block-storage proxies, /v2.1/os-volumes and /v2.1/os-snapshots: volumes and snapshots
shown the old way (camelCase, display names), each call passed to ``VolumeService`` as the user
who asks.  They end at microversion 2.35, as in Nova; from 2.36 they answer 404 and users go to
the Block Storage API."""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cumulo.compute.api.block_devices import volume_caller
from cumulo.compute.api.common import at_least, offset_page
from cumulo.compute.servers import ServerManager
from cumulo.core.http.app import JSON, Router, auth_of, json_body
from cumulo.core.http.authz import authorize
from cumulo.core.http.faults import BadRequest, NotFound


def _stamp(value: dt.datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") if value else None


def volume_view(v: Any) -> dict[str, Any]:
    return {"id": v.id, "status": v.status, "size": v.size, "availabilityZone": v.availability_zone,
            "createdAt": _stamp(v.created_at), "displayName": v.name, "displayDescription": v.description,
            "volumeType": v.volume_type, "snapshotId": v.snapshot_id, "metadata": v.metadata,
            "attachments": [{"id": a.id, "volumeId": v.id, "serverId": a.instance_uuid, "device": a.mountpoint or ""}
                            for a in v.attachments if a.status == "attached"] or [{}]}


def snapshot_view(s: Any) -> dict[str, Any]:
    return {"id": s.id, "volumeId": s.volume_id, "status": s.status, "size": s.size,
            "createdAt": _stamp(s.created_at), "displayName": s.name, "displayDescription": s.description}


def router(manager: ServerManager) -> Router:
    r = Router()

    def service(request: Request, rule: str) -> Any:
        if at_least(request, 36):
            raise NotFound("The volume proxy APIs were removed in microversion 2.36: use the Block Storage API.")
        authorize(request, rule, {"project_id": auth_of(request).project_id})
        if manager.volumes is None:
            raise NotFound("Block storage does not run in this cloud.")
        return manager.volumes

    def body_of(data: Any, key: str) -> dict[str, Any]:
        inner = data.get(key) if isinstance(data, dict) else None
        if not isinstance(inner, dict):
            raise BadRequest(f"Invalid request body: it needs a {key!r} object.")
        return inner

    async def listing(request: Request, kind: str, rule: str) -> Response:
        block = service(request, rule)
        who = volume_caller(auth_of(request))
        if kind == "volumes":
            rows = [volume_view(v) for v in await block.volumes(who)]
        else:
            rows = [snapshot_view(s) for s in await block.snapshots(who)]
        return JSON({kind: offset_page(request, rows)})

    @r.get("/v2.1/os-volumes")
    async def list_volumes(request: Request) -> Response:
        return await listing(request, "volumes", "os_compute_api:os-volumes:list")

    @r.get("/v2.1/os-volumes/detail")
    async def list_volumes_detail(request: Request) -> Response:
        return await listing(request, "volumes", "os_compute_api:os-volumes:detail")

    @r.post("/v2.1/os-volumes")
    async def create_volume(request: Request) -> Response:
        block = service(request, "os_compute_api:os-volumes:create")
        body = body_of(await json_body(request), "volume")
        size = body.get("size")
        if isinstance(size, str) and size.isdigit():
            size = int(size)
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise BadRequest("Invalid input for field/attribute size: a positive integer is required.")
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise BadRequest("Invalid input for field/attribute metadata: an object is required.")
        vol = await block.create_volume(
            volume_caller(auth_of(request)), size, name=body.get("display_name"),
            description=body.get("display_description"), volume_type=body.get("volume_type"),
            availability_zone=body.get("availability_zone"), metadata=metadata,
            snapshot_id=body.get("snapshot_id"), image_id=body.get("imageRef"),
            token=request.headers.get("x-auth-token", ""))
        return JSON({"volume": volume_view(vol)})

    @r.get("/v2.1/os-volumes/{volume_id}")
    async def show_volume(request: Request) -> Response:
        block = service(request, "os_compute_api:os-volumes:show")
        return JSON({"volume": volume_view(await block.volume(request.path_params["volume_id"],
                                                              volume_caller(auth_of(request))))})

    @r.delete("/v2.1/os-volumes/{volume_id}")
    async def delete_volume(request: Request) -> Response:
        block = service(request, "os_compute_api:os-volumes:delete")
        await block.delete_volume(request.path_params["volume_id"], volume_caller(auth_of(request)))
        return Response(status_code=202)

    @r.get("/v2.1/os-snapshots")
    async def list_snapshots(request: Request) -> Response:
        return await listing(request, "snapshots", "os_compute_api:os-volumes:snapshots:list")

    @r.get("/v2.1/os-snapshots/detail")
    async def list_snapshots_detail(request: Request) -> Response:
        return await listing(request, "snapshots", "os_compute_api:os-volumes:snapshots:detail")

    @r.post("/v2.1/os-snapshots")
    async def create_snapshot(request: Request) -> Response:
        block = service(request, "os_compute_api:os-volumes:snapshots:create")
        body = body_of(await json_body(request), "snapshot")
        if not isinstance(body.get("volume_id"), str):
            raise BadRequest("Invalid input for field/attribute volume_id: the volume's id is required.")
        force = body.get("force", False)
        snap = await block.create_snapshot(volume_caller(auth_of(request)), body["volume_id"],
                                           name=body.get("display_name"),
                                           description=body.get("display_description"),
                                           force=force is True or str(force).lower() in ("true", "1", "yes"))
        return JSON({"snapshot": snapshot_view(snap)})

    @r.get("/v2.1/os-snapshots/{snapshot_id}")
    async def show_snapshot(request: Request) -> Response:
        block = service(request, "os_compute_api:os-volumes:snapshots:show")
        return JSON({"snapshot": snapshot_view(await block.snapshot(request.path_params["snapshot_id"],
                                                                    volume_caller(auth_of(request))))})

    @r.delete("/v2.1/os-snapshots/{snapshot_id}")
    async def delete_snapshot(request: Request) -> Response:
        block = service(request, "os_compute_api:os-volumes:snapshots:delete")
        await block.delete_snapshot(request.path_params["snapshot_id"], volume_caller(auth_of(request)))
        return Response(status_code=202)

    def empty_id(kind: str, rule: str) -> Any:
        """``/os-volumes/`` names no volume: a 404, as Nova answers (not the redirect to the list)."""
        async def handler(request: Request) -> Response:
            service(request, rule)
            raise NotFound(f"No {kind[3:-1]} id was given in the path.")
        handler.__name__ = f"{rule.rsplit(':', 1)[1]}_no_{kind[3:-1]}_id"
        return handler

    for kind, show, delete in (
            ("os-volumes", "os_compute_api:os-volumes:show", "os_compute_api:os-volumes:delete"),
            ("os-snapshots", "os_compute_api:os-volumes:snapshots:show", "os_compute_api:os-volumes:snapshots:delete")):
        r.route(f"/v2.1/{kind}/", ["GET", "HEAD"])(empty_id(kind, show))
        r.route(f"/v2.1/{kind}/", ["DELETE"])(empty_id(kind, delete))
    return r
