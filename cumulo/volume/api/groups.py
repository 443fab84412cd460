"""/v3/group_types (3.11, their group_specs), /v3/groups (3.13; create-from-src 3.14, reset_status
3.20, the replication actions 3.38, refused) and /v3/group_snapshots (3.14; reset_status 3.19): the
routes of ``cumulo/volume/groups.py``.

Below its microversion a route is a 404, as in Cinder.  Each field appears from the microversion
that brought it, as tempest's response schemas expect: a group's group_snapshot_id and
source_group_id (3.14), its volumes (3.25, with ``list_volume=true``), replication_status (3.38),
and a group's or group snapshot's project_id (3.58, an admin's); a group type's group_specs are an
admin's to see.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.http.app import JSON, Router, json_body
from cumulo.core.http.authz import allowed, authorize
from cumulo.core.http.faults import BadRequest, NotFound
from cumulo.core.http.paging import next_link, parse_bool
from cumulo.volume.api.common import at_least, caller, list_params, offset_param, route, stamp
from cumulo.volume.groups import (
    GROUP_SNAPSHOT_SORT_KEYS,
    GROUP_SORT_KEYS,
    GROUP_TYPE_SORT_KEYS,
    GroupFilters,
    GroupInfo,
    GroupSnapshotInfo,
    GroupTypeInfo,
)
from cumulo.volume.service import VolumeService

REPLICATION_ACTIONS = {"enable_replication": "group:enable_replication",
                       "disable_replication": "group:disable_replication",
                       "failover_replication": "group:failover_replication",
                       "list_replication_targets": "group:list_replication_targets"}


def need(request: Request, minor: int, what: str) -> None:
    """Cinder's answer to a route below its microversion: 404."""
    if not at_least(request, minor):
        raise NotFound(f"{what} needs microversion 3.{minor} or later.")


def group_type_view(request: Request, t: GroupTypeInfo) -> dict[str, Any]:
    out: dict[str, Any] = {"id": t.id, "name": t.name, "description": t.description, "is_public": t.is_public}
    if allowed(request, "group:access_group_types_specs"):
        out["group_specs"] = t.group_specs
    return out


def group_view(request: Request, g: GroupInfo) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": g.id, "status": g.status, "availability_zone": g.availability_zone, "created_at": stamp(g.created_at),
        "name": g.name, "description": g.description, "group_type": g.group_type_id,
        "volume_types": g.volume_type_ids}
    if at_least(request, 14):
        out["group_snapshot_id"] = g.group_snapshot_id
        out["source_group_id"] = g.source_group_id
    if at_least(request, 25) and parse_bool("list_volume", request.query_params.get("list_volume", "false")):
        out["volumes"] = g.volume_ids
    if at_least(request, 38):
        out["replication_status"] = g.replication_status
    if at_least(request, 58) and allowed(request, "group:group_project_attribute", {"project_id": g.project_id}):
        out["project_id"] = g.project_id
    return out


def group_snapshot_view(request: Request, gs: GroupSnapshotInfo) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": gs.id, "group_id": gs.group_id, "group_type_id": gs.group_type_id, "status": gs.status,
        "created_at": stamp(gs.created_at), "name": gs.name, "description": gs.description}
    if at_least(request, 58) and allowed(request, "group:group_snapshot_project_attribute",
                                         {"project_id": gs.project_id}):
        out["project_id"] = gs.project_id
    return out


def _everyone(request: Request) -> bool:
    """``all_tenants``: an admin's filter, ignored for anyone else (as Cinder does)."""
    raw = request.query_params.get("all_tenants")
    return caller(request).admin and raw is not None and parse_bool("all_tenants", raw)


