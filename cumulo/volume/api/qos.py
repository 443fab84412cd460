"""/v3/qos-specs (Cinder's qos-specs extension: create, list, show, set and delete keys, delete with
``force``, the type associations) and a private volume type's projects
(``os-volume-type-access``: the list, ``addProjectAccess``, ``removeProjectAccess``).  All an
admin's, as Cinder's default policies say."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.http.app import JSON, Router, json_body
from cumulo.core.http.authz import authorize
from cumulo.core.http.faults import BadRequest
from cumulo.volume.api.common import bool_param, caller, links, list_params, route
from cumulo.volume.qos import QOS_SORT_KEYS, QosSpecsInfo
from cumulo.volume.service import VolumeService

QOS_FILTERS = ("id", "name", "consumer")  # what Cinder's list filters on; other parameters are ignored


def qos_view(q: QosSpecsInfo) -> dict[str, Any]:
    return {"id": q.id, "name": q.name, "consumer": q.consumer, "specs": q.specs}


def _type_id(request: Request) -> str:
    type_id = request.query_params.get("vol_type_id")
    if not type_id:
        raise BadRequest("Volume Type id must not be None.")
    return type_id


def router(svc: VolumeService) -> Router:
    r = Router()

    @route(r, "GET", "/qos-specs")
    async def list_qos(request: Request) -> Response:
        authorize(request, "volume_extension:qos_specs_manage:get_all")
        params = request.query_params
        filters = {key: params[key] for key in QOS_FILTERS if key in params}
        specs = await svc.qos_specs_list(list_params(request, QOS_SORT_KEYS), filters)
        return JSON({"qos_specs": [qos_view(q) for q in specs]})

    @route(r, "POST", "/qos-specs")
    async def create_qos(request: Request) -> Response:
        authorize(request, "volume_extension:qos_specs_manage:create")
        body = dict((await json_body(request))["qos_specs"])
        name = str(body.pop("name")).strip()
        if not name:
            raise BadRequest("Invalid input received: the name must not be empty.")
        q = await svc.create_qos_specs(name, body)
        return JSON({"qos_specs": qos_view(q),
                     "links": links(request, "qos-specs", q.id, caller(request).project_id)})

    @route(r, "GET", "/qos-specs/{qos_id}")
    async def show_qos(request: Request) -> Response:
        authorize(request, "volume_extension:qos_specs_manage:get")
        q = await svc.qos_specs(request.path_params["qos_id"])
        return JSON({"qos_specs": qos_view(q),
                     "links": links(request, "qos-specs", q.id, caller(request).project_id)})

    @route(r, "PUT", "/qos-specs/{qos_id}")
    async def set_qos(request: Request) -> Response:
        authorize(request, "volume_extension:qos_specs_manage:update")
        body = await json_body(request)
        await svc.set_qos_keys(request.path_params["qos_id"], body["qos_specs"])
        return JSON({"qos_specs": body["qos_specs"]})  # Cinder answers with what was set

    @route(r, "DELETE", "/qos-specs/{qos_id}")
    async def delete_qos(request: Request) -> Response:
        authorize(request, "volume_extension:qos_specs_manage:delete")
        await svc.delete_qos_specs(request.path_params["qos_id"], bool(bool_param(request, "force")))
        return Response(status_code=202)

    @route(r, "PUT", "/qos-specs/{qos_id}/delete_keys")
    async def delete_qos_keys(request: Request) -> Response:
        authorize(request, "volume_extension:qos_specs_manage:delete")
        await svc.delete_qos_keys(request.path_params["qos_id"], (await json_body(request))["keys"])
        return Response(status_code=202)

    @route(r, "GET", "/qos-specs/{qos_id}/associations")
    async def associations(request: Request) -> Response:
        authorize(request, "volume_extension:qos_specs_manage:get_all")
        return JSON({"qos_associations": await svc.qos_associations(request.path_params["qos_id"])})

    @route(r, "GET", "/qos-specs/{qos_id}/associate")
    async def associate(request: Request) -> Response:
        authorize(request, "volume_extension:qos_specs_manage:update")
        await svc.associate_qos(request.path_params["qos_id"], _type_id(request))
        return Response(status_code=202)

    @route(r, "GET", "/qos-specs/{qos_id}/disassociate")
    async def disassociate(request: Request) -> Response:
        authorize(request, "volume_extension:qos_specs_manage:update")
        await svc.disassociate_qos(request.path_params["qos_id"], _type_id(request))
        return Response(status_code=202)

    @route(r, "GET", "/qos-specs/{qos_id}/disassociate_all")
    async def disassociate_all(request: Request) -> Response:
        authorize(request, "volume_extension:qos_specs_manage:update")
        await svc.disassociate_all_qos(request.path_params["qos_id"])
        return Response(status_code=202)

    # -- a private type's projects ----------------------------------------------------------------
    @route(r, "GET", "/types/{type_id}/os-volume-type-access")
    async def type_access(request: Request) -> Response:
        authorize(request, "volume_extension:volume_type_access:get_all_for_type")
        type_id = request.path_params["type_id"]
        return JSON({"volume_type_access": [{"volume_type_id": type_id, "project_id": project}
                                            for project in await svc.type_access(type_id)]})

    @route(r, "POST", "/types/{type_id}/action")
    async def type_action(request: Request) -> Response:
        body = await json_body(request)
        type_id = request.path_params["type_id"]
        if "addProjectAccess" in body:
            authorize(request, "volume_extension:volume_type_access:addProjectAccess")
            await svc.add_type_access(type_id, body["addProjectAccess"]["project"])
        elif "removeProjectAccess" in body:
            authorize(request, "volume_extension:volume_type_access:removeProjectAccess")
            await svc.remove_type_access(type_id, body["removeProjectAccess"]["project"])
        else:  # the schema lets only these two through
            raise BadRequest("Invalid action: addProjectAccess or removeProjectAccess is expected.")
        return Response(status_code=202)

    return r
