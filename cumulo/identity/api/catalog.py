"""/v3/regions, /v3/services and /v3/endpoints: the service catalog's records."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.db import new_id
from cumulo.core.http.app import JSON, Router, json_body, no_content
from cumulo.core.http.faults import BadRequest, Forbidden, ValidationError
from cumulo.core.http.paging import parse_bool
from cumulo.identity import models as m
from cumulo.identity.api import validate as v
from cumulo.identity.api.common import IdentityAPI, collection, self_link

INTERFACES = ("public", "internal", "admin")


def region_view(request: Request, r: m.Region) -> dict[str, Any]:
    return {**(r.extra or {}), "id": r.id, "description": r.description or "",
            "parent_region_id": r.parent_region_id, "links": self_link(request, f"regions/{r.id}")}


def service_view(request: Request, s: m.Service) -> dict[str, Any]:
    return {**(s.extra or {}), "id": s.id, "type": s.type, "enabled": s.enabled,
            "links": self_link(request, f"services/{s.id}")}


def endpoint_view(request: Request, e: m.Endpoint) -> dict[str, Any]:
    return {**(e.extra or {}), "id": e.id, "interface": e.interface, "url": e.url,
            "region": e.region_id, "region_id": e.region_id, "service_id": e.service_id,
            "enabled": e.enabled, "links": self_link(request, f"endpoints/{e.id}")}


def router(api: IdentityAPI) -> Router:
    r = Router()
    svc = api.svc

    # -- regions ----------------------------------------------------------------------------
    async def check_parent(region_id: str, parent_id: Any) -> None:
        if parent_id is None or not v.present(parent_id):
            return
        if parent_id == region_id:
            raise BadRequest("A region cannot be its own parent.")
        parent = await svc.find(m.Region, parent_id)
        if parent is None:
            raise BadRequest(f"The parent region {parent_id} does not exist.")
        seen = {region_id}
        while parent is not None and parent.parent_region_id:
            if parent.parent_region_id in seen:
                raise BadRequest("The parent region would create a cycle.")
            seen.add(parent.parent_region_id)
            parent = await svc.find(m.Region, parent.parent_region_id)

    async def create_region(request: Request, region_id: str | None) -> Response:
        api.authorize(request, "identity:catalog_write")
        data = v.entity(await json_body(request), "region")
        given = v.string(data, "id", max_len=255)
        if region_id and v.present(given) and given != region_id:
            raise BadRequest("The region id in the URL and in the body differ.")
        rid = region_id or (given if v.present(given) else new_id())
        parent = v.string(data, "parent_region_id", nullable=True, max_len=255)
        await check_parent(rid, parent)
        row = m.Region(id=rid, description=v.string(data, "description", max_len=255)
                       if "description" in data else "", parent_region_id=parent if v.present(parent) else None,
                       extra=v.extras(data, {"id", "description", "parent_region_id", "links"}))
        row.description = row.description or ""
        await svc.insert(row, f"Duplicate ID, {rid}.")
        return JSON({"region": region_view(request, row)}, status_code=201)

    @r.post("/v3/regions")
    async def post_region(request: Request) -> Response:
        return await create_region(request, None)

    @r.get("/v3/regions")
    async def list_regions(request: Request) -> Response:
        api.authorize(request, "identity:list_regions")
        where = []
        if "parent_region_id" in request.query_params:
            where.append(m.Region.parent_region_id == request.query_params["parent_region_id"])
        rows = await svc.list(m.Region, *where, order=m.Region.id)
        return JSON(collection(request, "regions", [region_view(request, x) for x in rows]))

    @r.get("/v3/regions/{region_id}")
    async def get_region(request: Request) -> Response:
        api.authorize(request, "identity:get_region")
        return JSON({"region": region_view(request, await svc.get(m.Region, request.path_params["region_id"]))})

    @r.put("/v3/regions/{region_id}")
    async def put_region(request: Request) -> Response:
        return await create_region(request, request.path_params["region_id"])

    @r.patch("/v3/regions/{region_id}")
    async def update_region(request: Request) -> Response:
        api.authorize(request, "identity:catalog_write")
        region_id = request.path_params["region_id"]
        current = await svc.get(m.Region, region_id)
        data = v.entity(await json_body(request), "region")
        if "id" in data and data["id"] != region_id:
            raise BadRequest("The id of a region cannot be changed.")
        parent = v.string(data, "parent_region_id", nullable=True, max_len=255)
        await check_parent(region_id, parent)
        values = v.pick(data, description=v.string(data, "description", max_len=255), parent_region_id=parent)
        extra = v.extras(data, {"id", "description", "parent_region_id", "links"})
        if extra:
            values["extra"] = {**(current.extra or {}), **extra}
        row = await svc.save(m.Region, region_id, values)
        return JSON({"region": region_view(request, row)})

    @r.delete("/v3/regions/{region_id}")
    async def delete_region(request: Request) -> Response:
        api.authorize(request, "identity:catalog_write")
        region_id = request.path_params["region_id"]
        await svc.get(m.Region, region_id)
        if await svc.list(m.Region, m.Region.parent_region_id == region_id):
            raise Forbidden(f"Region {region_id} has child regions: delete them first.")
        if await svc.list(m.Endpoint, m.Endpoint.region_id == region_id):
            raise Forbidden(f"Region {region_id} has endpoints: delete them first.")
        await svc.remove(m.Region, region_id)
        await svc.changed("region")
        return no_content()

    # -- services ---------------------------------------------------------------------------
    @r.post("/v3/services")
    async def create_service(request: Request) -> Response:
        api.authorize(request, "identity:catalog_write")
        data = v.entity(await json_body(request), "service")
        stype = v.string(data, "type", required=True, max_len=255, min_len=1)
        enabled = v.boolean(data, "enabled")
        v.string(data, "name", nullable=True, max_len=255)
        row = m.Service(id=new_id(), type=stype, enabled=enabled if v.present(enabled) else True,
                        extra=v.extras(data, {"id", "type", "enabled", "links"}))
        await svc.insert(row, "Conflict creating service.")
        await svc.changed("service")
        return JSON({"service": service_view(request, row)}, status_code=201)

    @r.get("/v3/services")
    async def list_services(request: Request) -> Response:
        api.authorize(request, "identity:catalog_read")
        q = request.query_params
        rows = list(await svc.list(m.Service, *([m.Service.type == q["type"]] if "type" in q else [])))
        if "name" in q:
            rows = [x for x in rows if (x.extra or {}).get("name") == q["name"]]
        return JSON(collection(request, "services", [service_view(request, x) for x in rows]))

    @r.get("/v3/services/{service_id}")
    async def get_service(request: Request) -> Response:
        api.authorize(request, "identity:catalog_read")
        row = await svc.get(m.Service, request.path_params["service_id"])
        return JSON({"service": service_view(request, row)})

    @r.patch("/v3/services/{service_id}")
    async def update_service(request: Request) -> Response:
        api.authorize(request, "identity:catalog_write")
        current = await svc.get(m.Service, request.path_params["service_id"])
        data = v.entity(await json_body(request), "service")
        values = v.pick(data, type=v.string(data, "type", max_len=255, min_len=1),
                        enabled=v.boolean(data, "enabled"))
        extra = v.extras(data, {"id", "type", "enabled", "links"})
        if extra:
            values["extra"] = {**(current.extra or {}), **extra}
        row = await svc.save(m.Service, current.id, values)
        await svc.changed("service")
        return JSON({"service": service_view(request, row)})

    @r.delete("/v3/services/{service_id}")
    async def delete_service(request: Request) -> Response:
        api.authorize(request, "identity:catalog_write")
        service_id = request.path_params["service_id"]
        await svc.get(m.Service, service_id)
        # its endpoints go with it; its registered and project limits stay, as Keystone keeps them
        await svc.delete_where(m.Endpoint, m.Endpoint.service_id == service_id)
        await svc.remove(m.Service, service_id)
        await svc.changed("service")
        return no_content()

    # -- endpoints --------------------------------------------------------------------------
    async def endpoint_values(data: dict[str, Any], partial: bool) -> dict[str, Any]:
        values = v.pick(data, interface=v.string(data, "interface", required=not partial),
                        url=v.string(data, "url", required=not partial, max_len=1024, min_len=1),
                        service_id=v.string(data, "service_id", required=not partial, max_len=64),
                        enabled=v.boolean(data, "enabled"))
        if "interface" in values and values["interface"] not in INTERFACES:
            raise ValidationError(f"Invalid interface {values['interface']!r}: one of "
                                  f"{', '.join(INTERFACES)}.")
        region = data.get("region_id", data.get("region"))
        if region is not None:
            if not isinstance(region, str):
                raise ValidationError("region_id must be a string.")
            if await svc.find(m.Region, region) is None:  # Keystone creates it on the fly
                await svc.insert(m.Region(id=region, description="", extra={}), f"Duplicate ID, {region}.")
            values["region_id"] = region
        elif "region_id" in data or "region" in data:
            values["region_id"] = None
        if "service_id" in values and await svc.find(m.Service, values["service_id"]) is None:
            raise BadRequest(f"Could not find service: {values['service_id']}.")
        return values

    @r.post("/v3/endpoints")
    async def create_endpoint(request: Request) -> Response:
        api.authorize(request, "identity:catalog_write")
        data = v.entity(await json_body(request), "endpoint")
        values = await endpoint_values(data, partial=False)
        values["extra"] = v.extras(data, {"id", "interface", "url", "service_id", "enabled", "region",
                                          "region_id", "links"})
        row = m.Endpoint(id=new_id(), **values)
        await svc.insert(row, "Conflict creating endpoint.")
        await svc.changed("endpoint")
        return JSON({"endpoint": endpoint_view(request, row)}, status_code=201)

    @r.get("/v3/endpoints")
    async def list_endpoints(request: Request) -> Response:
        api.authorize(request, "identity:catalog_read")
        q = request.query_params
        stmt = select(m.Endpoint)
        if "interface" in q:
            stmt = stmt.where(m.Endpoint.interface == q["interface"])
        if "service_id" in q:
            stmt = stmt.where(m.Endpoint.service_id == q["service_id"])
        if "region_id" in q:
            stmt = stmt.where(m.Endpoint.region_id == q["region_id"])
        if "enabled" in q:
            stmt = stmt.where(m.Endpoint.enabled.is_(parse_bool("enabled", q["enabled"])))
        async with svc.db.session() as s:
            rows = (await s.execute(stmt)).scalars().all()
        return JSON(collection(request, "endpoints", [endpoint_view(request, x) for x in rows]))

    @r.get("/v3/endpoints/{endpoint_id}")
    async def get_endpoint(request: Request) -> Response:
        api.authorize(request, "identity:catalog_read")
        row = await svc.get(m.Endpoint, request.path_params["endpoint_id"])
        return JSON({"endpoint": endpoint_view(request, row)})

    @r.patch("/v3/endpoints/{endpoint_id}")
    async def update_endpoint(request: Request) -> Response:
        api.authorize(request, "identity:catalog_write")
        current = await svc.get(m.Endpoint, request.path_params["endpoint_id"])
        data = v.entity(await json_body(request), "endpoint")
        values = await endpoint_values(data, partial=True)
        extra = v.extras(data, {"id", "interface", "url", "service_id", "enabled", "region", "region_id",
                                "links"})
        if extra:
            values["extra"] = {**(current.extra or {}), **extra}
        row = await svc.save(m.Endpoint, current.id, values)
        await svc.changed("endpoint")
        return JSON({"endpoint": endpoint_view(request, row)})

    @r.delete("/v3/endpoints/{endpoint_id}")
    async def delete_endpoint(request: Request) -> Response:
        api.authorize(request, "identity:catalog_write")
        await svc.remove(m.Endpoint, request.path_params["endpoint_id"])
        await svc.delete_where(m.ProjectEndpoint, m.ProjectEndpoint.kind == "endpoint",
                               m.ProjectEndpoint.ref_id == request.path_params["endpoint_id"])
        await svc.changed("endpoint")
        return no_content()

    return r

