"""Unified limits: /v3/registered_limits (a service's defaults) and /v3/limits (per project or
domain overrides), in Keystone's flat enforcement model (/v3/limits/model).

Services read and set them through ``IdentityService`` (``cumulo.identity.service.limits.LimitsMixin``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.db import IntegrityError, is_duplicate, new_id
from cumulo.core.http.app import JSON, Router, auth_of, json_body, no_content
from cumulo.core.http.faults import BadRequest, Conflict, Forbidden, ValidationError
from cumulo.identity import models as m
from cumulo.identity.api import validate as v
from cumulo.identity.api.common import IdentityAPI, collection, self_link

MAX_LIMIT = 2**31 - 1


def integer(data: dict[str, Any], name: str, required: bool) -> Any:
    value = data.get(name, v.MISSING)
    if value is v.MISSING:
        if required:
            raise ValidationError(f"'{name}' is a required property.")
        return value
    if not isinstance(value, int) or isinstance(value, bool) or not -1 <= value <= MAX_LIMIT:
        raise ValidationError(f"Invalid input for field '{name}': expected an integer from -1 to {MAX_LIMIT}.")
    return value


def registered_view(request: Request, x: m.RegisteredLimit) -> dict[str, Any]:
    return {"id": x.id, "service_id": x.service_id, "region_id": x.region_id or None,
            "resource_name": x.resource_name, "default_limit": x.default_limit, "description": x.description,
            "links": self_link(request, f"registered_limits/{x.id}")}


def limit_view(request: Request, x: m.Limit) -> dict[str, Any]:
    return {"id": x.id, "project_id": x.project_id or None, "domain_id": x.domain_id or None,
            "service_id": x.service_id, "region_id": x.region_id or None, "resource_name": x.resource_name,
            "resource_limit": x.resource_limit, "description": x.description,
            "links": self_link(request, f"limits/{x.id}")}


def router(api: IdentityAPI) -> Router:
    r = Router()
    svc = api.svc

    async def check_refs(service_id: str, region_id: str) -> None:
        if await svc.find(m.Service, service_id) is None:
            raise BadRequest(f"Could not find service: {service_id}.")
        if region_id and await svc.find(m.Region, region_id) is None:
            raise BadRequest(f"Could not find region: {region_id}.")

    async def many(request: Request, key: str) -> list[dict[str, Any]]:
        body = await json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get(key), list) or not body[key]:
            raise ValidationError(f"Expecting a non-empty list '{key}' in the request body.")
        if not all(isinstance(x, dict) for x in body[key]):
            raise ValidationError(f"Each item of '{key}' must be an object.")
        return body[key]

    # -- registered limits ------------------------------------------------------------------
    @r.post("/v3/registered_limits")
    async def create_registered(request: Request) -> Response:
        api.authorize(request, "identity:limits_write")
        rows = []
        for data in await many(request, "registered_limits"):
            region = v.string(data, "region_id", nullable=True, max_len=255)
            row = m.RegisteredLimit(
                id=new_id(), service_id=v.string(data, "service_id", required=True, max_len=64),
                region_id=region if isinstance(region, str) else "",
                resource_name=v.string(data, "resource_name", required=True, min_len=1),
                default_limit=integer(data, "default_limit", True),
                description=(v.string(data, "description", nullable=True, max_len=65535) or None)
                if "description" in data else None)
            await check_refs(row.service_id, row.region_id)
            rows.append(row)
        try:
            async with svc.db.session() as s:
                s.add_all(rows)
        except IntegrityError as exc:
            if is_duplicate(exc):
                raise Conflict("Duplicate entry: a registered limit for this service, region and resource "
                               "exists already.") from None
            raise
        return JSON({"registered_limits": [registered_view(request, x) for x in rows]}, status_code=201)

    @r.get("/v3/registered_limits")
    async def list_registered(request: Request) -> Response:
        api.authorize(request, "identity:limits_read")
        q = request.query_params
        where = [getattr(m.RegisteredLimit, k) == q[k] for k in ("service_id", "region_id", "resource_name")
                 if k in q]
        rows = await svc.list(m.RegisteredLimit, *where)
        return JSON(collection(request, "registered_limits", [registered_view(request, x) for x in rows]))

    @r.get("/v3/registered_limits/{limit_id}")
    async def show_registered(request: Request) -> Response:
        api.authorize(request, "identity:limits_read")
        row = await svc.get(m.RegisteredLimit, request.path_params["limit_id"])
        return JSON({"registered_limit": registered_view(request, row)})

    @r.patch("/v3/registered_limits/{limit_id}")
    async def update_registered(request: Request) -> Response:
        api.authorize(request, "identity:limits_write")
        row = await svc.get(m.RegisteredLimit, request.path_params["limit_id"])
        data = v.entity(await json_body(request), "registered_limit")
        values = v.pick(data, service_id=v.string(data, "service_id", max_len=64),
                        region_id=v.string(data, "region_id", nullable=True, max_len=255),
                        resource_name=v.string(data, "resource_name", min_len=1),
                        default_limit=integer(data, "default_limit", False),
                        description=v.string(data, "description", nullable=True, max_len=65535))
        if "region_id" in values:
            values["region_id"] = values["region_id"] or ""
        if {"service_id", "region_id", "resource_name"} & set(values) and await svc.list(
                m.Limit, m.Limit.service_id == row.service_id, m.Limit.region_id == row.region_id,
                m.Limit.resource_name == row.resource_name):
            raise Forbidden("The registered limit is referenced by project limits: only its default and "
                            "description can change.")
        await check_refs(values.get("service_id", row.service_id), values.get("region_id", row.region_id))
        row = await svc.save(m.RegisteredLimit, row.id, values, "Duplicate entry: such a registered limit exists.")
        return JSON({"registered_limit": registered_view(request, row)})

    @r.delete("/v3/registered_limits/{limit_id}")
    async def delete_registered(request: Request) -> Response:
        api.authorize(request, "identity:limits_write")
        row = await svc.get(m.RegisteredLimit, request.path_params["limit_id"])
        if await svc.list(m.Limit, m.Limit.service_id == row.service_id, m.Limit.region_id == row.region_id,
                          m.Limit.resource_name == row.resource_name):
            raise Forbidden("The registered limit is referenced by project limits: delete them first.")
        await svc.remove(m.RegisteredLimit, row.id)
        return no_content()

    # -- project and domain limits ----------------------------------------------------------
    @r.post("/v3/limits")
    async def create_limits(request: Request) -> Response:
        api.authorize(request, "identity:limits_write")
        rows = []
        for data in await many(request, "limits"):
            project_id = v.string(data, "project_id", nullable=True, max_len=64)
            domain_id = v.string(data, "domain_id", nullable=True, max_len=64)
            project_id = project_id if isinstance(project_id, str) else ""
            domain_id = domain_id if isinstance(domain_id, str) else ""
            if bool(project_id) == bool(domain_id):
                raise ValidationError("A limit needs exactly one of project_id and domain_id.")
            if project_id:
                await svc.get(m.Project, project_id)
            else:
                await svc.get(m.Domain, domain_id)
            region = v.string(data, "region_id", nullable=True, max_len=255)
            row = m.Limit(id=new_id(), project_id=project_id, domain_id=domain_id,
                          service_id=v.string(data, "service_id", required=True, max_len=64),
                          region_id=region if isinstance(region, str) else "",
                          resource_name=v.string(data, "resource_name", required=True, min_len=1),
                          resource_limit=integer(data, "resource_limit", True),
                          description=data.get("description") if isinstance(data.get("description"), str) else None)
            await check_refs(row.service_id, row.region_id)
            async with svc.db.session() as s:
                registered = (await s.execute(select(m.RegisteredLimit.id).where(
                    m.RegisteredLimit.service_id == row.service_id, m.RegisteredLimit.region_id == row.region_id,
                    m.RegisteredLimit.resource_name == row.resource_name))).first()
            if registered is None:
                raise Forbidden(f"No registered limit for {row.resource_name} of service {row.service_id}: "
                                "register one first.")
            rows.append(row)
        try:
            async with svc.db.session() as s:
                s.add_all(rows)
        except IntegrityError as exc:
            if is_duplicate(exc):
                raise Conflict("Duplicate entry: such a limit exists already.") from None
            raise
        return JSON({"limits": [limit_view(request, x) for x in rows]}, status_code=201)

    @r.get("/v3/limits")
    async def list_limits(request: Request) -> Response:
        auth = auth_of(request)
        q = request.query_params
        where: list[Any] = [getattr(m.Limit, k) == q[k] for k in
                            ("service_id", "region_id", "resource_name", "project_id", "domain_id") if k in q]
        if not api.allowed(request, "identity:limits_write"):
            where.append(m.Limit.project_id == (auth.project_id or "") if auth.project_id
                         else m.Limit.domain_id == (auth.domain_id or "-"))
        rows = await svc.list(m.Limit, *where)
        return JSON(collection(request, "limits", [limit_view(request, x) for x in rows]))

    @r.get("/v3/limits/model")
    async def model(request: Request) -> Response:
        api.authorize(request, "identity:limits_read")
        return JSON({"model": {"name": "flat", "description": "Limit enforcement and validation does not "
                               "take project hierarchy into consideration."}})

    @r.get("/v3/limits/{limit_id}")
    async def show_limit(request: Request) -> Response:
        row = await svc.get(m.Limit, request.path_params["limit_id"])
        auth = auth_of(request)
        if row.project_id != auth.project_id:
            api.authorize(request, "identity:limits_write")
        return JSON({"limit": limit_view(request, row)})

    @r.patch("/v3/limits/{limit_id}")
    async def update_limit(request: Request) -> Response:
        api.authorize(request, "identity:limits_write")
        row = await svc.get(m.Limit, request.path_params["limit_id"])
        data = v.entity(await json_body(request), "limit")
        values = v.pick(data, resource_limit=integer(data, "resource_limit", False),
                        description=v.string(data, "description", nullable=True, max_len=65535))
        row = await svc.save(m.Limit, row.id, values)
        return JSON({"limit": limit_view(request, row)})

    @r.delete("/v3/limits/{limit_id}")
    async def delete_limit(request: Request) -> Response:
        api.authorize(request, "identity:limits_write")
        await svc.remove(m.Limit, request.path_params["limit_id"])
        return no_content()

    return r
