"""The plumbing every server operation shares: the manager's state, instance actions and
their events, the operation protocol (begin, settle, fail) and the agents' reports."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from types import SimpleNamespace
from typing import Any

from sqlalchemy import func, select, update

from cumulo.compute.models import ComputeNode, Flavor, InstanceAction, InstanceActionEvent, Migration, Server
from cumulo.compute.scheduler.scheduler import Scheduler
from cumulo.compute.scheduler.state import HostState
from cumulo.compute.servers.status import status_of
from cumulo.compute.service import ComputeService
from cumulo.core import context
from cumulo.core.bus import Bus
from cumulo.core.db import Database, new_id, utcnow
from cumulo.core.http.faults import Conflict
from cumulo.core.watch import watch
from cumulo.placement.service import PlacementService

LOG = logging.getLogger(__name__)
# Nova's power states
NOSTATE, RUNNING, PAUSED, SHUTDOWN, SUSPENDED = 0, 1, 3, 4, 7
# power actions: the vm_states each is allowed from, its task_state, and what it leaves
POWER = {"stop": (("active", "error"), "powering-off", "stopped", SHUTDOWN),
         "start": (("stopped",), "powering-on", "active", RUNNING),
         "reboot-soft": (("active",), "reboot_started", "active", RUNNING),
         "reboot-hard": (("active", "stopped", "paused", "suspended", "error"), "reboot_started_hard", "active",
                         RUNNING),
         "pause": (("active",), "pausing", "paused", PAUSED),
         "unpause": (("paused",), "unpausing", "active", RUNNING),
         "suspend": (("active",), "suspending", "suspended", SUSPENDED),
         "resume": (("suspended",), "resuming", "active", RUNNING)}
# what an instance action is called in os-instance-actions, and its event's name
ACTION_NAMES = {"reboot-soft": "reboot", "reboot-hard": "reboot"}
SNAPSHOT_STATES = ("active", "stopped", "paused", "suspended")


def flavor_snapshot(flavor: Flavor) -> dict[str, Any]:
    return {"id": flavor.id, "name": flavor.name, "vcpus": flavor.vcpus, "ram": flavor.ram, "disk": flavor.disk,
            "ephemeral": flavor.ephemeral, "swap": flavor.swap, "extra_specs": dict(flavor.extra_specs or {})}


def resources_of(flavor: dict[str, Any]) -> dict[str, int]:
    out = {"VCPU": flavor["vcpus"], "MEMORY_MB": flavor["ram"]}
    disk = flavor["disk"] + flavor.get("ephemeral", 0) + (flavor.get("swap", 0) + 1023) // 1024
    if disk:
        out["DISK_GB"] = disk
    return out


def server_status(row: Any) -> str:
    """The status the API shows for a row's vm_state, task_state and deleted_at."""
    return status_of(SimpleNamespace(**row))


def request_id() -> str:
    ctx = context.current.get()
    return ctx.request_id if ctx else f"req-{uuid.uuid4()}"