def _text(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def router(svc: VolumeService) -> Router:
    r = Router()

    # -- group types -------------------------------------------------------------------------------
    @route(r, "GET", "/group_types")
    async def list_group_types(request: Request) -> Response:
        need(request, 11, "Group types")
        raw = request.query_params.get("is_public")
        is_public = None if raw is not None and raw.lower() == "none" else (
            parse_bool("is_public", raw) if raw is not None else True)
        q = list_params(request, GROUP_TYPE_SORT_KEYS)
        rows = await svc.group_types(caller(request), is_public, q)
        body: dict[str, Any] = {"group_types": [group_type_view(request, t) for t in rows]}
        more = next_link(str(request.url).split("?", 1)[0], request.query_params, q, rows, "group_types")
        if more:
            body["group_type_links"] = more
        return JSON(body)

    @route(r, "POST", "/group_types")
    async def create_group_type(request: Request) -> Response:
        need(request, 11, "Group types")
        authorize(request, "group:group_types:create")
        body = (await json_body(request))["group_type"]
        t = await svc.create_group_type(body["name"].strip(), _text(body.get("description")),
                                        parse_bool("is_public", str(body.get("is_public", True))),
                                        body.get("group_specs") or {})
        return JSON({"group_type": group_type_view(request, t)}, status_code=202)

    @route(r, "GET", "/group_types/{group_type_id}")
    async def show_group_type(request: Request) -> Response:
        need(request, 11, "Group types")
        ref = request.path_params["group_type_id"]
        if ref == "default":  # Cinder's default_group_type: none is configured here
            raise NotFound("Default group type can not be found.")
        return JSON({"group_type": group_type_view(request, await svc.group_type(ref, caller(request)))})

    @route(r, "PUT", "/group_types/{group_type_id}")
    async def update_group_type(request: Request) -> Response:
        need(request, 11, "Group types")
        authorize(request, "group:group_types:update")
        body = (await json_body(request))["group_type"]
        if body.get("name") is not None and not body["name"].strip():
            raise BadRequest("Group type name can not be empty.")
        values: dict[str, Any] = {}
        if body.get("name") is not None:
            values["name"] = body["name"].strip()
        if body.get("description") is not None:
            values["description"] = body["description"]
        if body.get("is_public") is not None:
            values["is_public"] = parse_bool("is_public", str(body["is_public"]))
        if not values:
            raise BadRequest("Specify group type name, description or a combination thereof.")
        t = await svc.update_group_type(request.path_params["group_type_id"], values)
        return JSON({"group_type": group_type_view(request, t)})

    @route(r, "DELETE", "/group_types/{group_type_id}")
    async def delete_group_type(request: Request) -> Response:
        need(request, 11, "Group types")
        authorize(request, "group:group_types:delete")
        await svc.delete_group_type(request.path_params["group_type_id"])
        return Response(status_code=202)

    async def specs_of(request: Request, rule: str) -> dict[str, Any]:
        need(request, 11, "Group specs")
        authorize(request, rule)
        return (await svc.group_type(request.path_params["group_type_id"], caller(request))).group_specs

    @route(r, "GET", "/group_types/{group_type_id}/group_specs")
    async def list_group_specs(request: Request) -> Response:
        return JSON({"group_specs": await specs_of(request, "group:group_types_specs:get_all")})

    @route(r, "POST", "/group_types/{group_type_id}/group_specs")
    async def create_group_specs(request: Request) -> Response:
        await specs_of(request, "group:group_types_specs:create")
        specs = (await json_body(request))["group_specs"]
        await svc.set_group_specs(request.path_params["group_type_id"], specs)
        return JSON({"group_specs": specs}, status_code=202)

    @route(r, "GET", "/group_types/{group_type_id}/group_specs/{key}")
    async def show_group_spec(request: Request) -> Response:
        specs, key = await specs_of(request, "group:group_types_specs:get"), request.path_params["key"]
        if key not in specs:
            raise NotFound(f"Group Type {request.path_params['group_type_id']} has no extra spec with key {key}.")
        return JSON({key: specs[key]})

    @route(r, "PUT", "/group_types/{group_type_id}/group_specs/{key}")
    async def update_group_spec(request: Request) -> Response:
        await specs_of(request, "group:group_types_specs:update")
        key, body = request.path_params["key"], await json_body(request)
        if key not in body:
            raise BadRequest("Request body and URI mismatch")
        await svc.set_group_specs(request.path_params["group_type_id"], body)
        return JSON(body)

    @route(r, "DELETE", "/group_types/{group_type_id}/group_specs/{key}")
    async def delete_group_spec(request: Request) -> Response:
        await specs_of(request, "group:group_types_specs:delete")
        await svc.delete_group_spec(request.path_params["group_type_id"], request.path_params["key"])
        return Response(status_code=202)

    # -- groups ------------------------------------------------------------------------------------
    async def group_listing(request: Request, detail: bool) -> Response:
        need(request, 13, "Groups")
        authorize(request, "group:get_all")
        params = request.query_params
        everyone = _everyone(request)
        filters = GroupFilters(all_projects=everyone, project_id=params.get("project_id") if everyone else None,
                               name=params.get("name"), status=params.get("status"))
        q = list_params(request, GROUP_SORT_KEYS)
        rows = await svc.groups(caller(request), filters, q, offset_param(request))
        items = [group_view(request, g) if detail else {"id": g.id, "name": g.name} for g in rows]
        body: dict[str, Any] = {"groups": items}
        more = next_link(str(request.url).split("?", 1)[0], params, q, rows, "groups")
        if more:
            body["group_links"] = more
        return JSON(body)

    @route(r, "GET", "/groups")
    async def list_groups(request: Request) -> Response:
        return await group_listing(request, False)

    @route(r, "GET", "/groups/detail")
    async def list_groups_detail(request: Request) -> Response:
        return await group_listing(request, True)

    @route(r, "POST", "/groups")
    async def create_group(request: Request) -> Response:
        need(request, 13, "Groups")
        authorize(request, "group:create")
        body = (await json_body(request))["group"]
        g = await svc.create_group(caller(request), body["group_type"], body["volume_types"],
                                   name=_text(body.get("name")), description=_text(body.get("description")),
                                   availability_zone=body.get("availability_zone"))
        return JSON({"group": {"id": g.id, "name": g.name}}, status_code=202)

    @route(r, "POST", "/groups/action")
    async def create_group_from_src(request: Request) -> Response:
        need(request, 14, "Creating a group from a source")
        authorize(request, "group:create")
        body = (await json_body(request))["create-from-src"]
        if bool(body.get("group_snapshot_id")) == bool(body.get("source_group_id")):
            raise BadRequest("Invalid input for field/attribute create-from-src: give either group_snapshot_id or "
                             "source_group_id.")
        g = await svc.create_group_from_src(
            caller(request), name=_text(body.get("name")), description=_text(body.get("description")),
            group_snapshot_id=body.get("group_snapshot_id"), source_group_id=body.get("source_group_id"))
        return JSON({"group": {"id": g.id, "name": g.name}}, status_code=202)

    async def owned_group(request: Request, rule: str) -> GroupInfo:
        need(request, 13, "Groups")
        g = await svc.group(request.path_params["group_id"], caller(request))
        authorize(request, rule, {"project_id": g.project_id})
        return g

    @route(r, "GET", "/groups/{group_id}")
    async def show_group(request: Request) -> Response:
        return JSON({"group": group_view(request, await owned_group(request, "group:get"))})

    @route(r, "PUT", "/groups/{group_id}")
    async def update_group(request: Request) -> Response:
        g = await owned_group(request, "group:update")
        body = (await json_body(request))["group"]
        await svc.update_group(caller(request), g.id, name=_text(body.get("name")),
                               description=_text(body.get("description")), add_volumes=body.get("add_volumes"),
                               remove_volumes=body.get("remove_volumes"))
        return Response(status_code=202)

    @route(r, "POST", "/groups/{group_id}/action")
    async def group_action(request: Request) -> Response:
        body = await json_body(request)
        action = next(iter(body))
        if action == "delete":
            g = await owned_group(request, "group:delete")
            delete_volumes = parse_bool("delete-volumes", str((body[action] or {}).get("delete-volumes", False)))
            await svc.delete_group(caller(request), g.id, delete_volumes)
        elif action == "reset_status":
            need(request, 20, "Resetting a group's status")
            g = await owned_group(request, "group:reset_status")
            await svc.reset_group_status(g.id, body[action]["status"])
        else:  # the replication actions (the schema allows no other)
            need(request, 38, "Group replication")
            g = await owned_group(request, REPLICATION_ACTIONS[action])
            await svc.refuse_group_replication(caller(request), g.id, action)
        return Response(status_code=202)

    # -- group snapshots ---------------------------------------------------------------------------
    async def snapshot_listing(request: Request, detail: bool) -> Response:
        need(request, 14, "Group snapshots")
        authorize(request, "group:get_all_group_snapshots")
        params = request.query_params
        everyone = _everyone(request)
        filters = GroupFilters(all_projects=everyone, project_id=params.get("project_id") if everyone else None,
                               name=params.get("name"), status=params.get("status"),
                               group_id=params.get("group_id"))
        q = list_params(request, GROUP_SNAPSHOT_SORT_KEYS)
        rows = await svc.group_snapshots(caller(request), filters, q, offset_param(request))
        items = [group_snapshot_view(request, gs) if detail else {"id": gs.id, "name": gs.name} for gs in rows]
        body: dict[str, Any] = {"group_snapshots": items}
        more = next_link(str(request.url).split("?", 1)[0], params, q, rows, "group_snapshots")
        if more:
            body["group_snapshot_links"] = more
        return JSON(body)

    @route(r, "GET", "/group_snapshots")
    async def list_group_snapshots(request: Request) -> Response:
        return await snapshot_listing(request, False)

    @route(r, "GET", "/group_snapshots/detail")
    async def list_group_snapshots_detail(request: Request) -> Response:
        return await snapshot_listing(request, True)

    @route(r, "POST", "/group_snapshots")
    async def create_group_snapshot(request: Request) -> Response:
        need(request, 14, "Group snapshots")
        body = (await json_body(request))["group_snapshot"]
        g = await svc.group(body["group_id"], caller(request))
        authorize(request, "group:create_group_snapshot", {"project_id": g.project_id})
        gs = await svc.create_group_snapshot(caller(request), g.id, name=_text(body.get("name")),
                                             description=_text(body.get("description")))
        return JSON({"group_snapshot": {"id": gs.id, "name": gs.name, "group_type_id": gs.group_type_id}},
                    status_code=202)

    async def owned_snapshot(request: Request, rule: str) -> GroupSnapshotInfo:
        need(request, 14, "Group snapshots")
        gs = await svc.group_snapshot(request.path_params["group_snapshot_id"], caller(request))
        authorize(request, rule, {"project_id": gs.project_id})
        return gs

    @route(r, "GET", "/group_snapshots/{group_snapshot_id}")
    async def show_group_snapshot(request: Request) -> Response:
        gs = await owned_snapshot(request, "group:get_group_snapshot")
        return JSON({"group_snapshot": group_snapshot_view(request, gs)})

    @route(r, "DELETE", "/group_snapshots/{group_snapshot_id}")
    async def delete_group_snapshot(request: Request) -> Response:
        gs = await owned_snapshot(request, "group:delete_group_snapshot")
        await svc.delete_group_snapshot(caller(request), gs.id)
        return Response(status_code=202)

    @route(r, "POST", "/group_snapshots/{group_snapshot_id}/action")
    async def group_snapshot_action(request: Request) -> Response:
        need(request, 19, "Resetting a group snapshot's status")
        gs = await owned_snapshot(request, "group:reset_group_snapshot_status")
        body = await json_body(request)
        await svc.reset_group_snapshot_status(gs.id, body["reset_status"]["status"])
        return Response(status_code=202)

    return r
