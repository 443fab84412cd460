"""/v3/snapshots: create, list (summary and detail), show, update and delete a volume's snapshots, and
the actions on them (the admin's os-reset_status and os-force_delete, os-update_snapshot_status)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.http.app import JSON, Router, json_body
from cumulo.core.http.authz import allowed, authorize
from cumulo.core.http.faults import BadRequest, NotFound
from cumulo.core.http.paging import next_link, parse_bool
from cumulo.volume.api.common import at_least, caller, list_params, offset_param, route, stamp
from cumulo.volume.service import SNAPSHOT_SORT_KEYS, SnapshotInfo, VolumeFilters, VolumeService


def snapshot_view(request: Request, s: SnapshotInfo, extended: bool = True) -> dict[str, Any]:
    """The snapshot; ``extended`` adds the project and progress attributes of a show and a detailed
    list (not of a summary list, a create or an update), as the policy allows."""
    out: dict[str, Any] = {
        "id": s.id, "name": s.name, "description": s.description, "volume_id": s.volume_id, "status": s.status,
        "size": s.size, "metadata": s.metadata, "created_at": stamp(s.created_at), "updated_at": stamp(s.updated_at)}
    if extended and allowed(request, "volume_extension:extended_snapshot_attributes", {"project_id": s.project_id}):
        out["os-extended-snapshot-attributes:project_id"] = s.project_id
        out["os-extended-snapshot-attributes:progress"] = s.progress
    if at_least(request, 14):
        out["group_snapshot_id"] = s.group_snapshot_id
    if at_least(request, 41):
        out["user_id"] = s.user_id
    if at_least(request, 65):
        out["consumes_quota"] = True
    return out


def _text(body: dict[str, Any], key: str) -> Any:
    return body[key] if key in body else body.get(f"display_{key}")


def router(svc: VolumeService) -> Router:
    r = Router()

    async def listing(request: Request, detail: bool) -> Response:
        authorize(request, "volume:get_all_snapshots")
        params = request.query_params
        everyone = bool(params.get("all_tenants") and parse_bool("all_tenants", params["all_tenants"]))
        if everyone:
            authorize(request, "volume:get_all:all_tenants")
        filters = VolumeFilters(all_projects=everyone, project_id=params.get("project_id") if everyone else None,
                                name=params.get("name"), status=params.get("status"),
                                volume_id=params.get("volume_id"))
        q = list_params(request, SNAPSHOT_SORT_KEYS)
        rows = await svc.snapshots(caller(request), filters, q, offset_param(request))
        items = [snapshot_view(request, s, extended=detail) for s in rows]
        body: dict[str, Any] = {"snapshots": items}
        more = next_link(str(request.url).split("?", 1)[0], params, q, rows, "snapshots")
        if more:
            body["snapshots_links"] = more
        return JSON(body)

    @route(r, "GET", "/snapshots")
    async def list_snapshots(request: Request) -> Response:
        return await listing(request, False)

    @route(r, "GET", "/snapshots/detail")
    async def list_snapshots_detail(request: Request) -> Response:
        return await listing(request, True)

    @route(r, "POST", "/snapshots")
    async def create_snapshot(request: Request) -> Response:
        authorize(request, "volume:create_snapshot")
        body = (await json_body(request))["snapshot"]
        if not body.get("volume_id"):
            raise NotFound("Volume None could not be found.")  # Cinder's answer, which tempest expects
        snap = await svc.create_snapshot(caller(request), body["volume_id"], name=_text(body, "name"),
                                         description=_text(body, "description"), metadata=body.get("metadata"),
                                         force=parse_bool("force", str(body.get("force", False))))
        return JSON({"snapshot": snapshot_view(request, snap, extended=False)}, status_code=202)

    @route(r, "GET", "/snapshots/{snapshot_id}")
    async def show_snapshot(request: Request) -> Response:
        snap = await svc.snapshot(request.path_params["snapshot_id"], caller(request))
        authorize(request, "volume:get_snapshot", {"project_id": snap.project_id})
        return JSON({"snapshot": snapshot_view(request, snap)})

    @route(r, "PUT", "/snapshots/{snapshot_id}")
    async def update_snapshot(request: Request) -> Response:
        who = caller(request)
        snap = await svc.snapshot(request.path_params["snapshot_id"], who)
        authorize(request, "volume:update_snapshot", {"project_id": snap.project_id})
        body = (await json_body(request))["snapshot"]
        values = {key: _text(body, key) for key in ("name", "description") if key in body or f"display_{key}" in body}
        return JSON({"snapshot": snapshot_view(request, await svc.update_snapshot(snap.id, who, values),
                                               extended=False)})

    # -- metadata --------------------------------------------------------------------------------
    async def owned(request: Request, rule: str) -> SnapshotInfo:
        snap = await svc.snapshot(request.path_params["snapshot_id"], caller(request))
        authorize(request, rule, {"project_id": snap.project_id})
        return snap

    @route(r, "GET", "/snapshots/{snapshot_id}/metadata")
    async def show_snapshot_metadata(request: Request) -> Response:
        return JSON({"metadata": (await owned(request, "volume:get_snapshot_metadata")).metadata})

    @route(r, "POST", "/snapshots/{snapshot_id}/metadata")
    async def create_snapshot_metadata(request: Request) -> Response:
        snap = await owned(request, "volume:update_snapshot_metadata")
        meta = await svc.set_snapshot_metadata(snap.id, caller(request), (await json_body(request))["metadata"])
        return JSON({"metadata": meta})

    @route(r, "PUT", "/snapshots/{snapshot_id}/metadata")
    async def replace_snapshot_metadata(request: Request) -> Response:
        snap = await owned(request, "volume:update_snapshot_metadata")
        meta = await svc.set_snapshot_metadata(snap.id, caller(request), (await json_body(request))["metadata"],
                                               replace=True)
        return JSON({"metadata": meta})

    @route(r, "GET", "/snapshots/{snapshot_id}/metadata/{key}")
    async def show_snapshot_metadata_item(request: Request) -> Response:
        snap = await owned(request, "volume:get_snapshot_metadata")
        key = request.path_params["key"]
        if key not in snap.metadata:
            raise NotFound(f"Snapshot {snap.id} has no metadata with key {key}.")
        return JSON({"meta": {key: snap.metadata[key]}})

    @route(r, "PUT", "/snapshots/{snapshot_id}/metadata/{key}")
    async def update_snapshot_metadata_item(request: Request) -> Response:
        snap = await owned(request, "volume:update_snapshot_metadata")
        key, meta = request.path_params["key"], (await json_body(request))["meta"]
        if key not in meta:
            raise BadRequest("Request body and URI mismatch: the key in the body must be the key in the path.")
        await svc.set_snapshot_metadata(snap.id, caller(request), {key: meta[key]})
        return JSON({"meta": {key: meta[key]}})

    @route(r, "DELETE", "/snapshots/{snapshot_id}/metadata/{key}")
    async def delete_snapshot_metadata_item(request: Request) -> Response:
        snap = await owned(request, "volume:delete_snapshot_metadata")
        await svc.delete_snapshot_metadata(snap.id, caller(request), request.path_params["key"])
        return Response(status_code=200)

    @route(r, "POST", "/snapshots/{snapshot_id}/action")
    async def snapshot_action(request: Request) -> Response:
        """The admin's os-reset_status and os-force_delete, and os-update_snapshot_status (a
        member's: nova reports an assisted snapshot's progress); 202."""
        body = await json_body(request)
        action = next(iter(body), None) if isinstance(body, dict) and len(body) == 1 else None
        snap = await svc.snapshot(request.path_params["snapshot_id"], caller(request))
        target = {"project_id": snap.project_id}
        if action == "os-reset_status":
            authorize(request, "volume_extension:snapshot_admin_actions:reset_status", target)
            await svc.reset_snapshot_status(snap.id, body[action]["status"])
            return Response(status_code=202)
        if action == "os-force_delete":
            authorize(request, "volume_extension:snapshot_admin_actions:force_delete", target)
            await svc.force_delete_snapshot(snap.id)
            return Response(status_code=202)
        if action == "os-update_snapshot_status":
            authorize(request, "snapshot_extension:snapshot_actions:update_snapshot_status", target)
            await svc.update_snapshot_status(snap.id, caller(request), body[action]["status"],
                                             body[action].get("progress"))
            return Response(status_code=202)
        raise BadRequest(f"There is no such action: {action}" if action else "Invalid request body: one action.")

    @route(r, "DELETE", "/snapshots/{snapshot_id}")
    async def delete_snapshot(request: Request) -> Response:
        who = caller(request)
        snap = await svc.snapshot(request.path_params["snapshot_id"], who)
        authorize(request, "volume:delete_snapshot", {"project_id": snap.project_id})
        await svc.delete_snapshot(snap.id, who)
        return Response(status_code=202)

    return r
