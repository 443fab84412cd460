"""/v2.1/os-server-groups: affinity and anti-affinity groups (soft variants from 2.15; a single
``policy`` with ``rules`` from 2.64), counted against the server_groups quota."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, func, select
from starlette.requests import Request
from starlette.responses import Response

from cumulo.compute.api.common import at_least
from cumulo.compute.models import ServerGroup, ServerGroupMember
from cumulo.compute.service import ComputeService
from cumulo.core.http.app import JSON, Router, auth_of, json_body
from cumulo.core.http.authz import allowed as policy_allows
from cumulo.core.http.authz import authorize
from cumulo.core.http.faults import BadRequest, NotFound
from cumulo.core.quota import create_within

POLICIES = ("affinity", "anti-affinity")
SOFT = ("soft-affinity", "soft-anti-affinity")


def router(svc: ComputeService) -> Router:
    r = Router()

    async def members(group_id: str) -> list[str]:
        async with svc.db.session() as s:
            return list((await s.execute(select(ServerGroupMember.server_id).where(
                ServerGroupMember.group_id == group_id))).scalars())

    async def view(request: Request, g: ServerGroup) -> dict[str, Any]:
        out: dict[str, Any] = {"id": g.id, "name": g.name, "members": await members(g.id)}
        if at_least(request, 64):
            out.update(policy=g.policy, rules=g.rules or {})
        else:
            out.update(policies=[g.policy], metadata={})
        if at_least(request, 13):
            out.update(project_id=g.project_id, user_id=g.user_id)
        return out

    async def visible(request: Request, group_id: str, rule: str) -> ServerGroup:
        auth = auth_of(request)
        async with svc.db.session() as s:
            group = await s.get(ServerGroup, group_id)
        if group is None or (group.project_id != auth.project_id and not auth.is_admin()):
            raise NotFound(f"Server group {group_id} could not be found.")
        authorize(request, rule, {"project_id": group.project_id, "user_id": group.user_id})
        return group

    @r.post("/v2.1/os-server-groups")
    async def create(request: Request) -> Response:
        auth = authorize(request, "os_compute_api:os-server-groups:create")
        body = await json_body(request)
        data = body.get("server_group") if isinstance(body, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not 0 < len(data["name"]) <= 255:
            raise BadRequest("The request needs {\"server_group\": {\"name\": ..., \"policy\": ...}}.")
        allowed = POLICIES + (SOFT if at_least(request, 15) else ())
        rules: dict[str, Any] = {}
        if at_least(request, 64):
            policy = data.get("policy")
            if "policies" in data:
                raise BadRequest("From microversion 2.64 use 'policy' (one string), not 'policies'.")
            rules = data.get("rules") or {}
            if not isinstance(rules, dict) or set(rules) - {"max_server_per_host"}:
                raise BadRequest("rules may only hold max_server_per_host.")
            if rules and policy != "anti-affinity":
                raise BadRequest("rules are only valid with the anti-affinity policy.")
            value = rules.get("max_server_per_host", 1)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise BadRequest("max_server_per_host must be a positive integer.")
        else:
            policies = data.get("policies")
            if not isinstance(policies, list) or len(policies) != 1:
                raise BadRequest("policies must be a list of exactly one policy.")
            policy = policies[0]
        if policy not in allowed:
            raise BadRequest(f"Invalid policy {policy!r}: one of {', '.join(allowed)} at this microversion.")
        group = ServerGroup(id=str(uuid.uuid4()), name=data["name"], policy=policy, rules=rules,
                            project_id=auth.project_id or "", user_id=auth.user_id)

        async def insert() -> ServerGroup:
            async with svc.db.session() as s:
                s.add(group)
            return group

        async def count() -> int:
            async with svc.db.session() as s:
                return (await s.execute(select(func.count()).select_from(ServerGroup).where(
                    ServerGroup.project_id == group.project_id))).scalar() or 0

        async def undo(g: ServerGroup) -> None:
            async with svc.db.session() as s:
                await s.execute(delete(ServerGroup).where(ServerGroup.id == g.id))

        await create_within(await svc.quota(auth.project_id, "server_groups"), insert, count, undo, "server_groups")
        return JSON({"server_group": await view(request, group)})

    @r.get("/v2.1/os-server-groups")
    async def list_groups(request: Request) -> Response:
        auth = authorize(request, "os_compute_api:os-server-groups:index")
        stmt = select(ServerGroup).order_by(ServerGroup.created_at)
        everyone = request.query_params.get("all_projects", "").lower() in ("1", "true", "yes")
        if not (everyone and policy_allows(request, "os_compute_api:os-server-groups:index:all_projects")):
            stmt = stmt.where(ServerGroup.project_id == (auth.project_id or ""))
        async with svc.db.session() as s:
            rows = list((await s.execute(stmt)).scalars())
        return JSON({"server_groups": [await view(request, g) for g in rows]})

    @r.get("/v2.1/os-server-groups/{group_id}")
    async def show(request: Request) -> Response:
        return JSON({"server_group": await view(request, await visible(request, request.path_params["group_id"],
                                                                    "os_compute_api:os-server-groups:show"))})

    @r.delete("/v2.1/os-server-groups/{group_id}")
    async def remove(request: Request) -> Response:
        group = await visible(request, request.path_params["group_id"], "os_compute_api:os-server-groups:delete")
        async with svc.db.session() as s:
            await s.execute(delete(ServerGroupMember).where(ServerGroupMember.group_id == group.id))
            await s.execute(delete(ServerGroup).where(ServerGroup.id == group.id))
        return Response(status_code=204)

    return r
