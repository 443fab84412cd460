"""/v3/users and /v3/groups, with group membership and a user's projects and groups."""

from __future__ import annotations

import operator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.http.app import JSON, Router, auth_of, json_body, no_content
from cumulo.core.http.faults import NotFound, ValidationError
from cumulo.core.http.paging import parse_bool
from cumulo.identity import models as m
from cumulo.identity.api import validate as v
from cumulo.identity.api.common import IdentityAPI, collection, group_view, project_view, user_view

USER_FIELDS = {"id", "name", "domain_id", "enabled", "default_project_id", "description", "password",
               "options", "links", "password_expires_at"}
GROUP_FIELDS = {"id", "name", "domain_id", "description", "links"}
USER_OPTIONS = {"ignore_change_password_upon_first_use", "ignore_password_expiry",
                "ignore_lockout_failure_attempts", "lock_password", "multi_factor_auth_enabled",
                "multi_factor_auth_rules", "ignore_user_inactivity"}


def check_options(options: Any) -> Any:
    if options is v.MISSING or options is None:
        return options
    for key in options:
        if key not in USER_OPTIONS:
            raise ValidationError(f"Invalid user option {key!r}: one of {', '.join(sorted(USER_OPTIONS))}.")
    return options


def router(api: IdentityAPI) -> Router:
    r = Router()
    svc = api.svc

    def user_target(u: m.User) -> dict[str, Any]:
        return {"user": {"id": u.id, "domain_id": u.domain_id}, "domain_id": u.domain_id,
                "user_id": u.id}

    async def one_user(request: Request, u: m.User) -> dict[str, Any]:
        pw = await svc.current_password(u.id)
        return user_view(request, u, pw.expires_at if pw else None)

    @r.post("/v3/users")
    async def create_user(request: Request) -> Response:
        data = v.entity(await json_body(request), "user")
        auth = auth_of(request)
        domain_id = v.string(data, "domain_id", max_len=64)
        if not v.present(domain_id):
            domain_id = auth.project_domain_id or auth.domain_id or svc.cfg.identity.default_domain_id
        api.authorize(request, "identity:create_user", {"user": {"domain_id": domain_id},
                                                        "domain_id": domain_id})
        password = v.string(data, "password", nullable=True, max_len=4096)
        values = v.pick(data, name=v.name(data), enabled=v.boolean(data, "enabled"),
                        default_project_id=v.string(data, "default_project_id", nullable=True, max_len=64),
                        description=v.string(data, "description", nullable=True, max_len=65535),
                        options=check_options(v.obj(data, "options")))
        values["domain_id"] = domain_id
        values["extra"] = v.extras(data, USER_FIELDS)
        values.setdefault("options", {})
        if values.get("default_project_id"):
            project = await svc.find(m.Project, values["default_project_id"])
            if project is None:
                raise NotFound(f"Could not find project: {values['default_project_id']}.")
        row = await svc.create_user(values, password if v.present(password) else None)
        return JSON({"user": await one_user(request, row)}, status_code=201)

    @r.get("/v3/users")
    async def list_users(request: Request) -> Response:
        q = request.query_params
        api.authorize(request, "identity:list_users", {"domain_id": q.get("domain_id")})
        where = []
        if "name" in q:
            where.append(m.User.name == q["name"])
        if "domain_id" in q:
            where.append(m.User.domain_id == q["domain_id"])
        if "enabled" in q:
            where.append(m.User.enabled.is_(parse_bool("enabled", q["enabled"])))
        rows = list(await svc.list(m.User, *where, order=m.User.name))
        if "password_expires_at" in q:
            rows = await filter_password_expiry(svc, rows, q["password_expires_at"])
        expiry = await svc.password_expires_at([u.id for u in rows])
        return JSON(collection(request, "users", [user_view(request, u, expiry.get(u.id)) for u in rows]))

    @r.get("/v3/users/{user_id}")
    async def get_user(request: Request) -> Response:
        user = await svc.get(m.User, request.path_params["user_id"])
        if auth_of(request).user_id != user.id:
            api.authorize(request, "identity:get_user", user_target(user))
        return JSON({"user": await one_user(request, user)})

    @r.patch("/v3/users/{user_id}")
    async def update_user(request: Request) -> Response:
        user = await svc.get(m.User, request.path_params["user_id"])
        api.authorize(request, "identity:update_user", user_target(user))
        data = v.entity(await json_body(request), "user")
        password = v.string(data, "password", nullable=True, max_len=4096)
        values = v.pick(data, name=v.name(data, required=False), enabled=v.boolean(data, "enabled"),
                        default_project_id=v.string(data, "default_project_id", nullable=True, max_len=64),
                        description=v.string(data, "description", nullable=True, max_len=65535),
                        options=check_options(v.obj(data, "options")),
                        domain_id=v.string(data, "domain_id", max_len=64))
        extra = v.extras(data, USER_FIELDS)
        if extra:
            values["extra"] = {**(user.extra or {}), **extra}
        row = await svc.update_user(user.id, values, password if v.present(password) and password else None)
        return JSON({"user": await one_user(request, row)})

    @r.delete("/v3/users/{user_id}")
    async def delete_user(request: Request) -> Response:
        user = await svc.get(m.User, request.path_params["user_id"])
        api.authorize(request, "identity:delete_user", user_target(user))
        await svc.delete_user(user.id)
        return no_content()

    @r.get("/v3/users/{user_id}/projects")
    async def user_projects(request: Request) -> Response:
        user = await svc.get(m.User, request.path_params["user_id"])
        api.authorize(request, "identity:list_user_projects", user_target(user))
        projects = await svc.user_projects(user.id)
        q = request.query_params
        if "enabled" in q:
            want = parse_bool("enabled", q["enabled"])
            projects = [p for p in projects if p.enabled == want]
        if "name" in q:
            projects = [p for p in projects if p.name == q["name"]]
        if "domain_id" in q:
            projects = [p for p in projects if p.domain_id == q["domain_id"]]
        return JSON(collection(request, "projects", [project_view(request, p) for p in projects]))

    @r.get("/v3/users/{user_id}/groups")
    async def user_groups(request: Request) -> Response:
        user = await svc.get(m.User, request.path_params["user_id"])
        api.authorize(request, "identity:list_groups_for_user", user_target(user))
        groups = await svc.user_groups(user.id)
        return JSON(collection(request, "groups", [group_view(request, g) for g in groups]))

    # -- groups -----------------------------------------------------------------------------
    def group_target(g: m.Group) -> dict[str, Any]:
        return {"group": {"id": g.id, "domain_id": g.domain_id}, "domain_id": g.domain_id}

    @r.post("/v3/groups")
    async def create_group(request: Request) -> Response:
        data = v.entity(await json_body(request), "group")
        auth = auth_of(request)
        domain_id = v.string(data, "domain_id", max_len=64)
        if not v.present(domain_id):
            domain_id = auth.project_domain_id or auth.domain_id or svc.cfg.identity.default_domain_id
        api.authorize(request, "identity:create_group", {"domain_id": domain_id})
        values = v.pick(data, name=v.name(data),
                        description=v.string(data, "description", nullable=True, max_len=65535))
        values["domain_id"] = domain_id
        values["extra"] = v.extras(data, GROUP_FIELDS)
        row = await svc.create_group(values)
        return JSON({"group": group_view(request, row)}, status_code=201)

    @r.get("/v3/groups")
    async def list_groups(request: Request) -> Response:
        q = request.query_params
        api.authorize(request, "identity:list_groups", {"domain_id": q.get("domain_id")})
        where = []
        if "name" in q:
            where.append(m.Group.name == q["name"])
        if "domain_id" in q:
            where.append(m.Group.domain_id == q["domain_id"])
        rows = await svc.list(m.Group, *where, order=m.Group.name)
        return JSON(collection(request, "groups", [group_view(request, g) for g in rows]))

    @r.get("/v3/groups/{group_id}")
    async def get_group(request: Request) -> Response:
        group = await svc.get(m.Group, request.path_params["group_id"])
        api.authorize(request, "identity:get_group", group_target(group))
        return JSON({"group": group_view(request, group)})

    @r.patch("/v3/groups/{group_id}")
    async def update_group(request: Request) -> Response:
        group = await svc.get(m.Group, request.path_params["group_id"])
        api.authorize(request, "identity:update_group", group_target(group))
        data = v.entity(await json_body(request), "group")
        values = v.pick(data, name=v.name(data, required=False),
                        description=v.string(data, "description", nullable=True, max_len=65535))
        if "domain_id" in data and data["domain_id"] != group.domain_id:
            raise ValidationError("Cannot change the domain_id of a group.")
        extra = v.extras(data, GROUP_FIELDS)
        if extra:
            values["extra"] = {**(group.extra or {}), **extra}
        row = await svc.save(m.Group, group.id, values,
                             f"Conflict occurred attempting to update group - Duplicate entry found "
                             f"with name {values.get('name')}.")
        return JSON({"group": group_view(request, row)})

    @r.delete("/v3/groups/{group_id}")
    async def delete_group(request: Request) -> Response:
        group = await svc.get(m.Group, request.path_params["group_id"])
        api.authorize(request, "identity:delete_group", group_target(group))
        await svc.delete_group(group.id)
        return no_content()

    @r.get("/v3/groups/{group_id}/users")
    async def group_users(request: Request) -> Response:
        group = await svc.get(m.Group, request.path_params["group_id"])
        api.authorize(request, "identity:list_users_in_group", group_target(group))
        users = await svc.group_users(group.id)
        expiry = await svc.password_expires_at([u.id for u in users])
        return JSON(collection(request, "users", [user_view(request, u, expiry.get(u.id)) for u in users]))

    @r.route("/v3/groups/{group_id}/users/{user_id}", ["PUT", "HEAD", "GET", "DELETE"])
    async def membership(request: Request) -> Response:
        group_id, user_id = request.path_params["group_id"], request.path_params["user_id"]
        group = await svc.get(m.Group, group_id)
        if request.method == "PUT":
            api.authorize(request, "identity:add_user_to_group", group_target(group))
            await svc.add_member(group_id, user_id)
        elif request.method == "DELETE":
            api.authorize(request, "identity:remove_user_from_group", group_target(group))
            await svc.remove_member(group_id, user_id)
        else:
            api.authorize(request, "identity:check_user_in_group", group_target(group))
            if not await svc.is_member(group_id, user_id):
                raise NotFound(f"Could not find user, {user_id}, in group, {group_id}.")
        return no_content()

    return r


async def filter_password_expiry(svc: Any, rows: list[m.User], spec: str) -> list[m.User]:
    """``password_expires_at={lt|lte|gt|gte|eq|neq}:TIMESTAMP`` (default operator eq)."""
    ops = {"lt": operator.lt, "lte": operator.le, "gt": operator.gt, "gte": operator.ge,
           "eq": operator.eq, "neq": operator.ne}
    op_name, _, when = spec.partition(":") if spec.split(":", 1)[0] in ops else ("eq", ":", spec)
    parsed = v.timestamp({"password_expires_at": when}, "password_expires_at")
    expiry = await svc.password_expires_at([u.id for u in rows])
    return [u for u in rows if expiry.get(u.id) is not None and ops[op_name](expiry[u.id], parsed)]
