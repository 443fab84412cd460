"""A first topology for a new cloud, as devstack makes one: the external network ``public`` (its
outside is the namespace ``<prefix>-ext``) and, in the demo project, the network ``private``
behind router ``router1`` whose gateway is on ``public``.  Made only while the cloud has no
network at all, so an operator's own topology is never touched."""

from __future__ import annotations

import ipaddress
import logging
import uuid
from typing import Any

from sqlalchemy import func, select

from cumulo.core.db import Database
from cumulo.identity.service import IdentityService
from cumulo.network.ipam import Ipam, pools_of
from cumulo.network.models import Network, Router

LOG = logging.getLogger(__name__)


async def first_topology(db: Database, svc: Ipam, identity: IdentityService, cfg: Any) -> None:
    async with db.session() as s:
        if (await s.execute(select(func.count()).select_from(Network))).scalar():
            return
    projects = await identity.project_ids([cfg.bootstrap.admin_project, cfg.bootstrap.demo_project],
                                          cfg.identity.default_domain_id)
    admin, demo = projects.get(cfg.bootstrap.admin_project), projects.get(cfg.bootstrap.demo_project)
    if admin is None or demo is None:
        return
    public = await svc.create_network({"name": "public", "project_id": admin, "external": True, "mtu": 1500,
                                       "network_type": "flat", "physical_network": "public", "segment_id": None})
    public_sub = await subnet(svc, public, "public-subnet", cfg.network.public_cidr, admin, dhcp=False)
    private = await svc.create_network({"name": "private", "project_id": demo})
    private_sub = await subnet(svc, private, "private-subnet", cfg.network.private_cidr, demo, dhcp=True)
    router = Router(id=str(uuid.uuid4()), name="router1", project_id=demo, gateway_network_id=public.id)
    gateway = await svc.create_port({"network_id": public.id, "project_id": "", "device_id": router.id,
                                     "device_owner": "network:router_gateway", "port_security_enabled": False},
                                    None, None, True)
    router.gateway_port_id = gateway.id
    async with db.session() as s:
        s.add(router)
    await svc.create_port({"network_id": private.id, "project_id": demo, "device_id": router.id,
                           "device_owner": "network:router_interface", "port_security_enabled": False},
                          [{"subnet_id": private_sub.id, "ip_address": private_sub.gateway_ip}], None, True)
    LOG.info("first topology: network public (%s, external), private (%s) in project %s behind router1",
             public_sub.cidr, private_sub.cidr, cfg.bootstrap.demo_project)


async def subnet(svc: Ipam, net: Network, name: str, cidr: str, project: str, dhcp: bool) -> Any:
    network = ipaddress.ip_network(cidr)
    gateway = str(network.network_address + 1)
    return await svc.create_subnet(net, {"name": name, "project_id": project, "ip_version": network.version,
                                         "cidr": str(network), "gateway_ip": gateway, "enable_dhcp": dhcp,
                                         "allocation_pools": pools_of(network, gateway)})
