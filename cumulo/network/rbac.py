"""RBAC policies (Neutron's ``rbac-policies``): the owner of a network lets one project (or every
project, ``*``) use it.  ``access_as_shared`` makes the network visible to the target and lets it
put ports on it (the network shows ``shared: true`` to that project); ``access_as_external`` makes
it an external network for the target (router gateways and floating IPs from it).

The network's ``shared`` and ``router:external`` flags and the wildcard entries are kept in step,
as Neutron keeps them: setting ``shared`` makes a ``*`` ``access_as_shared`` entry (clearing it
removes that entry), ``router:external`` a ``*`` ``access_as_external`` one; a policy that gives
external access to a network that is not external makes it external, and removing its last such
policy makes it internal again.  An entry cannot go (409 RbacPolicyInUse) while the project that
would lose access has ports on the network (shared) or routers using it as their gateway
(external), unless another entry still covers that project.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.db import Database, IntegrityError, is_duplicate
from cumulo.core.http.app import JSON, Router
from cumulo.core.http.authz import authorize
from cumulo.core.http.faults import BadRequest, Conflict, NotFound
from cumulo.network.access import (
    EXTERNAL,
    SHARED,
    WILDCARD,
    entry,
    no_gateways,
    ports_keep_access,
    reaches,
    routers_keep_access,
)
from cumulo.network.models import Network
from cumulo.network.rbac_models import RBACPolicy
from cumulo.network.requests import body, who
from cumulo.network.views import shape, shape_one

ACTIONS = (EXTERNAL, SHARED)
OBJECT_TYPES = ("network",)

def policy_view(p: RBACPolicy) -> dict[str, Any]:
    return {"id": p.id, "object_type": p.object_type, "object_id": p.object_id, "action": p.action,
            "target_tenant": p.target_project, "target_project": p.target_project,
            "tenant_id": p.project_id, "project_id": p.project_id}


def policy_target(p: RBACPolicy | None, project_id: str, target: str) -> dict[str, Any]:
    return {"project_id": p.project_id if p else project_id, "tenant_id": p.project_id if p else project_id,
            "target_tenant": target, "target_project": target}


def _target_of(item: dict[str, Any]) -> str:
    target = item.get("target_tenant", item.get("target_project"))
    if not isinstance(target, str) or not target or len(target) > 255:
        raise BadRequest("Invalid input for target_tenant. Reason: a project id or '*' of at most 255 characters "
                         "is required.")
    return target


def router(db: Database) -> Router:
    r = Router()

    async def visible_network(network_id: Any, project: str, admin: bool) -> Network:
        async with db.session() as s:
            net = await s.get(Network, network_id) if isinstance(network_id, str) else None
            seen = net is not None and (admin or (await s.execute(select(Network.id).where(
                Network.id == net.id, reaches(project)))).first() is not None)
        if not seen:
            raise NotFound(f"Network {network_id} could not be found.", kind="NetworkNotFound")
        assert net is not None
        return net

    async def get(policy_id: str, project: str, admin: bool) -> RBACPolicy:
        async with db.session() as s:
            row = await s.get(RBACPolicy, policy_id)
        if row is None or not (admin or row.project_id == project):
            raise NotFound(f"RBAC policy of type network with ID {policy_id} not found", kind="RbacPolicyNotFound")
        return row

    @r.route("/v2.0/rbac-policies", ["GET", "POST"])
    async def policies(request: Request) -> Response:
        project, admin = who(request)
        if request.method != "POST":
            authorize(request, "get_rbac_policy")
            stmt = select(RBACPolicy).order_by(RBACPolicy.created_at, RBACPolicy.id)
            if not admin:
                stmt = stmt.where(RBACPolicy.project_id == project)
            async with db.session() as s:
                rows = list((await s.execute(stmt)).scalars())
            return JSON(shape(request, [policy_view(p) for p in rows], "rbac_policies"))
        item = await body(request, "rbac_policy")
        for key in ("object_type", "object_id", "action"):
            if key not in item:
                raise BadRequest(f"Failed to parse request. Required attribute '{key}' not specified")
        if item["object_type"] not in OBJECT_TYPES:
            raise BadRequest(f"Invalid input for object_type. Reason: '{item['object_type']}' is not in "
                             f"{list(OBJECT_TYPES)}.")
        if item["action"] not in ACTIONS:
            raise BadRequest(f"Invalid input for action. Reason: '{item['action']}' is not in {list(ACTIONS)}.")
        target = _target_of(item)
        owner = str(item.get("project_id") or item.get("tenant_id") or project)
        authorize(request, "create_rbac_policy", policy_target(None, owner, target))
        authorize(request, "create_rbac_policy:target_tenant", policy_target(None, owner, target))
        net = await visible_network(item["object_id"], project, admin)
        if not admin and net.project_id != project:
            raise BadRequest("Invalid input for operation: Only admins can manipulate policies on networks they do "
                             "not own.", kind="InvalidInput")
        if owner != project and not admin:
            raise BadRequest("Invalid input for operation: only an admin may create policies for another project.",
                             kind="InvalidInput")
        row = entry(owner, net.id, item["action"], target)
        try:
            async with db.session() as s:
                s.add(row)
                if item["action"] == SHARED and target == WILDCARD:
                    await s.execute(update(Network).where(Network.id == net.id).values(shared=True))
                if item["action"] == EXTERNAL and not net.external:
                    await s.execute(update(Network).where(Network.id == net.id).values(external=True))
        except IntegrityError as exc:
            if not is_duplicate(exc):
                raise
            raise Conflict("An RBAC policy already exists with those values.", kind="DuplicateRbacPolicy") from None
        return JSON({"rbac_policy": policy_view(row)}, status_code=201)

    @r.route("/v2.0/rbac-policies/{policy_id}", ["GET", "PUT", "DELETE"])
    async def policy(request: Request) -> Response:
        project, admin = who(request)
        row = await get(request.path_params["policy_id"], project, admin)
        if request.method in ("GET", "HEAD"):
            authorize(request, "get_rbac_policy", policy_target(row, row.project_id, row.target_project))
            return JSON(shape_one(request, policy_view(row), "rbac_policy"))
        if request.method == "PUT":
            item = await body(request, "rbac_policy")
            for fixed in ("object_type", "object_id", "action", "project_id", "tenant_id"):
                if fixed in item and item[fixed] != getattr(row, "project_id" if fixed == "tenant_id" else fixed):
                    raise BadRequest(f"Cannot update read-only attribute {fixed}")
            target = _target_of(item) if "target_tenant" in item or "target_project" in item else row.target_project
            authorize(request, "update_rbac_policy", policy_target(row, row.project_id, target))
            authorize(request, "update_rbac_policy:target_tenant", policy_target(row, row.project_id, target))
            if target != row.target_project:
                try:
                    async with db.session() as s:
                        await _losing(s, row)
                        await s.execute(update(RBACPolicy).where(RBACPolicy.id == row.id).values(
                            target_project=target))
                        await _follow_wildcard(s, row.object_id)
                except IntegrityError as exc:
                    if not is_duplicate(exc):
                        raise
                    raise Conflict("An RBAC policy already exists with those values.",
                                   kind="DuplicateRbacPolicy") from None
                row = await get(row.id, project, True)
            return JSON(shape_one(request, policy_view(row), "rbac_policy"))
        assert request.method == "DELETE"
        authorize(request, "delete_rbac_policy", policy_target(row, row.project_id, row.target_project))
        async with db.session() as s:
            await _losing(s, row)
            await s.execute(delete(RBACPolicy).where(RBACPolicy.id == row.id))
            await _follow_wildcard(s, row.object_id)
            if row.action == EXTERNAL:
                left = (await s.execute(select(func.count()).select_from(RBACPolicy).where(
                    RBACPolicy.object_id == row.object_id, RBACPolicy.action == EXTERNAL))).scalar()
                if not left:
                    await no_gateways(s, row.object_id)
                    await s.execute(update(Network).where(Network.id == row.object_id).values(external=False))
        return Response(status_code=204)

    return r


async def _losing(s: AsyncSession, row: RBACPolicy) -> None:
    """The project ``row`` gives access to is about to lose it: refused while it depends on it."""
    net = await s.get(Network, row.object_id)
    if net is None or row.target_project == net.project_id:
        return
    if row.action == SHARED:
        await ports_keep_access(s, net, row.target_project)
    else:
        await routers_keep_access(s, net, row.target_project)


async def _follow_wildcard(s: AsyncSession, network_id: str) -> None:
    """The network's ``shared`` flag says whether a ``*`` shared entry exists."""
    wildcard = (await s.execute(select(RBACPolicy.id).where(and_(
        RBACPolicy.object_id == network_id, RBACPolicy.action == SHARED,
        RBACPolicy.target_project == WILDCARD)).limit(1))).first() is not None
    await s.execute(update(Network).where(Network.id == network_id).values(shared=wildcard))
