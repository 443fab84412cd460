"""Create and build: the quota check, the rows of a create, scheduling onto a host with its
placement claims, the build cast to the agent and the spawn's report."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from typing import Any

from sqlalchemy import delete as sql_delete
from sqlalchemy import func, select, update

from cumulo.compute.models import (
    Aggregate,
    AggregateHost,
    ComputeNode,
    Flavor,
    Server,
    ServerGroup,
    ServerGroupMember,
    ServerTag,
    ServiceRecord,
)
from cumulo.compute.scheduler.scheduler import NoValidHost
from cumulo.compute.scheduler.state import HostState, RequestSpec
from cumulo.compute.servers.base import RUNNING, flavor_snapshot, request_id, resources_of
from cumulo.core import context
from cumulo.core.db import utcnow
from cumulo.core.http.faults import Conflict, Forbidden
from cumulo.core.quota import turn

LOG = logging.getLogger(__name__)
SCHEDULER = logging.getLogger("cumulo.compute.scheduler")  # its pick, beside the filters' lines

# A build between its host's choice and the spawn's cast is the controller's alone: if the
# controller dies there, nobody will report it, so it ends (ERROR, claims released) after this
# lease rather than the whole build lease.
HANDOFF = dt.timedelta(seconds=30)


class Builds:
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
        flavor = flavor or self.local_flavor(server)
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
            SCHEDULER.info("scheduled server %s to %s (node %s) out of %d candidate hosts; claimed %s in placement",
                           server.id, host.host, host.node, len(hosts), resources)
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
                await self.prepare_volumes(server)
            except Exception as exc:
                await self.fail(server.id, f"Preparing the server's volumes failed: {exc}",
                                f"Build of instance aborted: {exc}", action_id, "compute_prep_block_device")
                await self.volumes_built(server.id)
                return
            try:
                await self.allocate_ports(server)
            except Exception as exc:
                await self.fail(server.id, f"Allocating the server's network ports failed: {exc}",
                                f"Build of instance aborted: {exc}", action_id, "allocate_network")
                return
            try:
                spec = await self.request_spec(server)
                host = await self.pick(spec, server, resources_of(self.local_flavor(server)))
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
                                                 lease_until=utcnow() + min(self.build_lease, HANDOFF)))
            if result.rowcount != 1:  # deleted while scheduling: delete wins
                await self.release(server.id)
                await self._remember_cleanup(server.id, await self._cleanup(server.id, ["ports"]))
                return
            await self.bind_ports(server.id, host.host)
            try:
                await self.connect_volumes(server, host.host)
            except Exception as exc:
                await self.release(server.id)
                await self.fail(server.id, f"Connecting the server's volumes on {host.host} failed: {exc}",
                                f"Build of instance aborted: {exc}", action_id, "compute_prep_block_device")
                await self.volumes_built(server.id)
                return
            await self.cast(host.host, "spawn", {"server": await self.payload(server.id, image_id)},
                            op, server.id, action_id)
            # in the agent's hands: the whole build lease from now
            async with self.db.session() as s:
                await s.execute(update(Server).where(Server.id == server.id, Server.task_state == "spawning")
                                .values(lease_until=utcnow() + self.build_lease))

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
                "ports": await self.ports_of(server.id), "volumes": await self.volumes_payload(server.id),
                "files": request.get("personality") or [], "devices": await self.device_metadata(server)}

    def local_flavor(self, server: Server) -> dict[str, Any]:
        """What the server's flavor takes of its host: no root disk when it boots from a volume."""
        return {**server.flavor, "disk": 0} if (server.request or {}).get("boot_volume") else server.flavor

    async def _done_spawn(self, server_id: str, ctx: dict[str, Any], args: dict[str, Any], error: str | None) -> None:
        await self.volumes_built(server_id)
        if error:
            await self.release(server_id)
            await self.fail(server_id, error, "Build of instance aborted: the compute host failed to spawn it.")
            return
        await self.settle(server_id, vm_state="active", power_state=RUNNING,
                          launched_at=func.coalesce(Server.launched_at, utcnow()))
