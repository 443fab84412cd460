"""/v3/types/{type_id}/encryption: a volume type's encryption spec (an admin's; see
``cumulo/volume/encryption.py`` for what it means here).  The fields each answer has follow
tempest's response schemas: a show has the whole spec (``{}`` for none), a create the spec
without its dates, an update the fields it changed."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.http.app import JSON, Router, json_body
from cumulo.core.http.authz import authorize
from cumulo.core.http.faults import NotFound
from cumulo.volume.api.common import route
from cumulo.volume.encryption import FIELDS
from cumulo.volume.service import VolumeService


def spec_view(type_id: str, spec: dict[str, Any], dates: bool = True) -> dict[str, Any]:
    out = {"volume_type_id": type_id, "encryption_id": spec["encryption_id"], **{k: spec.get(k) for k in FIELDS}}
    if dates:
        out.update({"deleted": False, "created_at": spec["created_at"], "updated_at": spec.get("updated_at"),
                    "deleted_at": None})
    return out


def router(svc: VolumeService) -> Router:
    r = Router()

    @route(r, "GET", "/types/{type_id}/encryption")
    async def show_encryption(request: Request) -> Response:
        authorize(request, "volume_extension:volume_type_encryption:get")
        type_id = request.path_params["type_id"]
        spec = await svc.encryption(type_id)
        return JSON(spec_view(type_id, spec) if spec else {})

    @route(r, "GET", "/types/{type_id}/encryption/{key}")
    async def show_encryption_key(request: Request) -> Response:
        authorize(request, "volume_extension:volume_type_encryption:get")
        type_id, key = request.path_params["type_id"], request.path_params["key"]
        spec = await svc.encryption(type_id)
        if not spec or key not in FIELDS:
            raise NotFound(f"Volume type encryption for type {type_id} has no {key!r}.")
        return JSON({key: spec.get(key)})

    @route(r, "POST", "/types/{type_id}/encryption")
    async def create_encryption(request: Request) -> Response:
        authorize(request, "volume_extension:volume_type_encryption:create")
        type_id = request.path_params["type_id"]
        body = (await json_body(request))["encryption"]
        spec = await svc.set_encryption(type_id, body, create=True)
        return JSON({"encryption": spec_view(type_id, spec, dates=False)})

    @route(r, "PUT", "/types/{type_id}/encryption/{encryption_id}")
    async def update_encryption(request: Request) -> Response:
        authorize(request, "volume_extension:volume_type_encryption:update")
        p = request.path_params
        body = (await json_body(request))["encryption"]
        spec = await svc.set_encryption(p["type_id"], body, create=False, encryption_id=p["encryption_id"])
        return JSON({"encryption": {k: spec.get(k) for k in FIELDS if k in body}})

    @route(r, "DELETE", "/types/{type_id}/encryption/{encryption_id}")
    async def delete_encryption(request: Request) -> Response:
        authorize(request, "volume_extension:volume_type_encryption:delete")
        await svc.delete_encryption(request.path_params["type_id"], request.path_params["encryption_id"])
        return Response(status_code=202)

    return r
