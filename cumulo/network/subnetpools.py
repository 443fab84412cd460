"""Subnet pools (Neutron's ``subnet_allocation``): address space a subnet takes its CIDR from.

A pool holds prefixes of one IP version (adjacent ones merged) and the bounds of what it hands
out (``min_prefixlen`` <= ``default_prefixlen`` <= ``max_prefixlen``).  A subnet created with a
``subnetpool_id`` and no ``cidr`` gets the lowest free block of ``prefixlen`` (or the pool's
default) bits; one with a ``cidr`` gets it only if it lies in the pool and is free.  Subnets of
one pool never overlap, across all networks: a create that loses a race for a block finds out
when it checks after writing, steps back, and takes the next one.
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
from cumulo.network import address_scopes, quotas, tags
from cumulo.network.models import Subnet, SubnetPool
from cumulo.network.policies import VERB
from cumulo.network.requests import body, who
from cumulo.network.views import shape, shape_one

IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network
BOUNDS = {4: (8, 32), 6: (64, 128)}  # Neutron's default min_prefixlen, max_prefixlen


def stamp(value: Any) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def pool_view(p: SubnetPool) -> dict[str, Any]:
    return {"id": p.id, "name": p.name, "prefixes": list(p.prefixes or []), "ip_version": p.ip_version,
            "default_prefixlen": p.default_prefixlen, "min_prefixlen": p.min_prefixlen,
            "max_prefixlen": p.max_prefixlen, "shared": p.shared, "is_default": p.is_default,
            "address_scope_id": p.address_scope_id, "default_quota": p.default_quota, "description": p.description,
            "tags": p.tags or [], "revision_number": p.revision_number, "created_at": stamp(p.created_at),
            "updated_at": stamp(p.updated_at), "tenant_id": p.project_id, "project_id": p.project_id}


def check_prefixes(value: Any) -> list[IPNet]:
    if not isinstance(value, list) or not value:
        raise BadRequest("Invalid input for prefixes. Reason: a non-empty list of CIDRs is required.")
    nets: list[IPNet] = []
    for prefix in value:
        try:
            nets.append(ipaddress.ip_network(str(prefix), strict=False))
        except ValueError:
            raise BadRequest(f"Invalid input for prefixes. Reason: '{prefix}' is not a valid IP subnet.") from None
    if len({n.version for n in nets}) > 1:
        raise BadRequest("Cannot mix IPv4 and IPv6 prefixes in a subnet pool.", kind="PrefixVersionMismatch")
    return list(ipaddress.collapse_addresses(nets))  # type: ignore[arg-type]


def prefixlen_of(value: Any, name: str) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequest(f"Invalid input for {name}. Reason: '{value}' is not an integer.")
    return value


def check_bounds(version: int, low: int, default: int, high: int) -> None:
    bits = 32 if version == 4 else 128
    if not 0 <= low <= default <= high <= bits:
        raise BadRequest(f"Illegal prefix bounds: min_prefixlen {low}, default_prefixlen {default} and "
                         f"max_prefixlen {high} must satisfy 0 <= min <= default <= max <= {bits}.",
                         kind="IllegalSubnetPoolPrefixBounds")


async def get_pool(db: Database, pool_id: str, project: str, admin: bool) -> SubnetPool:
    async with db.session() as s:
        row = await s.get(SubnetPool, pool_id)
    if row is None or not (admin or row.shared or row.project_id == project):
        raise NotFound(f"Subnet pool {pool_id} could not be found.", kind="SubnetPoolNotFound")
    return row


async def taken(db: Database, pool_id: str, but: str | None = None) -> list[tuple[IPNet, Any, str]]:
    """The CIDRs the pool's subnets hold, with when and by which subnet (oldest first)."""
    async with db.session() as s:
        rows = (await s.execute(select(Subnet.cidr, Subnet.created_at, Subnet.id).where(
            Subnet.subnetpool_id == pool_id).order_by(Subnet.created_at, Subnet.id))).all()
    return [(ipaddress.ip_network(c), at, i) for c, at, i in rows if i != but]