class ServerBase:
    def __init__(self, db: Database, bus: Bus, compute: ComputeService, placement: PlacementService,
                 build_lease: float = 120.0, images: Any = None, image_url: str = "", network: Any = None,
                 volumes: Any = None) -> None:
        self.db, self.bus, self.compute, self.placement = db, bus, compute, placement
        self.network = network  # the Network API's service, when this controller runs it
        self.volumes = volumes  # block storage's VolumeService, when this cloud runs it
        self.images, self.image_url = images, image_url
        self.cfg = compute.cfg.compute
        self.scheduler = Scheduler()
        self.instance = new_id()
        self.build_lease = dt.timedelta(seconds=build_lease)
        self.builds = asyncio.Semaphore(16)  # bounded concurrent scheduling work per controller
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reconciler: asyncio.Task[None] | None = None
        self._view: tuple[float, list[HostState]] | None = None
        # every committed write of a server publishes resource.server.* (cumulo.core.watch)
        watch(db, bus, Server, "server", server_status, fields=("vm_state", "task_state", "deleted_at"),
              gone=lambda row: row.get("deleted_at") is not None)

    async def start(self) -> None:
        await self.reconcile()
        self._reconciler = asyncio.get_running_loop().create_task(self._reconcile_forever())

    async def stop(self) -> None:
        if self._reconciler:
            self._reconciler.cancel()
        for task in list(self._tasks):
            task.cancel()

    def _background(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def get(self, server_id: str) -> Server | None:
        async with self.db.session() as s:
            return await s.get(Server, server_id)

    async def record(self, server_id: str, action: str, project_id: str | None, user_id: str | None,
                     rid: str | None = None) -> int:
        async with self.db.session() as s:
            row = InstanceAction(server_id=server_id, action=action, request_id=rid or request_id(),
                                 project_id=project_id, user_id=user_id)
            s.add(row)
            await s.flush()
            return row.id

    async def event(self, action_id: int | None, name: str, host: str | None, started: str | None,
                    error: str | None = None) -> None:
        if not action_id:
            return
        async with self.db.session() as s:
            s.add(InstanceActionEvent(action_id=action_id, event=name, host=host,
                                      result="Error" if error else "Success", details=error,
                                      start_time=dt.datetime.fromisoformat(started) if started else utcnow(),
                                      finish_time=utcnow()))
            if error:
                await s.execute(update(InstanceAction).where(InstanceAction.id == action_id).values(message="Error"))

    async def cast(self, host: str, method: str, args: dict[str, Any], op: str, server_id: str,
                   action_id: int | None, **extra: Any) -> None:
        """Send work to an agent; ``ctx`` comes back verbatim with its report."""
        args["ctx"] = {"op": op, "server_id": server_id, "action_id": action_id, "started": utcnow().isoformat(),
                       "host": host, **extra}
        await self.bus.cast(f"compute.{host}", method, args)

    async def fail(self, server_id: str, message: str, public: str, action_id: int | None = None,
                   event: str = "compute__do_build_and_run_instance", host: str | None = None) -> None:
        LOG.warning("server %s failed: %s", server_id, message)
        async with self.db.session() as s:
            await s.execute(update(Server).where(Server.id == server_id, Server.deleted_at.is_(None)).values(
                vm_state="error", task_state=None, lease_owner=None, lease_until=None,
                fault={"code": 500, "message": public, "details": message, "created": utcnow().isoformat()}))
        await self.event(action_id, event, host, None, message)

    async def release(self, consumer: str) -> None:
        await self.placement.set_allocations({consumer: {"allocations": {}, "project_id": None, "user_id": None}})

    async def begin(self, server: Server, action: str, allowed: tuple[str, ...], task_state: str,
                    values: dict[str, Any] | None = None, record: bool = True) -> int | None:
        """Move the server into ``task_state`` if it is in an allowed state and idle; 409 otherwise.
        Returns the instance action's id."""
        async with self.db.session() as s:
            result = await s.execute(update(Server).where(
                Server.id == server.id, Server.deleted_at.is_(None), Server.task_state.is_(None),
                Server.vm_state.in_(allowed)).values(task_state=task_state, lease_owner=self.instance,
                                                     lease_until=utcnow() + self.build_lease, **(values or {})))
        if result.rowcount != 1:
            raise Conflict(f"Cannot '{action}' instance {server.id} while it is in vm_state {server.vm_state}"
                           + (f" and task_state {server.task_state}" if server.task_state else ""))
        if not record:
            return None
        auth = context.current.get()
        return await self.record(server.id, action, server.project_id,
                                 auth.auth.user_id if auth and auth.auth else server.user_id)

    async def settle(self, server_id: str, **values: Any) -> None:
        """End the running operation: clear task_state and the lease, and apply ``values``."""
        async with self.db.session() as s:
            await s.execute(update(Server).where(Server.id == server_id, Server.deleted_at.is_(None)).values(
                task_state=None, lease_owner=None, lease_until=None, **values))
        if "host" in values:  # a move ended elsewhere (or shelving left no host): the ports follow
            await self.bind_ports(server_id, values["host"])

    async def reported(self, args: dict[str, Any]) -> None:
        """An agent's report: ``ctx`` is what the operation sent; ``error`` if it failed."""
        ctx = args.get("ctx") or {}
        op, server_id, error = ctx.get("op", "spawn"), ctx.get("server_id") or args.get("id"), args.get("error")
        await self.event(ctx.get("action_id"), f"compute_{op}", ctx.get("host"), ctx.get("started"), error)
        if op in POWER:
            await self._done_power(server_id, op, error)
            return
        handler = getattr(self, f"_done_{op}", None)
        if handler is None:
            LOG.warning("report for an unknown operation %s on %s", op, server_id)
            return
        await handler(server_id, ctx, args, error)

    async def settle_task(self, server_id: str, task_state: str, **values: Any) -> None:
        async with self.db.session() as s:
            await s.execute(update(Server).where(Server.id == server_id).values(
                task_state=task_state, lease_until=utcnow() + self.build_lease, **values))

    async def _migration_status(self, migration_uuid: str | None, status: str, **values: Any) -> None:
        if not migration_uuid:
            return
        async with self.db.session() as s:
            await s.execute(update(Migration).where(Migration.uuid == migration_uuid).values(status=status, **values))

    async def _node_id(self, host: str | None) -> str | None:
        if not host:
            return None
        async with self.db.session() as s:
            return (await s.execute(select(ComputeNode.id).where(ComputeNode.host == host))).scalar()

    async def host_is_up(self, host: str | None) -> bool:
        if not host:
            return False
        for state in await self.host_states():
            if state.host == host:
                return state.up
        return False

    async def count_active(self, project_id: str) -> int:
        async with self.db.session() as s:
            return (await s.execute(select(func.count()).select_from(Server).where(
                Server.project_id == project_id, Server.deleted_at.is_(None)))).scalar() or 0
