"""OS-EP-FILTER: endpoint groups, and which endpoints (or groups of them) a project is tied to.

Associations are recorded and listed as Keystone does; the token catalog is not narrowed by them
(Keystone's default SQL catalog does not narrow it either).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.http.app import JSON, Router, no_content
from cumulo.core.http.faults import NotFound, ValidationError
from cumulo.identity import models as m
from cumulo.identity.api import validate as v
from cumulo.identity.api.catalog import endpoint_view
from cumulo.identity.api.common import IdentityAPI, collection, project_view
from cumulo.identity.api.crud import Resource, optional_string, register, required_string

FILTER_KEYS = {"interface", "service_id", "region_id"}
PREFIX = "/v3/OS-EP-FILTER"


def check_filters(data: dict[str, Any]) -> Any:
    filters = v.obj(data, "filters")
    if not v.present(filters):
        return filters
    unknown = set(filters) - FILTER_KEYS
    if unknown:
        raise ValidationError(f"Invalid endpoint group filters {sorted(unknown)}: use "
                              f"{', '.join(sorted(FILTER_KEYS))}.")
    return filters


def matches(endpoint: m.Endpoint, filters: dict[str, Any]) -> bool:
    return all(getattr(endpoint, key) == value for key, value in (filters or {}).items())


def router(api: IdentityAPI) -> Router:
    r = Router()
    svc = api.svc
    rule = "identity:endpoint_groups"
    register(r, api, Resource(
        model=m.EndpointGroup, member="endpoint_group", collection="endpoint_groups",
        path=f"{PREFIX}/endpoint_groups", links_path="OS-EP-FILTER/endpoint_groups",
        fields={"name": required_string("name"), "description": optional_string("description"),
                "filters": check_filters},
        read_rule=rule, write_rule=rule, filters=("name",)))

    async def association(project_id: str, kind: str, ref_id: str) -> m.ProjectEndpoint | None:
        async with svc.db.session() as s:
            return await s.get(m.ProjectEndpoint, (project_id, kind, ref_id))

    async def associate(request: Request, kind: str, ref_model: Any, ref_key: str) -> Response:
        api.authorize(request, rule)
        project_id, ref_id = request.path_params["project_id"], request.path_params[ref_key]
        await svc.get(m.Project, project_id)
        await svc.get(ref_model, ref_id)
        existing = await association(project_id, kind, ref_id)
        if request.method == "PUT":
            if existing is None:
                await svc.insert(m.ProjectEndpoint(project_id=project_id, kind=kind, ref_id=ref_id),
                                 "The association exists already.")
            return no_content()
        if existing is None:
            raise NotFound(f"Project {project_id} is not associated with {kind} {ref_id}.")
        if request.method == "DELETE":
            await svc.delete_where(m.ProjectEndpoint, m.ProjectEndpoint.project_id == project_id,
                                   m.ProjectEndpoint.kind == kind, m.ProjectEndpoint.ref_id == ref_id)
        return no_content()

    @r.route(f"{PREFIX}/projects/{{project_id}}/endpoints/{{endpoint_id}}", ["PUT", "GET", "HEAD", "DELETE"])
    async def project_endpoint(request: Request) -> Response:
        return await associate(request, "endpoint", m.Endpoint, "endpoint_id")

    @r.route(f"{PREFIX}/endpoint_groups/{{group_id}}/projects/{{project_id}}", ["PUT", "GET", "HEAD", "DELETE"])
    async def group_project(request: Request) -> Response:
        if request.method == "GET":
            api.authorize(request, rule)
            project = await svc.get(m.Project, request.path_params["project_id"])
            if await association(project.id, "group", request.path_params["group_id"]) is None:
                raise NotFound("The project is not associated with this endpoint group.")
            return JSON({"project": project_view(request, project)})
        return await associate(request, "group", m.EndpointGroup, "group_id")

    async def project_endpoints(project_id: str) -> list[m.Endpoint]:
        async with svc.db.session() as s:
            links = (await s.execute(select(m.ProjectEndpoint).where(
                m.ProjectEndpoint.project_id == project_id))).scalars().all()
            endpoints = (await s.execute(select(m.Endpoint))).scalars().all()
            groups = {g.id: g for g in (await s.execute(select(m.EndpointGroup))).scalars()}
        direct = {link.ref_id for link in links if link.kind == "endpoint"}
        group_filters = [groups[link.ref_id].filters for link in links
                         if link.kind == "group" and link.ref_id in groups]
        return [e for e in endpoints if e.id in direct or any(matches(e, f) for f in group_filters)]

    @r.get(f"{PREFIX}/projects/{{project_id}}/endpoints")
    async def list_project_endpoints(request: Request) -> Response:
        api.authorize(request, rule)
        project = await svc.get(m.Project, request.path_params["project_id"])
        return JSON(collection(request, "endpoints",
                               [endpoint_view(request, e) for e in await project_endpoints(project.id)]))

    @r.get(f"{PREFIX}/projects/{{project_id}}/endpoint_groups")
    async def list_project_groups(request: Request) -> Response:
        api.authorize(request, rule)
        project = await svc.get(m.Project, request.path_params["project_id"])
        links = await svc.list(m.ProjectEndpoint, m.ProjectEndpoint.project_id == project.id,
                               m.ProjectEndpoint.kind == "group")
        groups = await svc.list(m.EndpointGroup, m.EndpointGroup.id.in_([x.ref_id for x in links]))
        return JSON(collection(request, "endpoint_groups", [
            {"id": g.id, "name": g.name, "description": g.description, "filters": g.filters}
            for g in groups]))

    async def projects_of(kind: str, ref_id: str) -> list[m.Project]:
        links = await svc.list(m.ProjectEndpoint, m.ProjectEndpoint.kind == kind,
                               m.ProjectEndpoint.ref_id == ref_id)
        return list(await svc.list(m.Project, m.Project.id.in_([x.project_id for x in links])))

    @r.get(f"{PREFIX}/endpoints/{{endpoint_id}}/projects")
    async def list_endpoint_projects(request: Request) -> Response:
        api.authorize(request, rule)
        endpoint = await svc.get(m.Endpoint, request.path_params["endpoint_id"])
        return JSON(collection(request, "projects",
                               [project_view(request, p) for p in await projects_of("endpoint", endpoint.id)]))

    @r.get(f"{PREFIX}/endpoint_groups/{{group_id}}/projects")
    async def list_group_projects(request: Request) -> Response:
        api.authorize(request, rule)
        group = await svc.get(m.EndpointGroup, request.path_params["group_id"])
        return JSON(collection(request, "projects",
                               [project_view(request, p) for p in await projects_of("group", group.id)]))

    @r.get(f"{PREFIX}/endpoint_groups/{{group_id}}/endpoints")
    async def list_group_endpoints(request: Request) -> Response:
        api.authorize(request, rule)
        group = await svc.get(m.EndpointGroup, request.path_params["group_id"])
        endpoints = [e for e in await svc.list(m.Endpoint) if matches(e, group.filters)]
        return JSON(collection(request, "endpoints", [endpoint_view(request, e) for e in endpoints]))

    return r
