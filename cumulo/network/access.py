"""Who may use a network besides its owner, as its RBAC entries say (the data side of
``cumulo.network.rbac``, read by every lookup and listing of networks): the SQL conditions of what
a project reaches, the actions granted to it, and the entries that follow the network's ``shared``
and ``router:external`` flags."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from cumulo.core.db import Database
from cumulo.core.http.faults import Conflict
from cumulo.network.models import Network, Port, Subnet
from cumulo.network.models import Router as RouterRow
from cumulo.network.rbac_models import RBACPolicy

SHARED, EXTERNAL = "access_as_shared", "access_as_external"
WILDCARD = "*"
ROUTER_GATEWAY = "network:router_gateway"


def reaches(project: str) -> Any:
    """The SQL condition of the networks ``project`` may see: its own, those shared with every
    project, and those an RBAC entry opens to it or to everyone."""
    granted = exists().where(RBACPolicy.object_type == "network", RBACPolicy.object_id == Network.id,
                             RBACPolicy.target_project.in_([WILDCARD, project]))
    return or_(Network.project_id == project, Network.shared.is_(True), granted)


def shared_here(project: str) -> Any:
    """The SQL condition of the networks an ``access_as_shared`` entry shares with ``project``."""
    return exists().where(RBACPolicy.object_type == "network", RBACPolicy.object_id == Network.id,
                          RBACPolicy.action == SHARED, RBACPolicy.target_project.in_([WILDCARD, project]))


async def grants(db: Database, network_ids: list[str], project: str) -> dict[str, set[str]]:
    """For each network, the actions RBAC entries give ``project`` (or everyone) on it."""
    out: dict[str, set[str]] = {n: set() for n in network_ids}
    if not network_ids:
        return out
    async with db.session() as s:
        for object_id, action in (await s.execute(select(RBACPolicy.object_id, RBACPolicy.action).where(
                RBACPolicy.object_type == "network", RBACPolicy.object_id.in_(network_ids),
                RBACPolicy.target_project.in_([WILDCARD, project])))).all():
            out[object_id].add(action)
    return out


async def shared_with(db: Database, network_ids: list[str], project: str) -> set[str]:
    """The networks that show ``shared: true`` to ``project`` because an entry shares them with it."""
    return {n for n, actions in (await grants(db, network_ids, project)).items() if SHARED in actions}


def entry(project_id: str, object_id: str, action: str, target: str) -> RBACPolicy:
    return RBACPolicy(id=str(uuid.uuid4()), project_id=project_id, object_type="network", object_id=object_id,
                      action=action, target_project=target)


def wildcard_entries(net: Network) -> list[RBACPolicy]:
    """The entries a new network's ``shared`` and ``router:external`` flags stand for."""
    return [entry(net.project_id, net.id, action, WILDCARD)
            for flag, action in ((net.shared, SHARED), (net.external, EXTERNAL)) if flag]


async def set_flags(s: AsyncSession, net: Network, values: dict[str, Any]) -> None:
    """A network update that sets ``shared`` or ``external`` (in ``values``): the entries follow,
    inside the update's session ``s``; a change that would take access away from a project using
    the network is refused first."""
    if "shared" in values and values["shared"] != net.shared:
        if values["shared"]:
            s.add(entry(net.project_id, net.id, SHARED, WILDCARD))
        else:
            await ports_keep_access(s, net, WILDCARD)
            await s.execute(delete(RBACPolicy).where(RBACPolicy.object_id == net.id, RBACPolicy.action == SHARED,
                                                     RBACPolicy.target_project == WILDCARD))
    if "external" in values and values["external"] != net.external:
        if values["external"]:
            s.add(entry(net.project_id, net.id, EXTERNAL, WILDCARD))
        else:
            await no_gateways(s, net.id)
            await s.execute(delete(RBACPolicy).where(RBACPolicy.object_id == net.id, RBACPolicy.action == EXTERNAL))


async def forget(s: AsyncSession, network_id: str) -> None:
    """The network is being deleted: its entries go with it."""
    await s.execute(delete(RBACPolicy).where(RBACPolicy.object_type == "network", RBACPolicy.object_id == network_id))


async def ports_keep_access(s: AsyncSession, net: Network, target: str) -> None:
    """409 when ports of projects other than the owner depend on the shared entry for ``target``."""
    others = select(RBACPolicy.target_project).where(
        RBACPolicy.object_id == net.id, RBACPolicy.action == SHARED, RBACPolicy.target_project != target)
    if target == WILDCARD:
        allowed = {net.project_id, "", *(await s.execute(others)).scalars()}
        ports = select(Port.id).where(Port.network_id == net.id, Port.project_id.not_in(allowed))
        subnets = select(Subnet.id).where(Subnet.network_id == net.id, Subnet.project_id.not_in(allowed))
    else:
        if WILDCARD in set((await s.execute(others)).scalars()):
            return
        ports = select(Port.id).where(Port.network_id == net.id, Port.project_id == target)
        subnets = select(Subnet.id).where(Subnet.network_id == net.id, Subnet.project_id == target)
    if (await s.execute(ports.limit(1))).first() or (await s.execute(subnets.limit(1))).first():
        raise Conflict(f"RBAC policy on object {net.id} cannot be removed because other objects depend on it.\n"
                       f"Details: Unable to reconfigure sharing settings for network {net.id}. Multiple tenants "
                       "are using it.", kind="RbacPolicyInUse")


async def routers_keep_access(s: AsyncSession, net: Network, target: str) -> None:
    """409 when routers of projects that would lose external access have their gateway here."""
    entries = select(RBACPolicy.target_project).where(
        RBACPolicy.object_id == net.id, RBACPolicy.action == EXTERNAL, RBACPolicy.target_project != target)
    others = set((await s.execute(entries)).scalars())
    gateways = select(RouterRow.id).where(RouterRow.gateway_network_id == net.id)
    if target == WILDCARD:
        gateways = gateways.where(RouterRow.project_id.not_in({net.project_id, *others}))
    elif WILDCARD in others:
        return
    else:
        gateways = gateways.where(RouterRow.project_id == target)
    if (await s.execute(gateways.limit(1))).first():
        raise Conflict(f"RBAC policy on object {net.id} cannot be removed because other objects depend on it.\n"
                       "Details: There are routers attached to this network that depend on this policy for "
                       "access.", kind="RbacPolicyInUse")


async def no_gateways(s: AsyncSession, network_id: str) -> None:
    used = (await s.execute(select(Port.id).where(Port.network_id == network_id,
                                                  Port.device_owner == ROUTER_GATEWAY).limit(1))).first()
    if used:
        raise Conflict(f"External network {network_id} cannot be updated to be made non-external, since it has "
                       "existing gateway ports.", kind="ExternalNetworkInUse")
