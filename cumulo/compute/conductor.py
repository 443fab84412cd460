"""The conductor: the controller's side of the bus for compute agents.

``report_node`` (a heartbeat) records the agent's service row and its node, and keeps the node's
resource provider and inventory in placement in step with what the node offers, with Nova's
initial allocation ratios (VCPU 16.0, MEMORY_MB 1.5, DISK_GB 1.0).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any

from sqlalchemy import select

from cumulo.compute.models import ComputeNode, ServiceRecord
from cumulo.core.bus import Bus
from cumulo.core.db import Database, utcnow
from cumulo.core.http.faults import Conflict, NotFound
from cumulo.placement.service import NODE_ALLOCATION_RATIOS, PlacementService

LOG = logging.getLogger(__name__)


def naive(stamp: str | None) -> dt.datetime | None:
    """An agent's ISO time as the database keeps times (naive UTC)."""
    if not stamp:
        return None
    when = dt.datetime.fromisoformat(stamp)
    return when.astimezone(dt.UTC).replace(tzinfo=None) if when.tzinfo else when


class Conductor:
    def __init__(self, db: Database, bus: Bus, placement: PlacementService) -> None:
        self.db, self.bus, self.placement = db, bus, placement
        self.servers: Any = None  # the ServerManager, which takes the agents' server reports

    async def start(self) -> None:
        await self.bus.serve("conductor", self.handle)

    async def handle(self, method: str, args: dict[str, Any]) -> Any:
        if method == "report_node":
            node_id = await self.report_node(args["host"], args["node"], args.get("version"))
            if self.servers is not None and "instances" in args:
                taken = args.get("taken_at")
                await self.servers.sync_host(args["host"], args["instances"], naive(taken), bool(args.get("first")),
                                             naive(args.get("started_at")))
            return node_id
        if method == "server_update" and self.servers is not None:
            return await self.servers.reported(args)
        if method in ("snapshot_volume", "merge_volume") and self.servers is not None:  # a volume agent's chain
            return await self.servers.attached_volume_chain(method, args)
        if method == "volume_extended" and self.servers is not None:  # block storage grew an in-use volume
            return await self.servers.volume_extended(args)
        raise ValueError(f"unknown conductor method {method}")

    async def report_node(self, host: str, node: dict[str, Any], version: str | None = None) -> str:
        now = utcnow()
        async with self.db.session() as s:
            service = (await s.execute(select(ServiceRecord).where(
                ServiceRecord.host == host, ServiceRecord.binary == "nova-compute"))).scalar()
            if service is None:
                LOG.info("compute service on %s registered", host)
                service = ServiceRecord(id=str(uuid.uuid4()), host=host, binary="nova-compute")
                s.add(service)
            service.last_seen_at = now
            service.version = str(version)[:32] if version else None  # an older agent sends none
            row = (await s.execute(select(ComputeNode).where(
                ComputeNode.hypervisor_hostname == node["hypervisor_hostname"]))).scalar()
            if row is None:
                row = ComputeNode(id=str(uuid.uuid4()), hypervisor_hostname=node["hypervisor_hostname"], host=host)
                s.add(row)
            changed = (row.vcpus, row.memory_mb, row.local_gb) != (node["vcpus"], node["memory_mb"], node["local_gb"])
            for key in ("hypervisor_type", "hypervisor_version", "vcpus", "memory_mb", "local_gb", "host_ip",
                        "cpu_info"):
                setattr(row, key, node[key])
            row.host, row.updated_at = host, now
        if changed:
            await self.sync_provider(row)
        return row.id

    async def sync_provider(self, node: ComputeNode) -> None:
        try:
            provider = await self.placement.provider(node.id)
        except NotFound:  # only a missing provider is made; a failing database is not "missing"
            provider = await self.placement.create_provider(node.hypervisor_hostname, node.id, None)
        inventories = {
            "VCPU": {"total": node.vcpus, "allocation_ratio": NODE_ALLOCATION_RATIOS["VCPU"]},
            "MEMORY_MB": {"total": node.memory_mb, "allocation_ratio": NODE_ALLOCATION_RATIOS["MEMORY_MB"]},
            "DISK_GB": {"total": max(1, node.local_gb), "allocation_ratio": NODE_ALLOCATION_RATIOS["DISK_GB"]},
        }
        for _ in range(3):
            try:
                generation = await self.placement.set_inventories(node.id, provider.generation, inventories)
                await self.placement.set_provider_traits(node.id, generation, ["COMPUTE_NODE"])
                return
            except Conflict:
                provider = await self.placement.provider(node.id)
        LOG.warning("could not update the inventory of %s in placement", node.hypervisor_hostname)
