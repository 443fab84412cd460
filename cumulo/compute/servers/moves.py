"""Moves: resize and cold migration (with confirm and revert), live migration and evacuation.
During a move the migration's uuid holds the source's placement share."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import select, update

from cumulo.compute.models import BlockDeviceMapping, Flavor, Migration, Server
from cumulo.compute.scheduler.scheduler import NoValidHost
from cumulo.compute.scheduler.state import HostState
from cumulo.compute.servers.base import RUNNING, SHUTDOWN, flavor_snapshot
from cumulo.compute.servers.volumes import _caller_for
from cumulo.core.http.faults import Conflict

LOG = logging.getLogger(__name__)


class Moves:
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
        source_share = {migration.uuid: {"allocations": {server.node: self._local_resources(server, server.flavor)},
                                         "project_id": server.project_id, "user_id": server.user_id,
                                         "consumer_type": "MIGRATION"}} if server.node and keep_source_claim else {}
        try:
            dest = await self.pick(spec, server, self._local_resources(server, flavor), source_share)
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
        builds the instance there and the server waits in VERIFY_RESIZE.  A volume-backed server's
        root disk stays in its volume (the flavor's disk is not claimed, nor copied)."""
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
        moving = meta.pop("live_migration_volumes", None) or {}  # a live migration's attachments there
        await self._delete_attachments(server, [v["attachment_id"] for v in moving.values()])
        restart = restart and meta.get("old_vm_state") == "active" and bool(server.host)
        if server.node or meta.get("old_node"):
            await self.placement.set_allocations({
                server.id: {"allocations": {meta.get("old_node") or server.node: self._local_resources(server,
                                                                                                        server.flavor)},
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
        claims: dict[str, Any] = {server.id: {"allocations": {old_node: self._local_resources(server, old_flavor)},
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

    async def live_migrate(self, server: Server, host: str | None) -> None:
        """Live migration: the scheduler picks a host (or checks ``host``), each of the server's
        volumes gets a second attachment connected for that host (Nova's pre_live_migration),
        and the source's agent moves the running guest there, its local disks copied and its
        volumes opened where they are.  The report keeps one set of attachments and deletes
        the other.  A server whose volumes are being attached, detached or swapped waits (409)."""
        await self._refuse_moving_volumes(server)
        action_id = await self.begin(server, "live-migration", ("active", "paused"), "migrating")
        migration, dest = await self._start_move(server, action_id, "live-migration", "accepted", "running",
                                                 "conductor_live_migrate_instance", host=host)
        meta = {**(server.system_meta or {}), "migration": migration, "old_node": server.node,
                "old_host": server.host}
        try:
            volumes = await self._connect_volumes_at(server, dest.host)
        except Exception as exc:  # the destination cannot reach a volume: the server stays where it is
            error = f"a volume could not be connected on {dest.host}: {getattr(exc, 'message', None) or exc}"
            await self.event(action_id, "compute_pre_live_migration", dest.host, None, error)
            await self._rollback_move(server, meta, error)
            return
        async with self.db.session() as s:
            await s.execute(update(Server).where(Server.id == server.id).values(
                system_meta={**meta, "live_migration_volumes": volumes}))
        payload = await self.payload(server.id)
        payload["volumes"] = [{**v, "connection_info": volumes[v["volume_id"]]["connection_info"]}
                              for v in payload["volumes"] if v["volume_id"] in volumes]
        await self.cast(server.host or "", "live_migrate", {"server": payload, "dest": dest.host},
                        "live_migrate", server.id, action_id, dest=dest.host)

    async def _refuse_moving_volumes(self, server: Server) -> None:
        async with self.db.session() as s:
            busy = (await s.execute(select(BlockDeviceMapping.volume_id).where(
                BlockDeviceMapping.server_id == server.id, BlockDeviceMapping.status != "attached"))).scalar()
        if busy or (server.system_meta or {}).get("swap_volume"):
            raise Conflict(f"Cannot 'os-migrateLive' instance {server.id} while volume {busy or 'swap'} of it is "
                           "being attached, detached or swapped.")

    async def _connect_volumes_at(self, server: Server, host: str) -> dict[str, dict[str, Any]]:
        """A new attachment of each attached volume, connected with ``host``'s connector:
        {volume id: {bdm_id, attachment_id, connection_info}}.  If one cannot be made, those
        made are deleted and the error raised (the source's attachments are never touched)."""
        async with self.db.session() as s:
            rows = list((await s.execute(select(BlockDeviceMapping).where(
                BlockDeviceMapping.server_id == server.id))).scalars())
        if not rows:
            return {}
        block, who = self._block_storage(), _caller_for(server)
        made: dict[str, dict[str, Any]] = {}
        try:
            for row in rows:
                attachment = await block.attachment_create(who, row.volume_id, server.id)
                made[row.volume_id] = {"bdm_id": row.id, "attachment_id": attachment.id}
                attachment = await block.attachment_update(who, attachment.id, {**self._connector(server),
                                                                                "host": host},
                                                           mountpoint=row.device_name)
                made[row.volume_id]["connection_info"] = attachment.connection_info
        except Exception:
            await self._delete_attachments(server, [v["attachment_id"] for v in made.values()])
            raise
        return made

    async def _delete_attachments(self, server: Server, attachment_ids: list[str]) -> None:
        for attachment_id in attachment_ids:
            try:
                await self._block_storage().attachment_delete(_caller_for(server), attachment_id)
            except Exception as exc:  # gone already, or block storage away: the other ones still go
                LOG.warning("deleting attachment %s of server %s: %s", attachment_id, server.id, exc)

    async def _done_live_migrate(self, server_id: str, ctx: dict[str, Any], args: dict[str, Any],
                                 error: str | None) -> None:
        """The report of a live migration.  Done: the volumes' mappings take the destination's
        attachments (completed first, so a volume stays in-use) and the source's are deleted.
        Failed: the destination's attachments go, the server is where it was."""
        server = await self.get(server_id)
        if server is None:
            return
        meta = dict(server.system_meta or {})
        if server.deleted_at is not None:  # deleted meanwhile: its attachments there go too
            moving = meta.get("live_migration_volumes") or {}
            await self._delete_attachments(server, [v["attachment_id"] for v in moving.values()])
            return
        if error:  # _rollback_move deletes the destination's attachments
            await self._rollback_move(server, meta, error)
            return
        volumes = meta.pop("live_migration_volumes", None) or {}
        async with self.db.session() as s:
            rows = {r.id: r for r in (await s.execute(select(BlockDeviceMapping).where(
                BlockDeviceMapping.server_id == server_id))).scalars()}
        for new in volumes.values():
            row = rows.get(new["bdm_id"])
            await self._block_storage().attachment_complete(_caller_for(server), new["attachment_id"])
            async with self.db.session() as s:
                await s.execute(update(BlockDeviceMapping).where(BlockDeviceMapping.id == new["bdm_id"]).values(
                    attachment_id=new["attachment_id"], connection_info=new["connection_info"]))
            if row is not None and row.attachment_id:
                await self._delete_attachments(server, [row.attachment_id])
        migration = meta.pop("migration", None)
        meta.pop("old_node", None)
        meta.pop("old_host", None)
        if migration:
            await self.release(migration)
        await self._migration_status(migration, "completed")
        dest = ctx.get("dest")
        await self.settle(server_id, host=dest, node=await self._node_id(dest), system_meta=meta)

    async def evacuate(self, server: Server, host: str | None) -> None:
        self.refuse_volume_backed(server, "evacuate")
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
