"""/v3/domains and /v3/projects (with tags and the project hierarchy)."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.http.app import JSON, Router, auth_of, json_body, no_content
from cumulo.core.http.faults import NotFound, ValidationError
from cumulo.core.http.paging import parse_bool
from cumulo.identity import models as m
from cumulo.identity.api import validate as v
from cumulo.identity.api.common import IdentityAPI, collection, domain_view, project_view

DOMAIN_FIELDS = {"id", "name", "description", "enabled", "options", "tags", "links"}
PROJECT_FIELDS = {"id", "name", "description", "enabled", "domain_id", "parent_id", "is_domain", "tags",
                  "options", "links"}
MAX_TAGS = 80
BAD_TAG = re.compile(r"[,/]")


def check_tags(tags: Any) -> list[str]:
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ValidationError("Invalid input for field 'tags': expected a list of strings.")
    if len(tags) > MAX_TAGS:
        raise ValidationError(f"A project may have at most {MAX_TAGS} tags.")
    for tag in tags:
        if not tag or len(tag) > 255 or BAD_TAG.search(tag):
            raise ValidationError(f"Invalid tag {tag!r}: 1 to 255 characters, without ',' or '/'.")
    return list(dict.fromkeys(tags))


def router(api: IdentityAPI) -> Router:
    r = Router()
    svc = api.svc

    # -- domains ----------------------------------------------------------------------------
    @r.post("/v3/domains")
    async def create_domain(request: Request) -> Response:
        api.authorize(request, "identity:create_domain")
        data = v.entity(await json_body(request), "domain")
        values = v.pick(data, name=v.name(data, max_len=64), description=v.string(data, "description", nullable=True,
                                                                      max_len=65535),
                        enabled=v.boolean(data, "enabled"), options=v.obj(data, "options"),
                        id=v.string(data, "explicit_domain_id", max_len=64))
        values["extra"] = v.extras(data, DOMAIN_FIELDS | {"explicit_domain_id"})
        row = await svc.create_domain(values)
        return JSON({"domain": domain_view(request, row)}, status_code=201)

    @r.get("/v3/domains")
    async def list_domains(request: Request) -> Response:
        api.authorize(request, "identity:list_domains")
        q = request.query_params
        where = []
        if "name" in q:
            where.append(m.Domain.name == q["name"])
        if "enabled" in q:
            where.append(m.Domain.enabled.is_(parse_bool("enabled", q["enabled"])))
        rows = await svc.list(m.Domain, *where, order=m.Domain.name)
        return JSON(collection(request, "domains", [domain_view(request, d) for d in rows]))

    @r.get("/v3/domains/{domain_id}")
    async def get_domain(request: Request) -> Response:
        domain_id = request.path_params["domain_id"]
        auth = auth_of(request)
        if auth.domain_id != domain_id and auth.project_domain_id != domain_id:
            api.authorize(request, "identity:get_domain", {"domain": {"id": domain_id},
                                                           "domain_id": domain_id})
        return JSON({"domain": domain_view(request, await svc.get(m.Domain, domain_id))})

    @r.patch("/v3/domains/{domain_id}")
    async def update_domain(request: Request) -> Response:
        api.authorize(request, "identity:update_domain")
        data = v.entity(await json_body(request), "domain")
        values = v.pick(data, name=v.name(data, required=False, max_len=64),
                        description=v.string(data, "description", nullable=True, max_len=65535),
                        enabled=v.boolean(data, "enabled"), options=v.obj(data, "options"))
        extra = v.extras(data, DOMAIN_FIELDS)
        if extra:
            current = await svc.get(m.Domain, request.path_params["domain_id"])
            values["extra"] = {**(current.extra or {}), **extra}
        row = await svc.update_domain(request.path_params["domain_id"], values)
        return JSON({"domain": domain_view(request, row)})

    @r.delete("/v3/domains/{domain_id}")
    async def delete_domain(request: Request) -> Response:
        api.authorize(request, "identity:delete_domain")
        await svc.delete_domain(request.path_params["domain_id"])
        return no_content()

    # -- projects ---------------------------------------------------------------------------
    def project_target(p: m.Project) -> dict[str, Any]:
        return {"project": {"id": p.id, "domain_id": p.domain_id}, "domain_id": p.domain_id}

    @r.post("/v3/projects")
    async def create_project(request: Request) -> Response:
        data = v.entity(await json_body(request), "project")
        auth = auth_of(request)
        domain_id = v.string(data, "domain_id", nullable=True, max_len=64)
        parent_id = v.string(data, "parent_id", nullable=True, max_len=64)
        if not v.present(domain_id) or domain_id is None:
            if v.present(parent_id) and parent_id:
                parent = await svc.get(m.Project, parent_id)
                domain_id = parent.domain_id
            else:
                domain_id = auth.project_domain_id or auth.domain_id or api.svc.cfg.identity.default_domain_id
        api.authorize(request, "identity:create_project", {"project": {"domain_id": domain_id},
                                                           "domain_id": domain_id})
        if v.boolean(data, "is_domain") is True:  # a project acting as a domain is a domain
            if v.present(parent_id) and parent_id:
                raise ValidationError("A project acting as a domain cannot have a parent.")
            row = await svc.create_domain(v.pick(
                data, name=v.name(data, max_len=64), enabled=v.boolean(data, "enabled"),
                description=v.string(data, "description", nullable=True, max_len=65535)) | {
                "extra": {}, "options": {}})
            return JSON({"project": domain_as_project(request, row)}, status_code=201)
        values = v.pick(data, name=v.name(data, max_len=64), description=v.string(data, "description", nullable=True,
                                                                      max_len=65535),
                        enabled=v.boolean(data, "enabled"), options=v.obj(data, "options"),
                        parent_id=parent_id)
        values["domain_id"] = domain_id
        values["tags"] = check_tags(data["tags"]) if "tags" in data else []
        values["extra"] = v.extras(data, PROJECT_FIELDS)
        values.setdefault("options", {})
        row = await svc.create_project(values)
        return JSON({"project": project_view(request, row)}, status_code=201)

    @r.get("/v3/projects")
    async def list_projects(request: Request) -> Response:
        q = request.query_params
        domain_id = q.get("domain_id")
        api.authorize(request, "identity:list_projects", {"domain_id": domain_id})
        stmt = select(m.Project)
        if "name" in q:
            stmt = stmt.where(m.Project.name == q["name"])
        if domain_id:
            stmt = stmt.where(m.Project.domain_id == domain_id)
        if "enabled" in q:
            stmt = stmt.where(m.Project.enabled.is_(parse_bool("enabled", q["enabled"])))
        if "parent_id" in q:
            stmt = stmt.where(m.Project.parent_id == (q["parent_id"] or None))
        if "is_domain" in q and parse_bool("is_domain", q["is_domain"]):
            domains = await svc.list(m.Domain, *([m.Domain.name == q["name"]] if "name" in q else []),
                                     order=m.Domain.name)
            return JSON(collection(request, "projects", [domain_as_project(request, d) for d in domains]))
        async with svc.db.reader() as s:
            rows = list((await s.execute(stmt.order_by(m.Project.name))).scalars())
        rows = filter_tags(rows, q)
        return JSON(collection(request, "projects", [project_view(request, p) for p in rows]))

    async def as_domain(request: Request) -> m.Domain | None:
        """The domain whose id is in a /v3/projects/{id} URL (projects acting as domains)."""
        if await svc.find(m.Project, request.path_params["project_id"]) is not None:
            return None
        return await svc.find(m.Domain, request.path_params["project_id"])

    @r.get("/v3/projects/{project_id}")
    async def get_project(request: Request) -> Response:
        domain = await as_domain(request)
        if domain is not None:
            api.authorize(request, "identity:get_domain", {"domain": {"id": domain.id}, "domain_id": domain.id})
            return JSON({"project": domain_as_project(request, domain)})
        project = await svc.get(m.Project, request.path_params["project_id"])
        api.authorize(request, "identity:get_project", project_target(project))
        body = project_view(request, project)
        q = request.query_params
        if "parents_as_list" in q or "parents_as_ids" in q:
            parents = await svc.project_parents(project)
            if "parents_as_list" in q:
                body["parents"] = [{"project": project_view(request, p)} for p in parents]
            else:
                body["parents"] = nest_ids([p.id for p in parents])
        if "subtree_as_list" in q or "subtree_as_ids" in q:
            subtree = await svc.project_subtree(project.id)
            if "subtree_as_list" in q:
                body["subtree"] = [{"project": project_view(request, p)} for p in subtree]
            else:
                body["subtree"] = subtree_ids(project.id, subtree)
        return JSON({"project": body})

    @r.patch("/v3/projects/{project_id}")
    async def update_project(request: Request) -> Response:
        domain = await as_domain(request)
        if domain is not None:
            api.authorize(request, "identity:update_domain")
            data = v.entity(await json_body(request), "project")
            row = await svc.update_domain(domain.id, v.pick(
                data, name=v.name(data, required=False, max_len=64), enabled=v.boolean(data, "enabled"),
                description=v.string(data, "description", nullable=True, max_len=65535)))
            return JSON({"project": domain_as_project(request, row)})
        project = await svc.get(m.Project, request.path_params["project_id"])
        api.authorize(request, "identity:update_project", project_target(project))
        data = v.entity(await json_body(request), "project")
        values = v.pick(data, name=v.name(data, required=False, max_len=64),
                        description=v.string(data, "description", nullable=True, max_len=65535),
                        enabled=v.boolean(data, "enabled"), options=v.obj(data, "options"),
                        domain_id=v.string(data, "domain_id", max_len=64),
                        parent_id=v.string(data, "parent_id", nullable=True, max_len=64))
        if v.boolean(data, "is_domain") is True:
            raise ValidationError("is_domain cannot be changed.")
        if "tags" in data:
            values["tags"] = check_tags(data["tags"])
        extra = v.extras(data, PROJECT_FIELDS)
        if extra:
            values["extra"] = {**(project.extra or {}), **extra}
        row = await svc.update_project(project.id, values)
        return JSON({"project": project_view(request, row)})

    @r.delete("/v3/projects/{project_id}")
    async def delete_project(request: Request) -> Response:
        domain = await as_domain(request)
        if domain is not None:
            api.authorize(request, "identity:delete_domain")
            await svc.delete_domain(domain.id)
            return no_content()
        project = await svc.get(m.Project, request.path_params["project_id"])
        api.authorize(request, "identity:delete_project", project_target(project))
        await svc.delete_project(project.id)
        return no_content()

    # -- project tags -----------------------------------------------------------------------
    @r.get("/v3/projects/{project_id}/tags")
    async def list_tags(request: Request) -> Response:
        project = await svc.get(m.Project, request.path_params["project_id"])
        api.authorize(request, "identity:project_tags_read", project_target(project))
        return JSON({"tags": project.tags or [], "links": {"self": str(request.url)}})

    @r.put("/v3/projects/{project_id}/tags")
    async def replace_tags(request: Request) -> Response:
        project = await svc.get(m.Project, request.path_params["project_id"])
        api.authorize(request, "identity:project_tags_write", project_target(project))
        body = await json_body(request)
        if not isinstance(body, dict) or "tags" not in body:
            raise ValidationError("Expecting to find tags in request body.")
        row = await svc.save(m.Project, project.id, {"tags": check_tags(body["tags"])})
        return JSON({"tags": row.tags, "links": {"self": str(request.url)}})

    @r.delete("/v3/projects/{project_id}/tags")
    async def clear_tags(request: Request) -> Response:
        project = await svc.get(m.Project, request.path_params["project_id"])
        api.authorize(request, "identity:project_tags_write", project_target(project))
        await svc.save(m.Project, project.id, {"tags": []})
        return no_content()

    @r.get("/v3/projects/{project_id}/tags/{tag}")
    async def check_tag(request: Request) -> Response:
        project = await svc.get(m.Project, request.path_params["project_id"])
        api.authorize(request, "identity:project_tags_read", project_target(project))
        tag = request.path_params["tag"]
        if tag not in (project.tags or []):
            raise NotFound(f"Tag {tag} not found on project {project.id}.")
        return no_content()

    @r.put("/v3/projects/{project_id}/tags/{tag}")
    async def add_tag(request: Request) -> Response:
        project = await svc.get(m.Project, request.path_params["project_id"])
        api.authorize(request, "identity:project_tags_write", project_target(project))
        tags = check_tags([*(project.tags or []), request.path_params["tag"]])
        await svc.save(m.Project, project.id, {"tags": tags})
        return Response(status_code=201, headers={"Location": str(request.url)})

    @r.delete("/v3/projects/{project_id}/tags/{tag}")
    async def delete_tag(request: Request) -> Response:
        project = await svc.get(m.Project, request.path_params["project_id"])
        api.authorize(request, "identity:project_tags_write", project_target(project))
        tag = request.path_params["tag"]
        if tag not in (project.tags or []):
            raise NotFound(f"Tag {tag} not found on project {project.id}.")
        await svc.save(m.Project, project.id, {"tags": [t for t in project.tags if t != tag]})
        return no_content()

    return r


def domain_as_project(request: Request, d: m.Domain) -> dict[str, Any]:
    view = domain_view(request, d)
    view.update(is_domain=True, domain_id=None, parent_id=None,
                links={"self": f"{request.url.scheme}://{request.url.netloc}/v3/projects/{d.id}"})
    return view


def filter_tags(rows: list[m.Project], q: Any) -> list[m.Project]:
    def split(key: str) -> set[str] | None:
        return set(q[key].split(",")) if key in q else None

    tags, tags_any, not_tags, not_any = split("tags"), split("tags-any"), split("not-tags"), split("not-tags-any")
    out = []
    for p in rows:
        have = set(p.tags or [])
        if tags is not None and not tags <= have:
            continue
        if tags_any is not None and not tags_any & have:
            continue
        if not_tags is not None and not_tags <= have:
            continue
        if not_any is not None and not_any & have:
            continue
        out.append(p)
    return out


def nest_ids(ids: list[str]) -> dict[str, Any] | None:
    """[parent, grandparent] -> {parent: {grandparent: None}}."""
    out: dict[str, Any] | None = None
    for pid in reversed(ids):
        out = {pid: out}
    return out


def subtree_ids(root: str, subtree: list[m.Project]) -> dict[str, Any] | None:
    children: dict[str, list[str]] = {}
    for p in subtree:
        children.setdefault(p.parent_id or "", []).append(p.id)

    def build(pid: str) -> dict[str, Any] | None:
        kids = children.get(pid)
        return {k: build(k) for k in kids} if kids else None

    return build(root)
