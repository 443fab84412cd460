"""/v3/roles, implied roles, grants on projects/domains/system (OS-INHERIT too), role_assignments."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.http.app import JSON, Router, json_body, no_content
from cumulo.core.http.faults import BadRequest
from cumulo.core.http.paging import parse_bool
from cumulo.identity import models as m
from cumulo.identity.api import validate as v
from cumulo.identity.api.common import IdentityAPI, base, collection, role_ref, role_view
from cumulo.identity.service.assignments import SYSTEM, Grant
from cumulo.identity.service.base import NULL_DOMAIN

ROLE_FIELDS = {"id", "name", "domain_id", "description", "options", "links"}


def router(api: IdentityAPI) -> Router:
    r = Router()
    svc = api.svc

    @r.post("/v3/roles")
    async def create_role(request: Request) -> Response:
        api.authorize(request, "identity:create_role")
        data = v.entity(await json_body(request), "role")
        values = v.pick(data, name=v.name(data), domain_id=v.string(data, "domain_id", nullable=True,
                                                                    max_len=64),
                        description=v.string(data, "description", nullable=True, max_len=255),
                        options=v.obj(data, "options"))
        values["extra"] = v.extras(data, ROLE_FIELDS)
        values.setdefault("options", {})
        row = await svc.create_role(values)
        return JSON({"role": role_view(request, row)}, status_code=201)

    @r.get("/v3/roles")
    async def list_roles(request: Request) -> Response:
        api.authorize(request, "identity:list_roles")
        q = request.query_params
        roles = sorted((await svc.roles_by_id()).values(), key=lambda x: x.name)
        domain = q.get("domain_id")
        roles = [x for x in roles if x.domain_id == (domain or NULL_DOMAIN)]
        if "name" in q:
            roles = [x for x in roles if x.name == q["name"]]
        return JSON(collection(request, "roles", [role_view(request, x) for x in roles]))

    @r.get("/v3/roles/{role_id}")
    async def get_role(request: Request) -> Response:
        api.authorize(request, "identity:get_role")
        return JSON({"role": role_view(request, await svc.get(m.Role, request.path_params["role_id"]))})

    @r.patch("/v3/roles/{role_id}")
    async def update_role(request: Request) -> Response:
        api.authorize(request, "identity:update_role")
        data = v.entity(await json_body(request), "role")
        values = v.pick(data, name=v.name(data, required=False),
                        description=v.string(data, "description", nullable=True, max_len=255),
                        options=v.obj(data, "options"),
                        domain_id=v.string(data, "domain_id", nullable=True, max_len=64))
        row = await svc.update_role(request.path_params["role_id"], values)
        return JSON({"role": role_view(request, row)})

    @r.delete("/v3/roles/{role_id}")
    async def delete_role(request: Request) -> Response:
        api.authorize(request, "identity:delete_role")
        await svc.delete_role(request.path_params["role_id"])
        return no_content()

    # -- implied roles ----------------------------------------------------------------------
    def inference(request: Request, prior: m.Role, implied: Any) -> dict[str, Any]:
        return {"role_inference": {"prior_role": role_ref(request, prior), "implies": implied},
                "links": {"self": f"{base(request)}/roles/{prior.id}/implies"}}

    @r.route("/v3/roles/{prior}/implies/{implied}", ["PUT", "GET", "HEAD", "DELETE"])
    async def implied_role(request: Request) -> Response:
        prior_id, implied_id = request.path_params["prior"], request.path_params["implied"]
        if request.method == "PUT":
            api.authorize(request, "identity:implied_roles_write")
            prior, implied = await svc.add_implied_role(prior_id, implied_id)
            body = inference(request, prior, role_ref(request, implied))
            body["links"]["self"] = f"{base(request)}/roles/{prior.id}/implies/{implied.id}"
            return JSON(body, status_code=201)
        if request.method == "DELETE":
            api.authorize(request, "identity:implied_roles_write")
            await svc.remove_implied_role(prior_id, implied_id)
            return no_content()
        api.authorize(request, "identity:implied_roles_read")
        prior, implied = await svc.get_implied_role(prior_id, implied_id)
        if request.method == "HEAD":
            return no_content()
        return JSON(inference(request, prior, role_ref(request, implied)))

    @r.get("/v3/roles/{prior}/implies")
    async def list_implied(request: Request) -> Response:
        api.authorize(request, "identity:implied_roles_read")
        prior = await svc.get(m.Role, request.path_params["prior"])
        roles = await svc.roles_by_id()
        implied = (await svc.implied_roles(prior.id))[prior.id]
        return JSON(inference(request, prior, [role_ref(request, roles[i]) for i in implied if i in roles]))

    @r.get("/v3/role_inferences")
    async def role_inferences(request: Request) -> Response:
        api.authorize(request, "identity:implied_roles_read")
        roles = await svc.roles_by_id()
        out = [{"prior_role": role_ref(request, roles[p]),
                "implies": [role_ref(request, roles[i]) for i in implied if i in roles]}
               for p, implied in (await svc.implied_roles()).items() if p in roles]
        return JSON({"role_inferences": out, "links": {"self": str(request.url)}})

    # -- grants -----------------------------------------------------------------------------
    def grant_routes(prefix: str, scope_type: str, inherited: bool) -> None:
        for actor in ("users", "groups"):
            actor_type = actor[:-1]

            async def one(request: Request, actor_type: str = actor_type) -> Response:
                p = request.path_params
                scope_id = p.get("scope_id", SYSTEM)
                target = {"domain_id": scope_id if scope_type == "domain" else None,
                          "project": {"id": scope_id}}
                args = (actor_type, p["actor_id"], scope_type, scope_id, p["role_id"], inherited)
                if request.method == "PUT":
                    api.authorize(request, "identity:create_grant", target)
                    await svc.grant(*args)
                elif request.method == "DELETE":
                    api.authorize(request, "identity:revoke_grant", target)
                    await svc.revoke_grant(*args)
                else:
                    api.authorize(request, "identity:check_grant", target)
                    await svc.check_grant(*args)
                return no_content()

            async def many(request: Request, actor_type: str = actor_type) -> Response:
                p = request.path_params
                scope_id = p.get("scope_id", SYSTEM)
                api.authorize(request, "identity:list_grants",
                              {"domain_id": scope_id if scope_type == "domain" else None})
                await svc.get(m.User if actor_type == "user" else m.Group, p["actor_id"])
                if scope_type == "project":
                    await svc.get(m.Project, scope_id)
                elif scope_type == "domain":
                    await svc.get(m.Domain, scope_id)
                grants = await svc.list_grants({actor_type: p["actor_id"],
                                                scope_type: scope_id if scope_type != "system" else True,
                                                "inherited": inherited})
                roles = await svc.roles_by_id()
                items = [role_view(request, roles[g.role_id]) for g in grants if g.role_id in roles]
                return JSON(collection(request, "roles", items))

            path = f"{prefix}/{actor}/{{actor_id}}/roles"
            r.route(path + "/{role_id}", ["PUT", "GET", "HEAD", "DELETE"])(one)
            r.get(path + ("/inherited_to_projects" if inherited else ""))(many)

    grant_routes("/v3/projects/{scope_id}", "project", False)
    grant_routes("/v3/domains/{scope_id}", "domain", False)
    grant_routes("/v3/system", "system", False)
    # OS-INHERIT: /v3/OS-INHERIT/domains/{d}/users/{u}/roles/{r}/inherited_to_projects
    for scope in ("domains", "projects"):
        for actor in ("users", "groups"):
            grant_inherited(r, api, scope, actor)

    @r.get("/v3/role_assignments")
    async def role_assignments(request: Request) -> Response:
        q = request.query_params
        filters: dict[str, Any] = {
            "user": q.get("user.id"), "group": q.get("group.id"), "role": q.get("role.id"),
            "project": q.get("scope.project.id"), "domain": q.get("scope.domain.id"),
            "system": q.get("scope.system"),
            "effective": "effective" in q and parse_bool("effective", q["effective"] or "true"),
            "subtree": "include_subtree" in q and parse_bool("include_subtree", q["include_subtree"] or "true"),
        }
        if "scope.OS-INHERIT:inherited_to" in q:
            filters["inherited"] = True
        if filters["subtree"]:
            if not filters["project"]:
                raise BadRequest("include_subtree requires scope.project.id.")
            project = await svc.get(m.Project, filters["project"])
            api.authorize(request, "identity:list_role_assignments_for_tree",
                          {"project": {"id": project.id}, "domain_id": project.domain_id})
        else:
            api.authorize(request, "identity:list_role_assignments", {"domain_id": filters["domain"]})
        if filters["effective"] and filters["group"]:
            raise BadRequest("effective and group.id cannot be combined.")
        grants = await svc.list_grants(filters)
        names = "include_names" in q and parse_bool("include_names", q["include_names"] or "true")
        return JSON(collection(request, "role_assignments",
                               [await assignment_view(request, api, g, names) for g in grants]))

    return r


def grant_inherited(r: Router, api: IdentityAPI, scope: str, actor: str) -> None:
    scope_type, actor_type = scope[:-1], actor[:-1]
    path = f"/v3/OS-INHERIT/{scope}/{{scope_id}}/{actor}/{{actor_id}}/roles"

    async def one(request: Request) -> Response:
        p = request.path_params
        args = (actor_type, p["actor_id"], scope_type, p["scope_id"], p["role_id"], True)
        target = {"domain_id": p["scope_id"] if scope_type == "domain" else None}
        if request.method == "PUT":
            api.authorize(request, "identity:create_grant", target)
            await api.svc.grant(*args)
        elif request.method == "DELETE":
            api.authorize(request, "identity:revoke_grant", target)
            await api.svc.revoke_grant(*args)
        else:
            api.authorize(request, "identity:check_grant", target)
            await api.svc.check_grant(*args)
        return no_content()

    async def many(request: Request) -> Response:
        p = request.path_params
        api.authorize(request, "identity:list_grants")
        grants = await api.svc.list_grants({actor_type: p["actor_id"], scope_type: p["scope_id"],
                                            "inherited": True})
        roles = await api.svc.roles_by_id()
        return JSON(collection(request, "roles", [role_view(request, roles[g.role_id])
                                                  for g in grants if g.role_id in roles]))

    r.route(path + "/{role_id}/inherited_to_projects", ["PUT", "GET", "HEAD", "DELETE"])(one)
    r.get(path + "/inherited_to_projects")(many)


async def assignment_view(request: Request, api: IdentityAPI, g: Grant, names: bool) -> dict[str, Any]:
    b = base(request)
    actor = {"id": g.actor_id}
    role: dict[str, Any] = {"id": g.role_id}
    scope: dict[str, Any]
    if g.scope_type == "system":
        scope = {"system": {"all": True}}
        target_path = "system"
    else:
        scope = {g.scope_type: {"id": g.scope_id}}
        target_path = f"{g.scope_type}s/{g.scope_id}"
    if g.inherited:
        scope["OS-INHERIT:inherited_to"] = "projects"
    if names:
        roles = await api.svc.roles_by_id()
        if g.role_id in roles:
            role["name"] = roles[g.role_id].name
            if roles[g.role_id].domain_id != NULL_DOMAIN:
                role["domain"] = await _domain_ref(api, roles[g.role_id].domain_id)
        row = await api.svc.find(m.User if g.actor_type == "user" else m.Group, g.actor_id)
        if row is not None:
            actor["name"] = row.name
            actor["domain"] = await _domain_ref(api, row.domain_id)
        if g.scope_type == "project":
            project = await api.svc.find(m.Project, g.scope_id)
            if project is not None:
                scope["project"].update(name=project.name, domain=await _domain_ref(api, project.domain_id))
        elif g.scope_type == "domain":
            domain = await api.svc.find(m.Domain, g.scope_id)
            if domain is not None:
                scope["domain"]["name"] = domain.name
    actor_path = f"{g.actor_type}s/{g.actor_id}"
    if g.via_group:
        link = f"{b}/{target_path}/groups/{g.via_group}/roles/{g.prior_role_id or g.role_id}"
    else:
        link = f"{b}/{target_path}/{actor_path}/roles/{g.prior_role_id or g.role_id}"
    if g.inherited:
        link = f"{b}/OS-INHERIT/{target_path}/{actor_path}/roles/{g.role_id}/inherited_to_projects"
    links: dict[str, str] = {"assignment": link}
    if g.via_group:
        links["membership"] = f"{b}/groups/{g.via_group}/users/{g.actor_id}"
    if g.prior_role_id:
        links["prior_role"] = f"{b}/roles/{g.prior_role_id}"
    return {"role": role, g.actor_type: actor, "scope": scope, "links": links}


async def _domain_ref(api: IdentityAPI, domain_id: str) -> dict[str, Any]:
    domain = await api.svc.find(m.Domain, domain_id)
    return {"id": domain_id, "name": domain.name if domain else ""}
