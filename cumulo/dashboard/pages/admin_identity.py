"""Admin identity pages: projects (create, edit, enable or disable, delete, their members' roles,
and their quotas in compute, network and block storage), users (create, edit, password, enable or disable, delete,
role assignments on projects), groups and their members, and roles.

Keystone does not page its lists; each list page is one call (filtered by name on Keystone's side).
A project's quota form reads the three services' quota sets in parallel and writes only the
values that changed, each service's fault shown beside the field it names.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cumulo.dashboard.app import Dashboard, view
from cumulo.dashboard.client import Api, ApiError
from cumulo.dashboard.pages.admin import (
    Field,
    FormError,
    act,
    field_for,
    form_of,
    form_page,
    gather,
    number,
    query_of,
    quietly,
    seg,
)
from cumulo.dashboard.session import Session

NAV = [("admin", "Identity", "Projects", "/admin/projects"),
       ("admin", "Identity", "Users", "/admin/users"),
       ("admin", "Identity", "Groups", "/admin/groups"),
       ("admin", "Identity", "Roles", "/admin/roles")]

# the quota keys each service's form shows: (service, path of the project's set, body key, keys)
QUOTAS: list[tuple[str, str, str, tuple[str, ...]]] = [
    ("compute", "/os-quota-sets/{}", "quota_set",
     ("instances", "cores", "ram", "key_pairs", "metadata_items", "server_groups", "server_group_members")),
    ("network", "/v2.0/quotas/{}", "quota",
     ("network", "subnet", "port", "router", "floatingip", "security_group", "security_group_rule")),
    ("block-storage", "/os-quota-sets/{}", "quota_set",
     ("volumes", "gigabytes", "snapshots", "backups", "backup_gigabytes", "per_volume_gigabytes", "groups")),
]
SERVICE_WORDS = {"compute": "Compute", "network": "Network", "block-storage": "Block storage"}

PROJECT_FIELDS = [Field("name", "Name", required=True), Field("description", "Description"),
                  Field("enabled", "Enabled", "checkbox")]
USER_FIELDS = [Field("name", "Name", required=True), Field("email", "Email"), Field("description", "Description")]


async def quota_sets(api: Api, project_id: str) -> dict[str, dict[str, Any]]:
    """Each running service's quota set of the project (a service that does not run is left out)."""
    sets = await gather(*(quietly(api.get(service, path.format(project_id))) for service, path, _, _ in QUOTAS))
    return {service: data[key] for (service, _, key, _), data in zip(QUOTAS, sets, strict=True) if data}


def quota_fields(sets: dict[str, dict[str, Any]]) -> list[Field]:
    return [Field(f"{service}.{k}", f"{SERVICE_WORDS[service]}: {k.replace('_', ' ')}", "number")
            for service, _, _, keys in QUOTAS if service in sets for k in keys if k in sets[service]]


async def save_quotas(api: Api, project_id: str, sets: dict[str, dict[str, Any]], values: dict[str, Any]) -> None:
    """PUT the changed values of each service; a refusal is shown beside the field it names."""
    for service, path, key, keys in QUOTAS:
        if service not in sets:
            continue
        change = {k: number(values[f"{service}.{k}"]) for k in keys
                  if f"{service}.{k}" in values and str(values[f"{service}.{k}"]) != str(sets[service].get(k))}
        if not change:
            continue
        try:
            await api.put(service, path.format(project_id), {key: change})
        except ApiError as exc:
            if exc.status >= 500:
                raise
            names = [f"{service}.{k}" for k in change]
            raise FormError(field_for(exc.message, names, names[0]), exc.message) from None


