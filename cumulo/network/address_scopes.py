"""Address scopes (Neutron's ``address-scope``): a named space of IPv4 or IPv6 addresses that
subnet pools join with ``address_scope_id``.  A pool's prefixes must not overlap another pool's
of the same scope, and its IP version must be the scope's; a network shows the scope of its
subnets' pools as ``ipv4_address_scope`` / ``ipv6_address_scope``.  A scope that pools still use
cannot be deleted (409 AddressScopeInUse).
"""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any

from sqlalchemy import func, select, update
from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.db import Database
from cumulo.core.http.app import JSON, Router
from cumulo.core.http.authz import allowed, authorize
from cumulo.core.http.faults import BadRequest, Conflict, Forbidden, NotFound
from cumulo.network.models import Subnet, SubnetPool
from cumulo.network.rbac_models import AddressScope
from cumulo.network.requests import body, who
from cumulo.network.views import shape, shape_one

RULES = {"GET": "get_address_scope", "HEAD": "get_address_scope", "PUT": "update_address_scope",
         "DELETE": "delete_address_scope"}


def scope_view(a: AddressScope) -> dict[str, Any]:
    return {"id": a.id, "name": a.name, "ip_version": a.ip_version, "shared": a.shared,
            "tenant_id": a.project_id, "project_id": a.project_id}


def scope_target(a: AddressScope) -> dict[str, Any]:
    return {"project_id": a.project_id, "tenant_id": a.project_id, "shared": bool(a.shared)}


async def get_scope(db: Database, scope_id: Any, project: str, admin: bool) -> AddressScope:
    async with db.session() as s:
        row = await s.get(AddressScope, scope_id) if isinstance(scope_id, str) else None
    if row is None or not (admin or row.shared or row.project_id == project):
        raise NotFound(f"Address scope {scope_id} could not be found.", kind="AddressScopeNotFound")
    return row


async def check_pool_scope(db: Database, scope_id: str | None, pool_id: str | None, version: int,
                           prefixes: list[str], project: str, admin: bool) -> str | None:
    """The ``address_scope_id`` a subnet pool asks for, checked: visible to the caller, of the
    pool's IP version, and no prefix of the pool overlapping another pool of the scope (400)."""
    if scope_id is None:
        return None
    scope = await get_scope(db, scope_id, project, admin)
    if scope.ip_version != version:
        raise BadRequest(f"Illegal subnetpool association: subnetpool {pool_id or '(new)'} cannot be associated "
                         f"with address scope {scope.id} because subnetpool ip_version is not {scope.ip_version}.",
                         kind="IllegalSubnetPoolIpVersionAssociationToAddressScope")
    mine = [ipaddress.ip_network(p) for p in prefixes]
    async with db.session() as s:
        others = (await s.execute(select(SubnetPool.id, SubnetPool.prefixes).where(
            SubnetPool.address_scope_id == scope.id))).all()
    for other_id, other_prefixes in others:
        if other_id == pool_id:
            continue
        for p in other_prefixes or []:
            theirs = ipaddress.ip_network(p)
            if any(m.overlaps(theirs) for m in mine):  # type: ignore[arg-type]
                raise BadRequest(f"Illegal subnetpool association: prefix {theirs} of subnet pool {other_id} "
                                 f"overlaps this pool's prefixes in address scope {scope.id}; pools of one "
                                 "address scope must not overlap.", kind="IllegalSubnetPoolAssociationToAddressScope")
    return scope.id


async def of_networks(db: Database, network_ids: list[str]) -> dict[str, dict[str, str | None]]:
    """Each network's address scope per IP version ("4", "6"), from its subnets' pools."""
    out: dict[str, dict[str, str | None]] = {}
    if not network_ids:
        return out
    async with db.session() as s:
        rows = (await s.execute(select(Subnet.network_id, SubnetPool.ip_version, SubnetPool.address_scope_id).join(
            SubnetPool, SubnetPool.id == Subnet.subnetpool_id).where(
            Subnet.network_id.in_(network_ids), SubnetPool.address_scope_id.is_not(None)))).all()
    for network_id, version, scope_id in rows:
        out.setdefault(network_id, {})[str(version)] = scope_id
    return out


