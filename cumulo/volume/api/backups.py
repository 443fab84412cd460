"""/v3/backups: create (from a volume, incremental, forced for an in-use one), list (summary and
detail), show, update (3.9), delete, restore (into a new or an existing volume), the admin's
actions (os-reset_status, os-force_delete) and the backup record's export and import.

Each field appears from the microversion that brought it, as tempest's response schemas expect:
the project (3.18, for an admin), metadata (3.43), user_id (3.56), encryption_key_id (3.64).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.http.app import JSON, Router, json_body
from cumulo.core.http.authz import allowed, authorize
from cumulo.core.http.faults import BadRequest, NotFound
from cumulo.core.http.paging import ListQuery, next_link, parse_bool
from cumulo.volume.api.common import at_least, caller, links, list_params, metadata_param, offset_param, route, stamp
from cumulo.volume.backups import BACKUP_SORT_KEYS, BackupFilters, BackupInfo
from cumulo.volume.service import VolumeService


def backup_view(request: Request, b: BackupInfo) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": b.id, "name": b.name, "description": b.description, "status": b.status, "size": b.size,
        "object_count": b.object_count, "availability_zone": b.availability_zone, "container": b.container,
        "created_at": stamp(b.created_at), "updated_at": stamp(b.updated_at), "fail_reason": b.fail_reason,
        "volume_id": b.volume_id, "links": links(request, "backups", b.id, b.project_id),
        "is_incremental": b.is_incremental, "has_dependent_backups": b.has_dependent_backups,
        "snapshot_id": b.snapshot_id, "data_timestamp": stamp(b.data_timestamp)}
    if at_least(request, 18) and allowed(request, "backup:backup_project_attribute", {"project_id": b.project_id}):
        out["os-backup-project-attr:project_id"] = b.project_id
    if at_least(request, 43):
        out["metadata"] = b.metadata
    if at_least(request, 56):
        out["user_id"] = b.user_id
    if at_least(request, 64):
        out["encryption_key_id"] = None
    return out


def summary(request: Request, b: BackupInfo) -> dict[str, Any]:
    return {"id": b.id, "name": b.name, "links": links(request, "backups", b.id, b.project_id)}


def router(svc: VolumeService) -> Router:
    r = Router()

    async def listing(request: Request, detail: bool) -> Response:
        authorize(request, "backup:get_all")
        who = caller(request)
        params = request.query_params
        # as Cinder: all_tenants is an admin's filter, ignored for anyone else
        everyone = who.admin and bool(params.get("all_tenants") and parse_bool("all_tenants", params["all_tenants"]))
        filters = BackupFilters(all_projects=everyone, project_id=params.get("project_id") if everyone else None,
                                name=params.get("name"), status=params.get("status"),
                                volume_id=params.get("volume_id"), metadata=metadata_param(request))
        q = list_params(request, BACKUP_SORT_KEYS)
        rows = await svc.backups(who, filters, q, offset_param(request))
        body: dict[str, Any] = {"backups": [backup_view(request, b) if detail else summary(request, b) for b in rows]}
        more = next_link(str(request.url).split("?", 1)[0], params, q, rows, "backups")
        if more:
            body["backups_links"] = more
        if at_least(request, 45) and parse_bool("with_count", params.get("with_count", "false")):
            body["count"] = len(await svc.backups(who, filters, ListQuery(sort=q.sort)))
        return JSON(body)

    @route(r, "GET", "/backups")
    async def list_backups(request: Request) -> Response:
        return await listing(request, False)

    @route(r, "GET", "/backups/detail")
    async def list_backups_detail(request: Request) -> Response:
        return await listing(request, True)

    @route(r, "POST", "/backups")
    async def create_backup(request: Request) -> Response:
        authorize(request, "backup:create")
        body = (await json_body(request))["backup"]
        if body.get("metadata") is not None and not at_least(request, 43):
            raise BadRequest("Invalid input for field/attribute backup: metadata needs microversion 3.43.")
        if body.get("availability_zone") is not None and not at_least(request, 51):
            raise BadRequest("Invalid input for field/attribute backup: availability_zone needs microversion 3.51.")
        b = await svc.create_backup(
            caller(request), body["volume_id"], name=body.get("name"), description=body.get("description"),
            container=body.get("container"), incremental=parse_bool("incremental", str(body.get("incremental", False))),
            force=parse_bool("force", str(body.get("force", False))), metadata=body.get("metadata"),
            availability_zone=body.get("availability_zone"), snapshot_id=body.get("snapshot_id"))
        return JSON({"backup": summary(request, b)}, status_code=202)

    @route(r, "POST", "/backups/import_record")
    async def import_record(request: Request) -> Response:
        authorize(request, "backup:backup-import")
        record = (await json_body(request))["backup-record"]
        b = await svc.import_backup_record(caller(request), record["backup_service"], record["backup_url"])
        return JSON({"backup": summary(request, b)}, status_code=201)

    async def owned(request: Request, rule: str) -> BackupInfo:
        b = await svc.backup(request.path_params["backup_id"], caller(request))
        authorize(request, rule, {"project_id": b.project_id})
        return b

    @route(r, "GET", "/backups/{backup_id}")
    async def show_backup(request: Request) -> Response:
        return JSON({"backup": backup_view(request, await owned(request, "backup:get"))})

    @route(r, "PUT", "/backups/{backup_id}")
    async def update_backup(request: Request) -> Response:
        if not at_least(request, 9):
            raise NotFound("The backup update needs microversion 3.9.")
        b = await owned(request, "backup:update")
        body = (await json_body(request))["backup"]
        if body.get("metadata") is not None and not at_least(request, 43):
            raise BadRequest("Invalid input for field/attribute backup: metadata needs microversion 3.43.")
        if not body:
            raise BadRequest("Invalid input: the backup update names nothing to change.")
        values = {key: body[key] for key in ("name", "description") if key in body}
        if body.get("metadata") is not None:
            values["meta"] = body["metadata"]
        return JSON({"backup": summary(request, await svc.update_backup(b.id, caller(request), values))})

    @route(r, "DELETE", "/backups/{backup_id}")
    async def delete_backup(request: Request) -> Response:
        b = await owned(request, "backup:delete")
        force = parse_bool("force", request.query_params.get("force", "false"))
        if force:
            authorize(request, "volume_extension:backup_admin_actions:force_delete", {"project_id": b.project_id})
        await svc.delete_backup(b.id, caller(request), force=force)
        return Response(status_code=202)

    @route(r, "POST", "/backups/{backup_id}/restore")
    async def restore_backup(request: Request) -> Response:
        b = await owned(request, "backup:restore")
        body = (await json_body(request)).get("restore") or {}
        done = await svc.restore_backup(b.id, caller(request), body.get("volume_id"), body.get("name"))
        return JSON({"restore": {"backup_id": done.backup_id, "volume_id": done.volume_id,
                                 "volume_name": done.volume_name}}, status_code=202)

    @route(r, "POST", "/backups/{backup_id}/action")
    async def backup_action(request: Request) -> Response:
        body = await json_body(request)
        action = next(iter(body))
        if action == "os-reset_status":
            b = await owned(request, "volume_extension:backup_admin_actions:reset_status")
            await svc.reset_backup_status(b.id, caller(request), body[action]["status"])
        else:  # os-force_delete (the schema allows no other)
            b = await owned(request, "volume_extension:backup_admin_actions:force_delete")
            await svc.delete_backup(b.id, caller(request), force=True)
        return Response(status_code=202)

    @route(r, "GET", "/backups/{backup_id}/export_record")
    async def export_record(request: Request) -> Response:
        b = await owned(request, "backup:backup-export")
        return JSON({"backup-record": await svc.export_backup_record(b.id, caller(request))})

    return r
