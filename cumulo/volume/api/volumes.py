"""/v3/volumes: create, list (summary and detail), show, update, delete, the volume's metadata and
its actions: os-set_bootable, os-update_readonly_flag, the legacy attach family (os-reserve,
os-unreserve, os-attach, os-begin_detaching, os-roll_detaching, os-detach,
os-initialize_connection, os-terminate_connection, os-force_detach) on the attachments' steps,
os-extend (in-use from 3.42), os-volume_upload_image, os-set/unset/show_image_metadata and the
admin's os-reset_status and os-force_delete.

Each field appears from the microversion that brought it (tempest's response schemas refuse
extras); ``bootable`` is the string "true" or "false"; the admin sees the host, project and
migration attributes.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.http.app import JSON, Router, json_body
from cumulo.core.http.authz import allowed, authorize
from cumulo.core.http.faults import BadRequest, NotFound
from cumulo.core.http.paging import next_link, parse_bool
from cumulo.volume.api import transfers  # os-retype, os-migrate_volume
from cumulo.volume.api.common import at_least, caller, links, list_params, metadata_param, offset_param, route, stamp
from cumulo.volume.service import VOLUME_SORT_KEYS, Caller, VolumeFilters, VolumeInfo, VolumeService, VolumeTypeInfo

# the pool name in os-vol-host-attr:host (host@backend#pool), one file pool per agent
POOL = "file"


def volume_view(request: Request, v: VolumeInfo, extended: bool = True) -> dict[str, Any]:
    """The volume; ``extended`` adds the attributes Cinder's extensions add to a show and a detailed
    list (never to a create's or an update's answer), each as its policy allows."""
    out: dict[str, Any] = {
        "id": v.id, "name": v.name, "description": v.description, "size": v.size, "status": v.status,
        "availability_zone": v.availability_zone, "created_at": stamp(v.created_at),
        "updated_at": stamp(v.updated_at), "volume_type": v.volume_type, "snapshot_id": v.snapshot_id,
        "source_volid": v.source_volid, "metadata": v.metadata, "user_id": v.user_id,
        "bootable": "true" if v.bootable else "false", "encrypted": False,
        "attachments": attachments_view(request, v),
        "replication_status": None, "consistencygroup_id": None, "multiattach": v.multiattach,
        "migration_status": v.migration_status, "links": links(request, "volumes", v.id, v.project_id)}
    target = {"project_id": v.project_id}
    if extended and v.image_meta is not None and allowed(request, "volume_extension:volume_image_metadata:show",
                                                         target):
        out["volume_image_metadata"] = v.image_meta
    if extended and allowed(request, "volume_extension:volume_host_attribute", target):
        out["os-vol-host-attr:host"] = f"{v.host}@{POOL}#{POOL}" if v.host else None
    if extended and allowed(request, "volume_extension:volume_tenant_attribute", target):
        out["os-vol-tenant-attr:tenant_id"] = v.project_id
    if extended and allowed(request, "volume_extension:volume_mig_status_attribute", target):
        out["os-vol-mig-status-attr:migstat"] = v.migration_status
        out["os-vol-mig-status-attr:name_id"] = None
    if at_least(request, 13):
        out["group_id"] = v.group_id
    if at_least(request, 21) and allowed(request, "admin_api"):
        out["provider_id"] = None
    if at_least(request, 48):
        out["shared_targets"] = False
        out["service_uuid"] = None
    if at_least(request, 63):
        out["volume_type_id"] = v.volume_type_id
    if at_least(request, 65):
        out["consumes_quota"] = True
    return out


def attachments_view(request: Request, v: VolumeInfo) -> list[dict[str, Any]]:
    """The attached attachments, as Cinder lists them in a volume (the volume's id as ``id``); the
    compute host's name is an admin's to see."""
    admin = allowed(request, "admin_api")
    return [{"id": v.id, "attachment_id": a.id, "volume_id": v.id, "server_id": a.instance_uuid,
             "host_name": a.attached_host if admin else None, "device": a.mountpoint,
             "attached_at": stamp(a.attached_at)} for a in v.attachments if a.status == "attached"]


def _text(body: dict[str, Any], key: str) -> Any:
    """Cinder's v3 name (``name``) or its v1 alias (``display_name``)."""
    return body[key] if key in body else body.get(f"display_{key}")


# the legacy attach actions: (rule, status) as Cinder's api-ref has them
ATTACH_ACTIONS = {
    "os-reserve": ("volume:reserve_volume", 202), "os-unreserve": ("volume:unreserve_volume", 202),
    "os-begin_detaching": ("volume:begin_detaching", 202), "os-roll_detaching": ("volume:roll_detaching", 202),
    "os-attach": ("volume:attach", 202), "os-detach": ("volume:detach", 202),
    "os-initialize_connection": ("volume:initialize_connection", 200),
    "os-terminate_connection": ("volume:terminate_connection", 202),
    "os-force_detach": ("volume_extension:volume_admin_actions:force_detach", 202),
}


def upload_view(request: Request, v: VolumeInfo, vtype: VolumeTypeInfo | None, image_id: str,
                args: dict[str, Any], disk_format: str, container_format: str) -> dict[str, Any]:
    """os-volume_upload_image's answer (Cinder's fields; visibility and protected from 3.1)."""
    out: dict[str, Any] = {
        "id": v.id, "updated_at": stamp(v.updated_at), "status": v.status, "display_description": v.description,
        "size": v.size, "image_id": image_id, "container_format": container_format, "disk_format": disk_format,
        "image_name": args["image_name"],
        "volume_type": None if vtype is None else {
            "id": vtype.id, "name": vtype.name, "description": vtype.description, "is_public": vtype.is_public,
            "extra_specs": vtype.extra_specs, "deleted": False, "deleted_at": None, "qos_specs_id": None}}
    if at_least(request, 1):
        out["visibility"] = args.get("visibility") or "private"
        out["protected"] = parse_bool("protected", str(args.get("protected", False)))
    return out


async def attach_action(svc: VolumeService, who: Caller, vol: VolumeInfo, action: str,
                        args: dict[str, Any]) -> dict[str, Any] | None:
    """One legacy attach action (its body already checked by the schema); the answer's body, if any."""
    if action == "os-reserve":
        await svc.reserve(who, vol.id)
    elif action == "os-unreserve":
        await svc.unreserve(who, vol.id)
    elif action == "os-begin_detaching":
        await svc.begin_detaching(who, vol.id)
    elif action == "os-roll_detaching":
        await svc.roll_detaching(who, vol.id)
    elif action == "os-attach":
        if not args.get("instance_uuid") and not args.get("host_name"):
            raise BadRequest("Invalid request to attach volume to an invalid target: give instance_uuid or "
                             "host_name.")
        await svc.attach(who, vol.id, args.get("instance_uuid"), args["mountpoint"], args.get("host_name"),
                         args.get("mode") or "rw")
    elif action == "os-detach":
        await svc.detach(who, vol.id, args.get("attachment_id"))
    elif action == "os-initialize_connection":
        return {"connection_info": await svc.initialize_connection(who, vol.id, args["connector"])}
    elif action == "os-terminate_connection":
        await svc.terminate_connection(who, vol.id, args["connector"])
    elif action == "os-force_detach":
        await svc.force_detach(who, vol.id, args.get("attachment_id"))
    return None


def router(svc: VolumeService) -> Router:
    r = Router()

    async def listing(request: Request, detail: bool) -> Response:
        authorize(request, "volume:get_all")
        who = caller(request)
        params = request.query_params
        everyone = bool(params.get("all_tenants") and parse_bool("all_tenants", params["all_tenants"]))
        if everyone:
            authorize(request, "volume:get_all:all_tenants")
        filters = VolumeFilters(
            all_projects=everyone, project_id=params.get("project_id") if everyone else None,
            name=params.get("name"), status=params.get("status"),
            availability_zone=params.get("availability_zone"),
            bootable=parse_bool("bootable", params["bootable"]) if "bootable" in params else None,
            metadata=metadata_param(request), group_id=params.get("group_id") if at_least(request, 10) else None)
        q = list_params(request, VOLUME_SORT_KEYS)
        rows = await svc.volumes(who, filters, q, offset_param(request))
        if detail:
            items = [volume_view(request, v) for v in rows]
        else:
            items = [{"id": v.id, "name": v.name, "links": links(request, "volumes", v.id, v.project_id)}
                     for v in rows]
        body: dict[str, Any] = {"volumes": items}
        more = next_link(str(request.url).split("?", 1)[0], params, q, rows, "volumes")
        if more:
            body["volumes_links"] = more
        return JSON(body)

    @route(r, "GET", "/volumes")
    async def list_volumes(request: Request) -> Response:
        return await listing(request, False)

    @route(r, "GET", "/volumes/detail")
    async def list_volumes_detail(request: Request) -> Response:
        return await listing(request, True)

    @route(r, "GET", "/volumes/summary")
    async def volume_summary(request: Request) -> Response:
        """3.12: how many volumes the caller sees and their size (3.36: their metadata's values)."""
        if not at_least(request, 12):
            raise NotFound("Volume summary could not be found.")
        authorize(request, "volume:get_all")
        who = caller(request)
        everyone = bool(request.query_params.get("all_tenants")
                        and parse_bool("all_tenants", request.query_params["all_tenants"]))
        if everyone:
            authorize(request, "volume:get_all:all_tenants")
        rows = await svc.volumes(who, VolumeFilters(all_projects=everyone))
        out: dict[str, Any] = {"total_size": sum(v.size for v in rows), "total_count": len(rows)}
        if at_least(request, 36):
            meta: dict[str, list[str]] = {}
            for v in rows:
                for key, value in v.metadata.items():
                    if value not in meta.setdefault(key, []):
                        meta[key].append(value)
            out["metadata"] = meta
        return JSON({"volume-summary": out})

    @route(r, "POST", "/volumes")
    async def create_volume(request: Request) -> Response:
        authorize(request, "volume:create")
        body = (await json_body(request))["volume"]
        if body.get("backup_id"):  # 3.47: a new volume restored from the backup
            if not at_least(request, 47):
                raise BadRequest("Creating a volume from a backup needs microversion 3.47 or later.")
            restored = await svc.restore_backup(str(body["backup_id"]), caller(request), name=_text(body, "name"))
            vol = await svc.volume(restored.volume_id, caller(request))
            return JSON({"volume": volume_view(request, vol, extended=False)}, status_code=202)
        size = body.get("size")
        vol = await svc.create_volume(
            caller(request), int(size) if size is not None else None, name=_text(body, "name"),
            description=_text(body, "description"), volume_type=body.get("volume_type"),
            availability_zone=body.get("availability_zone"), metadata=body.get("metadata") or {},
            snapshot_id=body.get("snapshot_id"), source_volid=body.get("source_volid"),
            image_id=body.get("imageRef") or body.get("image_id"), token=request.headers.get("x-auth-token", ""),
            multiattach=parse_bool("multiattach", str(body.get("multiattach", False))),
            group_id=body.get("group_id") if at_least(request, 13) else None)
        return JSON({"volume": volume_view(request, vol, extended=False)}, status_code=202)

    @route(r, "GET", "/volumes/{volume_id}")
    async def show_volume(request: Request) -> Response:
        vol = await svc.volume(request.path_params["volume_id"], caller(request))
        authorize(request, "volume:get", {"project_id": vol.project_id})
        return JSON({"volume": volume_view(request, vol)})

    @route(r, "PUT", "/volumes/{volume_id}")
    async def update_volume(request: Request) -> Response:
        who = caller(request)
        vol = await svc.volume(request.path_params["volume_id"], who)
        authorize(request, "volume:update", {"project_id": vol.project_id})
        body = (await json_body(request))["volume"]
        values: dict[str, Any] = {}
        for key in ("name", "description"):
            if key in body or f"display_{key}" in body:
                values[key] = _text(body, key)
        if body.get("metadata") is not None:
            values["meta"] = body["metadata"]
        if not values and not body:
            raise BadRequest("Invalid input: the volume update names nothing to change.")
        vol = await svc.update_volume(vol.id, who, values)
        return JSON({"volume": volume_view(request, vol, extended=False)})

    @route(r, "DELETE", "/volumes/{volume_id}")
    async def delete_volume(request: Request) -> Response:
        who = caller(request)
        vol = await svc.volume(request.path_params["volume_id"], who)
        authorize(request, "volume:delete", {"project_id": vol.project_id})
        cascade = parse_bool("cascade", request.query_params.get("cascade", "false"))
        await svc.delete_volume(vol.id, who, cascade=cascade)
        return Response(status_code=202)

    # -- actions ---------------------------------------------------------------------------------
    @route(r, "POST", "/volumes/{volume_id}/action")
    async def volume_action(request: Request) -> Response:
        """os-set_bootable and os-update_readonly_flag (the flag is the volume's metadata key
        ``readonly``, "True" or "False", where Cinder's clients read it), and the attach family."""
        who = caller(request)
        body = await json_body(request)
        action = next(iter(body), None) if isinstance(body, dict) and len(body) == 1 else None
        vol = await svc.volume(request.path_params["volume_id"], who)
        if action in ATTACH_ACTIONS:
            rule, status = ATTACH_ACTIONS[action]
            authorize(request, rule, {"project_id": vol.project_id})
            answer = await attach_action(svc, who, vol, action, body[action] or {})
            return JSON(answer, status_code=status) if answer is not None else Response(status_code=status)
        if action == "os-set_bootable":
            authorize(request, "volume:update", {"project_id": vol.project_id})
            bootable = parse_bool("bootable", str(body[action]["bootable"]))
            await svc.update_volume(vol.id, who, {"bootable": bootable})
            return Response(status_code=200)
        if action == "os-update_readonly_flag":
            authorize(request, "volume:update_readonly_flag", {"project_id": vol.project_id})
            readonly = parse_bool("readonly", str(body[action]["readonly"]))
            await svc.set_metadata(vol.id, who, {"readonly": str(readonly)})
            return Response(status_code=202)
        if action in LONG_ACTIONS:
            return await LONG_ACTIONS[action](request, svc, who, vol, body[action] or {})
        raise BadRequest(f"There is no such action: {action}" if action else "Invalid request body: one action.")

    # -- metadata --------------------------------------------------------------------------------
    async def owned(request: Request, rule: str) -> VolumeInfo:
        vol = await svc.volume(request.path_params["volume_id"], caller(request))
        authorize(request, rule, {"project_id": vol.project_id})
        return vol

    @route(r, "GET", "/volumes/{volume_id}/metadata")
    async def show_metadata(request: Request) -> Response:
        return JSON({"metadata": (await owned(request, "volume:get_volume_metadata")).metadata})

    @route(r, "POST", "/volumes/{volume_id}/metadata")
    async def create_metadata(request: Request) -> Response:
        vol = await owned(request, "volume:create_volume_metadata")
        meta = await svc.set_metadata(vol.id, caller(request), (await json_body(request))["metadata"])
        return JSON({"metadata": meta})

    @route(r, "PUT", "/volumes/{volume_id}/metadata")
    async def replace_metadata(request: Request) -> Response:
        vol = await owned(request, "volume:update_volume_metadata")
        meta = await svc.set_metadata(vol.id, caller(request), (await json_body(request))["metadata"], replace=True)
        return JSON({"metadata": meta})

    @route(r, "GET", "/volumes/{volume_id}/metadata/{key}")
    async def show_metadata_item(request: Request) -> Response:
        vol = await owned(request, "volume:get_volume_metadata")
        key = request.path_params["key"]
        if key not in vol.metadata:
            raise NotFound(f"Volume {vol.id} has no metadata with key {key}.")
        return JSON({"meta": {key: vol.metadata[key]}})

    @route(r, "PUT", "/volumes/{volume_id}/metadata/{key}")
    async def update_metadata_item(request: Request) -> Response:
        vol = await owned(request, "volume:update_volume_metadata")
        key, meta = request.path_params["key"], (await json_body(request))["meta"]
        if key not in meta:
            raise BadRequest("Request body and URI mismatch: the key in the body must be the key in the path.")
        await svc.set_metadata(vol.id, caller(request), {key: meta[key]})
        return JSON({"meta": {key: meta[key]}})

    @route(r, "DELETE", "/volumes/{volume_id}/metadata/{key}")
    async def delete_metadata_item(request: Request) -> Response:
        vol = await owned(request, "volume:delete_volume_metadata")
        await svc.delete_metadata(vol.id, caller(request), request.path_params["key"])
        return Response(status_code=200)

    return r


# -- extend, upload, image metadata and the admin's actions -------------------------------------------
async def _extend(request: Request, svc: VolumeService, who: Caller, vol: VolumeInfo, args: dict[str, Any]) -> Response:
    """An in-use volume from 3.42 (its server's QEMU grows it); 202."""
    attached = vol.status == "in-use"
    if attached and not at_least(request, 42):
        raise BadRequest(f"Invalid volume: Volume {vol.id} status must be available to extend (in-use from "
                         "microversion 3.42), but current status is: in-use.")
    authorize(request, "volume:extend_attached_volume" if attached else "volume:extend",
              {"project_id": vol.project_id})
    await svc.extend_volume(who, vol.id, int(args["new_size"]), attached=at_least(request, 42))
    return Response(status_code=202)


async def _upload(request: Request, svc: VolumeService, who: Caller, vol: VolumeInfo, args: dict[str, Any]) -> Response:
    target = {"project_id": vol.project_id}
    authorize(request, "volume_extension:volume_actions:upload_image", target)
    if ("visibility" in args or "protected" in args) and not at_least(request, 1):
        raise BadRequest("Invalid input received: visibility and protected need microversion 3.1 or later.")
    if args.get("visibility") == "public":
        authorize(request, "volume_extension:volume_actions:upload_public", target)
    disk_format, container_format = args.get("disk_format") or "raw", args.get("container_format") or "bare"
    updated, image_id = await svc.upload_to_image(
        who, vol.id, request.headers.get("x-auth-token", ""), image_name=args["image_name"],
        disk_format=disk_format, container_format=container_format,
        force=parse_bool("force", str(args.get("force", False))), visibility=args.get("visibility") or "private",
        protected=parse_bool("protected", str(args.get("protected", False))))
    vtype = None
    if updated.volume_type_id:
        try:
            vtype = await svc.volume_type(updated.volume_type_id, Caller(who.project_id, who.user_id, True))
        except NotFound:
            vtype = None
    body = upload_view(request, updated, vtype, image_id, args, disk_format, container_format)
    return JSON({"os-volume_upload_image": body}, status_code=202)


async def _set_image_metadata(request: Request, svc: VolumeService, who: Caller, vol: VolumeInfo,
                              args: dict[str, Any]) -> Response:
    authorize(request, "volume_extension:volume_image_metadata:set", {"project_id": vol.project_id})
    return JSON({"metadata": await svc.set_image_metadata(vol.id, who, args["metadata"])})


async def _unset_image_metadata(request: Request, svc: VolumeService, who: Caller, vol: VolumeInfo,
                                args: dict[str, Any]) -> Response:
    authorize(request, "volume_extension:volume_image_metadata:remove", {"project_id": vol.project_id})
    await svc.unset_image_metadata(vol.id, who, args["key"])
    return Response(status_code=200)


async def _show_image_metadata(request: Request, svc: VolumeService, who: Caller, vol: VolumeInfo,
                               args: dict[str, Any]) -> Response:
    authorize(request, "volume_extension:volume_image_metadata:show", {"project_id": vol.project_id})
    return JSON({"metadata": vol.image_meta or {}})


async def _reset_status(request: Request, svc: VolumeService, who: Caller, vol: VolumeInfo,
                        args: dict[str, Any]) -> Response:
    authorize(request, "volume_extension:volume_admin_actions:reset_status", {"project_id": vol.project_id})
    await svc.reset_status(vol.id, args.get("status"), args.get("attach_status"), args.get("migration_status"))
    return Response(status_code=202)


async def _force_delete(request: Request, svc: VolumeService, who: Caller, vol: VolumeInfo,
                        args: dict[str, Any]) -> Response:
    authorize(request, "volume_extension:volume_admin_actions:force_delete", {"project_id": vol.project_id})
    await svc.force_delete(vol.id)
    return Response(status_code=202)


LONG_ACTIONS = {"os-extend": _extend, "os-volume_upload_image": _upload, "os-set_image_metadata": _set_image_metadata,
                "os-unset_image_metadata": _unset_image_metadata, "os-show_image_metadata": _show_image_metadata,
                "os-reset_status": _reset_status, "os-force_delete": _force_delete, **transfers.ACTIONS}
