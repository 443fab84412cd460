"""/v3/types: volume types (``__DEFAULT__`` always there) and their extra specs."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.http.app import JSON, Router, json_body
from cumulo.core.http.authz import allowed, authorize
from cumulo.core.http.faults import BadRequest, NotFound
from cumulo.core.http.paging import parse_bool
from cumulo.volume.api.common import caller, route
from cumulo.volume.service import VolumeService, VolumeTypeInfo


def type_view(t: VolumeTypeInfo, shape: str = "show", qos: bool = False) -> dict[str, Any]:
    """The type as a show or list gives it; a create's answer has no qos_specs_id, an update's
    neither that nor the access attribute (tempest's schemas refuse them).  ``qos``: the caller
    may see the type's qos_specs_id (``volume_extension:access_types_qos_specs_id``, an admin's as
    in Cinder: the QoS specs are an admin's)."""
    out = {"id": t.id, "name": t.name, "description": t.description, "is_public": t.is_public,
           "os-volume-type-access:is_public": t.is_public, "extra_specs": t.extra_specs, "qos_specs_id": t.qos_specs_id}
    if shape in ("create", "update") or not qos:
        del out["qos_specs_id"]
    if shape == "update":
        del out["os-volume-type-access:is_public"]
    return out


def router(svc: VolumeService) -> Router:
    r = Router()

    @route(r, "GET", "/types")
    async def list_types(request: Request) -> Response:
        authorize(request, "volume_extension:type_get_all")
        raw = request.query_params.get("is_public")
        is_public = None if raw is not None and raw.lower() == "none" else (
            parse_bool("is_public", raw) if raw is not None else True)
        qos = allowed(request, "volume_extension:access_types_qos_specs_id")
        return JSON({"volume_types": [type_view(t, qos=qos) for t in await svc.volume_types(caller(request),
                                                                                          is_public)]})

    @route(r, "POST", "/types")
    async def create_type(request: Request) -> Response:
        authorize(request, "volume_extension:type_create")
        body = (await json_body(request))["volume_type"]
        public = body.get("os-volume-type-access:is_public", body.get("is_public", True))
        t = await svc.create_volume_type(body["name"].strip(), body.get("description"),
                                         parse_bool("is_public", str(public)), body.get("extra_specs"))
        return JSON({"volume_type": type_view(t, "create")})

    @route(r, "GET", "/types/{type_id}")
    async def show_type(request: Request) -> Response:
        authorize(request, "volume_extension:type_get")
        t = await svc.volume_type(request.path_params["type_id"], caller(request))
        return JSON({"volume_type": type_view(t, qos=allowed(request, "volume_extension:access_types_qos_specs_id"))})

    @route(r, "PUT", "/types/{type_id}")
    async def update_type(request: Request) -> Response:
        authorize(request, "volume_extension:type_update")
        body = (await json_body(request))["volume_type"]
        values: dict[str, Any] = {k: body[k] for k in ("name", "description") if body.get(k) is not None}
        if "is_public" in body:
            values["is_public"] = parse_bool("is_public", str(body["is_public"]))
        t = await svc.update_volume_type(request.path_params["type_id"], values)
        return JSON({"volume_type": type_view(t, "update")})

    @route(r, "DELETE", "/types/{type_id}")
    async def delete_type(request: Request) -> Response:
        authorize(request, "volume_extension:type_delete")
        await svc.delete_volume_type(request.path_params["type_id"])
        return Response(status_code=202)

    @route(r, "GET", "/types/{type_id}/extra_specs")
    async def list_extra_specs(request: Request) -> Response:
        authorize(request, "volume_extension:types_extra_specs:index")
        t = await svc.volume_type(request.path_params["type_id"], caller(request))
        return JSON({"extra_specs": t.extra_specs})

    @route(r, "POST", "/types/{type_id}/extra_specs")
    async def create_extra_specs(request: Request) -> Response:
        authorize(request, "volume_extension:types_extra_specs:create")
        specs = (await json_body(request))["extra_specs"]
        await svc.set_extra_specs(request.path_params["type_id"], specs)
        return JSON({"extra_specs": specs})

    @route(r, "GET", "/types/{type_id}/extra_specs/{key}")
    async def show_extra_spec(request: Request) -> Response:
        authorize(request, "volume_extension:types_extra_specs:show")
        t = await svc.volume_type(request.path_params["type_id"], caller(request))
        key = request.path_params["key"]
        if key not in t.extra_specs:
            raise NotFound(f"Volume Type {t.id} has no extra specs with key {key}.")
        return JSON({key: t.extra_specs[key]})

    @route(r, "PUT", "/types/{type_id}/extra_specs/{key}")
    async def update_extra_spec(request: Request) -> Response:
        authorize(request, "volume_extension:types_extra_specs:update")
        key, body = request.path_params["key"], await json_body(request)
        if key not in body:
            raise BadRequest("Request body and URI mismatch: the key in the body must be the key in the path.")
        await svc.set_extra_specs(request.path_params["type_id"], {key: body[key]})
        return JSON({key: body[key]})

    @route(r, "DELETE", "/types/{type_id}/extra_specs/{key}")
    async def delete_extra_spec(request: Request) -> Response:
        authorize(request, "volume_extension:types_extra_specs:delete")
        await svc.delete_extra_spec(request.path_params["type_id"], request.path_params["key"])
        return Response(status_code=202)

    return r
