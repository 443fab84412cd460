"""Servers on the control plane: quota, scheduling, the placement claim, and the build handed to
a compute agent over the bus; the agent's reports move the server to ACTIVE (or ERROR).

Every transitional state has an owner and a lease: the controller that builds a server holds
``lease_until`` on it while it works; a server left ``building`` past its lease (a controller or an
agent died) is moved to ERROR with a fault by the reconciler.  Delete always wins: it frees the
placement allocation at once and tells the agent to destroy whatever it has.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from typing import Any

from sqlalchemy import func, select, update

from cumulo.compute.models import Aggregate, AggregateHost, ComputeNode, Flavor, Server, ServiceRecord
from cumulo.compute.scheduler.scheduler import NoValidHost, Scheduler
from cumulo.compute.scheduler.state import HostState, RequestSpec
from cumulo.compute.service import ComputeService
from cumulo.core.bus import Bus
from cumulo.core.db import Database, new_id, utcnow
from cumulo.core.http.faults import Conflict, Forbidden
from cumulo.placement.service import PlacementService, capacity

LOG = logging.getLogger(__name__)
RUNNING, SHUTDOWN = 1, 4
ACTIVE_STATES = ("building", "active", "stopped", "error", "paused", "suspended")


class ServerManager:
    def __init__(self, db: Database, bus: Bus, compute: ComputeService, placement: PlacementService,
                 build_lease: float = 120.0) -> None:
        self.db, self.bus, self.compute, self.placement = db, bus, compute, placement
        self.scheduler = Scheduler()
        self.instance = new_id()
        self.build_lease = dt.timedelta(seconds=build_lease)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reconciler: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.reconcile()
        self._reconciler = asyncio.get_running_loop().create_task(self._reconcile_forever())

    async def stop(self) -> None:
        if self._reconciler:
            self._reconciler.cancel()
        for task in list(self._tasks):
            task.cancel()

    # -- create -----------------------------------------------------------------------------
    async def usage(self, project_id: str) -> dict[str, int]:
        async with self.db.session() as s:
            rows = (await s.execute(select(Server.flavor).where(
                Server.project_id == project_id, Server.deleted_at.is_(None)))).scalars().all()
        return {"instances": len(rows), "cores": sum(f["vcpus"] for f in rows), "ram": sum(f["ram"] for f in rows)}

    async def over_quota(self, project_id: str) -> str | None:
        used = await self.usage(project_id)
        for name in ("instances", "cores", "ram"):
            limit = await self.compute.quota(project_id, name)
            if limit is not None and used[name] > limit:
                return f"Quota exceeded for {name}: Requested {used[name]}, but the limit is {limit}."
        return None

    async def create(self, *, project_id: str, user_id: str, name: str, flavor: Flavor, image_id: str | None,
                     count: int, zone: str | None, key_name: str | None, metadata: dict[str, str]) -> list[Server]:
        snapshot = {"id": flavor.id, "name": flavor.name, "vcpus": flavor.vcpus, "ram": flavor.ram,
                    "disk": flavor.disk, "ephemeral": flavor.ephemeral, "swap": flavor.swap,
                    "extra_specs": dict(flavor.extra_specs or {})}
        now = utcnow()
        rows = [Server(id=str(uuid.uuid4()), name=name if count == 1 else f"{name}-{i + 1}", project_id=project_id,
                       user_id=user_id, flavor=snapshot, image_id=image_id, key_name=key_name, meta=metadata,
                       vm_state="building", task_state="scheduling", availability_zone=zone,
                       lease_owner=self.instance, lease_until=now + self.build_lease)
                for i in range(count)]
        async with self.db.session() as s:
            s.add_all(rows)
        problem = await self.over_quota(project_id)  # counted after the insert: no overshoot under races
        if problem:
            async with self.db.session() as s:
                await s.execute(update(Server).where(Server.id.in_([r.id for r in rows])).values(deleted_at=utcnow(),
                                                                                                 vm_state="deleted"))
            raise Forbidden(problem)
        for row in rows:
            task = asyncio.get_running_loop().create_task(self.build(row))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return rows

    async def host_states(self) -> list[HostState]:
        down_after = dt.timedelta(seconds=self.compute.cfg.compute.service_down_time)
        async with self.db.session() as s:
            nodes = list((await s.execute(select(ComputeNode))).scalars())
            services = {x.host: x for x in (await s.execute(select(ServiceRecord).where(
                ServiceRecord.binary == "nova-compute"))).scalars()}
            memberships = (await s.execute(select(AggregateHost.host, Aggregate.meta).join(
                Aggregate, Aggregate.id == AggregateHost.aggregate_id))).all()
            placed = (await s.execute(select(Server.host, Server.id).where(
                Server.deleted_at.is_(None), Server.host.is_not(None)))).all()
        on_host: dict[str, set[str]] = {}
        for host, server_id in placed:
            on_host.setdefault(host, set()).add(server_id)
        states = []
        for node in nodes:
            srv = services.get(node.host)
            meta: dict[str, set[str]] = {}
            zone = "nova"
            for host, agg_meta in memberships:
                if host == node.host:
                    for key, value in (agg_meta or {}).items():
                        meta.setdefault(key, set()).add(value)
                        if key == "availability_zone":
                            zone = value
            _, inventories = await self.placement.inventories(node.id)
            _, used = await self.placement.usages(node.id)
            free = {i.resource_class: capacity(i) - used.get(i.resource_class, 0) for i in inventories}
            states.append(HostState(
                host=node.host, node=node.id, enabled=bool(srv and not srv.disabled),
                up=bool(srv and not srv.forced_down and srv.last_seen_at and utcnow() - srv.last_seen_at <= down_after),
                zone=zone, hypervisor_type=node.hypervisor_type, aggregate_metadata=meta, vcpus=node.vcpus,
                vcpus_free=free.get("VCPU", 0), ram_mb_free=free.get("MEMORY_MB", 0),
                disk_gb_free=free.get("DISK_GB", 0), instances=on_host.get(node.host, set())))
        return states

    async def build(self, server: Server) -> None:
        flavor = server.flavor
        spec = RequestSpec(vcpus=flavor["vcpus"], ram_mb=flavor["ram"], disk_gb=flavor["disk"],
                           zone=server.availability_zone, flavor_extra_specs=flavor.get("extra_specs") or {})
        try:
            hosts = self.scheduler.select(await self.host_states(), spec)
        except NoValidHost as exc:
            await self.fail(server.id, exc.message, exc.public_message)
            return
        resources = {"VCPU": flavor["vcpus"], "MEMORY_MB": flavor["ram"]}
        if flavor["disk"]:
            resources["DISK_GB"] = flavor["disk"]
        for host in hosts:
            try:
                await self.placement.set_allocations({server.id: {
                    "allocations": {host.node: resources}, "project_id": server.project_id,
                    "user_id": server.user_id}})
            except Conflict:
                continue  # another build took the room meanwhile: the next best host
            async with self.db.session() as s:
                result = await s.execute(update(Server).where(Server.id == server.id, Server.deleted_at.is_(None))
                                         .values(host=host.host, node=host.node, task_state="spawning",
                                                 availability_zone=host.zone,
                                                 lease_until=utcnow() + self.build_lease))
            if result.rowcount != 1:  # deleted while scheduling: delete wins
                await self.placement.set_allocations({server.id: {"allocations": {}, "project_id": None,
                                                                  "user_id": None}})
                return
            await self.bus.cast(f"compute.{host.host}", "spawn", {"server": {
                "id": server.id, "name": server.name, "flavor": flavor, "image_id": server.image_id}})
            return
        await self.fail(server.id, f"No valid host was found. {len(hosts)} hosts passed the filters but "
                                   "their resources were claimed by other builds.", "No valid host was found.")

    async def fail(self, server_id: str, message: str, public: str) -> None:
        LOG.warning("server %s failed to build: %s", server_id, message)
        async with self.db.session() as s:
            await s.execute(update(Server).where(Server.id == server_id, Server.deleted_at.is_(None)).values(
                vm_state="error", task_state=None, lease_owner=None, lease_until=None,
                fault={"code": 500, "message": public, "details": message, "created": utcnow().isoformat()}))

    # -- reports from agents ----------------------------------------------------------------
    async def reported(self, server_id: str, vm_state: str, power_state: int, error: str | None = None) -> None:
        if error:
            await self.placement.set_allocations({server_id: {"allocations": {}, "project_id": None, "user_id": None}})
            await self.fail(server_id, error, "Build of instance aborted: the compute host failed to spawn it.")
            return
        async with self.db.session() as s:
            await s.execute(update(Server).where(Server.id == server_id, Server.deleted_at.is_(None)).values(
                vm_state=vm_state, power_state=power_state, task_state=None, lease_owner=None, lease_until=None,
                launched_at=func.coalesce(Server.launched_at, utcnow())))

    # -- power actions ------------------------------------------------------------------------
    # action -> (vm_states it is allowed from, task_state while it runs)
    ACTIONS = {"stop": (("active", "error"), "powering-off"), "start": (("stopped",), "powering-on"),
               "reboot-soft": (("active",), "reboot_started"),
               "reboot-hard": (("active", "stopped", "paused", "suspended", "error"), "reboot_started_hard"),
               "pause": (("active",), "pausing"), "unpause": (("paused",), "unpausing"),
               "suspend": (("active",), "suspending"), "resume": (("suspended",), "resuming")}

    async def act(self, server: Server, action: str) -> None:
        allowed, task_state = self.ACTIONS[action]
        async with self.db.session() as s:
            result = await s.execute(update(Server).where(
                Server.id == server.id, Server.deleted_at.is_(None), Server.task_state.is_(None),
                Server.vm_state.in_(allowed)).values(task_state=task_state, lease_owner=self.instance,
                                                     lease_until=utcnow() + self.build_lease))
        if result.rowcount != 1:
            raise Conflict(f"Cannot '{action.split('-')[0]}' instance {server.id} while it is in vm_state "
                           f"{server.vm_state}" + (f" and task_state {server.task_state}" if server.task_state else ""))
        if not server.host:
            await self.action_failed(server.id, "the server has no host")
            return
        await self.bus.cast(f"compute.{server.host}", "power", {"server_id": server.id, "action": action})

    async def action_failed(self, server_id: str, reason: str) -> None:
        LOG.warning("an action on server %s failed: %s", server_id, reason)
        async with self.db.session() as s:
            await s.execute(update(Server).where(Server.id == server_id).values(
                task_state=None, lease_owner=None, lease_until=None))

    async def set_locked(self, server: Server, locked: bool, reason: str | None) -> None:
        async with self.db.session() as s:
            await s.execute(update(Server).where(Server.id == server.id).values(
                locked=locked, locked_reason=reason if locked else None))

    # -- delete -----------------------------------------------------------------------------
    async def delete(self, server: Server) -> None:
        async with self.db.session() as s:
            await s.execute(update(Server).where(Server.id == server.id).values(
                vm_state="deleted", task_state=None, deleted_at=utcnow(), lease_owner=None, lease_until=None))
        await self.placement.set_allocations({server.id: {"allocations": {}, "project_id": None, "user_id": None}})
        if server.host:
            await self.bus.cast(f"compute.{server.host}", "destroy", {"server_id": server.id})

    # -- reconcile --------------------------------------------------------------------------
    async def reconcile(self) -> int:
        """Servers left building past their lease go to ERROR, their claims released; an action whose
        agent never answered has its task_state cleared (the server keeps its last known state)."""
        async with self.db.session() as s:
            stuck = list((await s.execute(select(Server.id).where(
                Server.vm_state == "building", Server.deleted_at.is_(None), Server.lease_until.is_not(None),
                Server.lease_until < utcnow()))).scalars())
        for server_id in stuck:
            await self.placement.set_allocations({server_id: {"allocations": {}, "project_id": None,
                                                             "user_id": None}})
            await self.fail(server_id, "The build did not finish in time: its owner stopped (controller or "
                                       "compute agent) and the lease expired.", "Build of instance timed out.")
        async with self.db.session() as s:
            await s.execute(update(Server).where(
                Server.vm_state != "building", Server.task_state.is_not(None), Server.deleted_at.is_(None),
                Server.lease_until.is_not(None), Server.lease_until < utcnow()).values(
                task_state=None, lease_owner=None, lease_until=None))
        return len(stuck)

    async def _reconcile_forever(self) -> None:
        while True:
            await asyncio.sleep(min(10.0, self.build_lease.total_seconds() / 2))
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:
                LOG.warning("server reconcile failed", exc_info=True)

    async def count_active(self, project_id: str) -> int:
        async with self.db.session() as s:
            return (await s.execute(select(func.count()).select_from(Server).where(
                Server.project_id == project_id, Server.deleted_at.is_(None)))).scalar() or 0