def router(db: Database) -> Router:
    r = Router()

    def values_of(request: Request, item: dict[str, Any], create: bool) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if "name" in item:
            if not isinstance(item["name"], str) or len(item["name"]) > 255:
                raise BadRequest("Invalid input for name. Reason: a string of at most 255 characters is required.")
            values["name"] = item["name"]
        if "shared" in item:
            if not isinstance(item["shared"], bool):
                raise BadRequest(f"Invalid input for shared. Reason: '{item['shared']}' is not a valid boolean value.")
            rule = "create_address_scope:shared" if create else "update_address_scope:shared"
            if not allowed(request, rule):
                raise Forbidden(f"({rule}) is disallowed by policy")
            values["shared"] = item["shared"]
        return values

    @r.route("/v2.0/address-scopes", ["GET", "POST"])
    async def scopes(request: Request) -> Response:
        project, admin = who(request)
        if request.method != "POST":
            authorize(request, "get_address_scope")
            stmt = select(AddressScope).order_by(AddressScope.created_at, AddressScope.id)
            if not admin:
                stmt = stmt.where((AddressScope.project_id == project) | AddressScope.shared.is_(True))
            async with db.session() as s:
                rows = list((await s.execute(stmt)).scalars())
            return JSON(shape(request, [scope_view(a) for a in rows], "address_scopes"))
        item = await body(request, "address_scope")
        owner = str(item.get("project_id") or item.get("tenant_id") or project)
        if owner != project and not admin:
            raise Forbidden("Only an admin may create address scopes for another project.")
        authorize(request, "create_address_scope", {"project_id": owner, "tenant_id": owner})
        version = item.get("ip_version")
        if isinstance(version, str) and version.isdigit():
            version = int(version)
        if version not in (4, 6) or isinstance(version, bool):
            raise BadRequest(f"Invalid input for ip_version. Reason: '{item.get('ip_version')}' is not in [4, 6].")
        values = values_of(request, item, True)
        row = AddressScope(id=str(uuid.uuid4()), project_id=owner, ip_version=version,
                           **{"name": "", "shared": False, **values})
        async with db.session() as s:
            s.add(row)
        return JSON({"address_scope": scope_view(row)}, status_code=201)

    @r.route("/v2.0/address-scopes/{scope_id}", ["GET", "PUT", "DELETE"])
    async def scope(request: Request) -> Response:
        project, admin = who(request)
        row = await get_scope(db, request.path_params["scope_id"], project, admin)
        if request.method != "GET" and row.project_id != project and not admin:
            raise NotFound(f"Address scope {row.id} could not be found.", kind="AddressScopeNotFound")
        authorize(request, RULES[request.method], scope_target(row))
        if request.method == "DELETE":
            async with db.session() as s:
                used = (await s.execute(select(func.count()).select_from(SubnetPool).where(
                    SubnetPool.address_scope_id == row.id))).scalar()
                if used:
                    raise Conflict(f"Unable to complete operation on address scope {row.id}. There are one or more "
                                   "subnet pools in use on the address scope.", kind="AddressScopeInUse")
                await s.delete(await s.get(AddressScope, row.id))
            return Response(status_code=204)
        if request.method == "PUT":
            item = await body(request, "address_scope")
            for fixed in ("ip_version", "project_id", "tenant_id"):
                if fixed in item and item[fixed] != getattr(row, "project_id" if fixed == "tenant_id" else fixed):
                    raise BadRequest(f"Cannot update read-only attribute {fixed}")
            values = values_of(request, item, False)
            if values.get("shared") is False and row.shared:
                raise BadRequest(f"Unable to update address scope {row.id} : Shared address scope can't be unshared.",
                                 kind="AddressScopeUpdateError")
            if values:
                async with db.session() as s:
                    await s.execute(update(AddressScope).where(AddressScope.id == row.id).values(**values))
                row = await get_scope(db, row.id, project, True)
        return JSON(shape_one(request, scope_view(row), "address_scope"))

    return r