def routes(d: Dashboard) -> list[Route]:
    # -- projects -------------------------------------------------------------------------------
    async def projects(request: Request, session: Session, api: Api) -> Response:
        query = query_of(request, "name")
        data = await api.get("identity", "/projects", **query)
        rows = sorted(data["projects"], key=lambda p: p["name"].lower())
        return d.render(request, "admin_projects.html", title="Projects", projects=rows, query=query)

    async def project_create(request: Request, session: Session, api: Api) -> Response:
        async def submit(values: dict[str, Any]) -> Response:
            r = await api.post("identity", "/projects", {"project": {
                "name": values["name"], "description": values["description"], "enabled": values["enabled"],
                "domain_id": session.domain_id or "default"}})
            return d.redirect("/admin/projects", ("info", f"Created the project {r.data['project']['name']}."))

        return await form_page(d, request, title="Create a project", fields=PROJECT_FIELDS, submit=submit,
                               button="Create", back="/admin/projects", initial={"enabled": True})

    async def project_edit(request: Request, session: Session, api: Api) -> Response:
        project_id = request.path_params["project_id"]
        project = (await api.get("identity", f"/projects/{project_id}"))["project"]

        async def submit(values: dict[str, Any]) -> Response:
            await api.patch("identity", f"/projects/{project_id}", {"project": {
                "name": values["name"], "description": values["description"], "enabled": values["enabled"]}})
            return d.redirect("/admin/projects", ("info", f"Saved the project {values['name']}."))

        return await form_page(d, request, title=f"Edit the project {project['name']}", fields=PROJECT_FIELDS,
                               submit=submit, back="/admin/projects", initial=project)

    async def project_state(request: Request, session: Session, api: Api) -> Response:
        project_id, name = request.path_params["project_id"], request.path_params["action"]
        if name not in ("enable", "disable", "delete"):
            return d.redirect("/admin/projects", ("error", f"There is no project action {name[:40]!r}."))
        if name == "delete":
            return await act(d, "/admin/projects", api.delete("identity", f"/projects/{project_id}"),
                             "Deleted the project.")
        enabled = name == "enable"
        return await act(d, "/admin/projects", api.patch("identity", f"/projects/{project_id}", {
            "project": {"enabled": enabled}}), "Enabled the project." if enabled else "Disabled the project.")

    async def project_quotas(request: Request, session: Session, api: Api) -> Response:
        project_id = request.path_params["project_id"]
        project, sets = await gather(api.get("identity", f"/projects/{project_id}"), quota_sets(api, project_id))
        project = project["project"]
        fields = quota_fields(sets)
        initial = {f.name: sets[f.name.split(".")[0]].get(f.name.split(".")[1]) for f in fields}
        initial = {k: v.get("limit") if isinstance(v, dict) else v for k, v in initial.items()}

        async def submit(values: dict[str, Any]) -> Response:
            await save_quotas(api, project_id, sets, values)
            return d.redirect("/admin/projects", ("info", f"Saved the quotas of {project['name']}."))

        return await form_page(d, request, title=f"Quotas of {project['name']}", fields=fields, submit=submit,
                               initial=initial, back="/admin/projects", main=fields[0].name if fields else "",
                               intro="-1 means no limit.")

    async def project_members(request: Request, session: Session, api: Api) -> Response:
        project_id = request.path_params["project_id"]
        project, assignments, users_, roles_ = await gather(
            api.get("identity", f"/projects/{project_id}"),
            api.get("identity", "/role_assignments", **{"scope.project.id": project_id, "include_names": "true"}),
            api.get("identity", "/users"), api.get("identity", "/roles"))
        project = project["project"]
        role_opts = sorted(((r["id"], r["name"]) for r in roles_["roles"]), key=lambda x: x[1])
        fields = [Field("user", "User", "select", sorted(((u["id"], u["name"]) for u in users_["users"]),
                                                         key=lambda x: x[1].lower())),
                  Field("role", "Role", "select", role_opts)]

        async def submit(values: dict[str, Any]) -> Response:
            await api.put("identity", f"/projects/{project_id}/users/{seg(values['user'])}/roles/{seg(values['role'])}")
            return d.redirect(f"/admin/projects/{project_id}/members", ("info", "Assigned the role."))

        member = next((rid for rid, name in role_opts if name == "member"), "")
        return await form_page(d, request, title=f"Members of {project['name']}", fields=fields, submit=submit,
                               button="Assign", back="/admin/projects", main="role", initial={"role": member},
                               template="admin_project_members.html", project=project,
                               assignments=assignments["role_assignments"])

    async def project_member_remove(request: Request, session: Session, api: Api) -> Response:
        project_id = request.path_params["project_id"]
        form = await form_of(request)
        user, role = seg(form.get("user", "")[:64]), seg(form.get("role", "")[:64])
        return await act(d, f"/admin/projects/{project_id}/members",
                         api.delete("identity", f"/projects/{project_id}/users/{user}/roles/{role}"),
                         "Removed the role assignment.")

    # -- users ----------------------------------------------------------------------------------
    async def users(request: Request, session: Session, api: Api) -> Response:
        query = query_of(request, "name")
        data, projects_ = await gather(api.get("identity", "/users", **query), api.get("identity", "/projects"))
        names = {p["id"]: p["name"] for p in projects_["projects"]}
        rows = sorted(data["users"], key=lambda u: u["name"].lower())
        return d.render(request, "admin_users.html", title="Users", users=rows, names=names, query=query)

    async def choices(api: Api) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        projects_, roles_ = await gather(api.get("identity", "/projects"), api.get("identity", "/roles"))
        return (sorted(((p["id"], p["name"]) for p in projects_["projects"]), key=lambda x: x[1].lower()),
                sorted(((r["id"], r["name"]) for r in roles_["roles"]), key=lambda x: x[1]))

    async def user_create(request: Request, session: Session, api: Api) -> Response:
        project_opts, role_opts = await choices(api)
        fields = [*USER_FIELDS, Field("password", "Password", "password", required=True),
                  Field("confirm", "Password again", "password", required=True),
                  Field("project", "Primary project", "select", [("", "none")] + project_opts),
                  Field("role", "Role on that project", "select", role_opts),
                  Field("enabled", "Enabled", "checkbox")]

        async def submit(values: dict[str, Any]) -> Response:
            if values["password"] != values["confirm"]:
                raise FormError("confirm", "The two passwords differ.")
            body: dict[str, Any] = {"name": values["name"], "password": values["password"],
                                    "enabled": values["enabled"], "domain_id": session.domain_id or "default"}
            for key in ("email", "description"):
                if values[key]:
                    body[key] = values[key]
            if values["project"]:
                body["default_project_id"] = values["project"]
            user = (await api.post("identity", "/users", {"user": body})).data["user"]
            if values["project"] and values["role"]:
                project, role = seg(values["project"]), seg(values["role"])
                await api.put("identity", f"/projects/{project}/users/{user['id']}/roles/{role}")
            return d.redirect("/admin/users", ("info", f"Created the user {user['name']}."))

        member = next((rid for rid, name in role_opts if name == "member"), "")
        return await form_page(d, request, title="Create a user", fields=fields, submit=submit, button="Create",
                               back="/admin/users", initial={"enabled": True, "role": member})

    async def user_edit(request: Request, session: Session, api: Api) -> Response:
        user_id = request.path_params["user_id"]
        (user, (project_opts, _)) = await gather(api.get("identity", f"/users/{user_id}"), choices(api))
        user = user["user"]
        fields = [*USER_FIELDS, Field("default_project_id", "Primary project", "select", [("", "none")] + project_opts),
                  Field("enabled", "Enabled", "checkbox")]

        async def submit(values: dict[str, Any]) -> Response:
            body = {"name": values["name"], "email": values["email"], "description": values["description"],
                    "default_project_id": values["default_project_id"] or None, "enabled": values["enabled"]}
            await api.patch("identity", f"/users/{user_id}", {"user": body})
            return d.redirect("/admin/users", ("info", f"Saved the user {values['name']}."))

        return await form_page(d, request, title=f"Edit the user {user['name']}", fields=fields, submit=submit,
                               back="/admin/users", initial=user)

    async def user_password(request: Request, session: Session, api: Api) -> Response:
        user_id = request.path_params["user_id"]
        user = (await api.get("identity", f"/users/{user_id}"))["user"]
        fields = [Field("password", "New password", "password", required=True),
                  Field("confirm", "New password again", "password", required=True)]

        async def submit(values: dict[str, Any]) -> Response:
            if values["password"] != values["confirm"]:
                raise FormError("confirm", "The two passwords differ.")
            await api.patch("identity", f"/users/{user_id}", {"user": {"password": values["password"]}})
            return d.redirect("/admin/users", ("info", f"Changed the password of {user['name']}."))

        return await form_page(d, request, title=f"Password of {user['name']}", fields=fields, submit=submit,
                               button="Change the password", back="/admin/users", main="password")

    async def user_state(request: Request, session: Session, api: Api) -> Response:
        user_id, name = request.path_params["user_id"], request.path_params["action"]
        if name not in ("enable", "disable", "delete"):
            return d.redirect("/admin/users", ("error", f"There is no user action {name[:40]!r}."))
        if name == "delete":
            return await act(d, "/admin/users", api.delete("identity", f"/users/{user_id}"), "Deleted the user.")
        enabled = name == "enable"
        return await act(d, "/admin/users", api.patch("identity", f"/users/{user_id}", {"user": {"enabled": enabled}}),
                         "Enabled the user." if enabled else "Disabled the user.")

    async def user_roles(request: Request, session: Session, api: Api) -> Response:
        user_id = request.path_params["user_id"]
        user, assignments, (project_opts, role_opts) = await gather(
            api.get("identity", f"/users/{user_id}"),
            api.get("identity", "/role_assignments", **{"user.id": user_id, "include_names": "true"}),
            choices(api))
        user = user["user"]
        fields = [Field("project", "Project", "select", project_opts), Field("role", "Role", "select", role_opts)]

        async def submit(values: dict[str, Any]) -> Response:
            await api.put("identity", f"/projects/{seg(values['project'])}/users/{user_id}/roles/{seg(values['role'])}")
            return d.redirect(f"/admin/users/{user_id}/roles", ("info", "Assigned the role."))

        return await form_page(d, request, title=f"Roles of {user['name']}", fields=fields, submit=submit,
                               button="Assign", back="/admin/users", main="role", template="admin_user_roles.html",
                               user=user, assignments=assignments["role_assignments"])

    async def user_role_remove(request: Request, session: Session, api: Api) -> Response:
        user_id = request.path_params["user_id"]
        form = await form_of(request)
        project, role = form.get("project", "")[:64], form.get("role", "")[:64]
        return await act(d, f"/admin/users/{user_id}/roles",
                         api.delete("identity", f"/projects/{seg(project)}/users/{user_id}/roles/{seg(role)}"),
                         "Removed the role assignment.")

    # -- groups ---------------------------------------------------------------------------------
    group_fields = [Field("name", "Name", required=True), Field("description", "Description")]

    async def groups(request: Request, session: Session, api: Api) -> Response:
        data = await api.get("identity", "/groups")
        return d.render(request, "admin_groups.html", title="Groups",
                        groups=sorted(data["groups"], key=lambda g: g["name"].lower()))

    async def group_create(request: Request, session: Session, api: Api) -> Response:
        async def submit(values: dict[str, Any]) -> Response:
            r = await api.post("identity", "/groups", {"group": {
                "name": values["name"], "description": values["description"],
                "domain_id": session.domain_id or "default"}})
            group = r.data["group"]
            return d.redirect(f"/admin/groups/{group['id']}", ("info", f"Created the group {group['name']}."))

        return await form_page(d, request, title="Create a group", fields=group_fields, submit=submit,
                               button="Create", back="/admin/groups")

    async def group(request: Request, session: Session, api: Api) -> Response:
        group_id = request.path_params["group_id"]
        group_, members, users_ = await gather(api.get("identity", f"/groups/{group_id}"),
                                               api.get("identity", f"/groups/{group_id}/users"),
                                               api.get("identity", "/users"))
        inside = {u["id"] for u in members["users"]}
        fields = [Field("user", "Add a member", "select",
                        sorted(((u["id"], u["name"]) for u in users_["users"] if u["id"] not in inside),
                               key=lambda x: x[1].lower()))]

        async def submit(values: dict[str, Any]) -> Response:
            await api.put("identity", f"/groups/{group_id}/users/{seg(values['user'])}")
            return d.redirect(f"/admin/groups/{group_id}", ("info", "Added the member."))

        return await form_page(d, request, title=f"Group {group_['group']['name']}", fields=fields, submit=submit,
                               button="Add", back="/admin/groups", main="user", template="admin_group.html",
                               group=group_["group"], members=members["users"])

    async def group_action(request: Request, session: Session, api: Api) -> Response:
        group_id, name = request.path_params["group_id"], request.path_params["action"]
        if name not in ("delete", "remove"):
            return d.redirect("/admin/groups", ("error", f"There is no group action {name[:40]!r}."))
        if name == "delete":
            return await act(d, "/admin/groups", api.delete("identity", f"/groups/{group_id}"), "Deleted the group.")
        user = (await form_of(request)).get("user", "")[:64]
        return await act(d, f"/admin/groups/{group_id}",
                         api.delete("identity", f"/groups/{group_id}/users/{seg(user)}"), "Removed the member.")

    # -- roles ----------------------------------------------------------------------------------
    async def roles(request: Request, session: Session, api: Api) -> Response:
        data = await api.get("identity", "/roles")
        fields = [Field("name", "New role", required=True)]

        async def submit(values: dict[str, Any]) -> Response:
            await api.post("identity", "/roles", {"role": {"name": values["name"]}})
            return d.redirect("/admin/roles", ("info", f"Created the role {values['name']}."))

        return await form_page(d, request, title="Roles", fields=fields, submit=submit, button="Create",
                               back="/admin/roles", template="admin_roles.html",
                               roles=sorted(data["roles"], key=lambda r: r["name"]))

    async def role_delete(request: Request, session: Session, api: Api) -> Response:
        role_id = request.path_params["role_id"]
        return await act(d, "/admin/roles", api.delete("identity", f"/roles/{role_id}"), "Deleted the role.")

    def admin(fn: Any) -> Any:
        return view(d, fn, panel="admin")

    return [Route("/admin/projects", admin(projects), methods=["GET"]),
            Route("/admin/projects/create", admin(project_create), methods=["GET", "POST"]),
            Route("/admin/projects/{project_id}/edit", admin(project_edit), methods=["GET", "POST"]),
            Route("/admin/projects/{project_id}/quotas", admin(project_quotas), methods=["GET", "POST"]),
            Route("/admin/projects/{project_id}/members", admin(project_members), methods=["GET", "POST"]),
            Route("/admin/projects/{project_id}/members/remove", admin(project_member_remove), methods=["POST"]),
            Route("/admin/projects/{project_id}/{action:str}", admin(project_state), methods=["POST"]),
            Route("/admin/users", admin(users), methods=["GET"]),
            Route("/admin/users/create", admin(user_create), methods=["GET", "POST"]),
            Route("/admin/users/{user_id}/edit", admin(user_edit), methods=["GET", "POST"]),
            Route("/admin/users/{user_id}/password", admin(user_password), methods=["GET", "POST"]),
            Route("/admin/users/{user_id}/roles", admin(user_roles), methods=["GET", "POST"]),
            Route("/admin/users/{user_id}/roles/remove", admin(user_role_remove), methods=["POST"]),
            Route("/admin/users/{user_id}/{action:str}", admin(user_state), methods=["POST"]),
            Route("/admin/groups", admin(groups), methods=["GET"]),
            Route("/admin/groups/create", admin(group_create), methods=["GET", "POST"]),
            Route("/admin/groups/{group_id}", admin(group), methods=["GET", "POST"]),
            Route("/admin/groups/{group_id}/{action:str}", admin(group_action), methods=["POST"]),
            Route("/admin/roles", admin(roles), methods=["GET", "POST"]),
            Route("/admin/roles/{role_id}/delete", admin(role_delete), methods=["POST"])]