def free_blocks(prefixes: list[IPNet], used: list[IPNet]) -> list[IPNet]:
    """The pool's space minus what its subnets hold, as the largest aligned blocks, lowest first."""
    free = list(prefixes)
    for held in used:
        rest: list[IPNet] = []
        for block in free:
            if not block.overlaps(held):
                rest.append(block)
            elif held.prefixlen > block.prefixlen:  # held lies inside: keep the rest of the block
                rest.extend(block.address_exclude(held))  # type: ignore[arg-type]
        free = rest
    return sorted(free, key=lambda n: (int(n.network_address), n.prefixlen))


async def pool_for(db: Database, item: dict[str, Any], project: str, admin: bool) -> SubnetPool | None:
    """The pool a subnet request names (``subnetpool_id`` or ``use_default_subnetpool``), if any."""
    pool_id = item.get("subnetpool_id")
    if pool_id is not None:
        return await get_pool(db, str(pool_id), project, admin)
    if item.get("use_default_subnetpool") is True:
        version = item.get("ip_version", 4)
        async with db.session() as s:
            row = (await s.execute(select(SubnetPool).where(SubnetPool.is_default.is_(True),
                                                            SubnetPool.ip_version == version))).scalars().first()
        if row is None:
            raise BadRequest(f"No default subnetpool found for IPv{version}.", kind="BadRequest")
        return row
    return None


async def carve(db: Database, pool: SubnetPool, item: dict[str, Any], but: str | None = None) -> IPNet:
    """The CIDR a subnet gets from ``pool``: the one asked for if it is in the pool and free, else
    the lowest free block of the asked (or default) prefix length."""
    version = item.get("ip_version", pool.ip_version)
    if version != pool.ip_version:
        raise BadRequest(f"Bad subnet request: ip_version {version} does not match subnet pool {pool.id} "
                         f"(IPv{pool.ip_version}).")
    prefixes = [ipaddress.ip_network(p) for p in pool.prefixes or []]
    used = [net for net, _, _ in await taken(db, pool.id, but)]
    if item.get("cidr") is not None:
        try:
            cidr = ipaddress.ip_network(str(item["cidr"]), strict=False)
        except ValueError:
            raise BadRequest(f"Invalid input for cidr. Reason: '{item['cidr']}' is not a valid IP subnet.") from None
        if cidr.version != pool.ip_version or not any(cidr.subnet_of(p) for p in prefixes):  # type: ignore[arg-type]
            raise BadRequest(f"Bad subnet request: cidr {cidr} is not within the prefixes of subnet pool {pool.id}.",
                             kind="SubnetAllocationError")
        if not pool.min_prefixlen <= cidr.prefixlen <= pool.max_prefixlen:
            raise BadRequest(f"Unable to allocate subnet with prefix length {cidr.prefixlen}: subnet pool {pool.id} "
                             f"allows {pool.min_prefixlen} to {pool.max_prefixlen}.",
                             kind="MinPrefixSubnetAllocationError" if cidr.prefixlen < pool.min_prefixlen
                             else "MaxPrefixSubnetAllocationError")
        if any(cidr.overlaps(u) for u in used):
            raise Conflict(f"Failed to allocate subnet: {cidr} overlaps a subnet already allocated from subnet pool "
                           f"{pool.id}.", kind="SubnetAllocationError")
        return cidr
    length = prefixlen_of(item.get("prefixlen", pool.default_prefixlen), "prefixlen")
    if not pool.min_prefixlen <= length <= pool.max_prefixlen:
        raise BadRequest(f"Unable to allocate subnet with prefix length {length}: subnet pool {pool.id} allows "
                         f"{pool.min_prefixlen} to {pool.max_prefixlen}.",
                         kind="MinPrefixSubnetAllocationError" if length < pool.min_prefixlen
                         else "MaxPrefixSubnetAllocationError")
    for block in free_blocks(prefixes, used):
        if block.prefixlen <= length:
            return next(block.subnets(new_prefix=length))
    raise Conflict(f"Failed to allocate subnet: no free /{length} is left in subnet pool {pool.id}.",
                   kind="SubnetAllocationError")


