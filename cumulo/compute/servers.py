"""Servers on the control plane: quota, scheduling, the placement claims, and the work handed to
compute agents over the bus; the agents' reports finish each operation.

Every transitional state has an owner and a lease.  An operation starts with one conditional
UPDATE that moves the server from an allowed ``vm_state`` with no ``task_state`` into the
operation's ``task_state`` and stamps ``lease_owner``/``lease_until`` (so two operations can never
run at once on a server); the agent's report ends it.  If no report comes (an agent or controller
died) the reconciler ends it when the lease expires: a build goes to ERROR with a fault, a move is
rolled back to its source, any other operation has its ``task_state`` cleared and the server keeps
its last observed state.  Delete always wins: it frees the placement allocations at once and tells
the agent to destroy whatever it has; an agent that was away is told again when it next reports
an instance nothing owns.

Placement consumers: a server's own uuid holds what it uses where it runs.  During a move the
migration's uuid holds the source's share, exactly as Nova does, so both sides stay claimed until
the move is confirmed or reverted.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from typing import Any

from sqlalchemy import Text, func, select, type_coerce, update
from sqlalchemy import delete as sql_delete

from cumulo.compute.models import (
    Aggregate,
    AggregateHost,
    ComputeNode,
    Flavor,
    InstanceAction,
    InstanceActionEvent,
    Migration,
    Server,
    ServerGroup,
    ServerGroupMember,
    ServerTag,
    ServiceRecord,
)
from cumulo.compute.scheduler.scheduler import NoValidHost, Scheduler
from cumulo.compute.scheduler.state import HostState, RequestSpec
from cumulo.compute.service import ComputeService
from cumulo.core import context
from cumulo.core.bus import Bus
from cumulo.core.db import Database, new_id, utcnow
from cumulo.core.http.faults import BadRequest, Conflict, Forbidden, NotFound
from cumulo.core.quota import turn
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


def request_id() -> str:
    ctx = context.current.get()
    return ctx.request_id if ctx else f"req-{uuid.uuid4()}"


class ServerManager:
    def __init__(self, db: Database, bus: Bus, compute: ComputeService, placement: PlacementService,
                 build_lease: float = 120.0, images: Any = None, image_url: str = "", network: Any = None) -> None:
        self.db, self.bus, self.compute, self.placement = db, bus, compute, placement
        self.network = network  # the Network API's service, when this controller runs it
        self.images, self.image_url = images, image_url
        self.cfg = compute.cfg.compute
        self.scheduler = Scheduler()
        self.instance = new_id()
        self.build_lease = dt.timedelta(seconds=build_lease)
        self.builds = asyncio.Semaphore(16)  # bounded concurrent scheduling work per controller
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reconciler: asyncio.Task[None] | None = None
        self._view: tuple[float, list[HostState]] | None = None

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

    # -- instance actions ---------------------------------------------------------------------
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

    # -- quota ------------------------------------------------------------------------------
    async def usage(self, project_id: str) -> dict[str, int]:
        return await self.compute.usage(project_id)

    async def over_quota(self, project_id: str) -> str | None:
        used = await self.usage(project_id)
        for name in ("instances", "cores", "ram"):
            limit = await self.compute.quota(project_id, name)
            if limit is not None and used[name] > limit:
                return f"Quota exceeded for {name}: Requested {used[name]}, but the limit is {limit}."
        return None

    async def quota_fit(self, project_id: str, flavor: Flavor, count: int,
                        extra: int = 0) -> tuple[int, str | None]:
        """How many of ``count`` more servers of ``flavor`` the quota allows (``extra`` of them are
        already counted in the usage), and the reason when that is fewer than ``count``."""
        used = await self.usage(project_id)
        fit, why = count, None
        for name, each in (("instances", 1), ("cores", flavor.vcpus), ("ram", flavor.ram)):
            limit = await self.compute.quota(project_id, name)
            if limit is None or each <= 0:
                continue
            room = (limit - used[name]) // each + extra
            if room < fit:
                fit = max(room, 0)
                why = (f"Quota exceeded for {name}: Requested {used[name] + (count - extra) * each}, "
                       f"but the limit is {limit}.")
        return fit, why

    # -- create -----------------------------------------------------------------------------
    async def create(self, *, project_id: str, **kwargs: Any) -> list[Server]:
        """Creates of one project take turns (core.quota.turn): each counts, inserts and commits
        before the next counts, so racing creates get exactly the room the quota has."""
        made: list[Server] = []
        try:
            async with turn(self.db, f"compute:servers:{project_id}"):
                return await self._create(project_id=project_id, made=made, **kwargs)
        except Exception:
            if made:  # the rows were written, then the database went away: the failed create leaves none
                self._background(self._undo_create([row.id for row in made]))
            raise

    async def _undo_create(self, server_ids: list[str], patience: float = 60.0) -> None:
        """Delete the servers of a create that failed after writing them, once the database answers
        again (if it never does, their leases run out and the reconciler ends them in ERROR)."""
        deadline = asyncio.get_running_loop().time() + patience
        while server_ids:
            try:
                server = await self.get(server_ids[0])
                if server is not None and server.deleted_at is None:
                    await self.hard_delete(server)  # a build already under way sees it and lets go
                server_ids.pop(0)
            except Exception:
                if asyncio.get_running_loop().time() > deadline:
                    LOG.warning("servers %s of a failed create stay until their lease ends", server_ids)
                    return
                await asyncio.sleep(1)

    async def _create(self, *, project_id: str, user_id: str, name: str, flavor: Flavor, image_id: str | None,
                     count: int, min_count: int = 1, zone: str | None, key_name: str | None,
                     metadata: dict[str, str], extra: dict[str, Any] | None = None,
                     request: dict[str, Any] | None = None, tags: list[str] | None = None,
                     made: list[Server] | None = None) -> list[Server]:
        """Insert the servers (noted in ``made``), check quota counting them (so concurrent creates never overshoot),
        then schedule and build each in the background.  ``extra`` holds column values
        (description, user_data, ...), ``request`` what the scheduler and agents need later."""
        # a first look at the quota before anything is built: a request for more than the project
        # may have is refused (or trimmed down to min_count) in one query, whatever it asks for
        fit, problem = await self.quota_fit(project_id, flavor, count)
        if fit < min_count:
            raise Forbidden(problem or "Quota exceeded.")
        count = fit
        snapshot = flavor_snapshot(flavor)
        now = utcnow()
        request = dict(request or {})
        request.setdefault("reservation_id", f"r-{uuid.uuid4().hex[:8]}")
        rows = [Server(id=str(uuid.uuid4()), name=name if count == 1 else f"{name}-{i + 1}", project_id=project_id,
                       user_id=user_id, flavor=snapshot, flavor_id=flavor.id, image_id=image_id, key_name=key_name,
                       meta=metadata, vm_state="building", task_state="scheduling", availability_zone=zone,
                       lease_owner=self.instance, lease_until=now + self.build_lease,
                       request={**request, "launch_index": i}, system_meta={}, **(extra or {}))
                for i in range(count)]
        group = request.get("group")
        if made is not None:
            made.extend(rows)
        async with self.db.session() as s:
            s.add_all(rows)
            for row in rows:
                for tag in tags or []:
                    s.add(ServerTag(server_id=row.id, tag=tag))
                if group:
                    s.add(ServerGroupMember(group_id=group, server_id=row.id))
        # the recheck with our rows counted: concurrent creates never overshoot together
        problem = await self.over_quota(project_id)
        if problem and count > min_count:  # take fewer, as Nova does, down to min_count
            fit, _ = await self.quota_fit(project_id, flavor, count, extra=count)
            for victim in rows[max(fit, min_count):]:
                await self._forget(victim.id)
            del rows[max(fit, min_count):]
            problem = await self.over_quota(project_id)
        if problem:
            for row in rows:
                await self._forget(row.id)
            raise Forbidden(problem)
        rid = request_id()
        for row in rows:
            action_id = await self.record(row.id, "create", project_id, user_id, rid)
            self._background(self.build(row, action_id))
        return rows

    async def _forget(self, server_id: str) -> None:
        async with self.db.session() as s:
            await s.execute(update(Server).where(Server.id == server_id).values(
                deleted_at=utcnow(), vm_state="deleted", task_state=None))
            await s.execute(sql_delete(ServerGroupMember).where(ServerGroupMember.server_id == server_id))

    async def host_states(self, members: set[str] | None = None) -> list[HostState]:
        """Every node as the scheduler sees it; ``members`` (a server group's) are the only servers
        whose hosts the group filters need, so only they are looked up."""
        down_after = dt.timedelta(seconds=self.cfg.service_down_time)
        async with self.db.session() as s:
            nodes = list((await s.execute(select(ComputeNode))).scalars())
            services = {x.host: x for x in (await s.execute(select(ServiceRecord).where(
                ServiceRecord.binary == "nova-compute"))).scalars()}
            memberships = (await s.execute(select(AggregateHost.host, Aggregate.meta).join(
                Aggregate, Aggregate.id == AggregateHost.aggregate_id))).all()
            placed = (await s.execute(select(Server.host, Server.id).where(
                Server.id.in_(sorted(members)), Server.deleted_at.is_(None), Server.host.is_not(None)))).all() \
                if members else []
        free_by_node = await self.placement.free()
        on_host: dict[str, set[str]] = {}
        for host, server_id in placed:
            on_host.setdefault(host, set()).add(server_id)
        now = utcnow()
        states = []
        for node in nodes:
            srv = services.get(node.host)
            meta: dict[str, set[str]] = {}
            zone = self.compute.cfg.compute.default_availability_zone
            for host, agg_meta in memberships:
                if host == node.host:
                    for key, value in (agg_meta or {}).items():
                        meta.setdefault(key, set()).add(value)
                        if key == "availability_zone":
                            zone = value
            free = free_by_node.get(node.id, {})
            states.append(HostState(
                host=node.host, node=node.id, enabled=bool(srv and not srv.disabled),
                up=bool(srv and not srv.forced_down and srv.last_seen_at and now - srv.last_seen_at <= down_after),
                zone=zone, hypervisor_type=node.hypervisor_type, aggregate_metadata=meta, vcpus=node.vcpus,
                vcpus_free=free.get("VCPU", 0), ram_mb_free=free.get("MEMORY_MB", 0),
                disk_gb_free=free.get("DISK_GB", 0), instances=on_host.get(node.host, set())))
        return states

    async def request_spec(self, server: Server, flavor: dict[str, Any] | None = None,
                           moving: bool = False) -> RequestSpec:
        """What the scheduler needs for the server; a move forgets the host the create named, as
        Nova resets forced destinations."""
        flavor = flavor or server.flavor
        req = server.request or {}
        spec = RequestSpec(vcpus=flavor["vcpus"], ram_mb=flavor["ram"], disk_gb=resources_of(flavor).get("DISK_GB", 0),
                           zone=server.availability_zone if req.get("zone_pinned", True) else None,
                           flavor_extra_specs=flavor.get("extra_specs") or {},
                           image_properties=req.get("image_properties") or {})
        hints = req.get("hints") or {}
        group_id = req.get("group")
        if group_id:
            async with self.db.session() as s:
                group = await s.get(ServerGroup, group_id)
                members = set((await s.execute(select(ServerGroupMember.server_id).where(
                    ServerGroupMember.group_id == group_id, ServerGroupMember.server_id != server.id))).scalars())
            if group is not None:
                spec.group_policy = group.policy
                spec.group_members = members
                spec.group_max_per_host = int((group.rules or {}).get("max_server_per_host", 1))
        same = hints.get("same_host")
        different = hints.get("different_host")
        if same or different:
            wanted = [x for x in ([same] if isinstance(same, str) else same or [])]
            avoid = [x for x in ([different] if isinstance(different, str) else different or [])]
            async with self.db.session() as s:
                hosts = dict((await s.execute(select(Server.id, Server.host).where(
                    Server.id.in_(wanted + avoid)))).all())
            if wanted:
                spec.force_hosts = {hosts[x] for x in wanted if hosts.get(x)} or {"-"}
            spec.ignore_hosts = {hosts[x] for x in avoid if hosts.get(x)}
        if req.get("requested_host") and not moving:
            spec.force_hosts = {req["requested_host"]}
        return spec

    async def pick(self, spec: RequestSpec, server: Server, resources: dict[str, int],
                   consumers: dict[str, dict[str, Any]] | None = None) -> HostState:
        """Run the scheduler and claim in placement on the best host that still has the room; other
        consumers (a migration's share of the source) are written in the same transaction."""
        try:
            hosts = self.scheduler.select(await self.view(spec), spec)
        except NoValidHost:
            if self._view is None:
                raise
            self._view = None  # a shared picture may predate a new host, zone or capacity: look again
            hosts = self.scheduler.select(await self.view(spec), spec)
        soft = spec.group_policy in ("soft-affinity", "soft-anti-affinity")
        if soft:
            hosts.sort(key=lambda h: len(h.instances & spec.group_members),
                       reverse=spec.group_policy == "soft-affinity")
        for host in hosts:
            claims = {server.id: {"allocations": {host.node: resources}, "project_id": server.project_id,
                                  "user_id": server.user_id}}
            claims.update(consumers or {})
            try:
                await self.placement.set_allocations(claims)
            except Conflict:
                self._view = None  # our picture was stale: look again next time
                continue  # another build took the room meanwhile: the next best host
            # consume from the shared picture, as Nova's HostState does, so the builds that use it
            # before it is refreshed spread (or pack) correctly
            host.vcpus_free -= resources.get("VCPU", 0)
            host.ram_mb_free -= resources.get("MEMORY_MB", 0)
            host.disk_gb_free -= resources.get("DISK_GB", 0)
            return host
        raise NoValidHost(len(hosts), [("claimed by other builds", len(hosts))])

    async def view(self, spec: RequestSpec) -> list[HostState]:
        """The hosts as the scheduler sees them.  Without a server group the picture is shared by
        the builds of the next ``VIEW_TTL`` seconds (placement's claim stays the authority: a stale
        picture costs a retry, never a double booking)."""
        if spec.group_members:
            return await self.host_states(spec.group_members)
        now = asyncio.get_running_loop().time()
        if self._view is None or now - self._view[0] > self.VIEW_TTL:
            self._view = (now, await self.host_states())
        return self._view[1]

    VIEW_TTL = 1.0

    async def build(self, server: Server, action_id: int | None, image_id: str | None = None,
                    op: str = "spawn") -> None:
        async with self.builds:
            try:
                await self.allocate_ports(server)
            except Exception as exc:
                await self.fail(server.id, f"Allocating the server's network ports failed: {exc}",
                                f"Build of instance aborted: {exc}", action_id, "allocate_network")
                return
            try:
                spec = await self.request_spec(server)
                host = await self.pick(spec, server, resources_of(server.flavor))
            except NoValidHost as exc:
                await self.fail(server.id, exc.message, exc.public_message, action_id, "schedule_instances")
                return
            except Exception as exc:  # never leave the server scheduling
                LOG.exception("scheduling %s failed", server.id)
                await self.fail(server.id, f"Scheduling failed: {exc}", "No valid host was found.", action_id,
                                "schedule_instances")
                return
            async with self.db.session() as s:
                result = await s.execute(update(Server).where(Server.id == server.id, Server.deleted_at.is_(None))
                                         .values(host=host.host, node=host.node, task_state="spawning",
                                                 availability_zone=host.zone,
                                                 lease_until=utcnow() + self.build_lease))
            if result.rowcount != 1:  # deleted while scheduling: delete wins
                await self.release(server.id)
                await self._remember_cleanup(server.id, await self._cleanup(server.id, ["ports"]))
                return
            await self.bind_ports(server.id, host.host)
            await self.cast(host.host, "spawn", {"server": await self.payload(server.id, image_id)},
                            op, server.id, action_id)

    async def payload(self, server_id: str, image_id: str | None = None) -> dict[str, Any]:
        """What an agent needs to create an instance.  The image comes from the image service as
        the user who asked (their token, as Nova's compute does); it is never stored."""
        server = await self.get(server_id)
        assert server is not None
        ctx = context.current.get()
        public_keys = {}
        if server.key_name:
            try:
                key = await self.compute.keypair(server.user_id, server.key_name)
                public_keys[key.name] = key.public_key
            except Exception:
                LOG.info("key pair %s of server %s is gone", server.key_name, server.id)
        request = server.request or {}
        return {"id": server.id, "name": server.name, "flavor": server.flavor,
                "image_id": image_id or server.image_id, "user_data": server.user_data,
                "config_drive": server.config_drive, "metadata": server.meta or {}, "key_name": server.key_name,
                "public_keys": public_keys, "hostname": server.hostname, "project_id": server.project_id,
                "availability_zone": server.availability_zone, "networks": request.get("networks"),
                "image_properties": {k: v for k, v in (request.get("image_properties") or {}).items()
                                     if k in ("kernel_id", "ramdisk_id", "kernel_args") and not image_id},
                "image_url": self.image_url, "token": ctx.auth.token if ctx and ctx.auth else "",
                "ports": await self.ports_of(server.id)}

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

    # -- the operation protocol -----------------------------------------------------------------
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

    # spawn / unshelve / evacuate / rebuild -----------------------------------------------
    async def _done_spawn(self, server_id: str, ctx: dict[str, Any], args: dict[str, Any], error: str | None) -> None:
        if error:
            await self.release(server_id)
            await self.fail(server_id, error, "Build of instance aborted: the compute host failed to spawn it.")
            return
        await self.settle(server_id, vm_state="active", power_state=RUNNING,
                          launched_at=func.coalesce(Server.launched_at, utcnow()))

    async def _done_unshelve(self, server_id: str, ctx: dict[str, Any], args: dict[str, Any],
                             error: str | None) -> None:
        server = await self.get(server_id)
        if server is None:
            return
        if error:
            await self.release(server_id)
            await self.settle(server_id, vm_state="shelved_offloaded", host=None, node=None)
            return
        meta = dict(server.system_meta or {})
        image_id = meta.pop("shelved_image_id", None)
        await self.settle(server_id, vm_state="active", power_state=RUNNING, system_meta=meta)
        if image_id:
            await self._drop_image(image_id, server_id)

    async def _done_rebuild(self, server_id: str, ctx: dict[str, Any], args: dict[str, Any],
                            error: str | None) -> None:
        if error:
            await self.fail(server_id, error, "Rebuild of the instance failed.", None, "compute_rebuild_instance")
            return
        stopped = ctx.get("stopped")
        await self.settle(server_id, vm_state="stopped" if stopped else "active",
                          power_state=SHUTDOWN if stopped else RUNNING)

    async def _done_evacuate(self, server_id: str, ctx: dict[str, Any], args: dict[str, Any],
                             error: str | None) -> None:
        await self._migration_status(ctx.get("migration"), "failed" if error else "done")
        if error:
            await self.release(server_id)
            await self.fail(server_id, error, "Evacuation of the instance failed.")
            return
        stopped = ctx.get("stopped")
        await self.settle(server_id, vm_state="stopped" if stopped else "active",
                          power_state=SHUTDOWN if stopped else RUNNING)

    # power ---------------------------------------------------------------------------------
    async def act(self, server: Server, action: str) -> None:
        allowed, task_state, _, _ = POWER[action]
        action_id = await self.begin(server, ACTION_NAMES.get(action, action), allowed, task_state)
        if not server.host:
            await self.settle(server.id)
            return
        await self.cast(server.host, "power", {"server_id": server.id, "action": action,
                                               "server": await self.payload(server.id)}, action, server.id, action_id)

    async def _done_power(self, server_id: str, action: str, error: str | None) -> None:
        if error:
            await self.settle(server_id)
            return
        _, _, vm_state, power_state = POWER[action]
        await self.settle(server_id, vm_state=vm_state, power_state=power_state)

    async def set_locked(self, server: Server, locked: bool, reason: str | None) -> None:
        async with self.db.session() as s:
            await s.execute(update(Server).where(Server.id == server.id).values(
                locked=locked, locked_reason=reason if locked else None))
        auth = context.current.get()
        await self.record(server.id, "lock" if locked else "unlock", server.project_id,
                          auth.auth.user_id if auth and auth.auth else None)

    async def reset_state(self, server: Server, state: str) -> None:
        await self.record(server.id, "resetState", server.project_id, None)
        async with self.db.session() as s:
            await s.execute(update(Server).where(Server.id == server.id).values(
                vm_state=state, task_state=None, lease_owner=None, lease_until=None))

    # rebuild -------------------------------------------------------------------------------
    async def rebuild(self, server: Server, image_id: str, values: dict[str, Any],
                      image_properties: dict[str, Any]) -> None:
        stopped = server.vm_state == "stopped"
        request = {**(server.request or {}), "image_properties": image_properties}
        action_id = await self.begin(server, "rebuild", ("active", "stopped", "error"), "rebuilding",
                                     {"image_id": image_id, "request": request, **values})
        if not server.host:
            await self.settle(server.id)
            return
        await self.cast(server.host, "rebuild", {"server": await self.payload(server.id)}, "rebuild", server.id,
                        action_id, stopped=stopped)

    # resize and cold migration ---------------------------------------------------------------
    async def _start_move(self, server: Server, action_id: int | None, kind: str, status: str, moving: str,
                          event: str, *, flavor: dict[str, Any] | None = None, host: str | None = None,
                          leave_source: bool = True, keep_source_claim: bool = True) -> tuple[str, HostState]:
        """What every move begins with: the migration record, the scheduler's choice away from the
        source (or on ``host``), and the claim there; the source's share goes to the migration's
        consumer when ``keep_source_claim``.  With no host the server is settled and NoValidHost raised."""
        flavor = flavor or server.flavor
        migration = Migration(uuid=str(uuid.uuid4()), server_id=server.id, project_id=server.project_id,
                              user_id=server.user_id, migration_type=kind, status=status,
                              source_compute=server.host, source_node=server.host,
                              old_flavor_id=server.flavor["id"], new_flavor_id=flavor["id"])
        async with self.db.session() as s:
            s.add(migration)
        spec = await self.request_spec(server, flavor, moving=True)
        if leave_source:
            spec.ignore_hosts = spec.ignore_hosts | {server.host or ""}
        if host:
            spec.force_hosts = {host}
        source_share = {migration.uuid: {"allocations": {server.node: resources_of(server.flavor)},
                                         "project_id": server.project_id, "user_id": server.user_id,
                                         "consumer_type": "MIGRATION"}} if server.node and keep_source_claim else {}
        try:
            dest = await self.pick(spec, server, resources_of(flavor), source_share)
        except NoValidHost as exc:
            await self._migration_status(migration.uuid, "error")
            await self.settle(server.id)
            await self.event(action_id, event, None, None, exc.message)
            raise
        await self._migration_status(migration.uuid, moving, dest_compute=dest.host, dest_node=dest.host)
        return migration.uuid, dest

    async def resize(self, server: Server, new_flavor: Flavor | None, host: str | None = None) -> None:
        """Resize to a new flavor, or (new_flavor None) cold-migrate: schedule, claim the destination
        for the server and keep the source claimed by the migration, then the destination's agent
        builds the instance there and the server waits in VERIFY_RESIZE."""
        kind = "resize" if new_flavor is not None else "migration"
        flavor = flavor_snapshot(new_flavor) if new_flavor is not None else server.flavor
        old_vm_state = server.vm_state
        action_id = await self.begin(server, "resize" if new_flavor is not None else "migrate",
                                     ("active", "stopped"), "resize_prep")
        migration, dest = await self._start_move(
            server, action_id, kind, "pre-migrating", "migrating", "conductor_migrate_server", flavor=flavor,
            host=host, leave_source=kind == "migration" or not self.cfg.allow_resize_to_same_host)
        meta = {**(server.system_meta or {}), "old_flavor": server.flavor, "new_flavor": flavor,
                "old_vm_state": old_vm_state, "old_host": server.host, "old_node": server.node,
                "migration": migration}
        await self.settle_task(server.id, "resize_migrating", system_meta=meta)
        payload = await self.payload(server.id)
        payload["flavor"] = flavor
        payload["power_on"] = old_vm_state != "stopped"
        if dest.host == server.host:
            await self.cast(dest.host, "finish_migration", {"server": payload, "source": server.host}, "resize",
                            server.id, action_id)
            return
        # another node: the source stops the guest and says where its disk is, then the destination
        # takes it (ctx carries what the second step needs, the user's token included)
        await self.cast(server.host or "", "migrate_disk_and_power_off", {"server": payload, "dest": dest.host},
                        "resize_prep", server.id, action_id, dest=dest.host, payload=payload)

    async def _done_resize_prep(self, server_id: str, ctx: dict[str, Any], args: dict[str, Any],
                                error: str | None) -> None:
        server = await self.get(server_id)
        if server is None or server.deleted_at is not None:
            return
        if error:
            await self._rollback_move(server, dict(server.system_meta or {}), error, restart=True)
            return
        await self.settle_task(server_id, "resize_migrating")
        await self.cast(ctx["dest"], "finish_migration", {"server": ctx["payload"], "source": server.host,
                                                          "disk": args.get("result") or {}},
                        "resize", server_id, ctx.get("action_id"))

    async def settle_task(self, server_id: str, task_state: str, **values: Any) -> None:
        async with self.db.session() as s:
            await s.execute(update(Server).where(Server.id == server_id).values(
                task_state=task_state, lease_until=utcnow() + self.build_lease, **values))

    async def _migration_status(self, migration_uuid: str | None, status: str, **values: Any) -> None:
        if not migration_uuid:
            return
        async with self.db.session() as s:
            await s.execute(update(Migration).where(Migration.uuid == migration_uuid).values(status=status, **values))

    async def _done_resize(self, server_id: str, ctx: dict[str, Any], args: dict[str, Any],
                           error: str | None) -> None:
        server = await self.get(server_id)
        if server is None or server.deleted_at is not None:
            return
        meta = dict(server.system_meta or {})
        if error:  # back to the source: its claim returns to the server, a stopped guest starts again
            await self._rollback_move(server, meta, error, restart=True)
            return
        dest_host = ctx.get("host")
        await self._migration_status(meta.get("migration"), "finished")
        await self.settle(server_id, vm_state="resized", host=dest_host, node=await self._node_id(dest_host),
                          flavor=meta.get("new_flavor", server.flavor),
                          flavor_id=(meta.get("new_flavor") or server.flavor)["id"],
                          power_state=RUNNING if meta.get("old_vm_state") != "stopped" else SHUTDOWN)

    async def _rollback_move(self, server: Server, meta: dict[str, Any], error: str, restart: bool = False) -> None:
        migration = meta.pop("migration", None)
        restart = restart and meta.get("old_vm_state") == "active" and bool(server.host)
        if server.node or meta.get("old_node"):
            await self.placement.set_allocations({
                server.id: {"allocations": {meta.get("old_node") or server.node: resources_of(server.flavor)},
                            "project_id": server.project_id, "user_id": server.user_id},
                **({migration: {"allocations": {}, "project_id": None, "user_id": None}} if migration else {})})
        await self._migration_status(migration, "error")
        for key in ("old_flavor", "new_flavor", "old_vm_state", "old_host", "old_node"):
            meta.pop(key, None)
        await self.settle(server.id, system_meta=meta)
        LOG.warning("moving server %s failed, it stays on %s: %s", server.id, server.host, error)
        if restart:  # the source stopped the guest for the move: it runs again where it was
            await self.cast(server.host or "", "power", {"server_id": server.id, "action": "start",
                                                         "server": await self.payload(server.id)},
                            "start", server.id, None)

    async def _node_id(self, host: str | None) -> str | None:
        if not host:
            return None
        async with self.db.session() as s:
            return (await s.execute(select(ComputeNode.id).where(ComputeNode.host == host))).scalar()

    async def confirm_resize(self, server: Server) -> None:
        if server.vm_state != "resized":
            raise Conflict(f"Cannot 'confirmResize' instance {server.id} while it is in vm_state {server.vm_state}")
        meta = dict(server.system_meta or {})
        migration = meta.get("migration")
        await self.record(server.id, "confirmResize", server.project_id, None)
        if migration:
            await self.release(migration)
        old_host = meta.get("old_host")
        if old_host:
            await self.cast(old_host, "confirm_migration", {"server_id": server.id,
                                                            "same_host": old_host == server.host},
                            "confirm", server.id, None)
        await self._migration_status(migration, "confirmed")
        vm_state = meta.get("old_vm_state") or "active"
        for key in ("old_flavor", "new_flavor", "old_vm_state", "old_host", "old_node", "migration"):
            meta.pop(key, None)
        async with self.db.session() as s:
            await s.execute(update(Server).where(Server.id == server.id, Server.vm_state == "resized").values(
                vm_state=vm_state, task_state=None, system_meta=meta))

    async def _done_confirm(self, server_id: str, ctx: dict[str, Any], args: dict[str, Any],
                            error: str | None) -> None:
        if error:
            LOG.warning("cleaning the source of %s after a confirmed resize failed: %s", server_id, error)

    async def revert_resize(self, server: Server) -> None:
        meta = dict(server.system_meta or {})
        action_id = await self.begin(server, "revertResize", ("resized",), "resize_reverting")
        migration = meta.get("migration")
        old_flavor = meta.get("old_flavor") or server.flavor
        old_host, old_node = meta.get("old_host") or server.host, meta.get("old_node") or server.node
        claims: dict[str, Any] = {server.id: {"allocations": {old_node: resources_of(old_flavor)},
                                              "project_id": server.project_id, "user_id": server.user_id}}
        if migration:
            claims[migration] = {"allocations": {}, "project_id": None, "user_id": None}
        await self.placement.set_allocations(claims)
        if server.host and server.host != old_host:
            await self.bus.cast(f"compute.{server.host}", "destroy", {"server_id": server.id})
        payload = await self.payload(server.id)
        payload["flavor"] = old_flavor
        payload["power_on"] = meta.get("old_vm_state") != "stopped"
        await self.cast(old_host or "", "finish_revert_migration", {"server": payload,
                                                                    "same_host": old_host == server.host},
                        "revert", server.id, action_id)

    async def _done_revert(self, server_id: str, ctx: dict[str, Any], args: dict[str, Any],
                           error: str | None) -> None:
        server = await self.get(server_id)
        if server is None or server.deleted_at is not None:
            return
        meta = dict(server.system_meta or {})
        if error:
            await self.fail(server_id, error, "Reverting the resize failed.", None, "compute_finish_revert_resize")
            return
        old_flavor = meta.pop("old_flavor", server.flavor)
        vm_state = meta.pop("old_vm_state", "active")
        host, node = meta.pop("old_host", server.host), meta.pop("old_node", server.node)
        await self._migration_status(meta.pop("migration", None), "reverted")
        meta.pop("new_flavor", None)
        await self.settle(server_id, vm_state=vm_state, flavor=old_flavor, flavor_id=old_flavor["id"], host=host,
                          node=node, system_meta=meta, power_state=SHUTDOWN if vm_state == "stopped" else RUNNING)

    # live migration --------------------------------------------------------------------------
    async def live_migrate(self, server: Server, host: str | None) -> None:
        action_id = await self.begin(server, "live-migration", ("active", "paused"), "migrating")
        migration, dest = await self._start_move(server, action_id, "live-migration", "accepted", "running",
                                                 "conductor_live_migrate_instance", host=host)
        async with self.db.session() as s:
            await s.execute(update(Server).where(Server.id == server.id).values(
                system_meta={**(server.system_meta or {}), "migration": migration, "old_node": server.node,
                             "old_host": server.host}))
        await self.cast(server.host or "", "live_migrate", {"server": await self.payload(server.id),
                                                            "dest": dest.host},
                        "live_migrate", server.id, action_id, dest=dest.host)

    async def _done_live_migrate(self, server_id: str, ctx: dict[str, Any], args: dict[str, Any],
                                 error: str | None) -> None:
        server = await self.get(server_id)
        if server is None or server.deleted_at is not None:
            return
        meta = dict(server.system_meta or {})
        if error:
            await self._rollback_move(server, meta, error)
            return
        migration = meta.pop("migration", None)
        meta.pop("old_node", None)
        meta.pop("old_host", None)
        if migration:
            await self.release(migration)
        await self._migration_status(migration, "completed")
        dest = ctx.get("dest")
        await self.settle(server_id, host=dest, node=await self._node_id(dest), system_meta=meta)

    # evacuate ---------------------------------------------------------------------------------
    async def evacuate(self, server: Server, host: str | None) -> None:
        if await self.host_is_up(server.host):
            raise Conflict(f"Compute service of {server.host} is still in use.")
        stopped = server.vm_state == "stopped"
        action_id = await self.begin(server, "evacuate", ("active", "stopped", "error"), "rebuilding")
        migration, dest = await self._start_move(server, action_id, "evacuation", "accepted", "pre-migrating",
                                                 "conductor_rebuild_server", host=host, keep_source_claim=False)
        async with self.db.session() as s:
            await s.execute(update(Server).where(Server.id == server.id).values(host=dest.host, node=dest.node))
        await self.cast(dest.host, "spawn", {"server": await self.payload(server.id)}, "evacuate", server.id,
                        action_id, migration=migration, stopped=stopped)

    async def host_is_up(self, host: str | None) -> bool:
        if not host:
            return False
        for state in await self.host_states():
            if state.host == host:
                return state.up
        return False

    # snapshots and shelving -------------------------------------------------------------------
    async def snapshot(self, server: Server, image_id: str, token: str) -> None:
        action_id = await self.begin(server, "createImage", SNAPSHOT_STATES, "image_snapshot")
        await self.cast(server.host or "", "snapshot", {"server_id": server.id, "image_id": image_id,
                                                         "image_url": self.image_url, "token": token},
                        "snapshot", server.id, action_id, image_id=image_id)

    async def _done_snapshot(self, server_id: str, ctx: dict[str, Any], args: dict[str, Any],
                             error: str | None) -> None:
        await self.settle(server_id)
        if error and ctx.get("image_id"):
            await self._drop_image(ctx["image_id"], server_id)

    async def _drop_image(self, image_id: str, server_id: str | None = None) -> None:
        """Delete an image a server's operation made and no longer needs (a failed snapshot, a
        shelved image after unshelve or delete).  A failure is logged with its cause and, when the
        image is a server's, left for the reconciler to retry: it never passes for "already gone"."""
        try:
            await self._delete_image(image_id)
        except Exception as exc:
            LOG.warning("image %s could not be deleted: %s%s", image_id, exc or type(exc).__name__,
                        "; the reconciler tries again" if server_id else "")
            if server_id:
                await self._remember_cleanup(server_id, [f"image:{image_id}"])

    async def _delete_image(self, image_id: str) -> None:
        """Delete the image; only a missing one counts as done already (a protected one is kept:
        its owner asked for that).  Any other error is raised."""
        if self.images is None:
            return
        from cumulo.image.service import Caller

        admin = Caller(None, True, "")
        try:
            await self.images.delete(await self.images.get(image_id, admin), admin)
        except NotFound:
            LOG.info("image %s was already gone", image_id)
        except Forbidden as exc:
            LOG.warning("image %s is kept: %s", image_id, exc.message)

    async def shelve(self, server: Server, image_id: str, token: str) -> None:
        action_id = await self.begin(server, "shelve", SNAPSHOT_STATES, "shelving",
                                     {"system_meta": {**(server.system_meta or {}), "shelved_image_id": image_id}})
        await self.cast(server.host or "", "shelve", {"server_id": server.id, "image_id": image_id,
                                                       "image_url": self.image_url, "token": token},
                        "shelve", server.id, action_id)

    async def _done_shelve(self, server_id: str, ctx: dict[str, Any], args: dict[str, Any],
                           error: str | None) -> None:
        if error:
            server = await self.get(server_id)
            meta = dict(server.system_meta or {}) if server else {}
            image_id = meta.pop("shelved_image_id", None)
            await self.settle(server_id, system_meta=meta)
            if image_id:
                await self._drop_image(image_id, server_id)
            return
        await self.release(server_id)  # offloaded at once: the host's resources are free again
        await self.settle(server_id, vm_state="shelved_offloaded", power_state=SHUTDOWN, host=None, node=None)

    async def unshelve(self, server: Server, zone: str | None, host: str | None) -> None:
        request = dict(server.request or {})
        request.pop("requested_host", None)
        if host:
            request["requested_host"] = host
        values: dict[str, Any] = {"request": request}
        if zone is not None:
            values["availability_zone"] = zone
        action_id = await self.begin(server, "unshelve", ("shelved_offloaded",), "spawning", values)
        server = await self.get(server.id) or server
        image_id = (server.system_meta or {}).get("shelved_image_id")
        async with self.builds:
            try:
                host_state = await self.pick(await self.request_spec(server), server, resources_of(server.flavor))
            except NoValidHost as exc:
                await self.settle(server.id)
                await self.event(action_id, "schedule_instances", None, None, exc.message)
                return
        async with self.db.session() as s:
            await s.execute(update(Server).where(Server.id == server.id).values(
                host=host_state.host, node=host_state.node, availability_zone=host_state.zone))
        await self.cast(host_state.host, "spawn", {"server": await self.payload(server.id, image_id)}, "unshelve",
                        server.id, action_id)

    # console ------------------------------------------------------------------------------
    async def console_output(self, server: Server, length: int | None) -> str:
        if not server.host or server.vm_state in ("building", "shelved_offloaded"):
            raise Conflict(f"Instance {server.id} is not ready yet: it has no console output.")
        try:
            out: str = await self.bus.call(f"compute.{server.host}", "console", {"server_id": server.id},
                                           timeout=15)
        except Exception as exc:
            raise Conflict(f"The compute host {server.host} did not return the console: {exc}") from None
        if length is not None:
            lines = out.splitlines(keepends=True)
            out = "".join(lines[-length:]) if length else ""
        return out

    # delete, soft delete, restore ------------------------------------------------------------
    async def delete(self, server: Server, force: bool = False) -> None:
        interval = self.cfg.reclaim_instance_interval
        auth = context.current.get()
        user = auth.auth.user_id if auth and auth.auth else None
        if interval > 0 and not force and server.vm_state not in ("soft-delete", "error", "building"):
            await self.record(server.id, "delete", server.project_id, user)
            async with self.db.session() as s:
                await s.execute(update(Server).where(Server.id == server.id).values(
                    vm_state="soft-delete", task_state=None, lease_owner=None, lease_until=None))
            if server.host and server.power_state == RUNNING:
                await self.cast(server.host, "power", {"server_id": server.id, "action": "stop",
                                                       "server": await self.payload(server.id)},
                                "soft_delete", server.id, None)
            return
        await self.record(server.id, "forceDelete" if force else "delete", server.project_id, user)
        await self.hard_delete(server)

    async def hard_delete(self, server: Server) -> None:
        """Delete always wins: the server is gone at once.  What it held (ports, placement claims,
        a shelved image) is released here; a step that fails for any reason but "not found" is kept
        in the row's system_meta ``cleanup`` and retried by the reconciler until it succeeds."""
        now = utcnow()
        # the ports go first: once the server answers 404, nothing of it holds a security group
        left = await self._cleanup(server.id, ["ports"])
        async with self.db.session() as s:
            migrations = list((await s.execute(select(Migration.uuid).where(
                Migration.server_id == server.id, Migration.status.not_in(
                    ("confirmed", "reverted", "completed", "done", "error", "failed"))))).scalars())
            steps = ["claims:" + ",".join([server.id, *migrations])]
            image_id = (server.system_meta or {}).get("shelved_image_id")
            if image_id and server.vm_state == "shelved_offloaded":
                steps.append(f"image:{image_id}")
            # the steps are written with the delete itself: a controller killed before it ran them
            # leaves them to the reconciler (the fault matrix found the claims leaked otherwise)
            meta = (await s.execute(select(Server.system_meta).where(Server.id == server.id))).scalar() or {}
            pending = list(dict.fromkeys([*(meta.get("cleanup") or []), *left, *steps]))
            await s.execute(update(Server).where(Server.id == server.id).values(
                vm_state="deleted", task_state=None, deleted_at=now, terminated_at=now, lease_owner=None,
                lease_until=None, system_meta={**meta, "cleanup": pending}))
            await s.execute(sql_delete(ServerGroupMember).where(ServerGroupMember.server_id == server.id))
        failed = await self._cleanup(server.id, steps)
        await self._cleanup_done(server.id, [x for x in steps if x not in failed])
        hosts = {server.host, (server.system_meta or {}).get("old_host")} - {None}
        for host in hosts:
            try:
                await self.bus.cast(f"compute.{host}", "destroy", {"server_id": server.id})
            except Exception as exc:  # the node's next report names an instance nothing owns: destroyed then
                LOG.warning("could not ask %s to destroy server %s now (%s): its next report will", host,
                            server.id, exc or type(exc).__name__)

    async def _cleanup(self, server_id: str, steps: list[str]) -> list[str]:
        """Run cleanup steps of a server (``ports``, ``claims:<consumer>,...``, ``image:<id>``);
        returns the ones that failed, each logged with its cause."""
        left = []
        for step in steps:
            kind, _, arg = step.partition(":")
            try:
                if kind == "ports":
                    await self.release_ports(server_id)
                elif kind == "claims":
                    await self.placement.set_allocations({c: {"allocations": {}, "project_id": None,
                                                              "user_id": None} for c in arg.split(",") if c})
                elif kind == "image":
                    await self._delete_image(arg)
            except Exception as exc:
                LOG.warning("releasing %s of server %s failed: %s; the reconciler tries again", kind, server_id,
                            exc or type(exc).__name__)
                left.append(step)
        return left

    async def _remember_cleanup(self, server_id: str, steps: list[str]) -> None:
        if not steps:
            return
        async with self.db.session() as s:
            meta = (await s.execute(select(Server.system_meta).where(Server.id == server_id))).scalar() or {}
            await s.execute(update(Server).where(Server.id == server_id).values(
                system_meta={**meta, "cleanup": list(dict.fromkeys([*(meta.get("cleanup") or []), *steps]))}))

    async def _cleanup_done(self, server_id: str, done: list[str]) -> None:
        async with self.db.session() as s:
            meta = dict((await s.execute(select(Server.system_meta).where(Server.id == server_id))).scalar() or {})
            pending = [x for x in meta.pop("cleanup", []) if x not in done]
            if pending:
                meta["cleanup"] = pending
            await s.execute(update(Server).where(Server.id == server_id).values(system_meta=meta))

    async def finish_cleanups(self) -> int:
        """Retry the cleanup steps servers (deleted or not) still have pending; returns how many
        steps are still left."""
        async with self.db.session() as s:
            rows = (await s.execute(select(Server.id, Server.system_meta).where(
                type_coerce(Server.system_meta, Text).like('%"cleanup":%')))).all()
        left_total = 0
        for server_id, meta in rows:
            steps = list((meta or {}).get("cleanup") or [])
            left = await self._cleanup(server_id, steps)
            left_total += len(left)
            async with self.db.session() as s:
                meta = dict((await s.execute(select(Server.system_meta).where(Server.id == server_id))).scalar()
                            or {})
                pending = [x for x in meta.pop("cleanup", []) if x in left or x not in steps]
                if pending:
                    meta["cleanup"] = pending
                else:
                    LOG.info("server %s: cleanup finished (%s)", server_id, ", ".join(steps))
                await s.execute(update(Server).where(Server.id == server_id).values(system_meta=meta))
        return left_total

    async def _done_soft_delete(self, server_id: str, ctx: dict[str, Any], args: dict[str, Any],
                                error: str | None) -> None:
        if not error:
            async with self.db.session() as s:
                await s.execute(update(Server).where(Server.id == server_id, Server.vm_state == "soft-delete")
                                .values(power_state=SHUTDOWN))

    async def restore(self, server: Server) -> None:
        action_id = await self.begin(server, "restore", ("soft-delete",), "restoring")
        if server.host and server.power_state != RUNNING:
            await self.cast(server.host, "power", {"server_id": server.id, "action": "start",
                                                   "server": await self.payload(server.id)},
                            "start", server.id, action_id)
        else:
            await self.settle(server.id, vm_state="active")

    # -- reports from a node's heartbeat ----------------------------------------------------------
    async def sync_host(self, host: str, instances: dict[str, int], taken_at: dt.datetime | None = None,
                        first: bool = False, agent_started: dt.datetime | None = None) -> None:
        """Reconcile what a node runs with what the database says it should (Nova's power-state
        sync): instances nothing owns are destroyed (a delete the agent missed); a build whose
        report was lost (its controller died) completes when the node runs it; servers the node
        lost or that powered themselves off are shown SHUTOFF, or, on the first report after the
        agent started and with [compute] resume_guests_state_on_host_boot, started again."""
        async with self.db.session() as s:
            rows = (await s.execute(select(Server.id, Server.host, Server.vm_state, Server.task_state,
                                           Server.deleted_at, Server.system_meta, Server.updated_at).where(
                (Server.id.in_(list(instances))) | (Server.host == host)))).all()
        known = {r.id: r for r in rows}
        for instance_id in instances:
            r = known.get(instance_id)
            moving = r is not None and r.deleted_at is None and (
                r.task_state is not None or r.vm_state == "resized"
                or (r.system_meta or {}).get("old_host") == host)
            if r is None or r.deleted_at is not None or (r.host != host and not moving):
                LOG.info("instance %s on %s belongs to no server here: destroying it", instance_id, host)
                await self.bus.cast(f"compute.{host}", "destroy", {"server_id": instance_id})
        # only servers last changed before the node looked: a report overtaken by a spawn proves nothing
        before = (taken_at or utcnow()) - dt.timedelta(seconds=2)
        mine = [r for r in rows if r.host == host and r.deleted_at is None and r.updated_at < before]
        for r in rows:
            if r.host != host or r.deleted_at is not None or r.vm_state != "building" or r.task_state != "spawning":
                continue
            if instances.get(r.id) == RUNNING and r.updated_at < before:
                LOG.info("server %s runs on %s though its build was never reported: ACTIVE", r.id, host)
                await self._done_spawn(r.id, {}, {}, None)
            elif agent_started is not None and r.updated_at < agent_started and instances.get(r.id) != RUNNING:
                # handed to an agent that has restarted since: the build it had in hand is lost
                await self._done_spawn(r.id, {}, {}, f"the compute agent on {host} restarted during the build")
        down = [r.id for r in mine if r.task_state is None and r.vm_state in ("active", "paused", "suspended")
                and instances.get(r.id, SHUTDOWN) == SHUTDOWN
                and not (r.vm_state == "suspended" and instances.get(r.id) == SUSPENDED)]
        if down and first and self.cfg.resume_guests_state_on_host_boot:
            LOG.warning("%d servers of %s are not running after it started: starting them", len(down), host)
            for server_id in down:
                await self.cast(host, "power", {"server_id": server_id, "action": "start",
                                                "server": await self.payload(server_id)}, "start", server_id, None)
        elif down:
            LOG.warning("%d servers are not running on %s (lost, or powered off from inside): shown SHUTOFF",
                        len(down), host)
            async with self.db.session() as s:
                await s.execute(update(Server).where(Server.id.in_(down), Server.task_state.is_(None)).values(
                    vm_state="stopped", power_state=SHUTDOWN))

    # -- reconcile --------------------------------------------------------------------------
    async def reconcile(self) -> int:
        """Servers left building past their lease go to ERROR, their claims released; a move whose
        agent never answered goes back to its source; any other operation has its task_state
        cleared.  Soft-deleted servers older than the reclaim interval are deleted."""
        now = utcnow()
        async with self.db.session() as s:
            stuck = list((await s.execute(select(Server).where(
                Server.task_state.is_not(None), Server.deleted_at.is_(None), Server.lease_until.is_not(None),
                Server.lease_until < now))).scalars())
        for server in stuck:
            if server.vm_state == "building":
                await self.release(server.id)
                await self.fail(server.id, "The build did not finish in time: its owner stopped (controller or "
                                           "compute agent) and the lease expired.", "Build of instance timed out.")
            elif server.task_state in ("resize_prep", "resize_migrating", "migrating") and \
                    (server.system_meta or {}).get("migration"):
                await self._rollback_move(server, dict(server.system_meta or {}), "the lease expired")
            elif server.vm_state == "shelved_offloaded":
                await self.release(server.id)
                await self.settle(server.id, host=None, node=None)
            else:
                await self.settle(server.id)
        interval = self.cfg.reclaim_instance_interval
        if interval > 0:
            async with self.db.session() as s:
                old = list((await s.execute(select(Server).where(
                    Server.vm_state == "soft-delete", Server.deleted_at.is_(None),
                    Server.updated_at < now - dt.timedelta(seconds=interval)))).scalars())
            for server in old:
                LOG.info("reclaiming soft-deleted server %s", server.id)
                await self.hard_delete(server)
        await self.finish_cleanups()
        return len(stuck)

    async def _reconcile_forever(self) -> None:
        every = min(10.0, self.build_lease.total_seconds() / 2)
        if self.cfg.reclaim_instance_interval > 0:
            every = min(every, max(1.0, self.cfg.reclaim_instance_interval / 2))
        while True:
            await asyncio.sleep(every)
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

    # -- networks ----------------------------------------------------------------------------------
    async def requested_networks(self, networks: list[Any], project: str, admin: bool) -> list[dict[str, Any]]:
        """Check a create's list of networks and ports against the Network API (400/409 at once)."""
        from cumulo.core.http.faults import NotFound as Missing

        out = []
        for entry in networks:
            if not isinstance(entry, dict):
                raise BadRequest("Each entry of networks must be an object.")
            if self.network is None:
                ident = entry.get("uuid") or entry.get("port")
                raise BadRequest(f"Network {ident} could not be found: this cloud runs no network service (use "
                                 "\"none\" or \"auto\").")
            if entry.get("port"):
                try:
                    port = await self.network.port(str(entry["port"]), project, admin)
                except Missing:
                    raise BadRequest(f"Port {entry['port']} not found.") from None
                if port.device_id:
                    raise Conflict(f"Port {port.id} is still in use.")
                out.append({"port": port.id})
                continue
            try:
                net = await self.network.network(str(entry.get("uuid", "")), project, admin)
            except Missing:
                raise BadRequest(f"Network {entry.get('uuid')} could not be found.") from None
            if net.external and not admin:
                raise Forbidden(f"Network {net.id} is external: servers attach to it only by an admin.")
            item: dict[str, Any] = {"uuid": net.id}
            if entry.get("fixed_ip"):
                item["fixed_ip"] = str(entry["fixed_ip"])
            out.append(item)
        return out

    async def auto_network(self, project: str, required: bool = True) -> list[dict[str, Any]] | str:
        """networks "auto": the project's one network, else the one shared network; none is an error
        (there is no automatic topology here), several is ambiguous."""
        from sqlalchemy import or_

        from cumulo.network.models import Network

        async with self.db.session() as s:
            own = list((await s.execute(select(Network.id).where(
                Network.project_id == project, Network.external.is_(False)))).scalars())
            shared = list((await s.execute(select(Network.id).where(
                Network.shared.is_(True), Network.external.is_(False), or_(Network.project_id != project)))).scalars())
        choice = own or shared
        if not choice and not required:
            return "none"
        if not choice:
            raise BadRequest("Unable to automatically allocate a network for the project: create a network (and "
                             "subnet) or boot with networks \"none\".")
        if len(choice) > 1:
            raise Conflict("Multiple possible networks found, use a Network ID to be more specific.")
        return [{"uuid": choice[0]}]

    async def security_group_ids(self, names: list[str], project: str) -> list[str]:
        """The project's security groups by name (or id), as Nova resolves them; "default" is
        made on first use.  An unknown name is a 400."""
        from cumulo.network.models import SecurityGroup
        from cumulo.network.security_groups import SecurityGroups

        out = []
        for name in names or ["default"]:
            if name == "default":
                out.append(await SecurityGroups(self.db).default(project))
                continue
            async with self.db.session() as s:
                found = list((await s.execute(select(SecurityGroup.id).where(
                    SecurityGroup.project_id == project,
                    (SecurityGroup.name == name) | (SecurityGroup.id == name)))).scalars())
            if not found:
                raise BadRequest(f"Security group {name} not found for project {project}.")
            if len(found) > 1:
                raise Conflict(f"Multiple security groups named {name} in project {project}: use its id.")
            out.append(found[0])
        return list(dict.fromkeys(out))

    async def allocate_ports(self, server: Server) -> None:
        """Ports for the server's requested networks (made here, removed with the server) or the
        ports it was given (handed back on delete)."""
        request = dict(server.request or {})
        wanted = request.get("networks")
        if self.network is None or not isinstance(wanted, list) or request.get("ports"):
            return
        made, ports = [], []
        groups = None
        try:
            for entry in wanted:
                if entry.get("port"):
                    ports.append(entry["port"])
                    continue
                from cumulo.network.models import Network

                async with self.db.session() as s:
                    net = await s.get(Network, entry["uuid"])
                secure = net.port_security_enabled if net is not None else True
                if secure and groups is None:
                    groups = await self.security_group_ids(request.get("security_groups") or ["default"],
                                                           server.project_id)
                fixed = [{"ip_address": entry["fixed_ip"]}] if entry.get("fixed_ip") else None
                port = await self.network.create_port(
                    {"network_id": entry["uuid"], "project_id": server.project_id, "device_id": server.id,
                     "device_owner": f"compute:{server.availability_zone or 'nova'}", "port_security_enabled": secure,
                     "security_groups": groups if secure else []}, fixed, server.project_id, True)
                made.append(port.id)
                ports.append(port.id)
            from cumulo.network.models import Port

            async with self.db.session() as s:
                given = [p for p in ports if p not in made]
                if given:
                    await s.execute(update(Port).where(Port.id.in_(given)).values(
                        device_id=server.id, device_owner=f"compute:{server.availability_zone or 'nova'}"))
                await s.execute(update(Server).where(Server.id == server.id).values(
                    request={**request, "ports": ports}))
        except Exception:
            for port_id in made:
                try:
                    await self._drop_port(port_id)
                except Exception as exc:  # it keeps the server's device_id: the server's delete removes it
                    LOG.warning("port %s made for server %s stays for now: %s", port_id, server.id,
                                exc or type(exc).__name__)
            raise

    async def _drop_port(self, port_id: str) -> None:
        """Delete a port made for a server; only a port that is missing counts as done already."""
        try:
            port = await self.network.port(port_id, None, True)
        except NotFound:
            LOG.info("port %s was already gone", port_id)
            return
        await self.network.delete_port(port)

    async def bind_ports(self, server_id: str, host: str | None) -> None:
        if self.network is None:
            return
        from cumulo.network.models import Port

        async with self.db.session() as s:
            await s.execute(update(Port).where(Port.device_id == server_id, Port.device_owner.like("compute:%"))
                            .values(binding_host_id=host or "", status="ACTIVE" if host else "DOWN"))
        await self.bus.publish("network.changed", {"server_id": server_id})  # the dataplane wires them

    async def release_ports(self, server_id: str) -> None:
        """Delete: the ports made for the server go, the ones it was given are handed back."""
        if self.network is None:
            return
        from cumulo.network.models import Port

        server = await self.get(server_id)
        # the ports a create named are handed back; every other port of the server was made for it
        # (decided from the create's request, so a delete racing the build still finds them)
        wanted = (server.request or {}).get("networks") if server else None
        given = {str(e["port"]) for e in wanted if isinstance(e, dict) and e.get("port")} \
            if isinstance(wanted, list) else set()
        async with self.db.session() as s:
            ports = list((await s.execute(select(Port.id).where(
                Port.device_id == server_id, Port.device_owner.like("compute:%")))).scalars())
        for port_id in ports:
            if port_id not in given:
                await self._drop_port(port_id)
            else:
                async with self.db.session() as s:
                    await s.execute(update(Port).where(Port.id == port_id).values(
                        device_id="", device_owner="", binding_host_id="", status="DOWN"))
        if ports:
            await self.bus.publish("network.changed", {"server_id": server_id})

    async def ports_of(self, server_id: str) -> list[dict[str, Any]]:
        if self.network is None:
            return []
        from cumulo.network.models import Network, Port

        async with self.db.session() as s:
            rows = (await s.execute(select(Port, Network).join(Network, Network.id == Port.network_id).where(
                Port.device_id == server_id, Port.device_owner.like("compute:%")).order_by(Port.created_at))).all()
        ips = await self.network.allocations([p.id for p, _ in rows])
        return [{"id": p.id, "mac_address": p.mac_address, "network_id": n.id, "network_name": n.name,
                 "segment_id": n.segment_id, "mtu": n.mtu, "fixed_ips": ips[p.id]} for p, n in rows]

    async def addresses(self, server_ids: list[str]) -> dict[str, dict[str, list[dict[str, Any]]]]:
        """Nova's "addresses": per network name, the fixed and floating addresses of each port."""
        if self.network is None or not server_ids:
            return {}
        import ipaddress

        from cumulo.network.models import FloatingIP, IPAllocation, Network, Port

        async with self.db.session() as s:
            rows = (await s.execute(select(Port.device_id, Port.mac_address, Network.name, IPAllocation.ip_address,
                                           Port.id).join(Network, Network.id == Port.network_id).join(
                IPAllocation, IPAllocation.port_id == Port.id).where(
                Port.device_id.in_(server_ids), Port.device_owner.like("compute:%")).order_by(Port.created_at))).all()
            fips = (await s.execute(select(FloatingIP.port_id, FloatingIP.floating_ip_address).where(
                FloatingIP.port_id.in_([r[4] for r in rows])))).all() if rows else []
        floating = {port_id: address for port_id, address in fips}
        out: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for device, mac, net_name, address, port_id in rows:
            entries = out.setdefault(device, {}).setdefault(net_name or "network", [])
            entries.append({"version": ipaddress.ip_address(address).version, "addr": address,
                            "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": mac})
            if port_id in floating and ipaddress.ip_address(address).version == 4:
                entries.append({"version": 4, "addr": floating.pop(port_id), "OS-EXT-IPS:type": "floating",
                                "OS-EXT-IPS-MAC:mac_addr": mac})
        return out

    async def servers_with_ip(self, pattern: str, version: int) -> list[str]:
        """The ``ip``/``ip6`` list filters: servers with an address matching the regular expression."""
        if self.network is None:
            return []
        import ipaddress
        import re

        from cumulo.network.models import IPAllocation, Port

        try:
            regex = re.compile(pattern)
        except re.error:
            raise BadRequest(f"Invalid ip filter {pattern!r}: not a regular expression.") from None
        async with self.db.session() as s:
            rows = (await s.execute(select(Port.device_id, IPAllocation.ip_address).join(
                IPAllocation, IPAllocation.port_id == Port.id).where(Port.device_owner.like("compute:%")))).all()
        return sorted({d for d, a in rows if ipaddress.ip_address(a).version == version and regex.search(a)})

    # -- tags ---------------------------------------------------------------------------------
    async def tags(self, server_ids: list[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {x: [] for x in server_ids}
        if not server_ids:
            return out
        async with self.db.session() as s:
            for server_id, tag in (await s.execute(select(ServerTag.server_id, ServerTag.tag).where(
                    ServerTag.server_id.in_(server_ids)).order_by(ServerTag.tag))).all():
                out[server_id].append(tag)
        return out

    async def set_tags(self, server_id: str, tags: list[str], replace: bool = True) -> list[str]:
        async with self.db.session() as s:
            have = set((await s.execute(select(ServerTag.tag).where(ServerTag.server_id == server_id))).scalars())
            wanted = set(tags) if replace else have | set(tags)
            if len(wanted) > 50:
                raise BadRequest("A server may have at most 50 tags.")
            for tag in have - wanted:
                await s.execute(sql_delete(ServerTag).where(ServerTag.server_id == server_id, ServerTag.tag == tag))
            for tag in wanted - have:
                s.add(ServerTag(server_id=server_id, tag=tag))
        return sorted(wanted)

    async def delete_tag(self, server_id: str, tag: str) -> bool:
        async with self.db.session() as s:
            result = await s.execute(sql_delete(ServerTag).where(ServerTag.server_id == server_id,
                                                                 ServerTag.tag == tag))
        return bool(result.rowcount)
