"""Network quotas: Neutron's defaults, per-project limits an admin sets, and the checks every
create runs (``-1`` means unlimited).

The API is Neutron's quotas extension: ``GET/PUT/DELETE /v2.0/quotas/{project_id}``, the list of
projects whose limits differ from the defaults, ``/default`` and ``/details`` (limit, used and
reserved per resource).  A member reads its own project's limits; only an admin changes them.
Usage is counted from the resources a project owns, so it can never drift from what exists.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

from sqlalchemy import delete, func, select
from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.db import Database, IntegrityError, is_duplicate
from cumulo.core.http.app import JSON, Router, auth_of, json_body
from cumulo.core.http.authz import authorize
from cumulo.core.http.faults import BadRequest, Conflict, NotFound
from cumulo.core.quota import turn as database_turn
from cumulo.network import models
from cumulo.network.policies import VERB

# Neutron's default quotas (the Operations Guide's table); subnet pools are unlimited by default
DEFAULT_QUOTAS = {"network": 100, "subnet": 100, "port": 500, "router": 10, "floatingip": 50,
                  "security_group": 10, "security_group_rule": 100, "subnetpool": -1}
MODELS: dict[str, Any] = {"network": models.Network, "subnet": models.Subnet, "port": models.Port,
                          "router": models.Router, "floatingip": models.FloatingIP,
                          "security_group": models.SecurityGroup, "security_group_rule": models.SecurityGroupRule,
                          "subnetpool": models.SubnetPool}
MAX_LIMIT = 2**31 - 1


async def limits(db: Database, project: str) -> dict[str, int]:
    """The project's effective limit of every resource."""
    async with db.session() as s:
        rows = (await s.execute(select(models.Quota).where(models.Quota.project_id == project))).scalars()
        overrides = {q.resource: q.quota_limit for q in rows}
    return {name: overrides.get(name, default) for name, default in DEFAULT_QUOTAS.items()}


async def used(db: Database, resource: str, project: str) -> int:
    model = MODELS[resource]
    async with db.session() as s:
        return (await s.execute(select(func.count()).select_from(model).where(
            model.project_id == project))).scalar() or 0


async def check(db: Database, resource: str, project: str, wanted: int = 1) -> None:
    """Refuse (409 OverQuota, as Neutron does) a create of ``wanted`` more that would pass the limit."""
    limit = (await limits(db, project))[resource]
    if limit >= 0 and await used(db, resource, project) + wanted > limit:
        raise Conflict(f"Quota exceeded for resources: ['{resource}'].", kind="OverQuota")


def turn(db: Database, resource: str, project: str) -> AbstractAsyncContextManager[None]:
    """Check, create and commit ``resource`` of ``project`` inside this (core.quota.turn): racing
    creates, through this API or Compute's proxies, take turns and get exactly the room left."""
    return database_turn(db, f"network:{resource}:{project}")


async def over(db: Database, resource: str, project: str) -> bool:
    """After a create: whether racing creates together went past the limit (the caller undoes its own)."""
    limit = (await limits(db, project))[resource]
    return limit >= 0 and await used(db, resource, project) > limit


def quota_value(name: str, value: Any) -> int:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequest(f"Invalid input for {name}. Reason: '{value}' is not an integer.")
    if not -1 <= value <= MAX_LIMIT:
        raise BadRequest(f"Invalid input for {name}. Reason: '{value}' should be between -1 (unlimited) and "
                         f"{MAX_LIMIT}.")
    return value


def router(db: Database) -> Router:
    r = Router()

    def caller(request: Request, project_id: str | None = None, rule: str = "get_quota") -> tuple[str, bool]:
        auth = auth_of(request)
        project, admin = auth.project_id or "", auth.is_admin()
        authorize(request, rule, {"project_id": project if project_id is None else project_id})
        return project, admin

    async def overridden() -> dict[str, dict[str, int]]:
        async with db.session() as s:
            rows = list((await s.execute(select(models.Quota))).scalars())
        out: dict[str, dict[str, int]] = {}
        for q in rows:
            out.setdefault(q.project_id, dict(DEFAULT_QUOTAS))[q.resource] = q.quota_limit
        return out

    @r.get("/v2.0/quotas")
    async def list_quotas(request: Request) -> Response:
        project, admin = caller(request)
        items = [{**values, "project_id": p, "tenant_id": p} for p, values in sorted((await overridden()).items())
                 if admin or p == project]
        return JSON({"quotas": items})

    @r.route("/v2.0/quotas/{project_id}", ["GET", "PUT", "DELETE"])
    async def one(request: Request) -> Response:
        project_id = request.path_params["project_id"]
        if request.method == "GET":
            caller(request, project_id)
            return JSON({"quota": await limits(db, project_id)})
        caller(request, project_id, f"{VERB[request.method]}_quota")
        if request.method == "DELETE":
            async with db.session() as s:
                gone = (await s.execute(delete(models.Quota).where(models.Quota.project_id == project_id))).rowcount
            if not gone:
                raise NotFound(f"Quota for tenant {project_id} could not be found.", kind="TenantQuotaNotFound")
            return Response(status_code=204)
        data = await json_body(request)
        item = data.get("quota") if isinstance(data, dict) else None
        if not isinstance(item, dict):
            raise BadRequest("Resource body required: a 'quota' object.")
        item = dict(item)
        check_limit = item.pop("check_limit", False)
        force = item.pop("force", False)
        unknown = sorted(set(item) - set(DEFAULT_QUOTAS))
        if unknown:
            raise BadRequest(f"Unrecognized attribute(s) '{', '.join(unknown)}'")
        wanted = {name: quota_value(name, value) for name, value in item.items()}
        if check_limit is True and force is not True:
            under = [name for name, value in wanted.items() if 0 <= value < await used(db, name, project_id)]
            if under:
                raise Conflict(f"Change would make usage less than 0 for the following resources: {under}: the "
                               "new limits are below what the project already uses.", kind="InvalidQuotaValue")
        for name, value in wanted.items():
            for _ in range(3):  # a concurrent first write of the same row: update it instead
                try:
                    async with db.session() as s:
                        row = await s.get(models.Quota, (project_id, name))
                        if row is None:
                            s.add(models.Quota(project_id=project_id, resource=name, quota_limit=value))
                        else:
                            row.quota_limit = value
                    break
                except IntegrityError as exc:
                    if not is_duplicate(exc):
                        raise
        return JSON({"quota": await limits(db, project_id)})

    @r.get("/v2.0/quotas/{project_id}/default")
    async def defaults(request: Request) -> Response:
        caller(request, request.path_params["project_id"])
        return JSON({"quota": dict(DEFAULT_QUOTAS)})

    @r.get("/v2.0/quotas/{project_id}/details")
    async def details(request: Request) -> Response:
        project_id = request.path_params["project_id"]
        caller(request, project_id)
        current = await limits(db, project_id)
        return JSON({"quota": {name: {"limit": limit, "used": await used(db, name, project_id), "reserved": 0}
                               for name, limit in current.items()}})

    return r