async def lost_race(db: Database, subnet: Subnet) -> bool:
    """Whether an older subnet of the same pool overlaps ``subnet`` (then ``subnet`` must go)."""
    mine = ipaddress.ip_network(subnet.cidr)
    for net, _, other in await taken(db, str(subnet.subnetpool_id)):
        if other == subnet.id:
            return False  # every older one has been compared
        if net.overlaps(mine):
            return True
    return False


def router(db: Database) -> Router:
    r = Router()

    def text(item: dict[str, Any], values: dict[str, Any]) -> None:
        for key in ("name", "description"):
            if key in item:
                if not isinstance(item[key], str) or len(item[key]) > 255:
                    raise BadRequest(f"Invalid input for {key}. Reason: a string of at most 255 characters is "
                                     "required.")
                values[key] = item[key]

    async def check_default(version: int, but: str | None) -> None:
        async with db.session() as s:
            other = (await s.execute(select(SubnetPool.id).where(
                SubnetPool.is_default.is_(True), SubnetPool.ip_version == version,
                SubnetPool.id != (but or "")))).first()
        if other:
            raise BadRequest(f"Invalid input for operation: a default subnet pool for IPv{version} already exists "
                             f"({other[0]}).", kind="InvalidInput")

    @r.route("/v2.0/subnetpools", ["GET", "POST"])
    async def pools(request: Request) -> Response:
        project, admin = who(request)
        if request.method == "POST":
            item = await body(request, "subnetpool")
            owner = str(item.get("project_id") or item.get("tenant_id") or project)
            if owner != project and not admin:
                raise Forbidden("Only an admin may create subnet pools for another project.")
            authorize(request, "create_subnetpool", {"project_id": owner})
            for flag in ("shared", "is_default"):
                if flag in item and not isinstance(item[flag], bool):
                    raise BadRequest(f"Invalid input for {flag}. Reason: '{item[flag]}' is not a valid boolean "
                                     "value.")
                if item.get(flag) and not allowed(request, f"create_subnetpool:{flag}"):
                    raise Forbidden(f"(rule:create_subnetpool:{flag}) is disallowed by policy")
            prefixes = check_prefixes(item.get("prefixes"))
            version = prefixes[0].version
            scope_id = await address_scopes.check_pool_scope(db, item.get("address_scope_id"), None, version,
                                                             [str(p) for p in prefixes], project, admin)
            low, high = BOUNDS[version]
            low = prefixlen_of(item.get("min_prefixlen", low), "min_prefixlen")
            high = prefixlen_of(item.get("max_prefixlen", high), "max_prefixlen")
            default = prefixlen_of(item.get("default_prefixlen", low), "default_prefixlen")
            check_bounds(version, low, default, high)
            if item.get("is_default"):
                await check_default(version, None)
            values: dict[str, Any] = {}
            text(item, values)
            if "tags" in item:
                values["tags"] = tags.check_tags(item["tags"])
            await quotas.check(db, "subnetpool", owner)
            row = SubnetPool(id=str(uuid.uuid4()), project_id=owner, ip_version=version,
                             prefixes=[str(p) for p in prefixes], min_prefixlen=low, max_prefixlen=high,
                             default_prefixlen=default, shared=item.get("shared", False),
                             is_default=item.get("is_default", False), address_scope_id=scope_id, **values)
            async with db.session() as s:
                s.add(row)
            return JSON({"subnetpool": pool_view(row)}, status_code=201)
        authorize(request, "get_subnetpool")
        stmt = select(SubnetPool).order_by(SubnetPool.created_at)
        if not admin:
            stmt = stmt.where((SubnetPool.project_id == project) | SubnetPool.shared.is_(True))
        async with db.session() as s:
            rows = list((await s.execute(stmt)).scalars())
        return JSON(shape(request, [pool_view(p) for p in rows], "subnetpools"))

    @r.route("/v2.0/subnetpools/{pool_id}", ["GET", "PUT", "DELETE"])
    async def pool(request: Request) -> Response:
        project, admin = who(request)
        row = await get_pool(db, request.path_params["pool_id"], project, admin)
        if request.method != "GET" and row.project_id != project and not admin:
            raise Forbidden(f"(rule:{request.method == 'PUT' and 'update' or 'delete'}_subnetpool) is disallowed "
                            f"by policy: subnet pool {row.id} belongs to another project.")
        authorize(request, f"{VERB[request.method]}_subnetpool", {"project_id": row.project_id, "shared": row.shared})
        if request.method == "DELETE":
            async with db.session() as s:
                used = (await s.execute(select(func.count()).select_from(Subnet).where(
                    Subnet.subnetpool_id == row.id))).scalar()
                if used:
                    raise Conflict(f"Unable to complete operation on subnet pool {row.id}: {used} subnet(s) are "
                                   "allocated from it.", kind="SubnetPoolInUse")
                await s.delete(await s.get(SubnetPool, row.id))
            return Response(status_code=204)
        if request.method == "PUT":
            item = await body(request, "subnetpool")
            for fixed in ("ip_version", "shared", "project_id", "tenant_id"):
                if fixed in item and item[fixed] != getattr(row, "project_id" if fixed == "tenant_id" else fixed):
                    raise BadRequest(f"Cannot update read-only attribute {fixed}")
            values: dict[str, Any] = {}
            text(item, values)
            if "prefixes" in item:
                prefixes = check_prefixes(item["prefixes"])
                if prefixes[0].version != row.ip_version:
                    raise BadRequest("Cannot mix IPv4 and IPv6 prefixes in a subnet pool.",
                                     kind="PrefixVersionMismatch")
                for old in row.prefixes or []:
                    if not any(ipaddress.ip_network(old).subnet_of(p) for p in prefixes):  # type: ignore[arg-type]
                        raise BadRequest(f"Illegal update to prefixes: prefix {old} would be removed; prefixes may "
                                         "only be added or extended.", kind="IllegalSubnetPoolPrefixUpdate")
                values["prefixes"] = [str(p) for p in prefixes]
            low = prefixlen_of(item.get("min_prefixlen", row.min_prefixlen), "min_prefixlen")
            high = prefixlen_of(item.get("max_prefixlen", row.max_prefixlen), "max_prefixlen")
            default = prefixlen_of(item.get("default_prefixlen", row.default_prefixlen), "default_prefixlen")
            check_bounds(row.ip_version, low, default, high)
            values.update(min_prefixlen=low, max_prefixlen=high, default_prefixlen=default)
            if "address_scope_id" in item or ("prefixes" in values and row.address_scope_id):
                values["address_scope_id"] = await address_scopes.check_pool_scope(
                    db, item.get("address_scope_id", row.address_scope_id), row.id, row.ip_version,
                    values.get("prefixes", row.prefixes), project, admin)
            if "is_default" in item:
                if not isinstance(item["is_default"], bool):
                    raise BadRequest(f"Invalid input for is_default. Reason: '{item['is_default']}' is not a valid "
                                     "boolean value.")
                if item["is_default"] != row.is_default and not allowed(request, "update_subnetpool:is_default"):
                    raise Forbidden("(rule:update_subnetpool:is_default) is disallowed by policy")
                if item["is_default"]:
                    await check_default(row.ip_version, row.id)
                values["is_default"] = item["is_default"]
            async with db.session() as s:
                await s.execute(update(SubnetPool).where(SubnetPool.id == row.id).values(
                    revision_number=SubnetPool.revision_number + 1, **values))
            row = await get_pool(db, row.id, project, True)
        return JSON(shape_one(request, pool_view(row), "subnetpool"))

    return r
